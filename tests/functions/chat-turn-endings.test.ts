/**
 * How a chat turn ends when it does not end the ordinary way, through the
 * `openai` SDK against a local wire-format server: a client that goes away
 * mid-answer (stored as interrupted, metered), a model that answers nothing
 * (stored empty with its finish reason, metered, told as OpenAI tells it),
 * usage metered to the key that called, limits checked at the boundary
 * (400), and a Telegram update redelivered after a failed send (one turn).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { connectTelegram, resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;
let keys: { id: string; key: string }[];
let telegramBot: string;
let concierge: string;

const complete = (body: Record<string, unknown>, key = keys[0].key, signal?: AbortSignal) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    signal,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'concierge', ...body }),
  });

const question = (content = 'How long does delivery take?') => [{ role: 'user', content }];

interface StoredAnswer {
  content: string;
  finish_reason: string | null;
  tokens_in: number;
  tokens_out: number;
}

/** The conversation's answer once chat_finish stored it (a turn whose client left finishes in the background). */
async function storedAnswer(conversationId: string, timeoutMs = 10_000): Promise<StoredAnswer | undefined> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [answer] = await sql<StoredAnswer[]>`
      select content, finish_reason, tokens_in, tokens_out from public.messages
      where conversation_id = ${conversationId} and role = 'assistant'`;
    if (answer || Date.now() > until) return answer;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const chatUsage = (conversationId: string) =>
  sql<{ tokens_in: number; tokens_out: number; api_key_id: string | null }[]>`
    select tokens_in, tokens_out, api_key_id from public.usage_events
    where conversation_id = ${conversationId} and kind = 'chat' order by id`;

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-endings');
  concierge = await createBot(sql, org.id, { slug: 'concierge', model: 'gpt-4o-mini' });
  telegramBot = await createBot(sql, org.id, { slug: 'tg', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'hours.pdf', [
    'Delivery takes two working days.',
    'Opening hours are from 9 am to 5 pm on weekdays.',
  ]);
  keys = [await createApiKey(sql, org), await createApiKey(sql, org)];
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('a client that goes away mid-answer', () => {
  it('stores what was streamed as interrupted and meters the prompt and the streamed tokens', async () => {
    stub.answerChat({
      content: 'Delivery takes two working days, and we ship to every town in the country [1].',
      delayMs: 200,
      usage: { prompt_tokens: 500, completion_tokens: 20 },
    });
    const abort = new AbortController();
    const response = await complete({ messages: question(), stream: true, user: 'leaves-early' }, keys[0].key, abort.signal);
    expect(response.status).toBe(200);
    const conversation = response.headers.get('x-conversation-id')!;
    const reader = response.body!.getReader();
    let received = '';
    while (!received.includes('Delivery')) received += new TextDecoder().decode((await reader.read()).value);
    abort.abort();

    const answer = await storedAnswer(conversation);
    expect(answer).toMatchObject({ finish_reason: 'interrupted' });
    expect(answer!.content.startsWith('Delivery')).toBe(true);
    expect(answer!.content.length).toBeLessThan('Delivery takes two working days, and we ship'.length);
    // No usage came from the server (it comes at the end): the prompt and the streamed words, counted by us.
    expect(answer!.tokens_in).toBeGreaterThan(50);
    expect(answer!.tokens_out).toBeGreaterThan(0);
    expect(await chatUsage(conversation)).toEqual([
      { tokens_in: answer!.tokens_in, tokens_out: answer!.tokens_out, api_key_id: keys[0].id },
    ]);
  });
});

describe('a model that answers nothing', () => {
  it('answers 200 with empty content and the finish reason, and stores and meters the turn', async () => {
    stub.answerChat({ content: [], finishReason: 'content_filter', usage: { prompt_tokens: 400, completion_tokens: 0 } });
    const response = await complete({ messages: question() });
    expect(response.status).toBe(200);
    const conversation = response.headers.get('x-conversation-id')!;
    expect(conversation).toMatch(/^[0-9a-f-]{36}$/);
    const body = await response.json();
    expect(body.choices[0]).toMatchObject({ message: { content: '' }, finish_reason: 'content_filter' });
    expect(body.usage).toMatchObject({ prompt_tokens: 400, completion_tokens: 0 });
    expect(await storedAnswer(conversation)).toEqual({ content: '', finish_reason: 'content_filter', tokens_in: 400, tokens_out: 0 });
    expect(await chatUsage(conversation)).toMatchObject([{ tokens_in: 400, tokens_out: 0 }]);
  });

  it('streams the finish reason and [DONE], not an error, when the model spent its budget', async () => {
    stub.answerChat({ content: [], finishReason: 'length', usage: { prompt_tokens: 400, completion_tokens: 512 } });
    const response = await complete({ messages: question(), stream: true, stream_options: { include_usage: true } });
    const text = await response.text();
    expect(text).toContain('"finish_reason":"length"');
    expect(text).toContain('"completion_tokens":512');
    expect(text).not.toContain('"error"');
    expect(text.trim().endsWith('data: [DONE]')).toBe(true);
    const answer = await storedAnswer(response.headers.get('x-conversation-id')!);
    expect(answer).toEqual({ content: '', finish_reason: 'length', tokens_in: 400, tokens_out: 512 });
  });

  it('leaves an empty answer out of the next turn\'s history, on the web where the stored history is read', async () => {
    stub.answerChat({ content: [], finishReason: 'content_filter' }, { content: 'Two working days [1].' });
    const web = (body: Record<string, unknown>) =>
      fetch(`${stack.functionsUrl}/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
        body: JSON.stringify({ bot_id: concierge, ...body }),
      });
    const first = await (await web({ message: 'How long does delivery take?' })).text();
    expect(first).toContain('"finish_reason":"content_filter"');
    expect(first).not.toContain('event: delta');
    const conversationId = /"conversation_id":"([0-9a-f-]{36})"/.exec(first)![1];
    const second = await (await web({ message: 'And the opening hours?', conversation_id: conversationId })).text();
    expect(second).toContain('event: done');
    const history = stub.chatRequests[1].messages.slice(1, -1);
    expect(history).toEqual([{ role: 'user', content: 'How long does delivery take?' }]);
  });
});

describe('usage', () => {
  it('is metered to the key that calls, not the one that started the conversation', async () => {
    const first = await complete({ messages: question(), user: 'two-keys' }, keys[0].key);
    const conversation = first.headers.get('x-conversation-id')!;
    await first.text();
    const second = await complete({ messages: question('And the opening hours?'), user: 'two-keys' }, keys[1].key);
    expect(second.headers.get('x-conversation-id')).toBe(conversation);
    await second.text();
    expect((await chatUsage(conversation)).map((u) => u.api_key_id)).toEqual([keys[0].id, keys[1].id]);
    const embeddings = await sql<{ api_key_id: string }[]>`
      select api_key_id from public.usage_events where conversation_id = ${conversation} and kind = 'embedding' order by id`;
    expect(embeddings.map((u) => u.api_key_id)).toEqual([keys[0].id, keys[1].id]);
  });
});

describe('limits at the boundary', () => {
  it('answers a question over 8000 characters and a user over 200 with 400 invalid_request, nothing stored', async () => {
    const [{ n: before }] = await sql<{ n: number }[]>`select count(*)::int as n from public.messages where org_id = ${org.id}`;
    const long = await complete({ messages: question('x'.repeat(8001)) });
    expect(long.status).toBe(400);
    expect((await long.json()).error).toMatchObject({ code: 'invalid_request', type: 'invalid_request_error' });
    const user = await complete({ messages: question(), user: 'u'.repeat(201) });
    expect(user.status).toBe(400);
    expect((await user.json()).error.code).toBe('invalid_request');
    // The limits are on what is stored: trimmed, and only the last (the question) of the messages.
    const padded = await complete({
      messages: [{ role: 'assistant', content: 'y'.repeat(9000) }, ...question(` ${'x'.repeat(7990)} `)],
      user: ` ${'u'.repeat(200)} `,
    });
    expect(padded.status).toBe(200);
    await padded.text();
    const [{ n: after }] = await sql<{ n: number }[]>`select count(*)::int as n from public.messages where org_id = ${org.id}`;
    expect(after).toBe(before + 2);
  });
});

describe('Telegram redelivery', () => {
  it('runs the turn once, sends the stored answer again when the first send failed, and never twice', async () => {
    const secret = await connectTelegram({ stack, sql, telegram }, telegramBot, org.tokens.admin);
    const update = {
      update_id: 4242,
      message: {
        message_id: 420,
        date: 1_700_000_000,
        chat: { id: 777, type: 'private' },
        from: { id: 777, is_bot: false, first_name: 'Ann' },
        text: 'What are your opening hours?',
      },
    };
    const deliver = () =>
      fetch(`${stack.functionsUrl}/chat/telegram/${telegramBot}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify(update),
      });
    telegram.reset();
    stub.answerChat({ content: 'We are open from 9 am to 5 pm on weekdays [1].' });
    // sendChatAction and then sendMessage fail: the turn is stored, the answer not delivered.
    telegram.failNext({ errorCode: 500 }, { errorCode: 500 });
    const first = await deliver();
    expect(first.status).toBe(503);
    await first.text();
    const again = await deliver();
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ duplicate: true });
    const third = await deliver();
    expect(third.status).toBe(200);
    await third.text();

    expect(stub.chatRequests).toHaveLength(1);
    const counts = await sql<{ role: string; n: number }[]>`
      select m.role::text, count(*)::int as n from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.bot_id = ${telegramBot} group by m.role order by m.role`;
    expect(counts).toEqual([{ role: 'user', n: 1 }, { role: 'assistant', n: 1 }]);
    const usage = await sql<{ kind: string; n: number }[]>`
      select kind, count(*)::int as n from public.usage_events where bot_id = ${telegramBot} group by kind order by kind`;
    expect(usage).toEqual([{ kind: 'chat', n: 1 }, { kind: 'embedding', n: 1 }]);
    // Sent once, by the second delivery: the third (Telegram retrying a late 200) sends nothing more.
    const sent = telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200);
    expect(sent.map((call) => call.body.text)).toEqual(['We are open from 9 am to 5 pm on weekdays [1].']);
  });
});
