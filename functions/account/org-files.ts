/**
 * Removing a deleted org's files: the database lists them
 * (private.org_storage_objects, 1,000 at a time, every org bucket), the
 * Storage API removes them per bucket, and private.finish_org_storage_removal
 * records that none is left (or says how many are). Bounded by a time
 * budget: what is left is finished by the scheduled cleanup
 * (POST /account/storage-cleanup), which calls this again.
 */
import { asServiceRole, type Sql } from '../_shared/db.ts';
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
    while (performance.now() < deadline) {
      const objects = await asServiceRole(deps.sql, (tx) =>
        tx<{ bucket_id: string; name: string }[]>`
          select bucket_id, name from private.org_storage_objects(${orgId}::uuid, ${PAGE})`
      );
      if (objects.length === 0) break;
      const byBucket = new Map<string, string[]>();
      for (const object of objects) byBucket.set(object.bucket_id, [...(byBucket.get(object.bucket_id) ?? []), object.name]);
      let round = 0;
      for (const [bucket, names] of byBucket) round += await deps.store.remove(bucket, names);
      removed += round;
      // Listed but not removable (already going, or refused): stop rather than spin; the cleanup retries.
      if (round === 0) break;
    }
  } catch (error) {
    // The org's rows are gone already; its files are left to the scheduled cleanup.
    (deps.log ?? ((message, cause) => console.error(message, cause)))(`removing the files of org ${orgId} failed`, error);
  }
  const [{ remaining }] = await asServiceRole(deps.sql, (tx) =>
    tx<{ remaining: number }[]>`select private.finish_org_storage_removal(${orgId}::uuid) as remaining`
  );
  return { files_removed: removed, files_remaining: remaining };
}
