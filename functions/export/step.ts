/**
 * One step of a data export, within a budget (rows, bytes of JSON, and
 * milliseconds: edge functions get about 2 s of CPU a request):
 *
 * 1. private.claim_export_step: the export with a 2-minute lease, or nothing
 *    to do (another worker holds it, or it is over);
 * 2. while the budget lasts, the cursor's table is read page by page with
 *    private.export_rows (the org comes from the export, never from us), and
 *    what this step read of it is written as JSON and CSV under the
 *    export's prefix: the whole table as `<table>.json` / `.csv` when it fits
 *    in the step it started in, otherwise as numbered parts
 *    (`<table>.part-0001.json`, ...), so no step ever holds more than its
 *    budget of rows; then the next table;
 * 3. private.record_export_progress stores the cursor (table, last key, part,
 *    files so far) and the percent, releases the lease and wakes the next
 *    step through pg_net;
 * 4. once every table is written (cursor table null), the next step
 *    packages (package.ts) and finishes the export.
 *
 * A step that dies leaves the cursor where the last recorded step put it;
 * the retry (after the lease, woken by pg_cron) rewrites the same file names
 * from the same key, so nothing is duplicated, and files a dead step wrote
 * beyond that are removed when packaging.
 */
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { BrokenExportError, cursorSchema, type ExportCursor, type ExportFile } from './cursor.ts';
import { type ExportRow, toCsv, toJson } from './encode.ts';
import { packageExport } from './package.ts';
import { claimStep, exportRows, recordProgress } from './queries.ts';
import type { ExportStore } from './store.ts';

export interface ExportBudget {
  /** Most rows read in one step. */
  rows: number;
  /** Rows asked for per export_rows call (at most 5000, the SQL's limit). */
  pageRows: number;
  /** Most bytes of JSON held before the step stops reading. */
  bytes: number;
  /** No new page is read after this many milliseconds. */
  ms: number;
  /** The finished export is also zipped when its files total at most this many bytes. */
  zipMaxBytes: number;
}

export const DEFAULT_EXPORT_BUDGET: ExportBudget = {
  rows: 5000,
  pageRows: 1000,
  bytes: 8 * 1024 * 1024,
  ms: 1500,
  zipMaxBytes: 8 * 1024 * 1024,
};

export type StepResult =
  | { status: 'skipped' }
  | { status: 'running'; progress: number; table: string | null; files_written: string[] }
  | { status: 'ready'; files: number; zipped: boolean }
  | { status: 'failed'; error: string };

const encoder = new TextEncoder();

function partName(table: string, part: number): string {
  return `${table}.part-${String(part).padStart(4, '0')}`;
}

/** Tables done over tables in the list, up to 95 (packaging is the rest). */
function percentDone(tables: string[], table: string | null): number {
  if (table === null) return 95;
  const index = Math.max(0, tables.indexOf(table));
  return Math.floor((95 * index) / tables.length);
}

export async function runExportStep(
  deps: { sql: Sql; store: ExportStore; now?: () => Date },
  exportId: string,
  budget: ExportBudget,
): Promise<StepResult> {
  const started = performance.now();
  const claimed = await asServiceRole(deps.sql, (tx) => claimStep(tx, exportId));
  if (!claimed) return { status: 'skipped' };
  const parsed = cursorSchema.safeParse(claimed.cursor);
  if (!parsed.success) throw new BrokenExportError('the export\'s cursor cannot be read');
  const cursor: ExportCursor = parsed.data;
  if (cursor.table !== null && !claimed.tables.includes(cursor.table)) {
    throw new BrokenExportError(`the cursor names ${cursor.table}, not a table of this export`);
  }

  if (cursor.table === null) {
    const packaged = await packageExport({ sql: deps.sql, store: deps.store, now: deps.now }, claimed, cursor.files, budget);
    return { status: 'ready', files: packaged.files, zipped: packaged.zipped };
  }

  const outOfTime = () => performance.now() - started >= budget.ms;
  let rowsLeft = budget.rows;
  const written: string[] = [];
  const files: ExportFile[] = [...cursor.files];
  let { table, after, part } = cursor;

  while (table !== null && rowsLeft > 0 && !outOfTime()) {
    const rows: ExportRow[] = [];
    let bytes = 0;
    let tableDone = false;
    while (rowsLeft > 0 && bytes < budget.bytes && !outOfTime()) {
      const asked = Math.min(budget.pageRows, rowsLeft, 5000);
      const current = table;
      const page = await asServiceRole(deps.sql, (tx) => exportRows(tx, claimed.id, current, after, asked));
      for (const row of page) {
        rows.push(row.row_data);
        bytes += JSON.stringify(row.row_data).length;
      }
      rowsLeft -= page.length;
      if (page.length > 0) after = page[page.length - 1].row_key;
      if (page.length < asked) {
        tableDone = true;
        break;
      }
    }
    // A step that ran out of budget before reading anything of this table writes nothing for it.
    if (rows.length === 0 && !tableDone) break;
    // A table that ended exactly at the last part's end has nothing left to write.
    if (!(rows.length === 0 && part > 0)) {
      const base = tableDone && part === 0 ? table : partName(table, ++part);
      const json = encoder.encode(toJson(rows));
      const csv = encoder.encode(toCsv(rows));
      await deps.store.upload(`${claimed.storage_prefix}${base}.json`, json, 'application/json');
      await deps.store.upload(`${claimed.storage_prefix}${base}.csv`, csv, 'text/csv');
      files.push({ name: `${base}.json`, table, rows: rows.length, bytes: json.byteLength });
      files.push({ name: `${base}.csv`, table, rows: rows.length, bytes: csv.byteLength });
      written.push(`${base}.json`, `${base}.csv`);
    }
    if (!tableDone) break;
    table = claimed.tables[claimed.tables.indexOf(table) + 1] ?? null;
    after = null;
    part = 0;
  }

  const next: ExportCursor = { table, after, part, files };
  const progress = percentDone(claimed.tables, table);
  await asServiceRole(deps.sql, (tx) => recordProgress(tx, claimed.id, next, progress));
  return { status: 'running', progress, table, files_written: written };
}
