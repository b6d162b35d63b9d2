/**
 * Mirroring converges (the calendar function over HTTP, real Deno, against
 * tests/support/calendar-stub.ts behind a small proxy that can hold Google's
 * events.insert): a cancel or a reschedule arriving while the booking's
 * create is still at the provider leaves no stray event (the create's holder
 * deletes or moves what it made), a failed mirroring is retried by the
 * service-role route the retry job calls, and so is a failed delete of an
 * event the appointment did not keep (given up after the eighth attempt).
 * One org's throttled backlog does not hold back another org's mirroring
 * (the pass takes the orgs in turn), and a throttle (Graph's 429 with
 * Retry-After, Google's 403 rateLimitExceeded) costs no attempt: the
 * appointment waits out the provider's wait and is mirrored after.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub, type StubEvent } from '../support/calendar-stub.ts';
import { readBody } from '../support/read-body.ts';
import { startTestStack, type TestStack } from './support.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { runExclusively } from '../support/exclusive.ts';

const TOKEN_KEY = Buffer.from('calendar-test-token-key-32-bytes').toString('base64');
const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
const EMAIL = 'mirror@example.com';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let org: ChatOrg;
let proxy: Server;
let proxyUrl: string;
/** A weekday two weeks ahead, YYYY-MM-DD. */
let day: string;

/** Held events.insert requests: each resolves when released. */
let holdCreates = false;
const held: (() => void)[] = [];
let heldArrived: (() => void) | undefined;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

function berlin(time: string): string {
  return instantFromWallTime(`${day}T${time}`, ZONE).toISOString();
}

/** Forwards to the stub's Google API; while holdCreates, an events.insert waits for its release. */
async function forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readBody(req);
  if (holdCreates && req.method === 'POST' && /\/calendar\/v3\/calendars\/[^/]+\/events(\?|$)/u.test(req.url ?? '')) {
    await new Promise<void>((resolve) => {
      held.push(resolve);
      heldArrived?.();
    });
  }
  const headers: Record<string, string> = {};
  for (const name of ['authorization', 'content-type']) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  const answer = await fetch(`${stub.google.apiBaseUrl}${req.url ?? '/'}`, {
    method: req.method ?? 'GET',
    headers,
    ...(body !== '' ? { body } : {}),
  });
  const text = await answer.text();
  const retryAfter = answer.headers.get('retry-after');
  res.writeHead(answer.status, {
    'content-type': answer.headers.get('content-type') ?? 'application/json',
    ...(retryAfter !== null ? { 'retry-after': retryAfter } : {}),
  });
  res.end(text);
}

/** Books with the create held at the provider; answers the pending request and the appointment's id once the create is waiting. */
async function bookWithCreateHeld(start: string, end: string, name: string): Promise<{ booking: Promise<Answer>; id: string }> {
  holdCreates = true;
  const arrived = new Promise<void>((resolve) => {
    heldArrived = resolve;
  });
  const booking = call('/appointments', {
    method: 'POST',
    token: org.tokens.member,
    body: { org_id: org.id, starts_at: berlin(start), ends_at: berlin(end), attendee_name: name, attendee_email: 'guest@example.com' },
  });
  await arrived;
  holdCreates = false;
  const [row] = await sql<{ id: string }[]>`select id from public.appointments where org_id = ${org.id} and attendee_name = ${name}`;
  if (!row) throw new Error('the booking was not committed before its create');
  return { booking, id: row.id };
}

function releaseHeld(): void {
  for (const release of held.splice(0)) release();
}

/** The stub's live (not cancelled) events of this appointment (in the account's primary calendar). */
function liveEvents(appointmentId: string, email = EMAIL): StubEvent[] {
  return stub.events('google', email).filter((event) => !event.isCancelled && event.description?.includes(appointmentId));
}

