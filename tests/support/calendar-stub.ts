/**
 * Google and Microsoft calendars for tests, with no network: ONE local HTTP
 * server speaking both providers' wire formats, written from their public
 * docs (Google's OAuth 2.0 for web server apps and Calendar API v3 reference;
 * Microsoft identity platform v2.0 auth code flow, AADSTS error reference,
 * Graph v1.0 calendarView, event and paging docs), not from our clients, so
 * tests of one check the other.
 *
 * Each real host gets a path prefix on the one port, so a client that mixes
 * up its base URLs fails with a 404:
 *   {baseUrl}/accounts.google.com        GET  /o/oauth2/v2/auth
 *   {baseUrl}/oauth2.googleapis.com      POST /token, POST /revoke
 *   {baseUrl}/www.googleapis.com         POST /calendar/v3/freeBusy,
 *                                        GET|POST|PATCH|DELETE /calendar/v3/calendars/{id}/events[/{eventId}]
 *                                        (an insert may name its `id`: base32hex, 5-1024 long, unique per
 *                                        calendar, a taken one, deleted events' included, answers 409
 *                                        `duplicate`; a PATCH with status `confirmed` restores a deleted event)
 *   {baseUrl}/login.microsoftonline.com  GET  /{tenant}/oauth2/v2.0/authorize, POST /{tenant}/oauth2/v2.0/token
 *   {baseUrl}/graph.microsoft.com        GET  /v1.0/me, GET /v1.0/me/calendarView,
 *                                        POST /v1.0/me/events, /v1.0/me/calendars/{id}/events
 *                                        (a `transactionId` repeated with the same event answers the event
 *                                        made first; with another, or once that one is gone, 400
 *                                        ErrorDuplicateTransactionId; singleValueExtendedProperties kept),
 *                                        GET the same with $filter=singleValueExtendedProperties/Any(...)
 *                                        (one property's id and value), GET|PATCH|DELETE /v1.0/me/events/{id}
 *                                        (start and end in a Windows zone or one of Graph's few IANA names,
 *                                        any other 400 TimeZoneNotSupportedException)
 *
 * What it enforces, as the providers do: client id and secret; the redirect
 * URI of the code exchange equal to the authorization request's; PKCE (S256
 * or plain) checked against the challenge given at authorize; codes single
 * use (a replayed code also revokes what it issued, RFC 6749 §4.1.2) and
 * valid 10 minutes; Google issues a refresh token only for
 * access_type=offline, and after the first consent only with prompt=consent;
 * Microsoft only with offline_access, and rotates it on refresh; scopes per
 * API; revocation at Google ends every grant of that account to the client
 * (Google removes the app's access for the user). Busy times are seeded per
 * account; events created through the API are busy too. Graph pages
 * calendarView by `$skip` in an absolute @odata.nextLink, at most `pageSize`
 * per page; an all-day event is answered there as Graph does under
 * `Prefer: outlook.timezone="UTC"`: its dates at midnight labelled with the
 * preferred zone (Microsoft Q&A 970878, 978210, 970643), the zone its days
 * are in only in originalStartTimeZone. Each account has a stable id (Google's ID-token `sub`, Graph's
 * /me `id`) that stays when its address changes (renameAccount). Failures can
 * be queued (failNext), also as an answer lost after the provider acted
 * (`afterApplying`), and every request is recorded.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from './read-body.ts';

export type StubProvider = 'google' | 'microsoft';

/** Which real host a request was for. */
export type StubHost =
  | 'accounts.google.com'
  | 'oauth2.googleapis.com'
  | 'www.googleapis.com'
  | 'login.microsoftonline.com'
  | 'graph.microsoft.com';

const HOSTS: readonly StubHost[] = [
  'accounts.google.com',
  'oauth2.googleapis.com',
  'www.googleapis.com',
  'login.microsoftonline.com',
  'graph.microsoft.com',
];

export interface CalendarStubRequest {
  at: number;
  method: string;
  host: StubHost | 'unknown';
  /** The path on that host, without the query. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | undefined>;
  /** Form fields or parsed JSON; the raw text when neither. */
  body: unknown;
  /** 0 while unanswered. */
  status: number;
}

/** A busy (or free) entry seeded into an account's calendar. */
export interface SeedEvent {
  /** An instant; for an all-day event its first date, YYYY-MM-DD. */
  start: string | Date;
  /** An instant; for an all-day event the date after its last, YYYY-MM-DD. */
  end: string | Date;
  /**
   * Graph's isAllDay: whole days in `timeZone` (IANA), which Graph names in
   * originalStartTimeZone as `originalStartTimeZone` (default `timeZone`; a
   * Windows name, or one a client cannot read such as tzone://Microsoft/Custom).
   */
  allDay?: { timeZone: string; originalStartTimeZone?: string };
  /** Graph's showAs: 'busy' (default), 'free', 'tentative', 'oof', 'workingElsewhere'. Google: 'free' is transparent. */
  showAs?: string;
  isCancelled?: boolean;
  summary?: string;
}

export interface StubEvent {
  id: string;
  etag: string;
  start: Date;
  end: Date;
  /** As the event was written (Google: RFC 3339 with offset; Graph: wall time) and its zone. */
  startRaw: { dateTime: string; timeZone?: string };
  endRaw: { dateTime: string; timeZone?: string };
  summary?: string;
  description?: string;
  showAs: string;
  isCancelled: boolean;
  /** Graph's isAllDay (startRaw and endRaw then hold the dates at midnight) and the zone name its days are in. */
  isAllDay?: boolean;
  originalStartTimeZone?: string;
  attendees: { email?: string; name?: string }[];
  sequence: number;
  /** Google's sendUpdates of the last write, or 'graph' when Graph invited attendees. */
  notified: string[];
  seeded: boolean;
  /** Graph's singleValueExtendedProperties set at the create: id → value. */
  extendedProperties?: Record<string, string>;
}

export interface StubFailure {
  status: number;
  headers?: Record<string, string>;
  /** Default: the provider's error body for that status. */
  body?: unknown;
  /** Only requests whose `{host}{path}` matches (default: any request). */
  match?: string | RegExp;
  /** The request is carried out, then answered with this failure: the answer to what the provider did is lost. */
  afterApplying?: boolean;
}

export interface CalendarStub {
  baseUrl: string;
  google: { clientId: string; clientSecret: string; accountsBaseUrl: string; oauth2BaseUrl: string; apiBaseUrl: string };
  microsoft: { clientId: string; clientSecret: string; loginBaseUrl: string; graphBaseUrl: string };
  requests: CalendarStubRequest[];
  /**
   * The user consents at the authorization URL: the provider's redirect is
   * returned (code and state, or error). `email` picks the account (created
   * when new); `grantScopes` narrows what the user ticks (Google's granular consent).
   */
  authorize(
    authorizationUrl: string,
    options?: { email?: string; grantScopes?: string[] },
  ): Promise<{ location: string; code?: string; state?: string; error?: string; status: number }>;
  /** Adds busy (or free) entries to an account's calendar (its primary by default). */
  seedBusy(provider: StubProvider, email: string, events: SeedEvent[], options?: { calendarId?: string }): void;
  /** The events of an account's calendar, seeded and written, cancelled ones included. */
  events(provider: StubProvider, email: string, calendarId?: string): StubEvent[];
  /** Answers the next matching requests with these failures, in order. */
  failNext(status: number, headers?: Record<string, string>, options?: Omit<StubFailure, 'status' | 'headers'>): void;
  /** Revokes a refresh token (and its grant's access tokens) as the user or an admin would. Microsoft answers with this AADSTS code (default 70008). */
  revokeRefreshToken(refreshToken: string, options?: { aadsts?: number }): void;
  /** The user removes our app's access in their account settings: every grant of the account ends (refreshes answer invalid_grant, API calls 401). */
  revokeAccount(provider: StubProvider, email: string): void;
  /**
   * The account's address changes (the user picked a new primary address):
   * the same account (same `sub` / Graph `id`, same calendars and grants)
   * answers to `newEmail` from now on, and `email` is free for another
   * account (a new one, with a new id, when someone signs in with it).
   */
  renameAccount(provider: StubProvider, email: string, newEmail: string): void;
  /** Makes every access token issued so far expired (API calls answer 401). */
  expireAccessTokens(): void;
  /** Graph's largest page (default 10, Graph's own default); $top smaller wins. */
  setPageSize(size: number): void;
  reset(): void;
  close(): Promise<void>;
}

interface Account {
  provider: StubProvider;
  email: string;
  id: string;
  /** Graph's transactionIds: the event each create made and what it was made with. */
  transactions: Map<string, { eventId: string; made: string }>;
  /** calendarId → events; Google's primary is under the account's e-mail, Graph's default under 'default'. */
  calendars: Map<string, StubEvent[]>;
  /** Client ids the user has consented to (Google sends a refresh token again only with prompt=consent). */
  consented: Set<string>;
  grantedScopes: Set<string>;
}

interface AuthCode {
  provider: StubProvider;
  account: Account;
  clientId: string;
  redirectUri: string;
  challenge?: string;
  method?: string;
  scopes: string[];
  refresh: boolean;
  expiresAt: number;
  usedBy?: string;
}

interface Grant {
  id: string;
  provider: StubProvider;
  account: Account;
  clientId: string;
  scopes: string[];
  revoked: boolean;
  aadsts?: number;
}

interface AccessToken {
  grant: Grant;
  expiresAt: number;
}

