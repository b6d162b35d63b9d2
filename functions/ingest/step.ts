/**
 * One resumable ingestion step: read the next pages of the file, chunk them,
 * embed the chunks, stage them, then either request the next step or swap
 * the staged chunks in, with the model that embedded them (one model a run).
 * The file's own problems fail the document with a reason; the embeddings
 * provider throttling (429, 5xx) defers the run;
 * anything else (Storage, the network, the database) leaves the run where it
 * is for a retry.
 */
import type { Sql } from '../_shared/db.ts';
import { type EmbeddingProvider, EmbeddingProviderError, toPgVector } from '../_shared/embeddings/index.ts';
import { embeddingQuotaRefusal, type QuotaRefusal } from '../_shared/embeddings/quota.ts';
import { chunkPages, CHUNK_DEFAULTS, type TextChunk } from '../_shared/text/chunk.ts';
import {
  MAX_FILE_BYTES,
  openDocument,
  type OpenedDocument,
  type Page,
  tooLarge,
  UnreadableFileError,
} from '../_shared/text/extract.ts';
import { countTokensUpTo } from '../_shared/text/tokens.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import type { StepBudget } from './budget.ts';
import { sha256Hex } from '../_shared/sha256.ts';
import { checksumMismatch } from './checksum.ts';
import { throttleDeferSeconds } from './defer.ts';
import * as db from './queries.ts';
import type { FileStore } from './store.ts';

export interface StepDeps {
  sql: Sql;
  store: FileStore;
  provider: EmbeddingProvider;
  budget: StepBudget;
  now?: () => number;
}

export type StepResult =
  | { status: 'not_found' }
  /** Nothing to do: the document is not being ingested (ready, failed, still uploading). */
  | { status: 'skipped'; documentStatus: string }
  /** Another copy of this step got there first; this one changed nothing. */
  | { status: 'stale' }
  | { status: 'processing'; pagesDone: number; pageCount: number; progress: number }
  | { status: 'ready'; chunks: number; pageCount: number }
  /** The provider throttled the step: the run resumes at its cursor in about this many seconds. */
  | { status: 'deferred'; retryAfterSeconds: number }
  | { status: 'failed'; reason: string };

const MISSING_FILE = 'The file was not found in storage; upload it again.';
/**
 * Postgres refusing the chunks' text itself: invalid_text_representation (jsonb
 * rejects a lone surrogate), untranslatable_character, character_not_in_repertoire,
 * program_limit_exceeded. Data errors, not outages.
 */
const UNSTORABLE_TEXT = new Set(['22P02', '22P05', '22021', '54000']);
const UNSTORABLE_TEXT_MESSAGE = 'The file contains text that cannot be stored (invalid or oversized characters); save it again, for example as PDF, and upload it.';
const overQuota = (refusal: QuotaRefusal) =>
  `Not indexed: the organization's embedding tokens for this period are used up (${refusal.message}). ` +
  'Upload the file again once the allowance renews, or upgrade the plan.';
/** Pages re-read before a step's first page, at most, to carry the chunk overlap across steps. */
const MAX_LEAD_PAGES = 3;

/** The run was started again from its first page (its staged chunks were another model's): step again. */
type Restarted = { status: 'restarted' };

export async function runIngestStep(deps: StepDeps, documentId: string): Promise<StepResult> {
  const first = await step(deps, documentId);
  if (first.status !== 'restarted') return first;
  // The new run's first step: its cursor is 0, so it cannot restart again unless another copy raced it.
  const again = await step(deps, documentId);
  return again.status === 'restarted' ? { status: 'stale' } : again;
}

