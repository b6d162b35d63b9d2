-- A deleted user's avatars are queued for removal through the Storage API
-- (20261123010600_avatars_removed_with_user.sql): deleting the auth.users row
-- (directly or with delete_user) queues the user; the service role lists the
-- user's objects in the avatars bucket only (no other user's, none of a live
-- user) and finishing clears the queue once none is left; no avatar can be
-- stored for a user who is gone; the cron wakes the cleanup for a user queued
-- over a minute ago; nothing of it is granted to authenticated or anon.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

insert into tests.fixtures (name, id) values
  ('gone_a', tests.create_user('gone-a@avatars-removed-278.test')),
  ('keep_b', tests.create_user('keep-b@avatars-removed-278.test')),
  ('gone_c', tests.create_user('gone-c@avatars-removed-278.test'));

insert into storage.objects (bucket_id, name, owner_id, metadata) values
  ('avatars', tests.fx('gone_a')::text || '/me.png', tests.fx('gone_a')::text, '{}'),
  ('avatars', tests.fx('gone_a')::text || '/old/2025.png', tests.fx('gone_a')::text, '{}'),
  ('avatars', tests.fx('keep_b')::text || '/me.png', tests.fx('keep_b')::text, '{}'),
  ('avatars', tests.fx('gone_c')::text || '/me.png', tests.fx('gone_c')::text, '{}');

-- ---------------------------------------------------------------------------
-- Queued on deletion, whatever the path
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select throws_ok(
  format('select * from private.user_avatar_objects(%L)', tests.fx('gone_a')),
  '22023', 'the user still exists',
  'a live user''s avatars are not listed for removal'
);
select throws_ok(
  format('select private.finish_avatar_removal(%L)', tests.fx('keep_b')),
  '22023', 'the user still exists',
  'nor finished'
);
select tests.act_as('postgres');

select is_empty(
  format('select 1 from private.avatar_removals where user_id in (%L, %L)', tests.fx('gone_a'), tests.fx('keep_b')),
  'nobody is queued before a deletion'
);
delete from auth.users where id = tests.fx('gone_a');
select results_eq(
  format('select user_id from private.avatar_removals where user_id in (%L, %L)', tests.fx('gone_a'), tests.fx('keep_b')),
  format('values (%L::uuid)', tests.fx('gone_a')),
  'a direct auth.users delete queues the user (and only them)'
);

select tests.act_as('service_role');
select is(private.delete_user(tests.fx('gone_c')), true, 'delete_user deletes another user');
select tests.act_as('postgres');
select isnt_empty(
  format('select 1 from private.avatar_removals where user_id = %L', tests.fx('gone_c')),
  'delete_user queues them too'
);
select is(
  (select count(*)::integer from private.avatar_removals where user_id = tests.fx('gone_a')),
  1,
  'one queue row per user'
);

-- ---------------------------------------------------------------------------
-- Listing and finishing (as the service role)
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select results_eq(
  format('select bucket_id, name from private.user_avatar_objects(%L, 1000)', tests.fx('gone_a')),
  format($$values ('avatars'::text, '%1$s/me.png'::text), ('avatars', '%1$s/old/2025.png')$$, tests.fx('gone_a')),
  'the listing answers the deleted user''s avatar objects, not another user''s'
);
select is(
  (select count(*)::integer from private.user_avatar_objects(tests.fx('gone_a'), 1)),
  1,
  'a page holds at most max_objects'
);
select throws_ok(
  format('select * from private.user_avatar_objects(%L, 0)', tests.fx('gone_a')),
  '22023', 'max_objects must be between 1 and 10000',
  'a page of 0 is refused'
);
select isnt_empty(
  format('select 1 from private.avatar_removals_pending() where user_id = %L', tests.fx('gone_a')),
  'the deleted user is pending'
);
select is(private.finish_avatar_removal(tests.fx('gone_a')), 2, 'finishing while objects are left answers how many');
select tests.act_as('postgres');
select isnt_empty(
  format('select 1 from private.avatar_removals where user_id = %L', tests.fx('gone_a')),
  'and keeps the user queued'
);