const GOOGLE_EVENTS_SCOPES = ['https://www.googleapis.com/auth/calendar', 'https://www.googleapis.com/auth/calendar.events'];
const GOOGLE_FREEBUSY_SCOPES = [
  ...GOOGLE_EVENTS_SCOPES,
  'https://www.googleapis.com/auth/calendar.readonly',
  'https://www.googleapis.com/auth/calendar.freebusy',
  'https://www.googleapis.com/auth/calendar.events.freebusy',
  'https://www.googleapis.com/auth/calendar.events.readonly',
];
const GRAPH_RESOURCE = 'https://graph.microsoft.com/';
const GRAPH_SCOPES = new Set(['user.read', 'calendars.read', 'calendars.readwrite', 'mail.read']);
const OIDC_SCOPES = new Set(['openid', 'email', 'profile', 'offline_access']);
/**
 * The time zones Graph takes in an event's start and end: Windows names
 * (here those of the zones below, to an IANA zone with their rules), and the
 * "additional time zones" of Graph's dateTimeTimeZone doc, one IANA name per
 * Windows zone (Europe/Paris but not Europe/Madrid, Asia/Calcutta but not
 * Asia/Kolkata). Any other is refused 400 TimeZoneNotSupportedException.
 */
const WINDOWS_ZONES: Record<string, string> = {
  'AUS Central Standard Time': 'Australia/Darwin',
  'AUS Eastern Standard Time': 'Australia/Sydney',
  'Afghanistan Standard Time': 'Asia/Kabul',
  'Alaskan Standard Time': 'America/Anchorage',
  'Arab Standard Time': 'Asia/Riyadh',
  'Arabian Standard Time': 'Asia/Dubai',
  'Arabic Standard Time': 'Asia/Baghdad',
  'Argentina Standard Time': 'America/Argentina/Buenos_Aires',
  'Atlantic Standard Time': 'America/Halifax',
  'Azerbaijan Standard Time': 'Asia/Baku',
  'Azores Standard Time': 'Atlantic/Azores',
  'Bahia Standard Time': 'America/Bahia',
  'Bangladesh Standard Time': 'Asia/Dhaka',
  'Canada Central Standard Time': 'America/Regina',
  'Cape Verde Standard Time': 'Atlantic/Cape_Verde',
  'Caucasus Standard Time': 'Asia/Yerevan',
  'Cen. Australia Standard Time': 'Australia/Adelaide',
  'Central America Standard Time': 'America/Guatemala',
  'Central Brazilian Standard Time': 'America/Cuiaba',
  'Central Europe Standard Time': 'Europe/Budapest',
  'Central European Standard Time': 'Europe/Warsaw',
  'Central Pacific Standard Time': 'Pacific/Guadalcanal',
  'Central Standard Time': 'America/Chicago',
  'Central Standard Time (Mexico)': 'America/Mexico_City',
  'China Standard Time': 'Asia/Shanghai',
  'Dateline Standard Time': 'Etc/GMT+12',
  'E. Africa Standard Time': 'Africa/Nairobi',
  'E. Australia Standard Time': 'Australia/Brisbane',
  'E. South America Standard Time': 'America/Sao_Paulo',
  'Eastern Standard Time': 'America/New_York',
  'Egypt Standard Time': 'Africa/Cairo',
  'Ekaterinburg Standard Time': 'Asia/Yekaterinburg',
  'FLE Standard Time': 'Europe/Kiev',
  'Fiji Standard Time': 'Pacific/Fiji',
  'GMT Standard Time': 'Europe/London',
  'GTB Standard Time': 'Europe/Bucharest',
  'Georgian Standard Time': 'Asia/Tbilisi',
  'Greenland Standard Time': 'America/Godthab',
  'Greenwich Standard Time': 'Atlantic/Reykjavik',
  'Hawaiian Standard Time': 'Pacific/Honolulu',
  'India Standard Time': 'Asia/Calcutta',
  'Iran Standard Time': 'Asia/Tehran',
  'Israel Standard Time': 'Asia/Jerusalem',
  'Jordan Standard Time': 'Asia/Amman',
  'Kaliningrad Standard Time': 'Europe/Kaliningrad',
  'Korea Standard Time': 'Asia/Seoul',
  'Line Islands Standard Time': 'Pacific/Kiritimati',
  'Magadan Standard Time': 'Asia/Magadan',
  'Mauritius Standard Time': 'Indian/Mauritius',
  'Middle East Standard Time': 'Asia/Beirut',
  'Montevideo Standard Time': 'America/Montevideo',
  'Morocco Standard Time': 'Africa/Casablanca',
  'Mountain Standard Time': 'America/Denver',
  'Myanmar Standard Time': 'Asia/Rangoon',
  'N. Central Asia Standard Time': 'Asia/Novosibirsk',
  'Namibia Standard Time': 'Africa/Windhoek',
  'Nepal Standard Time': 'Asia/Kathmandu',
  'New Zealand Standard Time': 'Pacific/Auckland',
  'Newfoundland Standard Time': 'America/St_Johns',
  'North Asia East Standard Time': 'Asia/Irkutsk',
  'North Asia Standard Time': 'Asia/Krasnoyarsk',
  'Pacific SA Standard Time': 'America/Santiago',
  'Pacific Standard Time': 'America/Los_Angeles',
  'Pacific Standard Time (Mexico)': 'America/Santa_Isabel',
  'Pakistan Standard Time': 'Asia/Karachi',
  'Paraguay Standard Time': 'America/Asuncion',
  'Romance Standard Time': 'Europe/Paris',
  'Russian Standard Time': 'Europe/Moscow',
  'SA Eastern Standard Time': 'America/Cayenne',
  'SA Pacific Standard Time': 'America/Bogota',
  'SA Western Standard Time': 'America/La_Paz',
  'SE Asia Standard Time': 'Asia/Bangkok',
  'Samoa Standard Time': 'Pacific/Apia',
  'Singapore Standard Time': 'Asia/Singapore',
  'South Africa Standard Time': 'Africa/Johannesburg',
  'Sri Lanka Standard Time': 'Asia/Colombo',
  'Syria Standard Time': 'Asia/Damascus',
  'Taipei Standard Time': 'Asia/Taipei',
  'Tasmania Standard Time': 'Australia/Hobart',
  'Tokyo Standard Time': 'Asia/Tokyo',
  'Tonga Standard Time': 'Pacific/Tongatapu',
  'Turkey Standard Time': 'Europe/Istanbul',
  'US Eastern Standard Time': 'America/Indiana/Indianapolis',
  'US Mountain Standard Time': 'America/Phoenix',
  'UTC': 'Etc/UTC',
  'UTC+12': 'Etc/GMT-12',
  'UTC-02': 'Etc/GMT+2',
  'UTC-11': 'Etc/GMT+11',
  'Ulaanbaatar Standard Time': 'Asia/Ulaanbaatar',
  'Venezuela Standard Time': 'America/Caracas',
  'Vladivostok Standard Time': 'Asia/Vladivostok',
  'W. Australia Standard Time': 'Australia/Perth',
  'W. Central Africa Standard Time': 'Africa/Lagos',
  'W. Europe Standard Time': 'Europe/Berlin',
  'West Asia Standard Time': 'Asia/Tashkent',
  'West Pacific Standard Time': 'Pacific/Port_Moresby',
  'Yakutsk Standard Time': 'Asia/Yakutsk',
};
const GRAPH_IANA_ZONES = new Set([
  'Etc/GMT+12', 'Etc/GMT+11', 'Pacific/Honolulu', 'America/Anchorage', 'America/Santa_Isabel', 'America/Los_Angeles',
  'America/Phoenix', 'America/Chihuahua', 'America/Denver', 'America/Guatemala', 'America/Chicago',
  'America/Mexico_City', 'America/Regina', 'America/Bogota', 'America/New_York', 'America/Indiana/Indianapolis',
  'America/Caracas', 'America/Asuncion', 'America/Halifax', 'America/Cuiaba', 'America/La_Paz', 'America/Santiago',
  'America/St_Johns', 'America/Sao_Paulo', 'America/Argentina/Buenos_Aires', 'America/Cayenne', 'America/Godthab',
  'America/Montevideo', 'America/Bahia', 'Etc/GMT+2', 'Atlantic/Azores', 'Atlantic/Cape_Verde', 'Africa/Casablanca',
  'Etc/GMT', 'Europe/London', 'Atlantic/Reykjavik', 'Europe/Berlin', 'Europe/Budapest', 'Europe/Paris',
  'Europe/Warsaw', 'Africa/Lagos', 'Africa/Windhoek', 'Europe/Bucharest', 'Asia/Beirut', 'Africa/Cairo',
  'Asia/Damascus', 'Africa/Johannesburg', 'Europe/Kiev', 'Europe/Istanbul', 'Asia/Jerusalem', 'Asia/Amman',
  'Asia/Baghdad', 'Europe/Kaliningrad', 'Asia/Riyadh', 'Africa/Nairobi', 'Asia/Tehran', 'Asia/Dubai', 'Asia/Baku',
  'Europe/Moscow', 'Indian/Mauritius', 'Asia/Tbilisi', 'Asia/Yerevan', 'Asia/Kabul', 'Asia/Karachi', 'Asia/Tashkent',
  'Asia/Calcutta', 'Asia/Colombo', 'Asia/Kathmandu', 'Asia/Almaty', 'Asia/Dhaka', 'Asia/Yekaterinburg',
  'Asia/Rangoon', 'Asia/Bangkok', 'Asia/Novosibirsk', 'Asia/Shanghai', 'Asia/Krasnoyarsk', 'Asia/Singapore',
  'Australia/Perth', 'Asia/Taipei', 'Asia/Ulaanbaatar', 'Asia/Irkutsk', 'Asia/Tokyo', 'Asia/Seoul',
  'Australia/Adelaide', 'Australia/Darwin', 'Australia/Brisbane', 'Australia/Sydney', 'Pacific/Port_Moresby',
  'Australia/Hobart', 'Asia/Yakutsk', 'Pacific/Guadalcanal', 'Asia/Vladivostok', 'Pacific/Auckland', 'Etc/GMT-12',
  'Pacific/Fiji', 'Asia/Magadan', 'Pacific/Tongatapu', 'Pacific/Apia', 'Pacific/Kiritimati',
]);

