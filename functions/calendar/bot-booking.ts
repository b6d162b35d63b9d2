/**
 * POST /calendar/bots/:bot_id/appointments (a bot's API key with
 * calendar.write): a bot books for its caller, only inside a free slot
 * (see _shared/scheduling/book-free-slot.ts): 409 `slot_unavailable` or
 * `calendar_unavailable` otherwise, 409 `slot_taken` when another booking
 * won the race. The body may name a `resource` (default `default`): the
 * slot is checked and booked on it. Unknown keys are a 400. Answers 201
 * `{ appointment }`.
 */
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { publicAppointment } from '../_shared/scheduling/appointment-row.ts';
import type { Scoped } from '../_shared/scheduling/availability.ts';
import { bookFreeSlot } from '../_shared/scheduling/book-free-slot.ts';
import { asBot, authenticateBot } from './bot-caller.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { botAppointmentBody, readBody } from './schemas.ts';

export async function botAppointment(ctx: RequestContext, req: Request, botId: string): Promise<Response> {
  const caller = await authenticateBot(ctx.sql, req, botId, 'calendar.write');
  const body = await readBody(req, botAppointmentBody);
  const scoped: Scoped = (fn) => asBot(ctx.sql, caller, fn);
  const outcome = await bookFreeSlot(ctx, scoped, {
    orgId: caller.orgId,
    botId: caller.botId,
    startsAt: body.starts_at,
    endsAt: body.ends_at,
    attendeeName: body.attendee_name,
    attendeeEmail: body.attendee_email,
    attendeePhone: body.attendee_phone,
    notes: body.notes,
    conversationId: body.conversation_id,
    callId: body.call_id,
    resource: body.resource,
  });
  if (!outcome.booked) throw new HttpError(409, outcome.reason, outcome.message);
  return json({ appointment: publicAppointment(outcome.appointment) }, 201);
}
