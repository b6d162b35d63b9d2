-- A knowledge file goes with its document, not on its own.
--
-- Admins and up may delete their org's files in any org bucket (files.delete,
-- 20261123000600). In the knowledge bucket that let an admin remove a
-- document's file through the Storage API while the document stayed ready,
-- its chunks still searchable and still cited, with no file behind them and
-- nothing to re-ingest. Deleting the document (DELETE
-- /functions/v1/knowledge/documents/<id>, admins and up) removes the file,
-- as the service role, and then the row with its chunks; users may now delete
-- only knowledge objects that no document points at (a stray upload).

create policy "knowledge files are deleted with their documents"
  on storage.objects as restrictive for delete to authenticated
  using (
    bucket_id <> 'knowledge'
    or not exists (select 1 from public.documents d where d.storage_path = objects.name)
  );
