-- Calendar: a disconnect no longer breaks the same account's other
-- connections, and an unneeded event whose deletion failed is retried.
--
-- 1. Google's revocation ends the app's whole grant for the Google user
--    (every token our OAuth client holds for that account), not one token.
--    Disconnecting a calendar revoked it, so the same account connected in
--    another org (or for another calendar or bot of the same org) silently
--    stopped working. The calendar function now revokes only when no other
--    live connection holds the same provider account; otherwise it only
--    deletes our tokens. private.calendar_account_connected_elsewhere
--    answers that across orgs, as a bare boolean. Microsoft offers no
--    revocation of delegated tokens (its revoke() calls nothing), so a
--    Microsoft disconnect never touched other connections.
--
-- 2. A mirroring that made an event the appointment did not keep (its lease
--    was taken over meanwhile) deleted it at once, and a failed delete was
--    only logged: the stray event blocked the slot in the business's calendar
--    for good. Now it is recorded in private.calendar_event_deletions in the
--    transaction that finds it unneeded (so it survives the request dying),
--    deleted at once, and a failure is retried by the mirroring retry on the
--    schedule of appointments (1, 4, 16, 64, 256 minutes, then 6 hours); the
--    eighth failed attempt gives up, leaving the row `given_up` with its last
--    error.

-- ---------------------------------------------------------------------------
-- 1. Whether a provider account is connected elsewhere
-- ---------------------------------------------------------------------------

-- The account is (provider, account e-mail): what a connection stores of it.
create index calendar_connections_provider_account_idx on public.calendar_connections (provider, account_email);

-- Another connection (any org, any calendar or bot) of the same provider
-- account that is not being disconnected. needs_reauth ones count: a refresh
-- race can mark a connection whose grant still works, and keeping a grant is
-- the safe side. Only a boolean leaves the function; an unknown id is false.
create function private.calendar_account_connected_elsewhere(connection_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.calendar_connections target
    join public.calendar_connections other
      on other.provider = target.provider and other.account_email = target.account_email
    where target.id = calendar_account_connected_elsewhere.connection_id
      and other.id <> target.id and other.status <> 'revoked'
  );
$$;
comment on function private.calendar_account_connected_elsewhere(uuid) is 'Whether another live (not revoked) connection, in any org, holds the same provider account (provider and account e-mail) as this one: then revoking at the provider would end that one''s grant too. False for an unknown id. Answers a boolean only. Service role (the calendar function''s disconnect).';

revoke execute on function private.calendar_account_connected_elsewhere(uuid) from public;
grant execute on function private.calendar_account_connected_elsewhere(uuid) to service_role;

-- ---------------------------------------------------------------------------
-- 2. Deleting unneeded provider events, durably
-- ---------------------------------------------------------------------------

create table private.calendar_event_deletions (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  -- Deleted with its calendar: without the tokens nothing can delete the event.
  connection_id uuid not null,
  -- For the logs; the event is the work, so it outlives its appointment.
  appointment_id uuid references public.appointments (id) on delete set null,
  external_event_id text not null
    constraint calendar_event_deletions_external_event_id_length check (length(external_event_id) between 1 and 1024),
  status text not null default 'pending' constraint calendar_event_deletions_status check (status in ('pending', 'given_up')),
  attempts smallint not null default 1 constraint calendar_event_deletions_attempts_range check (attempts >= 0),
  next_attempt_at timestamptz,
  last_error text constraint calendar_event_deletions_last_error_length check (length(last_error) between 1 and 1000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calendar_event_deletions_connection_fk foreign key (connection_id, org_id)
    references public.calendar_connections (id, org_id) on delete cascade,
  constraint calendar_event_deletions_event_key unique (connection_id, external_event_id),
  constraint calendar_event_deletions_due check ((status = 'pending') = (next_attempt_at is not null))
);
comment on table private.calendar_event_deletions is 'Provider events a mirroring made that no appointment keeps, to delete at the provider: pending (retried by private.retry_appointment_mirroring) or given_up after 8 attempts (last_error says why; the event may still be in the calendar). Written by the calendar function (service role) through the functions below.';
create index calendar_event_deletions_due_idx on private.calendar_event_deletions (next_attempt_at) where status = 'pending';
create index calendar_event_deletions_org_id_idx on private.calendar_event_deletions (org_id);
create index calendar_event_deletions_appointment_id_idx on private.calendar_event_deletions (appointment_id);
create index calendar_event_deletions_connection_org_idx on private.calendar_event_deletions (connection_id, org_id);
alter table private.calendar_event_deletions enable row level security;
revoke all on private.calendar_event_deletions from public, anon, authenticated, service_role;

create trigger calendar_event_deletions_set_updated_at before update on private.calendar_event_deletions
  for each row execute function private.set_updated_at();

-- Records an event the appointment's mirroring made and did not keep, in the
-- calendar the appointment is mirrored to. The caller deletes it at once, so
-- it is due for the retry only 2 minutes later (past the mirroring lease);
-- that first try counts as attempt 1. Answers the deletion's id, or null when
-- the appointment has no calendar any more (its tokens are gone with it).
create function private.record_calendar_event_deletion(appointment_id uuid, external_event_id text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  recorded uuid;
begin
  if record_calendar_event_deletion.external_event_id is null
    or length(record_calendar_event_deletion.external_event_id) not between 1 and 1024 then
    raise exception 'external_event_id must have 1 to 1024 characters' using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from public.appointments a where a.id = record_calendar_event_deletion.appointment_id) then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  insert into private.calendar_event_deletions as d (org_id, connection_id, appointment_id, external_event_id, next_attempt_at)
  select a.org_id, a.connection_id, a.id, record_calendar_event_deletion.external_event_id, pg_catalog.now() + interval '2 minutes'
  from public.appointments a
  where a.id = record_calendar_event_deletion.appointment_id and a.connection_id is not null
  on conflict on constraint calendar_event_deletions_event_key
    -- Recorded again (the same event left behind once more): a fresh round of attempts, a given-up one included.
    do update set status = 'pending', next_attempt_at = excluded.next_attempt_at, attempts = 1, last_error = null
  returning d.id into recorded;
  return recorded;
end;
$$;
comment on function private.record_calendar_event_deletion(uuid, text) is 'Records an event at the provider that the appointment did not keep, to delete in the appointment''s calendar (attempt 1 is the caller''s, the retry''s turn comes 2 minutes later). Answers its id; null when the appointment has no calendar. P0002 unknown appointment, 22023 bad event id. Service role.';

-- The due deletions for the retry route, claimed as appointments are: the
-- next attempt is counted and pushed past the lease (skip locked: a
-- concurrent call takes others).
create function private.claim_due_calendar_event_deletions(max_rows integer, lease_seconds integer)
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
    where due.status = 'pending' and due.next_attempt_at <= pg_catalog.now() and due.attempts < 8
    order by due.next_attempt_at
    limit claim_due_calendar_event_deletions.max_rows
    for update skip locked
  )
  returning d.id, d.connection_id, d.appointment_id, d.external_event_id, d.attempts;
