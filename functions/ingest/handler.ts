/**
 * POST /functions/v1/ingest `{ document_id }`: runs one ingestion step of the
 * document (see step.ts). Called through pg_net by the upload trigger, by
 * retry_document and by the previous step, always with the service-role key.
 *
 * The next step is requested with private.request_ingest (pg_net) inside the
 * transaction that saves this one, not by POSTing to ourselves: the request
 * exists exactly when the step's work committed, each step gets a fresh
 * invocation (and CPU budget) instead of a chain of nested requests, and
 * nothing is lost if this isolate dies right after answering.
 *
 * Answers: 202 while pages remain (the next step is already queued), 200 when
 * the document is ready, failed (the file's fault, with the reason; text
 * Postgres refuses to store counts as the file's, see step.ts), or there
 * was nothing to do (also a queued document whose org already has
 * private.ingest_runs_per_org() runs under way: it waits for one to end); 503
 * when something other than the file failed, leaving the run where it is:
 * pg_net does not retry, so private.retry_stuck_ingestion (pg_cron) resumes it
 * at its cursor once it has been idle for 2 minutes, or, when the embeddings
 * provider throttled the step (deferred, step.ts), once the Retry-After the
 * 503 carries has passed, without counting that as a stall.
 */
import { z } from 'zod';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EmbeddingProvider, EmbeddingProviderError, providerFromEnv } from '../_shared/embeddings/index.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { HttpError } from '../_shared/errors.ts';
import { createHandler } from '../_shared/handler.ts';
import { json, readJson } from '../_shared/http.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { budgetFromEnv, type StepBudget } from './budget.ts';
import { runIngestStep, type StepResult } from './step.ts';
import { type FileStore, supabaseFileStore } from './store.ts';

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts (z.uuid() would also demand RFC 4122 version bits).
const body = z.object({ document_id: z.guid() });

export interface IngestDeps {
  sql: () => Sql;
  env?: EnvReader;
  store?: FileStore;
  provider?: EmbeddingProvider;
  budget?: StepBudget;
}

/** Seconds a caller should wait before asking again after a transient failure. */
const RETRY_AFTER_SECONDS = 30;
const PROVIDER_UNAVAILABLE = 'The embeddings provider is unavailable; the document will be resumed.';

export function createIngestHandler(deps: IngestDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const store = deps.store ?? supabaseFileStore(env);
  // Resolved per request, so a key set after boot (or a test's env) takes effect.
  const provider = () => deps.provider ?? providerFromEnv(env);
  return createHandler(async (req, ctx) => {
    if (req.method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${req.method} is not supported; use POST.`, { allow: 'POST' });
    }
    await requireServiceRole(req, { env, what: 'run ingestion' });
    const { document_id: documentId } = await readJson(req, body);
    let result: StepResult;
    try {
      result = await runIngestStep(
        { sql: deps.sql(), store, provider: provider(), budget: deps.budget ?? budgetFromEnv(env) },
        documentId,
      );
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // Not the file's fault: the run stays as it is and resumes from its cursor when woken again.
      console.error(`[${ctx.requestId}] ingest step for ${documentId} failed`, error);
      const message = error instanceof EmbeddingProviderError
        ? PROVIDER_UNAVAILABLE
        : 'Ingestion hit a temporary failure; the document will be resumed.';
      throw new HttpError(503, 'ingest_unavailable', message, { 'retry-after': String(RETRY_AFTER_SECONDS) });
    }
    return answer(documentId, result);
  }, { env });
}

function answer(documentId: string, result: StepResult): Response {
  const noStore = { 'cache-control': 'no-store' };
  switch (result.status) {
    case 'not_found':
      throw new HttpError(404, 'not_found', 'The document was not found.');
    case 'processing':
      return json({
        document_id: documentId,
        status: 'processing',
        progress: result.progress,
        pages_done: result.pagesDone,
        page_count: result.pageCount,
      }, 202, noStore);
    case 'ready':
      return json({ document_id: documentId, status: 'ready', chunks: result.chunks, page_count: result.pageCount }, 200, noStore);
    case 'failed':
      return json({ document_id: documentId, status: 'failed', reason: result.reason }, 200, noStore);
    case 'skipped':
      return json({ document_id: documentId, status: result.documentStatus, skipped: true }, 200, noStore);
    case 'stale':
      return json({ document_id: documentId, status: 'stale', skipped: true }, 200, noStore);
    case 'deferred':
      // Retry-After: when the sweeper wakes the run.
      throw new HttpError(503, 'ingest_unavailable', PROVIDER_UNAVAILABLE, { 'retry-after': String(result.retryAfterSeconds) });
  }
}

export const handler = createIngestHandler({ sql: () => getSql() });
