-- The audit log: every tenant table carries the audit trigger (checked from
-- the catalog), each write leaves a row with the right actor and values, no
-- role can change or remove a row, and the per-org hash chain exposes
-- tampering.
begin;
create extension if not exists pgtap with schema extensions;
select plan(29);

-- ---------------------------------------------------------------------------
-- Coverage, from the catalog: tenant tables are the org table and every
-- public table with an org_id column, except the platform-written logs listed
-- (with a reason) in private.audit_exempt_tables. Each must have row triggers
-- calling private.audit_row_change for insert, update and delete.
-- ---------------------------------------------------------------------------

select is_empty(
  $$with tenant_tables as (
      select c.oid, c.relname from pg_catalog.pg_class c
      join pg_catalog.pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p')
        and c.relname not in (select table_name from private.audit_exempt_tables)
        and (c.relname = 'organizations' or exists (
          select 1 from pg_catalog.pg_attribute a
          where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))
    ),
    audited_events as (
      select t.tgrelid, e.event
      from pg_catalog.pg_trigger t
      cross join lateral (values (4, 'insert'), (8, 'delete'), (16, 'update')) e(bit, event)
      where t.tgfoid = 'private.audit_row_change'::regproc
        and t.tgenabled <> 'D'
        and (t.tgtype & 1) = 1          -- for each row
        and (t.tgtype & e.bit) <> 0
    )
    select tt.relname || ' misses ' || e.event
    from tenant_tables tt
    cross join (values ('insert'), ('update'), ('delete')) e(event)
    where not exists (select 1 from audited_events ae where ae.tgrelid = tt.oid and ae.event = e.event)$$,
  'every tenant table is audited on insert, update and delete'
);

select set_eq(
  $$select table_name from private.audit_exempt_tables$$,
  array['audit_log', 'events', 'webhook_deliveries', 'webhook_attempts', 'document_chunks', 'usage_events', 'messages',
        'call_transcript_segments', 'call_events'],
  'only the platform-written logs are exempt from row auditing (adding one is a reviewed change here)'
);

-- ---------------------------------------------------------------------------
-- Writes and their actors
-- ---------------------------------------------------------------------------

create temp table fixture (key text primary key, id uuid not null);
grant select, insert on fixture to authenticated, service_role;
insert into fixture values
  ('owner', tests.create_user('audit-owner@a.test')),
  ('admin', tests.create_user('audit-admin@a.test')),
  ('member', tests.create_user('audit-member@a.test')),
  ('platform_admin', tests.create_user('audit-ops@platform.test', '{"platform_admin": true}'));

select tests.authenticate_as((select id from fixture where key = 'owner'));
insert into fixture select 'org', (public.create_organization('Audit Co', 'audit-co')).id;
select tests.clear_authentication();
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'admin'), 'admin');
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'member'), 'member');

select results_eq(
  $$select table_name, action, actor_user_id from public.audit_log
    where org_id = (select id from fixture where key = 'org') and seq <= 3 order by seq$$,
  $$values ('organizations', 'insert', (select id from fixture where key = 'owner')),
           ('subscriptions', 'insert', (select id from fixture where key = 'owner')),
           ('memberships', 'insert', (select id from fixture where key = 'owner'))$$,
  'create_organization leaves an insert row for the org, its free subscription and the owner''s membership, by the owner'
);
select is(
  (select new_values ->> 'slug' from public.audit_log where org_id = (select id from fixture where key = 'org') and seq = 1),
  'audit-co',
  'an insert row carries the new values'
);
select is(
  (select record_id from public.audit_log where org_id = (select id from fixture where key = 'org') and seq = 3),
  (select id from fixture where key = 'org')::text || ':' || (select id from fixture where key = 'owner')::text,
  'a composite key becomes the record id, joined with colons'
);

