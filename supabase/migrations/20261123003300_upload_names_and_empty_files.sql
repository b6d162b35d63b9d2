-- Two upload corrections to the knowledge base (20261123000900, 20261123001300).
--
-- 1. create_upload_batch refused only slashes in a file name and stored the
--    raw name as the last part of storage_path. Many names could then never
--    be uploaded, and their document stayed `uploading` for ever (retry_document
--    takes failed or ready documents, the stuck sweeper queued or processing
--    ones): supabase-js puts the path into the URL as it is, so `#` and `?`
--    cut it short and `%` is read as an escape; hosted Storage refuses keys
--    outside ^(\w|/|!|-|\.|\*|'|\(|\)| |&|\$|@|=|;|:|\+|,|\?)*$ (any non-ASCII
--    letter, control characters); and a URL's "." and ".." segments are
--    resolved away before the request is sent. Now the document keeps the
--    name as given (any printable text) for display, names that are no
--    names at all (control characters, blank, "." or "..") are refused, and
--    storage_path ends in a safe form of the name that both Storage services
--    accept (private.knowledge_object_name). The path keeps its shape,
--    <org_id>/<document_id>/<file>, which the policies on storage.objects and
--    the upload trigger rely on. Documents already stuck behind such a name
--    are moved to the safe path and failed with a reason, so their batch
--    completes and uploading the file again (to the new path) works.
-- 2. An empty (0-byte) upload made the Storage insert fail with a 500: the
--    upload trigger copied the object's size into documents.size_bytes, whose
--    check (1 byte to 25 MB) refused 0, and the document stayed `uploading`
--    with no reason. An object over 25 MB (possible if the bucket limit is
--    ever raised) failed the same way. The upload is now stored, and the
--    document fails with a reason (the ingest function's own wording), as
--    any failed ingestion does (private.fail_ingest: document.failed, the
--    broadcast); it keeps its registered size. Uploading the file again
--    queues it as usual.

-- A file name as the last part of a storage path: characters other than
-- ASCII letters and digits, '.', '_', ' ', '(', ')' and '-' become '_' (one
-- per run), the ends lose spaces, dots and underscores (no hidden, "." or
-- ".." name; no trailing dot or space, which some systems drop), the stem is
-- cut at 100 characters, and a name with nothing left is "file". An ASCII
-- extension of up to 10 letters and digits is kept apart first, so
-- "Прайс.pdf" becomes "file.pdf", not "pdf".
create function private.knowledge_object_name(name text)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  extension text := pg_catalog.substring(name, '[^.]\.([A-Za-z0-9]{1,10})$');
  stem text := name;
begin
  if extension is not null then
    stem := pg_catalog.left(name, -(pg_catalog.length(extension) + 1));
  end if;
  stem := pg_catalog.regexp_replace(stem, '[^A-Za-z0-9._ ()-]+', '_', 'g');
  stem := pg_catalog.regexp_replace(stem, '_{2,}', '_', 'g');
  stem := pg_catalog.regexp_replace(stem, '^[ ._]+|[ ._]+$', '', 'g');
  stem := pg_catalog.regexp_replace(pg_catalog.left(stem, 100), '[ ._]+$', '');
  if stem is null or stem = '' then
    stem := 'file';
  end if;
  return stem || coalesce('.' || extension, '');
end;
$$;
comment on function private.knowledge_object_name(text) is 'The safe last part of a knowledge storage_path for a display name: ASCII letters, digits and ._ ()- only, at most 111 characters, never empty, "." or "..".';
revoke execute on function private.knowledge_object_name(text) from public;

-- Latest definition: 20261123000900_knowledge_base.sql; only the name checks
-- and the storage_path change.
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
  end loop;

  return query select * from public.documents d where d.batch_id = new_batch_id order by d.created_at, d.name;
end;
$$;

comment on function public.create_upload_batch(uuid, jsonb, uuid, uuid) is 'Registers 1 to 100 files ([{name, mime_type, size_bytes, checksum_sha256?}]); upload each to the bucket "knowledge" at its storage_path (<org_id>/<document_id>/<a safe form of the name>; the document keeps the name as given).';

-- Latest definition: 20261123001300_knowledge_reupload.sql.
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
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_run = null, ingest_attempts = 0,
      size_bytes = coalesce(new_size, d.size_bytes)
  where d.storage_path = new.name and d.status in ('uploading', 'queued', 'processing', 'ready', 'failed')
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

-- Documents registered before this migration under a name no upload could
-- reach: still uploading, nothing stored at their path, and a last part that
-- hosted Storage refuses, that supabase-js cannot address ('?'), or that a
-- URL resolves away ("." and ".."). Rows of other shapes are left alone.
do $$
declare
  stuck record;
begin
  for stuck in
    select d.id, d.org_id, d.name from public.documents d
    where d.status = 'uploading'
      and pg_catalog.starts_with(d.storage_path, d.org_id::text || '/' || d.id::text || '/')
      and (pg_catalog.split_part(d.storage_path, '/', 3) ~ '[^A-Za-z0-9_!.*''() &$@=;:+,-]'
           or pg_catalog.split_part(d.storage_path, '/', 3) in ('.', '..'))
      and not exists (select 1 from storage.objects o where o.bucket_id = 'knowledge' and o.name = d.storage_path)
    order by d.created_at
    for update
  loop
    update public.documents d
    set storage_path = stuck.org_id::text || '/' || stuck.id::text || '/' || private.knowledge_object_name(stuck.name),
        status = 'queued'
    where d.id = stuck.id;
    perform private.fail_ingest(stuck.id, null, 'The file could not be uploaded under its name; upload it again.');
  end loop;
end;
$$;
