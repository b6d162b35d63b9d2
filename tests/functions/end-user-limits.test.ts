/**
 * 20261123010500, over HTTP:
 * - chat/completions with `user` takes the end user's bucket
 *   (`api_key:<id>:user:<user>`, 60 a minute) as well as the key's: the 61st
 *   request of one end user in a minute is 429 `rate_limited` with
 *   Retry-After, taking nothing from the key, while another end user of the
 *   same key is served;
 * - a Telegram update whose worker died mid-turn (its claim left, the lease
 *   run out, nothing answered) is claimed again by Telegram's redelivery and
 *   answered, resuming with the question the dead turn stored: the question
 *   once, one answer, sent once; a redelivery while the lease holds runs
 *   nothing and is answered 503 `update_in_progress` with Retry-After the
 *   lease's remaining seconds (a 200 would end Telegram's redeliveries); one
 *   after the answer runs nothing and is answered 200 as a duplicate.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { asService } from '../../functions/chat/principal.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { connectTelegram, resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';
import { fillRateWindow } from '../support/rate-limit-window.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;

/** The Telegram webhook's principal: the service role, no key. */
const WEBHOOK = { kind: 'service', apiKeyId: null } as const;

const hits = async (bucket: string): Promise<number> => {
  const [row] = await sql<{ hits: number }[]>`
    select coalesce(sum(hits), 0)::int as hits from private.rate_limit_hits where bucket = ${bucket}`;
  return row.hits;
};

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'end-user-limits');
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('chat/completions: 60 a minute per end user behind a key', () => {
  it('refuses the 61st request of one end user with 429, taking nothing from the key; another end user is served', async () => {
    await createBot(sql, org.id, { slug: 'limits-desk' });
    const key = await createApiKey(sql, org);
    // A voice platform's key, with room for many callers.
    await sql`update public.api_keys set rate_limit_per_minute = 1000 where id = ${key.id}`;
    const ask = (user: string) =>
      fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'limits-desk', user, messages: [{ role: 'user', content: 'When do you open?' }] }),
      });

    // 58 turns already this minute in both buckets (written as the limiter counts them, so the test does not
    // spend a loaded machine's minute sending them), then the 59th and 60th through the function.
    await fillRateWindow(sql, [`api_key:${key.id}:user:caller-loud`, `api_key:${key.id}`], 58);
    for (let request = 59; request <= 60; request += 1) {
      const served = await ask('caller-loud');
      expect(served.status, `request ${request}`).toBe(200);
      await served.body?.cancel();
    }
    const refused = await ask('caller-loud');
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('rate_limited');
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    // At most the rest of the window plus one slot's share (60 s / 60 hits): 61 right after the window opens.
    expect(wait).toBeLessThanOrEqual(61);
    expect(await hits(`api_key:${key.id}:user:caller-loud`)).toBe(60);
    expect(await hits(`api_key:${key.id}`)).toBe(60);

    const other = await ask('caller-quiet');
    expect(other.status).toBe(200);
    await other.body?.cancel();
    expect(await hits(`api_key:${key.id}:user:caller-quiet`)).toBe(1);
    expect(await hits(`api_key:${key.id}`)).toBe(61);

    const [{ questions }] = await sql<{ questions: number }[]>`
      select count(*)::int as questions from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.org_id = ${org.id} and c.external_user_id = 'caller-loud' and m.role = 'user'`;
    expect(questions).toBe(2);
  });
});

