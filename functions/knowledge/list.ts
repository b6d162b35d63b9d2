/**
 * GET /functions/v1/knowledge/documents: the key's org's documents (scope
 * knowledge.read), newest first (created_at, then id), filtered by status
 * (one or several, comma-separated), collection, project and a creation
 * window (created_after < created_at < created_before, to the millisecond
 * as created_at is shown), `limit` 1–100
 * (default 20), paged by the opaque `next_cursor` (null on the last page).
 * Send the same filters with each page's cursor. A nightly sync polls what
 * became of its uploads and finds what to delete.
 */
import { z } from 'zod';
import { createdWindow, createdWindowInOrder, decodeCursor, DEFAULT_LIMIT, listPage, pageLimit } from '../_shared/cursor.ts';
import type { Sql } from '../_shared/db.ts';
import { json, readQuery } from '../_shared/http.ts';
import { asCaller, authenticateKeyCaller } from './caller.ts';
import { documentColumns, type DocumentRow, toApiDocument } from './representation.ts';

/** public.document_status. */
export const DOCUMENT_STATUSES = ['uploading', 'queued', 'processing', 'ready', 'failed'] as const;

export const listDocumentsQuery = z
  .strictObject({
    status: z
      .string()
      .transform((value) => [...new Set(value.split(','))])
      .pipe(z.array(z.enum(DOCUMENT_STATUSES))),
    collection_id: z.guid(),
    project_id: z.guid(),
    ...createdWindow,
    limit: pageLimit,
    cursor: z.string(),
  })
  .partial()
  .refine(...createdWindowInOrder);

/** `currentModel`: the model the deployment embeds with (its provider's). */
export async function listDocuments(sql: Sql, req: Request, currentModel: string): Promise<Response> {
  const caller = await authenticateKeyCaller(sql, req, 'knowledge.read');
  const query = readQuery(new URL(req.url), listDocumentsQuery);
  const limit = query.limit ?? DEFAULT_LIMIT;
  const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
  const orgId = caller.key.orgId;
  // The service role reads past RLS: the query names the key's org. Timestamps
  // go in as text: postgres.js sends a timestamptz parameter through a JS Date,
  // dropping the microseconds. The window compares created_at cut to the
  // millisecond (as shown), so a row's own created_at sent back as either bound
  // leaves it out; written as a range on created_at itself, so the index on
  // (org_id, created_at) still bounds the scan.
  const rows = await asCaller(
    sql,
    caller,
    (tx) =>
      tx<DocumentRow[]>`
        select ${documentColumns(tx)}
        from public.documents d
        where d.org_id = ${orgId}::uuid
          ${query.status ? tx`and d.status::text = any (${query.status}::text[])` : tx``}
          ${query.collection_id ? tx`and d.collection_id = ${query.collection_id}::uuid` : tx``}
          ${query.project_id ? tx`and d.project_id = ${query.project_id}::uuid` : tx``}
          ${query.created_after ? tx`and d.created_at >= date_trunc('milliseconds', ${query.created_after}::text::timestamptz) + interval '1 millisecond'` : tx``}
          ${query.created_before ? tx`and d.created_at < date_trunc('milliseconds', ${query.created_before}::text::timestamptz)` : tx``}
          ${after ? tx`and (d.created_at, d.id) < (${after.createdAt}::text::timestamptz, ${after.id}::uuid)` : tx``}
        order by d.created_at desc, d.id desc
        limit ${limit + 1}`,
    { forbidden: 'This API key may not read documents.', notFound: 'The document was not found.' },
  );
  return json(listPage(rows, limit, (row) => toApiDocument(row, currentModel)));
}
