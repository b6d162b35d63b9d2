-- A document's chunks and its upload batch are in the document's org.
--
-- document_chunks pointed at documents, and documents at upload_batches, by
-- id alone (20261123003400 made the project and collection links
-- org-scoped, not these two), so a write around the platform's functions
-- (the service role, a fix by hand) could give an org's partition chunks of
-- another org's document, which that org's searches would then cite, or
-- count one org's document in another org's batch progress. Both keys now
-- hold org_id too.
--
-- Holding org_id, the chunks' key also deletes a document's chunks in its
-- org's partition only: the single-column key's cascade looked the
-- document up in every org's partition.
--
-- As in 20261123003400, rows no reader could have used are cleared before
-- the keys are checked, and the new keys are added before the old ones are
-- dropped (adding takes SHARE ROW EXCLUSIVE, dropping ACCESS EXCLUSIVE).

alter table public.documents add constraint documents_id_org_id_key unique (id, org_id);
alter table public.upload_batches add constraint upload_batches_id_org_id_key unique (id, org_id);

update public.documents d set batch_id = null
where d.batch_id is not null
  and not exists (select 1 from public.upload_batches b where b.id = d.batch_id and b.org_id = d.org_id);
delete from public.document_chunks k
where not exists (select 1 from public.documents d where d.id = k.document_id and d.org_id = k.org_id);

alter table public.documents
  add constraint documents_batch_fk foreign key (batch_id, org_id)
    references public.upload_batches (id, org_id) on delete set null (batch_id);
alter table public.document_chunks
  add constraint document_chunks_document_fk foreign key (document_id, org_id)
    references public.documents (id, org_id) on delete cascade;

alter table public.documents drop constraint documents_batch_id_fkey;
-- Its name ends in 1: the unpartitioned table of 20261123001000 still held
-- document_chunks_document_id_fkey when the partitioned one was created.
alter table public.document_chunks drop constraint document_chunks_document_id_fkey1;
