/**
 * The calendar function over HTTP (real Deno behind the gateway) against
 * tests/support/calendar-stub.ts, which speaks Google's and Microsoft's wire
 * formats: the whole OAuth flow for both providers (PKCE, the signed
 * single-use state, tokens sealed at rest, the connection completed only by
 * the user who started it, redirect_to only to allowed origins), state
 * tampering, reuse and expiry, a refresh the provider refuses, availability across a
 * daylight-saving change minus both providers' busy times and a booked
 * appointment, double booking under concurrency, bots booking only free
 * time, mirroring to the calendar, disconnecting with revocation (left alone
 * while another org still uses the same Google account), a connection keyed
 * by the provider's account id rather than its e-mail (a new address
 * reconnects the same connection; an address passed to another account is
 * another one), and no org seeing another's calendars. Every refusal changes
 * nothing.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import {
  createOAuthState,
  instantFromWallTime,
  offsetMinutes,
  openTokenSet,
  parseKeyring,
  type TokenSet,
} from '../../functions/_shared/calendar/index.ts';
import { createCalendarHandler } from '../../functions/calendar/handler.ts';
import { type ConnectionKey, tokenContext } from '../../functions/_shared/scheduling/stored-tokens.ts';
import { LOCAL_JWT_SECRET, signUserToken } from '../../scripts/local/keys.ts';
import { type ChatOrg, createApiKey, createBot, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { startTestStack, type TestStack } from './support.ts';

const TOKEN_KEY = Buffer.from('calendar-test-token-key-32-bytes').toString('base64');
const ZONE = 'Europe/Berlin';
const DAY = 86_400_000;
/** The dashboard: the first of CALENDAR_REDIRECT_ORIGINS, which redirect_to paths resolve against. */
const DASHBOARD = 'https://app.example.com';

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let orgA: ChatOrg;
let orgB: ChatOrg;
let botA: string;
let googleA: string;
let microsoftA: string;
let googleB: string;
/** The staff appointment mirrored to googleA. */
let mirroredId: string;
/** The Sunday of the next DST change in Berlin at least two days away, as YYYY-MM-DD. */
let dstSunday: string;
/** A Monday after the DST week, for bookings. */
let monday: string;

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function call(
  path: string,
  options: { method?: string; token?: string; apiKey?: string; body?: unknown; raw?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
  if (options.body !== undefined || options.raw !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${stack.functionsUrl}/calendar${path}`, {
    method: options.method ?? 'GET',
    headers,
    redirect: 'manual',
    ...(options.raw !== undefined ? { body: options.raw } : options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) as Record<string, unknown> : {}, headers: response.headers };
}

/** YYYY-MM-DD plus days. */
function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY).toISOString().slice(0, 10);
}

/** The instant of a Berlin wall time, as ISO. */
function berlin(date: string, time: string): string {
  return instantFromWallTime(`${date}T${time}`, ZONE).toISOString();
}

function nextDstSunday(): string {
  const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T12:00:00Z`);
  for (let day = 3; day < 400; day += 1) {
    const noon = new Date(today + day * DAY);
    if (offsetMinutes(noon, ZONE) !== offsetMinutes(new Date(noon.getTime() - DAY), ZONE)) {
      return noon.toISOString().slice(0, 10);
    }
  }
  throw new Error('no DST change in Europe/Berlin within 400 days');
}

/** The start route's state, read from the authorization URL. */
async function start(org: ChatOrg, provider: 'google' | 'microsoft', extra: Record<string, unknown> = {}) {
  const answer = await call('/oauth/start', { method: 'POST', token: org.tokens.admin, body: { org_id: org.id, provider, ...extra } });
  expect(answer.status).toBe(200);
  const url = String(answer.body.authorization_url);
  return { url, state: new URL(url).searchParams.get('state') ?? '', expiresAt: String(answer.body.expires_at) };
}

/** The provider's redirect to our callback, sent to the gateway. */
function callback(location: string): Promise<Answer> {
  return call(`/oauth/callback${new URL(location).search}`);
}

/** What the dashboard does after the callback: completes the connection request in the user's session. */
function complete(token: string, connectionRequest: unknown): Promise<Answer> {
  return call('/oauth/complete', { method: 'POST', token, body: { connection_request: connectionRequest } });
}

/** Start, consent, callback, and completion by the org's admin (who started): the completion's answer. */
async function connect(
  org: ChatOrg,
  provider: 'google' | 'microsoft',
  email: string,
  extra: Record<string, unknown> = {},
): Promise<Answer> {
  const { url } = await start(org, provider, extra);
  const consent = await stub.authorize(url, { email });
  expect(consent.code).toBeTruthy();
  const parked = await callback(consent.location);
  if (parked.status !== 200) return parked;
  return complete(org.tokens.admin, parked.body.connection_request);
}

async function pendingRequests(orgId: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from private.calendar_pending_connections where org_id = ${orgId}`;
  return row.count;
}

interface ConnectionRow {
  id: string;
  org_id: string;
  provider: string;
  account_email: string;
  external_calendar_id: string | null;
  status: string;
  status_reason: string | null;
  scopes: string[];
}

async function connectionRow(id: string): Promise<ConnectionRow | undefined> {
  const [row] = await sql<ConnectionRow[]>`
    select id, org_id, provider, account_email, external_calendar_id, status, status_reason, scopes
    from public.calendar_connections where id = ${id}`;
  return row;
}

async function ciphertextOf(id: string): Promise<string | undefined> {
  const [row] = await sql<{ ciphertext: string }[]>`select ciphertext from private.calendar_tokens where connection_id = ${id}`;
  return row?.ciphertext;
}

/** The stored token set, opened with the key and its connection's unique key as context. */
async function storedTokens(id: string): Promise<TokenSet> {
  const [row] = await sql<(ConnectionKey & { ciphertext: string })[]>`
    select c.org_id as "orgId", c.provider, c.account_subject as "accountSubject", c.account_email as "accountEmail",
      c.external_calendar_id as "externalCalendarId", t.ciphertext
    from public.calendar_connections c join private.calendar_tokens t on t.connection_id = c.id where c.id = ${id}`;
  if (!row) throw new Error(`no tokens for ${id}`);
  // Sealed under the subject the row holds (20261123014000): only this connection's context opens it.
  const { ciphertext, ...key } = row;
  return openTokenSet(ciphertext, await parseKeyring(TOKEN_KEY), tokenContext(key));
}

async function counts(orgId: string) {
  const [row] = await sql<{ connections: number; appointments: number; states: number }[]>`
    select (select count(*)::int from public.calendar_connections where org_id = ${orgId}) as connections,
           (select count(*)::int from public.appointments where org_id = ${orgId}) as appointments,
           (select count(*)::int from private.calendar_oauth_states where org_id = ${orgId}) as states`;
  return row;
}

function slotStarts(answer: Answer): string[] {
  return (answer.body.slots as { start: string }[]).map((slot) => slot.start);
}

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({
    env: {
      ...providerEnv(stub),
      CALENDAR_TOKEN_KEY: TOKEN_KEY,
      CALENDAR_REDIRECT_ORIGINS: `${DASHBOARD}, https://admin.example.com`,
    },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  orgA = await createChatOrg(sql, 'cal-a');
  orgB = await createChatOrg(sql, 'cal-b');
  botA = await createBot(sql, orgA.id, { slug: 'front-desk' });
  // Berlin, open Monday to Friday 09:00-17:00 (the org's hours; the bot has none of its own).
  await sql`update public.organizations set time_zone = ${ZONE} where id = ${orgA.id}`;
  for (const weekday of [1, 2, 3, 4, 5]) {
    await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${orgA.id}, ${weekday}, '09:00', '17:00')`;
  }
  dstSunday = nextDstSunday();
  // The first Monday a week after the DST week, so bookings never land in it.
  monday = addDays(dstSunday, 8);
  while (new Date(`${monday}T12:00:00Z`).getUTCDay() !== 1) monday = addDays(monday, 1);
}, 120_000);

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('connecting a calendar', () => {
  it('connects Google: PKCE, a signed state, the code exchanged, tokens sealed at rest', async () => {
    const { url, state } = await start(orgA, 'google');
    const authorize = new URL(url);
    expect(authorize.origin + authorize.pathname).toBe(`${stub.google.accountsBaseUrl}/o/oauth2/v2/auth`);
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({
      access_type: 'offline',
      prompt: 'consent',
      code_challenge_method: 'S256',
      redirect_uri: 'http://127.0.0.1:54321/functions/v1/calendar/oauth/callback',
    });
    expect(state.split('.')).toHaveLength(3);

    const consent = await stub.authorize(url, { email: 'Alice@Example.com' });
    const before = await counts(orgA.id);
    const parked = await callback(consent.location);
    expect(parked.status).toBe(200);
    expect(parked.body).toMatchObject({
      connection_request: expect.stringMatching(/^[0-9a-f-]{36}$/u),
      provider: 'google',
      account_email: 'alice@example.com',
    });
    expect(Date.parse(String(parked.body.expires_at)) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(parked.body.connection_id).toBeUndefined();
    // Nothing is connected until the user who started completes it in their session.
    expect((await counts(orgA.id)).connections).toBe(before.connections);
    const connected = await complete(orgA.tokens.admin, parked.body.connection_request);
    expect(connected.status).toBe(200);
    expect(connected.body).toEqual({ connection_id: expect.any(String), provider: 'google', account_email: 'alice@example.com' });
    googleA = String(connected.body.connection_id);
    expect(await pendingRequests(orgA.id)).toBe(0);

    const row = await connectionRow(googleA);
    expect(row).toMatchObject({ org_id: orgA.id, status: 'connected', external_calendar_id: 'primary' });
    expect(row?.scopes).toContain('https://www.googleapis.com/auth/calendar.events');
    // The code was redeemed with the verifier whose challenge went to the provider, and the same redirect URI.
    const exchange = stub.requests.find((request) => request.host === 'oauth2.googleapis.com' && request.path === '/token');
    expect(exchange?.status).toBe(200);
    expect(exchange?.body).toMatchObject({ grant_type: 'authorization_code', redirect_uri: authorize.searchParams.get('redirect_uri') });

    const ciphertext = await ciphertextOf(googleA);
    const tokens = await storedTokens(googleA);
    expect(tokens.refreshToken).toMatch(/^1\/\/0g/);
    expect(ciphertext).toMatch(/^v1\./);
    expect(ciphertext).not.toContain(tokens.accessToken);
    expect(ciphertext).not.toContain(tokens.refreshToken ?? '-');
    // No API role reads the tokens, the service role included.
    await expect(withUserScope(sql, orgA.claims.owner, (tx) => tx`select * from private.calendar_tokens`)).rejects.toThrow(
      /permission denied/,
    );
    await expect(
      withUserScope(sql, { role: 'service_role', exp: Math.floor(Date.now() / 1000) + 60 }, (tx) => tx`select * from private.calendar_tokens`),
    ).rejects.toThrow(/permission denied/);
  });

  it('connects Microsoft: the browser goes back to redirect_to (303) with the request, which the dashboard completes', async () => {
    const target = 'https://admin.example.com/settings/calendar?tab=connections';
    const { url } = await start(orgA, 'microsoft', { redirect_to: target });
    expect(url.startsWith(`${stub.microsoft.loginBaseUrl}/common/oauth2/v2.0/authorize?`)).toBe(true);
    const consent = await stub.authorize(url, { email: 'bob@contoso.example' });
    const back = await callback(consent.location);
    expect(back.status).toBe(303);
    const location = new URL(back.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe('https://admin.example.com/settings/calendar');
    expect(location.searchParams.get('tab')).toBe('connections');
    expect(location.searchParams.get('calendar')).toBe('pending');
    expect(location.searchParams.get('connection_id')).toBeNull();
    const completed = await complete(orgA.tokens.admin, location.searchParams.get('connection_request'));
    expect(completed.status).toBe(200);
    expect(completed.body).toMatchObject({ provider: 'microsoft', account_email: 'bob@contoso.example' });
    microsoftA = String(completed.body.connection_id);
    expect(await connectionRow(microsoftA)).toMatchObject({
      provider: 'microsoft',
      account_email: 'bob@contoso.example',
      external_calendar_id: null,
      status: 'connected',
    });
    const tokens = await storedTokens(microsoftA);
    expect(await ciphertextOf(microsoftA)).not.toContain(tokens.accessToken);
  });

  it('refuses a tampered or forged state, changing nothing', async () => {
    const { url, state } = await start(orgA, 'google');
    const consent = await stub.authorize(url, { email: 'mallory@example.com' });
    const before = await counts(orgA.id);
    const [header, payload, signature] = state.split('.');
    const flipped = `${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`;
    const tampered = new URL(consent.location);
    tampered.searchParams.set('state', `${header}.${payload}.${flipped}`);
    const refused = await callback(tampered.toString());
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: { code: 'invalid_state' } });

    // A well-formed state signed with someone else's secret, and no state at all.
    const forged = await createOAuthState({
      secret: 'an-attacker-secret-of-at-least-32-characters',
      orgId: orgA.id,
      userId: orgA.users.admin,
      provider: 'google',
    });
    tampered.searchParams.set('state', forged.state);
    expect((await callback(tampered.toString())).body).toMatchObject({ error: { code: 'invalid_state' } });
    tampered.searchParams.delete('state');
    expect((await callback(tampered.toString())).status).toBe(400);
    expect(await counts(orgA.id)).toEqual(before);
  });

  it('uses a state once: the second callback is refused', async () => {
    const { url } = await start(orgB, 'google');
    const consent = await stub.authorize(url, { email: 'dora@example.com' });
    const first = await callback(consent.location);
    expect(first.status).toBe(200);
    googleB = String((await complete(orgB.tokens.admin, first.body.connection_request)).body.connection_id);
    expect(await connectionRow(googleB)).toMatchObject({ org_id: orgB.id, status: 'connected' });
    const before = await counts(orgB.id);
    const again = await callback(consent.location);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: { code: 'state_used' } });
    expect(await counts(orgB.id)).toEqual(before);
  });

  it('refuses an expired state: by its signed expiry, and by its record (back to redirect_to)', async () => {
    const past = await createOAuthState({
      secret: LOCAL_JWT_SECRET,
      orgId: orgA.id,
      userId: orgA.users.admin,
      provider: 'google',
      ttlSeconds: 60,
      now: new Date(Date.now() - 3_600_000),
    });
    const expired = await call(`/oauth/callback?code=whatever&state=${encodeURIComponent(past.state)}`);
    expect(expired.status).toBe(400);
    expect(expired.body).toMatchObject({ error: { code: 'invalid_state', message: expect.stringContaining('expired') } });

    const { url, state } = await start(orgA, 'microsoft', { redirect_to: '/settings/calendar' });
    const jti = JSON.parse(Buffer.from(state.split('.')[1], 'base64url').toString()).jti as string;
    await sql`update private.calendar_oauth_states set expires_at = now() - interval '1 second' where jti = ${jti}`;
    const consent = await stub.authorize(url, { email: 'erin@contoso.example' });
    const before = await counts(orgA.id);
    const back = await callback(consent.location);
    expect(back.status).toBe(303);
    expect(back.headers.get('location')).toBe(`${DASHBOARD}/settings/calendar?calendar=error&reason=state_expired`);
    expect((await counts(orgA.id)).connections).toBe(before.connections);
  });

  it('reports a denied consent, and refuses members and malformed requests', async () => {
    const { url } = await start(orgA, 'google');
    const state = new URL(url).searchParams.get('state') ?? '';
    const denied = await call(`/oauth/callback?error=access_denied&state=${encodeURIComponent(state)}`);
    expect(denied.status).toBe(400);
    expect(denied.body).toMatchObject({ error: { code: 'access_denied' } });

    // Google lets the user untick the calendar scopes: nothing is stored and the grant is given back.
    const partial = await start(orgA, 'google');
    const unticked = await stub.authorize(partial.url, { email: 'half@example.com', grantScopes: ['openid', 'email'] });
    const revokesBefore = stub.requests.filter((request) => request.path === '/revoke').length;
    const refused = await callback(unticked.location);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: { code: 'missing_scopes' } });
    expect(stub.requests.filter((request) => request.path === '/revoke').length).toBe(revokesBefore + 1);

    const before = await counts(orgA.id);
    const member = await call('/oauth/start', { method: 'POST', token: orgA.tokens.member, body: { org_id: orgA.id, provider: 'google' } });
    expect(member.status).toBe(403);
    const outsider = await call('/oauth/start', { method: 'POST', token: orgB.tokens.owner, body: { org_id: orgA.id, provider: 'google' } });
    expect(outsider.status).toBe(403);
    const badProvider = await call('/oauth/start', { method: 'POST', token: orgA.tokens.admin, body: { org_id: orgA.id, provider: 'yahoo' } });
    expect(badProvider.status).toBe(400);
    expect(badProvider.body).toMatchObject({ error: { code: 'invalid_request' } });
    const notJson = await call('/oauth/start', { method: 'POST', token: orgA.tokens.admin, raw: '{"org_id":' });
    expect(notJson.body).toMatchObject({ error: { code: 'invalid_json' } });
    const badRedirect = await call('/oauth/start', {
      method: 'POST',
      token: orgA.tokens.admin,
      body: { org_id: orgA.id, provider: 'google', redirect_to: '//evil.example/steal' },
    });
    expect(badRedirect.status).toBe(422);
    const anonymous = await call('/oauth/start', { method: 'POST', body: { org_id: orgA.id, provider: 'google' } });
    expect(anonymous.status).toBe(401);
    expect(await counts(orgA.id)).toEqual(before);
  });
});

describe('a connect is completed by the user who started it', () => {
  /** Started by the org's admin (redirect_to a dashboard path), consented to by `email`: the parked request's id. */
  async function parkedBy(org: ChatOrg, email: string): Promise<string> {
    const { url } = await start(org, 'google', { redirect_to: '/settings/calendar' });
    const back = await callback((await stub.authorize(url, { email })).location);
    expect(back.status).toBe(303);
    const location = new URL(back.headers.get('location') ?? '');
    expect(location.origin + location.pathname).toBe(`${DASHBOARD}/settings/calendar`);
    expect(location.searchParams.get('calendar')).toBe('pending');
    return location.searchParams.get('connection_request') ?? '';
  }

  it('someone else\'s consent lands in no org: anyone but the starter gets 404 as for an unknown id, and the request is given up', async () => {
    // The initiator owns an org and sends its authorization URL to the victim, an admin of their own org.
    const attacker = await createChatOrg(sql, 'cal-bind-attacker');
    const victim = await createChatOrg(sql, 'cal-bind-victim');
    const request = await parkedBy(attacker, 'victim@bind.example');
    expect(await pendingRequests(attacker.id)).toBe(1);
    expect((await counts(attacker.id)).connections).toBe(0);

    // The victim's browser lands on the real dashboard, which completes with the victim's session: refused.
    const unknown = await complete(victim.tokens.admin, randomUUID());
    expect(unknown.status).toBe(404);
    for (const token of [victim.tokens.admin, victim.tokens.owner, attacker.tokens.owner, await signUserToken({ id: randomUUID() })]) {
      const refused = await complete(token, request);
      expect(refused.status).toBe(404);
      expect(refused.body).toMatchObject({ error: { code: 'not_found', message: (unknown.body.error as { message: string }).message } });
    }
    expect((await counts(attacker.id)).connections).toBe(0);
    expect((await counts(victim.id)).connections).toBe(0);
    // The first refusal gave the request up: the starter can no longer complete what the victim's dashboard saw.
    expect(await pendingRequests(attacker.id)).toBe(0);
    const late = await complete(attacker.tokens.admin, request);
    expect(late.status).toBe(404);
    expect((await counts(attacker.id)).connections).toBe(0);

    // Its own consent, the starter completes.
    const ownRequest = await parkedBy(attacker, 'desk@bind.example');
    const own = await complete(attacker.tokens.admin, ownRequest);
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ provider: 'google', account_email: 'desk@bind.example' });
    expect(await connectionRow(String(own.body.connection_id))).toMatchObject({ org_id: attacker.id, status: 'connected' });
    expect((await storedTokens(String(own.body.connection_id))).refreshToken).toMatch(/^1\/\/0g/u);
    expect(await pendingRequests(attacker.id)).toBe(0);
  });

  it('completes once: the starter\'s repeat gets the same answer until the request would have expired, anyone else 404 (20261123011300)', async () => {
    const org = await createChatOrg(sql, 'cal-bind-once');
    const request = await parkedBy(org, 'once@bind.example');
    const first = await complete(org.tokens.admin, request);
    expect(first.status).toBe(200);
    // A lost answer, React StrictMode, a second tab: connected, so the same 200 again, no second connection.
    const [again, twice] = await Promise.all([complete(org.tokens.admin, request), complete(org.tokens.admin, request)]);
    expect(again).toMatchObject({ status: 200, body: first.body });
    expect(twice).toMatchObject({ status: 200, body: first.body });
    expect((await counts(org.id)).connections).toBe(1);
    for (const token of [org.tokens.owner, await signUserToken({ id: randomUUID() })]) {
      const other = await complete(token, request);
      expect(other.status).toBe(404);
      expect(other.body).toMatchObject({ error: { code: 'not_found' } });
    }
    expect(await complete(org.tokens.admin, request)).toMatchObject({ status: 200, body: first.body });
    // Past the request's 10 minutes the receipt answers no more, and the purge takes it.
    await sql`update private.calendar_completed_connections set expires_at = now() - interval '1 second' where request_id = ${request}`;
    expect((await complete(org.tokens.admin, request)).status).toBe(404);
    await sql`select private.purge_calendar_pending_connections()`;
    const [receipts] = await sql<{ count: number }[]>`
      select count(*)::int as count from private.calendar_completed_connections where request_id = ${request}`;
    expect(receipts.count).toBe(0);
    expect((await counts(org.id)).connections).toBe(1);

    const late = await parkedBy(org, 'late@bind.example');
    await sql`update private.calendar_pending_connections set expires_at = now() - interval '1 second' where id = ${late}`;
    const expired = await complete(org.tokens.admin, late);
    expect(expired.status).toBe(404);
    expect(expired.body).toMatchObject({ error: { code: 'not_found' } });
    expect((await counts(org.id)).connections).toBe(1);
    expect(await pendingRequests(org.id)).toBe(0);
  });

  it('refuses a malformed or anonymous completion, changing nothing', async () => {
    const org = await createChatOrg(sql, 'cal-bind-malformed');
    const request = await parkedBy(org, 'malformed@bind.example');
    const malformed = await complete(org.tokens.admin, 'not-a-uuid');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ error: { code: 'invalid_request' } });
    const anonymous = await call('/oauth/complete', { method: 'POST', body: { connection_request: request } });
    expect(anonymous.status).toBe(401);
    expect((await call('/oauth/complete', { token: org.tokens.admin })).status).toBe(405);
    expect((await counts(org.id)).connections).toBe(0);
    expect(await pendingRequests(org.id)).toBe(1);
  });

  it('sends the browser back only to a path on the dashboard or an https URL on an allowed origin: 422 at start otherwise', async () => {
    const before = await counts(orgA.id);
    for (const redirectTo of [
      'https://evil.example/steal',
      'https://app.example.com.evil.example/settings',
      'https://user@evil.example@app.example.com/settings',
      'http://app.example.com/settings',
      '//evil.example/steal',
      '/\\evil.example',
      'javascript:alert(1)',
    ]) {
      const refused = await call('/oauth/start', {
        method: 'POST',
        token: orgA.tokens.admin,
        body: { org_id: orgA.id, provider: 'google', redirect_to: redirectTo },
      });
      expect(refused.status, redirectTo).toBe(422);
      expect(refused.body, redirectTo).toMatchObject({ error: { code: 'invalid_request' } });
    }
    expect(await counts(orgA.id)).toEqual(before);

    // An allowed origin, and a path resolved against the dashboard, are signed into the state.
    const { state } = await start(orgA, 'google', { redirect_to: '/calendar?tab=2' });
    expect(JSON.parse(Buffer.from(state.split('.')[1], 'base64url').toString()).redirect_after).toBe(`${DASHBOARD}/calendar?tab=2`);
  });
});

describe('availability', () => {
  it('is business hours minus both providers\' busy times and appointments, right across a DST change', async () => {
    const friday = addDays(dstSunday, -2);
    const mondayAfter = addDays(dstSunday, 1);
    const tuesdayAfter = addDays(dstSunday, 2);
    stub.seedBusy('google', 'alice@example.com', [{ start: berlin(friday, '10:00'), end: berlin(friday, '11:00') }]);
    // More events than a Graph page holds (the stub's 10): the nextLink must be followed for the last one.
    stub.seedBusy('microsoft', 'bob@contoso.example', [
      ...Array.from({ length: 12 }, (_, index) => ({
        start: berlin(tuesdayAfter, `0${Math.floor(index / 2)}:${index % 2 === 0 ? '00' : '30'}`),
        end: berlin(tuesdayAfter, `0${Math.floor(index / 2)}:${index % 2 === 0 ? '20' : '50'}`),
      })),
      { start: berlin(mondayAfter, '13:00'), end: berlin(mondayAfter, '14:00') },
      { start: berlin(mondayAfter, '15:00'), end: berlin(mondayAfter, '16:00'), showAs: 'free' },
    ]);
    await sql`
      insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
      values (${orgA.id}, ${berlin(tuesdayAfter, '09:00')}, ${berlin(tuesdayAfter, '09:45')}, 'Existing', 'existing@example.com', 'staff')`;
    const pagesBefore = stub.requests.filter((request) => request.path === '/v1.0/me/calendarView').length;

    const query = new URLSearchParams({
      org_id: orgA.id,
      from: berlin(friday, '00:00'),
      to: berlin(addDays(tuesdayAfter, 1), '00:00'),
      duration_minutes: '60',
    });
    const answer = await call(`/availability?${query}`, { token: orgA.tokens.member });
    expect(answer.status).toBe(200);
    expect(answer.body.time_zone).toBe(ZONE);
    expect(answer.body.missing_calendars).toEqual([]);
    const starts = slotStarts(answer);
    const hours = (date: string) => starts.filter((start) => start.startsWith(date)).map((start) => start.slice(11, 16));
    expect(hours(friday)).toEqual(['09:00', '11:00', '12:00', '13:00', '14:00', '15:00', '16:00']);
    expect(hours(addDays(friday, 1))).toEqual([]);
    expect(hours(dstSunday)).toEqual([]);
    expect(hours(mondayAfter)).toEqual(['09:00', '10:00', '11:00', '12:00', '14:00', '15:00', '16:00']);
    expect(hours(tuesdayAfter)).toEqual(['10:00', '11:00', '12:00', '13:00', '14:00', '15:00', '16:00']);
    // 09:00 on the clock on both sides of the change: the UTC hour moved by one.
    const fridayNine = starts.find((start) => start.startsWith(`${friday}T09:00`)) ?? '';
    const mondayNine = starts.find((start) => start.startsWith(`${mondayAfter}T09:00`)) ?? '';
    expect(fridayNine.slice(19)).not.toBe(mondayNine.slice(19));
    expect(Math.abs(new Date(fridayNine).getUTCHours() - new Date(mondayNine).getUTCHours())).toBe(1);
    expect(new Date(fridayNine).toISOString()).toBe(berlin(friday, '09:00'));
    expect(new Date(mondayNine).toISOString()).toBe(berlin(mondayAfter, '09:00'));
    expect(stub.requests.filter((request) => request.path === '/v1.0/me/calendarView').length - pagesBefore).toBeGreaterThanOrEqual(2);

    // The same slots shown in another zone, and the same answer for the bot's key.
    const utc = await call(`/availability?${query}&time_zone=UTC`, { token: orgA.tokens.member });
    expect(slotStarts(utc)[0]).toBe(`${berlin(friday, '09:00').slice(0, 19)}+00:00`);
    const key = await createApiKey(sql, orgA, ['calendar.read']);
    query.delete('org_id');
    const bot = await call(`/bots/${botA}/availability?${query}`, { apiKey: key.key });
    expect(bot.status).toBe(200);
    expect(slotStarts(bot)).toEqual(starts);
  });

  it('lines slots up with the opening whatever from is, across DST and with a step that does not divide the hour', async () => {
    // An org of its own, without calendars: only business hours (Berlin, Monday to Friday 09:00-17:00) count.
    const org = await createChatOrg(sql, 'cal-grid');
    await sql`update public.organizations set time_zone = ${ZONE} where id = ${org.id}`;
    for (const weekday of [1, 2, 3, 4, 5]) {
      await sql`insert into public.business_hours (org_id, weekday, opens, closes) values (${org.id}, ${weekday}, '09:00', '17:00')`;
    }
    const ask = async (params: Record<string, string>) => {
      const answer = await call(`/availability?${new URLSearchParams({ org_id: org.id, ...params })}`, { token: org.tokens.member });
      expect(answer.status).toBe(200);
      return slotStarts(answer);
    };
    /** from at a wall time plus seconds and milliseconds, as "now" would be. */
    const oddly = (date: string, time: string, ms: number) => new Date(Date.parse(berlin(date, time)) + ms).toISOString();

    // Asked from 09:23:17.456: 09:30, 10:00, ... as the hours open at 09:00; not 09:23:17, 09:53:17.
    const inside = await ask({ from: oddly(monday, '09:23', 17_456), to: berlin(monday, '12:00'), duration_minutes: '30' });
    expect(inside.map((start) => start.slice(11, 19))).toEqual(['09:30:00', '10:00:00', '10:30:00', '11:00:00', '11:30:00']);

    // A 45-minute step from 09:00: 09:45, 10:30, 11:15 (the next aligned start after from, never before it).
    const fortyFive = await ask({
      from: oddly(monday, '09:23', 17_456),
      to: berlin(monday, '12:00'),
      duration_minutes: '30',
      step_minutes: '45',
    });
    expect(fortyFive.map((start) => start.slice(11, 16))).toEqual(['09:45', '10:30', '11:15']);

    // Across the DST change with a 25-minute step: each day's grid starts at its own 09:00 on the local clock.
    const friday = addDays(dstSunday, -2);
    const mondayAfter = addDays(dstSunday, 1);
    const starts = await ask({
      from: oddly(friday, '15:07', 30_250),
      to: berlin(mondayAfter, '11:00'),
      duration_minutes: '30',
      step_minutes: '25',
    });
    expect(starts).toEqual([
      ...['15:15', '15:40', '16:05', '16:30'].map((time) => `${friday}T${time}:00${starts[0]?.slice(19)}`),
      ...['09:00', '09:25', '09:50', '10:15'].map((time) => `${mondayAfter}T${time}:00${starts.at(-1)?.slice(19)}`),
    ]);
    expect(starts[0]?.slice(19)).not.toBe(starts.at(-1)?.slice(19));
    expect(new Date(starts[0] ?? '').toISOString()).toBe(berlin(friday, '15:15'));
    expect(new Date(starts.at(-4) ?? '').toISOString()).toBe(berlin(mondayAfter, '09:00'));

    // Without business hours the grid is the clock from local midnight: 09:30, not 09:23:17.
    const always = await createChatOrg(sql, 'cal-grid-always');
    await sql`update public.organizations set time_zone = ${ZONE} where id = ${always.id}`;
    const open = await call(
      `/availability?${new URLSearchParams({ org_id: always.id, from: oddly(monday, '09:23', 17_456), to: berlin(monday, '11:00'), duration_minutes: '30' })}`,
      { token: always.tokens.member },
    );
    expect(slotStarts(open).map((start) => start.slice(11, 19))).toEqual(['09:30:00', '10:00:00', '10:30:00']);
  });

  it('lists a throttled calendar as missing instead of treating it as free', async () => {
    stub.failNext(429, { 'retry-after': '30' }, { match: 'graph.microsoft.com/v1.0/me/calendarView' });
    const query = new URLSearchParams({
      org_id: orgA.id,
      from: berlin(monday, '00:00'),
      to: berlin(addDays(monday, 1), '00:00'),
      duration_minutes: '30',
    });
    const answer = await call(`/availability?${query}`, { token: orgA.tokens.member });
    expect(answer.status).toBe(200);
    expect(answer.body.missing_calendars).toEqual([{ connection_id: microsoftA, provider: 'microsoft', reason: 'rate_limited' }]);
  });

  it('refuses bad ranges, durations and zones with 400, and viewers and other orgs with 403', async () => {
    const base = { org_id: orgA.id, from: berlin(monday, '00:00'), to: berlin(addDays(monday, 1), '00:00'), duration_minutes: '30' };
    const bad = [
      { ...base, duration_minutes: '3' },
      { ...base, duration_minutes: 'half an hour' },
      { ...base, to: base.from },
      { ...base, to: berlin(addDays(monday, 40), '00:00') },
      { ...base, time_zone: 'Mars/Olympus_Mons' },
      { ...base, from: `${monday}T09:00:00` },
      { ...base, org_id: 'not-a-uuid' },
    ];
    for (const params of bad) {
      const answer = await call(`/availability?${new URLSearchParams(params)}`, { token: orgA.tokens.member });
      expect(answer.status, JSON.stringify(params)).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: 'invalid_request' } });
    }
    expect((await call(`/availability?${new URLSearchParams(base)}`, { token: orgA.tokens.viewer })).status).toBe(403);
    expect((await call(`/availability?${new URLSearchParams(base)}`, { token: orgB.tokens.owner })).status).toBe(403);
  });

  it('marks a calendar whose refresh the provider refuses needs_reauth, once, and names it as missing', async () => {
    const org = await createChatOrg(sql, 'cal-reauth');
    const connected = await connect(org, 'google', 'carol@example.com');
    const id = String(connected.body.connection_id);
    const { refreshToken } = await storedTokens(id);
    // The user revoked our access at Google: the refresh token and its access tokens stop working.
    stub.revokeRefreshToken(refreshToken ?? '');
    stub.expireAccessTokens();
    const query = new URLSearchParams({
      org_id: org.id,
      from: berlin(monday, '00:00'),
      to: berlin(addDays(monday, 1), '00:00'),
      duration_minutes: '60',
    });
    const first = await call(`/availability?${query}`, { token: org.tokens.member });
    expect(first.status).toBe(200);
    expect(first.body.missing_calendars).toEqual([{ connection_id: id, provider: 'google', reason: 'needs_reauth' }]);
    expect(await connectionRow(id)).toMatchObject({ status: 'needs_reauth', status_reason: expect.stringContaining('invalid_grant') });

    const refreshes = () => stub.requests.filter((request) => request.path === '/token' && request.host === 'oauth2.googleapis.com').length;
    const before = refreshes();
    const second = await call(`/availability?${query}`, { token: org.tokens.member });
    expect(second.body.missing_calendars).toEqual(first.body.missing_calendars);
    expect(refreshes()).toBe(before);
    const [events] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.events where org_id = ${org.id} and type = 'calendar.connection_broken'`;
    expect(events.count).toBe(1);

    // Connecting the same account again heals it.
    const again = await connect(org, 'google', 'carol@example.com');
    expect(again.body.connection_id).toBe(id);
    expect((await connectionRow(id))?.status).toBe('connected');
  });
});

