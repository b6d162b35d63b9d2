/**
 * Call campaigns through the calls API over HTTP (through the gateway, real
 * Deno) on its own embedded stack: a server holding an org's API key queues a
 * campaign (numbers normalized, duplicates removed, invalid ones reported),
 * once per Idempotency-Key, reads it with its calls counted by status, lists
 * the org's campaigns by cursor and cancels one; never another org's; bad
 * input is a 4xx that changes nothing; the audit log names the key.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asServiceRole, createSql, type Sql } from '../../functions/_shared/db.ts';
import { freePort } from '../../scripts/local/free-port.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';
import { type CallsApiKeys, callsApiKeys, middayZone, outboundSetup } from '../support/call-fixtures.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { allPages as allPagesOf, keyApi } from '../support/key-api.ts';

let stack: Stack;
let sql: Sql;
/** Queues campaigns through the API. */
let org: ChatOrg;
let bot: string;
/** Holds the seeded campaigns the list tests look at, and nothing else. */
let listOrg: ChatOrg;
let listBot: string;
let other: ChatOrg;
let otherOrgBot: string;
let keys: CallsApiKeys;
let writerId: string;

type ApiCampaign = Record<string, unknown> & { id: string; status: string };
interface ApiList {
  object: string;
  data: ApiCampaign[];
  next_cursor: string | null;
}

const api = keyApi(() => `${stack.apiUrl}/functions/v1/calls/campaigns`);

