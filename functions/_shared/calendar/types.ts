/**
 * The calendar provider layer, provider-neutral: what google.ts and
 * microsoft.ts take and give, and the errors they throw. The edge function
 * (OAuth start and callback, availability, appointments) works with these
 * alone, so a third provider is one more module implementing CalendarClient.
 *
 * Times are instants (`Date`); a time zone travels next to them only where the
 * provider needs one to show an event in the right zone (CalendarEventInput).
 */

export const CALENDAR_PROVIDERS = ['google', 'microsoft'] as const;
export type CalendarProvider = (typeof CALENDAR_PROVIDERS)[number];

/** What a token endpoint granted, in the form the rest of the code keeps. */
export interface TokenSet {
  accessToken: string;
  /**
   * Absent when the provider sent none. Google sends one only at the first
   * consent (we ask with `prompt=consent`, so at every connect) and never on
   * refresh; Microsoft sends a new one on most refreshes. refresh() returns
   * the one it was given when the provider sent no new one, so callers always
   * store the set refresh() returns, whole.
   */
  refreshToken?: string;
  /** When the access token stops working: `expires_in` from the moment the answer arrived. */
  expiresAt: Date;
  /** Space-separated scopes actually granted (Google lets users untick some). */
  scope?: string;
  /** 'Bearer' from both providers. */
  tokenType: string;
  /**
   * Who connected, when the provider said so: from Google's ID token (we ask
   * for `openid email`), from Graph's /me for Microsoft. The id is what a
   * connection is keyed by (a reconnect of the account finds it whatever its
   * e-mail is now); the e-mail is for display ("Connected as ..."). Never for
   * authorization.
   */
  account?: CalendarAccount;
}

export interface CalendarAccount {
  /** The provider's stable id of the user (Google `sub`, Graph user id); never reassigned, unlike an e-mail. */
  id: string;
  email?: string;
}

/** A half-open interval of time [start, end). */
export interface Interval {
  start: Date;
  end: Date;
}

/** A time the calendar's owner is not free. */
export type BusyInterval = Interval;

export interface BusyQuery {
  timeMin: Date;
  timeMax: Date;
  /** The calendars to ask about (default ['primary'], the account's default calendar). */
  calendarIds?: string[];
  /**
   * The zone the query is for (the bot's or org's): an all-day Outlook event
   * whose own zone Graph does not name, or names in a way we cannot read
   * (`tzone://Microsoft/Custom`), fills whole days there. Without it, UTC days.
   */
  timeZone?: string;
}

/**
 * Busy times, and the calendars the provider could not answer for. A calendar
 * in `errors` is NOT free: availability must say it is missing rather than
 * treat it as empty.
 */
export interface BusyResult {
  busy: BusyInterval[];
  errors: { calendarId: string; reason: string }[];
}

export interface CalendarAttendee {
  email?: string;
  name?: string;
}

/** An appointment as mirrored to a connected calendar. */
export interface CalendarEventInput {
  summary: string;
  description?: string;
  start: Date;
  end: Date;
  /** IANA zone (e.g. 'Europe/Berlin') the event is shown in by the provider; the instants decide when it is. */
  timeZone: string;
  attendees?: CalendarAttendee[];
}

/** A change to a mirrored event: only what is given changes; a move gives start, end (both) and timeZone. */
export type CalendarEventUpdate = Partial<CalendarEventInput>;

export interface CalendarEventResult {
  /** The provider's event id: keep it to move or delete the event later. */
  externalId: string;
  etag?: string;
}

export interface EventWriteOptions {
  /** Default 'primary' (Google's primary calendar, Microsoft's default calendar). */
  calendarId?: string;
  /**
   * Whether the provider e-mails the attendees (default false). Google:
   * `sendUpdates=all` or `none`. Microsoft has no such switch (Graph invites
   * every attendee of an organizer's event), so with false the attendees are
   * listed in the event's body instead of being invited. Attendees named in
   * the text (and, at Google, any without an e-mail) are appended to the
   * description, so an update that changes attendees should give the
   * description again.
   */
  notifyAttendees?: boolean;
}

/** What createEvent takes besides EventWriteOptions. */
export interface EventCreateOptions extends EventWriteOptions {
  /**
   * Makes the create repeatable: a create whose answer was lost (a timeout,
   * a 503 after the provider acted) is sent again with the same key and
   * yields the same event, not a second one. 32 lower-case hex characters
   * (a uuid's hex), derived by the caller from what the event stands for.
   * Google: the event's id (hex is base32hex; a taken id answers 409 and the
   * event is updated instead). Microsoft: the event's transactionId, and an
   * extended property to find the event by when Graph refuses the repeat.
   */
  idempotencyKey?: string;
}

/** The create's idempotency key, checked: a malformed one would be refused by Google or match nothing at Graph. */
export function checkIdempotencyKey(key: string): string;
export function checkIdempotencyKey(key: string | undefined): string | undefined;
export function checkIdempotencyKey(key: string | undefined): string | undefined {
  if (key !== undefined && !/^[0-9a-f]{32}$/u.test(key)) throw new TypeError('An idempotency key is 32 lower-case hex characters.');
  return key;
}

