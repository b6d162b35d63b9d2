-- The org's AI model settings reach new bots, and avatars have a bucket
-- (20261123010100_org_settings_applied.sql): a bot inserted without model,
-- temperature or max_tokens takes the org's (capped at a bot's limits),
-- values given win (the old defaults included), an org without settings
-- gets the old defaults, the allow-list still judges an inherited model;
-- avatar_path is in the user's own folder when set or changed; the avatars
-- bucket is written only in one's own folder and read by its user and co-members (20261123015500).
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@org-settings-applied-273.test')),
  ('admin_a', tests.create_user('admin-a@org-settings-applied-273.test')),
  ('owner_c', tests.create_user('owner-c@org-settings-applied-273.test')),
  ('user_b', tests.create_user('user-b@org-settings-applied-273.test'));
select tests.remember('org_a', tests.create_org('settings-applied-273-a', tests.fx('owner_a')));
select tests.remember('org_c', tests.create_org('settings-applied-273-c', tests.fx('owner_c')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
-- No member, so no settings row.
insert into public.organizations (name, slug) values ('Bare 273', 'settings-applied-273-bare');
select tests.remember('org_bare', id) from public.organizations where slug = 'settings-applied-273-bare';

update public.org_settings set default_chat_model = 'gpt-4.1-mini', temperature = 1.25, max_tokens = 700
where org_id = tests.fx('org_a');
-- Above a bot's 4096 (org settings go to 8192 within the model's limit).
update public.org_settings set default_chat_model = 'gpt-4o', temperature = 0.9, max_tokens = 8192
where org_id = tests.fx('org_c');

create function pg_temp.bot_settings(bot_slug text)
returns text
language sql
stable
as $$
  select b.model || ' ' || b.temperature::text || ' ' || b.max_tokens::text from public.bots b where b.slug = bot_slug
$$;
grant execute on function pg_temp.bot_settings(text) to public;

-- ---------------------------------------------------------------------------
-- New bots take the org's settings
-- ---------------------------------------------------------------------------

select is(
  (select pg_catalog.pg_get_expr(d.adbin, d.adrelid) from pg_catalog.pg_attrdef d
    join pg_catalog.pg_attribute a on a.attrelid = d.adrelid and a.attnum = d.adnum
    where d.adrelid = 'public.bots'::regclass and a.attname = 'model'),
  'private.filled_by_trigger(NULL::text)',
  'bots.model keeps a stored default (optional in the API) that yields null for the trigger'
);

select tests.act_as('admin_a');
select lives_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Inherits', 'inherits-273')$$,
  'an admin creates a bot without model settings (through RLS)'
);
select tests.act_as('postgres');
select is(pg_temp.bot_settings('inherits-273'), 'gpt-4.1-mini 1.25 700',
  'a bot created without model, temperature or max_tokens takes the org''s default_chat_model, temperature and max_tokens');

select tests.act_as('admin_a');
insert into public.bots (org_id, name, slug, model, temperature, max_tokens)
values (tests.fx('org_a'), 'Explicit', 'explicit-273', 'gpt-4o-mini', 0.3, 512);
select tests.act_as('postgres');
select is(pg_temp.bot_settings('explicit-273'), 'gpt-4o-mini 0.30 512',
  'values given win, even when they equal the old column defaults');

select tests.act_as('admin_a');
insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'Partly', 'partly-273', 0);
select tests.act_as('postgres');
select is(pg_temp.bot_settings('partly-273'), 'gpt-4.1-mini 0.00 700',
  'a temperature of 0 given is kept; the fields left out still come from the org');

select tests.act_as('admin_a');
insert into public.bots (org_id, name, slug, model, temperature, max_tokens)
values (tests.fx('org_a'), 'Nulls', 'nulls-273', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.bot_settings('nulls-273'), 'gpt-4.1-mini 1.25 700',
  'explicit nulls (PostgREST without missing=default) are filled as if left out');

select tests.act_as('service_role');
insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'By service', 'by-service-273');
select tests.act_as('postgres');
select is(pg_temp.bot_settings('by-service-273'), 'gpt-4.1-mini 1.25 700',
  'the service role (edge functions) gets the org''s settings too');

insert into public.bots (org_id, name, slug) values (tests.fx('org_c'), 'Capped', 'capped-273');
select is(pg_temp.bot_settings('capped-273'), 'gpt-4o 0.90 4096',
  'an org max_tokens above a bot''s limit is capped at 4096, not refused');

insert into public.bots (org_id, name, slug, model) values (tests.fx('org_c'), 'Offline', 'offline-273', 'offline');
select is(pg_temp.bot_settings('offline-273'), 'offline 0.90 4096',
  'a model given takes the org''s temperature and capped max_tokens');

insert into public.bots (org_id, name, slug) values (tests.fx('org_bare'), 'Bare', 'bare-273');
select is(pg_temp.bot_settings('bare-273'), 'gpt-4o-mini 0.30 512',
  'an org without a settings row gets the old defaults (gpt-4o-mini, 0.3, 512)');

