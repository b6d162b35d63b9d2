import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

/**
 * Applies the platform stand-ins (sql/platform), then supabase/migrations in
 * order, recording each in supabase_migrations.schema_migrations exactly as the
 * Supabase CLI does, so `supabase db push` and `supabase migration list` agree
 * with what ran here; then supabase/seed.sql on a fresh database.
 */

export interface MigrationFile {
  version: string;
  name: string;
  path: string;
}

export class MigrationError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`Migration ${file} failed: ${detail}. Nothing of it was applied; fix the file and start again.`);
  }
}

/** The CLI's rule: `<digits>_<name>.sql`; anything else in the folder is skipped, as the CLI does. */
const MIGRATION_FILE = /^(\d+)_(.*)\.sql$/;

export function migrationFiles(migrationsDir: string): MigrationFile[] {
  if (!existsSync(migrationsDir)) return [];
  return readdirSync(migrationsDir)
    .map((file) => ({ file, match: MIGRATION_FILE.exec(file) }))
    .filter((entry): entry is { file: string; match: RegExpExecArray } => entry.match !== null)
    .map(({ file, match }) => ({ version: match[1], name: match[2], path: join(migrationsDir, file) }))
    .sort((a, b) => a.version.localeCompare(b.version));
}

/** Line and column of a Postgres error position (1-based character offset) in `text`. */
function locate(text: string, position: number): string {
  const before = text.slice(0, Math.max(0, position - 1));
  const lines = before.split('\n');
  return `line ${lines.length}, column ${lines[lines.length - 1].length + 1}`;
}

function describeError(error: unknown, text: string): string {
  const pgError = error as { message?: string; position?: string | number; detail?: string; hint?: string };
  const parts = [pgError.message ?? String(error)];
  if (pgError.position) parts.push(`at ${locate(text, Number(pgError.position))}`);
  if (pgError.detail) parts.push(`(${pgError.detail})`);
  if (pgError.hint) parts.push(`hint: ${pgError.hint}`);
  return parts.join(' ');
}

async function runFile(db: PGlite, label: string, text: string, record?: (tx: PGlite) => Promise<void>): Promise<void> {
  try {
    await db.transaction(async (tx) => {
      await tx.exec(text);
      if (record) await record(tx as unknown as PGlite);
    });
  } catch (error) {
    throw new MigrationError(label, describeError(error, text));
  }
}

export async function isFreshDatabase(db: PGlite): Promise<boolean> {
  const result = await db.query<{ fresh: boolean }>(
    "select to_regnamespace('supabase_migrations') is null and to_regnamespace('auth') is null as fresh",
  );
  return result.rows[0].fresh;
}

/** Loads the local stand-ins for Supabase's platform schemas; only ever on a fresh database. */
export async function loadPlatform(db: PGlite, platformDir: string): Promise<void> {
  const files = readdirSync(platformDir)
    .filter((file) => file.endsWith('.sql'))
    .sort();
  for (const file of files) await runFile(db, join(platformDir, file), readFileSync(join(platformDir, file), 'utf8'));
}

const MIGRATION_TABLE = `
  create schema if not exists supabase_migrations;
  create table if not exists supabase_migrations.schema_migrations (
    version text not null primary key,
    statements text[],
    name text
  );
  create table if not exists supabase_migrations.seed_files (
    path text not null primary key,
    hash text not null
  );
`;

export async function appliedVersions(db: PGlite): Promise<Set<string>> {
  const result = await db.query<{ version: string }>('select version from supabase_migrations.schema_migrations');
  return new Set(result.rows.map((row) => row.version));
}

export interface MigrateResult {
  applied: string[];
  seeded: boolean;
}

export async function migrate(
  db: PGlite,
  options: { migrationsDir: string; seedFile?: string; log?: (line: string) => void },
): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const tableExisted =
    (await db.query<{ found: boolean }>("select to_regclass('supabase_migrations.schema_migrations') is not null as found"))
      .rows[0].found;
  await db.exec(MIGRATION_TABLE);
  const done = await appliedVersions(db);
  const applied: string[] = [];
  for (const file of migrationFiles(options.migrationsDir)) {
    if (done.has(file.version)) continue;
    const text = readFileSync(file.path, 'utf8');
    await runFile(db, file.path, text, async (tx) => {
      await tx.query('insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, $3)', [
        file.version,
        file.name,
        [text],
      ]);
    });
    log(`applied migration ${file.version}_${file.name}`);
    applied.push(file.version);
  }
  let seeded = false;
  if (!tableExisted && options.seedFile && existsSync(options.seedFile)) {
    const text = readFileSync(options.seedFile, 'utf8');
    await runFile(db, options.seedFile, text, async (tx) => {
      await tx.query(
        `insert into supabase_migrations.seed_files (path, hash)
         values ($1, encode(extensions.digest($2, 'sha256'), 'hex'))
         on conflict (path) do update set hash = excluded.hash`,
        ['supabase/seed.sql', text],
      );
    });
    log('applied supabase/seed.sql');
    seeded = true;
  }
  return { applied, seeded };
}
