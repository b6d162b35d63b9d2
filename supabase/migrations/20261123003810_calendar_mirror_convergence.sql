-- Calendar mirroring converges, and is retried.
--
-- The calendar function mirrored an appointment from the row it had read and
-- reported against that version (private.set_appointment_sync); several
-- mirrorings of one appointment could run at once. A cancel arriving while
-- the booking's createEvent was in flight saw no event, deleted nothing and
-- recorded `synced`; the late create then stored its event id on the
-- canceled appointment, leaving a live event at the provider that blocked
-- the slot for bots. A reschedule during the create made a second event and
-- left the first. And nothing retried a `pending` or `failed` mirroring.
--
-- Now:
-- * one mirroring per appointment at a time: private.claim_appointment_sync
--   takes a lease (sync_claimed_until). A mirroring that finds the row
--   claimed does nothing and leaves it `pending`; the holder picks up the
--   latest state. Taking the lease updates the row, so its updated_at (the
--   version a result is reported against) changes: a holder whose lease ran
--   out and was taken over reports an outdated result;
-- * the holder reports with set_appointment_sync; an outdated result keeps an
--   event id the provider made when the row has none (as before) and the
--   holder renews its lease (held_until: the lease it holds) and mirrors the
--   latest version, so a late create's event is deleted (canceled) or moved
--   (rescheduled). A current result releases the lease. An event id the row
--   did not keep is the holder's to delete at the provider;
-- * retries: a change to what the event shows makes the row due a minute
--   later (sync_next_attempt_at, time for the request's own mirroring);
--   each mirroring begun counts (sync_attempts); a failure is due again after
--   1, 4, 16, 64, 256 minutes, then 6 hours, and the eighth failure stays
--   `failed` for good (until the appointment changes again).
--   private.retry_appointment_mirroring (pg_cron, every minute) asks the
--   calendar function (POST calendar/mirroring, service role) to mirror what
--   is due, which it claims with private.claim_due_appointment_syncs.

alter table public.appointments
  add column sync_claimed_until timestamptz,
  add column sync_attempts smallint not null default 0
    constraint appointments_sync_attempts_range check (sync_attempts >= 0),
  add column sync_next_attempt_at timestamptz;
comment on column public.appointments.sync_claimed_until is 'While a mirroring of this appointment runs: until when it holds the appointment (a lease; private.claim_appointment_sync). Null when none runs.';
comment on column public.appointments.sync_attempts is 'Mirrorings begun since the appointment last changed or was mirrored; the eighth failure is final.';
comment on column public.appointments.sync_next_attempt_at is 'When private.retry_appointment_mirroring mirrors a pending or failed appointment; null when it will not (synced, or given up).';

-- What was pending or failed before this migration is due at once.
update public.appointments a
set sync_next_attempt_at = pg_catalog.now()
where a.sync_status in ('pending', 'failed') and a.connection_id is not null;

-- The retry job's scan: due rows of both kinds.
drop index public.appointments_sync_pending_idx;
create index appointments_sync_due_idx on public.appointments (sync_next_attempt_at)
  where sync_status in ('pending', 'failed') and connection_id is not null;

-- A change to what the external event shows (the before-write trigger made
-- the row pending) starts the count again and leaves the request a minute
-- to mirror it itself before the retry job does. Runs after
-- appointments_before_write (triggers fire by name), so it sees its status.
create function private.appointments_schedule_sync()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.sync_status = 'pending'
    and (tg_op = 'INSERT' or new.starts_at <> old.starts_at or new.ends_at <> old.ends_at or new.status <> old.status) then
    new.sync_attempts := 0;
    new.sync_next_attempt_at := pg_catalog.now() + interval '1 minute';
  end if;
  return new;
end;
$$;
revoke execute on function private.appointments_schedule_sync() from public;

create trigger appointments_schedule_sync before insert or update on public.appointments
  for each row execute function private.appointments_schedule_sync();

-- Takes (or renews) the lease of one appointment for a mirroring. Answers the
-- row as it now is (its updated_at is the version to report against, its
-- sync_claimed_until the lease to renew with), or nothing when there is
-- nothing to mirror (no calendar, synced, given up) or another mirroring
-- holds it. held_until: the lease the caller holds (renewing does not count
-- as a new attempt); it still works when that lease ran out untaken.
create function private.claim_appointment_sync(appointment_id uuid, lease_seconds integer, held_until timestamptz default null)
returns setof public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  appointment public.appointments;
  renewing boolean;
begin
  if claim_appointment_sync.lease_seconds is null or claim_appointment_sync.lease_seconds not between 1 and 900 then
    raise exception 'lease_seconds must be between 1 and 900' using errcode = 'invalid_parameter_value';
  end if;
  select a.* into appointment from public.appointments a where a.id = claim_appointment_sync.appointment_id for update;
  if not found then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  if appointment.connection_id is null
    or not (appointment.sync_status = 'pending' or (appointment.sync_status = 'failed' and appointment.sync_next_attempt_at is not null)) then
    return;
  end if;
  renewing := claim_appointment_sync.held_until is not null and appointment.sync_claimed_until = claim_appointment_sync.held_until;
  if not renewing and appointment.sync_claimed_until > pg_catalog.now() then
    return;
  end if;
  -- clock_timestamp: two leases of one row never look alike.
  update public.appointments a
  set sync_claimed_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => claim_appointment_sync.lease_seconds),
      sync_attempts = case when renewing then a.sync_attempts else least(a.sync_attempts + 1, 32767) end
  where a.id = claim_appointment_sync.appointment_id
  returning a.* into appointment;
  return next appointment;
