import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { functionPath } from '../_shared/route-path.ts';

export type BillingRoute = { name: 'renderPdfs' } | { name: 'invoicePdf'; invoiceId: string };

const uuid = z.guid();

/**
 * - POST /billing                         the service role (pg_cron / pg_net): render pending invoice PDFs
 * - GET  /billing/invoices/:id/pdf        a signed-in owner or admin: a short-lived link to the PDF
 * An id that is not a uuid names nothing: 404, as an unknown id would.
 */
export function matchRoute(method: string, pathname: string): BillingRoute {
  const path = functionPath(pathname, 'billing');
  const notFound = new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
  const only = (allowed: string, route: BillingRoute): BillingRoute => {
    if (method === allowed) return route;
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allowed}.`, { allow: allowed });
  };
  if (path === null) throw notFound;
  if (path.length === 0) return only('POST', { name: 'renderPdfs' });
  if (path.length === 3 && path[0] === 'invoices' && path[2] === 'pdf') {
    const id = uuid.safeParse(path[1]);
    if (!id.success) throw notFound;
    return only('GET', { name: 'invoicePdf', invoiceId: id.data.toLowerCase() });
  }
  throw notFound;
}
