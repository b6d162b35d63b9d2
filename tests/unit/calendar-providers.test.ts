import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CalendarAuthError,
  type CalendarClient,
  CalendarProviderError,
  CalendarRateLimitError,
  createGoogleCalendar,
  createMicrosoftCalendar,
  createPkcePair,
  type HttpOptions,
  retryAfterSeconds,
  type TokenSet,
} from '../../functions/_shared/calendar/index.ts';
import { type CalendarStub, startCalendarStub } from '../support/calendar-stub.ts';

const REDIRECT = 'http://127.0.0.1:54321/functions/v1/calendar/oauth/callback';
const GOOGLE_USER = 'ada@example.com';
const MS_USER = 'grace@contoso.com';
const at = (iso: string) => new Date(iso);

async function caught(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('calendar providers against the stand-in', () => {
  let stub: CalendarStub;
  let waits: number[];
  beforeAll(async () => {
    stub = await startCalendarStub();
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => {
    stub.reset();
    waits = [];
  });

  const http = (): HttpOptions => ({
    sleep: async (ms) => {
      waits.push(ms);
    },
  });
  const google = (extra: HttpOptions = {}) =>
    createGoogleCalendar({
      clientId: stub.google.clientId,
      clientSecret: stub.google.clientSecret,
      accountsBaseUrl: stub.google.accountsBaseUrl,
      oauth2BaseUrl: stub.google.oauth2BaseUrl,
      apiBaseUrl: stub.google.apiBaseUrl,
      ...http(),
      ...extra,
    });
  const microsoft = (extra: HttpOptions & { maxPages?: number } = {}) =>
    createMicrosoftCalendar({
      clientId: stub.microsoft.clientId,
      clientSecret: stub.microsoft.clientSecret,
      loginBaseUrl: stub.microsoft.loginBaseUrl,
      graphBaseUrl: stub.microsoft.graphBaseUrl,
      ...http(),
      ...extra,
    });

  async function connect(client: CalendarClient, email: string): Promise<TokenSet> {
    const { codeVerifier, codeChallenge } = await createPkcePair();
    const redirect = await stub.authorize(client.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge }), { email });
    return client.exchangeCode({ code: redirect.code ?? '', codeVerifier, redirectUri: REDIRECT });
  }

  describe('Google freeBusy', () => {
    it('reads busy times per calendar, clipped to the range, and the calendars Google could not answer for', async () => {
      stub.seedBusy('google', GOOGLE_USER, [
        { start: '2026-03-30T08:00:00Z', end: '2026-03-30T09:00:00Z' },
        { start: '2026-03-30T08:30:00Z', end: '2026-03-30T10:00:00Z' },
        { start: '2026-03-30T12:00:00Z', end: '2026-03-30T13:00:00Z', showAs: 'free' },
        { start: '2026-03-29T22:00:00Z', end: '2026-03-30T07:00:00Z' },
      ]);
      stub.seedBusy('google', GOOGLE_USER, [{ start: '2026-03-30T15:00:00Z', end: '2026-03-30T16:00:00Z' }], {
        calendarId: 'team@group.calendar.google.com',
      });
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      const result = await client.freeBusy(
        tokens.accessToken,
        ['primary', 'team@group.calendar.google.com', 'missing@example.com'],
        at('2026-03-30T06:00:00Z'),
        at('2026-03-31T06:00:00Z'),
      );
      expect(result.calendars).toEqual({
        primary: [
          { start: at('2026-03-30T06:00:00Z'), end: at('2026-03-30T07:00:00Z') },
          { start: at('2026-03-30T08:00:00Z'), end: at('2026-03-30T10:00:00Z') },
        ],
        'team@group.calendar.google.com': [{ start: at('2026-03-30T15:00:00Z'), end: at('2026-03-30T16:00:00Z') }],
      });
      expect(result.errors).toEqual([{ calendarId: 'missing@example.com', reason: 'notFound' }]);
      const request = stub.requests.find((item) => item.path === '/calendar/v3/freeBusy');
      expect(request).toMatchObject({
        host: 'www.googleapis.com',
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.accessToken}`, 'content-type': 'application/json' },
        body: {
          timeMin: '2026-03-30T06:00:00.000Z',
          timeMax: '2026-03-31T06:00:00.000Z',
          items: [{ id: 'primary' }, { id: 'team@group.calendar.google.com' }, { id: 'missing@example.com' }],
        },
      });

      const busy = await client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') });
      expect(busy.busy).toHaveLength(2);
      expect(busy.errors).toEqual([]);
    });

    it('waits out 429 and 403 rateLimitExceeded with Retry-After, then answers', async () => {
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      stub.failNext(429, { 'Retry-After': '2' }, { match: '/freeBusy' });
      stub.failNext(403, {}, { match: '/freeBusy' });
      const result = await client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') });
      expect(result).toEqual({ busy: [], errors: [] });
      // Retry-After said 2 s; the 403 had none, so the backoff's second step (2 s).
      expect(waits).toEqual([2000, 2000]);
      expect(stub.requests.filter((item) => item.path === '/calendar/v3/freeBusy').map((item) => item.status)).toEqual([429, 403, 200]);
    });

    it('gives up with CalendarRateLimitError when the wait is too long or throttling persists', async () => {
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      stub.failNext(429, { 'Retry-After': '120' }, { match: '/freeBusy' });
      const error = await caught(client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') }));
      expect(error).toBeInstanceOf(CalendarRateLimitError);
      expect(error).toMatchObject({ retryAfterSeconds: 120, provider: 'google' });
      expect(waits).toEqual([]);

      for (let i = 0; i < 3; i += 1) stub.failNext(429, { 'Retry-After': '1' }, { match: '/freeBusy' });
      await expect(
        client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') }),
      ).rejects.toBeInstanceOf(CalendarRateLimitError);
      expect(waits).toEqual([1000, 1000]);
    });

    it('maps a 5xx to a retryable provider error and an expired access token to unauthorized', async () => {
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      stub.failNext(503, {}, { match: '/freeBusy' });
      const range = { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') };
      const error = await caught(client.busyTimes(tokens.accessToken, range));
      expect(error).toBeInstanceOf(CalendarProviderError);
      expect(error).toMatchObject({ status: 503, retryable: true, providerCode: 'backendError' });
      stub.expireAccessTokens();
      const expired = await caught(client.busyTimes(tokens.accessToken, range));
      expect(expired).toBeInstanceOf(CalendarAuthError);
      expect(expired).toMatchObject({ kind: 'unauthorized', needsReauth: false });
      // The fix for unauthorized: refresh, then it works.
      const refreshed = await client.refresh(tokens.refreshToken ?? '');
      await expect(client.busyTimes(refreshed.accessToken, range)).resolves.toEqual({ busy: [], errors: [] });
    });
  });

  describe('Google events', () => {
    it('creates, moves and deletes an event; deleting it again (or a missing one) is fine', async () => {
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      const created = await client.createEvent(tokens.accessToken, {
        summary: 'Haircut with Ada',
        description: 'Booked by the bot.',
        start: at('2026-03-29T00:30:00Z'),
        end: at('2026-03-29T01:30:00Z'),
        timeZone: 'Europe/Berlin',
        attendees: [{ email: 'caller@example.org', name: 'Caller' }, { name: 'No Email' }],
      });
      expect(created).toEqual({ externalId: expect.any(String), etag: expect.stringMatching(/^"\d+"$/) });
      const insert = stub.requests.find((item) => item.method === 'POST' && item.path.endsWith('/events'));
      expect(insert).toMatchObject({ path: '/calendar/v3/calendars/primary/events', query: { sendUpdates: 'none' } });
      // Not notified (notifyAttendees defaults to false): no guests, who would get the event on their own
      // calendar all the same; named in the description instead, as at Graph.
      expect(insert?.body).toEqual({
        summary: 'Haircut with Ada',
        description: 'Booked by the bot.\n\nAttendees: Caller <caller@example.org>, No Email',
        // Across the spring change: 01:30 CET, ends 03:30 CEST.
        start: { dateTime: '2026-03-29T01:30:00+01:00', timeZone: 'Europe/Berlin' },
        end: { dateTime: '2026-03-29T03:30:00+02:00', timeZone: 'Europe/Berlin' },
      });
      const [event] = stub.events('google', GOOGLE_USER);
      expect(event).toMatchObject({ id: created.externalId, start: at('2026-03-29T00:30:00Z'), end: at('2026-03-29T01:30:00Z'), attendees: [] });

      // The new event is busy time now.
      const busy = await client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-28T00:00:00Z'), timeMax: at('2026-03-30T00:00:00Z') });
      expect(busy.busy).toEqual([{ start: at('2026-03-29T00:30:00Z'), end: at('2026-03-29T01:30:00Z') }]);

      const moved = await client.updateEvent(
        tokens.accessToken,
        created.externalId,
        { start: at('2026-03-30T07:00:00Z'), end: at('2026-03-30T08:00:00Z'), timeZone: 'Europe/Berlin' },
        { notifyAttendees: true },
      );
      expect(moved.externalId).toBe(created.externalId);
      expect(moved.etag).not.toBe(created.etag);
      const patch = stub.requests.find((item) => item.method === 'PATCH');
      expect(patch).toMatchObject({ query: { sendUpdates: 'all' } });
      expect(patch?.body).toEqual({
        start: { dateTime: '2026-03-30T09:00:00+02:00', timeZone: 'Europe/Berlin' },
        end: { dateTime: '2026-03-30T10:00:00+02:00', timeZone: 'Europe/Berlin' },
      });
      expect(stub.events('google', GOOGLE_USER)[0]).toMatchObject({ start: at('2026-03-30T07:00:00Z'), sequence: 1, summary: 'Haircut with Ada' });

      expect(await client.deleteEvent(tokens.accessToken, created.externalId)).toEqual({ deleted: true });
      expect(stub.events('google', GOOGLE_USER)[0]?.isCancelled).toBe(true);
      // Already deleted (410) and never there (404): gone either way.
      expect(await client.deleteEvent(tokens.accessToken, created.externalId)).toEqual({ deleted: false });
      expect(await client.deleteEvent(tokens.accessToken, 'nosuchevent')).toEqual({ deleted: false });
      expect(stub.requests.filter((item) => item.method === 'DELETE').map((item) => item.status)).toEqual([204, 410, 404]);

      const missing = await caught(client.updateEvent(tokens.accessToken, 'nosuchevent', { summary: 'x' }));
      expect(missing).toMatchObject({ name: 'CalendarProviderError', status: 404, retryable: false, providerCode: 'notFound' });
    });

    it('invites attendees with an e-mail only when they are to be notified; a patch without notifying takes guests off', async () => {
      const client = google();
      const tokens = await connect(client, GOOGLE_USER);
      const event = {
        summary: 'Consultation',
        description: 'Notes',
        start: at('2026-04-01T08:00:00Z'),
        end: at('2026-04-01T08:30:00Z'),
        timeZone: 'Europe/Berlin',
        attendees: [{ email: 'caller@example.org', name: 'Caller' }, { name: 'No Email' }],
      };
      const created = await client.createEvent(tokens.accessToken, event, { notifyAttendees: true });
      const insert = stub.requests.find((item) => item.method === 'POST' && item.path.endsWith('/events'));
      expect(insert?.query).toEqual({ sendUpdates: 'all' });
      expect(insert?.body).toMatchObject({
        description: 'Notes\n\nAttendees: No Email',
        attendees: [{ email: 'caller@example.org', displayName: 'Caller' }],
      });
      expect(stub.events('google', GOOGLE_USER)[0]?.attendees).toEqual([{ email: 'caller@example.org', name: 'Caller' }]);

      await client.updateEvent(tokens.accessToken, created.externalId, event, { notifyAttendees: false });
      const patch = stub.requests.find((item) => item.method === 'PATCH');
      expect(patch?.query).toEqual({ sendUpdates: 'none' });
      expect(patch?.body).toMatchObject({ description: 'Notes\n\nAttendees: Caller <caller@example.org>, No Email', attendees: [] });
      expect(stub.events('google', GOOGLE_USER)[0]?.attendees).toEqual([]);
    });

    it('checks an event before sending it', async () => {
      const client = google();
      const event = { summary: 'x', start: at('2026-03-30T08:00:00Z'), end: at('2026-03-30T08:00:00Z'), timeZone: 'UTC' };
      await expect(client.createEvent('token', event)).rejects.toThrow(RangeError);
      await expect(client.createEvent('token', { ...event, end: at('2026-03-30T09:00:00Z'), timeZone: 'Mars/Olympus' })).rejects.toThrow(
        RangeError,
      );
      await expect(client.updateEvent('token', 'id', { start: at('2026-03-30T08:00:00Z') })).rejects.toThrow(TypeError);
      expect(stub.requests).toHaveLength(0);
    });
  });

  describe('Microsoft Graph calendarView', () => {
    it('follows @odata.nextLink through 3 pages and keeps only busy, uncancelled events', async () => {
      stub.setPageSize(3);
      stub.seedBusy('microsoft', MS_USER, [
        { start: '2026-03-30T07:00:00Z', end: '2026-03-30T08:00:00Z' },
        { start: '2026-03-30T08:00:00Z', end: '2026-03-30T08:30:00Z', showAs: 'tentative' },
        { start: '2026-03-30T09:00:00Z', end: '2026-03-30T10:00:00Z', showAs: 'free' },
        { start: '2026-03-30T10:00:00Z', end: '2026-03-30T11:00:00Z', isCancelled: true },
        { start: '2026-03-30T11:00:00Z', end: '2026-03-30T12:00:00Z', showAs: 'oof' },
        { start: '2026-03-30T12:00:00Z', end: '2026-03-30T13:00:00Z', showAs: 'workingElsewhere' },
        { start: '2026-03-30T13:00:00Z', end: '2026-03-30T14:00:00Z' },
        { start: '2026-04-02T13:00:00Z', end: '2026-04-02T14:00:00Z' },
      ]);
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      const range = { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') };
      const events = await client.calendarView(tokens.accessToken, range.timeMin, range.timeMax);
      expect(events).toHaveLength(7);
      const pages = stub.requests.filter((item) => item.path === '/v1.0/me/calendarView');
      expect(pages).toHaveLength(3);
      expect(pages[0]?.query).toEqual({
        startDateTime: '2026-03-30T00:00:00.000Z',
        endDateTime: '2026-03-31T00:00:00.000Z',
        $select: 'start,end,showAs,isCancelled,isAllDay,originalStartTimeZone',
        $top: '100',
      });
      expect(pages.map((item) => item.query.$skip)).toEqual([undefined, '3', '6']);
      for (const page of pages) {
        expect(page.headers).toMatchObject({ prefer: 'outlook.timezone="UTC"', authorization: `Bearer ${tokens.accessToken}` });
      }

      const busy = await client.busyTimes(tokens.accessToken, range);
      expect(busy).toEqual({
        busy: [
          { start: at('2026-03-30T07:00:00Z'), end: at('2026-03-30T08:00:00Z') },
          { start: at('2026-03-30T08:00:00Z'), end: at('2026-03-30T08:30:00Z') },
          { start: at('2026-03-30T11:00:00Z'), end: at('2026-03-30T12:00:00Z') },
          { start: at('2026-03-30T13:00:00Z'), end: at('2026-03-30T14:00:00Z') },
        ],
        errors: [],
      });
    });

    it('reads an all-day event (bare dates labelled UTC) as whole days in its own zone, else the zone asked for, else UTC', async () => {
      stub.seedBusy('microsoft', MS_USER, [
        // Sydney (AEDT, +11): 2026-11-26 is 2026-11-25T13:00Z to 2026-11-26T13:00Z.
        { start: '2026-11-26', end: '2026-11-27', showAs: 'oof', allDay: { timeZone: 'Australia/Sydney', originalStartTimeZone: 'AUS Eastern Standard Time' } },
        // Los Angeles (PST, -8), a zone named in a way no client reads: two days.
        { start: '2026-12-03', end: '2026-12-05', allDay: { timeZone: 'America/Los_Angeles', originalStartTimeZone: 'tzone://Microsoft/Custom' } },
        // A holiday shown as free blocks nothing.
        { start: '2026-11-27', end: '2026-11-28', showAs: 'free', allDay: { timeZone: 'Australia/Sydney' } },
      ]);
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      const range = { timeMin: at('2026-11-20T00:00:00Z'), timeMax: at('2026-12-10T00:00:00Z') };
      expect((await client.busyTimes(tokens.accessToken, { ...range, timeZone: 'America/Los_Angeles' })).busy).toEqual([
        { start: at('2026-11-25T13:00:00Z'), end: at('2026-11-26T13:00:00Z') },
        { start: at('2026-12-03T08:00:00Z'), end: at('2026-12-05T08:00:00Z') },
      ]);
      // What Graph answered: the dates at midnight, labelled UTC.
      const raw = await fetch(`${stub.microsoft.graphBaseUrl}/v1.0/me/calendarView?startDateTime=2026-11-20T00:00:00Z&endDateTime=2026-11-27T00:00:00Z&$select=start,end,isAllDay,originalStartTimeZone`, {
        headers: { authorization: `Bearer ${tokens.accessToken}`, prefer: 'outlook.timezone="UTC"' },
      });
      expect(((await raw.json()) as { value: unknown[] }).value[0]).toMatchObject({
        isAllDay: true,
        originalStartTimeZone: 'AUS Eastern Standard Time',
        start: { dateTime: '2026-11-26T00:00:00.0000000', timeZone: 'UTC' },
        end: { dateTime: '2026-11-27T00:00:00.0000000', timeZone: 'UTC' },
      });
      // The zone asked for, in a Windows name; without one, UTC days.
      expect((await client.busyTimes(tokens.accessToken, { ...range, timeZone: 'Pacific Standard Time' })).busy[1]).toEqual({
        start: at('2026-12-03T08:00:00Z'),
        end: at('2026-12-05T08:00:00Z'),
      });
      expect((await client.busyTimes(tokens.accessToken, range)).busy[1]).toEqual({
        start: at('2026-12-03T00:00:00Z'),
        end: at('2026-12-05T00:00:00Z'),
      });
      const [vacation] = await client.calendarView(tokens.accessToken, range.timeMin, range.timeMax);
      expect(vacation).toMatchObject({ isAllDay: true, showAs: 'oof' });
    });

    it('reads busy times from the calendar asked for (the connection\'s chosen one), the default calendar otherwise', async () => {
      stub.seedBusy('microsoft', MS_USER, [{ start: '2026-03-30T07:00:00Z', end: '2026-03-30T08:00:00Z' }]);
      stub.seedBusy('microsoft', MS_USER, [{ start: '2026-03-30T09:00:00Z', end: '2026-03-30T10:00:00Z' }], {
        calendarId: 'AAMkAGI2-salon',
      });
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      const range = { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') };
      stub.requests.length = 0;
      expect((await client.busyTimes(tokens.accessToken, { ...range, calendarIds: ['AAMkAGI2-salon'] })).busy).toEqual([
        { start: at('2026-03-30T09:00:00Z'), end: at('2026-03-30T10:00:00Z') },
      ]);
      expect(stub.requests.map((item) => item.path)).toEqual(['/v1.0/me/calendars/AAMkAGI2-salon/calendarView']);
      expect((await client.busyTimes(tokens.accessToken, range)).busy).toEqual([
        { start: at('2026-03-30T07:00:00Z'), end: at('2026-03-30T08:00:00Z') },
      ]);
      const error = await caught(client.busyTimes(tokens.accessToken, { ...range, calendarIds: ['gone'] }));
      expect(error).toMatchObject({ provider: 'microsoft', status: 404 });
    });

    it('waits out a 429 with Retry-After mid-paging, then continues', async () => {
      stub.setPageSize(2);
      stub.seedBusy('microsoft', MS_USER, [
        { start: '2026-03-30T07:00:00Z', end: '2026-03-30T08:00:00Z' },
        { start: '2026-03-30T09:00:00Z', end: '2026-03-30T10:00:00Z' },
        { start: '2026-03-30T11:00:00Z', end: '2026-03-30T12:00:00Z' },
      ]);
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      stub.failNext(429, { 'Retry-After': '3' }, { match: /calendarView/ });
      stub.requests.length = 0;
      const view = client.calendarView(tokens.accessToken, at('2026-03-30T00:00:00Z'), at('2026-03-31T00:00:00Z'));
      expect(await view).toHaveLength(3);
      expect(waits).toEqual([3000]);
      expect(stub.requests.map((item) => [item.status, item.query.$skip])).toEqual([
        [429, undefined],
        [200, undefined],
        [200, '2'],
      ]);

      stub.failNext(503, { 'Retry-After': '30' }, { match: /calendarView/ });
      const error = await caught(client.busyTimes(tokens.accessToken, { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') }));
      expect(error).toBeInstanceOf(CalendarRateLimitError);
      expect(error).toMatchObject({ provider: 'microsoft', retryAfterSeconds: 30 });
    });

    it('stops at maxPages and never sends the token to a next link on another host', async () => {
      stub.setPageSize(1);
      stub.seedBusy('microsoft', MS_USER, [
        { start: '2026-03-30T07:00:00Z', end: '2026-03-30T08:00:00Z' },
        { start: '2026-03-30T09:00:00Z', end: '2026-03-30T10:00:00Z' },
        { start: '2026-03-30T11:00:00Z', end: '2026-03-30T12:00:00Z' },
      ]);
      const tokens = await connect(microsoft(), MS_USER);
      await expect(
        microsoft({ maxPages: 2 }).calendarView(tokens.accessToken, at('2026-03-30T00:00:00Z'), at('2026-03-31T00:00:00Z')),
      ).rejects.toThrow(/more than 2 pages/);

      const foreign = createMicrosoftCalendar({
        clientId: 'x',
        clientSecret: 'y',
        graphBaseUrl: 'http://graph.test',
        fetch: async () =>
          Response.json({ value: [], '@odata.nextLink': 'http://attacker.test/v1.0/me/calendarView?$skip=1' }),
      });
      await expect(foreign.calendarView('token', at('2026-03-30T00:00:00Z'), at('2026-03-31T00:00:00Z'))).rejects.toThrow(
        /another host/,
      );
    });

    it('reads times Graph gives in another IANA or Windows zone, and refuses a zone it cannot read', async () => {
      const answer = (timeZone: string) =>
        createMicrosoftCalendar({
          clientId: 'x',
          clientSecret: 'y',
          graphBaseUrl: 'http://graph.test',
          fetch: async () =>
            Response.json({
              value: [
                {
                  start: { dateTime: '2026-10-25T02:30:00.0000000', timeZone },
                  end: { dateTime: '2026-10-25T04:00:00.0000000', timeZone },
                  showAs: 'busy',
                  isCancelled: false,
                },
              ],
            }),
        });
      const [event] = await answer('Europe/Berlin').calendarView('t', at('2026-10-24T00:00:00Z'), at('2026-10-26T00:00:00Z'));
      // 02:30 happens twice that night; the first (CEST) is taken. 04:00 is CET.
      expect(event).toMatchObject({ start: at('2026-10-25T00:30:00Z'), end: at('2026-10-25T03:00:00Z') });
      const [windows] = await answer('W. Europe Standard Time').calendarView('t', at('2026-10-24T00:00:00Z'), at('2026-10-26T00:00:00Z'));
      expect(windows).toMatchObject({ start: at('2026-10-25T00:30:00Z'), end: at('2026-10-25T03:00:00Z') });
      await expect(
        answer('Mars Standard Time').calendarView('t', at('2026-10-24T00:00:00Z'), at('2026-10-26T00:00:00Z')),
      ).rejects.toBeInstanceOf(CalendarProviderError);
    });
  });

  describe('Microsoft Graph events', () => {
    it('creates, moves (PATCH) and deletes an event; deleting a missing one is fine', async () => {
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      const created = await client.createEvent(tokens.accessToken, {
        summary: 'Consultation',
        description: 'Booked by phone.',
        start: at('2026-10-25T00:30:00Z'),
        end: at('2026-10-25T02:00:00Z'),
        timeZone: 'Europe/Berlin',
        attendees: [{ email: 'caller@example.org', name: 'Caller' }],
      });
      expect(created).toEqual({ externalId: expect.stringMatching(/^AAMkAG/), etag: expect.stringMatching(/^W\/"/) });
      const post = stub.requests.find((item) => item.method === 'POST' && item.host === 'graph.microsoft.com');
      expect(post?.path).toBe('/v1.0/me/events');
      expect(post?.body).toEqual({
        subject: 'Consultation',
        // Not invited (notifyAttendees defaults to false): named in the body instead.
        body: { contentType: 'text', content: 'Booked by phone.\n\nAttendees: Caller <caller@example.org>' },
        // Across the autumn change: 02:30 CEST to 03:00 CET, 1.5 h. 02:30 happens twice that night,
        // so that end goes in UTC rather than as a wall time Graph could read as the other 02:30.
        start: { dateTime: '2026-10-25T00:30:00', timeZone: 'UTC' },
        end: { dateTime: '2026-10-25T03:00:00', timeZone: 'W. Europe Standard Time' },
        attendees: [],
      });
      const [stored] = stub.events('microsoft', MS_USER);
      expect(stored).toMatchObject({ start: at('2026-10-25T00:30:00Z'), end: at('2026-10-25T02:00:00Z'), notified: [] });

      const moved = await client.updateEvent(
        tokens.accessToken,
        created.externalId,
        {
          start: at('2026-10-26T09:00:00Z'),
          end: at('2026-10-26T10:00:00Z'),
          timeZone: 'Europe/Berlin',
          attendees: [{ email: 'caller@example.org', name: 'Caller' }],
        },
        { notifyAttendees: true },
      );
      expect(moved.externalId).toBe(created.externalId);
      const patch = stub.requests.find((item) => item.method === 'PATCH');
      expect(patch?.path).toBe(`/v1.0/me/events/${encodeURIComponent(created.externalId)}`);
      expect(patch?.body).toEqual({
        start: { dateTime: '2026-10-26T10:00:00', timeZone: 'W. Europe Standard Time' },
        end: { dateTime: '2026-10-26T11:00:00', timeZone: 'W. Europe Standard Time' },
        attendees: [{ emailAddress: { address: 'caller@example.org', name: 'Caller' }, type: 'required' }],
      });
      expect(stub.events('microsoft', MS_USER)[0]).toMatchObject({ start: at('2026-10-26T09:00:00Z'), notified: ['graph'] });

      // The event shows in calendarView as busy.
      const busy = await client.busyTimes(tokens.accessToken, { timeMin: at('2026-10-26T00:00:00Z'), timeMax: at('2026-10-27T00:00:00Z') });
      expect(busy.busy).toEqual([{ start: at('2026-10-26T09:00:00Z'), end: at('2026-10-26T10:00:00Z') }]);

      expect(await client.deleteEvent(tokens.accessToken, created.externalId)).toEqual({ deleted: true });
      expect(stub.events('microsoft', MS_USER)).toHaveLength(0);
      expect(await client.deleteEvent(tokens.accessToken, created.externalId)).toEqual({ deleted: false });
      const missing = await caught(client.updateEvent(tokens.accessToken, 'AAMkAGnope', { summary: 'x' }));
      expect(missing).toMatchObject({ name: 'CalendarProviderError', status: 404, providerCode: 'ErrorItemNotFound' });
    });

    it('writes to another calendar by id, and retries a throttled create only on 429', async () => {
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      const event = { summary: 'x', start: at('2026-03-30T08:00:00Z'), end: at('2026-03-30T09:00:00Z'), timeZone: 'UTC' };
      await expect(client.createEvent(tokens.accessToken, event, { calendarId: 'AQMkADAw' })).rejects.toMatchObject({ status: 404 });
      expect(stub.requests.at(-1)?.path).toBe('/v1.0/me/calendars/AQMkADAw/events');

      stub.failNext(429, { 'Retry-After': '1' }, { match: '/v1.0/me/events' });
      await expect(client.createEvent(tokens.accessToken, event)).resolves.toMatchObject({ externalId: expect.any(String) });
      expect(waits).toEqual([1000]);
      // A 503 on create may come after Graph acted: not retried, reported as retryable.
      stub.failNext(503, { 'Retry-After': '1' }, { match: '/v1.0/me/events' });
      await expect(client.createEvent(tokens.accessToken, event)).rejects.toMatchObject({ status: 503, retryable: true });
      expect(waits).toEqual([1000]);
    });

    it('maps an expired access token to unauthorized', async () => {
      const client = microsoft();
      const tokens = await connect(client, MS_USER);
      stub.expireAccessTokens();
      const error = await caught(client.deleteEvent(tokens.accessToken, 'AAMkAGx'));
      expect(error).toMatchObject({ name: 'CalendarAuthError', kind: 'unauthorized', providerCode: 'InvalidAuthenticationToken' });
    });
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(retryAfterSeconds('7')).toBe(7);
    expect(retryAfterSeconds('0.2')).toBe(1);
    expect(retryAfterSeconds(null)).toBeUndefined();
    expect(retryAfterSeconds('soon')).toBeUndefined();
    const now = Date.parse('2026-03-30T08:00:00Z');
    expect(retryAfterSeconds('Mon, 30 Mar 2026 08:00:10 GMT', now)).toBe(10);
  });

  it('reports a provider that cannot be reached as retryable, status 0', async () => {
    const client = createGoogleCalendar({
      clientId: 'x',
      clientSecret: 'y',
      apiBaseUrl: 'http://127.0.0.1:9',
      timeoutMs: 2000,
    });
    const error = await caught(client.busyTimes('t', { timeMin: at('2026-03-30T00:00:00Z'), timeMax: at('2026-03-31T00:00:00Z') }));
    expect(error).toMatchObject({ name: 'CalendarProviderError', status: 0, retryable: true });
  });
});
