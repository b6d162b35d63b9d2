/**
 * The chat core's booking step: a turn that carries `booking` (the times and
 * the attendee, as a chat widget sends them once the user picked one of the
 * bot's free slots, e.g. from GET /calendar/bots/:id/availability) books on
 * the user's behalf instead of asking the model, and answers in words, in the
 * bot's language (bot-texts.ts; dates in its locale): the confirmation, or
 * why not with the next free times. Booking follows the calendar's rule for
 * bots (_shared/scheduling/book-free-slot.ts): only inside a free slot, every
 * connected calendar's busy times included; the appointment is linked to the
 * conversation. A calendar that cannot be read refuses the time, and no other
 * time is offered while one cannot be read: slots computed without it may be
 * the very time just refused. It runs as the service role (a bot books,
 * whoever chats), after chat_prepare has let the turn through, acting for
 * the principal: a member's booking is created_by them and audited with
 * them as its actor, and the availability helpers check their calendar.read
 * (every member who may chat holds it).
 *
 * A turn sent again after its answer was lost (a dropped SSE stream) finds
 * its own booking: when the conversation already holds a booked appointment
 * of the same times, resource and attendee, that one is confirmed again
 * (private.conversation_booking), not refused as taken.
 */
import { botTexts } from '../_shared/chat/bot-texts.ts';
import { dateLocale } from '../_shared/chat/language.ts';
import { HttpError } from '../_shared/errors.ts';
import { isPostgresError } from '../_shared/pg-errors.ts';
import type { Scoped } from '../_shared/scheduling/availability.ts';
import { type AppointmentRow, appointmentColumns } from '../_shared/scheduling/appointment-row.ts';
import { bookFreeSlot, nextFreeSlots } from '../_shared/scheduling/book-free-slot.ts';
import type { BookingRequest } from '../_shared/scheduling/booking-body.ts';
import { requestContext } from '../_shared/scheduling/context.ts';
import type { EnvReader } from '../_shared/env.ts';
import type { Sql } from '../_shared/db.ts';
import { asServiceActing, type ChatPrincipal } from './principal.ts';

export interface BookingReply {
  content: string;
  appointment: { id: string; starts_at: Date; ends_at: Date } | null;
}

export interface BookingTurn {
  sql: () => Sql;
  env: EnvReader;
  principal: ChatPrincipal;
  orgId: string;
  botId: string;
  conversationId: string;
  /** The bot's language ('auto' or a BCP 47 tag): what the reply is written in. */
  language: string;
  booking: BookingRequest;
}

const SUGGESTIONS = 3;

/** "Monday 1 June, 10:00–10:30 (Europe/Berlin)", in the locale's words and order. */
function when(start: Date, end: Date, timeZone: string, locale: string): string {
  const day = new Intl.DateTimeFormat(locale, { weekday: 'long', day: 'numeric', month: 'long', timeZone }).format(start);
  const time = (at: Date) => new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', timeZone }).format(at);
  return `${day}, ${time(start)}–${time(end)} (${timeZone})`;
}

/** The chat books the default resource; the conversation's booking of exactly this request, if any. */
async function earlierBooking(scoped: Scoped, turn: BookingTurn): Promise<AppointmentRow | undefined> {
  const { booking } = turn;
  const [row] = await scoped((tx) =>
    tx<AppointmentRow[]>`
      select ${appointmentColumns(tx)}
      from private.conversation_booking(
        conversation_id => ${turn.conversationId}::uuid,
        bot_id => ${turn.botId}::uuid,
        starts_at => ${booking.starts_at.toISOString()}::timestamptz,
        ends_at => ${booking.ends_at.toISOString()}::timestamptz,
        resource => 'default',
        attendee_name => ${booking.attendee_name},
        attendee_email => ${booking.attendee_email ?? null},
        attendee_phone => ${booking.attendee_phone ?? null}
      ) a`);
  return row;
}

export async function bookingReply(turn: BookingTurn): Promise<BookingReply> {
  const ctx = requestContext(turn.sql, { env: turn.env, http: {}, now: () => new Date() }, `chat:${turn.conversationId}`);
  const scoped: Scoped = (fn) => asServiceActing(turn.sql(), turn.principal, fn);
  const { booking } = turn;
  const texts = botTexts(turn.language);
  const locale = dateLocale(turn.language);
  const confirmation = (appointment: AppointmentRow): BookingReply => ({
    content: texts.booked(
      when(appointment.starts_at, appointment.ends_at, appointment.business_time_zone ?? 'UTC', locale),
      appointment.attendee_name,
    ),
    appointment: { id: appointment.id, starts_at: appointment.starts_at, ends_at: appointment.ends_at },
  });
  const earlier = await earlierBooking(scoped, turn);
  if (earlier) return confirmation(earlier);
  let refusal: string;
  try {
    const outcome = await bookFreeSlot(ctx, scoped, {
      orgId: turn.orgId,
      botId: turn.botId,
      startsAt: booking.starts_at,
      endsAt: booking.ends_at,
      attendeeName: booking.attendee_name,
      attendeeEmail: booking.attendee_email,
      attendeePhone: booking.attendee_phone,
      notes: booking.notes,
      conversationId: turn.conversationId,
    });
    if (outcome.booked) return confirmation(outcome.appointment);
    // Any slot offered now would be computed without the calendar that could not be read.
    if (outcome.reason === 'calendar_unavailable') return { content: texts.calendarUnavailable, appointment: null };
    refusal = texts.slotUnavailable;
  } catch (error) {
    // Another booking took the slot between the check and the insert.
    if (isPostgresError(error) && error.code === '23P01') refusal = texts.slotTaken;
    // The attendee's details, as the database checks them (e.g. a phone number that is not one).
    else if (error instanceof HttpError && error.status === 422) refusal = texts.cannotBook(error.message);
    else throw error;
  }
  const minutes = (booking.ends_at.getTime() - booking.starts_at.getTime()) / 60_000;
  const next = await nextFreeSlots(ctx, scoped, {
    orgId: turn.orgId,
    botId: turn.botId,
    from: booking.starts_at,
    durationMinutes: minutes,
    count: SUGGESTIONS,
  });
  const offer = next.missing.length > 0
    ? texts.cannotSuggest
    : next.slots.length > 0
    ? texts.nextFreeTimes(next.slots.map((slot) => when(slot.start, slot.end, next.timeZone, locale)))
    : texts.noFreeTime;
  return { content: `${refusal} ${offer}`, appointment: null };
}
