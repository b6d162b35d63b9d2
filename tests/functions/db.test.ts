import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JwtClaims } from '../../functions/_shared/auth.ts';
import { createSql, type Sql, withUserScope } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { createHealthHandler } from '../../functions/health/handler.ts';
import { startTestDatabase, type TestDatabase } from './support.ts';

const claims: JwtClaims = {
  role: 'authenticated',
  aud: 'authenticated',
  sub: '8d0fd2b3-9ca7-4f5c-8bd2-6d1b0a4d2c11',
  exp: 4102444800,
  app_metadata: { tenant_id: 't1' },
};

describe('withUserScope', () => {
  let database: TestDatabase;
  let sql: Sql;

  beforeAll(async () => {
    database = await startTestDatabase();
    sql = createSql(database.url, { max: 1 });
    // A schema the API does not expose, so a concurrent advisors or types run never sees the probe.
    await sql`create schema if not exists db_scope_test`;
    await sql`create table if not exists db_scope_test.scope_probe (x int)`;
    await sql`grant usage on schema db_scope_test to authenticated`;
    await sql`grant insert, select on db_scope_test.scope_probe to authenticated`;
  });
  afterAll(async () => {
    if (sql) await sql`drop schema if exists db_scope_test cascade`;
    await sql?.end({ timeout: 1 });
    await database?.stop();
  });

  it('runs as the token role with its claims, only inside the transaction', async () => {
    const [inside] = await withUserScope(
      sql,
      claims,
      (tx) => tx`select current_user as role, current_setting('request.jwt.claims', true) as claims`,
    );
    expect(inside.role).toBe('authenticated');
    expect(JSON.parse(inside.claims)).toEqual(claims);

    const [after] = await sql`select current_user as role, current_setting('request.jwt.claims', true) as claims`;
    expect(after.role).toBe('postgres');
    expect(after.claims ?? '').toBe('');
  });

  it('rolls back when the callback throws', async () => {
    await expect(
      withUserScope(sql, claims, async (tx) => {
        await tx`insert into db_scope_test.scope_probe values (1)`;
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const [{ count }] = await sql`select count(*)::int as count from db_scope_test.scope_probe`;
    expect(count).toBe(0);
  });

  it('refuses a role outside anon/authenticated/service_role before touching the database', async () => {
    // A stand-in client whose use would fail the test: the role check must come first.
    const untouchable = { begin: vi.fn() } as unknown as Sql;
    for (const role of ['postgres', 'supabase_admin', 'authenticated; drop table x']) {
      const error = await withUserScope(untouchable, { ...claims, role }, async () => 'ran').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpError);
      expect((error as HttpError).status).toBe(403);
      expect((error as HttpError).code).toBe('role_not_allowed');
    }
    expect(untouchable.begin).not.toHaveBeenCalled();
  });
});

describe('health handler', () => {
  it('answers 503 database_unavailable when the database cannot be reached', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const sql = createSql('postgres://postgres@127.0.0.1:1/postgres', { max: 1 });
    try {
      const response = await createHealthHandler({ sql: () => sql })(new Request('http://local/health'));
      expect(response.status).toBe(503);
      expect((await response.json()).error.code).toBe('database_unavailable');
    } finally {
      await sql.end({ timeout: 1 });
      log.mockRestore();
    }
  });

  it('answers other methods with 405 and an Allow header', async () => {
    const response = await createHealthHandler({ sql: () => expect.fail('no query expected') })(
      new Request('http://local/health', { method: 'DELETE' }),
    );
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('GET, HEAD');
    expect((await response.json()).error.code).toBe('method_not_allowed');
  });
});
