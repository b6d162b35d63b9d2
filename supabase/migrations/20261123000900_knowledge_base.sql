-- The knowledge base: files in a private Storage bucket under <org_id>/...,
-- grouped by upload batch, project and collection; one document per file with
-- its ingestion state, pushed live on the org's private `uploads` channel;
-- chunks with embeddings (pgvector, HNSW, cosine) and full text; token usage.
--
-- Ingestion (functions/ingest) is resumable: each invocation processes a
-- range of pages, appends its chunks to private.document_chunk_staging and
-- advances documents.ingest_cursor; the last one swaps the staged chunks into
-- public.document_chunks in one transaction, so readers see the old set or
-- the new one, never a mix. A failure discards the staging and keeps nothing
-- partial.

insert into public.role_permissions (permission, min_role, description) values
  ('knowledge.read',   'viewer', 'See documents, collections and projects; search the knowledge base'),
  ('knowledge.write',  'member', 'Upload documents, retry failed ones, manage collections and projects'),
  ('knowledge.delete', 'admin',  'Delete documents (their chunks and files)');

-- ---------------------------------------------------------------------------
-- The bucket
-- ---------------------------------------------------------------------------

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values (
  'knowledge', 'knowledge', false, 26214400,
  array[
    'application/pdf', 'text/plain', 'text/markdown', 'text/csv', 'application/json',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
  ]
);
insert into private.org_buckets (bucket_id) values ('knowledge');

-- What a knowledge file may be, checked before any byte is uploaded.
create function private.knowledge_mime_types()
returns text[]
language sql
immutable
security invoker
set search_path = ''
as $$
  select array[
    'application/pdf', 'text/plain', 'text/markdown', 'text/csv', 'application/json',
    'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
  ];
$$;

-- Used in a check constraint, so every role that writes documents runs it.
grant execute on function private.knowledge_mime_types() to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Projects, collections, batches
-- ---------------------------------------------------------------------------

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null constraint projects_name_length check (length(btrim(name)) between 1 and 100),
  description text not null default '' constraint projects_description_length check (length(description) <= 1000),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint projects_name_unique unique (org_id, name)
);
comment on table public.projects is 'Groups upload batches (e.g. "Spring catalogue import").';

create table public.collections (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null constraint collections_name_length check (length(btrim(name)) between 1 and 100),
  description text not null default '' constraint collections_description_length check (length(description) <= 1000),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint collections_name_unique unique (org_id, name)
);
comment on table public.collections is 'Groups documents; a bot answers from its collections.';

create table public.upload_batches (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  project_id uuid references public.projects (id) on delete set null,
  collection_id uuid references public.collections (id) on delete set null,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
comment on table public.upload_batches is 'Files uploaded together; progress is in public.upload_batch_progress.';

create index projects_org_id_idx on public.projects (org_id);
create index collections_org_id_idx on public.collections (org_id);
create index upload_batches_org_id_idx on public.upload_batches (org_id, created_at desc);
create index upload_batches_project_idx on public.upload_batches (project_id);
create index upload_batches_collection_idx on public.upload_batches (collection_id);

-- ---------------------------------------------------------------------------
-- Documents
-- ---------------------------------------------------------------------------

create type public.document_status as enum ('uploading', 'queued', 'processing', 'ready', 'failed');

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  batch_id uuid references public.upload_batches (id) on delete set null,
  project_id uuid references public.projects (id) on delete set null,
  collection_id uuid references public.collections (id) on delete set null,
  name text not null constraint documents_name_length check (length(name) between 1 and 255 and name !~ '[/\\]'),
  mime_type text not null constraint documents_mime_type check (mime_type = any (private.knowledge_mime_types())),
  size_bytes bigint not null constraint documents_size check (size_bytes between 1 and 26214400),
  checksum_sha256 text constraint documents_checksum check (checksum_sha256 ~ '^[0-9a-f]{64}$'),
  storage_path text not null unique,
  status public.document_status not null default 'uploading',
  progress smallint not null default 0 constraint documents_progress check (progress between 0 and 100),
  failure_reason text constraint documents_failure_reason check (length(failure_reason) <= 1000),
  page_count integer,
  chunk_count integer not null default 0,
  -- Resumable ingestion: the run in progress, and the next page it processes.
  ingest_run uuid,
  ingest_cursor integer not null default 0,
  ingest_attempts integer not null default 0,
  ingest_started_at timestamptz,
  ingested_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint documents_failed_has_reason check ((status = 'failed') = (failure_reason is not null))
);
comment on table public.documents is 'One uploaded file and its ingestion state. Status and progress are broadcast on org:<org_id>:uploads.';
create index documents_org_id_idx on public.documents (org_id, created_at desc);
create index documents_batch_idx on public.documents (batch_id);
create index documents_project_idx on public.documents (project_id);
create index documents_collection_idx on public.documents (collection_id);
create index documents_status_idx on public.documents (status) where status in ('queued', 'processing');

