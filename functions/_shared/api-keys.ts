import type { JwtClaims } from './auth.ts';
import { asServiceRole, type Sql } from './db.ts';
import { HttpError } from './errors.ts';
import { takeRateLimit } from './rate-limit.ts';

/** What a verified API key may act for. */
export interface ApiKeyPrincipal {
  apiKeyId: string;
  orgId: string;
  scopes: string[];
}

const KEY_FORMAT = /^ak_[0-9a-f]{48}$/;

const invalidKey = () =>
  new HttpError(401, 'invalid_api_key', 'The API key is unknown, revoked or expired.', {
    'www-authenticate': 'Bearer error="invalid_token"',
  });

/**
 * The API key of a bot or server request: `Authorization: Bearer ak_...` (what
 * OpenAI clients send) or `x-api-key: ak_...`.
 */
export function apiKeyFromRequest(req: Request): string {
  const header = req.headers.get('x-api-key') ?? /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get('authorization') ?? '')?.[1];
  if (!header) {
    throw new HttpError(401, 'missing_api_key', 'Send the API key as "Authorization: Bearer ak_..." or "x-api-key".', {
      'www-authenticate': 'Bearer',
    });
  }
  if (!KEY_FORMAT.test(header)) throw invalidKey();
  return header;
}

/** Whether the request carries an API key (`x-api-key`, or `Authorization: Bearer ak_...`) rather than a user's token. */
export function sendsApiKey(req: Request): boolean {
  return req.headers.has('x-api-key') || /^Bearer\s+ak_/i.test(req.headers.get('authorization') ?? '');
}

/**
 * For APIs that serve API keys only: a bearer token that is not an API key is
 * a user's (or a project key), refused with 401 `api_key_required` naming the
 * API and what signed-in users use instead.
 */
export function refuseUserTokens(req: Request, api: string, usersUse: string): void {
  if (sendsApiKey(req) || !req.headers.has('authorization')) return;
  throw new HttpError(
    401,
    'api_key_required',
    `${api} takes an API key ("Authorization: Bearer ak_..." or "x-api-key"), not a user token; signed-in users ${usersUse}.`,
    { 'www-authenticate': 'Bearer' },
  );
}

/**
 * Verifies a key with private.verify_api_key (a definer function only the
 * service role may run): a revoked, expired or unknown key is a 401.
 */
export async function verifyApiKey(sql: Sql, secret: string): Promise<ApiKeyPrincipal> {
  const rows = await asServiceRole(sql, (tx) =>
    tx<{ api_key_id: string; org_id: string; scopes: string[] }[]>`
      select api_key_id, org_id, scopes from private.verify_api_key(${secret})`);
  const [found] = rows;
  if (!found) throw invalidKey();
  return { apiKeyId: found.api_key_id, orgId: found.org_id, scopes: found.scopes };
}

/** 403 unless the key holds the scope. */
export function requireScope(principal: ApiKeyPrincipal, scope: string): void {
  if (!principal.scopes.includes(scope)) {
    throw new HttpError(403, 'insufficient_scope', `This API key lacks the "${scope}" scope.`);
  }
}

/**
 * The claims a request acting for a verified key runs under: the service role
 * (the key has been checked; every query names its org), with the key's id as
 * a claim so the audit log names the key as the actor.
 */
export function apiKeyActorClaims(apiKeyId: string): JwtClaims {
  return { role: 'service_role', exp: Math.floor(Date.now() / 1000) + 3600, api_key_id: apiKeyId };
}

/**
 * The request's verified key holding `scope`, its request taken from the
 * key's bucket (429 when spent) before the scope or anything else is checked:
 * every request a key makes counts, refused ones too, so a key cannot be
 * spent on refusals without limit.
 */
export async function verifyKeyTakingRequest(sql: Sql, req: Request, scope: string): Promise<ApiKeyPrincipal> {
  const key = await verifyApiKey(sql, apiKeyFromRequest(req));
  await takeRateLimit(sql, { apiKeyId: key.apiKeyId });
  requireScope(key, scope);
  return key;
}
