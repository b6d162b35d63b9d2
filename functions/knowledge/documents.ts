import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';

const NOT_FOUND = 'The document was not found.';

/** Removes Storage objects of the `knowledge` bucket with the service role. */
export interface KnowledgeStore {
  remove(path: string): Promise<void>;
}

/**
 * The document as the caller sees it (RLS: viewers and up of its org), after
 * checking they may delete it: 404 when it is not theirs to see, 403 when
 * their role lacks knowledge.delete (admins and up).
 */
async function deletableDocument(tx: TransactionSql, id: string): Promise<{ storage_path: string }> {
  const [document] = await tx<{ org_id: string; storage_path: string }[]>`
    select org_id, storage_path from public.documents where id = ${id}`;
  if (!document) throw new HttpError(404, 'not_found', NOT_FOUND);
  const [{ allowed }] = await tx<{ allowed: boolean }[]>`
    select 'knowledge.delete' = any (array(select public.my_permissions(${document.org_id}::uuid))) as allowed`;
  if (!allowed) throw new HttpError(403, 'forbidden', 'Only admins and owners may delete documents.');
  return document;
}

/**
 * Deletes a document: marks it as being deleted (from then on no ingestion
 * step starts, finishes or fails it, so no document.ready or document.failed
 * follows), removes its file, then its row (chunks and staging cascade). In
 * that order a failure part-way is repaired by trying again (the file is
 * already gone, the row is deleted); the other order could leave a file
 * nothing points to. No transaction is held open across the Storage call.
 */
export async function deleteDocument(sql: Sql, claims: UserClaims, store: KnowledgeStore, id: string): Promise<void> {
  const { storage_path: path } = await asDeleter(sql, claims, id, async (tx) => {
    await tx`select private.begin_document_deletion(${id}::uuid)`;
  });
  await store.remove(path);
  await asDeleter(sql, claims, id, async (tx) => {
    await tx`delete from public.documents where id = ${id}`;
  });
}

/**
 * Runs `fn` after checking the caller may delete the document, as the service
 * role: documents have no update or delete grant for users, the check is the
 * gate. The caller's claims stay set, so the audit log records them as the actor.
 */
async function asDeleter(
  sql: Sql,
  claims: UserClaims,
  id: string,
  fn: (tx: TransactionSql) => Promise<void>,
): Promise<{ storage_path: string }> {
  return await withUserScope(sql, claims, async (tx) => {
    const document = await deletableDocument(tx, id);
    await tx`select set_config('role', 'service_role', true)`;
    await fn(tx);
    return document;
  });
}
