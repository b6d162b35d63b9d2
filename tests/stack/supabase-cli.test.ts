import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { migrationFiles, loadPlatform } from '../../scripts/local/migrate.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { applySessionDefaults, openDatabase, SESSION_DEFAULTS_SQL } from '../../scripts/local/pglite.ts';
import { generateTypes, pushMigrations, runAdvisors } from '../../scripts/local/supabase-cli.ts';
import { WireServer } from '../../scripts/local/wire-server.ts';

/** The Supabase CLI against a database URL (`--remote=<url>`): no Docker needed. */

describe('supabase CLI on the shared stack', () => {
  const dbUrl = inject('dbUrl');

  it('types/database.ts is up to date with the migrations', async () => {
    const generated = await generateTypes(dbUrl);
    const committed = readFileSync(join(ROOT_DIR, 'types/database.ts'), 'utf8');
    expect(generated === committed, 'types/database.ts is stale: run `npm run types`').toBe(true);
  });

  it('the database advisors find no WARN or ERROR', async () => {
    const result = await runAdvisors(dbUrl);
    expect(result.ok, `supabase db advisors (exit ${result.code}):\n${result.output}`).toBe(true);
  });
});

describe('supabase db push on a fresh database', () => {
  let db: PGlite;
  let server: WireServer;
  let sql: postgres.Sql;

  beforeAll(async () => {
    // What a new Supabase project has: the platform schemas, no migrations.
    db = await openDatabase();
    await loadPlatform(db, join(ROOT_DIR, 'sql/platform'));
    await applySessionDefaults(db);
    server = new WireServer({ db, port: 0, sessionDefaultsSql: SESSION_DEFAULTS_SQL });
    await server.start();
    sql = postgres(server.url, { max: 1, onnotice: () => undefined });
  });

  afterAll(async () => {
    await sql?.end({ timeout: 1 });
    await server?.stop();
    await db?.close();
  });

  it('applies every migration, then has nothing left to apply', async () => {
    const files = migrationFiles(join(ROOT_DIR, 'supabase/migrations'));
    expect(files.length).toBeGreaterThan(0);

    const first = await pushMigrations(server.url);
    expect(first.code, `supabase db push failed:\n${first.stderr}${first.stdout}`).toBe(0);

    const rows = await sql<{ version: string; name: string }[]>`
      select version, name from supabase_migrations.schema_migrations order by version`;
    expect(rows.map((row) => `${row.version}_${row.name}`)).toEqual(files.map((file) => `${file.version}_${file.name}`));

    const second = await pushMigrations(server.url);
    expect(second.code, `second supabase db push failed:\n${second.stderr}${second.stdout}`).toBe(0);
    const output = `${second.stdout}\n${second.stderr}`;
    expect(output).toMatch(/up to date/i);
    expect(output).not.toMatch(/Applying migration/i);
    const after = await sql<{ count: number }[]>`select count(*)::int as count from supabase_migrations.schema_migrations`;
    expect(after[0].count).toBe(files.length);
  });
});
