/**
 * A refused streaming turn (rate limit, quota, disabled bot...) answers JSON
 * before any stream exists: it must not leave an SSE writer behind, whose
 * keep-alive timer would run every 15 s for as long as the function lives.
 * The database is faked: every chat_prepare is refused.
 */
import { describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { completions } from '../../functions/chat/completions.ts';
import type { ChatDeps } from '../../functions/chat/core.ts';
import { webChat } from '../../functions/chat/web-chat.ts';

const BOT = '11111111-1111-4111-8111-111111111111';

/** A Sql whose transactions answer each query by what it calls; chat_prepare refuses with 429. */
function refusingSql(): Sql {
  const answer = (text: string): unknown[] => {
    if (text.includes('verify_api_key')) return [{ api_key_id: BOT, org_id: BOT, scopes: ['chat.write'] }];
    if (text.includes('bot_for_api_key')) return [{ bot_id: BOT }];
    if (text.includes('chat_prepare')) {
      return [{ result: { ok: false, code: 'rate_limited', message: 'Too many messages.', retry_after: 30 } }];
    }
    return [];
  };
  const tx = (strings: TemplateStringsArray) => {
    const rows = Promise.resolve(answer(strings.join('?')));
    return Object.assign(rows, { execute: () => rows });
  };
  return { begin: async (fn: (t: typeof tx) => Promise<unknown>) => await fn(tx) } as unknown as Sql;
}

const timers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

async function refusedStatus(call: () => Promise<Response>): Promise<number> {
  try {
    await call();
  } catch (error) {
    if (error instanceof HttpError) return error.status;
    throw error;
  }
  return 200;
}

describe('refused streaming turns', () => {
  const deps: ChatDeps = { sql: refusingSql };

  it('leave no keep-alive timer behind, on web chat or chat/completions', async () => {
    const before = timers();
    for (let i = 0; i < 20; i += 1) {
      const web = new Request('http://local/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ bot_id: BOT, message: 'hello' }),
      });
      const claims = { role: 'authenticated' as const, sub: BOT, exp: Math.floor(Date.now() / 1000) + 60 };
      expect(await refusedStatus(() => webChat(deps, web, claims, 'test'))).toBe(429);

      const api = new Request('http://local/chat/v1/chat/completions', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ak_${'0'.repeat(48)}` },
        body: JSON.stringify({ model: 'bot', stream: true, messages: [{ role: 'user', content: 'hello' }] }),
      });
      expect(await refusedStatus(() => completions(deps, api, 'test'))).toBe(429);
    }
    expect(timers() - before).toBeLessThan(5);
  });
});
