-- The org's AI model settings reach new bots, and avatars get a bucket.
--
-- 1. org_settings.default_chat_model, temperature and max_tokens were read by
--    nothing: bots took hard-coded column defaults (gpt-4o-mini, 0.3, 512).
--    Now a bot inserted without them (any path: PostgREST, functions, SQL,
--    seeds) takes the org's, and an org without a settings row (no member
--    yet) the old defaults; a value given wins. "Not given" must be told
--    apart from "given the default", so the three columns' defaults now yield
--    null and a before-insert trigger fills them. Its name sorts first among
--    the bots' before-insert triggers, so rounding (bots_round_temperature)
--    and the allow-list and output-limit checks (bots_validate) see the
--    filled values: an org default that has since been disabled is refused
--    there as any disabled model is, and so is a max_tokens above the chosen
--    model's output limit. The org's max_tokens may be up to 8192
--    (org_settings' range) while a bot's is at most 4096: an inherited value
--    is capped at 4096 rather than refused.
-- 2. profiles.avatar_path named no bucket. The private `avatars` bucket
--    (png, jpeg, webp, gif; 2 MB) holds `<user_id>/...`: a signed-in user
--    writes only under their own folder, and every signed-in user reads (an
--    avatar is shown to anyone sharing an org or a conversation). A profile's
--    avatar_path, when set or changed, must be in its own user's folder;
--    paths stored before are left as they are.

-- ---------------------------------------------------------------------------
-- 1. New bots take the org's model settings
-- ---------------------------------------------------------------------------

-- A column default of a bare null is not stored at all, and a column without
-- one is "required" to PostgREST and the generated types, though the trigger
-- below fills it; this default is stored and yields null.
create function private.filled_by_trigger(placeholder anyelement)
returns anyelement
language sql
immutable
security invoker
set search_path = ''
as $$
  select placeholder;
$$;
comment on function private.filled_by_trigger(anyelement) is 'Returns its argument; called with a typed null as the default of a column a before-insert trigger fills (bots.model, temperature, max_tokens), so the column stays optional in the API.';
grant execute on function private.filled_by_trigger(anyelement) to authenticated, service_role;

alter table public.bots
  alter column model set default private.filled_by_trigger(null::text),
  alter column temperature set default private.filled_by_trigger(null::numeric),
  alter column max_tokens set default private.filled_by_trigger(null::integer);

create function private.fill_bot_from_org_settings()
returns trigger
language plpgsql
-- Reads the org's settings whoever inserts (the service role, a platform
-- admin); it only fills the new row, which RLS still judges.
security definer
set search_path = ''
as $$
declare
  settings public.org_settings;
begin
  -- No row (an org without members yet): every field stays null and the old defaults apply.
  select * into settings from public.org_settings s where s.org_id = new.org_id;
  new.model := coalesce(new.model, settings.default_chat_model, 'gpt-4o-mini');
  new.temperature := coalesce(new.temperature, settings.temperature, 0.30);
  -- 4096: bots_max_tokens_range. Above the model's output limit stays bots_validate's refusal, as before.
  new.max_tokens := coalesce(new.max_tokens, least(coalesce(settings.max_tokens, 512), 4096));
  return new;
end;
$$;
comment on function private.fill_bot_from_org_settings() is 'Trigger on bots (before insert): model, temperature and max_tokens left out (null) come from the org''s org_settings (default_chat_model, temperature, max_tokens capped at 4096), else gpt-4o-mini, 0.3, 512.';
revoke execute on function private.fill_bot_from_org_settings() from public, anon, authenticated, service_role;

create trigger bots_fill_from_org_settings before insert on public.bots
  for each row execute function private.fill_bot_from_org_settings();

comment on column public.org_settings.default_chat_model is 'The model new bots start with when created without one (bots_fill_from_org_settings; public.chat_models; a disabled model cannot be newly chosen).';
comment on column public.org_settings.temperature is 'The temperature new bots start with when created without one.';
comment on column public.org_settings.max_tokens is 'The max_tokens new bots start with when created without one, capped at 4096 (a bot''s limit).';

-- ---------------------------------------------------------------------------
-- 2. Avatars
-- ---------------------------------------------------------------------------

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('avatars', 'avatars', false, 2097152, array['image/png', 'image/jpeg', 'image/webp', 'image/gif']);

-- A user id has no LIKE wildcards, so `<uid>/_%` is "in the user's folder, with a name".
create policy "signed-in users can read avatars"
  on storage.objects for select to authenticated
  using (bucket_id = 'avatars');
create policy "users upload avatars into their own folder"
  on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and name like (select auth.uid())::text || '/_%');
create policy "users replace avatars in their own folder"
  on storage.objects for update to authenticated
  using (bucket_id = 'avatars' and name like (select auth.uid())::text || '/_%')
  with check (bucket_id = 'avatars' and name like (select auth.uid())::text || '/_%');
create policy "users delete avatars in their own folder"
  on storage.objects for delete to authenticated
  using (bucket_id = 'avatars' and name like (select auth.uid())::text || '/_%');

create function private.check_avatar_path()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.avatar_path not like new.user_id::text || '/_%' then
    raise exception 'avatar_path is a path in the avatars bucket under the user''s own folder (%/<file>)', new.user_id
      using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;
comment on function private.check_avatar_path() is 'Trigger on profiles: an avatar_path set or changed is <user_id>/<file> (the avatars bucket''s folder of that user), else 22023.';

-- Only when set or changed, so a path stored before this migration does not
-- block other edits of its profile.
create trigger profiles_avatar_path_own_folder_on_insert before insert on public.profiles
  for each row when (new.avatar_path is not null) execute function private.check_avatar_path();
create trigger profiles_avatar_path_own_folder_on_update before update of avatar_path on public.profiles
  for each row when (new.avatar_path is not null and new.avatar_path is distinct from old.avatar_path)
  execute function private.check_avatar_path();

comment on column public.profiles.avatar_path is 'The avatar''s object name in the avatars bucket: <user_id>/<file> (checked when set or changed).';