end;
$$;
comment on function private.claim_appointment_sync(uuid, integer, timestamptz) is 'Takes the mirroring lease of a pending (or failed and not given up) appointment for lease_seconds (1-900) and answers the row, or nothing when there is nothing to mirror or another mirroring holds it; held_until (the lease held) renews it. Counts an attempt unless renewing. P0002 unknown, 22023 bad lease. Service role.';

-- The due appointments, claimed at once for the calendar function's retry
-- route (skip locked: a concurrent call takes others).
create function private.claim_due_appointment_syncs(max_rows integer, lease_seconds integer)
returns setof public.appointments
language plpgsql
security definer
set search_path = ''
as $$
begin
  if claim_due_appointment_syncs.max_rows is null or claim_due_appointment_syncs.max_rows not between 1 and 100 then
    raise exception 'max_rows must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  if claim_due_appointment_syncs.lease_seconds is null or claim_due_appointment_syncs.lease_seconds not between 1 and 900 then
    raise exception 'lease_seconds must be between 1 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  update public.appointments a
  set sync_claimed_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => claim_due_appointment_syncs.lease_seconds),
      sync_attempts = least(a.sync_attempts + 1, 32767)
  where a.id in (
    select d.id from public.appointments d
    where d.sync_status in ('pending', 'failed') and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts < 8
    order by d.sync_next_attempt_at
    limit claim_due_appointment_syncs.max_rows
    for update skip locked
  )
  returning a.*;
end;
$$;
comment on function private.claim_due_appointment_syncs(integer, integer) is 'Claims (as claim_appointment_sync) up to max_rows (1-100) pending or failed appointments whose next attempt is due and that no mirroring holds, oldest due first. Service role.';