const post = (path: string, key: string, body: unknown, headers: Record<string, string> = {}) =>
  api(path, { method: 'POST', key, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** What a campaign request needs besides its numbers. */
const campaignBody = (numbers: string[], extra: Record<string, unknown> = {}) => ({
  bot_id: bot,
  name: 'Spring follow-ups',
  numbers,
  callee_time_zone: middayZone(),
  ...extra,
});

const counts = async (orgId: string) => {
  const [row] = await sql<{ campaigns: number; calls: number }[]>`
    select (select count(*)::int from public.call_campaigns where org_id = ${orgId}) as campaigns,
           (select count(*)::int from public.calls where org_id = ${orgId}) as calls`;
  return row;
};

/** Every page of the campaign list, following next_cursor. */
const allPages = (limit: number, key = keys.lister) => allPagesOf(api, `limit=${limit}`, key);

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: await freePort(), scheduler: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'campaigns-api');
  listOrg = await createChatOrg(sql, 'campaigns-api-list');
  other = await createChatOrg(sql, 'campaigns-api-other');
  await sql`update public.organizations set time_zone = ${middayZone()} where id in (${org.id}, ${other.id})`;
  bot = await createBot(sql, org.id, { slug: 'campaigner' });
  listBot = await createBot(sql, listOrg.id, { slug: 'list' });
  otherOrgBot = await createBot(sql, other.id, { slug: 'other-campaigner' });
  await outboundSetup(sql, org, bot, 'pn-campaigns-1');
  await outboundSetup(sql, other, otherOrgBot, 'pn-campaigns-2');
  keys = await callsApiKeys(sql, { org, listOrg, other });
  writerId = keys.writerId;
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

describe('queuing, reading and cancelling a campaign', () => {
  it('queues one call per distinct normalized number, reports the rest, counts its calls by status and cancels the queued ones', async () => {
    const created = await post('', keys.writer, campaignBody(
      ['+1 (415) 555-0201', '+14155550201', 'call me maybe', '+14155550202', '+1', '14155550203'],
      { name: '  Spring follow-ups  ' },
    ));
    expect(created.status).toBe(201);
    const campaign = (await created.json()) as ApiCampaign;
    expect(campaign).toEqual({
      object: 'campaign',
      id: expect.any(String),
      name: 'Spring follow-ups',
      bot_id: bot,
      status: 'active',
      scheduled_at: expect.any(String),
      calls_created: 2,
      duplicates_removed: 1,
      invalid_numbers: ['call me maybe', '+1', '14155550203'],
      canceled_at: null,
      created_at: expect.any(String),
    });
    expect(created.headers.get('location')).toBe(`/functions/v1/calls/campaigns/${campaign.id}`);
    expect(Date.parse(campaign.scheduled_at as string)).toBeLessThanOrEqual(Date.now() + 60_000);

    const calls = await sql<{ id: string; to_number: string; status: string; scheduled_at: Date }[]>`
      select id, to_number, status::text, scheduled_at from public.calls where campaign_id = ${campaign.id} order by to_number`;
    expect(calls.map((call) => [call.to_number, call.status])).toEqual([['+14155550201', 'queued'], ['+14155550202', 'queued']]);
    for (const call of calls) expect(call.scheduled_at.toISOString()).toBe(campaign.scheduled_at);
    // The calls themselves are the calls list's, filtered by campaign.
    const listed = await (await fetch(`${stack.apiUrl}/functions/v1/calls?campaign_id=${campaign.id}`, {
      headers: { authorization: `Bearer ${keys.reader}` },
    })).json();
    expect(listed.data.map((call: { id: string }) => call.id).sort()).toEqual(calls.map((call) => call.id).sort());

    // One is being dialled: cancelling leaves it to the dispatcher.
    await sql`update public.calls set status = 'ringing' where id = ${calls[0].id}`;
    const read = await api(`/${campaign.id}`, { key: keys.reader });
    expect(read.status).toBe(200);
    expect(await read.json()).toEqual({
      ...campaign,
      calls: { queued: 1, ringing: 1, in_progress: 0, ended: 0, failed: 0, canceled: 0, no_answer: 0, busy: 0, total: 2 },
    });

    const cancelled = await post(`/${campaign.id}/cancel`, keys.writer, {});
    expect(cancelled.status).toBe(200);
    const answer = await cancelled.json();
    expect(answer).toMatchObject({ object: 'campaign', id: campaign.id, status: 'canceled', calls_canceled: 1 });
    expect(Date.parse(answer.canceled_at)).toBeLessThanOrEqual(Date.now() + 60_000);
    const after = await (await api(`/${campaign.id}`, { key: keys.reader })).json();
    expect(after.calls).toMatchObject({ queued: 0, ringing: 1, canceled: 1, total: 2 });
    expect(after.status).toBe('canceled');

    const again = await post(`/${campaign.id}/cancel`, keys.writer, {});
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ status: 'canceled', canceled_at: answer.canceled_at, calls_canceled: 0 });

    expect((await post(`/${randomUUID()}/cancel`, keys.writer, {})).status).toBe(404);
    expect((await api(`/${randomUUID()}`, { key: keys.reader })).status).toBe(404);
    const badId = await api('/not-a-uuid', { key: keys.reader });
    expect(badId.status).toBe(422);
    expect((await badId.json()).error.code).toBe('invalid_request');
    expect((await post('/not-a-uuid/cancel', keys.writer, {})).status).toBe(422);
    expect((await api(`/${campaign.id}`, { method: 'DELETE', key: keys.writer })).status).toBe(405);
    expect((await api(`/${campaign.id}/cancel`, { key: keys.writer })).status).toBe(405);
    expect((await api(`/${campaign.id}/other`, { key: keys.reader })).status).toBe(404);

    const audit = await sql<{ table_name: string; action: string; actor_api_key_id: string | null; actor_user_id: string | null }[]>`
      select table_name, action, actor_api_key_id, actor_user_id from public.audit_log
      where (table_name = 'call_campaigns' and record_id = ${campaign.id})
         or (table_name = 'calls' and record_id = ${calls[1].id})
      order by seq`;
    expect(audit.map((entry) => `${entry.table_name} ${entry.action}`)).toEqual([
      'call_campaigns insert', 'calls insert', 'call_campaigns update', 'calls update',
    ]);
    for (const entry of audit) expect(entry).toMatchObject({ actor_api_key_id: writerId, actor_user_id: null });
  });

  it('takes 1000 numbers, duplicates counted, a name of 100 characters, and schedules the campaign for later when asked', async () => {
    const later = new Date(Date.now() + 3 * 86_400_000);
    const numbers = ['+14155550210', ...Array.from({ length: 999 }, () => '+1 415 555 0211')];
    // 100 characters, 200 UTF-16 units.
    const name = '\u{1F4DE}'.repeat(100);
    const response = await post('', keys.writer, campaignBody(numbers, { name, scheduled_at: later.toISOString() }));
    expect(response.status).toBe(201);
    const campaign = (await response.json()) as ApiCampaign;
    expect(campaign).toMatchObject({ name, calls_created: 2, duplicates_removed: 998, invalid_numbers: [] });
    expect(Date.parse(campaign.scheduled_at as string)).toBeGreaterThanOrEqual(later.getTime() - 1000);
  });

  it('is a 402 once the plan\'s call minutes are used up, queuing nothing', async () => {
    const before = await counts(org.id);
    // An hour of talk this period: the free plan includes 30 minutes.
    const [talk] = await sql<{ id: string }[]>`
      insert into public.calls (org_id, direction, from_number, status, started_at, ended_at, duration_seconds, provider, provider_call_id)
      values (${org.id}, 'inbound', '+14155550219', 'ended', now() - interval '1 hour', now(), 3600, 'vapi', 'vapi-long-campaign-call')
      returning id`;
    try {
      const response = await post('', keys.writer, campaignBody(['+14155550220']));
      expect(response.status).toBe(402);
      expect((await response.json()).error.code).toBe('quota_exceeded');
      expect(await counts(org.id)).toEqual({ campaigns: before.campaigns, calls: before.calls + 1 });
    } finally {
      await sql`delete from public.calls where id = ${talk.id}`;
    }
  });
});