-- As the Storage API deletes.
select set_config('storage.allow_delete_query', 'true', true);
delete from storage.objects where bucket_id = 'avatars' and name like tests.fx('gone_a')::text || '/%';
select set_config('storage.allow_delete_query', 'false', true);

select tests.act_as('service_role');
select is(private.finish_avatar_removal(tests.fx('gone_a')), 0, 'once the objects are gone, finishing answers 0');
select tests.act_as('postgres');
select is_empty(
  format('select 1 from private.avatar_removals where user_id = %L', tests.fx('gone_a')),
  'and takes the user off the queue'
);
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars' and name = tests.fx('keep_b')::text || '/me.png'),
  1,
  'another user''s avatar stays'
);

-- ---------------------------------------------------------------------------
-- Nothing stored for a user who is gone
-- ---------------------------------------------------------------------------

select throws_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata) values ('avatars', '%s/late.png', null, '{}')$$,
    tests.fx('gone_a')),
  '23503', format('user %s does not exist; no avatar can be stored in their folder', tests.fx('gone_a')),
  'an avatar uploaded into a deleted user''s folder is refused (23503)'
);
select lives_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata) values ('avatars', '%s/new.png', null, '{}')$$,
    tests.fx('keep_b')),
  'a live user''s folder still takes avatars'
);

-- ---------------------------------------------------------------------------
-- The cron wakes the cleanup for a queued user
-- ---------------------------------------------------------------------------

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('avatars-removed-278-key', 'service_role_key');
-- Only this file's queue rows count: other deletions pending in the shared database are set aside (rolled back).
update private.deleted_organizations set storage_removed_at = now() where storage_removed_at is null;
delete from private.avatar_removals where user_id <> tests.fx('gone_c');
create temporary table marks as select coalesce(max(id), 0) as n from net.http_request_queue;

select is(private.request_org_storage_cleanup(), false, 'a user queued under a minute ago wakes nothing yet');
update private.avatar_removals set deleted_at = now() - interval '2 minutes' where user_id = tests.fx('gone_c');
select is(private.request_org_storage_cleanup(), true, 'a user queued over a minute ago wakes the cleanup');
select results_eq(
  $$select url from net.http_request_queue where id > (select n from marks)$$,
  $$values ('https://project.example.test/functions/v1/account/storage-cleanup'::text)$$,
  'one request to the account function''s storage cleanup'
);

-- ---------------------------------------------------------------------------
-- Grants
-- ---------------------------------------------------------------------------

select ok(
  (select relrowsecurity from pg_class where oid = 'private.avatar_removals'::regclass),
  'the queue has RLS on'
);
select ok(
  not has_table_privilege('authenticated', 'private.avatar_removals', 'select, insert, update, delete')
    and not has_table_privilege('anon', 'private.avatar_removals', 'select, insert, update, delete')
    and not has_table_privilege('service_role', 'private.avatar_removals', 'select, insert, update, delete'),
  'nobody reads or writes the queue directly'
);
select ok(
  not exists (
    select 1
    from unnest(array[
      'private.user_avatar_objects(uuid, integer)', 'private.finish_avatar_removal(uuid)',
      'private.avatar_removals_pending()', 'private.queue_avatar_removal()',
      'private.refuse_avatars_of_missing_users()'
    ]) f(signature), unnest(array['authenticated', 'anon']) r(role)
    where has_function_privilege(r.role, f.signature, 'execute')
  ),
  'authenticated and anon execute none of the functions'
);
select ok(
  has_function_privilege('service_role', 'private.user_avatar_objects(uuid, integer)', 'execute')
    and has_function_privilege('service_role', 'private.finish_avatar_removal(uuid)', 'execute')
    and has_function_privilege('service_role', 'private.avatar_removals_pending()', 'execute')
    and not has_function_privilege('service_role', 'private.queue_avatar_removal()', 'execute'),
  'the service role lists, finishes and reads what is pending, nothing else'
);

select * from finish();
rollback;
