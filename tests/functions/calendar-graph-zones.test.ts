/**
 * Bookings of orgs in zones Graph has no IANA name for (Europe/Madrid,
 * Asia/Kolkata, America/Toronto) reach Outlook: the calendar function over
 * HTTP (real Deno) mirrors them to tests/support/calendar-stub.ts, which
 * refuses any zone name Graph refuses (400 TimeZoneNotSupportedException),
 * as the zone's Windows name with the wall time in the org's zone, on the
 * create and on a reschedule's PATCH.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
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
