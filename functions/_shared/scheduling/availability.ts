/**
 * Free slots for a bot (or the org): the open ranges SQL computes (business
 * hours in local days, so DST keeps 09:00 at 09:00, minus closures) minus
 * booked appointments minus the busy times of every calendar that counts for
 * the bot (its own and the org's), asked of all providers at once. A
 * calendar that cannot be read is reported in `missing`, never treated as
 * free. Slots never start in the past, nor before `from`.
 *
 * Slots line up with the opening, whatever `from` is: SQL names the grid's
 * origins (private.slot_origins: each business-hours opening, where a range
 * joined across midnight from an overnight row keeps the opening of the row
 * it started in; each local midnight of the bot's zone, else the org's,
 * when no hours are set or the hours run all day) and the open ranges are
 * read from the last origin at or before `from`, so a range open at `from`
 * keeps its real opening (09:00 business hours give 09:00, 09:30... when
 * asked from 09:23:17), and only then are starts before `from` left out. The grid
 * restarts at every origin and after a closure (at its end), so the slots of
 * a day are the same whether asked from that day or a week before.
 *
 * The SQL parts come in one statement run by the caller's scope: as the
 * signed-in user (the functions check calendar.read) or as the service role
 * for a bot's API key. Tokens are read by the session as the service role.
 */
import type { TransactionSql } from '../db.ts';
import { freeSlots, type Interval } from '../calendar/index.ts';
import { CalendarUnavailable, type CalendarSession, type MissingReason } from './session.ts';

export type Scoped = <T>(fn: (tx: TransactionSql) => Promise<T>) => Promise<T>;

export interface AvailabilityRequest {
  orgId: string;
  botId: string | null;
  from: Date;
  to: Date;
  durationMinutes: number;
  stepMinutes?: number;
  resource: string;
  /**
   * false: the grid starts at `from` itself rather than at the opening. Only
   * for checking that one exact time is free (a booking), where the caller
   * chose the start and it need not sit on any grid. Default true.
   */
  alignToOpening?: boolean;
}

export interface MissingCalendar {
  connection_id: string;
  provider: string;
  reason: MissingReason;
}

export interface AvailabilityResult {
  /** The bot's zone, else the org's (the default for showing slots). */
  timeZone: string;
  slots: Interval[];
  missing: MissingCalendar[];
}

interface PartsRow {
  time_zone: string | null;
  open: [number, number][];
  origins: number[];
  booked: [number, number][];
  calendars: { connection_id: string; provider: string; status: string }[];
}

const toIntervals = (pairs: [number, number][]) =>
  pairs.map(([start, end]) => ({ start: new Date(Number(start)), end: new Date(Number(end)) }));

/** Open ranges, booked times and the calendars that count, in one round trip (tstzmultiranges as epoch ms pairs). */
async function readParts(scoped: Scoped, request: AvailabilityRequest): Promise<PartsRow> {
  return await scoped(async (tx) => {
    const from = request.from.toISOString();
    const to = request.to.toISOString();
    const during = tx`tstzrange(${from}::timestamptz, ${to}::timestamptz, '[)')`;
    const aligned = request.alignToOpening !== false;
    // Read from the last origin at or before `from`: a range open at `from` keeps its opening (clipping it to `from`
    // made slots start at 09:23:17, 09:53:17, ...). An exact time (alignToOpening false) needs no grid.
    const origins = aligned
      ? tx`private.slot_origins(${request.orgId}::uuid, ${request.botId}::uuid, ${during})`
      : tx`'{}'::timestamptz[]`;
    const openDuring = tx`tstzrange(
      coalesce((select max(o) from unnest(grid.origins) o where o <= ${from}::timestamptz), ${from}::timestamptz),
      ${to}::timestamptz, '[)')`;
    const pairs = (ranges: ReturnType<typeof tx>) => tx`
      select coalesce(json_agg(json_build_array(extract(epoch from lower(r)) * 1000, extract(epoch from upper(r)) * 1000)
                      order by lower(r)), '[]'::json)
      from unnest(${ranges}) r`;
    const [row] = await tx<PartsRow[]>`
      with grid as (select ${origins} as origins)
      select
        (${pairs(tx`private.open_ranges(${request.orgId}::uuid, ${request.botId}::uuid, ${openDuring})`)}) as open,
        (select coalesce(json_agg(extract(epoch from o) * 1000 order by o), '[]'::json) from unnest(grid.origins) o) as origins,
        (${pairs(tx`private.busy_from_appointments(${request.orgId}::uuid, ${request.resource}, ${during})`)}) as booked,
        (select coalesce(json_agg(json_build_object('connection_id', c.connection_id, 'provider', c.provider, 'status', c.status)),
                         '[]'::json)
         from private.calendars_for_bot(${request.orgId}::uuid, ${request.botId}::uuid) c) as calendars,
        private.bot_time_zone(${request.orgId}::uuid, ${request.botId}::uuid) as time_zone
      from grid`;
    return row;
  });
}

export async function computeAvailability(
  scoped: Scoped,
  session: CalendarSession,
  request: AvailabilityRequest,
  now: Date,
): Promise<AvailabilityResult> {
  const parts = await readParts(scoped, request);
  const missing: MissingCalendar[] = parts.calendars
    .filter((calendar) => calendar.status !== 'connected')
    .map((calendar) => ({ connection_id: calendar.connection_id, provider: calendar.provider, reason: 'needs_reauth' }));
  const connected = parts.calendars.filter((calendar) => calendar.status === 'connected');
  const busy: Interval[] = toIntervals(parts.booked);

  // Only the future matters: ask the providers from now on (or not at all for a past window).
  const busyFrom = new Date(Math.max(request.from.getTime(), now.getTime()));
  // Open ranges may start before `from` (the grid's origin); only open time after busyFrom needs the providers.
  const openAhead = parts.open.some(([, end]) => end > busyFrom.getTime());
  if (connected.length > 0 && busyFrom < request.to && openAhead) {
    await session.load(connected.map((calendar) => calendar.connection_id));
    const outcomes = await Promise.all(
      connected.map((calendar) =>
        session.busy(calendar.connection_id, busyFrom, request.to, parts.time_zone ?? undefined).then(
          (times) => ({ calendar, times, error: undefined }),
          (error: unknown) => ({ calendar, times: [], error }),
        )
      ),
    );
    for (const { calendar, times, error } of outcomes) {
      if (error === undefined) {
        busy.push(...times);
      } else if (error instanceof CalendarUnavailable) {
        missing.push({ connection_id: calendar.connection_id, provider: calendar.provider, reason: error.reason });
      } else {
        throw error;
      }
    }
  }

  const slots = freeSlots({
    open: toIntervals(parts.open),
    origins: parts.origins.map((origin) => new Date(Number(origin))),
    busy,
    durationMinutes: request.durationMinutes,
    ...(request.stepMinutes === undefined ? {} : { stepMinutes: request.stepMinutes }),
    // Open ranges may begin before `from` (their opening is the grid's origin); no slot does.
    notBefore: busyFrom,
    // An exact time the caller chose is checked as it is, seconds included.
    wholeMinutes: request.alignToOpening !== false,
  });
  return { timeZone: parts.time_zone ?? 'UTC', slots, missing };
}
