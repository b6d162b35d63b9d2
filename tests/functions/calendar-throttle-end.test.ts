/**
 * An appointment the provider throttles without end is given up in the end
 * (20261123012600; the calendar function over HTTP, real Deno, against
 * tests/support/calendar-stub.ts): a booking Graph throttles stays pending,
 * uncounted, and its throttled run begins (sync_throttled_since); a retry
 * pass throttled 24 hours into the run records a failure with an attempt
 * ('the calendar provider throttled every attempt for 24 hours'), retried a
 * minute later as any failure; once Graph answers, the retry mirrors it and
 * the run is over.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { startTestStack, type TestStack } from './support.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { runExclusively } from '../support/exclusive.ts';

const TOKEN_KEY = Buffer.from('calendar-test-token-key-32-bytes').toString('base64');
const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
const EMAIL = 'throttle-end@contoso.example';
const GRAPH_CREATE = /graph\.microsoft\.com\/v1\.0\/me\/events$/u;
const GIVEN_UP_ERROR = 'the calendar provider throttled every attempt for 24 hours';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let org: ChatOrg;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

async function appointment(id: string) {
  const [row] = await sql<{
    sync_status: string;
    sync_error: string | null;
    sync_attempts: number;
    sync_next_attempt_at: Date | null;
    sync_claimed_until: Date | null;
    sync_throttled_since: Date | null;
    external_event_id: string | null;
  }[]>`
    select sync_status, sync_error, sync_attempts, sync_next_attempt_at, sync_claimed_until, sync_throttled_since, external_event_id
    from public.appointments where id = ${id}`;
  if (!row) throw new Error(`no appointment ${id}`);
  return row;
}

const liveEvents = (id: string) => stub.events('microsoft', EMAIL).filter((event) => !event.isCancelled && event.description?.includes(id));
const waitOf = (row: { sync_next_attempt_at: Date | null }) => (row.sync_next_attempt_at?.getTime() ?? 0) - Date.now();

// Its passes take every org's due calendar work (see runExclusively).
runExclusively('calendar-passes');

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({ env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: TOKEN_KEY } });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'cal-throttle-end');
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
  for (const weekday of [1, 2, 3, 4, 5]) {
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
  }
  // The Microsoft calendar, connected as an admin does: start, consent, callback, complete.
  const started = await call('/oauth/start', { method: 'POST', token: org.tokens.admin, body: { org_id: org.id, provider: 'microsoft' } });
  expect(started.status).toBe(200);
  const consent = await stub.authorize(String(started.body.authorization_url), { email: EMAIL });
  const parked = await call(`/oauth/callback${new URL(consent.location).search}`);
  expect(parked.status).toBe(200);
  const connected = await call('/oauth/complete', {
    method: 'POST',
    token: org.tokens.admin,
    body: { connection_request: parked.body.connection_request },
  });
  expect(connected.status).toBe(200);
}, 120_000);

afterAll(async () => {
  if (org) await sql`delete from public.organizations where id = ${org.id}`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('a mirroring throttled without end', () => {
  it('is uncounted for 24 hours, then fails with an attempt and is retried as any failure', async () => {
    let day = new Date(Date.now() + 15 * DAY).toISOString().slice(0, 10);
    while ([0, 6].includes(new Date(`${day}T12:00:00Z`).getUTCDay())) day = new Date(Date.parse(`${day}T00:00:00Z`) + DAY).toISOString().slice(0, 10);

    // Graph throttles the booking's own mirroring (429, Retry-After 120): pending, uncounted, the run begins.
    stub.failNext(429, { 'retry-after': '120' }, { match: GRAPH_CREATE });
    const booked = await call('/appointments', {
      method: 'POST',
      token: org.tokens.member,
      body: {
        org_id: org.id,
        starts_at: instantFromWallTime(`${day}T09:00`, ZONE).toISOString(),
        ends_at: instantFromWallTime(`${day}T09:30`, ZONE).toISOString(),
        attendee_name: 'Throttle End',
        attendee_email: 'guest@throttle-end.example',
      },
    });
    expect(booked.status, JSON.stringify(booked.body)).toBe(201);
    const id = String((booked.body.appointment as Record<string, unknown>).id);
    expect(booked.body.appointment).toMatchObject({ sync_status: 'pending' });
    const throttled = await appointment(id);
    expect(throttled).toMatchObject({ sync_status: 'pending', sync_attempts: 0, sync_claimed_until: null, sync_error: null });
    expect(throttled.sync_throttled_since).not.toBeNull();
    expect(Date.now() - (throttled.sync_throttled_since?.getTime() ?? 0)).toBeLessThan(60_000);

    // A day later (the run begun 25 hours ago), due before anything else, Graph still throttling.
    await sql`
      update public.appointments
      set sync_throttled_since = now() - interval '25 hours', sync_next_attempt_at = now() - interval '30 days'
      where id = ${id}`;
    stub.failNext(429, { 'retry-after': '120' }, { match: GRAPH_CREATE });
    const pass = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: { limit: 1 } });
    expect(pass.status).toBe(200);
    expect(pass.body.appointments).toEqual([{ id, sync_status: 'failed' }]);
    const failed = await appointment(id);
    expect(failed).toMatchObject({ sync_status: 'failed', sync_error: GIVEN_UP_ERROR, sync_attempts: 1, sync_claimed_until: null });
    // The run goes on (a later throttle counts too): its start is kept.
    expect(Date.now() - (failed.sync_throttled_since?.getTime() ?? 0)).toBeGreaterThan(24 * 3_600_000);
    // Retried a minute later, as a first failure is (not after Retry-After's 2 minutes).
    expect(waitOf(failed)).toBeGreaterThan(50_000);
    expect(waitOf(failed)).toBeLessThanOrEqual(60_000);
    expect(liveEvents(id)).toEqual([]);

    // Graph answers again: the retry mirrors it, and the run is over.
    await sql`update public.appointments set sync_next_attempt_at = now() - interval '30 days' where id = ${id}`;
    const after = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: { limit: 1 } });
    expect(after.status).toBe(200);
    expect(after.body.appointments).toEqual([{ id, sync_status: 'synced' }]);
    expect(await appointment(id)).toMatchObject({
      sync_status: 'synced',
      sync_error: null,
      sync_attempts: 0,
      sync_next_attempt_at: null,
      sync_throttled_since: null,
    });
    expect(liveEvents(id)).toHaveLength(1);
  });
});
