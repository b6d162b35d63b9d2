/**
 * Outbound calls are dialled at most once per attempt (the dispatcher's dial
 * pass against the Vapi stand-in, on the run's database): when Vapi took a
 * call but the dispatcher never recorded it (killed mid-pass, the answer
 * lost on the wire), the next pass looks the attempt up in Vapi's call list
 * instead of dialling again and finds the call; an attempt Vapi has no call
 * for is dialled again, on the usual schedule; lookups that cannot answer
 * end the call as failed with the reason, never with a second dial.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createVapiDialer, type VoiceDialer } from '../../functions/_shared/voice/index.ts';
import { dialDueCalls, type DialSummary } from '../../functions/call-dispatcher/dial.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { startVapiStub, type VapiStub, type VapiStubRequest } from '../support/vapi-stub.ts';
import { startTestDatabase, type TestDatabase } from './support.ts';
import { createOutboundCall, provisionVoiceIds } from '../support/call-fixtures.ts';
import { runExclusively } from '../support/exclusive.ts';

// A dial pass takes every org's due calls: one such file at a time.
runExclusively('dial-pass');

let database: TestDatabase;
let sql: Sql;
let vapi: VapiStub;
let dialer: VoiceDialer;
let org: ChatOrg;
let bot: string;

interface CallState {
  status: string;
  provider_call_id: string | null;
  dial_attempts: number;
  last_dial_error: string | null;
  ended_reason: string | null;
  unknown_outcome: boolean;
}

async function callState(id: string): Promise<CallState> {
  const [row] = await sql<CallState[]>`
    select status, provider_call_id, dial_attempts, last_dial_error, ended_reason,
           (status = 'queued' and dial_started_at is not null) as unknown_outcome
    from public.calls where id = ${id}`;
  return row;
}

/** The lease ran out (the pass that held the call is gone) and whatever the call waits for is due. */
async function makeDue(id: string): Promise<void> {
  await sql`
    update public.calls set dial_lease_until = now() - interval '1 second', next_dial_at = now() - interval '1 second'
    where id = ${id}`;
}

const pass = (dialWith: VoiceDialer = dialer, maxCalls?: number): Promise<DialSummary> =>
  dialDueCalls({ sql, dialer: dialWith, maxCalls, timeoutMs: 2_000, log: () => undefined });

const callIdOf = (request: VapiStubRequest) =>
  (request.body.assistantOverrides as { metadata?: { call_id?: string } } | undefined)?.metadata?.call_id;

/** POST /call requests Vapi took (created a call) for our call. */
const placedFor = (id: string) => vapi.placed().filter((request) => callIdOf(request) === id);

beforeAll(async () => {
  database = await startTestDatabase();
  sql = createSql(database.url, { max: 2 });
  vapi = await startVapiStub();
  dialer = createVapiDialer({ apiKey: vapi.apiKey, baseUrl: vapi.baseUrl, timeoutMs: 2_000 });
  org = await createChatOrg(sql, 'dial-once');
  bot = await createBot(sql, org.id, { slug: 'dial-once' });
  await withUserScope(sql, org.claims.admin, (tx) => tx`select public.create_call_provider_secret(${org.id}, 'vapi')`);
  await provisionVoiceIds(sql, org.id, bot, 'asst-once-1', 'pn-once-1');
  // Only this file's calls are due while it runs.
  await sql`update public.calls set next_dial_at = now() + interval '1 year' where status = 'queued'`;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await vapi?.close();
  await database?.stop();
});

beforeEach(() => vapi.reset());

describe('a call Vapi took but the dispatcher never recorded', () => {
  it('is found by a lookup after the lease ran out, not dialled again, when the pass died after the dial', async () => {
    const id = await createOutboundCall(sql, org, bot, '+14155550601');
    // The pass is killed (wall-clock limit) right after Vapi answered: the result is never recorded.
    let accepted!: () => void;
    const dialAccepted = new Promise<void>((resolve) => (accepted = resolve));
    const dying: VoiceDialer = {
      async dial(request) {
        await dialer.dial(request);
        accepted();
        return await new Promise<never>(() => undefined);
      },
      findCall: (lookup) => dialer.findCall(lookup),
    };
    void pass(dying);
    await dialAccepted;
    expect(placedFor(id)).toHaveLength(1);
    const providerCallId = vapi.calls.find((call) =>
      (call.assistantOverrides as { metadata?: { call_id?: string } }).metadata?.call_id === id
    )?.id;
    expect(await callState(id)).toMatchObject({ status: 'queued', dial_attempts: 1, unknown_outcome: true });

    await makeDue(id);
    const summary = await pass();
    expect(summary).toMatchObject({ claimed: 0, placed: 0, lookedUp: 1, recovered: 1 });
    expect(placedFor(id)).toHaveLength(1);
    expect(await callState(id)).toMatchObject({
      status: 'ringing',
      provider_call_id: providerCallId,
      dial_attempts: 1,
      unknown_outcome: false,
    });
    // The lookup asked Vapi's documented List Calls, narrowed to what attempt 1 dialled.
    const lookup = vapi.requests.find((request) => request.method === 'GET');
    expect(lookup).toMatchObject({ path: '/call', status: 200 });
    expect(lookup?.query).toMatchObject({ assistantId: 'asst-once-1', phoneNumberId: 'pn-once-1', limit: '1000' });
    expect(Object.keys(lookup?.query ?? {}).sort()).toEqual(['assistantId', 'createdAtGe', 'createdAtLe', 'limit', 'phoneNumberId']);
  });

  it('is found by a lookup, not dialled again, when Vapi took it and the answer was lost', async () => {
    const id = await createOutboundCall(sql, org, bot, '+14155550602');
    vapi.acceptThenDrop();
    expect(await pass()).toMatchObject({ claimed: 1, placed: 0, unknown: 1 });
    const after = await callState(id);
    expect(after).toMatchObject({ status: 'queued', dial_attempts: 1, unknown_outcome: true });
    expect(after.last_dial_error).toContain('Vapi POST /call failed');

    // Not before its lookup is due (2 minutes later) ...
    expect(await pass()).toMatchObject({ claimed: 0, lookedUp: 0 });
    // ... and then looked up, not dialled.
    await makeDue(id);
    expect(await pass()).toMatchObject({ claimed: 0, lookedUp: 1, recovered: 1 });
    expect(placedFor(id)).toHaveLength(1);
    expect(await callState(id)).toMatchObject({ status: 'ringing', dial_attempts: 1, provider_call_id: vapi.calls[0].id });
  });

  it('cannot be canceled while its dial outcome is unknown', async () => {
    const id = await createOutboundCall(sql, org, bot, '+14155550603');
    vapi.acceptThenDrop();
    await pass();
    const refusal = await withUserScope(sql, org.claims.admin, (tx) => tx`select public.cancel_call(${id})`)
      .then(() => null, (error: { code?: string }) => error.code);
    expect(refusal).toBe('23514');
    await makeDue(id);
    await pass();
    expect(await callState(id)).toMatchObject({ status: 'ringing', dial_attempts: 1 });
    expect(placedFor(id)).toHaveLength(1);
  });
});

