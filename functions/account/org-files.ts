/**
 * Removing a deleted org's files (file-removal.ts): listed by
 * private.org_storage_objects (every org bucket), recorded by
 * private.finish_org_storage_removal.
 */
import type { ListedObject } from '../_shared/storage-removal.ts';
import { removeListedFiles, type RemovalDeps, type RemovalResult } from './file-removal.ts';

export function removeOrgFiles(deps: RemovalDeps, orgId: string, deadline: number): Promise<RemovalResult> {
  return removeListedFiles(deps, {
    what: `the files of org ${orgId}`,
    list: (tx, page) => tx<ListedObject[]>`select bucket_id, name from private.org_storage_objects(${orgId}::uuid, ${page})`,
    finish: async (tx) => {
      const [{ remaining }] = await tx<{ remaining: number }[]>`
        select private.finish_org_storage_removal(${orgId}::uuid) as remaining`;
      return remaining;
    },
  }, deadline);
}
