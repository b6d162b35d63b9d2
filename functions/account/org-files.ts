/**
 * Removing a deleted org's files: the database lists them
 * (private.org_storage_objects, 1,000 at a time, every org bucket), the
 * Storage API removes them per bucket, and private.finish_org_storage_removal
 * records that none is left (or says how many are). Bounded by a time
 * budget: what is left is finished by the scheduled cleanup
 * (POST /account/storage-cleanup), which calls this again. Once the org's
 * deletion has committed no object can be added under its prefix (a trigger
 * on storage.objects, 20261123005700), so a listing that finds none is final.
 */
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { type ListedObject, removeListedObjects } from '../_shared/storage-removal.ts';
import type { OrgFileStore } from './store.ts';

const PAGE = 1000;

export interface RemovalResult {
  files_removed: number;
  /** Objects still under the org's prefix (0: recorded as done). */
  files_remaining: number;
}

export async function removeOrgFiles(
  deps: { sql: Sql; store: OrgFileStore; log?: (message: string, error: unknown) => void },
  orgId: string,
  deadline: number,
): Promise<RemovalResult> {
  let removed = 0;
  try {
    await removeListedObjects(
      () =>
        asServiceRole(deps.sql, (tx) =>
          tx<ListedObject[]>`select bucket_id, name from private.org_storage_objects(${orgId}::uuid, ${PAGE})`
        ),
      (bucket, names) => deps.store.remove(bucket, names),
      deadline,
      (round) => (removed += round),
    );
  } catch (error) {
    // The org's rows are gone already; its files are left to the scheduled cleanup.
    (deps.log ?? ((message, cause) => console.error(message, cause)))(`removing the files of org ${orgId} failed`, error);
  }
  const [{ remaining }] = await asServiceRole(deps.sql, (tx) =>
    tx<{ remaining: number }[]>`select private.finish_org_storage_removal(${orgId}::uuid) as remaining`
  );
  return { files_removed: removed, files_remaining: remaining };
}
