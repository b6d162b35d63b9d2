-- 20261123015000: a redaction request is pending from its insert and from every later audit row of its
-- record until a redaction has redacted its rows; the commit's redaction reads only the org's pending
-- requests (not every request the org ever made), clears them, and names only its own records; requests
-- whose rows are kept stay pending and are retried by the org's next redaction.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

select tests.remember('owner', tests.create_user('owner@pending323.test'));
select tests.remember('org', tests.create_org('pending323-org', tests.fx('owner')));
select tests.remember('org_kept', tests.create_org('pending323-kept', tests.fx('owner')));

-- An expired invitation (its insert audited), as the purge finds them; its id.
create function pg_temp.invitation(org text, email text) returns uuid language sql as $$
  insert into public.invitations (org_id, email, role, created_at, expires_at, last_sent_at)
  values (tests.fx(org), email, 'member', now() - interval '40 days', now() - interval '31 days', now() - interval '40 days')
  returning id
$$;

create function pg_temp.request(org text, record uuid) returns void language sql as $$
  insert into private.audit_redaction_requests (org_id, table_name, record_id)
  values (tests.fx(org), 'invitations', record::text)
$$;

create function pg_temp.pending(org text, record text) returns boolean language sql as $$
  select r.pending from private.audit_redaction_requests r
  where r.org_id = tests.fx(org) and r.table_name = 'invitations' and r.record_id = tests.fx(record)::text
$$;

-- A record's audit rows: 'rows/redacted', a redacted row counting only with its values and salt gone.
create function pg_temp.redaction(org text, record text) returns text language sql as $$
  select count(*) || '/' || count(*) filter (
    where a.redacted_at is not null and a.old_values is null and a.new_values is null and a.values_salt is null
      and a.values_hash is not null)
  from public.audit_log a
  where a.org_id = tests.fx(org) and a.table_name = 'invitations' and a.record_id = tests.fx(record)::text
$$;

-- The org's newest redaction record: its records and row count.
create function pg_temp.last_record(org text) returns jsonb language sql as $$
  select a.new_values from public.audit_log a
  where a.org_id = tests.fx(org) and a.table_name = 'audit_log'
  order by a.seq desc
  limit 1
$$;

create function pg_temp.names(variadic records text[]) returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('table_name', 'invitations', 'record_id', tests.fx(r)::text) order by tests.fx(r)::text)
  from unnest(records) r
$$;

-- What a commit does: the deferred redaction runs.
create function pg_temp.commit_redactions() returns void language plpgsql as $$
begin
  set constraints private.audit_redaction_requests_redact immediate;
  set constraints private.audit_redaction_requests_redact deferred;
end;
$$;

create function pg_temp.chain_valid(org text) returns boolean language plpgsql as $$
declare
  answer boolean;
begin
  perform tests.act_as('service_role');
  select c.valid and c.rows_checked = (select count(*) from public.audit_log a where a.org_id = tests.fx(org))
  into answer from public.verify_audit_chain(tests.fx(org)) c;
  perform tests.act_as('postgres');
  return answer;
end;
$$;
grant execute on function pg_temp.chain_valid(text) to public;

-- Request rows read (sequential and index heap fetches) in this transaction so far.
create function pg_temp.requests_read() returns bigint language sql as $$
  select coalesce(s.seq_tup_read, 0) + coalesce(s.idx_tup_fetch, 0)
  from pg_stat_xact_user_tables s
  where s.relid = 'private.audit_redaction_requests'::regclass
$$;

-- ---------------------------------------------------------------------------
-- 1. A request is redacted at the commit and is then no longer pending
-- ---------------------------------------------------------------------------

