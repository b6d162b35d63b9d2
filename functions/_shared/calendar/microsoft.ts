/**
 * Outlook calendars through the Microsoft identity platform (v2.0 endpoints)
 * and Microsoft Graph v1.0, from their public docs:
 * - authorization: GET {login}/{tenant}/oauth2/v2.0/authorize
 *   (response_mode=query, PKCE S256, scopes `offline_access User.Read Calendars.ReadWrite`);
 * - tokens: POST {login}/{tenant}/oauth2/v2.0/token, form-encoded; errors
 *   `{ error, error_description: 'AADSTS70008: ...', error_codes: [70008], trace_id, correlation_id }`.
 *   invalid_grant covers AADSTS70008 (expired code or refresh token),
 *   AADSTS50173 (grant revoked, e.g. password change), AADSTS700082 (refresh
 *   token expired from inactivity) and AADSTS54005 (code already redeemed);
 *   all of them, and interaction_required / consent_required, become
 *   CalendarAuthError('invalid_grant');
 * - revocation: there is no endpoint that revokes one refresh token. The
 *   broad `POST /me/revokeSignInSessions` signs the user out of every app and
 *   device, so it is never called: a disconnect deletes our tokens (the user
 *   can remove the app at myapps.microsoft.com / account.live.com/consent),
 *   and revoke() answers `{ revoked: false }`;
 * - busy times: GET {graph}/v1.0/me/calendarView (the default calendar) or
 *   /v1.0/me/calendars/{id}/calendarView (the connection's chosen one, the
 *   calendar its events are written to) ?startDateTime&endDateTime
 *   &$select=start,end,showAs,isCancelled,isAllDay,originalStartTimeZone&$top=100
 *   with `Prefer: outlook.timezone="UTC"`, following `@odata.nextLink` to the
 *   last page; events shown as free (or working elsewhere) and cancelled ones
 *   are not busy. Graph answers an all-day event with its dates alone,
 *   labelled UTC whatever the Prefer zone (`2026-11-26T00:00:00.0000000` to
 *   the next day's midnight), so such an entry is read as whole days in its
 *   originalStartTimeZone;
 * - events: POST /v1.0/me/events (or /me/calendars/{id}/events), PATCH and
 *   DELETE /v1.0/me/events/{id}; errors `{ error: { code, message } }`;
 *   start and end are dateTimeTimeZone, a wall time and a Windows zone name
 *   (a zone outside Windows' names and the few IANA ones Graph lists is
 *   refused 400 TimeZoneNotSupportedException);
 *   a create may carry a `transactionId`: Graph answers a repeat of that
 *   create with the event it made, and refuses a transactionId already used
 *   for a different event with ErrorDuplicateTransactionId; the event is
 *   then found by a singleValueExtendedProperty set at the create,
 *   GET .../events?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '...' and ep/value eq '...');
 *   throttling is 429, or 503, with Retry-After.
 */
import { z } from 'zod';
import { formBody, type HttpAnswer, type HttpOptions, send, trimBase } from './http.ts';
import { tokenError, tokenSetFrom } from './oauth-token.ts';
import { attendeeNote, checkEventTimes, checkRange } from './event-fields.ts';
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
import { rulesOfWindowsZone, windowsZoneOf } from './windows-zones.ts';
import { instantFromWallTime, isValidTimeZone, wallTime, wallTimeReadings } from './zoned.ts';

export const MICROSOFT_LOGIN_BASE_URL = 'https://login.microsoftonline.com';
export const MICROSOFT_GRAPH_BASE_URL = 'https://graph.microsoft.com';
export const MICROSOFT_SCOPES = ['offline_access', 'User.Read', 'Calendars.ReadWrite'] as const;

/** Graph's calendarView pages hold at most this many events when asked with $top. */
const PAGE_SIZE = 100;

export interface MicrosoftCalendarOptions extends HttpOptions {
  clientId: string;
  clientSecret: string;
  /** 'common' (work, school and personal accounts; the default), 'organizations', 'consumers' or a tenant id. */
  tenant?: string;
  /** Default https://login.microsoftonline.com. */
  loginBaseUrl?: string;
  /** Default https://graph.microsoft.com. */
  graphBaseUrl?: string;
  /** Pages of calendarView followed at most (default 50: 5,000 events), against a server that never stops paging. */
  maxPages?: number;
  now?: () => Date;
}

/** One calendarView entry, as read. */
export interface GraphCalendarViewEvent {
  start: Date;
  end: Date;
  showAs: string;
  isCancelled: boolean;
  isAllDay: boolean;
}

