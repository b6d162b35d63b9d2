/**
 * A leaver's calendar grant is revoked at the provider (the calendar function
 * over HTTP, real Deno, against tests/support/calendar-stub.ts): an admin
 * connects a calendar and is removed from the org; the connection is revoked
 * at once and waits, with its sealed tokens, for the scheduled pass
 * (POST /calendar/revocations, the service role's), which revokes the grant
 * at Google as a disconnect does and deletes the connection. A refused
 * revocation is retried with an attempt counted; an account still connected
 * elsewhere keeps its grant; a deployment whose Google OAuth app was
 * removed still revokes (Google's revocation takes no client credentials);
 * Microsoft, which offers no revocation, is deleted at once. An org's deletion queues its connections' grants
 * (20261123009800), which the same pass revokes at Google; so do an admin's deletion of a bot, for the bot's
 * connections, and a connection request nobody completed (20261123010300). A connect that fails after the code
 * exchange gives the grant back at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { type CalendarProvider, openTokenSet, parseKeyring, type TokenSet } from '../../functions/_shared/calendar/index.ts';
import { type ConnectionKey, tokenContext } from '../../functions/_shared/scheduling/stored-tokens.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, type CalendarStubRequest, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { startTestStack, type TestStack } from './support.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { runExclusively } from '../support/exclusive.ts';

const TOKEN_KEY = Buffer.from('calendar-leavers-token-key-32byt').toString('base64');
const LEFT = 'the member who connected it left the organization';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

/** The org's admin starts a connect (for the bot when given) and the account consents: the callback's answer. */
async function consentTo(org: ChatOrg, provider: 'google' | 'microsoft', email: string, botId?: string): Promise<Answer> {
  const body = { org_id: org.id, provider, ...(botId ? { bot_id: botId } : {}) };
  const started = await call('/oauth/start', { method: 'POST', token: org.tokens.admin, body });
  expect(started.status).toBe(200);
  const consent = await stub.authorize(String(started.body.authorization_url), { email });
  return call(`/oauth/callback${new URL(consent.location).search}`);
}

/** The org's admin connects the account's calendar (the bot's when given); answers the connection id. */
async function connect(org: ChatOrg, provider: 'google' | 'microsoft', email: string, botId?: string): Promise<string> {
  const parked = await consentTo(org, provider, email, botId);
  expect(parked.status).toBe(200);
  const connected = await call('/oauth/complete', {
    method: 'POST',
    token: org.tokens.admin,
    body: { connection_request: parked.body.connection_request },
  });
  expect(connected.status).toBe(200);
  return String(connected.body.connection_id);
}

/** The owner removes the org's admin (who connected its calendars). */
async function removeAdmin(org: ChatOrg): Promise<void> {
  await withUserScope(sql, org.claims.owner, (tx) => tx`select public.remove_member(${org.id}::uuid, ${org.users.admin}::uuid)`);
}

/** A sealed set's row: what it is bound to (20261123014000: the account subject included). */
interface SealedRow {
  org_id: string;
  provider: CalendarProvider;
  account_subject: string | null;
  account_email: string;
  external_calendar_id: string | null;
  ciphertext: string;
}

function keyOf(row: SealedRow): ConnectionKey {
  return {
    orgId: row.org_id,
    provider: row.provider,
    accountSubject: row.account_subject,
    accountEmail: row.account_email,
    externalCalendarId: row.external_calendar_id,
  };
}

/** The token set the function sealed for the connection. */
async function storedTokens(id: string): Promise<TokenSet> {
  const [row] = await sql<SealedRow[]>`
    select c.org_id, c.provider, c.account_subject, c.account_email, c.external_calendar_id, t.ciphertext
    from public.calendar_connections c join private.calendar_tokens t on t.connection_id = c.id
    where c.id = ${id}`;
  if (!row) throw new Error(`no tokens for ${id}`);
  return openTokenSet(row.ciphertext, await parseKeyring(TOKEN_KEY), tokenContext(keyOf(row)));
}

