/**
 * Telegram bots: the webhook's updates (the part we handle), its secret check,
 * and a small Bot API client (https://core.telegram.org/bots/api).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { type EnvReader, processEnv } from './env.ts';

const user = z.object({
  id: z.number().int(),
  is_bot: z.boolean(),
  first_name: z.string(),
  language_code: z.string().optional(),
});

const message = z.object({
  message_id: z.number().int(),
  date: z.number().int(),
  // Supergroup and channel ids are negative and up to 52 bits: still exact as numbers.
  chat: z.object({ id: z.number().int(), type: z.enum(['private', 'group', 'supergroup', 'channel']) }),
  from: user.optional(),
  text: z.string().optional(),
});

/**
 * An Update, reduced to messages and edits. Telegram adds fields and update
 * kinds over time; unknown ones are dropped rather than refused, so an update
 * we do not handle parses with neither message and is simply acknowledged.
 */
export const telegramUpdateSchema = z.object({
  update_id: z.number().int(),
  message: message.optional(),
  edited_message: message.optional(),
});

export type TelegramUpdate = z.infer<typeof telegramUpdateSchema>;
export type TelegramMessage = z.infer<typeof message>;

/** A text message from a person in a private chat with the bot, the one thing a bot answers. */
export interface IncomingText {
  /** The private chat's id, which is the person's Telegram user id: the end user of the conversation. */
  chatId: number;
  messageId: number;
  /** The user's app language ('de', 'pt-br'), a hint for bots set to 'auto'. */
  languageCode: string | null;
  text: string;
  /** An edit of an earlier message rather than a new one. */
  edited: boolean;
}

/**
 * The update's text message, or null for anything else: no text (photos, stickers), other bots, other update
 * kinds, and groups, supergroups and channels. A chat is an end user (its conversation, its rate limit and its
 * daily chat budget are the chat's), which holds only for a private chat: in groups one person would get a fresh
 * budget per group they make with the bot, and a group's members would share one conversation and one budget.
 */
export function incomingText(update: TelegramUpdate): IncomingText | null {
  const edited = update.message === undefined;
  const received = update.message ?? update.edited_message;
  if (!received?.text?.trim() || received.from?.is_bot || received.chat.type !== 'private') return null;
  return {
    chatId: received.chat.id,
    messageId: received.message_id,
    languageCode: received.from?.language_code ?? null,
    text: received.text,
    edited,
  };
}

/** The header Telegram sends with every update when the webhook was set with a secret token. */
export const TELEGRAM_SECRET_HEADER = 'x-telegram-bot-api-secret-token';

/**
 * Whether an update's secret header matches the webhook's secret. Digests are
 * compared in constant time, so the time taken says nothing about how much of
 * the secret matched; no expected secret means nothing matches.
 */
export function verifyTelegramSecret(header: string | null, expected: string): boolean {
  if (header === null || expected === '') return false;
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(header), digest(expected));
}

/** Telegram's longest message text. */
export const TELEGRAM_MESSAGE_LIMIT = 4096;
export const DEFAULT_TELEGRAM_API_BASE_URL = 'https://api.telegram.org';
// Secret tokens Telegram accepts for setWebhook.
const SECRET_TOKEN = /^[A-Za-z0-9_-]{1,256}$/u;

/** TELEGRAM_API_BASE_URL (a Bot API server of one's own, or a test stand-in), else Telegram's. */
export function telegramApiBaseUrl(env: EnvReader = processEnv): string {
  return env('TELEGRAM_API_BASE_URL')?.trim() || DEFAULT_TELEGRAM_API_BASE_URL;
}

/** A Bot API call failed: Telegram's `error_code` and `description`, or no code when it could not be reached. */
export class TelegramApiError extends Error {
  readonly method: string;
  readonly errorCode: number | undefined;
  /** Set on 429: how long Telegram asked to wait (more than we wait, or again after our one retry). */
  readonly retryAfterSeconds: number | undefined;

