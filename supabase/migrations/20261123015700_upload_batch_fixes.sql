-- Upload batches: answers in the order of files, progress that reaches 100 only when done and never goes back,
-- the batch's own quota message, and a deadlock between deleting a collection and publishing a document of it
-- (found by review).
--
-- 1. create_upload_batch answered its documents by (created_at, name): created_at is the transaction's, so by
--    name. A frontend pairing the i-th answer with the i-th file uploaded zeta.pdf's bytes to Alpha.txt's path;
--    names come back trimmed and two files may share one, so the answer could not be matched by name either. It
--    now answers in the order of files.
--
-- 2. Deleting a collection while a document of it finished ingestion deadlocked (40P01; on a multi-session
--    Postgres 15, a reviewer's model: PGlite runs one session). The last ingestion step locks the document
--    (`for update`, functions/ingest/queries.ts), then finish_ingest inserts the chunks with the document's
--    collection_id, whose foreign key check (document_chunks_collection_fk) key-share locks the collection row;
--    the delete locks the collection row first, then its `on delete set null (collection_id)` on documents waits
--    for the document. The last step now key-shares the document's collection before it locks the document
--    (private.share_document_collection): a delete under way completes first, and finish_ingest reads
--    collection_id null; a delete that comes later waits for the publish, then sets the chunks' collection null
--    too. Lock order (README "Lock order"): collection (key share) -> document row -> chunk lock 8600 -> chunk
--    rows -> chain head; create_upload_batch key-shares its collection before the subscription and the org row
--    (5).
--    Checked and left as they are: retry_document (locks the document and updates its status, not its
--    collection: no foreign key check), begin_document_deletion and the document's delete (deleting chunks or
--    a document locks no collection), fail_ingest (writes no chunk collection), and align_chunk_collection (a
--    move: the document's own foreign key check key-shares the new collection right after the document row,
--    and a delete of that collection does not wait on the moved row, whose committed version names the old
--    one, so the move fails with 23503 rather than deadlocking; a delete of the old collection waits for the
--    moved document, and the move takes no lock on the old collection).
--
-- 3. upload_batch_progress.percent was the rounded average, so 99 ready files and one at 59% read 100 while
--    that file was still processing. It is now at most 99 while a file is uploading, queued or processing.
--
-- 4. Deleted documents dropped out of the average, so a batch's percent went back when a finished file was
--    deleted (2 ready + 2 queued = 50%, one ready deleted: 33%). upload_batches.file_count records the batch's
--    files at creation, and percent is (the live files' progress, ready and failed as 100, + 100 per deleted
--    file) / file_count; the view's new last column `deleted` counts them. A batch with file_count 0 (created
--    before this migration, or written another way) averages its live files, as before: no backfill, which
--    updated every batch under the table's exclusive lock (2-4 s at 200,000 batches) while dashboard reads
--    queued behind it.
--
-- 5. A batch over the plan's documents was refused by the per-row check with a message counting the batch's
--    earlier rows as the org's ("the Free plan includes 50 documents and this organization has 50" for an org with
--    none and a batch of 60). create_upload_batch now compares the org's documents plus the batch's files with
--    the plan's max_documents once, after locking the subscription, and raises PT402 "quota exceeded: this
--    batch has 60 files; the Free plan allows 50 more documents" (hint: upload fewer files, delete documents or
--    upgrade). The per-row check (documents_require_quota) stays as the guard for every other path.
--    It also key-shares the target collection before it locks the subscription: an org's deletion
--    (20261123015800) locks the collections, then the documents, then the org row, and an upload that held the
--    subscription and the org row's key share (the batch's foreign key) and then key-shared the collection (the
--    documents' foreign key) deadlocked with it. Now an upload waits for a deletion holding the collection while
--    it holds nothing, then finds the collection gone (the existing check's "collection not found").
--
-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind its exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing). The
-- view is locked before the table, in the order its readers take them: a dashboard read holding the view and
-- waiting for upload_batches deadlocked with the alter table below, which then replaced the view. In a DO block:
-- db push refuses a top-level LOCK TABLE (25P01); the lock lasts to the file's end either way.

select pg_catalog.set_config('lock_timeout', '5s', true);

do $$
begin
  lock table public.upload_batch_progress in access exclusive mode;
end
$$;

-- ---------------------------------------------------------------------------
-- 1, 4, 5. create_upload_batch
-- ---------------------------------------------------------------------------

alter table public.upload_batches
  add column file_count integer not null default 0
    constraint upload_batches_file_count check (file_count >= 0);
comment on column public.upload_batches.file_count is 'The files registered with the batch (create_upload_batch); deleted documents still count, as done (upload_batch_progress). 0: created before 20261123015700 or written another way; such a batch averages its live files.';

-- Latest definition: 20261123008600_lock_order_and_claims.sql; only the collection's key share, the batch's quota
-- check, file_count and the answer's order are new.
create or replace function private.create_upload_batch(org_id uuid, files jsonb, project_id uuid, collection_id uuid)
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
  shown_name text;
  control_char text;
  file_total integer;
  documents_usage record;
  plan_name text;
  document_ids uuid[] := '{}';
begin
  -- The service role registers for an API key with knowledge.write, whose
  -- org the knowledge function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_upload_batch.org_id, 'knowledge.write');
  else
    perform private.require_acting_key_org(create_upload_batch.org_id);
  end if;
  if jsonb_typeof(files) is distinct from 'array' or jsonb_array_length(files) not between 1 and 100 then
    raise exception 'files must be a list of 1 to 100 files' using errcode = 'invalid_parameter_value';
  end if;
  if project_id is not null and not exists (
    select 1 from public.projects p where p.id = create_upload_batch.project_id and p.org_id = create_upload_batch.org_id
  ) then
    raise exception 'project not found in this organization' using errcode = 'invalid_parameter_value';
  end if;
  -- Key share, before the subscription (README "Lock order"): the documents' foreign key takes it anyway, and
  -- taken after the subscription and the org row's key share it deadlocked with an org's deletion, which locks
  -- the collection first. A deletion under way completes first, and the collection is then not found.
  if collection_id is not null then
    perform 1 from public.collections c
    where c.id = create_upload_batch.collection_id and c.org_id = create_upload_batch.org_id
    for key share;
    if not found then
      raise exception 'collection not found in this organization' using errcode = 'invalid_parameter_value';
    end if;
  end if;

  -- The org row's key share, which the batch's foreign key takes anyway, before the subscription (README "Lock
  -- order": org row, then subscription): taken after it, an upload holding the subscription waited for the org
  -- row that an org's deletion held while its cascade waited for the subscription.
  perform 1 from public.organizations o where o.id = create_upload_batch.org_id for key share;

  -- The lock the documents' quota trigger takes (private.require_document_quota), taken before the audited
  -- insert of the batch takes the org's audit chain head, as change_plan and roll_subscriptions take them.
  perform 1 from public.subscriptions s
  where s.org_id = create_upload_batch.org_id and s.status = 'active'
  for update;

  -- The whole batch against the plan, once, under that lock: the documents' per-row check stays as the guard,
  -- but its message counts the batch's earlier rows as the org's (a batch of 60 in an empty org on Free read
  -- "includes 50 documents and this organization has 50").
  file_total := jsonb_array_length(files);
  select * into documents_usage from private.plan_usage(create_upload_batch.org_id) u where u.metric = 'documents';
  if documents_usage.used + file_total > documents_usage.included then
    select p.name into plan_name
    from private.chat_quota(create_upload_batch.org_id) q join public.plans p on p.id = q.plan_id;
    raise exception 'quota exceeded: this batch has % %; the % plan allows % more %',
      file_total, case file_total when 1 then 'file' else 'files' end, plan_name,
      greatest(documents_usage.included - documents_usage.used, 0),
      case greatest(documents_usage.included - documents_usage.used, 0) when 1 then 'document' else 'documents' end
      using errcode = 'PT402', hint = 'Upload fewer files, delete documents or upgrade the plan (change_plan).';
  end if;

  insert into public.upload_batches (org_id, project_id, collection_id, created_by, file_count)
  values (create_upload_batch.org_id, create_upload_batch.project_id, create_upload_batch.collection_id, auth.uid(),
    file_total)
  returning id into new_batch_id;

  for file in select value from jsonb_array_elements(files) loop
    file_name := btrim(file ->> 'name');
    -- Shown escaped (JSON, plus \u escapes for the ones JSON leaves raw): the
    -- characters themselves would garble the message and the logs.
    if file_name ~ '[\u0001-\u001f\u007f-\u009f\u2028\u2029]' then
      shown_name := to_json(file ->> 'name')::text;
      for control_char in
        select distinct m[1] from regexp_matches(shown_name, '([\u007f-\u009f\u2028\u2029])', 'g') m
      loop
        shown_name := replace(shown_name, control_char, '\u' || lpad(to_hex(ascii(control_char)), 4, '0'));
      end loop;
      raise exception 'invalid file name: % (control characters are not allowed)', shown_name
        using errcode = 'invalid_parameter_value',
              hint = '1 to 255 characters, not only spaces, no slashes or control characters, not "." or "..".';
    end if;
    -- Blank also counts the spaces btrim leaves (no-break, ideographic and the like).
    if jsonb_typeof(file -> 'name') is distinct from 'string'
      or length(file_name) not between 1 and 255
      or file_name ~ '[/\\]'
      or file_name in ('.', '..')
      or file_name ~ '^[[:space:]\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]*$' then
      raise exception 'invalid file name: %', coalesce(file ->> 'name', 'null')
        using errcode = 'invalid_parameter_value',
              hint = '1 to 255 characters, not only spaces, no slashes or control characters, not "." or "..".';
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
      create_upload_batch.org_id::text || '/' || document_id::text || '/' || private.knowledge_object_name(file_name),
      auth.uid()
    );
    document_ids := document_ids || document_id;
  end loop;

  -- In the order of files: a frontend pairs the i-th answer with the i-th file it uploads (names come back
  -- trimmed, and two files may share one).
  return query
  select d.* from unnest(document_ids) with ordinality u (id, n) join public.documents d on d.id = u.id
  order by u.n;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3, 4. upload_batch_progress
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123007900_knowledge_deletion_and_paths.sql; only percent (deleted files as done, 99 at
-- most until every file is finished) and the last column, deleted, are new.
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
  -- Finished files count as 100%, failed ones too: the batch is done with them, and with deleted ones (the files
  -- it was created with, file_count, that are gone). Rounding never shows 100 while a file is not finished.
  case
    when greatest(b.file_count, count(d.id)) = 0 then 100
    when count(d.id) filter (where d.status in ('uploading', 'queued', 'processing')) > 0 then
      least(99, round(
        (coalesce(sum(case when d.status in ('ready', 'failed') then 100 else d.progress end), 0)
          + 100 * greatest(b.file_count - count(d.id), 0))::numeric
        / greatest(b.file_count, count(d.id))))::integer
    else 100
  end as percent,
  greatest(b.file_count - count(d.id), 0)::integer as deleted
from public.upload_batches b
left join public.documents d on d.batch_id = b.id
group by b.id, b.org_id;

-- ---------------------------------------------------------------------------
-- 2. The last ingestion step key-shares the collection before the document
-- ---------------------------------------------------------------------------

create function private.share_document_collection(document_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Before the caller locks the document: a collection delete under way (it holds the collection row, then
  -- waits for the document in its on delete set null) completes first, and this finds no row.
  perform 1
  from public.collections c
  join public.documents d on d.collection_id = c.id and d.org_id = c.org_id
  where d.id = share_document_collection.document_id
  for key share of c;
end;
$$;
comment on function private.share_document_collection(uuid) is 'Key-share locks the document''s collection, without locking the document: the last ingestion step takes it before the document row (README "Lock order"), since publishing the chunks key-shares the collection.';
revoke execute on function private.share_document_collection(uuid) from public;
grant execute on function private.share_document_collection(uuid) to service_role;
