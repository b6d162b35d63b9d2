-- An upload that never arrives ends `failed` instead of `uploading` forever.
--
-- A document is registered `uploading` (create_upload_batch) and queued when
-- its file lands in Storage. A file that never lands (the browser closed
-- mid-batch, a network cut, an API upload whose Storage write and cleanup
-- both failed) left the document `uploading` for good: its batch never
-- finished, and it counted against the plan's documents with nothing to show.
-- Once a day has passed with no object at its path, the hourly job fails it
-- with a reason, emits document.failed and broadcasts the change as any
-- failure does; uploading the file again still queues it (the upload trigger
-- takes failed documents), and it can be deleted like any other.

create function private.fail_abandoned_uploads()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  reason constant text := 'The file never arrived (the upload stopped); upload it again.';
  abandoned record;
  failed integer := 0;
begin
  for abandoned in
    select d.id, d.org_id, d.name from public.documents d
    where d.status = 'uploading' and d.created_at < pg_catalog.now() - interval '24 hours'
      and d.deletion_started_at is null
      and not exists (select 1 from storage.objects o where o.bucket_id = 'knowledge' and o.name = d.storage_path)
    order by d.created_at
    limit 1000
    for update of d skip locked
  loop
    update public.documents d set status = 'failed', failure_reason = reason, progress = 0 where d.id = abandoned.id;
    perform private.emit_event(abandoned.org_id, 'document.failed', pg_catalog.jsonb_build_object(
      'document_id', abandoned.id, 'name', abandoned.name, 'reason', reason));
    failed := failed + 1;
  end loop;
  return failed;
end;
$$;
comment on function private.fail_abandoned_uploads() is 'Fails (document.failed) documents still uploading a day after they were registered with no object at their path; at most 1000 a run. Returns how many. pg_cron hourly.';
revoke execute on function private.fail_abandoned_uploads() from public;

select cron.schedule('fail-abandoned-uploads', '41 * * * *', 'select private.fail_abandoned_uploads()');
