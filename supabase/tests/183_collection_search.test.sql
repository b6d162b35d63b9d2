-- Collection-filtered searches (20261123002000_retrieval_one_read_and_exact_collections.sql):
-- collections holding up to 2,000 of the org's chunks are searched exactly
-- (every distance computed), so a rare collection gets its true nearest
-- chunks however far the graph walk would have to go to meet them; the
-- walk stops at hnsw.max_scan_tuples, set very low here so that a walk
-- would come back short.
begin;
create extension if not exists pgtap with schema extensions;

select plan(6);

insert into tests.fixtures values
  ('owner_c', tests.create_user('collection-owner@c.test')),
  ('stranger', tests.create_user('collection-stranger@c.test'));
insert into tests.fixtures values ('org_c', tests.create_org('collection-search-c', tests.fx('owner_c')));
insert into public.collections (id, org_id, name) values
  (gen_random_uuid(), tests.fx('org_c'), 'few'), (gen_random_uuid(), tests.fx('org_c'), 'other');
insert into tests.fixtures select 'collection_' || name, id from public.collections where org_id = tests.fx('org_c');
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values (gen_random_uuid(), tests.fx('org_c'), 'all.txt', 'text/plain', 10, tests.fx('org_c') || '/all.txt', 'ready');
insert into tests.fixtures select 'doc_c', id from public.documents where org_id = tests.fx('org_c');

-- 700 chunks with deterministic pseudo-random directions; 12 of them (every
-- 58th) in "few", 229 in "other", the rest in none.
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_c'), tests.fx('doc_c'),
  case when n % 58 = 0 then tests.fx('collection_few') when n % 3 = 0 then tests.fx('collection_other') end,
  n, 1, 1, 'chunk ' || n, 2,
  array(select (abs(hashint4(n * 7919 + k)) % 2000 - 1000)::real from generate_series(1, 1536) k)::extensions.vector
from generate_series(1, 700) n;

create temp table probe on commit drop as
select array(select (abs(hashint4(k * 31 + 5)) % 2000 - 1000)::real from generate_series(1, 1536) k)::extensions.vector as q;
grant select on probe to public;

-- The exact answer, as postgres: the collection's 10 nearest chunks.
create temp table expected on commit drop as
select c.id, row_number() over (order by c.embedding operator(extensions.<=>) (select q from probe), c.id)::integer as rank
from public.document_chunks c
where c.org_id = tests.fx('org_c') and c.collection_id = tests.fx('collection_few')
order by c.embedding operator(extensions.<=>) (select q from probe), c.id
limit 10;
grant select on expected to public;

select tests.act_as('owner_c', tests.fx('owner_c'));
set local hnsw.max_scan_tuples = 20;

select results_eq(
  $$select chunk_id, vector_rank from public.match_document_chunks(tests.fx('org_c'), (select q from probe), null, 10,
      array[tests.fx('collection_few')])$$,
  $$select id, rank from expected order by rank$$,
  'a collection of 12 chunks in 700 is searched exactly: its 10 nearest chunks, in order, though a walk would stop after 20 tuples'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_c'), (select q from probe), null, 10,
     array[tests.fx('collection_few'), tests.fx('collection_other')])
   where collection_id not in (tests.fx('collection_few'), tests.fx('collection_other'))),
  0, 'with two collections, only their chunks come back'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_c'), (select q from probe), null, 10,
     array[tests.fx('collection_few'), tests.fx('collection_other')])),
  10, 'and as many as asked for'
);
select results_eq(
  $$select count(*) filter (where collection_id = tests.fx('collection_few'))::integer, count(*)::integer
    from public.match_document_chunks(tests.fx('org_c'), (select q from probe), 'chunk', 10, array[tests.fx('collection_few')])$$,
  $$values (10, 10)$$,
  'the hybrid search with the filter: 10 chunks, all of the collection'
);
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_c'), (select q from probe), null, 10)),
  10, 'without a filter the search walks the graph (no filter to satisfy, so the scan limit does not bite)'
);
select tests.act_as('stranger', tests.fx('stranger'));
select is_empty(
  $$select 1 from public.match_document_chunks(tests.fx('org_c'), (select q from probe), null, 10, array[tests.fx('collection_few')])$$,
  'someone outside the org finds nothing in its collection'
);

select * from finish();
rollback;
