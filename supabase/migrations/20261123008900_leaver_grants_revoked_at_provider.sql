-- A leaver's calendar grant is revoked at the provider.
--
-- Since 20261123008200 a member who stops being one (removed, left,
-- membership deleted, user deleted) loses the calendar connections they made
-- in that org: marked revoked, then deleted with their tokens at once, in
-- SQL. Only the calendar function holds the token key, so the grant itself
-- was never revoked: the leaver's Google grant to our app stayed valid.
--
-- Now the leaver's connections are marked revoked as before (nothing books,
-- mirrors or reads busy times through them from that moment) and keep their
-- sealed tokens, with a pending revocation in
-- private.calendar_grant_revocations. The calendar function's scheduled pass
-- (POST calendar/revocations, called by pg_cron through
-- private.request_calendar_grant_revocations when one is due) claims each,
-- revokes the grant at the provider as a disconnect does (unless a live
-- connection, in any org, holds the same account: Google's revocation would
-- end that one's grant too), and deletes the connection through
-- private.delete_calendar_connection, audited as before. A refused or
-- unreachable provider is retried after 1, 4, 16 and 64 minutes; the fifth
-- failure deletes the connection anyway, its status_reason (audited) saying
-- why the grant may still stand. Microsoft offers no per-token revocation:
-- the first pass deletes those at once.
--
-- A revoked row never becomes usable again: update_calendar_tokens and
-- mark_calendar_needs_reauth skip it, and a connect of the same calendar
-- (the member back in the org, or another admin) deletes it and makes a new
-- row, its pending revocation going with it (that grant is the new row's now).

-- ---------------------------------------------------------------------------
-- Pending revocations
-- ---------------------------------------------------------------------------

create table private.calendar_grant_revocations (
  connection_id uuid primary key,
  -- No key of its own to public.organizations: the insert's check would key-share lock the org row while the
  -- leaver path holds the org's audit chain head, and delete_organization holds that row for update while it
  -- waits for the head (40P01). The connection's key below goes with the org all the same, and its check
  -- locks only the connection row the path has just updated.
  org_id uuid not null,
  attempts smallint not null default 0 constraint calendar_grant_revocations_attempts_range check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text constraint calendar_grant_revocations_last_error_length check (length(last_error) between 1 and 1000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- The work is the connection's tokens: gone with them (a disconnect, a reconnect, the org deleted).
  constraint calendar_grant_revocations_connection_fk foreign key (connection_id, org_id)
    references public.calendar_connections (id, org_id) on delete cascade
);
comment on table private.calendar_grant_revocations is 'Revoked calendar connections (their connector left the org) whose grant the calendar function still has to revoke at the provider before deleting them: due at next_attempt_at, attempts counted by each claim, last_error of the last failure. Written by the leaver triggers and the calendar function (service role) through the functions below.';
create index calendar_grant_revocations_due_idx on private.calendar_grant_revocations (next_attempt_at);
create index calendar_grant_revocations_connection_org_idx on private.calendar_grant_revocations (connection_id, org_id);
alter table private.calendar_grant_revocations enable row level security;
revoke all on private.calendar_grant_revocations from public, anon, authenticated, service_role;

create trigger calendar_grant_revocations_set_updated_at before update on private.calendar_grant_revocations
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Leavers: revoked and queued instead of deleted
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123008200_account_deletion_and_leavers.sql. The
-- connections are marked revoked as before but not deleted: each gets a
-- pending revocation instead. Already revoked ones (a disconnect under way,
-- or one whose function died before deleting it) are queued too, so none is
-- left behind with its tokens; their status_reason stays. Queuing twice
-- (the user-deletion trigger, then the cascade of their memberships) keeps
-- the first entry and its attempts. Answers how many were queued.
create or replace function private.disconnect_calendars_of_leaver(org_id uuid, user_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued integer;
begin
  update public.calendar_connections c
  set status = 'revoked', status_reason = 'the member who connected it left the organization'
  where c.connected_by = disconnect_calendars_of_leaver.user_id
    and (disconnect_calendars_of_leaver.org_id is null or c.org_id = disconnect_calendars_of_leaver.org_id)
    and c.status <> 'revoked';
  insert into private.calendar_grant_revocations (connection_id, org_id)
  select c.id, c.org_id
  from public.calendar_connections c
  where c.connected_by = disconnect_calendars_of_leaver.user_id
    and (disconnect_calendars_of_leaver.org_id is null or c.org_id = disconnect_calendars_of_leaver.org_id)
    and c.status = 'revoked'
  on conflict (connection_id) do nothing;
  get diagnostics queued = row_count;
  return queued;
end;
$$;
comment on function private.disconnect_calendars_of_leaver(uuid, uuid) is 'Disconnects every calendar connection the user connected in the org (every org when org_id is null): marked revoked at once and queued in private.calendar_grant_revocations, where the calendar function revokes the grant at the provider and deletes the connection with its tokens; the count queued. Called by the triggers on memberships and auth.users.';

-- ---------------------------------------------------------------------------
-- The calendar function's pass (service role)
-- ---------------------------------------------------------------------------

-- Due revocations, each held lease_seconds by the claim (skip locked: a
-- concurrent pass takes others) with the attempt counted; the account is
-- what the function needs to ask whether another connection holds it.
create function private.claim_due_calendar_grant_revocations(max_rows integer, lease_seconds integer)
returns table (connection_id uuid, provider text, account_subject text, account_email text, attempts smallint)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if claim_due_calendar_grant_revocations.max_rows is null
    or claim_due_calendar_grant_revocations.max_rows not between 1 and 100 then
    raise exception 'max_rows must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  if claim_due_calendar_grant_revocations.lease_seconds is null
    or claim_due_calendar_grant_revocations.lease_seconds not between 1 and 900 then
    raise exception 'lease_seconds must be between 1 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  update private.calendar_grant_revocations r
  set attempts = least(r.attempts + 1, 32767),
      next_attempt_at = pg_catalog.clock_timestamp()
        + pg_catalog.make_interval(secs => claim_due_calendar_grant_revocations.lease_seconds)
  from public.calendar_connections c
  where c.id = r.connection_id
    and r.connection_id in (
      select due.connection_id from private.calendar_grant_revocations due
      join public.calendar_connections revoked on revoked.id = due.connection_id and revoked.status = 'revoked'
      where due.next_attempt_at <= pg_catalog.now()
      order by due.next_attempt_at
      limit claim_due_calendar_grant_revocations.max_rows
      for update of due skip locked
    )
  returning r.connection_id, c.provider, c.account_subject, c.account_email, r.attempts;
end;
$$;
comment on function private.claim_due_calendar_grant_revocations(integer, integer) is 'Claims up to max_rows (1-100) due revocations of revoked calendar connections, oldest due first: counts the attempt and holds them lease_seconds (1-900). Answers each connection''s id, provider, account (subject and e-mail) and attempts. Service role (the calendar function''s revocation pass).';
revoke execute on function private.claim_due_calendar_grant_revocations(integer, integer) from public, anon, authenticated;
grant execute on function private.claim_due_calendar_grant_revocations(integer, integer) to service_role;

-- The result of one attempt. error null: the grant is revoked, or there was
-- nothing to revoke (the provider offers no revocation, another connection
-- holds the account, no tokens): the connection is deleted. An error: retried
-- 1, 4, 16, 64 minutes later; the fifth failure deletes the connection
-- anyway, first writing into its status_reason (audited) that the grant may
-- still stand. Answers deleted, pending or given_up; null when the
-- revocation is gone (the connection was deleted or replaced meanwhile).
create function private.finish_calendar_grant_revocation(connection_id uuid, error text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  revocation private.calendar_grant_revocations;
  failure text := left(coalesce(nullif(pg_catalog.btrim(finish_calendar_grant_revocation.error), ''), 'unknown error'), 1000);
begin
  select * into revocation from private.calendar_grant_revocations r
  where r.connection_id = finish_calendar_grant_revocation.connection_id
  for update;
  if not found then
    return null;
  end if;
  if finish_calendar_grant_revocation.error is null then
    perform private.delete_calendar_connection(revocation.connection_id);
    return 'deleted';
  end if;
  if revocation.attempts < 5 then
    update private.calendar_grant_revocations r
    set last_error = failure,
        next_attempt_at = pg_catalog.now() + interval '1 minute' * power(4, greatest(revocation.attempts, 1) - 1)
    where r.connection_id = revocation.connection_id;
    return 'pending';
  end if;
  update public.calendar_connections c
  set status_reason = left(coalesce(c.status_reason, 'disconnected')
    || '; the grant could not be revoked at the provider (' || revocation.attempts || ' attempts, last: ' || failure
    || '): the account owner can remove the app''s access there', 500)
  where c.id = revocation.connection_id;
  perform private.delete_calendar_connection(revocation.connection_id);
  return 'given_up';
end;
$$;
comment on function private.finish_calendar_grant_revocation(uuid, text) is 'Records one attempt to revoke a revoked connection''s grant at the provider: error null deletes the connection and its tokens (deleted); an error schedules the retry (1, 4, 16, 64 minutes; pending) or, at the fifth attempt, records the failure in status_reason and deletes the connection anyway (given_up). Null when there is no pending revocation for it. Service role.';
revoke execute on function private.finish_calendar_grant_revocation(uuid, text) from public, anon, authenticated;
grant execute on function private.finish_calendar_grant_revocation(uuid, text) to service_role;

-- ---------------------------------------------------------------------------
-- The job: calls the pass when a revocation is due
-- ---------------------------------------------------------------------------

create function private.request_calendar_grant_revocations()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  due integer;
begin
  select count(*)::integer into due from (
    select 1 from private.calendar_grant_revocations r
    join public.calendar_connections c on c.id = r.connection_id and c.status = 'revoked'
    where r.next_attempt_at <= pg_catalog.now()
    limit 100
  ) x;
  if due > 0 then
    -- A pass revokes at most 20, a few at a time; more wait for the next minute.
    perform private.invoke_edge_function('calendar/revocations', '{}'::jsonb, 60000);
  end if;
  return due;
end;
$$;
comment on function private.request_calendar_grant_revocations() is 'pg_cron, every minute: calls the calendar function (POST calendar/revocations) when a leaver''s grant revocation is due. Answers how many are due (at most 100).';
revoke execute on function private.request_calendar_grant_revocations() from public, anon, authenticated, service_role;

select cron.schedule('revoke-calendar-grants', '* * * * *', 'select private.request_calendar_grant_revocations()');
