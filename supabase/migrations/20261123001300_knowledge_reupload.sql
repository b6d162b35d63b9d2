-- Two corrections to the knowledge base (20261123000900).
--
-- 1. A file uploaded again while its document is still queued or being
--    ingested used to be ignored: the run in progress went on, reading the
--    new bytes for the pages it had not reached yet, and could end `ready`
--    with chunks of two versions of the file. Now any upload of a registered
--    file starts a fresh run: clearing ingest_run makes every step of the old
--    run stale (save_ingest_step and finish_ingest check the run), and the
--    new file gets a fresh budget of attempts.
-- 2. retry_document told a caller outside the document's org "permission
--    denied" (42501) for a document that exists and "not found" (P0002) for
--    one that does not; a document the caller cannot read is now simply not
--    found. Readers without knowledge.write still get 42501.

create or replace function private.queue_uploaded_document()
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
  set status = 'queued', progress = 0, failure_reason = null, ingest_run = null, ingest_attempts = 0,
      size_bytes = coalesce((new.metadata ->> 'size')::bigint, d.size_bytes)
  where d.storage_path = new.name and d.status in ('uploading', 'queued', 'processing', 'ready', 'failed')
  returning d.id into queued;
  if queued is not null then
    perform private.request_ingest(queued);
  end if;
  return null;
end;
$$;

create or replace function private.retry_document(document_id uuid)
returns public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.documents;
begin
  select * into target from public.documents d where d.id = retry_document.document_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('knowledge.read')))) then
    raise exception 'document not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'knowledge.write');
  if target.status not in ('failed', 'ready') then
    raise exception 'only a failed or ready document can be ingested again (it is %)', target.status
      using errcode = 'invalid_parameter_value';
  end if;
  update public.documents d set status = 'queued', progress = 0, failure_reason = null, ingest_attempts = 0
  where d.id = target.id
  returning * into target;
  perform private.request_ingest(target.id);
  return target;
end;
$$;
