/**
 * Lost answers do not duplicate (the calendar function over HTTP, real Deno,
 * against tests/support/calendar-stub.ts): a create the provider carried out
 * but whose answer was lost (a 503 after the event was made) is repeated
 * with the same idempotency key, so the retry ends with ONE event at the
 * provider, the appointment synced to it, and a cancel leaves none (Google:
 * a client-chosen event id, 409 `duplicate` on the repeat; Graph: a
 * transactionId and an extended property). A bot booking with an
 * Idempotency-Key sent again gets its first answer again, not a second
 * appointment or a 409 for its own slot; so does a staff booking
 * (POST /appointments, the key kept for the user in the org).
 *
 * The connections are stored as the callback stores them (tokens from the
 * stub's own consent and code exchange, sealed under the connection's key,
 * private.save_calendar_connection), not through the OAuth routes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import {
  calendarClientFromEnv,
  type CalendarProvider,
  createPkcePair,
  instantFromWallTime,
  parseKeyring,
  sealTokenSet,
} from '../../functions/_shared/calendar/index.ts';
import { connectionKey, tokenContext } from '../../functions/_shared/scheduling/stored-tokens.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub, type StubEvent } from '../support/calendar-stub.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';
import { runExclusively } from '../support/exclusive.ts';

const TOKEN_KEY = Buffer.from('calendar-idem-token-key-32-bytes').toString('base64');
const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
const REDIRECT = 'https://project.example/functions/v1/calendar/oauth/callback';
const GOOGLE_CREATE = 'www.googleapis.com/calendar/v3/calendars/primary/events';
const GRAPH_CREATE = 'graph.microsoft.com/v1.0/me/events';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let env: Record<string, string>;
/** A Wednesday at least two weeks ahead, YYYY-MM-DD. */
let day: string;

interface Org {
  org: ChatOrg;
  provider: CalendarProvider;
  email: string;
}
const orgs = {} as Record<CalendarProvider, Org>;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

const berlin = (time: string) => instantFromWallTime(`${day}T${time}`, ZONE).toISOString();

/** Connects the org's calendar as the callback would: consent and code exchange at the stub, the tokens sealed and saved. */
async function connect(org: ChatOrg, provider: CalendarProvider, email: string): Promise<string> {
  const client = calendarClientFromEnv(provider, (name) => env[name]);
  if (!client) throw new Error(`no ${provider} client`);
  const { codeVerifier, codeChallenge } = await createPkcePair();
  const consent = await stub.authorize(client.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge }), { email });
  const tokens = await client.exchangeCode({ code: consent.code ?? '', codeVerifier, redirectUri: REDIRECT });
  const key = connectionKey(org.id, provider, tokens.account?.id ?? null, email, null);
  const ciphertext = await sealTokenSet(tokens, await parseKeyring(TOKEN_KEY), tokenContext(key));
  const [saved] = await sql<{ id: string }[]>`
    select private.save_calendar_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, ${provider}, ${email},
      ${key.externalCalendarId}, ${[...client.scopes]}, ${ciphertext}, ${tokens.expiresAt.toISOString()}::timestamptz,
      ${tokens.account?.id ?? null}) as id`;
  return saved.id;
}

/** The live events of the appointment at the provider (Google keeps deleted ones as cancelled; Graph removes them). */
function liveEvents(target: Org, appointmentId: string): StubEvent[] {
  return stub.events(target.provider, target.email).filter((event) => !event.isCancelled && event.description?.includes(appointmentId));
}

async function appointmentRow(id: string) {
  const [row] = await sql<{ status: string; sync_status: string; external_event_id: string | null; starts_at: Date }[]>`
    select status, sync_status, external_event_id, starts_at from public.appointments where id = ${id}`;
  return row;
}

