/**
 * The calendar function: connecting Google and Microsoft calendars (OAuth
 * with PKCE and a signed single-use state), availability, and appointments
 * mirrored to the connected calendar. Routes in router.ts.
 *
 * Who calls what:
 * - the dashboard, as a signed-in user (JWT, verified here; SQL checks
 *   calendar.manage, calendar.read or appointments.write): oauth/start,
 *   oauth/complete, connections/:id/disconnect, availability, appointments;
 * - the provider, redirecting the admin's browser: oauth/callback (no JWT;
 *   the signed state stands for the user, so it only parks the tokens until
 *   that user completes the connection in their own session);
 * - a voice agent's tool calls (e.g. Vapi's function tools) and our chat
 *   core, with a bot's API key: `GET /calendar/bots/:bot_id/availability`
 *   (scope calendar.read) to offer free slots to a caller, and
 *   `POST /calendar/bots/:bot_id/appointments` (scope calendar.write) to book
 *   one of them; a bot can only book inside a free slot, provider busy times
 *   included;
 * - pg_cron through pg_net, with the service-role key: `POST
 *   /calendar/mirroring` mirrors the appointments whose mirroring is due
 *   (pending for over a minute, or failed and due for a retry), and `POST
 *   /calendar/revocations` revokes at the provider the grants of calendars
 *   whose connector left the org, then deletes them;
 * - an operator, with the service-role key: `POST /calendar/reseal` re-seals
 *   tokens under CALENDAR_TOKEN_KEY's first key (reseal.ts) before an old key
 *   is dropped.
 * verify_jwt is off for this function as a whole (supabase/config.toml),
 * since the callback and API keys carry no Supabase JWT; each route
 * authenticates its caller itself.
 *
 * A signed-in user's availability, appointment and disconnect requests take
 * from the user's calendar bucket, `calendar:user:<id>` at 60 a minute over
 * these routes together (429 `rate_limited` with Retry-After; a refused
 * request takes nothing): each availability asks every connected calendar's
 * provider for its busy times, and a member looping on it would spend the
 * org's provider quota. A bot's key takes from its own bucket
 * (bot-caller.ts). None is taken by the OAuth flow (an admin's clicks, each
 * complete spending a single-use state from the provider's consent screen;
 * start answers a deploy without the provider or the token key before the
 * database is reached), the callback (a browser redirect, no user) or the
 * service role's passes.
 */
import { requireUser } from '../_shared/auth.ts';
import { getSql, type Sql } from '../_shared/db.ts';
import { type EnvReader, processEnv } from '../_shared/env.ts';
import { createHandler } from '../_shared/handler.ts';
import type { HttpOptions } from '../_shared/calendar/index.ts';
import { cancelAppointment, createAppointment, rescheduleAppointment } from './appointments.ts';
import { botAvailability, userAvailability } from './availability-route.ts';
import { botAppointment } from './bot-booking.ts';
import { requestContext } from '../_shared/scheduling/context.ts';
import { disconnect } from './disconnect.ts';
import { oauthCallback, oauthComplete, oauthStart } from './oauth.ts';
import { mirrorDue } from './mirroring.ts';
import { revokeDue } from './revocations.ts';
import { resealTokens } from './reseal.ts';
import { matchRoute } from './router.ts';
import { requireServiceRole } from '../_shared/service-auth.ts';
import { takeRateLimit } from '../_shared/rate-limit.ts';

const USER_REQUESTS_PER_MINUTE = 60;

export interface CalendarDeps {
  sql: () => Sql;
  env?: EnvReader;
  now?: () => Date;
  /** Provider HTTP settings (tests inject a fetch or shorter waits). */
  http?: HttpOptions;
}

export function createCalendarHandler(deps: CalendarDeps): (req: Request) => Promise<Response> {
  const env = deps.env ?? processEnv;
  const settings = { env, http: deps.http ?? {}, now: deps.now ?? (() => new Date()) };
  return createHandler(async (req, { requestId }) => {
    const route = matchRoute(req.method, new URL(req.url).pathname);
    const ctx = requestContext(deps.sql, settings, requestId);
    /** The signed-in user, one request taken from their bucket (before the body or the query is read). */
    const limitedUser = async () => {
      const claims = await requireUser(req, { env });
      await takeRateLimit(ctx.sql, { bucket: `calendar:user:${claims.sub}`, perMinute: USER_REQUESTS_PER_MINUTE });
      return claims;
    };
    switch (route.name) {
      case 'oauthStart':
        return oauthStart(ctx, req, await requireUser(req, { env }));
      case 'oauthCallback':
        return oauthCallback(ctx, req);
      case 'oauthComplete':
        return oauthComplete(ctx, req, await requireUser(req, { env }));
      case 'disconnect':
        return disconnect(ctx, await limitedUser(), route.connectionId);
      case 'availability':
        return userAvailability(ctx, req, await limitedUser());
      case 'createAppointment':
        return createAppointment(ctx, req, await limitedUser());
      case 'rescheduleAppointment':
        return rescheduleAppointment(ctx, req, await limitedUser(), route.appointmentId);
      case 'cancelAppointment':
        return cancelAppointment(ctx, req, await limitedUser(), route.appointmentId);
      case 'botAvailability':
        return botAvailability(ctx, req, route.botId);
      case 'botAppointment':
        return botAppointment(ctx, req, route.botId);
      case 'mirrorDue':
        await requireServiceRole(req, { env, what: 'mirror due appointments' });
        return mirrorDue(ctx, req);
      case 'revokeDue':
        await requireServiceRole(req, { env, what: 'revoke calendar grants' });
        return revokeDue(ctx, req);
      case 'reseal':
        await requireServiceRole(req, { env, what: 're-seal calendar tokens' });
        return resealTokens(ctx, req);
    }
  }, { env, headNotServed: isOAuthCallback });
}

export const handler = createCalendarHandler({ sql: () => getSql() });

/** Whether a path routes to the OAuth callback, however spelt (a trailing or doubled slash routes there too). */
function isOAuthCallback(pathname: string): boolean {
  try {
    return matchRoute('GET', pathname).name === 'oauthCallback';
  } catch {
    return false;
  }
}
