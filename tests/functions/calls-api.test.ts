/**
 * The calls API over HTTP (through the gateway, real Deno) on its own embedded
 * stack: a server holding an org's API key lists its calls (filters, cursor
 * pages), reads one with its transcript, queues an outbound call and cancels
 * it; never another org's calls; API keys only, at the key's rate limit; bad
 * input is a 4xx that changes nothing; the audit log names the key; the
 * org's Vapi assistant and phone number ids cannot be taken by another org.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServiceRole, createSql, type Sql, type TransactionSql, withUserScope } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type CallsApiKeys, callsApiKeys, middayZone, outboundSetup } from '../support/call-fixtures.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { allPages as allPagesOf, keyApi } from '../support/key-api.ts';

let stack: Stack;
let sql: Sql;
/** Places calls through the API. */
let org: ChatOrg;
let bot: string;
/** Holds the seeded calls the list and read tests look at, and nothing else. */
let listOrg: ChatOrg;
let listBot: string;
let otherBot: string;
let campaign: string;
let other: ChatOrg;
let otherOrgBot: string;
let keys: CallsApiKeys;
let writerId: string;

interface SeededCall {
  id: string;
  createdAt: string;
}
/** The list org's calls, newest first (created_at, then id). */
let seeded: SeededCall[];
let endedCall: string;

type ApiCall = Record<string, unknown> & { id: string; status: string };
interface ApiList {
  object: string;
  data: ApiCall[];
  next_cursor: string | null;
}

const api = keyApi(() => `${stack.apiUrl}/functions/v1/calls`);

