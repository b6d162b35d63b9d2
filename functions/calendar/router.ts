import { HttpError } from '../_shared/errors.ts';

export type CalendarRoute =
  | { name: 'oauthStart' }
  | { name: 'oauthCallback' }
  | { name: 'oauthComplete' }
  | { name: 'disconnect'; connectionId: string }
  | { name: 'availability' }
  | { name: 'botAvailability'; botId: string }
  | { name: 'createAppointment' }
  | { name: 'rescheduleAppointment'; appointmentId: string }
  | { name: 'cancelAppointment'; appointmentId: string }
  | { name: 'botAppointment'; botId: string }
  | { name: 'mirrorDue' }
  | { name: 'revokeDue' }
  | { name: 'reseal' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/iu;

/**
 * The path below the function's name (`/calendar/...`; `/functions/v1/calendar/...`
 * also accepted, for a proxy forwarding the public path):
 * - POST   /calendar/oauth/start                        admins (JWT): the provider's authorization URL
 * - GET    /calendar/oauth/callback                     the provider's browser redirect (signed state, no JWT)
 * - POST   /calendar/oauth/complete                     admins (JWT): the connection request of the callback, by its user
 * - POST   /calendar/connections/:id/disconnect         admins (JWT)
 * - GET    /calendar/availability                       members (JWT)
 * - POST   /calendar/appointments                       members (JWT)
 * - PATCH  /calendar/appointments/:id                   members (JWT): reschedule
 * - DELETE /calendar/appointments/:id                   members (JWT): cancel
 * - GET    /calendar/bots/:bot_id/availability          bot API keys (calendar.read)
 * - POST   /calendar/bots/:bot_id/appointments          bot API keys (calendar.write)
 * - POST   /calendar/mirroring                          the service role (pg_cron through pg_net): mirror due appointments, delete due stray events
 * - POST   /calendar/revocations                        the service role (pg_cron through pg_net): revoke leavers' and deleted orgs' grants at the provider, delete their connections or copies
 * - POST   /calendar/reseal                             the service role (an operator, during a CALENDAR_TOKEN_KEY rotation): re-seal tokens under the first key
 * An id that is not a uuid names nothing: 404, as an unknown id would.
 */
export function matchRoute(method: string, pathname: string): CalendarRoute {
  const segments = pathname.split('/').filter((segment) => segment !== '');
  const start = segments[0] === 'functions' && segments[1] === 'v1' ? 2 : 0;
  const path = segments[start] === 'calendar' ? segments.slice(start + 1) : null;
  const notFound = () => new HttpError(404, 'not_found', `Nothing is served at ${pathname}.`);
  const only = (allowed: string[], pick: () => CalendarRoute): CalendarRoute => {
    if (allowed.includes(method)) return pick();
    throw new HttpError(405, 'method_not_allowed', `${method} is not supported here; use ${allowed.join(' or ')}.`, {
      allow: allowed.join(', '),
    });
  };
  const id = (value: string | undefined): string => {
    if (value === undefined || !UUID.test(value)) throw notFound();
    return value.toLowerCase();
  };
  if (path === null) throw notFound();
  const [first, second, third, ...rest] = path;
  if (rest.length > 0) throw notFound();

  if (first === 'oauth' && third === undefined) {
    if (second === 'start') return only(['POST'], () => ({ name: 'oauthStart' }));
    if (second === 'callback') return only(['GET'], () => ({ name: 'oauthCallback' }));
    if (second === 'complete') return only(['POST'], () => ({ name: 'oauthComplete' }));
  }
  if (first === 'connections' && third === 'disconnect') {
    const connectionId = id(second);
    return only(['POST'], () => ({ name: 'disconnect', connectionId }));
  }
  if (first === 'availability' && second === undefined) return only(['GET'], () => ({ name: 'availability' }));
  if (first === 'mirroring' && second === undefined) return only(['POST'], () => ({ name: 'mirrorDue' }));
  if (first === 'revocations' && second === undefined) return only(['POST'], () => ({ name: 'revokeDue' }));
  if (first === 'reseal' && second === undefined) return only(['POST'], () => ({ name: 'reseal' }));
  if (first === 'appointments') {
    if (second === undefined) return only(['POST'], () => ({ name: 'createAppointment' }));
    if (third === undefined) {
      const appointmentId = id(second);
      return only(['PATCH', 'DELETE'], () =>
        method === 'PATCH'
          ? { name: 'rescheduleAppointment', appointmentId }
          : { name: 'cancelAppointment', appointmentId });
    }
  }
  if (first === 'bots' && third !== undefined) {
    const botId = id(second);
    if (third === 'availability') return only(['GET'], () => ({ name: 'botAvailability', botId }));
    if (third === 'appointments') return only(['POST'], () => ({ name: 'botAppointment', botId }));
  }
  throw notFound();
}
