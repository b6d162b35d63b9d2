/**
 * Values Postgres refuses to take at all (a NUL in text, a number too large
 * for its column) reach the database from any endpoint whose schema lets
 * them through; createHandler answers them 422, not 500
 * (httpErrorFromUnmappedPostgres). Checked end to end through a real handler
 * and the embedded database, with the webhooks function's free-text
 * description.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { createWebhooksHandler } from '../../functions/webhooks/handler.ts';
import { localKeys, signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';

let stack: Stack;
let sql: Sql;
let handler: (req: Request) => Promise<Response>;
let orgId: string;
let token: string;

beforeAll(async () => {
  stack = await startStack({ dbPort: 0, apiPort: 0, scheduler: false, functions: false });
  sql = createSql(stack.dbUrl, { max: 2 });
  const keys = await localKeys();
  const env = (name: string) =>
    ({ SUPABASE_JWT_SECRET: keys.jwtSecret, WEBHOOK_ALLOW_LOOPBACK: 'true', SUPABASE_DB_URL: stack.dbUrl })[name];
  handler = createWebhooksHandler({ sql: () => sql, env, resolve: () => Promise.resolve(['93.184.215.14']) });
  orgId = randomUUID();
  const adminId = randomUUID();
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
             values (${adminId}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                     'admin@values.test', '{}', '{}')`;
    await tx`insert into public.organizations (id, name, slug) values (${orgId}, 'Values', ${`values-${orgId.slice(0, 8)}`})`;
    await tx`insert into public.memberships (org_id, user_id, role) values (${orgId}, ${adminId}, 'admin')`;
  });
  token = await signUserToken({ id: adminId, email: 'admin@values.test' });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
});

const call = async (method: string, path: string, body: unknown) => {
  const response = await handler(
    new Request(`http://local/webhooks${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
  return { status: response.status, body: await response.json() };
};

describe('values the database cannot take', () => {
  it('answers a NUL character in a text field with 422 and changes nothing', async () => {
    const nul = { code: 'invalid_request', message: 'A text value contains a NUL character or an invalid byte sequence.' };
    const created = await call('POST', '/endpoints', { org_id: orgId, url: 'https://hooks.example.com/a', description: 'a\u0000b' });
    expect(created).toMatchObject({ status: 422, body: { error: nul } });
    expect(await sql`select 1 from public.webhook_endpoints where org_id = ${orgId}`).toHaveLength(0);

    const ok = await call('POST', '/endpoints', { org_id: orgId, url: 'https://hooks.example.com/a', description: 'orders' });
    expect(ok.status).toBe(201);
    const [{ id }] = await sql<{ id: string }[]>`select id from public.webhook_endpoints where org_id = ${orgId}`;
    expect(await call('PATCH', `/endpoints/${id}`, { description: '\u0000' })).toMatchObject({ status: 422, body: { error: nul } });
    expect(await sql`select description from public.webhook_endpoints where id = ${id}`).toEqual([{ description: 'orders' }]);
  });
});