/** The connection as the dashboard and the pass see it; undefined once deleted. */
async function connection(id: string) {
  const [row] = await sql<{
    status: string;
    status_reason: string | null;
    tokens: boolean;
    attempts: number | null;
    next_attempt_at: Date | null;
    last_error: string | null;
  }[]>`
    select c.status, c.status_reason,
           exists (select 1 from private.calendar_tokens t where t.connection_id = c.id) as tokens,
           r.attempts, r.next_attempt_at, r.last_error
    from public.calendar_connections c
    left join private.calendar_grant_revocations r on r.connection_id = c.id
    where c.id = ${id}`;
  return row;
}

function revokes(): CalendarStubRequest[] {
  return stub.requests.filter((request) => request.method === 'POST' && request.host === 'oauth2.googleapis.com' && request.path === '/revoke');
}

/** Google's answer to a refresh with this token: 200 while the grant stands, 400 invalid_grant once it is revoked. */
async function refreshAtGoogle(refreshToken: string): Promise<{ status: number; error?: string }> {
  const response = await fetch(`${stub.google.oauth2BaseUrl}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
      client_id: stub.google.clientId,
      client_secret: stub.google.clientSecret,
    }),
  });
  const body = (await response.json()) as { error?: string };
  return { status: response.status, ...(body.error ? { error: body.error } : {}) };
}

async function pass(): Promise<Answer> {
  return call('/revocations', { method: 'POST', token: stack.keys.serviceRoleKey, body: {} });
}

// Its passes take every org's due calendar work (see runExclusively).
runExclusively('calendar-passes');

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({ env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: TOKEN_KEY } });
  sql = createSql(stack.dbUrl, { max: 2 });
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('a leaver\'s Google grant', () => {
  it('is revoked at Google by the scheduled pass, then the connection is deleted', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-revoked');
    const id = await connect(org, 'google', 'leaver-revoked@calendar-leavers.test');
    const { refreshToken } = await storedTokens(id);
    expect(refreshToken).toBeTruthy();

    await removeAdmin(org);
    // Unusable at once, kept (tokens sealed) for the pass; not yet revoked anywhere.
    expect(await connection(id)).toMatchObject({ status: 'revoked', status_reason: LEFT, tokens: true, attempts: 0 });
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toEqual([]);
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });

    const answer = await pass();
    expect(answer.status).toBe(200);
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: true });
    // Google was asked to revoke exactly that grant's refresh token, in the form body.
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toHaveLength(1);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await connection(id)).toBeUndefined();
    const [audit] = await sql<{ deleted: number }[]>`
      select count(*)::int as deleted from public.audit_log
      where table_name = 'calendar_connections' and record_id = ${id} and action = 'delete'`;
    expect(audit?.deleted).toBe(1);

    // Nothing left for a later pass.
    const again = await pass();
    expect((again.body.revocations as { connection_id: string }[]).map((entry) => entry.connection_id)).not.toContain(id);
  });

  it('stays pending with the attempt counted when Google refuses, and is revoked by a later pass', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-refused');
    const id = await connect(org, 'google', 'leaver-refused@calendar-leavers.test');
    const { refreshToken } = await storedTokens(id);
    await removeAdmin(org);

    stub.failNext(503, {}, { match: /oauth2\.googleapis\.com\/revoke$/u });
    const refused = await pass();
    expect(refused.status).toBe(200);
    expect(refused.body.revocations).toContainEqual({ connection_id: id, status: 'pending', revoked_at_provider: false });
    const pending = await connection(id);
    expect(pending).toMatchObject({ status: 'revoked', status_reason: LEFT, tokens: true, attempts: 1, last_error: expect.stringContaining('503') });
    // Due again a minute later, not before.
    const wait = (pending?.next_attempt_at?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(30_000);
    expect(wait).toBeLessThanOrEqual(60_000);
    const early = await pass();
    expect((early.body.revocations as { connection_id: string }[]).map((entry) => entry.connection_id)).not.toContain(id);
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });

    await sql`update private.calendar_grant_revocations set next_attempt_at = now() - interval '1 second' where connection_id = ${id}`;
    const retried = await pass();
    expect(retried.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: true });
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toHaveLength(2);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await connection(id)).toBeUndefined();
  });

  it('is deleted anyway, the reason audited, after the fifth refused attempt', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-given-up');
    const id = await connect(org, 'google', 'leaver-given-up@calendar-leavers.test');
    await removeAdmin(org);
    await sql`update private.calendar_grant_revocations set attempts = 4 where connection_id = ${id}`;

    stub.failNext(503, {}, { match: /oauth2\.googleapis\.com\/revoke$/u });
    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'given_up', revoked_at_provider: false });
    expect(await connection(id)).toBeUndefined();
    const [audit] = await sql<{ reason: string }[]>`
      select new_values ->> 'status_reason' as reason from public.audit_log
      where table_name = 'calendar_connections' and record_id = ${id} and action = 'update'
      order by id desc limit 1`;
    expect(audit?.reason).toContain('could not be revoked at the provider (5 attempts');
  });

  it('is kept while the same Google account is connected in another org, whose calendar keeps working', async () => {
    const email = 'leaver-shared@calendar-leavers.test';
    const left = await createChatOrg(sql, 'cal-leavers-shared-left');
    const stays = await createChatOrg(sql, 'cal-leavers-shared-stays');
    const id = await connect(left, 'google', email);
    const other = await connect(stays, 'google', email);
    await removeAdmin(left);
    const revokesBefore = revokes().length;

    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: false });
    expect(revokes()).toHaveLength(revokesBefore);
    expect(await connection(id)).toBeUndefined();
    expect(await connection(other)).toMatchObject({ status: 'connected', tokens: true });
    expect(await refreshAtGoogle((await storedTokens(other)).refreshToken ?? '')).toMatchObject({ status: 200 });
  });

  it('is revoked at Google by a deployment whose Google OAuth app was removed after the connect', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-unconfigured');
    const id = await connect(org, 'google', 'leaver-unconfigured@calendar-leavers.test');
    const { refreshToken } = await storedTokens(id);
    await removeAdmin(org);

    // Google's revocation takes no client credentials: only the token key is needed to open the grant.
    const unconfigured = await startTestStack({
      env: { ...providerEnv(stub), CALENDAR_GOOGLE_CLIENT_ID: '', CALENDAR_GOOGLE_CLIENT_SECRET: '', CALENDAR_TOKEN_KEY: TOKEN_KEY },
    });
    try {
      const started = await callCalendar(unconfigured.functionsUrl, '/oauth/start', {
        method: 'POST',
        token: org.tokens.owner,
        body: { org_id: org.id, provider: 'google' },
      });
      expect(started.status).toBe(501);
      const answer = await callCalendar(unconfigured.functionsUrl, '/revocations', {
        method: 'POST',
        token: unconfigured.keys.serviceRoleKey,
        body: {},
      });
      expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: true });
    } finally {
      await unconfigured.stop();
    }
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toHaveLength(1);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await connection(id)).toBeUndefined();
  });
});

describe('a leaver\'s Microsoft connection', () => {
  it('is deleted by the first pass (Microsoft has no per-token revocation)', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-microsoft');
    const id = await connect(org, 'microsoft', 'leaver@calendar-leavers.example');
    await removeAdmin(org);
    expect(await connection(id)).toMatchObject({ status: 'revoked', tokens: true, attempts: 0 });
    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: false });
    expect(await connection(id)).toBeUndefined();
  });
});

/** The owner deletes the org, as the dashboard's rpc('delete_organization') does. */
async function deleteOrg(org: ChatOrg): Promise<void> {
  await withUserScope(sql, org.claims.owner, (tx) =>
    tx`select public.delete_organization(${org.id}::uuid, (select name from public.organizations where id = ${org.id}::uuid))`);
}

/** The grant revocations a deleted org left queued for the connection (each holds its sealed tokens). */
async function queuedAfterOrgDeletion(connectionId: string): Promise<{ ciphertext: string }[]> {
  return sql<{ ciphertext: string }[]>`
    select ciphertext from private.deleted_org_calendar_grants where connection_id = ${connectionId}`;
}

describe('a deleted org\'s Google grant', () => {
  it('is revoked at Google by the scheduled pass, and nothing is left queued', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-org-deleted');
    const id = await connect(org, 'google', 'org-deleted@calendar-leavers.test');
    const { refreshToken } = await storedTokens(id);
    expect(refreshToken).toBeTruthy();

    await deleteOrg(org);
    expect(await connection(id)).toBeUndefined();
    // The sealed tokens outlive the org until the pass; nothing revoked yet.
    expect(await queuedAfterOrgDeletion(id)).toHaveLength(1);
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toEqual([]);
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });

    const answer = await pass();
    expect(answer.status).toBe(200);
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: true });
    expect(revokes().filter((request) => (request.body as Record<string, string>).token === refreshToken)).toHaveLength(1);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await queuedAfterOrgDeletion(id)).toEqual([]);
  });

  it('is kept while the same Google account is connected in another org, whose calendar keeps working', async () => {
    const email = 'org-deleted-shared@calendar-leavers.test';
    const deleted = await createChatOrg(sql, 'cal-leavers-org-deleted-shared');
    const stays = await createChatOrg(sql, 'cal-leavers-org-deleted-stays');
    const id = await connect(deleted, 'google', email);
    const other = await connect(stays, 'google', email);
    await deleteOrg(deleted);
    expect(await queuedAfterOrgDeletion(id)).toHaveLength(1);
    const revokesBefore = revokes().length;

    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: false });
    expect(revokes()).toHaveLength(revokesBefore);
    expect(await queuedAfterOrgDeletion(id)).toEqual([]);
    expect(await connection(other)).toMatchObject({ status: 'connected', tokens: true });
    expect(await refreshAtGoogle((await storedTokens(other)).refreshToken ?? '')).toMatchObject({ status: 200 });
  });
});

/** The grants a deletion left queued under this connection's (or connection request's) id, sealed tokens and all. */
async function queuedCopies(id: string): Promise<{ key: ConnectionKey; context: string; ciphertext: string }[]> {
  const rows = await sql<SealedRow[]>`
    select org_id, provider, account_subject, account_email, external_calendar_id, ciphertext
    from private.deleted_org_calendar_grants where connection_id = ${id}`;
  return rows.map((row) => ({ key: keyOf(row), context: tokenContext(keyOf(row)), ciphertext: row.ciphertext }));
}

function revokesOf(token: string | undefined): CalendarStubRequest[] {
  return revokes().filter((request) => (request.body as Record<string, string>).token === token);
}

describe('a deleted bot\'s Google grant', () => {
  it('is queued when an admin deletes the bot, and revoked at Google by the pass', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-bot-deleted');
    const [bot] = await sql<{ id: string }[]>`
      insert into public.bots (org_id, name, slug) values (${org.id}, 'Leavers bot', ${`leavers-bot-${org.id.slice(0, 8)}`})
      returning id`;
    const id = await connect(org, 'google', 'bot-deleted@calendar-leavers.test', bot.id);
    const { refreshToken } = await storedTokens(id);
    expect(refreshToken).toBeTruthy();

    // As the dashboard does it: supabase.from('bots').delete(), under the admin's RLS.
    const deleted = await withUserScope(sql, org.claims.admin, (tx) => tx`delete from public.bots where id = ${bot.id}::uuid returning id`);
    expect(deleted).toHaveLength(1);
    expect(await connection(id)).toBeUndefined();
    const [copy] = await queuedCopies(id);
    expect(copy).toBeDefined();
    expect((await openTokenSet(copy.ciphertext, await parseKeyring(TOKEN_KEY), copy.context)).refreshToken).toBe(refreshToken);
    expect(revokesOf(refreshToken)).toEqual([]);
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });

    const answer = await pass();
    expect(answer.status).toBe(200);
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: true });
    expect(revokesOf(refreshToken)).toHaveLength(1);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await queuedCopies(id)).toEqual([]);
  });
});

describe('a connection request\'s Google grant', () => {
  it('is queued when the request expires unclaimed, and revoked at Google by the pass', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-request-expired');
    const parked = await consentTo(org, 'google', 'request-expired@calendar-leavers.test');
    expect(parked.status).toBe(200);
    const requestId = String(parked.body.connection_request);
    await sql`update private.calendar_pending_connections set expires_at = now() - interval '1 second' where id = ${requestId}`;
    await sql`select private.purge_calendar_pending_connections()`;

    // Sealed under the calendar the completion would have saved, so the pass opens it as any other.
    const [copy] = await queuedCopies(requestId);
    expect(copy?.key).toEqual({
      orgId: org.id,
      provider: 'google',
      accountSubject: expect.stringMatching(/^[0-9]+$/u),
      accountEmail: 'request-expired@calendar-leavers.test',
      externalCalendarId: 'primary',
    });
    const { refreshToken } = await openTokenSet(copy.ciphertext, await parseKeyring(TOKEN_KEY), copy.context);
    expect(refreshToken).toBeTruthy();
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });

    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: requestId, status: 'deleted', revoked_at_provider: true });
    expect(revokesOf(refreshToken)).toHaveLength(1);
    expect(await refreshAtGoogle(refreshToken ?? '')).toEqual({ status: 400, error: 'invalid_grant' });
    expect(await queuedCopies(requestId)).toEqual([]);
  });

  it('keeps a leaver\'s grant while the same account\'s connect is pending', async () => {
    const email = 'request-holds@calendar-leavers.test';
    const left = await createChatOrg(sql, 'cal-leavers-request-holds');
    const joining = await createChatOrg(sql, 'cal-leavers-request-joins');
    const id = await connect(left, 'google', email);
    await removeAdmin(left);
    const parked = await consentTo(joining, 'google', email);
    expect(parked.status).toBe(200);
    const revokesBefore = revokes().length;

    const answer = await pass();
    expect(answer.body.revocations).toContainEqual({ connection_id: id, status: 'deleted', revoked_at_provider: false });
    expect(revokes()).toHaveLength(revokesBefore);
    const completed = await call('/oauth/complete', {
      method: 'POST',
      token: joining.tokens.admin,
      body: { connection_request: parked.body.connection_request },
    });
    expect(completed.status).toBe(200);
    const { refreshToken } = await storedTokens(String(completed.body.connection_id));
    expect(await refreshAtGoogle(refreshToken ?? '')).toMatchObject({ status: 200 });
  });
});

describe('a connect that fails after the code exchange', () => {
  it('gives the Google grant back at once', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-store-refused');
    const revokesBefore = revokes().length;
    // An address the database refuses to park: the request is not stored.
    const refused = await consentTo(org, 'google', 'no-address.calendar-leavers.test');
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ error: { code: 'invalid_request' } });
    expect(await sql`select 1 from private.calendar_pending_connections where org_id = ${org.id}`).toHaveLength(0);
    expect(revokes()).toHaveLength(revokesBefore + 1);
  });
});

describe('the pass', () => {
  it('is the service role\'s only, and refuses malformed bodies', async () => {
    const org = await createChatOrg(sql, 'cal-leavers-route');
    expect((await call('/revocations', { method: 'POST' })).status).toBe(401);
    const admin = await call('/revocations', { method: 'POST', token: org.tokens.admin, body: {} });
    expect(admin.status).toBe(403);
    expect(admin.body).toMatchObject({ error: { code: 'service_role_required' } });
    const service = stack.keys.serviceRoleKey;
    for (const body of [{ limit: 0 }, { limit: 51 }, { limit: 'ten' }, { limt: 5 }]) {
      const answer = await call('/revocations', { method: 'POST', token: service, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: 'invalid_request' } });
    }
    expect((await call('/revocations', { token: service })).status).toBe(405);
  });
});
