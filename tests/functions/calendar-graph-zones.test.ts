/**
 * Bookings of orgs in zones Graph has no IANA name for (Europe/Madrid,
 * Asia/Kolkata, America/Toronto) reach Outlook: the calendar function over
 * HTTP (real Deno) mirrors them to tests/support/calendar-stub.ts, which
 * refuses any zone name Graph refuses (400 TimeZoneNotSupportedException),
 * as the zone's Windows name with the wall time in the org's zone, on the
 * create and on a reschedule's PATCH. An Outlook all-day event, which Graph
 * answers as bare dates labelled UTC, blocks its whole local day (midnight to
 * midnight in its originalStartTimeZone) in orgs far from UTC, and nothing of
 * the days around it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';

const TOKEN_KEY = Buffer.from('calendar-test-token-key-32-bytes').toString('base64');
const DAY = 86_400_000;

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
/** A weekday two weeks ahead, YYYY-MM-DD. */
let day: string;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

/** An org in this zone, open 9 to 17 on weekdays, with its Outlook calendar connected as this account. */
async function zonedOrg(name: string, zone: string, email: string): Promise<ChatOrg> {
  const org = await createChatOrg(sql, name);
  await sql`update public.organizations set time_zone = ${zone} where id = ${org.id}`;
  for (const weekday of [1, 2, 3, 4, 5]) {
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
  }
  const started = await call('/oauth/start', { method: 'POST', token: org.tokens.admin, body: { org_id: org.id, provider: 'microsoft' } });
  expect(started.status).toBe(200);
  const consent = await stub.authorize(String(started.body.authorization_url), { email });
  const parked = await call(`/oauth/callback${new URL(consent.location).search}`);
  expect(parked.status).toBe(200);
  const connected = await call('/oauth/complete', {
    method: 'POST',
    token: org.tokens.admin,
    body: { connection_request: parked.body.connection_request },
  });
  expect(connected.status).toBe(200);
  return org;
}

function slotStarts(answer: Answer): string[] {
  return (answer.body.slots as { start: string }[]).map((slot) => slot.start);
}

const addDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY).toISOString().slice(0, 10);

async function syncOf(id: string) {
  const [row] = await sql<{ sync_status: string; external_event_id: string | null }[]>`
    select sync_status, external_event_id from public.appointments where id = ${id}`;
  return row;
}

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({ env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: TOKEN_KEY } });
  sql = createSql(stack.dbUrl, { max: 2 });
  day = new Date(Date.now() + 14 * DAY).toISOString().slice(0, 10);
  while ([0, 6].includes(new Date(`${day}T12:00:00Z`).getUTCDay())) day = new Date(Date.parse(`${day}T00:00:00Z`) + DAY).toISOString().slice(0, 10);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('bookings mirrored to Outlook in zones Graph has no IANA name for', () => {
  const cases = [
    { zone: 'Europe/Madrid', windows: 'Romance Standard Time', email: 'madrid@graph-zones-fn.example' },
    { zone: 'Asia/Kolkata', windows: 'India Standard Time', email: 'kolkata@graph-zones-fn.example' },
    { zone: 'America/Toronto', windows: 'Eastern Standard Time', email: 'toronto@graph-zones-fn.example' },
  ];

  it.each(cases)('$zone: created and moved as $windows, at the wall time in the zone', async ({ zone, windows, email }) => {
    const org = await zonedOrg(`graph-zones-fn-${zone.split('/')[1]?.toLowerCase()}`, zone, email);
    const local = (time: string) => instantFromWallTime(`${day}T${time}`, zone).toISOString();

    const booked = await call('/appointments', {
      method: 'POST',
      token: org.tokens.member,
      body: { org_id: org.id, starts_at: local('10:00'), ends_at: local('10:30'), attendee_name: `Guest ${zone}`, attendee_email: email },
    });
    expect({ status: booked.status, body: booked.body }).toMatchObject({ status: 201 });
    const id = String((booked.body.appointment as Record<string, unknown>).id);
    const [created] = stub.events('microsoft', email);
    expect(created?.startRaw).toEqual({ dateTime: `${day}T10:00:00`, timeZone: windows });
    expect(created?.endRaw).toEqual({ dateTime: `${day}T10:30:00`, timeZone: windows });
    expect(created?.start.toISOString()).toBe(local('10:00'));
    expect(await syncOf(id)).toEqual({ sync_status: 'synced', external_event_id: created?.id });

    const moved = await call(`/appointments/${id}`, {
      method: 'PATCH',
      token: org.tokens.member,
      body: { starts_at: local('14:00'), ends_at: local('15:00') },
    });
    expect(moved.status).toBe(200);
    const events = stub.events('microsoft', email);
    expect(events).toHaveLength(1);
    expect(events[0]?.startRaw).toEqual({ dateTime: `${day}T14:00:00`, timeZone: windows });
    expect(events[0]?.endRaw).toEqual({ dateTime: `${day}T15:00:00`, timeZone: windows });
    expect(events[0]?.end.toISOString()).toBe(local('15:00'));
    expect(await syncOf(id)).toEqual({ sync_status: 'synced', external_event_id: created?.id });
    const patches = stub.requests.filter((item) => item.method === 'PATCH' && item.host === 'graph.microsoft.com');
    expect(patches.at(-1)?.path).toBe(`/v1.0/me/events/${encodeURIComponent(created?.id ?? '')}`);
  });
});

