/**
 * Finishing a CALENDAR_TOKEN_KEY rotation (20261123011300; the calendar
 * function over HTTP, real Deno, against tests/support/calendar-stub.ts).
 * The function runs with `NEW,OLD`: POST /calendar/reseal (service role)
 * seals again under NEW what was sealed under OLD (a connection's tokens,
 * also a needs_reauth one's, an unexpired connection request's, a dropped
 * grant's copy), changing nothing else, and names what does not open; with
 * `retire_unknown_keys`, a connection whose tokens were sealed with a key the
 * operator's keyring lacks is marked there needs_reauth with
 * calendar.connection_broken (once).
 * At use time such tokens are a passing unavailability (a worker started
 * before a key change, a deploy missing a key): the calendar is listed
 * missing (`key_missing`), a bot's booking refused, nothing persisted, and
 * all works again once the key is back.
 * Sets are bound to the connection's account subject (20261123014000): one
 * account's tokens copied onto another account's connection of the same
 * e-mail and calendar do not open there, and a set sealed before under the
 * legacy context opens only on its own connection until reseal moves it.
 *
 * The tests' reseal calls name their org (`org_id`): the test database is
 * shared, and an unscoped pass would mark other files' connections, sealed
 * under their own keys, needs_reauth.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import {
  calendarClientFromEnv,
  createPkcePair,
  instantFromWallTime,
  type Keyring,
  open,
  parseKeyring,
  seal,
  sealTokenSet,
  type TokenSet,
} from '../../functions/_shared/calendar/index.ts';
import {
  type ConnectionKey,
  connectionKey,
  legacyTokenContext,
  tokenContext,
} from '../../functions/_shared/scheduling/stored-tokens.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';

const NEW_KEY = Buffer.from('calendar-rotation-new-key-32byte').toString('base64');
const OLD_KEY = Buffer.from('calendar-rotation-old-key-32byte').toString('base64');
/** A key already dropped from the function's keyring. */
const GONE_KEY = Buffer.from('calendar-rotation-gone-key-32byt').toString('base64');
const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
const REDIRECT = 'https://project.example/functions/v1/calendar/oauth/callback';

let env: Record<string, string>;
let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let org: ChatOrg;
let oldRing: Keyring;
let goneRing: Keyring;
let newOnly: Keyring;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

const tokens = (label: string): TokenSet => ({
  accessToken: `rotation-access-${label}`,
  refreshToken: `rotation-refresh-${label}`,
  expiresAt: new Date(Date.now() + 3_600_000),
  tokenType: 'Bearer',
  scope: 'https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy',
  account: { id: `rotation-subject-${label}`, email: `${label}@rotation.example` },
});

/** A Google connection of the org whose tokens are sealed with `ring`, as the callback and completion store them. */
async function connectSealed(label: string, ring: Keyring): Promise<{ id: string; context: string }> {
  const email = `${label}@rotation.example`;
  const set = tokens(label);
  const key = connectionKey(org.id, 'google', set.account?.id ?? null, email, null);
  const ciphertext = await sealTokenSet(set, ring, tokenContext(key));
  const [saved] = await sql<{ id: string }[]>`
    select private.save_calendar_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, 'google', ${email},
      ${key.externalCalendarId}, ${['https://www.googleapis.com/auth/calendar.events']}, ${ciphertext},
      ${set.expiresAt.toISOString()}::timestamptz, ${set.account?.id ?? null}) as id`;
  return { id: saved.id, context: tokenContext(key) };
}

