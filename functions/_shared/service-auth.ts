import { createHash, timingSafeEqual } from 'node:crypto';
import { type AuthOptions, bearerToken, type UserClaims, verifyJwt } from './auth.ts';
import { type EnvReader, processEnv } from './env.ts';
import { HttpError } from './errors.ts';
import { serviceKeys } from './service-keys.ts';

/**
 * For functions only the platform calls (pg_cron and pg_net with the Vault's
 * service-role key). Checked in the function, not by the gateway (their
 * verify_jwt is off): a hosted project's functions may not hold the JWT
 * secret, and its service key may not be a JWT at all (an `sb_secret_` key),
 * so the keys themselves (service-keys.ts) are accepted as well as a verified
 * service_role token (never one signed with the legacy JWT secret once
 * LEGACY_API_KEYS_DISABLED=true: verifyJwt refuses it). 401 without a valid
 * token, 403 for any other role.
 */
export async function requireServiceRole(req: Request, options: AuthOptions & { what: string }): Promise<void> {
  const env: EnvReader = options.env ?? processEnv;
  const token = bearerToken(req.headers.get('authorization'));
  if (isServiceRoleKey(token, serviceKeys(env))) return;
  const claims = await verifyJwt(token, { env });
  if (claims.role !== 'service_role') {
    throw new HttpError(403, 'service_role_required', `Only the service role may ${options.what}.`);
  }
}

/** Compares digests, so the time taken says nothing about how much of a key matched. */
function isServiceRoleKey(token: string, keys: string[]): boolean {
  const digest = (value: string) => createHash('sha256').update(value).digest();
  const presented = digest(token);
  return keys.some((key) => timingSafeEqual(presented, digest(key)));
}

export type Caller = { kind: 'service' } | { kind: 'user'; claims: UserClaims };

/**
 * For a function whose one path is both a user route and the platform's
 * wake-up (pg_net posts to `/functions/v1/<name>` itself, with the
 * service-role key): the service role when the token is its key or a
 * service_role JWT, else a signed-in user; anything else is 401/403.
 */
export async function serviceRoleOrUser(req: Request, options: AuthOptions = {}): Promise<Caller> {
  const env: EnvReader = options.env ?? processEnv;
  const token = bearerToken(req.headers.get('authorization'));
  if (isServiceRoleKey(token, serviceKeys(env))) return { kind: 'service' };
  const claims = await verifyJwt(token, { env });
  if (claims.role === 'service_role') return { kind: 'service' };
  if (claims.role !== 'authenticated' || !claims.sub) {
    throw new HttpError(401, 'user_required', 'This endpoint needs a signed-in user token.', {
      'www-authenticate': `Bearer error="invalid_token"`,
    });
  }
  return { kind: 'user', claims: { ...claims, role: 'authenticated', sub: claims.sub } };
}