describe('Idempotency-Key', () => {
  it('queues the list once per key: a retry (even concurrent) replays the first campaign, another request is 422', async () => {
    const before = await counts(org.id);
    const body = campaignBody(['+14155550230', '+14155550231']);
    const send = (key: string, payload: unknown = body) => post('', keys.writer, payload, { 'idempotency-key': key });
    const idempotencyKey = randomUUID();
    const first = await send(idempotencyKey);
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const campaign = (await first.json()) as ApiCampaign;
    const retry = await send(idempotencyKey, { ...body, numbers: [...body.numbers] });
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('location')).toBe(`/functions/v1/calls/campaigns/${campaign.id}`);
    expect(await retry.json()).toEqual(campaign);
    expect(await counts(org.id)).toEqual({ campaigns: before.campaigns + 1, calls: before.calls + 2 });

    const reused = await send(idempotencyKey, { ...body, numbers: ['+14155550230'] });
    expect(reused.status).toBe(422);
    expect((await reused.json()).error.code).toBe('idempotency_key_reused');
    // The route is part of the request: the key cannot place a single call either.
    const single = await fetch(`${stack.apiUrl}/functions/v1/calls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${keys.writer}`, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify({ bot_id: bot, to_number: '+14155550230' }),
    });
    expect(single.status).toBe(422);
    expect((await single.json()).error.code).toBe('idempotency_key_reused');
    expect(await counts(org.id)).toEqual({ campaigns: before.campaigns + 1, calls: before.calls + 2 });

    const together = randomUUID();
    const answers = await Promise.all([send(together), send(together), send(together)]);
    expect(answers.map((answer) => answer.status)).toEqual([201, 201, 201]);
    const ids = new Set(await Promise.all(answers.map(async (answer) => ((await answer.json()) as ApiCampaign).id)));
    expect(ids.size).toBe(1);
    expect(await counts(org.id)).toEqual({ campaigns: before.campaigns + 2, calls: before.calls + 4 });

    // A request that failed keeps nothing: the same key may be sent again once it is right.
    const failing = randomUUID();
    expect((await send(failing, { ...body, numbers: ['not a number'] })).status).toBe(422);
    expect((await send(failing)).status).toBe(201);
    expect(await counts(org.id)).toEqual({ campaigns: before.campaigns + 3, calls: before.calls + 6 });

    expect((await send('a key with spaces')).status).toBe(422);
    expect(await counts(org.id)).toEqual({ campaigns: before.campaigns + 3, calls: before.calls + 6 });
  });
});

