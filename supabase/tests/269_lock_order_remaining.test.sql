-- The remaining lock paths in the project's order (20261123009600_lock_order_remaining.sql).
--
-- PGlite runs one session: as in 259, these tests check which locks each path holds by the time it writes
-- its first audited row (a test trigger on audit_log that fires before audit_log_chain, the trigger that
-- locks the org's audit chain head H). Row locks show in xmax: each call runs in a savepoint (its own xid)
-- after this transaction key-share locked the rows, so a lock the call takes turns xmax into a multixact.
-- The analytics marker lock (advisory 7700) shows in pg_locks.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('lock-order-remaining-key', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Probes (before the fixtures: an org's creation is its first audited write)
-- ---------------------------------------------------------------------------

create table pg_temp.watched (id uuid primary key, xmax_before text);
create table pg_temp.audits (
  seq bigint generated always as identity,
  org_id uuid,
  table_name text,
  -- This session's 7700 lock modes on the row's org.
  marker_modes text[],
  org_xmax text,
  subscription_xmax text,
  -- Watched rows (orgs or documents) whose xmax changed since they were watched.
  watched_locked uuid[]
);
create function pg_temp.record_audit()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.audits (org_id, table_name, marker_modes, org_xmax, subscription_xmax, watched_locked)
  values (
    new.org_id, new.table_name,
    (select array_agg(l.mode::text order by l.mode) from pg_catalog.pg_locks l
     where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted
       and l.classid = 7700::oid and l.objid = pg_catalog.hashtext(new.org_id::text)::oid and l.objsubid = 2),
    (select o.xmax::text from public.organizations o where o.id = new.org_id),
    (select s.xmax::text from public.subscriptions s where s.org_id = new.org_id and s.status = 'active'),
    (select array_agg(w.id order by w.id) from pg_temp.watched w
     where w.xmax_before is distinct from coalesce(
       (select o.xmax::text from public.organizations o where o.id = w.id),
       (select d.xmax::text from public.documents d where d.id = w.id)))
  );
  return new;
end;
$$;
-- Before triggers fire in name order: after audit_log_analytics_marker_lock, before audit_log_chain.
create trigger audit_log_b_lock_probe before insert on public.audit_log
  for each row execute function pg_temp.record_audit();

-- Key-share locks the rows (orgs or documents) and remembers their xmax; forgets the audits so far.
create function pg_temp.watch(ids uuid[])
returns void
language plpgsql
as $$
begin
  perform 1 from public.organizations o where o.id = any (ids) for key share;
  perform 1 from public.documents d where d.id = any (ids) for key share;
  perform 1 from public.subscriptions s where s.org_id = any (ids) and s.status = 'active' for key share;
  delete from pg_temp.watched;
  insert into pg_temp.watched (id, xmax_before)
  select i, coalesce((select o.xmax::text from public.organizations o where o.id = i),
                     (select d.xmax::text from public.documents d where d.id = i))
  from unnest(ids) i;
  delete from pg_temp.audits;
end;
$$;

-- The first audit row since the last watch, of an org (any org when null).
create function pg_temp.first_audit(org uuid)
returns pg_temp.audits
language sql
as $$
  select a from pg_temp.audits a where org is null or a.org_id = org order by a.seq limit 1;
$$;

create function pg_temp.subscription_xmax(org uuid)
returns text
language sql
as $$ select s.xmax::text from public.subscriptions s where s.org_id = org and s.status = 'active' $$;

insert into tests.fixtures (name, id) values
  ('lor_owner', tests.create_user('owner@lock-order-remaining.test')),
  ('lor_owner2', tests.create_user('owner2@lock-order-remaining.test')),
  ('lor_leaver', tests.create_user('leaver@lock-order-remaining.test')),
  ('lor_deleted', tests.create_user('deleted@lock-order-remaining.test'));

-- ---------------------------------------------------------------------------
-- 1. Every audited row holds its org's analytics marker lock (7700) before the head.
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_zone', tests.create_org('lock-order-remaining-zone', tests.fx('lor_owner')));
select is(
  (select a.marker_modes from pg_temp.audits a where a.org_id = tests.fx('lor_org_zone') order by a.seq limit 1),
  array['ShareLock'],
  'an org''s first audited write (its creation) holds its 7700 lock, shared, before the chain head');

insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('lor_org_zone'), 'inbound', 'ended', now() - interval '2 minutes', now(), 120);
select is(
  (select a.marker_modes from pg_temp.audits a where a.org_id = tests.fx('lor_org_zone') and a.table_name = 'calls' order by a.seq limit 1),
  array['ShareLock'],
  'a call (its statement marks its day after its rows'' audit) holds 7700 at its audit');

select ok(
  (select bool_and(a.marker_modes is not null) from pg_temp.audits a),
  'every audited row written so far held its org''s 7700 lock');

delete from pg_temp.audits;
update public.organizations set time_zone = 'Pacific/Kiritimati' where id = tests.fx('lor_org_zone');
select ok(
  (select 'ExclusiveLock' = any (a.marker_modes) from pg_temp.audits a
   where a.org_id = tests.fx('lor_org_zone') and a.table_name = 'organizations' order by a.seq limit 1),
  'a zone change takes 7700 exclusive before its audit, and its own audit''s shared request does not wait on it');
select ok(
  exists (select 1 from private.analytics_stale_days s
          where s.org_id = tests.fx('lor_org_zone') and s.day = (now() at time zone 'Pacific/Kiritimati')::date),
  'the zone change still marks the call''s day in the new zone');

-- ---------------------------------------------------------------------------
-- 2. A direct delete of an auth.users row locks the user's org rows first.
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_direct', tests.create_org('lock-order-remaining-direct', tests.fx('lor_owner')));
select tests.add_member(tests.fx('lor_org_direct'), tests.fx('lor_deleted'), 'owner');
insert into public.calendar_connections (org_id, provider, account_email, account_subject, external_calendar_id, connected_by)
values (tests.fx('lor_org_direct'), 'google', 'deleted@lock-order-remaining.test', 'sub-lor-deleted', 'primary', tests.fx('lor_deleted'));
-- A document the user uploaded: the delete's set-null of its created_by locks it, which delete_organization
-- locks before the org row.
select tests.remember('lor_doc_direct', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, created_by)
values (tests.fx('lor_doc_direct'), tests.fx('lor_org_direct'), 'lor-direct.txt', 'text/plain', 10,
        tests.fx('lor_org_direct') || '/lor-direct.txt', 'ready', 100, tests.fx('lor_deleted'));
select pg_temp.watch(array[tests.fx('lor_org_direct'), tests.fx('lor_doc_direct')]);
savepoint direct_delete;
delete from auth.users where id = tests.fx('lor_deleted');
select is((pg_temp.first_audit(tests.fx('lor_org_direct'))).table_name, 'calendar_connections',
  'a direct auth.users delete: the first audited write is the calendar''s disconnect');
select is((pg_temp.first_audit(tests.fx('lor_org_direct'))).watched_locked,
  (select array_agg(w order by w) from unnest(array[tests.fx('lor_org_direct'), tests.fx('lor_doc_direct')]) w),
  '... and the org row and the user''s document were locked before it (the owner membership''s and the set-null''s locks, taken after the head before)');
select is(
  (select array_agg(m.mode order by m.mode) from public.organizations o, pg_catalog.pg_get_multixact_members(o.xmax) m
   where o.id = tests.fx('lor_org_direct')),
  array['fornokeyupd', 'keysh'], '... for no key update');
release savepoint direct_delete;
select is((select count(*)::integer from public.memberships where user_id = tests.fx('lor_deleted')), 0,
  'the user and their membership are gone');
select ok(
  (select position('from public.documents d where d.created_by = lock_orgs_of_user.user_id order by d.id for no key update' in p.prosrc)
          between 1 and position('from public.organizations o' in p.prosrc)
   from pg_proc p where p.oid = 'private.lock_orgs_of_user(uuid)'::regprocedure),
  'a user''s deletion locks their documents (for no key update, in id order) before the org rows, as delete_organization does');

-- ---------------------------------------------------------------------------
-- 3. delete_organization locks the org's documents before the org row.
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_delete', tests.create_org('lock-order-remaining-delete', tests.fx('lor_owner')));
select tests.remember('lor_doc', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress)
values (tests.fx('lor_doc'), tests.fx('lor_org_delete'), 'lor.txt', 'text/plain', 10,
        tests.fx('lor_org_delete') || '/lor.txt', 'ready', 100);

-- The documents' locks when the org row's delete begins (its row lock taken, no trigger run yet).
create table pg_temp.docs_at_org_delete (org_id uuid, locked uuid[]);
create function pg_temp.record_docs_at_org_delete()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.docs_at_org_delete (org_id, locked)
  select old.id, array_agg(w.id) from pg_temp.watched w
  join public.documents d on d.id = w.id
  where d.xmax::text is distinct from w.xmax_before;
  return old;
end;
$$;
-- Before organizations_draw_final_invoice, whose audited cancellation takes the head.
create trigger a_docs_at_org_delete before delete on public.organizations
  for each row execute function pg_temp.record_docs_at_org_delete();

select pg_temp.watch(array[tests.fx('lor_doc')]);
savepoint org_delete;
select tests.act_as('lor_owner');
select lives_ok(
  format($$select public.delete_organization(%L, %L)$$, tests.fx('lor_org_delete'),
    (select o.name from public.organizations o where o.id = tests.fx('lor_org_delete'))),
  'delete_organization deletes the org');
select tests.act_as('postgres');
select is((select d.locked from pg_temp.docs_at_org_delete d where d.org_id = tests.fx('lor_org_delete')),
  array[tests.fx('lor_doc')],
  'delete_organization holds the org''s documents before its final invoice takes the head (a running ingest step commits first)');
release savepoint org_delete;
select ok(
  (select position('from public.documents d where d.org_id = target.id order by d.id for update' in p.prosrc)
          between 1 and position('from public.organizations o where o.id = delete_organization.org_id for update' in p.prosrc)
   from pg_proc p where p.oid = 'private.delete_organization(uuid, text)'::regprocedure),
  'delete_organization locks the documents before the org row');

select tests.act_as('lor_owner');
select throws_ok(
  format($$select public.delete_organization(%L, 'not the name')$$, tests.fx('lor_org_direct')),
  '22023', null, 'a wrong name is still refused');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 4. delete_account and delete_user lock the user's org rows first, in org order.
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_a1', tests.create_org('lock-order-remaining-a1', tests.fx('lor_owner')));
select tests.remember('lor_org_a2', tests.create_org('lock-order-remaining-a2', tests.fx('lor_owner')));
select tests.add_member(tests.fx('lor_org_a1'), tests.fx('lor_leaver'), 'member');
select tests.add_member(tests.fx('lor_org_a2'), tests.fx('lor_leaver'), 'member');

select pg_temp.watch(array[tests.fx('lor_org_a1'), tests.fx('lor_org_a2')]);
savepoint account;
select tests.act_as('lor_leaver');
select lives_ok($$select public.delete_account()$$, 'delete_account');
select tests.act_as('postgres');
select is((pg_temp.first_audit(null)).watched_locked,
  (select array_agg(o order by o) from unnest(array[tests.fx('lor_org_a1'), tests.fx('lor_org_a2')]) o),
  'delete_account holds both org rows at its first audited write (a member''s delete locked none)');
select is(
  (select array_agg(a.org_id order by a.seq) from pg_temp.audits a where a.table_name = 'memberships'),
  (select array_agg(o order by o) from unnest(array[tests.fx('lor_org_a1'), tests.fx('lor_org_a2')]) o),
  'delete_account deletes the memberships (their audits take the heads) in org order');
release savepoint account;
select is((select count(*)::integer from public.memberships where user_id = tests.fx('lor_leaver')), 0,
  'delete_account left both orgs');

-- Two other orgs: this transaction holds a1's and a2's rows since delete_account, so a second lock would not
-- show in their xmax.
select tests.remember('lor_org_b1', tests.create_org('lock-order-remaining-b1', tests.fx('lor_owner')));
select tests.remember('lor_org_b2', tests.create_org('lock-order-remaining-b2', tests.fx('lor_owner')));
select tests.add_member(tests.fx('lor_org_b1'), tests.fx('lor_owner2'), 'owner');
select tests.add_member(tests.fx('lor_org_b2'), tests.fx('lor_owner2'), 'admin');
-- An org the user created and no longer belongs to, and a document they uploaded: the delete's set-null
-- actions lock both.
select tests.remember('lor_org_b3', tests.create_org('lock-order-remaining-b3', tests.fx('lor_owner')));
update public.organizations set created_by = tests.fx('lor_owner2') where id = tests.fx('lor_org_b3');
select tests.remember('lor_doc_b', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, created_by)
values (tests.fx('lor_doc_b'), tests.fx('lor_org_b1'), 'lor-b.txt', 'text/plain', 10,
        tests.fx('lor_org_b1') || '/lor-b.txt', 'ready', 100, tests.fx('lor_owner2'));
select pg_temp.watch(array[tests.fx('lor_org_b1'), tests.fx('lor_org_b2'), tests.fx('lor_org_b3'), tests.fx('lor_doc_b')]);
savepoint delete_user;
select tests.act_as('service_role');
select is(private.delete_user(tests.fx('lor_owner2')), true, 'delete_user deletes an owner of one org, admin of another');
select tests.act_as('postgres');
select is((pg_temp.first_audit(null)).watched_locked,
  (select array_agg(o order by o)
   from unnest(array[tests.fx('lor_org_b1'), tests.fx('lor_org_b2'), tests.fx('lor_org_b3'), tests.fx('lor_doc_b')]) o),
  'delete_user holds its orgs'' rows, the one it created included, and its document at its first audited write');
select is(
  (select array_agg(a.org_id order by a.seq) from pg_temp.audits a where a.table_name = 'memberships'),
  (select array_agg(o order by o) from unnest(array[tests.fx('lor_org_b1'), tests.fx('lor_org_b2')]) o),
  'delete_user deletes the memberships in org order');
release savepoint delete_user;
select is(
  (select count(*)::integer from public.organizations o where o.id = tests.fx('lor_org_b3') and o.created_by is null)
  + (select count(*)::integer from public.documents d where d.id = tests.fx('lor_doc_b') and d.created_by is null),
  2, 'the org and the document the user created outlive them, created_by null');

select tests.act_as('service_role');
select throws_ok(format($$select private.delete_user(%L)$$, tests.fx('lor_owner')), '23514', null,
  'delete_user still refuses the only owner of an org');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- claim_due_calls counts the minutes under the orgs' subscriptions (20261123009100).
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_dial', tests.create_org('lock-order-remaining-dial', tests.fx('lor_owner')));
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (tests.fx('lor_org_dial'), 'Voice', 'voice', 'asst_lor', '{api,voice,web}');
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('lor_org_dial'), 'vapi', now(), 'pn_lor');
-- A queued call inserted with a provider id: its insert takes no subscription lock, so the claim's is the
-- first of this transaction. A zone where it is 12:xx now, inside 08:00-21:00.
insert into public.calls (org_id, bot_id, direction, to_number, callee_time_zone, status, scheduled_at, next_dial_at, provider, provider_call_id)
select tests.fx('lor_org_dial'), b.id, 'outbound', '+14155550969',
  case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end,
  'queued', now(), now(), 'vapi', 'lor-dial-1'
from public.bots b,
  (select ((extract(hour from now() at time zone 'UTC')::integer - 12 + 36) % 24) - 12 as n) z
where b.org_id = tests.fx('lor_org_dial');
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null
where status = 'queued' and org_id <> tests.fx('lor_org_dial');
-- The free plan's 30 call minutes used by an inbound call: the claim fails the call (audited) at dial time.
insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('lor_org_dial'), 'inbound', 'ended', now() - interval '30 minutes', now(), 1800);