end;
$$;
comment on function private.claim_due_calendar_event_deletions(integer, integer) is 'Claims up to max_rows (1-100) pending event deletions that are due and under 8 attempts, oldest due first: counts the attempt and holds them lease_seconds (1-900). Service role.';

-- The result of one attempt: done (error null: the row goes), or failed and
-- retried 1, 4, 16, 64, 256 minutes, then 6 hours after the attempt; the
-- eighth failure gives up. Answers deleted, pending or given_up; null when
-- the deletion is gone (its calendar was disconnected meanwhile).
create function private.finish_calendar_event_deletion(deletion_id uuid, error text)
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
        interval '6 hours', interval '1 minute' * power(4, greatest(d.attempts, 1) - 1)) end
  where d.id = finish_calendar_event_deletion.deletion_id
  returning d.* into deletion;
  return deletion.status;
end;
$$;
comment on function private.finish_calendar_event_deletion(uuid, text) is 'Records one attempt to delete an unneeded provider event: error null removes the row (deleted); an error schedules the retry (1, 4, 16, 64, 256 minutes, then 6 hours; pending) or, after the eighth attempt, gives up (given_up, with the error kept). Null when the row is gone. Service role.';

-- Restated from 20261123003810_calendar_mirror_convergence.sql: due event
-- deletions call the function too, and one whose eighth attempt never
-- finished is given up (as a pending appointment is).
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
    where d.sync_status = 'pending' and d.connection_id is not null
      and d.sync_next_attempt_at <= pg_catalog.now()
      and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
      and d.sync_attempts >= 8
    for update skip locked
  );
  update private.calendar_event_deletions d
  set status = 'given_up', next_attempt_at = null, last_error = coalesce(d.last_error, 'deleting did not finish in 8 attempts')
  where d.id in (
    select g.id from private.calendar_event_deletions g
    where g.status = 'pending' and g.next_attempt_at <= pg_catalog.now() and g.attempts >= 8
    for update skip locked
  );
  select count(*)::integer into due from (
    (select 1 from public.appointments d
     where d.sync_status in ('pending', 'failed') and d.connection_id is not null
       and d.sync_next_attempt_at <= pg_catalog.now()
       and (d.sync_claimed_until is null or d.sync_claimed_until <= pg_catalog.now())
     limit 100)
    union all
    (select 1 from private.calendar_event_deletions g
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
comment on function private.retry_appointment_mirroring() is 'pg_cron, every minute: fails pending appointments whose mirroring did not finish in 8 attempts and gives up event deletions likewise, and calls the calendar function (POST calendar/mirroring) when any pending or failed appointment or pending event deletion is due. Answers how many are due (at most 100 of each).';

revoke execute on function
  private.record_calendar_event_deletion(uuid, text),
  private.claim_due_calendar_event_deletions(integer, integer),
  private.finish_calendar_event_deletion(uuid, text),
  private.retry_appointment_mirroring()
from public;
grant execute on function
  private.record_calendar_event_deletion(uuid, text),
  private.claim_due_calendar_event_deletions(integer, integer),
  private.finish_calendar_event_deletion(uuid, text)
to service_role;