describe('GET /calls/campaigns', () => {
  it('lists the org\'s campaigns newest first, paging through the cursor across a tie, the last page\'s cursor null', async () => {
    await sql`
      insert into public.call_campaigns (org_id, bot_id, name, created_at) values
        (${listOrg.id}, ${listBot}, 'March', '2026-03-01T10:00:00.000001Z'),
        (${listOrg.id}, ${listBot}, 'April', '2026-04-01T10:00:00.123456Z'),
        (${listOrg.id}, ${listBot}, 'April too', '2026-04-01T10:00:00.123456Z'),
        (${listOrg.id}, null, 'May', '2026-05-01T10:00:00Z'),
        (${listOrg.id}, ${listBot}, 'June', '2026-06-01T10:00:00Z')`;
    const expected = (await sql<{ id: string }[]>`
      select id from public.call_campaigns where org_id = ${listOrg.id} order by created_at desc, id desc`).map((row) => row.id);

    const first = await api('?limit=2', { key: keys.lister });
    expect(first.status).toBe(200);
    const page = (await first.json()) as ApiList;
    expect(page.data.map((campaign) => campaign.id)).toEqual(expected.slice(0, 2));
    expect(page.data[0]).toMatchObject({ object: 'campaign', name: 'June', status: 'active', calls_created: 0, invalid_numbers: [] });
    expect(page.data[0]).not.toHaveProperty('org_id');
    expect(page.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);

    for (const limit of [1, 2, 3, 5, 100]) {
      const { ids, pages } = await allPages(limit);
      expect(ids, `limit ${limit}`).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / limit)));
    }
    const whole = (await (await api('', { key: keys.lister })).json()) as ApiList;
    expect(whole.data.map((campaign) => campaign.id)).toEqual(expected);
    expect(whole.next_cursor).toBeNull();
  });
});

describe('another org\'s campaigns', () => {
  it('are never listed, read or cancelled, and its bot queues nothing', async () => {
    const [theirs] = await sql<{ id: string }[]>`
      insert into public.call_campaigns (org_id, bot_id, name) values (${other.id}, ${otherOrgBot}, 'Theirs') returning id`;
    const [queued] = await sql<{ id: string }[]>`
      insert into public.calls (org_id, bot_id, campaign_id, direction, to_number, status, provider)
      values (${other.id}, ${otherOrgBot}, ${theirs.id}, 'outbound', '+14155550240', 'queued', 'vapi') returning id`;

    const { ids } = await allPages(100, keys.writer);
    expect(ids).not.toContain(theirs.id);
    const read = await api(`/${theirs.id}`, { key: keys.writer });
    expect(read.status).toBe(404);
    expect((await read.json()).error).toMatchObject({ code: 'not_found', message: 'The campaign was not found.' });
    const cancel = await post(`/${theirs.id}/cancel`, keys.writer, {});
    expect(cancel.status).toBe(404);
    expect((await cancel.json()).error.code).toBe('not_found');
    const [campaign] = await sql<{ status: string }[]>`select status from public.call_campaigns where id = ${theirs.id}`;
    expect(campaign.status).toBe('active');
    const [call] = await sql<{ status: string }[]>`select status::text from public.calls where id = ${queued.id}`;
    expect(call.status).toBe('queued');

    const before = [await counts(org.id), await counts(other.id)];
    const placed = await post('', keys.writer, campaignBody(['+14155550241'], { bot_id: otherOrgBot }));
    expect(placed.status).toBe(404);
    expect((await placed.json()).error).toMatchObject({ code: 'not_found', message: 'The bot was not found.' });
    expect([await counts(org.id), await counts(other.id)]).toEqual(before);
  });
});

describe('who may call', () => {
  it('needs an API key with the route\'s scope; a user token is refused', async () => {
    const before = await counts(org.id);
    const reader = await post('', keys.reader, campaignBody(['+14155550250']));
    expect(reader.status).toBe(403);
    expect((await reader.json()).error.code).toBe('insufficient_scope');
    expect((await post(`/${randomUUID()}/cancel`, keys.reader, {})).status).toBe(403);
    const writeOnly = (await createApiKey(sql, org, ['calls.write'])).key;
    const listing = await api('', { key: writeOnly });
    expect(listing.status).toBe(403);
    expect((await listing.json()).error.code).toBe('insufficient_scope');
    expect((await api(`/${randomUUID()}`, { key: writeOnly })).status).toBe(403);

    expect((await api('')).status).toBe(401);
    const user = await post('', org.tokens.owner, campaignBody(['+14155550251']));
    expect(user.status).toBe(401);
    expect((await user.json()).error.code).toBe('api_key_required');
    expect(await counts(org.id)).toEqual(before);
  });
});

