-- Lock order and claims (20261123008600_lock_order_and_claims.sql).
--
-- The deadlocks and the double claims need two sessions, and the local database (PGlite) runs one: these tests
-- check, in one session, which locks each path holds by the time it writes its first audited row (the moment
-- private.chain_audit_row locks the org's audit chain head, H) or its first chunk, and the functions' text
-- where only two sessions could tell (the claims' upsert).
--
-- Row locks do not show in pg_locks; a row's xmax does. Each call runs in a savepoint (a subtransaction with
-- its own xid) after this transaction took a key-share lock on the row: a lock the call takes on it then
-- turns xmax into a multixact, whose members and modes pg_get_multixact_members lists. A test trigger on
-- audit_log, which fires before the chain trigger, records the org row's and the active subscription's xmax
-- at each audited write.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('lock-order-claims-key', 'service_role_key');

insert into tests.fixtures (name, id) values
  ('loc_owner', tests.create_user('owner@lock-order-claims.test')),
  ('loc_owner2', tests.create_user('owner2@lock-order-claims.test')),
  ('loc_admin', tests.create_user('admin@lock-order-claims.test'));

-- ---------------------------------------------------------------------------
-- Probes
-- ---------------------------------------------------------------------------

create table pg_temp.locks_at_audit (
  seq bigint generated always as identity,
  org_id uuid,
  table_name text,
  org_xmax text,
  subscription_xmax text
);
create function pg_temp.record_locks_at_audit()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.locks_at_audit (org_id, table_name, org_xmax, subscription_xmax)
  values (
    new.org_id, new.table_name,
    (select o.xmax::text from public.organizations o where o.id = new.org_id),
    (select s.xmax::text from public.subscriptions s where s.org_id = new.org_id and s.status = 'active')
  );
  return new;
end;
$$;
-- Before triggers fire in name order: this one before audit_log_chain, the one that takes H.
create trigger a_locks_at_audit before insert on public.audit_log
  for each row execute function pg_temp.record_locks_at_audit();

-- The rows' xmax before a call, taken after this transaction key-share locks both rows; the audited writes
-- recorded so far (the fixtures') are forgotten.
create table pg_temp.before_call (org_id uuid primary key, org_xmax text, subscription_xmax text);
create function pg_temp.mark(org uuid)
returns void
language plpgsql
as $$
begin
  perform 1 from public.organizations o where o.id = org for key share;
  perform 1 from public.subscriptions s where s.org_id = org and s.status = 'active' for key share;
  insert into pg_temp.before_call (org_id, org_xmax, subscription_xmax)
  select org, o.xmax::text, (select s.xmax::text from public.subscriptions s where s.org_id = org and s.status = 'active')
  from public.organizations o where o.id = org
  on conflict (org_id) do update set org_xmax = excluded.org_xmax, subscription_xmax = excluded.subscription_xmax;
  delete from pg_temp.locks_at_audit a where a.org_id = org;
end;
$$;

-- Whether the org row (or its active subscription) was locked anew by the time of the first audited write of
-- table_name in the org.
create function pg_temp.locked_at_audit(org uuid, tbl text, what text)
returns boolean
language sql
as $$
  select case what when 'org' then a.org_xmax <> b.org_xmax else a.subscription_xmax <> b.subscription_xmax end
  from pg_temp.locks_at_audit a join pg_temp.before_call b on b.org_id = a.org_id
  where a.org_id = org and a.table_name = tbl
  order by a.seq
  limit 1;
$$;

-- The lock modes on the org row now (members of its multixact).
create function pg_temp.org_lock_modes(org uuid)
returns text[]
language sql
as $$
  select array_agg(m.mode order by m.mode)
  from public.organizations o, pg_catalog.pg_get_multixact_members(o.xmax) m
  where o.id = org;
$$;

-- Chunk statements and whether this transaction held the org's 8600 lock when each began.
create table pg_temp.chunk_statements (seq bigint generated always as identity, op text, held oid[]);
create function pg_temp.record_chunk_statement()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.chunk_statements (op, held)
  select tg_op, coalesce(array_agg(l.objid), '{}')
  from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted
    and l.classid = 8600::oid and l.objsubid = 2;
  return null;
end;
$$;
create trigger a_chunk_statements before insert or delete on public.document_chunks
  for each statement execute function pg_temp.record_chunk_statement();

create function pg_temp.chunk_statements_locked(org uuid)
returns text
language sql
as $$
  select string_agg(c.op || ':' || (pg_catalog.hashtext(org::text)::oid = any (c.held))::text, ',' order by c.seq)
  from pg_temp.chunk_statements c;
$$;

-- ---------------------------------------------------------------------------
-- 1. Counts serialised with the org row for no key update.
-- ---------------------------------------------------------------------------

select tests.remember('loc_org_key', tests.create_org('lock-order-claims-key', tests.fx('loc_owner')));
select pg_temp.mark(tests.fx('loc_org_key'));
savepoint api_key;
select tests.act_as('loc_owner');
select ok((select k.id is not null from public.create_api_key(tests.fx('loc_org_key'), 'Lock order', array['calls.read']) k),
  'create_api_key still creates a key');
select tests.act_as('postgres');
select is(pg_temp.org_lock_modes(tests.fx('loc_org_key')), array['fornokeyupd', 'keysh'],
  'create_api_key locks the org row for no key update (not for update), which key-share locks do not wait on');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_key'), 'api_keys', 'org'),
  'create_api_key holds the org row lock before its audited insert');
release savepoint api_key;

select tests.remember('loc_org_hook', tests.create_org('lock-order-claims-hook', tests.fx('loc_owner')));
select pg_temp.mark(tests.fx('loc_org_hook'));
savepoint webhook;
select tests.act_as('loc_owner');
select ok((select e.endpoint_id is not null
           from private.create_webhook_endpoint(tests.fx('loc_org_hook'), 'https://hooks.example.com/lock-order', '', array['document.ready']) e),
  'create_webhook_endpoint still creates an endpoint');
select tests.act_as('postgres');
select is(pg_temp.org_lock_modes(tests.fx('loc_org_hook')), array['fornokeyupd', 'keysh'],
  'create_webhook_endpoint locks the org row for no key update');
release savepoint webhook;

select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
   where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
     and p.prosrc ~* 'public\.organizations o where [^;]* for update;'),
  array['delete_organization'],
  'no function locks an org row for update but delete_organization, which deletes it');

