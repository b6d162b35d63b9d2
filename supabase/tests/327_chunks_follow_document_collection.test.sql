-- A document's chunks follow it to another collection (20261123015400_chunks_follow_document_collection.sql):
-- moved, its chunks carry the new collection, so a search filtered by the old collection no longer finds it and
-- one by the new collection does (with the new collection in the result); moved out of any collection, neither
-- finds it. The chunk update holds the org's chunk lock (8600) and runs before the move's audit locks the chain
-- head; a move during an ingest publishes in the new collection; another org's chunks and a rename are untouched.
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

delete from vault.secrets where name in ('project_url', 'service_role_key');
insert into tests.fixtures values
  ('owner_327', tests.create_user('owner-327@chunks-follow-collection.test')),
  ('run_327', gen_random_uuid()),
  ('staged_run_327', gen_random_uuid());
insert into tests.fixtures values
  ('org_327', tests.create_org('chunks-follow-collection-327', tests.fx('owner_327'))),
  ('other_org_327', tests.create_org('chunks-follow-collection-327-other', tests.fx('owner_327')));
insert into public.collections (id, org_id, name) values
  (gen_random_uuid(), tests.fx('org_327'), 'Public FAQ 327'),
  (gen_random_uuid(), tests.fx('org_327'), 'Internal HR 327'),
  (gen_random_uuid(), tests.fx('other_org_327'), 'Other org FAQ 327');
select tests.remember('faq_327', id) from public.collections where name = 'Public FAQ 327';
select tests.remember('hr_327', id) from public.collections where name = 'Internal HR 327';
select tests.remember('other_faq_327', id) from public.collections where name = 'Other org FAQ 327';

-- A processing document of `org` in `collection` with 2 chunks of `words` staged by `run`.
create function pg_temp.processing_document(label text, org text, collection text, run text, words text)
returns void
language sql
as $$
  insert into tests.fixtures values (label, gen_random_uuid());
  insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status, progress, page_count, ingest_run)
  values (tests.fx(label), tests.fx(org), tests.fx(collection), label || '.txt', 'text/plain', 10,
          tests.fx(org) || '/' || label || '.txt', 'processing', 50, 1, tests.fx(run));
  insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select tests.fx(run), tests.fx(label), i, 1, 1, words || ' part ' || i, 5, array_fill(0.1::real, array[1536])::extensions.vector
  from generate_series(0, 1) i;
$$;

-- The distinct collections of a document's chunks ('none' for null), and how many chunks it has.
create function pg_temp.chunk_collections(label text)
returns text
language sql
stable
as $$
  select coalesce(string_agg(distinct coalesce(c.collection_id::text, 'none'), ', '), '-') || ' / ' || count(*)
  from public.document_chunks c
  join public.documents d on d.id = c.document_id and d.org_id = c.org_id
  where d.id = tests.fx(label)
$$;

-- The documents and chunk collections a text search of the org finds, filtered by collections.
create function pg_temp.found(org uuid, question text, collection_ids uuid[])
returns text
language sql
as $$
  select coalesce(string_agg(distinct m.document_name || ' in ' || coalesce(m.collection_id::text, 'none'), ', '), '-')
  from public.match_document_chunks_by_text(org, question, 10, collection_ids) m
$$;
grant execute on function pg_temp.found(uuid, text, uuid[]) to authenticated;

-- Each update statement on document_chunks: whether the org's 8600 lock was held, and how many audit rows of a
-- move of the document existed yet (the audit trigger locks the chain head as it writes one).
create table pg_temp.chunk_updates (seq bigint generated always as identity, locked boolean, move_audits integer);
create function pg_temp.record_chunk_update()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.chunk_updates (locked, move_audits)
  select exists (select 1 from pg_catalog.pg_locks l
                 where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted
                   and l.classid = 8600::oid and l.objsubid = 2
                   and l.objid = pg_catalog.hashtext(tests.fx('org_327')::text)::oid),
    (select count(*)::integer from public.audit_log a
     where a.org_id = tests.fx('org_327') and a.table_name = 'documents' and a.action = 'update'
       and a.record_id = tests.fx('handbook_327')::text);
  return null;
end;
$$;
create trigger a_chunk_updates_327 before update on public.document_chunks
  for each statement execute function pg_temp.record_chunk_update();

-- ---------------------------------------------------------------------------
-- Published in "Public FAQ", moved to "Internal HR".
-- ---------------------------------------------------------------------------
select pg_temp.processing_document('handbook_327', 'org_327', 'faq_327', 'run_327', 'quokka sabbatical allowance');
insert into tests.fixtures values ('other_doc_327', gen_random_uuid());
insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status)
values (tests.fx('other_doc_327'), tests.fx('other_org_327'), tests.fx('other_faq_327'), 'other_doc_327.txt', 'text/plain', 10,
        tests.fx('other_org_327') || '/other_doc_327.txt', 'ready');
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('other_org_327'), tests.fx('other_doc_327'), tests.fx('other_faq_327'), i, 1, 1,
  'quokka sabbatical allowance elsewhere ' || i, 5, array_fill(0.1::real, array[1536])::extensions.vector
from generate_series(0, 2) i;

