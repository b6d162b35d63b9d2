/**
 * Who calls the calls API: a server holding an API key, never a signed-in
 * user (users read public.calls through PostgREST and call the RPCs
 * themselves). The key's scope is checked, one request is taken from its
 * rate-limit bucket, and the work runs as the service role with the key's id
 * as a claim, so the audit log names the key. The service role bypasses RLS:
 * every query of this function names the key's org itself.
 */
import {
  apiKeyActorClaims,
  apiKeyFromRequest,
  type ApiKeyPrincipal,
  requireScope,
  sendsApiKey,
  verifyApiKey,
} from '../_shared/api-keys.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { takeRateLimit } from '../_shared/rate-limit.ts';

export type CallsScope = 'calls.read' | 'calls.write';

/** A bearer token that is not an API key is a user's (or a project key): refused with a pointer to what users use. */
function refuseOtherTokens(req: Request): void {
  if (sendsApiKey(req) || !req.headers.has('authorization')) return;
  throw new HttpError(
    401,
    'api_key_required',
    'The calls API takes an API key ("Authorization: Bearer ak_..." or "x-api-key"), not a user token; ' +
      'signed-in users read public.calls and call create_outbound_call / cancel_call directly.',
    { 'www-authenticate': 'Bearer' },
  );
}

/** The verified key, holding `scope`, after taking one request from its bucket (429 when spent). */
export async function authenticateKey(sql: Sql, req: Request, scope: CallsScope): Promise<ApiKeyPrincipal> {
  refuseOtherTokens(req);
  const key = await verifyApiKey(sql, apiKeyFromRequest(req));
  requireScope(key, scope);
  await takeRateLimit(sql, { apiKeyId: key.apiKeyId });
  return key;
}

/** Runs `fn` as the service role acting for the key. */
export function asKey<T>(sql: Sql, key: ApiKeyPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return withUserScope(sql, apiKeyActorClaims(key.apiKeyId), fn);
}