create view public.upload_batch_progress
with (security_invoker = true)
as
select
  b.id as batch_id,
  b.org_id,
  count(d.id)::integer as files,
  count(d.id) filter (where d.status = 'ready')::integer as ready,
  count(d.id) filter (where d.status = 'failed')::integer as failed,
  count(d.id) filter (where d.status in ('uploading', 'queued', 'processing'))::integer as in_progress,
  -- Finished files count as 100%, failed ones too: the batch is done with them.
  coalesce(round(avg(case when d.status in ('ready', 'failed') then 100 else d.progress end))::integer, 0) as percent
from public.upload_batches b
left join public.documents d on d.batch_id = b.id
group by b.id, b.org_id;
comment on view public.upload_batch_progress is 'Overall progress per upload batch (RLS of the underlying tables applies).';

-- ---------------------------------------------------------------------------
-- Chunks
-- ---------------------------------------------------------------------------

create table public.document_chunks (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  document_id uuid not null references public.documents (id) on delete cascade,
  -- Copied from the document, so retrieval filters without a join.
  collection_id uuid references public.collections (id) on delete set null,
  chunk_index integer not null,
  page_start integer not null,
  page_end integer not null,
  content text not null,
  token_count integer not null,
  embedding extensions.vector(1536) not null,
  fts tsvector generated always as (to_tsvector('simple', content)) stored,
  constraint document_chunks_position unique (document_id, chunk_index),
  constraint document_chunks_pages check (page_start between 1 and page_end)
);
comment on table public.document_chunks is 'Searchable chunks of ready documents: about 400 tokens each, 40 overlapping; replaced as a whole on re-ingestion.';
create index document_chunks_org_id_idx on public.document_chunks (org_id, collection_id);
create index document_chunks_embedding_idx on public.document_chunks using hnsw (embedding extensions.vector_cosine_ops);
create index document_chunks_fts_idx on public.document_chunks using gin (fts);

-- Chunks of the run in progress; never read by retrieval.
create table private.document_chunk_staging (
  run_id uuid not null,
  document_id uuid not null references public.documents (id) on delete cascade,
  chunk_index integer not null,
  page_start integer not null,
  page_end integer not null,
  content text not null,
  token_count integer not null,
  embedding extensions.vector(1536) not null,
  primary key (document_id, run_id, chunk_index)
);

-- ---------------------------------------------------------------------------
-- Usage metering (embeddings here; chat and speech use the same table)
-- ---------------------------------------------------------------------------

create table public.usage_events (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  kind text not null constraint usage_events_kind check (kind in ('embedding', 'chat', 'speech')),
  model text not null,
  tokens_in integer not null default 0 check (tokens_in >= 0),
  tokens_out integer not null default 0 check (tokens_out >= 0),
  document_id uuid references public.documents (id) on delete set null,
  api_key_id uuid references public.api_keys (id) on delete set null,
  created_at timestamptz not null default now()
);
comment on table public.usage_events is 'Tokens in and out per model call, per org. Written by functions through private.record_usage().';
create index usage_events_org_id_idx on public.usage_events (org_id, created_at desc);
create index usage_events_document_idx on public.usage_events (document_id);
create index usage_events_api_key_idx on public.usage_events (api_key_id);

