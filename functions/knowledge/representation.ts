/**
 * What the documents API shows of a document (list, read, retry and the
 * upload's 202): what the file is, where it sits and how its ingestion went;
 * never ingestion's bookkeeping (run, cursor, attempts, stalls), the content
 * hash a run read, or the Storage object's path, which a key cannot use.
 * `progress` is the percent of the file ingested (100 once ready);
 * `ingested_at` when a run last made it ready; `embedding_model` and `stale`
 * tell documents to re-embed after a change of provider.
 */
import type { TransactionSql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';

export interface DocumentRow {
  id: string;
  org_id: string;
  name: string;
  mime_type: string;
  size_bytes: string;
  checksum_sha256: string | null;
  status: string;
  progress: number;
  failure_reason: string | null;
  page_count: number | null;
  chunk_count: number;
  collection_id: string | null;
  project_id: string | null;
  batch_id: string | null;
  created_at: Date;
  updated_at: Date;
  ingested_at: Date | null;
  embedding_model: string | null;
  /** created_at to the microsecond (UTC), for the list's cursor. */
  created_at_exact: string;
}

/** The select list for DocumentRow, over a document aliased `d`. */
export function documentColumns(tx: TransactionSql) {
  return tx`
    d.id, d.org_id, d.name, d.mime_type, d.size_bytes, d.checksum_sha256, d.status, d.progress, d.failure_reason,
    d.page_count, d.chunk_count, d.collection_id, d.project_id, d.batch_id, d.created_at, d.updated_at, d.ingested_at,
    d.embedding_model, to_char(d.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as created_at_exact`;
}

/**
 * `embedding_model`: the model that embedded the document's chunks (null:
 * unknown, published before models were recorded, or no chunks); `stale`:
 * isStale for the deployment's `currentModel`.
 */
export function toApiDocument(row: DocumentRow, currentModel: string) {
  return {
    object: 'document',
    id: row.id,
    org_id: row.org_id,
    name: row.name,
    mime_type: row.mime_type,
    size_bytes: Number(row.size_bytes),
    checksum_sha256: row.checksum_sha256,
    status: row.status,
    progress: row.progress,
    failure_reason: row.failure_reason,
    page_count: row.page_count,
    chunk_count: row.chunk_count,
    collection_id: row.collection_id,
    project_id: row.project_id,
    batch_id: row.batch_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    ingested_at: row.ingested_at === null ? null : row.ingested_at.toISOString(),
    embedding_model: row.embedding_model,
    stale: isStale(row, currentModel),
  };
}

export function isStale(row: Pick<DocumentRow, 'status' | 'embedding_model'>, currentModel: string): boolean {
  return row.status === 'ready' && row.embedding_model !== null && row.embedding_model !== currentModel;
}

export const documentNotFound = () => new HttpError(404, 'not_found', 'The document was not found.');
