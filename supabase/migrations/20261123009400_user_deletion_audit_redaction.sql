-- A deleted user's e-mail addresses are erased from the audit log.
--
-- Deleting a user (private.delete_user, or the Auth admin API deleting the
-- auth.users row) deletes the invitations they accepted (20261123008200) and
-- revokes the calendar connections they made, which the revocation pass
-- deletes later (20261123008900). The org's audit log kept those rows whole:
-- the invitation's email and the connection's account_email, in the
-- insert and delete rows (and in every later data export, audit_log being
-- one of its tables), although the person's e-mail was promised to go.
--
-- Now the audit rows of such records are redacted as an org deletion redacts
-- a whole chain (20261123005200): old_values, new_values and the salt nulled,
-- redacted_at set, values_hash and the hashes kept, so the chain still
-- verifies; a redaction record (table_name 'audit_log', with the number of
-- rows and the records) is appended. Which records: a table of redaction
-- requests (org, table, record id), private.audit_redaction_requests. A
-- request is
--   * made for every invitation the user accepted and every calendar
--     connection they connected (still there, or found by the audit rows of
--     a connection already deleted, e.g. by the revocation pass after
--     delete_account, unless another member has connected it since), by a
--     before-delete trigger on auth.users (both paths go through it);
--   * made by the service role with private.redact_audit_records.
-- A request covers the record's audit rows written later too: the revocation
-- pass deletes a connection after its connector is gone, and that delete row
-- holds account_email. An audit row of a requested record marks its request
-- (an after-insert trigger on audit_log), and a deferred trigger on the
-- requests redacts the org's requested rows at the commit, when the rows
-- that cascades write are all in the chain.
--
-- Lock order: like the org deletion's, the redaction runs at the commit and
-- takes the chain head, which any audited write of the transaction already
-- holds, after every other lock. Requests have no foreign key to
-- organizations: its key-share lock on the org row, taken after a head,
-- would invert the order against delete_organization.
--
-- Version-1 rows (before 20261123005200) are redacted only while the chain
-- verifies, and each redaction record carries the seal over every redacted
-- version-1 row of the chain, as private.check_audit_chain reads the last
-- record's seal.

-- ---------------------------------------------------------------------------
-- Requests
-- ---------------------------------------------------------------------------

create table private.audit_redaction_requests (
  org_id uuid not null,
  table_name text not null constraint audit_redaction_requests_table_name check (table_name <> 'audit_log'),
  record_id text not null,
  requested_at timestamptz not null default now(),
  last_row_at timestamptz,
  primary key (org_id, table_name, record_id)
);
comment on table private.audit_redaction_requests is 'Records (org, table, record id) whose audit rows are redacted, now and whenever a later one is written: invitations and calendar connections of deleted users, and what the service role asks for with redact_audit_records. last_row_at: when the last audit row of the record was written (it schedules the redaction at that commit).';
alter table private.audit_redaction_requests enable row level security;
revoke all on private.audit_redaction_requests from public, anon, authenticated, service_role;