/** Books as staff while the provider makes the event but the answer to its create is lost (a 503 after acting). */
async function bookLosingTheAnswer(target: Org, start: string, end: string, name: string): Promise<string> {
  stub.failNext(503, {}, { match: target.provider === 'google' ? GOOGLE_CREATE : GRAPH_CREATE, afterApplying: true });
  const created = await call('/appointments', {
    method: 'POST',
    token: target.org.tokens.member,
    body: { org_id: target.org.id, starts_at: berlin(start), ends_at: berlin(end), attendee_name: name, attendee_phone: '+49 30 7654321' },
  });
  expect(created.status).toBe(201);
  const appointment = created.body.appointment as Record<string, unknown>;
  // The booking stands, unmirrored as far as it knows; the provider did make the event.
  expect(appointment).toMatchObject({ sync_status: 'failed', external_event_id: null });
  const id = String(appointment.id);
  expect(liveEvents(target, id)).toHaveLength(1);
  return id;
}

async function retryDue(id: string): Promise<void> {
  await sql`update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = ${id}`;
  const retried = await call('/mirroring', { method: 'POST', token: stack.keys.serviceRoleKey, body: {} });
  expect(retried.status).toBe(200);
  expect(retried.body.appointments).toContainEqual({ id, sync_status: 'synced' });
}

// Its passes take every org's due calendar work (see runExclusively).
runExclusively('calendar-passes');

