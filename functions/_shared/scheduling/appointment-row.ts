/**
 * An appointment as the RPCs return it, plus what mirroring needs: the
 * row's version (updated_at as text, so its microseconds survive the trip:
 * a JavaScript Date would cut them and set_appointment_sync would take every
 * result for a stale one) and the org's zone for the event.
 */
import type { TransactionSql } from '../db.ts';

export interface AppointmentRow {
  id: string;
  org_id: string;
  bot_id: string | null;
  connection_id: string | null;
  resource: string;
  starts_at: Date;
  ends_at: Date;
  time_zone: string | null;
  status: 'booked' | 'canceled' | 'completed' | 'no_show';
  attendee_name: string;
  attendee_email: string | null;
  attendee_phone: string | null;
  notes: string | null;
  call_id: string | null;
  conversation_id: string | null;
  source: 'bot' | 'staff';
  external_event_id: string | null;
  sync_status: 'pending' | 'synced' | 'failed' | 'not_mirrored';
  sync_error: string | null;
  sync_claimed_until: Date | null;
  sync_attempts: number;
  sync_next_attempt_at: Date | null;
  reschedule_count: number;
  canceled_at: Date | null;
  cancel_reason: string | null;
  created_by: string | null;
  created_at: Date;
  updated_at: Date;
  version: string;
  /** The bot's time zone, else the org's: where the business reads the appointment's times. */
  business_time_zone: string | null;
}

/** The select list over an appointment aliased `a`. */
export function appointmentColumns(tx: TransactionSql) {
  return tx`a.*, a.updated_at::text as version,
    private.bot_time_zone(a.org_id, a.bot_id) as business_time_zone`;
}

/** The row as the API answers it (without the bookkeeping columns above). */
export function publicAppointment(row: AppointmentRow): Omit<AppointmentRow, 'version' | 'business_time_zone'> {
  const { version: _version, business_time_zone: _zone, ...appointment } = row;
  return appointment;
}