describe('Telegram: a turn whose worker died', () => {
  let bot: string;
  let secret: string;
  const updateOf = (updateId: number, chatId: number, text: string) => ({
    update_id: updateId,
    message: {
      message_id: updateId % 1000,
      date: 1_700_000_000,
      chat: { id: chatId, type: 'private' },
      from: { id: chatId, is_bot: false, first_name: 'Ann' },
      text,
    },
  });
  const deliver = async (update: ReturnType<typeof updateOf>) => {
    const response = await fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
      body: JSON.stringify(update),
    });
    return {
      status: response.status,
      retryAfter: response.headers.get('retry-after'),
      body: await response.json() as Record<string, unknown>,
    };
  };
  /** Time passing for a claim: a lease held runs out (a settled claim has none). */
  const leaseRunsOut = (updateId: number) =>
    sql`update private.telegram_updates set claimed_until = now() - interval '1 second'
        where bot_id = ${bot} and update_id = ${updateId} and claimed_until is not null`;
  const messages = async (chatId: number) =>
    sql<{ role: string; content: string }[]>`
      select m.role::text, m.content from public.messages m join public.conversations c on c.id = m.conversation_id
      where c.bot_id = ${bot} and c.external_user_id = ${String(chatId)} order by m.id`;
  const sent = () => telegram.calls.filter((call) => call.method === 'sendMessage' && call.status === 200);

  beforeAll(async () => {
    bot = await createBot(sql, org.id, { slug: 'limits-telegram' });
    secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
  });

  it('answers the redelivery after the lease ran out, resuming with the stored question, once', async () => {
    const update = updateOf(277_001, 27_701, 'Do you deliver on Saturdays?');
    // The dead worker's traces: the claim, and the question stored by its prepare step (as the webhook runs them).
    await asService(sql, WEBHOOK, async (tx) => {
      await tx`select private.claim_telegram_update(${bot}, ${update.update_id})`;
      await tx`select private.chat_prepare(${bot}, null, 'telegram', ${String(update.message.chat.id)}, null,
        ${update.message.text}, null, ${update.update_id})`;
    });
    telegram.reset();

    // Within the lease the worker may still be running: the redelivery runs nothing, and is refused so
    // that Telegram delivers it again (a 200 would be its last delivery).
    const early = await deliver(update);
    expect(early.status).toBe(503);
    expect(early.body).toEqual({ error: { code: 'update_in_progress', message: expect.any(String), request_id: expect.any(String) } });
    // The lease's remaining seconds: just claimed, nearly all of its 7 minutes.
    expect(Number(early.retryAfter)).toBeGreaterThan(400);
    expect(Number(early.retryAfter)).toBeLessThanOrEqual(420);
    expect(sent()).toEqual([]);
    expect(stub.chatRequests).toEqual([]);
    expect(await messages(update.message.chat.id)).toEqual([{ role: 'user', content: 'Do you deliver on Saturdays?' }]);

    await leaseRunsOut(update.update_id);
    const resumed = await deliver(update);
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ ok: true, handled: true });
    expect(await messages(update.message.chat.id)).toEqual([
      { role: 'user', content: 'Do you deliver on Saturdays?' },
      { role: 'assistant', content: expect.any(String) },
    ]);
    expect(sent()).toHaveLength(1);

    // Answered and sent: a later redelivery (our 200 lost) runs and sends nothing, lease or not.
    await leaseRunsOut(update.update_id);
    const late = await deliver(update);
    expect(late).toEqual({ status: 200, retryAfter: null, body: { ok: true, handled: false, duplicate: true } });
    expect(await messages(update.message.chat.id)).toHaveLength(2);
    expect(sent()).toHaveLength(1);
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.usage_events where bot_id = ${bot} and kind = 'chat'
        and conversation_id in (select id from public.conversations where external_user_id = ${String(update.message.chat.id)})`;
    expect(n).toBe(1);
  });

  it('runs the turn on redelivery when the worker died before storing the question', async () => {
    const update = updateOf(277_002, 27_702, 'Is parking free?');
    await asService(sql, WEBHOOK, (tx) => tx`select private.claim_telegram_update(${bot}, ${update.update_id})`);
    await leaseRunsOut(update.update_id);
    const redelivered = await deliver(update);
    expect(redelivered.body).toMatchObject({ ok: true, handled: true });
    expect((await messages(update.message.chat.id)).map((message) => message.role)).toEqual(['user', 'assistant']);
    expect(sent()).toHaveLength(1);
  });
});
