-- Calendar: changes made while a connection needs reconnecting reach the
-- provider once it is reconnected.
--
-- While a connection was needs_reauth (the provider refused its grant), every
-- mirroring of its appointments (and every retry of a deletion of an event
-- it did not keep) was claimed, counted and failed at once: the calendar
-- function cannot use such a connection. After 8 attempts (about a day) the
-- appointment stayed `failed` and the deletion `given_up` for good, and a
-- reconnect re-queued neither: a cancel left its busy event at the provider,
-- a move showed the old time, a booking never appeared.
--
-- Now:
-- * the appointments and event deletions of a connection that is not
--   `connected` (needs_reauth; revoked while a disconnect deletes it) are not
--   claimed, count no attempt and make the retry job call nothing: they stay
--   due, waiting. A deleted connection takes its deletions with it and leaves
--   its appointments without a calendar (connection_id null), which nothing
--   mirrors, so nothing waits or loops for ever;
-- * when a connection turns `connected` again, whatever the path (a reconnect
--   through save_calendar_connection, a refresh through
--   update_calendar_tokens), its pending and failed appointments start a fresh
--   round of attempts, due now, and so do its pending and given-up event
--   deletions;
-- * a connected calendar's provider failures keep their bounded retries
--   (1, 4, 16, 64, 256 minutes, then 6 hours; the eighth failure is final).

-- Latest definition: 20261123003810_calendar_mirror_convergence.sql; only the
-- connection's status is new: nothing is claimed (or counted) unless the
-- appointment's calendar is connected.
create or replace function private.claim_appointment_sync(appointment_id uuid, lease_seconds integer, held_until timestamptz default null)
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
  -- Its calendar cannot be used until it is connected again, which makes the appointment due then.
  if not exists (
    select 1 from public.calendar_connections c where c.id = appointment.connection_id and c.status = 'connected'
  ) then
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
comment on function private.claim_appointment_sync(uuid, integer, timestamptz) is 'Takes the mirroring lease of a pending (or failed and not given up) appointment whose calendar is connected for lease_seconds (1-900) and answers the row, or nothing when there is nothing to mirror, its calendar is not connected (it waits, uncounted, for the reconnect) or another mirroring holds it; held_until (the lease held) renews it. Counts an attempt unless renewing. P0002 unknown, 22023 bad lease. Service role.';

-- Latest definition: 20261123003810_calendar_mirror_convergence.sql; only the
-- join on connected calendars is new.
create or replace function private.claim_due_appointment_syncs(max_rows integer, lease_seconds integer)
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
    join public.calendar_connections c on c.id = d.connection_id and c.status = 'connected'
    where d.sync_status in ('pending', 'failed') and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts < 8
    order by d.sync_next_attempt_at
    limit claim_due_appointment_syncs.max_rows
    for update of d skip locked
  )
  returning a.*;
end;
$$;
comment on function private.claim_due_appointment_syncs(integer, integer) is 'Claims (as claim_appointment_sync) up to max_rows (1-100) pending or failed appointments of connected calendars whose next attempt is due and that no mirroring holds, oldest due first. Service role.';

-- Latest definition: 20261123005600_calendar_shared_grants_and_stray_events.sql;
-- only the join on connected calendars is new.
create or replace function private.claim_due_calendar_event_deletions(max_rows integer, lease_seconds integer)
returns table (id uuid, connection_id uuid, appointment_id uuid, external_event_id text, attempts smallint)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if claim_due_calendar_event_deletions.max_rows is null or claim_due_calendar_event_deletions.max_rows not between 1 and 100 then
    raise exception 'max_rows must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  if claim_due_calendar_event_deletions.lease_seconds is null
    or claim_due_calendar_event_deletions.lease_seconds not between 1 and 900 then
    raise exception 'lease_seconds must be between 1 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  update private.calendar_event_deletions d
  set attempts = least(d.attempts + 1, 32767),
      next_attempt_at = pg_catalog.clock_timestamp()
        + pg_catalog.make_interval(secs => claim_due_calendar_event_deletions.lease_seconds)
  where d.id in (
    select due.id from private.calendar_event_deletions due
    join public.calendar_connections c on c.id = due.connection_id and c.status = 'connected'
    where due.status = 'pending' and due.next_attempt_at <= pg_catalog.now() and due.attempts < 8
    order by due.next_attempt_at
    limit claim_due_calendar_event_deletions.max_rows
    for update of due skip locked
  )
  returning d.id, d.connection_id, d.appointment_id, d.external_event_id, d.attempts;
