/**
 * What the calendar function needs from its environment, each refused with a
 * clear 4xx/5xx answer naming what to configure instead of an opaque 500:
 * a provider whose OAuth app is not set up is 501 (this deployment does not
 * offer it); a missing token key, state secret or project URL is 503
 * `calendar_not_configured` (the deployment is incomplete). Variable names
 * are in docs/calendar.md.
 */
import type { EnvReader } from '../env.ts';
import { HttpError } from '../errors.ts';
import {
  type CalendarClient,
  calendarClientFromEnv,
  type CalendarProvider,
  calendarRedirectUri,
  type HttpOptions,
  type Keyring,
  parseKeyring,
  stateSecretFromEnv,
  TokenCryptoError,
} from '../calendar/index.ts';

export interface CalendarSettings {
  env: EnvReader;
  /** Passed to the provider clients (tests may inject one; Deno's global otherwise). */
  http: HttpOptions;
  now: () => Date;
}

const PROVIDER_NAMES: Record<CalendarProvider, string> = { google: 'Google Calendar', microsoft: 'Outlook (Microsoft)' };

/** The provider's client, or null when its OAuth app is not configured. */
export function optionalClient(settings: CalendarSettings, provider: CalendarProvider): CalendarClient | null {
  return calendarClientFromEnv(provider, settings.env, settings.http);
}

/** The provider's client; 501 when its OAuth app (client id and secret) is not configured here. */
export function requireClient(settings: CalendarSettings, provider: CalendarProvider): CalendarClient {
  const client = optionalClient(settings, provider);
  if (client) return client;
  throw new HttpError(
    501,
    'provider_not_configured',
    `${PROVIDER_NAMES[provider]} is not configured on this server (CALENDAR_${provider.toUpperCase()}_CLIENT_ID and _SECRET).`,
  );
}

const notConfigured = (message: string) => new HttpError(503, 'calendar_not_configured', message);

// Importing keys costs a few Web Crypto calls: once per distinct value for the life of the isolate.
const keyrings = new Map<string, Promise<Keyring>>();

/** The keyring tokens are sealed and opened with (CALENDAR_TOKEN_KEY); 503 when it is missing or unusable. */
export async function requireKeyring(settings: CalendarSettings): Promise<Keyring> {
  const value = settings.env('CALENDAR_TOKEN_KEY')?.trim();
  if (!value) {
    throw notConfigured(
      'Calendars are not configured on this server: CALENDAR_TOKEN_KEY (32 random bytes, base64) is not set.',
    );
  }
  let keyring = keyrings.get(value);
  if (!keyring) {
    keyring = parseKeyring(value);
    if (keyrings.size >= 8) keyrings.clear();
    keyrings.set(value, keyring);
  }
  try {
    return await keyring;
  } catch (error) {
    keyrings.delete(value);
    if (error instanceof TokenCryptoError) {
      throw notConfigured(`Calendars are not configured on this server: CALENDAR_TOKEN_KEY is not usable (${error.message})`);
    }
    throw error;
  }
}

/** The OAuth state secret (CALENDAR_STATE_SECRET, else the JWT secret); 503 when neither is a usable secret. */
export function requireStateSecret(settings: CalendarSettings): string {
  const secret = stateSecretFromEnv(settings.env);
  if (!secret || secret.length < 32) {
    throw notConfigured('Calendars are not configured on this server: CALENDAR_STATE_SECRET (at least 32 characters) is not set.');
  }
  return secret;
}

/** `<SUPABASE_URL>/functions/v1/calendar/oauth/callback`, identical at authorization and code exchange. */
export function requireRedirectUri(settings: CalendarSettings): string {
  const url = settings.env('SUPABASE_URL')?.trim();
  if (!url) throw notConfigured('Calendars are not configured on this server: SUPABASE_URL is not set.');
  return calendarRedirectUri(url);
}
