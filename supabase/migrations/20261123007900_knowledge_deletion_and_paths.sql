-- Knowledge-base corrections from review.
--
-- 1. A document being deleted stayed searchable. begin_document_deletion only
-- set deletion_started_at, so match_document_chunks, its text half and
-- match_bot_chunks kept citing the document during the Storage removal, and
-- for good when that removal failed (the DELETE answers 503 and the document
-- stays marked, `ready`). The mark now takes the chunks and any staged chunks
-- away in the same transaction (chunk_count 0); the chunk term counts follow
-- through their statement triggers. Nothing puts them back: finish_ingest,
-- fail_ingest and begin_ingest_step refuse a marked document already
-- (20261123004900), and save_ingest_step now does too, so a step that was
-- embedding when the mark came stages nothing.
--
-- 2. A file uploaded after its document was deleted (or while it was being
-- deleted) was kept with no document: the bucket's insert policy checks only
-- the org prefix and queue_uploaded_document ignores a path no document
-- names. An object is now written into the knowledge bucket only at the
-- storage_path of a document not being deleted, for every role Storage writes
-- as, the service role included (42501, which Storage answers 403). Every
-- writer registers first: browsers after create_upload_batch, the API-key
-- upload after create_upload_batch, a re-upload over the document's own path.
-- Uploading again over the file of a document being deleted still goes
-- through (20261123007000): the deletion removes that object, whichever
-- version; only a new object at its path, which could land after the removal,
-- is refused.
--
-- 3. A batch whose files were all deleted read percent 0 for ever; with no
-- file left it is complete: 100.
--
-- 4. A knowledge object moved onto a document's storage_path was never queued
-- (the upload trigger fires on insert and on metadata changes), nor failed as
-- abandoned (there is an object at the path). A document's file arrives by
-- upload: a move onto a document's path is refused (42501) as a move away
-- from one is (20261123007000).
--
-- 5. The stuck-run sweeper woke a run whose step was still waiting on a slow
-- embeddings provider, and both copies metered their tokens before the save's
-- cursor check. The step now meters in the transaction that saves it (or, when
-- the save loses to another copy of the same step, not at: that copy metered
-- the same pages), and touches the run before each provider request
-- (private.ingest_heartbeat), so a run making progress does not look idle.