create function private.record_usage(
  org_id uuid, kind text, model text, tokens_in integer, tokens_out integer,
  document_id uuid default null, api_key_id uuid default null
)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id)
  values (org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id);
$$;
revoke execute on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid) from public;
grant execute on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid) to service_role;

insert into public.role_permissions (permission, min_role, description) values
  ('usage.read', 'admin', 'See token usage');

-- ---------------------------------------------------------------------------
-- RLS, grants, audit, broadcasts
-- ---------------------------------------------------------------------------

alter table public.projects enable row level security;
alter table public.collections enable row level security;
alter table public.upload_batches enable row level security;
alter table public.documents enable row level security;
alter table public.document_chunks enable row level security;
alter table public.usage_events enable row level security;

revoke all on public.projects, public.collections, public.upload_batches, public.documents,
  public.document_chunks, public.usage_events, public.upload_batch_progress from anon, authenticated;
grant select on public.projects, public.collections, public.upload_batches, public.documents,
  public.document_chunks, public.usage_events, public.upload_batch_progress to authenticated;
grant insert (org_id, name, description), update (name, description), delete on public.projects, public.collections to authenticated;

create policy "viewers and up can read their org's projects"
  on public.projects for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));
create policy "members and up can create projects"
  on public.projects for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))));
create policy "members and up can rename projects"
  on public.projects for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))))
  with check (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))));
create policy "admins and up can delete projects"
  on public.projects for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('knowledge.delete'))));

create policy "viewers and up can read their org's collections"
  on public.collections for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));
create policy "members and up can create collections"
  on public.collections for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))));
create policy "members and up can rename collections"
  on public.collections for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))))
  with check (org_id = any (array(select private.org_ids_with_permission('knowledge.write'))));
create policy "admins and up can delete collections"
  on public.collections for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('knowledge.delete'))));

create policy "viewers and up can read their org's upload batches"
  on public.upload_batches for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));
create policy "viewers and up can read their org's documents"
  on public.documents for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));
create policy "viewers and up can read their org's chunks"
  on public.document_chunks for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));
create policy "admins and up can read their org's usage"
  on public.usage_events for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('usage.read'))));

create trigger projects_set_updated_at before update on public.projects
  for each row execute function private.set_updated_at();
create trigger collections_set_updated_at before update on public.collections
  for each row execute function private.set_updated_at();
create trigger documents_set_updated_at before update on public.documents
  for each row execute function private.set_updated_at();

create trigger projects_audit after insert or update or delete on public.projects
  for each row execute function private.audit_row_change();
create trigger collections_audit after insert or update or delete on public.collections
  for each row execute function private.audit_row_change();
create trigger upload_batches_audit after insert or update or delete on public.upload_batches
  for each row execute function private.audit_row_change();
-- Progress ticks are not changes anyone made: documents are audited when they
-- appear, are deleted, or change anything but their ingestion state.
create trigger documents_audit after insert or delete on public.documents
  for each row execute function private.audit_row_change();
create trigger documents_audit_update
  after update of org_id, batch_id, project_id, collection_id, name, mime_type, size_bytes, checksum_sha256, storage_path
  on public.documents
  for each row execute function private.audit_row_change();

insert into private.audit_exempt_tables (table_name, reason) values
  ('document_chunks', 'derived from a document by ingestion; the document itself is audited'),
  ('usage_events', 'append-only metering written by functions');

create trigger documents_broadcast
  after insert or update of status, progress, failure_reason, chunk_count or delete on public.documents
  for each row execute function private.broadcast_org_change('uploads');

-- ---------------------------------------------------------------------------
-- Uploading: register the files first (validated before any byte moves),
-- then upload each to its storage_path; the upload queues the ingestion.
-- ---------------------------------------------------------------------------

create function private.create_upload_batch(org_id uuid, files jsonb, project_id uuid, collection_id uuid)
returns setof public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_batch_id uuid;
  file jsonb;
  document_id uuid;
  file_name text;
