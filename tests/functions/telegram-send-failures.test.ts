/**
 * The Telegram webhook when Telegram does not take its reply (the Bot API
 * stub answering 429 with a retry_after over the client's 5 s, or a 5xx):
 * the webhook answers 503 `telegram_unavailable` with Retry-After (Telegram's
 * retry_after, else 10 s), never 500, and the update's claim is left so that
 * the redelivery does the right thing at once: a refusal not told gives the
 * claim back (the redelivery is refused and told, not held off 7 minutes by
 * 503 update_in_progress), an answer not sent stays linked (the redelivery
 * sends it, with no second model call). A reply Telegram refuses for good
 * (403 the user blocked the bot, 400 chat not found) is answered 200
 * `undeliverable: true` and its claim settled: Telegram does not redeliver
 * the update over and over (holding the bot's later updates), and a late
 * redelivery sends nothing.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { connectTelegram, resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;
let bot: string;
let secret: string;

const UNAVAILABLE = 'This assistant is not available right now. Please try again later.';
const ANSWER = 'We are open from 9 am to 5 pm on weekdays [1].';

const update = (updateId: number, text: string, chatId = 8801) => ({
  update_id: updateId,
  message: {
    message_id: updateId * 10,
    date: 1_700_000_000,
    chat: { id: chatId, type: 'private' },
    from: { id: chatId, is_bot: false, first_name: 'Ann' },
    text,
  },
});

const deliver = (body: unknown) =>
  fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
    body: JSON.stringify(body),
  });

async function answered(response: Response): Promise<{ status: number; retryAfter: string | null; body: unknown }> {
  return { status: response.status, retryAfter: response.headers.get('retry-after'), body: await response.json() };
}

interface Claim {
  leased: boolean;
  settled: boolean;
  answer_linked: boolean;
}

const claimOf = async (updateId: number): Promise<Claim | undefined> =>
  (await sql<Claim[]>`
    select coalesce(claimed_until > now(), false) as leased, claimed_until is null as settled, message_id is not null as answer_linked
    from private.telegram_updates where bot_id = ${bot} and update_id = ${updateId}`)[0];

const storedMessages = async () =>
  await sql<{ role: string; n: number }[]>`
    select m.role::text, count(*)::int as n from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.bot_id = ${bot} group by m.role order by m.role`;

/** One chat's stored messages, by role (each test below has its own chat). */
const chatMessages = async (chatId: number) =>
  await sql<{ role: string; n: number }[]>`
    select m.role::text, count(*)::int as n from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.bot_id = ${bot} and c.channel = 'telegram' and c.external_user_id = ${String(chatId)}
    group by m.role order by m.role`;

/** Every sendMessage Telegram was asked for, taken or not. */
const sendAttempts = () => telegram.calls.filter((call) => call.method === 'sendMessage').length;

const BLOCKED = { errorCode: 403, description: 'Forbidden: bot was blocked by the user' };
const CHAT_NOT_FOUND = { errorCode: 400, description: 'Bad Request: chat not found' };

const sentTexts = () =>
  telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200).map((call) => call.body.text);

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'telegram-send-failures');
  bot = await createBot(sql, org.id, { slug: 'telegram-send-failures', model: 'gpt-4o-mini' });
  await createDocument(sql, org.id, 'telegram-send-failures-hours.pdf', ['Opening hours are from 9 am to 5 pm on weekdays.']);
  secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(async () => {
  resetStubs({ stub, telegram });
  await sql`update public.bots set enabled = true where id = ${bot}`;
});

