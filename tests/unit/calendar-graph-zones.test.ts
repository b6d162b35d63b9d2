/**
 * Graph event times in Windows zone names (the Microsoft client against the
 * strict stand-in, which takes only Windows names and Graph's few documented
 * IANA names and refuses the rest as Graph does, 400
 * TimeZoneNotSupportedException): zones outside Graph's IANA list (Madrid,
 * Kolkata, Toronto) are written as their Windows zone with the wall time in
 * the zone, across daylight-saving changes, on create and on PATCH; a zone
 * with no Windows name, or whose rules have parted from its Windows zone's,
 * and the hour an autumn change repeats go in UTC.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CalendarEventInput, createMicrosoftCalendar, offsetMinutes, type TokenSet } from '../../functions/_shared/calendar/index.ts';
import { createPkcePair } from '../../functions/_shared/calendar/pkce.ts';
import { rulesOfWindowsZone, windowsZoneOf } from '../../functions/_shared/calendar/windows-zones.ts';
import { type CalendarStub, startCalendarStub } from '../support/calendar-stub.ts';

const REDIRECT = 'http://127.0.0.1:54321/functions/v1/calendar/oauth/callback';
const USER = 'zones@graph-zones.example';
const at = (iso: string) => new Date(iso);

describe('the Windows zone table (CLDR 48)', () => {
  it('names the Windows zone of IANA zones Graph has no IANA name for, aliases and any case too', () => {
    expect(windowsZoneOf('Europe/Madrid')).toBe('Romance Standard Time');
    expect(windowsZoneOf('europe/madrid')).toBe('Romance Standard Time');
    expect(windowsZoneOf('Asia/Kolkata')).toBe('India Standard Time');
    expect(windowsZoneOf('Asia/Calcutta')).toBe('India Standard Time');
    expect(windowsZoneOf('America/Toronto')).toBe('Eastern Standard Time');
    expect(windowsZoneOf('Europe/Kyiv')).toBe('FLE Standard Time');
    expect(windowsZoneOf('Australia/Melbourne')).toBe('AUS Eastern Standard Time');
    expect(windowsZoneOf('Asia/Hong_Kong')).toBe('China Standard Time');
    expect(windowsZoneOf('Europe/Berlin')).toBe('W. Europe Standard Time');
    expect(windowsZoneOf('UTC')).toBe('UTC');
    expect(windowsZoneOf('Antarctica/Troll')).toBeUndefined();
    expect(windowsZoneOf('Mars/Olympus_Mons')).toBeUndefined();
    expect(rulesOfWindowsZone('Romance Standard Time')).toBe('Europe/Paris');
    expect(rulesOfWindowsZone('romance standard time')).toBe('Europe/Paris');
    expect(rulesOfWindowsZone('Europe/Paris')).toBeUndefined();
  });

  it('has a Windows zone for every zone this runtime knows but Antarctica/Troll, and rules the runtime can read', () => {
    const zones = Intl.supportedValuesOf('timeZone');
    expect(zones.length).toBeGreaterThan(300);
    expect(zones.filter((zone) => windowsZoneOf(zone) === undefined)).toEqual(['Antarctica/Troll']);
    for (const zone of zones) {
      const rules = rulesOfWindowsZone(windowsZoneOf(zone) ?? 'UTC');
      expect(rules, zone).toBeDefined();
      expect(() => offsetMinutes(at('2027-01-01T00:00:00Z'), rules ?? '')).not.toThrow();
    }
  });
});

describe('Graph event times against the strict stand-in', () => {
  let stub: CalendarStub;
  let tokens: TokenSet;
  const client = () =>
    createMicrosoftCalendar({
      clientId: stub.microsoft.clientId,
      clientSecret: stub.microsoft.clientSecret,
      loginBaseUrl: stub.microsoft.loginBaseUrl,
      graphBaseUrl: stub.microsoft.graphBaseUrl,
      sleep: async () => {},
    });

  beforeAll(async () => {
    stub = await startCalendarStub();
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(async () => {
    stub.reset();
    const { codeVerifier, codeChallenge } = await createPkcePair();
    const microsoft = client();
    const redirect = await stub.authorize(microsoft.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge }), {
      email: USER,
    });
    tokens = await microsoft.exchangeCode({ code: redirect.code ?? '', codeVerifier, redirectUri: REDIRECT });
  });

  /** Creates the event; answers what was sent as start and end, and the instants the stand-in read from them. */
  async function written(event: Omit<CalendarEventInput, 'summary'>) {
    const created = await client().createEvent(tokens.accessToken, { summary: 'Zoned', ...event });
    const post = stub.requests.filter((item) => item.method === 'POST' && item.host === 'graph.microsoft.com').at(-1);
    const body = post?.body as { start?: unknown; end?: unknown };
    const stored = stub.events('microsoft', USER).find((item) => item.id === created.externalId);
    return { id: created.externalId, start: body.start, end: body.end, stored: { start: stored?.start, end: stored?.end } };
  }

  /** POSTs an event straight to the stand-in with this zone on both ends. */
  async function rawCreate(timeZone: string) {
    const response = await fetch(`${stub.microsoft.graphBaseUrl}/v1.0/me/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        subject: 'raw',
        start: { dateTime: '2026-12-02T10:00:00', timeZone },
        end: { dateTime: '2026-12-02T11:00:00', timeZone },
      }),
    });
    return { status: response.status, body: await response.json() as { error?: { code: string; message: string } } };
  }

  it('is strict as Graph: Windows names and its documented IANA names only, others 400 TimeZoneNotSupportedException', async () => {
    for (const zone of ['Europe/Madrid', 'Asia/Kolkata', 'America/Toronto', 'Europe/Kyiv', 'Not/A_Zone']) {
      const refused = await rawCreate(zone);
      expect(refused.status, zone).toBe(400);
      expect(refused.body.error).toMatchObject({
        code: 'TimeZoneNotSupportedException',
        message: `A valid TimeZone value must be specified. The following TimeZone value is not supported: '${zone}'.`,
      });
    }
    expect(stub.events('microsoft', USER)).toHaveLength(0);
    for (const zone of ['Romance Standard Time', 'Europe/Paris', 'Asia/Calcutta', 'UTC']) {
      expect((await rawCreate(zone)).status, zone).toBe(201);
    }
    expect(stub.events('microsoft', USER).map((event) => event.start.toISOString())).toEqual([
      '2026-12-02T09:00:00.000Z',
      '2026-12-02T09:00:00.000Z',
      '2026-12-02T04:30:00.000Z',
      '2026-12-02T10:00:00.000Z',
    ]);
  });

  it('writes Madrid, Kolkata and Toronto as their Windows zones, the wall time in the zone', async () => {
    const madrid = await written({ start: at('2026-12-02T09:00:00Z'), end: at('2026-12-02T09:30:00Z'), timeZone: 'Europe/Madrid' });
    expect(madrid.start).toEqual({ dateTime: '2026-12-02T10:00:00', timeZone: 'Romance Standard Time' });
    expect(madrid.end).toEqual({ dateTime: '2026-12-02T10:30:00', timeZone: 'Romance Standard Time' });
    expect(madrid.stored).toEqual({ start: at('2026-12-02T09:00:00Z'), end: at('2026-12-02T09:30:00Z') });

    const kolkata = await written({ start: at('2026-12-02T04:30:00Z'), end: at('2026-12-02T05:15:00Z'), timeZone: 'Asia/Kolkata' });
    expect(kolkata.start).toEqual({ dateTime: '2026-12-02T10:00:00', timeZone: 'India Standard Time' });
    expect(kolkata.end).toEqual({ dateTime: '2026-12-02T10:45:00', timeZone: 'India Standard Time' });
    expect(kolkata.stored).toEqual({ start: at('2026-12-02T04:30:00Z'), end: at('2026-12-02T05:15:00Z') });

    const toronto = await written({ start: at('2026-12-02T15:00:00Z'), end: at('2026-12-02T16:00:00Z'), timeZone: 'America/Toronto' });
    expect(toronto.start).toEqual({ dateTime: '2026-12-02T10:00:00', timeZone: 'Eastern Standard Time' });
    expect(toronto.stored).toEqual({ start: at('2026-12-02T15:00:00Z'), end: at('2026-12-02T16:00:00Z') });
  });

  it('moves an event (PATCH) in the Windows zone too, and reads it back through calendarView', async () => {
    const microsoft = client();
    const { id } = await written({ start: at('2026-12-02T04:30:00Z'), end: at('2026-12-02T05:00:00Z'), timeZone: 'Asia/Kolkata' });
    await microsoft.updateEvent(tokens.accessToken, id, {
      start: at('2026-12-03T08:30:00Z'),
      end: at('2026-12-03T09:00:00Z'),
      timeZone: 'Asia/Kolkata',
    });
    const patch = stub.requests.filter((item) => item.method === 'PATCH').at(-1);
    expect(patch?.body).toEqual({
      start: { dateTime: '2026-12-03T14:00:00', timeZone: 'India Standard Time' },
      end: { dateTime: '2026-12-03T14:30:00', timeZone: 'India Standard Time' },
    });
    const busy = await microsoft.busyTimes(tokens.accessToken, { timeMin: at('2026-12-03T00:00:00Z'), timeMax: at('2026-12-04T00:00:00Z') });
    expect(busy.busy).toEqual([{ start: at('2026-12-03T08:30:00Z'), end: at('2026-12-03T09:00:00Z') }]);
    // Graph answers in the zone asked for: UTC.
    const view = stub.requests.filter((item) => item.path.endsWith('/calendarView')).at(-1);
    expect(view?.headers.prefer).toBe('outlook.timezone="UTC"');
  });

  it('across daylight-saving changes: wall times in the Windows zone, the repeated autumn hour in UTC', async () => {
    // Toronto springs forward on 2027-03-14 at 02:00 EST: 01:30 EST to 03:30 EDT is one hour.
    const spring = await written({ start: at('2027-03-14T06:30:00Z'), end: at('2027-03-14T07:30:00Z'), timeZone: 'America/Toronto' });
    expect(spring.start).toEqual({ dateTime: '2027-03-14T01:30:00', timeZone: 'Eastern Standard Time' });
    expect(spring.end).toEqual({ dateTime: '2027-03-14T03:30:00', timeZone: 'Eastern Standard Time' });
    expect(spring.stored).toEqual({ start: at('2027-03-14T06:30:00Z'), end: at('2027-03-14T07:30:00Z') });

    // Madrid falls back on 2027-10-31 at 03:00 CEST: 02:30 happens twice, so that start goes in UTC; 03:00 CET is one instant.
    const autumn = await written({ start: at('2027-10-31T00:30:00Z'), end: at('2027-10-31T02:00:00Z'), timeZone: 'Europe/Madrid' });
    expect(autumn.start).toEqual({ dateTime: '2027-10-31T00:30:00', timeZone: 'UTC' });
    expect(autumn.end).toEqual({ dateTime: '2027-10-31T03:00:00', timeZone: 'Romance Standard Time' });
    expect(autumn.stored).toEqual({ start: at('2027-10-31T00:30:00Z'), end: at('2027-10-31T02:00:00Z') });
  });

  it('writes a zone with no Windows name, or rules parted from its Windows zone\'s, in UTC', async () => {
    const troll = await written({ start: at('2026-12-02T09:00:00Z'), end: at('2026-12-02T10:00:00Z'), timeZone: 'Antarctica/Troll' });
    expect(troll.start).toEqual({ dateTime: '2026-12-02T09:00:00', timeZone: 'UTC' });
    expect(troll.end).toEqual({ dateTime: '2026-12-02T10:00:00', timeZone: 'UTC' });
    expect(troll.stored).toEqual({ start: at('2026-12-02T09:00:00Z'), end: at('2026-12-02T10:00:00Z') });

    // CLDR 48 still has Scoresbysund in Azores Standard Time; since tzdata 2024b it is an hour behind the Azores.
    const instant = at('2026-12-02T12:00:00Z');
    expect(offsetMinutes(instant, 'America/Scoresbysund')).not.toBe(offsetMinutes(instant, 'Atlantic/Azores'));
    const parted = await written({ start: instant, end: at('2026-12-02T13:00:00Z'), timeZone: 'America/Scoresbysund' });
    expect(parted.start).toEqual({ dateTime: '2026-12-02T12:00:00', timeZone: 'UTC' });
    expect(parted.stored).toEqual({ start: instant, end: at('2026-12-02T13:00:00Z') });
  });
});
