/**
 * The calendar's settings from the environment (names in docs/calendar.md),
 * so the edge function builds its clients in one line and tests or the local
 * stack point every provider URL at a stand-in.
 */
import { jwtSecretFromEnv } from '../auth.ts';
import { type EnvReader, processEnv } from '../env.ts';
import { createGoogleCalendar, type GoogleCalendarClient, revokeGoogleToken } from './google.ts';
import type { HttpOptions } from './http.ts';
import { createMicrosoftCalendar, type MicrosoftCalendarClient } from './microsoft.ts';
import type { CalendarClient, CalendarProvider } from './types.ts';

const read = (env: EnvReader, name: string) => env(name)?.trim() || undefined;

/** The provider's client, or null when its OAuth app (client id and secret) is not configured. */
export function calendarClientFromEnv(
  provider: 'google',
  env?: EnvReader,
  http?: HttpOptions,
): GoogleCalendarClient | null;
export function calendarClientFromEnv(
  provider: 'microsoft',
  env?: EnvReader,
  http?: HttpOptions,
): MicrosoftCalendarClient | null;
export function calendarClientFromEnv(provider: CalendarProvider, env?: EnvReader, http?: HttpOptions): CalendarClient | null;
export function calendarClientFromEnv(
  provider: CalendarProvider,
  env: EnvReader = processEnv,
  http: HttpOptions = {},
): CalendarClient | null {
  if (provider === 'google') {
    const clientId = read(env, 'CALENDAR_GOOGLE_CLIENT_ID');
    const clientSecret = read(env, 'CALENDAR_GOOGLE_CLIENT_SECRET');
    if (!clientId || !clientSecret) return null;
    return createGoogleCalendar({
      ...http,
      clientId,
      clientSecret,
      accountsBaseUrl: read(env, 'CALENDAR_GOOGLE_ACCOUNTS_URL'),
      oauth2BaseUrl: read(env, 'CALENDAR_GOOGLE_OAUTH2_URL'),
      apiBaseUrl: read(env, 'CALENDAR_GOOGLE_API_URL'),
    });
  }
  const clientId = read(env, 'CALENDAR_MICROSOFT_CLIENT_ID');
  const clientSecret = read(env, 'CALENDAR_MICROSOFT_CLIENT_SECRET');
  if (!clientId || !clientSecret) return null;
  return createMicrosoftCalendar({
    ...http,
    clientId,
    clientSecret,
    tenant: read(env, 'CALENDAR_MICROSOFT_TENANT'),
    loginBaseUrl: read(env, 'CALENDAR_MICROSOFT_LOGIN_URL'),
    graphBaseUrl: read(env, 'CALENDAR_MICROSOFT_GRAPH_URL'),
  });
}

/** Revokes the grant a token belongs to; `revoked: true` once the provider confirms it is gone. */
export type GrantRevoker = (token: string) => Promise<{ revoked: boolean }>;

/**
 * How to revoke a provider's grants, configured or not: Google's revocation
 * needs no client credentials, so a grant made while the OAuth app was set
 * up is still revoked after its CALENDAR_GOOGLE_* client was removed. Null
 * for Microsoft, which offers no per-token revocation.
 */
export function calendarRevokerFromEnv(
  provider: CalendarProvider,
  env: EnvReader = processEnv,
  http: HttpOptions = {},
): GrantRevoker | null {
  if (provider === 'microsoft') return null;
  const oauth2BaseUrl = read(env, 'CALENDAR_GOOGLE_OAUTH2_URL');
  return (token) => revokeGoogleToken({ ...http, oauth2BaseUrl }, token);
}

/**
 * The secret OAuth states are signed with: CALENDAR_STATE_SECRET, else the
 * project's JWT secret (safe to share: oauth-state.ts derives its own key from
 * it). Undefined when neither is set.
 */
export function stateSecretFromEnv(env: EnvReader = processEnv): string | undefined {
  return read(env, 'CALENDAR_STATE_SECRET') ?? jwtSecretFromEnv(env);
}

/** `<SUPABASE_URL>/functions/v1/calendar/oauth/callback`: the redirect URI to register with both providers. */
export function calendarRedirectUri(supabaseUrl: string): string {
  return `${supabaseUrl.replace(/\/+$/u, '')}/functions/v1/calendar/oauth/callback`;
}

/**
 * CALENDAR_REDIRECT_ORIGINS: the origins (`https://app.example.com`, no path)
 * a connect may send the browser back to, separated by commas or spaces; the
 * first is the dashboard's, which a `redirect_to` path is resolved against.
 * Empty when unset. Throws RangeError naming an entry that is not an origin,
 * so a typo is a configuration error rather than a silently narrower list.
 */
export function redirectOriginsFromEnv(env: EnvReader = processEnv): string[] {
  const value = read(env, 'CALENDAR_REDIRECT_ORIGINS');
  if (!value) return [];
  return value.split(/[\s,]+/u).filter(Boolean).map((entry) => {
    let url: URL | undefined;
    try {
      url = new URL(entry);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== entry.replace(/\/$/u, '').toLowerCase()) {
      throw new RangeError(`CALENDAR_REDIRECT_ORIGINS: ${JSON.stringify(entry)} is not an http(s) origin (scheme, host and port only).`);
    }
    return url.origin;
  });
}