async function brokenEvents(connectionId: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from public.events
    where type = 'calendar.connection_broken' and payload->>'connection_id' = ${connectionId}`;
  return row.count;
}

async function tokensOf(connectionId: string): Promise<string> {
  const [row] = await sql<{ ciphertext: string }[]>`select ciphertext from private.calendar_tokens where connection_id = ${connectionId}`;
  return row.ciphertext;
}

async function connection(id: string) {
  const [row] = await sql<{ status: string; status_reason: string | null; token_expires_at: Date }[]>`
    select status, status_reason, token_expires_at from public.calendar_connections where id = ${id}`;
  return row;
}

beforeAll(async () => {
  stub = await startCalendarStub();
  env = { ...providerEnv(stub), CALENDAR_TOKEN_KEY: `${NEW_KEY},${OLD_KEY}` };
  stack = await startTestStack({ env });
  sql = createSql(stack.dbUrl, { max: 2 });
  oldRing = await parseKeyring(OLD_KEY);
  goneRing = await parseKeyring(GONE_KEY);
  newOnly = await parseKeyring(NEW_KEY);
  org = await createChatOrg(sql, 'cal-token-rotation');
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('POST /calendar/reseal', () => {
  it('seals every kind of stored token set under the first key, changes nothing else, and names what does not open', async () => {
    const live = await connectSealed('live', oldRing);
    const broken = await connectSealed('broken', oldRing);
    await sql`update public.calendar_connections set status = 'needs_reauth', status_reason = 'invalid_grant: rotation test'
      where id = ${broken.id}`;
    const brokenBefore = await connection(broken.id);
    const lost = await connectSealed('lost', goneRing);
    const lostCiphertext = await tokensOf(lost.id);

    const requestKey = connectionKey(org.id, 'google', 'rotation-subject-request', 'request@rotation.example', null);
    const [request] = await sql<{ id: string }[]>`
      select id from private.store_calendar_pending_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, 'google',
        ${requestKey.accountEmail}, 'rotation-subject-request', ${['https://www.googleapis.com/auth/calendar.events']},
        ${await sealTokenSet(tokens('request'), oldRing, tokenContext(requestKey))}, now() + interval '1 hour')`;
    const lostRequestKey = connectionKey(org.id, 'google', 'rotation-subject-lost-request', 'lost-request@rotation.example', null);
    const [lostRequest] = await sql<{ id: string }[]>`
      select id from private.store_calendar_pending_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, 'google',
        ${lostRequestKey.accountEmail}, 'rotation-subject-lost-request', ${['https://www.googleapis.com/auth/calendar.events']},
        ${await sealTokenSet(tokens('lost-request'), goneRing, tokenContext(lostRequestKey))}, now() + interval '1 hour')`;
    const droppedKey = connectionKey(org.id, 'google', 'rotation-subject-dropped', 'dropped@rotation.example', null);
    // Not due for a day: no revocation pass of another test file takes it meanwhile.
    const [dropped] = await sql<{ id: string }[]>`
      insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
        external_calendar_id, ciphertext, next_attempt_at)
      values (${randomUUID()}, ${org.id}, 'google', 'rotation-subject-dropped', ${droppedKey.accountEmail}, 'primary',
        ${await sealTokenSet(tokens('dropped'), oldRing, tokenContext(droppedKey))}, now() + interval '1 day')
      returning id`;
    // Another org's set under the old key: outside the pass's org_id.
    const elsewhereOrg = await createChatOrg(sql, 'cal-token-rotation-elsewhere');
    const elsewhereKey = connectionKey(elsewhereOrg.id, 'google', 'rotation-subject-elsewhere', 'elsewhere@rotation.example', null);
    const elsewhereSet = tokens('elsewhere');
    const [elsewhere] = await sql<{ id: string }[]>`
      select private.save_calendar_connection(${elsewhereOrg.id}::uuid, ${elsewhereOrg.users.admin}::uuid, null, 'google',
        ${elsewhereKey.accountEmail}, ${elsewhereKey.externalCalendarId}, ${['https://www.googleapis.com/auth/calendar.events']},
        ${await sealTokenSet(elsewhereSet, oldRing, tokenContext(elsewhereKey))}, ${elsewhereSet.expiresAt.toISOString()}::timestamptz,
        'rotation-subject-elsewhere') as id`;
    const elsewhereCiphertext = await tokensOf(elsewhere.id);

    const reseal = (body: Record<string, unknown>) => call('/reseal', { method: 'POST', token: stack.keys.serviceRoleKey, body });
    const refused = await call('/reseal', { method: 'POST', token: org.tokens.owner, body: { org_id: org.id } });
    expect(refused).toMatchObject({ status: 403, body: { error: { code: 'service_role_required' } } });
    expect((await reseal({ limit: 501, org_id: org.id })).status).toBe(400);
    expect(await reseal({ org_id: 'not-a-uuid' })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(await reseal({ org_id: org.id, retire_unknown_keys: 'yes' })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(await tokensOf(live.id)).toMatch(/^v1\./u);
    expect(await open(await tokensOf(live.id), oldRing, live.context)).toContain('rotation-access-live');
    expect(await connection(lost.id)).toMatchObject({ status: 'connected', status_reason: null });

    const answer = await reseal({ limit: 500, org_id: org.id });
    expect(answer.status).toBe(200);
    expect(answer.body.resealed).toBe(4);
    expect(answer.body.failed).toEqual(expect.arrayContaining([
      { kind: 'connection', id: lost.id, reason: 'unknown_key' },
      { kind: 'request', id: lostRequest.id, reason: 'unknown_key' },
    ]));
    const failedIds = (answer.body.failed as { id: string }[]).map((failure) => failure.id);
    for (const id of [live.id, broken.id, request.id, dropped.id, elsewhere.id]) expect(failedIds).not.toContain(id);
    // What does not open stays counted, so the operator sees the rotation is not finished.
    expect(answer.body.remaining).toBeGreaterThanOrEqual(2);

    // Everything opens with the new key alone now, under the same contexts.
    expect(await open(await tokensOf(live.id), newOnly, live.context)).toContain('rotation-access-live');
    expect(await open(await tokensOf(broken.id), newOnly, broken.context)).toContain('rotation-access-broken');
    const [pending] = await sql<{ ciphertext: string }[]>`
      select ciphertext from private.calendar_pending_connections where id = ${request.id}`;
    expect(await open(pending.ciphertext, newOnly, tokenContext(requestKey))).toContain('rotation-access-request');
    const [copy] = await sql<{ ciphertext: string; attempts: number }[]>`
      select ciphertext, attempts from private.deleted_org_calendar_grants where id = ${dropped.id}`;
    expect(await open(copy.ciphertext, newOnly, tokenContext(droppedKey))).toContain('rotation-access-dropped');
    expect(copy.attempts).toBe(0);
    // A re-seal is no refresh: a broken connection stays broken, with its reason and expiry, and the org is not told again.
    expect(await connection(broken.id)).toEqual(brokenBefore);
    expect(await brokenEvents(broken.id)).toBe(0);
    expect(await connection(live.id)).toMatchObject({ status: 'connected', status_reason: null });
    // A key missing from this worker's keyring is not taken for gone unless the operator says so (a worker
    // started before the key change lacks the new key).
    expect(await connection(lost.id)).toMatchObject({ status: 'connected', status_reason: null });
    expect(await brokenEvents(lost.id)).toBe(0);
    const retired = await reseal({ limit: 500, org_id: org.id, retire_unknown_keys: true });
    expect(retired.status).toBe(200);
    expect(retired.body.resealed).toBe(0);
    // The key is gone from the operator's full keyring: the connection is broken for good, and the org told once.
    expect(await tokensOf(lost.id)).toBe(lostCiphertext);
    expect(await connection(lost.id)).toMatchObject({
      status: 'needs_reauth',
      status_reason: expect.stringMatching(/^unknown_key: Sealed with key [0-9a-f]{8}, which is not configured\.$/u),
    });
    expect(await brokenEvents(lost.id)).toBe(1);
    // Another org's sets are not taken.
    expect(await tokensOf(elsewhere.id)).toBe(elsewhereCiphertext);

    // Done ones are not taken again; what does not open is named again, and not told again.
    const done = await tokensOf(live.id);
    const again = await reseal({ limit: 500, org_id: org.id, retire_unknown_keys: true });
    expect(again.status).toBe(200);
    expect(again.body.resealed).toBe(0);
    expect(await tokensOf(live.id)).toBe(done);
    expect((again.body.failed as { id: string }[]).map((failure) => failure.id)).toEqual(expect.arrayContaining([lost.id, lostRequest.id]));
    expect(await brokenEvents(lost.id)).toBe(1);

    const there = await reseal({ org_id: elsewhereOrg.id });
    expect(there.body).toMatchObject({ resealed: 1, failed: [] });
    expect(await open(await tokensOf(elsewhere.id), newOnly, tokenContext(elsewhereKey))).toContain('rotation-access-elsewhere');
  });
});

describe('tokens sealed with a key this worker lacks', () => {
  let other: ChatOrg;
  let id: string;
  let bot: string;
  let apiKey: string;
  let day: string;
  const email = 'stale-worker@rotation.example';
  const berlin = (time: string) => instantFromWallTime(`${day}T${time}`, ZONE).toISOString();

  beforeAll(async () => {
    other = await createChatOrg(sql, 'cal-token-rotation-stale');
    await sql`update public.organizations set time_zone = ${ZONE} where id = ${other.id}`;
    let wednesday = new Date(Date.now() + 14 * DAY);
    while (wednesday.getUTCDay() !== 3) wednesday = new Date(wednesday.getTime() + DAY);
    day = wednesday.toISOString().slice(0, 10);
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${other.id}, 3, '09:00', '17:00')`;
    // Tokens from the stub's own consent and code exchange, as the callback stores them, under a key this stack lacks.
    const client = calendarClientFromEnv('google', (name) => env[name]);
    if (!client) throw new Error('no google client');
    const { codeVerifier, codeChallenge } = await createPkcePair();
    const consent = await stub.authorize(client.authorizationUrl({ redirectUri: REDIRECT, state: 's', codeChallenge }), { email });
    const set = await client.exchangeCode({ code: consent.code ?? '', codeVerifier, redirectUri: REDIRECT });
    const key = connectionKey(other.id, 'google', set.account?.id ?? null, email, null);
    const [saved] = await sql<{ id: string }[]>`
      select private.save_calendar_connection(${other.id}::uuid, ${other.users.admin}::uuid, null, 'google', ${email},
        ${key.externalCalendarId}, ${[...client.scopes]}, ${await sealTokenSet(set, goneRing, tokenContext(key))},
        ${set.expiresAt.toISOString()}::timestamptz, ${set.account?.id ?? null}) as id`;
    id = saved.id;
    stub.seedBusy('google', email, [{ start: berlin('10:00'), end: berlin('11:00'), summary: 'rotation busy' }]);
    bot = await createBot(sql, other.id, { slug: 'rotation-stale-desk' });
    apiKey = (await createApiKey(sql, other, ['calendar.read', 'calendar.write'])).key;
  });

  const availability = (functionsUrl: string) => {
    const query = new URLSearchParams({ org_id: other.id, from: berlin('09:00'), to: berlin('12:00'), duration_minutes: '60' });
    return callCalendar(functionsUrl, `/availability?${query}`, { token: other.tokens.member });
  };
  const book = (functionsUrl: string, start: string, end: string) =>
    callCalendar(functionsUrl, `/bots/${bot}/appointments`, {
      method: 'POST',
      token: apiKey,
      body: { starts_at: berlin(start), ends_at: berlin(end), attendee_name: 'Rotation Caller', attendee_phone: '+4915112345670' },
    });
  const bookings = async () => {
    const [row] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.appointments where bot_id = ${bot} and status = 'booked'`;
    return row.count;
  };

  it('list the calendar as missing (key_missing) and refuse a booking, persisting nothing', async () => {
    const ciphertext = await tokensOf(id);
    for (let round = 0; round < 2; round += 1) {
      const answer = await availability(stack.functionsUrl);
      expect(answer.status).toBe(200);
      expect(answer.body.missing_calendars).toEqual([{ connection_id: id, provider: 'google', reason: 'key_missing' }]);
    }
    const refused = await book(stack.functionsUrl, '09:00', '10:00');
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'calendar_unavailable' } } });
    expect(await bookings()).toBe(0);
    expect(await connection(id)).toMatchObject({ status: 'connected', status_reason: null });
    expect(await tokensOf(id)).toBe(ciphertext);
    expect(await brokenEvents(id)).toBe(0);
    expect(stack.logs.some((line) => line.includes('CALENDAR_TOKEN_KEY lacks a key') && line.includes(id))).toBe(true);
  });

  it('work again once the key is back, with no reconnect', async () => {
    const restored = await startTestStack({ env: { ...env, CALENDAR_TOKEN_KEY: `${NEW_KEY},${OLD_KEY},${GONE_KEY}` } });
    try {
      const answer = await availability(restored.functionsUrl);
      expect(answer.status).toBe(200);
      expect(answer.body.missing_calendars).toEqual([]);
      const slots = answer.body.slots as { start: string; end: string }[];
      expect(slots.length).toBeGreaterThan(0);
      // The calendar's busy hour is read, hence not offered.
      const at = (instant: string) => Date.parse(instant);
      expect(slots.filter((slot) => at(slot.start) < at(berlin('11:00')) && at(slot.end) > at(berlin('10:00')))).toEqual([]);
      const booked = await book(restored.functionsUrl, '09:00', '10:00');
      expect(booked.status).toBe(201);
      expect(await bookings()).toBe(1);
    } finally {
      await restored.stop();
    }
    expect(await connection(id)).toMatchObject({ status: 'connected', status_reason: null });
    expect(await brokenEvents(id)).toBe(0);
  });
});

describe('token sets bound to the account subject (20261123014000)', () => {
  let bound: ChatOrg;
  let day: string;
  const email = 'shared@seal-binding.example';
  const berlin = (time: string) => instantFromWallTime(`${day}T${time}`, ZONE).toISOString();
  const at = (instant: string) => Date.parse(instant);

  /** The org's admin connects the account answering to `address` over OAuth (start, consent, callback, complete). */
  async function connectOverOAuth(address: string): Promise<string> {
    const started = await call('/oauth/start', { method: 'POST', token: bound.tokens.admin, body: { org_id: bound.id, provider: 'google' } });
    expect(started.status).toBe(200);
    const consent = await stub.authorize(String(started.body.authorization_url), { email: address });
    const parked = await call(`/oauth/callback${new URL(consent.location).search}`);
    expect(parked.status).toBe(200);
    const connected = await call('/oauth/complete', {
      method: 'POST',
      token: bound.tokens.admin,
      body: { connection_request: parked.body.connection_request },
    });
    expect(connected.status).toBe(200);
    return String(connected.body.connection_id);
  }

  async function keyOf(connectionId: string): Promise<ConnectionKey> {
    const [row] = await sql<{ account_subject: string | null; account_email: string; external_calendar_id: string | null }[]>`
      select account_subject, account_email, external_calendar_id from public.calendar_connections where id = ${connectionId}`;
    return connectionKey(bound.id, 'google', row.account_subject, row.account_email, row.external_calendar_id);
  }

  const availability = () => {
    const query = new URLSearchParams({ org_id: bound.id, from: berlin('09:00'), to: berlin('17:00'), duration_minutes: '60' });
    return call(`/availability?${query}`, { token: bound.tokens.member });
  };
  /** Whether a slot overlapping [from, to) is offered. */
  const offered = (answer: Answer, from: string, to: string) =>
    (answer.body.slots as { start: string; end: string }[]).some((slot) => at(slot.start) < at(berlin(to)) && at(slot.end) > at(berlin(from)));

  beforeAll(async () => {
    bound = await createChatOrg(sql, 'cal-seal-binding');
    await sql`update public.organizations set time_zone = ${ZONE} where id = ${bound.id}`;
    let thursday = new Date(Date.now() + 21 * DAY);
    while (thursday.getUTCDay() !== 4) thursday = new Date(thursday.getTime() + DAY);
    day = thursday.toISOString().slice(0, 10);
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${bound.id}, 4, '09:00', '17:00')`;
  });

  it("keeps one account's tokens off another account's connection of the same e-mail, and moves old seals on reseal", async () => {
    // A connects; the address then passes to another account B, who connects too: two connections, one e-mail and calendar.
    const a = await connectOverOAuth(email);
    stub.seedBusy('google', email, [{ start: berlin('10:00'), end: berlin('11:00'), summary: 'A busy' }]);
    stub.renameAccount('google', email, 'former@seal-binding.example');
    const b = await connectOverOAuth(email);
    stub.seedBusy('google', email, [{ start: berlin('14:00'), end: berlin('15:00'), summary: 'B busy' }]);
    const keyA = await keyOf(a);
    const keyB = await keyOf(b);
    expect(a).not.toBe(b);
    expect(keyB).toMatchObject({ accountEmail: keyA.accountEmail, externalCalendarId: keyA.externalCalendarId });
    expect(keyB.accountSubject).not.toBe(keyA.accountSubject);

    // Connect to availability, end to end: both calendars read.
    const both = await availability();
    expect(both.status).toBe(200);
    expect(both.body.missing_calendars).toEqual([]);
    expect(offered(both, '10:00', '11:00')).toBe(false);
    expect(offered(both, '14:00', '15:00')).toBe(false);
    expect(offered(both, '12:00', '13:00')).toBe(true);

    // A's ciphertext written onto B's row does not open there: B is missing, A's calendar is not read as B's.
    const sealedA = await tokensOf(a);
    const sealedB = await tokensOf(b);
    await sql`update private.calendar_tokens set ciphertext = ${sealedA} where connection_id = ${b}`;
    const copied = await availability();
    expect(copied.status).toBe(200);
    expect(copied.body.missing_calendars).toEqual([{ connection_id: b, provider: 'google', reason: 'token_unreadable' }]);
    expect(offered(copied, '14:00', '15:00')).toBe(true);
    expect(await connection(b)).toMatchObject({ status: 'connected' });
    expect(await tokensOf(b)).toBe(sealedA);

    // A set sealed before 20261123014000 (legacy context, the old key) still opens on its own connection only.
    const full = await parseKeyring(`${NEW_KEY},${OLD_KEY}`);
    const legacyA = await seal(await open(sealedA, full, tokenContext(keyA)), oldRing, legacyTokenContext(keyA));
    expect(legacyTokenContext(keyA)).toBe(legacyTokenContext(keyB));
    await sql`update private.calendar_tokens set ciphertext = ${legacyA} where connection_id in (${a}, ${b})`;
    const legacy = await availability();
    expect(legacy.status).toBe(200);
    expect(legacy.body.missing_calendars).toEqual([{ connection_id: b, provider: 'google', reason: 'token_unreadable' }]);
    expect(offered(legacy, '10:00', '11:00')).toBe(false);

    // Reseal moves A's set to the new key and context; the copy on B's row is refused and stays.
    const answer = await call('/reseal', { method: 'POST', token: stack.keys.serviceRoleKey, body: { org_id: bound.id } });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ resealed: 1, failed: [{ kind: 'connection', id: b, reason: 'tampered' }] });
    const resealedA = await tokensOf(a);
    expect(resealedA).not.toBe(legacyA);
    expect(await open(resealedA, newOnly, tokenContext(keyA))).toContain(`"id":"${keyA.accountSubject}"`);
    await expect(open(resealedA, full, legacyTokenContext(keyA))).rejects.toMatchObject({ reason: 'tampered' });
    await expect(open(resealedA, full, tokenContext(keyB))).rejects.toMatchObject({ reason: 'tampered' });
    expect(await tokensOf(b)).toBe(legacyA);

    // A refresh seals under the new context too: B's own set back, sealed before under the current key (reseal does not take it).
    const legacyB = await seal(await open(sealedB, full, tokenContext(keyB)), newOnly, legacyTokenContext(keyB));
    await sql`update private.calendar_tokens set ciphertext = ${legacyB} where connection_id = ${b}`;
    stub.expireAccessTokens();
    const refreshed = await availability();
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.missing_calendars).toEqual([]);
    expect(offered(refreshed, '10:00', '11:00')).toBe(false);
    expect(offered(refreshed, '14:00', '15:00')).toBe(false);
    const refreshedB = await tokensOf(b);
    expect(refreshedB).not.toBe(legacyB);
    expect(await open(refreshedB, newOnly, tokenContext(keyB))).toContain(`"id":"${keyB.accountSubject}"`);
    await expect(open(refreshedB, newOnly, legacyTokenContext(keyB))).rejects.toMatchObject({ reason: 'tampered' });
  });
});
