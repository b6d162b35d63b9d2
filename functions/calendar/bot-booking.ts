/**
 * POST /calendar/bots/:bot_id/appointments (a bot's API key with
 * calendar.write): a bot books for its caller, only inside a free slot as
 * availability computes it, the providers' busy times included (409
 * `slot_unavailable` otherwise). A calendar that cannot be read makes the
 * time unknowable, so the booking is refused (409 `calendar_unavailable`)
 * rather than risk a clash with the owner's real calendar. Then
 * private.book_appointment_for_bot (source `bot`; the exclusion constraint
 * settles a race with another booking: 409 `slot_taken`) and mirroring.
 * Answers 201 `{ appointment }`.
 */
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { type AppointmentRow, appointmentColumns, publicAppointment } from './appointment-row.ts';
import { computeAvailability, type Scoped } from './availability.ts';
import { asBot, authenticateBot } from './bot-caller.ts';
import type { RequestContext } from './context.ts';
import { mirrorAppointment } from './mirror.ts';
import { botAppointmentBody, readBody } from './schemas.ts';

export async function botAppointment(ctx: RequestContext, req: Request, botId: string): Promise<Response> {
  const caller = await authenticateBot(ctx.sql, req, botId, 'calendar.write');
  const body = await readBody(req, botAppointmentBody);
  const scoped: Scoped = (fn) => asBot(ctx.sql, caller, fn);
  const now = ctx.settings.now();
  const durationMinutes = (body.ends_at.getTime() - body.starts_at.getTime()) / 60_000;

  // The availability of exactly this window: free means one slot covering all of it.
  const check = await computeAvailability(
    scoped,
    ctx.session,
    {
      orgId: caller.orgId,
      botId: caller.botId,
      from: body.starts_at,
      to: body.ends_at,
      durationMinutes,
      stepMinutes: durationMinutes,
      resource: 'default',
    },
    now,
  );
  if (check.missing.length > 0) {
    const which = check.missing.map((calendar) => `${calendar.provider} (${calendar.reason})`).join(', ');
    throw new HttpError(
      409,
      'calendar_unavailable',
      `The time cannot be confirmed free: a connected calendar could not be read: ${which}.`,
    );
  }
  const free = check.slots.some((slot) =>
    slot.start.getTime() === body.starts_at.getTime() && slot.end.getTime() === body.ends_at.getTime()
  );
  if (!free) {
    throw new HttpError(
      409,
      'slot_unavailable',
      body.starts_at < now
        ? 'That time has already passed; ask for the free slots.'
        : 'That time is not free (outside business hours, closed, or busy); ask for the free slots.',
    );
  }

  const [row] = await asBot(ctx.sql, caller, (tx) =>
    tx<AppointmentRow[]>`
      select ${appointmentColumns(tx)}
      from private.book_appointment_for_bot(
        bot_id => ${caller.botId}::uuid,
        starts_at => ${body.starts_at.toISOString()}::timestamptz,
        ends_at => ${body.ends_at.toISOString()}::timestamptz,
        attendee_name => ${body.attendee_name},
        attendee_email => ${body.attendee_email ?? null},
        attendee_phone => ${body.attendee_phone ?? null},
        notes => ${body.notes ?? null},
        conversation_id => ${body.conversation_id ?? null}::uuid,
        call_id => ${body.call_id ?? null}::uuid
      ) a`);
  if (!row) throw new Error('book_appointment_for_bot returned no row');
  const mirrored = await mirrorAppointment(ctx, row);
  return json({ appointment: publicAppointment(mirrored) }, 201);
}
