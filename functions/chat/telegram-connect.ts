/**
 * POST /chat/bots/:bot_id/telegram { bot_token } (admins): connects a Telegram
 * bot in one step, with no transaction open while Telegram answers (the
 * store's audited write takes the org's audit chain head, which every audited
 * write of the org waits for). begin_bot_telegram_connect (as the caller, so
 * bots.manage decides) checks the bot and the token and takes a 60-second
 * lease on both, Telegram's setWebhook points the bot's updates at this
 * function with the lease's secret, and only when Telegram accepts, and while
 * the lease holds, does finish_bot_telegram_connect store token and secret
 * (checking again under the bot's lock; the lease ends), so a token Telegram
 * refuses connects nothing. The
 * lease keeps two connects of one bot or one token from interleaving their
 * setWebhook and store (Telegram would keep one secret or address, the
 * database another): the second is a 409 telegram_connect_in_progress.
 * A Telegram bot answers through one webhook, so its token connects one of
 * our bots at most: a token another bot holds (23505) is a 409
 * telegram_already_connected, not a silent move that would cut the other bot
 * off.
 */
import { z } from 'zod';
import type { UserClaims } from '../_shared/auth.ts';
import { type TransactionSql, withUserScope } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { isPostgresError, mapPostgresErrors } from '../_shared/pg-errors.ts';
import { createTelegramClient, TelegramApiError, telegramApiBaseUrl } from '../_shared/telegram.ts';
import type { ChatDeps } from './core.ts';
import { readChatBody, uuid } from './schemas.ts';

const connectBody = z.object({
  bot_token: z.string({ error: 'bot_token must be a string' }).trim().min(1, { error: 'bot_token is required' }).max(200),
});

export async function connectTelegram(deps: ChatDeps, req: Request, claims: UserClaims, botId: string): Promise<Response> {
  const env: EnvReader = deps.env ?? processEnv;
  if (!uuid.safeParse(botId).success) throw new HttpError(404, 'not_found', 'The bot was not found.');
  const { bot_token: token } = await readChatBody(req, connectBody);
  const publicUrl = env('SUPABASE_URL')?.replace(/\/+$/, '');
  if (!publicUrl) throw new Error('SUPABASE_URL is not set');
  const asCaller = <T>(work: (tx: TransactionSql) => Promise<T>) =>
    mapPostgresErrors(() => withUserScope(deps.sql(), claims, work), {
      forbidden: 'Only admins can connect Telegram.',
      notFound: 'The bot was not found.',
    }).catch((error: unknown) => {
      if (isPostgresError(error) && error.code === '23505') {
        throw new HttpError(409, 'telegram_already_connected', 'This Telegram bot is already connected to another bot; disconnect it there first.');
      }
      if (isPostgresError(error) && error.code === 'PT409') {
        throw new HttpError(409, 'telegram_connect_in_progress', 'This bot or this Telegram token is being connected; try again in a minute.');
      }
      throw error;
    });

  const [lease] = await asCaller((tx) =>
    tx<{ webhook_path: string; webhook_secret: string }[]>`
      select webhook_path, webhook_secret from private.begin_bot_telegram_connect(${botId}, ${token})`
  );
  const endLease = () =>
    asCaller((tx) => tx`select private.end_bot_telegram_connect(${botId}, ${lease.webhook_secret})`).catch((error) =>
      console.warn(`ending the Telegram connect of bot ${botId} failed (it lapses within a minute)`, error)
    );
  const webhookUrl = `${publicUrl}${lease.webhook_path}`;
  try {
    await createTelegramClient({ token, baseUrl: telegramApiBaseUrl(env) }).setWebhook(webhookUrl, lease.webhook_secret);
  } catch (error) {
    await endLease();
    if (error instanceof TelegramApiError && (error.errorCode === 401 || error.errorCode === 404)) {
      throw new HttpError(422, 'invalid_bot_token', 'Telegram does not know this bot token.');
    }
    throw new HttpError(502, 'telegram_unavailable', 'Telegram did not accept the webhook; try again.', {}, {
      cause: error,
    });
  }
  await asCaller((tx) => tx`select 1 from private.finish_bot_telegram_connect(${botId}, ${token}, ${lease.webhook_secret})`)
    .catch(async (error: unknown) => {
      await endLease();
      throw error;
    });
  return json({ connected: true, webhook_url: webhookUrl });
}
