import type { UserClaims } from '../_shared/auth.ts';
import { asServiceRole, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { httpErrorFromPostgres, isPostgresError } from '../_shared/pg-errors.ts';
import type { RemovalDeps } from './file-removal.ts';
import { removeUserAvatars } from './user-avatars.ts';

/**
 * The sole-owner refusal is a 23514 our SQL raises (require_not_sole_owner,
 * naming the orgs, or the last-owner trigger when two owners go at once),
 * so it names no constraint: the client shows its message as is. A 23514
 * of a table's check constraint is a fault of the deletion itself, not of
 * the request (there is none to fix): left to become a logged 500.
 */
export function accountError(error: unknown): unknown {
  if (isPostgresError(error) && error.code === '23514') {
    return error.constraint_name ? error : new HttpError(409, 'sole_owner', error.message);
  }
  return httpErrorFromPostgres(error);
}

/**
 * Deletes the caller's account in the two steps the SQL defines: as the
 * user, public.delete_account (refused while they are the only owner of an
 * org; otherwise they leave every org, audited in each); then, as the service
 * role, private.delete_user, which checks again and deletes the auth user
 * (profile and settings cascade; the user is queued for avatar removal). A
 * failure between the two leaves a user with no memberships, and calling
 * again finishes the job. Then their avatars are removed through the Storage
 * API, best effort: the user is gone either way, and what is left (time,
 * Storage or database failure) goes to the scheduled cleanup.
 */
export async function deleteAccount(deps: RemovalDeps & { removalMs: number }, claims: UserClaims): Promise<void> {
  try {
    await withUserScope(deps.sql, claims, (tx) => tx`select public.delete_account()`);
    await asServiceRole(deps.sql, (tx) => tx`select private.delete_user(${claims.sub}::uuid)`);
  } catch (error) {
    throw accountError(error);
  }
  const log = deps.log ?? ((message: string, cause: unknown) => console.error(message, cause));
  try {
    await removeUserAvatars({ ...deps, log }, claims.sub, performance.now() + deps.removalMs);
  } catch (error) {
    log(`finishing the avatar removal of user ${claims.sub} failed`, error);
  }
}
