-- A document's chunks and its upload batch are in the document's org
-- (20261123005100_document_links_within_org.sql): composite keys refuse a
-- chunk of another org's document and a batch of another org, whoever
-- writes them; deleting a document still removes its chunks, and deleting a
-- batch still clears just the documents' link.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

select tests.remember('owner_a', tests.create_user('owner-a@links.test'));
select tests.remember('owner_b', tests.create_user('owner-b@links.test'));
select tests.remember('org_a', tests.create_org('links-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('links-b', tests.fx('owner_b')));
select tests.remember('batch_a', gen_random_uuid());
select tests.remember('batch_b', gen_random_uuid());
select tests.remember('doc_a', gen_random_uuid());
select tests.remember('doc_b', gen_random_uuid());

insert into public.upload_batches (id, org_id) values (tests.fx('batch_a'), tests.fx('org_a')), (tests.fx('batch_b'), tests.fx('org_b'));
insert into public.documents (id, org_id, batch_id, name, mime_type, size_bytes, storage_path, status)
values
  (tests.fx('doc_a'), tests.fx('org_a'), tests.fx('batch_a'), 'a.txt', 'text/plain', 10, tests.fx('org_a') || '/a.txt', 'ready'),
  (tests.fx('doc_b'), tests.fx('org_b'), null, 'b.txt', 'text/plain', 10, tests.fx('org_b') || '/b.txt', 'ready');

create function pg_temp.chunk(org text, doc text)
returns void
language sql
as $$
  insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  values (tests.fx(org), tests.fx(doc), 0, 1, 1, 'text', 1, array_fill(0.1::real, array[1536])::extensions.vector)
$$;

select lives_ok($$select pg_temp.chunk('org_a', 'doc_a')$$, 'a chunk of its own org''s document is taken');
select throws_ok(
  $$select pg_temp.chunk('org_a', 'doc_b')$$,
  '23503', null,
  'a chunk in org A''s partition of org B''s document is refused, even as postgres'
);
select throws_ok(
  $$update public.documents set batch_id = tests.fx('batch_b') where id = tests.fx('doc_a')$$,
  '23503', null,
  'a document cannot join another org''s upload batch'
);
select throws_ok(
  $$insert into public.documents (org_id, batch_id, name, mime_type, size_bytes, storage_path)
    values (tests.fx('org_b'), tests.fx('batch_a'), 'x.txt', 'text/plain', 10, tests.fx('org_b') || '/x.txt')$$,
  '23503', null,
  'nor be registered in one'
);
select is(
  (select array_agg(pg_get_constraintdef(oid) order by conname)::text from pg_constraint
   where conname in ('documents_batch_fk', 'document_chunks_document_fk') and conrelid in ('public.documents'::regclass, 'public.document_chunks'::regclass)),
  array['FOREIGN KEY (document_id, org_id) REFERENCES documents(id, org_id) ON DELETE CASCADE',
        'FOREIGN KEY (batch_id, org_id) REFERENCES upload_batches(id, org_id) ON DELETE SET NULL (batch_id)']::text,
  'both keys hold org_id (and the single-column ones are gone)'
);

delete from public.upload_batches where id = tests.fx('batch_a');
select results_eq(
  $$select org_id, batch_id from public.documents where id = tests.fx('doc_a')$$,
  $$values (tests.fx('org_a'), null::uuid)$$,
  'deleting a batch clears the document''s link and keeps its org'
);
delete from public.documents where id = tests.fx('doc_a');
select is(
  (select count(*)::integer from public.document_chunks where document_id = tests.fx('doc_a')),
  0,
  'deleting a document deletes its chunks'
);
select is(
  (select count(*)::integer from pg_constraint where conname in ('documents_batch_id_fkey', 'document_chunks_document_id_fkey1')),
  0,
  'the id-only keys are dropped'
);

select * from finish();
rollback;
