/**
 * Staff appointments (members with appointments.write, JWT): create,
 * reschedule and cancel through the RPCs as the user, so SQL decides who may
 * and whether the time is bookable (business hours 22023, a taken time 23P01
 * → 409 `slot_taken`), then mirror the result to the connected calendar.
 * Staff see the calendar themselves, so unlike a bot they may book over a
 * provider's busy time; the database still forbids double booking.
 * Answers `{ appointment }` (201 for a new one) with its sync_status.
 *
 * A create takes an Idempotency-Key, kept for the user in the org
 * (_shared/idempotency.ts, as POST /webhooks/endpoints): claimed in the
 * booking's transaction before the slot is checked, so a resend after a lost
 * 201 replays it (`Idempotent-Replayed: true`, the appointment as booked,
 * before mirroring) instead of answering 409 `slot_taken` for its own
 * booking; a refusal rolls the claim back with the booking.
 */
import type { UserClaims } from '../_shared/auth.ts';
import { type TransactionSql, withUserScope } from '../_shared/db.ts';
import { json } from '../_shared/http.ts';
import { answerOnceForUser, idempotencyKeyFrom, replayHeaders } from '../_shared/idempotency.ts';
import { type AppointmentRow, appointmentColumns, publicAppointment } from '../_shared/scheduling/appointment-row.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { mapCalendarErrors } from './errors.ts';
import { mirrorAppointment } from '../_shared/scheduling/mirror.ts';
import { cancelBody, createAppointmentBody, readBody, readOptionalBody, rescheduleBody } from './schemas.ts';

type AppointmentAnswer = { appointment: ReturnType<typeof publicAppointment> };

const MESSAGES = {
  forbidden: 'You need the appointments.write permission in this organization.',
  notFound: 'The appointment, bot, call or conversation was not found.',
};

async function asUser(
  ctx: RequestContext,
  claims: UserClaims,
  fn: (tx: TransactionSql) => Promise<AppointmentRow[]>,
): Promise<AppointmentRow> {
  const [row] = await mapCalendarErrors(() => withUserScope(ctx.sql, claims, fn), MESSAGES);
  if (!row) throw new Error('The appointment RPC returned no row');
  return row;
}

async function answer(ctx: RequestContext, row: AppointmentRow, status = 200): Promise<Response> {
  const mirrored = await mirrorAppointment(ctx, row);
  return json({ appointment: publicAppointment(mirrored) }, status);
}

export async function createAppointment(ctx: RequestContext, req: Request, claims: UserClaims): Promise<Response> {
  const key = idempotencyKeyFrom(req);
  const body = await readBody(req, createAppointmentBody);
  // What makes two requests the same: the route and the body, its instants as UTC.
  const request = {
    route: 'POST /calendar/appointments',
    body: { ...body, starts_at: body.starts_at.toISOString(), ends_at: body.ends_at.toISOString() },
  };
  let booked: AppointmentRow | undefined;
  const once = await mapCalendarErrors(() =>
    withUserScope(ctx.sql, claims, (tx) =>
      answerOnceForUser<AppointmentAnswer>(tx, body.org_id, key, request, async () => {
        const [row] = await tx<AppointmentRow[]>`
          select ${appointmentColumns(tx)}
          from public.create_appointment(
            org_id => ${body.org_id}::uuid,
            starts_at => ${body.starts_at.toISOString()}::timestamptz,
            ends_at => ${body.ends_at.toISOString()}::timestamptz,
            attendee_name => ${body.attendee_name},
            attendee_email => ${body.attendee_email ?? null},
            attendee_phone => ${body.attendee_phone ?? null},
            notes => ${body.notes ?? null},
            bot_id => ${body.bot_id ?? null}::uuid,
            resource => ${body.resource ?? 'default'},
            time_zone => ${body.time_zone ?? null},
            call_id => ${body.call_id ?? null}::uuid,
            conversation_id => ${body.conversation_id ?? null}::uuid
          ) a`;
        if (!row) throw new Error('The appointment RPC returned no row');
        booked = row;
        return { status: 201, body: { appointment: publicAppointment(row) } };
      })), MESSAGES);
  if (once.replayed || !booked) return json(once.body, once.status, replayHeaders(once));
  return answer(ctx, booked, 201);
}

export async function rescheduleAppointment(
  ctx: RequestContext,
  req: Request,
  claims: UserClaims,
  appointmentId: string,
): Promise<Response> {
  const body = await readBody(req, rescheduleBody);
  const row = await asUser(ctx, claims, (tx) =>
    tx<AppointmentRow[]>`
      select ${appointmentColumns(tx)}
      from public.reschedule_appointment(${appointmentId}::uuid, ${body.starts_at.toISOString()}::timestamptz,
                                         ${body.ends_at.toISOString()}::timestamptz) a`);
  return answer(ctx, row);
}

export async function cancelAppointment(
  ctx: RequestContext,
  req: Request,
  claims: UserClaims,
  appointmentId: string,
): Promise<Response> {
  const body = await readOptionalBody(req, cancelBody);
  const row = await asUser(ctx, claims, (tx) =>
    tx<AppointmentRow[]>`
      select ${appointmentColumns(tx)}
      from public.cancel_appointment(${appointmentId}::uuid, ${body.reason ?? null}) a`);
  return answer(ctx, row);
}
