/**
 * POST /chat/telegram/:bot_id: Telegram's webhook for a bot, registered with
 * the secret token set_bot_telegram returned (Telegram echoes it in
 * X-Telegram-Bot-Api-Secret-Token; anything else is refused with 401 before
 * the body is read). One conversation per Telegram chat. The answer goes
 * back through the Bot API; the webhook itself answers 200 once the update is
 * handled, also when the bot refuses (rate limit, quota, disabled): the user
 * is told in the chat, and Telegram must not redeliver. `/start` (a user
 * opening the bot) is answered with the bot's greeting, or, when the bot or
 * its Telegram channel is off, with the refusal its messages get. What the
 * webhook writes itself (refusals, the apology for a failed turn, the stand-in
 * for an empty answer, the default greeting) is in the bot's language
 * (botTexts; English for 'auto'). A NUL (U+0000) in the text is dropped before
 * the turn: Postgres text cannot hold it, and a turn failing on it would be
 * redelivered forever.
 *
 * Telegram redelivers an update until the webhook answers 2xx (after a 500,
 * or a timeout while a slow turn is still running), so each update is taken
 * on once per bot and update_id (private.claim_telegram_update): a
 * redelivery never stores or meters the turn again. An answer stays linked
 * to its update only until it is sent: if it was stored but could not be
 * sent, the redelivery sends it (no model call), once; if the model failed, the chat is told and the webhook answers
 * 200 (the turn is stored and metered as `error`, but not linked: a
 * redelivery sends nothing). Only a failure before anything was stored gives
 * the claim back, so the redelivery runs the turn.
 *
 * A claim is a lease (private.telegram_claim_lease(), 7 minutes, past an edge
 * function's 400 s): a worker that dies mid-turn (a wall-clock or CPU limit,
 * out of memory, a redeploy) answers nothing and settles nothing, so a
 * redelivery after the lease ran out claims the update again and runs the
 * turn, resuming with the question the dead turn stored (chat_prepare links
 * it to the claim as it stores it): the question is stored once. A stored
 * answer, a refusal or a failure told in the chat settles the claim for good.
 * A redelivery while the lease holds with nothing settled (the turn still
 * running, or its worker dead) is answered 503 `update_in_progress` with
 * Retry-After the lease's remaining seconds, not 200: Telegram would take a
 * 200 as delivered and never send the update again, so a worker dying after
 * it would leave the user unanswered. Telegram holds the bot's later updates
 * meanwhile.
 *
 * A reply Telegram does not take for now (a 429 asking for a pause over the
 * client's 5 s, a 5xx, a timeout, no answer) is answered 503
 * `telegram_unavailable` with Retry-After: Telegram's retry_after, else 10 s.
 * A refusal not told gives the claim back (nothing was stored), so the
 * redelivery is refused and told afresh; an answer not sent stays linked, so
 * the redelivery sends it, with no model call (as does a redelivery whose
 * resend fails again). A reply Telegram refuses for good (any other 4xx: 403
 * the user blocked the bot, 400 chat not found) is logged, its claim settled
 * as if sent, and the webhook answers 200 with `undeliverable: true`: a
 * redelivery would meet the same refusal every time, and Telegram holds the
 * bot's later updates while it redelivers.
 */
import { type BotTexts, botTexts } from '../_shared/chat/bot-texts.ts';
import { type ChatMessage } from '../_shared/chat/index.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import {
  createTelegramClient,
  incomingText,
  TelegramApiError,
  TELEGRAM_SECRET_HEADER,
  telegramApiBaseUrl,
  telegramUpdateSchema,
  verifyTelegramSecret,
} from '../_shared/telegram.ts';
import { answerTurn, type ChatDeps, prepareTurn, type TurnInput, type TurnResult } from './core.ts';
import { asService, type ChatPrincipal } from './principal.ts';
import { claimTelegramUpdate, releaseTelegramUpdate, telegramBot, telegramUpdateSent } from './queries.ts';
import { readChatBody, uuid } from './schemas.ts';
import { streamError } from './web-chat.ts';

const SERVICE: ChatPrincipal = { kind: 'service', apiKeyId: null };

/**
 * The stored answer as a Telegram message: never empty (Telegram sends no empty message), so an answer the model
 * left empty (a content filter, a reasoning model out of budget) is the bot's emptyAnswer text.
 */
function telegramText(answer: string, texts: BotTexts): string {
  return answer === '' ? texts.emptyAnswer : answer;
}

/** Retry-After when Telegram failed without asking for a pause (a 5xx, a timeout, unreachable). */
const SEND_RETRY_AFTER_SECONDS = 10;

/**
 * Whether Telegram refused a message for good (a 4xx but 429: the user blocked the bot, the chat is gone, the
 * bot was removed from it): sending it again on a redelivery would be refused the same way.
 */
