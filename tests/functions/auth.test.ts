import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticate, bearerToken, requireUser, verifyJwt } from '../../functions/_shared/auth.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { LOCAL_JWT_SECRET, localKeys, signUserToken } from '../../scripts/local/keys.ts';

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
