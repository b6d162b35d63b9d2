import { z } from 'zod';
import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { httpErrorFromPostgres, isPostgresError } from '../_shared/pg-errors.ts';
import type { RemovalResult } from './file-removal.ts';
import { removeOrgFiles } from './org-files.ts';
import type { FileStore } from './store.ts';

export const deleteOrganizationBody = z.object({ confirm_name: z.string().min(1).max(200) });

function organizationError(error: unknown): unknown {
  // 22023 here is the confirmation: the name typed is not the org's.
  if (isPostgresError(error) && error.code === '22023') return new HttpError(422, 'name_mismatch', error.message);
  return httpErrorFromPostgres(error, {
    forbidden: 'Only the organization\'s owners may delete it.',
    notFound: 'The organization was not found.',
  });
}

/**
 * Deletes an org as its owner, confirmed by its exact name: the RPC removes
 * every row (cascade, recorded in private.deleted_organizations and the
 * audit chain); then, as the service role, its files are removed through the
 * Storage API. The files come after the rows, as the SQL defines: the rows
 * are the org, and files whose rows are gone are only listed for removal
 * (nobody can reach them through a policy that reads the org's membership).
 * A job still running for the org (an export step, an invoice render)
 * cannot add a file after the listing: Storage refuses an object under a
 * deleted org's prefix, and an upload that began before the deletion holds
 * the org row until it commits, so the deletion waits and the listing sees
 * it (migration 20261123005700 says why this, not a sweeper).
 */
export async function deleteOrganization(
  deps: { sql: Sql; store: FileStore; removalMs: number },
  claims: UserClaims,
  orgId: string,
  confirmName: string,
): Promise<{ deleted: true } & RemovalResult> {
  try {
    await withUserScope(deps.sql, claims, (tx) => tx`select public.delete_organization(${orgId}::uuid, ${confirmName})`);
  } catch (error) {
    throw organizationError(error);
  }
  const removal = await removeOrgFiles(deps, orgId, performance.now() + deps.removalMs);
  return { deleted: true, ...removal };
}
