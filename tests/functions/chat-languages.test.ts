/**
 * What the bot writes itself follows its language, over HTTP with the model
 * behind a local OpenAI wire-format stub: the hand-off of a German bot, the
 * contact added after a Turkish or Korean ('auto') no-answer, the booking
 * step's confirmation and refusal with dates in the bot's locale. A Turkish
 * or Japanese bot's no-answer sentence escalates the conversation and cites
 * nothing though a source was retrieved. A zh-TW bot is asked for, and
 * escalates on, the Traditional Chinese sentence, its contact in Traditional
 * Chinese. An answer citing a source beside the sentence is an answer: not
 * escalated, its citation kept. A booking while an org calendar needs
 * reauthorisation is refused with no other time offered.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { instantFromWallTime } from '../../functions/_shared/calendar/index.ts';
import { BOT_TEXTS } from '../../functions/_shared/chat/bot-texts.ts';
import { NO_ANSWER_TEXT, NO_ANSWER_TEXTS } from '../../functions/_shared/chat/index.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import { parseSse } from '../support/sse.ts';
import { resetStubs, startStubbedChatStack, type StubbedChatStack, stopStubbedChatStack } from './stubbed-chat-stack.ts';

const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
const CONTACT = '+49301234567';

let chat: StubbedChatStack;
let org: ChatOrg;
let reauthOrg: ChatOrg;
let key: string;
let monday: string;

const berlin = (date: string, time: string) => instantFromWallTime(`${date}T${time}`, ZONE).toISOString();

/** A Monday at least two days away, YYYY-MM-DD. */
function nextMonday(): string {
  const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T12:00:00Z`);
  for (let day = 2; day <= 9; day += 1) {
    const noon = new Date(today + day * DAY);
    if (noon.getUTCDay() === 1) return noon.toISOString().slice(0, 10);
  }
  throw new Error('unreachable');
}

/** One turn through the OpenAI-compatible endpoint: the answer, and the conversation as stored. */
async function complete(bot: string, message: string) {
  const response = await fetch(`${chat.stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: bot, messages: [{ role: 'user', content: message }] }),
  });
  expect(response.status).toBe(200);
  const body = await response.json() as { choices: { message: { content: string } }[] };
  const conversation = response.headers.get('x-conversation-id')!;
  const [stored] = await chat.sql<{ content: string; citations: unknown[]; status: string; model: string }[]>`
    select m.content, m.citations, m.model, c.status
    from public.messages m join public.conversations c on c.id = m.conversation_id
    where m.conversation_id = ${conversation} and m.role = 'assistant'`;
  return { answer: body.choices[0].message.content, stored };
}

/** A booking step through the signed-in SSE endpoint: the answer's text and whether it booked. */
async function book(member: ChatOrg, bot: string, start: string, end: string, attendee: string) {
  const response = await fetch(`${chat.stack.functionsUrl}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${member.tokens.member}` },
    body: JSON.stringify({
      bot_id: bot,
      message: 'Book it, please.',
      booking: { starts_at: start, ends_at: end, attendee_name: attendee, attendee_email: 'guest@chat-languages.test' },
    }),
  });
  expect(response.status).toBe(200);
  const events = parseSse(await response.text());
  return {
    answer: events.filter((event) => event.event === 'delta').map((event) => (event.data as { text: string }).text).join(''),
    booked: events.some((event) => event.event === 'appointment'),
  };
}

async function appointmentCount(orgId: string): Promise<number> {
  const [row] = await chat.sql<{ count: number }[]>`select count(*)::int from public.appointments where org_id = ${orgId}`;
  return row.count;
}