-- Latest definition: 20261123004900_document_deletion_marker.sql; only the removal of the chunks and staged
-- chunks (and chunk_count = 0) is new. Run on every call, not only the first: a document marked before this
-- migration keeps no chunks either once its deletion is retried.
create or replace function private.begin_document_deletion(document_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d where d.id = begin_document_deletion.document_id for update;
  if not found then
    return;
  end if;
  update public.documents d
  set deletion_started_at = coalesce(d.deletion_started_at, now()), chunk_count = 0
  where d.id = doc.id;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  delete from public.document_chunks c where c.org_id = doc.org_id and c.document_id = doc.id;
end;
$$;
comment on function private.begin_document_deletion(uuid) is
  'Marks a document as being deleted, once, and removes its chunks and staged chunks so no search returns it; '
  'the knowledge function calls it after checking knowledge.delete, before removing the file.';

-- Latest definition: 20261123000900_knowledge_base.sql; only the deletion check is new.
create or replace function private.save_ingest_step(
  document_id uuid, run_id uuid, chunks jsonb, next_cursor integer, progress integer, page_count integer
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.documents d
  where d.id = save_ingest_step.document_id and d.ingest_run = save_ingest_step.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select save_ingest_step.run_id, save_ingest_step.document_id, (c ->> 'chunk_index')::integer,
    (c ->> 'page_start')::integer, (c ->> 'page_end')::integer, c ->> 'content', (c ->> 'token_count')::integer,
    (c ->> 'embedding')::extensions.vector(1536)
  from jsonb_array_elements(coalesce(chunks, '[]')) c
  on conflict on constraint document_chunk_staging_pkey do update
    set page_start = excluded.page_start, page_end = excluded.page_end, content = excluded.content,
        token_count = excluded.token_count, embedding = excluded.embedding;
  update public.documents d
  set ingest_cursor = next_cursor, progress = least(greatest(save_ingest_step.progress, 0), 99),
      page_count = coalesce(save_ingest_step.page_count, d.page_count)
  where d.id = save_ingest_step.document_id;
  return true;
end;
$$;

-- The sweeper wakes a run idle for 2 minutes (documents.updated_at); a step waiting on the embeddings provider
-- (60 s a request, retried 4 times with backoff) is not idle. No broadcast or audit: neither fires on updated_at.
create function private.ingest_heartbeat(document_id uuid, run_id uuid)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with touched as (
    update public.documents d
    set updated_at = now()
    where d.id = ingest_heartbeat.document_id and d.ingest_run = ingest_heartbeat.run_id
      and d.status = 'processing' and d.deletion_started_at is null
    returning 1
  )
  select exists (select 1 from touched);
$$;
revoke execute on function private.ingest_heartbeat(uuid, uuid) from public;
grant execute on function private.ingest_heartbeat(uuid, uuid) to service_role;
comment on function private.ingest_heartbeat(uuid, uuid) is
  'Restarts the sweeper''s 2-minute idle clock of a current run; an ingestion step calls it before each embeddings '
  'request. False when the run is no longer current.';

-- Whether an object may be written at this path of the knowledge bucket: a document names it and is not being
-- deleted, or is being deleted and the object is there already (an upsert over the file its deletion removes
-- anyway). The lock waits out a removal in flight, so a file removed meanwhile is not stored again behind it.
create function private.knowledge_path_takes_file(path text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  marked boolean;
begin
  select d.deletion_started_at is not null into marked from public.documents d where d.storage_path = path;
  if not found then
    return false;
  end if;
  if not marked then
    return true;
  end if;
  perform 1 from storage.objects o where o.bucket_id = 'knowledge' and o.name = path for key share;
  return found;
end;
$$;
revoke execute on function private.knowledge_path_takes_file(text) from public;
grant execute on function private.knowledge_path_takes_file(text) to anon, authenticated, service_role;
comment on function private.knowledge_path_takes_file(text) is
  'Whether a knowledge object may be written at this path (see private.knowledge_uploads_need_their_document).';

-- Invoker, so current_user is the role the write runs as: every role Storage writes as (anon, authenticated,
-- service_role) is held to the rule; the database owner's own SQL (migrations, maintenance, test fixtures) may
-- place any object, as it could disable the trigger anyway. By name, not by superuser: on Supabase postgres is
-- no superuser, and service_role bypasses RLS.
create function private.knowledge_uploads_need_their_document()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if current_user::text not in ('anon', 'authenticated', 'service_role') then
    return new;
  end if;
  if not private.knowledge_path_takes_file(new.name) then
    raise exception 'no document takes the file %; register it with create_upload_batch first', new.name
      using errcode = 'insufficient_privilege',
        hint = 'A document that was deleted, or is being deleted, takes no new file.';
  end if;
  return new;
end;
$$;
comment on function private.knowledge_uploads_need_their_document() is
  'Trigger on storage.objects: an object is written into the knowledge bucket only at the storage_path of a '
  'document not being deleted (42501), so no file is kept that no document names.';

create trigger uploads_need_their_document
  before insert on storage.objects
  for each row
  when (new.bucket_id = 'knowledge')
  execute function private.knowledge_uploads_need_their_document();

-- Latest definition: 20261123007000_knowledge_file_moves_and_requeues.sql; only the check of the new name
-- (and the trigger's condition, which now takes moves into the bucket too) is new.
create or replace function private.keep_document_files_in_place()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.bucket_id = 'knowledge' and exists (select 1 from public.documents d where d.storage_path = old.name) then
    raise exception 'the file % belongs to a document; delete the document instead of moving its file', old.name
      using errcode = 'insufficient_privilege';
  end if;
  if new.bucket_id = 'knowledge' and exists (select 1 from public.documents d where d.storage_path = new.name) then
    raise exception 'the path % belongs to a document; upload its file there instead of moving one onto it', new.name
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end;
$$;
comment on function private.keep_document_files_in_place() is
  'Trigger on storage.objects: a knowledge object a document points at (documents.storage_path) cannot be moved or '
  'renamed, and no object can be moved onto such a path (42501): a document''s file arrives by upload, which queues it.';

drop trigger knowledge_document_files_stay on storage.objects;
create trigger knowledge_document_files_stay
  before update of bucket_id, name on storage.objects
  for each row
  when ((old.bucket_id = 'knowledge' or new.bucket_id = 'knowledge')
    and (new.bucket_id is distinct from old.bucket_id or new.name is distinct from old.name))
  execute function private.keep_document_files_in_place();

-- Latest definition: 20261123000900_knowledge_base.sql; only the percent of a batch with no file left (100) is new.
create or replace view public.upload_batch_progress
with (security_invoker = true)
as
select
  b.id as batch_id,
  b.org_id,
  count(d.id)::integer as files,
  count(d.id) filter (where d.status = 'ready')::integer as ready,
  count(d.id) filter (where d.status = 'failed')::integer as failed,
  count(d.id) filter (where d.status in ('uploading', 'queued', 'processing'))::integer as in_progress,
  -- Finished files count as 100%, failed ones too: the batch is done with them, and with deleted ones.
  coalesce(round(avg(case when d.status in ('ready', 'failed') then 100 else d.progress end))::integer, 100) as percent
from public.upload_batches b
left join public.documents d on d.batch_id = b.id
group by b.id, b.org_id;