describe('appointments', () => {
  const tuesday = () => addDays(monday, 1);

  it('mirrors a booking to the calendar, moves the event on reschedule and deletes it on cancel', async () => {
    const created = await call('/appointments', {
      method: 'POST',
      token: orgA.tokens.member,
      body: {
        org_id: orgA.id,
        starts_at: berlin(monday, '10:00'),
        ends_at: berlin(monday, '10:30'),
        attendee_name: 'Grace Hopper',
        attendee_email: 'Grace@Example.com',
        notes: 'First visit',
      },
    });
    expect(created.status).toBe(201);
    const appointment = created.body.appointment as Record<string, unknown>;
    expect(appointment).toMatchObject({
      connection_id: googleA,
      sync_status: 'synced',
      attendee_email: 'grace@example.com',
      source: 'staff',
      status: 'booked',
    });
    const eventId = String(appointment.external_event_id);
    mirroredId = String(appointment.id);
    const event = () => stub.events('google', 'alice@example.com').find((candidate) => candidate.id === eventId);
    // Not a guest (a guest gets the event, notes and phone included, on their own calendar even with
    // sendUpdates=none): the insert has no attendees field and the description names them.
    const insert = stub.requests.find(
      (item) => item.method === 'POST' && item.path.endsWith('/events') && (item.body as { id?: string }).id === eventId,
    );
    expect(insert?.query).toEqual({ sendUpdates: 'none' });
    expect(insert?.body).not.toHaveProperty('attendees');
    expect(event()).toMatchObject({ isCancelled: false, attendees: [] });
    expect(event()?.start.toISOString()).toBe(berlin(monday, '10:00'));
    expect(event()?.description).toContain('First visit');
    expect(event()?.description).toContain('Attendees: Grace Hopper <grace@example.com>');
    expect(event()?.notified).toEqual(['none']);

    const moved = await call(`/appointments/${appointment.id}`, {
      method: 'PATCH',
      token: orgA.tokens.member,
      body: { starts_at: berlin(monday, '11:00'), ends_at: berlin(monday, '11:30') },
    });
    expect(moved.status).toBe(200);
    expect(moved.body.appointment).toMatchObject({ reschedule_count: 1, sync_status: 'synced', external_event_id: eventId });
    expect(event()?.start.toISOString()).toBe(berlin(monday, '11:00'));
    expect(event()?.end.toISOString()).toBe(berlin(monday, '11:30'));

    const canceled = await call(`/appointments/${appointment.id}`, {
      method: 'DELETE',
      token: orgA.tokens.member,
      body: { reason: 'Caller asked' },
    });
    expect(canceled.status).toBe(200);
    expect(canceled.body.appointment).toMatchObject({ status: 'canceled', cancel_reason: 'Caller asked', sync_status: 'synced' });
    expect(event()?.isCancelled).toBe(true);
    // Canceling again changes nothing and calls no provider.
    const requests = stub.requests.length;
    expect((await call(`/appointments/${appointment.id}`, { method: 'DELETE', token: orgA.tokens.member })).status).toBe(200);
    expect(stub.requests.length).toBe(requests);
  });

  it('keeps the booking when the provider fails, with sync_status failed', async () => {
    stub.failNext(500, {}, { match: 'www.googleapis.com/calendar/v3/calendars/primary/events' });
    const created = await call('/appointments', {
      method: 'POST',
      token: orgA.tokens.member,
      body: { org_id: orgA.id, starts_at: berlin(monday, '15:00'), ends_at: berlin(monday, '15:30'), attendee_name: 'Ada', attendee_phone: '+49 30 1234567' },
    });
    expect(created.status).toBe(201);
    expect(created.body.appointment).toMatchObject({ status: 'booked', sync_status: 'failed', attendee_phone: '+49301234567' });
    expect(String((created.body.appointment as Record<string, unknown>).sync_error)).toContain('500');
  });

  it('books one of two concurrent requests for the same time; the other gets a clear 409', async () => {
    const body = {
      org_id: orgA.id,
      starts_at: berlin(tuesday(), '10:00'),
      ends_at: berlin(tuesday(), '11:00'),
      attendee_name: 'Concurrent',
      attendee_email: 'c@example.com',
    };
    const answers = await Promise.all([
      call('/appointments', { method: 'POST', token: orgA.tokens.member, body }),
      call('/appointments', { method: 'POST', token: orgA.tokens.admin, body }),
    ]);
    expect(answers.map((answer) => answer.status).sort()).toEqual([201, 409]);
    expect(answers.find((answer) => answer.status === 409)?.body).toMatchObject({ error: { code: 'slot_taken' } });
    const [rows] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.appointments
      where org_id = ${orgA.id} and starts_at = ${body.starts_at} and status = 'booked'`;
    expect(rows.count).toBe(1);
  });

  it('refuses malformed bodies (400), times outside business hours (422) and other orgs (404), changing nothing', async () => {
    const before = await counts(orgA.id);
    const valid = {
      org_id: orgA.id,
      starts_at: berlin(tuesday(), '13:00'),
      ends_at: berlin(tuesday(), '13:30'),
      attendee_name: 'Lin',
      attendee_email: 'lin@example.com',
    };
    const malformed = [
      { ...valid, attendee_name: undefined },
      { ...valid, ends_at: valid.starts_at },
      { ...valid, starts_at: 'tomorrow at one' },
      { ...valid, org_id: 42 },
      { ...valid, time_zone: 'Nowhere/Special' },
    ];
    for (const body of malformed) {
      const answer = await call('/appointments', { method: 'POST', token: orgA.tokens.member, body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
    }
    expect((await call('/appointments', { method: 'POST', token: orgA.tokens.member, raw: 'not json' })).status).toBe(400);
    const saturday = await call('/appointments', {
      method: 'POST',
      token: orgA.tokens.member,
      body: { ...valid, starts_at: berlin(addDays(monday, 5), '10:00'), ends_at: berlin(addDays(monday, 5), '10:30') },
    });
    expect(saturday.status).toBe(422);
    expect(saturday.body).toMatchObject({ error: { message: expect.stringContaining('outside business hours') } });
    expect((await call('/appointments', { method: 'POST', token: orgA.tokens.viewer, body: valid })).status).toBe(403);
    expect((await call(`/appointments/${randomUUID()}`, { method: 'PATCH', token: orgA.tokens.member, body: {} })).status).toBe(400);
    expect(
      (await call(`/appointments/${randomUUID()}`, { method: 'PATCH', token: orgA.tokens.member, body: { starts_at: valid.starts_at, ends_at: valid.ends_at } })).status,
    ).toBe(404);
    expect(await counts(orgA.id)).toEqual(before);
  });
});

describe('booking by bots', () => {
  const wednesday = () => addDays(monday, 2);
  let key: string;
  let botCalendar: string;

  beforeAll(async () => {
    key = (await createApiKey(sql, orgA, ['calendar.read', 'calendar.write'])).key;
    // The bot's own Outlook calendar: its bookings are mirrored there, and the org's calendars still count.
    const connected = await connect(orgA, 'microsoft', 'frontdesk@contoso.example', { bot_id: botA });
    botCalendar = String(connected.body.connection_id);
  });

  it('books only inside a free slot: provider busy times and closed hours are refused with 409', async () => {
    stub.seedBusy('microsoft', 'bob@contoso.example', [{ start: berlin(wednesday(), '14:00'), end: berlin(wednesday(), '15:00') }]);
    const attendee = { attendee_name: 'Caller', attendee_phone: '+4915112345678' };
    const before = await counts(orgA.id);
    const busy = await call(`/bots/${botA}/appointments`, {
      method: 'POST',
      apiKey: key,
      body: { starts_at: berlin(wednesday(), '14:30'), ends_at: berlin(wednesday(), '15:00'), ...attendee },
    });
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ error: { code: 'slot_unavailable' } });
    const late = await call(`/bots/${botA}/appointments`, {
      method: 'POST',
      apiKey: key,
      body: { starts_at: berlin(wednesday(), '17:00'), ends_at: berlin(wednesday(), '17:30'), ...attendee },
    });
    expect(late.status).toBe(409);
    expect(await counts(orgA.id)).toEqual(before);

    const booked = await call(`/bots/${botA}/appointments`, {
      method: 'POST',
      apiKey: key,
      body: { starts_at: berlin(wednesday(), '15:00'), ends_at: berlin(wednesday(), '15:30'), ...attendee },
    });
    expect(booked.status).toBe(201);
    expect(booked.body.appointment).toMatchObject({
      source: 'bot',
      bot_id: botA,
      connection_id: botCalendar,
      sync_status: 'synced',
      attendee_phone: '+4915112345678',
    });
    // Mirrored to the bot's Outlook calendar as a wall time in the org's zone, under its Windows name.
    const [event] = stub.events('microsoft', 'frontdesk@contoso.example');
    expect(event?.id).toBe((booked.body.appointment as Record<string, unknown>).external_event_id);
    expect(event?.startRaw).toEqual({ dateTime: `${wednesday()}T15:00:00`, timeZone: 'W. Europe Standard Time' });
    expect(event?.start.toISOString()).toBe(berlin(wednesday(), '15:00'));
    expect(event?.description).toContain('+4915112345678');
    // The same time again is now taken by the appointment itself.
    const twice = await call(`/bots/${botA}/appointments`, {
      method: 'POST',
      apiKey: key,
      body: { starts_at: berlin(wednesday(), '15:00'), ends_at: berlin(wednesday(), '15:30'), ...attendee },
    });
    expect(twice.status).toBe(409);
    const [audit] = await sql<{ count: number }[]>`
      select count(*)::int as count from public.audit_log
      where table_name = 'appointments' and record_id = ${String((booked.body.appointment as Record<string, unknown>).id)}
        and action = 'insert' and actor_api_key_id is not null`;
    expect(audit.count).toBeGreaterThanOrEqual(1);
  });

  it('books the resource the body names, checked on that resource; unknown keys are a 400', async () => {
    // The default resource is taken at 10:00 (not mirrored: no provider event), room-2 is not.
    await sql`
      insert into public.appointments (org_id, bot_id, starts_at, ends_at, attendee_name, attendee_email, source)
      values (${orgA.id}, ${botA}, ${berlin(wednesday(), '10:00')}, ${berlin(wednesday(), '10:30')}, 'Default', 'd@example.com', 'staff')`;
    const body = { starts_at: berlin(wednesday(), '10:00'), ends_at: berlin(wednesday(), '10:30'), attendee_name: 'Room', attendee_phone: '+4915112345678' };
    const before = await counts(orgA.id);
    for (const wrong of [{ ...body, room: 'room-2' }, { ...body, resource: '   ' }, { ...body, resource: 'r'.repeat(201) }, { ...body, resource: 2 }]) {
      const answer = await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: key, body: wrong });
      expect(answer.status, JSON.stringify(wrong).slice(0, 80)).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: 'invalid_request' } });
    }
    const unknown = await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: key, body: { ...body, room: 'room-2' } });
    expect(String((unknown.body.error as Record<string, unknown>).message)).toContain('room');
    expect(await counts(orgA.id)).toEqual(before);

    const onDefault = await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: key, body });
    expect(onDefault.status).toBe(409);
    const booked = await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: key, body: { ...body, resource: ' room-2 ' } });
    expect(booked.status).toBe(201);
    expect(booked.body.appointment).toMatchObject({ resource: 'room-2', source: 'bot', bot_id: botA });
    // The bot's availability for room-2 now leaves 10:00 out too (its own booking, and its mirrored event).
    const query = new URLSearchParams({ from: berlin(wednesday(), '09:00'), to: berlin(wednesday(), '11:00'), duration_minutes: '30', resource: 'room-2' });
    const room = await call(`/bots/${botA}/availability?${query}`, { apiKey: key });
    expect(slotStarts(room).map((start) => start.slice(11, 16))).toEqual(['09:00', '09:30', '10:30']);
  });

  it('needs the right scope and a bot of the key\'s org', async () => {
    const readOnly = (await createApiKey(sql, orgA, ['calendar.read'])).key;
    const body = { starts_at: berlin(wednesday(), '16:00'), ends_at: berlin(wednesday(), '16:30'), attendee_name: 'X', attendee_phone: '+4915112345678' };
    expect((await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: readOnly, body })).status).toBe(403);
    const otherKey = (await createApiKey(sql, orgB, ['calendar.read', 'calendar.write'])).key;
    expect((await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: otherKey, body })).status).toBe(404);
    expect((await call(`/bots/${botA}/availability?from=x`, { apiKey: otherKey })).status).toBe(404);
    expect((await call(`/bots/${botA}/appointments`, { method: 'POST', body })).status).toBe(401);
    expect((await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: key, body: { ...body, attendee_name: '' } })).status).toBe(400);
  });

  it('takes from the key\'s rate limit: 429 with Retry-After once it is spent, booking nothing', async () => {
    const limited = await createApiKey(sql, orgA, ['calendar.read', 'calendar.write']);
    await sql`update public.api_keys set rate_limit_per_minute = 1 where id = ${limited.id}`;
    const query = new URLSearchParams({ from: berlin(wednesday(), '09:00'), to: berlin(wednesday(), '11:00'), duration_minutes: '30' });
    expect((await call(`/bots/${botA}/availability?${query}`, { apiKey: limited.key })).status).toBe(200);
    const [{ before }] = await sql<{ before: number }[]>`select count(*)::int as before from public.appointments where org_id = ${orgA.id}`;
    const body = { starts_at: berlin(wednesday(), '15:00'), ends_at: berlin(wednesday(), '15:30'), attendee_name: 'Y', attendee_phone: '+4915112345679' };
    const refused = await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: limited.key, body });
    expect(refused.status).toBe(429);
    expect((refused.body.error as { code: string }).code).toBe('rate_limited');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    const [{ after }] = await sql<{ after: number }[]>`select count(*)::int as after from public.appointments where org_id = ${orgA.id}`;
    expect(after).toBe(before);
  });

  it('counts refused requests against the key\'s limit: an unknown bot, a missing scope', async () => {
    const limited = await createApiKey(sql, orgA, ['calendar.read']);
    await sql`update public.api_keys set rate_limit_per_minute = 2 where id = ${limited.id}`;
    const query = new URLSearchParams({ from: berlin(wednesday(), '09:00'), to: berlin(wednesday(), '11:00'), duration_minutes: '30' });
    expect((await call(`/bots/${randomUUID()}/availability?${query}`, { apiKey: limited.key })).status).toBe(404);
    expect((await call(`/bots/${botA}/appointments`, { method: 'POST', apiKey: limited.key, body: {} })).status).toBe(403);
    expect((await call(`/bots/${botA}/availability?${query}`, { apiKey: limited.key })).status).toBe(429);
  });
});

describe('isolation and disconnecting', () => {
  it('shows no org another org\'s connections, tokens or appointments', async () => {
    const missing = await call(`/connections/${googleA}/disconnect`, { method: 'POST', token: orgB.tokens.owner });
    expect(missing.status).toBe(404);
    expect(await connectionRow(googleA)).toMatchObject({ status: 'connected' });
    const member = await call(`/connections/${googleA}/disconnect`, { method: 'POST', token: orgA.tokens.member });
    expect(member.status).toBe(403);

    const seen = await withUserScope(sql, orgB.claims.owner, async (tx) => {
      const [row] = await tx<{ connections: number; appointments: number }[]>`
        select (select count(*)::int from public.calendar_connections where org_id = ${orgA.id}) as connections,
               (select count(*)::int from public.appointments where org_id = ${orgA.id}) as appointments`;
      return row;
    });
    expect(seen).toEqual({ connections: 0, appointments: 0 });
    const own = await withUserScope(sql, orgA.claims.member, (tx) =>
      tx<{ count: number }[]>`select count(*)::int as count from public.calendar_connections where org_id = ${orgA.id}`);
    expect(own[0].count).toBe(3);
    await expect(
      withUserScope(sql, orgB.claims.owner, (tx) => tx`select * from private.calendar_tokens_for(array[${googleA}::uuid])`),
    ).rejects.toThrow(/permission denied/);
  });

  it('revokes the grant at Google and deletes the connection; Microsoft has nothing to revoke', async () => {
    const { refreshToken } = await storedTokens(googleA);
    const google = await call(`/connections/${googleA}/disconnect`, { method: 'POST', token: orgA.tokens.admin });
    expect(google.status).toBe(200);
    expect(google.body).toEqual({ connection_id: googleA, revoked_at_provider: true });
    const revoke = stub.requests.filter((request) => request.path === '/revoke' && request.host === 'oauth2.googleapis.com').at(-1);
    expect(revoke).toMatchObject({ status: 200, body: { token: refreshToken } });
    expect(await connectionRow(googleA)).toBeUndefined();
    expect(await ciphertextOf(googleA)).toBeUndefined();
    // The admin who disconnected is the delete's actor, not a bare service role.
    const deleted = await sql<{ actor_user_id: string | null; actor_api_key_id: string | null }[]>`
      select actor_user_id, actor_api_key_id from public.audit_log
      where table_name = 'calendar_connections' and record_id = ${googleA} and action = 'delete'`;
    expect(deleted).toEqual([{ actor_user_id: orgA.users.admin, actor_api_key_id: null }]);

    const microsoft = await call(`/connections/${microsoftA}/disconnect`, { method: 'POST', token: orgA.tokens.admin });
    expect(microsoft.body).toEqual({ connection_id: microsoftA, revoked_at_provider: false });
    expect(await connectionRow(microsoftA)).toBeUndefined();
    // The appointments stay, no longer mirrored.
    const [left] = await sql<{ connection_id: string | null; external_event_id: string | null }[]>`
      select connection_id, external_event_id from public.appointments where id = ${mirroredId}`;
    expect(left).toMatchObject({ connection_id: null, external_event_id: expect.any(String) });
  });

  it('disconnects even when the provider fails to revoke', async () => {
    stub.failNext(500, {}, { match: 'oauth2.googleapis.com/revoke' });
    const answer = await call(`/connections/${googleB}/disconnect`, { method: 'POST', token: orgB.tokens.admin });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ connection_id: googleB, revoked_at_provider: false });
    expect(await connectionRow(googleB)).toBeUndefined();
    expect(stub.requests.filter((request) => request.path === '/revoke').at(-1)?.status).toBe(500);
  });
});

describe('one Google account connected in two orgs', () => {
  it('keeps the grant while the other org uses it, and revokes it with the last connection', async () => {
    const email = 'shared@example.com';
    const first = await createChatOrg(sql, 'cal-shared-1');
    const second = await createChatOrg(sql, 'cal-shared-2');
    const inFirst = String((await connect(first, 'google', email)).body.connection_id);
    const inSecond = String((await connect(second, 'google', email)).body.connection_id);
    const revokes = () => stub.requests.filter((request) => request.path === '/revoke' && request.host === 'oauth2.googleapis.com');
    const revokesBefore = revokes().length;

    const kept = await call(`/connections/${inFirst}/disconnect`, { method: 'POST', token: first.tokens.admin });
    expect(kept.status).toBe(200);
    expect(kept.body).toEqual({ connection_id: inFirst, revoked_at_provider: false });
    expect(revokes()).toHaveLength(revokesBefore);
    expect(await connectionRow(inFirst)).toBeUndefined();
    expect(await ciphertextOf(inFirst)).toBeUndefined();

    // The second org's connection still reads busy times and mirrors bookings, through a refresh too.
    stub.expireAccessTokens();
    stub.seedBusy('google', email, [{ start: berlin(monday, '09:00'), end: berlin(monday, '10:00') }]);
    const query = new URLSearchParams({
      org_id: second.id,
      from: berlin(monday, '09:00'),
      to: berlin(monday, '11:00'),
      duration_minutes: '60',
      time_zone: ZONE,
    });
    const availability = await call(`/availability?${query}`, { token: second.tokens.member });
    expect(availability.status).toBe(200);
    expect(availability.body.missing_calendars).toEqual([]);
    expect(slotStarts(availability).map((start) => new Date(start).toISOString())).toEqual([berlin(monday, '10:00')]);
    const booked = await call('/appointments', {
      method: 'POST',
      token: second.tokens.member,
      body: { org_id: second.id, starts_at: berlin(monday, '10:00'), ends_at: berlin(monday, '11:00'), attendee_name: 'Shared', attendee_phone: '+49 30 7654321' },
    });
    expect(booked.status).toBe(201);
    expect(booked.body.appointment).toMatchObject({ connection_id: inSecond, sync_status: 'synced' });
    expect(await connectionRow(inSecond)).toMatchObject({ status: 'connected' });

    const { refreshToken } = await storedTokens(inSecond);
    const last = await call(`/connections/${inSecond}/disconnect`, { method: 'POST', token: second.tokens.admin });
    expect(last.status).toBe(200);
    expect(last.body).toEqual({ connection_id: inSecond, revoked_at_provider: true });
    expect(revokes()).toHaveLength(revokesBefore + 1);
    expect(revokes().at(-1)).toMatchObject({ status: 200, body: { token: refreshToken } });
  });
});

describe('a connection is its account (the provider\'s account id), not its e-mail', () => {
  const revokes = () => stub.requests.filter((request) => request.path === '/revoke' && request.host === 'oauth2.googleapis.com');

  async function subjectOf(id: string): Promise<string | null | undefined> {
    const [row] = await sql<{ account_subject: string | null }[]>`select account_subject from public.calendar_connections where id = ${id}`;
    return row?.account_subject;
  }

  /** Free slots of the org between 09:00 and 11:00 on `monday`, read through its calendars (their tokens opened, refreshed). */
  async function freeMorning(org: ChatOrg): Promise<Answer> {
    const query = new URLSearchParams({
      org_id: org.id,
      from: berlin(monday, '09:00'),
      to: berlin(monday, '11:00'),
      duration_minutes: '60',
      time_zone: ZONE,
    });
    return call(`/availability?${query}`, { token: org.tokens.member });
  }

  it('reconnecting the account under its new address updates its one connection, whose tokens still open', async () => {
    const org = await createChatOrg(sql, 'cal-subject-rename');
    const first = await connect(org, 'google', 'ren.before@subject.example');
    expect(first.status).toBe(200);
    const id = String(first.body.connection_id);
    const subject = await subjectOf(id);
    expect(subject).toMatch(/^\d{21}$/u);

    stub.renameAccount('google', 'ren.before@subject.example', 'Ren.After@Subject.example');
    const again = await connect(org, 'google', 'Ren.After@Subject.example');
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ connection_id: id, account_email: 'ren.after@subject.example' });
    expect((await counts(org.id)).connections).toBe(1);
    expect(await connectionRow(id)).toMatchObject({ account_email: 'ren.after@subject.example', status: 'connected' });
    expect(await subjectOf(id)).toBe(subject);
    // Sealed under the connection as stored now, and used through a refresh (which seals again).
    expect((await storedTokens(id)).refreshToken).toMatch(/^1\/\/0g/u);
    stub.expireAccessTokens();
    stub.seedBusy('google', 'Ren.After@Subject.example', [{ start: berlin(monday, '09:00'), end: berlin(monday, '10:00') }]);
    const free = await freeMorning(org);
    expect(free.status).toBe(200);
    expect(free.body.missing_calendars).toEqual([]);
    expect(slotStarts(free).map((start) => new Date(start).toISOString())).toEqual([berlin(monday, '10:00')]);
    expect(await connectionRow(id)).toMatchObject({ status: 'connected' });

    // Microsoft alike: Graph's /me id keys the connection, mail is shown.
    const microsoft = String((await connect(org, 'microsoft', 'ren@contoso-subject.example')).body.connection_id);
    stub.renameAccount('microsoft', 'ren@contoso-subject.example', 'ren.new@contoso-subject.example');
    const renamed = await connect(org, 'microsoft', 'ren.new@contoso-subject.example');
    expect(renamed.body).toMatchObject({ connection_id: microsoft, account_email: 'ren.new@contoso-subject.example' });
    expect((await counts(org.id)).connections).toBe(2);
    expect((await storedTokens(microsoft)).accessToken).toBeTruthy();
  });

  it('one account in two orgs under two addresses: the first disconnect leaves the grant, the last revokes it', async () => {
    const first = await createChatOrg(sql, 'cal-subject-twin-1');
    const second = await createChatOrg(sql, 'cal-subject-twin-2');
    const inFirst = String((await connect(first, 'google', 'twin@subject.example')).body.connection_id);
    stub.renameAccount('google', 'twin@subject.example', 'twin.renamed@subject.example');
    const inSecond = String((await connect(second, 'google', 'twin.renamed@subject.example')).body.connection_id);
    expect(await connectionRow(inFirst)).toMatchObject({ account_email: 'twin@subject.example' });
    expect(await connectionRow(inSecond)).toMatchObject({ account_email: 'twin.renamed@subject.example' });
    expect(await subjectOf(inSecond)).toBe(await subjectOf(inFirst));
    const revokesBefore = revokes().length;

    const kept = await call(`/connections/${inFirst}/disconnect`, { method: 'POST', token: first.tokens.admin });
    expect(kept.status).toBe(200);
    expect(kept.body).toEqual({ connection_id: inFirst, revoked_at_provider: false });
    expect(revokes()).toHaveLength(revokesBefore);
    expect(await connectionRow(inFirst)).toBeUndefined();
    // The second org's grant still works, through a refresh.
    stub.expireAccessTokens();
    const free = await freeMorning(second);
    expect(free.status).toBe(200);
    expect(free.body.missing_calendars).toEqual([]);
    expect(await connectionRow(inSecond)).toMatchObject({ status: 'connected' });

    const { refreshToken } = await storedTokens(inSecond);
    const last = await call(`/connections/${inSecond}/disconnect`, { method: 'POST', token: second.tokens.admin });
    expect(last.body).toEqual({ connection_id: inSecond, revoked_at_provider: true });
    expect(revokes()).toHaveLength(revokesBefore + 1);
    expect(revokes().at(-1)).toMatchObject({ status: 200, body: { token: refreshToken } });
  });

  it('an address that passed to another account is another connection, revoked on its own', async () => {
    const org = await createChatOrg(sql, 'cal-subject-reassigned');
    const earlier = String((await connect(org, 'google', 'desk@subject.example')).body.connection_id);
    // The first account moves to a new address; someone else's account gets the old one.
    stub.renameAccount('google', 'desk@subject.example', 'desk.former@subject.example');
    const later = await connect(org, 'google', 'desk@subject.example');
    expect(later.status).toBe(200);
    const successor = String(later.body.connection_id);
    expect(successor).not.toBe(earlier);
    expect((await counts(org.id)).connections).toBe(2);
    expect(await subjectOf(successor)).not.toBe(await subjectOf(earlier));
    const { refreshToken: earlierRefresh } = await storedTokens(earlier);

    // Disconnecting the newcomer revokes its grant: the other row shares an e-mail, not an account.
    const revokesBefore = revokes().length;
    const gone = await call(`/connections/${successor}/disconnect`, { method: 'POST', token: org.tokens.admin });
    expect(gone.body).toEqual({ connection_id: successor, revoked_at_provider: true });
    expect(revokes()).toHaveLength(revokesBefore + 1);
    expect(revokes().at(-1)?.body).not.toMatchObject({ token: earlierRefresh });
    stub.expireAccessTokens();
    const free = await freeMorning(org);
    expect(free.body.missing_calendars).toEqual([]);
    expect(await connectionRow(earlier)).toMatchObject({ status: 'connected', account_email: 'desk@subject.example' });
  });

  it('answers 502 account_unknown when the provider names no account id, saving nothing', async () => {
    const org = await createChatOrg(sql, 'cal-subject-unknown');
    const before = await counts(org.id);

    // Google: an ID token without `sub`, and one whose `sub` is longer than OpenID Connect allows (255).
    for (const sub of [undefined, '1'.repeat(256)]) {
      const google = await start(org, 'google');
      const consent = await stub.authorize(google.url, { email: 'nosub@subject.example' });
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss: 'https://accounts.google.com', aud: stub.google.clientId, sub, email: 'nosub@subject.example', iat: now, exp: now + 3600 };
      const idToken = [{ alg: 'RS256', typ: 'JWT' }, claims].map((part) => Buffer.from(JSON.stringify(part)).toString('base64url')).join('.');
      stub.failNext(200, {}, {
        match: 'oauth2.googleapis.com/token',
        body: {
          access_token: 'ya29.no-subject',
          expires_in: 3599,
          refresh_token: '1//0g-no-subject',
          scope: 'https://www.googleapis.com/auth/calendar.freebusy https://www.googleapis.com/auth/calendar.events openid email',
          token_type: 'Bearer',
          id_token: `${idToken}.c2lnbmF0dXJl`,
        },
      });
      const refused = await callback(consent.location);
      expect(refused.status).toBe(502);
      expect(refused.body).toMatchObject({ error: { code: 'account_unknown' } });
    }

    // Microsoft: Graph's /me without an id.
    const microsoft = await start(org, 'microsoft');
    const msConsent = await stub.authorize(microsoft.url, { email: 'noid@contoso-subject.example' });
    stub.failNext(200, {}, {
      match: /graph\.microsoft\.com\/v1\.0\/me$/u,
      body: { '@odata.context': 'https://graph.microsoft.com/v1.0/$metadata#users/$entity', mail: 'noid@contoso-subject.example' },
    });
    const msRefused = await callback(msConsent.location);
    expect(msRefused.status).toBe(502);
    expect(msRefused.body).toMatchObject({ error: { code: 'account_unknown' } });

    const after = await counts(org.id);
    expect(after.connections).toBe(before.connections);
    expect(after.connections).toBe(0);
  });

  it('audits a connect, a reconnect and a takeover with their user as the actor (20261123014800)', async () => {
    const org = await createChatOrg(sql, 'cal-audit-actors');
    const auditOf = (id: string) => sql<{ action: string; actor_user_id: string | null; new_values: Record<string, unknown> | null }[]>`
      select action, actor_user_id, new_values from public.audit_log
      where table_name = 'calendar_connections' and record_id = ${id} order by seq`;
    const first = await connect(org, 'google', 'actors@audit.example');
    expect(first.status).toBe(200);
    const id = String(first.body.connection_id);
    expect(await auditOf(id)).toEqual([expect.objectContaining({ action: 'insert', actor_user_id: org.users.admin })]);
    const [{ connected_at: connectedAt }] = await sql<{ connected_at: Date }[]>`
      select connected_at from public.calendar_connections where id = ${id}`;

    // The same account's new grant: only the tokens and connected_at change, and that is audited.
    const again = await connect(org, 'google', 'actors@audit.example');
    expect(again.body).toMatchObject({ connection_id: id });
    const reconnected = await auditOf(id);
    expect(reconnected).toHaveLength(2);
    expect(reconnected[1]).toMatchObject({ action: 'update', actor_user_id: org.users.admin });
    expect(Object.keys(reconnected[1].new_values ?? {})).toContain('connected_at');
    const [row] = await sql<{ connected_at: Date }[]>`select connected_at from public.calendar_connections where id = ${id}`;
    expect(row.connected_at.getTime()).toBeGreaterThan(connectedAt.getTime());

    // The owner connecting the same account takes it over, audited as the owner.
    const begun = await call('/oauth/start', { method: 'POST', token: org.tokens.owner, body: { org_id: org.id, provider: 'google' } });
    expect(begun.status).toBe(200);
    const consent = await stub.authorize(String(begun.body.authorization_url), { email: 'actors@audit.example' });
    const parked = await callback(consent.location);
    const taken = await complete(org.tokens.owner, parked.body.connection_request);
    expect(taken.body).toMatchObject({ connection_id: id });
    const takeover = (await auditOf(id))[2];
    expect(takeover).toMatchObject({ action: 'update', actor_user_id: org.users.owner });
    expect(takeover.new_values).toMatchObject({ connected_by: org.users.owner });
  });
});

describe('configuration', () => {
  it('answers 501 for a provider that is not configured and 503 without a token key', async () => {
    const token = await signUserToken({ id: randomUUID() });
    const env = (values: Record<string, string>) => (name: string) => values[name];
    const base = { SUPABASE_JWT_SECRET: LOCAL_JWT_SECRET, SUPABASE_URL: 'http://127.0.0.1:54321' };
    const sqlNever = () => {
      throw new Error('the database is not reached');
    };
    const request = (provider: string) =>
      new Request('http://local/calendar/oauth/start', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ org_id: randomUUID(), provider }),
      });
    const unconfigured = createCalendarHandler({ sql: sqlNever, env: env(base) });
    const notOffered = await unconfigured(request('microsoft'));
    expect(notOffered.status).toBe(501);
    expect(await notOffered.json()).toMatchObject({ error: { code: 'provider_not_configured' } });

    const withoutKey = createCalendarHandler({
      sql: sqlNever,
      env: env({ ...base, CALENDAR_GOOGLE_CLIENT_ID: 'id', CALENDAR_GOOGLE_CLIENT_SECRET: 'secret' }),
    });
    const noKey = await withoutKey(request('google'));
    expect(noKey.status).toBe(503);
    expect(await noKey.json()).toMatchObject({
      error: { code: 'calendar_not_configured', message: expect.stringContaining('CALENDAR_TOKEN_KEY') },
    });
    const noRoute = await withoutKey(new Request('http://local/calendar/oauth/start', { method: 'GET' }));
    expect(noRoute.status).toBe(405);
  });
});
