/**
 * Finishing a CALENDAR_TOKEN_KEY rotation (20261123011300; the calendar
 * function over HTTP, real Deno, against tests/support/calendar-stub.ts).
 * The function runs with `NEW,OLD`: POST /calendar/reseal (service role)
 * seals again under NEW what was sealed under OLD (a connection's tokens,
 * also a needs_reauth one's, an unexpired connection request's, a dropped
 * grant's copy), changing nothing else, and names what does not open; a
 * connection whose tokens were sealed with a key no longer configured is
 * marked needs_reauth with calendar.connection_broken (once) when used,
 * rather than only logged.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { instantFromWallTime, type Keyring, open, parseKeyring, sealTokenSet, type TokenSet } from '../../functions/_shared/calendar/index.ts';
import { connectionKey, tokenContext } from '../../functions/_shared/scheduling/stored-tokens.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';

const NEW_KEY = Buffer.from('calendar-rotation-new-key-32byte').toString('base64');
const OLD_KEY = Buffer.from('calendar-rotation-old-key-32byte').toString('base64');
/** A key already dropped from the function's keyring. */
const GONE_KEY = Buffer.from('calendar-rotation-gone-key-32byt').toString('base64');
const ZONE = 'Europe/Berlin';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let org: ChatOrg;
let oldRing: Keyring;
let goneRing: Keyring;
let newOnly: Keyring;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

const tokens = (label: string): TokenSet => ({
  accessToken: `rotation-access-${label}`,
  refreshToken: `rotation-refresh-${label}`,
  expiresAt: new Date(Date.now() + 3_600_000),
  tokenType: 'Bearer',
  scope: 'https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy',
  account: { id: `rotation-subject-${label}`, email: `${label}@rotation.example` },
});

/** A Google connection of the org whose tokens are sealed with `ring`, as the callback and completion store them. */
async function connectSealed(label: string, ring: Keyring): Promise<{ id: string; context: string }> {
  const email = `${label}@rotation.example`;
  const key = connectionKey(org.id, 'google', email, null);
  const set = tokens(label);
  const ciphertext = await sealTokenSet(set, ring, tokenContext(key));
  const [saved] = await sql<{ id: string }[]>`
    select private.save_calendar_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, 'google', ${email},
      ${key.externalCalendarId}, ${['https://www.googleapis.com/auth/calendar.events']}, ${ciphertext},
      ${set.expiresAt.toISOString()}::timestamptz, ${set.account?.id ?? null}) as id`;
  return { id: saved.id, context: tokenContext(key) };
}

async function tokensOf(connectionId: string): Promise<string> {
  const [row] = await sql<{ ciphertext: string }[]>`select ciphertext from private.calendar_tokens where connection_id = ${connectionId}`;
  return row.ciphertext;
}

