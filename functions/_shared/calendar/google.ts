/**
 * Google Calendar through Google's OAuth 2.0 web-server flow and Calendar
 * API v3, from their public docs:
 * - authorization: GET {accounts}/o/oauth2/v2/auth (access_type=offline and
 *   prompt=consent so a refresh token comes back at every connect;
 *   include_granted_scopes; PKCE S256);
 * - tokens: POST {oauth2}/token, form-encoded (authorization_code with
 *   code_verifier; refresh_token), errors `{ error, error_description }`;
 * - revocation: POST {oauth2}/revoke with `token` (an access or a refresh
 *   token; revoking either ends the app's whole grant for that Google user,
 *   so every token our client holds for the account, in any connection, stops
 *   working: callers revoke only the account's last connection); sent in the
 *   form body rather than the query Google's curl example uses, to keep
 *   tokens out of access logs;
 * - free/busy: POST {api}/calendar/v3/freeBusy `{ timeMin, timeMax, items: [{ id }] }`
 *   → `{ calendars: { [id]: { busy: [{ start, end }], errors?: [{ domain, reason }] } } }`;
 * - events: POST/PATCH/DELETE {api}/calendar/v3/calendars/{calendarId}/events[/{eventId}]
 *   with `sendUpdates` (which only silences Google's e-mails: a guest still
 *   gets the event, and every change to it, on their own calendar, so
 *   attendees are guests only when they are to be notified, else named in the
 *   description as Graph's client does); errors `{ error: { code, message, errors: [{ domain, reason }] } }`;
 *   an insert may name the event's `id` (base32hex a-v0-9, 5-1024 characters,
 *   unique per calendar): an id already used there, by a live event or a
 *   deleted one Google keeps with status cancelled, answers 409 `duplicate`;
 *   throttling is 429, or 403 with reason rateLimitExceeded / userRateLimitExceeded.
 */
import { decodeJwt } from 'jose';
import { z } from 'zod';
import { formBody, type HttpAnswer, type HttpOptions, send, trimBase } from './http.ts';
import { tokenError, tokenSetFrom } from './oauth-token.ts';
import {
  type AuthorizationRequest,
  type BusyInterval,
  type BusyQuery,
  type BusyResult,
  type CalendarAccount,
  CalendarAuthError,
  type CalendarClient,
  type CalendarEventResult,
  type CalendarEventUpdate,
  CalendarProviderError,
  checkIdempotencyKey,
  type CodeExchange,
  type EventWriteOptions,
  type TokenSet,
} from './types.ts';
import { attendeeNote, checkEventTimes, checkRange } from './event-fields.ts';
import { formatInZone } from './zoned.ts';

export const GOOGLE_ACCOUNTS_BASE_URL = 'https://accounts.google.com';
export const GOOGLE_OAUTH2_BASE_URL = 'https://oauth2.googleapis.com';
export const GOOGLE_API_BASE_URL = 'https://www.googleapis.com';

export const GOOGLE_SCOPES = [
  'https://www.googleapis.com/auth/calendar.freebusy',
  'https://www.googleapis.com/auth/calendar.events',
  'openid',
  'email',
] as const;
/** What the calendar cannot work without (a user may untick these on Google's consent screen). */
export const GOOGLE_REQUIRED_SCOPES = GOOGLE_SCOPES.slice(0, 2);

/** Google's freeBusy takes at most 50 calendars per query (calendarExpansionMax). */
const FREEBUSY_MAX_ITEMS = 50;

export interface GoogleCalendarOptions extends HttpOptions {
  clientId: string;
  clientSecret: string;
  /** Default https://accounts.google.com (the consent screen). */
  accountsBaseUrl?: string;
  /** Default https://oauth2.googleapis.com (token and revoke). */
  oauth2BaseUrl?: string;
  /** Default https://www.googleapis.com (Calendar API). */
  apiBaseUrl?: string;
  now?: () => Date;
}

export interface GoogleFreeBusy {
  /** Busy times per calendar id asked for, as Google merged them. */
  calendars: Record<string, BusyInterval[]>;
  /** Calendars Google could not answer for (notFound, internalError...). */
  errors: { calendarId: string; reason: string }[];
}

export interface GoogleCalendarClient extends CalendarClient {
  readonly provider: 'google';
  freeBusy(accessToken: string, calendarIds: string[], timeMin: Date, timeMax: Date): Promise<GoogleFreeBusy>;
}

const instant = z
  .string()
  .refine((value) => !Number.isNaN(Date.parse(value)), 'not a date-time')
  .transform((value) => new Date(value));

