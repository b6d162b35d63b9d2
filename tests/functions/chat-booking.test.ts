/**
 * The chat core's booking step over HTTP: a signed-in user's turn carrying
 * `booking` books inside a free slot of the bot's business hours and says
 * so, linking the appointment to the conversation; a taken or closed time is
 * refused in words with the next free times and books nothing; a malformed
 * booking is a 400 before anything is stored. A booking turn sent again in
 * its conversation (its answer lost) is confirmed again, not refused by its
 * own booking.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { parseSse } from '../support/sse.ts';
import { startTestStack, type TestStack } from './support.ts';

const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;

let stack: TestStack;
let sql: Sql;
let org: ChatOrg;
let bot: string;
/** A Monday at least two days away, YYYY-MM-DD. */
let monday: string;

const berlin = (date: string, time: string) => instantFromWallTime(`${date}T${time}`, ZONE).toISOString();

function nextMonday(): string {
  const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T12:00:00Z`);
  for (let day = 2; day <= 9; day += 1) {
    const noon = new Date(today + day * DAY);
    if (noon.getUTCDay() === 1) return noon.toISOString().slice(0, 10);
  }
  throw new Error('unreachable');
}

async function turn(body: Record<string, unknown>) {
  const response = await fetch(`${stack.functionsUrl}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${org.tokens.member}` },
    body: JSON.stringify({ bot_id: bot, ...body }),
  });
  const text = await response.text();
  return { status: response.status, events: response.status === 200 ? parseSse(text) : [], body: text };
}

const answerOf = (events: { event: string; data: unknown }[]) =>
  events.filter((event) => event.event === 'delta').map((event) => (event.data as { text: string }).text).join('');

async function appointmentCount(): Promise<number> {
  const [row] = await sql<{ count: number }[]>`select count(*)::int from public.appointments where org_id = ${org.id}`;
  return row.count;
}

beforeAll(async () => {
  stack = await startTestStack();
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'chat-booking');
  bot = await createBot(sql, org.id, { slug: 'front-desk' });
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
  for (let weekday = 1; weekday <= 5; weekday += 1) {
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
  }
  monday = nextMonday();
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('the booking step', () => {
  it('books a free slot, says so, and links the appointment to the conversation', async () => {
    const { status, events } = await turn({
      message: 'Monday at ten, please.',
      booking: {
        starts_at: berlin(monday, '10:00'),
        ends_at: berlin(monday, '10:30'),
        attendee_name: 'Ada Lovelace',
        attendee_email: 'ada@example.com',
      },
    });
    expect(status).toBe(200);
    const booked = events.find((event) => event.event === 'appointment')?.data as { id: string };
    expect(booked?.id).toBeTruthy();
    expect(answerOf(events)).toContain("You're booked for Monday");
    expect(answerOf(events)).toContain('10:00–10:30 (Europe/Berlin)');
    const conversation = (events.find((event) => event.event === 'conversation')?.data as { conversation_id: string })
      .conversation_id;
    const [row] = await sql<{ source: string; bot_id: string; conversation_id: string; starts_at: Date; status: string }[]>`
      select source, bot_id, conversation_id, starts_at, status from public.appointments where id = ${booked.id}`;
    expect(row).toMatchObject({ source: 'bot', bot_id: bot, conversation_id: conversation, status: 'booked' });
    expect(row.starts_at.toISOString()).toBe(berlin(monday, '10:00'));
    // The member who chatted booked it, as the conversation's own insert says: created_by and the audit row name them.
    const [{ created_by: createdBy }] = await sql<{ created_by: string | null }[]>`
      select created_by from public.appointments where id = ${booked.id}`;
    expect(createdBy).toBe(org.users.member);
    const audited = await sql<{ actor_user_id: string | null; actor_api_key_id: string | null }[]>`
      select actor_user_id, actor_api_key_id from public.audit_log
      where table_name = 'appointments' and record_id = ${booked.id} and action = 'insert'`;
    expect(audited).toEqual([{ actor_user_id: org.users.member, actor_api_key_id: null }]);
    const [stored] = await sql<{ content: string; model: string }[]>`
      select content, model from public.messages where conversation_id = ${conversation} and role = 'assistant'`;
    expect(stored).toEqual({ content: answerOf(events), model: 'booking' });
  });

  it('refuses a taken time in words, offering the next free times, and books nothing', async () => {
    const before = await appointmentCount();
    const { status, events } = await turn({
      message: 'Monday at ten for me too.',
      booking: {
        starts_at: berlin(monday, '10:00'),
        ends_at: berlin(monday, '10:30'),
        attendee_name: 'Grace Hopper',
        attendee_phone: '+1 415 555 0100',
      },
    });
    expect(status).toBe(200);
    expect(events.some((event) => event.event === 'appointment')).toBe(false);
    const answer = answerOf(events);
    expect(answer).toContain("That time isn't available.");
    expect(answer).toContain('The next free times are: Monday');
    expect(answer).toContain('10:30–11:00');
    expect(await appointmentCount()).toBe(before);
  });

  it('refuses a time outside business hours', async () => {
    const saturday = new Date(Date.parse(`${monday}T12:00:00Z`) + 5 * DAY).toISOString().slice(0, 10);
    const { events } = await turn({
      message: 'Saturday morning?',
      booking: {
        starts_at: berlin(saturday, '10:00'),
        ends_at: berlin(saturday, '10:30'),
        attendee_name: 'Alan Turing',
        attendee_email: 'alan@example.com',
      },
    });
    expect(answerOf(events)).toContain("That time isn't available.");
  });

  it('confirms in the bot\'s own time zone when the bot has one (20261123010000)', async () => {
    const branch = await createBot(sql, org.id, { slug: 'sao-paulo-desk' });
    await sql`update public.bots set time_zone = 'America/Sao_Paulo' where id = ${branch}`;
    await sql`insert into public.business_hours (org_id, bot_id, weekday, opens, closes) values (${org.id}, ${branch}, 1, '09:00', '17:00')`;
    const saoPaulo = (time: string) => instantFromWallTime(`${monday}T${time}`, 'America/Sao_Paulo').toISOString();
    const { status, events } = await turn({
      bot_id: branch,
      message: 'Monday at ten, São Paulo time.',
      booking: { starts_at: saoPaulo('10:00'), ends_at: saoPaulo('10:30'), attendee_name: 'Clarice Lispector', attendee_email: 'clarice@example.com' },
    });
    expect(status).toBe(200);
    expect(events.some((event) => event.event === 'appointment')).toBe(true);
    expect(answerOf(events)).toContain('10:00–10:30 (America/Sao_Paulo)');
  });

  it('confirms a booking turn sent again in its conversation, booking nothing more (20261123011300)', async () => {
    const booking = {
      starts_at: berlin(monday, '11:30'),
      ends_at: berlin(monday, '12:00'),
      attendee_name: 'Retrying Rita',
      attendee_email: 'Rita.Retry@Example.com',
      attendee_phone: '+1 (415) 555-0142',
    };
    const first = await turn({ message: 'Monday at half past eleven, please.', booking });
    expect(first.status).toBe(200);
    const booked = first.events.find((event) => event.event === 'appointment')?.data as { id: string };
    expect(booked?.id).toBeTruthy();
    const conversation = (first.events.find((event) => event.event === 'conversation')?.data as { conversation_id: string })
      .conversation_id;
    const before = await appointmentCount();

    // The SSE answer was lost; the widget sends the same turn again, its fields spelt as the user typed them.
    const again = await turn({
      conversation_id: conversation,
      message: 'Monday at half past eleven, please.',
      booking: { ...booking, attendee_name: ' Retrying Rita ', attendee_email: 'rita.retry@example.com ', attendee_phone: '+14155550142' },
    });
    expect(again.status).toBe(200);
    const answer = answerOf(again.events);
    expect(answer).toContain("You're booked for Monday");
    expect(answer).toContain('11:30–12:00 (Europe/Berlin)');
    expect(answer).not.toContain("isn't available");
    expect((again.events.find((event) => event.event === 'appointment')?.data as { id: string }).id).toBe(booked.id);
    expect(await appointmentCount()).toBe(before);
    const stored = await sql<{ content: string }[]>`
      select content from public.messages where conversation_id = ${conversation} and role = 'assistant' order by created_at`;
    expect(stored.map((row) => row.content)).toEqual([answerOf(first.events), answer]);

    // Another attendee in the same conversation is still refused: the slot is Rita's.
    const other = await turn({
      conversation_id: conversation,
      message: 'And for my colleague?',
      booking: { ...booking, attendee_name: 'Colleague Carl', attendee_email: 'carl@example.com' },
    });
    expect(answerOf(other.events)).toContain("That time isn't available.");
    expect(other.events.some((event) => event.event === 'appointment')).toBe(false);
    expect(await appointmentCount()).toBe(before);
  });

  it('answers a malformed booking with 400 before anything is stored', async () => {
    const [{ count: messagesBefore }] = await sql<{ count: number }[]>`
      select count(*)::int from public.messages where org_id = ${org.id}`;
    const { status, body } = await turn({
      message: 'Book it',
      booking: { starts_at: berlin(monday, '11:00'), ends_at: berlin(monday, '10:00'), attendee_name: 'X' },
    });
    expect(status).toBe(400);
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'invalid_request' } });
    const [{ count: messagesAfter }] = await sql<{ count: number }[]>`
      select count(*)::int from public.messages where org_id = ${org.id}`;
    expect(messagesAfter).toBe(messagesBefore);
  });

  it('answers a NUL in the attendee\'s fields with 400 before anything is stored', async () => {
    const count = async () =>
      (await sql<{ count: number }[]>`select count(*)::int from public.messages where org_id = ${org.id}`)[0].count;
    const [messagesBefore, appointmentsBefore] = [await count(), await appointmentCount()];
    const booking = { starts_at: berlin(monday, '15:00'), ends_at: berlin(monday, '15:30'), attendee_name: 'Ann' };
    const fields = { attendee_name: 'A\u0000nn', attendee_email: 'ann\u0000@example.com', attendee_phone: '+49\u0000', notes: '\u0000' };
    for (const [field, value] of Object.entries(fields)) {
      const { status, body } = await turn({ message: 'Book it', booking: { ...booking, [field]: value } });
      expect(status).toBe(400);
      expect(JSON.parse(body).error).toMatchObject({ code: 'invalid_request', message: expect.stringContaining(`${field} must not contain a NUL`) });
    }
    expect(await count()).toBe(messagesBefore);
    expect(await appointmentCount()).toBe(appointmentsBefore);
  });
});
