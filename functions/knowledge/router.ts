import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';

export type Route =
  | { name: 'uploadDocument' }
  | { name: 'deleteDocument'; id: string }
  | { name: 'search' }
  | { name: 'searchProducts' };

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts.
const id = z.guid();

/**
 * The route for a request. The path below the function's name is what the
 * local runtime and Supabase's edge runtime pass (`/knowledge/...`); the
 * public `/functions/v1` prefix is accepted too, for proxies that forward it.
 */
export function matchRoute(method: string, pathname: string): Route {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  const rest = segments[start] === 'knowledge' ? segments.slice(start + 1) : null;
  if (rest && rest.length === 1 && rest[0] === 'search') {
    if (method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use POST.`, { allow: 'POST' });
    }
    return { name: 'search' };
  }
  if (rest && rest.length === 2 && rest[0] === 'products' && rest[1] === 'search') {
    if (method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use POST.`, { allow: 'POST' });
    }
    return { name: 'searchProducts' };
  }
  if (rest && rest.length === 1 && rest[0] === 'documents') {
    if (method !== 'POST') {
      throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use POST.`, { allow: 'POST' });
    }
    return { name: 'uploadDocument' };
  }
  if (rest && rest.length === 2 && rest[0] === 'documents') {
    if (method !== 'DELETE') {
      throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use DELETE.`, { allow: 'DELETE' });
    }
    const parsed = id.safeParse(rest[1]);
    if (!parsed.success) throw new HttpError(422, 'invalid_request', 'The document id must be a UUID.');
    return { name: 'deleteDocument', id: parsed.data };
  }
  throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
}
