import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWKSCacheInput,
  jwksCache,
  type JWSHeaderParameters,
  jwtVerify,
  type JWTVerifyGetKey,
  type LocalJWKSet,
  type RemoteJWKSet,
} from 'jose';
import { z } from 'zod';
import { type EnvReader, processEnv } from './env.ts';
import { HttpError } from './errors.ts';
import { legacyApiKeysDisabled } from './service-keys.ts';

/** The claims Supabase Auth puts in its tokens; unknown extra claims are kept. */
const claimsSchema = z.looseObject({
  role: z.string(),
  exp: z.number(),
  sub: z.string().optional(),
  aud: z.union([z.string(), z.array(z.string())]).optional(),
  iss: z.string().optional(),
  iat: z.number().optional(),
  email: z.string().optional(),
  phone: z.string().optional(),
  app_metadata: z.record(z.string(), z.unknown()).optional(),
  user_metadata: z.record(z.string(), z.unknown()).optional(),
  aal: z.string().optional(),
  session_id: z.string().optional(),
  is_anonymous: z.boolean().optional(),
});

export type JwtClaims = z.infer<typeof claimsSchema>;
export type UserClaims = JwtClaims & { role: 'authenticated'; sub: string };

export interface AuthOptions {
  env?: EnvReader;
}

const unauthorized = (code: string, message: string) =>
  new HttpError(401, code, message, { 'www-authenticate': `Bearer error="invalid_token"` });

