/**
 * One request taken from a rate-limit bucket (private.take_rate_limit: a
 * sliding window of 60 s, shared by every function instance), or a 429 with
 * Retry-After when the bucket is spent. An API key's bucket is
 * `api_key:<id>` at the key's own `rate_limit_per_minute`, the bucket
 * private.chat_prepare takes from, so a key's chat turns, knowledge searches
 * and calendar requests share its one limit (a chat turn naming its end user
 * also takes that end user's, `api_key:<id>:user:<end user>` at 60, in
 * chat_prepare). A signed-in user's buckets are per function or route
 * (`calendar:user:<id>`, `knowledge_search:user:<id>`, ...), at 60.
 */
import { asServiceRole, type Sql } from './db.ts';
import { HttpError } from './errors.ts';

export type RateLimitBucket = { apiKeyId: string } | { bucket: string; perMinute: number };

export async function takeRateLimit(sql: Sql, from: RateLimitBucket): Promise<void> {
  const [hit] = await asServiceRole(sql, (tx) =>
    'apiKeyId' in from
      ? tx<{ allowed: boolean; retry_after_seconds: number | null }[]>`
          select allowed, retry_after_seconds from private.take_rate_limit('api_key:' || ${from.apiKeyId},
            (select k.rate_limit_per_minute from public.api_keys k where k.id = ${from.apiKeyId}::uuid), 60)`
      : tx<{ allowed: boolean; retry_after_seconds: number | null }[]>`
          select allowed, retry_after_seconds from private.take_rate_limit(${from.bucket}, ${from.perMinute}, 60)`);
  if (!hit.allowed) {
    const wait = String(hit.retry_after_seconds ?? 1);
    throw new HttpError(429, 'rate_limited', `Too many requests; try again in ${wait} seconds.`, { 'retry-after': wait });
  }
}