async function step(deps: StepDeps, documentId: string): Promise<StepResult | Restarted> {
  const start = await db.beginStep(deps.sql, documentId);
  if (!start) return { status: 'not_found' };
  if (start.status !== 'processing' || !start.run_id) return { status: 'skipped', documentStatus: start.status };
  const runId = start.run_id;

  const fail = async (reason: string): Promise<StepResult> => {
    const failed = await db.failRun(deps.sql, documentId, runId, reason);
    return failed ? { status: 'failed', reason } : { status: 'stale' };
  };

  if (start.object_size === null) return await fail(MISSING_FILE);
  if (start.object_size > MAX_FILE_BYTES) return await fail(tooLarge(start.object_size).message);
  // A run is admitted while the org has embedding tokens left, and then finishes its file (at most 500 pages):
  // failing it part-way would waste what its earlier steps spent.
  if (start.cursor === 0) {
    const refusal = await embeddingQuotaRefusal(deps.sql, start.org_id);
    if (refusal) return await fail(overQuota(refusal));
  }

  const bytes = await deps.store.download(start.storage_path);
  if (!bytes) return await fail(MISSING_FILE);
  // A run's first step records and checks the bytes; any later upload starts a new run.
  if (start.cursor === 0) {
    const sha256 = await sha256Hex(bytes);
    if (!(await db.recordContent(deps.sql, documentId, runId, sha256))) return { status: 'stale' };
    if (start.checksum_sha256 !== null && start.checksum_sha256 !== sha256) {
      return await fail(checksumMismatch(start.checksum_sha256, sha256));
    }
  }

  let document: OpenedDocument;
  try {
    document = await openDocument(bytes, start.mime_type);
  } catch (error) {
    if (error instanceof UnreadableFileError) return await fail(error.message);
    throw error;
  }

  try {
    const pageCount = document.pageCount;
    let read: { pages: Page[]; lead: Page[] };
    // The time budget covers parsing only: a large file's download must not shrink every step to one page.
    const now = deps.now ?? (() => performance.now());
    const reading = now();
    try {
      read = await readStepPages(document, start.cursor, deps.budget, () => now() - reading);
    } catch (error) {
      if (error instanceof UnreadableFileError) return await fail(error.message);
      throw error;
    }
    const chunks = chunkPages(read.pages, { lead: read.lead });
    let embedded: { staged: db.StagedChunk[]; usage: db.EmbeddingUsage };
    try {
      embedded = await embedChunks(deps, start, documentId, runId, chunks);
    } catch (error) {
      // A throttled provider is everyone's wait, not this run's stall (see defer.ts).
      const seconds = throttleDeferSeconds(error);
      if (seconds === null) throw error;
      console.warn(`ingest step for ${documentId} deferred: ${error instanceof Error ? error.message : String(error)}`);
      const wait = await db.deferRun(deps.sql, documentId, runId, seconds);
      return wait === null ? { status: 'stale' } : { status: 'deferred', retryAfterSeconds: wait };
    }
    const { staged, usage } = embedded;
    // One run stages one model's vectors: a run whose staged chunks another model embedded (the provider changed
    // between its steps, or they were staged before runs recorded a model) starts again from its first page. Checked
    // once this step has vectors: a provider that fails changes nothing. Those vectors are dropped, and metered.
    if (start.cursor > 0 && start.ingest_model !== usage.model) {
      await meterUnsaved(deps.sql, { ...usage, documentId });
      if (!(await db.restartRun(deps.sql, documentId, runId))) return { status: 'stale' };
      console.warn(
        `ingest run of ${documentId} restarted from page 1: its staged chunks were embedded by ` +
          `${start.ingest_model ?? 'an unrecorded model'}, this step's by ${usage.model}`,
      );
      return { status: 'restarted' };
    }
    const nextCursor = read.pages.length > 0 ? read.pages[read.pages.length - 1].number : pageCount;
    const last = nextCursor >= pageCount;
    let outcome: db.SaveOutcome;
    try {
      outcome = await db.saveStep(deps.sql, {
        documentId,
        runId,
        fromCursor: start.cursor,
        chunks: staged,
        nextCursor,
        progress: Math.floor((99 * nextCursor) / Math.max(pageCount, 1)),
        pageCount,
        last,
        usage,
      });
    } catch (error) {
      // The save and its metering rolled back together; the tokens were spent all the same.
      await meterUnsaved(deps.sql, { ...usage, documentId });
      // The same text would be refused on every retry, each re-embedding and re-metering it.
      if (isPostgresError(error) && UNSTORABLE_TEXT.has(error.code)) return await fail(UNSTORABLE_TEXT_MESSAGE);
      throw error;
    }
    switch (outcome.kind) {
      case 'stale':
        return { status: 'stale' };
      case 'continued':
        return {
          status: 'processing',
          pagesDone: nextCursor,
          pageCount,
          progress: Math.floor((99 * nextCursor) / pageCount),
        };
      case 'ready':
        return { status: 'ready', chunks: outcome.chunks, pageCount };
      case 'failed':
        return { status: 'failed', reason: (await db.failureReason(deps.sql, documentId)) ?? 'Ingestion failed.' };
    }
  } finally {
    await document.close();
  }
}

