import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { functionPath } from '../_shared/route-path.ts';

export type AccountRoute =
  | { name: 'deleteAccount' }
  | { name: 'deleteOrganization'; orgId: string }
  | { name: 'storageCleanup' };

const uuid = z.guid();

/**
 * - DELETE /account                        a signed-in user: delete their own account
 * - DELETE /account/organizations/:id      an owner (JWT) `{ confirm_name }`: delete the org, rows and files
 * - POST   /account/storage-cleanup        the service role (pg_cron through pg_net): finish removing the
 *                                          files of deleted orgs and the avatars of deleted users
 * An id that is not a uuid names nothing: 404, as an unknown id would.
 */
export function matchRoute(method: string, pathname: string): AccountRoute {
  const path = functionPath(pathname, 'account');
  const notFound = new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
  const only = (allowed: string, route: AccountRoute): AccountRoute => {
    if (method === allowed) return route;
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allowed}.`, { allow: allowed });
  };
  if (path === null) throw notFound;
  if (path.length === 0) return only('DELETE', { name: 'deleteAccount' });
  if (path.length === 1 && path[0] === 'storage-cleanup') return only('POST', { name: 'storageCleanup' });
  if (path.length === 2 && path[0] === 'organizations') {
    const id = uuid.safeParse(path[1]);
    if (!id.success) throw notFound;
    return only('DELETE', { name: 'deleteOrganization', orgId: id.data.toLowerCase() });
  }
  throw notFound;
}
