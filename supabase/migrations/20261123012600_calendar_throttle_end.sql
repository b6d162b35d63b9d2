-- Calendar mirroring: an appointment throttled without end is given up in
-- the end, and deleting stray events takes the orgs in turn.
--
-- 1. A mirroring the provider throttled was given back uncounted
--    (release_throttled_appointment_sync, 20261123011900), every time: an
--    appointment whose calendar was throttled for good was retried at most
--    once a minute for ever, never failed, never given up. Now, as a call
--    does under Vapi throttling (20261123011000), the start of an
--    appointment's throttled run is kept (appointments.sync_throttled_since,
--    cleared by any recorded result and by connecting its calendar again), and
--    a throttle 24 hours or more after it counts: the claim's attempt stands,
--    the appointment is `failed` with 'the calendar provider throttled every
--    attempt for 24 hours' and follows the retries of any failure (1, 4, 16,
--    64, 256 minutes, then 6 hours; the eighth attempt is final). The run
--    goes on through those (each later throttle counts too) until a result
--    that is not a throttle. A change to the appointment does not restart it:
--    the provider throttled, not this version (the change's fresh 8 attempts
--    still apply).
--
-- 2. The retry of failed deletes of stray events
--    (claim_due_calendar_event_deletions) handed them out oldest due first
--    across every org, one by one: one org's thousands of failed deletions
--    held back every other org's. Now it takes the orgs in turn as
--    claim_due_appointment_syncs does: a deletion's turn is its place in its
--    org's due queue plus the org's deletions running now (claimed_until, a
--    new lease column, as sync_claimed_until is for appointments), then
--    oldest due first. Each connected calendar brings at most max_rows of its
--    oldest due deletions to be ranked (an org's n-th due deletion follows its
--    first n - 1 in its turns, so none past max_rows of one calendar could
--    make the batch): a claim reads a few rows per calendar, not the backlog.

-- ---------------------------------------------------------------------------
-- 1. The end of a throttled run
-- ---------------------------------------------------------------------------

alter table public.appointments add column sync_throttled_since timestamptz;
comment on column public.appointments.sync_throttled_since is 'When the provider began throttling every mirroring of this appointment (private.release_throttled_appointment_sync); null once a mirroring had another result or its calendar was connected again. A throttle 24 hours after it counts as a failed attempt.';

-- The wait after a mirroring's failure, from the attempts counted: 1, 4, 16,
-- 64, 256 minutes, then 6 hours; null after the eighth (final). One rule for
-- a failure and for a throttle that counts as one.
create function private.appointment_sync_retry_delay(attempts integer)
returns interval
language sql
immutable
security invoker
set search_path = ''
as $$
  select case when appointment_sync_retry_delay.attempts < 8 then least(
    interval '6 hours', interval '1 minute' * power(4, greatest(appointment_sync_retry_delay.attempts, 1) - 1)) end;
$$;
comment on function private.appointment_sync_retry_delay(integer) is 'How long after a failed mirroring the next attempt comes, from the attempts counted: 1, 4, 16, 64, 256 minutes, then 6 hours; null from the eighth on (final).';
revoke execute on function private.appointment_sync_retry_delay(integer) from public;

-- Latest definition: 20261123003810_calendar_mirror_convergence.sql; new:
-- a current result ends the throttled run, and the retry wait is
-- appointment_sync_retry_delay (the same steps).
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
      -- The provider answered something other than a throttle: the run is over.
      sync_throttled_since = null,
      sync_next_attempt_at = case set_appointment_sync.sync_status
        when 'failed' then pg_catalog.now() + private.appointment_sync_retry_delay(attempts)
        when 'pending' then pg_catalog.now() + interval '1 minute'
      end,
      sync_attempts = case when set_appointment_sync.sync_status in ('failed', 'pending') then a.sync_attempts else 0 end
  where a.id = set_appointment_sync.appointment_id;
  return true;
end;
$$;
comment on function private.set_appointment_sync(uuid, text, text, text, timestamptz) is 'Records the result of mirroring an appointment to its calendar: the external event id (null keeps it), the sync status, the error (failed only, at most 1000 characters kept); releases the mirroring lease and ends a throttled run (sync_throttled_since); a failure is retried 1, 4, 16, 64, 256 minutes, then 6 hours later, until the eighth attempt. Ignored (false) when the appointment changed after mirrored_at (its updated_at when the lease was taken; null skips the check), except that an event id made at the provider is kept when the row has none (an id not kept is the caller''s to delete). P0002 unknown. Service role.';