select tests.authenticate_as((select id from fixture where key = 'admin'));
update public.organizations set name = 'Audit Company' where id = (select id from fixture where key = 'org');
select tests.clear_authentication();
select results_eq(
  $$select action, actor_user_id, old_values ->> 'name', new_values ->> 'name',
           (select array_agg(k order by k) from jsonb_object_keys(new_values) k)
    from public.audit_log where org_id = (select id from fixture where key = 'org') and table_name = 'organizations' and action = 'update'$$,
  -- (updated_at is unchanged: now() does not move inside the test's transaction)
  $$values ('update', (select id from fixture where key = 'admin'), 'Audit Co', 'Audit Company', array['name'])$$,
  'an update row holds only the changed fields, old and new, by the admin who made it'
);

-- An update that changes nothing writes nothing.
update public.memberships set role = role where org_id = (select id from fixture where key = 'org');
select is(
  (select count(*)::int from public.audit_log where org_id = (select id from fixture where key = 'org') and table_name = 'memberships' and action = 'update'),
  0,
  'an update that changes no value is not logged'
);

-- An edge function acting for an API key runs with the key's id in its claims.
select tests.authenticate_as_service_role();
select set_config('request.jwt.claims',
  jsonb_build_object('role', 'service_role', 'api_key_id', '11111111-2222-4333-8444-555555555555')::text, true);
insert into public.api_keys (org_id, name, prefix, scopes)
values ((select id from fixture where key = 'org'), 'bot key', 'ak_abcdef01', array['chat.write']);
select tests.clear_authentication();
select results_eq(
  $$select actor_user_id, actor_api_key_id from public.audit_log
    where org_id = (select id from fixture where key = 'org') and table_name = 'api_keys'$$,
  $$values (null::uuid, '11111111-2222-4333-8444-555555555555'::uuid)$$,
  'a write made for an API key records the key as the actor'
);

select tests.authenticate_as((select id from fixture where key = 'admin'));
select public.remove_member((select id from fixture where key = 'org'), (select id from fixture where key = 'member'));
select tests.clear_authentication();
select results_eq(
  $$select action, actor_user_id, old_values ->> 'role', new_values from public.audit_log
    where org_id = (select id from fixture where key = 'org') and table_name = 'memberships' and action = 'delete'$$,
  $$values ('delete', (select id from fixture where key = 'admin'), 'member', null::jsonb)$$,
  'a delete row holds the old values and the actor'
);

-- ---------------------------------------------------------------------------
-- Who reads it
-- ---------------------------------------------------------------------------

select tests.authenticate_as((select id from fixture where key = 'owner'));
select isnt_empty($$select 1 from public.audit_log where org_id = (select id from fixture where key = 'org')$$, 'an owner reads the log');
select tests.authenticate_as((select id from fixture where key = 'platform_admin'));
select isnt_empty($$select 1 from public.audit_log where org_id = (select id from fixture where key = 'org')$$, 'a platform admin reads the log');
select tests.clear_authentication();
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'member'), 'member');
select tests.authenticate_as((select id from fixture where key = 'member'));
select is_empty($$select 1 from public.audit_log where org_id = (select id from fixture where key = 'org')$$, 'a member does not read the log');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- Append-only for every role
-- ---------------------------------------------------------------------------

select throws_ok($$update public.audit_log set table_name = 'x'$$, '42501', null, 'postgres (the table owner) cannot update audit rows');
select throws_ok($$delete from public.audit_log$$, '42501', null, 'postgres cannot delete audit rows');
select throws_ok($$truncate public.audit_log$$, '42501', null, 'postgres cannot truncate the audit log');
select tests.authenticate_as_service_role();
select throws_ok($$update public.audit_log set table_name = 'x'$$, '42501', null, 'the service role cannot update audit rows');
select throws_ok($$delete from public.audit_log$$, '42501', null, 'the service role cannot delete audit rows');
select tests.authenticate_as((select id from fixture where key = 'owner'));
select throws_ok($$update public.audit_log set table_name = 'x'$$, '42501', null, 'an owner cannot update audit rows');
select throws_ok($$delete from public.audit_log$$, '42501', null, 'an owner cannot delete audit rows');
select tests.authenticate_as_anon();
select throws_ok($$delete from public.audit_log$$, '42501', null, 'anon cannot delete audit rows');
select tests.clear_authentication();

