/**
 * Chat fixes from a channel-parity review, over HTTP against the stubbed model:
 * - a `transfer` bot's no-answer that runs on to 32,000 characters is cut
 *   short of that by its contact's room: stored, sent and escalated with the
 *   contact, finish reason `length` (it was cut at 32,000, the contact
 *   appended past the limit, and chat_finish refused the turn: 500);
 * - a NUL in chat/completions' `user`, last message or `call.id`, or in web
 *   chat's `message`, is a bad body (400), counted against the key's limit
 *   like any other, and stores nothing (chat_prepare failed it with 22021).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_ANSWER_CHARS, NO_ANSWER_TEXT } from '../../functions/_shared/chat/index.ts';
import { noAnswerContact, noAnswerContactRoom } from '../../functions/_shared/chat/no-answer-contact.ts';
import type { Sql } from '../../functions/_shared/db.ts';
import { codePointLength } from '../../functions/_shared/text/code-points.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import { parseSse } from '../support/sse.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;
let key: { id: string; key: string };
let bot: string;

const CONTACT = 'parity-desk@example.com';
const LINE = `${'-'.repeat(64)}\n`;
/** The no-answer sentence, then 600 lines of 64 dashes (38,400 characters): the model's endless closing. */
const LONG_NO_ANSWER = [`${NO_ANSWER_TEXT}\n`, ...Array.from({ length: 600 }, () => LINE)];
const KEPT_CHARS = MAX_ANSWER_CHARS - noAnswerContactRoom(CONTACT);
const EXPECTED = `${LONG_NO_ANSWER.join('').slice(0, KEPT_CHARS)}${noAnswerContact('en', CONTACT)}`;

const complete = (apiKey: string, body: Record<string, unknown>) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'parity-transfer', ...body }),
  });

const question = (content = 'Where is my parcel? (parity)') => [{ role: 'user', content }];

/** What the org holds: a refused request must change none of it. */
const counts = async () =>
  (await sql<{ conversations: number; messages: number; usage: number }[]>`
    select (select count(*)::int from public.conversations where org_id = ${org.id}) as conversations,
           (select count(*)::int from public.messages where org_id = ${org.id}) as messages,
           (select count(*)::int from public.usage_events where org_id = ${org.id}) as usage`)[0];