-- ---------------------------------------------------------------------------
-- 2. Owner changes lock the org row before their audit.
-- ---------------------------------------------------------------------------

select tests.remember('loc_org_role', tests.create_org('lock-order-claims-role', tests.fx('loc_owner')));
select tests.add_member(tests.fx('loc_org_role'), tests.fx('loc_owner2'), 'owner');
select pg_temp.mark(tests.fx('loc_org_role'));
savepoint role_change;
select tests.act_as('loc_owner');
select is((public.change_member_role(tests.fx('loc_org_role'), tests.fx('loc_owner2'), 'admin')).role, 'admin'::public.org_role,
  'change_member_role lowers an owner');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_role'), 'memberships', 'org'),
  'change_member_role on an owner: the org row is locked before the membership''s audit takes the chain head');
release savepoint role_change;

select tests.remember('loc_org_remove', tests.create_org('lock-order-claims-remove', tests.fx('loc_owner')));
select tests.add_member(tests.fx('loc_org_remove'), tests.fx('loc_owner2'), 'owner');
select pg_temp.mark(tests.fx('loc_org_remove'));
savepoint remove;
select tests.act_as('loc_owner');
select is((public.remove_member(tests.fx('loc_org_remove'), tests.fx('loc_owner2'))).user_id, tests.fx('loc_owner2'),
  'remove_member removes an owner');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_remove'), 'memberships', 'org'),
  'remove_member of an owner: the org row is locked before the audit');
release savepoint remove;

select tests.remember('loc_org_leave', tests.create_org('lock-order-claims-leave', tests.fx('loc_owner')));
select tests.add_member(tests.fx('loc_org_leave'), tests.fx('loc_owner2'), 'owner');
select pg_temp.mark(tests.fx('loc_org_leave'));
savepoint leave;
select tests.act_as('loc_owner2');
select is((public.leave_organization(tests.fx('loc_org_leave'))).user_id, tests.fx('loc_owner2'), 'an owner leaves');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_leave'), 'memberships', 'org'),
  'leave_organization by an owner: the org row is locked before the audit');
