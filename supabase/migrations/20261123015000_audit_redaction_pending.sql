-- The redaction of requested audit records (20261123009400) reads only the requests touched since their last
-- redaction.
--
-- Requests are never deleted (a request also covers the record's later audit rows), and the deferred trigger
-- ran private.redact_requested_audit_rows once per request inserted or touched, each run joining every request
-- the org ever had against audit_log. The hourly invitations purge inserts up to 200 requests a statement, so
-- its batch grew with the org's history (0.4 s for the first 200 of 4,000 invitations, 5.8 s for the
-- twentieth, the org's chain head held throughout).
--
-- Now a request is pending from its insert, and again whenever an audit row of its record is written, until a
-- redaction has redacted its rows. A run reads only the org's pending requests and clears them under the chain
-- head; the other runs of the same commit find none pending and return after one probe of a partial index.
-- Requests whose rows are kept (the chain does not verify, or a row's values no longer match its values_hash)
-- stay pending, so every later run of the org retries them, as every run did before. The flag is state in the
-- rows, not a statement or transaction time: migrations redact with `set constraints ... immediate` in
-- transactions that go on.
--
-- Lock order: the requests' update comes after the chain head, like the audit_log trigger's mark of a
-- request, the only other update of a request row; a request inserted but not committed is seen by no other
-- transaction.

-- Audited writes wait while this runs: a writer already past its audit row finishes its mark (the old body,
-- which does not set pending) and commits under the old trigger before the lock is granted, and later writers
-- block before their audit row; otherwise a mark blocked on the requests table by the drop below would go on
-- with the old body after this commit and leave its row unredacted. Writers take the two tables in either
-- order: a mark takes audit_log, then the requests, but the invitations purge (20261123012000) and an Auth
-- user's deletion (20261123009400) insert requests, then write audit rows. So both locks are taken without
-- waiting, together or not at all: a try that misses either rolls back its sub-block, which releases the one
-- it had, and no writer queues behind a half-held pair (waiting on one deadlocked with such a writer and
-- failed the push). In a DO block: `supabase db push` runs a file as one implicit transaction, where a
-- top-level LOCK TABLE is refused (25P01); the locks last to the file's end either way.
do $$
begin
  for attempt in 1..300 loop
    begin
      lock table public.audit_log in share mode nowait;
      lock table private.audit_redaction_requests in access exclusive mode nowait;
      return;
    exception when lock_not_available then
      perform pg_catalog.pg_sleep(0.1);
    end;
  end loop;
  raise exception 'audit_log and private.audit_redaction_requests were not both free in 300 tries (about 30 s): audited writes are busy; push again'
    using errcode = 'lock_not_available', hint = 'Run `supabase db push` again, at a quieter time if it keeps failing.';
end
$$;

-- The old trigger goes first: the backfill's update must not queue redactions, which would take chain heads
-- at this migration's commit while it holds the requests table.
drop trigger audit_redaction_requests_redact on private.audit_redaction_requests;

-- Existing requests were redacted at their commits, but for rows kept because the chain did not verify: those
-- stay pending, retried by the org's next redaction.
alter table private.audit_redaction_requests add column pending boolean not null default false;
update private.audit_redaction_requests r
set pending = true
where exists (select 1 from public.organizations o where o.id = r.org_id)
  -- A probe of audit_log_record_idx per request, not a semi-join the planner may run as a scan of all of
  -- audit_log while audited writes wait on the lock above.
  and (
    select true from public.audit_log a
    where a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id and a.redacted_at is null
    limit 1
  );
alter table private.audit_redaction_requests alter column pending set default true;
comment on column private.audit_redaction_requests.pending is 'True from the request and from every later audit row of the record until a redaction has redacted its rows (stays true while they are kept).';

create index audit_redaction_requests_pending_idx on private.audit_redaction_requests (org_id) where pending;

-- Latest definition: 20261123009400; only pending is new.
create or replace function private.mark_requested_audit_record()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update private.audit_redaction_requests r
  set last_row_at = pg_catalog.clock_timestamp(),
      pending = true
  where r.org_id = new.org_id and r.table_name = new.table_name and r.record_id = new.record_id;
  return null;
end;
$$;
comment on function private.mark_requested_audit_record() is 'An audit row of a requested record (e.g. the revocation pass deleting a deleted user''s connection): marks its request pending, whose deferred trigger redacts it at the commit.';

-- Latest definition: 20261123009400; the existence checks, both updates and the count of kept rows read only
-- pending requests, and the handled ones are cleared at the end.
create or replace function private.redact_requested_audit_rows(org_id uuid)
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
  -- The other runs of a commit whose first run redacted the org's requests stop here.
  if target is null or not exists (
    select 1 from private.audit_redaction_requests r where r.org_id = target and r.pending
  ) then
    return query select 0::bigint, 0::bigint;
    return;
  end if;
  -- A deleted org's whole chain is private.redact_deleted_org_audit_log's.
  if not exists (select 1 from public.organizations o where o.id = target) then
    return query select 0::bigint, 0::bigint;
    return;
  end if;

  -- The chain head's lock, as for an org's redaction, before the requests' update below.
  perform 1 from private.audit_chain_heads h where h.org_id = target for update;

  perform pg_catalog.set_config('private.audit_redaction_records', target::text, true);

  if exists (
    select 1 from private.audit_redaction_requests r
    join public.audit_log a on a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id
    where r.org_id = target and r.pending and a.hash_version = 1 and a.redacted_at is null
  ) and (select c.valid from private.check_audit_chain(target) c) then
    with redacted as (
      update public.audit_log a
      set old_values = null,
          new_values = null,
          redacted_at = pg_catalog.now()
      from private.audit_redaction_requests r
      where a.org_id = target and r.org_id = a.org_id and r.table_name = a.table_name and r.record_id = a.record_id
        and r.pending and a.hash_version = 1 and a.redacted_at is null
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
      and r.pending and a.hash_version = 2 and a.redacted_at is null
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
  where r.org_id = target and r.pending and a.redacted_at is null;
  if kept > 0 then
    raise warning 'the audit log of organization % keeps the values of % rows of records to redact: its chain does not verify', target, kept;
  end if;

  -- Requests with kept rows stay pending: the org's next redaction tries them again.
  update private.audit_redaction_requests r
  set pending = false
  where r.org_id = target and r.pending
    and not exists (
      select 1 from public.audit_log a
      where a.org_id = r.org_id and a.table_name = r.table_name and a.record_id = r.record_id and a.redacted_at is null
    );

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
comment on function private.redact_requested_audit_rows(uuid) is 'Erases the values of a live org''s audit rows whose record has a pending redaction request (redacted_at set; the chain still verifies), records the redaction (rows and records) in its chain and clears the requests whose rows are all redacted; returns the rows redacted and the requested rows that keep their values because the chain does not verify (their requests stay pending). Run at the commit of every transaction that made a request or wrote an audit row of a requested record.';

-- Clearing pending queues nothing; a request made or marked queues a run for its commit.
create constraint trigger audit_redaction_requests_redact
  after insert or update of pending on private.audit_redaction_requests
  deferrable initially deferred
  for each row when (new.pending)
  execute function private.redact_audit_of_requested_records();
