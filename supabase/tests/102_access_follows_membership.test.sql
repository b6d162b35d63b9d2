-- Roles are read from memberships at query time, not from JWT claims: a
-- member removed or demoted mid-session loses the access on the next
-- statement, with the very same token (claims unchanged).
begin;
create extension if not exists pgtap with schema extensions;
select plan(8);

create temp table fixture (key text primary key, id uuid not null);
insert into fixture values
  ('owner', tests.create_user('mid-owner@a.test')),
  ('admin', tests.create_user('mid-admin@a.test')),
  ('member', tests.create_user('mid-member@a.test'));
insert into fixture values ('org', tests.create_org('mid-session', (select id from fixture where key = 'owner')));
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'admin'), 'admin');
select tests.add_member((select id from fixture where key = 'org'), (select id from fixture where key = 'member'), 'member');
grant select on fixture to authenticated;

-- The admin reads the audit log and renames the org ...
select tests.authenticate_as((select id from fixture where key = 'admin'));
select isnt_empty($$select 1 from public.audit_log where org_id = (select id from fixture where key = 'org')$$,
  'an admin reads the org''s audit log');
select results_eq($$with renamed as (update public.organizations set name = 'Renamed' where id = (select id from fixture where key = 'org') returning 1) select count(*)::int from renamed$$,
  array[1], 'an admin renames the org');
-- ... is demoted by the owner (same claims stay in place for the admin) ...
select tests.authenticate_as((select id from fixture where key = 'owner'));
select lives_ok($$select public.change_member_role((select id from fixture where key = 'org'), (select id from fixture where key = 'admin'), 'viewer')$$,
  'the owner demotes the admin to viewer');
select tests.authenticate_as((select id from fixture where key = 'admin'));
select is_empty($$select 1 from public.audit_log where org_id = (select id from fixture where key = 'org')$$,
  'demoted: the audit log is gone at once');
select results_eq($$with renamed as (update public.organizations set name = 'Again' where id = (select id from fixture where key = 'org') returning 1) select count(*)::int from renamed$$,
  array[0], 'demoted: renaming changes nothing');

-- The member sees the org, is removed, and sees nothing on the next statement.
select tests.authenticate_as((select id from fixture where key = 'member'));
select isnt_empty($$select 1 from public.organizations where id = (select id from fixture where key = 'org')$$,
  'a member sees the org');
select tests.clear_authentication();
delete from public.memberships where org_id = (select id from fixture where key = 'org') and user_id = (select id from fixture where key = 'member');
select tests.authenticate_as((select id from fixture where key = 'member'));
select is_empty($$select 1 from public.organizations where id = (select id from fixture where key = 'org')$$,
  'removed: the org is gone at once');
select is_empty($$select 1 from public.memberships where org_id = (select id from fixture where key = 'org')$$,
  'removed: its members are gone at once');

select * from finish();
rollback;
