-- Probes refused alike: two answers that told a caller more than the refusal they were owed (found by review).
--
-- 1. create_organization checked the slug's uniqueness before the creation cap (20261123012800), so a user at
-- the cap could call create_organization('Probe', 'globex') without limit: 23505 `the slug "globex" is taken`
-- for a taken slug, PT429 for a free one, which enumerated the tenants by name at no cost. The cap now comes
-- first: at the cap every call answers PT429 whatever the slug; below it a free slug creates an org (one of the
-- 10). The name's and the slug's format (22023) are still checked first: they depend on the input alone.
--
-- 2. Two Storage triggers answered before RLS. BEFORE ROW triggers fire before an insert's or update's RLS WITH
-- CHECK, so for an upload nobody could have made, avatar_objects_need_their_user answered 23503 (local Storage
-- 500, hosted 404) for `avatars/<uuid>/...` when no user has that id, and RLS 42501 (403) when one has;
-- org_objects_need_their_org answered 23503 for `<deleted org id>/...` in an org bucket (exports, knowledge,
-- recordings, invoices) and 42501 for a live or unknown org. Anyone with the anon key could tell users' ids and
-- deleted orgs' ids from other uuids, and a bad upload was a 5xx. Both triggers stay security definer (any role
-- Storage writes as may fire them) and read the writing role from the `role` setting, which SET ROLE (PostgREST,
-- Storage, the functions) sets and a definer function leaves as it was. When that role is anon (no write policy on
-- storage.objects) or authenticated without the right to write there (avatars: a folder that is not
-- auth.uid()'s; org buckets: a narrowed bucket, or an org outside org_ids_with_permission('files.write'), as the
-- write policies say), the write gets RLS's refusal (42501, 'new row violates row-level security policy for
-- table "objects"') whoever's the uuid: in avatars from RLS itself, in org buckets from the trigger (why: at its
-- definition below). The service role's writes, the database owner's, and a user's into their own folder or an
-- org where they hold files.write keep the 23503 guard and its locks (in two helpers, the definer's alone).

-- ---------------------------------------------------------------------------
-- 1. The cap before the slug
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123012800_organization_creation_cap.sql; only the place of the slug's uniqueness check,
-- now after the cap, is new.
create or replace function private.create_organization(name text, slug text)
returns public.organizations
language plpgsql
security definer
set search_path = ''
set lock_timeout = '2s'
as $$
declare
  creator uuid := private.require_user();
  clean_name text := btrim(coalesce(create_organization.name, ''));
  clean_slug text := lower(btrim(create_organization.slug));
  created public.organizations;
  recent_creations integer;
  oldest_creation timestamptz;
begin
  if length(clean_name) not between 1 and 100 then
    raise exception 'an organization name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if clean_slug is null then
    -- A readable slug from the name, made unique with a random suffix.
    clean_slug := left(btrim(pg_catalog.regexp_replace(lower(clean_name), '[^a-z0-9]+', '-', 'g'), '-'), 40);
    clean_slug := btrim(clean_slug || '-' || pg_catalog.encode(extensions.gen_random_bytes(3), 'hex'), '-');
  end if;
  if clean_slug !~ '^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$' then
    raise exception 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens'
      using errcode = 'invalid_parameter_value';
  end if;

  if not private.is_platform_admin() then
    -- Within lock_timeout too (a double submit waits here while the first creation waits on its own locks):
    -- PT503 like the other waits, not 55P03, which PostgREST answers 500.
    begin
      perform pg_catalog.pg_advisory_xact_lock(12800, pg_catalog.hashtext(creator::text));
    exception when lock_not_available then
      raise exception 'organizations are being created or their documents written right now; try again'
        using errcode = 'PT503', hint = 'Retry in a few seconds.';
    end;
    select count(*)::integer, min(c.created_at) into recent_creations, oldest_creation
    from private.organization_creations c
    where c.user_id = creator and c.created_at > pg_catalog.now() - interval '30 days';
    if recent_creations >= 10 then
      raise exception 'a user creates at most 10 organizations in 30 days'
        using errcode = 'PT429',
          detail = ceil(extract(epoch from oldest_creation + interval '30 days' - pg_catalog.now()))::text,
          hint = 'Use one of your organizations, or try again after the seconds in detail; deleted organizations count until 30 days after their creation.';
    end if;
  end if;

  -- After the cap: whether another tenant holds a slug is no answer for a caller who may not create.
  if exists (select 1 from public.organizations o where o.slug = clean_slug) then
    raise exception 'the slug "%" is taken', clean_slug using errcode = 'unique_violation';
  end if;

  begin
    -- Only the parent: a plain LOCK TABLE also locks every org's partition.
    lock table only public.document_chunks in share update exclusive mode;
    insert into public.organizations (name, slug, created_by)
    values (clean_name, clean_slug, creator)
    returning * into created;
  exception when lock_not_available then
    raise exception 'organizations are being created or their documents written right now; try again'
      using errcode = 'PT503', hint = 'Retry in a few seconds.';
  end;
  insert into public.memberships (org_id, user_id, role) values (created.id, creator, 'owner');
  -- Admins' creations are kept too: the ledger records creations, only the check above is skipped.
  insert into private.organization_creations (org_id, user_id) values (created.id, creator);
  return created;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. Storage: an upload nobody may make gets RLS's answer
-- ---------------------------------------------------------------------------

-- The guards' reads and locks (executable by the functions' owner only: they tell whether a user or org exists).
create function private.lock_avatar_folder_user(folder_user uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Held until the upload commits: the user's deletion waits for it, so its removal lists this object.
  perform 1 from auth.users u where u.id = lock_avatar_folder_user.folder_user for key share;
  return found;
end;
$$;
comment on function private.lock_avatar_folder_user(uuid) is
  'For avatar_objects_need_their_user: locks the user of an avatars folder (for key share); false when there is no such user.';

create function private.lock_object_org(bucket_id text, name text, org uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- The document at the path first, as queue_uploaded_document will lock it: document → org row, the order
  -- delete_organization takes (20261123009600).
  if lock_object_org.bucket_id = 'knowledge' then
    perform 1 from public.documents d where d.storage_path = lock_object_org.name for no key update;
  end if;
  -- Held until the upload commits: a deletion of the org waits for it, so its removal lists this object.
  perform 1 from public.organizations o where o.id = lock_object_org.org for key share;
  return found or not exists (select 1 from private.deleted_organizations d where d.org_id = lock_object_org.org);
end;
$$;
comment on function private.lock_object_org(text, text, uuid) is
  'For org_objects_need_their_org: locks the document at a knowledge path (for no key update), then the org row '
  '(for key share); false when the org was deleted.';

revoke execute on function private.lock_avatar_folder_user(uuid), private.lock_object_org(text, text, uuid)
from public, anon, authenticated, service_role;

-- Latest definition: 20261123010600_avatars_removed_with_user.sql; the lock moved to lock_avatar_folder_user,
-- and a write RLS refuses is left to it.
create or replace function private.refuse_avatars_of_missing_users()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  writer text := pg_catalog.current_setting('role', true);
  folder_user uuid;
begin
  -- anon has no write policy on storage.objects.
  if new.bucket_id <> 'avatars' or writer = 'anon' then
    return new;
  end if;
  -- The uuid of a `<uuid>/...` name, as for org buckets; other names are no user's folder.
  folder_user := private.object_org_id(new.name);
  if folder_user is null then
    return new;
  end if;
  -- A user writes only in their own folder (the avatars policies): any other is RLS's to refuse, whoever's it is.
  if writer = 'authenticated' and folder_user is distinct from (select auth.uid()) then
    return new;
  end if;
  if not private.lock_avatar_folder_user(folder_user) then
    raise exception 'user % does not exist; no avatar can be stored in their folder', folder_user
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end;
$$;
comment on function private.refuse_avatars_of_missing_users() is
  'Trigger on storage.objects: an object named <user_id>/... in the avatars bucket locks its user (for key share) '
  'and is refused (23503) when there is no such user, so no avatar outlives its user''s removal. The writing role '
  '(the role setting): anon''s writes and a user''s outside their own folder are left to RLS (42501).';

-- Latest definition: 20261123009600_lock_order_remaining.sql; the locks moved to lock_object_org, and a write the
-- policies refuse is refused first, with RLS's own answer. Not left to RLS itself: RLS reads the
-- memberships as of the statement's start, so a member whose org's deletion committed since would pass it (the
-- race the guard exists for), and in the knowledge bucket uploads_need_their_document, which fires before RLS,
-- would answer an outsider whether a path is a document's.
create or replace function private.refuse_deleted_org_objects()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  writer text := pg_catalog.current_setting('role', true);
  org uuid;
begin
  -- anon has no write policy on storage.objects: refused in every org bucket, as RLS refuses it.
  if writer = 'anon' then
    if new.bucket_id in (select private.org_bucket_ids()) then
      raise exception 'new row violates row-level security policy for table "objects"'
        using errcode = 'insufficient_privilege';
    end if;
    return new;
  end if;
  org := private.object_org_id(new.name);
  if org is null or (new.bucket_id in (select private.org_bucket_ids())) is not true then
    return new;
  end if;
  -- What the write policies let a user do: no narrowed bucket, and only orgs where they hold files.write.
  if writer = 'authenticated' and (
    new.bucket_id in (select private.narrowed_bucket_ids())
    or not org = any (array(select private.org_ids_with_permission('files.write')))
  ) then
    raise exception 'new row violates row-level security policy for table "objects"'
      using errcode = 'insufficient_privilege';
  end if;
  if not private.lock_object_org(new.bucket_id, new.name, org) then
    raise exception 'organization % was deleted; nothing can be stored under its prefix', org
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end;
$$;
comment on function private.refuse_deleted_org_objects() is
  'Trigger on storage.objects: an object named <org_id>/... in an org bucket locks its org (for key share) '
  'and is refused (23503) when the org was deleted, so no file outlives its org''s removal. The writing role (the '
  'role setting): anon''s writes and a user''s that the write policies refuse are refused as RLS refuses them (42501).';
