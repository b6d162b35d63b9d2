/**
 * The OAuth `state`: a short-lived HS256 JWT (jose) that binds the callback to
 * the user and org that started the flow, so a code cannot be planted into
 * someone else's session (CSRF) and the callback knows where to store the
 * tokens without trusting anything else in the redirect.
 *
 * Design: the state carries only ids (jti, org_id, user_id, provider, an
 * optional redirect_after) and an expiry (10 minutes by default). The PKCE
 * code_verifier is NOT in it: the caller stores the verifier server-side,
 * keyed by the jti, when the flow starts, and takes it back (marking it used)
 * at the callback. That row is also what makes a state single-use: this module
 * proves a state is ours, intact and fresh, and cannot know whether it was
 * already used. The caller MUST consume the jti atomically (e.g.
 * `update ... set used_at = now() where jti = $1 and used_at is null returning verifier`)
 * and refuse the callback when no row comes back.
 *
 * The signing key is derived from the secret the caller gives (e.g.
 * CALENDAR_STATE_SECRET, else the project's JWT secret) with HMAC-SHA256 under
 * a fixed label, and the token has its own `typ` and audience: so even when the
 * JWT secret is reused, a state never verifies as a Supabase access token and
 * an access token never verifies as a state. It has no `sub` and no `role`
 * for the same reason.
 */
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import { CALENDAR_PROVIDERS, type CalendarProvider } from './types.ts';

export const OAUTH_STATE_AUDIENCE = 'calendar-oauth-state';
export const OAUTH_STATE_TYPE = 'calendar-state+jwt';
export const OAUTH_STATE_TTL_SECONDS = 600;
const KEY_LABEL = 'calendar-oauth-state/v1';
const MAX_REDIRECT_LENGTH = 2048;

export interface OAuthStateInput {
  /** At least 32 characters: a state is only as unguessable as this. */
  secret: string;
  orgId: string;
  userId: string;
  provider: CalendarProvider;
  /**
   * Where the callback sends the browser afterwards: a path or an absolute
   * http(s) URL. The caller checks it against its own allow-list (e.g. the
   * dashboard's origin) BEFORE creating the state; the signature then keeps
   * it from being changed.
   */
  redirectAfter?: string;
  /**
   * The state's id when the caller already has one (e.g. the uuid of the row
   * the database created for this flow); default a fresh random uuid.
   */
  jti?: string;
  ttlSeconds?: number;
  now?: Date;
}

export interface OAuthStateClaims {
  /** The state's id: the key of the server-side PKCE verifier and of the single-use record. */
  jti: string;
  orgId: string;
  userId: string;
  provider: CalendarProvider;
  redirectAfter?: string;
  expiresAt: Date;
}

/**
 * `malformed`: not a JWT, or not one of our states. `tampered`: the signature
 * does not match (changed, forged, or signed with another secret: these are
 * indistinguishable). `expired`: older than its ttl. `wrong_audience`: a
 * validly signed JWT meant for something else.
 */
export type OAuthStateErrorReason = 'malformed' | 'tampered' | 'expired' | 'wrong_audience';

export class OAuthStateError extends Error {
  readonly reason: OAuthStateErrorReason;

  constructor(reason: OAuthStateErrorReason, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'OAuthStateError';
    this.reason = reason;
  }
}

const claimsSchema = z.object({
  jti: z.uuid(),
  org_id: z.string().min(1).max(200),
  user_id: z.string().min(1).max(200),
  provider: z.enum(CALENDAR_PROVIDERS),
  redirect_after: z.string().max(MAX_REDIRECT_LENGTH).optional(),
  exp: z.number().int(),
});

const keys = new Map<string, Promise<Uint8Array>>();

/**
 * The HS256 key states are signed with: HMAC-SHA256(secret, label). Exported
 * for tests and tooling that need to forge a state-shaped token.
 */
export function oauthStateSigningKey(secret: string): Promise<Uint8Array> {
  return signingKey(secret);
}

