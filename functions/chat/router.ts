import { HttpError } from '../_shared/errors.ts';

export type ChatRoute =
  | { name: 'chat' }
  | { name: 'completions' }
  | { name: 'models' }
  | { name: 'telegram'; botId: string }
  | { name: 'connectTelegram'; botId: string };

/**
 * The path below the function's name (`/chat/...`; `/functions/v1/chat/...`
 * also accepted, for a proxy forwarding the public path):
 * - POST /chat                          signed-in users, answered as SSE
 * - POST /chat/v1/chat/completions      bot API keys, OpenAI's wire format
 * - GET  /chat/v1/models                bot API keys: the bots as models
 * - POST /chat/telegram/:bot_id         Telegram's webhook for a bot
 * - POST /chat/bots/:bot_id/telegram     admins: connect a Telegram bot (token, webhook)
 */
export function matchRoute(method: string, pathname: string): ChatRoute {
  const path = chatPath(pathname);
  const only = (allowed: string, route: ChatRoute): ChatRoute => {
    if (method === allowed) return route;
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allowed}.`, {
      allow: allowed,
    });
  };
  if (path !== null) {
    const joined = path.join('/');
    if (joined === '') return only('POST', { name: 'chat' });
    if (joined === 'v1/chat/completions') return only('POST', { name: 'completions' });
    if (joined === 'v1/models') return only('GET', { name: 'models' });
    if (path.length === 2 && path[0] === 'telegram') return only('POST', { name: 'telegram', botId: path[1] });
    if (path.length === 3 && path[0] === 'bots' && path[2] === 'telegram') {
      return only('POST', { name: 'connectTelegram', botId: path[1] });
    }
  }
  throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
}

/** The segments below `/chat` (or `/functions/v1/chat`), or null for a path outside the function. */
function chatPath(pathname: string): string[] | null {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  return segments[start] === 'chat' ? segments.slice(start + 1) : null;
}

/** Whether the path is under `/chat/v1/`, the OpenAI-compatible API, whose clients read OpenAI's error body. */
export function isOpenAiPath(pathname: string): boolean {
  return chatPath(pathname)?.[0] === 'v1';
}