select tests.remember('inv_a', pg_temp.invitation('org', 'a@pending323.test'));
select pg_temp.request('org', tests.fx('inv_a'));
select is(pg_temp.pending('org', 'inv_a'), true, 'a new request is pending');
select is(pg_temp.redaction('org', 'inv_a'), '1/0', 'until the commit its record''s rows keep their values');
select pg_temp.commit_redactions();
select is(pg_temp.redaction('org', 'inv_a'), '1/1', 'at the commit the record''s rows are redacted');
select is(pg_temp.pending('org', 'inv_a'), false, 'and the request is no longer pending');
select is(pg_temp.last_record('org') -> 'records', pg_temp.names('inv_a'), 'the redaction record names the record');
select is(pg_temp.chain_valid('org'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 2. A later audit row of the record marks the request and is redacted at its commit
-- ---------------------------------------------------------------------------

update public.invitations set last_sent_at = now() where id = tests.fx('inv_a');
select is(pg_temp.pending('org', 'inv_a'), true, 'a later audit row of the record marks its request pending');
select is(pg_temp.redaction('org', 'inv_a'), '2/1', 'the new row keeps its values until the commit');
select pg_temp.commit_redactions();
select is(pg_temp.redaction('org', 'inv_a'), '2/2', 'at the commit the new row is redacted');
select is(pg_temp.pending('org', 'inv_a'), false, 'and the request is no longer pending');
select is(pg_temp.last_record('org') ->> 'redacted_rows', '1', 'the redaction record counts only the new row');
select is(pg_temp.chain_valid('org'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 3. A second transaction's redaction names only its own records
-- ---------------------------------------------------------------------------

select tests.remember('inv_b', pg_temp.invitation('org', 'b@pending323.test'));
select tests.remember('inv_c', pg_temp.invitation('org', 'c@pending323.test'));
select pg_temp.request('org', tests.fx('inv_b'));
select pg_temp.request('org', tests.fx('inv_c'));
select pg_temp.commit_redactions();
select is(pg_temp.last_record('org') -> 'records', pg_temp.names('inv_b', 'inv_c'),
  'the second redaction record names only its own records');
select is(pg_temp.last_record('org') ->> 'redacted_rows', '2', 'and counts only their rows');
select is(
  (select count(*)::int from public.audit_log a
   where a.org_id = tests.fx('org') and a.table_name = 'audit_log' and a.record_id is null
     and (a.new_values ->> 'redacted_rows')::int > 0),
  3,
  'one redaction record a commit, though the commit made two requests'
);
select is(pg_temp.chain_valid('org'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 4. Processed requests are not read again
-- ---------------------------------------------------------------------------

select pg_temp.request('org', pg_temp.invitation('org', 'old-' || g || '@pending323.test'))
from generate_series(1, 500) g;
select pg_temp.commit_redactions();
select is(
  (select count(*)::int from private.audit_redaction_requests r where r.org_id = tests.fx('org') and not r.pending),
  503,
  'fixture: 503 processed requests, none pending'
);
select tests.remember('inv_d', pg_temp.invitation('org', 'd@pending323.test'));
select pg_temp.request('org', tests.fx('inv_d'));
select set_config('pending323.read_before', pg_temp.requests_read()::text, true);
select pg_temp.commit_redactions();
select cmp_ok(pg_temp.requests_read() - current_setting('pending323.read_before')::bigint, '<', 50::bigint,
  'the redaction of one new request reads a few request rows, not the 503 processed ones');
select is(pg_temp.redaction('org', 'inv_d'), '1/1', 'and redacts the new request''s rows');
select is(pg_temp.last_record('org') -> 'records', pg_temp.names('inv_d'), 'naming only it');
select is(pg_temp.chain_valid('org'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 5. Requests whose rows are kept stay pending and are tried again
-- ---------------------------------------------------------------------------

select tests.remember('inv_kept', pg_temp.invitation('org_kept', 'kept@pending323.test'));
alter table public.audit_log disable trigger audit_log_append_only;
update public.audit_log set new_values = new_values || '{"email": "forged@pending323.test"}'
where org_id = tests.fx('org_kept') and table_name = 'invitations' and record_id = tests.fx('inv_kept')::text;
alter table public.audit_log enable trigger audit_log_append_only;
select pg_temp.request('org_kept', tests.fx('inv_kept'));
select pg_temp.commit_redactions();
select is(pg_temp.redaction('org_kept', 'inv_kept'), '1/0',
  'a row whose values no longer match its values_hash keeps them');
select is(pg_temp.pending('org_kept', 'inv_kept'), true, 'and its request stays pending');

-- Put back, the row is redacted by the org's next redaction (another record's request).
alter table public.audit_log disable trigger audit_log_append_only;
update public.audit_log set new_values = new_values || '{"email": "kept@pending323.test"}'
where org_id = tests.fx('org_kept') and table_name = 'invitations' and record_id = tests.fx('inv_kept')::text;
alter table public.audit_log enable trigger audit_log_append_only;
select tests.remember('inv_next', pg_temp.invitation('org_kept', 'next@pending323.test'));
select pg_temp.request('org_kept', tests.fx('inv_next'));
select pg_temp.commit_redactions();
select is(pg_temp.redaction('org_kept', 'inv_kept') || ' ' || pg_temp.redaction('org_kept', 'inv_next'), '1/1 1/1',
  'the org''s next redaction retries the kept request with its own');
select is(
  (select count(*)::int from private.audit_redaction_requests r where r.org_id = tests.fx('org_kept') and r.pending),
  0,
  'then neither is pending'
);
select is(pg_temp.chain_valid('org_kept'), true, 'the chain verifies');

-- ---------------------------------------------------------------------------
-- 6. The service role redacts at once
-- ---------------------------------------------------------------------------

select tests.remember('inv_e', pg_temp.invitation('org', 'e@pending323.test'));
select tests.act_as('service_role');
select results_eq(
  $$select redacted_rows, kept_rows from private.redact_audit_records(tests.fx('org'), 'invitations', array[tests.fx('inv_e')::text])$$,
  $$values (1::bigint, 0::bigint)$$,
  'redact_audit_records redacts the record''s rows at once'
);
select tests.act_as('postgres');
select is(pg_temp.pending('org', 'inv_e'), false, 'and its request is no longer pending');

select * from finish();
rollback;