begin
  perform private.require_permission(create_upload_batch.org_id, 'knowledge.write');
  if jsonb_typeof(files) is distinct from 'array' or jsonb_array_length(files) not between 1 and 100 then
    raise exception 'files must be a list of 1 to 100 files' using errcode = 'invalid_parameter_value';
  end if;
  if project_id is not null and not exists (
    select 1 from public.projects p where p.id = create_upload_batch.project_id and p.org_id = create_upload_batch.org_id
  ) then
    raise exception 'project not found in this organization' using errcode = 'invalid_parameter_value';
  end if;
  if collection_id is not null and not exists (
    select 1 from public.collections c where c.id = create_upload_batch.collection_id and c.org_id = create_upload_batch.org_id
  ) then
    raise exception 'collection not found in this organization' using errcode = 'invalid_parameter_value';
  end if;

  insert into public.upload_batches (org_id, project_id, collection_id, created_by)
  values (create_upload_batch.org_id, create_upload_batch.project_id, create_upload_batch.collection_id, auth.uid())
  returning id into new_batch_id;

  for file in select value from jsonb_array_elements(files) loop
    file_name := btrim(file ->> 'name');
    if file_name is null or length(file_name) not between 1 and 255 or file_name ~ '[/\\]' then
      raise exception 'invalid file name: %', coalesce(file ->> 'name', 'null')
        using errcode = 'invalid_parameter_value', hint = '1 to 255 characters, no slashes.';
    end if;
    if coalesce((file ->> 'mime_type') = any (private.knowledge_mime_types()), false) is false then
      raise exception '%: unsupported type %', file_name, coalesce(file ->> 'mime_type', 'null')
        using errcode = 'invalid_parameter_value', hint = 'PDF, TXT, Markdown, CSV, JSON or DOCX.';
    end if;
    if jsonb_typeof(file -> 'size_bytes') is distinct from 'number'
      or (file ->> 'size_bytes')::numeric not between 1 and 26214400
      or (file ->> 'size_bytes')::numeric % 1 <> 0 then
      raise exception '%: a file has 1 byte to 25 MB', file_name using errcode = 'invalid_parameter_value';
    end if;
    if file ? 'checksum_sha256' and (file ->> 'checksum_sha256') !~ '^[0-9a-f]{64}$' then
      raise exception '%: checksum_sha256 must be 64 lower-case hex characters', file_name using errcode = 'invalid_parameter_value';
    end if;
    document_id := gen_random_uuid();
    insert into public.documents (
      id, org_id, batch_id, project_id, collection_id, name, mime_type, size_bytes, checksum_sha256, storage_path, created_by
    ) values (
      document_id, create_upload_batch.org_id, new_batch_id, create_upload_batch.project_id, create_upload_batch.collection_id,
      file_name, file ->> 'mime_type', (file ->> 'size_bytes')::bigint, file ->> 'checksum_sha256',
      create_upload_batch.org_id::text || '/' || document_id::text || '/' || file_name, auth.uid()
    );
  end loop;

  return query select * from public.documents d where d.batch_id = new_batch_id order by d.created_at, d.name;
end;
$$;

create function public.create_upload_batch(org_id uuid, files jsonb, project_id uuid default null, collection_id uuid default null)
returns setof public.documents
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_upload_batch(create_upload_batch.org_id, create_upload_batch.files,
    create_upload_batch.project_id, create_upload_batch.collection_id);
$$;
comment on function public.create_upload_batch(uuid, jsonb, uuid, uuid) is 'Registers 1 to 100 files ([{name, mime_type, size_bytes, checksum_sha256?}]); upload each to the bucket "knowledge" at its storage_path.';

-- Wakes the ingest function for one document (a no-op without the Vault secrets).
create function private.request_ingest(document_id uuid)
returns void
language sql
security definer
set search_path = ''
as $$
  select private.invoke_edge_function('ingest', pg_catalog.jsonb_build_object('document_id', document_id), 30000);
$$;
revoke execute on function private.request_ingest(uuid) from public;
grant execute on function private.request_ingest(uuid) to service_role;