describe('Outlook all-day events in orgs far from UTC', () => {
  const cases = [
    { zone: 'Australia/Sydney', named: 'AUS Eastern Standard Time', email: 'sydney@graph-allday-fn.example' },
    { zone: 'America/Los_Angeles', named: 'America/Los_Angeles', email: 'la@graph-allday-fn.example' },
    // No zone of its own: the bot's (here the org's) zone places the day.
    { zone: 'Australia/Sydney', named: undefined, email: 'sydney-unnamed@graph-allday-fn.example' },
  ];

  it.each(cases)('$zone: an all-day absence (originalStartTimeZone $named) takes its local day, not the days around', async ({ zone, named, email }) => {
    const place = `${zone.split('/')[1]?.toLowerCase().replace(/_/gu, '-')}${named === undefined ? '-unnamed' : ''}`;
    const org = await zonedOrg(`graph-allday-fn-${place}`, zone, email);
    // A Wednesday, so the days either side are weekdays with business hours too.
    let absent = addDays(day, 0);
    while (new Date(`${absent}T12:00:00Z`).getUTCDay() !== 3) absent = addDays(absent, 1);
    stub.seedBusy('microsoft', email, [
      { start: absent, end: addDays(absent, 1), showAs: 'oof', summary: 'Vacation', allDay: { timeZone: zone, ...(named === undefined ? {} : { originalStartTimeZone: named }) } },
    ]);
    const pagesBefore = stub.requests.filter((request) => request.path === '/v1.0/me/calendarView').length;

    const query = new URLSearchParams({
      org_id: org.id,
      from: instantFromWallTime(`${addDays(absent, -1)}T00:00:00`, zone).toISOString(),
      to: instantFromWallTime(`${addDays(absent, 2)}T00:00:00`, zone).toISOString(),
      duration_minutes: '60',
    });
    const answer = await call(`/availability?${query}`, { token: org.tokens.member });
    expect(answer.status).toBe(200);
    expect(answer.body.time_zone).toBe(zone);
    expect(answer.body.missing_calendars).toEqual([]);
    const hours = (date: string) => slotStarts(answer).filter((start) => start.startsWith(date)).map((start) => start.slice(11, 16));
    const open = ['09:00', '10:00', '11:00', '12:00', '13:00', '14:00', '15:00', '16:00'];
    expect(hours(addDays(absent, -1))).toEqual(open);
    expect(hours(absent)).toEqual([]);
    expect(hours(addDays(absent, 1))).toEqual(open);
    // Graph was asked for what tells an all-day entry and its zone.
    const view = stub.requests.filter((request) => request.path === '/v1.0/me/calendarView').at(-1);
    expect(stub.requests.filter((request) => request.path === '/v1.0/me/calendarView').length).toBeGreaterThan(pagesBefore);
    expect(view?.query.$select?.split(',')).toEqual(expect.arrayContaining(['isAllDay', 'originalStartTimeZone']));

    // Nor bookable by a bot: 10:00 that day is refused 409 slot_unavailable, 10:00 the day before is booked.
    const botId = await createBot(sql, org.id, { slug: `allday-${place}` });
    const { key } = await createApiKey(sql, org, ['calendar.read', 'calendar.write']);
    const book = (date: string) =>
      call(`/bots/${botId}/appointments`, {
        method: 'POST',
        token: key, // an API key goes as the bearer token
        body: {
          starts_at: instantFromWallTime(`${date}T10:00:00`, zone).toISOString(),
          ends_at: instantFromWallTime(`${date}T10:30:00`, zone).toISOString(),
          attendee_name: `Caller ${zone}`,
          attendee_phone: '+61400000000',
        },
      });
    const refused = await book(absent);
    expect({ status: refused.status, body: refused.body }).toMatchObject({ status: 409, body: { error: { code: 'slot_unavailable' } } });
    expect(await sql`select 1 from public.appointments where org_id = ${org.id}`).toHaveLength(0);
    expect((await book(addDays(absent, -1))).status).toBe(201);
  });
});
