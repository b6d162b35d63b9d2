-- An appointment's mirroring bookkeeping is neither broadcast nor audited, as a call's is not (20261123010200).
--
-- appointments_broadcast (20261123001400) sent every update on org:<org_id>:appointments and appointments_audit
-- wrote an audit row for every update, so each mirroring lease taken, renewed or released (sync_claimed_until,
-- sync_attempts, sync_next_attempt_at, sync_throttled_since) sent every member the whole row again, attendee
-- name, e-mail, phone and notes included, kept another copy of them in realtime.messages, and took the org's
-- audit chain head: a throttled appointment retried for up to 24 hours did so twice an attempt. Changes to what
-- the appointment is, and to its mirroring's outcome (sync_status, sync_error, external_event_id), still are.
-- Found by a review of broadcast payloads.

drop trigger appointments_broadcast on public.appointments;
create trigger appointments_broadcast after insert or delete on public.appointments
  for each row execute function private.broadcast_org_change('appointments');
create trigger appointments_broadcast_update after update on public.appointments
  for each row
  when ((to_jsonb(old) - array['updated_at', 'sync_claimed_until', 'sync_attempts', 'sync_next_attempt_at', 'sync_throttled_since'])
        is distinct from (to_jsonb(new) - array['updated_at', 'sync_claimed_until', 'sync_attempts', 'sync_next_attempt_at', 'sync_throttled_since']))
  execute function private.broadcast_org_change('appointments');

drop trigger appointments_audit on public.appointments;
create trigger appointments_audit after insert or delete on public.appointments
  for each row execute function private.audit_row_change();
create trigger appointments_audit_update after update on public.appointments
  for each row
  when ((to_jsonb(old) - array['updated_at', 'sync_claimed_until', 'sync_attempts', 'sync_next_attempt_at', 'sync_throttled_since'])
        is distinct from (to_jsonb(new) - array['updated_at', 'sync_claimed_until', 'sync_attempts', 'sync_next_attempt_at', 'sync_throttled_since']))
  execute function private.audit_row_change();
