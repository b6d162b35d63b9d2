/**
 * GET /functions/v1/calls: the key's org's calls, newest first (created_at,
 * then id), filtered by status (one or several, comma-separated), direction,
 * bot, campaign and a creation window (created_after < created_at <
 * created_before, to the millisecond as created_at is shown), `limit` 1–100 (default 20), paged by the opaque
 * `next_cursor` (null on the last page). Send the same filters with each
 * page's cursor.
 */
import { z } from 'zod';
import type { ApiKeyPrincipal } from '../_shared/api-keys.ts';
import { createdWindow, createdWindowInOrder, decodeCursor, DEFAULT_LIMIT, listPage, pageLimit } from '../_shared/cursor.ts';
import type { Sql } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import { asKey } from './caller.ts';
import { callColumns, type CallRow, toApiCall } from './representation.ts';

export const CALL_STATUSES = ['queued', 'ringing', 'in_progress', 'ended', 'failed', 'canceled', 'no_answer', 'busy'] as const;

export const listQuery = z
  .strictObject({
    status: z
      .string()
      .transform((value) => [...new Set(value.split(','))])
      .pipe(z.array(z.enum(CALL_STATUSES))),
    direction: z.enum(['inbound', 'outbound', 'web']),
    bot_id: z.guid(),
    campaign_id: z.guid(),
    ...createdWindow,
    limit: pageLimit,
    cursor: z.string(),
  })
  .partial()
  .refine(...createdWindowInOrder);

export type ListQuery = z.infer<typeof listQuery>;

export async function listCalls(sql: Sql, key: ApiKeyPrincipal, query: ListQuery): Promise<Response> {
  const limit = query.limit ?? DEFAULT_LIMIT;
  const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  // Timestamps go in as text: postgres.js sends a timestamptz parameter through a JS Date, dropping the microseconds.
  // The window compares created_at cut to the millisecond (as shown), so a row's own created_at sent back as either
  // bound leaves it out; written as a range on created_at itself, so the index on (org_id, created_at) bounds the scan.
  const rows = await asKey(sql, key, (tx) =>
    tx<CallRow[]>`
      select ${callColumns(tx)}
      from public.calls c
      where c.org_id = ${key.orgId}::uuid
        ${query.status ? tx`and c.status::text = any (${query.status}::text[])` : tx``}
        ${query.direction ? tx`and c.direction = ${query.direction}::public.call_direction` : tx``}
        ${query.bot_id ? tx`and c.bot_id = ${query.bot_id}::uuid` : tx``}
        ${query.campaign_id ? tx`and c.campaign_id = ${query.campaign_id}::uuid` : tx``}
        ${query.created_after ? tx`and c.created_at >= date_trunc('milliseconds', ${query.created_after}::text::timestamptz) + interval '1 millisecond'` : tx``}
        ${query.created_before ? tx`and c.created_at < date_trunc('milliseconds', ${query.created_before}::text::timestamptz)` : tx``}
        ${after ? tx`and (c.created_at, c.id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : tx``}
      order by c.created_at desc, c.id desc
      limit ${limit + 1}`);
  return json(listPage(rows, limit, toApiCall));
}
