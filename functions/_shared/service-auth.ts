import { createHash, timingSafeEqual } from 'node:crypto';
import { type AuthOptions, bearerToken, verifyJwt } from './auth.ts';
import { type EnvReader, processEnv } from './env.ts';
import { HttpError } from './errors.ts';

/**
 * For functions only the platform calls (pg_cron and pg_net with the Vault's
 * service-role key). Checked in the function, not by the gateway (their
 * verify_jwt is off): a hosted project's functions may not hold the JWT
 * secret, and its service-role key may not be a JWT at all, so the key itself
 * is accepted as well as a verified service_role token. 401 without a valid
 * token, 403 for any other role.
 */
export async function requireServiceRole(req: Request, options: AuthOptions & { what: string }): Promise<void> {
  const env: EnvReader = options.env ?? processEnv;
  const token = bearerToken(req.headers.get('authorization'));
  if (isServiceRoleKey(token, env('SUPABASE_SERVICE_ROLE_KEY'))) return;
  const claims = await verifyJwt(token, { env });
  if (claims.role !== 'service_role') {
    throw new HttpError(403, 'service_role_required', `Only the service role may ${options.what}.`);
  }
}

/** Compares digests, so the time taken says nothing about how much of the key matched. */
function isServiceRoleKey(token: string, key: string | undefined): boolean {
  if (!key) return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(token), digest(key));
}