function undeliverable(error: unknown): error is TelegramApiError {
  const code = error instanceof TelegramApiError ? error.errorCode : undefined;
  return code !== undefined && code >= 400 && code < 500 && code !== 429;
}

/**
 * A message Telegram did not take for now (not undeliverable), as the webhook's answer: 503 with
 * Telegram's retry_after (else SEND_RETRY_AFTER_SECONDS), so the update is
 * delivered again, rather than 500. Anything else (a bug) is left as it is.
 */
function sendFailed(error: unknown): unknown {
  if (!(error instanceof TelegramApiError)) return error;
  const seconds = Math.max(1, Math.ceil(error.retryAfterSeconds ?? SEND_RETRY_AFTER_SECONDS));
  return new HttpError(
    503,
    'telegram_unavailable',
    'Telegram did not take the reply; deliver the update again later.',
    { 'retry-after': String(seconds) },
    { cause: error },
  );
}

/**
 * What the chat is told when the bot refuses a message, in the bot's language: the end user's daily chat
 * tokens (the 429 names that limit, 20261123012900) or a per-minute bucket, with the wait (its Retry-After; 60 s
 * if it had none), else that the bot is not available (disabled, the channel off, a quota).
 */
function refusalText(error: HttpError, texts: BotTexts): string {
  if (error.status === 429) {
    const wait = Number(error.headers['retry-after'] ?? 60);
    return error.headers['x-ratelimit-scope'] === 'end_user_daily_tokens' ? texts.dailyLimit(wait) : texts.tooFast(wait);
  }
  return texts.unavailable;
}

/**
 * An update's text as the turn gets it: U+0000 dropped. Postgres text cannot hold it (22021), so chat_prepare
 * would fail the same way on every redelivery, and Telegram holds the bot's later updates while it redelivers.
 */
function storableText(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}