end;
$$;
comment on function private.claim_due_calendar_event_deletions(integer, integer) is 'Claims up to max_rows (1-100) pending event deletions of connected calendars that are due and under 8 attempts, oldest due first: counts the attempt and holds them lease_seconds (1-900). Service role.';

-- Latest definition: 20261123005600_calendar_shared_grants_and_stray_events.sql;
-- only the connected-calendar condition is new: what waits for a reconnect
-- is neither given up nor counted as due, so the job does not call the
-- function every minute for work it cannot do.
create or replace function private.retry_appointment_mirroring()
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
    join public.calendar_connections c on c.id = d.connection_id and c.status = 'connected'
    where d.sync_status = 'pending' and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts >= 8
    for update of d skip locked
  );
  update private.calendar_event_deletions d
  set status = 'given_up', next_attempt_at = null, last_error = coalesce(d.last_error, 'deleting did not finish in 8 attempts')
  where d.id in (
    select g.id from private.calendar_event_deletions g
    join public.calendar_connections c on c.id = g.connection_id and c.status = 'connected'
    where g.status = 'pending' and g.next_attempt_at <= pg_catalog.now() and g.attempts >= 8
    for update of g skip locked
  );
  select count(*)::integer into due from (
    (select 1 from public.appointments d
     join public.calendar_connections c on c.id = d.connection_id and c.status = 'connected'
     where d.sync_status in ('pending', 'failed') and d.connection_id is not null
       and d.sync_next_attempt_at <= pg_catalog.now()
       and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
     limit 100)
    union all
    (select 1 from private.calendar_event_deletions g
     join public.calendar_connections c on c.id = g.connection_id and c.status = 'connected'
     where g.status = 'pending' and g.next_attempt_at <= pg_catalog.now()
     limit 100)
  ) x;
  if due > 0 then
    -- A pass mirrors at most 20 appointments and deletes at most 20 events, a few at a time; more wait for the next minute.
    perform private.invoke_edge_function('calendar/mirroring', '{}'::jsonb, 60000);
  end if;
  return due;
end;
$$;
comment on function private.retry_appointment_mirroring() is 'pg_cron, every minute: fails pending appointments whose mirroring did not finish in 8 attempts and gives up event deletions likewise, and calls the calendar function (POST calendar/mirroring) when any pending or failed appointment or pending event deletion is due; only those of connected calendars (the others wait for the reconnect). Answers how many are due (at most 100 of each).';

-- A connection connected again: what waited for it (or gave up while it was
-- broken) gets a fresh round of attempts, due now. A trigger, so every path
-- that heals a connection re-queues: save_calendar_connection (a reconnect),
-- update_calendar_tokens (a refresh over a needs_reauth row), any later one.
-- Definer: the deletions are private and the healer may be any role.
create function private.calendar_connections_requeue_sync()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.appointments a
  set sync_attempts = 0, sync_next_attempt_at = pg_catalog.now()
  where a.connection_id = new.id and a.sync_status in ('pending', 'failed');
  update private.calendar_event_deletions d
  set status = 'pending', attempts = 0, next_attempt_at = pg_catalog.now()
  where d.connection_id = new.id;
  return null;
end;
$$;
revoke execute on function private.calendar_connections_requeue_sync() from public;

create trigger calendar_connections_requeue_sync after update of status on public.calendar_connections
  for each row
  when (old.status is distinct from new.status and new.status = 'connected')
  execute function private.calendar_connections_requeue_sync();

comment on column public.appointments.sync_attempts is 'Mirrorings begun since the appointment last changed, was mirrored or its calendar was connected again; the eighth failure is final. None is counted while the calendar is not connected.';
comment on column public.appointments.sync_next_attempt_at is 'When private.retry_appointment_mirroring mirrors a pending or failed appointment (only while its calendar is connected; connecting it again makes it due at once); null when it will not (synced, or given up).';
comment on table private.calendar_event_deletions is 'Provider events a mirroring made that no appointment keeps, to delete at the provider: pending (retried by private.retry_appointment_mirroring while the calendar is connected) or given_up after 8 attempts (last_error says why; the event may still be in the calendar). Connecting the calendar again makes every one pending and due, counted from 0. Written by the calendar function (service role) through the functions below.';
