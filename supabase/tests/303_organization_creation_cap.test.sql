-- The cap on organizations a user creates (supabase/migrations/20261123012800_organization_creation_cap.sql):
-- 10 in any 30 days, deleted orgs included, under a per-user advisory lock; the 11th raises PT429 and creates
-- nothing; platform admins are not capped; the daily purge removes only creations 30 days old or more.
begin;
create extension if not exists pgtap with schema extensions;

select plan(38);

select tests.remember('capped', tests.create_user('capped@occ303.test'));
select tests.remember('other', tests.create_user('other@occ303.test'));
select tests.remember('admin', tests.create_user('admin@occ303.test', '{"platform_admin": true}'));

-- Read as postgres: the orgs a user created that still exist, and the user's ledger rows.
create function pg_temp.orgs_of(person text) returns integer language sql stable
as $$ select count(*)::integer from public.organizations o where o.created_by = tests.fx(person) $$;
create function pg_temp.creations_of(person text) returns integer language sql stable
as $$ select count(*)::integer from private.organization_creations c where c.user_id = tests.fx(person) $$;

-- Whether this transaction holds the cap's advisory lock for the user (two-int4 key: classid, objid, objsubid 2).
create function pg_temp.holds_cap_lock(person text) returns boolean language sql stable
as $$
  select exists (
    select 1 from pg_catalog.pg_locks l
    where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted
      and l.classid = 12800 and l.objsubid = 2
      and l.objid = ((pg_catalog.hashtext(tests.fx(person)::text)::bigint & 4294967295)::text)::oid
  )
$$;

-- The detail and hint of the PT429 a statement raises (null when it raises none).
create function pg_temp.refusal(statement text) returns text[] language plpgsql
as $$
declare
  refusal_detail text;
  refusal_hint text;
begin
  execute statement;
  return null;
exception when sqlstate 'PT429' then
  get stacked diagnostics refusal_detail = pg_exception_detail, refusal_hint = pg_exception_hint;
  return array[refusal_detail, refusal_hint];
end;
$$;
grant execute on function pg_temp.refusal(text) to authenticated;

-- ---------------------------------------------------------------------------
-- Ten pass, the eleventh is refused and creates nothing
-- ---------------------------------------------------------------------------

select is(pg_temp.holds_cap_lock('capped'), false, 'lock: not held before the user creates anything');

select tests.act_as('capped');
select is(
  (select count(*)::integer from generate_series(1, 10) i, public.create_organization('Cap ' || i, 'occ303-cap-' || i) o),
  10,
  'a user creates 10 organizations'
);
select tests.act_as('postgres');
select is(pg_temp.orgs_of('capped'), 10, '... all 10 exist');
select is(pg_temp.creations_of('capped'), 10, '... and each is in the ledger');
select is(
  (select count(*)::integer from public.memberships m
   join public.organizations o on o.id = m.org_id
   where o.created_by = tests.fx('capped') and m.user_id = tests.fx('capped') and m.role = 'owner'),
  10,
  '... the creator owns each, as before'
);
select is(
  (select count(*)::integer from public.subscriptions s
   join public.organizations o on o.id = s.org_id where o.created_by = tests.fx('capped')),
  10,
  '... each with its subscription, as before'
);
select ok(pg_temp.holds_cap_lock('capped'), 'lock: create_organization took the user''s advisory lock (held to the transaction''s end)');
select is(pg_temp.holds_cap_lock('other'), false, 'lock: ... and no other user''s');

select tests.act_as('capped');
select throws_ok(
  $$select public.create_organization('Cap 11', 'occ303-cap-11')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  'the 11th creation in 30 days is refused (PT429: PostgREST answers 429)'
);
select is(
  pg_temp.refusal($$select public.create_organization('Cap 11', 'occ303-cap-11')$$),
  array[
    '2592000',
    'Use one of your organizations, or try again after the seconds in detail; deleted organizations count until 30 days after their creation.'
  ],
  '... its detail is the seconds until the oldest creation leaves the window, with a hint'
);
select throws_ok(
  $$select public.create_organization('Cap 11')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... without a slug too'
);
select throws_ok(
  $$select public.create_organization('   ', 'occ303-cap-blank')$$,
  '22023', 'an organization name has 1 to 100 characters',
  '... a bad name still answers 22023 first'
);
select throws_ok(
  $$select public.create_organization('Taken', 'occ303-cap-1')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... while a taken slug answers PT429 as a free one does (20261123014500: the cap before the slug)'
);
select tests.act_as('postgres');
select is(pg_temp.orgs_of('capped'), 10, 'the refused calls created no organization');
select is(pg_temp.creations_of('capped'), 10, '... and no ledger row');
select is(
  (select count(*)::integer from public.organizations o where o.slug = 'occ303-cap-11' or o.name = 'Cap 11'),
  0,
  '... the 11th org does not exist'
);

-- ---------------------------------------------------------------------------
-- Deleting an org frees no slot within the 30 days
-- ---------------------------------------------------------------------------

