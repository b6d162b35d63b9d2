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
  refuseUserTokens,
  requireScope,
  verifyApiKey,
} from '../_shared/api-keys.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { takeRateLimit } from '../_shared/rate-limit.ts';

export type CallsScope = 'calls.read' | 'calls.write';

/** The verified key, holding `scope`, after taking one request from its bucket (429 when spent). */
export async function authenticateKey(sql: Sql, req: Request, scope: CallsScope): Promise<ApiKeyPrincipal> {
  refuseUserTokens(req, 'The calls API', 'read public.calls and call create_outbound_call / cancel_call directly');
  const key = await verifyApiKey(sql, apiKeyFromRequest(req));
  requireScope(key, scope);
  await takeRateLimit(sql, { apiKeyId: key.apiKeyId });
  return key;
}

/** Runs `fn` as the service role acting for the key. */
export function asKey<T>(sql: Sql, key: ApiKeyPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return withUserScope(sql, apiKeyActorClaims(key.apiKeyId), fn);
}