select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('handbook_327'), tests.fx('run_327')), 2, 'finish_ingest publishes the handbook''s 2 chunks');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('handbook_327'), tests.fx('faq_327') || ' / 2', 'its chunks are in Public FAQ');

select tests.act_as('owner_327');
select is(pg_temp.found(tests.fx('org_327'), 'quokka sabbatical', array[tests.fx('faq_327')]),
  'handbook_327.txt in ' || tests.fx('faq_327'), 'a search of Public FAQ finds it before the move');
select tests.act_as('postgres');

delete from pg_temp.chunk_updates;
select tests.act_as('service_role');
update public.documents set collection_id = tests.fx('hr_327') where id = tests.fx('handbook_327');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('handbook_327'), tests.fx('hr_327') || ' / 2', 'moved to Internal HR, its chunks carry Internal HR');
select is((select array_agg(locked order by seq) from pg_temp.chunk_updates), array[true],
  'the chunks are updated in one statement, under the org''s chunk lock (8600)');
select is((select array_agg(move_audits order by seq) from pg_temp.chunk_updates), array[0],
  'before the move''s audit row (the chain head is locked last)');
select is(
  (select count(*)::integer from public.audit_log a
   where a.org_id = tests.fx('org_327') and a.table_name = 'documents' and a.action = 'update'
     and a.record_id = tests.fx('handbook_327')::text and a.new_values ->> 'collection_id' = tests.fx('hr_327')::text),
  1, 'the move is still audited');

select tests.act_as('owner_327');
select is(pg_temp.found(tests.fx('org_327'), 'quokka sabbatical', array[tests.fx('faq_327')]), '-',
  'a search of Public FAQ (as a bot linked only to it) no longer finds it');
select is(pg_temp.found(tests.fx('org_327'), 'quokka sabbatical', array[tests.fx('hr_327')]),
  'handbook_327.txt in ' || tests.fx('hr_327'), 'a search of Internal HR finds it, in Internal HR');
select tests.act_as('postgres');

select is(
  (select string_agg(distinct c.collection_id::text, ', ') || ' / ' || count(*) from public.document_chunks c
   where c.org_id = tests.fx('other_org_327')),
  tests.fx('other_faq_327') || ' / 3', 'another org''s chunks keep their collection');

-- ---------------------------------------------------------------------------
-- Changes that are not moves change no chunk.
-- ---------------------------------------------------------------------------
delete from pg_temp.chunk_updates;
select tests.act_as('service_role');
update public.documents set name = 'handbook_327 renamed.txt' where id = tests.fx('handbook_327');
update public.documents set collection_id = tests.fx('hr_327') where id = tests.fx('handbook_327');
select tests.act_as('postgres');
select is((select count(*)::integer from pg_temp.chunk_updates), 0,
  'a rename, or setting the collection it already has, updates no chunk');

-- ---------------------------------------------------------------------------
-- Out of any collection: no collection filter finds it; the unfiltered search does.
-- ---------------------------------------------------------------------------
select tests.act_as('service_role');
update public.documents set collection_id = null where id = tests.fx('handbook_327');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('handbook_327'), 'none / 2', 'moved out of any collection, its chunks have none');
select tests.act_as('owner_327');
select is(pg_temp.found(tests.fx('org_327'), 'quokka sabbatical', array[tests.fx('faq_327'), tests.fx('hr_327')]), '-',
  'a search of either collection no longer finds it');
select is(pg_temp.found(tests.fx('org_327'), 'quokka sabbatical', null), 'handbook_327 renamed.txt in none',
  'the org-wide search still does');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- Moved back, then its collection deleted: the chunks' link is cleared with the document's.
-- ---------------------------------------------------------------------------
select tests.act_as('service_role');
update public.documents set collection_id = tests.fx('faq_327') where id = tests.fx('handbook_327');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('handbook_327'), tests.fx('faq_327') || ' / 2', 'moved back, its chunks are in Public FAQ again');
delete from public.collections where id = tests.fx('faq_327');
select is(
  (select coalesce(collection_id::text, 'none') from public.documents where id = tests.fx('handbook_327')) || ' | '
    || pg_temp.chunk_collections('handbook_327'),
  'none | none / 2', 'deleting the collection clears the document''s and its chunks'' collection');

-- ---------------------------------------------------------------------------
-- Moved while an ingest has chunks staged: the publish takes the document's collection at that moment.
-- ---------------------------------------------------------------------------
select pg_temp.processing_document('policy_327', 'org_327', 'hr_327', 'staged_run_327', 'wombat relocation stipend');
select tests.act_as('service_role');
update public.documents set collection_id = null where id = tests.fx('policy_327');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('policy_327'), '- / 0', 'moved mid-ingest, it has no live chunks yet');
select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('policy_327'), tests.fx('staged_run_327')), 2, 'finish_ingest publishes the staged chunks');
select tests.act_as('postgres');
select is(pg_temp.chunk_collections('policy_327'), 'none / 2', 'in the collection the document has when they are published');
select tests.act_as('owner_327');
select is(pg_temp.found(tests.fx('org_327'), 'wombat stipend', array[tests.fx('hr_327')]), '-',
  'a search of the collection it left does not find them');
select tests.act_as('postgres');

drop trigger a_chunk_updates_327 on public.document_chunks;

select * from finish();
rollback;