/** An IANA zone to compute with, for a zone name Graph takes; undefined for one it refuses. */
function graphZone(name: string): string | undefined {
  if (Object.hasOwn(WINDOWS_ZONES, name)) return WINDOWS_ZONES[name];
  return GRAPH_IANA_ZONES.has(name) ? name : undefined;
}

const AADSTS_MESSAGES: Record<number, string> = {
  54005: 'OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.',
  70000: 'The provided value for the input parameter is not valid. The grant is malformed or invalid.',
  70008:
    'The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.',
  50173: 'The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.',
  700082: 'The refresh token has expired due to inactivity. The token was issued on 2026-01-01T00:00:00Z and was inactive for 90.00:00:00.',
  501481: 'The Code_Verifier does not match the code_challenge supplied in the authorization request.',
  7000215: 'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
  700016: "Application with identifier was not found in the directory. This can happen if the application has not been installed by the administrator of the tenant.",
  900144: "The request body must contain the following parameter: 'grant_type'.",
};

/**
 * The calendar function's settings that point both providers' clients at the
 * stub (client ids and secrets, sign-in, token and API base URLs);
 * `googleApiUrl` overrides where Google's calendar API is reached (a proxy).
 */
export function providerEnv(stub: CalendarStub, options: { googleApiUrl?: string } = {}): Record<string, string> {
  return {
    CALENDAR_GOOGLE_CLIENT_ID: stub.google.clientId,
    CALENDAR_GOOGLE_CLIENT_SECRET: stub.google.clientSecret,
    CALENDAR_GOOGLE_ACCOUNTS_URL: stub.google.accountsBaseUrl,
    CALENDAR_GOOGLE_OAUTH2_URL: stub.google.oauth2BaseUrl,
    CALENDAR_GOOGLE_API_URL: options.googleApiUrl ?? stub.google.apiBaseUrl,
    CALENDAR_MICROSOFT_CLIENT_ID: stub.microsoft.clientId,
    CALENDAR_MICROSOFT_CLIENT_SECRET: stub.microsoft.clientSecret,
    CALENDAR_MICROSOFT_LOGIN_URL: stub.microsoft.loginBaseUrl,
    CALENDAR_MICROSOFT_GRAPH_URL: stub.microsoft.graphBaseUrl,
  };
}

