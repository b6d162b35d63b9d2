/**
 * A voice platform's "custom LLM" turns (Vapi's body: OpenAI's chat
 * completions plus `call`, `phoneNumber`, `customer`, `metadata`) through
 * chat/completions with the offline providers: every turn of one call is one
 * conversation on the voice channel, keyed by `call.id` within the bot, even
 * when two first turns come at once; another call, or the same call id under
 * another org's key, gets a conversation of its own; x-conversation-id still
 * wins, but a call's conversation is continued only by that call's turns
 * (another call naming it by id is refused, 422); a malformed call id is a
 * 400 that changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg, createDocument } from '../support/chat-fixtures.ts';
import { startTestStack, type TestStack } from './support.ts';

let stack: TestStack;
let sql: Sql;
let orgA: ChatOrg;
let orgB: ChatOrg;
let keyA: string;
let keyB: string;
let botA: string;
let botB: string;

/** What Vapi sends on a turn: the history so far, and the call (with fields we ignore). */
function vapiTurn(callId: unknown, messages: { role: string; content: string }[], model = 'receptionist') {
  return {
    model,
    messages: [{ role: 'system', content: 'You are a receptionist.' }, ...messages],
    temperature: 0.7,
    stream: false,
    call: {
      id: callId,
      orgId: 'vapi-org-1',
      type: 'inboundPhoneCall',
      status: 'in-progress',
      assistantId: 'asst-1',
      customer: { number: '+14155550100' },
      phoneCallProvider: 'twilio',
    },
    phoneNumber: { id: 'pn-1', number: '+14155550199', twilioAccountSid: 'AC123', twilioAuthToken: 'not-for-us' },
    customer: { number: '+14155550100' },
    metadata: { campaign: 'spring' },
  };
}