-- The allow-list and rounding run after the fill (trigger order by name).
update public.org_settings set temperature = 0.5 where org_id = tests.fx('org_c');
update public.org_settings set default_chat_model = 'gpt-4.1-nano', max_tokens = 900 where org_id = tests.fx('org_c');
update public.chat_models set enabled = false where id = 'gpt-4.1-nano';
select tests.act_as('owner_c');
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_c'), 'Disabled', 'disabled-273')$$,
  '22023', 'the model gpt-4.1-nano is not available',
  'an org default that has since been disabled is refused for a new bot, as any disabled model'
);
select lives_ok(
  $$insert into public.bots (org_id, name, slug, model) values (tests.fx('org_c'), 'Chosen', 'chosen-273', 'gpt-4o')$$,
  'the same org creates a bot naming an enabled model'
);
select tests.act_as('user_b');
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_c'), 'Probe', 'probe-273')$$,
  '42501', null,
  'a non-member is refused by RLS, never by a validation message naming the org''s settings'
);
select tests.act_as('postgres');
select is(pg_temp.bot_settings('chosen-273'), 'gpt-4o 0.50 900', 'with the org''s temperature and max_tokens');
update public.chat_models set enabled = true where id = 'gpt-4.1-nano';

-- ---------------------------------------------------------------------------
-- profiles.avatar_path
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select lives_ok(
  format($$update public.profiles set avatar_path = '%s/me.png' where user_id = auth.uid()$$, tests.fx('owner_a')),
  'a user points avatar_path into their own folder'
);
select throws_ok(
  format($$update public.profiles set avatar_path = '%s/me.png' where user_id = auth.uid()$$, tests.fx('user_b')),
  '22023', format('avatar_path is a path in the avatars bucket under the user''s own folder (%s/<file>)', tests.fx('owner_a')),
  'avatar_path in another user''s folder is refused (22023)'
);
select throws_ok(
  $$update public.profiles set avatar_path = 'me.png' where user_id = auth.uid()$$,
  '22023', null,
  'avatar_path outside any folder is refused'
);
select throws_ok(
  format($$update public.profiles set avatar_path = '%s/' where user_id = auth.uid()$$, tests.fx('owner_a')),
  '22023', null,
  'avatar_path naming only the folder is refused'
);

-- A path stored before the rule does not block other edits of the profile.
select tests.act_as('postgres');
alter table public.profiles disable trigger profiles_avatar_path_own_folder_on_update;
update public.profiles set avatar_path = 'legacy/photo.png' where user_id = tests.fx('user_b');
alter table public.profiles enable trigger profiles_avatar_path_own_folder_on_update;
select tests.act_as('user_b');
select lives_ok(
  $$update public.profiles set display_name = 'B again', avatar_path = 'legacy/photo.png' where user_id = auth.uid()$$,
  'a profile with an avatar_path stored before the rule is still edited (the path unchanged)'
);

-- ---------------------------------------------------------------------------
-- The avatars bucket
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select is(
  (select array[b.file_size_limit::text, b.public::text, array_to_string(b.allowed_mime_types, ',')]
   from storage.buckets b where b.id = 'avatars'),
  array['2097152', 'false', 'image/png,image/jpeg,image/webp,image/gif'],
  'the avatars bucket: private, 2 MB, png, jpeg, webp and gif'
);

select tests.act_as('owner_a');
select lives_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('avatars', '%s/me.png', auth.uid()::text, '{}')$$, tests.fx('owner_a')),
  'a user uploads into their own avatars folder'
);
select throws_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('avatars', '%s/me.png', auth.uid()::text, '{}')$$, tests.fx('user_b')),
  '42501', 'new row violates row-level security policy for table "objects"',
  'a user cannot upload into another user''s avatars folder'
);
select throws_ok(
  format($$update storage.objects set name = '%s/moved.png' where bucket_id = 'avatars' and name = '%s/me.png'$$,
    tests.fx('user_b'), tests.fx('owner_a')),
  '42501', 'new row violates row-level security policy for table "objects"',
  'a user cannot move their avatar into another user''s folder'
);

-- Read by their user and co-members only (20261123015500_storage_signed_writes_need_membership.sql).
select tests.act_as('admin_a');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars' and name = tests.fx('owner_a')::text || '/me.png'),
  1,
  'a co-member reads another user''s avatar (admin A shares org A with owner A)'
);
select tests.act_as('user_b');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars' and name = tests.fx('owner_a')::text || '/me.png'),
  0,
  'a signed-in user sharing no org reads no one''s avatar (user B shares no org with A)'
);
-- As the Storage API deletes.
select set_config('storage.allow_delete_query', 'true', true);
delete from storage.objects where bucket_id = 'avatars' and name like tests.fx('owner_a')::text || '/%';
select tests.act_as('postgres');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars' and name = tests.fx('owner_a')::text || '/me.png'),
  1,
  'a user cannot delete another user''s avatar'
);

select tests.act_as('anon');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars'),
  0,
  'anon reads no avatar'
);

select tests.act_as('owner_a');
delete from storage.objects where bucket_id = 'avatars' and name = tests.fx('owner_a')::text || '/me.png';
select tests.act_as('postgres');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars' and name like tests.fx('owner_a')::text || '/%'),
  0,
  'a user deletes their own avatar'
);

select * from finish();
rollback;
