/**
 * Outbound calls and the after-call work end to end, on a stack of their own
 * (the scheduler, pg_net and Storage all on, as on Supabase): an admin's
 * outbound call wakes the call-dispatcher through pg_net, which dials it at
 * Vapi (a local stand-in speaking Vapi's POST /call); the call's signed
 * events find it by our id; once it ended without a summary, a dispatcher
 * pass analyses it (offline, rules), meters the work, and copies the
 * recording into the org's prefix of the recordings bucket, readable by
 * members only. Also: concurrent passes dial each due call exactly once, a
 * 503 is retried later and a 400 fails the call with the reason.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { supabaseClient } from '../support/supabase-client.ts';
import {
  signedVapiRequest,
  startVapiStub,
  vapiCall,
  vapiEndOfCallReport,
  vapiStatusUpdate,
  type VapiStub,
} from '../support/vapi-stub.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { createOutboundCall, middayZone, provisionVoiceIds } from '../support/call-fixtures.ts';

let stack: Stack;
let sql: Sql;
let vapi: VapiStub;
let recordings: Server;
let recordingsUrl: string;
let org: ChatOrg;
let other: ChatOrg;
let bot: string;
let vapiSecret: string;
const RECORDING = Buffer.from('RIFF....WAVEfmt fake audio for the test');

const dispatcher = (token: string | null) =>
  fetch(`${stack.apiUrl}/functions/v1/call-dispatcher`, {
    method: 'POST',
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

async function runPass(): Promise<Record<string, unknown>> {
  const response = await dispatcher(stack.keys.serviceRoleKey);
  expect(response.status).toBe(200);
  return await response.json() as Record<string, unknown>;
}

interface CallState {
  status: string;
  provider_call_id: string | null;
  dial_attempts: number;
  last_dial_error: string | null;
  ended_reason: string | null;
  next_dial_in: number | null;
}

async function callState(id: string): Promise<CallState> {
  const [row] = await sql<CallState[]>`
    select status, provider_call_id, dial_attempts, last_dial_error, ended_reason,
           extract(epoch from next_dial_at - now())::float8 as next_dial_in
    from public.calls where id = ${id}`;
  return row;
}

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function postVapi(message: unknown): Promise<number> {
  const { body, headers } = signedVapiRequest(message, vapiSecret);
  const response = await fetch(`${stack.apiUrl}/functions/v1/call-events/${org.id}/vapi`, { method: 'POST', headers, body });
  await response.body?.cancel();
  return response.status;
}

beforeAll(async () => {
  vapi = await startVapiStub();
  recordings = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'audio/wav', 'content-length': RECORDING.length });
    res.end(RECORDING);
  });
  await new Promise<void>((resolve) => recordings.listen(0, '127.0.0.1', resolve));
  recordingsUrl = `http://127.0.0.1:${(recordings.address() as AddressInfo).port}`;
  stack = await startStack({
    dbPort: 0,
    // Known in advance: the dispatcher reaches Storage through SUPABASE_URL.
    apiPort: await freePort(),
    functions: true,
    scheduler: true,
    functionEnv: { VAPI_API_KEY: vapi.apiKey, VAPI_BASE_URL: vapi.baseUrl },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'calls-e2e');
  other = await createChatOrg(sql, 'calls-e2e-other');
  bot = await createBot(sql, org.id, { slug: 'caller' });
  vapiSecret = await withUserScope(sql, org.claims.admin, async (tx) => {
    const [row] = await tx<{ secret: string }[]>`select public.create_call_provider_secret(${org.id}, 'vapi') as secret`;
    return row.secret;
  });
  await provisionVoiceIds(sql, org.id, bot, 'asst-local-1', 'pn-local-1');
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await vapi?.close();
  await new Promise((resolve) => recordings?.close(resolve));
});

describe('an outbound call from creation to its recording', () => {
  it('is dialled through the pg_net wake-up, followed by its events, analysed, and its recording stored', async () => {
    const id = await createOutboundCall(sql, org, bot, '+1 (415) 555-0101');
    const dialled = await waitFor(() => callState(id), (state) => state.status !== 'queued');
    expect(dialled).toMatchObject({ status: 'ringing', dial_attempts: 1 });
    const request = vapi.requests.find((item) =>
      (item.body.assistantOverrides as { metadata?: { call_id?: string } } | undefined)?.metadata?.call_id === id
    );
    expect(request?.body).toMatchObject({
      assistantId: 'asst-local-1',
      phoneNumberId: 'pn-local-1',
      customer: { number: '+14155550101' },
    });

    const call = vapiCall({ id: dialled.provider_call_id!, type: 'outboundPhoneCall', customerNumber: '+14155550101', callId: id });
    expect(await postVapi(vapiStatusUpdate('in-progress', { call }))).toBe(200);
    expect((await callState(id)).status).toBe('in_progress');
    const start = Date.now() - 60_000;
    expect(
      await postVapi(vapiEndOfCallReport({
        call,
        endedReason: 'customer-ended-call',
        startedAt: new Date(start).toISOString(),
        endedAt: new Date(start + 45_000).toISOString(),
        recordingUrl: `https://storage.vapi.ai/${id}-mono.wav`,
        messages: [
          { role: 'bot', message: 'Hi, this is the clinic calling about your appointment.', time: start, secondsFromStart: 0 },
          { role: 'user', message: 'Great, thank you so much, Tuesday works perfectly.', time: start + 4_000, secondsFromStart: 4 },
        ],
      })),
    ).toBe(200);

    // Vapi's recordings are https; the stand-in here serves http on loopback, which the local stack's
    // WEBHOOK_ALLOW_LOOPBACK admits at download (as it does for webhook receivers).
    const [stored] = await sql<{ recording_url: string }[]>`select recording_url from public.calls where id = ${id}`;
    expect(stored.recording_url).toBe(`https://storage.vapi.ai/${id}-mono.wav`);
    await sql`update public.calls set recording_url = ${`${recordingsUrl}/rec-${id}.wav`} where id = ${id}`;
    const pass = await runPass();
    expect(pass.afterCall).toMatchObject({ analysed: 1, recordings: 1, failed: 0 });
    const [row] = await sql<{ status: string; summary: string | null; sentiment: string; recording_path: string | null }[]>`
      select status, summary, sentiment, recording_path from public.calls where id = ${id}`;
    expect(row.status).toBe('ended');
    expect(row.summary).toBeTruthy();
    expect(row.sentiment).toBe('positive');
    expect(row.recording_path).toBe(`${org.id}/calls/${id}/recording.wav`);
    const [usage] = await sql<{ events: number }[]>`
      select count(*)::int as events from public.usage_events where org_id = ${org.id} and bot_id = ${bot} and kind = 'chat'`;
    expect(usage.events).toBe(1);

    // Members download it; viewers (no calls.read) and other orgs cannot.
    const download = async (token: string) =>
      supabaseClient(stack.apiUrl!, stack.keys.anonKey, token).storage.from('recordings').download(row.recording_path!);
    const asMember = await download(org.tokens.member);
    expect(asMember.error).toBeNull();
    expect(Buffer.from(await asMember.data!.arrayBuffer())).toEqual(RECORDING);
    expect((await download(org.tokens.viewer)).data).toBeNull();
    expect((await download(other.tokens.owner)).data).toBeNull();

    // Nothing is left to do for it: the next pass leaves it alone.
    expect((await runPass()).afterCall).toMatchObject({ analysed: 0, recordings: 0 });
  });
});

describe('the dispatcher', () => {
  it('dials each due call exactly once when passes run at once', async () => {
    const ids = await withUserScope(sql, org.claims.admin, async (tx) => {
      const numbers = Array.from({ length: 12 }, (_, index) => `+1415555${String(2000 + index)}`);
      const [campaign] = await tx<{ campaign_id: string; calls_created: number }[]>`
        select campaign_id, calls_created from public.create_call_campaign(
          ${org.id}, ${bot}, 'Reminders', ${numbers}, null, ${middayZone()})`;
      expect(campaign.calls_created).toBe(12);
      const rows = await tx<{ id: string }[]>`select id from public.calls where campaign_id = ${campaign.campaign_id}`;
      return rows.map((row) => row.id);
    });
    // The insert's own wake-up runs a pass too: three at once.
    await Promise.all([runPass(), runPass()]);
    const states = await waitFor(
      () => Promise.all(ids.map(callState)),
      (all) => all.every((state) => state.status === 'ringing'),
    );
    expect(states.every((state) => state.status === 'ringing' && state.dial_attempts === 1)).toBe(true);
    const dialledIds = vapi.requests
      .map((item) => (item.body.assistantOverrides as { metadata?: { call_id?: string } } | undefined)?.metadata?.call_id)
      .filter((callId): callId is string => callId !== undefined && ids.includes(callId));
    expect(dialledIds.sort()).toEqual([...ids].sort());
  });

  it('tries again later after a 503, and fails the call with the reason after a 400', async () => {
    vapi.failNext({ status: 503, message: 'Service Unavailable' });
    const retried = await createOutboundCall(sql, org, bot, '+14155550301');
    // The insert's wake-up may be throttled behind the last one's; a pass now saves waiting for cron.
    await runPass();
    const afterRetry = await waitFor(() => callState(retried), (state) => state.last_dial_error !== null);
    expect(afterRetry).toMatchObject({ status: 'queued', dial_attempts: 0 });
    expect(afterRetry.last_dial_error).toContain('503');
    // A 503 means Vapi did not take the call: given back without using an attempt, due again in 30 s.
    expect(afterRetry.next_dial_in).toBeGreaterThan(20);
    expect(afterRetry.next_dial_in).toBeLessThanOrEqual(31);

    vapi.failNext({ status: 400, message: ['customer.number must be a valid phone number in the E.164 format'] });
    const refused = await createOutboundCall(sql, org, bot, '+14155550302');
    await runPass();
    const failed = await waitFor(() => callState(refused), (state) => state.status !== 'queued');
    expect(failed.status).toBe('failed');
    expect(failed.ended_reason).toMatch(/^dial-failed: Vapi POST \/call failed with 400/);
    const [event] = await sql<{ count: number }[]>`
      select count(*)::int from public.events where type = 'call.ended' and payload ->> 'call_id' = ${refused}`;
    expect(event.count).toBe(1);
  });

  it('is for the service role only', async () => {
    expect((await dispatcher(null)).status).toBe(401);
    expect((await dispatcher(org.tokens.owner)).status).toBe(403);
  });
});
