/**
 * GET /functions/v1/knowledge/documents/:id: one document of the key's org
 * (scope knowledge.read), to follow its ingestion; another org's document is
 * not found, as an unknown id is.
 */
import type { Sql } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import { asCaller, authenticateKeyCaller } from './caller.ts';
import { documentColumns, documentNotFound, type DocumentRow, toApiDocument } from './representation.ts';

/** `currentModel`: the model the deployment embeds with (its provider's). */
export async function retrieveDocument(sql: Sql, req: Request, id: string, currentModel: string): Promise<Response> {
  const caller = await authenticateKeyCaller(sql, req, 'knowledge.read');
  const [document] = await asCaller(
    sql,
    caller,
    (tx) =>
      tx<DocumentRow[]>`
        select ${documentColumns(tx)} from public.documents d where d.id = ${id}::uuid and d.org_id = ${caller.key.orgId}::uuid`,
    { forbidden: 'This API key may not read documents.', notFound: 'The document was not found.' },
  );
  if (!document) throw documentNotFound();
  return json(toApiDocument(document, currentModel));
}