-- The redaction finds a record's rows by audit_log_record_idx, user deletion finds connections by
-- connector by audit_log_calendar_connector_idx: both built without blocking audited writes, in
-- 20261123009700 and 20261123009710 (a plain build here held every org's audited writes for the build).

-- ---------------------------------------------------------------------------
-- Append-only, but for the two redactions. Latest definition:
-- 20261123005200_redactable_audit_log.sql; only the branch for requested
-- records (the flag private.audit_redaction_records, a request for the row's
-- record, not a redaction record) is new.
-- ---------------------------------------------------------------------------

create or replace function private.guard_audit_log_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  redactable text[] := array['old_values', 'new_values', 'values_salt', 'redacted_at'];
begin
  if tg_op = 'UPDATE'
    and old.redacted_at is null
    and new.redacted_at is not null
    and new.old_values is null
    and new.new_values is null
    and new.values_salt is null
    and (old.hash_version = 1
      or old.values_hash = private.audit_values_hash(old.values_salt, old.old_values, old.new_values))
    and pg_catalog.to_jsonb(new) - redactable = pg_catalog.to_jsonb(old) - redactable
    and (
      (pg_catalog.current_setting('private.audit_redaction_org', true) = old.org_id::text
        and not exists (select 1 from public.organizations o where o.id = old.org_id))
      or (pg_catalog.current_setting('private.audit_redaction_records', true) = old.org_id::text
        and old.table_name <> 'audit_log'
        and exists (
          select 1 from private.audit_redaction_requests r
          where r.org_id = old.org_id and r.table_name = old.table_name and r.record_id = old.record_id
        ))
    )
  then
    return new;
  end if;
  raise exception 'the audit log is append-only: % is not allowed', pg_catalog.lower(tg_op)
    using errcode = 'insufficient_privilege';
end;
$$;
comment on function private.guard_audit_log_change() is 'Refuses every update and delete of public.audit_log but a redaction (values and salt nulled, redacted_at set, nothing else changed; a version-2 row''s values matching its values_hash) of a deleted org''s row by private.redact_deleted_org_audit_log, or of a requested record''s row by private.redact_requested_audit_rows.';

-- ---------------------------------------------------------------------------
-- Redaction of requested records
-- ---------------------------------------------------------------------------

create function private.redact_requested_audit_rows(org_id uuid)
returns table (redacted_rows bigint, kept_rows bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target uuid := redact_requested_audit_rows.org_id;
  version_1_redacted bigint := 0;
  version_2_redacted bigint := 0;
  version_1_records jsonb;
  version_2_records jsonb;
  kept bigint;
  seal bytea;
  entry public.audit_log;
begin
  -- A deleted org's whole chain is private.redact_deleted_org_audit_log's.
  if target is null or not exists (select 1 from public.organizations o where o.id = target) then
    return query select 0::bigint, 0::bigint;
    return;
  end if;
  if not exists (
    select 1 from private.audit_redaction_requests r
    join public.audit_log a on a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id
    where r.org_id = target and a.redacted_at is null
  ) then
    return query select 0::bigint, 0::bigint;
    return;
  end if;

  -- The chain head's lock, as for an org's redaction.
  perform 1 from private.audit_chain_heads h where h.org_id = target for update;

  perform pg_catalog.set_config('private.audit_redaction_records', target::text, true);

  if exists (
    select 1 from private.audit_redaction_requests r
    join public.audit_log a on a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id
    where r.org_id = target and a.hash_version = 1 and a.redacted_at is null
  ) and (select c.valid from private.check_audit_chain(target) c) then
    with redacted as (
      update public.audit_log a
      set old_values = null,
          new_values = null,
          redacted_at = pg_catalog.now()
      from private.audit_redaction_requests r
      where a.org_id = target and r.org_id = a.org_id and r.table_name = a.table_name and r.record_id = a.record_id
        and a.hash_version = 1 and a.redacted_at is null
      returning a.table_name, a.record_id
    )
    select count(*), pg_catalog.jsonb_agg(distinct pg_catalog.jsonb_build_object('table_name', d.table_name, 'record_id', d.record_id))
    into version_1_redacted, version_1_records
    from redacted d;
  end if;

  with redacted as (
    update public.audit_log a
    set old_values = null,
        new_values = null,
        values_salt = null,
        redacted_at = pg_catalog.now()
    from private.audit_redaction_requests r
    where a.org_id = target and r.org_id = a.org_id and r.table_name = a.table_name and r.record_id = a.record_id
      and a.hash_version = 2 and a.redacted_at is null
      and a.values_hash = private.audit_values_hash(a.values_salt, a.old_values, a.new_values)
    returning a.table_name, a.record_id
  )
  select count(*), pg_catalog.jsonb_agg(distinct pg_catalog.jsonb_build_object('table_name', d.table_name, 'record_id', d.record_id))
  into version_2_redacted, version_2_records
  from redacted d;

  perform pg_catalog.set_config('private.audit_redaction_records', '', true);

  select count(*) into kept
  from private.audit_redaction_requests r
  join public.audit_log a on a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id
  where r.org_id = target and a.redacted_at is null;
  if kept > 0 then
    raise warning 'the audit log of organization % keeps the values of % rows of records to redact: its chain does not verify', target, kept;
  end if;

  if version_1_redacted + version_2_redacted > 0 then
    -- The seal over every redacted version-1 row of the chain, earlier
    -- redactions' included: verification reads the last record's.
    for entry in
      select * from public.audit_log a
      where a.org_id = target and a.hash_version = 1 and a.redacted_at is not null
      order by a.seq
    loop
      seal := private.audit_seal_step(seal, entry);
    end loop;

    insert into public.audit_log (
      org_id, seq, actor_user_id, action, table_name, record_id, old_values, new_values, prev_hash, hash
    ) values (
      target, 0, auth.uid(), 'update', 'audit_log', null, null,
      pg_catalog.jsonb_build_object(
        'redacted_rows', version_1_redacted + version_2_redacted,
        'hash_version_1_rows', version_1_redacted,
        'kept_rows', kept,
        'hash_version_1_seal', pg_catalog.encode(seal, 'hex'),
        'records', (
          select pg_catalog.jsonb_agg(distinct e.value)
          from pg_catalog.jsonb_array_elements(coalesce(version_1_records, '[]') || coalesce(version_2_records, '[]')) e
        )
      ),
      '\x'::bytea, '\x'::bytea
    );
  end if;

  return query select version_1_redacted + version_2_redacted, kept;
end;
$$;
comment on function private.redact_requested_audit_rows(uuid) is 'Erases the values of a live org''s audit rows whose record has a redaction request (redacted_at set; the chain still verifies) and records the redaction (rows and records) in its chain; returns the rows redacted and the requested rows that keep their values because the chain does not verify. Run at the commit of every transaction that made a request or wrote an audit row of a requested record.';

create function private.redact_audit_records(org_id uuid, table_name text, record_ids text[])
returns table (redacted_rows bigint, kept_rows bigint)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.organizations o where o.id = redact_audit_records.org_id) then
    raise exception 'no such organization (a deleted one''s log: private.redact_deleted_org_audit_log)'
      using errcode = 'invalid_parameter_value';
  end if;
  if redact_audit_records.table_name is null or redact_audit_records.table_name = 'audit_log' then
    raise exception 'table_name must name an audited table' using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(pg_catalog.cardinality(redact_audit_records.record_ids), 0) not between 1 and 1000
    or pg_catalog.array_position(redact_audit_records.record_ids, null) is not null then
    raise exception 'record_ids must hold 1 to 1000 ids' using errcode = 'invalid_parameter_value';
  end if;
  insert into private.audit_redaction_requests (org_id, table_name, record_id)
  select redact_audit_records.org_id, redact_audit_records.table_name, r.id
  from pg_catalog.unnest(redact_audit_records.record_ids) r(id)
  on conflict on constraint audit_redaction_requests_pkey do nothing;
  return query select * from private.redact_requested_audit_rows(redact_audit_records.org_id);
end;
$$;
comment on function private.redact_audit_records(uuid, text, text[]) is 'Asks for the audit rows of the given records (1-1000 ids of one table of a live org) to be redacted, now and whenever a later one is written; redacts those there now and answers (redacted_rows, kept_rows). Service role.';

create function private.redact_audit_of_requested_records()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.redact_requested_audit_rows(new.org_id);
  return null;
end;
$$;
comment on function private.redact_audit_of_requested_records() is 'At the commit of a transaction that made a redaction request or wrote an audit row of a requested record: redacts the org''s requested rows.';

create constraint trigger audit_redaction_requests_redact after insert or update on private.audit_redaction_requests
  deferrable initially deferred
  for each row execute function private.redact_audit_of_requested_records();

create function private.mark_requested_audit_record()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update private.audit_redaction_requests r
  set last_row_at = pg_catalog.clock_timestamp()
  where r.org_id = new.org_id and r.table_name = new.table_name and r.record_id = new.record_id;
  return null;
end;
$$;
comment on function private.mark_requested_audit_record() is 'An audit row of a requested record (e.g. the revocation pass deleting a deleted user''s connection): touches its request, whose deferred trigger redacts it at the commit.';

-- ---------------------------------------------------------------------------
-- Deleted users
-- ---------------------------------------------------------------------------

-- Before the delete: the cascade deletes the accepted invitations and sets
-- connected_by null, after which neither can be told by user. In org order,
-- so the commit's redactions take the heads in org order.
create function private.request_audit_redaction_of_deleted_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.audit_redaction_requests (org_id, table_name, record_id)
  select r.org_id, r.table_name, r.record_id
  from (
    select i.org_id, 'invitations' as table_name, i.id::text as record_id
    from public.invitations i
    where i.accepted_by = old.id
    union
    select c.org_id, 'calendar_connections', c.id::text
    from public.calendar_connections c
    where c.connected_by = old.id
    union
    -- Connections they made that are gone already, or that they still hold;
    -- not one another member has connected since (its history is theirs):
    -- neither the live row nor a later audit row names another connector
    -- (a reconnect updates the row in place; a null is a deleted connector).
    select a.org_id, 'calendar_connections', a.record_id
    from public.audit_log a
    where a.table_name = 'calendar_connections'
      and a.new_values ->> 'connected_by' = old.id::text
      and a.record_id is not null
      and not exists (
        select 1 from public.calendar_connections c
        where c.id::text = a.record_id and c.connected_by is distinct from old.id
      )
      and not exists (
        select 1 from public.audit_log b
        where b.org_id = a.org_id and b.table_name = 'calendar_connections' and b.record_id = a.record_id
          and b.seq > a.seq and b.new_values ->> 'connected_by' <> old.id::text
      )
  ) r
  order by r.org_id, r.table_name, r.record_id
  on conflict on constraint audit_redaction_requests_pkey do nothing;
  return old;
end;
$$;
comment on function private.request_audit_redaction_of_deleted_user() is 'Before an auth.users row is deleted (delete_user, the Auth admin API): asks for the audit rows of the invitations the user accepted and the calendar connections they made to be redacted.';

comment on function private.delete_user(uuid) is 'Deletes a user''s account (memberships, then the auth.users row; profile, settings and the invitations they accepted cascade; the calendars they connected are disconnected; the audit rows of those invitations and connections are redacted at the commit); 23514 while they are the only owner of an org. False when there is no such user. Service role.';

revoke execute on function
  private.guard_audit_log_change(),
  private.redact_requested_audit_rows(uuid),
  private.redact_audit_records(uuid, text, text[]),
  private.redact_audit_of_requested_records(),
  private.mark_requested_audit_record(),
  private.request_audit_redaction_of_deleted_user()
from public, anon, authenticated, service_role;

grant execute on function private.redact_audit_records(uuid, text, text[]) to service_role;

-- Users deleted before this migration (20261123008200 on): the invitations
-- they accepted went with them, their connections' connector was set null.
-- Found by the audit rows naming a user who no longer exists, in live orgs;
-- connections only once gone or revoked.
insert into private.audit_redaction_requests (org_id, table_name, record_id)
select distinct a.org_id, a.table_name, a.record_id
from public.audit_log a
where a.redacted_at is null
  and a.record_id is not null
  and exists (select 1 from public.organizations o where o.id = a.org_id)
  and (
    (a.table_name = 'invitations' and a.action = 'delete'
      and a.old_values ->> 'accepted_by' is not null
      and not exists (select 1 from auth.users u where u.id::text = a.old_values ->> 'accepted_by'))
    or (a.table_name = 'calendar_connections'
      and a.new_values ->> 'connected_by' is not null
      and not exists (select 1 from auth.users u where u.id::text = a.new_values ->> 'connected_by')
      and not exists (
        select 1 from public.calendar_connections c where c.id::text = a.record_id and c.status <> 'revoked'
      )
      -- Not when another member connected it since.
      and not exists (
        select 1 from public.audit_log b
        where b.org_id = a.org_id and b.table_name = 'calendar_connections' and b.record_id = a.record_id
          and b.seq > a.seq and b.new_values ->> 'connected_by' <> a.new_values ->> 'connected_by'
      ))
  )
order by a.org_id, a.table_name, a.record_id
on conflict on constraint audit_redaction_requests_pkey do nothing;

-- The triggers come after the backfill's scan: creating a trigger locks its table against writes until the
-- commit (audit_log: every org's audited writes; auth.users: sign-ups and sign-ins). The audit_log trigger
-- comes before the backfill's redactions, which run now rather than at the commit: they take the redacted
-- orgs' chain heads, and a writer takes the audit_log table lock before its head, so taking the table lock
-- after a head would deadlock with it. The auth.users trigger comes last, held for the commit only.
create trigger audit_log_mark_requested_record after insert on public.audit_log
  for each row when (new.table_name <> 'audit_log' and new.record_id is not null)
  execute function private.mark_requested_audit_record();

set constraints private.audit_redaction_requests_redact immediate;

create trigger on_auth_user_deleted_redact_audit
  before delete on auth.users
  for each row execute function private.request_audit_redaction_of_deleted_user();
