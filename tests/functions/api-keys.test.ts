import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyFromRequest, requireScope, verifyApiKey } from '../../functions/_shared/api-keys.ts';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { startTestDatabase } from './support.ts';

const ADMIN = '7a3e0c52-4b1d-4f0e-9a63-0c1d2e3f4a01';
const ORG = '7a3e0c52-4b1d-4f0e-9a63-0c1d2e3f4b02';
const admin: JwtClaims = { role: 'authenticated', aud: 'authenticated', sub: ADMIN, exp: 4102444800 };

async function httpError(promise: Promise<unknown> | (() => unknown)): Promise<HttpError> {
  const error = await (typeof promise === 'function' ? Promise.resolve().then(promise) : promise).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(HttpError);
  return error as HttpError;
}

describe('API keys from an edge function', () => {
  let sql: Sql;

  beforeAll(async () => {
    sql = createSql((await startTestDatabase()).url, { max: 1 });
    await sql.begin(async (tx) => {
      await tx`insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data)
               values (${ADMIN}, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated',
                       'keys-admin@fn.test', '{}', '{}')`;
      await tx`insert into public.organizations (id, name, slug) values (${ORG}, 'Keys', 'fn-api-keys')`;
      await tx`insert into public.memberships (org_id, user_id, role) values (${ORG}, ${ADMIN}, 'owner')`;
    });
  });
  afterAll(async () => {
    await sql`delete from public.organizations where id = ${ORG}`;
    await sql`delete from auth.users where id = ${ADMIN}`;
    await sql.end({ timeout: 1 });
  });

  const createKey = (scopes: string[]) =>
    withUserScope(sql, admin, async (tx) => {
      const [created] = await tx<{ id: string; key: string }[]>`
        select id, key from public.create_api_key(${ORG}, 'bot', ${scopes})`;
      return created;
    });

  it('verifies a live key to its org and scopes, and refuses it once revoked', async () => {
    const { id, key } = await createKey(['chat.write', 'knowledge.read']);
    const principal = await verifyApiKey(sql, key);
    expect(principal).toEqual({ apiKeyId: id, orgId: ORG, scopes: ['chat.write', 'knowledge.read'] });
    expect(() => requireScope(principal, 'chat.write')).not.toThrow();
    const missing = await httpError(() => requireScope(principal, 'calls.write'));
    expect([missing.status, missing.code]).toEqual([403, 'insufficient_scope']);

    await withUserScope(sql, admin, (tx) => tx`select public.revoke_api_key(${id})`);
    const revoked = await httpError(verifyApiKey(sql, key));
    expect([revoked.status, revoked.code]).toEqual([401, 'invalid_api_key']);
  });

  it('refuses an unknown key of the right shape', async () => {
    const error = await httpError(verifyApiKey(sql, `ak_${'0'.repeat(48)}`));
    expect([error.status, error.code]).toEqual([401, 'invalid_api_key']);
  });

  it('reads the key from Authorization: Bearer or x-api-key, and rejects other shapes before any query', async () => {
    const key = `ak_${'ab'.repeat(24)}`;
    expect(apiKeyFromRequest(new Request('http://x', { headers: { authorization: `Bearer ${key}` } }))).toBe(key);
    expect(apiKeyFromRequest(new Request('http://x', { headers: { 'x-api-key': key } }))).toBe(key);
    const missing = await httpError(() => apiKeyFromRequest(new Request('http://x')));
    expect([missing.status, missing.code]).toEqual([401, 'missing_api_key']);
    const malformed = await httpError(() =>
      apiKeyFromRequest(new Request('http://x', { headers: { authorization: 'Bearer eyJhbGciOi.jwt.token' } })),
    );
    expect([malformed.status, malformed.code]).toEqual([401, 'invalid_api_key']);
  });
});
