/**
 * The OAuth callback told to be retried can be (the calendar function over
 * HTTP, real Deno, against tests/support/calendar-stub.ts): when the
 * provider's token endpoint throttles (503 with Retry-After) or fails (502),
 * the code was not redeemed and the state is given back
 * (20261123013900), so loading the same callback again parks the connection
 * request, which the starter completes into a stored connection. The state
 * stays single use: two concurrent callbacks after such a failure exchange
 * the code once, and an invalid_grant (the code is spent) or another refusal
 * keeps it used.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { type CalendarStub, providerEnv, startCalendarStub } from '../support/calendar-stub.ts';
import { type CalendarAnswer as Answer, type CalendarCall, callCalendar } from '../support/calendar-api.ts';
import { startTestStack, type TestStack } from './support.ts';

const TOKEN_KEY = Buffer.from('calendar-oauth-retry-key-32bytes').toString('base64');
const DASHBOARD = 'https://app.example.com';
const TOKEN_ENDPOINT = {
  google: /^oauth2\.googleapis\.com\/token$/u,
  microsoft: /^login\.microsoftonline\.com\/[^/]+\/oauth2\/v2\.0\/token$/u,
} as const;
type Provider = keyof typeof TOKEN_ENDPOINT;

let stack: TestStack;
let sql: Sql;
let stub: CalendarStub;
let org: ChatOrg;

const call = (path: string, options?: CalendarCall): Promise<Answer> => callCalendar(stack.functionsUrl, path, options);

interface Consent {
  /** The provider's redirect to our callback, as the browser would load it. */
  callback: string;
  jti: string;
}

/** The org's admin starts a connect and the account consents. */
async function consentTo(provider: Provider, email: string, extra: Record<string, unknown> = {}): Promise<Consent> {
  const started = await call('/oauth/start', { method: 'POST', token: org.tokens.admin, body: { org_id: org.id, provider, ...extra } });
  expect(started.status).toBe(200);
  const consent = await stub.authorize(String(started.body.authorization_url), { email });
  expect(consent.code).toBeTruthy();
  const state = new URL(consent.location).searchParams.get('state') ?? '';
  const jti = (JSON.parse(Buffer.from(state.split('.')[1], 'base64url').toString()) as { jti: string }).jti;
  return { callback: `/oauth/callback${new URL(consent.location).search}`, jti };
}

async function usedAt(jti: string): Promise<Date | null> {
  const [row] = await sql<{ used_at: Date | null }[]>`select used_at from private.calendar_oauth_states where jti = ${jti}`;
  if (!row) throw new Error(`no state ${jti}`);
  return row.used_at;
}

function tokenRequests(provider: Provider): number {
  return stub.requests.filter((request) => TOKEN_ENDPOINT[provider].test(`${request.host}${request.path}`)).length;
}

async function pendingFor(email: string): Promise<number> {
  const [row] = await sql<{ count: number }[]>`
    select count(*)::int as count from private.calendar_pending_connections where org_id = ${org.id} and account_email = ${email}`;
  return row.count;
}

async function connectionFor(email: string): Promise<{ provider: string; status: string } | undefined> {
  const [row] = await sql<{ provider: string; status: string }[]>`
    select provider, status from public.calendar_connections where org_id = ${org.id} and account_email = ${email}`;
  return row;
}

async function complete(connectionRequest: unknown): Promise<Answer> {
  return call('/oauth/complete', { method: 'POST', token: org.tokens.admin, body: { connection_request: connectionRequest } });
}

beforeAll(async () => {
  stub = await startCalendarStub();
  stack = await startTestStack({
    env: { ...providerEnv(stub), CALENDAR_TOKEN_KEY: TOKEN_KEY, CALENDAR_REDIRECT_ORIGINS: DASHBOARD },
  });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'cal-oauth-retry');
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  await stub?.close();
});

