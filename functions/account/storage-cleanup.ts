import { asServiceRole, type Sql } from '../_shared/db.ts';
import type { RemovalResult } from './file-removal.ts';
import { removeOrgFiles } from './org-files.ts';
import type { FileStore } from './store.ts';
import { removeUserAvatars } from './user-avatars.ts';

export interface CleanupSummary {
  orgs: Array<{ org_id: string } & RemovalResult>;
  users: Array<{ user_id: string } & RemovalResult>;
  /** Deleted orgs and users whose files are still not all gone. */
  pending: number;
}

/**
 * The scheduled retry (pg_cron every 10 minutes, migrations 20261123001800
 * and 20261123010600): every deleted org whose files are not all removed yet
 * (the request that deleted it ran out of time, or Storage failed), oldest
 * first, then every deleted user whose avatars are not (deleted by the Auth
 * admin API or in SQL, or the account function's removal failed), within
 * one time budget.
 */
export async function cleanUpDeletedFiles(deps: { sql: Sql; store: FileStore }, budgetMs: number): Promise<CleanupSummary> {
  const deadline = performance.now() + budgetMs;
  const { pendingOrgs, pendingUsers } = await asServiceRole(deps.sql, async (tx) => ({
    pendingOrgs: await tx<{ id: string }[]>`select org_id as id from private.org_deletions_pending_storage()`,
    pendingUsers: await tx<{ id: string }[]>`select user_id as id from private.avatar_removals_pending()`,
  }));
  const orgs: CleanupSummary['orgs'] = [];
  for (const { id } of pendingOrgs) {
    if (performance.now() >= deadline) break;
    orgs.push({ org_id: id, ...(await removeOrgFiles(deps, id, deadline)) });
  }
  const users: CleanupSummary['users'] = [];
  for (const { id } of pendingUsers) {
    if (performance.now() >= deadline) break;
    users.push({ user_id: id, ...(await removeUserAvatars(deps, id, deadline)) });
  }
  const done = [...orgs, ...users].filter((removal) => removal.files_remaining === 0).length;
  return { orgs, users, pending: pendingOrgs.length + pendingUsers.length - done };
}
