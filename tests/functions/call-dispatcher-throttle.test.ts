/**
 * The dial pass under Vapi's throttling (20261123011000_dial_throttle.sql),
 * against the Vapi stand-in on the run's database: the first 429 (or 503)
 * stops the pass, so it sends at most `concurrency` POSTs; the calls it
 * claimed are given back queued, with no attempt counted, due after the
 * Retry-After; a throttled lookup is not counted either and stops the pass
 * before any dial; once Vapi takes calls again each is dialled once, as
 * attempt 1; a call throttled past its 5 attempts is still dialled, and one
 * throttled for over 24 hours fails with the reason. A Retry-After beyond
 * an integer (99999999999 s, a date past 2100) is capped, at an hour for a
 * throttle and a day for a retry, never left unrecorded.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createVapiDialer, type VoiceDialer } from '../../functions/_shared/voice/index.ts';
import { dialDueCalls, type DialSummary } from '../../functions/call-dispatcher/dial.ts';
import { createOutboundCall, provisionVoiceIds } from '../support/call-fixtures.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { runExclusively } from '../support/exclusive.ts';
import { startVapiStub, type VapiStub, type VapiStubRequest } from '../support/vapi-stub.ts';
import { startTestDatabase, type TestDatabase } from './support.ts';

// A dial pass takes every org's due calls: one such file at a time.
runExclusively('dial-pass');

let database: TestDatabase;
let sql: Sql;
let vapi: VapiStub;
let dialer: VoiceDialer;
let org: ChatOrg;
let bot: string;

const CONCURRENCY = 3;

interface CallState {
  id: string;
  status: string;
  dial_attempts: number;
  dial_lookups: number;
  stamped: boolean;
  leased: boolean;
  /** Seconds until next_dial_at; null once not queued. */
  due_in: number | null;
  throttled: boolean;
  last_dial_error: string | null;
  ended_reason: string | null;
}

async function states(ids: string[]): Promise<CallState[]> {
  return sql<CallState[]>`
    select id, status, dial_attempts, dial_lookups, dial_started_at is not null as stamped,
           dial_lease_until is not null as leased,
           extract(epoch from next_dial_at - now())::float8 as due_in,
           dial_throttled_since is not null as throttled, last_dial_error, ended_reason
    from public.calls where id = any (${ids}::uuid[])
    order by to_number`;
}

/** Whatever the calls wait for is due now (the next pass after the Retry-After). */
async function makeDue(ids: string[]): Promise<void> {
  await sql`
    update public.calls set dial_lease_until = null, next_dial_at = now() - interval '1 second'
    where id = any (${ids}::uuid[]) and status = 'queued'`;
}

const pass = (): Promise<DialSummary> =>
  dialDueCalls({ sql, dialer, concurrency: CONCURRENCY, batchSize: 10, timeoutMs: 2_000, log: () => undefined });

const callIdOf = (request: VapiStubRequest) =>
  (request.body.assistantOverrides as { metadata?: { call_id?: string } } | undefined)?.metadata?.call_id;

const posts = () => vapi.requests.filter((request) => request.method === 'POST');
const placedFor = (id: string) => vapi.placed().filter((request) => callIdOf(request) === id);

async function queueCalls(count: number, first: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1) ids.push(await createOutboundCall(sql, org, bot, `+1415555${String(first + i).padStart(4, '0')}`));
  return ids;
}

const tooManyRequests = (retryAfter?: string) => ({ status: 429, message: 'Too Many Requests', retryAfter });

beforeAll(async () => {
  database = await startTestDatabase();
  sql = createSql(database.url, { max: 2 });
  vapi = await startVapiStub();
  dialer = createVapiDialer({ apiKey: vapi.apiKey, baseUrl: vapi.baseUrl, timeoutMs: 2_000 });
  org = await createChatOrg(sql, 'dial-throttle');
  bot = await createBot(sql, org.id, { slug: 'dial-throttle' });
  await withUserScope(sql, org.claims.admin, (tx) => tx`select public.create_call_provider_secret(${org.id}, 'vapi')`);
  await provisionVoiceIds(sql, org.id, bot, 'asst-throttle-1', 'pn-throttle-1');
  // Only this file's calls are due while it runs.
  await sql`update public.calls set next_dial_at = now() + interval '1 year' where status = 'queued'`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await vapi?.close();
  await database?.stop();
});