/** The token from an `Authorization: Bearer <token>` header value. */
export function bearerToken(header: string | null | undefined): string {
  if (!header || header.trim() === '') {
    throw new HttpError(401, 'missing_authorization', 'The Authorization header is missing.', {
      'www-authenticate': 'Bearer',
    });
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthorized('invalid_token', "The Authorization header must be 'Bearer <token>'.");
  return match[1];
}

/**
 * After a failed fetch of a JWKS, how long its URL is not fetched again: a key server answering 429 or 5xx is
 * asked once per 5 s per isolate, not on every request. Meanwhile tokens are checked against the last key set
 * fetched, and one it has no key for is 503 with Retry-After.
 */
export const JWKS_REFETCH_AFTER_FAILURE_MS = 5_000;

/** One per JWKS URL for the life of the isolate. */
interface JwksSource {
  /** jose's cached keys: fetched again once 10 minutes old, or (at most every 30 s) for a kid not among them. */
  remote: RemoteJWKSet;
  /** The last key set fetched, which jose writes on every successful fetch ({} before the first). */
  cache: JWKSCacheInput;
  /** `cache.jwks` as a key resolver, built when a fetch has failed. */
  lastGood?: { jwks: JSONWebKeySet; keys: LocalJWKSet };
  /** When a fetch last failed, unless a key came from jose since. */
  failedAt?: number;
}

const jwksSources = new Map<string, JwksSource>();

function jwksSource(supabaseUrl: string): JwksSource {
  const url = new URL('/auth/v1/.well-known/jwks.json', supabaseUrl).href;
  let source = jwksSources.get(url);
  if (!source) {
    const cache: JWKSCacheInput = {};
    source = { remote: createRemoteJWKSet(new URL(url), { [jwksCache]: cache }), cache };
    jwksSources.set(url, source);
  }
  return source;
}

/**
 * The key for a token from the project's JWKS. When fetching the keys fails (the cached set is stale, or lacks
 * the token's kid), the last set fetched is used: an outage of the key server or its 429 does not stop tokens of
 * keys it published before.
 */
async function jwksKey(source: JwksSource, header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
  if (source.failedAt === undefined || Date.now() - source.failedAt >= JWKS_REFETCH_AFTER_FAILURE_MS) {
    try {
      const key = await source.remote(header, token);
      source.failedAt = undefined;
      return key;
    } catch (error) {
      if (isTokensFault(error)) throw error;
      // The key server's fault (a 429 or 5xx, a body that is no key set, a timeout, the network).
      console.error('fetching the JWKS failed', error);
      source.failedAt = Date.now();
    }
  }
  return await lastGoodKey(source, source.failedAt, header, token);
}

/**
 * The token's key from the last key set fetched, or 503 `auth_unavailable` when there is none (no fetch has
 * succeeded) or it has no key for the token's kid (it may be in the set that could not be fetched): a 401
 * would make clients sign their users out over an outage.
 */
async function lastGoodKey(
  source: JwksSource,
  failedAt: number,
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
): Promise<CryptoKey> {
  const retryAfterSeconds = Math.max(1, Math.ceil((failedAt + JWKS_REFETCH_AFTER_FAILURE_MS - Date.now()) / 1000));
  const unavailable = new HttpError(503, 'auth_unavailable', 'The signing keys could not be fetched; try again.', {
    'retry-after': String(retryAfterSeconds),
  });
  const jwks = 'jwks' in source.cache ? source.cache.jwks : undefined;
  if (!jwks) throw unavailable;
  if (source.lastGood?.jwks !== jwks) source.lastGood = { jwks, keys: createLocalJWKSet(jwks) };
  try {
    return await source.lastGood.keys(header, token);
  } catch (error) {
    if (error instanceof errors.JWKSNoMatchingKey) throw unavailable;
    throw error;
  }
}

/**
 * The project's legacy JWT secret: SUPABASE_JWT_SECRET where the platform or
 * the local stack provides it, else JWT_SECRET. Hosted projects do not give
 * functions their JWT secret, and `supabase secrets set` refuses names
 * starting with SUPABASE_, so a project still signing with the legacy secret
 * sets JWT_SECRET.
 */
export function jwtSecretFromEnv(env: EnvReader): string | undefined {
  return env('SUPABASE_JWT_SECRET') || env('JWT_SECRET') || undefined;
}

/** No key of a fetched set fits the token's header: the token is at fault, not the key server. */
function isTokensFault(error: unknown): boolean {
  return error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys ||
    error instanceof errors.JOSENotSupported;
}

/**
 * Legacy HS256 tokens are checked with the project's JWT secret, asymmetric ones
 * (Supabase's newer signing keys) with the project's published JWKS, the same
 * split the Supabase functions gateway makes.
 */
function keyResolver(env: EnvReader): JWTVerifyGetKey {
  return async (header, token) => {
    if (header.alg === 'HS256') {
      const secret = jwtSecretFromEnv(env);
      if (!secret) throw unauthorized('invalid_token', 'HS256 tokens are not accepted: no JWT secret is configured.');
      return new TextEncoder().encode(secret);
    }
    const supabaseUrl = env('SUPABASE_URL');
    if (!supabaseUrl) throw new Error('SUPABASE_URL is not set, so the JWKS cannot be fetched');
    return await jwksKey(jwksSource(supabaseUrl), header, token);
  };
}

/**
 * Verifies a Supabase JWT (signature, `exp` required and not past) and returns
 * its claims. Tokens for signed-in users (`role: authenticated`) must also carry
 * `aud: authenticated`; API keys (anon, service_role) carry no audience. Once
 * legacy API keys are off, an HS256 token is only ever a user's session: the
 * legacy anon and service_role keys are JWTs signed with the same secret and
 * valid for years, so they are refused even while the secret is still set.
 */
export async function verifyJwt(token: string, options: AuthOptions = {}): Promise<JwtClaims> {
  const env = options.env ?? processEnv;
  let payload: unknown;
  let alg: string;
  try {
    ({ payload, protectedHeader: { alg } } = await jwtVerify(token, keyResolver(env), {
      algorithms: ['HS256', 'ES256', 'RS256'],
      requiredClaims: ['exp'],
    }));
  } catch (error) {
    if (error instanceof HttpError) throw error;
    if (error instanceof errors.JWTExpired) throw unauthorized('token_expired', 'The token has expired.');
    if (error instanceof errors.JOSEError) throw unauthorized('invalid_token', 'The token is invalid.');
    throw error;
  }
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) throw unauthorized('invalid_token', 'The token claims are malformed.');
  const claims = parsed.data;
  if (claims.role === 'authenticated') {
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes('authenticated')) {
      throw unauthorized('invalid_token', 'The token audience is not accepted.');
    }
  }
  if (alg === 'HS256' && legacyApiKeysDisabled(env) && (claims.role !== 'authenticated' || !claims.sub)) {
    throw unauthorized('invalid_token', 'Legacy API keys are turned off: only user sessions are accepted as HS256 tokens.');
  }
  return claims;
}

/** The verified claims of the request's bearer token (a user token or an API key). */
export async function authenticate(req: Request, options: AuthOptions = {}): Promise<JwtClaims> {
  return await verifyJwt(bearerToken(req.headers.get('authorization')), options);
}

/** Like `authenticate`, but only a signed-in user's token is accepted. */
export async function requireUser(req: Request, options: AuthOptions = {}): Promise<UserClaims> {
  const claims = await authenticate(req, options);
  if (claims.role !== 'authenticated' || !claims.sub) {
    throw unauthorized('user_required', 'This endpoint needs a signed-in user token.');
  }
  return { ...claims, role: 'authenticated', sub: claims.sub };
}