-- The upload of a registered file queues its ingestion.
create function private.queue_uploaded_document()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued uuid;
begin
  if new.bucket_id <> 'knowledge' then
    return null;
  end if;
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null,
      size_bytes = coalesce((new.metadata ->> 'size')::bigint, d.size_bytes)
  where d.storage_path = new.name and d.status in ('uploading', 'ready', 'failed')
  returning d.id into queued;
  if queued is not null then
    perform private.request_ingest(queued);
  end if;
  return null;
end;
$$;

create trigger knowledge_object_uploaded
  after insert or update of metadata on storage.objects
  for each row execute function private.queue_uploaded_document();

-- Retry of a failed file (or re-ingestion of a ready one).
create function private.retry_document(document_id uuid)
returns public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.documents;
begin
  select * into target from public.documents d where d.id = retry_document.document_id for update;
  if not found then
    raise exception 'document not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'knowledge.write');
  if target.status not in ('failed', 'ready') then
    raise exception 'only a failed or ready document can be ingested again (it is %)', target.status
      using errcode = 'invalid_parameter_value';
  end if;
  update public.documents d set status = 'queued', progress = 0, failure_reason = null
  where d.id = target.id
  returning * into target;
  perform private.request_ingest(target.id);
  return target;
end;
$$;

create function public.retry_document(document_id uuid)
returns public.documents
language sql
security invoker
set search_path = ''
as $$
  select * from private.retry_document(retry_document.document_id);
$$;
comment on function public.retry_document(uuid) is 'Queues a failed (or ready) document for ingestion again.';

grant execute on function
  public.create_upload_batch(uuid, jsonb, uuid, uuid),
  public.retry_document(uuid),
  private.create_upload_batch(uuid, jsonb, uuid, uuid),
  private.retry_document(uuid)
to authenticated;

-- ---------------------------------------------------------------------------
-- Ingestion steps (service_role: the ingest function)
-- ---------------------------------------------------------------------------

-- Starts a run, or resumes the one in progress; returns what the step needs.
create function private.begin_ingest_step(document_id uuid)
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

-- Records one step: its chunks (jsonb array of {chunk_index, page_start,
-- page_end, content, token_count, embedding}) and the new cursor/progress.
-- A step from a run that is no longer current changes nothing.
create function private.save_ingest_step(
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

-- The last step: swaps the staged chunks in, in one transaction.
create function private.finish_ingest(document_id uuid, run_id uuid)
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

-- Ends a run as failed. Nothing staged stays, and neither do the chunks of an
-- earlier run: they describe a file that has since been replaced or re-read,
-- and a failed document must not answer with them.
create function private.fail_ingest(document_id uuid, run_id uuid, reason text)
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

revoke execute on function
  private.begin_ingest_step(uuid),
  private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer),
  private.finish_ingest(uuid, uuid),
  private.fail_ingest(uuid, uuid, text)
from public;
grant execute on function
  private.begin_ingest_step(uuid),
  private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer),
  private.finish_ingest(uuid, uuid),
  private.fail_ingest(uuid, uuid, text)
to service_role;

-- ---------------------------------------------------------------------------
-- Retrieval: hybrid (vector + full text, reciprocal rank fusion), as the
-- caller (RLS applies), filtered by org and optionally collections.
--
-- Two vector paths, chosen by the size of the filtered set (measured by
-- npm run bench:rag on 100,000 chunks): up to 10,000 chunks an exact scan
-- through the org index is fast (under ~40 ms) and has perfect recall; above
-- that the HNSW index, with pgvector 0.8's iterative scans so the org filter
-- does not starve the result. The planner prices distances as nearly free
-- and never picks HNSW on its own, hence the forcing settings below.
-- ---------------------------------------------------------------------------

create function private.vector_candidates_hnsw(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer
)
returns table (id bigint, distance double precision)
language sql
stable
security invoker
set search_path = ''
set hnsw.iterative_scan = 'relaxed_order'
set hnsw.ef_search = 200
set enable_sort = off
set enable_seqscan = off
set enable_bitmapscan = off
as $$
  select c.id, c.embedding operator(extensions.<=>) query_embedding
  from public.document_chunks c
  where c.org_id = vector_candidates_hnsw.org_id
    and (collection_ids is null or c.collection_id = any (collection_ids))
  order by c.embedding operator(extensions.<=>) query_embedding
  limit candidates;
