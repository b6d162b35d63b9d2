/**
 * Functions deployed ahead of the migrations they rely on answer 503 with
 * Retry-After (schema_not_ready) before doing anything, instead of failing
 * half-way (a chat turn streamed its answer and then could not store or meter
 * it); the required migration is the newest file in supabase/migrations.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { HttpError } from '../../functions/_shared/errors.ts';
import { createHandler } from '../../functions/_shared/handler.ts';
import { REQUIRED_MIGRATION, requireMigration } from '../../functions/_shared/schema-version.ts';
import { startTestDatabase, type TestDatabase } from './support.ts';

const NOT_YET = '29991231000000';

let database: TestDatabase;
let sql: Sql;

beforeAll(async () => {
  database = await startTestDatabase();
  sql = createSql(database.url, { max: 1 });
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await database?.stop();
});

describe('the migration the functions rely on', () => {
  it('is the newest migration file', () => {
    const newest = readdirSync('supabase/migrations').filter((name) => name.endsWith('.sql')).sort().at(-1);
    expect(newest?.split('_')[0]).toBe(REQUIRED_MIGRATION);
  });

  it('is applied to a migrated database: requests go through', async () => {
    await expect(requireMigration(sql)).resolves.toBeUndefined();
    let called = 0;
    const handler = createHandler(() => {
      called += 1;
      return new Response('ok');
    }, { sql: () => sql });
    expect((await handler(new Request('http://local/x'))).status).toBe(200);
    expect(called).toBe(1);
  });

  it('when missing, answers 503 schema_not_ready with Retry-After and runs nothing', async () => {
    const refused = await requireMigration(sql, NOT_YET).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(HttpError);
    expect([(refused as HttpError).status, (refused as HttpError).code]).toEqual([503, 'schema_not_ready']);

    let called = 0;
    const handler = createHandler(() => {
      called += 1;
      return new Response('ok');
    }, { sql: () => sql, requiredMigration: NOT_YET });
    const response = await handler(new Request('http://local/x', { method: 'POST' }));
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('30');
    expect((await response.json()).error.code).toBe('schema_not_ready');
    expect(called).toBe(0);
    // A preflight needs no database.
    expect((await handler(new Request('http://local/x', { method: 'OPTIONS' }))).status).toBe(204);
  });
});