/** An org in Berlin, open 9 to 17 on weekdays. */
async function createOpenOrg(name: string): Promise<ChatOrg> {
  const created = await createChatOrg(sql, name);
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${created.id}`;
  for (const weekday of [1, 2, 3, 4, 5]) {
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${created.id}, ${weekday}, '09:00', '17:00')`;
  }
  return created;
}

/** Connects (or connects again) the account's calendar (Google unless told) for the org; answers the connection id. */
async function connectCalendar(target: ChatOrg, email: string, provider: 'google' | 'microsoft' = 'google'): Promise<string> {
  const started = await call('/oauth/start', { method: 'POST', token: target.tokens.admin, body: { org_id: target.id, provider } });
  expect(started.status).toBe(200);
  const consent = await stub.authorize(String(started.body.authorization_url), { email });
  const parked = await call(`/oauth/callback${new URL(consent.location).search}`);
  expect(parked.status).toBe(200);
  // The callback only parks the tokens: the user who started completes the connection.
  const connected = await call('/oauth/complete', {
    method: 'POST',
    token: target.tokens.admin,
    body: { connection_request: parked.body.connection_request },
  });
  expect(connected.status).toBe(200);
  return String(connected.body.connection_id);
}

async function appointment(id: string) {
  const [row] = await sql<{
    status: string;
    sync_status: string;
    external_event_id: string | null;
    sync_attempts: number;
    sync_next_attempt_at: Date | null;
    sync_claimed_until: Date | null;
  }[]>`
    select status, sync_status, external_event_id, sync_attempts, sync_next_attempt_at, sync_claimed_until
    from public.appointments where id = ${id}`;
  if (!row) throw new Error(`no appointment ${id}`);
  return row;
}

// Its passes take every org's due calendar work (see runExclusively).
runExclusively('calendar-passes');

