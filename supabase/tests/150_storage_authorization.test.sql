-- Storage authorization (20261123000600_realtime_and_storage_authorization.sql):
-- in buckets registered in private.org_buckets, objects are named
-- <org_id>/...; viewers and up (and platform admins) read, members and up
-- upload and replace, admins and up delete. Buckets not registered, and
-- objects not named after an org, are out of reach of these policies.
--
-- The Storage API runs these statements as the user (role authenticated and
-- the user's JWT claims), so the tests do the same on storage.objects.
begin;
create extension if not exists pgtap with schema extensions;

select plan(37);

-- ---------------------------------------------------------------------------
-- Fixtures: org A with one member of each role, org B with its owner, and a
-- platform admin. Ids are named fixtures (tests.remember / tests.fx, in
-- 010_test_helpers), readable by every role.
-- ---------------------------------------------------------------------------

-- An object name under a fixture org's folder.
create function pg_temp.path(org text, rest text)
returns text
language sql
stable
as $$ select tests.fx(org)::text || '/' || rest $$;
grant execute on function pg_temp.path(text, text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@storage.test')),
  ('admin_a', tests.create_user('admin-a@storage.test')),
  ('member_a', tests.create_user('member-a@storage.test')),
  ('viewer_a', tests.create_user('viewer-a@storage.test')),
  ('owner_b', tests.create_user('owner-b@storage.test')),
  ('platform_admin', tests.create_user('platform@storage.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('storage-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('storage-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- A private bucket registered as an org bucket, and one that is not.
insert into storage.buckets (id, name, public) values
  ('test-org-files', 'test-org-files', false),
  ('test-other-files', 'test-other-files', false);
insert into private.org_buckets (bucket_id) values ('test-org-files');

-- Fixture objects, written as postgres (the Storage API's own connection).
create temp table objs (label text primary key, bucket_id text not null, name text not null);
grant select on objs to public;
insert into objs (label, bucket_id, name) values
  ('a1', 'test-org-files', pg_temp.path('org_a', 'docs/a.pdf')),
  ('a2', 'test-org-files', pg_temp.path('org_a', 'docs/b.pdf')),
  ('a3', 'test-org-files', pg_temp.path('org_a', 'reports/q1.pdf')),
  ('b1', 'test-org-files', pg_temp.path('org_b', 'docs/a.pdf')),
  -- Not named after an org: first segment not a uuid, no folder at all, an
  -- upper-case uuid.
  ('no_org', 'test-org-files', 'shared/docs/a.pdf'),
  ('top_level', 'test-org-files', 'loose.pdf'),
  ('upper_uuid', 'test-org-files', upper(tests.fx('org_a')::text) || '/docs/a.pdf'),
  -- A's folder in a bucket that is not registered.
  ('other_a', 'test-other-files', pg_temp.path('org_a', 'docs/a.pdf'));
insert into storage.objects (bucket_id, name, owner_id, metadata)
select bucket_id, name, tests.fx('owner_a')::text, '{"version": 1}' from objs;

-- What a user sees, limited to this test's buckets (the seed may have others).
create function pg_temp.visible()
returns table (bucket_id text, name text)
language sql
stable
as $$
  select o.bucket_id, o.name from storage.objects o
  where o.bucket_id in ('test-org-files', 'test-other-files')
  order by o.bucket_id, o.name
$$;
grant execute on function pg_temp.visible() to public;

-- ---------------------------------------------------------------------------
-- Read
-- ---------------------------------------------------------------------------

select tests.act_as('viewer_a');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label in ('a1', 'a2', 'a3') order by bucket_id, name$$,
  'a viewer of A reads exactly A''s objects in the org bucket'
);
select tests.act_as('member_a');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label in ('a1', 'a2', 'a3') order by bucket_id, name$$,
  'a member of A reads exactly A''s objects in the org bucket'
);
select tests.act_as('admin_a');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label in ('a1', 'a2', 'a3') order by bucket_id, name$$,
  'an admin of A reads exactly A''s objects in the org bucket'
);
-- The owner sees neither A's folder in the unregistered bucket nor the
-- objects not named after an org.
select tests.act_as('owner_a');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label in ('a1', 'a2', 'a3') order by bucket_id, name$$,
  'the owner of A reads exactly A''s objects: not the unregistered bucket, not names without an org'
);
select tests.act_as('owner_b');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label = 'b1'$$,
  'the owner of B reads only B''s object, none of A''s'
);
select tests.act_as('platform_admin');
select results_eq(
  $$select * from pg_temp.visible()$$,
  $$select bucket_id, name from objs where label in ('a1', 'a2', 'a3', 'b1') order by bucket_id, name$$,
  'a platform admin reads every org''s objects in the org bucket, and nothing else'
);
select tests.act_as('anon');
select is_empty($$select * from pg_temp.visible()$$, 'anon reads nothing');

-- ---------------------------------------------------------------------------
-- Write (upload)
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-member.pdf'), auth.uid()::text, '{}')$$,
  'a member uploads into A''s folder'
);
select tests.act_as('admin_a');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-admin.pdf'), auth.uid()::text, '{}')$$,
  'an admin uploads into A''s folder'
);
select tests.act_as('owner_a');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-owner.pdf'), auth.uid()::text, '{}')$$,
  'the owner uploads into A''s folder'
);
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', 'uploads/no-org.pdf', auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an upload named without an org folder is refused, even for an owner'
);
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-other-files', pg_temp.path('org_a', 'uploads/elsewhere.pdf'), auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an upload into an unregistered bucket is refused (these policies do not open it)'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-viewer.pdf'), auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a viewer cannot upload'
);
select tests.act_as('owner_b');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-b.pdf'), auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'the owner of B cannot upload into A''s folder'
);
select tests.act_as('platform_admin');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-platform.pdf'), auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'a platform admin cannot upload (read-only)'
);
select tests.act_as('anon');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/by-anon.pdf'), null, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'anon cannot upload'
);
select tests.act_as('postgres');
select results_eq(
  $$select name, owner_id from storage.objects where bucket_id in ('test-org-files', 'test-other-files') and name like '%uploads/%' order by name$$,
  $$values (pg_temp.path('org_a', 'uploads/by-admin.pdf'), tests.fx('admin_a')::text),
           (pg_temp.path('org_a', 'uploads/by-member.pdf'), tests.fx('member_a')::text),
           (pg_temp.path('org_a', 'uploads/by-owner.pdf'), tests.fx('owner_a')::text)$$,
  'exactly the three allowed uploads were stored'
);

