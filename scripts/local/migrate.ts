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
    advice = 'Nothing of it was applied; fix the file and start again.',
  ) {
    super(`Migration ${file} failed: ${detail}. ${advice}`);
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

/**
 * Whether a file's only statement is `create [unique] index concurrently …`. Postgres refuses that statement
 * inside a transaction block, so the Supabase CLI runs such a file on its own, outside the per-file
 * transaction (and refuses one that mixes it with other statements); big tables' indexes are shipped that way
 * so the build does not block their writes. Strict: after comments, one statement that starts so and no
 * other semicolon. A misjudged file fails loudly and changes nothing: Postgres refuses the statement inside
 * a transaction, and also sent with others in one query (their implicit transaction).
 */
export function isConcurrentIndexFile(text: string): boolean {
  const code = text
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .replace(/--[^\n]*/g, ' ')
    .trim()
    .replace(/;\s*$/, '');
  return /^create\s+(unique\s+)?index\s+concurrently\s/i.test(code) && !code.includes(';');
}

/** Indexes a failed concurrent build left behind: Postgres keeps them, invalid, and `if not exists` skips them. */
async function invalidIndexes(db: PGlite): Promise<string[]> {
  const result = await db.query<{ name: string }>(
    'select indexrelid::regclass::text as name from pg_catalog.pg_index where not indisvalid order by 1',
  );
  return result.rows.map((row) => row.name);
}

/**
 * A concurrent index build, run as the CLI runs it: by itself, outside a transaction, then recorded. Not
 * atomic: a build that fails leaves an invalid index, reported here (also when an earlier run left it).
 */
async function runConcurrentIndexFile(db: PGlite, label: string, text: string, record: (tx: PGlite) => Promise<void>): Promise<void> {
  try {
    await db.exec(text);
  } catch (error) {
    throw new MigrationError(label, describeError(error, text), 'An invalid index may be left: drop it, fix the file and start again.');
  }
  const invalid = await invalidIndexes(db);
  if (invalid.length > 0) {
    throw new MigrationError(label, `invalid index ${invalid.join(', ')}`, 'Drop it and start again.');
  }
  await record(db);
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
    const record = async (tx: PGlite): Promise<void> => {
      await tx.query('insert into supabase_migrations.schema_migrations (version, name, statements) values ($1, $2, $3)', [
        file.version,
        file.name,
        [text],
      ]);
    };
    if (isConcurrentIndexFile(text)) await runConcurrentIndexFile(db, file.path, text, record);
    else await runFile(db, file.path, text, record);
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
