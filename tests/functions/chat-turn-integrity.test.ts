/**
 * Chat turn integrity, through the `openai` SDK against a local wire-format
 * server (and Telegram's stub):
 * - an answer that would pass 32,000 characters is cut there, the model read
 *   no further: sent and stored alike as `length`, metered (web chat,
 *   chat/completions streamed and not, Telegram); a U+0000 is dropped;
 * - a turn chat_finish refuses is metered all the same;
 * - an API key's turn naming an end user's or a call's conversation without
 *   that end user or call is refused, changing nothing;
 * - two turns at once in one conversation: the next turn's history has each
 *   answer right after its question;
 * - chat/completions refuses what a bot cannot give (n > 1, logprobs,
 *   response_format, a forced tool) with 400 `unsupported_parameter`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
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
let bot: string;

const LINE = `${'-'.repeat(64)}\n`;
/** 600 lines of 64 dashes, a line a chunk: 39,000 characters, past the 32,000 an answer keeps. */
const LONG_ANSWER = Array.from({ length: 600 }, () => LINE);
const KEPT = LINE.repeat(600).slice(0, 32000);
/**
 * The long answer, its stream cut after 590 lines: a turn that read on past 32,000 characters would meet the
 * cut and end as `error`; one that stopped there ends as `length`.
 */
const longScript = () => ({ content: LONG_ANSWER, dropAfter: 590 });

const complete = (body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'integrity', ...body }),
  });

