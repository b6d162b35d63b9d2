-- A deleted user's avatars are removed from Storage.
--
-- The avatars bucket (20261123010100) holds `<user_id>/...`: a user's face,
-- personal data. Deleting the user (private.delete_user from the account
-- function, or a direct auth.users delete: the Auth admin API, the
-- dashboard) removed their profile, whose avatar_path pointed there, and
-- left the objects for good.
--
-- Objects go through the Storage API (their bytes too; Supabase refuses SQL
-- deletes of storage.objects), as a deleted org's files do (20261123001600,
-- 20261123001800): the database only queues and lists.
--   * An after-delete trigger on auth.users queues the user's id in
--     private.avatar_removals, whatever path deleted the row. After, not
--     before: a deletion that a before trigger refuses queues nothing. It
--     only inserts into a private table (no foreign key), so it takes no
--     lock of an org or a chain head.
--   * As the service role: private.user_avatar_objects(user_id, 1000) lists
--     the folder's objects → storage.from('avatars').remove(names) until none
--     are left → private.finish_avatar_removal(user_id) deletes the queue row
--     (0) or answers how many are left. private.avatar_removals_pending()
--     lists the queue, oldest first.
--   * The account function does this right after deleting the user; the
--     scheduled storage cleanup (pg_cron every 10 minutes,
--     private.request_org_storage_cleanup, now also woken by a user queued
--     over a minute ago) finishes what is left and handles the other paths.
--   * No avatar can be stored for a user who is gone: a trigger on
--     storage.objects makes an object named `<user_id>/...` in the avatars
--     bucket lock its user row (for key share, as a foreign key would) and
--     refuses it (23503) when there is no such user. An upload racing the
--     deletion holds the deletion until it commits, and the removal lists it;
--     one after (a deleted user's access token lives until it expires) is
--     refused. So a listing that finds nothing is final.

create table private.avatar_removals (
  user_id uuid primary key,
  deleted_at timestamptz not null default now()
);
comment on table private.avatar_removals is 'Deleted users whose avatars (the avatars bucket, <user_id>/...) are still to be removed through the Storage API; the row goes once none is left. No foreign key: the user is gone.';
alter table private.avatar_removals enable row level security;
revoke all on private.avatar_removals from public, anon, authenticated, service_role;

create function private.queue_avatar_removal()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.avatar_removals (user_id) values (old.id)
  on conflict (user_id) do nothing;
  return null;
end;
$$;
comment on function private.queue_avatar_removal() is 'After an auth.users row is deleted (any path): queues the user''s avatars for removal through the Storage API (private.avatar_removals).';

create function private.user_avatar_objects(user_id uuid, max_objects integer default 1000)
returns table (bucket_id text, name text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if max_objects is null or max_objects not between 1 and 10000 then
    raise exception 'max_objects must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  -- A live user's avatars are theirs to manage: only a deleted user's are listed for removal.
  if exists (select 1 from auth.users u where u.id = user_avatar_objects.user_id) then
    raise exception 'the user still exists' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select o.bucket_id, o.name
  from storage.objects o
  where o.bucket_id = 'avatars'
    and starts_with(o.name, user_avatar_objects.user_id::text || '/')
  order by o.name
  limit max_objects;
end;
$$;
comment on function private.user_avatar_objects(uuid, integer) is 'A deleted user''s objects (bucket, name) under <user_id>/ in the avatars bucket, at most max_objects, for removal through the Storage API; 22023 while the user exists. Service role.';

create function private.finish_avatar_removal(user_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  remaining integer;
begin
  select count(*) into remaining from private.user_avatar_objects(finish_avatar_removal.user_id, 10000);
  if remaining = 0 then
    delete from private.avatar_removals r where r.user_id = finish_avatar_removal.user_id;
  end if;
  return remaining;
end;
$$;
comment on function private.finish_avatar_removal(uuid) is 'After a deleted user''s avatars were removed through the Storage API: takes the user off the queue (0) or returns how many objects are left; 22023 while the user exists. Service role.';

create function private.avatar_removals_pending()
returns table (user_id uuid, deleted_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  select r.user_id, r.deleted_at from private.avatar_removals r order by r.deleted_at, r.user_id limit 100;
$$;
comment on function private.avatar_removals_pending() is 'Deleted users whose avatars are not all removed yet, oldest first, at most 100. Service role.';

create function private.refuse_avatars_of_missing_users()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  folder_user uuid;
begin
  if new.bucket_id <> 'avatars' then
    return new;
  end if;
  -- The uuid of a `<uuid>/...` name, as for org buckets; other names are no user's folder.
  folder_user := private.object_org_id(new.name);
  if folder_user is null then
    return new;
  end if;
  -- Held until the upload commits: the user's deletion waits for it, so its removal lists this object.
  perform 1 from auth.users u where u.id = folder_user for key share;
  if not found then
    raise exception 'user % does not exist; no avatar can be stored in their folder', folder_user
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end;
$$;
comment on function private.refuse_avatars_of_missing_users() is
  'Trigger on storage.objects: an object named <user_id>/... in the avatars bucket locks its user (for key share) '
  'and is refused (23503) when there is no such user, so no avatar outlives its user''s removal.';

-- Latest definition: 20261123001800_billing_functions.sql; deleted users' avatars are new.
create or replace function private.request_org_storage_cleanup()
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A minute's grace: the request that deleted the org or the user is normally still removing the files.
  if not exists (
    select 1 from private.deleted_organizations d
    where d.storage_removed_at is null and d.deleted_at < pg_catalog.now() - interval '1 minute'
  ) and not exists (
    select 1 from private.avatar_removals r where r.deleted_at < pg_catalog.now() - interval '1 minute'
  ) then
    return false;
  end if;
  return private.invoke_edge_function('account/storage-cleanup', '{}'::jsonb, 30000);
end;
$$;
comment on function private.request_org_storage_cleanup() is 'Wakes the account function''s storage cleanup (pg_net) when a deleted org still has files or a deleted user still has avatars. pg_cron, every 10 minutes.';

revoke execute on function
  private.queue_avatar_removal(),
  private.user_avatar_objects(uuid, integer),
  private.finish_avatar_removal(uuid),
  private.avatar_removals_pending(),
  private.refuse_avatars_of_missing_users()
from public, anon, authenticated, service_role;

grant execute on function
  private.user_avatar_objects(uuid, integer),
  private.finish_avatar_removal(uuid),
  private.avatar_removals_pending()
to service_role;

-- Creating a trigger locks its table against writes until the commit (storage.objects: every upload;
-- auth.users: sign-ups and sign-ins), so the triggers come last.
create trigger avatar_objects_need_their_user
  before insert or update of bucket_id, name on storage.objects
  for each row execute function private.refuse_avatars_of_missing_users();

create trigger on_auth_user_deleted_queue_avatar_removal
  after delete on auth.users
  for each row execute function private.queue_avatar_removal();
