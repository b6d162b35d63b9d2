import { afterAll, describe, expect, it } from 'vitest';
import { createSql } from '../../functions/_shared/db.ts';
import type { DispatchOptions, DispatchSummary } from '../../functions/webhook-dispatcher/dispatch.ts';
import { createDispatcherHandler } from '../../functions/webhook-dispatcher/handler.ts';
import { LOCAL_JWT_SECRET, localKeys, signUserToken } from '../../scripts/local/keys.ts';

/**
 * The handler alone, in Node: its own token check (it must hold even where the
 * gateway's verify_jwt is turned off) and the policy it hands the pass. The
 * pass is replaced, so no database is touched.
 */
const summary: DispatchSummary = {
  claimed: 3,
  succeeded: 2,
  retried: 1,
  failed: 0,
  stale: 0,
  unrecorded: 0,
  dropped: 0,
  batches: 1,
  durationMs: 5,
  stoppedBy: 'idle',
};
// postgres.js connects lazily: this client is never used.
const sql = createSql('postgres://nobody@127.0.0.1:1/none');
afterAll(() => sql.end({ timeout: 0 }));

function handlerWith(envValues: Record<string, string>) {
  const calls: DispatchOptions[] = [];
  const handler = createDispatcherHandler({
    sql: () => sql,
    env: (name) => ({ SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET, ...envValues })[name],
    run: async (options) => {
      calls.push(options);
      return summary;
    },
  });
  return { handler, calls };
}

const post = (token?: string) =>
  new Request('http://local/webhook-dispatcher', {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
    body: '{}',
  });

describe('webhook-dispatcher handler', () => {
  it('answers 401 without a token and 403 for a user or the anon key, without running a pass', async () => {
    const { handler, calls } = handlerWith({});
    const keys = await localKeys();
    const missing = await handler(post());
    expect(missing.status).toBe(401);
    expect((await missing.json()).error.code).toBe('missing_authorization');
    for (const token of [await signUserToken({ id: '5b0c4a2e-1f3d-4e6a-9b8c-7d6e5f4a3b2c' }), keys.anonKey]) {
      const refused = await handler(post(token));
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({
        error: { code: 'service_role_required', message: expect.any(String), request_id: expect.any(String) },
      });
    }
    const forged = await handler(post((await localKeys('another-secret-of-at-least-32-characters!!')).serviceRoleKey));
    expect(forged.status).toBe(401);
    expect(calls).toHaveLength(0);
  });

  it('answers 405 to anything but POST', async () => {
    const { handler } = handlerWith({});
    const response = await handler(new Request('http://local/webhook-dispatcher'));
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });

  it('runs one pass for the service role and answers its summary', async () => {
    const { handler, calls } = handlerWith({});
    const response = await handler(post((await localKeys()).serviceRoleKey));
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    expect(await response.json()).toEqual(summary);
    expect(calls).toHaveLength(1);
    expect(calls[0].sql).toBe(sql);
    expect(calls[0].policy).toEqual({ allowLoopback: false });
  });

  it('accepts the project\'s service-role key as is, even when it is no JWT and no JWT secret is set', async () => {
    const secretKey = 'sb_secret_local-test-key-that-is-not-a-jwt';
    const calls: DispatchOptions[] = [];
    const handler = createDispatcherHandler({
      sql: () => sql,
      env: (name) => ({ SUPABASE_SERVICE_ROLE_KEY: secretKey })[name],
      run: async (options) => {
        calls.push(options);
        return summary;
      },
    });
    expect((await handler(post(secretKey))).status).toBe(200);
    expect((await handler(post(`${secretKey}x`))).status).toBe(401);
    expect(calls).toHaveLength(1);
  });

  it('allows loopback receivers only when WEBHOOK_ALLOW_LOOPBACK is exactly "true"', async () => {
    const token = (await localKeys()).serviceRoleKey;
    for (const [value, allowed] of [['true', true], ['1', false], ['TRUE', false]] as const) {
      const { handler, calls } = handlerWith({ WEBHOOK_ALLOW_LOOPBACK: value });
      await handler(post(token));
      expect(calls[0].policy.allowLoopback, value).toBe(allowed);
    }
  });
});