describe('a refusal Telegram does not take', () => {
  it('answers 503 with Telegram\'s retry_after and gives the claim back: the redelivery is refused and told at once', async () => {
    await sql`update public.bots set enabled = false where id = ${bot}`;
    telegram.failNext({ errorCode: 429, retryAfter: 8 });
    expect(await answered(await deliver(update(51, 'Are you open on Sunday?')))).toMatchObject({
      status: 503,
      retryAfter: '8',
      body: { error: { code: 'telegram_unavailable' } },
    });
    // Given back: neither leased (a redelivery would get 503 update_in_progress for 7 minutes) nor settled.
    expect(await claimOf(51)).toEqual({ leased: false, settled: false, answer_linked: false });

    expect(await answered(await deliver(update(51, 'Are you open on Sunday?')))).toMatchObject({
      status: 200,
      body: { handled: false, refused: 'bot_disabled' },
    });
    expect(await claimOf(51)).toEqual({ leased: false, settled: true, answer_linked: false });
    // Our 200 came late: Telegram's next try tells the chat nothing more.
    expect(await answered(await deliver(update(51, 'Are you open on Sunday?')))).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });

    expect(sentTexts()).toEqual([UNAVAILABLE]);
    expect(stub.chatRequests).toHaveLength(0);
    expect(await storedMessages()).toEqual([]);
  });

  it('answers 503 with a short Retry-After when Telegram gives none (a 502), for /start too', async () => {
    await sql`update public.bots set enabled = false where id = ${bot}`;
    telegram.failNext({ errorCode: 502 });
    expect(await answered(await deliver(update(52, 'Hello?')))).toMatchObject({
      status: 503,
      retryAfter: '10',
      body: { error: { code: 'telegram_unavailable' } },
    });
    expect(await claimOf(52)).toEqual({ leased: false, settled: false, answer_linked: false });

    telegram.failNext({ errorCode: 502 });
    expect(await answered(await deliver(update(53, '/start')))).toMatchObject({
      status: 503,
      retryAfter: '10',
      body: { error: { code: 'telegram_unavailable' } },
    });
    expect(await claimOf(53)).toBeUndefined();
    expect(sentTexts()).toEqual([]);
    expect(await storedMessages()).toEqual([]);
  });
});

