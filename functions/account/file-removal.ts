/**
 * Removing what a deletion left in Storage: the database lists it (1,000 at
 * a time), the Storage API removes it per bucket, and the database records
 * that none is left (or says how many are). Bounded by a time budget: what is
 * left is finished by the scheduled cleanup (POST /account/storage-cleanup),
 * which calls this again. Once the deletion has committed no object can be
 * added under the listed prefix (triggers on storage.objects, 20261123005700
 * and 20261123010600), so a listing that finds none is final.
 */
import { asServiceRole, type Sql, type TransactionSql } from '../_shared/db.ts';
import { type ListedObject, removeListedObjects } from '../_shared/storage-removal.ts';
import type { FileStore } from './store.ts';

const PAGE = 1000;

export interface RemovalResult {
  files_removed: number;
  /** Objects still under the prefix (0: recorded as done). */
  files_remaining: number;
}

/** The SQL of one kind of removal, run as the service role. */
export interface RemovalQueries {
  /** For the log: "the files of org <id>". */
  what: string;
  list(tx: TransactionSql, page: number): Promise<ListedObject[]>;
  /** Records the removal when nothing is left; answers how many objects are. */
  finish(tx: TransactionSql): Promise<number>;
}

export type RemovalDeps = { sql: Sql; store: FileStore; log?: (message: string, error: unknown) => void };

export async function removeListedFiles(deps: RemovalDeps, queries: RemovalQueries, deadline: number): Promise<RemovalResult> {
  let removed = 0;
  try {
    await removeListedObjects(
      () => asServiceRole(deps.sql, (tx) => queries.list(tx, PAGE)),
      (bucket, names) => deps.store.remove(bucket, names),
      deadline,
      (round) => (removed += round),
    );
  } catch (error) {
    // The rows are gone already; the files are left to the scheduled cleanup.
    (deps.log ?? ((message, cause) => console.error(message, cause)))(`removing ${queries.what} failed`, error);
  }
  const remaining = await asServiceRole(deps.sql, (tx) => queries.finish(tx));
  return { files_removed: removed, files_remaining: remaining };
}
