/**
 * A model that fails, through the `openai` SDK against a local wire-format
 * server (no retries, OPENAI_MAX_RETRIES=0): the turn still ends stored and
 * metered, as finish reason `error`, and the client is told in its endpoint's
 * wire format.
 * - after its first token (the connection cut, or OpenAI's error event in the
 *   stream): what was streamed is stored, the prompt and those tokens are
 *   metered (counted by us: no usage came), the web chat ends with
 *   `event: error` (no `done`), chat/completions with an error object as a
 *   `data:` event (no finish reason, no [DONE]), or 503 when not streamed;
 * - before it (5xx, 429, 400 from the provider): the answer is stored empty
 *   and metered with no tokens; chat/completions answers 503 (502 for a
 *   refused request) as JSON in OpenAI's shape, streamed or not, and the web
 *   chat's stream ends with `event: error`;
 * - Telegram: the chat is told, the turn stored once and not run again.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countPromptTokens } from '../../functions/_shared/chat/usage.ts';
import type { Sql } from '../../functions/_shared/db.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
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
let key: { id: string; key: string };
let concierge: string;
let telegramBot: string;

const ANSWER = ['Delivery ', 'takes ', 'two ', 'working ', 'days [1].'];

const complete = (body: Record<string, unknown>) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'concierge', messages: [{ role: 'user', content: 'How long does delivery take?' }], ...body }),
  });

const web = (body: Record<string, unknown> = {}) =>
  fetch(`${stack.functionsUrl}/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bot_id: concierge, message: 'How long does delivery take?', ...body }),
  });

interface StoredMessage {
  id: number;
  role: string;
  content: string;
  finish_reason: string | null;
  tokens_in: number | null;
  tokens_out: number | null;
}

const messagesOf = (conversationId: string) =>
  sql<StoredMessage[]>`
    select id::int, role::text, content, finish_reason, tokens_in, tokens_out from public.messages
    where conversation_id = ${conversationId} order by id`;

const chatUsage = (conversationId: string) =>
  sql<{ tokens_in: number; tokens_out: number; api_key_id: string | null; user_id: string | null }[]>`
    select tokens_in, tokens_out, api_key_id, user_id from public.usage_events
    where conversation_id = ${conversationId} and kind = 'chat' order by id`;

/** What we count for a cut answer: the prompt the model was sent, and the text it streamed. */
function countedUsage(partial: string): { tokens_in: number; tokens_out: number } {
  const messages = stub.chatRequests[0].messages.map((m) => ({
    role: m.role as 'system' | 'user' | 'assistant',
    content: String(m.content),
  }));
  return { tokens_in: countPromptTokens(messages), tokens_out: countTokens(partial) };
}

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-failure');
  concierge = await createBot(sql, org.id, { slug: 'concierge', model: 'gpt-4o-mini' });
  telegramBot = await createBot(sql, org.id, { slug: 'tg', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'delivery.pdf', ['Delivery takes two working days.']);
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('chat/completions: a model that fails after its first token', () => {
  it('streams what came, then an error object as a data event (no finish, no [DONE]); stores it as error and meters it', async () => {
    stub.answerChat({ content: ANSWER, dropAfter: 2, usage: { prompt_tokens: 999, completion_tokens: 99 } });
    const response = await complete({ stream: true, stream_options: { include_usage: true } });
    expect(response.status).toBe(200);
    const conversation = response.headers.get('x-conversation-id')!;
    const events = parseSse(await response.text());
    const last = events.at(-1)!;
    expect(last).toEqual({
      event: 'message',
      data: {
        error: {
          message: expect.any(String),
          type: 'server_error',
          code: 'model_unavailable',
          param: null,
        },
      },
    });
    const chunks = events.slice(0, -1).map((e) => e.data as { choices: { delta: { content?: string }; finish_reason: string | null }[] });
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Delivery takes ');
    expect(chunks.every((c) => c.choices[0].finish_reason === null)).toBe(true);
    expect(events.some((e) => e.data === '[DONE]')).toBe(false);

    const messages = await messagesOf(conversation);
    expect(messages.map((m) => [m.role, m.content, m.finish_reason])).toEqual([
      ['user', 'How long does delivery take?', null],
      ['assistant', 'Delivery takes ', 'error'],
    ]);
    // No usage came from the server (it comes at the end of a stream): counted by us, like an interrupted answer.
    const counted = countedUsage('Delivery takes ');
    expect(messages[1]).toMatchObject(counted);
    expect(await chatUsage(conversation)).toEqual([{ ...counted, api_key_id: key.id, user_id: null }]);
  });

  it('is raised by the openai SDK as an APIError after the streamed text, when the provider sent OpenAI\'s error event', async () => {
    stub.answerChat({ content: ANSWER, errorAfter: 3 });
    const client = new OpenAI({ apiKey: key.key, baseURL: `${stack.functionsUrl}/chat/v1`, maxRetries: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'concierge', messages: [{ role: 'user', content: 'How long does delivery take?' }], stream: true })
      .withResponse();
    let text = '';
    const failure = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    })().then(() => null, (error: unknown) => error);
    expect(text).toBe('Delivery takes two ');
    expect(failure).toBeInstanceOf(OpenAI.APIError);
    expect(failure).toMatchObject({ code: 'model_unavailable', type: 'server_error' });

    const conversation = response.headers.get('x-conversation-id')!;
    const messages = await messagesOf(conversation);
    expect(messages.filter((m) => m.role === 'assistant')).toMatchObject([
      { content: 'Delivery takes two ', finish_reason: 'error', ...countedUsage('Delivery takes two ') },
    ]);
    expect(await chatUsage(conversation)).toHaveLength(1);
  });

  it('answers 503 when not streamed, and still stores and meters what the model wrote', async () => {
    stub.answerChat({ content: ANSWER, dropAfter: 2 });
    const response = await complete({ user: 'not-streamed' });
    expect(response.status).toBe(503);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect((await response.json()).error).toMatchObject({ code: 'model_unavailable', type: 'server_error' });
    const conversation = response.headers.get('x-conversation-id')!;
    expect(conversation).toMatch(/^[0-9a-f-]{36}$/);
    const messages = await messagesOf(conversation);
    expect(messages.map((m) => [m.role, m.content, m.finish_reason])).toEqual([
      ['user', 'How long does delivery take?', null],
      ['assistant', 'Delivery takes ', 'error'],
    ]);
    expect(await chatUsage(conversation)).toEqual([{ ...countedUsage('Delivery takes '), api_key_id: key.id, user_id: null }]);
  });
});

