import { type Sql, type TransactionSql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { type Caller, callerClaims } from './caller.ts';

const NOT_FOUND = 'The document was not found.';

/** Objects of the `knowledge` bucket, with the service role. */
export interface KnowledgeStore {
  upload(path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  remove(path: string): Promise<void>;
}

/**
 * The document as the caller sees it, after checking they may delete it. A
 * user: RLS (viewers and up of its org) then knowledge.delete (admins and up);
 * 404 when it is not theirs to see, 403 below admin. An API key (scope
 * knowledge.write, checked by the route): a document of its own org, else 404.
 */
async function deletableDocument(tx: TransactionSql, caller: Caller, id: string): Promise<{ storage_path: string }> {
  const [document] = await tx<{ org_id: string; storage_path: string }[]>`
    select org_id, storage_path from public.documents where id = ${id}`;
  if (!document || (caller.kind === 'key' && document.org_id !== caller.key.orgId)) {
    throw new HttpError(404, 'not_found', NOT_FOUND);
  }
  if (caller.kind === 'key') return document;
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
export async function deleteDocument(sql: Sql, caller: Caller, store: KnowledgeStore, id: string): Promise<void> {
  const { storage_path: path } = await asDeleter(sql, caller, id, async (tx) => {
    await tx`select private.begin_document_deletion(${id}::uuid)`;
  });
  await store.remove(path);
  await asDeleter(sql, caller, id, (tx) => deleteDocumentRow(tx, id));
}

/**
 * Deletes a document's row (its chunks and staging cascade). The cascade into
 * document_chunks (a partition per org) is a plan each connection caches:
 * from its sixth run Postgres may plan it generically, over every org's
 * partition, locking them all (about 7 locks an org), so the transaction
 * forces custom plans, pruned to the document's org (20261123013700).
 */
export async function deleteDocumentRow(tx: TransactionSql, id: string): Promise<void> {
  await tx`set local plan_cache_mode = force_custom_plan`;
  await tx`delete from public.documents where id = ${id}::uuid`;
}

/**
 * Runs `fn` after checking the caller may delete the document, as the service
 * role: documents have no update or delete grant for users, the check is the
 * gate. The caller's claims stay set (a key's id for a key), so the audit log
 * records them as the actor.
 */
async function asDeleter(
  sql: Sql,
  caller: Caller,
  id: string,
  fn: (tx: TransactionSql) => Promise<void>,
): Promise<{ storage_path: string }> {
  return await withUserScope(sql, callerClaims(caller), async (tx) => {
    const document = await deletableDocument(tx, caller, id);
    await tx`select set_config('role', 'service_role', true)`;
    await fn(tx);
    return document;
  });
}