-- The mirroring result. Restated from 20261123001400_calendar.sql: a current
-- result now releases the lease and schedules the retry of a failure; an
-- outdated one leaves the lease to its holder, which mirrors the newer
-- version next.
create or replace function private.set_appointment_sync(
  appointment_id uuid, external_event_id text, sync_status text, sync_error text, mirrored_at timestamptz
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_version timestamptz;
  attempts smallint;
begin
  if set_appointment_sync.sync_status is null or set_appointment_sync.sync_status not in ('pending', 'synced', 'failed', 'not_mirrored') then
    raise exception 'sync_status must be pending, synced, failed or not_mirrored' using errcode = 'invalid_parameter_value';
  end if;
  if length(set_appointment_sync.external_event_id) not between 1 and 1024 then
    raise exception 'external_event_id must have 1 to 1024 characters' using errcode = 'invalid_parameter_value';
  end if;
  select a.updated_at, a.sync_attempts into current_version, attempts
  from public.appointments a where a.id = set_appointment_sync.appointment_id for update;
  if not found then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  if set_appointment_sync.mirrored_at is not null and current_version is distinct from set_appointment_sync.mirrored_at then
    -- A newer version exists; keep what was made at the provider when the row
    -- has no event, so the holder's next round (or the retry) moves or
    -- deletes it. An id not kept here is the caller's to delete.
    update public.appointments a
    set external_event_id = set_appointment_sync.external_event_id
    where a.id = set_appointment_sync.appointment_id and a.external_event_id is null
      and set_appointment_sync.external_event_id is not null;
    return false;
  end if;
  update public.appointments a
  set external_event_id = coalesce(set_appointment_sync.external_event_id, a.external_event_id),
      sync_status = set_appointment_sync.sync_status,
      sync_error = case when set_appointment_sync.sync_status = 'failed'
                        then left(coalesce(nullif(pg_catalog.btrim(set_appointment_sync.sync_error), ''), 'unknown error'), 1000) end,
      sync_claimed_until = null,
      -- 1, 4, 16, 64, 256 minutes, then 6 hours; after the eighth attempt, no more.
      sync_next_attempt_at = case set_appointment_sync.sync_status
        when 'failed' then case when attempts < 8 then pg_catalog.now() + least(
          interval '6 hours', interval '1 minute' * power(4, greatest(attempts, 1) - 1)) end
        when 'pending' then pg_catalog.now() + interval '1 minute'
      end,
      sync_attempts = case when set_appointment_sync.sync_status in ('failed', 'pending') then a.sync_attempts else 0 end
  where a.id = set_appointment_sync.appointment_id;
  return true;
end;
$$;
comment on function private.set_appointment_sync(uuid, text, text, text, timestamptz) is 'Records the result of mirroring an appointment to its calendar: the external event id (null keeps it), the sync status, the error (failed only, at most 1000 characters kept); releases the mirroring lease; a failure is retried 1, 4, 16, 64, 256 minutes, then 6 hours later, until the eighth attempt. Ignored (false) when the appointment changed after mirrored_at (its updated_at when the lease was taken; null skips the check), except that an event id made at the provider is kept when the row has none (an id not kept is the caller''s to delete). P0002 unknown. Service role.';

-- pg_cron, every minute: gives up on pending appointments whose mirroring
-- never finished in 8 attempts (the function died or could not record), and
-- asks the calendar function to mirror the due ones (it claims them itself,
-- so an overlapping call finds them held). Answers how many were due.
create function private.retry_appointment_mirroring()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  due integer;
begin
  update public.appointments a
  set sync_status = 'failed', sync_error = 'mirroring did not finish in 8 attempts', sync_next_attempt_at = null
  where a.id in (
    select d.id from public.appointments d
    where d.sync_status = 'pending' and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts >= 8
    for update skip locked
  );
  select count(*)::integer into due from (
    select 1 from public.appointments d
    where d.sync_status in ('pending', 'failed') and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
    limit 100
  ) x;
  if due > 0 then
    -- A pass mirrors at most 20, a few at a time; more wait for the next minute.
    perform private.invoke_edge_function('calendar/mirroring', '{}'::jsonb, 60000);
  end if;
  return due;
end;
$$;
comment on function private.retry_appointment_mirroring() is 'pg_cron, every minute: fails pending appointments whose mirroring did not finish in 8 attempts, and calls the calendar function (POST calendar/mirroring) when any pending or failed one is due. Answers how many are due (at most 100).';

revoke execute on function
  private.claim_appointment_sync(uuid, integer, timestamptz),
  private.claim_due_appointment_syncs(integer, integer),
  private.retry_appointment_mirroring()
from public;
grant execute on function
  private.claim_appointment_sync(uuid, integer, timestamptz),
  private.claim_due_appointment_syncs(integer, integer)
to service_role;

select cron.schedule('retry-appointment-mirroring', '* * * * *', 'select private.retry_appointment_mirroring()');