const complete = (key: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${stack.functionsUrl}/chat/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

const conversationsOf = (botId: string) =>
  sql<{ id: string; channel: string; external_conversation_id: string | null; external_user_id: string | null; messages: number }[]>`
    select c.id, c.channel::text, c.external_conversation_id, c.external_user_id,
      (select count(*)::int from public.messages m where m.conversation_id = c.id) as messages
    from public.conversations c where c.bot_id = ${botId} order by c.created_at, c.id`;

const QUESTION_1 = 'When are you open?';
const QUESTION_2 = 'And how long does delivery take?';

beforeAll(async () => {
  stack = await startTestStack();
  sql = createSql(stack.dbUrl, { max: 2 });
  orgA = await createChatOrg(sql, 'voice-calls-a');
  orgB = await createChatOrg(sql, 'voice-calls-b');
  botA = await createBot(sql, orgA.id, { slug: 'receptionist' });
  botB = await createBot(sql, orgB.id, { slug: 'receptionist' });
  await createDocument(sql, orgA.id, 'shop.pdf', ['We are open from 9 am to 5 pm.', 'Delivery takes two working days.']);
  keyA = (await createApiKey(sql, orgA)).key;
  keyB = (await createApiKey(sql, orgB)).key;
});

afterAll(async () => {
  await sql`delete from public.organizations where id in (${orgA.id}, ${orgB.id})`;
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('chat/completions with a voice platform\'s call', () => {
  it('keeps every turn of one call in one voice conversation, keyed by call.id', async () => {
    const first = await complete(keyA, vapiTurn('call-one', [{ role: 'user', content: QUESTION_1 }]));
    expect(first.status).toBe(200);
    const answer = (await first.json()).choices[0].message.content as string;
    const conversation = first.headers.get('x-conversation-id');

    const second = await complete(
      keyA,
      vapiTurn('call-one', [
        { role: 'user', content: QUESTION_1 },
        { role: 'assistant', content: answer },
        { role: 'user', content: QUESTION_2 },
      ]),
    );
    expect(second.status).toBe(200);
    expect(second.headers.get('x-conversation-id')).toBe(conversation);

    expect(await conversationsOf(botA)).toEqual([
      { id: conversation, channel: 'voice', external_conversation_id: 'call-one', external_user_id: null, messages: 4 },
    ]);
    const stored = await sql<{ role: string; content: string }[]>`
      select role::text, content from public.messages where conversation_id = ${conversation!} order by id`;
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(stored[2].content).toBe(QUESTION_2);
  });

  it('links the call record to its turns\' conversation, whichever is written first', async () => {
    // Vapi's events reported the call before its first turn...
    const [reported] = await sql<{ id: string }[]>`
      insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id, bot_id)
      values (${orgA.id}, 'inbound', '+14155550199', 'in_progress', 'vapi', 'call-linked', ${botA})
      returning id`;
    const turn = await complete(keyA, vapiTurn('call-linked', [{ role: 'user', content: QUESTION_1 }]));
    expect(turn.status).toBe(200);
    const conversation = turn.headers.get('x-conversation-id');
    const [linked] = await sql<{ conversation_id: string | null }[]>`
      select conversation_id from public.calls where id = ${reported.id}`;
    expect(linked.conversation_id).toBe(conversation);
    // ...or after it.
    const late = await complete(keyA, vapiTurn('call-reported-late', [{ role: 'user', content: QUESTION_1 }]));
    const [after] = await sql<{ conversation_id: string | null }[]>`
      insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id, bot_id)
      values (${orgA.id}, 'inbound', '+14155550198', 'ringing', 'vapi', 'call-reported-late', ${botA})
      returning conversation_id`;
    expect(after.conversation_id).toBe(late.headers.get('x-conversation-id'));
  });

  it('opens one conversation for two first turns of a call that arrive at once', async () => {
    const turn = vapiTurn('call-race', [{ role: 'user', content: QUESTION_1 }]);
    const [one, two] = await Promise.all([complete(keyA, turn), complete(keyA, turn)]);
    expect([one.status, two.status]).toEqual([200, 200]);
    expect(one.headers.get('x-conversation-id')).toBe(two.headers.get('x-conversation-id'));
    const race = (await conversationsOf(botA)).filter((c) => c.external_conversation_id === 'call-race');
    expect(race).toHaveLength(1);
    expect(race[0].messages).toBe(4);
  });

  it('gives another call its own conversation, and the same call id under another org\'s key its own', async () => {
    const other = await complete(keyA, vapiTurn('call-two', [{ role: 'user', content: QUESTION_1 }]));
    expect(other.status).toBe(200);
    const [callOne] = (await conversationsOf(botA)).filter((c) => c.external_conversation_id === 'call-one');
    expect(other.headers.get('x-conversation-id')).not.toBe(callOne.id);

    const elsewhere = await complete(keyB, vapiTurn('call-one', [{ role: 'user', content: QUESTION_1 }]));
    expect(elsewhere.status).toBe(200);
    const conversationB = elsewhere.headers.get('x-conversation-id');
    expect(conversationB).not.toBe(callOne.id);
    expect(await conversationsOf(botB)).toEqual([
      { id: conversationB, channel: 'voice', external_conversation_id: 'call-one', external_user_id: null, messages: 2 },
    ]);
    // Org A's conversation for that call is untouched.
    expect((await conversationsOf(botA)).find((c) => c.id === callOne.id)!.messages).toBe(4);
  });

  it('refuses x-conversation-id naming another call\'s conversation (422), starting and adding nothing', async () => {
    const [callTwo] = (await conversationsOf(botA)).filter((c) => c.external_conversation_id === 'call-two');
    const response = await complete(keyA, vapiTurn('call-three', [{ role: 'user', content: QUESTION_2 }]), {
      'x-conversation-id': callTwo.id,
    });
    expect(response.status).toBe(422);
    expect((await response.json()).error.message).toBe('the conversation belongs to another end user');
    const conversations = await conversationsOf(botA);
    expect(conversations.some((c) => c.external_conversation_id === 'call-three')).toBe(false);
    expect(conversations.find((c) => c.id === callTwo.id)!.messages).toBe(2);
  });

  it('refuses a call to a bot that does not answer on the voice channel (403), starting nothing', async () => {
    const apiOnly = await createBot(sql, orgA.id, { slug: 'api-only', channels: ['api'] });
    const response = await complete(keyA, vapiTurn('call-api-only', [{ role: 'user', content: QUESTION_1 }], 'api-only'));
    expect(response.status).toBe(403);
    expect((await response.json()).error.code).toBe('channel_not_enabled');
    expect(await conversationsOf(apiOnly)).toEqual([]);
  });

  it('answers a malformed call id with 400 and changes nothing', async () => {
    const before = await conversationsOf(botA);
    for (const id of ['', '   ', 'x'.repeat(201), 42]) {
      const response = await complete(keyA, vapiTurn(id, [{ role: 'user', content: QUESTION_1 }]));
      expect(response.status).toBe(400);
      expect((await response.json()).error.code).toBe('invalid_request');
    }
    const response = await complete(keyA, { ...vapiTurn('ok', [{ role: 'user', content: QUESTION_1 }]), call: 'call-one' });
    expect(response.status).toBe(400);
    expect(await conversationsOf(botA)).toEqual(before);
  });
});