select pg_temp.watch(array[tests.fx('lor_org_dial')]);
create temp table sub_before as select pg_temp.subscription_xmax(tests.fx('lor_org_dial')) as sub_xmax;
savepoint claim;
select tests.act_as('service_role');
create temp table lor_claimed as select * from private.claim_due_calls(10);
select tests.act_as('postgres');
select is(
  (select c.status::text || ' ' || c.ended_reason from public.calls c where c.provider_call_id = 'lor-dial-1'),
  'failed quota_exceeded', 'claim_due_calls fails the call the minutes no longer cover');
select isnt((pg_temp.first_audit(tests.fx('lor_org_dial'))).subscription_xmax, (select sub_xmax from sub_before),
  'claim_due_calls holds the org''s active subscription (the call minutes'' lock) at the failed call''s audit');
select ok(
  (select case when s.xmax::text = b.sub_xmax then false
     else 'forupd' = any (array(select m.mode from pg_catalog.pg_get_multixact_members(s.xmax) m)) end
   from public.subscriptions s, sub_before b
   where s.org_id = tests.fx('lor_org_dial') and s.status = 'active'),
  '... for update');
release savepoint claim;

select ok(
  (select p.prosrc ~ 'from public\.subscriptions s\s+where s\.status = ''active''\s+and s\.org_id in \(select c\.org_id from public\.calls c where c\.id = any \(picked\)\)\s+order by s\.org_id\s+for update of s skip locked'
   from pg_proc p where p.oid = 'private.claim_due_calls(integer, integer)'::regprocedure),
  'the claim takes the subscriptions skip locked, after picking its calls (it never waits on one)');

