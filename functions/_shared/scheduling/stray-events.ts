/**
 * Provider events no appointment keeps (a mirroring whose lease was taken
 * over made one while another mirroring's event became the row's). Left at
 * the provider, such an event blocks the slot in the business's calendar for
 * good, so each is recorded in private.calendar_event_deletions in the
 * transaction that finds it unneeded, deleted at once, and a failed delete
 * is retried by the mirroring retry (POST calendar/mirroring) until the
 * eighth attempt gives up, leaving the row `given_up`.
 */
import { asServiceRole, type TransactionSql } from '../db.ts';
import type { MirrorDeps } from './mirror.ts';
import { failureText } from '../errors.ts';

export interface StrayEvent {
  id: string;
  connection_id: string;
  appointment_id: string | null;
  external_event_id: string;
  attempts: number;
}

/** What became of a deletion: done, retried later, given up, or gone with its calendar. */
export type StrayEventStatus = 'deleted' | 'pending' | 'given_up' | 'gone';

/** Seconds the retry holds a claimed deletion: one provider call, a refresh, their timeouts. */
const DELETION_LEASE_SECONDS = 120;

/** Records, in the caller's transaction, an event of this appointment's calendar to delete; undefined when the calendar is gone. */
export async function recordStrayEvent(
  tx: TransactionSql,
  appointmentId: string,
  connectionId: string,
  externalEventId: string,
): Promise<StrayEvent | undefined> {
  const [row] = await tx<{ id: string | null }[]>`
    select private.record_calendar_event_deletion(${appointmentId}::uuid, ${externalEventId}) as id`;
  if (!row?.id) return undefined;
  return { id: row.id, connection_id: connectionId, appointment_id: appointmentId, external_event_id: externalEventId, attempts: 1 };
}

/** Claims the next due deletion for the retry route. */
export async function claimDueStrayEvent(deps: MirrorDeps): Promise<StrayEvent | undefined> {
  const [row] = await asServiceRole(deps.sql, (tx) =>
    tx<StrayEvent[]>`
      select id, connection_id, appointment_id, external_event_id, attempts
      from private.claim_due_calendar_event_deletions(1, ${DELETION_LEASE_SECONDS})`);
  return row;
}

/** Deletes the event at the provider and records the attempt; never throws (the recorded row is the retry's). */
export async function deleteStrayEvent(deps: MirrorDeps, stray: StrayEvent): Promise<StrayEventStatus> {
  const what = `the unneeded event ${stray.external_event_id} of appointment ${stray.appointment_id ?? '(deleted)'}`;
  let failure: unknown;
  try {
    await deps.session.use(stray.connection_id, ({ client, accessToken, stored }) =>
      client.deleteEvent(accessToken, stray.external_event_id, {
        calendarId: stored.externalCalendarId ?? 'primary',
        notifyAttendees: false,
      }));
  } catch (error) {
    failure = error;
  }
  const message = failure === undefined ? null : failureText(failure);
  try {
    const [row] = await asServiceRole(deps.sql, (tx) =>
      tx<{ status: StrayEventStatus | null }[]>`
        select private.finish_calendar_event_deletion(${stray.id}::uuid, ${message}) as status`);
    const status = row?.status ?? 'gone';
    if (status === 'given_up') deps.log(`gave up deleting ${what} after ${stray.attempts} attempts; it stays in the calendar`, failure);
    else if (status === 'pending') deps.log(`deleting ${what} failed; retried later`, failure);
    return status;
  } catch (error) {
    deps.log(`the attempt to delete ${what} could not be recorded; the retry takes it`, error);
    return 'pending';
  }
}
