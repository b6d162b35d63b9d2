/**
 * Who calls a knowledge route that serves both bots and dashboards: an API
 * key with the route's scope (its own org; the work runs as the service role
 * with the key as actor), or a signed-in user (run as the user under RLS;
 * `org_id` names the org and the user needs the permission there). The
 * documents API (list, read, retry) serves API keys only: users read
 * public.documents through PostgREST and call retry_document themselves.
 */
import {
  apiKeyActorClaims,
  type ApiKeyPrincipal,
  refuseUserTokens,
  sendsApiKey,
  verifyKeyTakingRequest,
} from '../_shared/api-keys.ts';
import { type AuthOptions, type JwtClaims, requireUser, type UserClaims } from '../_shared/auth.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { mapPostgresErrors } from '../_shared/pg-errors.ts';
import { takeRateLimit } from '../_shared/rate-limit.ts';

export type Caller =
  | { kind: 'key'; key: ApiKeyPrincipal }
  | { kind: 'user'; claims: UserClaims };
export type KeyCaller = Extract<Caller, { kind: 'key' }>;

/** The key scope, equally the user permission, a route needs. */
export type KnowledgePermission = 'knowledge.read' | 'knowledge.write' | 'catalog.read';

/** Requests a minute per signed-in user on each such route (a dashboard's search box). */
const USER_REQUESTS_PER_MINUTE = 60;

export async function authenticateCaller(
  sql: Sql,
  req: Request,
  options: AuthOptions,
  permission: KnowledgePermission,
): Promise<Caller> {
  if (!sendsApiKey(req)) return { kind: 'user', claims: await requireUser(req, options) };
  return { kind: 'key', key: await verifyKeyTakingRequest(sql, req, permission) };
}

/**
 * For the routes that serve API keys only: the verified key holding
 * `permission` (a user token is a 401 `api_key_required`), its request taken
 * from its bucket (429 when spent).
 */
export async function authenticateKeyCaller(sql: Sql, req: Request, permission: KnowledgePermission): Promise<KeyCaller> {
  refuseUserTokens(req, 'The documents API', 'read public.documents and call retry_document directly');
  return { kind: 'key', key: await verifyKeyTakingRequest(sql, req, permission) };
}

/** The claims a caller's work runs under: the user's, or the service role acting for the key (the key's id as a claim). */
export function callerClaims(caller: Caller): JwtClaims {
  return caller.kind === 'user' ? caller.claims : apiKeyActorClaims(caller.key.apiKeyId);
}

/** Runs `fn` as the caller (callerClaims). */
export function asCaller<T>(
  sql: Sql,
  caller: Caller,
  fn: (tx: TransactionSql) => Promise<T>,
  messages: { forbidden: string; notFound: string },
): Promise<T> {
  return mapPostgresErrors(() => withUserScope(sql, callerClaims(caller), fn), messages);
}

/**
 * The org a request works in, after the checks its query would not make: a
 * key works in its own org only (another `org_id` is a 403); a user must name
 * the org and hold the permission there (else 404: an org they cannot read
 * looks like no org, and under RLS the query would just come back empty).
 */
export async function callerOrg(
  sql: Sql,
  caller: Caller,
  orgId: string | undefined,
  permission: KnowledgePermission,
): Promise<string> {
  if (caller.kind === 'key') {
    if (orgId && orgId !== caller.key.orgId) {
      throw new HttpError(403, 'forbidden', 'This API key belongs to another organization.');
    }
    return caller.key.orgId;
  }
  if (!orgId) throw new HttpError(422, 'invalid_request', 'Invalid request body: org_id: required with a user token');
  const [{ allowed }] = await withUserScope(sql, caller.claims, (tx) =>
    tx<{ allowed: boolean }[]>`select ${permission} = any (array(select public.my_permissions(${orgId}::uuid))) as allowed`);
  if (!allowed) throw new HttpError(404, 'not_found', 'The organization was not found.');
  return orgId;
}

/**
 * One request from a signed-in user's bucket for this route. A key's request
 * was taken from its own bucket (shared with the chat endpoints) when it was
 * verified.
 */
export async function takeUserRateLimit(sql: Sql, caller: Caller, route: string): Promise<void> {
  if (caller.kind === 'user') {
    await takeRateLimit(sql, { bucket: `${route}:user:${caller.claims.sub}`, perMinute: USER_REQUESTS_PER_MINUTE });
  }
}
