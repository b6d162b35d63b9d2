/**
 * The SQL of an ingestion step. Every call runs as service_role, the only
 * role the step functions are granted to, in a short transaction: nothing is
 * held open across a download or an embeddings request.
 */
import { asServiceRole, type Sql, type TransactionSql } from '../_shared/db.ts';
import { KNOWLEDGE_BUCKET } from './store.ts';

export interface StepStart {
  org_id: string;
  storage_path: string;
  mime_type: string;
  name: string;
  run_id: string | null;
  cursor: number;
  next_chunk_index: number;
  status: 'uploading' | 'queued' | 'processing' | 'ready' | 'failed';
  /** From the Storage object's metadata; null when there is no object. */
  object_size: number | null;
  /** The SHA-256 the uploader registered the file with, if any. */
  checksum_sha256: string | null;
}

export interface StagedChunk {
  chunk_index: number;
  page_start: number;
  page_end: number;
  content: string;
  token_count: number;
  /** pgvector text form, `[...]`. */
  embedding: string;
}

/** Starts a run for a queued document or resumes the current one; null for an unknown document. */
export async function beginStep(sql: Sql, documentId: string): Promise<StepStart | null> {
  return await asServiceRole(sql, async (tx) => {
    const [row] = await tx<Omit<StepStart, 'object_size' | 'checksum_sha256'>[]>`
      select org_id, storage_path, mime_type, name, run_id, cursor, next_chunk_index, status
      from private.begin_ingest_step(${documentId}::uuid)`;
    if (!row) return null;
    // The size is checked before any byte is downloaded.
    const [file] = await tx<{ checksum_sha256: string | null; stored: boolean; size: string | null }[]>`
      select d.checksum_sha256, o.id is not null as stored, o.metadata ->> 'size' as size
      from public.documents d
      left join storage.objects o on o.bucket_id = ${KNOWLEDGE_BUCKET} and o.name = d.storage_path
      where d.id = ${documentId}`;
    return { ...row, object_size: file?.stored ? Number(file.size ?? 0) : null, checksum_sha256: file?.checksum_sha256 ?? null };
  });
}

export interface SaveStep {
  documentId: string;
  runId: string;
  /** The cursor the step started from: a step whose document has moved on since is stale. */
  fromCursor: number;
  chunks: StagedChunk[];
  nextCursor: number;
  progress: number;
  pageCount: number;
  /** The last step also swaps the chunks in; otherwise the next step is requested through pg_net. */
  last: boolean;
}

export type SaveOutcome =
  | { kind: 'stale' }
  | { kind: 'continued' }
  | { kind: 'ready'; chunks: number }
  | { kind: 'failed' };

/**
 * Records a step and, in the same transaction, either finishes the run or
 * queues the next step: the request to continue exists exactly when the
 * step's work committed. The row lock and the cursor check make a step
 * delivered twice (or run twice at once) save once; the other copy is stale.
 */
export async function saveStep(sql: Sql, step: SaveStep): Promise<SaveOutcome> {
  return await asServiceRole(sql, async (tx): Promise<SaveOutcome> => {
    const [current] = await tx<{ ingest_run: string | null; ingest_cursor: number; status: string }[]>`
      select ingest_run, ingest_cursor, status from public.documents where id = ${step.documentId} for update`;
    if (
      !current || current.status !== 'processing' || current.ingest_run !== step.runId ||
      current.ingest_cursor !== step.fromCursor
    ) {
      return { kind: 'stale' };
    }
    const [{ saved }] = await tx<{ saved: boolean }[]>`
      select private.save_ingest_step(${step.documentId}::uuid, ${step.runId}::uuid, ${tx.json(toJson(step.chunks))},
        ${step.nextCursor}::integer, ${step.progress}::integer, ${step.pageCount}::integer) as saved`;
    if (!saved) return { kind: 'stale' };
    if (!step.last) {
      await tx`select private.request_ingest(${step.documentId}::uuid)`;
      return { kind: 'continued' };
    }
    const [{ chunks }] = await tx<{ chunks: number | null }[]>`
      select private.finish_ingest(${step.documentId}::uuid, ${step.runId}::uuid) as chunks`;
    if (chunks === null) return { kind: 'stale' };
    return chunks === 0 ? { kind: 'failed' } : { kind: 'ready', chunks };
  });
}

/** Keeps the SHA-256 of the file the run read; false when the run is no longer current. */
export async function recordContent(sql: Sql, documentId: string, runId: string, sha256: string): Promise<boolean> {
  return await asServiceRole(sql, async (tx) => {
    const [{ recorded }] = await tx<{ recorded: boolean }[]>`
      select private.record_ingested_content(${documentId}::uuid, ${runId}::uuid, ${sha256}) as recorded`;
    return recorded;
  });
}

/** Ends the run as failed with a reason for the uploader; false when the run is no longer current. */
export async function failRun(sql: Sql, documentId: string, runId: string, reason: string): Promise<boolean> {
  return await asServiceRole(sql, async (tx) => {
    const [{ failed }] = await tx<{ failed: boolean }[]>`
      select private.fail_ingest(${documentId}::uuid, ${runId}::uuid, ${reason}) as failed`;
    return failed;
  });
}

export async function recordEmbeddingUsage(
  sql: Sql,
  usage: { orgId: string; documentId: string; model: string; tokens: number },
): Promise<void> {
  // A document deleted while its step embedded is no longer there to point at
  // (usage_events.document_id is a foreign key); the org pays all the same.
  await asServiceRole(sql, (tx) =>
    tx`select private.record_usage(${usage.orgId}::uuid, 'embedding', ${usage.model}, ${usage.tokens}::integer, 0,
      (select d.id from public.documents d where d.id = ${usage.documentId}::uuid), null)`
  );
}

/** The reason stored with a failed document. */
export async function failureReason(sql: Sql, documentId: string): Promise<string | null> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ failure_reason: string | null }[]>`select failure_reason from public.documents where id = ${documentId}`
  );
  return row?.failure_reason ?? null;
}

// postgres.js's json() wants its own JSON type; the chunks are plain JSON already.
function toJson(chunks: StagedChunk[]): Parameters<TransactionSql['json']>[0] {
  return chunks as unknown as Parameters<TransactionSql['json']>[0];
}
