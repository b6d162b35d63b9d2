import { asServiceRole, type Sql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import { BrokenExportError } from './cursor.ts';
import { exportExists, finishExport } from './queries.ts';
import { type ExportBudget, runExportStep, type StepResult } from './step.ts';
import type { ExportStore } from './store.ts';

/** Seconds pg_net's retry (pg_cron's resume_exports, once the lease ran out) is about to wait anyway. */
const RETRY_AFTER_SECONDS = 120;

/**
 * Runs one step and decides what a failure means. An export that is gone
 * (its org deleted while the step ran, so Storage refused the step's files)
 * is not found, as one deleted before. The export's own fault (a cursor or
 * file it cannot go on from; a table or key the SQL refuses, 22023) fails
 * it with the reason, since retrying would fail the same way.
 * Anything else (Storage or the database unreachable) is transient: 503,
 * and the step is taken again when its lease runs out (pg_cron wakes
 * waiting exports every minute).
 */
export async function exportStep(
  deps: { sql: Sql; store: ExportStore; log?: (message: string, error: unknown) => void },
  exportId: string,
  budget: ExportBudget,
): Promise<StepResult> {
  try {
    return await runExportStep(deps, exportId, budget);
  } catch (error) {
    // Gone, or deleted with its org while the step ran: Storage refuses files under a deleted org's prefix
    // (20261123005700), and there is nothing to fail. When the check itself fails, the failure is handled below.
    const gone = (isPostgresError(error) && error.code === 'P0002') ||
      !(await asServiceRole(deps.sql, (tx) => exportExists(tx, exportId)).catch(() => true));
    if (gone) throw new HttpError(404, 'not_found', 'The export was not found.');
    if (error instanceof BrokenExportError || (isPostgresError(error) && error.code === '22023')) {
      const reason = error.message.slice(0, 1000);
      await asServiceRole(deps.sql, (tx) => finishExport(tx, exportId, false, reason));
      return { status: 'failed', error: reason };
    }
    (deps.log ?? ((message, cause) => console.error(message, cause)))(`export step of ${exportId} failed`, error);
    throw new HttpError(503, 'export_unavailable', 'The export hit a temporary failure; it will be resumed.', {
      'retry-after': String(RETRY_AFTER_SECONDS),
    });
  }
}
