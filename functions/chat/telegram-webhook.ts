/**
 * POST /chat/telegram/:bot_id: Telegram's webhook for a bot, registered with
 * the secret token set_bot_telegram returned (Telegram echoes it in
 * X-Telegram-Bot-Api-Secret-Token; anything else is refused with 401 before
 * the body is read). One conversation per Telegram chat. The answer goes
 * back through the Bot API; the webhook itself answers 200 once the update is
 * handled, also when the bot refuses (rate limit, quota, disabled): the user
 * is told in the chat, and Telegram must not redeliver. `/start` (a user
 * opening the bot) is answered with the bot's greeting.
 */
import { type ChatMessage } from '../_shared/chat/index.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import {
  createTelegramClient,
  incomingText,
  TELEGRAM_SECRET_HEADER,
  telegramApiBaseUrl,
  telegramUpdateSchema,
  verifyTelegramSecret,
} from '../_shared/telegram.ts';
import { answerTurn, type ChatDeps, prepareTurn, type TurnInput } from './core.ts';
import { asService, type ChatPrincipal } from './principal.ts';
import { telegramBot } from './queries.ts';
import { readChatBody, uuid } from './schemas.ts';

const SERVICE: ChatPrincipal = { kind: 'service', apiKeyId: null };
const DEFAULT_GREETING = 'Hello! Ask me anything.';

/** What the chat is told when the bot refuses a message. */
function refusalText(error: HttpError): string {
  if (error.status === 429) {
    return `You're sending messages too fast; please wait ${error.headers['retry-after'] ?? 'a few'} seconds.`;
  }
  return 'This assistant is not available right now. Please try again later.';
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
  if (!incoming) return json({ ok: true, handled: false });

  const telegram = createTelegramClient({ token: bot.bot_token, baseUrl: telegramApiBaseUrl(env) });
  // What Telegram sends when a user opens the bot: the bot's greeting, no model call, nothing stored.
  if (/^\/start(@\w+)?(\s|$)/.test(incoming.text.trim())) {
    await telegram.sendMessage(incoming.chatId, bot.greeting ?? DEFAULT_GREETING);
    return json({ ok: true, handled: true, greeted: true });
  }
  const input: TurnInput = {
    principal: SERVICE,
    botId,
    conversationId: null,
    channel: 'telegram',
    externalUserId: String(incoming.chatId),
    message: incoming.text,
    history: null as ChatMessage[] | null,
    startedAt,
  };
  let turn;
  try {
    turn = await prepareTurn(deps, input);
  } catch (error) {
    if (!(error instanceof HttpError) || error.status >= 500) throw error;
    await telegram.sendMessage(incoming.chatId, refusalText(error), { replyToMessageId: incoming.messageId });
    return json({ ok: true, handled: false, refused: error.code });
  }
  await telegram.sendChatAction(incoming.chatId, 'typing').catch((error) =>
    console.warn(`[${requestId}] sendChatAction failed`, error)
  );
  let answer = '';
  for await (const event of answerTurn(deps, input, turn)) {
    if (event.type === 'result') answer = event.result.content;
  }
  await telegram.sendMessage(incoming.chatId, answer, { replyToMessageId: incoming.messageId });
  return json({ ok: true, handled: true, conversation_id: turn.conversation_id });
}