-- Latest definition: 20261123011900_fair_calendar_mirroring.sql; new: the
-- first throttle of a run is stamped, and one 24 hours or more after it
-- counts as a failed attempt (see the header).
create or replace function private.release_throttled_appointment_sync(appointment_id uuid, held_until timestamptz, retry_after_seconds numeric)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  held timestamptz;
  since timestamptz;
begin
  if release_throttled_appointment_sync.held_until is null then
    raise exception 'held_until must be the lease held' using errcode = 'invalid_parameter_value';
  end if;
  if release_throttled_appointment_sync.retry_after_seconds < 0
    or release_throttled_appointment_sync.retry_after_seconds = 'NaN'::numeric then
    raise exception 'retry_after_seconds must be a number of seconds, 0 or more' using errcode = 'invalid_parameter_value';
  end if;
  select a.sync_claimed_until, a.sync_throttled_since into held, since
  from public.appointments a where a.id = release_throttled_appointment_sync.appointment_id for update;
  if not found then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  if held is distinct from release_throttled_appointment_sync.held_until then
    return false;
  end if;
  if since <= pg_catalog.now() - interval '24 hours' then
    -- Throttled for a day: a failure like any other, its attempt (the claim's) counted.
    update public.appointments a
    set sync_claimed_until = null,
        sync_status = 'failed',
        sync_error = 'the calendar provider throttled every attempt for 24 hours',
        sync_next_attempt_at = pg_catalog.now() + private.appointment_sync_retry_delay(a.sync_attempts)
    where a.id = release_throttled_appointment_sync.appointment_id;
    return true;
  end if;
  update public.appointments a
  set sync_claimed_until = null,
      sync_attempts = greatest(a.sync_attempts - 1, 0),
      sync_throttled_since = coalesce(a.sync_throttled_since, pg_catalog.now()),
      sync_next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(
        secs => least(greatest(coalesce(release_throttled_appointment_sync.retry_after_seconds, 300), 60), 3600)::double precision)
  where a.id = release_throttled_appointment_sync.appointment_id;
  return true;
end;
$$;
comment on function private.release_throttled_appointment_sync(uuid, timestamptz, numeric) is 'Gives back the mirroring lease held_until of an appointment the provider throttled: the claim''s attempt is not counted, sync_status and sync_error stay, it is due again after retry_after_seconds (at least 60, at most 3600; null: 300), and the throttled run''s start is kept (sync_throttled_since). 24 hours or more into the run the throttle counts instead: the attempt stands and the appointment is failed (''the calendar provider throttled every attempt for 24 hours''), retried as any failure (the eighth attempt is final). False (nothing changed) when that lease is no longer held. P0002 unknown, 22023 no lease or a negative wait. Service role.';

-- Latest definition: 20261123008000_calendar_sync_after_reconnect.sql; new:
-- a reconnect also ends the appointments' throttled runs (the days a broken
-- calendar waited were no throttling, and the new grant starts afresh).
create or replace function private.calendar_connections_requeue_sync()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.appointments a
  set sync_attempts = 0, sync_next_attempt_at = pg_catalog.now(), sync_throttled_since = null
  where a.connection_id = new.id and a.sync_status in ('pending', 'failed');
  update private.calendar_event_deletions d
  set status = 'pending', attempts = 0, next_attempt_at = pg_catalog.now()
  where d.connection_id = new.id;
  return null;
end;
$$;
revoke execute on function private.calendar_connections_requeue_sync() from public;

comment on column public.appointments.sync_attempts is 'Mirrorings begun since the appointment last changed, was mirrored or its calendar was connected again; the eighth failure is final. None is counted while the calendar is not connected, nor for a mirroring the provider throttled within 24 hours of the throttling''s start (sync_throttled_since).';

-- ---------------------------------------------------------------------------
-- 2. Stray event deletions, the orgs in turn
-- ---------------------------------------------------------------------------

alter table private.calendar_event_deletions add column claimed_until timestamptz;
comment on column private.calendar_event_deletions.claimed_until is 'While the retry deletes this event: until when it holds it (the lease; its org''s running deletions take their turns first). Null once the attempt is recorded.';

