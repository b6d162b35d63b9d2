/**
 * Mirrors an appointment to the calendar it was booked into (its
 * connection_id): a booked one without an event gets one, a moved one has
 * its event moved (re-created if the event was deleted at the provider), a
 * canceled one has its event deleted. Runs only when the row says there is
 * work (`sync_status` pending) and always after the booking has committed:
 * a provider failure never undoes a booking, it is recorded as `failed` with
 * the error. The result is reported against the version read before the
 * provider was called, so a result overtaken by a newer change is ignored
 * (private.set_appointment_sync).
 */
import { asServiceRole, type Sql } from '../db.ts';
import {
  type CalendarEventInput,
  CalendarProviderError,
  isValidTimeZone,
} from '../calendar/index.ts';
import { type AppointmentRow, appointmentColumns } from './appointment-row.ts';
import { type CalendarSession, CalendarUnavailable, type CalendarUse } from './session.ts';

export interface MirrorDeps {
  sql: Sql;
  session: CalendarSession;
  log: (message: string, error?: unknown) => void;
}

function eventZone(row: AppointmentRow): string {
  for (const zone of [row.time_zone, row.org_time_zone]) if (zone && isValidTimeZone(zone)) return zone;
  return 'UTC';
}

/** What the calendar's owner sees: who, how to reach them, the notes; attendees are not e-mailed by the provider. */
function eventFor(row: AppointmentRow): CalendarEventInput {
  const description = [
    row.notes,
    row.attendee_phone ? `Phone: ${row.attendee_phone}` : null,
    row.attendee_email ? `E-mail: ${row.attendee_email}` : null,
    `Booked ${row.source === 'bot' ? 'by a bot for the caller' : 'by staff'} (appointment ${row.id}).`,
  ].filter((line): line is string => Boolean(line));
  return {
    summary: `Appointment: ${row.attendee_name}`,
    description: description.join('\n'),
    start: row.starts_at,
    end: row.ends_at,
    timeZone: eventZone(row),
    attendees: [{ name: row.attendee_name, ...(row.attendee_email ? { email: row.attendee_email } : {}) }],
  };
}

/** The provider's work for this version of the row; the external event id to keep (null: none). */
async function apply({ client, accessToken, stored }: CalendarUse, row: AppointmentRow): Promise<string | null> {
  const options = { calendarId: stored.externalCalendarId ?? 'primary', notifyAttendees: false };
  if (row.status === 'booked') {
    const event = eventFor(row);
    if (row.external_event_id) {
      try {
        return (await client.updateEvent(accessToken, row.external_event_id, event, options)).externalId;
      } catch (error) {
        // Deleted at the provider meanwhile: create it again rather than leave the booking unmirrored.
        if (!(error instanceof CalendarProviderError && (error.status === 404 || error.status === 410))) throw error;
      }
    }
    return (await client.createEvent(accessToken, event, options)).externalId;
  }
  // Only a cancel takes the event away; a completed or no-show appointment did take place there.
  if (row.status === 'canceled' && row.external_event_id) {
    await client.deleteEvent(accessToken, row.external_event_id, options);
  }
  return row.external_event_id;
}

/** Mirrors the row when it has pending work and answers the row as it then is; never throws for the provider's sake. */
export async function mirrorAppointment(deps: MirrorDeps, row: AppointmentRow): Promise<AppointmentRow> {
  if (!row.connection_id || row.sync_status !== 'pending') return row;
  let outcome: { externalEventId: string | null; status: 'synced' | 'failed'; error: string | null };
  try {
    const externalEventId = await deps.session.use(row.connection_id, (use) => apply(use, row));
    outcome = { externalEventId, status: 'synced', error: null };
  } catch (error) {
    if (!(error instanceof CalendarUnavailable)) deps.log(`mirroring appointment ${row.id} failed`, error);
    const message = error instanceof Error ? error.message : String(error);
    outcome = { externalEventId: null, status: 'failed', error: message.slice(0, 1000) || 'unknown error' };
  }
  try {
    return await asServiceRole(deps.sql, async (tx) => {
      await tx`
        select private.set_appointment_sync(${row.id}::uuid, ${outcome.externalEventId}, ${outcome.status}, ${outcome.error},
                                            ${row.version}::timestamptz)`;
      const [fresh] = await tx<AppointmentRow[]>`
        select ${appointmentColumns(tx)} from public.appointments a where a.id = ${row.id}::uuid`;
      return fresh ?? row;
    });
  } catch (error) {
    // The booking stands; the row stays pending for a later mirroring.
    deps.log(`recording the mirroring of appointment ${row.id} failed`, error);
    return row;
  }
}
