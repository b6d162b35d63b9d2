import type { EnvReader } from './env.ts';

/**
 * The project's service keys: the legacy service-role key
 * (SUPABASE_SERVICE_ROLE_KEY, a JWT) and the newer secret keys
 * (SUPABASE_SECRET_KEYS, a JSON object of named `sb_secret_...` keys, which
 * hosted functions are given too). Supabase is retiring the legacy key, so
 * either may be the one stored in Vault for pg_cron and pg_net to send, and
 * either reaches Storage as the service role. A malformed
 * SUPABASE_SECRET_KEYS counts as none.
 */
export function serviceKeys(env: EnvReader): string[] {
  const keys: string[] = [];
  const legacy = env('SUPABASE_SERVICE_ROLE_KEY');
  if (legacy) keys.push(legacy);
  const named = env('SUPABASE_SECRET_KEYS');
  if (named) {
    try {
      const parsed: unknown = JSON.parse(named);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const value of Object.values(parsed)) if (typeof value === 'string' && value !== '') keys.push(value);
      }
    } catch {
      // Not JSON: no secret keys from it.
    }
  }
  return keys;
}

/** The key to call Storage with as the service role: the legacy key while there is one, else the first secret key. */
export function serviceKey(env: EnvReader): string | undefined {
  return serviceKeys(env)[0];
}

export const SERVICE_KEY_NAMES = 'SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS';