describe('an attempt Vapi has no call for', () => {
  it('is dialled again, as the next attempt on the usual schedule, once a lookup says so', async () => {
    const id = await createOutboundCall(sql, org, bot, '+14155550604');
    // A gateway 502: Vapi may or may not have taken it (here it did not).
    vapi.failNext({ status: 502, message: 'Bad Gateway' });
    expect(await pass()).toMatchObject({ claimed: 1, unknown: 1 });
    await makeDue(id);
    expect(await pass()).toMatchObject({ lookedUp: 1, retried: 1, claimed: 0 });
    const retried = await callState(id);
    expect(retried).toMatchObject({ status: 'queued', dial_attempts: 1, unknown_outcome: false });
    expect(retried.last_dial_error).toBe('dial attempt 1 placed no call (the provider has none for it)');
    await makeDue(id);
    expect(await pass()).toMatchObject({ claimed: 1, placed: 1 });
    expect(placedFor(id)).toHaveLength(1);
    expect(await callState(id)).toMatchObject({ status: 'ringing', dial_attempts: 2 });
  });
});

describe('lookups that cannot answer', () => {
  it('end the call as failed with the reason after 5, never dialling it again', async () => {
    const id = await createOutboundCall(sql, org, bot, '+14155550605');
    vapi.acceptThenDrop();
    await pass();
    for (let lookup = 1; lookup <= 5; lookup += 1) {
      await makeDue(id);
      vapi.failNext({ status: 500, message: 'Internal server error' });
      const summary = await pass();
      expect(summary).toMatchObject(lookup < 5 ? { lookedUp: 1, unknown: 1 } : { lookedUp: 1, failed: 1 });
    }
    const failed = await callState(id);
    expect(failed).toMatchObject({ status: 'failed', dial_attempts: 1 });
    expect(failed.ended_reason).toBe('dial-failed: outcome unknown: Vapi GET /call failed: 500: Internal server error');
    expect(placedFor(id)).toHaveLength(1);
    const [event] = await sql<{ count: number }[]>`
      select count(*)::int from public.events where type = 'call.ended' and payload ->> 'call_id' = ${id}`;
    expect(event.count).toBe(1);
  });
});

describe('a dial', () => {
  it('carries the org\'s interruption sensitivity to Vapi as assistantOverrides.stopSpeakingPlan (20261123010100)', async () => {
    await sql`update public.org_settings set interruption_sensitivity = 0.9 where org_id = ${org.id}`;
    try {
      const id = await createOutboundCall(sql, org, bot, '+14155550611');
      expect(await pass()).toMatchObject({ claimed: 1, placed: 1 });
      const [placed] = placedFor(id);
      expect(placed.body.assistantOverrides).toEqual({
        metadata: { call_id: id, org_id: org.id },
        stopSpeakingPlan: { numWords: 0, voiceSeconds: 0.04 },
      });
    } finally {
      await sql`update public.org_settings set interruption_sensitivity = 0.5 where org_id = ${org.id}`;
    }
  });
});

describe('a pass', () => {
  it('makes at most maxCalls requests to Vapi, lookups first, then dials with what is left', async () => {
    const unknown = [await createOutboundCall(sql, org, bot, '+14155550606'), await createOutboundCall(sql, org, bot, '+14155550607')];
    vapi.acceptThenDrop(2);
    expect(await pass()).toMatchObject({ claimed: 2, unknown: 2 });
    for (const id of unknown) await makeDue(id);
    const queued = [await createOutboundCall(sql, org, bot, '+14155550608'), await createOutboundCall(sql, org, bot, '+14155550609')];
    const before = vapi.requests.length;

    const summary = await pass(dialer, 3);
    const made = vapi.requests.slice(before);
    expect(made).toHaveLength(3);
    expect(summary).toMatchObject({ lookedUp: 2, recovered: 2, claimed: 1, placed: 1 });
    expect(made.filter((request) => request.method === 'GET')).toHaveLength(2);
    // The call left over is dialled by the next pass.
    expect(await pass(dialer, 3)).toMatchObject({ lookedUp: 0, claimed: 1, placed: 1 });
    for (const id of [...unknown, ...queued]) {
      expect(await callState(id)).toMatchObject({ status: 'ringing', dial_attempts: 1 });
      expect(placedFor(id)).toHaveLength(1);
    }
  });
});
