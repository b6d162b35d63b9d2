-- The permissions matrix frontends read to show and hide controls, and
-- my_permissions(), which applies it to the caller.
begin;
create extension if not exists pgtap with schema extensions;
select plan(8);

select ok(
  'owner'::public.org_role > 'admin' and 'admin'::public.org_role > 'member' and 'member'::public.org_role > 'viewer',
  'roles are ordered owner > admin > member > viewer'
);

create temp table fixture (key text primary key, id uuid not null);
grant select on fixture to authenticated;
insert into fixture values
  ('owner', tests.create_user('perm-owner@a.test')),
  ('viewer', tests.create_user('perm-viewer@a.test')),
  ('stranger', tests.create_user('perm-stranger@b.test'));
insert into fixture values ('org', tests.create_org('perm-a', (select id from fixture where key = 'owner')));
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'viewer'), 'viewer');

create temp table matrix_size as select count(*)::int as n from public.role_permissions;
grant select on matrix_size to authenticated;

select tests.authenticate_as((select id from fixture where key = 'viewer'));
select results_eq(
  $$select count(*)::int from public.role_permissions$$,
  $$select n from matrix_size$$,
  'a viewer reads the whole matrix'
);
select set_eq(
  $$select public.my_permissions((select id from fixture where key = 'org'))$$,
  $$select permission from public.role_permissions where min_role = 'viewer'$$,
  'a viewer holds exactly the viewer permissions'
);
select is_empty(
  $$select permission from public.role_permissions where min_role = 'viewer' and permission !~ '\.(read|receive)$'$$,
  'every viewer permission is a read: a viewer cannot write anything'
);

select tests.authenticate_as((select id from fixture where key = 'owner'));
select set_eq(
  $$select public.my_permissions((select id from fixture where key = 'org'))$$,
  $$select permission from public.role_permissions$$,
  'an owner holds every permission'
);

select tests.authenticate_as((select id from fixture where key = 'stranger'));
select is_empty(
  $$select public.my_permissions((select id from fixture where key = 'org'))$$,
  'a non-member holds none'
);

select tests.authenticate_as_anon();
select throws_ok($$select count(*) from public.role_permissions$$, '42501', null, 'anon cannot read the matrix');
select tests.clear_authentication();

select is(
  (select array_agg(permission order by permission) from public.role_permissions where min_role = 'owner'),
  array['billing.manage', 'data.export', 'org.delete', 'ownership.transfer'],
  'only owners delete the org, transfer ownership, change the plan and export all data'
);

select * from finish();
rollback;
