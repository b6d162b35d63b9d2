import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConcurrentIndexFile, migrate, migrationFiles, MigrationError } from '../../scripts/local/migrate.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { openDatabase } from '../../scripts/local/pglite.ts';

/** Indexes on big tables ship as `create index concurrently` files, which the runner applies as the CLI does. */

let db: PGlite;
let dir: string;
const migrations = () => join(dir, 'migrations');

beforeAll(async () => {
  db = await openDatabase();
  dir = mkdtempSync(join(tmpdir(), 'migrate-concurrent-index-test-'));
  mkdirSync(migrations(), { recursive: true });
});

afterAll(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

function write(file: string, sql: string): void {
  writeFileSync(join(migrations(), file), sql);
}

async function indexState(name: string): Promise<{ valid: boolean; ready: boolean } | undefined> {
  const result = await db.query<{ valid: boolean; ready: boolean }>(
    `select i.indisvalid as valid, i.indisready as ready from pg_catalog.pg_index i
     where i.indexrelid = to_regclass($1)`,
    [name],
  );
  return result.rows[0];
}

describe('isConcurrentIndexFile', () => {
  it('accepts a file whose only statement is a concurrent index build, comments allowed', () => {
    expect(isConcurrentIndexFile('create index concurrently if not exists i on public.t (a);')).toBe(true);
    expect(isConcurrentIndexFile('-- why\n/* more */\nCREATE UNIQUE INDEX CONCURRENTLY i ON public.t (a)\n  where b;\n')).toBe(true);
  });

  it('refuses anything else', () => {
    expect(isConcurrentIndexFile('create index i on public.t (a);')).toBe(false);
    expect(isConcurrentIndexFile('create index concurrently i on public.t (a); create index concurrently j on public.t (b);')).toBe(false);
    expect(isConcurrentIndexFile('create table public.u (a int);\ncreate index concurrently i on public.u (a);')).toBe(false);
    expect(isConcurrentIndexFile('-- create index concurrently i on public.t (a);\ncreate index i on public.t (a);')).toBe(false);
    expect(isConcurrentIndexFile('')).toBe(false);
  });
});

describe('migration runner and concurrent index builds', () => {
  it('applies a concurrent index file outside a transaction: the index exists and is valid, and it is recorded', async () => {
    write('20270101000000_big.sql', 'create table public.cic_big (id int, name text);\ninsert into public.cic_big select g, g::text from generate_series(1, 5000) g;');
    write('20270101000100_big_name.sql', '-- why it is concurrent\ncreate index concurrently if not exists cic_big_name_idx on public.cic_big (name);\n');
    const result = await migrate(db, { migrationsDir: migrations() });
    expect(result.applied).toEqual(['20270101000000', '20270101000100']);
    expect(await indexState('public.cic_big_name_idx')).toEqual({ valid: true, ready: true });
    const recorded = await db.query<{ version: string; name: string }>(
      "select version, name from supabase_migrations.schema_migrations where version = '20270101000100'",
    );
    expect(recorded.rows).toEqual([{ version: '20270101000100', name: 'big_name' }]);
  });

  it('refuses a file that mixes a concurrent build with other statements, applying nothing of it', async () => {
    write(
      '20270101000200_mixed.sql',
      'create table public.cic_mixed (id int);\ncreate index concurrently cic_mixed_id_idx on public.cic_mixed (id);',
    );
    const failure = await migrate(db, { migrationsDir: migrations() }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MigrationError);
    expect((failure as Error).message).toContain('20270101000200_mixed.sql');
    expect((failure as Error).message).toMatch(/CREATE INDEX CONCURRENTLY cannot run inside a transaction block/);
    const left = await db.query<{ table: string | null }>("select to_regclass('public.cic_mixed')::text as table");
    expect(left.rows[0].table).toBeNull();
    const versions = await db.query<{ version: string }>('select version from supabase_migrations.schema_migrations');
    expect(versions.rows.map((row) => row.version)).not.toContain('20270101000200');
  });
});

describe('the project migrations', () => {
  /** Tables big enough that a plain index build, which blocks their writes until the file commits, is an outage. */
  const BIG_TABLES = ['audit_log', 'calls', 'webhook_deliveries', 'messages', 'document_chunks'];
  /** Migrations from this version on are held to it (earlier ones have landed and are never edited). */
  const FROM_VERSION = '20261123009100';
  const files = migrationFiles(join(ROOT_DIR, 'supabase/migrations')).map((file) => ({
    ...file,
    code: readFileSync(file.path, 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, ' ')
      .replace(/--[^\n]*/g, ' '),
  }));

  it('build concurrently only in a file of its own: one `create index concurrently if not exists`', () => {
    const mixed = files
      .filter((file) => /\bconcurrently\b/i.test(file.code))
      .filter((file) => !isConcurrentIndexFile(file.code) || !/^\s*create\s+(unique\s+)?index\s+concurrently\s+if\s+not\s+exists\s/i.test(file.code))
      .map((file) => `${file.version}_${file.name}`);
    expect(mixed).toEqual([]);
  });

  it('build no plain index on a big table', () => {
    const table = `(?:public\\.)?(?:${BIG_TABLES.join('|')})\\b`;
    const plainIndex = new RegExp(`create\\s+(?:unique\\s+)?index\\s+(?!concurrently\\b)[^;]*?\\bon\\s+(?:only\\s+)?${table}`, 'i');
    const constraintIndex = new RegExp(`alter\\s+table\\s+(?:only\\s+)?(?:if\\s+exists\\s+)?${table}[^;]*\\badd\\s+(?:constraint\\s+\\S+\\s+)?(?:unique|primary\\s+key|exclude)\\b`, 'i');
    const offending = files
      .filter((file) => file.version >= FROM_VERSION)
      .filter((file) => plainIndex.test(file.code) || constraintIndex.test(file.code))
      .map((file) => `${file.version}_${file.name}`);
    expect(offending).toEqual([]);
  });
});