-- ---------------------------------------------------------------------------
-- Update (replace metadata, move)
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
with updated as (
  update storage.objects set metadata = '{"version": 2}'
  where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/a.pdf')
  returning 1
)
select is(count(*)::integer, 1, 'a member replaces an object of A') from updated;
-- A move takes the file from its path as a delete does (20261123007000).
select throws_ok(
  $$update storage.objects set name = pg_temp.path('org_a', 'docs/moved.pdf')
    where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/a.pdf')$$,
  '42501', format('moving or renaming %s needs the files.delete permission', pg_temp.path('org_a', 'docs/a.pdf')),
  'a member cannot move A''s object, even within A''s folder: moving needs files.delete'
);
-- Moving an object out of the org's folder fails the policy's check, even for an admin.
select tests.act_as('admin_a');
select throws_ok(
  $$update storage.objects set name = pg_temp.path('org_b', 'stolen.pdf')
    where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/a.pdf')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'an admin cannot move A''s object into B''s folder'
);
select tests.act_as('viewer_a');
with updated as (
  update storage.objects set metadata = '{"version": 3}'
  where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/b.pdf')
  returning 1
)
select is(count(*)::integer, 0, 'a viewer''s update affects no row') from updated;
select tests.act_as('owner_b');
with updated as (
  update storage.objects set metadata = '{"version": 3}'
  where bucket_id = 'test-org-files' and name like tests.fx('org_a')::text || '/%'
  returning 1
)
select is(count(*)::integer, 0, 'the owner of B''s update of A''s objects affects no row') from updated;
select tests.act_as('owner_a');
with updated as (
  update storage.objects set metadata = '{"version": 3}'
  where bucket_id = 'test-other-files'
  returning 1
)
select is(count(*)::integer, 0, 'even the owner cannot update A''s folder in an unregistered bucket') from updated;

