import type { Sql } from './db.ts';
import { HttpError } from './errors.ts';

/**
 * The newest migration these functions rely on, kept equal to the newest file
 * in supabase/migrations (tests/unit/schema-version.test.ts). Functions
 * deployed ahead of the `supabase db push` that brings it (README: Deploy)
 * would call SQL that is not there yet: a chat turn streamed its answer and
 * then could not store or meter it, every Telegram update failed. They answer
 * 503 with Retry-After instead, before doing anything, until it lands.
 */
export const REQUIRED_MIGRATION = '20261123013800';

/** How long a missing migration is believed missing before the database is asked again. */
const RECHECK_MS = 10_000;
const RETRY_AFTER_SECONDS = 30;

const applied = new Set<string>();
const missingSince = new Map<string, number>();

/**
 * Resolves once `version` is in supabase_migrations.schema_migrations (asked
 * once an isolate, then remembered); otherwise throws a 503. A database whose
 * migrations were not applied by the Supabase CLI (no such table) is not
 * checked.
 */
export async function requireMigration(sql: Sql, version: string = REQUIRED_MIGRATION): Promise<void> {
  if (applied.has(version)) return;
  const missing = missingSince.get(version);
  if (missing === undefined || Date.now() - missing >= RECHECK_MS) {
    const [row] = await sql<{ applied: boolean }[]>`
      select to_regclass('supabase_migrations.schema_migrations') is null
        or exists (select 1 from supabase_migrations.schema_migrations m where m.version = ${version}) as applied`;
    if (row.applied) {
      applied.add(version);
      missingSince.delete(version);
      return;
    }
    missingSince.set(version, Date.now());
  }
  throw new HttpError(
    503,
    'schema_not_ready',
    `The database is not migrated to this release yet (${version}); try again shortly.`,
    { 'retry-after': String(RETRY_AFTER_SECONDS) },
  );
}