beforeAll(async () => {
  stub = await startCalendarStub();
  env = {
    ...providerEnv(stub),
    CALENDAR_TOKEN_KEY: TOKEN_KEY,
  };
  stack = await startTestStack({ env });
  sql = createSql(stack.dbUrl, { max: 2 });
  let wednesday = new Date(Date.now() + 14 * DAY);
  while (wednesday.getUTCDay() !== 3) wednesday = new Date(wednesday.getTime() + DAY);
  day = wednesday.toISOString().slice(0, 10);
  for (const [provider, email] of [['google', 'idem-google@example.com'], ['microsoft', 'idem-outlook@contoso.example']] as const) {
    const org = await createChatOrg(sql, `cal-idem-${provider}`);
    await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
    for (const weekday of [1, 2, 3, 4, 5]) {
      await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
    }
    await connect(org, provider, email);
    orgs[provider] = { org, provider, email };
  }
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe.each(['google', 'microsoft'] as const)('a create whose answer was lost (%s)', (provider) => {
  it('is retried into the one event the provider made, and a cancel leaves none', async () => {
    const target = orgs[provider];
    const id = await bookLosingTheAnswer(target, '10:00', '10:30', `Lost Answer ${provider}`);
    const [made] = liveEvents(target, id);

    await retryDue(id);
    expect(liveEvents(target, id).map((event) => event.id)).toEqual([made?.id]);
    expect(await appointmentRow(id)).toMatchObject({ status: 'booked', sync_status: 'synced', external_event_id: made?.id });

    const canceled = await call(`/appointments/${id}`, { method: 'DELETE', token: target.org.tokens.member, body: {} });
    expect(canceled.status).toBe(200);
    expect(canceled.body.appointment).toMatchObject({ status: 'canceled', sync_status: 'synced' });
    expect(liveEvents(target, id)).toEqual([]);
  });

  it('moved before the retry: the event the lost create made is moved, not doubled', async () => {
    const target = orgs[provider];
    const id = await bookLosingTheAnswer(target, '11:00', '11:30', `Lost Then Moved ${provider}`);
    const [made] = liveEvents(target, id);

    const lookups = () => stub.requests.filter((request) => request.method === 'GET' && request.path === '/v1.0/me/events').length;
    const lookedUp = lookups();
    const moved = await call(`/appointments/${id}`, {
      method: 'PATCH',
      token: target.org.tokens.member,
      body: { starts_at: berlin('13:00'), ends_at: berlin('13:30') },
    });
    expect(moved.status).toBe(200);
    expect(moved.body.appointment).toMatchObject({ sync_status: 'synced', external_event_id: made?.id });
    const live = liveEvents(target, id);
    expect(live.map((event) => event.id)).toEqual([made?.id]);
    expect(live[0]?.start.toISOString()).toBe(berlin('13:00'));
    // Graph refused the transactionId for the other version of the event: found by its extended property.
    if (provider === 'microsoft') expect(lookups()).toBe(lookedUp + 1);
  });

  it('canceled before any retry: the event no id names is found by its key and deleted', async () => {
    const target = orgs[provider];
    const id = await bookLosingTheAnswer(target, '14:00', '14:30', `Lost Then Canceled ${provider}`);

    const canceled = await call(`/appointments/${id}`, { method: 'DELETE', token: target.org.tokens.member, body: {} });
    expect(canceled.status).toBe(200);
    expect(canceled.body.appointment).toMatchObject({ status: 'canceled', sync_status: 'synced' });
    expect(liveEvents(target, id)).toEqual([]);
  });
});

describe('a bot booking sent again with its Idempotency-Key', () => {
  let bot: string;
  let apiKey: string;
  const target = () => orgs.google;

  beforeAll(async () => {
    bot = await createBot(sql, target().org.id, { slug: 'idem-front-desk' });
    apiKey = (await createApiKey(sql, target().org, ['calendar.read', 'calendar.write'])).key;
  });

  const book = (start: string, end: string, idempotencyKey?: string, name = 'Idem Caller') =>
    call(`/bots/${bot}/appointments`, {
      method: 'POST',
      token: apiKey,
      ...(idempotencyKey ? { idempotencyKey } : {}),
      body: { starts_at: berlin(start), ends_at: berlin(end), attendee_name: name, attendee_phone: '+4915112345678' },
    });

  async function bookingsAt(start: string): Promise<number> {
    const [row] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.appointments
      where bot_id = ${bot} and starts_at = ${berlin(start)}::timestamptz and status = 'booked'`;
    return row.count;
  }

  it('answers the first booking again: one appointment, one event, replayed', async () => {
    const key = 'calendar-idempotency-test-same-1';
    const first = await book('09:00', '09:30', key);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const appointment = first.body.appointment as Record<string, unknown>;
    expect(appointment).toMatchObject({ source: 'bot', bot_id: bot, sync_status: 'synced' });

    const again = await book('09:00', '09:30', key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((again.body.appointment as Record<string, unknown>).id).toBe(appointment.id);
    expect(await bookingsAt('09:00')).toBe(1);
    expect(liveEvents(target(), String(appointment.id))).toHaveLength(1);
  });

  it('refuses the same key with another request (422) and changes nothing', async () => {
    const key = 'calendar-idempotency-test-other-2';
    expect((await book('15:00', '15:30', key)).status).toBe(201);
    const other = await book('16:00', '16:30', key);
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ error: { code: 'idempotency_key_reused' } });
    expect(await bookingsAt('16:00')).toBe(0);
    expect(await bookingsAt('15:00')).toBe(1);
  });

  it('gives the key up after a refusal, so it may be sent again', async () => {
    const key = 'calendar-idempotency-test-refused-3';
    // Closed at 17:00: refused, nothing kept for the key.
    const closed = await book('17:00', '17:30', key);
    expect(closed.status).toBe(409);
    expect(closed.body).toMatchObject({ error: { code: 'slot_unavailable' } });
    const [kept] = await sql<{ count: number }[]>`
      select count(*)::int as count from private.idempotency_keys where idempotency_key = ${key}`;
    expect(kept.count).toBe(0);
    const open = await book('12:00', '12:30', key);
    expect(open.status).toBe(201);
    expect(open.headers.get('idempotent-replayed')).toBeNull();
  });

  it('without a key books as before: the same request again finds its slot taken', async () => {
    expect((await book('15:30', '16:00')).status).toBe(201);
    const twice = await book('15:30', '16:00');
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ error: { code: 'slot_unavailable' } });
    expect(await bookingsAt('15:30')).toBe(1);
  });
});

describe('a staff booking sent again with its Idempotency-Key (20261123011300)', () => {
  const target = () => orgs.microsoft;
  const book = (start: string, end: string, idempotencyKey?: string, token = target().org.tokens.member) =>
    call('/appointments', {
      method: 'POST',
      token,
      ...(idempotencyKey ? { idempotencyKey } : {}),
      body: { org_id: target().org.id, starts_at: berlin(start), ends_at: berlin(end), attendee_name: 'Staff Retry', attendee_email: 'staff-retry@example.com' },
    });

  async function staffBookingsAt(start: string): Promise<number> {
    const [row] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.appointments
      where org_id = ${target().org.id} and starts_at = ${berlin(start)}::timestamptz and status = 'booked'`;
    return row.count;
  }

  it('answers the first 201 again after a lost answer: one appointment, one event, replayed', async () => {
    const key = 'calendar-idempotency-staff-same-1';
    const first = await book('09:00', '09:30', key);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const appointment = first.body.appointment as Record<string, unknown>;
    expect(appointment).toMatchObject({ source: 'staff', sync_status: 'synced' });

    const again = await book('09:00', '09:30', key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((again.body.appointment as Record<string, unknown>).id).toBe(appointment.id);
    expect(await staffBookingsAt('09:00')).toBe(1);
    expect(liveEvents(target(), String(appointment.id))).toHaveLength(1);

    // The key is the user's: another member sending it books for themselves, and here finds the slot taken.
    const colleague = await book('09:00', '09:30', key, target().org.tokens.admin);
    expect(colleague.status).toBe(409);
    expect(colleague.body).toMatchObject({ error: { code: 'slot_taken' } });
    expect(await staffBookingsAt('09:00')).toBe(1);
  });

  it('refuses the key with another body (422), frees it after a refusal, and books as before without one', async () => {
    const key = 'calendar-idempotency-staff-other-2';
    expect((await book('09:30', '10:00', key)).status).toBe(201);
    const other = await book('15:00', '15:30', key);
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ error: { code: 'idempotency_key_reused' } });
    expect(await staffBookingsAt('15:00')).toBe(0);

    const refusedKey = 'calendar-idempotency-staff-refused-3';
    const taken = await book('09:30', '10:00', refusedKey);
    expect(taken.status).toBe(409);
    expect(taken.body).toMatchObject({ error: { code: 'slot_taken' } });
    const [kept] = await sql<{ count: number }[]>`
      select count(*)::int as count from private.idempotency_keys where idempotency_key = ${refusedKey}`;
    expect(kept.count).toBe(0);
    expect((await book('15:30', '16:00', refusedKey)).status).toBe(201);

    expect((await book('16:00', '16:30')).status).toBe(201);
    const twice = await book('16:00', '16:30');
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ error: { code: 'slot_taken' } });
  });
});

describe('a disconnect', () => {
  it('revokes the Google grant only when no other connection holds the account, asked by the account', async () => {
    const email = 'idem-shared@example.com';
    const first = await createChatOrg(sql, 'cal-idem-disconnect-1');
    const second = await createChatOrg(sql, 'cal-idem-disconnect-2');
    const kept = await connect(first, 'google', email);
    const last = await connect(second, 'google', email);
    const revokes = () => stub.requests.filter((request) => request.path === '/revoke').length;
    const before = revokes();

    const shared = await call(`/connections/${kept}/disconnect`, { method: 'POST', token: first.tokens.admin });
    expect(shared.status).toBe(200);
    expect(shared.body).toEqual({ connection_id: kept, revoked_at_provider: false });
    expect(revokes()).toBe(before);

    const alone = await call(`/connections/${last}/disconnect`, { method: 'POST', token: second.tokens.admin });
    expect(alone.status).toBe(200);
    expect(alone.body).toEqual({ connection_id: last, revoked_at_provider: true });
    expect(revokes()).toBe(before + 1);
    const [left] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.calendar_connections where id in (${kept}, ${last})`;
    expect(left.count).toBe(0);
  });
});
