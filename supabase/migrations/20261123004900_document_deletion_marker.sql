-- Deleting a document no longer reports it as failed.
--
-- DELETE /functions/v1/knowledge/documents/<id> removes the file first and the
-- row after (a failure in between is repaired by deleting again; the other
-- order could leave a file nothing points to). An ingestion step running in
-- between found the file gone and failed the document: a document.failed
-- event, with "The file was not found in storage", went to the org's webhooks
-- for a document its admin had just deleted, and the upload channel showed it
-- failing before it disappeared.
--
-- The deletion is now recorded first (documents.deletion_started_at, set by
-- private.begin_document_deletion in the request's first transaction, after
-- its knowledge.delete check). From then on the document takes no ingestion:
-- no step starts or resumes a run, and a step already running can neither
-- finish nor fail it, so no document.ready or document.failed follows. The
-- row stays visible, marked, until its deletion completes; deleting again
-- finishes the job.

alter table public.documents add column deletion_started_at timestamptz;
comment on column public.documents.deletion_started_at is
  'When an admin started deleting the document (file first, then the row); from then on it takes no ingestion.';

create function private.begin_document_deletion(document_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  update public.documents d
  set deletion_started_at = now()
  where d.id = begin_document_deletion.document_id and d.deletion_started_at is null;
$$;
revoke execute on function private.begin_document_deletion(uuid) from public;
grant execute on function private.begin_document_deletion(uuid) to service_role;
comment on function private.begin_document_deletion(uuid) is
  'Marks a document as being deleted, once; the knowledge function calls it after checking knowledge.delete, before removing the file.';

-- Latest definition: 20261123000900_knowledge_base.sql; only the deletion check is new.
create or replace function private.begin_ingest_step(document_id uuid)
returns table (
  org_id uuid, storage_path text, mime_type text, name text, run_id uuid, cursor integer,
  next_chunk_index integer, status public.document_status
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d where d.id = begin_ingest_step.document_id for update;
  if not found then
    return;
  end if;
  -- No run: the step skips the document.
  if doc.deletion_started_at is not null then
    return query select doc.org_id, doc.storage_path, doc.mime_type, doc.name, null::uuid, doc.ingest_cursor, 0, doc.status;
    return;
  end if;
  if doc.status = 'queued' or (doc.status = 'processing' and doc.ingest_run is null) then
    -- A new run: whatever an earlier run staged is discarded.
    delete from private.document_chunk_staging s where s.document_id = doc.id;
    update public.documents d
    set status = 'processing', progress = 0, ingest_run = gen_random_uuid(), ingest_cursor = 0,
        ingest_attempts = d.ingest_attempts + 1, ingest_started_at = now()
    where d.id = doc.id
    returning * into doc;
  end if;
  return query
  select doc.org_id, doc.storage_path, doc.mime_type, doc.name, doc.ingest_run, doc.ingest_cursor,
    coalesce((select max(s.chunk_index) + 1 from private.document_chunk_staging s
              where s.document_id = doc.id and s.run_id = doc.ingest_run), 0),
    doc.status;
end;
$$;

-- Latest definition: 20261123000900_knowledge_base.sql; only the deletion check is new.
create or replace function private.finish_ingest(document_id uuid, run_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
  chunk_total integer;
begin
  select * into doc from public.documents d
  where d.id = finish_ingest.document_id and d.ingest_run = finish_ingest.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return null;
  end if;
  select count(*) into chunk_total from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id;
  if chunk_total = 0 then
    perform private.fail_ingest(doc.id, finish_ingest.run_id, 'The file contains no text to index (a scanned document needs OCR first).');
    return 0;
  end if;
  delete from public.document_chunks c where c.document_id = doc.id;
  insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select doc.org_id, doc.id, doc.collection_id, s.chunk_index, s.page_start, s.page_end, s.content, s.token_count, s.embedding
  from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id
  order by s.chunk_index;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  update public.documents d
  set status = 'ready', progress = 100, chunk_count = chunk_total, ingest_run = null, ingested_at = now()
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.ready', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'collection_id', doc.collection_id,
    'pages', coalesce(doc.page_count, 1), 'chunks', chunk_total));
  return chunk_total;
end;
$$;

-- Latest definition: 20261123000900_knowledge_base.sql; only the deletion check is new.
create or replace function private.fail_ingest(document_id uuid, run_id uuid, reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d
  where d.id = fail_ingest.document_id
    and (fail_ingest.run_id is null or d.ingest_run = fail_ingest.run_id)
    and d.status in ('queued', 'processing')
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  delete from public.document_chunks c where c.document_id = doc.id;
  update public.documents d
  set status = 'failed', failure_reason = left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000),
      progress = 0, chunk_count = 0, ingest_run = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'reason', left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000)));
  return true;
end;
$$;

-- Latest definition: 20261123003200_ingest_resume_stalled_runs.sql; only the deletion check is new:
-- a document whose deletion stopped half-way is not woken every minute.
create or replace function private.retry_stuck_ingestion()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- Wake-ups of one run without a step saved, or fresh runs of a queued document, before it fails.
  max_tries constant integer := 5;
  stuck record;
  woken integer := 0;
begin
  for stuck in
    select d.id, d.status, d.ingest_run, d.ingest_attempts, d.ingest_stalls from public.documents d
    where d.status in ('queued', 'processing') and d.updated_at < now() - interval '2 minutes'
      and d.deletion_started_at is null
    order by d.updated_at
    limit 100
    for update skip locked
  loop
    if stuck.status = 'processing' and stuck.ingest_run is not null then
      if stuck.ingest_stalls >= max_tries then
        perform private.fail_ingest(stuck.id, stuck.ingest_run, 'Ingestion kept failing; try again later.');
        continue;
      end if;
      -- The same run, from its cursor; touching the row also restarts the 2-minute clock.
      update public.documents d set ingest_stalls = d.ingest_stalls + 1 where d.id = stuck.id;
    elsif stuck.ingest_attempts >= max_tries then
      perform private.fail_ingest(stuck.id, null, 'Ingestion kept failing; try again later.');
      continue;
    else
      update public.documents d set status = 'queued', ingest_run = null where d.id = stuck.id;
    end if;
    perform private.request_ingest(stuck.id);
    woken := woken + 1;
  end loop;
  return woken;
end;
$$;
