/**
 * Creating and repointing webhook endpoints while DNS misbehaves: in process (Deno's resolver cannot be stubbed
 * from outside), with a resolver each test sets, against the run's shared database.
 *
 * A retried create gets its stored answer before any lookup, so a resolver failing on the retry cannot turn a
 * created endpoint into a refusal; a resolver that fails (SERVFAIL, refused, timed out) is 503 `dns_unavailable`,
 * changing nothing; only a name that does not exist is 422 `unsafe_url`.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { createWebhooksHandler } from '../../functions/webhooks/handler.ts';
import { localKeys } from '../../scripts/local/keys.ts';
import { type ChatOrg, createChatOrg } from '../support/chat-fixtures.ts';
import { startTestDatabase } from './support.ts';

const HOST = 'hooks.webhooks-idem-dns.example';
const URL_A = `https://${HOST}/orders`;
const URL_B = `https://${HOST}/invoices`;

/** A resolver failure as Node and Deno report it: an Error with the resolver's code. */
const dnsError = (code: string) => Object.assign(new Error(`getaddrinfo ${code} ${HOST}`), { code });

type Dns = 'up' | 'no-records' | { fails: string | null };

let sql: Sql;
let org: ChatOrg;
let jwtSecret: string;
let dns: Dns = 'up';
let lookups = 0;

beforeAll(async () => {
  sql = createSql((await startTestDatabase()).url, { max: 2 });
  org = await createChatOrg(sql, 'webhooks-idem-dns');
  jwtSecret = (await localKeys()).jwtSecret;
});

afterAll(async () => {
  if (sql) {
    // Endpoints, secrets and kept keys go with the org; the memberships too, then the users.
    await sql`delete from public.organizations where id = ${org.id}`;
    await sql`delete from auth.users where id in ${sql(Object.values(org.users))}`;
    await sql.end({ timeout: 1 });
  }
});

const handler = () =>
  createWebhooksHandler({
    sql: () => sql,
    env: (name) => (name === 'SUPABASE_JWT_SECRET' ? jwtSecret : undefined),
    resolve: async () => {
      lookups += 1;
      if (dns === 'up') return ['93.184.215.14'];
      if (dns === 'no-records') return [];
      // A failure without a code (an unexpected resolver error) is the resolver's, like SERVFAIL.
      throw dns.fails === null ? new Error('the resolver failed') : dnsError(dns.fails);
    },
  });

/** Every field these answers carry; each test asserts which ones it got. */
interface AnswerBody {
  endpoint: { id: string; url: string };
  secret: string;
  error: { code: string; message: string; request_id?: string };
}

interface Answer {
  status: number;
  headers: Headers;
  body: AnswerBody;
}

async function send(method: string, path: string, body: unknown, key?: string): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${org.tokens.admin}`, 'content-type': 'application/json' };
  if (key !== undefined) headers['idempotency-key'] = key;
  const response = await handler()(
    new Request(`http://local/webhooks${path}`, { method, headers, body: JSON.stringify(body) }),
  );
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const create = (body: Record<string, unknown>, key?: string) => send('POST', '/endpoints', { org_id: org.id, ...body }, key);

function expectError(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.body).toEqual({ error: { code, message: expect.any(String), request_id: expect.any(String) } });
}

const endpoints = () =>
  sql<{ id: string; url: string; description: string }[]>`
    select id, url, description from public.webhook_endpoints where org_id = ${org.id} order by id`;

const keptAnswers = (key: string) =>
  sql<{ response_status: number }[]>`
    select response_status from private.idempotency_keys where org_id = ${org.id} and idempotency_key = ${key}`;

const activeSecrets = (endpointId: string) =>
  sql<{ secret: string }[]>`
    select secret from private.webhook_endpoint_secrets
    where endpoint_id = ${endpointId} and (expires_at is null or expires_at > clock_timestamp())`;

