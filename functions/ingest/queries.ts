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
  /** The embedding model of the chunks the run staged (recorded by its first save); null before that. */
  ingest_model: string | null;
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
    const [row] = await tx<Omit<StepStart, 'object_size' | 'checksum_sha256' | 'ingest_model'>[]>`
      select org_id, storage_path, mime_type, name, run_id, cursor, next_chunk_index, status
      from private.begin_ingest_step(${documentId}::uuid)`;
    if (!row) return null;
    // The size is checked before any byte is downloaded.
    const [file] = await tx<
      { checksum_sha256: string | null; ingest_model: string | null; stored: boolean; size: string | null }[]
    >`
      select d.checksum_sha256, d.ingest_model, o.id is not null as stored, o.metadata ->> 'size' as size
      from public.documents d
      left join storage.objects o on o.bucket_id = ${KNOWLEDGE_BUCKET} and o.name = d.storage_path
      where d.id = ${documentId}`;
    return {
      ...row,
      object_size: file?.stored ? Number(file.size ?? 0) : null,
      checksum_sha256: file?.checksum_sha256 ?? null,
      ingest_model: file?.ingest_model ?? null,
    };
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
  /** What embedding the chunks cost, metered with the save (see saveStep); its model is the chunks' (the run's). */
  usage: EmbeddingUsage;
}

export interface EmbeddingUsage {
  orgId: string;
  model: string;
  tokens: number;
}

export type SaveOutcome =
  | { kind: 'stale' }
  | { kind: 'continued' }
  | { kind: 'ready'; chunks: number }
  | { kind: 'failed' };

/**
 * Records a step and, in the same transaction, meters its embedding tokens and
 * either finishes the run or queues the next step: the request to continue
 * exists exactly when the step's work committed. The row lock and the cursor
 * check make a step delivered twice (or run twice at once, the sweeper waking
 * a run whose step was still embedding) save once; the other copy is stale
 * and meters nothing, since the copy that saved metered the same pages. A
 * step that lost for any other reason (its document deleted or being deleted,
 * its run failed or replaced by a new upload) still meters: the tokens were
 * spent for the org and no other copy metered them.
 */
export async function saveStep(sql: Sql, step: SaveStep): Promise<SaveOutcome> {
  return await asServiceRole(sql, async (tx): Promise<SaveOutcome> => {
    // Publishing the chunks key-shares the document's collection: taken before the document row, as a
    // collection's delete takes them (the collection, then its documents), or the two deadlock (20261123015700).
    if (step.last) await tx`select private.share_document_collection(${step.documentId}::uuid)`;
    const [current] = await tx<DocumentState[]>`
      select ingest_run, ingest_cursor, status, deletion_started_at is not null as marked
      from public.documents where id = ${step.documentId} for update`;
    if (
      !current || current.status !== 'processing' || current.ingest_run !== step.runId ||
      current.ingest_cursor !== step.fromCursor || current.marked
    ) {
      if (!savedByAnotherCopy(current, step)) await meter(tx, step.usage, step.documentId);
      return { kind: 'stale' };
    }
    const outcome = await saveAndGoOn(tx, step);
    // Last in the transaction: metering locks the org's analytics rows (its usage hour, its stale day), which
    // other saves and chat turns of the org also write; taken before the chunk swap, they were held through it.
    await meter(tx, step.usage, step.documentId);
    return outcome;
  });
}

/** The step's chunks saved, then the next step requested or the run finished (the chunks swapped in). */
async function saveAndGoOn(tx: TransactionSql, step: SaveStep): Promise<SaveOutcome> {
  const [{ saved }] = await tx<{ saved: boolean }[]>`
    select private.save_ingest_step(${step.documentId}::uuid, ${step.runId}::uuid, ${tx.json(toJson(step.chunks))},
      ${step.nextCursor}::integer, ${step.progress}::integer, ${step.pageCount}::integer, ${step.usage.model}) as saved`;
  if (!saved) return { kind: 'stale' };
  if (!step.last) {
    await tx`select private.request_ingest(${step.documentId}::uuid)`;
    return { kind: 'continued' };
  }
  const [{ chunks }] = await tx<{ chunks: number | null }[]>`
    select private.finish_ingest(${step.documentId}::uuid, ${step.runId}::uuid) as chunks`;
  if (chunks === null) return { kind: 'stale' };
  return chunks === 0 ? { kind: 'failed' } : { kind: 'ready', chunks };
}

interface DocumentState {
  ingest_run: string | null;
  ingest_cursor: number;
  status: string;
  marked: boolean;
}

/**
 * Whether another copy of this step saved its pages (and metered them): the
 * run moved past the step's cursor, or, for the last step, the run finished.
 */
function savedByAnotherCopy(current: DocumentState | undefined, step: SaveStep): boolean {
  if (!current) return false;
  if (current.ingest_run === step.runId) return current.ingest_cursor !== step.fromCursor;
  return step.last && current.ingest_run === null && current.status === 'ready';
}

/**
 * Meters embedding tokens. A document deleted meanwhile is no longer there to
 * point at (usage_events.document_id is a foreign key); the org pays all the same.
 */
async function meter(tx: TransactionSql, usage: EmbeddingUsage, documentId: string): Promise<void> {
  if (usage.tokens <= 0) return;
  await tx`select private.record_usage(${usage.orgId}::uuid, 'embedding', ${usage.model}, ${usage.tokens}::integer, 0,
    (select d.id from public.documents d where d.id = ${documentId}::uuid), null)`;
}

/**
 * Starts the run again from its first page under a new run id, its staged chunks discarded: they were embedded
 * by another model than the step's provider's. False when the run is no longer current.
 */
export async function restartRun(sql: Sql, documentId: string, runId: string): Promise<boolean> {
  return await asServiceRole(sql, async (tx) => {
    const [{ restarted }] = await tx<{ restarted: boolean }[]>`
      select private.restart_ingest_run(${documentId}::uuid, ${runId}::uuid) as restarted`;
    return restarted;
  });
}

/** Restarts the run's idle clock (the sweeper's 2 minutes); false when the run is no longer current. */
export async function heartbeat(sql: Sql, documentId: string, runId: string): Promise<boolean> {
  return await asServiceRole(sql, async (tx) => {
    const [{ current }] = await tx<{ current: boolean }[]>`
      select private.ingest_heartbeat(${documentId}::uuid, ${runId}::uuid) as current`;
    return current;
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

/**
 * Defers the run after the provider throttled its step: the sweeper wakes it at its cursor after the seconds
 * returned (what SQL allowed of those asked), without counting a stall; null when the run is no longer current.
 */
export async function deferRun(sql: Sql, documentId: string, runId: string, seconds: number): Promise<number | null> {
  return await asServiceRole(sql, async (tx) => {
    const [{ wait }] = await tx<{ wait: number | null }[]>`
      select private.defer_ingest(${documentId}::uuid, ${runId}::uuid, ${seconds}::integer) as wait`;
    return wait;
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

/**
 * Meters tokens spent outside a save: an embeddings call that failed part-way,
 * or a save that failed (no copy saved those pages, so none metered them).
 */
export async function recordEmbeddingUsage(sql: Sql, usage: EmbeddingUsage & { documentId: string }): Promise<void> {
  await asServiceRole(sql, (tx) => meter(tx, usage, usage.documentId));
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
