/**
 * Mirrors an appointment to the calendar it was booked into (its
 * connection_id): a booked one without an event gets one, a moved one has
 * its event moved (re-created if the event was deleted at the provider), a
 * canceled one has its event deleted. Runs only when the row says there is
 * work (`sync_status` pending, or failed and due for the retry) and always
 * after the booking has committed: a provider failure never undoes a
 * booking, it is recorded as `failed` with the error and retried later
 * (private.set_appointment_sync schedules it).
 *
 * One mirroring per appointment at a time (private.claim_appointment_sync,
 * a lease): a request that finds the appointment held leaves it pending, and
 * the holder mirrors the latest version. Nothing is claimed (or counted as an
 * attempt) while the calendar is not connected: the appointment stays
 * pending, and connecting the calendar again makes it due at once. A mirroring
 * the provider throttled is given back (private.release_throttled_appointment_sync):
 * no attempt counted, the status as it was, due again after the provider's
 * Retry-After (1 minute to 1 hour), so a throttle shared by every org (one
 * OAuth app) uses up no appointment's attempts for the first 24 hours of a
 * throttled run; after that each throttle counts as a failed attempt (the
 * release answers the row failed). A result reported for a version
 * since changed (a cancel or a move while the provider answered) is outdated:
 * the holder renews its lease, reads the row again and mirrors that, so the
 * event a late create made is deleted or moved rather than left behind. An
 * event the row did not keep (the lease was taken over meanwhile) is deleted,
 * through a recorded deletion the retry repeats when the provider fails
 * (stray-events.ts). A create is repeatable (event-key.ts): the retry of one
 * whose answer was lost gets the event that create made, not a second one,
 * and a cancel finds that event by its key when the row never learnt its id.
 */
import { asServiceRole, type Sql, type TransactionSql } from '../db.ts';
import {
  type CalendarEventInput,
  CalendarProviderError,
  isValidTimeZone,
} from '../calendar/index.ts';
import { type AppointmentRow, appointmentColumns } from './appointment-row.ts';
import { type CalendarSession, CalendarUnavailable, type CalendarUse } from './session.ts';
import { eventKey } from './event-key.ts';
import { deleteStrayEvent, recordStrayEvent } from './stray-events.ts';
import { failureText } from '../errors.ts';

export interface MirrorDeps {
  sql: Sql;
  session: CalendarSession;
  log: (message: string, error?: unknown) => void;
}

function eventZone(row: AppointmentRow): string {
  for (const zone of [row.time_zone, row.business_time_zone]) if (zone && isValidTimeZone(zone)) return zone;
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
    const idempotencyKey = await eventKey(row.id, row.external_event_id);
    return (await client.createEvent(accessToken, event, { ...options, idempotencyKey })).externalId;
  }
  // Only a cancel takes the event away; a completed or no-show appointment did take place there.
  if (row.status === 'canceled') {
    const deleted = row.external_event_id !== null && (await client.deleteEvent(accessToken, row.external_event_id, options)).deleted;
    // No event kept, or it was gone: a create whose answer was lost may have made one no id names.
    if (!deleted) await client.deleteEventByKey(accessToken, await eventKey(row.id, row.external_event_id), options);
  }
  return row.external_event_id;
}

/** Seconds a mirroring holds an appointment: longer than a round's provider calls (10 s timeouts, two throttling retries, a refresh). */
export const MIRROR_LEASE_SECONDS = 120;
/** Rounds one holder mirrors before leaving a still-changing appointment to the retry job. */
const MAX_ROUNDS = 5;

/** A row as claimed: `lease` is its sync_claimed_until as text (microseconds kept), to renew the lease with. */
export type ClaimedRow = AppointmentRow & { lease: string };

function claimedColumns(tx: TransactionSql) {
  return tx`${appointmentColumns(tx)}, a.sync_claimed_until::text as lease`;
}

/** Takes (or, with `held`, renews) the lease; undefined when another mirroring holds it or nothing is left to do. */
async function claim(deps: MirrorDeps, id: string, held: string | null): Promise<ClaimedRow | undefined> {
  const [row] = await asServiceRole(deps.sql, (tx) =>
    tx<ClaimedRow[]>`
      select ${claimedColumns(tx)}
      from private.claim_appointment_sync(${id}::uuid, ${MIRROR_LEASE_SECONDS}, ${held}::timestamptz) a`);
  return row;
}

/** Claims the due pending and failed appointments for the retry route. */
export function claimDue(deps: MirrorDeps, limit: number): Promise<ClaimedRow[]> {
  return asServiceRole(deps.sql, (tx) =>
    tx<ClaimedRow[]>`
      select ${claimedColumns(tx)}
      from private.claim_due_appointment_syncs(${limit}, ${MIRROR_LEASE_SECONDS}) a`);
}

