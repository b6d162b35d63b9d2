/**
 * Removing a deleted user's avatars (file-removal.ts): their folder of the
 * avatars bucket, listed by private.user_avatar_objects; the user leaves the
 * queue (private.avatar_removals, filled by a trigger on auth.users whatever
 * deleted them) through private.finish_avatar_removal.
 */
import type { ListedObject } from '../_shared/storage-removal.ts';
import { removeListedFiles, type RemovalDeps, type RemovalResult } from './file-removal.ts';

export function removeUserAvatars(deps: RemovalDeps, userId: string, deadline: number): Promise<RemovalResult> {
  return removeListedFiles(deps, {
    what: `the avatars of user ${userId}`,
    list: (tx, page) => tx<ListedObject[]>`select bucket_id, name from private.user_avatar_objects(${userId}::uuid, ${page})`,
    finish: async (tx) => {
      const [{ remaining }] = await tx<{ remaining: number }[]>`
        select private.finish_avatar_removal(${userId}::uuid) as remaining`;
      return remaining;
    },
  }, deadline);
}