export async function telegramWebhook(deps: ChatDeps, req: Request, botId: string, requestId: string): Promise<Response> {
  const env: EnvReader = deps.env ?? processEnv;
  const startedAt = performance.now();
  const invalidSecret = new HttpError(401, 'invalid_secret_token', 'The Telegram secret token is missing or wrong.');
  if (!uuid.safeParse(botId).success) throw invalidSecret;
  const bot = await asService(deps.sql(), SERVICE, (tx) => telegramBot(tx, botId));
  // An unknown bot and a wrong secret look alike, so bot ids cannot be probed.
  if (!bot || !verifyTelegramSecret(req.headers.get(TELEGRAM_SECRET_HEADER), bot.secret_token)) throw invalidSecret;

  const update = await readChatBody(req, telegramUpdateSchema);
  const incoming = incomingText(update);
  const text = incoming ? storableText(incoming.text) : '';
  // Nothing but NULs and spaces is as good as no text: nothing to answer.
  if (!incoming || text.trim() === '') return json({ ok: true, handled: false });
  const texts = botTexts(bot.language);

  const telegram = createTelegramClient({ token: bot.bot_token, baseUrl: telegramApiBaseUrl(env) });
  /**
   * Sends to the update's chat: true once sent, false when Telegram refused it for good (logged; the caller
   * settles and answers 200), else throws sendFailed's 503.
   */
  const send = async (text: string, options?: { replyToMessageId?: number }): Promise<boolean> => {
    try {
      await telegram.sendMessage(incoming.chatId, text, options);
      return true;
    } catch (error) {
      if (!undeliverable(error)) throw sendFailed(error);
      console.warn(`[${requestId}] Telegram update ${update.update_id} is undeliverable, not retried: ${error.message}`);
      return false;
    }
  };
  // What Telegram sends when a user opens the bot: the bot's greeting, no model call, nothing stored.
  if (/^\/start(@\w+)?(\s|$)/.test(text.trim())) {
    // A bot that would refuse the user's messages does not greet them either: told as a refusal is.
    if (!bot.enabled || !bot.telegram_enabled) {
      const refused = bot.enabled ? 'channel_not_enabled' : 'bot_disabled';
      if (!await send(texts.unavailable)) return json({ ok: true, handled: false, refused, undeliverable: true });
      return json({ ok: true, handled: false, refused });
    }
    if (!await send(bot.greeting ?? texts.greeting)) return json({ ok: true, handled: false, undeliverable: true });
    return json({ ok: true, handled: true, greeted: true });
  }
  const updateId = update.update_id;
  const input: TurnInput = {
    principal: SERVICE,
    botId,
    conversationId: null,
    channel: 'telegram',
    externalUserId: String(incoming.chatId),
    telegramUpdateId: updateId,
    message: text,
    history: null as ChatMessage[] | null,
    startedAt,
  };
  const reply = { replyToMessageId: incoming.messageId };
  const claim = await asService(deps.sql(), SERVICE, (tx) => claimTelegramUpdate(tx, botId, updateId));
  // Once the chat has what it will get (the answer, a refusal, the apology): the claim is settled, never
  // claimed again. Best effort: unlinked, a redelivery sends nothing more; left linked, it sends the answer
  // again; left unsettled (only a refusal or failure: an answer's link settles it), a redelivery (only if our
  // 200 came late) gets 503 until the lease runs out, then runs the turn again.
  const markSent = () =>
    asService(deps.sql(), SERVICE, (tx) => telegramUpdateSent(tx, botId, updateId)).catch((error) =>
      console.warn(`[${requestId}] marking Telegram update ${updateId} sent failed`, error)
    );
  // Only while nothing is stored or settled: the redelivery then runs the turn (and prepare) afresh.
  const release = () =>
    asService(deps.sql(), SERVICE, (tx) => releaseTelegramUpdate(tx, botId, updateId)).catch((error) =>
      console.warn(`[${requestId}] releasing Telegram update ${updateId} failed`, error)
    );
  if (!claim.claimed) {
    // A redelivery while the turn may still run (or its worker died): Telegram must deliver it again,
    // and the one after the lease runs the turn if nothing settled it meanwhile.
    if (claim.retry_after_seconds !== null) {
      throw new HttpError(
        503,
        'update_in_progress',
        'This update is still being handled; deliver it again later.',
        { 'retry-after': String(claim.retry_after_seconds) },
      );
    }
    // An answer still linked was stored but not sent: send it now, no model call.
    // Otherwise the turn was answered and sent, refused or failed (the chat was told): nothing to do.
    if (claim.answer !== null) {
      // Not sent for now: it stays linked, so the redelivery the 503 asks for tries again. Refused for good:
      // unlinked as if sent, so Telegram stops redelivering.
      const sent = await send(telegramText(claim.answer, texts), reply);
      await markSent();
      if (!sent) return json({ ok: true, handled: false, duplicate: true, undeliverable: true });
    }
    return json({ ok: true, handled: false, duplicate: true });
  }
  let turn;
  try {
    turn = await prepareTurn(deps, input);
  } catch (error) {
    if (!(error instanceof HttpError) || error.status >= 500) {
      // prepare is one transaction: nothing of the turn is stored, so the redelivery may run it.
      await release();
      throw error;
    }
    let told: boolean;
    try {
      told = await send(refusalText(error, texts), reply);
    } catch (failed) {
      // A refusal stores nothing (a quota refusal only its rate-limit hit) and the chat was not told: the
      // claim is given back rather than left leased and unsettled (503 update_in_progress for 7 minutes),
      // so the redelivery the 503 asks for is handled at once: refused again, most likely, and told.
      await release();
      throw failed;
    }
    // Told, or never to be: the claim is settled, so a redelivery (our 200 came late) does nothing more.
    await markSent();
    if (!told) return json({ ok: true, handled: false, refused: error.code, undeliverable: true });
    return json({ ok: true, handled: false, refused: error.code });
  }
  await telegram.sendChatAction(incoming.chatId, 'typing').catch((error) =>
    console.warn(`[${requestId}] sendChatAction failed`, error)
  );
  let result: TurnResult | undefined;
  try {
    for await (const event of answerTurn(deps, input, turn)) {
      if (event.type === 'result') result = event.result;
    }
    if (!result) throw new Error('The turn ended without a result');
    // The model failed: the turn is stored and metered as `error` (what it wrote before, possibly
    // nothing); Telegram sends no half answer, so the chat is told as below.
    if (result.failure) throw result.failure;
  } catch (error) {
    // The question is stored and the turn failed: the model (after its own retries; the turn is then
    // stored and metered as `error`) or anything else after prepare (only logged). A redelivery would
    // store the question again, so the chat is told, as for a refusal, and Telegram gets its 200.
    console.error(`[${requestId}] Telegram turn failed`, error);
    await telegram.sendMessage(incoming.chatId, texts.failed, reply).catch((sendError) =>
      console.warn(`[${requestId}] sendMessage failed`, sendError)
    );
    await markSent();
    return json({ ok: true, handled: false, failed: streamError(error).code });
  }
  const answered = result;
  // chat_finish linked the answer to the update (the claim settled with it, 20261123013000). Not sent for now:
  // the redelivery the 503 asks for sends it, with no model call. Refused for good: unlinked as if sent (the
  // turn stays stored and metered).
  const sent = await send(telegramText(answered.content, texts), reply);
  await markSent();
  if (!sent) return json({ ok: true, handled: false, undeliverable: true, conversation_id: turn.conversation_id });
  return json({ ok: true, handled: true, conversation_id: turn.conversation_id });
}
