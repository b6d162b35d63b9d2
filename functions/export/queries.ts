import type postgres from 'postgres';
import { z } from 'zod';
import type { TransactionSql } from '../_shared/db.ts';
import type { ExportRow } from './encode.ts';

/** The columns of public.data_exports shown to owners and used by the steps. */
export interface ExportRecord {
  id: string;
  org_id: string;
  requested_by: string | null;
  status: 'queued' | 'running' | 'ready' | 'failed';
  progress_percent: number;
  tables: string[];
  storage_prefix: string;
  error: string | null;
  steps: number;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
  expires_at: Date | null;
  /** When its files were removed after it expired (20261123004600); null while they are kept. */
  expired_at: Date | null;
}

export interface ClaimedExport extends ExportRecord {
  /** As stored; validated by the step (cursorSchema). */
  cursor: unknown;
}

const COLUMNS = 'id, org_id, requested_by, status, progress_percent, tables, storage_prefix, error, steps, created_at, updated_at, finished_at, expires_at, expired_at';

/** The next step of the export (a 2-minute lease), or null when another worker holds it or it is over. */
export async function claimStep(tx: TransactionSql, exportId: string): Promise<ClaimedExport | null> {
  const [claimed] = await tx.unsafe<ClaimedExport[]>(
    `select ${COLUMNS}, cursor from private.claim_export_step($1::uuid) where id is not null`,
    [exportId],
  );
  return claimed ?? null;
}

const rowSchema = z.object({ row_key: z.string(), row_data: z.record(z.string(), z.unknown()) });

/** Up to `maxRows` of the export's org's rows of `table` after `after`, in key order. */
export async function exportRows(
  tx: TransactionSql,
  exportId: string,
  table: string,
  after: string | null,
  maxRows: number,
): Promise<Array<{ row_key: string; row_data: ExportRow }>> {
  const rows = await tx`select row_key, row_data from private.export_rows(${exportId}::uuid, ${table}, ${after}, ${maxRows})`;
  return rows.map((row) => rowSchema.parse(row));
}

/** Whether the export is still there (it goes with its org). */
export async function exportExists(tx: TransactionSql, exportId: string): Promise<boolean> {
  const [{ found }] = await tx<{ found: boolean }[]>`
    select exists (select 1 from public.data_exports where id = ${exportId}::uuid) as found`;
  return found;
}

/** Stores the cursor and percent, releases the lease and (through pg_net) wakes the next step. */
export async function recordProgress(
  tx: TransactionSql,
  exportId: string,
  cursor: postgres.JSONValue,
  percent: number,
): Promise<void> {
  await tx`select 1 from private.record_export_progress(${exportId}::uuid, ${tx.json(cursor)}, ${percent})`;
}

/** Ends the export; a ready one announces `link` (signed, expiring) in its export.ready event. */
export async function finishExport(
  tx: TransactionSql,
  exportId: string,
  ok: boolean,
  error: string | null,
  link: { url: string; expiresAt: Date } | null = null,
): Promise<void> {
  await tx`select 1 from private.finish_export(${exportId}::uuid, ${ok}, ${error}, ${link?.url ?? null},
                                                ${link?.expiresAt.toISOString() ?? null}::timestamptz)`;
}

/** Queues an export as the caller (owners; 42501 otherwise, 23505 while another is in progress). */
export async function requestExport(tx: TransactionSql, orgId: string): Promise<ExportRecord> {
  const [created] = await tx.unsafe<ExportRecord[]>(`select ${COLUMNS} from public.request_data_export($1::uuid)`, [orgId]);
  return created;
}

/** The export as the caller sees it through RLS (owners of its org), or null. */
export async function visibleExport(tx: TransactionSql, exportId: string): Promise<ExportRecord | null> {
  const [found] = await tx.unsafe<ExportRecord[]>(`select ${COLUMNS} from public.data_exports where id = $1::uuid`, [exportId]);
  return found ?? null;
}
