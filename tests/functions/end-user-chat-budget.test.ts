/**
 * 20261123012900, over HTTP: one end user cannot spend the org's month.
 * - chat/completions naming its end user (`user`) on a Free org (200,000
 *   chat tokens; an end user's budget is the 25,000 floor): turns of 3,900
 *   metered tokens are served until the end user's 24 hours reach 25,000,
 *   then 429 `rate_limited` with Retry-After in OpenAI's error shape, the
 *   model not called and nothing stored; another end user of the same key,
 *   and the org's other customers, are still served;
 * - a Telegram chat at its budget is told in the chat when to come back,
 *   without the model being called or its message stored.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import type { OpenAiStub } from '../support/openai-stub.ts';
import type { TelegramStub } from '../support/telegram-stub.ts';
import { connectTelegram, resetStubs, startStubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';
import type { TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let stub: OpenAiStub;
let telegram: TelegramStub;
let org: ChatOrg;

const TURN = { prompt_tokens: 3500, completion_tokens: 400 };

/** Chat tokens metered to the end user's conversations (any bot of the org, any channel). */
const spentBy = async (endUser: string): Promise<number> => {
  const [row] = await sql<{ tokens: number }[]>`
    select coalesce(sum(u.tokens_in + u.tokens_out), 0)::int as tokens
    from public.usage_events u join public.conversations c on c.id = u.conversation_id
    where c.org_id = ${org.id} and c.external_user_id = ${endUser} and u.kind = 'chat'`;
  return row.tokens;
};

const questions = async (endUser: string): Promise<number> => {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from public.messages m join public.conversations c on c.id = m.conversation_id
    where c.org_id = ${org.id} and c.external_user_id = ${endUser} and m.role = 'user'`;
  return row.n;
};

beforeAll(async () => {
  ({ stack, sql, stub, telegram } = await startStubbedChatStack());
  org = await createChatOrg(sql, 'end-user-chat-budget');
});

afterAll(() => stopStubbedChatStack({ stack, sql, stub, telegram }, org ? [org.id] : []));

beforeEach(() => resetStubs({ stub, telegram }));

describe('chat/completions: an end user behind a key', () => {
  it('is served until their 24 hours reach the budget, then refused 429 before the model is called; others are served', async () => {
    await createBot(sql, org.id, { slug: 'budget-desk', model: 'gpt-4o-mini' });
    const key = await createApiKey(sql, org);
    const [{ budget, allowance }] = await sql<{ budget: number; allowance: number }[]>`
      select private.end_user_chat_budget(q.monthly_chat_tokens)::int as budget, q.monthly_chat_tokens::int as allowance
      from private.chat_quota(${org.id}) q`;
    expect([allowance, budget]).toEqual([200_000, 25_000]);
    const ask = (user: string) =>
      fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'budget-desk', user, messages: [{ role: 'user', content: 'When do you open?' }] }),
      });

    // Let through while under the budget: 6 turns make 23,400, the 7th is let through and ends at 27,300.
    const served = Math.ceil(budget / (TURN.prompt_tokens + TURN.completion_tokens));
    expect(served).toBe(7);
    for (let turn = 1; turn <= served; turn += 1) {
      stub.answerChat({ content: 'We open at nine.', usage: TURN });
      const response = await ask('budget-loud');
      expect(response.status, `turn ${turn}`).toBe(200);
      await response.json();
    }
    expect(await spentBy('budget-loud')).toBe(served * 3900);
    expect(stub.chatRequests).toHaveLength(served);

    stub.answerChat({ content: 'We open at nine.', usage: TURN });
    const refused = await ask('budget-loud');
    expect(refused.status).toBe(429);
    const body = await refused.json();
    expect(body.error).toMatchObject({ code: 'rate_limited', type: 'rate_limit_error' });
    expect(body.error.message).toContain('24 hours');
    expect(refused.headers.get('x-ratelimit-scope')).toBe('end_user_daily_tokens');
    // The oldest of the turns just metered leaves the window in a day.
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThan(86_400 - 120);
    expect(wait).toBeLessThanOrEqual(86_400);
    expect(stub.chatRequests).toHaveLength(served);
    expect(await questions('budget-loud')).toBe(served);
    expect(await spentBy('budget-loud')).toBe(served * 3900);

    // Another end user of the key, and so the org's other customers, are still served.
    const other = await ask('budget-quiet');
    expect(other.status).toBe(200);
    await other.json();
    const [{ used }] = await sql<{ used: number }[]>`select used_chat_tokens::int as used from private.chat_quota(${org.id})`;
    expect(used).toBeLessThan(allowance);
  });
});

describe('Telegram: a chat at its budget', () => {
  it('is told in the chat when to come back; the model is not called and the message not stored', async () => {
    const bot = await createBot(sql, org.id, { slug: 'budget-telegram', model: 'gpt-4o-mini' });
    const secret = await connectTelegram({ stack, sql, telegram }, bot, org.tokens.admin);
    const chatId = 30_401;
    const deliver = (updateId: number, text: string) =>
      fetch(`${stack.functionsUrl}/chat/telegram/${bot}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-telegram-bot-api-secret-token': secret },
        body: JSON.stringify({
          update_id: updateId,
          message: {
            message_id: updateId % 1000,
            date: 1_700_000_000,
            chat: { id: chatId, type: 'private' },
            from: { id: chatId, is_bot: false, first_name: 'Ann' },
            text,
          },
        }),
      });

    stub.answerChat({ content: 'We open at nine.', usage: { prompt_tokens: 20_000, completion_tokens: 5_000 } });
    const first = await deliver(304_001, 'When do you open?');
    expect(await first.json()).toMatchObject({ ok: true, handled: true });
    telegram.reset();

    const second = await deliver(304_002, 'And on Sunday?');
    expect(second.status).toBe(200);
    expect(await second.json()).toEqual({ ok: true, handled: false, refused: 'rate_limited' });
    const told = telegram.calls.filter((call) => call.method === 'sendMessage');
    expect(told).toHaveLength(1);
    expect(told[0].body.text).toMatch(/^You've used up today's messages with this assistant; please try again in about 24 hours\.$/);
    expect(stub.chatRequests).toHaveLength(1);
    expect(await questions(String(chatId))).toBe(1);

    // A budget that frees up within a minute or two is still the day's budget, not a per-minute bucket.
    await sql`update public.usage_events set created_at = now() - interval '23 hours 59 minutes 30 seconds'
      where org_id = ${org.id} and bot_id = ${bot} and kind = 'chat'`;
    telegram.reset();
    const third = await deliver(304_003, 'And on Monday?');
    expect(await third.json()).toEqual({ ok: true, handled: false, refused: 'rate_limited' });
    const toldAgain = telegram.calls.filter((call) => call.method === 'sendMessage');
    expect(toldAgain.map((call) => call.body.text)).toEqual([
      expect.stringMatching(/^You've used up today's messages with this assistant; please try again in about 1 minute\.$/),
    ]);
  });
});
