-- Two knowledge-file corrections.
--
-- 1. A document's file could still be removed through Storage, by moving it
-- first. 20261123003600 lets users delete only knowledge objects no document
-- points at, but members may rename any of their org's objects (the update
-- policy of 20261123000600), and hosted Storage's move is an UPDATE of
-- bucket_id and name. Moving `<org>/<doc>/manual.pdf` to `<org>/x.pdf` made
-- it a stray file anyone with files.delete could delete, and left the
-- document ready, its chunks searchable and cited, with no file behind them.
-- A document's file now stays where its document says it is: a trigger
-- refuses any change of its bucket or name, for every role (nothing in this
-- project moves a document's file; a document is deleted with its file, and
-- its path never changes). It refuses with 42501, which the Storage API
-- answers 403 (hosted and local alike): the move is not allowed, whoever asks.
-- 23503, as a foreign key from documents.storage_path would raise, is what
-- hosted Storage answers 404 "the parent resource is not found", which would
-- tell a client the file is missing when it is not. Only a real change is
-- refused: an upsert, which hosted Storage writes as an insert whose conflict
-- updates every column it inserted (bucket_id and name among them, to the
-- same values), and a change of metadata, go through as before.
--
-- Beyond knowledge: in any org bucket a move takes the file away from its
-- path as a delete does, yet the update policy lets members (files.write)
-- do it, while deleting needs files.delete (admins). A user's move or
-- rename of an org file now needs files.delete in the org the file was in
-- (42501 otherwise); the service role is not held to it, and uploading
-- again or changing metadata still needs files.write only.
--
-- 2. Uploading a document's file again while the document was being deleted
-- (deletion_started_at set, file not yet removed, 20261123004900) queued it:
-- queue_uploaded_document matched the document by its path and status only.
-- An ingestion then never took it (every step refuses a marked document), so
-- it sat `queued` until the deletion finished. A marked document is now left
-- as it is.

create function private.keep_document_files_in_place()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.documents d where d.storage_path = old.name) then
    raise exception 'the file % belongs to a document; delete the document instead of moving its file', old.name
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
comment on function private.keep_document_files_in_place() is
  'Trigger on storage.objects: a knowledge object a document points at (documents.storage_path) cannot be moved or '
  'renamed (42501), so it cannot be made a stray file and deleted behind its document''s back.';

create trigger knowledge_document_files_stay
  before update of bucket_id, name on storage.objects
  for each row
  when (old.bucket_id = 'knowledge' and (new.bucket_id is distinct from old.bucket_id or new.name is distinct from old.name))
  execute function private.keep_document_files_in_place();

create function private.moves_need_files_delete()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if auth.role() = 'authenticated'
    and old.bucket_id in (select private.org_bucket_ids())
    and not coalesce(private.object_org_id(old.name) = any (array(select private.org_ids_with_permission('files.delete'))), false)
  then
    raise exception 'moving or renaming % needs the files.delete permission', old.name
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
comment on function private.moves_need_files_delete() is
  'Trigger on storage.objects: a signed-in user moves or renames an org file only with files.delete in its org (42501), '
  'as a move takes the file away from its path as a delete does.';

create trigger org_file_moves_need_files_delete
  before update of bucket_id, name on storage.objects
  for each row
  when (new.bucket_id is distinct from old.bucket_id or new.name is distinct from old.name)
  execute function private.moves_need_files_delete();

-- Latest definition: 20261123003300_upload_names_and_empty_files.sql; only the
-- deletion check (d.deletion_started_at is null) is new.
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
  -- A document being deleted takes no ingestion (20261123004900): its file uploaded again leaves it as it is.
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_run = null, ingest_attempts = 0,
      size_bytes = coalesce(new_size, d.size_bytes)
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
