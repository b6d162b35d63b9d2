import { z } from 'zod';
import { HttpError } from '../_shared/errors.ts';
import { functionPath } from '../_shared/route-path.ts';

export type CallsRoute =
  | { name: 'list' }
  | { name: 'create' }
  | { name: 'retrieve'; id: string }
  | { name: 'cancel'; id: string }
  | { name: 'listCampaigns' }
  | { name: 'createCampaign' }
  | { name: 'retrieveCampaign'; id: string }
  | { name: 'cancelCampaign'; id: string };

// Any 8-4-4-4-12 hex id, as Postgres's uuid type accepts.
const uuid = z.guid();

function uuidOf(what: string, raw: string): string {
  const parsed = uuid.safeParse(raw);
  if (!parsed.success) throw new HttpError(422, 'invalid_request', `The ${what} id must be a UUID.`);
  return parsed.data;
}

const callId = (raw: string) => uuidOf('call', raw);
const campaignId = (raw: string) => uuidOf('campaign', raw);

type Only = (allowed: string, route: () => CallsRoute) => CallsRoute;

/** Below `/calls/campaigns` ("campaigns" is never a call id: those are UUIDs). */
function matchCampaignRoute(method: string, rest: string[], only: Only, pathname: string): CallsRoute {
  if (rest.length === 0) {
    return only('GET, POST', () => (method === 'GET' ? { name: 'listCampaigns' } : { name: 'createCampaign' }));
  }
  if (rest.length === 1) return only('GET', () => ({ name: 'retrieveCampaign', id: campaignId(rest[0]) }));
  if (rest.length === 2 && rest[1] === 'cancel') return only('POST', () => ({ name: 'cancelCampaign', id: campaignId(rest[0]) }));
  throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
}

/**
 * The route for a request (`/calls/...`; the public `/functions/v1/calls/...`
 * too, for proxies that forward it):
 * - GET  /calls                       the key's org's calls, newest first (calls.read)
 * - POST /calls                       queue an outbound call (calls.write)
 * - GET  /calls/:id                   one call with its transcript (calls.read)
 * - POST /calls/:id/cancel            cancel a queued call (calls.write)
 * - GET  /calls/campaigns             the key's org's campaigns, newest first (calls.read)
 * - POST /calls/campaigns             queue a campaign: one call per number (calls.write)
 * - GET  /calls/campaigns/:id         one campaign with its calls counted by status (calls.read)
 * - POST /calls/campaigns/:id/cancel  cancel a campaign and its queued calls (calls.write)
 */
export function matchRoute(method: string, pathname: string): CallsRoute {
  const rest = functionPath(pathname, 'calls');
  const only: Only = (allowed, route) => {
    const methods = allowed.split(', ');
    if (methods.includes(method)) return route();
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${methods.join(' or ')}.`, {
      allow: allowed,
    });
  };
  if (rest && rest[0] === 'campaigns') return matchCampaignRoute(method, rest.slice(1), only, pathname);
  if (rest && rest.length === 0) {
    return only('GET, POST', () => (method === 'GET' ? { name: 'list' } : { name: 'create' }));
  }
  if (rest && rest.length === 1) return only('GET', () => ({ name: 'retrieve', id: callId(rest[0]) }));
  if (rest && rest.length === 2 && rest[1] === 'cancel') return only('POST', () => ({ name: 'cancel', id: callId(rest[0]) }));
  throw new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
}