const web = (message: string, conversationId?: string) =>
  fetch(`${stack.functionsUrl}/chat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bot_id: bot, message, conversation_id: conversationId }),
  });

const question = (content = 'Draw me a long line, please.') => [{ role: 'user', content }];

interface StoredTurn {
  content: string;
  finish_reason: string | null;
  tokens_in: number;
  tokens_out: number;
}

const answers = (conversationId: string) =>
  sql<StoredTurn[]>`
    select content, finish_reason, tokens_in, tokens_out from public.messages
    where conversation_id = ${conversationId} and role = 'assistant' order by id`;

const chatUsage = (conversationId: string) =>
  sql<{ tokens_in: number; tokens_out: number }[]>`
    select tokens_in, tokens_out from public.usage_events where conversation_id = ${conversationId} and kind = 'chat' order by id`;

const reservations = async (conversationId: string) =>
  (await sql<{ n: number }[]>`
    select count(*)::int as n from private.chat_quota_reservations where conversation_id = ${conversationId}`)[0].n;

/** The turn stored as cut at 32,000 characters, metered with our estimate (no usage came), its reservation given back. */
async function expectCutAndMetered(conversationId: string): Promise<void> {
  const [answer] = await answers(conversationId);
  expect(answer.finish_reason).toBe('length');
  expect(answer.content).toBe(KEPT);
  expect(answer.tokens_in).toBeGreaterThan(0);
  expect(answer.tokens_out).toBeGreaterThan(0);
  expect(await chatUsage(conversationId)).toEqual([{ tokens_in: answer.tokens_in, tokens_out: answer.tokens_out }]);
  expect(await reservations(conversationId)).toBe(0);
}

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-turn-integrity');
  bot = await createBot(sql, org.id, { slug: 'integrity', model: 'gpt-4o-mini' });
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('an answer past 32,000 characters', () => {
  it('chat/completions, streamed: sends and stores the first 32,000 as length, and meters the turn', async () => {
    stub.answerChat(longScript());
    const response = await complete({ messages: question(), stream: true, user: 'long-streamed-integrity' });
    expect(response.status).toBe(200);
    const conversation = response.headers.get('x-conversation-id')!;
    const events = parseSse(await response.text());
    expect(events.at(-1)!.data).toBe('[DONE]');
    type Chunk = { choices: { delta: { content?: string }; finish_reason: string | null }[] };
    const chunks = events.slice(0, -1).map((event) => event.data as Chunk);
    expect(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join('')).toBe(KEPT);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
    await expectCutAndMetered(conversation);
  });

  it('chat/completions, not streamed: 200 with the first 32,000 and finish reason length', async () => {
    stub.answerChat(longScript());
    const response = await complete({ messages: question(), user: 'long-whole-integrity' });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.choices[0].finish_reason).toBe('length');
    expect(body.choices[0].message.content).toBe(KEPT);
    const conversation = response.headers.get('x-conversation-id')!;
    await expectCutAndMetered(conversation);
    const [answer] = await answers(conversation);
    expect(body.usage).toMatchObject({ prompt_tokens: answer.tokens_in, completion_tokens: answer.tokens_out });
  });

  it('counts characters as the database does (code points): 32,000 emoji are kept, not 16,000, and taken back', async () => {
    stub.answerChat({ content: Array.from({ length: 330 }, () => '\u{1F600}'.repeat(100)), dropAfter: 325 });
    const response = await complete({ messages: question('Emoji, please.'), user: 'emoji-integrity' });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: '\u{1F600}'.repeat(32000) } });
    const conversation = response.headers.get('x-conversation-id')!;
    const stored = () =>
      sql<{ chars: number }[]>`
        select length(content) as chars from public.messages where conversation_id = ${conversation} order by id`;
    expect(await stored()).toEqual([{ chars: 14 }, { chars: 32000 }]);

    // An OpenAI client sends the answer back as history (64,000 UTF-16 units), and a question of 8,000 emoji. The
    // first turn's tokens are moved out of the end user's 24 hours, whose budget (20261123012900) they exhaust on
    // this Free org.
    await sql`update public.usage_events set created_at = now() - interval '25 hours' where conversation_id = ${conversation}`;
    stub.answerChat({ content: 'Fewer emoji now.' });
    const next = await complete({
      messages: [
        ...question('Emoji, please.'),
        body.choices[0].message,
        { role: 'user', content: '\u{1F642}'.repeat(8000) },
      ],
      user: 'emoji-integrity',
    });
    expect([next.status, (await next.json()).choices?.[0].message.content]).toEqual([200, 'Fewer emoji now.']);
    expect(next.headers.get('x-conversation-id')).toBe(conversation);
    expect(await stored()).toEqual([{ chars: 14 }, { chars: 32000 }, { chars: 8000 }, { chars: 16 }]);
  });

  it('web chat: streams the first 32,000, then done with length', async () => {
    stub.answerChat(longScript());
    const response = await web('Draw me a long line on the web, please.');
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    const text = events.filter((event) => event.event === 'delta').map((event) => (event.data as { text: string }).text).join('');
    expect(text).toBe(KEPT);
    expect(events.at(-1)).toMatchObject({ event: 'done', data: { finish_reason: 'length' } });
    await expectCutAndMetered(conversation);
  });

  it('Telegram: sends the first 32,000 (in Telegram-sized messages) and stores them as length', async () => {
    const secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
    telegram.reset();
    stub.answerChat(longScript());
    const response = await fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
      body: JSON.stringify({
        update_id: 284_001,
        message: {
          message_id: 1,
          date: 1_700_000_000,
          chat: { id: 284_001, type: 'private' },
          from: { id: 284_001, is_bot: false, first_name: 'Lin' },
          text: 'Draw me a long line on Telegram, please.',
        },
      }),
    });
    expect(response.status).toBe(200);
    await response.text();
    const sent = telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200);
    expect(sent.length).toBeGreaterThan(1);
    // Telegram's split may trim the line breaks it splits at.
    expect(sent.map((call) => String(call.body.text)).join('').replaceAll('\n', '')).toBe(KEPT.replaceAll('\n', ''));
    const [{ id: conversation }] = await sql<{ id: string }[]>`
      select id from public.conversations where bot_id = ${bot} and channel = 'telegram'`;
    await expectCutAndMetered(conversation);
  });
});

describe('a U+0000 in the model\'s text', () => {
  it('is dropped from what is sent and stored, and the turn is metered with the provider\'s counts', async () => {
    stub.answerChat({ content: ['We ship', '\u0000', ' in two\u0000 days.'], usage: { prompt_tokens: 321, completion_tokens: 12 } });
    const response = await complete({ messages: question('How fast do you ship?'), user: 'nul-integrity' });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.choices[0].message.content).toBe('We ship in two days.');
    const conversation = response.headers.get('x-conversation-id')!;
    expect(await answers(conversation)).toEqual([
      { content: 'We ship in two days.', finish_reason: 'stop', tokens_in: 321, tokens_out: 12 },
    ]);
    expect(await chatUsage(conversation)).toEqual([{ tokens_in: 321, tokens_out: 12 }]);
  });
});

describe('a turn chat_finish refuses', () => {
  it('is metered all the same, and the client is told the turn failed', async () => {
    stub.answerChat({ content: ['We', ' open', ' at', ' nine.'], delayMs: 300, usage: { prompt_tokens: 2000, completion_tokens: 900 } });
    const response = await web('When do you open? (refused-integrity)');
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('event: delta')) text += decoder.decode((await reader.read()).value, { stream: true });
    const conversation = (parseSse(text.slice(0, text.indexOf('\n\n') + 2))[0].data as { conversation_id: string }).conversation_id;
    // The question goes while the model answers: chat_finish then refuses to store an answer to nothing.
    await sql`delete from public.messages where conversation_id = ${conversation} and role = 'user'`;
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true });
    expect(parseSse(text).at(-1)).toMatchObject({ event: 'error', data: { code: 'internal_error' } });
    expect(await answers(conversation)).toEqual([]);
    expect(await chatUsage(conversation)).toEqual([{ tokens_in: 2000, tokens_out: 900 }]);
    expect(await reservations(conversation)).toBe(0);
  });
});

describe('a conversation of an end user or a call, named by id', () => {
  const messagesIn = async (conversationId: string) =>
    (await sql<{ n: number }[]>`select count(*)::int as n from public.messages where conversation_id = ${conversationId}`)[0].n;

  it('is refused to a turn naming no end user or another, changing nothing', async () => {
    stub.answerChat({ content: 'Your order ships tomorrow.' });
    const alice = await complete({ messages: question('Where is my order?'), user: 'alice-integrity' });
    expect(alice.status).toBe(200);
    await alice.text();
    const conversation = alice.headers.get('x-conversation-id')!;
    expect(await messagesIn(conversation)).toBe(2);

    for (const user of [undefined, 'mallory-integrity']) {
      const response = await complete({ messages: question('I want to talk to a human'), user }, { 'x-conversation-id': conversation });
      expect(response.status).toBe(422);
      expect((await response.json()).error).toMatchObject({
        code: 'invalid_request',
        message: 'the conversation belongs to another end user',
      });
    }
    expect(await messagesIn(conversation)).toBe(2);
    const [{ status }] = await sql<{ status: string }[]>`select status from public.conversations where id = ${conversation}`;
    expect(status).toBe('open');
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('is refused to a turn naming no call or another; the same call continues it', async () => {
    stub.answerChat({ content: 'Hello, how can I help?' }, { content: 'Still here.' });
    const call = (id: string | undefined, headers: Record<string, string> = {}) =>
      complete({ messages: question('Hello?'), ...(id ? { call: { id } } : {}) }, headers);
    const first = await call('call-integrity-1');
    expect(first.status).toBe(200);
    await first.text();
    const conversation = first.headers.get('x-conversation-id')!;

    for (const id of [undefined, 'call-integrity-2']) {
      const response = await call(id, { 'x-conversation-id': conversation, 'x-chat-channel': 'voice' });
      expect(response.status).toBe(422);
      expect((await response.json()).error.message).toBe('the conversation belongs to another end user');
    }
    expect(await messagesIn(conversation)).toBe(2);
    const same = await call('call-integrity-1', { 'x-conversation-id': conversation });
    expect(same.status).toBe(200);
    await same.text();
    expect(await messagesIn(conversation)).toBe(4);
  });
});

describe('two turns at once in one conversation', () => {
  it('gives the next turn a history with each answer right after its question', async () => {
    stub.answerChat({ content: 'Hello there.' });
    const opening = parseSse(await (await web('Hello! (concurrent-integrity)')).text());
    const conversation = (opening[0].data as { conversation_id: string }).conversation_id;

    // Both questions are stored before either answer: Q1, Q2, A1, A2.
    stub.answerChat(
      { content: ['First', ' answer.'], delayMs: 400 },
      { content: ['Second', ' answer.'], delayMs: 400 },
    );
    await Promise.all([web('First question?', conversation), web('Second question?', conversation)].map(async (response) =>
      (await response).text()
    ));
    const stored = await sql<{ id: string; role: string; content: string; reply_to_message_id: string | null }[]>`
      select id, role::text, content, reply_to_message_id from public.messages
      where conversation_id = ${conversation} order by id`;
    expect(stored.slice(2).map((m) => m.role)).toEqual(['user', 'user', 'assistant', 'assistant']);
    // Each answer recorded against its question, whichever finished first.
    const questions = stored.slice(2, 4);
    const answerTo = (questionId: string) => stored.find((m) => m.reply_to_message_id === questionId)!.content;
    expect(questions.map((q) => [q.content, answerTo(q.id)]).sort()).toEqual([
      ['First question?', expect.any(String)],
      ['Second question?', expect.any(String)],
    ]);

    stub.answerChat({ content: 'Third answer.' });
    await (await web('Third question?', conversation)).text();
    const history = stub.chatRequests.at(-1)!.messages
      .filter((m) => m.role === 'user' || m.role === 'assistant')
      .map((m) => m.content);
    expect(history).toEqual([
      'Hello! (concurrent-integrity)',
      'Hello there.',
      ...questions.flatMap((q) => [q.content, answerTo(q.id)]),
      'Third question?',
    ]);
  });
});

describe('asks a bot cannot meet', () => {
  const refused: [string, Record<string, unknown>][] = [
    ['n', { n: 2 }],
    ['logprobs', { logprobs: true }],
    ['top_logprobs', { top_logprobs: 3 }],
    ['response_format', { response_format: { type: 'json_object' } }],
    ['response_format', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }],
    ['tool_choice', { tool_choice: 'required' }],
    ['tool_choice', { tool_choice: { type: 'function', function: { name: 'lookup_order' } } }],
    ['tool_choice', { tool_choice: { type: 'custom', custom: { name: 'lookup_order' } } }],
    ['tool_choice', {
      tool_choice: { type: 'allowed_tools', allowed_tools: { mode: 'required', tools: [{ type: 'function', function: { name: 'lookup_order' } }] } },
    }],
  ];

  it.each(refused)('refuses %s with 400 unsupported_parameter in OpenAI\'s shape, storing nothing', async (param, ask) => {
    const user = `unsupported-${param}-integrity`;
    const response = await complete({ messages: question(), user, ...ask });
    expect(response.status).toBe(400);
    const body = await response.json();
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_parameter', param });
    expect(body.error.message).toContain(param);
    expect(stub.chatRequests).toHaveLength(0);
    const conversations = await sql`select 1 from public.conversations where bot_id = ${bot} and external_user_id = ${user}`;
    expect(conversations).toHaveLength(0);
  });

  it('answers what asks for one text answer: tools with tool_choice absent, auto, none or allowed_tools in mode auto, n 1, a text format', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup_order', parameters: { type: 'object', properties: {} } } }];
    const allowedAuto = { type: 'allowed_tools', allowed_tools: { mode: 'auto', tools: [{ type: 'function', function: { name: 'lookup_order' } }] } };
    for (const ask of [{ tools }, { tools, tool_choice: 'auto' }, { tools, tool_choice: 'none' }, { tools, tool_choice: allowedAuto }, {
      n: 1,
      logprobs: false,
      response_format: { type: 'text' },
    }]) {
      stub.answerChat({ content: 'Fine.' });
      const response = await complete({ messages: question('Just text, please.'), user: 'accepted-integrity', ...ask });
      expect(response.status).toBe(200);
      expect((await response.json()).choices[0].message.content).toBe('Fine.');
    }
  });
});