const post = (path: string, key: string, body: unknown) =>
  api(path, { method: 'POST', key, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Every page of a listing, following next_cursor. */
const allPages = (query: string, key = keys.lister) => allPagesOf(api, query, key);

const callCount = async (orgId: string) =>
  (await sql<{ n: number }[]>`select count(*)::int as n from public.calls where org_id = ${orgId}`)[0].n;

/** The list org's calls, written as the call functions would have. Two share a creation time, to page across a tie. */
async function seedCalls(): Promise<void> {
  [campaign] = (await sql<{ id: string }[]>`
    insert into public.call_campaigns (org_id, bot_id, name) values (${listOrg.id}, ${listBot}, 'Spring') returning id`).map((row) => row.id);
  const rows = await sql<{ id: string; created_at: string }[]>`
    insert into public.calls (org_id, bot_id, campaign_id, direction, from_number, to_number, status, ended_reason,
                              started_at, ended_at, duration_seconds, summary, sentiment, cost, cost_breakdown,
                              recording_url, provider, provider_call_id, last_dial_error, created_at)
    values
      (${listOrg.id}, ${listBot}, null, 'inbound', '+14155550001', '+14155550100', 'ended', 'customer-ended-call',
       '2026-03-01T10:00:00Z', '2026-03-01T10:01:30Z', 90, 'Asked about prices.', 'positive', 0.1234, '{"llm": 0.1}',
       'https://storage.vapi.example/rec.wav', 'vapi', 'vapi-call-1', null, '2026-03-01T10:00:00.000001Z'),
      (${listOrg.id}, ${listBot}, ${campaign}, 'outbound', null, '+14155550002', 'queued', null,
       null, null, null, null, 'unknown', null, null, null, 'vapi', null, 'secret dial error', '2026-03-02T10:00:00Z'),
      (${listOrg.id}, ${listBot}, ${campaign}, 'outbound', null, '+14155550003', 'failed', 'dial-failed',
       null, null, null, null, 'unknown', null, null, null, 'vapi', null, null, '2026-03-03T10:00:00Z'),
      (${listOrg.id}, ${otherBot}, null, 'web', null, null, 'canceled', 'canceled-by-user',
       null, null, null, null, 'unknown', null, null, null, null, null, null, '2026-03-04T10:00:00Z'),
      (${listOrg.id}, ${otherBot}, null, 'inbound', '+14155550005', '+14155550100', 'ended', 'assistant-ended-call',
       '2026-03-05T10:00:00Z', '2026-03-05T10:02:00Z', 120, null, 'neutral', null, null, null, 'vapi', 'vapi-call-5', null,
       '2026-03-05T10:00:00.123456Z'),
      (${listOrg.id}, ${otherBot}, null, 'inbound', '+14155550006', '+14155550100', 'ended', 'assistant-ended-call',
       '2026-03-05T10:00:00Z', '2026-03-05T10:02:00Z', 120, null, 'negative', null, null, null, 'vapi', 'vapi-call-6', null,
       '2026-03-05T10:00:00.123456Z'),
      (${listOrg.id}, ${listBot}, null, 'outbound', null, '+14155550007', 'busy', 'customer-busy',
       null, null, null, null, 'unknown', null, null, null, 'vapi', 'vapi-call-7', null, '2026-03-06T10:00:00Z')
    returning id, created_at::text`;
  seeded = rows
    .map((row) => ({ id: row.id, createdAt: row.created_at }))
    .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
  endedCall = rows[0].id;
  // Out of order on purpose: the API answers in seq order.
  await sql`
    insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms, llm_ms)
    values (${listOrg.id}, ${endedCall}, 1, 'user', 'How much is it?', 2000, 3500, null),
           (${listOrg.id}, ${endedCall}, 0, 'assistant', 'Hello, how can I help?', 0, 1500, 420),
           (${listOrg.id}, ${endedCall}, 2, 'assistant', 'It is 20 dollars.', 4000, 5200, 380)`;
}

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'calls-api');
  listOrg = await createChatOrg(sql, 'calls-api-list');
  other = await createChatOrg(sql, 'calls-api-other');
  await sql`update public.organizations set time_zone = ${middayZone()} where id in (${org.id}, ${other.id})`;
  bot = await createBot(sql, org.id, { slug: 'caller' });
  listBot = await createBot(sql, listOrg.id, { slug: 'list-a' });
  otherBot = await createBot(sql, listOrg.id, { slug: 'list-b' });
  otherOrgBot = await createBot(sql, other.id, { slug: 'other-caller' });
  await outboundSetup(sql, org, bot, 'pn-api-1');
  await outboundSetup(sql, other, otherOrgBot, 'pn-api-2');
  await seedCalls();
  keys = await callsApiKeys(sql, { org, listOrg, other });
  writerId = keys.writerId;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('GET /calls', () => {
  it('lists the org\'s calls newest first, paging through the cursor across a tie, the last page\'s cursor null', async () => {
    const expected = seeded.map((call) => call.id);
    const first = await api('?limit=2', { key: keys.lister });
    expect(first.status).toBe(200);
    const page = (await first.json()) as ApiList;
    expect(page.data.map((call) => call.id)).toEqual(expected.slice(0, 2));
    expect(page.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);

    for (const limit of [1, 2, 3, 7, 100]) {
      const { ids, pages } = await allPages(`limit=${limit}`);
      expect(ids, `limit ${limit}`).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
    const whole = (await (await api('', { key: keys.lister })).json()) as ApiList;
    expect(whole.data.map((call) => call.id)).toEqual(expected);
    expect(whole.next_cursor).toBeNull();
  });

  it('filters by status (one or several), direction, bot, campaign and a creation window, paging within the filter', async () => {
    const expectListed = async (query: string, predicate: (row: Record<string, unknown>) => boolean) => {
      const rows = await sql<Record<string, unknown>[]>`
        select id, status::text, direction::text, bot_id, campaign_id, created_at from public.calls
        where org_id = ${listOrg.id} order by created_at desc, id desc`;
      const wanted = rows.filter(predicate).map((row) => row.id as string);
      expect(wanted.length, query).toBeGreaterThan(0);
      expect((await allPages(`${query}&limit=1`)).ids, query).toEqual(wanted);
    };
    await expectListed('status=ended', (row) => row.status === 'ended');
    await expectListed('status=queued,canceled,busy', (row) => ['queued', 'canceled', 'busy'].includes(row.status as string));
    await expectListed('direction=outbound', (row) => row.direction === 'outbound');
    await expectListed(`bot_id=${otherBot}`, (row) => row.bot_id === otherBot);
    await expectListed(`campaign_id=${campaign}`, (row) => row.campaign_id === campaign);
    await expectListed(
      'created_after=2026-03-02T10:00:00Z&created_before=2026-03-05T12:00:00%2B02:00',
      (row) => (row.created_at as Date) > new Date('2026-03-02T10:00:00Z') && (row.created_at as Date) < new Date('2026-03-05T10:00:00Z'),
    );
    await expectListed(`status=ended&direction=inbound&bot_id=${otherBot}`, (row) => row.status === 'ended' && row.bot_id === otherBot);
    const none = (await (await api(`?bot_id=${randomUUID()}`, { key: keys.lister })).json()) as ApiList;
    expect(none).toEqual({ object: 'list', data: [], next_cursor: null });
  });

  it('shows what a call is and how it went, never dial bookkeeping or the provider\'s raw payloads', async () => {
    const { data } = (await (await api('?direction=inbound&status=ended&limit=100', { key: keys.lister })).json()) as ApiList;
    const call = data.find((row) => row.id === endedCall)!;
    expect(call).toMatchObject({
      object: 'call',
      direction: 'inbound',
      status: 'ended',
      ended_reason: 'customer-ended-call',
      from_number: '+14155550001',
      to_number: '+14155550100',
      bot_id: listBot,
      campaign_id: null,
      started_at: '2026-03-01T10:00:00.000Z',
      ended_at: '2026-03-01T10:01:30.000Z',
      duration_seconds: 90,
      summary: 'Asked about prices.',
      sentiment: 'positive',
      cost: 0.1234,
      cost_currency: 'USD',
      provider_call_id: 'vapi-call-1',
      created_at: '2026-03-01T10:00:00.000Z',
    });
    const all = JSON.stringify(data);
    for (const hidden of ['cost_breakdown', 'recording_url', 'last_dial_error', 'dial_target', 'dial_lease_until', 'org_id', 'created_by']) {
      expect(call).not.toHaveProperty(hidden);
    }
    expect(all).not.toContain('secret dial error');
    expect(all).not.toContain('storage.vapi.example');
  });
});

describe('GET /calls/:id', () => {
  it('answers one call with its transcript in seq order', async () => {
    const response = await api(`/${endedCall}`, { key: keys.lister });
    expect(response.status).toBe(200);
    const call = await response.json();
    expect(call).toMatchObject({ object: 'call', id: endedCall, status: 'ended', summary: 'Asked about prices.' });
    expect(call.transcript).toEqual([
      { seq: 0, speaker: 'assistant', text: 'Hello, how can I help?', start_ms: 0, end_ms: 1500, stt_ms: null, llm_ms: 420, tts_ms: null },
      { seq: 1, speaker: 'user', text: 'How much is it?', start_ms: 2000, end_ms: 3500, stt_ms: null, llm_ms: null, tts_ms: null },
      { seq: 2, speaker: 'assistant', text: 'It is 20 dollars.', start_ms: 4000, end_ms: 5200, stt_ms: null, llm_ms: 380, tts_ms: null },
    ]);
    const queued = await (await api(`/${seeded.find((c) => c.createdAt.startsWith('2026-03-02'))!.id}`, { key: keys.lister })).json();
    expect(queued).toMatchObject({ status: 'queued', transcript: [] });
  });

  it('is 404 for an unknown id and 422 for an id that is not a UUID', async () => {
    const unknown = await api(`/${randomUUID()}`, { key: keys.lister });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('not_found');
    const invalid = await api('/not-a-uuid', { key: keys.lister });
    expect(invalid.status).toBe(422);
    expect((await invalid.json()).error.code).toBe('invalid_request');
    expect((await api(`/${endedCall}/other`, { key: keys.lister })).status).toBe(404);
    expect((await api(`/${endedCall}`, { method: 'DELETE', key: keys.lister })).status).toBe(405);
  });
});

describe('another org\'s calls', () => {
  it('are never listed, read, cancelled or placed with its bot', async () => {
    const seededIds = new Set(seeded.map((call) => call.id));
    const { ids } = await allPages('limit=100', keys.other);
    expect(ids.filter((id) => seededIds.has(id))).toEqual([]);
    const { ids: mine } = await allPages('limit=100', keys.writer);
    expect(mine.filter((id) => seededIds.has(id))).toEqual([]);

    const read = await api(`/${endedCall}`, { key: keys.other });
    expect(read.status).toBe(404);
    expect((await read.json()).error.code).toBe('not_found');

    const queued = seeded.find((c) => c.createdAt.startsWith('2026-03-02'))!.id;
    const cancel = await post(`/${queued}/cancel`, keys.other, {});
    expect(cancel.status).toBe(404);
    const [{ status }] = await sql<{ status: string }[]>`select status::text from public.calls where id = ${queued}`;
    expect(status).toBe('queued');

    const before = [await callCount(org.id), await callCount(other.id)];
    const placed = await post('', keys.writer, { bot_id: otherOrgBot, to_number: '+14155550199' });
    expect(placed.status).toBe(404);
    expect((await placed.json()).error).toMatchObject({ code: 'not_found', message: 'The bot was not found.' });
    expect([await callCount(org.id), await callCount(other.id)]).toEqual(before);
  });
});

describe('who may call', () => {
  it('needs an API key with the route\'s scope; a user token is refused with a pointer to PostgREST', async () => {
    const reader = await post('', keys.reader, { bot_id: bot, to_number: '+14155550110' });
    expect(reader.status).toBe(403);
    expect((await reader.json()).error.code).toBe('insufficient_scope');
    const readerCancel = await post(`/${randomUUID()}/cancel`, keys.reader, {});
    expect(readerCancel.status).toBe(403);
    const writeOnly = (await createApiKey(sql, org, ['calls.write'])).key;
    const listing = await api('', { key: writeOnly });
    expect(listing.status).toBe(403);
    expect((await listing.json()).error.code).toBe('insufficient_scope');
    const chatKey = (await createApiKey(sql, org, ['chat.write'])).key;
    expect((await api('', { key: chatKey })).status).toBe(403);

    const none = await api('');
    expect(none.status).toBe(401);
    expect((await none.json()).error.code).toBe('missing_api_key');
    const unknown = await api('', { key: `ak_${'0'.repeat(48)}` });
    expect(unknown.status).toBe(401);
    expect((await unknown.json()).error.code).toBe('invalid_api_key');

    const user = await api('', { key: org.tokens.owner });
    expect(user.status).toBe(401);
    const body = await user.json();
    expect(body.error.code).toBe('api_key_required');
    expect(body.error.message).toContain('API key');
    const userPost = await post('', org.tokens.owner, { bot_id: bot, to_number: '+14155550111' });
    expect(userPost.status).toBe(401);

    const viaHeader = await api('?limit=1', { headers: { 'x-api-key': keys.reader } });
    expect(viaHeader.status).toBe(200);
  });
});

describe('bad input', () => {
  it('is a 4xx that changes nothing', async () => {
    const before = await callCount(org.id);
    const bodies: [unknown, number, string][] = [
      [{ bot_id: bot, to_number: 'call me maybe' }, 422, 'invalid_request'],
      [{ bot_id: bot, to_number: '+1' }, 422, 'invalid_request'],
      [{ bot_id: bot, to_number: '+14155550120', extra: true }, 422, 'invalid_request'],
      [{ bot_id: 'nope', to_number: '+14155550120' }, 422, 'invalid_request'],
      [{ to_number: '+14155550120' }, 422, 'invalid_request'],
      [{ bot_id: bot, to_number: '+14155550120', scheduled_at: 'tomorrow' }, 422, 'invalid_request'],
      [{ bot_id: bot, to_number: '+14155550120', callee_time_zone: 'Mars/Olympus' }, 422, 'invalid_request'],
      [{ bot_id: randomUUID(), to_number: '+14155550120' }, 404, 'not_found'],
      [[], 422, 'invalid_request'],
    ];
    for (const [body, status, code] of bodies) {
      const response = await post('', keys.writer, body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect((await response.json()).error.code, JSON.stringify(body)).toBe(code);
    }
    const notJson = await api('', { method: 'POST', key: keys.writer, body: '{"bot_id":' });
    expect(notJson.status).toBe(400);
    expect((await notJson.json()).error.code).toBe('invalid_json');

    const cursor = (await (await api('?limit=1', { key: keys.lister })).json()).next_cursor as string;
    const decoded = Buffer.from(cursor, 'base64url').toString();
    const tampered = [
      'garbage',
      `${cursor}!`,
      Buffer.from(decoded.replace('|', '#')).toString('base64url'),
      Buffer.from(decoded.replace(/^\d{4}-\d{2}/, '2026-13')).toString('base64url'),
      Buffer.from(`${decoded}x`).toString('base64url'),
      Buffer.from('{"created_at":"2026-01-01","id":"x"}').toString('base64url'),
      'x'.repeat(500),
    ];
    for (const bad of tampered) {
      const response = await api(`?cursor=${encodeURIComponent(bad)}`, { key: keys.lister });
      expect(response.status, bad).toBe(422);
      expect((await response.json()).error.code).toBe('invalid_request');
    }
    const queries = [
      'limit=0', 'limit=101', 'limit=ten', 'limit=1.5', 'status=ringing,bogus', 'direction=sideways', 'bot_id=nope',
      'created_after=yesterday', 'created_after=2026-03-05T00:00:00Z&created_before=2026-03-01T00:00:00Z',
      'org_id=' + other.id, 'limit=1&limit=2', 'unknown=1', 'constructor=1',
      // Offsets zod takes and Postgres does not (at most 15:59).
      'created_before=2026-01-01T00:00:00%2B23:59',
    ];
    for (const query of queries) {
      const response = await api(`?${query}`, { key: keys.lister });
      expect(response.status, query).toBe(422);
      expect((await response.json()).error.code, query).toBe('invalid_request');
    }
    expect(await callCount(org.id)).toBe(before);
  });

  it('refuses a scheduled time more than 366 days ahead (422), queuing nothing', async () => {
    const before = await callCount(org.id);
    for (const scheduled_at of ['9999-12-31T23:59:59Z', new Date(Date.now() + 367 * 86_400_000).toISOString()]) {
      const response = await post('', keys.writer, { bot_id: bot, to_number: '+14155550139', scheduled_at });
      expect(response.status, scheduled_at).toBe(422);
      const { error } = await response.json();
      expect(error.code).toBe('invalid_request');
      expect(error.message).toBe('Invalid request body: scheduled_at: must be at most 366 days ahead');
    }
    expect(await callCount(org.id)).toBe(before);
  });
});

describe('placing and cancelling a call', () => {
  it('queues a call (201), reads it back, cancels it, answers a second cancel with the call again (200, nothing changed), the audit log naming the key', async () => {
    const created = await post('', keys.writer, { bot_id: bot, to_number: '+1 (415) 555-0130', callee_time_zone: middayZone() });
    expect(created.status).toBe(201);
    const call = (await created.json()) as ApiCall;
    expect(call).toMatchObject({
      object: 'call',
      direction: 'outbound',
      status: 'queued',
      to_number: '+14155550130',
      bot_id: bot,
      callee_time_zone: middayZone(),
      provider: 'vapi',
    });
    expect(created.headers.get('location')).toBe(`/functions/v1/calls/${call.id}`);
    expect(Date.parse(call.scheduled_at as string)).toBeLessThanOrEqual(Date.now() + 60_000);

    const read = await (await api(`/${call.id}`, { key: keys.reader })).json();
    expect(read).toMatchObject({ id: call.id, status: 'queued', transcript: [] });
    const listed = (await (await api('?status=queued&limit=1', { key: keys.reader })).json()) as ApiList;
    expect(listed.data[0].id).toBe(call.id);

    const cancelled = await post(`/${call.id}/cancel`, keys.writer, {});
    expect(cancelled.status).toBe(200);
    const cancelledBody = await cancelled.json();
    expect(cancelledBody).toMatchObject({ id: call.id, status: 'canceled', ended_reason: 'canceled-by-user' });
    // Sent again after a lost answer: the same call, as the first request left it.
    const again = await post(`/${call.id}/cancel`, keys.writer, {});
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(cancelledBody);
    expect((await post(`/${randomUUID()}/cancel`, keys.writer, {})).status).toBe(404);
    expect((await post('/not-a-uuid/cancel', keys.writer, {})).status).toBe(422);

    const audit = await sql<{ action: string; actor_api_key_id: string | null; actor_user_id: string | null }[]>`
      select action, actor_api_key_id, actor_user_id from public.audit_log
      where table_name = 'calls' and record_id = ${call.id} order by seq`;
    expect(audit.map((entry) => entry.action)).toEqual(['insert', 'update']);
    for (const entry of audit) expect(entry).toMatchObject({ actor_api_key_id: writerId, actor_user_id: null });
  });

  it('refuses to cancel a call that ended otherwise (409 not_cancelable), changing nothing', async () => {
    const created = await post('', keys.writer, { bot_id: bot, to_number: '+14155550135', callee_time_zone: middayZone() });
    expect(created.status).toBe(201);
    const call = (await created.json()) as ApiCall;
    await sql`update public.calls set status = 'failed', ended_reason = 'dial-failed: busy' where id = ${call.id}`;
    const refused = await post(`/${call.id}/cancel`, keys.writer, {});
    expect(refused.status).toBe(409);
    expect((await refused.json()).error).toMatchObject({
      code: 'not_cancelable',
      message: 'only a queued call can be canceled; this one is failed',
    });
    const [row] = await sql<{ status: string; ended_reason: string }[]>`
      select status::text, ended_reason from public.calls where id = ${call.id}`;
    expect(row).toEqual({ status: 'failed', ended_reason: 'dial-failed: busy' });
  });

  it('refuses a bot that does not answer on the voice channel (422 voice_channel_disabled), queuing nothing', async () => {
    const webOnly = await createBot(sql, org.id, { slug: 'calls-api-web-only', channels: ['web', 'api'] });
    await asServiceRole(sql, (tx) => tx`update public.bots set voice_assistant_id = 'asst-calls-api-web-only' where id = ${webOnly}`);
    const before = await callCount(org.id);
    const response = await post('', keys.writer, { bot_id: webOnly, to_number: '+14155550136', callee_time_zone: middayZone() });
    expect(response.status).toBe(422);
    expect((await response.json()).error).toMatchObject({
      code: 'voice_channel_disabled',
      message: 'the bot Bot calls-api-web-only does not answer on the voice channel',
    });
    expect(await callCount(org.id)).toBe(before);
  });

  it('places a call once per Idempotency-Key: a retry (even concurrent) replays the first answer, another request is 422', async () => {
    const before = await callCount(org.id);
    const body = { bot_id: bot, to_number: '+14155550134', callee_time_zone: middayZone() };
    const send = (key: string, payload: unknown = body) =>
      api('', {
        method: 'POST',
        key: keys.writer,
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(payload),
      });
    const idempotencyKey = randomUUID();
    const first = await send(idempotencyKey);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const placed = (await first.json()) as ApiCall;
    // The same request with its fields in another order is the same request.
    const retry = await send(idempotencyKey, { callee_time_zone: body.callee_time_zone, to_number: body.to_number, bot_id: bot });
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('location')).toBe(`/functions/v1/calls/${placed.id}`);
    expect(await retry.json()).toEqual(placed);
    expect(await callCount(org.id)).toBe(before + 1);

    const reused = await send(idempotencyKey, { ...body, to_number: '+14155550135' });
    expect(reused.status).toBe(422);
    expect((await reused.json()).error.code).toBe('idempotency_key_reused');

    const together = randomUUID();
    const answers = await Promise.all([send(together), send(together), send(together)]);
    expect(answers.map((answer) => answer.status)).toEqual([201, 201, 201]);
    const ids = new Set(await Promise.all(answers.map(async (answer) => ((await answer.json()) as ApiCall).id)));
    expect(ids.size).toBe(1);
    expect(await callCount(org.id)).toBe(before + 2);

    // A request that failed keeps nothing: the same key may be sent again once it is right.
    const failing = randomUUID();
    expect((await send(failing, { ...body, to_number: 'not a number' })).status).toBe(422);
    expect((await send(failing)).status).toBe(201);
    expect(await callCount(org.id)).toBe(before + 3);

    const malformed = await send('a key with spaces');
    expect(malformed.status).toBe(422);
    expect(await callCount(org.id)).toBe(before + 3);
  });

  it('schedules a call for later when asked', async () => {
    const later = new Date(Date.now() + 3 * 86_400_000);
    const response = await post('', keys.writer, {
      bot_id: bot,
      to_number: '+14155550131',
      scheduled_at: later.toISOString(),
      callee_time_zone: middayZone(),
    });
    expect(response.status).toBe(201);
    const call = (await response.json()) as ApiCall;
    expect(Date.parse(call.scheduled_at as string)).toBeGreaterThanOrEqual(later.getTime() - 1000);
  });

  it('is a 402 once the plan\'s call minutes are used up, placing nothing', async () => {
    const before = await callCount(org.id);
    // An hour of talk this period: the free plan includes 30 minutes.
    const [talk] = await sql<{ id: string }[]>`
      insert into public.calls (org_id, direction, from_number, status, started_at, ended_at, duration_seconds, provider, provider_call_id)
      values (${org.id}, 'inbound', '+14155550133', 'ended', now() - interval '1 hour', now(), 3600, 'vapi', 'vapi-long-call')
      returning id`;
    try {
      const response = await post('', keys.writer, { bot_id: bot, to_number: '+14155550132' });
      expect(response.status).toBe(402);
      const { error } = await response.json();
      expect(error.code).toBe('quota_exceeded');
      expect(error.message).toContain('call minutes');
      expect(await callCount(org.id)).toBe(before + 1);
    } finally {
      await sql`delete from public.calls where id = ${talk.id}`;
    }
  });
});

describe('rate limit', () => {
  it('applies the key\'s limit to every route: 429 with Retry-After once it is spent', async () => {
    const limited = await createApiKey(sql, org, ['calls.read', 'calls.write']);
    await sql`update public.api_keys set rate_limit_per_minute = 2 where id = ${limited.id}`;
    expect((await api('?limit=1', { key: limited.key })).status).toBe(200);
    expect((await api(`/${randomUUID()}`, { key: limited.key })).status).toBe(404);
    const before = await callCount(org.id);
    const refused = await post('', limited.key, { bot_id: bot, to_number: '+14155550140' });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await refused.json()).error.code).toBe('rate_limited');
    expect(await callCount(org.id)).toBe(before);
    expect((await post(`/${randomUUID()}/cancel`, limited.key, {})).status).toBe(429);
  });

  it('counts a request refused for its scope too', async () => {
    const readOnly = await createApiKey(sql, org, ['calls.read']);
    await sql`update public.api_keys set rate_limit_per_minute = 1 where id = ${readOnly.id}`;
    const refused = await post('', readOnly.key, { bot_id: bot, to_number: '+14155550141' });
    expect([refused.status, (await refused.json()).error.code]).toEqual([403, 'insufficient_scope']);
    expect((await api('?limit=1', { key: readOnly.key })).status).toBe(429);
  });
});