async function connection(id: string) {
  const [row] = await sql<{ status: string; status_reason: string | null; token_expires_at: Date }[]>`
    select status, status_reason, token_expires_at from public.calendar_connections where id = ${id}`;
  return row;
}

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({ env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: `${NEW_KEY},${OLD_KEY}` } });
  sql = createSql(stack.dbUrl, { max: 2 });
  oldRing = await parseKeyring(OLD_KEY);
  goneRing = await parseKeyring(GONE_KEY);
  newOnly = await parseKeyring(NEW_KEY);
  org = await createChatOrg(sql, 'cal-token-rotation');
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('POST /calendar/reseal', () => {
  it('seals every kind of stored token set under the first key, changes nothing else, and names what does not open', async () => {
    const live = await connectSealed('live', oldRing);
    const broken = await connectSealed('broken', oldRing);
    await sql`update public.calendar_connections set status = 'needs_reauth', status_reason = 'invalid_grant: rotation test'
      where id = ${broken.id}`;
    const brokenBefore = await connection(broken.id);
    const lost = await connectSealed('lost', goneRing);
    const lostCiphertext = await tokensOf(lost.id);

    const requestKey = connectionKey(org.id, 'google', 'request@rotation.example', null);
    const [request] = await sql<{ id: string }[]>`
      select id from private.store_calendar_pending_connection(${org.id}::uuid, ${org.users.admin}::uuid, null, 'google',
        ${requestKey.accountEmail}, 'rotation-subject-request', ${['https://www.googleapis.com/auth/calendar.events']},
        ${await sealTokenSet(tokens('request'), oldRing, tokenContext(requestKey))}, now() + interval '1 hour')`;
    const droppedKey = connectionKey(org.id, 'google', 'dropped@rotation.example', null);
    // Not due for a day: no revocation pass of another test file takes it meanwhile.
    const [dropped] = await sql<{ id: string }[]>`
      insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
        external_calendar_id, ciphertext, next_attempt_at)
      values (${randomUUID()}, ${org.id}, 'google', 'rotation-subject-dropped', ${droppedKey.accountEmail}, 'primary',
        ${await sealTokenSet(tokens('dropped'), oldRing, tokenContext(droppedKey))}, now() + interval '1 day')
      returning id`;

    const refused = await call('/reseal', { method: 'POST', token: org.tokens.owner, body: {} });
    expect(refused).toMatchObject({ status: 403, body: { error: { code: 'service_role_required' } } });
    expect((await call('/reseal', { method: 'POST', token: stack.keys.serviceRoleKey, body: { limit: 501 } })).status).toBe(400);
    expect(await tokensOf(live.id)).toMatch(/^v1\./u);
    expect(await open(await tokensOf(live.id), oldRing, live.context)).toContain('rotation-access-live');

    const answer = await call('/reseal', { method: 'POST', token: stack.keys.serviceRoleKey, body: { limit: 500 } });
    expect(answer.status).toBe(200);
    expect(answer.body.resealed).toBeGreaterThanOrEqual(4);
    expect(answer.body.failed).toContainEqual({ kind: 'connection', id: lost.id, reason: 'unknown_key' });
    const failedIds = (answer.body.failed as { id: string }[]).map((failure) => failure.id);
    for (const id of [live.id, broken.id, request.id, dropped.id]) expect(failedIds).not.toContain(id);
    // What does not open stays counted, so the operator sees the rotation is not finished.
    expect(answer.body.remaining).toBeGreaterThanOrEqual(1);

    // Everything opens with the new key alone now, under the same contexts.
    expect(await open(await tokensOf(live.id), newOnly, live.context)).toContain('rotation-access-live');
    expect(await open(await tokensOf(broken.id), newOnly, broken.context)).toContain('rotation-access-broken');
    const [pending] = await sql<{ ciphertext: string }[]>`
      select ciphertext from private.calendar_pending_connections where id = ${request.id}`;
    expect(await open(pending.ciphertext, newOnly, tokenContext(requestKey))).toContain('rotation-access-request');
    const [copy] = await sql<{ ciphertext: string; attempts: number }[]>`
      select ciphertext, attempts from private.deleted_org_calendar_grants where id = ${dropped.id}`;
    expect(await open(copy.ciphertext, newOnly, tokenContext(droppedKey))).toContain('rotation-access-dropped');
    expect(copy.attempts).toBe(0);
    // A re-seal is no refresh: a broken connection stays broken, with its reason and expiry.
    expect(await connection(broken.id)).toEqual(brokenBefore);
    expect(await tokensOf(lost.id)).toBe(lostCiphertext);

    // Done ones are not taken again.
    const done = await tokensOf(live.id);
    const again = await call('/reseal', { method: 'POST', token: stack.keys.serviceRoleKey, body: { limit: 500 } });
    expect(again.status).toBe(200);
    expect(await tokensOf(live.id)).toBe(done);
    expect((again.body.failed as { id: string }[]).map((failure) => failure.id)).toContain(lost.id);
  });
});

describe('tokens sealed with a key no longer configured', () => {
  it('mark the connection needs_reauth and tell the org once, naming the calendar as missing', async () => {
    const other = await createChatOrg(sql, 'cal-token-rotation-gone');
    const email = 'gone@rotation.example';
    const key = connectionKey(other.id, 'google', email, null);
    const set = tokens('gone');
    const [saved] = await sql<{ id: string }[]>`
      select private.save_calendar_connection(${other.id}::uuid, ${other.users.admin}::uuid, null, 'google', ${email},
        ${key.externalCalendarId}, ${['https://www.googleapis.com/auth/calendar.events']},
        ${await sealTokenSet(set, goneRing, tokenContext(key))}, ${set.expiresAt.toISOString()}::timestamptz, 'rotation-subject-gone') as id`;
    const id = saved.id;
    const day = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
    const query = new URLSearchParams({
      org_id: other.id,
      from: instantFromWallTime(`${day}T00:00`, ZONE).toISOString(),
      to: instantFromWallTime(`${day}T12:00`, ZONE).toISOString(),
      duration_minutes: '60',
    });
    const first = await call(`/availability?${query}`, { token: other.tokens.member });
    expect(first.status).toBe(200);
    expect(first.body.missing_calendars).toEqual([{ connection_id: id, provider: 'google', reason: 'needs_reauth' }]);
    expect(await connection(id)).toMatchObject({ status: 'needs_reauth', status_reason: expect.stringContaining('unknown_key') });
    const second = await call(`/availability?${query}`, { token: other.tokens.member });
    expect(second.body.missing_calendars).toEqual(first.body.missing_calendars);
    const [events] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.events where org_id = ${other.id} and type = 'calendar.connection_broken'`;
    expect(events.count).toBe(1);
  });
});
