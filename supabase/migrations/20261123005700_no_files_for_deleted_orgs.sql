-- No file can be stored for a deleted organization.
--
-- Deleting an org removes its rows, then its files: the account function (or
-- the scheduled storage cleanup) lists the objects under `<org_id>/` in every
-- org bucket (private.org_storage_objects), removes them through the Storage
-- API and records that none is left (private.finish_org_storage_removal sets
-- deleted_organizations.storage_removed_at). A job already running when the
-- org was deleted (an export step or its packaging, an invoice PDF render)
-- could upload after that listing: the object was never listed again, and a
-- deleted org's personal data stayed in Storage for good.
--
-- Now Storage itself refuses it. Every object the Storage API writes is a row
-- of storage.objects, inserted in the upload's own transaction (an upsert
-- too; a move updates bucket_id and name). A trigger on it, for objects named
-- `<org_id>/...` in an org bucket, takes the lock a foreign key to the org
-- would take (for key share) and refuses the row (23503, as that foreign key
-- would) when the org is gone and recorded in private.deleted_organizations.
-- Whatever the interleaving, one of two things happens:
--   * the upload locked the org row first: the org's deletion waits for the
--     upload to commit, and the removal, which lists after the deletion
--     commits, sees the object and removes it;
--   * the deletion came first (committed, or still running: the lock waits
--     for it and then finds no row): the upload is refused, no row is
--     written, and the jobs treat the refusal as "the org is gone".
-- So no object of a deleted org is written after its listing, and once
-- storage_removed_at is set it stays true.
--
-- Why this rather than the jobs checking the org after uploading and removing
-- what they wrote, plus a sweeper for a job that crashes in between: the
-- check and the write are one transaction here, so there is no window to
-- sweep, and every writer (both jobs, any future one, a user's upload racing
-- the deletion past its policy check) is covered by one rule instead of one
-- per call site. Objects under a prefix that names no org and no deleted org
-- (never an org) are left alone, as before.

create function private.refuse_deleted_org_objects()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org uuid := private.object_org_id(new.name);
begin
  if org is null or not exists (select 1 from private.org_buckets b where b.bucket_id = new.bucket_id) then
    return new;
  end if;
  -- Held until the upload commits: a deletion of the org waits for it, so its removal lists this object.
  perform 1 from public.organizations o where o.id = org for key share;
  if not found and exists (select 1 from private.deleted_organizations d where d.org_id = org) then
    raise exception 'organization % was deleted; nothing can be stored under its prefix', org
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end;
$$;
comment on function private.refuse_deleted_org_objects() is
  'Trigger on storage.objects: an object named <org_id>/... in an org bucket locks its org (for key share) '
  'and is refused (23503) once the org is deleted, so no file outlives its org''s storage removal.';

create trigger org_objects_need_their_org
  before insert or update of bucket_id, name on storage.objects
  for each row execute function private.refuse_deleted_org_objects();