describe('a bot that does not answer on the voice channel', () => {
  it('is refused (422 voice_channel_disabled), queuing nothing', async () => {
    const webOnly = await createBot(sql, org.id, { slug: 'campaigns-api-web-only', channels: ['web', 'api'] });
    await asServiceRole(sql, (tx) => tx`update public.bots set voice_assistant_id = 'asst-campaigns-api-web-only' where id = ${webOnly}`);
    const before = await counts(org.id);
    const response = await post('', keys.writer, campaignBody(['+14155550270', '+14155550271'], { bot_id: webOnly }));
    expect(response.status).toBe(422);
    expect((await response.json()).error).toMatchObject({
      code: 'voice_channel_disabled',
      message: 'the bot Bot campaigns-api-web-only does not answer on the voice channel',
    });
    expect(await counts(org.id)).toEqual(before);
  });
});

describe('bad input', () => {
  it('is a 4xx that changes nothing', async () => {
    const before = await counts(org.id);
    const bodies: [unknown, number, string][] = [
      [campaignBody([]), 422, 'invalid_request'],
      [campaignBody(Array.from({ length: 1001 }, (_, i) => `+1415555${String(i).padStart(4, '0')}`)), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { extra: true }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { org_id: other.id }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { name: '   ' }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { name: 'x'.repeat(101) }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { name: '\u{1F4DE}'.repeat(101) }), 422, 'invalid_request'],
      [campaignBody(['+14155550260', 'x'.repeat(65)]), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { name: undefined }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { bot_id: 'nope' }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { scheduled_at: 'tomorrow' }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { callee_time_zone: 'Mars/Olympus' }), 422, 'invalid_request'],
      [campaignBody(['+14155550260'], { bot_id: randomUUID() }), 404, 'not_found'],
      [{ ...campaignBody([]), numbers: '+14155550260' }, 422, 'invalid_request'],
      [{ ...campaignBody([]), numbers: [42] }, 422, 'invalid_request'],
      [campaignBody(['not a number', '+1']), 422, 'invalid_request'],
      [[], 422, 'invalid_request'],
    ];
    for (const [body, status, code] of bodies) {
      const response = await post('', keys.writer, body);
      const label = JSON.stringify(body).slice(0, 200);
      expect(response.status, label).toBe(status);
      expect((await response.json()).error.code, label).toBe(code);
    }
    const notJson = await api('', { method: 'POST', key: keys.writer, body: '{"bot_id":' });
    expect(notJson.status).toBe(400);

    const cursor = (await (await api('?limit=1', { key: keys.lister })).json()).next_cursor as string;
    const decoded = Buffer.from(cursor, 'base64url').toString();
    const queries = [
      'cursor=garbage',
      `cursor=${encodeURIComponent(Buffer.from(decoded.replace('|', '#')).toString('base64url'))}`,
      `cursor=${encodeURIComponent(Buffer.from(decoded.replace(/^\d{4}-\d{2}/, '2026-13')).toString('base64url'))}`,
      `cursor=${'x'.repeat(500)}`,
      'limit=0', 'limit=101', 'limit=ten', 'limit=1&limit=2', 'status=active', 'unknown=1',
    ];
    for (const query of queries) {
      const response = await api(`?${query}`, { key: keys.lister });
      expect(response.status, query).toBe(422);
      expect((await response.json()).error.code, query).toBe('invalid_request');
    }
    expect(await counts(org.id)).toEqual(before);
  });

  it('refuses a scheduled time more than 366 days ahead (422), queuing nothing', async () => {
    const before = await counts(org.id);
    for (const scheduled_at of ['9999-12-31T23:59:59Z', new Date(Date.now() + 367 * 86_400_000).toISOString()]) {
      const response = await post('', keys.writer, campaignBody(['+14155550269'], { scheduled_at }));
      expect(response.status, scheduled_at).toBe(422);
      const { error } = await response.json();
      expect(error.code).toBe('invalid_request');
      expect(error.message).toBe('Invalid request body: scheduled_at: must be at most 366 days ahead');
    }
    expect(await counts(org.id)).toEqual(before);
  });
});
