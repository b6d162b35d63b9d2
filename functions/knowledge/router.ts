import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { functionPath } from '../_shared/route-path.ts';

export type Route =
  | { name: 'listDocuments' }
  | { name: 'uploadDocument' }
  | { name: 'retrieveDocument'; id: string }
  | { name: 'deleteDocument'; id: string }
  | { name: 'retryDocument'; id: string }
  | { name: 'search' }
  | { name: 'searchProducts' }
  | { name: 'reembed' };

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts.
const id = z.guid();

function documentId(raw: string): string {
  const parsed = id.safeParse(raw);
  if (!parsed.success) throw new HttpError(422, 'invalid_request', 'The document id must be a UUID.');
  return parsed.data;
}

/**
 * The route for a request (`/knowledge/...`; the public `/functions/v1`
 * prefix too, for proxies that forward it). A path served with other methods
 * is a 405 whose Allow header lists them:
 * - GET, POST   /knowledge/documents
 * - GET, DELETE /knowledge/documents/:id
 * - POST        /knowledge/documents/:id/retry
 * - POST        /knowledge/search
 * - POST        /knowledge/products/search
 * - POST        /knowledge/reembed
 */
export function matchRoute(method: string, pathname: string): Route {
  const rest = functionPath(pathname, 'knowledge');
  const only = (routes: Record<string, () => Route>): Route => {
    const route = routes[method];
    if (route) return route();
    const methods = Object.keys(routes);
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${methods.join(' or ')}.`, {
      allow: methods.join(', '),
    });
  };
  if (rest && rest.length === 1 && rest[0] === 'search') return only({ POST: () => ({ name: 'search' }) });
  if (rest && rest.length === 1 && rest[0] === 'reembed') return only({ POST: () => ({ name: 'reembed' }) });
  if (rest && rest.length === 2 && rest[0] === 'products' && rest[1] === 'search') {
    return only({ POST: () => ({ name: 'searchProducts' }) });
  }
  if (rest && rest[0] === 'documents') {
    if (rest.length === 1) return only({ GET: () => ({ name: 'listDocuments' }), POST: () => ({ name: 'uploadDocument' }) });
    if (rest.length === 2) {
      return only({
        GET: () => ({ name: 'retrieveDocument', id: documentId(rest[1]) }),
        DELETE: () => ({ name: 'deleteDocument', id: documentId(rest[1]) }),
      });
    }
    if (rest.length === 3 && rest[2] === 'retry') return only({ POST: () => ({ name: 'retryDocument', id: documentId(rest[1]) }) });
  }
  throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
}
