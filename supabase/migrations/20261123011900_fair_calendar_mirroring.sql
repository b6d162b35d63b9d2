-- Calendar mirroring: one org's backlog or throttling no longer holds back
-- another org's appointments.
--
-- The retry pass (POST calendar/mirroring, every minute) mirrors at most 20
-- appointments, 4 at a time, each claimed one by one oldest due first across
-- every org; a throttled provider call waits up to twice 3-10 s in the call.
-- An org with 100 throttled calendars filled pass after pass, and another
-- org's failed booking mirror waited many minutes behind it. And a throttle
-- was recorded as a failure with an attempt: under Google's project-wide
-- rateLimitExceeded (one OAuth app for every org) any org's appointments
-- spent their attempts into hour-long backoff and were given up after 8.
--
-- Now:
-- * claim_due_appointment_syncs takes the orgs in turn: an appointment's turn
--   is its place in its org's due queue (oldest due first) plus the
--   mirrorings of that org running now (leases held), so the one-by-one
--   claims of a pass (and of overlapping passes) go round the orgs; within a
--   turn, oldest due first, as before;
-- * a mirroring the provider throttled is given back
--   (release_throttled_appointment_sync): no attempt counted, sync_status
--   and sync_error as they were, the lease released, due again after the
--   provider's Retry-After, at least a minute (the next pass: the calendar
--   client already waited out shorter ones within the call), at most an hour,
--   5 minutes when none is known.

-- Latest definition: 20261123008000_calendar_sync_after_reconnect.sql; only
-- the order is new (the orgs in turn). The turn is ranked in a CTE: a window
-- function cannot share a query level with for update.
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
  with running as (
    select h.org_id, count(*) as leases
    from public.appointments h
    where h.sync_status in ('pending', 'failed') and h.connection_id is not null
      and h.sync_claimed_until > pg_catalog.now()
    group by h.org_id
  ),
  queued as (
    select d.id, d.sync_next_attempt_at,
           coalesce(r.leases, 0) + row_number() over (partition by d.org_id order by d.sync_next_attempt_at, d.id) as turn
    from public.appointments d
    join public.calendar_connections c on c.id = d.connection_id and c.status = 'connected'
    left join running r on r.org_id = d.org_id
    where d.sync_status in ('pending', 'failed') and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts < 8
  )
  update public.appointments a
  set sync_claimed_until = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => claim_due_appointment_syncs.lease_seconds),
      sync_attempts = least(a.sync_attempts + 1, 32767)
  where a.id in (
    select d.id from public.appointments d
    join queued q on q.id = d.id
    -- Restated on the locked row: a concurrent claim or result since the snapshot is seen.
    where d.sync_status in ('pending', 'failed') and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts < 8
    order by q.turn, q.sync_next_attempt_at, q.id
    limit claim_due_appointment_syncs.max_rows
    for update of d skip locked
  )
  returning a.*;
end;
$$;
comment on function private.claim_due_appointment_syncs(integer, integer) is 'Claims (as claim_appointment_sync) up to max_rows (1-100) pending or failed appointments of connected calendars whose next attempt is due and that no mirroring holds, the orgs in turn: first by place in the org''s due queue plus the org''s mirrorings running now, then oldest due first. Service role.';

-- Gives back a mirroring the provider throttled, as private.release_dial_claims
-- does for dials: the throttle says nothing about the appointment, so it
-- costs none of its 8 attempts. Only the lease held (held_until, as
-- claim_appointment_sync renews it): a lease run out and taken over is the
-- new holder's. retry_after_seconds is numeric: a Retry-After may be any
-- number of seconds; it is bounded here.
create function private.release_throttled_appointment_sync(appointment_id uuid, held_until timestamptz, retry_after_seconds numeric)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  held timestamptz;
begin
  if release_throttled_appointment_sync.held_until is null then
    raise exception 'held_until must be the lease held' using errcode = 'invalid_parameter_value';
  end if;
  if release_throttled_appointment_sync.retry_after_seconds < 0
    or release_throttled_appointment_sync.retry_after_seconds = 'NaN'::numeric then
    raise exception 'retry_after_seconds must be a number of seconds, 0 or more' using errcode = 'invalid_parameter_value';
  end if;
  select a.sync_claimed_until into held
  from public.appointments a where a.id = release_throttled_appointment_sync.appointment_id for update;
  if not found then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  if held is distinct from release_throttled_appointment_sync.held_until then
    return false;
  end if;
  update public.appointments a
  set sync_claimed_until = null,
      sync_attempts = greatest(a.sync_attempts - 1, 0),
      sync_next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(
        secs => least(greatest(coalesce(release_throttled_appointment_sync.retry_after_seconds, 300), 60), 3600)::double precision)
  where a.id = release_throttled_appointment_sync.appointment_id;
  return true;
end;
$$;
comment on function private.release_throttled_appointment_sync(uuid, timestamptz, numeric) is 'Gives back the mirroring lease held_until of an appointment the provider throttled: the claim''s attempt is not counted, sync_status and sync_error stay, and it is due again after retry_after_seconds (at least 60, at most 3600; null: 300). False (nothing changed) when that lease is no longer held. P0002 unknown, 22023 no lease or a negative wait. Service role.';

revoke execute on function private.release_throttled_appointment_sync(uuid, timestamptz, numeric) from public;
grant execute on function private.release_throttled_appointment_sync(uuid, timestamptz, numeric) to service_role;

comment on column public.appointments.sync_attempts is 'Mirrorings begun since the appointment last changed, was mirrored or its calendar was connected again; the eighth failure is final. None is counted while the calendar is not connected, nor for a mirroring the provider throttled.';