export async function startCalendarStub(
  options: {
    google?: { clientId?: string; clientSecret?: string };
    microsoft?: { clientId?: string; clientSecret?: string };
    /** Seconds an access token lives (default 3599, both providers' usual). */
    accessTokenTtlSeconds?: number;
  } = {},
): Promise<CalendarStub> {
  const google = {
    clientId: options.google?.clientId ?? '123456789012-stub.apps.googleusercontent.com',
    clientSecret: options.google?.clientSecret ?? 'GOCSPX-stub-google-secret',
  };
  const microsoft = {
    clientId: options.microsoft?.clientId ?? '11111111-2222-4333-8444-555555555555',
    clientSecret: options.microsoft?.clientSecret ?? 'stub~microsoft.secret_value',
  };
  const ttl = options.accessTokenTtlSeconds ?? 3599;

  const requests: CalendarStubRequest[] = [];
  let failures: StubFailure[] = [];
  let pageSize = 10;
  const accounts = new Map<string, Account>();
  const codes = new Map<string, AuthCode>();
  const refreshTokens = new Map<string, Grant>();
  const accessTokens = new Map<string, AccessToken>();
  let baseUrl = '';

  function account(provider: StubProvider, email: string): Account {
    const key = `${provider}:${email.toLowerCase()}`;
    let found = accounts.get(key);
    if (!found) {
      found = {
        provider,
        email,
        id: provider === 'google' ? googleSubject() : randomUUID(),
        calendars: new Map([[provider === 'google' ? email : 'default', []]]),
        transactions: new Map(),
        consented: new Set(),
        grantedScopes: new Set(),
      };
      accounts.set(key, found);
    }
    return found;
  }

  function calendarOf(acc: Account, calendarId: string | undefined, create = false): StubEvent[] | undefined {
    const primary = acc.provider === 'google' ? acc.email : 'default';
    const id = calendarId === undefined || calendarId === 'primary' ? primary : calendarId;
    let events = acc.calendars.get(id);
    if (!events && create) {
      events = [];
      acc.calendars.set(id, events);
    }
    return events;
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { error: { code: 500, message: String(error) } });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://stub.invalid');
    const [, first = '', ...rest] = url.pathname.split('/');
    const host = (HOSTS as readonly string[]).includes(first) ? (first as StubHost) : 'unknown';
    const path = host === 'unknown' ? url.pathname : `/${rest.join('/')}`;
    const contentType = req.headers['content-type'] ?? '';
    let body: unknown = raw;
    if (contentType.startsWith('application/x-www-form-urlencoded')) {
      body = Object.fromEntries(new URLSearchParams(raw));
    } else if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        // Kept as text; the route answers 400.
      }
    }
    const record: CalendarStubRequest = {
      at: Date.now(),
      method: req.method ?? '',
      host,
      path,
      query: Object.fromEntries(url.searchParams),
      headers: {
        authorization: req.headers.authorization,
        'content-type': req.headers['content-type'],
        prefer: typeof req.headers.prefer === 'string' ? req.headers.prefer : undefined,
      },
      body,
      status: 0,
    };
    requests.push(record);
    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      if (payload === undefined) {
        res.writeHead(status, headers);
        res.end();
      } else json(res, status, payload, headers);
    };

    const failureIndex = failures.findIndex((failure) => matches(failure.match, `${host}${path}`));
    const [failure] = failureIndex >= 0 ? failures.splice(failureIndex, 1) : [];
    const fail = () => failure && send(failure.status, failure.body ?? defaultFailureBody(host, failure.status), failure.headers);
    if (failure && !failure.afterApplying) return fail();

    const ctx: Ctx = { req, url, record, body, send: failure ? fail : send, res };
    switch (host) {
      case 'accounts.google.com':
        if (req.method === 'GET' && path === '/o/oauth2/v2/auth') return googleAuthorize(ctx);
        break;
      case 'oauth2.googleapis.com':
        if (req.method === 'POST' && path === '/token') return googleToken(ctx);
        if (req.method === 'POST' && path === '/revoke') return googleRevoke(ctx);
        break;
      case 'www.googleapis.com':
        return googleApi(ctx, path);
      case 'login.microsoftonline.com': {
        const match = /^\/([^/]+)\/oauth2\/v2\.0\/(authorize|token)$/u.exec(path);
        if (match?.[2] === 'authorize' && req.method === 'GET') return microsoftAuthorize(ctx);
        if (match?.[2] === 'token' && req.method === 'POST') return microsoftToken(ctx);
        break;
      }
      case 'graph.microsoft.com':
        return graphApi(ctx, path);
      default:
        break;
    }
    send(404, { error: { code: 404, message: `Not Found: ${req.method} ${url.pathname}` } });
  }

  interface Ctx {
    req: IncomingMessage;
    url: URL;
    record: CalendarStubRequest;
    body: unknown;
    res: ServerResponse;
    send: (status: number, payload: unknown, headers?: Record<string, string>) => void;
  }

  // ---- Google OAuth ----

  function redirect(ctx: Ctx, redirectUri: string, params: Record<string, string>) {
    const target = new URL(redirectUri);
    for (const [key, value] of Object.entries(params)) target.searchParams.set(key, value);
    ctx.record.status = 302;
    ctx.res.writeHead(302, { location: target.toString() });
    ctx.res.end();
  }

  function htmlError(ctx: Ctx, status: number, text: string) {
    ctx.record.status = status;
    ctx.res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    ctx.res.end(`<!doctype html><title>Error</title><p>${text}</p>`);
  }

  function googleAuthorize(ctx: Ctx) {
    const q = ctx.url.searchParams;
    const email = ctx.req.headers['x-stub-email'];
    const grantScopes = ctx.req.headers['x-stub-grant-scopes'];
    if (q.get('client_id') !== google.clientId) return htmlError(ctx, 401, 'Error 401: invalid_client. The OAuth client was not found.');
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri || !/^https?:\/\//u.test(redirectUri)) {
      return htmlError(ctx, 400, 'Error 400: redirect_uri_mismatch');
    }
    const state = q.get('state');
    const withState = (params: Record<string, string>) => (state === null ? params : { ...params, state });
    if (q.get('response_type') !== 'code') return redirect(ctx, redirectUri, withState({ error: 'unsupported_response_type' }));
    const requested = (q.get('scope') ?? '').split(/\s+/u).filter(Boolean);
    if (requested.length === 0) return redirect(ctx, redirectUri, withState({ error: 'invalid_scope' }));
    const method = q.get('code_challenge_method') ?? undefined;
    const challenge = q.get('code_challenge') ?? undefined;
    if ((method && method !== 'S256' && method !== 'plain') || (method && !challenge)) {
      return redirect(ctx, redirectUri, withState({ error: 'invalid_request', error_description: 'Invalid code_challenge_method' }));
    }
    const acc = account('google', typeof email === 'string' ? email : 'user@example.com');
    const ticked = typeof grantScopes === 'string' ? grantScopes.split(' ') : requested;
    const granted = requested.filter((scope) => ticked.includes(scope));
    const scopes = q.get('include_granted_scopes') === 'true' ? [...new Set([...acc.grantedScopes, ...granted])] : granted;
    for (const scope of granted) acc.grantedScopes.add(scope);
    // A refresh token only offline, and after the first consent only when consent is prompted again.
    const prompts = (q.get('prompt') ?? '').split(' ');
    const refresh = q.get('access_type') === 'offline' && (prompts.includes('consent') || !acc.consented.has(google.clientId));
    acc.consented.add(google.clientId);
    const code = `4/0A${randomBytes(24).toString('base64url')}`;
    codes.set(code, {
      provider: 'google',
      account: acc,
      clientId: google.clientId,
      redirectUri,
      challenge,
      method: challenge ? method ?? 'plain' : undefined,
      scopes,
      refresh,
      expiresAt: Date.now() + 600_000,
    });
    redirect(ctx, redirectUri, withState({ code, scope: scopes.join(' '), authuser: '0', prompt: 'consent' }));
  }

  function clientCredentials(ctx: Ctx, form: Record<string, string>): { id?: string; secret?: string } {
    const basic = ctx.req.headers.authorization;
    if (basic?.startsWith('Basic ')) {
      const [id, secret] = Buffer.from(basic.slice(6), 'base64').toString('utf8').split(':');
      return { id: decodeURIComponent(id ?? ''), secret: decodeURIComponent(secret ?? '') };
    }
    return { id: form.client_id, secret: form.client_secret };
  }

  function pkceMatches(code: AuthCode, verifier: string | undefined): boolean {
    if (!code.challenge) return true;
    if (!verifier || !/^[A-Za-z0-9\-._~]{43,128}$/u.test(verifier)) return false;
    const computed = code.method === 'S256' ? createHash('sha256').update(verifier, 'ascii').digest('base64url') : verifier;
    return computed === code.challenge;
  }

  function issue(grant: Grant): string {
    const token = grant.provider === 'google' ? `ya29.${randomBytes(32).toString('base64url')}` : `eyJ0eXAiOiJKV1Qi.${randomBytes(40).toString('base64url')}`;
    accessTokens.set(token, { grant, expiresAt: Date.now() + ttl * 1000 });
    return token;
  }

  function idToken(acc: Account, audience: string): string {
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'stub', typ: 'JWT' })).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const payload = Buffer.from(
      JSON.stringify({
        iss: 'https://accounts.google.com',
        aud: audience,
        sub: acc.id,
        email: acc.email,
        email_verified: true,
        iat: now,
        exp: now + 3600,
      }),
    ).toString('base64url');
    return `${header}.${payload}.${randomBytes(32).toString('base64url')}`;
  }

  function googleToken(ctx: Ctx) {
    const oauthError = (status: number, error: string, description: string) =>
      ctx.send(status, { error, error_description: description });
    if (!ctx.record.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
      return oauthError(400, 'invalid_request', 'Invalid Content-Type.');
    }
    const form = ctx.body as Record<string, string>;
    const client = clientCredentials(ctx, form);
    if (client.id !== google.clientId) return oauthError(401, 'invalid_client', 'The OAuth client was not found.');
    if (client.secret !== google.clientSecret) return oauthError(401, 'invalid_client', 'Unauthorized');

    if (form.grant_type === 'authorization_code') {
      const code = form.code ? codes.get(form.code) : undefined;
      if (!code || code.provider !== 'google' || code.clientId !== client.id) {
        return oauthError(400, 'invalid_grant', 'Malformed auth code.');
      }
      if (code.usedBy !== undefined) {
        const grant = [...refreshTokens.values()].find((candidate) => candidate.id === code.usedBy);
        if (grant) grant.revoked = true;
        return oauthError(400, 'invalid_grant', 'Bad Request');
      }
      if (code.expiresAt < Date.now()) return oauthError(400, 'invalid_grant', 'Bad Request');
      if (form.redirect_uri !== code.redirectUri) return oauthError(400, 'redirect_uri_mismatch', 'Bad Request');
      if (code.challenge && !form.code_verifier) return oauthError(400, 'invalid_grant', 'Missing code verifier.');
      if (!pkceMatches(code, form.code_verifier)) return oauthError(400, 'invalid_grant', 'Invalid code verifier.');
      const grant: Grant = { id: randomUUID(), provider: 'google', account: code.account, clientId: client.id, scopes: code.scopes, revoked: false };
      code.usedBy = grant.id;
      const refreshToken = code.refresh ? `1//0g${randomBytes(32).toString('base64url')}` : undefined;
      if (refreshToken) refreshTokens.set(refreshToken, grant);
      else refreshTokens.set(`none:${grant.id}`, grant);
      return ctx.send(200, {
        access_token: issue(grant),
        expires_in: ttl,
        ...(refreshToken ? { refresh_token: refreshToken } : {}),
        scope: code.scopes.join(' '),
        token_type: 'Bearer',
        ...(code.scopes.includes('openid') ? { id_token: idToken(code.account, client.id) } : {}),
      });
    }
    if (form.grant_type === 'refresh_token') {
      const grant = form.refresh_token ? refreshTokens.get(form.refresh_token) : undefined;
      if (!grant || grant.provider !== 'google' || grant.revoked) {
        return oauthError(400, 'invalid_grant', 'Token has been expired or revoked.');
      }
      if (grant.clientId !== client.id) return oauthError(400, 'unauthorized_client', 'Unauthorized');
      return ctx.send(200, {
        access_token: issue(grant),
        expires_in: ttl,
        scope: grant.scopes.join(' '),
        token_type: 'Bearer',
        ...(grant.scopes.includes('openid') ? { id_token: idToken(grant.account, client.id) } : {}),
      });
    }
    return oauthError(400, 'unsupported_grant_type', `Invalid grant_type: ${form.grant_type ?? ''}`);
  }

  function googleRevoke(ctx: Ctx) {
    const form = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as Record<string, string>;
    const token = ctx.url.searchParams.get('token') ?? form.token;
    const grant = token ? refreshTokens.get(token) ?? accessTokens.get(token)?.grant : undefined;
    if (!grant || grant.provider !== 'google' || grant.revoked) {
      return ctx.send(400, { error: 'invalid_token', error_description: 'Token expired or revoked' });
    }
    // Google removes the client's whole access for the user: every grant of that account to this client.
    for (const other of refreshTokens.values()) {
      if (other.account === grant.account && other.clientId === grant.clientId) other.revoked = true;
    }
    ctx.send(200, {});
  }

  // ---- Google Calendar API ----

  function googleError(ctx: Ctx, status: number, reason: string, message: string, grpc?: string) {
    ctx.send(status, {
      error: {
        code: status,
        message,
        errors: [{ message, domain: status === 429 || reason.includes('Limit') ? 'usageLimits' : 'global', reason }],
        ...(grpc ? { status: grpc } : {}),
      },
    });
  }

  function bearer(ctx: Ctx, provider: StubProvider): Grant | undefined {
    const header = ctx.req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? accessTokens.get(header.slice(7)) : undefined;
    if (!token || token.grant.provider !== provider || token.grant.revoked || token.expiresAt <= Date.now()) return undefined;
    return token.grant;
  }

  function googleApi(ctx: Ctx, path: string) {
    const grant = bearer(ctx, 'google');
    if (!grant) {
      ctx.res.setHeader('www-authenticate', 'Bearer realm="https://accounts.google.com/", error="invalid_token"');
      return googleError(
        ctx,
        401,
        'authError',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        'UNAUTHENTICATED',
      );
    }
    const has = (allowed: string[]) => grant.scopes.some((scope) => allowed.includes(scope));
    const insufficient = () =>
      googleError(ctx, 403, 'insufficientPermissions', 'Request had insufficient authentication scopes.', 'PERMISSION_DENIED');

    if (path === '/calendar/v3/freeBusy' && ctx.req.method === 'POST') {
      if (!has(GOOGLE_FREEBUSY_SCOPES)) return insufficient();
      return googleFreeBusy(ctx, grant.account);
    }
    const match = /^\/calendar\/v3\/calendars\/([^/]+)\/events(?:\/([^/]+))?$/u.exec(path);
    if (!match) return googleError(ctx, 404, 'notFound', 'Not Found');
    if (!has(GOOGLE_EVENTS_SCOPES)) return insufficient();
    const calendarId = decodeURIComponent(match[1] ?? '');
    const eventId = match[2] === undefined ? undefined : decodeURIComponent(match[2]);
    const calendar = calendarOf(grant.account, calendarId);
    if (!calendar) return googleError(ctx, 404, 'notFound', 'Not Found');
    const sendUpdates = ctx.url.searchParams.get('sendUpdates') ?? 'false';
    if (!['all', 'externalOnly', 'none', 'false'].includes(sendUpdates)) {
      return googleError(ctx, 400, 'invalidParameter', `Invalid value for sendUpdates: ${sendUpdates}`);
    }
    if (eventId === undefined) {
      if (ctx.req.method !== 'POST') return googleError(ctx, 404, 'notFound', 'Not Found');
      return googleWriteEvent(ctx, grant.account, calendar, undefined, sendUpdates);
    }
    const event = calendar.find((candidate) => candidate.id === eventId);
    if (!event) return googleError(ctx, 404, 'notFound', 'Not Found');
    if (ctx.req.method === 'GET') return ctx.send(200, googleEventResource(grant.account, event));
    // A deleted event is kept (status cancelled); only a patch to status confirmed brings it back.
    const restoring = ctx.req.method === 'PATCH' && (ctx.body as { status?: unknown } | null)?.status === 'confirmed';
    if (event.isCancelled && !restoring) {
      return googleError(ctx, 410, 'deleted', 'Resource has been deleted');
    }
    if (ctx.req.method === 'PATCH') return googleWriteEvent(ctx, grant.account, calendar, event, sendUpdates);
    if (ctx.req.method === 'DELETE') {
      event.isCancelled = true;
      event.etag = googleEtag();
      event.notified.push(sendUpdates);
      return ctx.send(204, undefined);
    }
    googleError(ctx, 405, 'methodNotAllowed', 'Method Not Allowed');
  }

  function googleFreeBusy(ctx: Ctx, acc: Account) {
    const body = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as {
      timeMin?: string;
      timeMax?: string;
      items?: { id?: string }[];
    };
    if (!body.timeMin) return googleError(ctx, 400, 'required', 'Missing timeMin parameter.');
    if (!body.timeMax) return googleError(ctx, 400, 'required', 'Missing timeMax parameter.');
    const min = Date.parse(body.timeMin);
    const max = Date.parse(body.timeMax);
    if (Number.isNaN(min) || Number.isNaN(max)) return googleError(ctx, 400, 'invalid', 'Bad Request');
    if (max <= min) return googleError(ctx, 400, 'timeRangeEmpty', 'The specified time range is empty.');
    const calendars: Record<string, unknown> = {};
    for (const item of body.items ?? []) {
      const id = item.id ?? '';
      const events = calendarOf(acc, id);
      if (!events) {
        calendars[id] = { errors: [{ domain: 'global', reason: 'notFound' }], busy: [] };
        continue;
      }
      const busy = mergeBusy(
        events
          .filter((event) => !event.isCancelled && event.showAs !== 'free')
          .map((event) => ({ start: Math.max(event.start.getTime(), min), end: Math.min(event.end.getTime(), max) }))
          .filter((interval) => interval.end > interval.start),
      );
      calendars[id] = { busy: busy.map((interval) => ({ start: rfc3339Utc(interval.start), end: rfc3339Utc(interval.end) })) };
    }
    ctx.send(200, { kind: 'calendar#freeBusy', timeMin: rfc3339Utc(min), timeMax: rfc3339Utc(max), calendars });
  }

  function googleTime(value: unknown): { instant: Date; raw: { dateTime: string; timeZone?: string } } | undefined {
    if (typeof value !== 'object' || value === null) return undefined;
    const { dateTime, timeZone } = value as { dateTime?: unknown; timeZone?: unknown };
    if (typeof dateTime !== 'string') return undefined;
    const zone = typeof timeZone === 'string' ? timeZone : undefined;
    const hasOffset = /(Z|[+-]\d{2}:\d{2})$/u.test(dateTime);
    let instant: number;
    if (hasOffset) instant = Date.parse(dateTime);
    else if (zone) instant = zonedToUtc(dateTime, zone);
    else return undefined;
    if (Number.isNaN(instant)) return undefined;
    return { instant: new Date(instant), raw: { dateTime, ...(zone ? { timeZone: zone } : {}) } };
  }

  function googleWriteEvent(ctx: Ctx, acc: Account, calendar: StubEvent[], existing: StubEvent | undefined, sendUpdates: string) {
    const body = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as Record<string, unknown>;
    const start = body.start === undefined ? undefined : googleTime(body.start);
    const end = body.end === undefined ? undefined : googleTime(body.end);
    if ((body.start !== undefined && !start) || (body.end !== undefined && !end)) {
      return googleError(ctx, 400, 'invalid', 'Invalid start time.');
    }
    if (!existing && (!start || !end)) return googleError(ctx, 400, 'required', 'Missing end time.');
    const chosenId = existing ? undefined : body.id;
    if (chosenId !== undefined) {
      if (typeof chosenId !== 'string' || !/^[a-v0-9]{5,1024}$/u.test(chosenId)) {
        return googleError(ctx, 400, 'invalid', 'Invalid resource id value.');
      }
      if (calendar.some((candidate) => candidate.id === chosenId)) {
        return googleError(ctx, 409, 'duplicate', 'The requested identifier already exists.');
      }
    }
    const attendees = body.attendees;
    if (attendees !== undefined) {
      if (!Array.isArray(attendees)) return googleError(ctx, 400, 'invalid', 'Invalid attendees.');
      for (const attendee of attendees as { email?: unknown }[]) {
        if (typeof attendee.email !== 'string' || !attendee.email.includes('@')) {
          return googleError(ctx, 400, 'required', 'Missing attendee email.');
        }
      }
    }
    const startAt = start?.instant ?? existing?.start;
    const endAt = end?.instant ?? existing?.end;
    if (!startAt || !endAt || endAt.getTime() <= startAt.getTime()) {
      return googleError(ctx, 400, 'timeRangeEmpty', 'The specified time range is empty.');
    }
    const event: StubEvent = existing ?? {
      id: typeof chosenId === 'string' ? chosenId : randomBytes(13).toString('hex').replace(/[^a-v0-9]/gu, 'a'),
      etag: '',
      start: startAt,
      end: endAt,
      startRaw: start?.raw ?? { dateTime: '' },
      endRaw: end?.raw ?? { dateTime: '' },
      showAs: 'busy',
      isCancelled: false,
      attendees: [],
      sequence: 0,
      notified: [],
      seeded: false,
    };
    if (existing && (start || end)) event.sequence += 1;
    if (body.status === 'confirmed') event.isCancelled = false;
    event.start = startAt;
    event.end = endAt;
    if (start) event.startRaw = start.raw;
    if (end) event.endRaw = end.raw;
    if (typeof body.summary === 'string') event.summary = body.summary;
    if (typeof body.description === 'string') event.description = body.description;
    if (Array.isArray(attendees)) {
      event.attendees = (attendees as { email: string; displayName?: string }[]).map((attendee) => ({
        email: attendee.email,
        ...(attendee.displayName ? { name: attendee.displayName } : {}),
      }));
    }
    event.etag = googleEtag();
    event.notified.push(sendUpdates);
    if (!existing) calendar.push(event);
    ctx.send(200, googleEventResource(acc, event));
  }

  function googleEventResource(acc: Account, event: StubEvent) {
    return {
      kind: 'calendar#event',
      etag: event.etag,
      id: event.id,
      status: event.isCancelled ? 'cancelled' : 'confirmed',
      htmlLink: `https://www.google.com/calendar/event?eid=${Buffer.from(`${event.id} ${acc.email}`).toString('base64url')}`,
      created: new Date().toISOString(),
      updated: new Date().toISOString(),
      ...(event.summary === undefined ? {} : { summary: event.summary }),
      ...(event.description === undefined ? {} : { description: event.description }),
      creator: { email: acc.email, self: true },
      organizer: { email: acc.email, self: true },
      start: event.startRaw,
      end: event.endRaw,
      iCalUID: `${event.id}@google.com`,
      sequence: event.sequence,
      ...(event.attendees.length > 0
        ? {
            attendees: event.attendees.map((attendee) => ({
              email: attendee.email,
              ...(attendee.name ? { displayName: attendee.name } : {}),
              responseStatus: 'needsAction',
            })),
          }
        : {}),
      reminders: { useDefault: true },
      eventType: 'default',
    };
  }

  // ---- Microsoft identity platform ----

  function aadError(ctx: Ctx, status: number, error: string, code: number) {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date().toISOString().replace('T', ' ').slice(0, 19) + 'Z';
    ctx.send(status, {
      error,
      error_description: `AADSTS${code}: ${AADSTS_MESSAGES[code] ?? 'Error.'}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    });
  }

  function normalizeGraphScope(scope: string): string | undefined {
    const lower = scope.toLowerCase();
    if (OIDC_SCOPES.has(lower)) return lower;
    const short = lower.startsWith(GRAPH_RESOURCE) ? lower.slice(GRAPH_RESOURCE.length) : lower;
    return GRAPH_SCOPES.has(short) ? short : undefined;
  }

  function microsoftAuthorize(ctx: Ctx) {
    const q = ctx.url.searchParams;
    const email = ctx.req.headers['x-stub-email'];
    if (q.get('client_id') !== microsoft.clientId) return htmlError(ctx, 400, `AADSTS700016: ${AADSTS_MESSAGES[700016]}`);
    const redirectUri = q.get('redirect_uri');
    if (!redirectUri || !/^https?:\/\//u.test(redirectUri)) {
      return htmlError(ctx, 400, 'AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application.');
    }
    const state = q.get('state');
    const withState = (params: Record<string, string>) => (state === null ? params : { ...params, state });
    if (q.get('response_type') !== 'code') return redirect(ctx, redirectUri, withState({ error: 'unsupported_response_type' }));
    const responseMode = q.get('response_mode') ?? 'query';
    if (responseMode !== 'query') {
      return redirect(ctx, redirectUri, withState({ error: 'invalid_request', error_description: 'AADSTS900144: this stub answers response_mode=query only.' }));
    }
    const requested = (q.get('scope') ?? '').split(/\s+/u).filter(Boolean);
    const scopes = requested.map(normalizeGraphScope);
    if (requested.length === 0 || scopes.some((scope) => scope === undefined)) {
      return redirect(ctx, redirectUri, withState({ error: 'invalid_scope', error_description: 'AADSTS70011: The provided value for the input parameter \'scope\' is not valid.' }));
    }
    const method = q.get('code_challenge_method') ?? undefined;
    const challenge = q.get('code_challenge') ?? undefined;
    if ((method && method !== 'S256' && method !== 'plain') || (method && !challenge)) {
      return redirect(ctx, redirectUri, withState({ error: 'invalid_request', error_description: 'AADSTS501491: Invalid code_challenge_method.' }));
    }
    const acc = account('microsoft', typeof email === 'string' ? email : 'user@contoso.onmicrosoft.com');
    const granted = scopes.filter((scope): scope is string => scope !== undefined);
    const code = `0.A${randomBytes(48).toString('base64url')}`;
    codes.set(code, {
      provider: 'microsoft',
      account: acc,
      clientId: microsoft.clientId,
      redirectUri,
      challenge,
      method: challenge ? method ?? 'plain' : undefined,
      scopes: granted,
      refresh: granted.includes('offline_access'),
      expiresAt: Date.now() + 600_000,
    });
    redirect(ctx, redirectUri, withState({ code, session_state: randomUUID() }));
  }

  function microsoftTokenBody(grant: Grant, withRefresh: boolean): Record<string, unknown> {
    const refreshToken = withRefresh ? `1.AQ${randomBytes(48).toString('base64url')}` : undefined;
    if (refreshToken) refreshTokens.set(refreshToken, grant);
    const resourceScopes = grant.scopes.filter((scope) => GRAPH_SCOPES.has(scope)).map((scope) => `${GRAPH_RESOURCE}${scope === 'user.read' ? 'User.Read' : scope === 'calendars.readwrite' ? 'Calendars.ReadWrite' : scope}`);
    return {
      token_type: 'Bearer',
      scope: resourceScopes.join(' '),
      expires_in: ttl,
      ext_expires_in: ttl,
      access_token: issue(grant),
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  }

  function microsoftToken(ctx: Ctx) {
    if (!ctx.record.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
      return aadError(ctx, 400, 'invalid_request', 900144);
    }
    const form = ctx.body as Record<string, string>;
    const client = clientCredentials(ctx, form);
    if (client.id !== microsoft.clientId) return aadError(ctx, 400, 'unauthorized_client', 700016);
    if (client.secret !== microsoft.clientSecret) return aadError(ctx, 401, 'invalid_client', 7000215);
    if (!form.grant_type) return aadError(ctx, 400, 'invalid_request', 900144);

    if (form.grant_type === 'authorization_code') {
      const code = form.code ? codes.get(form.code) : undefined;
      if (!code || code.provider !== 'microsoft') return aadError(ctx, 400, 'invalid_grant', 70000);
      if (code.usedBy !== undefined) {
        for (const grant of refreshTokens.values()) if (grant.id === code.usedBy) grant.revoked = true;
        return aadError(ctx, 400, 'invalid_grant', 54005);
      }
      if (code.expiresAt < Date.now()) return aadError(ctx, 400, 'invalid_grant', 70008);
      if (form.redirect_uri !== code.redirectUri) return aadError(ctx, 400, 'invalid_grant', 70000);
      if (!pkceMatches(code, form.code_verifier)) return aadError(ctx, 400, 'invalid_grant', 501481);
      const grant: Grant = { id: randomUUID(), provider: 'microsoft', account: code.account, clientId: client.id, scopes: code.scopes, revoked: false };
      code.usedBy = grant.id;
      refreshTokens.set(`none:${grant.id}`, grant);
      return ctx.send(200, microsoftTokenBody(grant, code.refresh));
    }
    if (form.grant_type === 'refresh_token') {
      const grant = form.refresh_token ? refreshTokens.get(form.refresh_token) : undefined;
      if (!grant || grant.provider !== 'microsoft') return aadError(ctx, 400, 'invalid_grant', 70000);
      if (grant.revoked) return aadError(ctx, 400, 'invalid_grant', grant.aadsts ?? 70008);
      // The refresh token rotates; the old one stays valid until it expires, as Microsoft documents.
      return ctx.send(200, microsoftTokenBody(grant, true));
    }
    return aadError(ctx, 400, 'unsupported_grant_type', 70000);
  }

  // ---- Microsoft Graph ----

  function graphError(ctx: Ctx, status: number, code: string, message: string, headers: Record<string, string> = {}) {
    ctx.send(
      status,
      { error: { code, message, innerError: { date: new Date().toISOString().slice(0, 19), 'request-id': randomUUID(), 'client-request-id': randomUUID() } } },
      headers,
    );
  }

  function graphApi(ctx: Ctx, path: string) {
    const grant = bearer(ctx, 'microsoft');
    if (!grant) return graphError(ctx, 401, 'InvalidAuthenticationToken', 'Access token has expired or is not yet valid.');
    const acc = grant.account;
    const canRead = grant.scopes.includes('calendars.read') || grant.scopes.includes('calendars.readwrite');
    const canWrite = grant.scopes.includes('calendars.readwrite');
    const denied = () => graphError(ctx, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');

    if (path === '/v1.0/me' && ctx.req.method === 'GET') {
      if (!grant.scopes.includes('user.read')) return graphError(ctx, 403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
      return ctx.send(200, {
        '@odata.context': `${GRAPH_RESOURCE}v1.0/$metadata#users/$entity`,
        id: acc.id,
        displayName: acc.email.split('@')[0],
        mail: acc.email,
        userPrincipalName: acc.email,
      });
    }
    const view = /^\/v1\.0\/me(?:\/calendars\/([^/]+))?\/calendarView$/u.exec(path);
    if (view && ctx.req.method === 'GET') {
      if (!canRead) return denied();
      const calendarId = view[1] === undefined ? undefined : decodeURIComponent(view[1]);
      if (calendarId !== undefined && !calendarOf(acc, calendarId)) {
        return graphError(ctx, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      }
      return graphCalendarView(ctx, acc, calendarId, path);
    }
    const create = /^\/v1\.0\/me(?:\/calendars\/([^/]+))?\/events$/u.exec(path);
    if (create && ctx.req.method === 'POST') {
      if (!canWrite) return denied();
      const calendar = calendarOf(acc, create[1] === undefined ? undefined : decodeURIComponent(create[1]));
      if (!calendar) return graphError(ctx, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      return graphWriteEvent(ctx, acc, calendar, undefined);
    }
    if (create && ctx.req.method === 'GET') {
      if (!canRead) return denied();
      const calendar = calendarOf(acc, create[1] === undefined ? undefined : decodeURIComponent(create[1]));
      if (!calendar) return graphError(ctx, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      return graphEventsList(ctx, acc, calendar);
    }
    const one = /^\/v1\.0\/me\/events\/([^/]+)$/u.exec(path);
    if (one) {
      if (!canRead) return denied();
      const id = decodeURIComponent(one[1] ?? '');
      let found: { event: StubEvent; calendar: StubEvent[] } | undefined;
      for (const calendar of acc.calendars.values()) {
        const event = calendar.find((candidate) => candidate.id === id);
        if (event) found = { event, calendar };
      }
      if (!found) return graphError(ctx, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
      if (ctx.req.method === 'GET') return ctx.send(200, graphEventResource(acc, found.event, undefined));
      if (!canWrite) return denied();
      if (ctx.req.method === 'PATCH') return graphWriteEvent(ctx, acc, found.calendar, found.event);
      if (ctx.req.method === 'DELETE') {
        found.calendar.splice(found.calendar.indexOf(found.event), 1);
        return ctx.send(204, undefined);
      }
    }
    graphError(ctx, 400, 'BadRequest', `Resource not found for the segment '${path.split('/').pop() ?? ''}'.`);
  }

  /** The zone a Prefer: outlook.timezone="..." header asks for, UTC when none or one Graph does not take. */
  function preferredZone(ctx: Ctx): string {
    const prefer = ctx.record.headers.prefer ?? '';
    const match = /outlook\.timezone\s*=\s*"([^"]+)"/iu.exec(prefer);
    const zone = match?.[1] ?? 'UTC';
    return graphZone(zone) === undefined ? 'UTC' : zone;
  }

  function graphCalendarView(ctx: Ctx, acc: Account, calendarId: string | undefined, path: string) {
    // Graph reads these parameters case-insensitively.
    const param = (name: string) => {
      for (const [key, value] of ctx.url.searchParams) if (key.toLowerCase() === name.toLowerCase()) return value;
      return undefined;
    };
    const startParam = param('startDateTime');
    const endParam = param('endDateTime');
    if (!startParam || !endParam) {
      return graphError(ctx, 400, 'ErrorInvalidParameter', 'This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.');
    }
    const min = parseGraphQueryTime(startParam);
    const max = parseGraphQueryTime(endParam);
    if (Number.isNaN(min) || Number.isNaN(max)) return graphError(ctx, 400, 'ErrorInvalidParameter', 'The value of the parameter StartDateTime or EndDateTime is not valid.');
    const top = Number(param('$top') ?? 10);
    const skip = Number(param('$skip') ?? 0);
    const size = Math.max(1, Math.min(Number.isInteger(top) && top > 0 ? top : 10, pageSize));
    const zone = preferredZone(ctx);
    const select = param('$select')?.split(',').map((field) => field.trim());
    const all = (calendarOf(acc, calendarId) ?? [])
      .filter((event) => event.start.getTime() < max && event.end.getTime() > min)
      .sort((a, b) => a.start.getTime() - b.start.getTime());
    const page = all.slice(skip, skip + size);
    const next = skip + size < all.length;
    const nextUrl = new URL(`${baseUrl}/graph.microsoft.com${path}`);
    for (const [key, value] of ctx.url.searchParams) if (key !== '$skip') nextUrl.searchParams.set(key, value);
    nextUrl.searchParams.set('$skip', String(skip + size));
    ctx.send(
      200,
      {
        '@odata.context': `${GRAPH_RESOURCE}v1.0/$metadata#users('${acc.id}')/calendarView`,
        value: page.map((event) => graphEventResource(acc, event, zone, select)),
        ...(next ? { '@odata.nextLink': nextUrl.toString() } : {}),
      },
      { 'preference-applied': `outlook.timezone="${zone}"` },
    );
  }

  /** A calendar's events, all or those with one extended property (the only $filter Graph is asked here). */
  function graphEventsList(ctx: Ctx, acc: Account, calendar: StubEvent[]) {
    const filter = ctx.url.searchParams.get('$filter');
    const property = filter === null
      ? undefined
      : /^singleValueExtendedProperties\/any\(ep:\s*ep\/id eq '([^']*)' and ep\/value eq '([^']*)'\)$/iu.exec(filter);
    if (filter !== null && !property) return graphError(ctx, 400, 'BadRequest', 'Invalid filter clause');
    const select = ctx.url.searchParams.get('$select')?.split(',').map((field) => field.trim());
    const found = calendar.filter((event) => !property || event.extendedProperties?.[property[1] ?? ''] === property[2]);
    ctx.send(200, {
      '@odata.context': `${GRAPH_RESOURCE}v1.0/$metadata#users('${acc.id}')/events`,
      value: found.map((event) => graphEventResource(acc, event, undefined, select)),
    });
  }

  /** A Graph create with a transactionId: undefined to go on and create, or the answer already sent. */
  function graphRepeatedCreate(ctx: Ctx, acc: Account, transactionId: string, made: string): true | undefined {
    const used = acc.transactions.get(transactionId);
    if (!used) return undefined;
    const first = [...acc.calendars.values()].flat().find((event) => event.id === used.eventId);
    if (first && used.made === made) ctx.send(201, graphEventResource(acc, first, undefined));
    else {
      graphError(ctx, 400, 'ErrorDuplicateTransactionId',
        "Your request can't be completed. The TransactionId specified in the request has already been used to create a different event.");
    }
    return true;
  }

  function graphWriteEvent(ctx: Ctx, acc: Account, calendar: StubEvent[], existing: StubEvent | undefined) {
    const body = (typeof ctx.body === 'object' && ctx.body !== null ? ctx.body : {}) as Record<string, unknown>;
    const { transactionId, ...written } = body;
    if (transactionId !== undefined && (existing || typeof transactionId !== 'string')) {
      return graphError(ctx, 400, 'BadRequest', existing ? 'transactionId cannot be changed.' : 'Invalid transactionId.');
    }
    const calendarKey = [...acc.calendars].find(([, events]) => events === calendar)?.[0] ?? '';
    const made = JSON.stringify([calendarKey, written]);
    if (typeof transactionId === 'string' && graphRepeatedCreate(ctx, acc, transactionId, made)) return;
    const properties = body.singleValueExtendedProperties;
    if (properties !== undefined && !(Array.isArray(properties) && properties.every((property: unknown) =>
      typeof (property as { id?: unknown }).id === 'string' && typeof (property as { value?: unknown }).value === 'string'))) {
      return graphError(ctx, 400, 'BadRequest', 'Invalid singleValueExtendedProperties.');
    }
    /** An instant, or the zone name Graph refuses (undefined when the value is not a dateTimeTimeZone at all). */
    type Read = { instant: Date; raw: { dateTime: string; timeZone: string } } | { refused: string } | undefined;
    const time = (value: unknown): Read => {
      if (typeof value !== 'object' || value === null) return undefined;
      const { dateTime, timeZone } = value as { dateTime?: unknown; timeZone?: unknown };
      if (typeof dateTime !== 'string' || typeof timeZone !== 'string') return undefined;
      const zone = graphZone(timeZone);
      if (zone === undefined) return { refused: timeZone };
      const instant = zonedToUtc(dateTime, zone);
      return Number.isNaN(instant) ? undefined : { instant: new Date(instant), raw: { dateTime, timeZone } };
    };
    const startTime = body.start === undefined ? undefined : time(body.start);
    const endTime = body.end === undefined ? undefined : time(body.end);
    for (const read of [startTime, endTime]) {
      if (read && 'refused' in read) {
        return graphError(ctx, 400, 'TimeZoneNotSupportedException',
          `A valid TimeZone value must be specified. The following TimeZone value is not supported: '${read.refused}'.`);
      }
    }
    const start = startTime && 'instant' in startTime ? startTime : undefined;
    const end = endTime && 'instant' in endTime ? endTime : undefined;
    if ((body.start !== undefined && !start) || (body.end !== undefined && !end)) {
      return graphError(ctx, 400, 'ErrorPropertyValidationFailure', 'At least one property failed validation.');
    }
    if (!existing && (!start || !end)) return graphError(ctx, 400, 'ErrorPropertyValidationFailure', 'Start and End are required.');
    const startAt = start?.instant ?? existing?.start;
    const endAt = end?.instant ?? existing?.end;
    if (!startAt || !endAt || endAt.getTime() < startAt.getTime()) {
      return graphError(ctx, 400, 'ErrorInvalidRequest', "Your request can't be completed. The end time should be later than the start time.");
    }
    const attendees = body.attendees;
    if (attendees !== undefined && !Array.isArray(attendees)) return graphError(ctx, 400, 'BadRequest', 'Invalid attendees.');
    const event: StubEvent = existing ?? {
      id: `AAMkAG${randomBytes(60).toString('base64url')}=`,
      etag: '',
      start: startAt,
      end: endAt,
      startRaw: start?.raw ?? { dateTime: '' },
      endRaw: end?.raw ?? { dateTime: '' },
      showAs: 'busy',
      isCancelled: false,
      attendees: [],
      sequence: 0,
      notified: [],
      seeded: false,
    };
    event.start = startAt;
    event.end = endAt;
    if (start) event.startRaw = start.raw;
    if (end) event.endRaw = end.raw;
    if (typeof body.subject === 'string') event.summary = body.subject;
    const content = (body.body as { content?: unknown } | undefined)?.content;
    if (typeof content === 'string') event.description = content;
    if (typeof body.showAs === 'string') event.showAs = body.showAs;
    if (Array.isArray(attendees)) {
      event.attendees = (attendees as { emailAddress?: { address?: string; name?: string } }[]).map((attendee) => ({
        ...(attendee.emailAddress?.address ? { email: attendee.emailAddress.address } : {}),
        ...(attendee.emailAddress?.name ? { name: attendee.emailAddress.name } : {}),
      }));
      // Graph sends the organizer's invitations itself whenever attendees are set.
      if (event.attendees.length > 0) event.notified.push('graph');
    }
    if (Array.isArray(properties)) {
      event.extendedProperties = {
        ...event.extendedProperties,
        ...Object.fromEntries((properties as { id: string; value: string }[]).map((property) => [property.id, property.value])),
      };
    }
    event.etag = `W/"${randomBytes(16).toString('base64')}"`;
    if (!existing) calendar.push(event);
    if (typeof transactionId === 'string') acc.transactions.set(transactionId, { eventId: event.id, made });
    ctx.send(existing ? 200 : 201, graphEventResource(acc, event, undefined));
  }

  function graphEventResource(acc: Account, event: StubEvent, zone: string | undefined, select?: string[]) {
    // Without a Prefer header Graph answers in UTC; an event read back after a write keeps the zone it was written in.
    const render = (instant: Date, raw: { dateTime: string; timeZone?: string }) => {
      const shown = zone ?? raw.timeZone ?? 'UTC';
      // An all-day event's dates, whatever zone they are labelled with.
      if (event.isAllDay) return { dateTime: `${raw.dateTime.slice(0, 10)}T00:00:00.0000000`, timeZone: shown };
      return { dateTime: `${wallClock(instant.getTime(), graphZone(shown) ?? 'UTC')}.0000000`, timeZone: shown };
    };
    const full: Record<string, unknown> = {
      '@odata.etag': event.etag,
      id: event.id,
      createdDateTime: new Date().toISOString(),
      lastModifiedDateTime: new Date().toISOString(),
      changeKey: event.etag.slice(3, -1),
      subject: event.summary ?? '',
      body: { contentType: 'text', content: event.description ?? '' },
      start: render(event.start, event.startRaw),
      end: render(event.end, event.endRaw),
      showAs: event.showAs,
      isCancelled: event.isCancelled,
      isAllDay: event.isAllDay ?? false,
      originalStartTimeZone: event.originalStartTimeZone ?? event.startRaw.timeZone ?? 'UTC',
      originalEndTimeZone: event.originalStartTimeZone ?? event.endRaw.timeZone ?? 'UTC',
      attendees: event.attendees.map((attendee) => ({
        type: 'required',
        status: { response: 'none', time: '0001-01-01T00:00:00Z' },
        emailAddress: { address: attendee.email ?? '', name: attendee.name ?? attendee.email ?? '' },
      })),
      organizer: { emailAddress: { name: acc.email.split('@')[0], address: acc.email } },
      webLink: `https://outlook.office365.com/owa/?itemid=${encodeURIComponent(event.id)}&exvsurl=1&path=/calendar/item`,
    };
    if (!select) return full;
    const picked: Record<string, unknown> = { '@odata.etag': event.etag, id: event.id };
    for (const field of select) if (field in full) picked[field] = full[field];
    return picked;
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    baseUrl,
    google: {
      ...google,
      accountsBaseUrl: `${baseUrl}/accounts.google.com`,
      oauth2BaseUrl: `${baseUrl}/oauth2.googleapis.com`,
      apiBaseUrl: `${baseUrl}/www.googleapis.com`,
    },
    microsoft: {
      ...microsoft,
      loginBaseUrl: `${baseUrl}/login.microsoftonline.com`,
      graphBaseUrl: `${baseUrl}/graph.microsoft.com`,
    },
    requests,

    async authorize(authorizationUrl, authorizeOptions = {}) {
      const headers: Record<string, string> = {};
      if (authorizeOptions.email) headers['x-stub-email'] = authorizeOptions.email;
      if (authorizeOptions.grantScopes) headers['x-stub-grant-scopes'] = authorizeOptions.grantScopes.join(' ');
      const response = await fetch(authorizationUrl, { redirect: 'manual', headers });
      const location = response.headers.get('location') ?? '';
      await response.text();
      if (!location) return { location, status: response.status };
      const params = new URL(location).searchParams;
      return {
        location,
        status: response.status,
        ...(params.get('code') ? { code: params.get('code') ?? '' } : {}),
        ...(params.get('state') ? { state: params.get('state') ?? '' } : {}),
        ...(params.get('error') ? { error: params.get('error') ?? '' } : {}),
      };
    },

    seedBusy(provider, email, events, seedOptions = {}) {
      const calendar = calendarOf(account(provider, email), seedOptions.calendarId, true) ?? [];
      for (const seed of events) {
        const allDay = seed.allDay;
        const midnight = (date: string | Date) => `${String(date).slice(0, 10)}T00:00:00`;
        const start = allDay ? new Date(zonedToUtc(midnight(seed.start), allDay.timeZone)) : new Date(seed.start);
        const end = allDay ? new Date(zonedToUtc(midnight(seed.end), allDay.timeZone)) : new Date(seed.end);
        const zoneName = allDay ? (allDay.originalStartTimeZone ?? allDay.timeZone) : 'UTC';
        calendar.push({
          id: provider === 'google' ? randomBytes(13).toString('hex') : `AAMkAG${randomBytes(60).toString('base64url')}=`,
          etag: provider === 'google' ? googleEtag() : `W/"${randomBytes(16).toString('base64')}"`,
          start,
          end,
          startRaw: { dateTime: allDay ? midnight(seed.start) : start.toISOString(), timeZone: zoneName },
          endRaw: { dateTime: allDay ? midnight(seed.end) : end.toISOString(), timeZone: zoneName },
          ...(allDay ? { isAllDay: true, originalStartTimeZone: zoneName } : {}),
          ...(seed.summary ? { summary: seed.summary } : {}),
          showAs: seed.showAs ?? 'busy',
          isCancelled: seed.isCancelled ?? false,
          attendees: [],
          sequence: 0,
          notified: [],
          seeded: true,
        });
      }
    },

    events(provider, email, calendarId) {
      return calendarOf(account(provider, email), calendarId) ?? [];
    },

    failNext(status, headers = {}, failOptions = {}) {
      failures.push({ status, headers, ...failOptions });
    },

    revokeRefreshToken(refreshToken, revokeOptions = {}) {
      const grant = refreshTokens.get(refreshToken);
      if (!grant) throw new Error('No such refresh token.');
      grant.revoked = true;
      if (revokeOptions.aadsts !== undefined) grant.aadsts = revokeOptions.aadsts;
    },

    revokeAccount(provider, email) {
      const acc = accounts.get(`${provider}:${email.toLowerCase()}`);
      if (!acc) throw new Error(`No ${provider} account ${email}.`);
      for (const grant of refreshTokens.values()) if (grant.account === acc) grant.revoked = true;
    },

    renameAccount(provider, email, newEmail) {
      const acc = accounts.get(`${provider}:${email.toLowerCase()}`);
      if (!acc) throw new Error(`No ${provider} account ${email}.`);
      if (accounts.has(`${provider}:${newEmail.toLowerCase()}`)) throw new Error(`${newEmail} is taken.`);
      accounts.delete(`${provider}:${email.toLowerCase()}`);
      accounts.set(`${provider}:${newEmail.toLowerCase()}`, acc);
      if (provider === 'google') {
        // Google's primary calendar id is the account's address, and follows it.
        const primary = acc.calendars.get(acc.email);
        acc.calendars.delete(acc.email);
        if (primary) acc.calendars.set(newEmail, primary);
      }
      acc.email = newEmail;
    },

    expireAccessTokens() {
      for (const token of accessTokens.values()) token.expiresAt = 0;
    },

    setPageSize(size) {
      pageSize = size;
    },

    reset() {
      requests.length = 0;
      failures = [];
      pageSize = 10;
      accounts.clear();
      codes.clear();
      refreshTokens.clear();
      accessTokens.clear();
    },

    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function matches(match: string | RegExp | undefined, target: string): boolean {
  if (match === undefined) return true;
  return typeof match === 'string' ? target.includes(match) : match.test(target);
}

function defaultFailureBody(host: StubHost | 'unknown', status: number): unknown {
  if (host === 'www.googleapis.com') {
    const reason = status === 429 || status === 403 ? 'rateLimitExceeded' : status >= 500 ? 'backendError' : 'badRequest';
    const message = reason === 'rateLimitExceeded' ? 'Rate Limit Exceeded' : reason === 'backendError' ? 'Backend Error' : 'Bad Request';
    return {
      error: {
        code: status,
        message,
        errors: [{ domain: reason === 'rateLimitExceeded' ? 'usageLimits' : 'global', reason, message }],
        ...(status === 429 ? { status: 'RESOURCE_EXHAUSTED' } : {}),
      },
    };
  }
  if (host === 'graph.microsoft.com') {
    const code = status === 429 ? 'TooManyRequests' : status === 503 ? 'ServiceNotAvailable' : status >= 500 ? 'generalException' : 'BadRequest';
    return { error: { code, message: code === 'TooManyRequests' ? 'Too many requests.' : 'The service is temporarily unavailable.' } };
  }
  return { error: status >= 500 ? 'server_error' : 'temporarily_unavailable', error_description: `stubbed ${status}` };
}

function json(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(payload));
}

/** A Google account id as ID tokens carry it in `sub`: 21 digits, unique across stubs (tests share one database). */
function googleSubject(): string {
  return `1${(BigInt(`0x${randomBytes(12).toString('hex')}`) % 10n ** 20n).toString().padStart(20, '0')}`;
}

function googleEtag(): string {
  return `"${Date.now()}${String(Math.floor(Math.random() * 1000)).padStart(3, '0')}"`;
}

function mergeBusy(intervals: { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  const merged: { start: number; end: number }[] = [];
  for (const interval of sorted) {
    const last = merged[merged.length - 1];
    if (last && interval.start <= last.end) last.end = Math.max(last.end, interval.end);
    else merged.push({ ...interval });
  }
  return merged;
}

/** `2026-03-30T08:00:00Z`, as Google writes free/busy times for timeZone UTC. */
function rfc3339Utc(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/u, 'Z');
}

/** Graph takes startDateTime with or without an offset; without, it is UTC. */
function parseGraphQueryTime(value: string): number {
  return Date.parse(/(Z|[+-]\d{2}:?\d{2})$/u.test(value) ? value : `${value}Z`);
}

// The stub's own zone arithmetic (Intl's longOffset names), independent of the client's.

function zoneOffsetMs(ms: number, zone: string): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
    .formatToParts(new Date(ms))
    .find((part) => part.type === 'timeZoneName')?.value;
  const match = /GMT([+-])(\d{2}):(\d{2})/u.exec(name ?? '');
  if (!match) return 0;
  const minutes = Number(match[2]) * 60 + Number(match[3]);
  return (match[1] === '-' ? -minutes : minutes) * 60_000;
}

/** A wall time (optionally with fraction) in a zone → epoch ms; NaN when unreadable or the zone is unknown. */
function zonedToUtc(wall: string, zone: string): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?$/u.exec(wall);
  if (!match) return NaN;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    return NaN;
  }
  const asUtc = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6] ?? 0));
  let guess = asUtc - zoneOffsetMs(asUtc, zone);
  guess = asUtc - zoneOffsetMs(guess, zone);
  return guess;
}

/** `2026-03-30T10:00:00` on a clock in the zone. */
function wallClock(ms: number, zone: string): string {
  const shifted = new Date(ms + zoneOffsetMs(ms, zone));
  return shifted.toISOString().slice(0, 19);
}
