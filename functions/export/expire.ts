/**
 * Removing the files of expired exports (pg_cron hourly through pg_net:
 * private.request_export_expiry → POST /export/expire), as the org storage
 * cleanup removes a deleted org's files: the database lists them
 * (private.exports_due_for_expiry: ready and past expires_at, or failed 7
 * days ago; private.export_expiry_objects: 1,000 objects at a time), the
 * Storage API removes them (so their bytes go, not only their rows), and
 * private.finish_export_expiry marks the export expired (expired_at) once
 * none is left, or says how many are. Bounded by a time budget and 100
 * exports a pass; what is left is taken by the next pass. Running it twice
 * changes nothing: a marked export is no longer due.
 */
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import { type ListedObject, removeListedObjects } from '../_shared/storage-removal.ts';
import type { ExportStore } from './store.ts';

const PAGE = 1000;
export const EXPIRY_MAX_EXPORTS = 100;

export interface ExpiredExport {
  export_id: string;
  files_removed: number;
  /** Objects still under the export's prefix (0: marked expired). */
  files_remaining: number;
}

export interface ExpirySummary {
  exports: ExpiredExport[];
  /** Exports of this pass's listing still due (the next pass takes them); more may wait beyond its 100. */
  pending: number;
}

type Log = (message: string, error: unknown) => void;
const defaultLog: Log = (message, cause) => console.error(message, cause);

async function expireExport(
  deps: { sql: Sql; store: ExportStore; log?: Log },
  exportId: string,
  deadline: number,
): Promise<ExpiredExport | null> {
  let removed = 0;
  try {
    await removeListedObjects(
      () =>
        asServiceRole(deps.sql, (tx) =>
          tx<ListedObject[]>`select bucket_id, name from private.export_expiry_objects(${exportId}::uuid, ${PAGE})`
        ),
      // Always the exports bucket.
      (_bucket, names) => deps.store.remove(names),
      deadline,
      (round) => (removed += round),
    );
  } catch (error) {
    // Gone meanwhile (its org was deleted: that cleanup takes its files).
    if (isPostgresError(error) && error.code === 'P0002') return null;
    (deps.log ?? defaultLog)(`removing the files of export ${exportId} failed`, error);
  }
  try {
    const [{ remaining }] = await asServiceRole(deps.sql, (tx) =>
      tx<{ remaining: number }[]>`select private.finish_export_expiry(${exportId}::uuid) as remaining`
    );
    return { export_id: exportId, files_removed: removed, files_remaining: remaining };
  } catch (error) {
    if (isPostgresError(error) && error.code === 'P0002') return null;
    throw error;
  }
}

export async function expireExports(
  deps: { sql: Sql; store: ExportStore; log?: Log },
  budgetMs: number,
): Promise<ExpirySummary> {
  const deadline = performance.now() + budgetMs;
  const due = await asServiceRole(deps.sql, (tx) =>
    tx<{ export_id: string }[]>`select export_id from private.exports_due_for_expiry(${EXPIRY_MAX_EXPORTS})`
  );
  const exports: ExpiredExport[] = [];
  let done = 0;
  for (const { export_id: exportId } of due) {
    if (performance.now() >= deadline) break;
    const result = await expireExport(deps, exportId, deadline);
    // Gone meanwhile (null) or no file left: no longer due.
    if (!result || result.files_remaining === 0) done += 1;
    if (result) exports.push(result);
  }
  return { exports, pending: due.length - done };
}
