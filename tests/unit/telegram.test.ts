import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createTelegramClient,
  DEFAULT_TELEGRAM_API_BASE_URL,
  incomingText,
  splitMessage,
  TELEGRAM_MESSAGE_LIMIT,
  TELEGRAM_SECRET_HEADER,
  telegramApiBaseUrl,
  TelegramApiError,
  telegramUpdateSchema,
  verifyTelegramSecret,
} from '../../functions/_shared/telegram.ts';
import { startTelegramStub, type TelegramStub } from '../support/telegram-stub.ts';

// An update as Telegram sends it, with fields we do not read.
const update = {
  update_id: 874_512_339,
  message: {
    message_id: 1365,
    from: {
      id: 1_111_111_111,
      is_bot: false,
      first_name: 'Anna',
      last_name: 'K',
      username: 'anna',
      language_code: 'de',
      is_premium: true,
    },
    chat: { id: 1_111_111_111, first_name: 'Anna', last_name: 'K', username: 'anna', type: 'private' },
    date: 1_764_000_000,
    text: 'Wie lange dauert die Lieferung?',
    entities: [],
    link_preview_options: { is_disabled: true },
  },
};

describe('Telegram updates', () => {
  it('parses the fields we handle and drops the rest', () => {
    const parsed = telegramUpdateSchema.parse(update);
    expect(parsed).toEqual({
      update_id: 874_512_339,
      message: {
        message_id: 1365,
        date: 1_764_000_000,
        chat: { id: 1_111_111_111, type: 'private' },
        from: { id: 1_111_111_111, is_bot: false, first_name: 'Anna', language_code: 'de' },
        text: 'Wie lange dauert die Lieferung?',
      },
    });
    expect(incomingText(parsed)).toEqual({
      chatId: 1_111_111_111,
      messageId: 1365,
      languageCode: 'de',
      text: 'Wie lange dauert die Lieferung?',
      edited: false,
    });
  });

  it('reads edits, and ignores what carries no text from a person in a private chat', () => {
    const edited = telegramUpdateSchema.parse({ update_id: 2, edited_message: update.message });
    expect(incomingText(edited)).toMatchObject({ chatId: 1_111_111_111, edited: true });

    // A chat is the end user (conversation, rate limit, daily budget): in a group one person would get a fresh
    // budget per group, and the members would share one.
    for (const type of ['group', 'supergroup', 'channel'] as const) {
      const inGroup = telegramUpdateSchema.parse({
        update_id: 6,
        message: { ...update.message, chat: { id: -1_001_234_567_890, type } },
      });
      expect(incomingText(inGroup), type).toBeNull();
    }

    const photo = telegramUpdateSchema.parse({
      update_id: 3,
      message: { ...update.message, text: undefined, photo: [] },
    });
    expect(incomingText(photo)).toBeNull();
    const fromBot = telegramUpdateSchema.parse({
      update_id: 4,
      message: { ...update.message, from: { id: 9, is_bot: true, first_name: 'B' } },
    });
    expect(incomingText(fromBot)).toBeNull();
    const blank = telegramUpdateSchema.parse({ update_id: 5, message: { ...update.message, text: '   ' } });
    expect(incomingText(blank)).toBeNull();
    // Other update kinds parse (so the webhook acknowledges them) with nothing to answer.
    const callback = telegramUpdateSchema.parse({ update_id: 6, callback_query: { id: 'x', data: 'y' } });
    expect(callback).toEqual({ update_id: 6 });
    expect(incomingText(callback)).toBeNull();
  });

  it('refuses what is not an update', () => {
    expect(telegramUpdateSchema.safeParse({ message: update.message }).success).toBe(false);
    expect(
      telegramUpdateSchema.safeParse({ update_id: 1, message: { ...update.message, chat: { id: 1, type: 'room' } } })
        .success,
    )
      .toBe(false);
    expect(telegramUpdateSchema.safeParse({ update_id: 1, message: { ...update.message, message_id: '1365' } }).success)
      .toBe(false);
  });
});