  constructor(method: string, message: string, options: { errorCode?: number; retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = 'TelegramApiError';
    this.method = method;
    this.errorCode = options.errorCode;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export interface TelegramClientOptions {
  token: string;
  /** Default https://api.telegram.org; see telegramApiBaseUrl. */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** A 429 asking to wait at most this long is retried once after the wait; a longer one throws. Default 5. */
  maxRetryAfterSeconds?: number;
  /** Per call; a webhook must not hang on a Bot API that does not answer. Default 10 s. */
  timeoutMs?: number;
}

export interface TelegramClient {
  /**
   * Sends plain text (no parse mode, so a model's asterisks and brackets
   * arrive as written), split into messages of at most 4096 characters; the
   * first replies to `replyToMessageId`. Returns the sent messages' ids.
   */
  sendMessage(chatId: number | string, text: string, options?: { replyToMessageId?: number }): Promise<number[]>;
  /** "typing…" in the chat for up to 5 seconds or until the next message. */
  sendChatAction(chatId: number | string, action: 'typing'): Promise<void>;
  /** Points the bot's updates at `url`; Telegram then sends `secretToken` in X-Telegram-Bot-Api-Secret-Token. */
  setWebhook(url: string, secretToken: string): Promise<void>;
}

const okAnswer = z.object({ ok: z.literal(true), result: z.unknown() });
const errorAnswer = z.object({
  ok: z.literal(false),
  error_code: z.number().int(),
  description: z.string(),
  parameters: z.object({ retry_after: z.number().optional() }).optional(),
});
const sentMessage = z.object({ message_id: z.number().int() });

export function createTelegramClient(options: TelegramClientOptions): TelegramClient {
  const base = (options.baseUrl ?? DEFAULT_TELEGRAM_API_BASE_URL).replace(/\/+$/u, '');
  const fetchImpl = options.fetch ?? fetch;
  const maxRetryAfterSeconds = options.maxRetryAfterSeconds ?? 5;
  const timeoutMs = options.timeoutMs ?? 10_000;
  // The token is part of every URL; runtimes quote the URL in network errors, so it is cut out of those.
  const redact = (text: string) => text.replaceAll(options.token, '<token>');

  async function call(method: string, body: Record<string, unknown>): Promise<unknown> {
    for (let attempt = 0;; attempt += 1) {
      let response: Response;
      try {
        response = await fetchImpl(`${base}/bot${options.token}/${method}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        throw new TelegramApiError(method, `The Telegram Bot API could not be reached: ${redact(String(error))}`);
      }
      const payload: unknown = await response.json().catch(() => null);
      const ok = okAnswer.safeParse(payload);
      if (ok.success) return ok.data.result;
      const failure = errorAnswer.safeParse(payload);
      if (!failure.success) {
        throw new TelegramApiError(method, `Telegram ${method} answered ${response.status} without a Bot API body.`, {
          errorCode: response.status,
        });
      }
      const { error_code: errorCode, description, parameters } = failure.data;
      const retryAfter = parameters?.retry_after;
      if (retryAfter !== undefined && attempt === 0 && retryAfter <= maxRetryAfterSeconds) {
        await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
        continue;
      }
      throw new TelegramApiError(method, `Telegram ${method} failed with ${errorCode}: ${description}`, {
        errorCode,
        retryAfterSeconds: retryAfter,
      });
    }
  }

  return {
    async sendMessage(chatId, text, sendOptions = {}) {
      const parts = splitMessage(text);
      if (parts.length === 0) throw new TypeError('A Telegram message must have some text.');
      const ids: number[] = [];
      for (const [index, part] of parts.entries()) {
        const replyTo = index === 0 ? sendOptions.replyToMessageId : undefined;
        const result = await call('sendMessage', {
          chat_id: chatId,
          text: part,
          // Sent even when the question was deleted meanwhile, instead of failing.
          ...(replyTo === undefined
            ? {}
            : { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } }),
        });
        const sent = sentMessage.safeParse(result);
        if (sent.success) ids.push(sent.data.message_id);
      }
      return ids;
    },
    async sendChatAction(chatId, action) {
      await call('sendChatAction', { chat_id: chatId, action });
    },
    async setWebhook(url, secretToken) {
      if (!SECRET_TOKEN.test(secretToken)) {
        throw new TypeError('A Telegram secret token is 1 to 256 characters of A-Z, a-z, 0-9, _ and -.');
      }
      // Only the update kinds telegramUpdateSchema reads, so Telegram does not send (and retry) the rest.
      await call('setWebhook', { url, secret_token: secretToken, allowed_updates: ['message', 'edited_message'] });
    },
  };
}

/**
 * Text cut into parts of at most `limit` UTF-16 units (Telegram's count),
 * preferably at a paragraph, then a line, a sentence, a word, and never
 * inside a surrogate pair. Whitespace at the cuts is dropped; so are parts
 * that would be only whitespace, which Telegram refuses.
 */
export function splitMessage(text: string, limit: number = TELEGRAM_MESSAGE_LIMIT): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  while (rest.length > limit) {
    const window = rest.slice(0, limit + 1);
    // A cut in the first half would leave many short messages; then a hard cut is better.
    const cutAfter = (separator: RegExp) => {
      let best = -1;
      for (const match of window.matchAll(separator)) {
        const end = match.index + match[0].length;
        if (end <= limit && end > limit / 2) best = end;
      }
      return best;
    };
    let cut = [/\n\s*\n/gu, /\n/gu, /[.!?…。]\s/gu, /\s/gu].map(cutAfter).find((end) => end > 0) ?? limit;
    const last = rest.charCodeAt(cut - 1);
    if (cut === limit && last >= 0xd800 && last <= 0xdbff) cut -= 1;
    parts.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest !== '') parts.push(rest);
  return parts;
}