describe('an answer Telegram does not take', () => {
  it('answers 503 with Retry-After and keeps the answer linked: redeliveries send it, the model is asked once', async () => {
    stub.answerChat({ content: ANSWER });
    // sendChatAction fails (only logged), then sendMessage: 429 asking for 30 s.
    telegram.failNext({ errorCode: 500 }, { errorCode: 429, retryAfter: 30 });
    expect(await answered(await deliver(update(61, 'What are your opening hours?')))).toMatchObject({
      status: 503,
      retryAfter: '30',
      body: { error: { code: 'telegram_unavailable' } },
    });
    expect(await claimOf(61)).toEqual({ leased: false, settled: true, answer_linked: true });

    // The stored answer's resend fails too: 503 again, still linked.
    telegram.failNext({ errorCode: 502 });
    expect(await answered(await deliver(update(61, 'What are your opening hours?')))).toMatchObject({
      status: 503,
      retryAfter: '10',
      body: { error: { code: 'telegram_unavailable' } },
    });
    expect(await claimOf(61)).toEqual({ leased: false, settled: true, answer_linked: true });

    expect(await answered(await deliver(update(61, 'What are your opening hours?')))).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });
    expect(await claimOf(61)).toEqual({ leased: false, settled: true, answer_linked: false });
    expect(await answered(await deliver(update(61, 'What are your opening hours?')))).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });

    expect(sentTexts()).toEqual([ANSWER]);
    expect(stub.chatRequests).toHaveLength(1);
    expect(await storedMessages()).toEqual([{ role: 'user', n: 1 }, { role: 'assistant', n: 1 }]);
    const [usage] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.usage_events where bot_id = ${bot} and kind = 'chat'`;
    expect(usage.n).toBe(1);
  });
});

describe('a reply Telegram refuses for good', () => {
  it('an answer to a user who blocked the bot: 200 undeliverable, settled and unlinked, stored once, never resent', async () => {
    stub.answerChat({ content: ANSWER });
    // sendChatAction (only logged), then sendMessage: both refused, as for a user who blocked the bot.
    telegram.failNext(BLOCKED, BLOCKED);
    const first = await answered(await deliver(update(71, 'What are your opening hours?', 8871)));
    expect(first).toMatchObject({ status: 200, body: { ok: true, handled: false, undeliverable: true } });
    expect(first.body).toHaveProperty('conversation_id');
    expect(await claimOf(71)).toEqual({ leased: false, settled: true, answer_linked: false });

    // Our 200 came late: the redelivery neither sends nor asks the model again.
    expect(await answered(await deliver(update(71, 'What are your opening hours?', 8871)))).toMatchObject({
      status: 200,
      body: { handled: false, duplicate: true },
    });
    expect(sendAttempts()).toBe(1);
    expect(sentTexts()).toEqual([]);
    expect(stub.chatRequests).toHaveLength(1);
    // The turn stays stored.
    expect(await chatMessages(8871)).toEqual([{ role: 'user', n: 1 }, { role: 'assistant', n: 1 }]);
  });

  it('a stored answer whose resend is refused for good: 200 undeliverable and unlinked, the next redelivery sends nothing', async () => {
    stub.answerChat({ content: ANSWER });
    telegram.failNext({ errorCode: 500 }, { errorCode: 429, retryAfter: 30 });
    expect(await answered(await deliver(update(72, 'What are your opening hours?', 8872)))).toMatchObject({
      status: 503,
      body: { error: { code: 'telegram_unavailable' } },
    });
    expect(await claimOf(72)).toEqual({ leased: false, settled: true, answer_linked: true });

    telegram.failNext(BLOCKED);
    expect(await answered(await deliver(update(72, 'What are your opening hours?', 8872)))).toMatchObject({
      status: 200,
      body: { handled: false, duplicate: true, undeliverable: true },
    });
    expect(await claimOf(72)).toEqual({ leased: false, settled: true, answer_linked: false });
    expect(await answered(await deliver(update(72, 'What are your opening hours?', 8872)))).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });
    expect(sendAttempts()).toBe(2);
    expect(sentTexts()).toEqual([]);
    expect(stub.chatRequests).toHaveLength(1);
  });

  it('a refusal to a chat Telegram does not know: 200 undeliverable and settled, not given back', async () => {
    await sql`update public.bots set enabled = false where id = ${bot}`;
    telegram.failNext(CHAT_NOT_FOUND);
    expect(await answered(await deliver(update(73, 'Are you open on Sunday?', 8873)))).toMatchObject({
      status: 200,
      body: { handled: false, refused: 'bot_disabled', undeliverable: true },
    });
    expect(await claimOf(73)).toEqual({ leased: false, settled: true, answer_linked: false });

    expect(await answered(await deliver(update(73, 'Are you open on Sunday?', 8873)))).toMatchObject({
      status: 200,
      body: { duplicate: true },
    });
    expect(sendAttempts()).toBe(1);
    expect(stub.chatRequests).toHaveLength(0);
    expect(await chatMessages(8873)).toEqual([]);
  });

  it('/start from a user who blocked the bot: 200 undeliverable, greeting or refusal alike', async () => {
    telegram.failNext(BLOCKED);
    expect(await answered(await deliver(update(74, '/start', 8874)))).toMatchObject({
      status: 200,
      body: { handled: false, undeliverable: true },
    });
    await sql`update public.bots set enabled = false where id = ${bot}`;
    telegram.failNext(BLOCKED);
    expect(await answered(await deliver(update(75, '/start', 8874)))).toMatchObject({
      status: 200,
      body: { handled: false, refused: 'bot_disabled', undeliverable: true },
    });
    expect(sendAttempts()).toBe(2);
    expect(sentTexts()).toEqual([]);
    expect(await claimOf(74)).toBeUndefined();
    expect(await chatMessages(8874)).toEqual([]);
  });
});