describe('verifyTelegramSecret', () => {
  it('accepts the exact secret only', () => {
    expect(TELEGRAM_SECRET_HEADER).toBe('x-telegram-bot-api-secret-token');
    const request = new Request('http://x/telegram', {
      method: 'POST',
      headers: { 'X-Telegram-Bot-Api-Secret-Token': 's3cr3t_token-1' },
    });
    expect(verifyTelegramSecret(request.headers.get(TELEGRAM_SECRET_HEADER), 's3cr3t_token-1')).toBe(true);
    expect(verifyTelegramSecret('s3cr3t_token-2', 's3cr3t_token-1')).toBe(false);
    expect(verifyTelegramSecret('s3cr3t', 's3cr3t_token-1')).toBe(false);
    expect(verifyTelegramSecret(null, 's3cr3t_token-1')).toBe(false);
    expect(verifyTelegramSecret('', '')).toBe(false);
  });
});

describe('splitMessage', () => {
  it('leaves a short text whole and refuses nothing', () => {
    expect(splitMessage('Hello')).toEqual(['Hello']);
    expect(splitMessage('  \n ')).toEqual([]);
  });

  it('cuts at paragraphs, then lines, sentences and words, within the limit', () => {
    expect(splitMessage('First paragraph here.\n\nSecond one, longer than that.', 30)).toEqual([
      'First paragraph here.',
      'Second one, longer than that.',
    ]);
    expect(splitMessage('One sentence here. Another sentence there.', 30)).toEqual([
      'One sentence here.',
      'Another sentence there.',
    ]);
    expect(splitMessage('word '.repeat(20).trim(), 22)).toEqual([
      'word word word word',
      'word word word word',
      'word word word word',
      'word word word word',
      'word word word word',
    ]);
  });

  it('cuts a text with no spaces hard, but never inside a surrogate pair', () => {
    const emoji = '😀'.repeat(5); // 10 UTF-16 units
    const parts = splitMessage(`a${emoji}`, 4);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(4);
      expect(part).not.toMatch(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/);
    }
    expect(parts.join('')).toBe(`a${emoji}`);
  });
});