-- A calendar's oldest due deletions (the claim reads at most max_rows each),
-- and the orgs' running ones (few: null once recorded).
create index calendar_event_deletions_connection_due_idx on private.calendar_event_deletions (connection_id, next_attempt_at, id)
  where status = 'pending';
create index calendar_event_deletions_claimed_idx on private.calendar_event_deletions (org_id, claimed_until)
  where claimed_until is not null;

-- Latest definition: 20261123008000_calendar_sync_after_reconnect.sql; new:
-- the orgs in turn, claimed_until, and at most max_rows read per calendar.
-- The turn is ranked in a CTE: a window function cannot share a query level
-- with for update.
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
  with running as (
    select r.org_id, count(*) as leases
    from private.calendar_event_deletions r
    where r.claimed_until is not null and r.claimed_until > pg_catalog.now() and r.status = 'pending'
    group by r.org_id
  ),
  candidates as (
    select q.id, q.org_id, q.next_attempt_at
    from public.calendar_connections c
    cross join lateral (
      select due.id, due.org_id, due.next_attempt_at
      from private.calendar_event_deletions due
      where due.connection_id = c.id and due.status = 'pending'
        and due.next_attempt_at <= pg_catalog.now() and due.attempts < 8
      order by due.next_attempt_at, due.id
      limit claim_due_calendar_event_deletions.max_rows
    ) q
    where c.status = 'connected'
  ),
  queued as (
    select q.id, q.next_attempt_at,
           coalesce(r.leases, 0) + row_number() over (partition by q.org_id order by q.next_attempt_at, q.id) as turn
    from candidates q
    left join running r on r.org_id = q.org_id
  )
  update private.calendar_event_deletions d
  set attempts = least(d.attempts + 1, 32767),
      next_attempt_at = pg_catalog.clock_timestamp()
        + pg_catalog.make_interval(secs => claim_due_calendar_event_deletions.lease_seconds),
      claimed_until = pg_catalog.clock_timestamp()
        + pg_catalog.make_interval(secs => claim_due_calendar_event_deletions.lease_seconds)
  where d.id in (
    select x.id from private.calendar_event_deletions x
    join queued q on q.id = x.id
    -- Restated on the locked row: a concurrent claim or result since the snapshot is seen.
    where x.status = 'pending' and x.next_attempt_at <= pg_catalog.now() and x.attempts < 8
    order by q.turn, q.next_attempt_at, q.id
    limit claim_due_calendar_event_deletions.max_rows
    for update of x skip locked
  )
  returning d.id, d.connection_id, d.appointment_id, d.external_event_id, d.attempts;
end;
$$;
comment on function private.claim_due_calendar_event_deletions(integer, integer) is 'Claims up to max_rows (1-100) pending event deletions of connected calendars that are due and under 8 attempts, the orgs in turn: first by place in the org''s due queue plus the org''s deletions running now (claimed_until), then oldest due first; counts the attempt and holds them lease_seconds (1-900). Service role.';

-- Latest definition: 20261123005600_calendar_shared_grants_and_stray_events.sql;
-- new: the attempt recorded, the deletion no longer runs (claimed_until).
create or replace function private.finish_calendar_event_deletion(deletion_id uuid, error text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  deletion private.calendar_event_deletions;
begin
  if finish_calendar_event_deletion.error is null then
    delete from private.calendar_event_deletions d where d.id = finish_calendar_event_deletion.deletion_id;
    return case when found then 'deleted' end;
  end if;
  update private.calendar_event_deletions d
  set last_error = left(coalesce(nullif(pg_catalog.btrim(finish_calendar_event_deletion.error), ''), 'unknown error'), 1000),
      status = case when d.attempts >= 8 then 'given_up' else 'pending' end,
      next_attempt_at = case when d.attempts < 8 then pg_catalog.now() + least(
        interval '6 hours', interval '1 minute' * power(4, greatest(d.attempts, 1) - 1)) end,
      claimed_until = null
  where d.id = finish_calendar_event_deletion.deletion_id
  returning d.* into deletion;
  return deletion.status;
end;
$$;
comment on function private.finish_calendar_event_deletion(uuid, text) is 'Records one attempt to delete an unneeded provider event: error null removes the row (deleted); an error schedules the retry (1, 4, 16, 64, 256 minutes, then 6 hours; pending) or, after the eighth attempt, gives up (given_up, with the error kept), and ends its lease (claimed_until). Null when the row is gone. Service role.';
