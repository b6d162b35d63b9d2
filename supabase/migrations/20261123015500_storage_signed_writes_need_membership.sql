-- Storage writes after membership ends; re-uploads of checksummed documents; avatar reads (found by review).
--
-- 1. A signed upload URL outlived its signer's membership. Hosted Storage runs the PUT of a URL made by
-- createSignedUploadUrl (valid 2 hours) as the service role with `owner` set to the user who signed it
-- (uploadSignedObject: asSuperUser().uploadNewObject({ owner })), and org_objects_need_their_org checked the
-- write policies' rule (files.write in the path's org, no narrowed bucket) only for the authenticated role. A
-- member removed, or demoted below files.write, after signing still overwrote the org's knowledge files, and the
-- upsert re-queued ingestion, so bots answered from the new text. A service-role write that names an owner
-- (owner_id, or the deprecated owner) is now held to that user's rights as they stand at the write: refused with
-- RLS's answer (42501, as every refusal of 20261123014500 is worded, so nothing tells a member's path from an
-- unknown one) unless they hold files.write in the org of the path, in a bucket that is not narrowed. The service
-- role's own writes (the functions upload with the service key: no owner) are as before.
--
-- 2. Uploading a new version of a document registered with checksum_sha256 always failed: the upload re-queued the
-- document, but the first step of the run compares the file with the checksum declared for the first file ("does
-- not match the checksum"), and the failed run dropped the document's chunks. An upload that replaces a stored
-- file (Storage's upsert: an insert whose conflict updates the row, so the row trigger sees an UPDATE, hosted and
-- local alike) now clears checksum_sha256 as it queues the document: the declared checksum was the first file's;
-- content_sha256 records what the new run reads.
--
-- 3. Every signed-in user read every avatar ("signed-in users can read avatars"): with no org at all, a user
-- listed the bucket's root (one folder per user id with an avatar) and downloaded each photo, which told real user
-- ids from made-up ones (what 20261123014500 closed elsewhere). A user now reads the avatars in their own folder
-- and in the folders of users who share an org with them (the people whose profiles they read).

-- ---------------------------------------------------------------------------
-- 1. Signed uploads need the signer's membership
-- ---------------------------------------------------------------------------

-- has_permission is the caller's (auth.uid()); a trigger judging a signed upload needs another user's.
-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind its exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing).
select pg_catalog.set_config('lock_timeout', '5s', true);

create function private.user_has_permission(org_id uuid, user_id uuid, permission text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.memberships m
    join public.role_permissions p on p.permission = user_has_permission.permission
    where m.org_id = user_has_permission.org_id
      and m.user_id = user_has_permission.user_id
      and m.role >= p.min_role
  );
$$;
revoke execute on function private.user_has_permission(uuid, uuid, text) from public;
comment on function private.user_has_permission(uuid, uuid, text) is
  'True when the user holds the permission of the matrix in the org (has_permission for a given user, not the caller).';

-- Latest definition: 20261123014500_probes_refused_alike.sql; only the service role's writes that name an owner
-- are new.
create or replace function private.refuse_deleted_org_objects()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  writer text := pg_catalog.current_setting('role', true);
  org uuid;
  signer text;
  signer_id uuid;
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
  -- A signed upload URL's PUT, which Storage writes as the service role on behalf of its signer: the signer's
  -- rights now, not when they signed. An owner that is no uuid names no member.
  signer := coalesce(new.owner_id, new.owner::text);
  signer_id := case when signer ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then signer::uuid end;
  if writer = 'service_role' and signer is not null and (
    new.bucket_id in (select private.narrowed_bucket_ids())
    or signer_id is null
    or not private.user_has_permission(org, signer_id, 'files.write')
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
  'role setting): anon''s writes and a user''s that the write policies refuse are refused as RLS refuses them (42501), '
  'and so is a service-role write naming an owner (a signed upload URL) unless that user holds files.write there now.';

-- ---------------------------------------------------------------------------
-- 2. A replaced file forgets the first file's checksum
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123011400_retry_safe_actions.sql; only clearing checksum_sha256 on a replacement is new.
create or replace function private.queue_uploaded_document()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued uuid;
  object_size numeric;
  new_size bigint;
  refusal text;
  replaced boolean := false;
begin
  if new.bucket_id <> 'knowledge' then
    return null;
  end if;
  if jsonb_typeof(new.metadata -> 'size') = 'number' then
    object_size := (new.metadata ->> 'size')::numeric;
  end if;
  -- Worded as the ingest function words them (functions/_shared/text).
  refusal := case
    when object_size < 1 then 'The file is empty.'
    when object_size > 26214400 then
      'The file is ' || pg_catalog.to_char(object_size / 1048576.0, 'FM999999999990.0') || ' MB; files of up to 25 MB can be indexed.'
  end;
  -- A refused file keeps its registered size: documents_size allows no other.
  if refusal is null then
    new_size := object_size;
  end if;
  -- An upsert over a stored file (a row that had metadata): the declared checksum described the file replaced.
  if tg_op = 'UPDATE' then
    replaced := old.metadata is not null;
  end if;
  -- A document being deleted takes no ingestion (20261123004900): its file uploaded again leaves it as it is.
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_run = null, ingest_attempts = 0,
      size_bytes = coalesce(new_size, d.size_bytes), retried_at = null, last_failure_reason = null,
      checksum_sha256 = case when replaced then null else d.checksum_sha256 end
  where d.storage_path = new.name and d.status in ('uploading', 'queued', 'processing', 'ready', 'failed')
    and d.deletion_started_at is null
  returning d.id into queued;
  if queued is null then
    return null;
  end if;
  -- Through fail_ingest, so a refused upload ends as any failed run does (earlier chunks gone, document.failed).
  if refusal is not null then
    perform private.fail_ingest(queued, null, refusal);
  else
    perform private.request_ingest(queued);
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. Avatars read by their user and co-members
-- ---------------------------------------------------------------------------

-- The users whose avatars the caller reads: themselves and whoever shares an org with them. Computed once per
-- statement and hashed (`in (select ...)`; `= any (array(...))` compares each object with every co-member: 3 s a
-- list for a user with 50,000): a list's prefix filter is a `like`, which RLS evaluates after the policy, so a
-- per-object check ran for every avatar of every tenant (20,000 objects: about 730 ms a list).
create function private.avatar_reader_user_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select auth.uid() where auth.uid() is not null
  union
  select theirs.user_id
  from public.memberships mine
  join public.memberships theirs on theirs.org_id = mine.org_id
  where mine.user_id = auth.uid();
$$;
revoke execute on function private.avatar_reader_user_ids() from public;
grant execute on function private.avatar_reader_user_ids() to authenticated;
comment on function private.avatar_reader_user_ids() is
  'For the avatars read policy: the caller and the users who share an org with the caller.';

drop policy "signed-in users can read avatars" on storage.objects;
create policy "users read their own and their co-members' avatars"
  on storage.objects for select to authenticated
  using (bucket_id = 'avatars' and private.object_org_id(name) in (select private.avatar_reader_user_ids()));
