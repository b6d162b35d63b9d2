/**
 * Who calls the calls API: a server holding an API key, never a signed-in
 * user (users read public.calls through PostgREST and call the RPCs
 * themselves). One request is taken from the key's rate-limit bucket, then
 * its scope is checked, and the work runs as the service role with the key's id
 * as a claim, so the audit log names the key. The service role bypasses RLS:
 * every query of this function names the key's org itself.
 */
import { apiKeyActorClaims, type ApiKeyPrincipal, refuseUserTokens, verifyKeyTakingRequest } from '../_shared/api-keys.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';

export type CallsScope = 'calls.read' | 'calls.write';

/** The verified key, holding `scope`, its request taken from its bucket (429 when spent), refused ones too. */
export function authenticateKey(sql: Sql, req: Request, scope: CallsScope): Promise<ApiKeyPrincipal> {
  refuseUserTokens(req, 'The calls API', 'read public.calls and call create_outbound_call / cancel_call directly');
  return verifyKeyTakingRequest(sql, req, scope);
}

/** Runs `fn` as the service role acting for the key. */
export function asKey<T>(sql: Sql, key: ApiKeyPrincipal, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return withUserScope(sql, apiKeyActorClaims(key.apiKeyId), fn);
}