beforeAll(async () => {
  stub = await startCalendarStub();
  proxy = createServer((req, res) => {
    forward(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(error));
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  stack = await startTestStack({
    env: {
      ...providerEnv(stub, { googleApiUrl: proxyUrl }),
      CALENDAR_TOKEN_KEY: TOKEN_KEY,
    },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createOpenOrg('cal-mirror');
  day = new Date(Date.now() + 14 * DAY).toISOString().slice(0, 10);
  while ([0, 6].includes(new Date(`${day}T12:00:00Z`).getUTCDay())) day = new Date(Date.parse(`${day}T00:00:00Z`) + DAY).toISOString().slice(0, 10);

  await connectCalendar(org, EMAIL);
}, 120_000);

afterAll(async () => {
  releaseHeld();
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await new Promise((resolve) => proxy?.close(resolve));
  await stub?.close();
});

describe('mirroring while the create is at the provider', () => {
  it('a cancel during the create: the late event is deleted, not left blocking the slot', async () => {
    const { booking, id } = await bookWithCreateHeld('10:00', '10:30', 'Late Create Cancel');
    const canceled = await call(`/appointments/${id}`, { method: 'DELETE', token: org.tokens.member, body: { reason: 'changed mind' } });
    releaseHeld();
    const booked = await booking;
    expect(liveEvents(id)).toEqual([]);
    expect(canceled.status).toBe(200);
    // The booking's mirroring held the appointment: the cancel left the work to it.
    expect(canceled.body.appointment).toMatchObject({ status: 'canceled', sync_status: 'pending' });
    expect(booked.status).toBe(201);
    expect(booked.body.appointment).toMatchObject({ status: 'canceled', sync_status: 'synced' });
    const row = await appointment(id);
    expect(row).toMatchObject({ status: 'canceled', sync_status: 'synced', sync_claimed_until: null, sync_next_attempt_at: null });
    // The event made and then deleted is the one recorded.
    expect(stub.events('google', EMAIL).find((event) => event.id === row.external_event_id)?.isCancelled).toBe(true);
  });

  it('a reschedule during the create: one event, at the new time', async () => {
    const { booking, id } = await bookWithCreateHeld('11:00', '11:30', 'Late Create Move');
    const moved = await call(`/appointments/${id}`, {
      method: 'PATCH',
      token: org.tokens.member,
      body: { starts_at: berlin('13:00'), ends_at: berlin('13:30') },
    });
    releaseHeld();
    const booked = await booking;
    const events = liveEvents(id);
    expect(events).toHaveLength(1);
    expect(moved.status).toBe(200);
    expect(moved.body.appointment).toMatchObject({ sync_status: 'pending' });
    expect(booked.status).toBe(201);
    expect(events[0]?.start.toISOString()).toBe(berlin('13:00'));
    expect(await appointment(id)).toMatchObject({ status: 'booked', sync_status: 'synced', external_event_id: events[0]?.id });
  });
});

describe('an event the appointment did not keep', () => {
  /** Google's events.delete (a path ending in an event id; creates end in /events). */
  const EVENT_DELETE = /www\.googleapis\.com\/calendar\/v3\/calendars\/[^/]+\/events\/[^/]+$/u;

  async function deletion(appointmentId: string) {
    const rows = await sql<{ id: string; external_event_id: string; status: string; attempts: number; next_attempt_at: Date | null; last_error: string | null }[]>`
      select id, external_event_id, status, attempts, next_attempt_at, last_error
      from private.calendar_event_deletions where appointment_id = ${appointmentId}`;
    return rows;
  }

  it('leaves one event when a late create repeats the one a takeover made', async () => {
    const { booking, id } = await bookWithCreateHeld('16:00', '16:30', 'Lease Taken Over');
    // The booking's lease runs out while its create is at the provider: the retry takes the appointment over.
    await sql`update public.appointments set sync_claimed_until = now() - interval '1 second',
              sync_next_attempt_at = now() - interval '1 second' where id = ${id}`;
    const service = stack.keys.serviceRoleKey;
    const takenOver = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(takenOver.body.appointments).toContainEqual({ id, sync_status: 'synced' });
    const kept = (await appointment(id)).external_event_id;

    // The late create carries the same key: the provider answers with the takeover's event, no stray is made.
    releaseHeld();
    expect((await booking).status).toBe(201);
    expect(liveEvents(id).map((event) => event.id)).toEqual([kept]);
    expect(await deletion(id)).toEqual([]);
    expect(await appointment(id)).toMatchObject({ status: 'booked', sync_status: 'synced', external_event_id: kept });
  });

  it('is deleted by the next retry pass when the provider failed the first delete', async () => {
    const created = await call('/appointments', {
      method: 'POST',
      token: org.tokens.member,
      body: { org_id: org.id, starts_at: berlin('16:30'), ends_at: berlin('17:00'), attendee_name: 'Stray Kept', attendee_phone: '+49 30 1234569' },
    });
    expect(created.body.appointment).toMatchObject({ sync_status: 'synced' });
    const id = String((created.body.appointment as Record<string, unknown>).id);
    const kept = (await appointment(id)).external_event_id;
    // A stray event of this appointment's calendar (as an earlier version's late create left them).
    stub.seedBusy('google', EMAIL, [{ start: new Date(`${day}T10:00:00Z`), end: new Date(`${day}T10:30:00Z`), summary: `stray of ${id}` }]);
    const strayId = stub.events('google', EMAIL).find((event) => event.summary === `stray of ${id}`)?.id ?? '';
    const service = stack.keys.serviceRoleKey;
    const [{ deletion_id: deletionId }] = await sql<{ deletion_id: string }[]>`
      select private.record_calendar_event_deletion(${id}::uuid, ${strayId}) as deletion_id`;
    await sql`update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second' where id = ${deletionId}`;

    // Deleting it fails at Google: due again after the second attempt's backoff (4 minutes), not before.
    stub.failNext(500, {}, { match: EVENT_DELETE });
    const first = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(first.body.event_deletions).toEqual([{ id: deletionId, status: 'pending' }]);
    const [pending] = await deletion(id);
    // Recorded as a first failed attempt (as the mirroring records one), then this pass's.
    expect(pending).toMatchObject({ external_event_id: strayId, status: 'pending', attempts: 2, last_error: expect.stringContaining('500') });
    const wait = (pending?.next_attempt_at?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(180_000);
    expect(wait).toBeLessThanOrEqual(240_000);

    const early = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(early.body.event_deletions).toEqual([]);
    await sql`update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second' where id = ${deletionId}`;
    const retried = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(retried.status).toBe(200);
    expect(retried.body.event_deletions).toEqual([{ id: deletionId, status: 'deleted' }]);
    expect(stub.events('google', EMAIL).find((event) => event.id === strayId)?.isCancelled ?? true).toBe(true);
    expect(await deletion(id)).toEqual([]);
    expect(await appointment(id)).toMatchObject({ status: 'booked', sync_status: 'synced', external_event_id: kept });
  });

  it('gives up after the eighth attempt, visibly', async () => {
    const created = await call('/appointments', {
      method: 'POST',
      token: org.tokens.member,
      body: { org_id: org.id, starts_at: berlin('14:00'), ends_at: berlin('14:30'), attendee_name: 'Give Up', attendee_phone: '+49 30 1234568' },
    });
    expect(created.body.appointment).toMatchObject({ sync_status: 'synced' });
    const id = String((created.body.appointment as Record<string, unknown>).id);
    // A stray event of this appointment's calendar whose delete failed seven times already.
    const [{ deletion_id: deletionId }] = await sql<{ deletion_id: string }[]>`
      select private.record_calendar_event_deletion(${id}::uuid, 'stray0event0never0deleted') as deletion_id`;
    await sql`update private.calendar_event_deletions set attempts = 7, next_attempt_at = now() - interval '1 second' where id = ${deletionId}`;
    stub.failNext(503, {}, { match: EVENT_DELETE });
    const pass = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: {} });
    expect(pass.body.event_deletions).toEqual([{ id: deletionId, status: 'given_up' }]);
    expect(await deletion(id)).toMatchObject([{ status: 'given_up', attempts: 8, next_attempt_at: null, last_error: expect.stringContaining('503') }]);
    const later = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: {} });
    expect(later.body.event_deletions).toEqual([]);
  });
});

describe('retrying', () => {
  it('retries a failed mirroring when it is due, through the service-role route', async () => {
    stub.failNext(500, {}, { match: 'www.googleapis.com/calendar/v3/calendars/primary/events' });
    const created = await call('/appointments', {
      method: 'POST',
      token: org.tokens.member,
      body: { org_id: org.id, starts_at: berlin('15:00'), ends_at: berlin('15:30'), attendee_name: 'Retry Me', attendee_phone: '+49 30 1234567' },
    });
    expect(created.status).toBe(201);
    const id = String((created.body.appointment as Record<string, unknown>).id);
    const failed = await appointment(id);
    expect(failed).toMatchObject({ sync_status: 'failed', sync_attempts: 1, sync_claimed_until: null });
    // Due a minute later, not before.
    const wait = (failed.sync_next_attempt_at?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(30_000);
    expect(wait).toBeLessThanOrEqual(60_000);

    const service = stack.keys.serviceRoleKey;
    const early = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(early.status).toBe(200);
    expect((early.body.appointments as { id: string }[]).map((entry) => entry.id)).not.toContain(id);

    await sql`update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = ${id}`;
    const retried = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(retried.status).toBe(200);
    expect(retried.body.appointments).toContainEqual({ id, sync_status: 'synced' });
    expect(liveEvents(id)).toHaveLength(1);
    expect(await appointment(id)).toMatchObject({ sync_status: 'synced', sync_attempts: 0, sync_next_attempt_at: null });
  });

  it('is the service role\'s only, and refuses malformed bodies', async () => {
    expect((await call('/mirroring', { method: 'POST' })).status).toBe(401);
    const member = await call('/mirroring', { method: 'POST', token: org.tokens.admin, body: {} });
    expect(member.status).toBe(403);
    expect(member.body).toMatchObject({ error: { code: 'service_role_required' } });
    const service = stack.keys.serviceRoleKey;
    for (const body of [{ limit: 0 }, { limit: 51 }, { limit: 'ten' }, { limt: 5 }]) {
      const answer = await call('/mirroring', { method: 'POST', token: service, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: 'invalid_request' } });
    }
    expect((await call('/mirroring', { token: service })).status).toBe(405);
  });
});

describe('changes made while the calendar needs reconnecting', () => {
  const REAUTH_EMAIL = 'mirror-reauth@example.com';

  it('reach the provider once the same account is connected again, not given up meanwhile', async () => {
    const clinic = await createOpenOrg('cal-mirror-reauth');
    const connectionId = await connectCalendar(clinic, REAUTH_EMAIL);
    const service = stack.keys.serviceRoleKey;
    const book = async (start: string, end: string, name: string, phone: string): Promise<Answer> =>
      await call('/appointments', {
        method: 'POST',
        token: clinic.tokens.member,
        body: { org_id: clinic.id, starts_at: berlin(start), ends_at: berlin(end), attendee_name: name, attendee_phone: phone },
      });
    const idOf = (answer: Answer) => String((answer.body.appointment as Record<string, unknown>).id);
    const toCancel = await book('09:00', '09:30', 'Reauth Cancel', '+49 30 2490001');
    const toMove = await book('10:00', '10:30', 'Reauth Move', '+49 30 2490002');
    expect(toCancel.body.appointment).toMatchObject({ sync_status: 'synced' });
    expect(toMove.body.appointment).toMatchObject({ sync_status: 'synced' });
    const canceledId = idOf(toCancel);
    const movedId = idOf(toMove);

    // The user removes our access at Google: the next call is refused and the refresh answers invalid_grant.
    stub.revokeAccount('google', REAUTH_EMAIL);
    const canceled = await call(`/appointments/${canceledId}`, { method: 'DELETE', token: clinic.tokens.member, body: { reason: 'ill' } });
    expect(canceled.status).toBe(200);
    const [connection] = await sql<{ status: string }[]>`select status from public.calendar_connections where id = ${connectionId}`;
    expect(connection?.status).toBe('needs_reauth');
    const moved = await call(`/appointments/${movedId}`, {
      method: 'PATCH',
      token: clinic.tokens.member,
      body: { starts_at: berlin('11:00'), ends_at: berlin('11:30') },
    });
    expect(moved.status).toBe(200);
    const booked = await book('13:00', '13:30', 'Reauth New', '+49 30 2490003');
    expect(booked.status).toBe(201);
    const ids = [canceledId, movedId, idOf(booked)];
    // The broken calendar's appointments wait for the reconnect; the ones changed after the break count no attempt.
    expect(moved.body.appointment).toMatchObject({ status: 'booked', sync_status: 'pending' });
    expect(booked.body.appointment).toMatchObject({ status: 'booked', sync_status: 'pending' });
    const attemptsBefore = await Promise.all(ids.map(async (id) => (await appointment(id)).sync_attempts));

    // A day of retry passes (more than 8), each finding them due: none is claimed, none is given up.
    for (let pass = 0; pass < 9; pass += 1) {
      await sql`update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = any(${ids}::uuid[])`;
      const answer = await call('/mirroring', { method: 'POST', token: service, body: {} });
      expect(answer.status).toBe(200);
      expect((answer.body.appointments as { id: string }[]).map((entry) => entry.id).filter((id) => ids.includes(id))).toEqual([]);
    }
    for (const [index, id] of ids.entries()) {
      const row = await appointment(id);
      expect(row.sync_attempts).toBe(attemptsBefore[index]);
      expect(row.sync_next_attempt_at).not.toBeNull();
      expect(row.sync_claimed_until).toBeNull();
    }
    // The provider still shows the canceled appointment and the old time, and not the new booking.
    expect(liveEvents(canceledId, REAUTH_EMAIL)).toHaveLength(1);
    expect(liveEvents(movedId, REAUTH_EMAIL).map((event) => event.start.toISOString())).toEqual([berlin('10:00')]);
    expect(liveEvents(ids[2] ?? '', REAUTH_EMAIL)).toEqual([]);

    // The admin connects the same account again: everything waiting is due now, counted from 0.
    expect(await connectCalendar(clinic, REAUTH_EMAIL)).toBe(connectionId);
    for (const id of ids) {
      const row = await appointment(id);
      expect(row.sync_attempts).toBe(0);
      expect(row.sync_next_attempt_at?.getTime() ?? Infinity).toBeLessThanOrEqual(Date.now() + 1_000);
    }
    const retried = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(retried.status).toBe(200);
    for (const id of ids) expect(retried.body.appointments).toContainEqual({ id, sync_status: 'synced' });
    expect(liveEvents(canceledId, REAUTH_EMAIL)).toEqual([]);
    expect(liveEvents(movedId, REAUTH_EMAIL).map((event) => event.start.toISOString())).toEqual([berlin('11:00')]);
    expect(liveEvents(ids[2] ?? '', REAUTH_EMAIL).map((event) => event.start.toISOString())).toEqual([berlin('13:00')]);
    for (const id of ids) {
      expect(await appointment(id)).toMatchObject({ sync_status: 'synced', sync_attempts: 0, sync_next_attempt_at: null });
    }
  });
});

describe('one org throttled, another waiting', () => {
  const THROTTLED_EMAIL = 'mirror-fair-throttled@contoso.example';
  const QUIET_EMAIL = 'mirror-fair-quiet@example.com';
  /** Graph's and Google's event creates (primary calendar). */
  const GRAPH_CREATE = /graph\.microsoft\.com\/v1\.0\/me\/events$/u;
  const GOOGLE_CREATE = /www\.googleapis\.com\/calendar\/v3\/calendars\/[^/]+\/events$/u;
  let throttled: ChatOrg;
  let quiet: ChatOrg;

  const book = async (target: ChatOrg, start: string, end: string, name: string): Promise<string> => {
    const answer = await call('/appointments', {
      method: 'POST',
      token: target.tokens.member,
      body: { org_id: target.id, starts_at: berlin(start), ends_at: berlin(end), attendee_name: name, attendee_email: 'guest@example.com' },
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return String((answer.body.appointment as Record<string, unknown>).id);
  };
  const waitOf = (row: { sync_next_attempt_at: Date | null }) => (row.sync_next_attempt_at?.getTime() ?? 0) - Date.now();

  beforeAll(async () => {
    throttled = await createOpenOrg('cal-mirror-fair-throttled');
    quiet = await createOpenOrg('cal-mirror-fair-quiet');
    await connectCalendar(throttled, THROTTLED_EMAIL, 'microsoft');
    await connectCalendar(quiet, QUIET_EMAIL);
  }, 60_000);

  it('the pass takes the orgs in turn; a throttled mirroring waits Retry-After uncounted, then is mirrored', async () => {
    // Graph throttles org A's bookings (429, Retry-After 120): each stays pending, no attempt counted, due in 2 minutes.
    const backlog: string[] = [];
    for (const [index, [start, end]] of [['09:00', '09:30'], ['09:30', '10:00'], ['10:00', '10:30']].entries()) {
      stub.failNext(429, { 'retry-after': '120' }, { match: GRAPH_CREATE });
      const id = await book(throttled, start ?? '', end ?? '', `Fair Throttled ${index}`);
      const row = await appointment(id);
      expect(row).toMatchObject({ sync_status: 'pending', sync_attempts: 0, sync_claimed_until: null, external_event_id: null });
      expect(waitOf(row)).toBeGreaterThan(100_000);
      expect(waitOf(row)).toBeLessThanOrEqual(120_000);
      backlog.push(id);
    }
    // Org B's booking fails at Google (500): failed, one attempt.
    stub.failNext(500, {}, { match: GOOGLE_CREATE });
    const waiting = await book(quiet, '09:00', '09:30', 'Fair Quiet');
    expect(await appointment(waiting)).toMatchObject({ sync_status: 'failed', sync_attempts: 1 });

    // All due, org A's long before org B's (and before anything else due in the shared database).
    for (const [index, id] of backlog.entries()) {
      await sql`update public.appointments set sync_next_attempt_at = now() - interval '30 days' - ${`${60 - index} minutes`}::interval where id = ${id}`;
    }
    await sql`update public.appointments set sync_next_attempt_at = now() - interval '30 days' where id = ${waiting}`;

    // A pass of two, Graph still throttling (asking a day): org A's oldest and org B's, not org A's two oldest.
    stub.failNext(429, { 'retry-after': '86400' }, { match: GRAPH_CREATE });
    const service = stack.keys.serviceRoleKey;
    const pass = await call('/mirroring', { method: 'POST', token: service, body: { limit: 2 } });
    expect(pass.status).toBe(200);
    expect(pass.body.appointments).toHaveLength(2);
    expect(pass.body.appointments).toContainEqual({ id: waiting, sync_status: 'synced' });
    expect(pass.body.appointments).toContainEqual({ id: backlog[0], sync_status: 'pending' });
    expect(liveEvents(waiting, QUIET_EMAIL)).toHaveLength(1);
    // Throttled again: still pending, still no attempt, due in an hour (the most it waits), not a day.
    const oldest = await appointment(backlog[0] ?? '');
    expect(oldest).toMatchObject({ sync_status: 'pending', sync_attempts: 0, sync_claimed_until: null, external_event_id: null });
    expect(waitOf(oldest)).toBeGreaterThan(3_500_000);
    expect(waitOf(oldest)).toBeLessThanOrEqual(3_600_000);
    for (const id of backlog.slice(1)) expect(await appointment(id)).toMatchObject({ sync_status: 'pending', sync_attempts: 0 });

    // Graph answers again: once due, all of org A's are mirrored, none given up.
    await sql`update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = any(${backlog}::uuid[])`;
    const after = await call('/mirroring', { method: 'POST', token: service, body: {} });
    expect(after.status).toBe(200);
    for (const id of backlog) {
      expect(after.body.appointments).toContainEqual({ id, sync_status: 'synced' });
      expect(await appointment(id)).toMatchObject({ sync_status: 'synced', sync_attempts: 0, sync_next_attempt_at: null });
      expect(stub.events('microsoft', THROTTLED_EMAIL).filter((event) => !event.isCancelled && event.description?.includes(id))).toHaveLength(1);
    }
  });

  it('Google\'s rateLimitExceeded without Retry-After: the booking stands, pending and uncounted, due at the next pass', async () => {
    // 403 rateLimitExceeded, as Google answers for the project's quota: the client waits 1 s and 2 s, then gives up.
    for (let answer = 0; answer < 3; answer += 1) stub.failNext(403, {}, { match: GOOGLE_CREATE });
    const id = await book(quiet, '11:00', '11:30', 'Fair Google Throttled');
    const row = await appointment(id);
    expect(row).toMatchObject({ status: 'booked', sync_status: 'pending', sync_attempts: 0, sync_claimed_until: null, external_event_id: null });
    // Its last wait (4 s) was waited out in the call: at least a minute, the next pass.
    expect(waitOf(row)).toBeGreaterThan(50_000);
    expect(waitOf(row)).toBeLessThanOrEqual(60_000);
    expect(liveEvents(id, QUIET_EMAIL)).toEqual([]);

    await sql`update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = ${id}`;
    const pass = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: {} });
    expect(pass.body.appointments).toContainEqual({ id, sync_status: 'synced' });
    expect(liveEvents(id, QUIET_EMAIL)).toHaveLength(1);
  });
});
