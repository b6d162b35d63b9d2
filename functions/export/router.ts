import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { functionPath } from '../_shared/route-path.ts';

export type ExportRoute =
  | { name: 'create' }
  | { name: 'step' }
  | { name: 'expire' }
  | { name: 'show'; exportId: string };

const uuid = z.guid();

/**
 * - POST /export          an owner (JWT) `{ org_id }`: request an export; the service role `{ export_id }`:
 *                         one step (pg_net posts here, private.request_export_step)
 * - POST /export/step     the service role `{ export_id }`: one step (the same, by name)
 * - POST /export/expire   the service role (pg_cron through pg_net): remove expired exports' files
 * - GET  /export/:id      an owner (JWT): the export, with signed links to its files once ready
 */
export function matchRoute(method: string, pathname: string): ExportRoute {
  const path = functionPath(pathname, 'export');
  const notFound = new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
  const only = (allowed: string, route: ExportRoute): ExportRoute => {
    if (method === allowed) return route;
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allowed}.`, { allow: allowed });
  };
  if (path === null || path.length > 1) throw notFound;
  if (path.length === 0) return only('POST', { name: 'create' });
  if (path[0] === 'step') return only('POST', { name: 'step' });
  if (path[0] === 'expire') return only('POST', { name: 'expire' });
  const id = uuid.safeParse(path[0]);
  if (!id.success) throw notFound;
  return only('GET', { name: 'show', exportId: id.data.toLowerCase() });
}
