/**
 * An embeddings provider that fails (a local server speaking OpenAI's wire
 * format answering 500, 503 or 429; no retries, OPENAI_MAX_RETRIES=0) before
 * the model is asked: the question is still answered, from a full-text search
 * of the documents (the model's prompt carries the source the words found),
 * on every entry point: web chat, chat/completions (streamed and not) and
 * Telegram. The failed embedding meters nothing; the chat is metered as ever;
 * the function logs that it answered without the vector search.
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
let key: { id: string; key: string };
let concierge: string;
let telegramBot: string;

const QUESTION = 'How long does delivery take?';
const SOURCE = 'Delivery takes two working days.';
const ANSWER = 'Delivery takes two working days [1].';
const FALLBACK_LOG = 'answering from a full-text search only';

const complete = (body: Record<string, unknown>) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'concierge', messages: [{ role: 'user', content: QUESTION }], ...body }),
  });

const usageOf = (conversationId: string) =>
  sql<{ kind: string; tokens_in: number }[]>`
    select kind::text, tokens_in from public.usage_events where conversation_id = ${conversationId} order by id`;

const assistantAnswers = (conversationId: string) =>
  sql<{ content: string; finish_reason: string }[]>`
    select content, finish_reason from public.messages
    where conversation_id = ${conversationId} and role = 'assistant' order by id`;

/** The model was asked with the document the full-text search found among its sources. */
function expectSourceInPrompt(): void {
  expect(stub.chatRequests).toHaveLength(1);
  expect(JSON.stringify(stub.chatRequests[0].messages)).toContain(SOURCE);
}

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-embedding-failure');
  concierge = await createBot(sql, org.id, { slug: 'concierge', model: 'gpt-4o-mini' });
  telegramBot = await createBot(sql, org.id, { slug: 'tg', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'delivery.pdf', [SOURCE, 'Our shop is open from 9 am to 5 pm.']);
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('chat/completions when the question cannot be embedded', () => {
  it('answers 200 from a full-text search (not a 500), meters no embedding and logs the fallback', async () => {
    stub.failNext({ status: 500 });
    stub.answerChat({ content: ANSWER, usage: { prompt_tokens: 300, completion_tokens: 9 } });
    const response = await complete({ user: 'caller-500' });
    expect(response.status).toBe(200);
    expect((await response.json()).choices[0].message.content).toBe(ANSWER);
    expect(stub.requests.map((request) => request.status)).toEqual([500]);
    expectSourceInPrompt();

    const conversation = response.headers.get('x-conversation-id')!;
    expect(await assistantAnswers(conversation)).toEqual([{ content: ANSWER, finish_reason: 'stop' }]);
    expect(await usageOf(conversation)).toEqual([{ kind: 'chat', tokens_in: 300 }]);
    expect(stack.logs.some((line) => line.includes(conversation) && line.includes(FALLBACK_LOG))).toBe(true);
  });

  it('streams the answer to its [DONE] when the provider is rate limited', async () => {
    stub.failNext({ status: 429, headers: { 'retry-after': '20' }, message: 'Rate limit reached for requests' });
    stub.answerChat({ content: ANSWER });
    const response = await complete({ stream: true, user: 'caller-429' });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    expect(events.at(-1)!.data).toBe('[DONE]');
    const text = events
      .slice(0, -1)
      .map((e) => (e.data as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '')
      .join('');
    expect(text).toBe(ANSWER);
    expectSourceInPrompt();
    expect(await usageOf(response.headers.get('x-conversation-id')!)).toMatchObject([{ kind: 'chat' }]);
  });
});

describe('web chat when the question cannot be embedded', () => {
  it('streams the answer with its citation to done', async () => {
    stub.failNext({ status: 503 });
    stub.answerChat({ content: ANSWER });
    const response = await fetch(`${stack.functionsUrl}/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bot_id: concierge, message: QUESTION }),
    });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    expect(events.map((e) => e.event).filter((e) => e !== 'delta')).toEqual(['conversation', 'citations', 'usage', 'done']);
    const citations = (events.find((e) => e.event === 'citations')!.data as { citations: { document_name?: string }[] })
      .citations;
    expect(citations).toHaveLength(1);
    expect(JSON.stringify(citations)).toContain('delivery.pdf');
    expectSourceInPrompt();
    const conversation = (events[0].data as { conversation_id: string }).conversation_id;
    expect(await usageOf(conversation)).toMatchObject([{ kind: 'chat' }]);
  });
});

describe('Telegram when the question cannot be embedded', () => {
  it('sends the answer to the chat', async () => {
    const secret = await connectTelegram({ stack, sql, telegram }, telegramBot, org.tokens.admin);
    telegram.reset();
    stub.failNext({ status: 500 });
    stub.answerChat({ content: ANSWER });
    const response = await fetch(`${stack.functionsUrl}/chat/telegram/${telegramBot}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
      body: JSON.stringify({
        update_id: 6161,
        message: {
          message_id: 610,
          date: 1_700_000_000,
          chat: { id: 999, type: 'private' },
          from: { id: 999, is_bot: false, first_name: 'Em' },
          text: QUESTION,
        },
      }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ ok: true, handled: true });
    expectSourceInPrompt();
    const sent = telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200);
    expect(sent.map((call) => call.body.text)).toEqual([ANSWER]);
    const usage = await sql<{ kind: string }[]>`
      select kind::text from public.usage_events where bot_id = ${telegramBot} order by id`;
    expect(usage).toEqual([{ kind: 'chat' }]);
  });
});
