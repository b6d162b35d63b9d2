/**
 * A bot books for its caller only inside a free slot as availability computes
 * it, the providers' busy times included. A calendar that cannot be read
 * makes the time unknowable, so the booking is refused rather than risk a
 * clash with the owner's real calendar. Then private.book_appointment_for_bot
 * (source `bot`; the exclusion constraint settles a race with another
 * booking) and mirroring. Shared by the calendar function's bot route (which
 * answers refusals with 409) and the chat core's booking step (which says
 * them to the user, with the next free times). `onBooked` runs in the
 * booking's transaction (the bot route keeps its idempotent answer there).
 */
import type { Interval } from '../calendar/index.ts';
import type { TransactionSql } from '../db.ts';
import { type AppointmentRow, appointmentColumns } from './appointment-row.ts';
import { computeAvailability, type MissingCalendar, type Scoped } from './availability.ts';
import type { RequestContext } from './context.ts';
import { mirrorAppointment } from './mirror.ts';

export interface FreeSlotRequest {
  orgId: string;
  botId: string;
  startsAt: Date;
  endsAt: Date;
  attendeeName: string;
  attendeeEmail?: string | null;
  attendeePhone?: string | null;
  notes?: string | null;
  conversationId?: string | null;
  callId?: string | null;
  /** What the appointment occupies (a room, a person); checked and booked on it. Default `default`. */
  resource?: string;
}

export type FreeSlotOutcome =
  | { booked: true; appointment: AppointmentRow }
  | { booked: false; reason: 'calendar_unavailable' | 'slot_unavailable'; message: string };

/** `scoped` runs the SQL as whoever acts for the bot (the service role, with the caller's claims for the audit log). */
export async function bookFreeSlot(
  ctx: RequestContext,
  scoped: Scoped,
  request: FreeSlotRequest,
  onBooked?: (tx: TransactionSql, row: AppointmentRow) => Promise<void>,
): Promise<FreeSlotOutcome> {
  const now = ctx.settings.now();
  const durationMinutes = (request.endsAt.getTime() - request.startsAt.getTime()) / 60_000;
  const resource = request.resource ?? 'default';
  // The availability of exactly this window: free means one slot covering all of it.
  const check = await computeAvailability(
    scoped,
    ctx.session,
    {
      orgId: request.orgId,
      botId: request.botId,
      from: request.startsAt,
      to: request.endsAt,
      durationMinutes,
      stepMinutes: durationMinutes,
      resource,
      // The caller chose the start: check that time, not whether it sits on the slot grid.
      alignToOpening: false,
    },
    now,
  );
  if (check.missing.length > 0) {
    const which = check.missing.map((calendar) => `${calendar.provider} (${calendar.reason})`).join(', ');
    return {
      booked: false,
      reason: 'calendar_unavailable',
      message: `The time cannot be confirmed free: a connected calendar could not be read: ${which}.`,
    };
  }
  const free = check.slots.some((slot) =>
    slot.start.getTime() === request.startsAt.getTime() && slot.end.getTime() === request.endsAt.getTime()
  );
  if (!free) {
    return {
      booked: false,
      reason: 'slot_unavailable',
      message: request.startsAt < now
        ? 'That time has already passed; ask for the free slots.'
        : 'That time is not free (outside business hours, closed, or busy); ask for the free slots.',
    };
  }

  const row = await scoped(async (tx) => {
    const [booked] = await tx<AppointmentRow[]>`
      select ${appointmentColumns(tx)}
      from private.book_appointment_for_bot(
        bot_id => ${request.botId}::uuid,
        starts_at => ${request.startsAt.toISOString()}::timestamptz,
        ends_at => ${request.endsAt.toISOString()}::timestamptz,
        attendee_name => ${request.attendeeName},
        attendee_email => ${request.attendeeEmail ?? null},
        attendee_phone => ${request.attendeePhone ?? null},
        notes => ${request.notes ?? null},
        conversation_id => ${request.conversationId ?? null}::uuid,
        call_id => ${request.callId ?? null}::uuid,
        resource => ${resource}
      ) a`;
    if (!booked) throw new Error('book_appointment_for_bot returned no row');
    await onBooked?.(tx, booked);
    return booked;
  });
  return { booked: true, appointment: await mirrorAppointment(ctx, row) };
}

/**
 * The first free slots of that length from `from` on, looking a week ahead,
 * on the default resource (the chat's): what to offer instead. With the
 * calendars that could not be read (`missing`): slots computed without them
 * may clash with them, so a caller offers none then.
 */
export async function nextFreeSlots(
  ctx: RequestContext,
  scoped: Scoped,
  request: { orgId: string; botId: string; from: Date; durationMinutes: number; count: number },
): Promise<{ slots: Interval[]; timeZone: string; missing: MissingCalendar[] }> {
  const from = new Date(Math.max(request.from.getTime(), ctx.settings.now().getTime()));
  const result = await computeAvailability(
    scoped,
    ctx.session,
    {
      orgId: request.orgId,
      botId: request.botId,
      from,
      to: new Date(from.getTime() + 7 * 86_400_000),
      durationMinutes: request.durationMinutes,
      resource: 'default',
    },
    ctx.settings.now(),
  );
  return { slots: result.slots.slice(0, request.count), timeZone: result.timeZone, missing: result.missing };
}
