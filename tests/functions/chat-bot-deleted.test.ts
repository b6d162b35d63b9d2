/**
 * chat/completions against review findings, through the embedded stack and a
 * local OpenAI wire-format server: a bot deleted while it streams an answer
 * leaves the turn metered (no message, no reservation, the stream ending with
 * `conversation_deleted`), and a history message over 32,000 characters or
 * more than 1,000 messages are refused 400 before anything is stored.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;
let key: { id: string; key: string };

const complete = (body: Record<string, unknown>) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

const chatUsage = () =>
  sql<{ tokens_in: number; tokens_out: number; api_key_id: string | null; bot_id: string | null; conversation_id: string | null }[]>`
    select tokens_in, tokens_out, api_key_id, bot_id, conversation_id from public.usage_events
    where org_id = ${org.id} and kind = 'chat' order by id`;

const storedCounts = async () => {
  const [row] = await sql<{ conversations: number; messages: number; reservations: number }[]>`
    select (select count(*)::int from public.conversations where org_id = ${org.id}) as conversations,
           (select count(*)::int from public.messages where org_id = ${org.id}) as messages,
           (select count(*)::int from private.chat_quota_reservations where org_id = ${org.id}) as reservations`;
  return row;
};

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-bot-deleted');
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('a bot deleted while it answers', () => {
  it('meters the turn once to the org and the key, stores no answer, and ends the stream with conversation_deleted', async () => {
    const bot = await createBot(sql, org.id, { slug: 'deleted-mid-answer', model: 'gpt-4o-mini' });
    stub.answerChat({
      content: 'Delivery takes two working days, and we ship to every town in the country.',
      delayMs: 150,
      usage: { prompt_tokens: 321, completion_tokens: 17 },
    });
    const response = await complete({ model: 'deleted-mid-answer', messages: [{ role: 'user', content: 'Delivery?' }], stream: true });
    expect(response.status).toBe(200);
    const reader = response.body!.getReader();
    let received = '';
    while (!received.includes('Delivery')) received += new TextDecoder().decode((await reader.read()).value);
    await sql`delete from public.bots where id = ${bot}`;
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      received += new TextDecoder().decode(chunk.value);
    }
    expect(received).toContain('"code":"conversation_deleted"');
    expect(received).not.toContain('[DONE]');
    expect(await chatUsage()).toEqual([
      { tokens_in: 321, tokens_out: 17, api_key_id: key.id, bot_id: null, conversation_id: null },
    ]);
    expect(await storedCounts()).toEqual({ conversations: 0, messages: 0, reservations: 0 });
  });
});

describe('history limits', () => {
  it('refuses a history message over 32,000 characters and over 1,000 messages with 400, storing nothing', async () => {
    await createBot(sql, org.id, { slug: 'limits', model: 'gpt-4o-mini' });
    const before = await storedCounts();
    const long = await complete({
      model: 'limits',
      messages: [{ role: 'user', content: 'x'.repeat(32_001) }, { role: 'user', content: 'And now?' }],
    });
    expect(long.status).toBe(400);
    expect(await long.json()).toMatchObject({
      error: { type: 'invalid_request_error', message: expect.stringContaining('a message has at most 32000 characters') },
    });
    const many = await complete({
      model: 'limits',
      messages: Array.from({ length: 1001 }, () => ({ role: 'user', content: 'hi' })),
    });
    expect(many.status).toBe(400);
    expect(await many.json()).toMatchObject({ error: { message: expect.stringContaining('at most 1000 entries') } });
    expect(await storedCounts()).toEqual(before);
    expect(stub.chatRequests).toHaveLength(0);
  });

  it('answers at once over a 32,000-character history word without spaces, leaving it out of the prompt', async () => {
    await createBot(sql, org.id, { slug: 'long-word', model: 'gpt-4o-mini' });
    stub.answerChat({ content: 'Two working days.' });
    const started = performance.now();
    const response = await complete({
      model: 'long-word',
      messages: [
        { role: 'user', content: 'q'.repeat(1000) + 'zx'.repeat(15_500) },
        { role: 'assistant', content: 'Noted.' },
        { role: 'user', content: 'How long does delivery take?' },
      ],
    });
    expect(response.status).toBe(200);
    expect(performance.now() - started).toBeLessThan(3000);
    const sent = stub.chatRequests[0].messages.map((message) => String(message.content).length);
    expect(Math.max(...sent.slice(1))).toBeLessThan(1000);
  });
});