export interface AuthorizationRequest {
  /** Exactly as registered at the provider; sent again, identical, with the code exchange. */
  redirectUri: string;
  /** The signed state from oauth-state.ts. */
  state: string;
  /** S256 challenge of the verifier the caller keeps server-side (pkce.ts). */
  codeChallenge: string;
  /** Pre-fills the account chooser. */
  loginHint?: string;
}

export interface CodeExchange {
  code: string;
  codeVerifier: string;
  redirectUri: string;
}

/**
 * One provider, configured with our OAuth app (client id and secret) and its
 * base URLs. Access tokens are passed per call: a client serves every
 * connection.
 */
export interface CalendarClient {
  readonly provider: CalendarProvider;
  /** The scopes authorizationUrl asks for. */
  readonly scopes: readonly string[];
  authorizationUrl(request: AuthorizationRequest): string;
  exchangeCode(exchange: CodeExchange): Promise<TokenSet>;
  refresh(refreshToken: string): Promise<TokenSet>;
  /**
   * Ends our access at the provider where it offers that (Google: for the
   * whole account, every token our client holds for that user, not only this
   * one). `revoked: false` where it does not (Microsoft): deleting our
   * tokens is then all a disconnect can do. A token the provider no longer
   * knows counts as revoked.
   */
  revoke(token: string): Promise<{ revoked: boolean }>;
  busyTimes(accessToken: string, query: BusyQuery): Promise<BusyResult>;
  createEvent(accessToken: string, event: CalendarEventInput, options?: EventCreateOptions): Promise<CalendarEventResult>;
  updateEvent(
    accessToken: string,
    externalId: string,
    changes: CalendarEventUpdate,
    options?: EventWriteOptions,
  ): Promise<CalendarEventResult>;
  /**
   * Deletes the event a create with this idempotency key made, if any: a
   * create whose answer was lost left no id to delete by. `deleted: false`
   * when there is none.
   */
  deleteEventByKey(accessToken: string, key: string, options?: EventWriteOptions): Promise<{ deleted: boolean }>;
  /** `deleted: false` when the event was already gone (404/410): the end state is the one wanted. */
  deleteEvent(accessToken: string, externalId: string, options?: EventWriteOptions): Promise<{ deleted: boolean }>;
}

/**
 * `invalid_grant`: the refresh token (or the code) is no longer good: consent
 * revoked, expired, password changed. Only the user can fix it: mark the
 * connection needs_reauth and tell the org. `interaction_required` and
 * `consent_required` from Microsoft (MFA or new consent needed) end up here
 * too, since they need the same fix. `unauthorized`: the provider refused the
 * access token (401): refresh and try once more. `insufficient_scope`: the
 * token works but lacks a permission the call needs (a scope unticked on
 * Google's consent screen): reconnect.
 */
export type CalendarAuthErrorKind = 'invalid_grant' | 'unauthorized' | 'insufficient_scope';

export class CalendarAuthError extends Error {
  readonly kind: CalendarAuthErrorKind;
  readonly provider: CalendarProvider;
  /** The provider's error code (`invalid_grant`, `AADSTS70008`, `authError`...), for logs and the connection's reason. */
  readonly providerCode: string | undefined;

  constructor(
    kind: CalendarAuthErrorKind,
    provider: CalendarProvider,
    message: string,
    options: { providerCode?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'CalendarAuthError';
    this.kind = kind;
    this.provider = provider;
    this.providerCode = options.providerCode;
  }

  /** True when only the user can fix it (reconnect). */
  get needsReauth(): boolean {
    return this.kind !== 'unauthorized';
  }
}

/** The provider throttled us and the wait it asked for was longer than we retry within one request. */
export class CalendarRateLimitError extends Error {
  readonly provider: CalendarProvider;
  /** The provider's Retry-After, else our backoff's next delay. */
  readonly retryAfterSeconds: number;

  constructor(provider: CalendarProvider, message: string, retryAfterSeconds: number, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'CalendarRateLimitError';
    this.provider = provider;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Anything else that went wrong at or on the way to the provider. `status`
 * 0: no HTTP answer (network, timeout, unreadable body). `retryable`: the
 * same request may succeed later (5xx, network); a 4xx will fail again.
 */
export class CalendarProviderError extends Error {
  readonly provider: CalendarProvider;
  readonly status: number;
  readonly retryable: boolean;
  /** The provider's error code when it gave one (Google's `reason`, Graph's `code`, OAuth's `error`). */
  readonly providerCode: string | undefined;

  constructor(
    provider: CalendarProvider,
    message: string,
    options: { status: number; retryable: boolean; providerCode?: string; cause?: unknown },
  ) {
    super(message, { cause: options.cause });
    this.name = 'CalendarProviderError';
    this.provider = provider;
    this.status = options.status;
    this.retryable = options.retryable;
    this.providerCode = options.providerCode;
  }
}