-- ---------------------------------------------------------------------------
-- A file uploaded to a document's path: the document before the org row
-- ---------------------------------------------------------------------------

select tests.remember('lor_org_upload', tests.create_org('lock-order-remaining-upload', tests.fx('lor_owner')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values ('26900000-0000-4000-8000-0000000000d1', tests.fx('lor_org_upload'), 'manual.txt', 'text/plain', 10,
  tests.fx('lor_org_upload') || '/26900000-0000-4000-8000-0000000000d1/manual.txt', 'uploading');
select tests.remember('lor_upload_doc', '26900000-0000-4000-8000-0000000000d1'::uuid);
create table pg_temp.object_probe (doc_locked boolean);
create function pg_temp.probe_object() returns trigger language plpgsql as $$
begin
  insert into pg_temp.object_probe
  select w.xmax_before is distinct from (select d.xmax::text from public.documents d where d.id = w.id)
  from pg_temp.watched w where w.id = tests.fx('lor_upload_doc');
  return new;
end;
$$;
-- Before triggers fire in name order: right after org_objects_need_their_org, which key-shares the org row.
create trigger org_objects_probe before insert on storage.objects
  for each row execute function pg_temp.probe_object();
select pg_temp.watch(array[tests.fx('lor_upload_doc')]);
savepoint upload;
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', tests.fx('lor_org_upload') || '/26900000-0000-4000-8000-0000000000d1/manual.txt', '{"size": 10}');
release savepoint upload;
select is((select array_agg(doc_locked) from pg_temp.object_probe), array[true],
  'an upload to a document''s path holds the document by the time it has key-shared the org row');
drop trigger org_objects_probe on storage.objects;

select * from finish();
rollback;
