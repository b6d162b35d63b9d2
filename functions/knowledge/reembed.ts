/**
 * POST /functions/v1/knowledge/reembed `{ org_id, limit? }`: queues up to
 * `limit` (1–100, default 100) ready documents of the org whose chunks were
 * not embedded by the deployment's model (another model, or unknown: null)
 * for ingestion again, each through public.retry_document as a retry is
 * (its live chunks keep answering until the new ones replace them; a run
 * that fails keeps them). 202 `{ queued, remaining }`: `remaining` such
 * documents are left for another call. A document queued or processing is
 * not ready, so a second call while they are under way queues nothing new.
 * The caller: an API key with knowledge.write for its own org (another
 * org_id is a 403), or a signed-in user with knowledge.write in org_id (a
 * member without it, a viewer, is a 403; a non-member's org is a 404).
 */
import { z } from 'zod';
import type { AuthOptions } from '../_shared/auth.ts';
import type { Sql, TransactionSql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json, readJson } from '../_shared/http.ts';
import { asCaller, authenticateCaller, type Caller, callerOrg, takeUserRateLimit } from './caller.ts';

export const reembedBody = z.strictObject({
  org_id: z.guid(),
  limit: z.number().int().min(1).max(100).default(100),
});

const REEMBED_ERRORS = {
  forbidden: 'You may not re-embed this organization\'s documents.',
  notFound: 'The organization was not found.',
};

/** Ready documents of the org not embedded by `model`, but those whose last run failed. */
function due(tx: TransactionSql, orgId: string, model: string) {
  return tx`
    from public.documents d
    where d.org_id = ${orgId}::uuid and d.status = 'ready' and d.deletion_started_at is null
      and d.embedding_model is distinct from ${model}
      -- A re-embedding that failed kept the old chunks: it would fail and be billed again on every call.
      and d.last_failure_reason is null`;
}

/** A user must hold knowledge.write in the org; one who may only read it is refused, not told it is missing. */
async function requireWriter(sql: Sql, caller: Caller, orgId: string): Promise<void> {
  if (caller.kind === 'key') return;
  const [{ allowed }] = await asCaller(sql, caller, (tx) =>
    tx<{ allowed: boolean }[]>`select 'knowledge.write' = any (array(select public.my_permissions(${orgId}::uuid))) as allowed`,
    REEMBED_ERRORS);
  if (!allowed) throw new HttpError(403, 'forbidden', REEMBED_ERRORS.forbidden);
}

export async function reembedDocuments(
  sql: Sql,
  req: Request,
  currentModel: string,
  options: AuthOptions,
): Promise<Response> {
  const caller = await authenticateCaller(sql, req, options, 'knowledge.write');
  const body = await readJson(req, reembedBody);
  const orgId = await callerOrg(sql, caller, body.org_id, 'knowledge.read');
  await requireWriter(sql, caller, orgId);
  await takeUserRateLimit(sql, caller, 'knowledge_reembed');
  const answer = await asCaller(sql, caller, async (tx) => {
    const documents = await tx<{ id: string }[]>`select d.id ${due(tx, orgId, currentModel)} order by d.id limit ${body.limit}`;
    // One at a time, in id order (the order every document lock is taken in); retry_document locks and checks each.
    for (const { id } of documents) await tx`select 1 from public.retry_document(${id}::uuid)`;
    const [{ remaining }] = await tx<{ remaining: number }[]>`select count(*)::integer as remaining ${due(tx, orgId, currentModel)}`;
    return { queued: documents.length, remaining };
  }, REEMBED_ERRORS);
  return json(answer, 202);
}