select tests.act_as('capped');
select lives_ok(
  format($$select public.delete_organization(%L, 'Cap 1')$$,
    (select o.id from public.organizations o where o.slug = 'occ303-cap-1')),
  'the user deletes one of the 10'
);
select tests.act_as('postgres');
select is(pg_temp.orgs_of('capped'), 9, '... it is gone');
select is(pg_temp.creations_of('capped'), 10, '... its creation stays in the ledger');
select tests.act_as('capped');
select throws_ok(
  $$select public.create_organization('Cap 11', 'occ303-cap-11')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... and still counts: the next creation is refused'
);

-- ---------------------------------------------------------------------------
-- A creation 31 days old no longer counts
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
update private.organization_creations c set created_at = now() - interval '31 days'
where c.org_id = (select o.id from public.organizations o where o.slug = 'occ303-cap-2');
select tests.act_as('capped');
select lives_ok(
  $$select public.create_organization('Cap 11', 'occ303-cap-11')$$,
  'with one creation 31 days old, the user creates one more'
);
select throws_ok(
  $$select public.create_organization('Cap 12', 'occ303-cap-12')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... and then no more'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.organization_creations c
   where c.user_id = tests.fx('capped') and c.created_at > now() - interval '30 days'),
  10,
  '... 10 creations count again'
);

-- ---------------------------------------------------------------------------
-- Other users and platform admins
-- ---------------------------------------------------------------------------

select tests.act_as('other');
select lives_ok(
  $$select public.create_organization('Other Co', 'occ303-other')$$,
  'another user is not affected by the capped user'
);
select tests.act_as('postgres');
select is(pg_temp.creations_of('other'), 1, '... their creation is theirs alone in the ledger');
select ok(pg_temp.holds_cap_lock('other'), '... under their own lock');

select tests.act_as('admin');
select is(
  (select count(*)::integer from generate_series(1, 12) i, public.create_organization('Admin ' || i, 'occ303-admin-' || i) o),
  12,
  'a platform admin creates past 10 organizations in 30 days'
);
select tests.act_as('postgres');
select is(pg_temp.orgs_of('admin'), 12, '... all 12 exist');
select is(pg_temp.creations_of('admin'), 12, '... and are kept in the ledger');

-- ---------------------------------------------------------------------------
-- The purge
-- ---------------------------------------------------------------------------

update private.organization_creations c set created_at = now() - interval '30 days' - interval '1 second'
where c.org_id in (select o.id from public.organizations o where o.slug in ('occ303-admin-1', 'occ303-admin-2'));
select is(private.purge_organization_creations(2), 2, 'the purge deletes at most max_rows rows');
select is(private.purge_organization_creations(), 1, '... then the one left');
select is(private.purge_organization_creations(), 0, '... then none');
select is(
  (select count(*)::integer from private.organization_creations c
   where c.org_id in (select o.id from public.organizations o where o.slug in ('occ303-cap-2', 'occ303-admin-1', 'occ303-admin-2'))),
  0,
  '... the three creations 30 days old or more are gone'
);
select results_eq(
  $$select tests.fx(p), pg_temp.creations_of(p) from unnest(array['capped', 'other', 'admin']) p order by p$$,
  $$values (tests.fx('admin'), 10), (tests.fx('capped'), 10), (tests.fx('other'), 1)$$,
  '... every recent creation stays (10 of the capped user''s, the deleted org''s among them)'
);
select is(
  (select schedule from cron.job where jobname = 'purge-organization-creations'),
  '29 4 * * *',
  'the purge runs daily'
);
select ok(
  (select command ~ 'private\.purge_organization_creations\(5000\);\s+commit;'
      and command ~ 'exit when statements = 20 or'
      and command ~ 'exit when purged < 5000'
   from cron.job where jobname = 'purge-organization-creations'),
  '... 5,000 rows a statement, committed each, at most 20 statements a run'
);

-- ---------------------------------------------------------------------------
-- Not reachable from the API
-- ---------------------------------------------------------------------------

select ok(
  not exists (
    select 1 from unnest(array['anon', 'authenticated', 'service_role']) r(role_name),
      unnest(array['select', 'insert', 'update', 'delete']) p(privilege)
    where pg_catalog.has_table_privilege(r.role_name, 'private.organization_creations', p.privilege)
  )
  and not exists (
    select 1 from unnest(array['anon', 'authenticated', 'service_role']) r(role_name)
    where pg_catalog.has_function_privilege(r.role_name, 'private.purge_organization_creations(integer)', 'execute')
  ),
  'the API roles neither read nor write the ledger, nor run the purge'
);

-- A creation waits at most 2 s for its locks (the partition lock it takes before its insert, and the attach's; the
-- order itself needs two sessions, which PGlite does not run).
select is(
  (select p.proconfig from pg_proc p where p.oid = 'private.create_organization(text, text)'::regprocedure),
  array['search_path=""', 'lock_timeout=2s'],
  'create_organization waits at most 2 s for its locks');

select * from finish();
rollback;