beforeEach(() => vapi.reset());

describe('a 429 from POST /call', () => {
  it('stops the pass: at most `concurrency` POSTs, every claimed call given back without an attempt, due after Retry-After', async () => {
    const ids = await queueCalls(8, 701);
    // Vapi throttles the next 8 requests, then takes calls again.
    vapi.failNext(...Array.from({ length: 8 }, () => tooManyRequests('60')));

    const summary = await pass();
    expect(posts().length).toBeLessThanOrEqual(CONCURRENCY);
    expect(posts().every((request) => request.status === 429)).toBe(true);
    expect(summary).toMatchObject({ claimed: 8, throttled: 8, placed: 0, retried: 0, failed: 0, unknown: 0, stale: 0 });
    for (const state of await states(ids)) {
      expect(state).toMatchObject({ status: 'queued', dial_attempts: 0, stamped: false, leased: false, throttled: true });
      expect(state.due_in).toBeGreaterThan(55);
      expect(state.due_in).toBeLessThanOrEqual(60);
      expect(state.last_dial_error).toBe('Vapi POST /call failed with 429: Too Many Requests');
    }
    // Nothing is due before the Retry-After: the next pass asks Vapi nothing.
    expect(await pass()).toMatchObject({ claimed: 0, throttled: 0 });
    expect(posts().length).toBeLessThanOrEqual(CONCURRENCY);

    // Each later pass spends a few of the 429s left, never an attempt ...
    for (let round = 0; round < 10 && posts().filter((request) => request.status === 429).length < 8; round += 1) {
      await makeDue(ids);
      const before = posts().length;
      await pass();
      expect(posts().length - before).toBeLessThanOrEqual(CONCURRENCY);
    }
    expect(posts().filter((request) => request.status === 429)).toHaveLength(8);
    // ... and once Vapi takes calls again, each is dialled once, as attempt 1.
    await makeDue(ids);
    await pass();
    for (const state of await states(ids)) {
      expect(state).toMatchObject({ status: 'ringing', dial_attempts: 1, stamped: false, throttled: false, last_dial_error: null });
    }
    for (const id of ids) expect(placedFor(id)).toHaveLength(1);
  });

  it('does not use up the call\'s 5 attempts: throttled 7 times, it is still dialled', async () => {
    const [id] = await queueCalls(1, 721);
    for (let round = 0; round < 7; round += 1) {
      vapi.failNext(tooManyRequests());
      expect(await pass()).toMatchObject({ claimed: 1, throttled: 1, failed: 0 });
      const [state] = await states([id]);
      expect(state).toMatchObject({ status: 'queued', dial_attempts: 0, stamped: false });
      // No Retry-After: 30 s.
      expect(state.due_in).toBeGreaterThan(25);
      expect(state.due_in).toBeLessThanOrEqual(30);
      await makeDue([id]);
    }
    expect(await pass()).toMatchObject({ claimed: 1, placed: 1 });
    expect((await states([id]))[0]).toMatchObject({ status: 'ringing', dial_attempts: 1 });
    expect(placedFor(id)).toHaveLength(1);
  });

  it('fails a call throttled for over 24 hours, with the reason', async () => {
    const [id] = await queueCalls(1, 722);
    vapi.failNext(tooManyRequests('60'));
    await pass();
    await sql`update public.calls set dial_throttled_since = now() - interval '25 hours' where id = ${id}`;
    await makeDue([id]);
    vapi.failNext(tooManyRequests('60'));
    expect(await pass()).toMatchObject({ claimed: 1, throttled: 0, failed: 1 });
    const [state] = await states([id]);
    expect(state).toMatchObject({
      status: 'failed',
      dial_attempts: 0,
      ended_reason: 'dial-failed: throttled by the provider for over 24 hours: Vapi POST /call failed with 429: Too Many Requests',
    });
    expect(placedFor(id)).toHaveLength(0);
    const [event] = await sql<{ count: number }[]>`
      select count(*)::int from public.events where type = 'call.ended' and payload ->> 'call_id' = ${id}`;
    expect(event.count).toBe(1);
  });
});