describe('a retried create whose answer was lost', () => {
  it.each<[string, Dns]>([
    ['the resolver fails (SERVFAIL)', { fails: 'ESERVFAIL' }],
    ['the resolver times out', { fails: 'EAI_AGAIN' }],
    ['the name no longer exists', { fails: 'ENOTFOUND' }],
  ])('gets the stored 201 (same endpoint and secret) when on the retry %s, and one endpoint exists', async (_, failing) => {
    dns = 'up';
    const key = `webhooks-idem-dns-lost-${randomUUID()}`;
    const body = { url: URL_A, description: `lost answer ${key}` };
    const before = (await endpoints()).map((row) => row.id);
    const first = await create(body, key);
    expect(first.status, JSON.stringify(first.body)).toBe(201);

    dns = failing;
    const lookupsBefore = lookups;
    const retry = await create(body, key);
    expect(retry.status, JSON.stringify(retry.body)).toBe(201);
    expect(retry.body).toEqual(first.body);
    expect(retry.body.secret).toMatch(/^whsec_/);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.headers.get('cache-control')).toBe('no-store');
    expect(lookups, 'a replay looks nothing up').toBe(lookupsBefore);

    const created = (await endpoints()).filter((row) => !before.includes(row.id));
    expect(created.map((row) => row.id)).toEqual([first.body.endpoint.id]);
    expect(await activeSecrets(first.body.endpoint.id)).toEqual([{ secret: first.body.secret }]);
    expect(await keptAnswers(key)).toEqual([{ response_status: 201 }]);
  });

  it('with another body is still 422 idempotency_key_reused, whatever DNS does, and creates nothing', async () => {
    dns = 'up';
    const key = `webhooks-idem-dns-reused-${randomUUID()}`;
    expect((await create({ url: URL_A, description: `reused ${key}` }, key)).status).toBe(201);
    const before = await endpoints();
    for (const failing of [{ fails: 'ESERVFAIL' }, 'up'] satisfies Dns[]) {
      dns = failing;
      expectError(await create({ url: URL_B, description: `reused ${key}` }, key), 422, 'idempotency_key_reused');
    }
    expect(await endpoints()).toEqual(before);
    expect(await keptAnswers(key)).toEqual([{ response_status: 201 }]);
  });
});

describe('a create while the resolver fails', () => {
  it.each<[string, Dns]>([
    ['SERVFAIL', { fails: 'ESERVFAIL' }],
    ['a getaddrinfo temporary failure', { fails: 'EAI_AGAIN' }],
    ['a timeout', { fails: 'ETIMEOUT' }],
    ['a refused query', { fails: 'EREFUSED' }],
    ['an error without a code', { fails: null }],
  ])('is 503 dns_unavailable with Retry-After on %s, creates nothing and frees the key', async (_, failing) => {
    const key = `webhooks-idem-dns-503-${randomUUID()}`;
    const body = { url: URL_A, description: `unavailable ${key}` };
    const before = await endpoints();
    dns = failing;
    const refused = await create(body, key);
    expectError(refused, 503, 'dns_unavailable');
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(await endpoints()).toEqual(before);
    expect(await keptAnswers(key)).toEqual([]);

    // The same request, once the resolver answers, creates the endpoint (the key was not spent on the failure).
    dns = 'up';
    const retry = await create(body, key);
    expect(retry.status, JSON.stringify(retry.body)).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect((await endpoints()).filter((row) => !before.some((old) => old.id === row.id)).map((row) => row.id))
      .toEqual([retry.body.endpoint.id]);
  });

  it.each<[string, Dns]>([
    ['does not exist (NXDOMAIN)', { fails: 'ENOTFOUND' }],
    ['has no address records', { fails: 'ENODATA' }],
    ['resolves to no address', 'no-records'],
  ])('is still 422 unsafe_url when the name %s, creating nothing', async (_, failing) => {
    const key = `webhooks-idem-dns-422-${randomUUID()}`;
    const before = await endpoints();
    dns = failing;
    expectError(await create({ url: URL_A, description: `nowhere ${key}` }, key), 422, 'unsafe_url');
    expect(await endpoints()).toEqual(before);
    expect(await keptAnswers(key)).toEqual([]);
  });
});

describe('repointing an endpoint while the resolver fails', () => {
  it('is 503 dns_unavailable on a resolver failure and 422 unsafe_url for a missing name, the URL unchanged', async () => {
    dns = 'up';
    const created = await create({ url: URL_A, description: `repoint ${randomUUID()}` });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.endpoint.id;
    const urlOf = async () => (await sql<{ url: string }[]>`select url from public.webhook_endpoints where id = ${id}`)[0].url;

    dns = { fails: 'ESERVFAIL' };
    const unavailable = await send('PATCH', `/endpoints/${id}`, { url: URL_B });
    expectError(unavailable, 503, 'dns_unavailable');
    expect(unavailable.headers.get('retry-after')).toBe('5');
    expect(await urlOf()).toBe(URL_A);

    dns = { fails: 'ENOTFOUND' };
    expectError(await send('PATCH', `/endpoints/${id}`, { url: URL_B }), 422, 'unsafe_url');
    expect(await urlOf()).toBe(URL_A);

    dns = 'up';
    const moved = await send('PATCH', `/endpoints/${id}`, { url: URL_B });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);
    expect(await urlOf()).toBe(URL_B);
  });
});
