/**
 * A bot's own time zone over HTTP (GET /calendar/availability with bot_id, and
 * GET /calendar/bots/:bot_id/availability for the bot's key): a São Paulo bot
 * of a Berlin org, open 09:00-18:00, offers slots from 09:00 São Paulo time
 * and answers in its zone by default; a bot without a zone answers in the
 * org's, its hours read there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';

const TOKEN_KEY = Buffer.from('bot-time-zone-token-key-32-bytes').toString('base64');
const ORG_ZONE = 'Europe/Berlin';
const BOT_ZONE = 'America/Sao_Paulo';
const DAY = 86_400_000;

let stub: CalendarStub;
let stack: TestStack;
let sql: Sql;
let org: ChatOrg;
let saoPaulo: string;
let berlinDesk: string;
/** A Monday at least a week ahead, YYYY-MM-DD. */
let monday: string;

function wall(date: string, time: string, zone: string): string {
  return instantFromWallTime(`${date}T${time}`, zone).toISOString();
}

function starts(body: Record<string, unknown>): string[] {
  return (body.slots as { start: string }[]).map((slot) => slot.start);
}

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({
    env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: TOKEN_KEY, CALENDAR_REDIRECT_ORIGINS: 'https://app.example.com' },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'bot-time-zone');
  await sql`update public.organizations set time_zone = ${ORG_ZONE} where id = ${org.id}`;
  saoPaulo = await createBot(sql, org.id, { slug: 'bot-time-zone-sao-paulo' });
  berlinDesk = await createBot(sql, org.id, { slug: 'bot-time-zone-berlin' });
  await sql`update public.bots set time_zone = ${BOT_ZONE} where id = ${saoPaulo}`;
  for (const bot of [saoPaulo, berlinDesk]) {
    for (const weekday of [1, 2, 3, 4, 5]) {
      await sql`insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
                values (${org.id}, ${bot}, ${weekday}, '09:00', '18:00')`;
    }
  }
  let day = new Date(Date.now() + 7 * DAY);
  while (day.getUTCDay() !== 1) day = new Date(day.getTime() + DAY);
  monday = day.toISOString().slice(0, 10);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('a bot with its own time zone', () => {
  it('offers its hours in its zone, and answers in it by default', async () => {
    // Monday 00:00 to Tuesday 00:00 UTC: São Paulo's 09:00-18:00 is 12:00-21:00Z, Berlin's ends at 16:00 or 17:00Z.
    const query = new URLSearchParams({
      org_id: org.id,
      bot_id: saoPaulo,
      from: `${monday}T00:00:00Z`,
      to: new Date(Date.parse(`${monday}T00:00:00Z`) + DAY).toISOString(),
      duration_minutes: '60',
    });
    const answer = await callCalendar(stack.functionsUrl, `/availability?${query}`, { token: org.tokens.member });
    expect(answer.status).toBe(200);
    expect(answer.body.time_zone).toBe(BOT_ZONE);
    const times = starts(answer.body);
    expect(times.map((start) => start.slice(11))).toEqual(
      ['09', '10', '11', '12', '13', '14', '15', '16', '17'].map((hour) => `${hour}:00:00-03:00`),
    );
    expect(new Date(times[0] ?? '').toISOString()).toBe(wall(monday, '09:00', BOT_ZONE));

    // The bot's key gets the same slots and zone; an explicit zone still wins.
    const key = await createApiKey(sql, org, ['calendar.read']);
    query.delete('org_id');
    query.delete('bot_id');
    const asBot = await callCalendar(stack.functionsUrl, `/bots/${saoPaulo}/availability?${query}`, { token: key.key });
    expect(asBot.status).toBe(200);
    expect(asBot.body.time_zone).toBe(BOT_ZONE);
    expect(starts(asBot.body)).toEqual(times);
    const inUtc = await callCalendar(stack.functionsUrl, `/bots/${saoPaulo}/availability?${query}&time_zone=UTC`, { token: key.key });
    expect(inUtc.body.time_zone).toBe('UTC');
    expect(starts(inUtc.body)[0]).toBe(`${wall(monday, '09:00', BOT_ZONE).slice(0, 19)}+00:00`);
  });

  it('a bot without a zone keeps the org\'s, its hours read there', async () => {
    const query = new URLSearchParams({
      org_id: org.id,
      bot_id: berlinDesk,
      from: `${monday}T00:00:00Z`,
      to: new Date(Date.parse(`${monday}T00:00:00Z`) + DAY).toISOString(),
      duration_minutes: '60',
    });
    const answer = await callCalendar(stack.functionsUrl, `/availability?${query}`, { token: org.tokens.member });
    expect(answer.status).toBe(200);
    expect(answer.body.time_zone).toBe(ORG_ZONE);
    const times = starts(answer.body);
    expect(times).toHaveLength(9);
    expect(new Date(times[0] ?? '').toISOString()).toBe(wall(monday, '09:00', ORG_ZONE));
  });
});
