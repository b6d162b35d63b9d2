-- Servers follow and retry their pushed documents with an API key: GET
-- /functions/v1/knowledge/documents[/:id] (knowledge.read) reads public.documents
-- as the service role, naming the key's org itself, and POST
-- /functions/v1/knowledge/documents/:id/retry (knowledge.write) runs
-- retry_document as the service role acting for the key. retry_document
-- required a user (private.readable_org_ids, private.require_permission), so
-- the service role found no document, and it could not execute it at all.
-- The knowledge function finds the document in the key's org first. A
-- document being deleted is no longer retried for anyone (it was queued and
-- then left waiting, as no ingestion takes it).

-- Latest definition: 20261123001300_knowledge_reupload.sql; only the checks
-- change: the service role finds any document and passes the permission
-- check, held to its key's org; a document being deleted is refused.
create or replace function private.retry_document(document_id uuid)
returns public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.documents;
  service boolean := auth.role() is not distinct from 'service_role';
begin
  select * into target from public.documents d where d.id = retry_document.document_id for update;
  if not found or not (service or target.org_id = any (array(select private.readable_org_ids('knowledge.read')))) then
    raise exception 'document not found' using errcode = 'no_data_found';
  end if;
  -- The service role retries for an API key with knowledge.write, after the
  -- knowledge function has found the document in the key's org; users need
  -- the permission.
  if not service then
    perform private.require_permission(target.org_id, 'knowledge.write');
  else
    perform private.require_acting_key_org(target.org_id);
  end if;
  -- A document being deleted takes no ingestion (20261123004900): queued, it would stay queued.
  if target.deletion_started_at is not null then
    raise exception 'the document is being deleted' using errcode = 'invalid_parameter_value';
  end if;
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

comment on function public.retry_document(uuid) is 'Queues a failed (or ready) document for ingestion again. Users with knowledge.write, or the service role for an API key with knowledge.write (POST /functions/v1/knowledge/documents/:id/retry, failed documents only).';

grant execute on function
  public.retry_document(uuid),
  private.retry_document(uuid)
to service_role;