const freeBusyResponse = z.object({
  calendars: z.record(
    z.string(),
    z.object({
      busy: z.array(z.object({ start: instant, end: instant })).optional(),
      errors: z.array(z.object({ domain: z.string().optional(), reason: z.string() })).optional(),
    }),
  ),
});

const apiError = z.object({
  error: z.object({
    code: z.number().optional(),
    message: z.string().optional(),
    status: z.string().optional(),
    errors: z.array(z.object({ domain: z.string().optional(), reason: z.string().optional() })).optional(),
  }),
});

const eventResponse = z.object({ id: z.string().min(1), etag: z.string().optional() });

const THROTTLE_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);

function errorReason(body: unknown): { reason?: string; status?: string; message?: string } {
  const parsed = apiError.safeParse(body);
  if (!parsed.success) return {};
  return {
    reason: parsed.data.error.errors?.[0]?.reason,
    status: parsed.data.error.status,
    message: parsed.data.error.message,
  };
}

function throttled(answer: HttpAnswer): boolean {
  if (answer.status === 429) return true;
  return answer.status === 403 && THROTTLE_REASONS.has(errorReason(answer.body).reason ?? '');
}

/** A Calendar API error answer as our error. */
function apiFailure(answer: HttpAnswer, what: string): Error {
  const { reason, message } = errorReason(answer.body);
  const detail = message ? `: ${message}` : '.';
  if (answer.status === 401) {
    return new CalendarAuthError('unauthorized', 'google', `${what} refused the access token${detail}`, {
      providerCode: reason ?? 'authError',
    });
  }
  // Only a missing scope; other 403s (PERMISSION_DENIED on a calendar the user may only read) are not fixed by reconnecting.
  if (answer.status === 403 && reason === 'insufficientPermissions') {
    return new CalendarAuthError('insufficient_scope', 'google', `${what} needs a permission the user did not grant${detail}`, {
      providerCode: reason,
    });
  }
  return new CalendarProviderError('google', `${what} failed with ${answer.status}${detail}`, {
    status: answer.status,
    retryable: answer.status === 408 || answer.status >= 500,
    providerCode: reason,
  });
}

/** Who connected, from the ID token Google returns with `openid email`. */
function accountFromIdToken(idToken: string | undefined): CalendarAccount | undefined {
  if (!idToken) return undefined;
  try {
    // Not verified: it came straight from Google's token endpoint over TLS in
    // answer to our own code exchange (OpenID Connect Core §3.1.3.7 allows
    // that), and it names the account only; it grants nothing.
    const claims = decodeJwt(idToken);
    if (typeof claims.sub !== 'string') return undefined;
    return { id: claims.sub, ...(typeof claims.email === 'string' ? { email: claims.email } : {}) };
  } catch {
    return undefined;
  }
}

function eventTime(instantValue: Date, timeZone: string) {
  return { dateTime: formatInZone(instantValue, timeZone), timeZone };
}

/**
 * An insert or patch body. Guests are the attendees to notify that have an
 * e-mail (Google requires one); the others are named in the description. An
 * insert without guests has no attendees field; a patch that gives attendees
 * sends the guests, none included, so guests an earlier version invited are
 * taken off.
 */
function eventBody(changes: CalendarEventUpdate, writeOptions: EventWriteOptions | undefined, insert: boolean): Record<string, unknown> {
  checkEventTimes(changes);
  const body: Record<string, unknown> = {};
  if (changes.summary !== undefined) body.summary = changes.summary;
  const notify = writeOptions?.notifyAttendees ?? false;
  const guests = notify ? (changes.attendees ?? []).filter((attendee) => attendee.email) : [];
  const named = (changes.attendees ?? []).filter((attendee) => !guests.includes(attendee));
  if (changes.description !== undefined || named.length > 0) {
    body.description = [changes.description, attendeeNote(named)].filter(Boolean).join('\n\n');
  }
  if (changes.start && changes.end && changes.timeZone) {
    body.start = eventTime(changes.start, changes.timeZone);
    body.end = eventTime(changes.end, changes.timeZone);
  }
  if (changes.attendees !== undefined && (guests.length > 0 || !insert)) {
    body.attendees = guests.map((attendee) => ({ email: attendee.email, ...(attendee.name ? { displayName: attendee.name } : {}) }));
  }
  return body;
}

/**
 * Google's revocation of a grant by one of its tokens. It takes no client
 * credentials, so a grant is revoked even where the OAuth app is no longer
 * configured (calendarRevokerFromEnv).
 */