async function readRow(deps: MirrorDeps, id: string): Promise<AppointmentRow | undefined> {
  const [row] = await asServiceRole(deps.sql, (tx) =>
    tx<AppointmentRow[]>`select ${appointmentColumns(tx)} from public.appointments a where a.id = ${id}::uuid`);
  return row;
}

type Outcome =
  | { status: 'synced' | 'failed'; externalEventId: string | null; error: string | null }
  | { status: 'throttled'; retryAfterSeconds: number | null };

async function attempt(deps: MirrorDeps, row: AppointmentRow): Promise<Outcome> {
  if (!row.connection_id) return { externalEventId: null, status: 'failed', error: 'The appointment has no calendar.' };
  const connectionId = row.connection_id;
  try {
    const externalEventId = await deps.session.use(connectionId, (use) => apply(use, row));
    return { externalEventId, status: 'synced', error: null };
  } catch (error) {
    if (error instanceof CalendarUnavailable && error.reason === 'rate_limited') {
      return { status: 'throttled', retryAfterSeconds: error.retryAfterSeconds ?? null };
    }
    if (!(error instanceof CalendarUnavailable)) deps.log(`mirroring appointment ${row.id} failed`, error);
    return { externalEventId: null, status: 'failed', error: failureText(error) };
  }
}

/** Gives the held appointment back uncounted, due after the provider's wait; answers the row as it then is. */
async function releaseThrottled(deps: MirrorDeps, held: ClaimedRow, retryAfterSeconds: number | null): Promise<AppointmentRow> {
  return await asServiceRole(deps.sql, async (tx) => {
    // False when the lease was taken over meanwhile: the new holder's result stands.
    await tx`select private.release_throttled_appointment_sync(${held.id}::uuid, ${held.lease}::timestamptz, ${retryAfterSeconds}::numeric)`;
    const [row] = await tx<AppointmentRow[]>`select ${appointmentColumns(tx)} from public.appointments a where a.id = ${held.id}::uuid`;
    return row ?? held;
  });
}

/** Mirrors the row when it has pending work and answers the row as it then is; never throws for the provider's sake. */
export async function mirrorAppointment(deps: MirrorDeps, row: AppointmentRow): Promise<AppointmentRow> {
  if (!row.connection_id || row.sync_status !== 'pending') return row;
  try {
    const claimed = await claim(deps, row.id, null);
    // Held by another mirroring (which mirrors this change next), done meanwhile, or waiting for a reconnect.
    if (!claimed) return (await readRow(deps, row.id)) ?? row;
    return await mirrorClaimed(deps, claimed);
  } catch (error) {
    // The booking stands; the row stays pending for the retry job.
    deps.log(`mirroring appointment ${row.id} could not be recorded`, error);
    return row;
  }
}

/**
 * Mirrors an appointment this caller holds, round after round while the row
 * changes under it; answers the row as it then is. Throws only for the
 * database's sake (the lease then runs out and the retry job takes over).
 */
export async function mirrorClaimed(deps: MirrorDeps, claimed: ClaimedRow): Promise<AppointmentRow> {
  let current = claimed;
  for (let round = 1; ; round += 1) {
    const outcome = await attempt(deps, current);
    if (outcome.status === 'throttled') return await releaseThrottled(deps, current, outcome.retryAfterSeconds);
    const { applied, fresh, stray } = await asServiceRole(deps.sql, async (tx) => {
      const [result] = await tx<{ applied: boolean }[]>`
        select private.set_appointment_sync(${current.id}::uuid, ${outcome.externalEventId}, ${outcome.status},
                                            ${outcome.error}, ${current.version}::timestamptz) as applied`;
      const [row] = await tx<AppointmentRow[]>`
        select ${appointmentColumns(tx)} from public.appointments a where a.id = ${current.id}::uuid`;
      const kept = row ?? current;
      const made = outcome.externalEventId;
      // Made this round and not kept (another mirroring's event is the row's): recorded with the
      // result, so it is deleted even when this request ends before the provider answers.
      const unneeded = made && current.connection_id && made !== current.external_event_id && kept.external_event_id !== made
        ? await recordStrayEvent(tx, current.id, current.connection_id, made)
        : undefined;
      return { applied: result?.applied === true, fresh: kept, stray: unneeded };
    });
    if (stray) await deleteStrayEvent(deps, stray);
    if (applied) return fresh;
    if (round >= MAX_ROUNDS) {
      deps.log(`appointment ${current.id} kept changing while mirrored; left to the retry`);
      return fresh;
    }
    const next = await claim(deps, current.id, current.lease);
    // Taken over, or nothing left to do: the other holder (or nobody) mirrors the rest.
    if (!next) return (await readRow(deps, current.id)) ?? fresh;
    current = next;
  }
}