function signingKey(secret: string): Promise<Uint8Array> {
  if (secret.length < 32) throw new RangeError('The OAuth state secret must be at least 32 characters.');
  let key = keys.get(secret);
  if (!key) {
    const encoder = new TextEncoder();
    key = crypto.subtle
      .importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
      .then((hmac) => crypto.subtle.sign('HMAC', hmac, encoder.encode(KEY_LABEL)))
      .then((bytes) => new Uint8Array(bytes));
    if (keys.size >= 16) keys.clear();
    keys.set(secret, key);
  }
  return key;
}

function checkRedirect(redirectAfter: string): void {
  if (redirectAfter.length > MAX_REDIRECT_LENGTH) throw new RangeError('redirectAfter is too long.');
  if (redirectAfter.startsWith('/') && !redirectAfter.startsWith('//') && !redirectAfter.includes('\\')) return;
  let url: URL;
  try {
    url = new URL(redirectAfter);
  } catch {
    throw new RangeError('redirectAfter must be a path or an absolute http(s) URL.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new RangeError('redirectAfter must be a path or an absolute http(s) URL.');
  }
}

/** A new state; store `jti` → the PKCE verifier (unused) before sending the user to the provider. */
export async function createOAuthState(input: OAuthStateInput): Promise<{ state: string; jti: string; expiresAt: Date }> {
  const ttl = input.ttlSeconds ?? OAUTH_STATE_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 3600) throw new RangeError('ttlSeconds must be 1 to 3600.');
  if (input.redirectAfter !== undefined) checkRedirect(input.redirectAfter);
  if (input.jti !== undefined && !z.uuid().safeParse(input.jti).success) throw new RangeError('jti must be a uuid.');
  const jti = input.jti ?? crypto.randomUUID();
  const issuedAt = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const exp = issuedAt + ttl;
  const payload: Record<string, string> = { org_id: input.orgId, user_id: input.userId, provider: input.provider };
  if (input.redirectAfter !== undefined) payload.redirect_after = input.redirectAfter;
  const state = await new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: OAUTH_STATE_TYPE })
    .setJti(jti)
    .setAudience(OAUTH_STATE_AUDIENCE)
    .setIssuedAt(issuedAt)
    .setExpirationTime(exp)
    .sign(await signingKey(input.secret));
  return { state, jti, expiresAt: new Date(exp * 1000) };
}

/**
 * The claims of a state that we signed, that is intact and not expired.
 * Throws OAuthStateError otherwise. Does NOT check single use (see above).
 */
export async function verifyOAuthState(
  state: string,
  options: { secret: string; now?: Date },
): Promise<OAuthStateClaims> {
  if (typeof state !== 'string' || state.length === 0 || state.length > 4096) {
    throw new OAuthStateError('malformed', 'The OAuth state is missing or too long.');
  }
  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(state, await signingKey(options.secret), {
      algorithms: ['HS256'],
      audience: OAUTH_STATE_AUDIENCE,
      typ: OAUTH_STATE_TYPE,
      currentDate: options.now,
      requiredClaims: ['jti', 'exp', 'iat'],
    }));
  } catch (error) {
    throw stateError(error);
  }
  const claims = claimsSchema.safeParse(payload);
  if (!claims.success) throw new OAuthStateError('malformed', 'The OAuth state does not carry our claims.');
  const { jti, org_id, user_id, provider, redirect_after, exp } = claims.data;
  return {
    jti,
    orgId: org_id,
    userId: user_id,
    provider,
    ...(redirect_after === undefined ? {} : { redirectAfter: redirect_after }),
    expiresAt: new Date(exp * 1000),
  };
}

function stateError(error: unknown): OAuthStateError {
  if (error instanceof joseErrors.JWTExpired) {
    return new OAuthStateError('expired', 'The OAuth state has expired: start the connection again.', { cause: error });
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new OAuthStateError('tampered', 'The OAuth state signature is not valid.', { cause: error });
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud' || error.claim === 'typ') {
      return new OAuthStateError('wrong_audience', 'The token is not an OAuth state.', { cause: error });
    }
    return new OAuthStateError('malformed', `The OAuth state is not valid (${error.claim}).`, { cause: error });
  }
  return new OAuthStateError('malformed', 'The OAuth state is not a valid token.', { cause: error });
}