describe('chat/completions: a model that fails before its first token', () => {
  it('answers a streamed request with 503 JSON, not a 200 stream; the answer is stored empty and metered once with no tokens', async () => {
    stub.failChatNext({ status: 500 });
    const response = await complete({ stream: true, user: 'before-first-token' });
    expect(response.status).toBe(503);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect((await response.json()).error).toMatchObject({ code: 'model_unavailable', type: 'server_error', param: null });
    const conversation = response.headers.get('x-conversation-id')!;
    const messages = await messagesOf(conversation);
    expect(messages.map((m) => [m.role, m.content, m.finish_reason, m.tokens_in, m.tokens_out])).toEqual([
      ['user', 'How long does delivery take?', null, 0, 0],
      ['assistant', '', 'error', 0, 0],
    ]);
    expect(await chatUsage(conversation)).toEqual([{ tokens_in: 0, tokens_out: 0, api_key_id: key.id, user_id: null }]);
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('meters the prompt of a try the provider accepted (2xx) that broke before any text, as it billed it', async () => {
    stub.answerChat({ content: ANSWER, dropAfter: 0 });
    const response = await complete({ user: 'accepted-then-broken' });
    expect(response.status).toBe(503);
    const conversation = response.headers.get('x-conversation-id')!;
    const [answer] = (await messagesOf(conversation)).filter((m) => m.role === 'assistant');
    expect(answer).toMatchObject({ content: '', finish_reason: 'error', tokens_out: 0 });
    expect(answer.tokens_in).toBeGreaterThan(0);
    expect(await chatUsage(conversation)).toEqual([
      { tokens_in: answer.tokens_in, tokens_out: 0, api_key_id: key.id, user_id: null },
    ]);
  });

  it('passes the provider\'s Retry-After on with a 503 for a 429, and answers 502 for a request the provider refused', async () => {
    stub.failChatNext({ status: 429, headers: { 'retry-after': '30' } });
    const limited = await complete({ stream: true, user: 'limited' });
    expect(limited.status).toBe(503);
    expect(limited.headers.get('retry-after')).toBe('30');
    expect((await limited.json()).error.code).toBe('model_unavailable');

    stub.failChatNext({ status: 400, message: 'Invalid value for temperature.' });
    const refused = await complete({ user: 'refused' });
    expect(refused.status).toBe(502);
    const body = await refused.json();
    expect(body.error).toMatchObject({ code: 'model_unavailable', type: 'server_error' });
    // The provider's own message stays in our log.
    expect(JSON.stringify(body)).not.toContain('temperature');
    const messages = await messagesOf(refused.headers.get('x-conversation-id')!);
    expect(messages.map((m) => [m.role, m.finish_reason])).toEqual([['user', null], ['assistant', 'error']]);
  });
});

describe('web chat: a model that fails', () => {
  it('after its first token: deltas, citations, usage, then event error with the stored message (no done); stored as error, metered to the user', async () => {
    stub.answerChat({ content: ANSWER, dropAfter: 2 });
    const response = await web();
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    expect(events.map((e) => e.event)).toEqual(['conversation', 'delta', 'delta', 'citations', 'usage', 'error']);
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    const messages = await messagesOf(conversation);
    const answer = messages.find((m) => m.role === 'assistant')!;
    expect(events.at(-1)!.data).toEqual({
      code: 'model_unavailable',
      message: expect.any(String),
      message_id: answer.id,
      finish_reason: 'error',
    });
    const counted = countedUsage('Delivery takes ');
    expect(events[4].data).toMatchObject({ ...counted, model: 'gpt-4o-mini' });
    expect(answer).toMatchObject({ content: 'Delivery takes ', finish_reason: 'error', ...counted });
    expect(await chatUsage(conversation)).toEqual([{ ...counted, api_key_id: null, user_id: org.users.member }]);
  });

  it('before its first token: event error after the conversation; an empty error answer, left out of the next turn\'s history', async () => {
    stub.failChatNext({ status: 503 });
    const events = parseSse(await (await web()).text());
    expect(events.map((e) => e.event)).toEqual(['conversation', 'citations', 'usage', 'error']);
    expect(events.at(-1)!.data).toMatchObject({ code: 'model_unavailable', finish_reason: 'error' });
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    expect((await messagesOf(conversation)).map((m) => [m.role, m.content, m.finish_reason])).toEqual([
      ['user', 'How long does delivery take?', null],
      ['assistant', '', 'error'],
    ]);
    expect(await chatUsage(conversation)).toMatchObject([{ tokens_in: 0, tokens_out: 0 }]);

    stub.answerChat({ content: 'Two working days [1].' });
    const again = parseSse(await (await web({ message: 'And how long does delivery take?', conversation_id: conversation })).text());
    expect(again.at(-1)!.event).toBe('done');
    expect(stub.chatRequests[1].messages.slice(1, -1)).toEqual([{ role: 'user', content: 'How long does delivery take?' }]);
  });
});

describe('Telegram: a model that fails mid-answer', () => {
  it('tells the chat, answers 200, stores and meters the turn once, and a redelivery runs nothing', async () => {
    const secret = await connectTelegram({ stack, sql, telegram }, telegramBot, org.tokens.admin);
    const deliver = () =>
      fetch(`${stack.functionsUrl}/chat/telegram/${telegramBot}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify({
          update_id: 5151,
          message: {
            message_id: 510,
            date: 1_700_000_000,
            chat: { id: 888, type: 'private' },
            from: { id: 888, is_bot: false, first_name: 'Bo' },
            text: 'How long does delivery take?',
          },
        }),
      });
    telegram.reset();
    stub.answerChat({ content: ANSWER, dropAfter: 2 });
    const first = await deliver();
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ failed: 'model_unavailable' });
    const again = await deliver();
    expect(await again.json()).toMatchObject({ duplicate: true });

    expect(stub.chatRequests).toHaveLength(1);
    const answers = await sql<{ content: string; finish_reason: string }[]>`
      select m.content, m.finish_reason from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.bot_id = ${telegramBot} and m.role = 'assistant'`;
    expect(answers).toEqual([{ content: 'Delivery takes ', finish_reason: 'error' }]);
    const usage = await sql<{ kind: string; n: number }[]>`
      select kind, count(*)::int as n from public.usage_events where bot_id = ${telegramBot} group by kind order by kind`;
    expect(usage).toEqual([{ kind: 'chat', n: 1 }, { kind: 'embedding', n: 1 }]);
    const sent = telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200);
    expect(sent.map((call) => call.body.text)).toEqual(["Sorry, I couldn't answer just now. Please try again in a moment."]);
  });
});