-- ---------------------------------------------------------------------------
-- The hash chain
-- ---------------------------------------------------------------------------

select tests.authenticate_as((select id from fixture where key = 'owner'));
select results_eq(
  $$select valid, rows_checked, first_invalid_seq from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$select true, (select count(*) from public.audit_log where org_id = (select id from fixture where key = 'org')), null::bigint$$,
  'the untouched chain verifies'
);
select tests.authenticate_as((select id from fixture where key = 'member'));
select throws_ok($$select * from public.verify_audit_chain((select id from fixture where key = 'org'))$$, '42501', null,
  'a member may not verify (or read) the chain');
select tests.clear_authentication();

-- Tampering needs the table owner to switch the guard trigger off; the chain still tells.
alter table public.audit_log disable trigger audit_log_append_only;

savepoint tamper;
update public.audit_log set new_values = jsonb_set(new_values, '{name}', '"Forged"')
where org_id = (select id from fixture where key = 'org') and seq = 1;
select results_eq(
  $$select valid, first_invalid_seq, reason from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (false, 1::bigint, 'the row''s contents do not match its hash')$$,
  'an edited row breaks the chain at that row'
);
rollback to savepoint tamper;

update public.audit_log set actor_user_id = (select id from fixture where key = 'member')
where org_id = (select id from fixture where key = 'org') and seq = 3;
select results_eq(
  $$select valid, first_invalid_seq from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (false, 3::bigint)$$,
  'a changed actor breaks the chain at that row'
);
rollback to savepoint tamper;

delete from public.audit_log where org_id = (select id from fixture where key = 'org') and seq = 2;
select results_eq(
  $$select valid, first_invalid_seq, reason from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (false, 2::bigint, 'a row is missing or out of order')$$,
  'a removed row breaks the chain where it was'
);
rollback to savepoint tamper;

delete from public.audit_log
where org_id = (select id from fixture where key = 'org')
  and seq = (select max(seq) from public.audit_log where org_id = (select id from fixture where key = 'org'));
select results_eq(
  $$select valid, reason from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (false, 'rows are missing at the end of the chain')$$,
  'removing the newest row is detected against the chain head'
);
rollback to savepoint tamper;

-- Recomputing the hash of an edited row does not help: the next row's link breaks.
-- (Rows are hash version 2 since 20261123005200: the hash covers values_hash.)
update public.audit_log a set
  new_values = jsonb_set(a.new_values, '{name}', '"Forged"'),
  values_hash = private.audit_values_hash(a.values_salt, a.old_values, jsonb_set(a.new_values, '{name}', '"Forged"')),
  hash = private.audit_row_hash_v2(a.prev_hash, a.org_id, a.seq, a.actor_user_id, a.actor_api_key_id, a.action,
    a.table_name, a.record_id, private.audit_values_hash(a.values_salt, a.old_values, jsonb_set(a.new_values, '{name}', '"Forged"')),
    a.created_at)
where a.org_id = (select id from fixture where key = 'org') and a.seq = 1;
select results_eq(
  $$select valid, first_invalid_seq, reason from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (false, 2::bigint, 'prev_hash does not match the previous row')$$,
  'a re-hashed edit breaks the link to the next row'
);
rollback to savepoint tamper;

alter table public.audit_log enable trigger audit_log_append_only;
select results_eq(
  $$select valid from public.verify_audit_chain((select id from fixture where key = 'org'))$$,
  $$values (true)$$,
  'after the rollbacks the chain verifies again'
);

-- Chains are per org and gap-free.
select is(
  (select count(*)::int from (
    select org_id from public.audit_log group by org_id having max(seq) <> count(*) or min(seq) <> 1
  ) broken),
  0,
  'every org''s sequence runs from 1 without gaps'
);

select * from finish();
rollback;
