import { asServiceRole, type Sql } from '../_shared/db.ts';
import { removeOrgFiles, type RemovalResult } from './org-files.ts';
import type { OrgFileStore } from './store.ts';

export interface CleanupSummary {
  orgs: Array<{ org_id: string } & RemovalResult>;
  /** Deleted orgs whose files are still not all gone. */
  pending: number;
}

/**
 * The scheduled retry (pg_cron every 10 minutes, migration 20261123001800):
 * every deleted org whose files are not all removed yet (the request that
 * deleted it ran out of time, or Storage failed), oldest first, within one
 * time budget.
 */
export async function cleanUpDeletedOrgFiles(deps: { sql: Sql; store: OrgFileStore }, budgetMs: number): Promise<CleanupSummary> {
  const deadline = performance.now() + budgetMs;
  const pending = await asServiceRole(deps.sql, (tx) =>
    tx<{ org_id: string }[]>`select org_id from private.org_deletions_pending_storage()`
  );
  const orgs: CleanupSummary['orgs'] = [];
  for (const { org_id: orgId } of pending) {
    if (performance.now() >= deadline) break;
    orgs.push({ org_id: orgId, ...(await removeOrgFiles(deps, orgId, deadline)) });
  }
  const done = orgs.filter((org) => org.files_remaining === 0).length;
  return { orgs, pending: pending.length - done };
}