release savepoint leave;

select tests.remember('loc_org_transfer', tests.create_org('lock-order-claims-transfer', tests.fx('loc_owner')));
select tests.add_member(tests.fx('loc_org_transfer'), tests.fx('loc_admin'), 'admin');
select pg_temp.mark(tests.fx('loc_org_transfer'));
savepoint transfer;
select tests.act_as('loc_owner');
select is((public.transfer_ownership(tests.fx('loc_org_transfer'), tests.fx('loc_admin'))).role, 'owner'::public.org_role,
  'transfer_ownership promotes the admin');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_transfer'), 'memberships', 'org'),
  'transfer_ownership: the org row is locked before the promotion''s audit, the first of the two');
release savepoint transfer;

select tests.act_as('loc_admin');
select throws_ok(
  format($$select public.leave_organization(%L)$$, tests.fx('loc_org_transfer')),
  '23514', null, 'the last owner still cannot leave');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 3. Uploads lock the active subscription before their audited batch.
-- ---------------------------------------------------------------------------

select tests.remember('loc_org_upload', tests.create_org('lock-order-claims-upload', tests.fx('loc_owner')));
select pg_temp.mark(tests.fx('loc_org_upload'));
savepoint upload;
select tests.act_as('loc_owner');
select is(
  (select count(*)::integer from public.create_upload_batch(tests.fx('loc_org_upload'),
     '[{"name": "lock-order.txt", "mime_type": "text/plain", "size_bytes": 10}]'::jsonb)),
  1, 'create_upload_batch registers the file');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('loc_org_upload'), 'upload_batches', 'subscription'),
  'create_upload_batch: the active subscription (the documents'' quota lock) is locked before the batch''s audit');
release savepoint upload;

-- ---------------------------------------------------------------------------
-- 4. Chunk writes hold the org's 8600 lock.
-- ---------------------------------------------------------------------------

select tests.remember('loc_org_finish', tests.create_org('lock-order-claims-finish', tests.fx('loc_owner')));
select tests.remember('loc_org_fail', tests.create_org('lock-order-claims-fail', tests.fx('loc_owner')));
select tests.remember('loc_org_delete', tests.create_org('lock-order-claims-delete', tests.fx('loc_owner')));
select tests.remember('loc_run', gen_random_uuid());
select tests.remember('loc_doc_finish', gen_random_uuid());
select tests.remember('loc_doc_fail', gen_random_uuid());
select tests.remember('loc_doc_delete', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count,
                              ingest_run, ingest_cursor, ingest_attempts)
values
  (tests.fx('loc_doc_finish'), tests.fx('loc_org_finish'), 'f.txt', 'text/plain', 10, tests.fx('loc_org_finish') || '/f.txt',
   'processing', 40, 1, tests.fx('loc_run'), 1, 1),
  (tests.fx('loc_doc_fail'), tests.fx('loc_org_fail'), 'x.txt', 'text/plain', 10, tests.fx('loc_org_fail') || '/x.txt',
   'queued', 0, null, null, 0, 0),
  (tests.fx('loc_doc_delete'), tests.fx('loc_org_delete'), 'd.txt', 'text/plain', 10, tests.fx('loc_org_delete') || '/d.txt',
   'queued', 0, null, null, 0, 0);
insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('loc_run'), tests.fx('loc_doc_finish'), 0, 1, 1, 'lock order words', 3, array_fill(0.1::real, array[1536])::extensions.vector);

select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('loc_doc_finish'), tests.fx('loc_run')), 1, 'finish_ingest swaps the chunk in');
select tests.act_as('postgres');
select is(pg_temp.chunk_statements_locked(tests.fx('loc_org_finish')), 'DELETE:true,INSERT:true',
  'finish_ingest holds the org''s 8600 lock from its first chunk statement');
delete from pg_temp.chunk_statements;

