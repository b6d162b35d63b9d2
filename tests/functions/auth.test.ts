import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  authenticate,
  bearerToken,
  JWKS_REFETCH_AFTER_FAILURE_MS,
  requireUser,
  verifyJwt,
} from '../../functions/_shared/auth.ts';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { requireServiceRole, serviceRoleOrUser } from '../../functions/_shared/service-auth.ts';
import { LOCAL_JWT_SECRET, localKeys, signUserToken } from '../../scripts/local/keys.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { startTestStack, type TestStack } from './support.ts';

const env = (name: string) => ({ SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET })[name as 'SUPABASE_JWT_SECRET'];
const user = { id: '8d0fd2b3-9ca7-4f5c-8bd2-6d1b0a4d2c11', email: 'ada@example.com', appMetadata: { tenant_id: 't1' } };

async function rejection(work: Promise<unknown>): Promise<HttpError> {
  const error = await work.then(
    () => expect.fail('expected a rejection'),
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

function request(authorization?: string): Request {
  return new Request('http://local/fn', { headers: authorization ? { authorization } : {} });
}

describe('verifyJwt with the JWT secret (HS256)', () => {
  it('returns the typed claims of a user token', async () => {
    const claims = await verifyJwt(await signUserToken(user), { env });
    expect(claims).toMatchObject({
      sub: user.id,
      role: 'authenticated',
      aud: 'authenticated',
      email: 'ada@example.com',
      app_metadata: { tenant_id: 't1', provider: 'email' },
    });
    expect(typeof claims.exp).toBe('number');
  });

  it('accepts the anon and service_role API keys', async () => {
    const keys = await localKeys();
    expect((await verifyJwt(keys.anonKey, { env })).role).toBe('anon');
    expect((await verifyJwt(keys.serviceRoleKey, { env })).role).toBe('service_role');
  });

  it('rejects an expired token with token_expired', async () => {
    const error = await rejection(verifyJwt(await signUserToken(user, { expiresInSeconds: -60 }), { env }));
    expect([error.status, error.code]).toEqual([401, 'token_expired']);
  });

  it('rejects a token signed with another secret with invalid_token', async () => {
    const forged = await signUserToken(user, { secret: 'not-the-project-secret-but-32-characters-long' });
    const error = await rejection(verifyJwt(forged, { env }));
    expect([error.status, error.code]).toEqual([401, 'invalid_token']);
  });

  it('rejects malformed, unsigned and exp-less tokens with invalid_token', async () => {
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${
      Buffer.from(
        JSON.stringify({ role: 'service_role', exp: 4102444800 }),
      ).toString('base64url')
    }.`;
    const noExp = await new SignJWT({ role: 'service_role' })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
    for (const token of ['not-a-jwt', unsigned, noExp]) {
      const error = await rejection(verifyJwt(token, { env }));
      expect([error.status, error.code]).toEqual([401, 'invalid_token']);
    }
  });

  it('rejects a user token without the authenticated audience', async () => {
    const token = await new SignJWT({ role: 'authenticated', sub: user.id })
      .setProtectedHeader({ alg: 'HS256' })
      .setAudience('somebody-else')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(LOCAL_JWT_SECRET));
    const error = await rejection(verifyJwt(token, { env }));
    expect(error.code).toBe('invalid_token');
  });

  it('takes the secret from JWT_SECRET where SUPABASE_JWT_SECRET cannot be set (hosted projects)', async () => {
    const hosted = (name: string) => (name === 'JWT_SECRET' ? LOCAL_JWT_SECRET : undefined);
    expect((await verifyJwt(await signUserToken(user), { env: hosted })).sub).toBe(user.id);
  });

  it('rejects HS256 tokens when no secret is configured', async () => {
    const error = await rejection(verifyJwt(await signUserToken(user), { env: () => undefined }));
    expect(error.code).toBe('invalid_token');
  });
});

describe('verifyJwt with the project JWKS (asymmetric keys)', () => {
  let server: Server;
  let supabaseUrl: string;
  let privateKey: CryptoKey;
  let jwksRequests = 0;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    server = createServer((req, res) => {
      if (req.url !== '/auth/v1/.well-known/jwks.json') return void res.writeHead(404).end();
      jwksRequests++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    supabaseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const sign = (expiresIn: string) =>
    new SignJWT({ role: 'authenticated', aud: 'authenticated', sub: user.id })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setExpirationTime(expiresIn)
      .sign(privateKey);

  it('verifies against the keys at SUPABASE_URL, fetching them once', async () => {
    const jwksEnv = (name: string) => (name === 'SUPABASE_URL' ? supabaseUrl : undefined);
    expect((await verifyJwt(await sign('1h'), { env: jwksEnv })).sub).toBe(user.id);
    expect((await verifyJwt(await sign('1h'), { env: jwksEnv })).sub).toBe(user.id);
    expect(jwksRequests).toBe(1);
    const error = await rejection(verifyJwt(await sign('-1m'), { env: jwksEnv }));
    expect(error.code).toBe('token_expired');
  });
});

describe('bearer tokens from requests', () => {
  it('reports a missing header as missing_authorization', async () => {
    const error = await rejection(authenticate(request(), { env }));
    expect([error.status, error.code]).toEqual([401, 'missing_authorization']);
  });

  it('rejects other schemes', () => {
    expect(() => bearerToken('Basic dXNlcjpwdw==')).toThrow(HttpError);
    expect(bearerToken('bearer abc.def.ghi')).toBe('abc.def.ghi');
  });

  it('requireUser accepts a user token and refuses an API key', async () => {
    const claims = await requireUser(request(`Bearer ${await signUserToken(user)}`), { env });
    expect(claims.sub).toBe(user.id);
    const { anonKey } = await localKeys();
    const error = await rejection(requireUser(request(`Bearer ${anonKey}`), { env }));
    expect([error.status, error.code]).toEqual([401, 'user_required']);
  });
});

/**
 * A stand-in for the project's key server (/auth/v1/.well-known/jwks.json) whose answer a test sets: the key set,
 * or the failures Supabase's API gateway answers with (429, 5xx) and bodies that are no key set.
 */
interface KeyServer {
  url: string;
  requests: number;
  answer: { status: number; body: string };
  close(): Promise<void>;
}

async function startKeyServer(jwks: { keys: JWK[] }): Promise<KeyServer> {
  const keyServer = {
    url: '',
    requests: 0,
    answer: { status: 200, body: JSON.stringify(jwks) },
    close: () => Promise.resolve(),
  };
  const server = createServer((req, res) => {
    if (req.url !== '/auth/v1/.well-known/jwks.json') return void res.writeHead(404).end();
    keyServer.requests++;
    res.writeHead(keyServer.answer.status, { 'content-type': 'application/json' }).end(keyServer.answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  keyServer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  keyServer.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return keyServer;
}

async function signingKey(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const pair = await generateKeyPair('ES256');
  return { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

const signES256 = (privateKey: CryptoKey, kid: string, sub: string) =>
  new SignJWT({ role: 'authenticated', aud: 'authenticated', sub })
    .setProtectedHeader({ alg: 'ES256', kid })
    .setExpirationTime('1h')
    .sign(privateKey);

/** Moves Date (jose's clock and ours) on by `ms`; timers and sockets keep real time. */
function advanceClock(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

describe('verifyJwt when the key server fails', () => {
  let keyServer: KeyServer;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const key = await signingKey('auth-test-outage');
    privateKey = key.privateKey;
    keyServer = await startKeyServer({ keys: [key.jwk] });
  });
  afterAll(() => keyServer.close());
  afterEach(() => void vi.useRealTimers());

  it('answers 503 auth_unavailable with Retry-After, not 401, for a 429, a 5xx or a body that is no key set, fetching again only after 5 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const outageEnv = (name: string) => (name === 'SUPABASE_URL' ? keyServer.url : undefined);
    const token = await signES256(privateKey, 'auth-test-outage', user.id);
    const good = keyServer.answer;
    const failures = [
      { status: 503, body: '{"message":"upstream unavailable"}' },
      { status: 429, body: '{"message":"too many requests"}' },
      { status: 500, body: '' },
      { status: 200, body: '<html>maintenance</html>' },
      { status: 200, body: '{"keys":"none"}' },
      { status: 200, body: '' },
    ];
    for (const [index, failure] of failures.entries()) {
      keyServer.answer = failure;
      const error = await rejection(verifyJwt(token, { env: outageEnv }));
      expect([failure.status, error.status, error.code]).toEqual([failure.status, 503, 'auth_unavailable']);
      expect(error.headers).toEqual({ 'retry-after': '5' });
      expect(keyServer.requests).toBe(index + 1);
      // Within 5 s of the failure the key server is not asked again, even once it would answer.
      keyServer.answer = good;
      advanceClock(JWKS_REFETCH_AFTER_FAILURE_MS - 1_500);
      const again = await rejection(verifyJwt(token, { env: outageEnv }));
      expect([again.status, again.code, again.headers['retry-after']]).toEqual([503, 'auth_unavailable', '2']);
      expect(keyServer.requests).toBe(index + 1);
      advanceClock(1_500);
    }
    expect((await verifyJwt(token, { env: outageEnv })).sub).toBe(user.id);
    expect(keyServer.requests).toBe(failures.length + 1);
  });

  it('keeps taking tokens of the last key set fetched while a stale set cannot be fetched again, asking at most every 5 s', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() });
    const old = await signingKey('auth-test-stale-old');
    const rotated = await signingKey('auth-test-stale-new');
    const staleServer = await startKeyServer({ keys: [old.jwk] });
    try {
      const staleEnv = (name: string) => (name === 'SUPABASE_URL' ? staleServer.url : undefined);
      const token = await signES256(old.privateKey, 'auth-test-stale-old', user.id);
      const rotatedToken = await signES256(rotated.privateKey, 'auth-test-stale-new', user.id);
      expect((await verifyJwt(token, { env: staleEnv })).sub).toBe(user.id);
      expect(staleServer.requests).toBe(1);

      // jose keeps a key set 10 minutes; past that it fetches it again.
      advanceClock(11 * 60_000);
      for (const failure of [{ status: 429, body: '{"message":"too many requests"}' }, { status: 503, body: '' }]) {
        staleServer.answer = failure;
        const before = staleServer.requests;
        expect((await verifyJwt(token, { env: staleEnv })).sub).toBe(user.id);
        expect((await verifyJwt(token, { env: staleEnv })).sub).toBe(user.id);
        expect(staleServer.requests).toBe(before + 1);
        // A kid the last set lacks may be in the set that could not be fetched: 503, not 401, and no fetch.
        const unknown = await rejection(verifyJwt(rotatedToken, { env: staleEnv }));
        expect([unknown.status, unknown.code, unknown.headers['retry-after']]).toEqual([503, 'auth_unavailable', '5']);
        // Another key's signature under a known kid is still the token's fault.
        const forged = await rejection(verifyJwt(await signES256(rotated.privateKey, 'auth-test-stale-old', user.id), { env: staleEnv }));
        expect([forged.status, forged.code]).toEqual([401, 'invalid_token']);
        expect(staleServer.requests).toBe(before + 1);
        advanceClock(JWKS_REFETCH_AFTER_FAILURE_MS);
      }

      // The key server is back with the rotated key: fetched at the next request, both tokens taken.
      staleServer.answer = { status: 200, body: JSON.stringify({ keys: [old.jwk, rotated.jwk] }) };
      expect((await verifyJwt(rotatedToken, { env: staleEnv })).sub).toBe(user.id);
      expect((await verifyJwt(token, { env: staleEnv })).sub).toBe(user.id);
      expect(staleServer.requests).toBe(4);
    } finally {
      await staleServer.close();
    }
  });

  it('still answers 401 invalid_token for a token no key of the set fits (JWKSNoMatchingKey)', async () => {
    const outageEnv = (name: string) => (name === 'SUPABASE_URL' ? keyServer.url : undefined);
    const stranger = await signingKey('auth-test-unknown-kid');
    const error = await rejection(verifyJwt(await signES256(stranger.privateKey, 'auth-test-unknown-kid', user.id), { env: outageEnv }));
    expect([error.status, error.code]).toEqual([401, 'invalid_token']);
    // The right kid with another key's signature is a verification failure, not an outage.
    const forged = await rejection(verifyJwt(await signES256(stranger.privateKey, 'auth-test-outage', user.id), { env: outageEnv }));
    expect([forged.status, forged.code]).toEqual([401, 'invalid_token']);
  });

  it('answers 401 invalid_token when several keys fit a token without a kid (JWKSMultipleMatchingKeys)', async () => {
    const first = await signingKey('auth-test-twin-a');
    const second = await signingKey('auth-test-twin-b');
    const twins = await startKeyServer({ keys: [first.jwk, second.jwk] });
    try {
      const twinsEnv = (name: string) => (name === 'SUPABASE_URL' ? twins.url : undefined);
      const token = await new SignJWT({ role: 'authenticated', aud: 'authenticated', sub: user.id })
        .setProtectedHeader({ alg: 'ES256' })
        .setExpirationTime('1h')
        .sign(first.privateKey);
      const error = await rejection(verifyJwt(token, { env: twinsEnv }));
      expect([error.status, error.code]).toEqual([401, 'invalid_token']);
    } finally {
      await twins.close();
    }
  });
});

describe('legacy API keys turned off (LEGACY_API_KEYS_DISABLED=true) with the legacy JWT secret still set', () => {
  const secret = 'auth-test-legacy-secret-at-least-32-characters';
  const envOf = (values: Record<string, string>) => (name: string) => values[name];
  const post = (token: string) => new Request('http://local/fn', { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  let keys: Awaited<ReturnType<typeof localKeys>>;
  let legacyOff: (name: string) => string | undefined;
  let legacyOn: (name: string) => string | undefined;

  beforeAll(async () => {
    keys = await localKeys(secret);
    // A hosted project: JWT_SECRET set by hand, the legacy key still given to functions.
    legacyOn = envOf({ JWT_SECRET: secret, SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey });
    legacyOff = envOf({ JWT_SECRET: secret, SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey, LEGACY_API_KEYS_DISABLED: 'true' });
  });

  it('refuses the legacy service_role and anon keys and any other role signed with the secret, with 401 invalid_token', async () => {
    const other = await new SignJWT({ role: 'supabase_admin' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    const noSub = await new SignJWT({ role: 'authenticated', aud: 'authenticated' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret));
    for (const token of [keys.serviceRoleKey, keys.anonKey, other, noSub]) {
      expect((await verifyJwt(token, { env: legacyOn })).role).toBeTypeOf('string');
      const error = await rejection(verifyJwt(token, { env: legacyOff }));
      expect([error.status, error.code]).toEqual([401, 'invalid_token']);
    }
  });

  it('refuses the legacy service_role JWT to requireServiceRole and serviceRoleOrUser', async () => {
    await expect(requireServiceRole(post(keys.serviceRoleKey), { env: legacyOn, what: 'wake' })).resolves.toBeUndefined();
    expect(await serviceRoleOrUser(post(keys.serviceRoleKey), { env: legacyOn })).toEqual({ kind: 'service' });
    const bySecret = await rejection(requireServiceRole(post(keys.serviceRoleKey), { env: legacyOff, what: 'wake' }));
    expect([bySecret.status, bySecret.code]).toEqual([401, 'invalid_token']);
    const mixed = await rejection(serviceRoleOrUser(post(keys.serviceRoleKey), { env: legacyOff }));
    expect([mixed.status, mixed.code]).toEqual([401, 'invalid_token']);
    const anon = await rejection(requireServiceRole(post(keys.anonKey), { env: legacyOff, what: 'wake' }));
    expect([anon.status, anon.code]).toEqual([401, 'invalid_token']);
  });

  it('still takes users\' sessions signed with the legacy secret', async () => {
    const session = await signUserToken(user, { secret });
    expect((await verifyJwt(session, { env: legacyOff })).sub).toBe(user.id);
    expect((await requireUser(request(`Bearer ${session}`), { env: legacyOff })).sub).toBe(user.id);
    expect(await serviceRoleOrUser(post(session), { env: legacyOff })).toMatchObject({ kind: 'user', claims: { sub: user.id } });
    const notService = await rejection(requireServiceRole(post(session), { env: legacyOff, what: 'wake' }));
    expect([notService.status, notService.code]).toEqual([403, 'service_role_required']);
  });
});

describe('over HTTP (the export function in Deno): legacy keys off, and a key server outage', () => {
  const secretKey = 'sb_secret_auth_test_rotation';
  let stack: TestStack;
  let sql: Sql;
  let org: ChatOrg;
  let keyServer: KeyServer;
  let privateKey: CryptoKey;

  beforeAll(async () => {
    const key = await signingKey('auth-test-http');
    privateKey = key.privateKey;
    keyServer = await startKeyServer({ keys: [key.jwk] });
    stack = await startTestStack({
      env: {
        LEGACY_API_KEYS_DISABLED: 'true',
        SUPABASE_SECRET_KEYS: JSON.stringify({ default: secretKey }),
        SUPABASE_URL: keyServer.url,
      },
    });
    sql = createSql(stack.dbUrl, { max: 1 });
    org = await createChatOrg(sql, 'auth-test-rotation');
  });
  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await stack?.stop();
    await keyServer?.close();
  });

  async function call(method: string, path: string, token: string, body?: unknown) {
    const response = await fetch(`${stack.functionsUrl}/${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, headers: response.headers, body: (await response.json()) as Record<string, unknown> };
  }
  const errorCode = (body: Record<string, unknown>) => (body.error as { code?: string } | undefined)?.code;
  const exportRow = async (id: string) =>
    (await sql<{ status: string; steps: number }[]>`select status::text, steps from public.data_exports where id = ${id}`)[0];

  it('refuses the legacy service_role JWT (401 invalid_token) and runs no step; a user\'s HS256 session still works', async () => {
    const created = await call('POST', 'export', org.tokens.owner, { org_id: org.id });
    expect(created.status).toBe(202);
    const exportId = (created.body.export as { id: string }).id;
    const before = await exportRow(exportId);
    expect(before).toMatchObject({ status: 'queued', steps: 0 });
    for (const path of ['export', 'export/step']) {
      for (const token of [stack.keys.serviceRoleKey, stack.keys.anonKey]) {
        const refused = await call('POST', path, token, { export_id: exportId });
        expect([path, refused.status, errorCode(refused.body)]).toEqual([path, 401, 'invalid_token']);
        expect(refused.headers.get('www-authenticate')).toContain('invalid_token');
      }
    }
    expect(await exportRow(exportId)).toEqual(before);
    // The refusal is the legacy key's: an sb_secret_ key gets past authentication (to the unknown export's 404).
    const bySecretKey = await call('POST', 'export/step', secretKey, { export_id: randomUUID() });
    expect([bySecretKey.status, errorCode(bySecretKey.body)]).toEqual([404, 'not_found']);
  });

  it('answers 503 auth_unavailable while the key server answers 503, asking it again after 5 s, then takes the same ES256 token', async () => {
    const token = await signES256(privateKey, 'auth-test-http', org.users.owner);
    const good = keyServer.answer;
    keyServer.answer = { status: 503, body: '{"message":"upstream unavailable"}' };
    const during = await call('GET', `export/${randomUUID()}`, token);
    expect([during.status, errorCode(during.body)]).toEqual([503, 'auth_unavailable']);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0);
    const failedAt = Date.now();
    expect(keyServer.requests).toBe(1);
    keyServer.answer = good;
    const soon = await call('GET', `export/${randomUUID()}`, token);
    expect([soon.status, errorCode(soon.body), keyServer.requests]).toEqual([503, 'auth_unavailable', 1]);
    await sleep(failedAt + JWKS_REFETCH_AFTER_FAILURE_MS + 100 - Date.now());
    const after = await call('GET', `export/${randomUUID()}`, token);
    expect([after.status, errorCode(after.body), keyServer.requests]).toEqual([404, 'not_found', 2]);
  });
});
