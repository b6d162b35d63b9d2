/**
 * A signed-in user's calendar requests take from the user's calendar bucket
 * (`calendar:user:<id>`, 60 a minute over the function's user routes): the
 * 61st availability of one member in a minute is 429 `rate_limited` with
 * Retry-After, and counts nothing more; another member is served meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { startTestStack, type TestStack } from './support.ts';
import { fillRateWindow } from '../support/rate-limit-window.ts';

const DAY = 86_400_000;

let stack: TestStack;
let sql: Sql;
let org: ChatOrg;

const hits = async (userId: string): Promise<number> => {
  const [row] = await sql<{ hits: number }[]>`
    select coalesce(sum(hits), 0)::int as hits from private.rate_limit_hits where bucket = ${`calendar:user:${userId}`}`;
  return row.hits;
};

beforeAll(async () => {
  stack = await startTestStack();
  sql = createSql(stack.dbUrl, { max: 1 });
  org = await createChatOrg(sql, 'cal-rate-limit');
});

afterAll(async () => {
  if (org) await sql`delete from public.organizations where id = ${org.id}`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('GET /calendar/availability: 60 a minute per user', () => {
  it('refuses the 61st request of one member with 429 and Retry-After; another member is served', async () => {
    const from = new Date(Date.now() + DAY);
    const query = new URLSearchParams({
      org_id: org.id,
      from: from.toISOString(),
      to: new Date(from.getTime() + DAY).toISOString(),
      duration_minutes: '30',
    });
    const availability = (token: string) =>
      fetch(`${stack.functionsUrl}/calendar/availability?${query}`, { headers: { authorization: `Bearer ${token}` } });

    // 58 requests already this minute (written as the limiter counts them, so the test does not spend a
    // loaded machine's minute sending them), then the 59th and 60th through the function.
    await fillRateWindow(sql, [`calendar:user:${org.users.member}`], 58);
    for (let request = 59; request <= 60; request += 1) {
      const served = await availability(org.tokens.member);
      expect(served.status, `request ${request}`).toBe(200);
      await served.body?.cancel();
    }
    expect(await hits(org.users.member)).toBe(60);

    const refused = await availability(org.tokens.member);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.code).toBe('rate_limited');
    const wait = Number(refused.headers.get('retry-after'));
    expect(wait).toBeGreaterThanOrEqual(1);
    // At most the rest of the window plus one slot's share (60 s / 60 hits): 61 right after the window opens.
    expect(wait).toBeLessThanOrEqual(61);
    // A refused request is not counted.
    expect(await hits(org.users.member)).toBe(60);

    const other = await availability(org.tokens.admin);
    expect(other.status).toBe(200);
    expect(Array.isArray((await other.json()).slots)).toBe(true);
    expect(await hits(org.users.admin)).toBe(1);

    // Every user route of the function shares the bucket: an appointment is refused too, booking nothing.
    const booking = await fetch(`${stack.functionsUrl}/calendar/appointments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${org.tokens.member}`, 'content-type': 'application/json' },
      body: JSON.stringify({ org_id: org.id, starts_at: from.toISOString(), ends_at: new Date(from.getTime() + 1_800_000).toISOString() }),
    });
    expect(booking.status).toBe(429);
    await booking.body?.cancel();
    const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from public.appointments where org_id = ${org.id}`;
    expect(n).toBe(0);
  });
});
