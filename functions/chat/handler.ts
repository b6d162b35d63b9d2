/**
 * The chat function: every entry point to a bot (see router.ts), one core
 * (core.ts). verify_jwt is off for this function as a whole, since API keys
 * and Telegram carry no Supabase JWT; the signed-in route verifies the token
 * itself.
 */
import { requireUser } from '../_shared/auth.ts';
import type { Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { createHandler } from '../_shared/handler.ts';
import { openAiErrorResponse } from '../_shared/openai-wire.ts';
import { completions, models } from './completions.ts';
import type { ChatDeps } from './core.ts';
import { type ChatRoute, isOpenAiPath, matchRoute } from './router.ts';
import { connectTelegram } from './telegram-connect.ts';
import { telegramWebhook } from './telegram-webhook.ts';
import { webChat } from './web-chat.ts';

export function createChatHandler(deps: ChatDeps & { sql: () => Sql; env?: EnvReader }): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  return createHandler(async (req, { requestId }) => {
    const pathname = new URL(req.url).pathname;
    let route: ChatRoute;
    try {
      route = matchRoute(req.method, pathname);
    } catch (error) {
      // A wrong method or an unknown path under /chat/v1/ is an OpenAI client's too.
      if (isOpenAiPath(pathname)) return openAiErrorResponse(error, requestId);
      throw error;
    }
    switch (route.name) {
      case 'chat':
        return webChat(deps, req, await requireUser(req, { env }), requestId);
      case 'completions':
      case 'models':
        // OpenAI clients read OpenAI's error body (which keeps our code and message).
        try {
          return await (route.name === 'completions' ? completions(deps, req, requestId) : models(deps, req));
        } catch (error) {
          return openAiErrorResponse(error, requestId);
        }
      case 'telegram':
        return telegramWebhook(deps, req, route.botId, requestId);
      case 'connectTelegram':
        return connectTelegram(deps, req, await requireUser(req, { env }), route.botId);
    }
  }, { env });
}