$$;
grant execute on function private.vector_candidates_hnsw(uuid, extensions.vector, uuid[], integer) to authenticated, service_role;

create function public.match_document_chunks(
  org_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10,
  collection_ids uuid[] default null
)
returns table (
  chunk_id bigint,
  document_id uuid,
  document_name text,
  collection_id uuid,
  page_start integer,
  page_end integer,
  content text,
  score double precision,
  vector_rank integer,
  text_rank integer
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  candidates integer := greatest(least(coalesce(match_count, 10), 50), 1) * 4;
  use_index boolean;
begin
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  select count(*) > 10000 into use_index from (
    select 1 from public.document_chunks c
    where c.org_id = match_document_chunks.org_id
      and (collection_ids is null or c.collection_id = any (collection_ids))
    limit 10001
  ) capped;
  return query
  with vector_matches as (
    select v.id, row_number() over (order by v.distance)::integer as rank
    from (
      select h.id, h.distance from private.vector_candidates_hnsw(match_document_chunks.org_id, query_embedding, collection_ids, candidates) h
      where use_index
      union all
      select e.id, e.distance from (
        select c.id, c.embedding operator(extensions.<=>) query_embedding as distance
        from public.document_chunks c
        where not use_index
          and c.org_id = match_document_chunks.org_id
          and (collection_ids is null or c.collection_id = any (collection_ids))
        order by c.embedding operator(extensions.<=>) query_embedding
        limit candidates
      ) e
    ) v
  ),
  text_matches as (
    select t.id, row_number() over (order by t.rank_value desc)::integer as rank
    from (
      select c.id, ts_rank_cd(c.fts, q) as rank_value
      from public.document_chunks c, websearch_to_tsquery('simple', coalesce(query_text, '')) q
      where query_text is not null and c.fts @@ q
        and c.org_id = match_document_chunks.org_id
        and (collection_ids is null or c.collection_id = any (collection_ids))
      order by rank_value desc
      limit candidates
    ) t
  ),
  fused as (
    select coalesce(v.id, t.id) as id, v.rank as v_rank, t.rank as t_rank,
      coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) as rrf
    from vector_matches v
    full join text_matches t on t.id = v.id
  )
  select c.id, c.document_id, d.name, c.collection_id, c.page_start, c.page_end, c.content,
    f.rrf::double precision, f.v_rank, f.t_rank
  from fused f
  join public.document_chunks c on c.id = f.id
  join public.documents d on d.id = c.document_id
  order by f.rrf desc, c.id
  limit match_count;
end;
$$;
comment on function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[]) is 'Hybrid retrieval (vector + full text, RRF) over the org''s chunks the caller may read; returns text, score, document and pages for citations.';
grant execute on function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[]) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Stuck runs: pg_net does not retry, so a step lost to a crash or a 503 would
-- leave its document processing for ever. Every minute, documents untouched
-- for 2 minutes are woken again; after 5 runs they fail with a reason.
-- ---------------------------------------------------------------------------

create function private.retry_stuck_ingestion()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  stuck record;
  woken integer := 0;
begin
  for stuck in
    select d.id, d.ingest_run, d.ingest_attempts from public.documents d
    where d.status in ('queued', 'processing') and d.updated_at < now() - interval '2 minutes'
    order by d.updated_at
    limit 100
    for update skip locked
  loop
    if stuck.ingest_attempts >= 5 then
      perform private.fail_ingest(stuck.id, null, 'Ingestion kept failing; try again later.');
    else
      -- A fresh run: touching the row also restarts the 2-minute clock.
      update public.documents d set status = 'queued', ingest_run = null where d.id = stuck.id;
      perform private.request_ingest(stuck.id);
      woken := woken + 1;
    end if;
  end loop;
  return woken;
end;
$$;

select cron.schedule('retry-stuck-ingestion', '* * * * *', 'select private.retry_stuck_ingestion()');
