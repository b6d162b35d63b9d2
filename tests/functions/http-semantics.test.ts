/**
 * HTTP semantics every function shares (functions/_shared/{http,handler,cors}.ts),
 * over HTTP through the gateway and real Deno: a body declared in a charset
 * other than UTF-8, or compressed, is a 415 `unsupported_media_type`; bytes
 * or a query that are not UTF-8 a 400 `invalid_encoding`, each changing
 * nothing; answers set no-store unless they set their own Cache-Control; HEAD
 * is served as GET without the body; a browser may send x-request-id; a
 * created webhook endpoint's 201 (and its replay) carries Location; a 503
 * carries Retry-After.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { createHealthHandler } from '../../functions/health/handler.ts';
import { type ChatOrg, createApiKey, createChatOrg } from '../support/chat-fixtures.ts';
import { keyApi } from '../support/key-api.ts';
import { startTestStack, type TestStack } from './support.ts';

// An IP literal: inside Deno the resolver cannot be stubbed, and this test must not depend on DNS.
const PUBLIC_URL = 'https://93.184.215.14/hooks/http-semantics';

let stack: TestStack;
let sql: Sql;
let org: ChatOrg;
let keys: { calls: string; knowledge: string };

const calls = keyApi(() => `${stack.functionsUrl}/calls`);
const documents = keyApi(() => `${stack.functionsUrl}/knowledge/documents`);

beforeAll(async () => {
  stack = await startTestStack({ env: { WEBHOOK_ALLOW_LOOPBACK: 'false' } });
  sql = createSql(stack.dbUrl, { max: 2 });
  org = await createChatOrg(sql, 'http-semantics');
  keys = {
    calls: (await createApiKey(sql, org, ['calls.read'])).key,
    knowledge: (await createApiKey(sql, org, ['knowledge.read', 'knowledge.write'])).key,
  };
});

afterAll(async () => {
  if (sql) {
    // Endpoints, keys and documents go with the org (on delete cascade); the memberships too, then the users.
    await sql`delete from public.organizations where id = ${org.id}`;
    await sql`delete from auth.users where id in ${sql(Object.values(org.users))}`;
    await sql.end({ timeout: 1 });
  }
  await stack?.stop();
});

const count = async (table: 'webhook_endpoints' | 'documents') =>
  (await sql<{ n: number }[]>`select count(*)::int as n from ${sql('public')}.${sql(table)} where org_id = ${org.id}`)[0].n;

/** POST /webhooks/endpoints as the org's admin, the body's bytes and headers as given. */
function createEndpoint(body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.functionsUrl}/webhooks/endpoints`, {
    method: 'POST',
    headers: { authorization: `Bearer ${org.tokens.admin}`, 'content-type': 'application/json', ...headers },
    body,
  });
}

const latin1 = (text: string) => Uint8Array.from(text, (char) => char.charCodeAt(0));
const endpointJson = (description: string) => `{"org_id":"${org.id}","url":"${PUBLIC_URL}","description":"${description}"}`;

async function errorOf(response: Response): Promise<{ status: number; code: string; message: string }> {
  const { error } = (await response.json()) as { error: { code: string; message: string } };
  return { status: response.status, code: error.code, message: error.message };
}

describe('request bodies and queries', () => {
  it('refuses a JSON body declared in another charset with 415, whatever the spelling', async () => {
    for (const type of ['application/json; charset=iso-8859-1', 'application/json;Charset="UTF-16"']) {
      const refused = await errorOf(await createEndpoint(latin1(endpointJson('Caf\xE9 orders')), { 'content-type': type }));
      expect(refused).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    }
    expect(await count('webhook_endpoints')).toBe(0);
  });

  it('refuses bytes that are not UTF-8 with 400 invalid_encoding, storing nothing, and takes UTF-8 as declared', async () => {
    const refused = await errorOf(await createEndpoint(latin1(endpointJson('Caf\xE9 orders'))));
    expect(refused).toMatchObject({ status: 400, code: 'invalid_encoding' });
    expect(await count('webhook_endpoints')).toBe(0);

    const taken = await createEndpoint(endpointJson('Caf\u00e9 orders'), { 'content-type': 'application/json; charset="UTF-8"' });
    expect(taken.status).toBe(201);
    const { endpoint } = (await taken.json()) as { endpoint: { id: string } };
    const [row] = await sql<{ description: string }[]>`select description from public.webhook_endpoints where id = ${endpoint.id}`;
    expect(row.description).toBe('Caf\u00e9 orders');
    await sql`delete from public.webhook_endpoints where id = ${endpoint.id}`;
  });

  it('refuses a compressed body with 415 naming the encoding, on a JSON route and on an upload', async () => {
    const json = await errorOf(await createEndpoint(gzipSync(endpointJson('gzip')), { 'content-encoding': 'gzip' }));
    expect(json).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    expect(json.message).toContain('gzip');

    const upload = await errorOf(
      await documents('?name=hours.txt', {
        method: 'POST',
        key: keys.knowledge,
        headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
        body: gzipSync('Open 9 to 5.'),
      }),
    );
    expect(upload).toMatchObject({ status: 415, code: 'unsupported_media_type' });
    expect(upload.message).toContain('gzip');
    expect(await count('webhook_endpoints')).toBe(0);
    expect(await count('documents')).toBe(0);
  });

  it('refuses a query value that is not UTF-8 once percent-decoded with 400, and keeps a U+FFFD sent as such', async () => {
    const upload = (name: string) =>
      documents(`?name=${name}`, {
        method: 'POST',
        key: keys.knowledge,
        headers: { 'content-type': 'text/plain' },
        body: 'Open 9 to 5.',
      });
    expect(await errorOf(await upload('a%ED%A0%80b.txt'))).toMatchObject({ status: 400, code: 'invalid_encoding' });
    expect(await errorOf(await upload('caf%E9.txt'))).toMatchObject({ status: 400, code: 'invalid_encoding' });
    expect(await count('documents')).toBe(0);

    // A list read takes U+FFFD spelt out (a valid character) as a value like any other: 422 for a bad status, not 400.
    const listed = await documents('?status=%EF%BF%BD', { key: keys.knowledge });
    expect(await errorOf(listed)).toMatchObject({ status: 422, code: 'invalid_request' });
  });
});

describe('answers', () => {
  it('sets Cache-Control no-store on authenticated reads that set none, and keeps one a route set', async () => {
    for (const response of [await calls('', { key: keys.calls }), await documents('', { key: keys.knowledge })]) {
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
    }
    const refused = await calls('', { key: 'ak_not-a-key' });
    expect(refused.headers.get('cache-control')).toBe('no-store');
  });

  it('serves HEAD as GET: the same status and headers, no body; 405s list HEAD with GET', async () => {
    const get = await calls('', { key: keys.calls });
    const head = await calls('', { method: 'HEAD', key: keys.calls });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
    expect(head.headers.get('content-length')).toBe(get.headers.get('content-length'));
    expect(head.headers.get('cache-control')).toBe('no-store');
    expect(await head.text()).toBe('');
    expect((await get.json()).object).toBe('list');

    expect((await calls('', { method: 'HEAD', key: 'ak_not-a-key' })).status).toBe(401);
    const put = await calls('', { method: 'PUT', key: keys.calls });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toContain('GET, HEAD');

    // The OAuth callback's GET redeems its code: a link scanner's HEAD is not served as GET.
    for (const path of ['/calendar/oauth/callback', '/calendar/oauth/callback/', '/calendar//oauth/callback']) {
      const callback = await fetch(`${stack.functionsUrl}${path}?code=c&state=s`, { method: 'HEAD' });
      expect(callback.status, path).toBe(405);
      expect(callback.headers.get('allow'), path).toBe('GET');
    }
  });

  it('lets a browser send x-request-id and read Location', async () => {
    const preflight = await fetch(`${stack.functionsUrl}/calls`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:3000',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization, x-request-id',
      },
    });
    expect(preflight.status).toBe(204);
    const allowed = preflight.headers.get('access-control-allow-headers')?.split(', ');
    expect(allowed).toContain('x-request-id');
    expect(preflight.headers.get('access-control-expose-headers')?.split(', ')).toContain('location');
  });

  it('answers a created webhook endpoint with its Location, and its Idempotency-Key replay with the same', async () => {
    const key = { 'idempotency-key': `http-semantics-${org.id}` };
    const created = await createEndpoint(endpointJson('located'), key);
    expect(created.status).toBe(201);
    const { endpoint } = (await created.json()) as { endpoint: { id: string } };
    expect(created.headers.get('location')).toBe(`/functions/v1/webhooks/endpoints/${endpoint.id}`);

    const replayed = await createEndpoint(endpointJson('located'), key);
    expect(replayed.status).toBe(201);
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.headers.get('location')).toBe(`/functions/v1/webhooks/endpoints/${endpoint.id}`);
    expect(await count('webhook_endpoints')).toBe(1);

    // The Location is served: the endpoint as its members read it, never its secret; unknown ids are 404.
    const read = (id: string) =>
      fetch(`${stack.functionsUrl}/webhooks/endpoints/${id}`, { headers: { authorization: `Bearer ${org.tokens.admin}` } });
    const followed = await read(endpoint.id);
    expect(followed.status).toBe(200);
    const body = (await followed.json()) as { endpoint: Record<string, unknown> };
    expect(body.endpoint).toMatchObject({ id: endpoint.id, org_id: org.id });
    expect(JSON.stringify(body)).not.toContain('whsec_');
    const unknown = await read(crypto.randomUUID());
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).error.code).toBe('not_found');
  });

  it('answers health\'s 503 database_unavailable with Retry-After', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const down = createSql('postgres://postgres@127.0.0.1:1/postgres', { max: 1 });
    try {
      const response = await createHealthHandler({ sql: () => down })(new Request('http://local/health'));
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      expect((await response.json()).error.code).toBe('database_unavailable');
    } finally {
      await down.end({ timeout: 1 });
      log.mockRestore();
    }
  });
});
