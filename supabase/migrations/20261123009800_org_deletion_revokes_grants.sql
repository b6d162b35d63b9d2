-- Deleting an organization revokes its calendar grants at the provider.
--
-- An org's deletion cascades its calendar connections and their sealed
-- tokens (private.calendar_tokens) away, pending leavers' revocations
-- (20261123008900) with them, so the calendar function's revocation pass
-- never saw those grants: each stayed valid at Google.
--
-- Now, whatever the path, a before-delete trigger on organizations copies
-- every connection of the org that holds tokens (provider, account, the
-- calendar key the tokens are sealed under, the ciphertext: never opened in
-- SQL) into private.deleted_org_calendar_grants, which has no key to the org
-- or the connection and so outlives both. The same pass (POST
-- calendar/revocations) claims these after the leavers' revocations,
-- revokes each grant as a disconnect does (not while a live connection, in
-- another org, holds the same account) and deletes the row, tokens and all.
-- Retries as the leavers' queue: 1, 4, 16 and 64 minutes; the fifth failure
-- deletes the row anyway. Parallel functions rather than the leavers' ones
-- generalised: those finish by deleting a connection (audited), and here
-- there is none left to delete or audit.
--
-- Personal data: a row holds the account e-mail (and subject) and the sealed
-- tokens only until its grant is revoked or given up, about 85 minutes at
-- worst (five attempts, the leases and the minute job's rounding on top);
-- the job deletes a row whose fifth attempt was never recorded, and any row
-- a day old (the function unreachable all that time).

create table private.deleted_org_calendar_grants (
  id uuid primary key default gen_random_uuid(),
  -- The deleted connection's and org's ids: no keys (both are gone), for the pass's answer and logs,
  -- and the org's is part of the context the tokens are sealed under.
  connection_id uuid not null,
  org_id uuid not null,
  provider text not null constraint deleted_org_calendar_grants_provider check (provider in ('google', 'microsoft')),
  account_subject text,
  account_email text not null,
  external_calendar_id text,
  ciphertext text not null constraint deleted_org_calendar_grants_ciphertext_length check (length(ciphertext) between 1 and 16384),
  attempts smallint not null default 0 constraint deleted_org_calendar_grants_attempts_range check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text constraint deleted_org_calendar_grants_last_error_length check (length(last_error) between 1 and 1000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table private.deleted_org_calendar_grants is 'Calendar grants of deleted orgs (20261123009800) that the calendar function still has to revoke at the provider: the deleted connection''s account, calendar key and sealed tokens, due at next_attempt_at, attempts counted by each claim. Personal data (account e-mail, tokens) kept only until revoked or given up (about 85 minutes at worst, a day at most). Written by the org-deletion trigger; the calendar function (service role) through the functions below.';
create index deleted_org_calendar_grants_due_idx on private.deleted_org_calendar_grants (next_attempt_at);
create index deleted_org_calendar_grants_created_idx on private.deleted_org_calendar_grants (created_at);
alter table private.deleted_org_calendar_grants enable row level security;
revoke all on private.deleted_org_calendar_grants from public, anon, authenticated, service_role;

create trigger deleted_org_calendar_grants_set_updated_at before update on private.deleted_org_calendar_grants
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- The org's deletion: its grants queued
-- ---------------------------------------------------------------------------

-- Only reads and an insert into a table without keys: no lock after the
-- org's row (README "Lock order"). A leaver's pending revocation goes on
-- with its attempts and schedule, so its bound holds.
create function private.queue_deleted_org_calendar_grants()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
    external_calendar_id, ciphertext, attempts, next_attempt_at, last_error)
  select c.id, c.org_id, c.provider, c.account_subject, c.account_email, c.external_calendar_id, t.ciphertext,
    coalesce(r.attempts, 0), coalesce(r.next_attempt_at, pg_catalog.now()), r.last_error
  from public.calendar_connections c
  join private.calendar_tokens t on t.connection_id = c.id
  left join private.calendar_grant_revocations r on r.connection_id = c.id
  where c.org_id = old.id;
  return old;
end;
$$;
revoke execute on function private.queue_deleted_org_calendar_grants() from public, anon, authenticated, service_role;

-- Before triggers fire in name order: after organizations_record_deletion_keep_invoices, so after the
-- final invoice's locks; it takes none of its own.
create trigger organizations_revoke_calendar_grants before delete on public.organizations
  for each row execute function private.queue_deleted_org_calendar_grants();

-- ---------------------------------------------------------------------------
-- The calendar function's pass (service role)
-- ---------------------------------------------------------------------------

-- As private.claim_due_calendar_grant_revocations: each held lease_seconds
-- (skip locked), the attempt counted; with what opening the tokens needs.
create function private.claim_due_deleted_org_calendar_grants(max_rows integer, lease_seconds integer)
returns table (
  id uuid, connection_id uuid, org_id uuid, provider text, account_subject text, account_email text,
  external_calendar_id text, ciphertext text, attempts smallint
)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if claim_due_deleted_org_calendar_grants.max_rows is null
    or claim_due_deleted_org_calendar_grants.max_rows not between 1 and 100 then
    raise exception 'max_rows must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  if claim_due_deleted_org_calendar_grants.lease_seconds is null
    or claim_due_deleted_org_calendar_grants.lease_seconds not between 1 and 900 then
    raise exception 'lease_seconds must be between 1 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  update private.deleted_org_calendar_grants g
  set attempts = g.attempts + 1,
      next_attempt_at = pg_catalog.clock_timestamp()
        + pg_catalog.make_interval(secs => claim_due_deleted_org_calendar_grants.lease_seconds)
  where g.id in (
    select due.id from private.deleted_org_calendar_grants due
    where due.next_attempt_at <= pg_catalog.now() and due.attempts < 5
    order by due.next_attempt_at
    limit claim_due_deleted_org_calendar_grants.max_rows
    for update of due skip locked
  )
  returning g.id, g.connection_id, g.org_id, g.provider, g.account_subject, g.account_email, g.external_calendar_id,
    g.ciphertext, g.attempts;
end;
$$;
comment on function private.claim_due_deleted_org_calendar_grants(integer, integer) is 'Claims up to max_rows (1-100) due grant revocations of deleted orgs'' connections, oldest due first, fewer than 5 attempts: counts the attempt and holds them lease_seconds (1-900). Answers each one''s id, the deleted connection''s id, org, provider, account, calendar id and sealed tokens, and attempts. Service role (the calendar function''s revocation pass).';
revoke execute on function private.claim_due_deleted_org_calendar_grants(integer, integer) from public, anon, authenticated;
grant execute on function private.claim_due_deleted_org_calendar_grants(integer, integer) to service_role;

-- error null: revoked, or nothing to revoke; an error: retried 1, 4, 16, 64
-- minutes later, the fifth deleting the row anyway. Null when it is gone.
create function private.finish_deleted_org_calendar_grant(id uuid, error text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  grant_row private.deleted_org_calendar_grants;
begin
  select * into grant_row from private.deleted_org_calendar_grants g
  where g.id = finish_deleted_org_calendar_grant.id
  for update;
  if not found then
    return null;
  end if;
  if finish_deleted_org_calendar_grant.error is not null and grant_row.attempts < 5 then
    update private.deleted_org_calendar_grants g
    set last_error = left(coalesce(nullif(pg_catalog.btrim(finish_deleted_org_calendar_grant.error), ''), 'unknown error'), 1000),
        next_attempt_at = pg_catalog.now() + interval '1 minute' * power(4, greatest(grant_row.attempts, 1) - 1)
    where g.id = grant_row.id;
    return 'pending';
  end if;
  delete from private.deleted_org_calendar_grants g where g.id = grant_row.id;
  return case when finish_deleted_org_calendar_grant.error is null then 'deleted' else 'given_up' end;
end;
$$;
comment on function private.finish_deleted_org_calendar_grant(uuid, text) is 'Records one attempt to revoke a deleted org''s calendar grant: error null deletes the row with its tokens (deleted); an error schedules the retry (1, 4, 16, 64 minutes; pending) or, at the fifth attempt, deletes the row anyway (given_up). Null when the row is gone. Service role.';
revoke execute on function private.finish_deleted_org_calendar_grant(uuid, text) from public, anon, authenticated;
grant execute on function private.finish_deleted_org_calendar_grant(uuid, text) to service_role;

-- ---------------------------------------------------------------------------
-- The job: calls the pass when either queue has one due
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123008900_leaver_grants_revoked_at_provider.sql.
-- Counts the deleted orgs' grants too, and first deletes those past their
-- bound: the fifth attempt's lease over without its result, or a day old.
create or replace function private.request_calendar_grant_revocations()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  due integer;
begin
  delete from private.deleted_org_calendar_grants g
  where (g.attempts >= 5 and g.next_attempt_at <= pg_catalog.now())
    or g.created_at < pg_catalog.now() - interval '1 day';
  select count(*)::integer into due from (
    select 1 from private.calendar_grant_revocations r
    join public.calendar_connections c on c.id = r.connection_id and c.status = 'revoked'
    where r.next_attempt_at <= pg_catalog.now()
    union all
    select 1 from private.deleted_org_calendar_grants g
    where g.next_attempt_at <= pg_catalog.now()
    limit 100
  ) x;
  if due > 0 then
    -- A pass revokes at most 20, a few at a time; more wait for the next minute.
    perform private.invoke_edge_function('calendar/revocations', '{}'::jsonb, 60000);
  end if;
  return due;
end;
$$;
comment on function private.request_calendar_grant_revocations() is 'pg_cron, every minute: deletes deleted orgs'' grant revocations past their bound, then calls the calendar function (POST calendar/revocations) when a leaver''s or a deleted org''s grant revocation is due. Answers how many are due (at most 100).';
revoke execute on function private.request_calendar_grant_revocations() from public, anon, authenticated, service_role;
