import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFunctionsServer } from '../../scripts/local/functions-server.ts';
import { signUserToken } from '../../scripts/local/keys.ts';
import { ROOT_DIR, startTestStack, type TestStack } from './support.ts';

const user = { id: '8d0fd2b3-9ca7-4f5c-8bd2-6d1b0a4d2c11', email: 'ada@example.com' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('gateway + runtime + health, with config.toml (health: verify_jwt = false)', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack();
  });
  afterAll(() => stack?.stop());

  it('serves health without a token: 200 with the database round trip', async () => {
    const response = await fetch(`${stack.functionsUrl}/health`);
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body).toMatchObject({ status: 'ok', database: { ok: true } });
    expect(body.database.roundTripMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(body.time)).not.toBeNaN();
    expect(response.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('carries the caller x-request-id through to the function and back', async () => {
    const response = await fetch(`${stack.functionsUrl}/health`, { headers: { 'x-request-id': 'trace-1' } });
    expect(response.headers.get('x-request-id')).toBe('trace-1');
  });

  it('answers HEAD as uptime checkers probe: 200, no body', async () => {
    const response = await fetch(`${stack.functionsUrl}/health`, { method: 'HEAD' });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('');
  });

  it('answers health for other methods with 405 JSON', async () => {
    const response = await fetch(`${stack.functionsUrl}/health`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(405);
    expect((await response.json()).error.code).toBe('method_not_allowed');
  });

  it('answers a CORS preflight itself, without a token', async () => {
    const response = await fetch(`${stack.functionsUrl}/anything`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:3000',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-headers')).toBe(
      'authorization, x-client-info, apikey, content-type, traceparent, tracestate, baggage, x-region, ' +
        'x-api-key, idempotency-key, x-conversation-id, x-chat-channel, x-request-id',
    );
    expect(response.headers.get('access-control-allow-methods')).toContain('POST');
  });

  it('answers an unknown function with 404 function_not_found (after the JWT check)', async () => {
    const anonymous = await fetch(`${stack.functionsUrl}/nope`);
    expect(anonymous.status).toBe(401);
    const response = await fetch(`${stack.functionsUrl}/nope`, { headers: bearer(stack.keys.anonKey) });
    expect(response.status).toBe(404);
    expect((await response.json()).error.code).toBe('function_not_found');
  });

  it('answers paths outside /functions/v1 with 404 JSON', async () => {
    const response = await fetch(`${stack.functionsUrl.replace('/functions/v1', '')}/rest/v1/items`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect((await response.json()).error.code).toBe('not_found');
  });
});

describe('gateway with verify_jwt forced on for health', () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ verifyJwt: { health: true } });
  });
  afterAll(() => stack?.stop());

  const health = (headers: Record<string, string> = {}) => fetch(`${stack.functionsUrl}/health`, { headers });

  it.each([
    ['no token', async () => ({}), 'missing_authorization'],
    ['an expired token', async () => bearer(await signUserToken(user, { expiresInSeconds: -5 })), 'token_expired'],
    [
      'a forged token',
      async () => bearer(await signUserToken(user, { secret: 'x'.repeat(40) })),
      'invalid_token',
    ],
    ['a malformed header', async () => ({ authorization: 'Token abc' }), 'invalid_token'],
  ])('rejects %s with 401 JSON', async (_, headers, code) => {
    const response = await health(await headers());
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('x-request-id')).toBeTruthy();
    expect((await response.json()).error.code).toBe(code);
  });

  it('accepts the anon key, the service key and a user token', async () => {
    for (const token of [stack.keys.anonKey, stack.keys.serviceRoleKey, await signUserToken(user)]) {
      expect((await health(bearer(token))).status).toBe(200);
    }
  });
});

describe('startFunctionsServer start-up failures', () => {
  it('rejects with the port named when the port is taken, before starting Deno', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      await expect(startFunctionsServer({ port, rootDir: ROOT_DIR, env: {}, log: () => undefined })).rejects.toThrow(
        new RegExp(`port ${port} .*already in use`),
      );
    } finally {
      blocker.close();
    }
  });

  it('rejects with Deno’s own error when the runtime exits before it is ready', async () => {
    await expect(
      startFunctionsServer({
        port: 0,
        rootDir: ROOT_DIR,
        env: {},
        functionsDir: '/nonexistent/functions',
        log: () => undefined,
      }),
    ).rejects.toThrow(/exited \(code 1\) before it was ready[\s\S]*nonexistent/);
  });
});
