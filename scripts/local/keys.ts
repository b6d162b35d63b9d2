import { SignJWT } from 'jose';

/**
 * Local-only secrets. These are the same well-known values the Supabase CLI's
 * local stack uses, so tokens minted here also work against `supabase start`.
 * Never use them for a deployed project.
 */
export const LOCAL_JWT_SECRET = 'super-secret-jwt-token-with-at-least-32-characters-long';
const LOCAL_ISSUER = 'supabase-demo';
/**
 * Local-only CALENDAR_TOKEN_KEY, so `npm start` can connect calendars with no
 * setup: base64 of the 32 ASCII bytes "local-only-calendar-key-not-prod".
 * Anyone can read it here, so tokens sealed with it are not protected. Never
 * use it for a deployed project: set `openssl rand -base64 32` there.
 */
export const LOCAL_CALENDAR_TOKEN_KEY = 'bG9jYWwtb25seS1jYWxlbmRhci1rZXktbm90LXByb2Q=';

/** The CLI's local keys expire in 2032; ours do too so they stay interchangeable. */
const API_KEY_EXPIRY = 1983812996;

const secretBytes = (secret: string) => new TextEncoder().encode(secret);

async function signApiKey(role: 'anon' | 'service_role', secret: string): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(LOCAL_ISSUER)
    .setExpirationTime(API_KEY_EXPIRY)
    .sign(secretBytes(secret));
}

export interface LocalKeys {
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
}

export async function localKeys(secret = LOCAL_JWT_SECRET): Promise<LocalKeys> {
  return {
    jwtSecret: secret,
    anonKey: await signApiKey('anon', secret),
    serviceRoleKey: await signApiKey('service_role', secret),
  };
}

export interface TokenUser {
  id: string;
  email?: string | null;
  appMetadata?: Record<string, unknown>;
  userMetadata?: Record<string, unknown>;
}

/**
 * A session access token shaped like the ones Supabase Auth issues: `sub`,
 * `role`, `aud`, `exp`, `iat`, `email`, `app_metadata`, `user_metadata`,
 * `aal` and `session_id`, so policies and functions see what they see in production.
 */
export async function signUserToken(
  user: TokenUser,
  options: { secret?: string; expiresInSeconds?: number; now?: Date } = {},
): Promise<string> {
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const expiresIn = options.expiresInSeconds ?? 3600;
  return new SignJWT({
    role: 'authenticated',
    email: user.email ?? undefined,
    app_metadata: { provider: 'email', providers: ['email'], ...user.appMetadata },
    user_metadata: user.userMetadata ?? {},
    aal: 'aal1',
    session_id: crypto.randomUUID(),
    is_anonymous: false,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('http://127.0.0.1:54321/auth/v1')
    .setSubject(user.id)
    .setAudience('authenticated')
    .setIssuedAt(now)
    .setExpirationTime(now + expiresIn)
    .sign(secretBytes(options.secret ?? LOCAL_JWT_SECRET));
}
