/**
 * The platform's wake-ups (pg_cron, pg_net) carry whichever service key the
 * project stored in Vault: the legacy service-role key or an `sb_secret_` key
 * of SUPABASE_SECRET_KEYS, which hosted projects move to as the legacy keys
 * are retired. Both must be taken, and only them.
 */
import { describe, expect, it } from 'vitest';
import { requireServiceRole, serviceRoleOrUser } from '../../functions/_shared/service-auth.ts';
import { serviceKey, serviceKeys } from '../../functions/_shared/service-keys.ts';
import { localKeys } from '../../scripts/local/keys.ts';

const envOf = (values: Record<string, string>) => (name: string) => values[name];
const request = (token: string) => new Request('http://local/x', { method: 'POST', headers: { authorization: `Bearer ${token}` } });

describe('service keys', () => {
  it('reads the legacy key and every named secret key, ignoring a malformed map', () => {
    expect(serviceKeys(envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy', SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a","ci":"sb_secret_b"}' })))
      .toEqual(['sb_secret_a', 'sb_secret_b', 'legacy']);
    // Storage is reached with a secret key whenever there is one: a project that turned legacy keys off still gives
    // functions the legacy key, which Storage then refuses.
    expect(serviceKey(envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy', SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a"}' })))
      .toBe('sb_secret_a');
    expect(serviceKey(envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy' }))).toBe('legacy');
    expect(serviceKeys(envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy', LEGACY_API_KEYS_DISABLED: 'true' }))).toEqual([]);
    expect(serviceKeys(envOf({ SUPABASE_SECRET_KEYS: 'not json' }))).toEqual([]);
    expect(serviceKeys(envOf({ SUPABASE_SECRET_KEYS: '["sb_secret_a"]' }))).toEqual([]);
    expect(serviceKey(envOf({ SUPABASE_SECRET_KEYS: '{"default":"sb_secret_a"}' }))).toBe('sb_secret_a');
  });

  it('lets a wake-up carrying an sb_secret_ key through, and refuses another token', async () => {
    const env = envOf({ SUPABASE_SECRET_KEYS: '{"default":"sb_secret_wake"}', SUPABASE_JWT_SECRET: 'x'.repeat(32) });
    await expect(requireServiceRole(request('sb_secret_wake'), { env, what: 'wake' })).resolves.toBeUndefined();
    expect(await serviceRoleOrUser(request('sb_secret_wake'), { env })).toEqual({ kind: 'service' });
    await expect(requireServiceRole(request('sb_secret_other'), { env, what: 'wake' })).rejects.toMatchObject({ status: 401 });
  });

  it('refuses the legacy key once legacy keys are turned off', async () => {
    const legacyOff = envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy-key', LEGACY_API_KEYS_DISABLED: 'true', SUPABASE_JWT_SECRET: 'x'.repeat(32) });
    await expect(requireServiceRole(request('legacy-key'), { env: legacyOff, what: 'wake' })).rejects.toMatchObject({ status: 401 });
    const legacyOn = envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy-key', SUPABASE_JWT_SECRET: 'x'.repeat(32) });
    await expect(requireServiceRole(request('legacy-key'), { env: legacyOn, what: 'wake' })).resolves.toBeUndefined();
  });
});

describe('serviceRoleOrUser: the public anon key', () => {
  it('refuses an anon-role JWT (the public key every client holds) with 401 user_required, neither service nor user', async () => {
    const secret = 'x'.repeat(32);
    const env = envOf({ SUPABASE_SERVICE_ROLE_KEY: 'legacy-key', SUPABASE_JWT_SECRET: secret });
    const { anonKey, serviceRoleKey } = await localKeys(secret);
    await expect(serviceRoleOrUser(request(anonKey), { env })).rejects.toMatchObject({ status: 401, code: 'user_required' });
    // The same secret's service_role token is the service: the refusal is the role's, not the signature's.
    expect(await serviceRoleOrUser(request(serviceRoleKey), { env })).toEqual({ kind: 'service' });
  });
});