export async function revokeGoogleToken(
  options: HttpOptions & Pick<GoogleCalendarOptions, 'oauth2BaseUrl'>,
  tokenValue: string,
): Promise<{ revoked: boolean }> {
  const what = 'Google revoke';
  const answer = await send('google', options, {
    what,
    url: `${trimBase(options.oauth2BaseUrl ?? GOOGLE_OAUTH2_BASE_URL)}/revoke`,
    init: {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: formBody({ token: tokenValue }),
    },
    throttled: (response) => response.status === 429,
  });
  if (answer.status === 200) return { revoked: true };
  // invalid_token: already revoked or expired; the end state is the one wanted.
  const code = z.object({ error: z.string() }).safeParse(answer.body);
  if (answer.status === 400 && code.success && code.data.error === 'invalid_token') return { revoked: true };
  throw tokenError('google', answer, what);
}

export function createGoogleCalendar(options: GoogleCalendarOptions): GoogleCalendarClient {
  const accounts = trimBase(options.accountsBaseUrl ?? GOOGLE_ACCOUNTS_BASE_URL);
  const oauth2 = trimBase(options.oauth2BaseUrl ?? GOOGLE_OAUTH2_BASE_URL);
  const api = trimBase(options.apiBaseUrl ?? GOOGLE_API_BASE_URL);
  const now = options.now ?? (() => new Date());

  async function token(what: string, fields: Record<string, string | undefined>, previousRefreshToken?: string) {
    const answer = await send('google', options, {
      what,
      url: `${oauth2}/token`,
      init: {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: formBody({ ...fields, client_id: options.clientId, client_secret: options.clientSecret }),
      },
      throttled: (response) => response.status === 429,
    });
    if (answer.status !== 200) throw tokenError('google', answer, what);
    return tokenSetFrom('google', answer, what, { now: now(), previousRefreshToken });
  }

  async function callApi(
    what: string,
    accessToken: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<HttpAnswer> {
    return send('google', options, {
      what,
      url: `${api}${path}`,
      init: {
        method,
        headers: {
          authorization: `Bearer ${accessToken}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
      throttled,
    });
  }

  function eventsPath(calendarId: string, eventId?: string): string {
    const base = `/calendar/v3/calendars/${encodeURIComponent(calendarId)}/events`;
    return eventId === undefined ? base : `${base}/${encodeURIComponent(eventId)}`;
  }

  const sendUpdates = (writeOptions?: EventWriteOptions) => (writeOptions?.notifyAttendees ? 'all' : 'none');

  function eventResult(answer: HttpAnswer, what: string): CalendarEventResult {
    if (answer.status !== 200) throw apiFailure(answer, what);
    const parsed = eventResponse.safeParse(answer.body);
    if (!parsed.success) {
      throw new CalendarProviderError('google', `${what} answered without an event id.`, {
        status: answer.status,
        retryable: false,
      });
    }
    return { externalId: parsed.data.id, ...(parsed.data.etag ? { etag: parsed.data.etag } : {}) };
  }

  async function freeBusy(accessToken: string, calendarIds: string[], timeMin: Date, timeMax: Date) {
    checkRange(timeMin, timeMax);
    const ids = [...new Set(calendarIds)];
    const result: GoogleFreeBusy = { calendars: {}, errors: [] };
    for (let offset = 0; offset < ids.length; offset += FREEBUSY_MAX_ITEMS) {
      const items = ids.slice(offset, offset + FREEBUSY_MAX_ITEMS);
      const what = 'Google freeBusy';
      const answer = await callApi(what, accessToken, 'POST', '/calendar/v3/freeBusy', {
        timeMin: timeMin.toISOString(),
        timeMax: timeMax.toISOString(),
        items: items.map((id) => ({ id })),
      });
      if (answer.status !== 200) throw apiFailure(answer, what);
      const parsed = freeBusyResponse.safeParse(answer.body);
      if (!parsed.success) {
        throw new CalendarProviderError('google', `${what} answered ${answer.status} in an unexpected shape.`, {
          status: answer.status,
          retryable: false,
        });
      }
      for (const id of items) {
        const calendar = parsed.data.calendars[id];
        if (!calendar) {
          result.errors.push({ calendarId: id, reason: 'missing' });
        } else if (calendar.errors && calendar.errors.length > 0) {
          // Busy is empty when Google could not compute it: that calendar is unknown, not free.
          result.errors.push({ calendarId: id, reason: calendar.errors.map((error) => error.reason).join(', ') });
        } else {
          result.calendars[id] = (calendar.busy ?? []).filter((interval) => interval.end > interval.start);
        }
      }
    }
    return result;
  }

  async function deleteEvent(accessToken: string, externalId: string, writeOptions?: EventWriteOptions): Promise<{ deleted: boolean }> {
    const what = 'Google events.delete';
    const path = `${eventsPath(writeOptions?.calendarId ?? 'primary', externalId)}?sendUpdates=${sendUpdates(writeOptions)}`;
    const answer = await callApi(what, accessToken, 'DELETE', path);
    if (answer.status === 204 || answer.status === 200) return { deleted: true };
    // 404: never there or purged; 410: already deleted. Either way it is gone.
    if (answer.status === 404 || answer.status === 410) return { deleted: false };
    throw apiFailure(answer, what);
  }

  return {
    provider: 'google',
    scopes: GOOGLE_SCOPES,

    authorizationUrl(request: AuthorizationRequest): string {
      const params = new URLSearchParams({
        client_id: options.clientId,
        redirect_uri: request.redirectUri,
        response_type: 'code',
        scope: GOOGLE_SCOPES.join(' '),
        access_type: 'offline',
        prompt: 'consent',
        include_granted_scopes: 'true',
        state: request.state,
        code_challenge: request.codeChallenge,
        code_challenge_method: 'S256',
      });
      if (request.loginHint) params.set('login_hint', request.loginHint);
      return `${accounts}/o/oauth2/v2/auth?${params}`;
    },

    async exchangeCode(exchange: CodeExchange): Promise<TokenSet> {
      const { tokens, idToken } = await token('Google token exchange', {
        grant_type: 'authorization_code',
        code: exchange.code,
        code_verifier: exchange.codeVerifier,
        redirect_uri: exchange.redirectUri,
      });
      const account = accountFromIdToken(idToken);
      return account ? { ...tokens, account } : tokens;
    },

    async refresh(refreshToken: string): Promise<TokenSet> {
      const { tokens } = await token(
        'Google token refresh',
        { grant_type: 'refresh_token', refresh_token: refreshToken },
        refreshToken,
      );
      return tokens;
    },

    revoke: (tokenValue: string) => revokeGoogleToken(options, tokenValue),

    freeBusy,

    async busyTimes(accessToken: string, query: BusyQuery): Promise<BusyResult> {
      const ids = query.calendarIds && query.calendarIds.length > 0 ? query.calendarIds : ['primary'];
      const result = await freeBusy(accessToken, ids, query.timeMin, query.timeMax);
      return { busy: Object.values(result.calendars).flat(), errors: result.errors };
    },

    async createEvent(accessToken, event, writeOptions) {
      const what = 'Google events.insert';
      if (!event.start || !event.end || !event.timeZone) throw new TypeError('An event needs start, end and timeZone.');
      const calendarId = writeOptions?.calendarId ?? 'primary';
      const key = checkIdempotencyKey(writeOptions?.idempotencyKey);
      const body = eventBody(event, writeOptions, true);
      const path = `${eventsPath(calendarId)}?sendUpdates=${sendUpdates(writeOptions)}`;
      const answer = await callApi(what, accessToken, 'POST', path, key === undefined ? body : { id: key, ...body });
      if (key === undefined || answer.status !== 409 || errorReason(answer.body).reason !== 'duplicate') {
        return eventResult(answer, what);
      }
      // The id is taken by this very event: an earlier attempt whose answer was lost, or a
      // deleted one Google keeps. Bring that one to this version, and back if it was deleted.
      const repeat = 'Google events.patch (repeated insert)';
      const eventPath = `${eventsPath(calendarId, key)}?sendUpdates=${sendUpdates(writeOptions)}`;
      return eventResult(await callApi(repeat, accessToken, 'PATCH', eventPath, { ...body, status: 'confirmed' }), repeat);
    },

    async updateEvent(accessToken, externalId, changes, writeOptions) {
      const what = 'Google events.patch';
      const path = `${eventsPath(writeOptions?.calendarId ?? 'primary', externalId)}?sendUpdates=${sendUpdates(writeOptions)}`;
      return eventResult(await callApi(what, accessToken, 'PATCH', path, eventBody(changes, writeOptions, false)), what);
    },

    deleteEventByKey(accessToken, key, writeOptions) {
      return deleteEvent(accessToken, checkIdempotencyKey(key), writeOptions);
    },

    deleteEvent,
  };
}
