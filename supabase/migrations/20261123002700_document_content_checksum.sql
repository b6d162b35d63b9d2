-- The bytes a document is ingested from: checked against the checksum it was
-- registered with, and recorded.
--
-- create_upload_batch has always taken an optional checksum_sha256 per file,
-- but nothing compared it with what was uploaded, and a file registered
-- without one had no checksum on record at all. Now the first step of every
-- ingestion run hashes the file it downloaded: a file whose SHA-256 differs
-- from the registered one fails with a reason (a truncated or wrong upload is
-- never indexed), and the hash of the bytes the run reads is kept in
-- documents.content_sha256 either way. A document going back to `queued` (an
-- upload, a retry, a stuck run restarted) has no content hash until its next
-- run has read the file, so the column never describes bytes that are gone.

alter table public.documents
  add column content_sha256 text constraint documents_content_sha256 check (content_sha256 ~ '^[0-9a-f]{64}$');
comment on column public.documents.content_sha256 is 'SHA-256 (lower-case hex) of the file as the current or last ingestion run read it; null until a run has read it. checksum_sha256 is what the uploader declared, if anything.';

create function private.forget_queued_document_content()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.content_sha256 := null;
  return new;
end;
$$;
revoke execute on function private.forget_queued_document_content() from public;

create trigger documents_forget_content_when_queued before update on public.documents
  for each row when (new.status = 'queued' and new.content_sha256 is not null)
  execute function private.forget_queued_document_content();

-- Called by the ingest function's first step of a run, after the download. A
-- run that is no longer current records nothing (false), as for the other
-- step functions.
create function private.record_ingested_content(document_id uuid, run_id uuid, content_sha256 text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if record_ingested_content.content_sha256 is null or record_ingested_content.content_sha256 !~ '^[0-9a-f]{64}$' then
    raise exception 'content_sha256 must be 64 lower-case hex characters' using errcode = 'invalid_parameter_value';
  end if;
  update public.documents d set content_sha256 = record_ingested_content.content_sha256
  where d.id = record_ingested_content.document_id and d.ingest_run = record_ingested_content.run_id
    and d.status = 'processing';
  return found;
end;
$$;
revoke execute on function private.record_ingested_content(uuid, uuid, text) from public;
grant execute on function private.record_ingested_content(uuid, uuid, text) to service_role;
comment on function private.record_ingested_content(uuid, uuid, text) is 'Records the SHA-256 of the file a current ingestion run read; false when the run is no longer current. Service role (the ingest function).';
