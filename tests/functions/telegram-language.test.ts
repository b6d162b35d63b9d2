/**
 * The Telegram webhook over HTTP (Bot API and model stubs):
 * - what it writes itself is in the bot's language: a German bot over its
 *   per-minute rate limit is told in German how long to wait (200, refused,
 *   settled, nothing stored, no model call), a disabled one that it is not
 *   available, a failed turn gets the German apology and /start the German
 *   default greeting;
 * - a NUL (U+0000) in an update's text is dropped before the turn: the update
 *   is answered 200 once, stored without it, and a redelivery runs nothing;
 *   a text of nothing but NULs is not a turn.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BOT_TEXTS } from '../../functions/_shared/chat/bot-texts.ts';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import { fillRateWindow } from '../support/rate-limit-window.ts';
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

const GERMAN = BOT_TEXTS.de;

const update = (updateId: number, chatId: number, text: string) => ({
  update_id: updateId,
  message: {
    message_id: updateId % 100_000,
    date: 1_700_000_000,
    chat: { id: chatId, type: 'private' },
    from: { id: chatId, is_bot: false, first_name: 'Jonas', language_code: 'de' },
    text,
  },
});

const deliver = async (body: unknown) => {
  const response = await fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
};

const sentTexts = () =>
  telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200).map((call) => call.body.text);

const claimOf = async (updateId: number) =>
  (await sql<{ settled: boolean; leased: boolean }[]>`
    select claimed_until is null as settled, coalesce(claimed_until > now(), false) as leased
    from private.telegram_updates where bot_id = ${bot} and update_id = ${updateId}`)[0];

/** One chat's stored messages (each test has its own chat). */
const chatMessages = async (chatId: number) =>
  await sql<{ role: string; content: string }[]>`
    select m.role::text, m.content from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.bot_id = ${bot} and c.channel = 'telegram' and c.external_user_id = ${String(chatId)}
    order by m.created_at, m.role`;

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'telegram-language');
  bot = await createBot(sql, org.id, { slug: 'telegram-language', model: 'gpt-4o-mini', language: 'de' });
  await createDocument(sql, org.id, 'telegram-language-hours.pdf', ['Wir haben werktags von 9 bis 17 Uhr geöffnet.']);
  secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(async () => {
  resetStubs({ stub, telegram });
  await sql`update public.bots set enabled = true, greeting = null where id = ${bot}`;
});

describe("Telegram: the webhook's own texts in the bot's language", () => {
  it('tells a German chat over its rate limit in German how long to wait; nothing stored, no model call', async () => {
    const chatId = 28_101;
    // The chat's 60 turns of this minute already taken (the webhook's bucket: bot and Telegram chat).
    await fillRateWindow(sql, [`bot:${bot}:${chatId}`], 60);
    const refused = await deliver(update(2_810_101, chatId, 'Wann haben Sie geöffnet?'));
    expect(refused).toEqual({ status: 200, body: { ok: true, handled: false, refused: 'rate_limited' } });

    const [told] = sentTexts();
    expect(sentTexts()).toHaveLength(1);
    const wait = /^Sie senden Nachrichten zu schnell; bitte warten Sie (\d+) Sekunden?\.$/.exec(String(told));
    expect(wait, String(told)).not.toBeNull();
    expect(Number(wait?.[1])).toBeGreaterThanOrEqual(1);
    expect(Number(wait?.[1])).toBeLessThanOrEqual(61);
    expect(told).toBe(GERMAN.tooFast(Number(wait?.[1])));
    expect(await claimOf(2_810_101)).toEqual({ settled: true, leased: false });
    expect(stub.chatRequests).toHaveLength(0);
    expect(await chatMessages(chatId)).toEqual([]);

    // Telegram's redelivery (our 200 came late) tells the chat nothing more.
    expect((await deliver(update(2_810_101, chatId, 'Wann haben Sie geöffnet?'))).body).toMatchObject({ duplicate: true });
    expect(sentTexts()).toHaveLength(1);
  });

  it('tells a German chat that a disabled bot is not available, in German, for a message and for /start', async () => {
    await sql`update public.bots set enabled = false where id = ${bot}`;
    expect((await deliver(update(2_810_201, 28_102, 'Hallo?'))).body).toMatchObject({ refused: 'bot_disabled' });
    expect((await deliver(update(2_810_202, 28_102, '/start'))).body).toMatchObject({ refused: 'bot_disabled' });
    expect(sentTexts()).toEqual([GERMAN.unavailable, GERMAN.unavailable]);
    expect(GERMAN.unavailable).toBe('Dieser Assistent ist gerade nicht verfügbar. Bitte versuchen Sie es später noch einmal.');
  });

  it("greets in German when the bot has no greeting of its own, and with the bot's own when it has one", async () => {
    expect((await deliver(update(2_810_301, 28_103, '/start'))).body).toMatchObject({ greeted: true });
    await sql`update public.bots set greeting = 'Moin! Wie kann ich helfen?' where id = ${bot}`;
    expect((await deliver(update(2_810_302, 28_103, '/start'))).body).toMatchObject({ greeted: true });
    expect(sentTexts()).toEqual(['Hallo! Was möchten Sie wissen?', 'Moin! Wie kann ich helfen?']);
  });

  it('apologises in German when the model fails after the question was stored', async () => {
    stub.failChatNext({ status: 500 });
    const failed = await deliver(update(2_810_401, 28_104, 'Haben Sie am Sonntag geöffnet?'));
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({ ok: true, handled: false });
    expect(sentTexts()).toEqual([GERMAN.failed]);
    expect(await claimOf(2_810_401)).toEqual({ settled: true, leased: false });
  });
});

describe('Telegram: a NUL in the text', () => {
  it('is dropped before the turn: answered 200 once, stored without it, a redelivery runs nothing', async () => {
    const chatId = 28_201;
    stub.answerChat({ content: 'Werktags von 9 bis 17 Uhr [1].' });
    const first = await deliver(update(2_820_101, chatId, 'Wann\u0000 haben Sie geöffnet?'));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ ok: true, handled: true });
    expect(stub.chatRequests).toHaveLength(1);
    expect(JSON.stringify(stub.chatRequests[0].messages)).toContain('Wann haben Sie geöffnet?');
    expect(await chatMessages(chatId)).toEqual([
      { role: 'user', content: 'Wann haben Sie geöffnet?' },
      { role: 'assistant', content: 'Werktags von 9 bis 17 Uhr [1].' },
    ]);
    expect(await claimOf(2_820_101)).toEqual({ settled: true, leased: false });

    const again = await deliver(update(2_820_101, chatId, 'Wann\u0000 haben Sie geöffnet?'));
    expect(again).toEqual({ status: 200, body: { ok: true, handled: false, duplicate: true } });
    expect(stub.chatRequests).toHaveLength(1);
    expect(sentTexts()).toEqual(['Werktags von 9 bis 17 Uhr [1].']);
    expect(await chatMessages(chatId)).toHaveLength(2);
  });

  it('of nothing but NULs and spaces: 200, no turn, nothing claimed or sent', async () => {
    const chatId = 28_202;
    const answered = await deliver(update(2_820_201, chatId, '\u0000 \u0000'));
    expect(answered).toEqual({ status: 200, body: { ok: true, handled: false } });
    expect(await claimOf(2_820_201)).toBeUndefined();
    expect(sentTexts()).toEqual([]);
    expect(stub.chatRequests).toHaveLength(0);
    expect(await chatMessages(chatId)).toEqual([]);
  });
});
