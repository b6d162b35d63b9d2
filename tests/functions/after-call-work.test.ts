/**
 * The call-dispatcher's after-call work, on a stack of its own (a pass takes
 * every org's calls, so the run's shared database would hand it other files'
 * calls): a call the caller said nothing in, sent through Vapi's signed
 * events, is analysed offline once and stored as neutral with a summary that
 * says so (before, its 'unknown' was refused and it was taken again every 10
 * minutes); and a pass takes calls one at a time within its time budget, so
 * calls it does not reach keep their tries (the database counts a try when it
 * hands a call out), analyses and recordings taken in turns. A model that
 * fails fails the try (the call stays due, its tokens metered when it wrote
 * any); only the last try falls back to the rules, the 5th or one whose next
 * hand-out would come less than a minute before the 7-day window closes.
 * Fair between orgs (20261123011800): the orgs take turns, so one org's older
 * backlog holds neither another org's analysis nor its recording copy back;
 * and a throttled model (429, or 503 with Retry-After; the platform's key is
 * shared) gives the try back, due after Retry-After, and stops the pass's
 * analyses.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChatDelta,
  type ChatMessage,
  type ChatProvider,
  ChatProviderError,
  createOfflineChatProvider,
} from '../../functions/_shared/chat/index.ts';
import { countPromptTokens } from '../../functions/_shared/chat/usage.ts';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { runAfterCallWork } from '../../functions/call-dispatcher/after-call.ts';
import type { RecordingStore } from '../../functions/call-dispatcher/recordings.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { signedVapiRequest, vapiCall, vapiEndOfCallReport, vapiStatusUpdate } from '../support/vapi-stub.ts';

let stack: Stack;
let sql: Sql;
let org: ChatOrg;
let bot: string;
let vapiSecret: string;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function runPass(): Promise<{ afterCall: Record<string, number> }> {
  const response = await fetch(`${stack.apiUrl}/functions/v1/call-dispatcher`, {
    method: 'POST',
    headers: { authorization: `Bearer ${stack.keys.serviceRoleKey}` },
  });
  expect(response.status).toBe(200);
  return await response.json() as { afterCall: Record<string, number> };
}

async function postVapi(message: unknown): Promise<number> {
  const { body, headers } = signedVapiRequest(message, vapiSecret);
  const response = await fetch(`${stack.apiUrl}/functions/v1/call-events/${org.id}/vapi`, { method: 'POST', headers, body });
  await response.body?.cancel();
  return response.status;
}

/** Ended calls of the org (the file's by default), `ended` seconds ago each (oldest first in the hand-out's order). */
async function endedCalls(
  label: string,
  endedSecondsAgo: number[],
  fields: { recording?: boolean; botId?: string; orgId?: string } = {},
): Promise<string[]> {
  const ids: string[] = [];
  for (const [index, ago] of endedSecondsAgo.entries()) {
    const [row] = await sql<{ id: string }[]>`
      insert into public.calls (org_id, bot_id, direction, status, started_at, ended_at, from_number, recording_url)
      values (${fields.orgId ?? org.id}, ${fields.botId ?? bot}, 'inbound', 'ended', now() - make_interval(secs => ${ago + 60}),
        now() - make_interval(secs => ${ago}), ${`+1415555${String(7400 + index)}`},
        ${fields.recording ? `https://recordings.example.com/${label}-${index}.wav` : null})
      returning id`;
    ids.push(row.id);
  }
  return ids;
}

async function addLine(callId: string, text: string): Promise<void> {
  await sql`
    insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
    select c.org_id, c.id, 0, 'user', ${text}, 0, 900 from public.calls c where c.id = ${callId}`;
}

/** Every call the earlier tests left due is taken for now, so only the test's own calls are handed out. */
async function setAsideDueWork(): Promise<void> {
  await sql`update public.calls set analysis_requested_at = now()
    where status = 'ended' and (summary is null or sentiment = 'unknown') and ended_at > now() - interval '7 days'`;
  await sql`insert into private.call_recording_requests (call_id, requested_at)
    select c.id, now() from public.calls c
    where c.recording_url is not null and c.recording_path is null and c.ended_at > now() - interval '7 days'
    on conflict (call_id) do update set requested_at = excluded.requested_at`;
}

beforeAll(async () => {
  stack = await startStack({
    dbPort: 0,
    apiPort: await freePort(),
    functions: true,
    scheduler: false,
    // Offline analysis, nothing dialled, whatever the shell exports.
    functionEnv: { OPENAI_API_KEY: '', VAPI_API_KEY: '' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'after-call-work');
  bot = await createBot(sql, org.id, { slug: 'after-call-work' });
  vapiSecret = await withUserScope(sql, org.claims.admin, async (tx) => {
    const [row] = await tx<{ secret: string }[]>`select public.create_call_provider_secret(${org.id}, 'vapi') as secret`;
    return row.secret;
  });
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('a call the caller said nothing in', () => {
  it('is analysed offline once: neutral, score 0, a summary saying so, metered; the next pass leaves it', async () => {
    const vapiId = randomUUID();
    const call = vapiCall({ id: vapiId, customerNumber: '+14155557499' });
    const start = Date.now() - 60_000;
    expect(await postVapi(vapiStatusUpdate('in-progress', { call, assistantMetadata: { bot_id: bot } }))).toBe(200);
    expect(
      await postVapi(vapiEndOfCallReport({
        call,
        assistantMetadata: { bot_id: bot },
        endedReason: 'silence-timed-out',
        startedAt: new Date(start).toISOString(),
        endedAt: new Date(start + 30_000).toISOString(),
        messages: [
          { role: 'bot', message: 'Hello, this is the clinic. How can I help?', time: start, secondsFromStart: 0 },
          { role: 'bot', message: 'Hello? Is anyone there?', time: start + 10_000, secondsFromStart: 10 },
        ],
      })),
    ).toBe(200);
    const [before] = await sql<{ id: string; status: string; summary: string | null; has_transcript: boolean }[]>`
      select id, status, summary, has_transcript from public.calls where org_id = ${org.id} and provider_call_id = ${vapiId}`;
    // The end-of-call transcript's first lines marked the call.
    expect(before).toMatchObject({ status: 'ended', summary: null, has_transcript: true });

    expect((await runPass()).afterCall).toEqual({ analysed: 1, recordings: 0, failed: 0, throttled: 0 });
    const [row] = await sql<
      { summary: string | null; sentiment: string; sentiment_score: string | null; analysis_attempts: number }[]
    >`
      select summary, sentiment, sentiment_score::text, analysis_attempts from public.calls where id = ${before.id}`;
    expect(row).toEqual({
      summary: 'The caller said nothing. Assistant: Hello? Is anyone there?',
      sentiment: 'neutral',
      sentiment_score: '0.000',
      analysis_attempts: 1,
    });
    const [usage] = await sql<{ events: number }[]>`
      select count(*)::int as events from public.usage_events
      where org_id = ${org.id} and bot_id = ${bot} and kind = 'chat' and model = 'offline'`;
    expect(usage.events).toBe(1);

    expect((await runPass()).afterCall).toEqual({ analysed: 0, recordings: 0, failed: 0, throttled: 0 });
    const [after] = await sql<{ analysis_attempts: number }[]>`select analysis_attempts from public.calls where id = ${before.id}`;
    expect(after.analysis_attempts).toBe(1);
  });
});

describe('a model that fails on an analysis', () => {
  const refused: RecordingStore = { copy: () => Promise.reject(new Error('no recordings in this test')) };
  const BOOKING = 'I would like to book a table for two, please.';
  let failBot: string;
  beforeAll(async () => {
    failBot = await createBot(sql, org.id, { slug: 'after-call-model-failures' });
  });

  /** A model failing like OpenAI's provider once its retries are spent: before any text, or cut after `partial`. */
  function failing(partial = ''): { provider: ChatProvider; asked: ChatMessage[][] } {
    const asked: ChatMessage[][] = [];
    const provider: ChatProvider = {
      name: 'openai',
      async *stream(request): AsyncGenerator<ChatDelta> {
        asked.push(request.messages);
        if (partial !== '') yield { type: 'delta', text: partial };
        throw partial === ''
          ? new ChatProviderError('The chat model failed with 503', { status: 503, retryable: true })
          : new ChatProviderError('The answer broke off: the connection to the model server was lost.', {
            retryable: true,
            afterFirstToken: true,
          });
      },
    };
    return { provider, asked };
  }
  const working: ChatProvider = {
    name: 'openai',
    async *stream(): AsyncGenerator<ChatDelta> {
      yield { type: 'delta', text: '{"summary": "A table for two was booked.", "sentiment": "positive", "score": 0.6}' };
      yield { type: 'done', usage: { tokensIn: 120, tokensOut: 30 }, finishReason: 'stop' };
    },
  };

  const callRow = async (id: string) =>
    (await sql<{ summary: string | null; sentiment: string; sentiment_score: string | null; analysis_attempts: number }[]>`
      select summary, sentiment::text, sentiment_score::text, analysis_attempts from public.calls where id = ${id}`)[0];
  const usageOf = (id: string) =>
    sql<{ model: string; tokens_in: number; tokens_out: number }[]>`
      select u.model, u.tokens_in, u.tokens_out from public.usage_events u join public.calls c on c.bot_id = u.bot_id
      where c.id = ${id} and u.kind = 'chat' order by u.id`;
  /** Due again now rather than 10 minutes after its last hand-out. */
  const dueAgain = (id: string) =>
    sql`update public.calls set analysis_requested_at = now() - interval '11 minutes' where id = ${id}`;

  it('fails the try: the call stays un-analysed and due, one try used; a cut stream meters what it wrote', async () => {
    const [id] = await endedCalls('model-fails', [40], { botId: failBot });
    await addLine(id, BOOKING);

    const before = failing();
    expect(await runAfterCallWork({ sql, chat: before.provider, recordings: refused, log: () => undefined })).toEqual({
      analysed: 0,
      recordings: 0,
      failed: 1,
      throttled: 0,
    });
    expect(before.asked).toHaveLength(1);
    expect(await callRow(id)).toEqual({ summary: null, sentiment: 'unknown', sentiment_score: null, analysis_attempts: 1 });
    // Nothing generated, nothing metered.
    expect(await usageOf(id)).toEqual([]);

    await dueAgain(id);
    const partial = '{"summary": "The caller booked';
    const cut = failing(partial);
    expect(await runAfterCallWork({ sql, chat: cut.provider, recordings: refused, log: () => undefined })).toEqual({
      analysed: 0,
      recordings: 0,
      failed: 1,
      throttled: 0,
    });
    expect(await callRow(id)).toEqual({ summary: null, sentiment: 'unknown', sentiment_score: null, analysis_attempts: 2 });
    // No usage came (it comes at a stream's end): the prompt and the streamed text, counted as chat turns count them.
    expect(await usageOf(id)).toEqual([
      { model: 'gpt-4o-mini', tokens_in: countPromptTokens(cut.asked[0]), tokens_out: countTokens(partial) },
    ]);
    // Handed out again once its 10 minutes are up.
    await dueAgain(id);
    const [{ due }] = await sql<{ due: number }[]>`
      select count(*)::int as due from private.calls_needing_analysis(100) where call_id = ${id}`;
    expect(due).toBe(1);
  });

  it('falls back to the rules on the last try, stored and metered', async () => {
    const [id] = await endedCalls('model-fails-last', [30], { botId: failBot });
    await addLine(id, BOOKING);
    await sql`update public.calls set analysis_attempts = 4 where id = ${id}`;
    const usedBefore = (await usageOf(id)).length;
    expect(await runAfterCallWork({ sql, chat: failing().provider, recordings: refused, log: () => undefined })).toEqual({
      analysed: 1,
      recordings: 0,
      failed: 0,
      throttled: 0,
    });
    expect(await callRow(id)).toEqual({
      summary: `User: ${BOOKING}`,
      sentiment: 'neutral',
      sentiment_score: '0.000',
      analysis_attempts: 5,
    });
    expect((await usageOf(id)).slice(usedBefore)).toEqual([{ model: 'offline', tokens_in: 0, tokens_out: 0 }]);
  });

  it("falls back to the rules on a try whose next hand-out would come too close to the 7-day window's end", async () => {
    // The window closes 10 min 30 s from now: a hand-out 10 minutes on would have 30 s left, under a minute.
    const [id] = await endedCalls('model-fails-window', [7 * 86_400 - 10 * 60 - 30], { botId: failBot });
    await addLine(id, BOOKING);
    expect(await runAfterCallWork({ sql, chat: failing().provider, recordings: refused, log: () => undefined })).toEqual({
      analysed: 1,
      recordings: 0,
      failed: 0,
      throttled: 0,
    });
    expect(await callRow(id)).toEqual({
      summary: `User: ${BOOKING}`,
      sentiment: 'neutral',
      sentiment_score: '0.000',
      analysis_attempts: 1,
    });
  });

  it("stores a working model's analysis on the first try", async () => {
    const [id] = await endedCalls('model-works', [20], { botId: failBot });
    await addLine(id, BOOKING);
    const usedBefore = (await usageOf(id)).length;
    expect(await runAfterCallWork({ sql, chat: working, recordings: refused, log: () => undefined })).toEqual({
      analysed: 1,
      recordings: 0,
      failed: 0,
      throttled: 0,
    });
    expect(await callRow(id)).toEqual({
      summary: 'A table for two was booked.',
      sentiment: 'positive',
      sentiment_score: '0.600',
      analysis_attempts: 1,
    });
    expect((await usageOf(id)).slice(usedBefore)).toEqual([{ model: 'gpt-4o-mini', tokens_in: 120, tokens_out: 30 }]);
  });
});

describe('a pass within its time budget', () => {
  it('takes analyses one at a time: calls it does not reach are not counted a try', async () => {
    const ids = await endedCalls('analysis', [300, 200, 100]);
    for (const id of ids) await addLine(id, 'I would like to book a table for two, please.');
    // A model that takes longer than the budget.
    const slow: ChatProvider = {
      name: 'openai',
      async *stream(): AsyncGenerator<ChatDelta> {
        await sleep(300);
        yield { type: 'delta', text: '{"summary": "A table for two.", "sentiment": "neutral", "score": 0}' };
        yield { type: 'done', usage: { tokensIn: 10, tokensOut: 5 }, finishReason: 'stop' };
      },
    };
    const refused: RecordingStore = { copy: () => Promise.reject(new Error('no recordings in this test')) };
    const summary = await runAfterCallWork({ sql, chat: slow, recordings: refused, maxDurationMs: 100, log: () => undefined });
    expect(summary).toEqual({ analysed: 1, recordings: 0, failed: 0, throttled: 0 });
    const rows = await sql<{ id: string; summary: string | null; analysis_attempts: number; requested: boolean }[]>`
      select id, summary, analysis_attempts, analysis_requested_at is not null as requested
      from public.calls where id in ${sql(ids)} order by ended_at`;
    expect(rows).toEqual([
      { id: ids[0], summary: 'A table for two.', analysis_attempts: 1, requested: true },
      { id: ids[1], summary: null, analysis_attempts: 0, requested: false },
      { id: ids[2], summary: null, analysis_attempts: 0, requested: false },
    ]);
    // Within the budget, the rest: each taken and analysed in turn.
    const rest = await runAfterCallWork({ sql, chat: createOfflineChatProvider(), recordings: refused, log: () => undefined });
    expect(rest).toEqual({ analysed: 2, recordings: 0, failed: 0, throttled: 0 });
  });

  it('takes recording copies one at a time: a slow copy leaves the others their tries', async () => {
    const ids = await endedCalls('recording', [300, 200, 100], { recording: true });
    const copied: string[] = [];
    const slow: RecordingStore = {
      async copy(call) {
        copied.push(call.call_id);
        await sleep(300);
        throw new Error('the provider is slow and then fails');
      },
    };
    const summary = await runAfterCallWork({
      sql,
      chat: createOfflineChatProvider(),
      recordings: slow,
      maxDurationMs: 100,
      log: () => undefined,
    });
    expect(summary).toEqual({ analysed: 0, recordings: 0, failed: 1, throttled: 0 });
    expect(copied).toEqual([ids[0]]);
    const tries = await sql<{ call_id: string; attempts: number }[]>`
      select call_id, attempts from private.call_recording_requests where call_id in ${sql(ids)}`;
    expect(tries).toEqual([{ call_id: ids[0], attempts: 1 }]);
  });

  it('takes analyses and recordings in turns, so a backlog of slow analyses does not starve the recordings', async () => {
    const ids = await endedCalls('turns', [300, 200, 100]);
    for (const id of ids) await addLine(id, 'Can I move my booking to Friday?');
    const slow: ChatProvider = {
      name: 'openai',
      async *stream(): AsyncGenerator<ChatDelta> {
        await sleep(300);
        yield { type: 'delta', text: '{"summary": "Moving a booking.", "sentiment": "neutral", "score": 0}' };
        yield { type: 'done', usage: { tokensIn: 10, tokensOut: 5 }, finishReason: 'stop' };
      },
    };
    const copied: string[] = [];
    const recordings: RecordingStore = {
      copy(call) {
        copied.push(call.call_id);
        return Promise.reject(new Error('not copied in this test'));
      },
    };
    // The analyses alone would spend the budget (two of 300 ms within 500 ms).
    const summary = await runAfterCallWork({ sql, chat: slow, recordings, maxDurationMs: 500, log: () => undefined });
    expect(summary.analysed).toBeGreaterThanOrEqual(1);
    expect(summary.analysed).toBeLessThan(3);
    expect(copied.length).toBeGreaterThanOrEqual(1);
  });
});

describe('the orgs in turn', () => {
  let other: ChatOrg;
  let otherBot: string;
  beforeAll(async () => {
    other = await createChatOrg(sql, 'after-call-work-other');
    otherBot = await createBot(sql, other.id, { slug: 'after-call-work-other' });
  });

  it("analyses another org's call within the pass though one org's older backlog is longer than the pass", async () => {
    await setAsideDueWork();
    const backlog = await endedCalls('campaign', [900, 800, 700]);
    const [waiting] = await endedCalls('other-org', [600], { orgId: other.id, botId: otherBot });
    for (const id of [...backlog, waiting]) await addLine(id, 'Please call me back about my order.');
    const refused: RecordingStore = { copy: () => Promise.reject(new Error('no recordings in this test')) };

    const summary = await runAfterCallWork({ sql, chat: createOfflineChatProvider(), recordings: refused, maxCalls: 2 });
    expect(summary).toEqual({ analysed: 2, recordings: 0, failed: 0, throttled: 0 });
    const rows = await sql<{ id: string; analysed: boolean }[]>`
      select id, summary is not null as analysed from public.calls where id in ${sql([...backlog, waiting])} order by ended_at`;
    // Before, the two oldest of the backlog: the other org waited until it drained.
    expect(rows).toEqual([
      { id: backlog[0], analysed: true },
      { id: backlog[1], analysed: false },
      { id: backlog[2], analysed: false },
      { id: waiting, analysed: true },
    ]);
    const [{ attempts }] = await sql<{ attempts: number }[]>`
      select sum(analysis_attempts)::int as attempts from public.calls where id in ${sql([...backlog, waiting])}`;
    expect(attempts).toBe(2);
  });

  it("copies another org's recording within the pass, before its provider link expires", async () => {
    await setAsideDueWork();
    const backlog = await endedCalls('campaign-recording', [900, 800, 700], { recording: true });
    const [waiting] = await endedCalls('other-org-recording', [600], { recording: true, orgId: other.id, botId: otherBot });
    const copied: string[] = [];
    const recordings: RecordingStore = {
      copy(call) {
        copied.push(call.call_id);
        return Promise.reject(new Error('not copied in this test'));
      },
    };
    const summary = await runAfterCallWork({
      sql,
      chat: createOfflineChatProvider(),
      recordings,
      maxCalls: 2,
      log: () => undefined,
    });
    expect(summary).toEqual({ analysed: 0, recordings: 0, failed: 2, throttled: 0 });
    // Before: backlog[0], backlog[1]. (Which org first depends on which was served longer ago.)
    expect([...copied].sort()).toEqual([backlog[0], waiting].sort());
  });
});

describe('an org whose chat tokens are used up', () => {
  it("gets the rules' analysis with no model call, as chat_prepare would refuse its turns", async () => {
    await setAsideDueWork();
    const spent = await createChatOrg(sql, 'after-call-over-quota');
    const spentBot = await createBot(sql, spent.id, { slug: 'after-call-over-quota' });
    await sql`select private.record_usage(${spent.id}::uuid, 'chat', 'gpt-4o-mini', 200000, 0, null, null, ${spentBot}::uuid, null, null)`;
    const [id] = await endedCalls('over-quota', [30], { botId: spentBot, orgId: spent.id });
    await addLine(id, 'I would like to book a table for two, please.');
    let asked = 0;
    const model: ChatProvider = {
      name: 'openai',
      async *stream(): AsyncGenerator<ChatDelta> {
        asked += 1;
        yield { type: 'delta', text: '{"summary": "Booked.", "sentiment": "positive", "score": 0.6}' };
        yield { type: 'done', usage: { tokensIn: 120, tokensOut: 30 }, finishReason: 'stop' };
      },
    };
    const refused: RecordingStore = { copy: () => Promise.reject(new Error('no recordings in this test')) };
    expect(await runAfterCallWork({ sql, chat: model, recordings: refused, maxCalls: 1, log: () => undefined }))
      .toMatchObject({ analysed: 1, failed: 0, throttled: 0 });
    expect(asked).toBe(0);
    const [row] = await sql<{ summary: string | null; analysis_attempts: number; chat_tokens: number }[]>`
      select c.summary, c.analysis_attempts,
        (select coalesce(sum(u.tokens_in + u.tokens_out), 0)::int from public.usage_events u
         where u.org_id = c.org_id and u.kind = 'chat') as chat_tokens
      from public.calls c where c.id = ${id}`;
    expect(row.summary).not.toBeNull();
    expect([row.analysis_attempts, row.chat_tokens]).toEqual([1, 200000]);
  });
});

describe('a throttled analysis model', () => {
  const refused: RecordingStore = { copy: () => Promise.reject(new Error('no recordings in this test')) };
  const BOOKING = 'I would like to book a table for two, please.';
  let throttleBot: string;
  beforeAll(async () => {
    throttleBot = await createBot(sql, org.id, { slug: 'after-call-throttled-model' });
  });

  /** A model throttled as OpenAI's provider reports it once its own waits are spent: before any text. */
  function throttled(status: number, retryAfterSeconds?: number): { provider: ChatProvider; asked: () => number } {
    let asked = 0;
    const provider: ChatProvider = {
      name: 'openai',
      async *stream(): AsyncGenerator<ChatDelta> {
        asked += 1;
        throw new ChatProviderError(`The chat model failed with ${status}`, { status, retryable: true, retryAfterSeconds });
      },
    };
    return { provider, asked: () => asked };
  }
  const working: ChatProvider = {
    name: 'openai',
    async *stream(): AsyncGenerator<ChatDelta> {
      yield { type: 'delta', text: '{"summary": "A table for two was booked.", "sentiment": "positive", "score": 0.6}' };
      yield { type: 'done', usage: { tokensIn: 120, tokensOut: 30 }, finishReason: 'stop' };
    },
  };
  const callRows = (ids: string[]) =>
    sql<{ id: string; summary: string | null; analysis_attempts: number; due_in: number | null }[]>`
      select id, summary, analysis_attempts,
        round(extract(epoch from analysis_requested_at + interval '10 minutes' - now()))::int as due_in
      from public.calls where id in ${sql(ids)} order by ended_at`;

  it('gives the try back, even the 5th: not counted, due after Retry-After; the pass takes no more analyses', async () => {
    await setAsideDueWork();
    const ids = await endedCalls('throttled', [500, 400], { botId: throttleBot });
    for (const id of ids) await addLine(id, BOOKING);
    // Its 5th try: before, a throttle on it stored the rules' summary for good.
    await sql`update public.calls set analysis_attempts = 4 where id = ${ids[0]}`;

    const model = throttled(429, 30);
    const logged: string[] = [];
    const summary = await runAfterCallWork({
      sql,
      chat: model.provider,
      recordings: refused,
      log: (message) => logged.push(message),
    });
    expect(summary).toEqual({ analysed: 0, recordings: 0, failed: 0, throttled: 1 });
    expect(model.asked()).toBe(1);
    expect(logged).toEqual([`the analysis model is throttled: call ${ids[0]} given back`]);
    const rows = await callRows(ids);
    expect(rows[0]).toMatchObject({ id: ids[0], summary: null, analysis_attempts: 4 });
    expect(rows[0].due_in).toBeGreaterThanOrEqual(28);
    expect(rows[0].due_in).toBeLessThanOrEqual(30);
    // Not reached: untouched.
    expect(rows[1]).toEqual({ id: ids[1], summary: null, analysis_attempts: 0, due_in: null });

    // Once the wait is over, the model's analysis, on the try it was owed.
    await sql`update public.calls set analysis_requested_at = now() - interval '11 minutes' where id = ${ids[0]}`;
    expect(await runAfterCallWork({ sql, chat: working, recordings: refused })).toEqual({
      analysed: 2,
      recordings: 0,
      failed: 0,
      throttled: 0,
    });
    expect((await callRows(ids)).map((row) => [row.summary, row.analysis_attempts])).toEqual([
      ['A table for two was booked.', 5],
      ['A table for two was booked.', 1],
    ]);
  });

  it('takes a 503 with Retry-After as a throttle, and one without as a failed try', async () => {
    await setAsideDueWork();
    const [id] = await endedCalls('throttled-503', [300], { botId: throttleBot });
    await addLine(id, BOOKING);
    expect(await runAfterCallWork({ sql, chat: throttled(503, 120).provider, recordings: refused, log: () => undefined }))
      .toEqual({ analysed: 0, recordings: 0, failed: 0, throttled: 1 });
    const [given] = await callRows([id]);
    expect(given).toMatchObject({ summary: null, analysis_attempts: 0 });
    expect(given.due_in).toBeGreaterThanOrEqual(118);

    await sql`update public.calls set analysis_requested_at = now() - interval '11 minutes' where id = ${id}`;
    expect(await runAfterCallWork({ sql, chat: throttled(503).provider, recordings: refused, log: () => undefined }))
      .toEqual({ analysed: 0, recordings: 0, failed: 1, throttled: 0 });
    expect((await callRows([id]))[0]).toMatchObject({ summary: null, analysis_attempts: 1 });
  });

  it("falls back to the rules when the call's 7 days end before a hand-out could follow the wait", async () => {
    await setAsideDueWork();
    // 20 minutes left: a wait of 30 leaves none.
    const [id] = await endedCalls('throttled-window', [7 * 86_400 - 20 * 60], { botId: throttleBot });
    await addLine(id, BOOKING);
    expect(await runAfterCallWork({ sql, chat: throttled(429, 1800).provider, recordings: refused, log: () => undefined }))
      .toEqual({ analysed: 1, recordings: 0, failed: 0, throttled: 0 });
    expect((await callRows([id]))[0]).toMatchObject({ summary: `User: ${BOOKING}`, analysis_attempts: 1 });
  });
});
