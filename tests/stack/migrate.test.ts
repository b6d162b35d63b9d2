import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPlatform, migrate, MigrationError } from '../../scripts/local/migrate.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { applySessionDefaults, openDatabase } from '../../scripts/local/pglite.ts';

let db: PGlite;
let dir: string;
const migrations = () => join(dir, 'migrations');
const seed = () => join(dir, 'seed.sql');

beforeAll(async () => {
  db = await openDatabase();
  await loadPlatform(db, join(ROOT_DIR, 'sql/platform'));
  await applySessionDefaults(db);
  dir = mkdtempSync(join(tmpdir(), 'migrate-test-'));
  writeFileSync(seed(), "insert into public.things (name) values ('seeded');");
});

afterAll(async () => {
  await db.close();
  rmSync(dir, { recursive: true, force: true });
});

function write(file: string, sql: string): void {
  mkdirSync(migrations(), { recursive: true });
  writeFileSync(join(migrations(), file), sql);
}

describe('migration runner', () => {
  it('applies migrations in order, records them as the CLI does, then seeds a fresh database', async () => {
    write('20260101000000_things.sql', 'create table public.things (id int generated always as identity, name text not null);');
    write('20260102000000_more.sql', 'alter table public.things add column note text;');
    write('README.md', 'not a migration');
    const result = await migrate(db, { migrationsDir: migrations(), seedFile: seed() });
    expect(result).toEqual({ applied: ['20260101000000', '20260102000000'], seeded: true });
    const recorded = await db.query<{ version: string; name: string; statements: string[] }>(
      'select version, name, statements from supabase_migrations.schema_migrations order by version',
    );
    expect(recorded.rows.map((row) => [row.version, row.name])).toEqual([
      ['20260101000000', 'things'],
      ['20260102000000', 'more'],
    ]);
    expect(recorded.rows[1].statements).toEqual(['alter table public.things add column note text;']);
    expect((await db.query('select name from public.things')).rows).toEqual([{ name: 'seeded' }]);
  });

  it('applies only new migrations on the next start, and does not seed again', async () => {
    write('20260103000000_index.sql', 'create index things_name on public.things (name);');
    const result = await migrate(db, { migrationsDir: migrations(), seedFile: seed() });
    expect(result).toEqual({ applied: ['20260103000000'], seeded: false });
    expect((await db.query('select count(*)::int as n from public.things')).rows).toEqual([{ n: 1 }]);
  });

  it('stops at a failing migration with its file name and the database error, applying nothing of it', async () => {
    write(
      '20260104000000_broken.sql',
      'create table public.half_done (id int);\nalter table public.things add column nope nonexistent_type;',
    );
    write('20260105000000_after.sql', 'create table public.after_broken (id int);');
    const failure = await migrate(db, { migrationsDir: migrations() }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MigrationError);
    expect((failure as Error).message).toContain('20260104000000_broken.sql');
    expect((failure as Error).message).toContain('type "nonexistent_type" does not exist');
    expect((failure as Error).message).toContain('line 2');
    const left = await db.query<{ half: string | null; after: string | null }>(
      "select to_regclass('public.half_done')::text as half, to_regclass('public.after_broken')::text as after",
    );
    expect(left.rows[0]).toEqual({ half: null, after: null });
    const versions = await db.query<{ version: string }>('select version from supabase_migrations.schema_migrations');
    expect(versions.rows.map((row) => row.version)).not.toContain('20260104000000');
  });
});