/**
 * The pages after `cursor` that fit the budget (always at least one), and the
 * pages just before them whose last ~40 tokens open the first chunk. A page is
 * counted in slices and no further than the budget left needs: a page of
 * 100,000 letters without a space took 4 s counted whole, on every retry of
 * the step. Exported for its unit test.
 */
export async function readStepPages(
  document: OpenedDocument,
  cursor: number,
  budget: StepBudget,
  elapsedMs: () => number,
): Promise<{ pages: Page[]; lead: Page[] }> {
  const lead: Page[] = [];
  let leadTokens = 0;
  for (let number = cursor; number >= 1 && number > cursor - MAX_LEAD_PAGES; number--) {
    if (leadTokens >= CHUNK_DEFAULTS.overlapTokens) break;
    const page = await document.readPage(number);
    lead.unshift(page);
    leadTokens += countTokensUpTo(page.text, CHUNK_DEFAULTS.overlapTokens - leadTokens);
  }
  const pages: Page[] = [];
  let tokens = 0;
  for (let number = cursor + 1; number <= document.pageCount; number++) {
    const page = await document.readPage(number);
    pages.push(page);
    tokens += countTokensUpTo(page.text, budget.tokens - tokens);
    if (pages.length >= budget.pages || tokens >= budget.tokens || elapsedMs() >= budget.ms) break;
  }
  return { pages, lead };
}

/**
 * Embeds the step's chunks (the provider batches), numbering them after those
 * staged. The tokens are metered with the save (db.saveStep); only what a
 * failing call was billed is metered here, as no save follows it. Before each
 * request to the provider the run's idle clock restarts, so the sweeper does
 * not start a second copy of a step that is waiting on a slow provider.
 */
async function embedChunks(
  deps: StepDeps,
  start: db.StepStart,
  documentId: string,
  runId: string,
  chunks: TextChunk[],
): Promise<{ staged: db.StagedChunk[]; usage: db.EmbeddingUsage }> {
  const usage = { orgId: start.org_id, model: deps.provider.model, tokens: 0 };
  if (chunks.length === 0) return { staged: [], usage };
  let embedded: Awaited<ReturnType<EmbeddingProvider['embed']>>;
  try {
    embedded = await deps.provider.embed(chunks.map((chunk) => chunk.content), {
      beforeRequest: async () => {
        await db.heartbeat(deps.sql, documentId, runId);
      },
    });
  } catch (error) {
    if (error instanceof EmbeddingProviderError && error.tokensSpent > 0) {
      await db.recordEmbeddingUsage(deps.sql, { ...usage, tokens: error.tokensSpent, documentId });
    }
    throw error;
  }
  const { vectors, tokens } = embedded;
  const staged = chunks.map((chunk, index) => ({
    chunk_index: start.next_chunk_index + index,
    page_start: chunk.pageStart,
    page_end: chunk.pageEnd,
    content: chunk.content,
    token_count: chunk.tokenCount,
    embedding: toPgVector(vectors[index]),
  }));
  return { staged, usage: { ...usage, tokens } };
}

/** Meters the tokens of a step whose save failed; a failure to meter leaves the save's error to be reported. */
async function meterUnsaved(sql: Sql, usage: db.EmbeddingUsage & { documentId: string }): Promise<void> {
  if (usage.tokens <= 0) return;
  try {
    await db.recordEmbeddingUsage(sql, usage);
  } catch (error) {
    console.error(`metering ${usage.tokens} embedding tokens of document ${usage.documentId} failed`, error);
  }
}
