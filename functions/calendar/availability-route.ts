/**
 * GET /calendar/availability (members, JWT) and GET /calendar/bots/:bot_id/availability
 * (a bot's API key with calendar.read): free slots in the requested zone
 * (default the bot's, else the org's), with the calendars that could not be read.
 * Answer: `{ time_zone, slots: [{ start, end }], missing_calendars: [{ connection_id, provider, reason }] }`.
 */
import type { UserClaims } from '../_shared/auth.ts';
import { withUserScope } from '../_shared/db.ts';
import { formatSlot, isValidTimeZone } from '../_shared/calendar/index.ts';
import { json } from '../_shared/http.ts';
import { type AvailabilityResult, computeAvailability, type Scoped } from '../_shared/scheduling/availability.ts';
import { asBot, authenticateBot } from './bot-caller.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { mapCalendarErrors } from './errors.ts';
import { type AvailabilityQuery, availabilityQuery, botAvailabilityQuery, readQuery } from './schemas.ts';

function answer(result: AvailabilityResult, query: AvailabilityQuery): Response {
  // The database's zone list and the runtime's ICU may disagree on a rare name: UTC rather than a 500.
  const timeZone = query.time_zone ?? (isValidTimeZone(result.timeZone) ? result.timeZone : 'UTC');
  return json({
    time_zone: timeZone,
    slots: result.slots.map((slot) => formatSlot(slot, timeZone)),
    missing_calendars: result.missing,
  });
}

async function run(ctx: RequestContext, scoped: Scoped, orgId: string, botId: string | null, query: AvailabilityQuery) {
  return await computeAvailability(
    scoped,
    ctx.session,
    {
      orgId,
      botId,
      from: query.from,
      to: query.to,
      durationMinutes: query.duration_minutes,
      ...(query.step_minutes === undefined ? {} : { stepMinutes: query.step_minutes }),
      resource: query.resource,
    },
    ctx.settings.now(),
  );
}

export async function userAvailability(ctx: RequestContext, req: Request, claims: UserClaims): Promise<Response> {
  const query = readQuery(new URL(req.url), availabilityQuery);
  const scoped: Scoped = (fn) =>
    mapCalendarErrors(() => withUserScope(ctx.sql, claims, fn), {
      forbidden: 'You need the calendar.read permission in this organization.',
    });
  return answer(await run(ctx, scoped, query.org_id, query.bot_id ?? null, query), query);
}

export async function botAvailability(ctx: RequestContext, req: Request, botId: string): Promise<Response> {
  const caller = await authenticateBot(ctx.sql, req, botId, 'calendar.read');
  const query = readQuery(new URL(req.url), botAvailabilityQuery);
  const scoped: Scoped = (fn) => asBot(ctx.sql, caller, fn);
  return answer(await run(ctx, scoped, caller.orgId, caller.botId, query), query);
}
