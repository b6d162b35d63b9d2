import type { EnvReader } from './env.ts';

/**
 * The project's service keys: the newer secret keys (SUPABASE_SECRET_KEYS, a
 * JSON object of named `sb_secret_...` keys, which hosted functions are
 * given) and the legacy service-role key (SUPABASE_SERVICE_ROLE_KEY, a JWT).
 * Supabase is retiring the legacy key, so either may be the one stored in
 * Vault for pg_cron and pg_net to send. Functions keep being given the legacy
 * key after a project turns legacy keys off; LEGACY_API_KEYS_DISABLED=true
 * says so, and the legacy key then counts for nothing. Secret keys come
 * first, so Storage is reached with one whenever there is one. A malformed
 * SUPABASE_SECRET_KEYS counts as none.
 */
export function serviceKeys(env: EnvReader): string[] {
  const keys: string[] = [];
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
  const legacy = env('SUPABASE_SERVICE_ROLE_KEY');
  if (legacy && !legacyApiKeysDisabled(env)) keys.push(legacy);
  return keys;
}

/** The key to call Storage with as the service role: the first secret key, else the legacy key. */
export function serviceKey(env: EnvReader): string | undefined {
  return serviceKeys(env)[0];
}

/**
 * LEGACY_API_KEYS_DISABLED=true: the project turned its legacy API keys off,
 * though functions are still given SUPABASE_SERVICE_ROLE_KEY and may still hold
 * the legacy JWT secret (users' sessions can be signed with it after the keys are off).
 */
export function legacyApiKeysDisabled(env: EnvReader): boolean {
  return env('LEGACY_API_KEYS_DISABLED') === 'true';
}