describe('voice ids on the shared Vapi account', () => {
  it('are not taken by another org: its admin is refused (42501), the service role cannot give them to a second org (23505)', async () => {
    const asOtherAdmin = (fn: (tx: TransactionSql) => Promise<unknown>) =>
      withUserScope(sql, other.claims.admin, fn).then(() => null, (error: { code?: string }) => error.code);
    const hijack = await asOtherAdmin((tx) => tx`select public.set_call_provider_outbound(${other.id}, 'vapi', 'pn-api-1')`);
    const assistant = await asOtherAdmin((tx) => tx`update public.bots set voice_assistant_id = 'asst-pn-api-1' where id = ${otherOrgBot}`);
    expect([hijack, assistant]).toEqual(['42501', '42501']);

    const asPlatform = (fn: (tx: TransactionSql) => Promise<unknown>) =>
      asServiceRole(sql, fn).then(() => null, (error: { code?: string }) => error.code);
    expect(await asPlatform((tx) => tx`select public.set_call_provider_outbound(${other.id}, 'vapi', 'pn-api-1')`)).toBe('23505');
    expect(await asPlatform((tx) => tx`update public.bots set voice_assistant_id = 'asst-pn-api-1' where id = ${otherOrgBot}`))
      .toBe('23505');

    const ids = await sql<{ org_id: string; assistant: string; phone: string }[]>`
      select b.org_id, b.voice_assistant_id as assistant, p.outbound_phone_number_id as phone
      from public.bots b join public.call_providers p on p.org_id = b.org_id and p.provider = 'vapi'
      where b.id in (${bot}, ${otherOrgBot}) order by b.voice_assistant_id`;
    expect(ids).toEqual([
      { org_id: org.id, assistant: 'asst-pn-api-1', phone: 'pn-api-1' },
      { org_id: other.id, assistant: 'asst-pn-api-2', phone: 'pn-api-2' },
    ]);
  });
});
