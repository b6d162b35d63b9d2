/**
 * POST /calendar/bots/:bot_id/appointments (a bot's API key with
 * calendar.write): a bot books for its caller, only inside a free slot
 * (see _shared/scheduling/book-free-slot.ts): 409 `slot_unavailable` or
 * `calendar_unavailable` otherwise, 409 `slot_taken` when another booking
 * won the race. The body may name a `resource` (default `default`): the
 * slot is checked and booked on it. Unknown keys are a 400. Answers 201
 * `{ appointment }`.
 *
 * With an Idempotency-Key (_shared/idempotency.ts, as POST /calls): a voice
 * platform that timed out while the booking was mirrored to a slow calendar
 * and sends it again gets the first answer again (`Idempotent-Replayed:
 * true`), not a 409 for the slot its own booking took. The key is claimed
 * before the slot is checked (the retry must not be checked against its own
 * booking), the answer kept in the booking's transaction (the appointment as
 * booked, before mirroring); a refusal or failure gives the claim up, so the
 * request may be sent again with its key. The same key with another request
 * is a 422, one still being booked a 409 `idempotency_key_in_use`.
 */
import type { TransactionSql } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { json } from '../_shared/http.ts';
import { claimKey, idempotencyKeyFrom, recordAnswer, releaseKey, replayHeaders } from '../_shared/idempotency.ts';
import { type AppointmentRow, publicAppointment } from '../_shared/scheduling/appointment-row.ts';
import type { Scoped } from '../_shared/scheduling/availability.ts';
import { bookFreeSlot } from '../_shared/scheduling/book-free-slot.ts';
import { asBot, authenticateBot, type BotCaller } from './bot-caller.ts';
import type { RequestContext } from '../_shared/scheduling/context.ts';
import { type BotAppointmentBody, botAppointmentBody, readBody } from './schemas.ts';

type AppointmentAnswer = { appointment: ReturnType<typeof publicAppointment> };

/** What makes two requests the same: the route, the bot and the body, its instants as UTC. */
function requestOf(botId: string, body: BotAppointmentBody) {
  return {
    route: 'POST /calendar/bots/:bot_id/appointments',
    bot_id: botId,
    body: { ...body, starts_at: body.starts_at.toISOString(), ends_at: body.ends_at.toISOString() },
  };
}

/** Gives the claim up after a refusal or failure; a claim already answered (the booking committed) stays. */
async function release(ctx: RequestContext, scoped: Scoped, caller: BotCaller, key: string): Promise<void> {
  try {
    await scoped((tx) => releaseKey(tx, caller.apiKeyId, key));
  } catch (error) {
    // The claim then lapses after its 10 minutes; the refusal itself is what the caller needs.
    ctx.log(`giving up idempotency key of bot ${caller.botId} failed`, error);
  }
}

export async function botAppointment(ctx: RequestContext, req: Request, botId: string): Promise<Response> {
  const caller = await authenticateBot(ctx.sql, req, botId, 'calendar.write');
  const key = idempotencyKeyFrom(req);
  const body = await readBody(req, botAppointmentBody);
  const scoped: Scoped = (fn) => asBot(ctx.sql, caller, fn);
  if (key !== null) {
    const replay = await scoped((tx) => claimKey<AppointmentAnswer>(tx, caller.apiKeyId, key, requestOf(botId, body)));
    if (replay) return json(replay.body, replay.status, replayHeaders(replay));
  }
  const keep = key === null
    ? undefined
    : (tx: TransactionSql, row: AppointmentRow) =>
      recordAnswer(tx, caller.apiKeyId, key, { status: 201, body: { appointment: publicAppointment(row) } });
  let outcome: Awaited<ReturnType<typeof bookFreeSlot>>;
  try {
    outcome = await bookFreeSlot(ctx, scoped, {
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
    }, keep);
  } catch (error) {
    if (key !== null) await release(ctx, scoped, caller, key);
    throw error;
  }
  if (!outcome.booked) {
    if (key !== null) await release(ctx, scoped, caller, key);
    throw new HttpError(409, outcome.reason, outcome.message);
  }
  return json({ appointment: publicAppointment(outcome.appointment) }, 201);
}
