-- 20261123014800: a calendar connect completed as the calendar function runs it (the service role, the user's
-- claims kept) is audited with that user as the actor; a reconnect of the same account (connected_at, set by
-- every save) and an owner taking a connection over are audited too, by their user, while token bookkeeping
-- stays quiet; audit rows of data_exports are read by the owners (data.export) only, not by admins nor by
-- platform admins who are not owners, who still read the rest of the log.
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@actors321.test')),
  ('admin', tests.create_user('admin@actors321.test')),
  ('ops', tests.create_user('ops@actors321.test', '{"platform_admin": true}'));
select tests.remember('org', tests.create_org('actors321-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');

-- The calendar function's two halves: the callback parks the request as the service role with the starting
-- user as the claims' subject; the completion runs as the service role with the signed-in user's claims.
create function pg_temp.as_function_for(who text) returns void language plpgsql as $$
begin
  perform tests.act_as(who);
  perform set_config('role', 'service_role', true);
end $$;
create function pg_temp.park(who text, ciphertext text) returns uuid language sql as $$
  select id from private.store_calendar_pending_connection(tests.fx('org'), tests.fx(who), null, 'google',
    'Desk@Actors321.test', 'sub-desk-321', array['https://www.googleapis.com/auth/calendar.events'], ciphertext,
    now() + interval '1 hour') $$;
create function pg_temp.complete(request text, who text) returns uuid language sql as $$
  select connection_id from private.complete_calendar_connection(tests.fx(request), tests.fx(who)) $$;
create function pg_temp.audit_rows(action text) returns setof public.audit_log language sql as $$
  select * from public.audit_log a
  where a.org_id = tests.fx('org') and a.table_name = 'calendar_connections' and a.record_id = tests.fx('connection')::text
    and a.action = audit_rows.action order by a.seq $$;
grant execute on function pg_temp.as_function_for(text), pg_temp.park(text, text), pg_temp.complete(text, text),
  pg_temp.audit_rows(text) to public;

-- ---------------------------------------------------------------------------
-- 1. The column and the policy
-- ---------------------------------------------------------------------------

select has_column('public', 'calendar_connections', 'connected_at', 'connections record when their grant was given');
select col_not_null('public', 'calendar_connections', 'connected_at', 'connected_at is always set');
select is((select permissive from pg_catalog.pg_policies where schemaname = 'public' and tablename = 'audit_log'
           and policyname = 'only owners read data export audit rows'), 'RESTRICTIVE',
  'the export rows policy narrows the audit log''s read policy');

-- ---------------------------------------------------------------------------
-- 2. A completed connect names its user
-- ---------------------------------------------------------------------------

select pg_temp.as_function_for('admin');
select tests.remember('request', pg_temp.park('admin', 'v1.0000beef.a.b.first'));
select pg_temp.as_function_for('admin');
select tests.remember('connection', pg_temp.complete('request', 'admin'));
select tests.act_as('postgres');
select is((select count(*)::integer from pg_temp.audit_rows('insert')), 1, 'connect: one insert audited');
select is((select actor_user_id from pg_temp.audit_rows('insert')), tests.fx('admin'), 'connect: the actor is the connecting user');
select is((select connected_at from public.calendar_connections where id = tests.fx('connection')), now(),
  'connect: connected_at is the save''s time');

select pg_temp.as_function_for('admin');
select is(pg_temp.complete('request', 'admin'), tests.fx('connection'), 'the starter''s repeat: the same connection');
select tests.act_as('postgres');
select is((select count(*)::integer from public.audit_log where record_id = tests.fx('connection')::text), 1,
  'the repeat writes no audit row');

-- ---------------------------------------------------------------------------
-- 3. A reconnect and a takeover are audited, by their user; refreshes are not
-- ---------------------------------------------------------------------------

-- One test is one transaction, where now() does not move: the first grant is dated earlier, as a later
-- reconnect's transaction would find it.
update public.calendar_connections set connected_at = connected_at - interval '1 day' where id = tests.fx('connection');

select pg_temp.as_function_for('admin');
select tests.remember('reconnect', pg_temp.park('admin', 'v1.0000beef.a.b.second'));
select pg_temp.as_function_for('admin');
select is(pg_temp.complete('reconnect', 'admin'), tests.fx('connection'), 'reconnect: the same connection');
select tests.act_as('postgres');
select is((select ciphertext from private.calendar_tokens where connection_id = tests.fx('connection')), 'v1.0000beef.a.b.second',
  'reconnect: the new grant''s tokens are stored');
select is((select count(*)::integer from pg_temp.audit_rows('update') where actor_user_id = tests.fx('admin')), 1,
  'reconnect: an update is audited, by the reconnecting user');
select is((select new_values ->> 'connected_at' from pg_temp.audit_rows('update') where actor_user_id = tests.fx('admin')),
  to_jsonb(now())#>>'{}', 'reconnect: the audit row shows the new connected_at');
select is((select connected_at from public.calendar_connections where id = tests.fx('connection')), now(),
  'reconnect: connected_at moves to the reconnect');

select pg_temp.as_function_for('owner');
select tests.remember('takeover', pg_temp.park('owner', 'v1.0000beef.a.b.third'));
select pg_temp.as_function_for('owner');
select is(pg_temp.complete('takeover', 'owner'), tests.fx('connection'), 'takeover: the same connection');
select tests.act_as('postgres');
select is((select actor_user_id from pg_temp.audit_rows('update') where new_values ? 'connected_by'), tests.fx('owner'),
  'takeover: audited with the owner as the actor');

select is((select count(*)::integer from public.audit_log where record_id = tests.fx('connection')::text), 4,
  'before a refresh: insert, backdate, reconnect, takeover');
update public.calendar_connections
set token_expires_at = now() + interval '2 hours', last_refreshed_at = now() + interval '1 minute'
where id = tests.fx('connection');
select is((select count(*)::integer from public.audit_log where record_id = tests.fx('connection')::text), 4,
  'a token refresh is still not audited');

-- ---------------------------------------------------------------------------
-- 4. Export rows of the audit log: owners only
-- ---------------------------------------------------------------------------

select tests.remember('export', gen_random_uuid());
insert into public.data_exports (id, org_id, requested_by, tables, storage_prefix)
values (tests.fx('export'), tests.fx('org'), tests.fx('owner'), array['bots'],
        tests.fx('org')::text || '/exports/' || tests.fx('export')::text || '/');

create function pg_temp.visible(table_name text) returns integer language sql as $$
  select count(*)::integer from public.audit_log a where a.org_id = tests.fx('org') and a.table_name = visible.table_name $$;
grant execute on function pg_temp.visible(text) to public;

select tests.act_as('owner');
select is(pg_temp.visible('data_exports'), 1, 'the owner reads the export''s audit row');
select tests.act_as('admin');
select is(pg_temp.visible('data_exports'), 0, 'an admin reads no export audit rows');
select ok(pg_temp.visible('calendar_connections') > 0, 'an admin still reads the rest of the log');
select tests.act_as('ops');
select is(pg_temp.visible('data_exports'), 0, 'a platform admin who is not an owner reads no export audit rows');
select ok(pg_temp.visible('calendar_connections') > 0, 'a platform admin still reads the rest of the log');
select tests.act_as('postgres');

select * from finish();
rollback;
