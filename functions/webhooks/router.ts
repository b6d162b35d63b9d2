import { HttpError } from '../_shared/errors.ts';

export type RouteName =
  | 'createEndpoint'
  | 'getEndpoint'
  | 'updateEndpoint'
  | 'deleteEndpoint'
  | 'rotateSecret'
  | 'sendTest'
  | 'replayDelivery';

export interface RouteMatch {
  name: RouteName;
  /** The `:id` segment, not yet validated. */
  id?: string;
}

interface Route {
  pattern: string[];
  methods: Partial<Record<string, RouteName>>;
}

const ROUTES: Route[] = [
  { pattern: ['endpoints'], methods: { POST: 'createEndpoint' } },
  { pattern: ['endpoints', ':id'], methods: { GET: 'getEndpoint', PATCH: 'updateEndpoint', DELETE: 'deleteEndpoint' } },
  { pattern: ['endpoints', ':id', 'rotate-secret'], methods: { POST: 'rotateSecret' } },
  { pattern: ['endpoints', ':id', 'test'], methods: { POST: 'sendTest' } },
  { pattern: ['deliveries', ':id', 'replay'], methods: { POST: 'replayDelivery' } },
];

/**
 * The path below the function's name. The local runtime and Supabase's edge
 * runtime both pass `/webhooks/...`; the `/functions/v1` prefix is accepted too
 * so the handler also works behind a proxy that forwards the public path.
 */
function routeSegments(pathname: string): string[] | null {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  return segments[start] === 'webhooks' ? segments.slice(start + 1) : null;
}

/** The route for a request: 404 for an unknown path, 405 (with Allow) for a known path and another method. */
export function matchRoute(method: string, pathname: string): RouteMatch {
  const notFound = new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
  const segments = routeSegments(pathname);
  if (segments === null) throw notFound;
  for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    let id: string | undefined;
    const matches = route.pattern.every((part, index) => {
      if (part !== ':id') return part === segments[index];
      id = segments[index];
      return true;
    });
    if (!matches) continue;
    const name = route.methods[method];
    if (!name) {
      const allow = Object.keys(route.methods).join(', ');
      throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allow}.`, { allow });
    }
    return id === undefined ? { name } : { name, id };
  }
  throw notFound;
}