describe('a Retry-After beyond an integer', () => {
  it('is capped at an hour for a throttle: the call is given back, not left unrecorded', async () => {
    const [id] = await queueCalls(1, 751);
    for (const retryAfter of ['99999999999', 'Mon, 01 Jan 2300 00:00:00 GMT']) {
      vapi.failNext(tooManyRequests(retryAfter));
      expect(await pass()).toMatchObject({ claimed: 1, throttled: 1, unrecorded: 0, failed: 0 });
      const [state] = await states([id]);
      expect(state).toMatchObject({ status: 'queued', dial_attempts: 0, stamped: false, leased: false, throttled: true });
      expect(state.due_in).toBeGreaterThan(3595);
      expect(state.due_in).toBeLessThanOrEqual(3600);
      await makeDue([id]);
    }
    expect(await pass()).toMatchObject({ claimed: 1, placed: 1 });
    expect(placedFor(id)).toHaveLength(1);
  });

  it('is capped at a day for a retry (408): the attempt is recorded', async () => {
    const [id] = await queueCalls(1, 752);
    vapi.failNext({ status: 408, message: 'Request Timeout', retryAfter: '99999999999' });
    expect(await pass()).toMatchObject({ claimed: 1, retried: 1, unrecorded: 0 });
    const [state] = await states([id]);
    expect(state).toMatchObject({ status: 'queued', dial_attempts: 1, stamped: false, leased: false });
    // A day on, then into the callee's calling hours.
    expect(state.due_in).toBeGreaterThan(86_395);
    expect(state.due_in).toBeLessThan(86_400 + 14 * 86_400);
  });
});

describe('a 503 from POST /call', () => {
  it('stops the pass as a 429 does, the calls due again in 30 s without Retry-After', async () => {
    const ids = await queueCalls(6, 731);
    vapi.failNext(...Array.from({ length: CONCURRENCY }, () => ({ status: 503, message: 'Service Unavailable' })));
    expect(await pass()).toMatchObject({ claimed: 6, throttled: 6, placed: 0 });
    expect(posts()).toHaveLength(CONCURRENCY);
    for (const state of await states(ids)) {
      expect(state).toMatchObject({ status: 'queued', dial_attempts: 0, stamped: false });
      expect(state.due_in).toBeGreaterThan(25);
      expect(state.due_in).toBeLessThanOrEqual(30);
    }
    await makeDue(ids);
    expect(await pass()).toMatchObject({ claimed: 6, placed: 6 });
    for (const id of ids) expect(placedFor(id)).toHaveLength(1);
  });
});

describe('a 429 from a lookup (GET /call)', () => {
  it('is not counted as a lookup and stops the pass before any dial', async () => {
    const [unknown] = await queueCalls(1, 741);
    vapi.acceptThenDrop();
    expect(await pass()).toMatchObject({ claimed: 1, unknown: 1 });
    const waiting = await queueCalls(2, 742);
    await makeDue([unknown]);
    const before = vapi.requests.length;
    vapi.failNext(tooManyRequests('90'));

    expect(await pass()).toMatchObject({ lookedUp: 1, throttled: 1, claimed: 0 });
    expect(vapi.requests.slice(before).map((request) => `${request.method} ${request.status}`)).toEqual(['GET 429']);
    const [state] = await states([unknown]);
    expect(state).toMatchObject({ status: 'queued', dial_attempts: 1, dial_lookups: 0, stamped: true, leased: false });
    expect(state.due_in).toBeGreaterThan(85);
    expect(state.due_in).toBeLessThanOrEqual(90);
    for (const other of await states(waiting)) expect(other).toMatchObject({ status: 'queued', dial_attempts: 0 });

    // Vapi answers again: the lookup finds the call (never dialled twice), and the others are dialled.
    await makeDue([unknown]);
    expect(await pass()).toMatchObject({ lookedUp: 1, recovered: 1, claimed: 2, placed: 2 });
    expect((await states([unknown]))[0]).toMatchObject({ status: 'ringing', dial_attempts: 1 });
    for (const id of [unknown, ...waiting]) expect(placedFor(id)).toHaveLength(1);
  });
});