async function openWeekdays(orgId: string): Promise<void> {
  await chat.sql`update public.organizations set time_zone = ${ZONE} where id = ${orgId}`;
  for (let weekday = 1; weekday <= 5; weekday += 1) {
    await chat.sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${orgId}, ${weekday}, '09:00', '17:00')`;
  }
}

beforeAll(async () => {
  chat = await startStubbedChatStack();
  org = await createChatOrg(chat.sql, 'chat-languages');
  reauthOrg = await createChatOrg(chat.sql, 'chat-languages-reauth');
  const transfer = { model: 'gpt-4o-mini', escalationAction: 'transfer', managerContact: CONTACT } as const;
  await createBot(chat.sql, org.id, { slug: 'lang-de', language: 'de', ...transfer });
  await createBot(chat.sql, org.id, { slug: 'lang-tr', language: 'tr', ...transfer });
  await createBot(chat.sql, org.id, { slug: 'lang-ja', language: 'ja', model: 'gpt-4o-mini' });
  await createBot(chat.sql, org.id, { slug: 'lang-auto', language: 'auto', ...transfer });
  await createBot(chat.sql, org.id, { slug: 'lang-zh-tw', language: 'zh-TW', ...transfer });
  await createDocument(chat.sql, org.id, 'kargo.pdf', ['Kargo teslimatı iki iş günü sürer. 配送には2営業日かかります。']);
  key = (await createApiKey(chat.sql, org)).key;
  await openWeekdays(org.id);
  await openWeekdays(reauthOrg.id);
  monday = nextMonday();
}, 120_000);

afterAll(async () => {
  await stopStubbedChatStack(chat ?? {}, [org?.id, reauthOrg?.id].filter((id): id is string => id !== undefined));
});

beforeEach(() => resetStubs(chat));

describe('the hand-off and the no-answer contact', () => {
  it("hands a German bot's user over in German, asking no model", async () => {
    const { answer, stored } = await complete('lang-de', 'Ich möchte mit einem Mitarbeiter sprechen');
    expect(answer).toBe(BOT_TEXTS.de.handoffTransfer(CONTACT));
    expect(answer).not.toMatch(/You can reach|passing you/u);
    expect(stored).toMatchObject({ content: answer, model: 'handoff', status: 'escalated' });
    expect(chat.stub.chatRequests).toHaveLength(0);
  });

  it("escalates a Turkish bot's no-answer, adds the contact in Turkish and cites nothing", async () => {
    chat.stub.answerChat({ content: NO_ANSWER_TEXTS.tr });
    const { answer, stored } = await complete('lang-tr', 'Kargo teslimatı kaç gün sürer?');
    expect(String(chat.stub.chatRequests[0].messages[0].content)).toContain(`say exactly: "${NO_ANSWER_TEXTS.tr}"`);
    // A source was put before the model, so a citation would have been possible.
    expect(String(chat.stub.chatRequests[0].messages[0].content)).toContain('[1] kargo.pdf');
    expect(answer).toBe(`${NO_ANSWER_TEXTS.tr} ${BOT_TEXTS.tr.reachPerson(CONTACT)}`);
    expect(stored).toMatchObject({ content: answer, citations: [], status: 'escalated' });
  });

  it("escalates a Japanese bot's no-answer, full-width punctuation and all, and cites nothing", async () => {
    chat.stub.answerChat({ content: NO_ANSWER_TEXTS.ja.replace('。', '．') });
    const { answer, stored } = await complete('lang-ja', '配送には何日かかりますか？');
    expect(answer).toBe(NO_ANSWER_TEXTS.ja.replace('。', '．'));
    expect(stored).toMatchObject({ content: answer, citations: [], status: 'escalated' });
  });

  it("adds the contact of an 'auto' bot in the language of the sentence the model picked", async () => {
    chat.stub.answerChat({ content: NO_ANSWER_TEXTS.ko });
    const { answer, stored } = await complete('lang-auto', '배송은 며칠 걸리나요?');
    const prompt = String(chat.stub.chatRequests[0].messages[0].content);
    for (const [language, sentence] of Object.entries(NO_ANSWER_TEXTS)) expect(prompt).toContain(`${language}: "${sentence}"`);
    expect(answer).toBe(`${NO_ANSWER_TEXTS.ko} ${BOT_TEXTS.ko.reachPerson(CONTACT)}`);
    expect(stored).toMatchObject({ citations: [], status: 'escalated' });
  });

  it('asks a zh-TW bot for the Traditional Chinese sentence, escalates on it and adds the contact in Traditional Chinese', async () => {
    const traditional = '抱歉，我在現有的資訊中沒有找到這個問題的答案。';
    chat.stub.answerChat({ content: traditional });
    const { answer, stored } = await complete('lang-zh-tw', '運送需要幾天？');
    const prompt = String(chat.stub.chatRequests[0].messages[0].content);
    expect(prompt).toContain(`say exactly: "${traditional}"`);
    expect(prompt).not.toContain(NO_ANSWER_TEXTS.zh);
    expect(prompt).toContain('[1] kargo.pdf');
    expect(answer).toBe(`${traditional} 人工客服聯絡方式：${CONTACT}`);
    expect(stored).toMatchObject({ content: answer, citations: [], status: 'escalated' });
  });

  it('keeps an answer that cites a source beside the no-answer sentence: not escalated, no contact, its citation kept', async () => {
    const partial = `Delivery takes two working days [1]. For returns: ${NO_ANSWER_TEXT}`;
    chat.stub.answerChat({ content: partial });
    const { answer, stored } = await complete('lang-auto', 'How long is delivery, and how do returns work?');
    expect(answer).toBe(partial);
    expect(stored).toMatchObject({ content: partial, status: 'open' });
    expect(stored.citations).toEqual([expect.objectContaining({ document_name: 'kargo.pdf', page_start: 1 })]);
  });

  it('still escalates the sentence alone with a marker on it and cites nothing', async () => {
    chat.stub.answerChat({ content: `${NO_ANSWER_TEXT} [1]` });
    const { answer, stored } = await complete('lang-auto', 'How do returns work?');
    expect(answer).toBe(`${NO_ANSWER_TEXT} [1] ${BOT_TEXTS.en.reachPerson(CONTACT)}`);
    expect(stored).toMatchObject({ content: answer, citations: [], status: 'escalated' });
  });

  it('still cites the source of an answer that is not a no-answer', async () => {
    chat.stub.answerChat({ content: 'Kargo teslimatı iki iş günü sürer.' });
    const { stored } = await complete('lang-tr', 'Kargo teslimatı kaç gün sürer?');
    expect(stored.citations).toHaveLength(1);
    expect(stored.status).toBe('open');
  });
});

describe('the booking step', () => {
  it("confirms a German bot's booking in German, the date in German", async () => {
    const [bot] = await chat.sql<{ id: string }[]>`select id from public.bots where org_id = ${org.id} and slug = 'lang-de'`;
    const { answer, booked } = await book(org, bot.id, berlin(monday, '10:00'), berlin(monday, '10:30'), 'Ada');
    expect(booked).toBe(true);
    const day = new Intl.DateTimeFormat('de', { weekday: 'long', day: 'numeric', month: 'long', timeZone: ZONE })
      .format(new Date(berlin(monday, '10:00')));
    expect(day.startsWith('Montag')).toBe(true);
    expect(answer).toBe(`Ihr Termin ist gebucht: ${day}, 10:00–10:30 (Europe/Berlin), Ada.`);

    const again = await book(org, bot.id, berlin(monday, '10:00'), berlin(monday, '10:30'), 'Grace');
    expect(again.booked).toBe(false);
    expect(again.answer).toBe(
      `Diese Zeit ist nicht verfügbar. Die nächsten freien Zeiten sind: ${day}, 10:30–11:00 (Europe/Berlin); ` +
        `${day}, 11:00–11:30 (Europe/Berlin); ${day}, 11:30–12:00 (Europe/Berlin).`,
    );
  });

  it('refuses a time while an org calendar needs reauthorisation, and offers no other time', async () => {
    const english = await createBot(chat.sql, reauthOrg.id, { slug: 'reauth-en' });
    const german = await createBot(chat.sql, reauthOrg.id, { slug: 'reauth-de', language: 'de' });
    await chat.sql`
      insert into public.calendar_connections (org_id, provider, account_email, status, status_reason)
      values (${reauthOrg.id}, 'microsoft', 'owner@chat-languages-reauth.test', 'needs_reauth', 'invalid_grant (test)')`;
    const before = await appointmentCount(reauthOrg.id);

    const refused = await book(reauthOrg, english, berlin(monday, '10:00'), berlin(monday, '10:30'), 'Ada');
    expect(refused).toEqual({ answer: BOT_TEXTS.en.calendarUnavailable, booked: false });
    expect(refused.answer).not.toMatch(/next free times|10:30/u);

    const inGerman = await book(reauthOrg, german, berlin(monday, '14:00'), berlin(monday, '14:30'), 'Ada');
    expect(inGerman).toEqual({ answer: BOT_TEXTS.de.calendarUnavailable, booked: false });
    expect(await appointmentCount(reauthOrg.id)).toBe(before);
  });
});