/** The answer stored as sent, escalated with the contact, metered, its reservation given back. */
async function expectStoredAndEscalated(conversationId: string, sent: string): Promise<void> {
  const [answer] = await sql<{ content: string; finish_reason: string; tokens_out: number }[]>`
    select content, finish_reason, tokens_out from public.messages
    where conversation_id = ${conversationId} and role = 'assistant'`;
  expect(answer).toMatchObject({ content: sent, finish_reason: 'length' });
  expect(answer.tokens_out).toBeGreaterThan(0);
  const [conversation] = await sql<{ status: string; reservations: number; usage: number; escalations: number }[]>`
    select c.status,
           (select count(*)::int from private.chat_quota_reservations r where r.conversation_id = c.id) as reservations,
           (select count(*)::int from public.usage_events u where u.conversation_id = c.id and u.kind = 'chat') as usage,
           (select count(*)::int from public.events e
             where e.type = 'conversation.escalated' and e.payload ->> 'conversation_id' = c.id::text) as escalations
    from public.conversations c where c.id = ${conversationId}`;
  expect(conversation).toEqual({ status: 'escalated', reservations: 0, usage: 1, escalations: 1 });
}

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'chat-channel-parity');
  bot = await createBot(sql, org.id, {
    slug: 'parity-transfer',
    model: 'gpt-4o-mini',
    escalationAction: 'transfer',
    managerContact: CONTACT,
  });
  key = await createApiKey(sql, org);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe("a transfer bot's no-answer near 32,000 characters", () => {
  it('keeps room for the contact: under 32,000 with it, sent as stored, escalated (not streamed)', async () => {
    expect(EXPECTED.endsWith(`${CONTACT}.`)).toBe(true);
    expect(codePointLength(EXPECTED)).toBeLessThanOrEqual(MAX_ANSWER_CHARS);
    stub.answerChat({ content: LONG_NO_ANSWER });
    const response = await complete(key.key, { messages: question(), user: 'transfer-whole-parity' });
    expect(response.status).toBe(200);
    const body = await response.json();
    expect(body.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: EXPECTED } });
    await expectStoredAndEscalated(response.headers.get('x-conversation-id')!, EXPECTED);
  });

  it('streamed: the chunks add up to what is stored, the contact last', async () => {
    stub.answerChat({ content: LONG_NO_ANSWER });
    const response = await complete(key.key, { messages: question(), stream: true, user: 'transfer-streamed-parity' });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    expect(events.at(-1)!.data).toBe('[DONE]');
    type Chunk = { choices: { delta: { content?: string }; finish_reason: string | null }[] };
    const chunks = events.slice(0, -1).map((event) => event.data as Chunk);
    expect(chunks.map((chunk) => chunk.choices[0].delta.content ?? '').join('')).toBe(EXPECTED);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
    await expectStoredAndEscalated(response.headers.get('x-conversation-id')!, EXPECTED);
  });

  it('web chat: the same answer, stored and escalated', async () => {
    stub.answerChat({ content: LONG_NO_ANSWER });
    const response = await fetch(`${stack.functionsUrl}/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bot_id: bot, message: 'Where is my parcel? (parity web)' }),
    });
    expect(response.status).toBe(200);
    const events = parseSse(await response.text());
    const done = events.at(-1)!;
    expect(done.event).toBe('done');
    expect(done.data).toMatchObject({ conversation_status: 'escalated', escalated: true });
    const text = events.filter((event) => event.event === 'delta').map((event) => (event.data as { text: string }).text).join('');
    expect(text).toBe(EXPECTED);
    const [{ conversation_id }] = await sql<{ conversation_id: string }[]>`
      select conversation_id from public.messages where id = ${(done.data as { message_id: number }).message_id}`;
    await expectStoredAndEscalated(conversation_id, EXPECTED);
  });
});

describe('a NUL in a chat body', () => {
  it("is a bad body on chat/completions, counted against the key: 20 with a limit of 3 a minute, the 4th on 429", async () => {
    const limited = await createApiKey(sql, org);
    await sql`update public.api_keys set rate_limit_per_minute = 3 where id = ${limited.id}`;
    const before = await counts();
    const bodies = [
      { messages: question(), user: 'nul\u0000user-parity' },
      { messages: question('Where is\u0000 my parcel?'), user: 'nul-question-parity' },
      { messages: question(), call: { id: 'call-\u0000-parity' } },
      { messages: [{ role: 'user', content: [{ type: 'text', text: 'parts\u0000' }] }] },
    ];
    const statuses: number[] = [];
    const errors: { code: string; message: string }[] = [];
    for (let index = 0; index < 20; index += 1) {
      const response = await complete(limited.key, bodies[index % bodies.length]);
      statuses.push(response.status);
      errors.push((await response.json()).error);
    }
    expect(statuses.slice(0, 3)).toEqual([400, 400, 400]);
    expect(statuses.slice(3)).toEqual(Array.from({ length: 17 }, () => 429));
    expect(errors.slice(0, 3).map((error) => error.message)).toEqual([
      expect.stringContaining('user must not contain a NUL character'),
      expect.stringContaining('the last message must not contain a NUL character'),
      expect.stringContaining('call.id must not contain a NUL character'),
    ]);
    expect(errors[3].code).toBe('rate_limited');
    expect(await counts()).toEqual(before);
    // Neither the question embedded nor the model asked.
    expect(stub.requests).toHaveLength(0);
    expect(stub.chatRequests).toHaveLength(0);
  });

  it("is a bad body on web chat: 400 naming it, nothing stored", async () => {
    const before = await counts();
    const response = await fetch(`${stack.functionsUrl}/chat`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
      body: JSON.stringify({ bot_id: bot, message: 'Where is\u0000 my parcel? (parity web nul)' }),
    });
    expect(response.status).toBe(400);
    expect((await response.json()).error.message).toContain('message must not contain a NUL character');
    expect(await counts()).toEqual(before);
  });
});
