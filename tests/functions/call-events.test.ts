/**
 * The call-events function over HTTP (real Deno behind the gateway): Vapi's
 * server messages signed as Vapi's HMAC credential signs them, and the
 * generic format signed with the standardwebhooks library; a whole call from
 * ringing to its end-of-call report, and every refusal changing nothing.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { createCallEventsHandler } from '../../functions/call-events/handler.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import {
  signedVapiRequest,
  vapiCall,
  vapiEndOfCallReport,
  vapiStatusUpdate,
  vapiTranscript,
} from '../support/vapi-stub.ts';
import { startTestStack, type TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let orgA: ChatOrg;
let orgB: ChatOrg;
let botA: string;
let vapiSecretA: string;
let vapiSecretB: string;
let genericSecretA: string;

const eventsUrl = (orgId: string, provider: string) => `${stack.functionsUrl}/call-events/${orgId}/${provider}`;

async function postVapi(orgId: string, message: unknown, secret: string, timestamp?: number) {
  const { body, headers } = signedVapiRequest(message, secret, timestamp === undefined ? {} : { timestamp });
  const response = await fetch(eventsUrl(orgId, 'vapi'), { method: 'POST', headers, body });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

async function postGeneric(
  orgId: string,
  event: unknown,
  secret: string,
  options: { id?: string; at?: Date; bodyPrefix?: string } = {},
) {
  const id = options.id ?? `evt_${randomUUID()}`;
  const at = options.at ?? new Date();
  const body = (options.bodyPrefix ?? '') + JSON.stringify(event);
  const signature = new Webhook(secret).sign(id, at, body);
  const response = await fetch(eventsUrl(orgId, 'generic'), {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': signature,
    },
    body,
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

async function createSecret(org: ChatOrg, provider: 'vapi' | 'generic'): Promise<string> {
  return withUserScope(sql, org.claims.admin, async (tx) => {
    const [row] = await tx<{ secret: string }[]>`select public.create_call_provider_secret(${org.id}, ${provider}) as secret`;
    return row.secret;
  });
}

interface CallRow {
  id: string;
  status: string;
  direction: string;
  from_number: string | null;
  to_number: string | null;
  ended_reason: string | null;
  summary: string | null;
  cost: string | null;
  recording_url: string | null;
  provider_call_id: string;
  bot_id: string | null;
}

async function callByProviderId(orgId: string, providerCallId: string): Promise<CallRow | undefined> {
  const [row] = await sql<CallRow[]>`
    select id, status, direction, from_number, to_number, ended_reason, summary, cost::text as cost, recording_url,
           provider_call_id, bot_id
    from public.calls where org_id = ${orgId} and provider_call_id = ${providerCallId}`;
  return row;
}

async function counts(orgId: string) {
  const [row] = await sql<{ calls: number; events: number; segments: number }[]>`
    select (select count(*)::int from public.calls where org_id = ${orgId}) as calls,
           (select count(*)::int from public.call_events where org_id = ${orgId}) as events,
           (select count(*)::int from public.call_transcript_segments where org_id = ${orgId}) as segments`;
  return row;
}

beforeAll(async () => {
  stack = await startTestStack();
  sql = createSql(stack.dbUrl, { max: 2 });
  orgA = await createChatOrg(sql, 'calls-a');
  orgB = await createChatOrg(sql, 'calls-b');
  botA = await createBot(sql, orgA.id, { slug: 'reception' });
  vapiSecretA = await createSecret(orgA, 'vapi');
  vapiSecretB = await createSecret(orgB, 'vapi');
  genericSecretA = await createSecret(orgA, 'generic');
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('Vapi server messages', () => {
  it('take an inbound call from ringing to its end-of-call report, live and in order', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId, customerNumber: '+4915112345678', botId: botA });
    const assistantMetadata = { bot_id: botA };
    const t0 = Date.parse('2026-11-23T10:00:00.000Z');

    const ringing = await postVapi(orgA.id, vapiStatusUpdate('ringing', { call, timestamp: t0, assistantMetadata }), vapiSecretA);
    expect(ringing.status).toBe(200);
    expect(ringing.body).toMatchObject({ received: true, duplicate: false, status: 'ringing' });
    const created = await callByProviderId(orgA.id, vapiId);
    expect(created).toMatchObject({ status: 'ringing', direction: 'inbound', from_number: '+4915112345678', bot_id: botA });

    const answered = await postVapi(orgA.id, vapiStatusUpdate('in-progress', { call, timestamp: t0 + 2_000 }), vapiSecretA);
    expect(answered.body).toMatchObject({ status: 'in_progress', applied_status: true });
    await postVapi(orgA.id, vapiTranscript('assistant', 'Hello, this is the front desk.', { call, timestamp: t0 + 3_000 }), vapiSecretA);
    await postVapi(orgA.id, vapiTranscript('user', 'I would like to book a cleaning.', { call, timestamp: t0 + 6_000 }), vapiSecretA);
    const partial = await postVapi(
      orgA.id,
      vapiTranscript('user', 'I would', { call, timestamp: t0 + 5_000, transcriptType: 'partial' }),
      vapiSecretA,
    );
    expect(partial.body).toEqual({ received: true, ignored: true });
    expect((await counts(orgA.id)).segments).toBe(2);

    const report = vapiEndOfCallReport({
      call,
      timestamp: t0 + 65_000,
      endedReason: 'customer-ended-call',
      startedAt: '2026-11-23T10:00:02.000Z',
      endedAt: '2026-11-23T10:01:04.000Z',
      summary: 'The caller booked a cleaning.',
      cost: 0.1234,
      costBreakdown: { stt: 0.01, llm: 0.02, tts: 0.03, vapi: 0.05, transport: 0.0134 },
      recordingUrl: 'https://storage.vapi.ai/recording.wav',
      messages: [
        { role: 'system', message: 'You are the front desk.', time: t0, secondsFromStart: 0 },
        { role: 'bot', message: 'Hello, this is the front desk.', time: t0 + 2_500, endTime: t0 + 4_000, secondsFromStart: 0.5 },
        { role: 'user', message: 'I would like to book a cleaning.', time: t0 + 5_000, endTime: t0 + 7_000, secondsFromStart: 3 },
        { role: 'bot', message: 'Tuesday at ten works.', time: t0 + 8_000, endTime: t0 + 9_500, secondsFromStart: 6 },
      ],
    });
    const ended = await postVapi(orgA.id, report, vapiSecretA);
    expect(ended.body).toMatchObject({ status: 'ended', applied_status: true });
    const row = await callByProviderId(orgA.id, vapiId);
    expect(row).toMatchObject({
      status: 'ended',
      ended_reason: 'customer-ended-call',
      summary: 'The caller booked a cleaning.',
      cost: '0.1234',
      recording_url: 'https://storage.vapi.ai/recording.wav',
    });
    const segments = await sql<{ speaker: string; text: string }[]>`
      select speaker, text from public.call_transcript_segments where call_id = ${row!.id} order by seq`;
    // The report's transcript replaced the live segments: the conversation, in order.
    expect(segments.filter((segment) => segment.speaker !== 'system')).toEqual([
      { speaker: 'assistant', text: 'Hello, this is the front desk.' },
      { speaker: 'user', text: 'I would like to book a cleaning.' },
      { speaker: 'assistant', text: 'Tuesday at ten works.' },
    ]);

    // Each change went out on the org's calls channel, and call.started / call.ended once each.
    const [broadcasts] = await sql<{ calls: number; segments: number }[]>`
      select count(*) filter (where event <> 'segment' and payload::text like ${`%${row!.id}%`})::int as calls,
             count(*) filter (where payload::text like ${`%${row!.id}%`} and payload::text like '%cleaning%')::int as segments
      from realtime.messages where topic = ${`org:${orgA.id}:calls`}`;
    expect(broadcasts.calls).toBeGreaterThanOrEqual(3);
    expect(broadcasts.segments).toBeGreaterThanOrEqual(1);
    const events = await sql<{ type: string }[]>`
      select type from public.events where org_id = ${orgA.id} and payload ->> 'call_id' = ${row!.id} order by type`;
    expect(events.map((event) => event.type)).toEqual(['call.ended', 'call.started']);

    // The raw event is kept, with the carrier's credentials redacted.
    const [raw] = await sql<{ payload: string }[]>`
      select payload::text as payload from public.call_events where call_id = ${row!.id} and event_type = 'call.ended'`;
    expect(raw.payload).not.toContain('twilio-auth-token-secret');
  });

  it('ignores a replayed message, and a late status never moves an ended call back', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId });
    const t0 = Date.now() - 60_000;
    const answered = vapiStatusUpdate('in-progress', { call, timestamp: t0 });
    await postVapi(orgA.id, answered, vapiSecretA);
    await postVapi(orgA.id, vapiStatusUpdate('ended', { call, timestamp: t0 + 30_000, endedReason: 'assistant-ended-call' }), vapiSecretA);
    const before = await counts(orgA.id);

    const replay = await postVapi(orgA.id, answered, vapiSecretA);
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ received: true, duplicate: true });
    expect(await counts(orgA.id)).toEqual(before);

    // Delivered late (sent before the end, arriving after it): stored for audit, status unchanged.
    const late = await postVapi(orgA.id, vapiStatusUpdate('ringing', { call, timestamp: t0 - 5_000 }), vapiSecretA);
    expect(late.body).toMatchObject({ duplicate: false, status: 'ended', applied_status: false });
    expect((await callByProviderId(orgA.id, vapiId))?.status).toBe('ended');
  });

  it('appends live lines without a start time in arrival order, none overwriting another, a re-delivery adding nothing', async () => {
    const vapiId = randomUUID();
    // A call stating neither when it started nor when it was created: the lines have no time in the call.
    const call = vapiCall({ id: vapiId });
    delete call.createdAt;
    delete call.updatedAt;
    const t0 = Date.now() - 30_000;
    const first = vapiTranscript('user', 'Hello?', { call, timestamp: t0 });
    for (
      const message of [
        first,
        vapiTranscript('user', 'Is anyone there?', { call, timestamp: t0 + 2_000 }),
        vapiTranscript('assistant', 'Yes, hello, this is the front desk.', { call, timestamp: t0 + 3_000 }),
        vapiTranscript('user', 'Hello?', { call, timestamp: t0 + 9_000 }),
      ]
    ) {
      expect((await postVapi(orgA.id, message, vapiSecretA)).status).toBe(200);
    }
    const again = await postVapi(orgA.id, first, vapiSecretA);
    expect(again.body).toMatchObject({ received: true, duplicate: true });
    const segments = await sql<{ seq: number; speaker: string; text: string }[]>`
      select t.seq, t.speaker, t.text from public.call_transcript_segments t
      join public.calls c on c.id = t.call_id
      where c.org_id = ${orgA.id} and c.provider_call_id = ${vapiId} order by t.seq`;
    expect(segments.map((row) => [row.seq, row.speaker, row.text])).toEqual([
      [0, 'user', 'Hello?'],
      [1, 'user', 'Is anyone there?'],
      [2, 'assistant', 'Yes, hello, this is the front desk.'],
      [3, 'user', 'Hello?'],
    ]);
  });

  it('keeps the end-of-call report\'s times and duration when a status update comes late or again', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId });
    const t0 = Date.parse('2026-11-23T11:00:00.000Z');
    await postVapi(orgA.id, vapiStatusUpdate('in-progress', { call, timestamp: t0 }), vapiSecretA);
    const report = vapiEndOfCallReport({
      call,
      timestamp: t0 + 101_000,
      startedAt: '2026-11-23T11:00:00.000Z',
      endedAt: '2026-11-23T11:01:40.000Z',
      durationSeconds: 100,
    });
    expect((await postVapi(orgA.id, report, vapiSecretA)).body).toMatchObject({ status: 'ended', applied_status: true });
    // An "ended" update sent after the report, and the "in-progress" one delivered again (another message time).
    const lateEnd = vapiStatusUpdate('ended', { call, timestamp: t0 + 105_000, endedReason: 'customer-ended-call' });
    expect((await postVapi(orgA.id, lateEnd, vapiSecretA)).body).toMatchObject({ applied_status: false });
    const lateStart = vapiStatusUpdate('in-progress', { call, timestamp: t0 - 2_000 });
    expect((await postVapi(orgA.id, lateStart, vapiSecretA)).body).toMatchObject({ applied_status: false });
    const [times] = await sql<{ started_at: string; ended_at: string; duration_seconds: string }[]>`
      select to_json(started_at) #>> '{}' as started_at, to_json(ended_at) #>> '{}' as ended_at,
             duration_seconds::text as duration_seconds
      from public.calls where org_id = ${orgA.id} and provider_call_id = ${vapiId}`;
    expect(times).toEqual({
      started_at: '2026-11-23T11:00:00+00:00',
      ended_at: '2026-11-23T11:01:40+00:00',
      duration_seconds: '100.000',
    });
  });

  it('refuses a wrong signature, another org\'s secret, a missing one and an old timestamp, storing nothing', async () => {
    const before = await counts(orgA.id);
    const message = vapiStatusUpdate('ringing', { call: vapiCall() });
    const wrong = await postVapi(orgA.id, message, 'not-the-secret');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ error: { code: 'invalid_signature' } });
    expect((await postVapi(orgA.id, message, vapiSecretB)).status).toBe(401);

    const stale = await postVapi(orgA.id, message, vapiSecretA, Math.floor(Date.now() / 1000) - 301);
    expect(stale.status).toBe(401);
    expect(stale.body).toMatchObject({ error: { code: 'stale_timestamp' } });

    const unsigned = await fetch(eventsUrl(orgA.id, 'vapi'), { method: 'POST', body: JSON.stringify(message) });
    expect(unsigned.status).toBe(401);
    expect(await unsigned.json()).toMatchObject({ error: { code: 'missing_signature' } });

    // An org with no secret for the provider answers like a wrong signature.
    const noSecret = await postVapi(randomUUID(), message, vapiSecretA);
    expect(noSecret.status).toBe(401);
    expect(await counts(orgA.id)).toEqual(before);
  });

  it('answers an org without a generic secret as one with it: stale and missing come first, so org ids are not probed', async () => {
    const event = { type: 'call.started', call_id: `probe-${randomUUID()}`, occurred_at: '2026-11-23T09:00:00Z', data: {} };
    const stale = { at: new Date(Date.now() - 3600_000) };
    for (const org of [orgA.id, randomUUID()]) {
      const answer = await postGeneric(org, event, genericSecretA, stale);
      expect(answer.status).toBe(401);
      expect(answer.body).toMatchObject({ error: { code: 'stale_timestamp' } });
      const idOnly = await fetch(eventsUrl(org, 'generic'), { method: 'POST', headers: { 'webhook-id': 'x' }, body: '{}' });
      expect((await idOnly.json()).error.code).toBe('missing_signature');
    }
  });

  it('refuses an unsigned or stale request before parsing it or queueing it for the database', async () => {
    // The function's own handler with a database that must not be reached.
    const handler = createCallEventsHandler({ sql: () => expect.fail('no database work for an unsigned request') });
    const unsigned = await handler(new Request(`http://local/call-events/${orgA.id}/vapi`, { method: 'POST', body: '{"message": {}}' }));
    expect(unsigned.status).toBe(401);
    expect((await unsigned.json()).error.code).toBe('missing_signature');
    const { body, headers } = signedVapiRequest({ message: {} }, vapiSecretA, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    const stale = await handler(new Request(`http://local/call-events/${orgA.id}/vapi`, { method: 'POST', headers, body }));
    expect(stale.status).toBe(401);
    expect((await stale.json()).error.code).toBe('stale_timestamp');
  });

  it('answers 400 for a signed body that is not a server message, 404 and 405 off the route', async () => {
    const bad = await postVapi(orgA.id, { message: { type: 'status-update' } }, vapiSecretA);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: 'invalid_event' } });
    const notJson = await postVapi(orgA.id, 'not json', vapiSecretA);
    expect(notJson.status).toBe(400);
    expect((await fetch(eventsUrl(orgA.id, 'retell'), { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${stack.functionsUrl}/call-events/not-a-uuid/vapi`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(eventsUrl(orgA.id, 'vapi'))).status).toBe(405);
  });

  it('reads a timestamp beyond what a Date holds as absent: 401 unsigned, dated by arrival when signed, never a 500', async () => {
    const vapiId = `far-${randomUUID()}`;
    const message = vapiStatusUpdate('ringing', { call: vapiCall({ id: vapiId }), timestamp: 1e20 });
    const before = await counts(orgA.id);
    const unsigned = await fetch(eventsUrl(orgA.id, 'vapi'), { method: 'POST', body: JSON.stringify(message) });
    expect(unsigned.status).toBe(401);
    expect(await unsigned.json()).toMatchObject({ error: { code: 'missing_signature' } });
    expect(await counts(orgA.id)).toEqual(before);

    const sentAt = Date.now();
    const signed = await postVapi(orgA.id, message, vapiSecretA);
    expect(signed.status).toBe(200);
    expect(signed.body).toMatchObject({ duplicate: false, status: 'ringing' });
    const [row] = await sql<{ status: string; occurred_at: Date }[]>`
      select c.status, e.occurred_at from public.calls c join public.call_events e on e.call_id = c.id
      where c.org_id = ${orgA.id} and c.provider_call_id = ${vapiId}`;
    expect(row.status).toBe('ringing');
    expect(Math.abs(row.occurred_at.getTime() - sentAt)).toBeLessThan(60_000);
  });

  it('accepts the previous secret during a rotation\'s overlap, and only the new one after an immediate rotation', async () => {
    const org = await createChatOrg(sql, 'calls-rotate');
    const first = await createSecret(org, 'vapi');
    const rotate = (overlap: number) =>
      withUserScope(sql, org.claims.admin, async (tx) => {
        const [row] = await tx<{ secret: string }[]>`
          select secret from public.rotate_call_provider_secret(${org.id}, 'vapi', ${overlap})`;
        return row.secret;
      });
    const second = await rotate(24);
    expect((await postVapi(org.id, vapiStatusUpdate('ringing', { call: vapiCall() }), first)).status).toBe(200);
    expect((await postVapi(org.id, vapiStatusUpdate('ringing', { call: vapiCall() }), second)).status).toBe(200);
    const third = await rotate(0);
    expect((await postVapi(org.id, vapiStatusUpdate('ringing', { call: vapiCall() }), second)).status).toBe(401);
    expect((await postVapi(org.id, vapiStatusUpdate('ringing', { call: vapiCall() }), third)).status).toBe(200);
  });
});

describe('the generic format (Standard Webhooks)', () => {
  it('applies events signed by a Standard Webhooks library, ignores a re-delivered webhook-id', async () => {
    const callId = `gen-${randomUUID()}`;
    const started = await postGeneric(orgA.id, {
      type: 'call.started',
      call_id: callId,
      occurred_at: '2026-11-23T09:00:00Z',
      data: { direction: 'inbound', from: '+14155550123', to: '+14155550999', metadata: { bot_id: botA } },
    }, genericSecretA, { id: `evt_start_${callId}` });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: 'in_progress' });

    const endedEvent = {
      type: 'call.ended',
      call_id: callId,
      occurred_at: '2026-11-23T09:02:00Z',
      data: {
        ended_reason: 'callee-hung-up',
        duration_seconds: 118,
        transcript: [
          { speaker: 'assistant', text: 'Hello, Example Dental.', start_ms: 0, end_ms: 1400 },
          { speaker: 'user', text: 'I need to reschedule.', start_ms: 2000, end_ms: 3900, stt_ms: 180, llm_ms: 420, tts_ms: 150 },
        ],
        transcript_mode: 'replace',
        sentiment: 'neutral',
        sentiment_score: 0.1,
        cost: { amount: '0.0812', currency: 'EUR' },
      },
    };
    const ended = await postGeneric(orgA.id, endedEvent, genericSecretA, { id: `evt_end_${callId}` });
    expect(ended.body).toMatchObject({ status: 'ended' });
    const again = await postGeneric(orgA.id, endedEvent, genericSecretA, { id: `evt_end_${callId}` });
    expect(again.body).toMatchObject({ duplicate: true });
    const [row] = await sql<{ status: string; cost: string; cost_currency: string; sentiment: string; segments: number }[]>`
      select status, cost::text as cost, cost_currency, sentiment,
             (select count(*)::int from public.call_transcript_segments s where s.call_id = c.id) as segments
      from public.calls c where org_id = ${orgA.id} and provider = 'generic' and provider_call_id = ${callId}`;
    expect(row).toEqual({ status: 'ended', cost: '0.0812', cost_currency: 'EUR', sentiment: 'neutral', segments: 2 });
  });

  it('verifies a body sent with a UTF-8 byte order mark over the bytes as sent (generic and Vapi), and applies it', async () => {
    const callId = `gen-bom-${randomUUID()}`;
    const generic = await postGeneric(orgA.id, {
      type: 'call.status',
      call_id: callId,
      occurred_at: '2026-11-23T09:00:00Z',
      data: { status: 'ringing', direction: 'inbound' },
    }, genericSecretA, { bodyPrefix: '\uFEFF' });
    expect(generic).toMatchObject({ status: 200, body: { status: 'ringing' } });

    const call = vapiCall();
    const vapi = await postVapi(orgA.id, `\uFEFF${JSON.stringify(vapiStatusUpdate('ringing', { call }))}`, vapiSecretA);
    expect(vapi).toMatchObject({ status: 200, body: { status: 'ringing' } });
    expect(await callByProviderId(orgA.id, String(call.id))).toMatchObject({ status: 'ringing' });
  });

  it('refuses an unknown field and a timestamp outside five minutes', async () => {
    const unknownField = await postGeneric(orgA.id, {
      type: 'call.status',
      call_id: 'x',
      occurred_at: '2026-11-23T09:00:00Z',
      data: { status: 'ringing', colour: 'blue' },
    }, genericSecretA);
    expect(unknownField.status).toBe(400);
    const old = await postGeneric(orgA.id, {
      type: 'call.status',
      call_id: 'x',
      occurred_at: '2026-11-23T09:00:00Z',
      data: { status: 'ringing' },
    }, genericSecretA, { at: new Date(Date.now() - 6 * 60_000) });
    expect(old.status).toBe(401);
    expect(old.body).toMatchObject({ error: { code: 'stale_timestamp' } });
  });
});

describe('a NUL (\\u0000) in a signed event, which Postgres cannot store', () => {
  const nulSegments = (orgId: string, providerCallId: string) =>
    sql<{ text: string }[]>`
      select t.text from public.call_transcript_segments t join public.calls c on c.id = t.call_id
      where c.org_id = ${orgId} and c.provider_call_id = ${providerCallId} order by t.seq`;
  const nulPayloads = (orgId: string, providerCallId: string) =>
    sql<{ payload: string }[]>`
      select e.payload::text as payload from public.call_events e join public.calls c on c.id = e.call_id
      where c.org_id = ${orgId} and c.provider_call_id = ${providerCallId} order by e.id`;

  it('stores a Vapi transcript line with the NUL made U+FFFD, payload too, and answers 200', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId, botId: botA });
    const message = vapiTranscript('user', 'Hello\u0000there', { call });
    // Vapi's body is kept whole (redacted): a key may carry a NUL too.
    const answer = await postVapi(orgA.id, { message: { ...message.message, 'note\u0000': 'x' } }, vapiSecretA);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ received: true, duplicate: false });
    expect((await nulSegments(orgA.id, vapiId)).map((row) => row.text)).toEqual(['Hello\uFFFDthere']);
    const [stored] = await nulPayloads(orgA.id, vapiId);
    expect(stored.payload).toContain('Hello\uFFFDthere');
    expect(stored.payload).toContain('note\uFFFD');
    expect(stored.payload).not.toContain('\\u0000');
  });

  it('stores a transcript line holding half an emoji (a lone surrogate) with U+FFFD, and answers 200', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId, botId: botA });
    // JSON.stringify writes the lone half as the escape \ud83d, which jsonb refuses (22P02).
    const answer = await postVapi(orgA.id, vapiTranscript('user', 'Hello \ud83d there', { call }), vapiSecretA);
    expect(answer.status).toBe(200);
    expect((await nulSegments(orgA.id, vapiId)).map((row) => row.text)).toEqual(['Hello \uFFFD there']);
    const [stored] = await nulPayloads(orgA.id, vapiId);
    expect(stored.payload).toContain('Hello \uFFFD there');
  });

  it('stores a generic event with NULs made U+FFFD, in its columns and its payload, and answers 200', async () => {
    const callId = `gen-nul-${randomUUID()}`;
    const answer = await postGeneric(orgA.id, {
      type: 'call.ended',
      call_id: callId,
      occurred_at: '2026-11-23T09:02:00Z',
      data: {
        direction: 'inbound',
        ended_reason: 'callee\u0000hung-up',
        transcript: [{ speaker: 'user', text: 'Bye\u0000', start_ms: 0, end_ms: 900 }],
        transcript_mode: 'replace',
        metadata: { bot_id: botA },
      },
    }, genericSecretA);
    expect(answer.status).toBe(200);
    const row = await callByProviderId(orgA.id, callId);
    expect(row).toMatchObject({ status: 'ended', ended_reason: 'callee\uFFFDhung-up' });
    expect((await nulSegments(orgA.id, callId)).map((r) => r.text)).toEqual(['Bye\uFFFD']);
    const [stored] = await nulPayloads(orgA.id, callId);
    expect(stored.payload).toContain('Bye\uFFFD');
    expect(stored.payload).not.toContain('\\u0000');
  });
});

describe('events arriving together (one transaction for a batch, in process)', () => {
  /** The handler over the test database, counting its transactions. */
  function batchingHandler() {
    let transactions = 0;
    const counted = new Proxy(sql, {
      get(target, key, receiver) {
        if (key !== 'begin') return Reflect.get(target, key, receiver);
        return (...args: Parameters<Sql['begin']>) => {
          transactions += 1;
          return target.begin(...args);
        };
      },
    });
    const handler = createCallEventsHandler({ sql: () => counted });
    const post = async (orgId: string, message: unknown, secret: string) => {
      const { body, headers } = signedVapiRequest(message, secret);
      const response = await handler(new Request(`http://local/call-events/${orgId}/vapi`, { method: 'POST', headers, body }));
      return { status: response.status, body: await response.json() as Record<string, unknown> };
    };
    return { post, transactions: () => transactions };
  }

  it('applies each event of a batch on its own: duplicates, two orgs, and a wrong signature answered alone', async () => {
    const { post, transactions } = batchingHandler();
    const calls = [vapiCall(), vapiCall(), vapiCall()];
    const ringingA = vapiStatusUpdate('ringing', { call: calls[0] });
    const answers = await Promise.all([
      post(orgA.id, ringingA, vapiSecretA),
      post(orgA.id, vapiStatusUpdate('in-progress', { call: calls[0], timestamp: Date.now() + 1 }), vapiSecretA),
      post(orgA.id, ringingA, vapiSecretA),
      post(orgB.id, vapiStatusUpdate('ringing', { call: calls[1] }), vapiSecretB),
      post(orgA.id, vapiStatusUpdate('ringing', { call: calls[2] }), vapiSecretB),
      post(orgA.id, vapiTranscript('user', 'Hello?', { call: calls[0], timestamp: Date.now() + 2 }), vapiSecretA),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 401, 200]);
    expect(answers[1].body).toMatchObject({ duplicate: false, status: 'in_progress', applied_status: true });
    expect(answers[2].body).toMatchObject({ duplicate: true });
    expect(answers[4].body).toMatchObject({ error: { code: 'invalid_signature' } });
    // The first went alone, the five that came meanwhile together.
    expect(transactions()).toBe(2);
    expect(await callByProviderId(orgA.id, String(calls[0].id))).toMatchObject({ status: 'in_progress' });
    expect(await callByProviderId(orgB.id, String(calls[1].id))).toMatchObject({ status: 'ringing' });
    expect(await callByProviderId(orgA.id, String(calls[2].id))).toBeUndefined();
  });

  it('retries each event alone when one aborts the batch, so only that one is refused and nothing of it stays', async () => {
    const { post, transactions } = batchingHandler();
    const placed = vapiCall();
    const first = await post(orgA.id, vapiStatusUpdate('ringing', { call: placed }), vapiSecretA);
    const placedId = String(first.body.call_id);
    const before = await counts(orgA.id);
    const fresh = [vapiCall(), vapiCall()];
    const answers = await Promise.all([
      post(orgA.id, vapiStatusUpdate('ringing', { call: fresh[0] }), vapiSecretA),
      post(orgA.id, vapiStatusUpdate('in-progress', { call: fresh[0], timestamp: Date.now() + 1 }), vapiSecretA),
      // Names our call but another provider call: the database refuses it (22023).
      post(orgA.id, vapiStatusUpdate('ended', { call: vapiCall({ callId: placedId }) }), vapiSecretA),
      post(orgA.id, vapiStatusUpdate('ringing', { call: fresh[1] }), vapiSecretA),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 422, 200]);
    expect(answers[2].body).toMatchObject({ error: { code: 'invalid_request' } });
    // 1 alone + the batch of 3 (rolled back) + 3 alone.
    expect(transactions()).toBe(1 + 1 + 1 + 3);
    expect(await callByProviderId(orgA.id, String(fresh[0].id))).toMatchObject({ status: 'in_progress' });
    expect(await callByProviderId(orgA.id, String(fresh[1].id))).toMatchObject({ status: 'ringing' });
    expect(await callByProviderId(orgA.id, String(placed.id))).toMatchObject({ status: 'ringing' });
    // Two calls and three raw events more, each once: the refused event left nothing.
    const after = await counts(orgA.id);
    expect({ calls: after.calls - before.calls, events: after.events - before.events }).toEqual({ calls: 2, events: 3 });
  });
});

