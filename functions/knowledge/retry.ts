/**
 * POST /functions/v1/knowledge/documents/:id/retry: queues a failed document
 * of the key's org (scope knowledge.write) for ingestion again through
 * public.retry_document, as a user's retry does (a fresh budget of attempts;
 * document.ready or document.failed follows as for an upload). 202 with the
 * document, `queued`. The document is looked up in the key's org first (the
 * service role may retry any): another org's is not found, as an unknown id
 * is. Only a failed document is retried: one that is uploading, queued,
 * processing or ready, or being deleted, is a 409 `not_retryable` and stays
 * as it was (retry_document would also re-ingest a ready one, spending its
 * embeddings again: not what a sync retrying its failures means). A repeat
 * of a retry whose 202 was lost finds the document queued or processing
 * with `retried_at` set (an upload clears it): retry_document answers it
 * with the document as it is, queuing nothing, and so does this route (202).
 */
import type { Sql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { asCaller, authenticateKeyCaller } from './caller.ts';
import { documentColumns, documentNotFound, type DocumentRow, toApiDocument } from './representation.ts';

/** `currentModel`: the model the deployment embeds with (its provider's). */
export async function retryDocument(sql: Sql, req: Request, id: string, currentModel: string): Promise<Response> {
  const caller = await authenticateKeyCaller(sql, req, 'knowledge.write');
  const document = await asCaller(
    sql,
    caller,
    async (tx) => {
      // Locked, so the document found failed in the key's org is the one retried.
      const [mine] = await tx<{ status: string; being_deleted: boolean; retrying: boolean }[]>`
        select d.status, d.deletion_started_at is not null as being_deleted,
          d.status in ('queued', 'processing') and d.retried_at is not null as retrying
        from public.documents d where d.id = ${id}::uuid and d.org_id = ${caller.key.orgId}::uuid for update`;
      if (!mine) return undefined;
      if (mine.being_deleted) throw new HttpError(409, 'not_retryable', 'The document is being deleted.');
      // A repeat of a retry under way goes to retry_document too, which answers the document as it is.
      if (!mine.retrying && mine.status !== 'failed') {
        throw new HttpError(409, 'not_retryable', `Only a failed document can be retried; this one is ${mine.status}.`);
      }
      const [retried] = await tx<DocumentRow[]>`select ${documentColumns(tx)} from public.retry_document(${id}::uuid) d`;
      return retried;
    },
    { forbidden: 'This API key may not retry documents.', notFound: 'The document was not found.' },
  );
  if (!document) throw documentNotFound();
  return json(toApiDocument(document, currentModel), 202);
}