export interface MicrosoftCalendarClient extends CalendarClient {
  readonly provider: 'microsoft';
  /**
   * Every event of the calendar ('primary' or none: the user's default one)
   * overlapping [timeMin, timeMax), all pages; all-day events as whole days in
   * their own zone, else in `allDayZone` (default UTC).
   */
  calendarView(
    accessToken: string,
    timeMin: Date,
    timeMax: Date,
    calendarId?: string,
    allDayZone?: string,
  ): Promise<GraphCalendarViewEvent[]>;
}

const UTC_NAMES = new Set(['utc', 'etc/utc', 'coordinated universal time', 'gmt', 'etc/gmt']);

const dateTimeTimeZone = z.object({ dateTime: z.string(), timeZone: z.string().optional() });

const calendarViewPage = z.object({
  value: z.array(
    z.object({
      start: dateTimeTimeZone,
      end: dateTimeTimeZone,
      showAs: z.string().optional(),
      isCancelled: z.boolean().optional(),
      isAllDay: z.boolean().optional(),
      originalStartTimeZone: z.string().nullish(),
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

const graphError = z.object({ error: z.object({ code: z.string().optional(), message: z.string().optional() }) });
const eventResponse = z.object({ id: z.string().min(1), '@odata.etag': z.string().optional() });
const eventIds = z.object({ value: z.array(z.object({ id: z.string().min(1) })) });

/** Our extended property (a named String property in our own GUID's set) holding a create's idempotency key. */
const GRAPH_KEY_PROPERTY = 'String {5d0c2a4e-8f13-4b6a-9e57-2c41b7d3f806} Name idempotencyKey';

const me = z.object({
  id: z.string().min(1),
  mail: z.string().nullish(),
  userPrincipalName: z.string().nullish(),
});

/** showAs values that leave the person bookable. */
const NOT_BUSY = new Set(['free', 'workingElsewhere']);

/** The IANA zone whose rules a Graph zone name (UTC, Windows or IANA) stands for; undefined for one we cannot read. */
function rulesOfGraphZone(zone: string): string | undefined {
  if (UTC_NAMES.has(zone.toLowerCase())) return 'UTC';
  return rulesOfWindowsZone(zone) ?? (isValidTimeZone(zone) ? zone : undefined);
}

/**
 * A Graph dateTimeTimeZone as an instant: UTC as we ask for it, or a Windows
 * or IANA zone should Graph answer in one.
 */
function toInstant(value: z.infer<typeof dateTimeTimeZone>): Date {
  const zone = value.timeZone ?? 'UTC';
  const rules = rulesOfGraphZone(zone);
  if (rules !== undefined) return instantFromWallTime(value.dateTime, rules);
  throw new CalendarProviderError('microsoft', `Graph answered in the time zone ${JSON.stringify(zone)}, not UTC.`, {
    status: 200,
    retryable: false,
  });
}

/** The start of an all-day entry's date (its dateTime's date part, whatever zone it is labelled with) in `zone`. */
function localMidnight(value: z.infer<typeof dateTimeTimeZone>, zone: string): Date {
  return instantFromWallTime(`${value.dateTime.slice(0, 10)}T00:00:00`, zone);
}

/**
 * An instant as Graph's dateTimeTimeZone: the wall time in the event's zone
 * under that zone's Windows name (Europe/Madrid → Romance Standard Time;
 * Graph refuses most IANA names with TimeZoneNotSupportedException), so
 * Outlook shows the event in that zone. The wall time is read back in the
 * zone whose rules the Windows one follows, and sent in UTC instead when
 * that does not give this instant alone: in the hour an autumn change
 * repeats (02:30 in Berlin on 2026-10-25 happens twice, and Graph could read
 * the other one, an hour off), for a zone Windows has no name for
 * (Antarctica/Troll), or should the zone's rules part from the Windows
 * zone's after the table was made.
 */
function graphDateTime(instant: Date, timeZone: string): { dateTime: string; timeZone: string } {
  const windows = windowsZoneOf(timeZone);
  const rules = windows === undefined ? undefined : rulesOfWindowsZone(windows);
  if (windows !== undefined && rules !== undefined) {
    const wall = wallTime(instant, timeZone);
    const readings = wallTimeReadings(wall, rules);
    const whole = Math.floor(instant.getTime() / 1000) * 1000;
    if (readings.length === 1 && readings[0]?.getTime() === whole) return { dateTime: wall, timeZone: windows };
  }
  return { dateTime: wallTime(instant, 'UTC'), timeZone: 'UTC' };
}

function graphFailure(answer: HttpAnswer, what: string): Error {
  const parsed = graphError.safeParse(answer.body);
  const code = parsed.success ? parsed.data.error.code : undefined;
  const message = parsed.success ? parsed.data.error.message : undefined;
  const detail = message ? `: ${message}` : '.';
  if (answer.status === 401) {
    return new CalendarAuthError('unauthorized', 'microsoft', `${what} refused the access token${detail}`, {
      providerCode: code,
    });
  }
  if (answer.status === 403 && code === 'ErrorAccessDenied') {
    return new CalendarAuthError('insufficient_scope', 'microsoft', `${what} was denied${detail}`, { providerCode: code });
  }
  return new CalendarProviderError('microsoft', `${what} failed with ${answer.status}${code ? ` ${code}` : ''}${detail}`, {
    status: answer.status,
    retryable: answer.status === 408 || answer.status >= 500,
    providerCode: code,
  });
}

export function createMicrosoftCalendar(options: MicrosoftCalendarOptions): MicrosoftCalendarClient {
  const tenant = options.tenant?.trim() || 'common';
  if (!/^[A-Za-z0-9.-]+$/u.test(tenant)) throw new RangeError(`Not a tenant: ${JSON.stringify(tenant)}.`);
  const login = `${trimBase(options.loginBaseUrl ?? MICROSOFT_LOGIN_BASE_URL)}/${tenant}/oauth2/v2.0`;
  const graph = trimBase(options.graphBaseUrl ?? MICROSOFT_GRAPH_BASE_URL);
  const graphOrigin = new URL(graph).origin;
  const maxPages = options.maxPages ?? 50;
  const now = options.now ?? (() => new Date());
  const scope = MICROSOFT_SCOPES.join(' ');

  async function token(what: string, fields: Record<string, string | undefined>, previousRefreshToken?: string) {
    const answer = await send('microsoft', options, {
      what,
      url: `${login}/token`,
      init: {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: formBody({ ...fields, client_id: options.clientId, client_secret: options.clientSecret, scope }),
      },
      throttled: (response) => response.status === 429,
    });
    if (answer.status !== 200) throw tokenError('microsoft', answer, what);
    return tokenSetFrom('microsoft', answer, what, { now: now(), previousRefreshToken }).tokens;
  }

  function callGraph(
    what: string,
    accessToken: string,
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpAnswer> {
    // POST creates: a 503 may come after Graph acted, so only 429 (never acted on) is retried for it.
    const idempotent = method !== 'POST';
    return send('microsoft', options, {
      what,
      url,
      init: {
        method,
        headers: {
          authorization: `Bearer ${accessToken}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      },
      throttled: (answer) => answer.status === 429 || (idempotent && answer.status === 503),
    });
  }

  /** Who connected (User.Read): the id keys the connection, the e-mail is shown; undefined when Graph did not say. */
  async function account(accessToken: string): Promise<CalendarAccount | undefined> {
    try {
      const answer = await callGraph('Graph /me', accessToken, 'GET', `${graph}/v1.0/me?$select=id,mail,userPrincipalName`);
      const parsed = me.safeParse(answer.body);
      if (answer.status !== 200 || !parsed.success) return undefined;
      const email = parsed.data.mail ?? parsed.data.userPrincipalName ?? undefined;
      return { id: parsed.data.id, ...(email ? { email } : {}) };
    } catch {
      return undefined;
    }
  }

  async function calendarView(
    accessToken: string,
    timeMin: Date,
    timeMax: Date,
    calendarId?: string,
    allDayZone?: string,
  ): Promise<GraphCalendarViewEvent[]> {
    checkRange(timeMin, timeMax);
    const what = 'Graph calendarView';
    const fallbackZone = (allDayZone === undefined ? undefined : rulesOfGraphZone(allDayZone)) ?? 'UTC';
    const params = new URLSearchParams({
      startDateTime: timeMin.toISOString(),
      endDateTime: timeMax.toISOString(),
      $select: 'start,end,showAs,isCancelled,isAllDay,originalStartTimeZone',
      $top: String(PAGE_SIZE),
    });
    const calendar = calendarId === undefined || calendarId === 'primary'
      ? '/v1.0/me'
      : `/v1.0/me/calendars/${encodeURIComponent(calendarId)}`;
    let url: string | undefined = `${graph}${calendar}/calendarView?${params}`;
    const events: GraphCalendarViewEvent[] = [];
    for (let page = 0; url !== undefined; page += 1) {
      if (page >= maxPages) {
        throw new CalendarProviderError('microsoft', `${what} had more than ${maxPages} pages.`, {
          status: 200,
          retryable: false,
        });
      }
      const answer = await callGraph(what, accessToken, 'GET', url, undefined, { prefer: 'outlook.timezone="UTC"' });
      if (answer.status !== 200) throw graphFailure(answer, what);
      const parsed = calendarViewPage.safeParse(answer.body);
      if (!parsed.success) {
        throw new CalendarProviderError('microsoft', `${what} answered a page in an unexpected shape.`, {
          status: answer.status,
          retryable: false,
        });
      }
      for (const item of parsed.data.value) {
        const isAllDay = item.isAllDay ?? false;
        const ownZone = item.originalStartTimeZone ? rulesOfGraphZone(item.originalStartTimeZone) : undefined;
        const dayZone = ownZone ?? fallbackZone;
        events.push({
          start: isAllDay ? localMidnight(item.start, dayZone) : toInstant(item.start),
          end: isAllDay ? localMidnight(item.end, dayZone) : toInstant(item.end),
          showAs: item.showAs ?? 'busy',
          isCancelled: item.isCancelled ?? false,
          isAllDay,
        });
      }
      const next = parsed.data['@odata.nextLink'];
      // The bearer token follows the link: only ever to Graph itself.
      if (next !== undefined && new URL(next, graph).origin !== graphOrigin) {
        throw new CalendarProviderError('microsoft', `${what} sent a next link to another host.`, {
          status: 200,
          retryable: false,
        });
      }
      url = next === undefined ? undefined : new URL(next, graph).toString();
    }
    return events;
  }

  function eventBody(changes: CalendarEventUpdate, writeOptions?: EventWriteOptions): Record<string, unknown> {
    checkEventTimes(changes);
    const body: Record<string, unknown> = {};
    if (changes.summary !== undefined) body.subject = changes.summary;
    const notify = writeOptions?.notifyAttendees ?? false;
    const invited = notify ? (changes.attendees ?? []).filter((attendee) => attendee.email) : [];
    const named = (changes.attendees ?? []).filter((attendee) => !invited.includes(attendee));
    if (changes.description !== undefined || named.length > 0) {
      const content = [changes.description, attendeeNote(named)].filter(Boolean).join('\n\n');
      body.body = { contentType: 'text', content };
    }
    if (changes.start && changes.end && changes.timeZone) {
      body.start = graphDateTime(changes.start, changes.timeZone);
      body.end = graphDateTime(changes.end, changes.timeZone);
    }
    if (changes.attendees !== undefined) {
      body.attendees = invited.map((attendee) => ({
        emailAddress: { address: attendee.email, ...(attendee.name ? { name: attendee.name } : {}) },
        type: 'required',
      }));
    }
    return body;
  }

  function eventResult(answer: HttpAnswer, what: string, expected: number): CalendarEventResult {
    if (answer.status !== expected) throw graphFailure(answer, what);
    const parsed = eventResponse.safeParse(answer.body);
    if (!parsed.success) {
      throw new CalendarProviderError('microsoft', `${what} answered without an event id.`, {
        status: answer.status,
        retryable: false,
      });
    }
    const etag = parsed.data['@odata.etag'];
    return { externalId: parsed.data.id, ...(etag ? { etag } : {}) };
  }

  const eventsUrl = (calendarId: string) =>
    calendarId === 'primary' ? `${graph}/v1.0/me/events` : `${graph}/v1.0/me/calendars/${encodeURIComponent(calendarId)}/events`;
  const eventUrl = (externalId: string) => `${graph}/v1.0/me/events/${encodeURIComponent(externalId)}`;

  function duplicateTransaction(answer: HttpAnswer): boolean {
    const parsed = graphError.safeParse(answer.body);
    return (answer.status === 400 || answer.status === 409) && parsed.success
      && parsed.data.error.code === 'ErrorDuplicateTransactionId';
  }

  /** The event a keyed create made in that calendar, if it is still there. */
  async function eventWithKey(accessToken: string, calendarId: string, key: string): Promise<string | undefined> {
    const what = 'Graph find event by key';
    const filter = `singleValueExtendedProperties/Any(ep: ep/id eq '${GRAPH_KEY_PROPERTY}' and ep/value eq '${key}')`;
    const params = new URLSearchParams({ $filter: filter, $select: 'id', $top: '2' });
    const answer = await callGraph(what, accessToken, 'GET', `${eventsUrl(calendarId)}?${params}`);
    if (answer.status !== 200) throw graphFailure(answer, what);
    const parsed = eventIds.safeParse(answer.body);
    if (!parsed.success) {
      throw new CalendarProviderError('microsoft', `${what} answered in an unexpected shape.`, { status: 200, retryable: false });
    }
    return parsed.data.value[0]?.id;
  }

  async function deleteEvent(accessToken: string, externalId: string): Promise<{ deleted: boolean }> {
    const what = 'Graph delete event';
    const answer = await callGraph(what, accessToken, 'DELETE', eventUrl(externalId));
    if (answer.status === 204 || answer.status === 200) return { deleted: true };
    if (answer.status === 404 || answer.status === 410) return { deleted: false };
    throw graphFailure(answer, what);
  }

  return {
    provider: 'microsoft',
    scopes: MICROSOFT_SCOPES,

    authorizationUrl(request: AuthorizationRequest): string {
      const params = new URLSearchParams({
        client_id: options.clientId,
        response_type: 'code',
        redirect_uri: request.redirectUri,
        response_mode: 'query',
        scope,
        state: request.state,
        code_challenge: request.codeChallenge,
        code_challenge_method: 'S256',
      });
      if (request.loginHint) params.set('login_hint', request.loginHint);
      return `${login}/authorize?${params}`;
    },

    async exchangeCode(exchange: CodeExchange): Promise<TokenSet> {
      const tokens = await token('Microsoft token exchange', {
        grant_type: 'authorization_code',
        code: exchange.code,
        code_verifier: exchange.codeVerifier,
        redirect_uri: exchange.redirectUri,
      });
      const who = await account(tokens.accessToken);
      return who ? { ...tokens, account: who } : tokens;
    },

    refresh(refreshToken: string): Promise<TokenSet> {
      return token('Microsoft token refresh', { grant_type: 'refresh_token', refresh_token: refreshToken }, refreshToken);
    },

    revoke() {
      return Promise.resolve({ revoked: false });
    },

    calendarView,

    async busyTimes(accessToken: string, query: BusyQuery): Promise<BusyResult> {
      const ids = query.calendarIds && query.calendarIds.length > 0 ? [...new Set(query.calendarIds)] : ['primary'];
      const views = await Promise.all(
        ids.map((id) => calendarView(accessToken, query.timeMin, query.timeMax, id, query.timeZone)),
      );
      const busy: BusyInterval[] = views
        .flat()
        .filter((event) => !event.isCancelled && !NOT_BUSY.has(event.showAs) && event.end > event.start)
        .map((event) => ({ start: event.start, end: event.end }));
      return { busy, errors: [] };
    },

    async createEvent(accessToken, event, writeOptions) {
      const what = 'Graph create event';
      if (!event.start || !event.end || !event.timeZone) throw new TypeError('An event needs start, end and timeZone.');
      const calendarId = writeOptions?.calendarId ?? 'primary';
      const key = checkIdempotencyKey(writeOptions?.idempotencyKey);
      const url = eventsUrl(calendarId);
      const body = eventBody(event, writeOptions);
      if (key === undefined) return eventResult(await callGraph(what, accessToken, 'POST', url, body), what, 201);
      const keyed = { ...body, singleValueExtendedProperties: [{ id: GRAPH_KEY_PROPERTY, value: key }] };
      const answer = await callGraph(what, accessToken, 'POST', url, { ...keyed, transactionId: key });
      // A repeat Graph recognises is answered with the event the first one made (201; a 200 is taken too).
      if (!duplicateTransaction(answer)) return eventResult(answer, what, answer.status === 200 ? 200 : 201);
      // Used for a different event: the lost create made it with an older version of the
      // appointment. Bring that one to this version; when it is gone, create it again.
      const existing = await eventWithKey(accessToken, calendarId, key);
      if (existing === undefined) return eventResult(await callGraph(what, accessToken, 'POST', url, keyed), what, 201);
      const repeat = 'Graph update event (repeated create)';
      return eventResult(await callGraph(repeat, accessToken, 'PATCH', eventUrl(existing), body), repeat, 200);
    },

    async updateEvent(accessToken, externalId, changes, writeOptions) {
      const what = 'Graph update event';
      const answer = await callGraph(what, accessToken, 'PATCH', eventUrl(externalId), eventBody(changes, writeOptions));
      return eventResult(answer, what, 200);
    },

    async deleteEventByKey(accessToken, key, writeOptions) {
      const existing = await eventWithKey(accessToken, writeOptions?.calendarId ?? 'primary', checkIdempotencyKey(key));
      return existing === undefined ? { deleted: false } : deleteEvent(accessToken, existing);
    },

    deleteEvent,
  };
}