describe('isolation', () => {
  it('shows a call, its transcript and its raw events to its org\'s members only', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId });
    await postVapi(orgA.id, vapiStatusUpdate('in-progress', { call }), vapiSecretA);
    await postVapi(orgA.id, vapiTranscript('user', 'My account number is 1234.', { call }), vapiSecretA);
    const id = (await callByProviderId(orgA.id, vapiId))!.id;
    const visible = (claims: ChatOrg['claims'][keyof ChatOrg['claims']]) =>
      withUserScope(sql, claims, async (tx) => {
        const [row] = await tx<{ calls: number; segments: number; events: number }[]>`
          select (select count(*)::int from public.calls where id = ${id}) as calls,
                 (select count(*)::int from public.call_transcript_segments where call_id = ${id}) as segments,
                 (select count(*)::int from public.call_events where call_id = ${id}) as events`;
        return row;
      });
    expect(await visible(orgA.claims.member)).toEqual({ calls: 1, segments: 1, events: 0 });
    expect(await visible(orgA.claims.admin)).toEqual({ calls: 1, segments: 1, events: 2 });
    expect(await visible(orgA.claims.viewer)).toEqual({ calls: 0, segments: 0, events: 0 });
    expect(await visible(orgB.claims.owner)).toEqual({ calls: 0, segments: 0, events: 0 });
    // Org B's secret cannot touch org A's call, even naming its provider id.
    const hijack = await postVapi(orgB.id, vapiStatusUpdate('ended', { call, endedReason: 'customer-ended-call' }), vapiSecretB);
    expect(hijack.status).toBe(200);
    expect((await callByProviderId(orgA.id, vapiId))?.status).toBe('in_progress');
  });
});