describe('Telegram client against a Bot API stand-in', () => {
  let stub: TelegramStub;
  beforeAll(async () => {
    stub = await startTelegramStub();
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const client = (overrides: Partial<Parameters<typeof createTelegramClient>[0]> = {}) =>
    createTelegramClient({ token: stub.token, baseUrl: stub.baseUrl, ...overrides });

  it('sends a message as plain text, replying to the question', async () => {
    const ids = await client().sendMessage(42, 'Delivery takes *2 to 4* days [2].', { replyToMessageId: 7 });
    expect(ids).toHaveLength(1);
    expect(stub.calls).toHaveLength(1);
    expect(stub.calls[0]).toMatchObject({
      method: 'sendMessage',
      token: stub.token,
      body: {
        chat_id: 42,
        text: 'Delivery takes *2 to 4* days [2].',
        reply_parameters: { message_id: 7, allow_sending_without_reply: true },
      },
    });
    expect(stub.calls[0].body).not.toHaveProperty('parse_mode');
  });

  it('splits a text over 4096 characters into several messages, replying with the first only', async () => {
    const paragraph = `${'All work and no play makes a dull answer. '.repeat(40).trim()}\n\n`;
    const text = paragraph.repeat(6).trim(); // about 10,000 characters
    const ids = await client().sendMessage('@channel', text, { replyToMessageId: 9 });
    expect(ids.length).toBe(stub.calls.length);
    expect(stub.calls.length).toBeGreaterThanOrEqual(3);
    const parts = stub.calls.map((call) => call.body.text as string);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(TELEGRAM_MESSAGE_LIMIT);
    // Cut at paragraph breaks, so nothing but the blank lines is lost.
    expect(parts.join('\n\n')).toBe(text);
    expect(stub.calls.map((call) => call.status)).toEqual(stub.calls.map(() => 200));
    expect(stub.calls[0].body.reply_parameters).toEqual({ message_id: 9, allow_sending_without_reply: true });
    expect(stub.calls.slice(1).every((call) => call.body.reply_parameters === undefined)).toBe(true);
  });

  it('refuses an empty text before calling Telegram', async () => {
    await expect(client().sendMessage(42, '  ')).rejects.toThrow(TypeError);
    expect(stub.calls).toHaveLength(0);
  });

  it('shows "typing" and sets the webhook with its secret for the updates we handle', async () => {
    await client().sendChatAction(42, 'typing');
    await client().setWebhook('https://example.supabase.co/functions/v1/telegram/bot-1', 'secret_Token-1');
    expect(stub.calls.map((call) => call.method)).toEqual(['sendChatAction', 'setWebhook']);
    expect(stub.calls[0].body).toEqual({ chat_id: 42, action: 'typing' });
    expect(stub.webhook).toEqual({
      url: 'https://example.supabase.co/functions/v1/telegram/bot-1',
      secretToken: 'secret_Token-1',
      allowedUpdates: ['message', 'edited_message'],
    });
    await expect(client().setWebhook('https://x', 'not allowed!')).rejects.toThrow(TypeError);
    expect(stub.calls).toHaveLength(2);
  });

  it('waits as retry_after says and retries once on a 429', async () => {
    stub.failNext({ errorCode: 429, retryAfter: 1 });
    await client().sendMessage(42, 'After the pause.');
    expect(stub.calls.map((call) => call.status)).toEqual([429, 200]);
    expect(stub.calls[1].at - stub.calls[0].at).toBeGreaterThanOrEqual(950);
  });

  it('gives up after one retry, or at once when retry_after is over its limit', async () => {
    stub.failNext({ errorCode: 429, retryAfter: 1 }, { errorCode: 429, retryAfter: 1 });
    const twice = await client().sendChatAction(42, 'typing').catch((caught: unknown) => caught);
    expect(twice).toBeInstanceOf(TelegramApiError);
    expect(twice).toMatchObject({ method: 'sendChatAction', errorCode: 429, retryAfterSeconds: 1 });
    expect(stub.calls).toHaveLength(2);

    stub.reset();
    stub.failNext({ errorCode: 429, retryAfter: 30 });
    const started = Date.now();
    const long = await client().sendMessage(42, 'x').catch((caught: unknown) => caught);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(long).toMatchObject({ errorCode: 429, retryAfterSeconds: 30 });
    expect((long as Error).message).toContain('Too Many Requests: retry after 30');
    expect(stub.calls).toHaveLength(1);
  });

  it("throws Telegram's error for a wrong token and other failures, without retrying", async () => {
    const error = await client({ token: '123456:WRONG' }).sendMessage(42, 'x').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TelegramApiError);
    expect(error).toMatchObject({ errorCode: 401, method: 'sendMessage' });
    expect((error as Error).message).toBe('Telegram sendMessage failed with 401: Unauthorized');

    stub.failNext({ errorCode: 400, description: 'Bad Request: chat not found' });
    await expect(client().sendMessage(42, 'x')).rejects.toMatchObject({ errorCode: 400 });
    expect(stub.calls).toHaveLength(2);
  });

  it('keeps the token out of the error when Telegram cannot be reached', async () => {
    const unreachable = createTelegramClient({
      token: '123456:SECRET',
      fetch: () =>
        Promise.reject(
          new TypeError('error sending request for url (https://api.telegram.org/bot123456:SECRET/sendMessage)'),
        ),
    });
    const error = await unreachable.sendMessage(42, 'x').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TelegramApiError);
    expect((error as TelegramApiError).errorCode).toBeUndefined();
    expect((error as Error).message).not.toContain('SECRET');
    expect((error as Error).message).toContain('bot<token>/sendMessage');
  });

  it('gives up on a Bot API that does not answer', async () => {
    const silent = createTelegramClient({
      token: '123456:SECRET',
      timeoutMs: 50,
      fetch: (_url, init) =>
        new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason))),
    });
    const error = await silent.sendChatAction(42, 'typing').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(TelegramApiError);
    expect((error as Error).message).toContain('could not be reached');
  });

  it('takes the base URL from TELEGRAM_API_BASE_URL', () => {
    expect(telegramApiBaseUrl(() => undefined)).toBe(DEFAULT_TELEGRAM_API_BASE_URL);
    expect(telegramApiBaseUrl((name) => (name === 'TELEGRAM_API_BASE_URL' ? 'http://127.0.0.1:8081' : undefined)))
      .toBe('http://127.0.0.1:8081');
  });
});