select tests.act_as('service_role');
select is(private.fail_ingest(tests.fx('loc_doc_fail'), null, 'refused'), true, 'fail_ingest fails the document');
select tests.act_as('postgres');
select is(pg_temp.chunk_statements_locked(tests.fx('loc_org_fail')), 'DELETE:true',
  'fail_ingest holds the org''s 8600 lock when it deletes the chunks');
delete from pg_temp.chunk_statements;

select tests.act_as('service_role');
select private.begin_document_deletion(tests.fx('loc_doc_delete'));
select tests.act_as('postgres');
select is(pg_temp.chunk_statements_locked(tests.fx('loc_org_delete')), 'DELETE:true',
  'begin_document_deletion holds the org''s 8600 lock when it deletes the chunks');

select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
   where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
     and p.prosrc ~* '(insert into|delete from|update) public\.document_chunks'),
  array['align_chunk_collection', 'begin_document_deletion', 'fail_ingest', 'finish_ingest'],
  'those are the only functions that write document_chunks');

-- ---------------------------------------------------------------------------
-- 5. The request upsert is the claim.
-- ---------------------------------------------------------------------------

select tests.remember('loc_org_bill', tests.create_org('lock-order-claims-bill', tests.fx('loc_owner')));
insert into public.invoices (org_id, period_start, period_end, plan_id, currency, subtotal_cents, total_cents)
values (tests.fx('loc_org_bill'), '2026-09-01', '2026-10-01', 'free', 'USD', 0, 0);
select tests.remember('loc_invoice', id) from public.invoices where org_id = tests.fx('loc_org_bill');
insert into public.calls (org_id, direction, status, started_at, ended_at, from_number, recording_url)
values (tests.fx('loc_org_bill'), 'inbound', 'ended', now() - interval '10 minutes', now() - interval '5 minutes',
        '+14155550959', 'https://storage.vapi.ai/lock-order.wav');
select tests.remember('loc_call', id) from public.calls where org_id = tests.fx('loc_org_bill');

create function pg_temp.claims(age interval, tries integer)
returns text
language plpgsql
as $$
declare
  pdfs integer;
  recordings integer;
begin
  perform tests.act_as('postgres');
  update private.invoice_pdf_requests set requested_at = now() - age, attempts = coalesce(tries, attempts)
  where invoice_id = tests.fx('loc_invoice');
  update private.call_recording_requests set requested_at = now() - age, attempts = coalesce(tries, attempts)
  where call_id = tests.fx('loc_call');
  perform tests.act_as('service_role');
  select count(*) into pdfs from private.invoices_needing_pdf(100) i where i.org_id = tests.fx('loc_org_bill');
  select count(*) into recordings from private.calls_needing_recording(100) c where c.org_id = tests.fx('loc_org_bill');
  perform tests.act_as('postgres');
  return pdfs || '/' || recordings || ' attempts '
    || coalesce((select attempts::text from private.invoice_pdf_requests where invoice_id = tests.fx('loc_invoice')), '-') || '/'
    || coalesce((select attempts::text from private.call_recording_requests where call_id = tests.fx('loc_call')), '-');
end;
$$;

select is(pg_temp.claims('0', null), '1/1 attempts 1/1', 'a first pass claims the invoice PDF and the recording');
select is(pg_temp.claims('0', null), '0/0 attempts 1/1',
  'a second pass while the claim is fresh claims neither, and counts no attempt');
select is(pg_temp.claims('11 minutes', null), '1/1 attempts 2/2', 'a claim older than 10 minutes is claimed again');
select is(pg_temp.claims('11 minutes', 5), '0/0 attempts 5/5', 'not after 5 attempts');

select ok(
  (select bool_and(p.prosrc ~ 'do update set requested_at = excluded\.requested_at, attempts = r\.attempts \+ 1\s+where r\.requested_at < pg_catalog\.now\(\) - interval ''10 minutes'' and r\.attempts < 5')
   from pg_proc p
   where p.oid in ('private.invoices_needing_pdf(integer)'::regprocedure, 'private.calls_needing_recording(integer)'::regprocedure)),
  'the upsert updates only a request old enough, with attempts left, as it stands when the upsert runs '
  '(a pass whose snapshot predates another''s claim does not claim it too)');

select * from finish();
rollback;