describe('an org without a secret, and a request signed with the empty key', () => {
  // An HMAC with an empty key is valid and anyone can compute it: the org id (in the URL) must not be enough to post calls.
  it('refuses a Vapi message signed with \'\' for an org without a Vapi secret: 401 invalid_signature, nothing stored', async () => {
    const org = await createChatOrg(sql, 'calls-empty-key-vapi');
    const vapiId = `empty-key-${randomUUID()}`;
    const answer = await postVapi(org.id, vapiStatusUpdate('ringing', { call: vapiCall({ id: vapiId }) }), '');
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: { code: 'invalid_signature' } });
    expect(await counts(org.id)).toEqual({ calls: 0, events: 0, segments: 0 });
    const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from public.calls where provider_call_id = ${vapiId}`;
    expect(stored.n).toBe(0);
  });

  it('refuses a generic event signed with \'\' for an org without a generic secret: 401 invalid_signature (not 500), nothing stored', async () => {
    // orgB has a Vapi secret only. Signed by hand: the Standard Webhooks library refuses an empty secret.
    const callId = `empty-key-${randomUUID()}`;
    const id = `evt_${randomUUID()}`;
    const seconds = Math.floor(Date.now() / 1000);
    const body = JSON.stringify({ type: 'call.status', call_id: callId, occurred_at: new Date().toISOString(), data: { status: 'ringing' } });
    const mac = createHmac('sha256', Buffer.alloc(0)).update(`${id}.${seconds}.${body}`).digest('base64');
    const before = await counts(orgB.id);
    const response = await fetch(eventsUrl(orgB.id, 'generic'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(seconds), 'webhook-signature': `v1,${mac}` },
      body,
    });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'invalid_signature' } });
    expect(await counts(orgB.id)).toEqual(before);
    const [stored] = await sql<{ n: number }[]>`select count(*)::int as n from public.calls where provider_call_id = ${callId}`;
    expect(stored.n).toBe(0);
  });
});
