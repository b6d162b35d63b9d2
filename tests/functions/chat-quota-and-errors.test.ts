/**
 * Chat fixes from review, over HTTP against the stubbed model and Telegram:
 * - the chat quota holds under concurrent turns (chat_prepare's reservations):
 *   20 turns at once, 10 tokens short of the allowance, let one through;
 * - a user who loses chat.use while the answer streams keeps the turn
 *   (chat_finish runs as the service): stored and metered to the user;
 * - a failed embedding-usage insert is logged, the turn still stored and metered;
 * - chat/completions answers a NUL in the body, a wrong method and an unknown
 *   path under /chat/v1/ with a 4xx in OpenAI's error shape;
 * - Telegram's /start is refused, not greeted, when the bot or its Telegram
 *   channel is off;
 * - a handoff (no model asked) is stored and metered as model `handoff`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import { parseSse } from '../support/sse.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { connectTelegram, resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;
let quotaOrg: ChatOrg;
let key: { id: string; key: string };
let concierge: string;

const complete = (apiKey: string, body: unknown, init: { method?: string; path?: string } = {}) =>
  fetch(`${stack.functionsUrl}/chat/v1/${init.path ?? 'chat/completions'}`, {
    method: init.method ?? 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: init.method === 'GET' ? undefined : JSON.stringify(body),
  });

const web = (message: string) =>
  fetch(`${stack.functionsUrl}/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bot_id: concierge, message }),
  });

const chatUsage = (conversationId: string) =>
  sql<{ model: string; tokens_in: number; tokens_out: number; user_id: string | null }[]>`
    select model, tokens_in, tokens_out, user_id from public.usage_events
    where conversation_id = ${conversationId} and kind = 'chat' order by id`;

const answers = (conversationId: string) =>
  sql<{ content: string; model: string | null; finish_reason: string | null }[]>`
    select content, model, finish_reason from public.messages
    where conversation_id = ${conversationId} and role = 'assistant' order by id`;

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-quota-and-errors');
  quotaOrg = await createChatOrg(sql, 'chat-quota-and-errors-quota');
  concierge = await createBot(sql, org.id, { slug: 'concierge', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'hours.pdf', ['Opening hours are from 9 am to 5 pm on weekdays.']);
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, [org?.id, quotaOrg?.id].filter((id) => id !== undefined)));

beforeEach(() => resetStubs({ stub, telegram }));

describe('the chat quota under concurrent turns', () => {
  it('lets one of 20 concurrent turns through 10 tokens short of the allowance; the rest get 402, and usage stays within one turn', async () => {
    await createBot(sql, quotaOrg.id, { slug: 'support', model: 'gpt-4o-mini' });
    const quotaKey = await createApiKey(sql, quotaOrg);
    const [{ allowance }] = await sql<{ allowance: number }[]>`
      select monthly_chat_tokens::int as allowance from private.chat_quota(${quotaOrg.id})`;
    await sql`insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
              values (${quotaOrg.id}, 'chat', 'gpt-4o-mini', ${allowance - 10}, 0)`;
    const turn = { prompt_tokens: 3000, completion_tokens: 400 };
    for (let i = 0; i < 20; i += 1) stub.answerChat({ content: 'We open at nine.', usage: turn });

    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        complete(quotaKey.key, { model: 'support', messages: [{ role: 'user', content: 'When do you open?' }] }).then(async (r) => ({
          status: r.status,
          body: await r.json(),
        }))
      ),
    );
    expect(responses.filter((r) => r.status === 200)).toHaveLength(1);
    const refused = responses.filter((r) => r.status !== 200);
    expect(refused).toHaveLength(19);
    for (const r of refused) expect([r.status, r.body.error.code]).toEqual([402, 'quota_exceeded']);
    expect(stub.chatRequests).toHaveLength(1);

    const [{ used }] = await sql<{ used: number }[]>`
      select used_chat_tokens::int as used from private.chat_quota(${quotaOrg.id})`;
    expect(used).toBe(allowance - 10 + turn.prompt_tokens + turn.completion_tokens);
    const [{ reserved }] = await sql<{ reserved: number }[]>`
      select count(*)::int as reserved from private.chat_quota_reservations where org_id = ${quotaOrg.id}`;
    expect(reserved).toBe(0);
  });
});

describe('a user who loses chat.use while the answer streams', () => {
  it('keeps the turn: the answer is stored and metered to the user', async () => {
    stub.answerChat({
      content: 'We open at nine and close at five on weekdays [1].',
      delayMs: 100,
      usage: { prompt_tokens: 3000, completion_tokens: 4000 },
    });
    const response = await web('When are the opening hours?');
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    // Demoted once the model is streaming.
    while (!text.includes('event: delta')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    await sql`update public.memberships set role = 'viewer' where org_id = ${org.id} and user_id = ${org.users.member}`;
    try {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
    } finally {
      await sql`update public.memberships set role = 'member' where org_id = ${org.id} and user_id = ${org.users.member}`;
    }
    const events = parseSse(text);
    expect(events.at(-1)!.event).toBe('done');
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    expect(await answers(conversation)).toEqual([
      { content: 'We open at nine and close at five on weekdays [1].', model: 'gpt-4o-mini', finish_reason: 'stop' },
    ]);
    expect(await chatUsage(conversation)).toEqual([
      { model: 'gpt-4o-mini', tokens_in: 3000, tokens_out: 4000, user_id: org.users.member },
    ]);
  });
});

describe('a failed embedding-usage insert', () => {
  it('is logged; the turn is still answered, stored and its chat tokens metered', async () => {
    await sql.unsafe(`
      create function private.chat_quota_and_errors_refuse_embedding_usage() returns trigger
      language plpgsql security invoker set search_path = '' as $$
      begin
        if new.kind = 'embedding' and new.org_id = '${org.id}' then
          raise exception 'embedding usage refused by the test';
        end if;
        return new;
      end;
      $$`);
    await sql.unsafe(`create trigger chat_quota_and_errors_refuse_embedding_usage before insert on public.usage_events
      for each row execute function private.chat_quota_and_errors_refuse_embedding_usage()`);
    try {
      stub.answerChat({ content: 'We open at nine.', usage: { prompt_tokens: 120, completion_tokens: 5 } });
      const response = await web('When do you open on Monday?');
      const events = parseSse(await response.text());
      expect(events.at(-1)!.event).toBe('done');
      const conversation = (events[0].data as { conversation_id: string }).conversation_id;
      expect(await answers(conversation)).toEqual([{ content: 'We open at nine.', model: 'gpt-4o-mini', finish_reason: 'stop' }]);
      expect(await chatUsage(conversation)).toEqual([{ model: 'gpt-4o-mini', tokens_in: 120, tokens_out: 5, user_id: org.users.member }]);
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from public.usage_events where conversation_id = ${conversation} and kind = 'embedding'`;
      expect(n).toBe(0);
    } finally {
      await sql.unsafe('drop trigger chat_quota_and_errors_refuse_embedding_usage on public.usage_events');
      await sql.unsafe('drop function private.chat_quota_and_errors_refuse_embedding_usage()');
    }
  });
});

describe('a turn that fails after it was let through', () => {
  it('gives its quota reservation back at once instead of holding it for 10 minutes', async () => {
    await sql.unsafe(`
      create function private.chat_quota_and_errors_refuse_chat_usage() returns trigger
      language plpgsql security invoker set search_path = '' as $$
      begin
        if new.kind = 'chat' and new.org_id = '${org.id}' then
          raise exception 'chat usage refused by the test';
        end if;
        return new;
      end;
      $$`);
    await sql.unsafe(`create trigger chat_quota_and_errors_refuse_chat_usage before insert on public.usage_events
      for each row execute function private.chat_quota_and_errors_refuse_chat_usage()`);
    try {
      stub.answerChat({ content: 'We open at nine.', usage: { prompt_tokens: 120, completion_tokens: 5 } });
      const response = await web('When do you open on Tuesday?');
      const events = parseSse(await response.text());
      expect(events.at(-1)!.event).toBe('error');
      const conversation = (events[0].data as { conversation_id: string }).conversation_id;
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from private.chat_quota_reservations where conversation_id = ${conversation}`;
      expect(n).toBe(0);
    } finally {
      await sql.unsafe('drop trigger chat_quota_and_errors_refuse_chat_usage on public.usage_events');
      await sql.unsafe('drop function private.chat_quota_and_errors_refuse_chat_usage()');
    }
  });
});

describe('chat/completions: bad input in OpenAI\'s error shape', () => {
  const openAiError = (body: { error?: Record<string, unknown> }) => ({
    type: body.error?.type,
    code: body.error?.code,
    message: typeof body.error?.message,
    param: body.error?.param,
  });

  it('answers a NUL in model, content or user with a 4xx, storing nothing', async () => {
    const [before] = await sql<{ n: number }[]>`select count(*)::int as n from public.messages where org_id = ${org.id}`;
    const ask = { model: 'concierge', messages: [{ role: 'user', content: 'When do you open?' }] };
    for (
      const body of [
        { ...ask, model: 'conci\u0000erge' },
        { ...ask, messages: [{ role: 'user', content: 'When do\u0000 you open?' }] },
        { ...ask, user: 'ann\u0000' },
      ]
    ) {
      const response = await complete(key.key, body);
      expect(response.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(response.status, JSON.stringify(body)).toBeLessThan(500);
      expect(openAiError(await response.json())).toMatchObject({ type: expect.any(String), message: 'string', param: null });
    }
    const [after] = await sql<{ n: number }[]>`select count(*)::int as n from public.messages where org_id = ${org.id}`;
    expect(after).toEqual(before);
    expect(stub.chatRequests).toHaveLength(0);
  });

  it('answers a wrong method (405) and an unknown path (404) under /chat/v1/ in OpenAI\'s shape', async () => {
    const wrongMethod = await complete(key.key, null, { method: 'GET' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(openAiError(await wrongMethod.json())).toEqual({
      type: 'invalid_request_error',
      code: 'method_not_allowed',
      message: 'string',
      param: null,
    });
    const unknown = await complete(key.key, {}, { path: 'embeddings' });
    expect(unknown.status).toBe(404);
    expect(openAiError(await unknown.json())).toEqual({ type: 'not_found_error', code: 'not_found', message: 'string', param: null });
  });
});

describe('a handoff', () => {
  it('is stored and metered as model handoff: no model was asked', async () => {
    const events = parseSse(await (await web('I want to talk to a human')).text());
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    expect(stub.chatRequests).toHaveLength(0);
    expect((await answers(conversation)).map((a) => a.model)).toEqual(['handoff']);
    expect((await chatUsage(conversation)).map((u) => [u.model, u.tokens_in, u.tokens_out])).toEqual([['handoff', 0, 0]]);
  });
});

describe('Telegram /start', () => {
  it('is refused, not greeted, when the bot is disabled or its Telegram channel is off; nothing is stored', async () => {
    const bot = await createBot(sql, org.id, { slug: 'telegram-start', model: 'gpt-4o-mini' });
    await sql`update public.bots set greeting = 'Welcome!' where id = ${bot}`;
    const secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
    const start = (updateId: number) =>
      fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify({
          update_id: updateId,
          message: { message_id: updateId, date: 1_700_000_000, chat: { id: 4242, type: 'private' }, text: '/start' },
        }),
      });
    const sent = () => telegram.calls.filter((call) => call.method === 'sendMessage').map((call) => call.body.text);

    telegram.reset();
    await sql`update public.bots set enabled = false where id = ${bot}`;
    const disabled = await start(1);
    expect(disabled.status).toBe(200);
    expect(await disabled.json()).toMatchObject({ handled: false, refused: 'bot_disabled' });
    expect(sent()).toEqual(['This assistant is not available right now. Please try again later.']);

    telegram.reset();
    await sql`update public.bots set enabled = true, channels = array['web', 'api'] where id = ${bot}`;
    const channelOff = await start(2);
    expect(await channelOff.json()).toMatchObject({ handled: false, refused: 'channel_not_enabled' });
    expect(sent()).toEqual(['This assistant is not available right now. Please try again later.']);

    telegram.reset();
    await sql`update public.bots set channels = array['web', 'api', 'telegram'] where id = ${bot}`;
    expect(await (await start(3)).json()).toMatchObject({ handled: true, greeted: true });
    expect(sent()).toEqual(['Welcome!']);

    const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.conversations where bot_id = ${bot}`;
    expect(n).toBe(0);
  });
});