select tests.act_as('postgres');
select results_eq(
  $$select label, o.metadata from objs join storage.objects o using (bucket_id, name)
    where label in ('a1', 'a2', 'a3', 'b1', 'other_a') order by label$$,
  $$values ('a1', '{"version": 2}'::jsonb), ('a2', '{"version": 1}'::jsonb), ('a3', '{"version": 1}'::jsonb),
           ('b1', '{"version": 1}'::jsonb), ('other_a', '{"version": 1}'::jsonb)$$,
  'only the member''s update changed anything (and the refused move left the object in place)'
);

-- ---------------------------------------------------------------------------
-- Delete. The Storage API opts in to SQL deletes for its transaction; so do we.
-- ---------------------------------------------------------------------------

select set_config('storage.allow_delete_query', 'true', true);

select tests.act_as('member_a');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/a.pdf')
  returning 1
)
select is(count(*)::integer, 0, 'a member''s delete affects no row (files.delete is admin and up)') from deleted;
select tests.act_as('viewer_a');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/a.pdf')
  returning 1
)
select is(count(*)::integer, 0, 'a viewer''s delete affects no row') from deleted;
select tests.act_as('owner_b');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files' and name like tests.fx('org_a')::text || '/%'
  returning 1
)
select is(count(*)::integer, 0, 'the owner of B''s delete of A''s objects affects no row') from deleted;
select tests.act_as('platform_admin');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files'
  returning 1
)
select is(count(*)::integer, 0, 'a platform admin''s delete affects no row (read-only)') from deleted;
select tests.act_as('postgres');
select is(
  (select count(*)::integer from storage.objects o join objs using (bucket_id, name)),
  (select count(*)::integer from objs),
  'every fixture object is still there after the refused deletes'
);

select tests.act_as('admin_a');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'docs/b.pdf')
  returning 1
)
select is(count(*)::integer, 1, 'an admin deletes an object of A') from deleted;
select tests.act_as('owner_a');
with deleted as (
  delete from storage.objects where bucket_id = 'test-org-files' and name = pg_temp.path('org_a', 'reports/q1.pdf')
  returning 1
)
select is(count(*)::integer, 1, 'the owner deletes an object of A') from deleted;
with deleted as (
  delete from storage.objects where bucket_id = 'test-other-files'
  returning 1
)
select is(count(*)::integer, 0, 'the owner cannot delete A''s folder in an unregistered bucket') from deleted;
select tests.act_as('postgres');
select results_eq(
  $$select label from objs where not exists (
      select 1 from storage.objects o where o.bucket_id = objs.bucket_id and o.name = objs.name)
    order by label$$,
  $$values ('a2'), ('a3')$$,
  'exactly the admin''s and the owner''s deletes removed objects'
);

-- ---------------------------------------------------------------------------
-- Roles are read at query time: a member removed mid-transaction loses read
-- access on the next statement, with the very same token.
-- ---------------------------------------------------------------------------

create temp table saved_claims (claims text not null);
grant all on saved_claims to public;

create function pg_temp.resume_saved_token()
returns void
language sql
as $$
  select set_config('role', 'authenticated', true),
         set_config('request.jwt.claims', (select claims from saved_claims), true);
$$;

select tests.act_as('member_a');
insert into saved_claims select current_setting('request.jwt.claims');
select isnt_empty($$select * from pg_temp.visible()$$, 'before the removal the member reads A''s objects');

select tests.act_as('postgres');
delete from public.memberships where org_id = tests.fx('org_a') and user_id = tests.fx('member_a');

select pg_temp.resume_saved_token();
select is(auth.uid(), tests.fx('member_a'), 'back with the member''s saved token');
select is_empty($$select * from pg_temp.visible()$$, 'removed from the org, the same token reads nothing');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('test-org-files', pg_temp.path('org_a', 'uploads/after-removal.pdf'), auth.uid()::text, '{}')$$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'removed from the org, the same token cannot upload'
);

select * from finish();
rollback;