describe('a callback the provider failed to answer can be loaded again', () => {
  it('token endpoint 429: 503 with Retry-After, the state given back; the same callback then connects', async () => {
    const email = 'throttled@oauth-retry.example';
    const consent = await consentTo('google', email);
    const before = tokenRequests('google');
    stub.failNext(429, { 'retry-after': '30' }, { match: TOKEN_ENDPOINT.google });

    const throttled = await call(consent.callback);
    expect(throttled.status).toBe(503);
    expect(throttled.headers.get('retry-after')).toBe('30');
    expect(throttled.body).toMatchObject({ error: { code: 'provider_unavailable', message: expect.stringContaining('try again in 30 s') } });
    expect(await usedAt(consent.jti)).toBeNull();
    expect(await pendingFor(email)).toBe(0);

    const again = await call(consent.callback);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ provider: 'google', account_email: email });
    expect(await usedAt(consent.jti)).not.toBeNull();
    expect(tokenRequests('google')).toBe(before + 2);

    const completed = await complete(again.body.connection_request);
    expect(completed.status).toBe(200);
    expect(await connectionFor(email)).toEqual({ provider: 'google', status: 'connected' });
  });

  it('token endpoint 5xx, back to redirect_to: the error, then pending on the same callback', async () => {
    const email = 'backend-error@oauth-retry.example';
    const consent = await consentTo('microsoft', email, { redirect_to: '/settings/calendar' });
    stub.failNext(503, {}, { match: TOKEN_ENDPOINT.microsoft });

    const failed = await call(consent.callback);
    expect(failed.status).toBe(303);
    expect(failed.headers.get('location')).toBe(`${DASHBOARD}/settings/calendar?calendar=error&reason=provider_unavailable`);
    expect(await usedAt(consent.jti)).toBeNull();

    const again = await call(consent.callback);
    expect(again.status).toBe(303);
    const location = new URL(again.headers.get('location') ?? '');
    expect(location.searchParams.get('calendar')).toBe('pending');
    const completed = await complete(location.searchParams.get('connection_request'));
    expect(completed.status).toBe(200);
    expect(await connectionFor(email)).toEqual({ provider: 'microsoft', status: 'connected' });
  });

  it('after a throttled callback, two concurrent retries exchange the code once: one connects, the other hears state_used', async () => {
    const email = 'concurrent@oauth-retry.example';
    const consent = await consentTo('google', email);
    stub.failNext(429, { 'retry-after': '30' }, { match: TOKEN_ENDPOINT.google });
    expect((await call(consent.callback)).status).toBe(503);
    const before = tokenRequests('google');

    const answers = await Promise.all([call(consent.callback), call(consent.callback)]);
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses).toEqual([200, 400]);
    expect(answers.find((answer) => answer.status === 400)?.body).toMatchObject({ error: { code: 'state_used' } });
    expect(tokenRequests('google')).toBe(before + 1);
    expect(await pendingFor(email)).toBe(1);
  });
});

describe('a code the provider refused keeps its state used', () => {
  it('invalid_grant: 400 code_rejected, and the same callback is then state_used without reaching the provider', async () => {
    const email = 'spent-code@oauth-retry.example';
    const consent = await consentTo('google', email);
    stub.failNext(400, {}, { match: TOKEN_ENDPOINT.google, body: { error: 'invalid_grant', error_description: 'Bad Request' } });

    const refused = await call(consent.callback);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: { code: 'code_rejected' } });
    expect(await usedAt(consent.jti)).not.toBeNull();

    const before = tokenRequests('google');
    const again = await call(consent.callback);
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: { code: 'state_used' } });
    expect(tokenRequests('google')).toBe(before);
    expect(await pendingFor(email)).toBe(0);
    expect(await connectionFor(email)).toBeUndefined();
  });

  it('another 4xx (invalid_client) is not retryable either: 502 that says start again, the state stays used', async () => {
    const email = 'bad-client@oauth-retry.example';
    const consent = await consentTo('microsoft', email);
    stub.failNext(401, {}, { match: TOKEN_ENDPOINT.microsoft, body: { error: 'invalid_client', error_description: 'AADSTS7000215' } });

    const failed = await call(consent.callback);
    expect(failed.status).toBe(502);
    expect(failed.body).toMatchObject({
      error: { code: 'provider_unavailable', message: expect.stringContaining('start connecting the calendar again') },
    });
    expect(await usedAt(consent.jti)).not.toBeNull();
    const again = await call(consent.callback);
    expect(again.body).toMatchObject({ error: { code: 'state_used' } });
    expect(await connectionFor(email)).toBeUndefined();
  });
});
