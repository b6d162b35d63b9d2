-- Searches return what they are asked for, and one file's copies are one source
-- (20261123015200_document_embedding_model.sql): each HNSW walk sets ef_search to the rows it must yield (without an
-- iterative scan a walk gives back at most ef_search rows: match_count 50 returned 40), the default search keeps
-- ef_search 40, and a chunk content stored twice (the same file uploaded as two documents) comes back once.
begin;
create extension if not exists pgtap with schema extensions;

select plan(24);

insert into tests.fixtures values
  ('owner_329', tests.create_user('owner-329@retrieval-counts.test'));
insert into tests.fixtures values
  ('counts_329', tests.create_org('retrieval-counts-329', tests.fx('owner_329'))),
  ('copies_329', tests.create_org('retrieval-copies-329', tests.fx('owner_329'))),
  ('other_329', tests.create_org('retrieval-other-329', tests.fx('owner_329'))),
  ('probe_329', tests.create_org('retrieval-probe-329', tests.fx('owner_329')));

-- A 1536-dimension embedding whose first components are the arguments.
create function pg_temp.vec(variadic parts real[])
returns extensions.vector
language sql
immutable
as $$ select array_cat(parts, array_fill(0::real, array[1536 - cardinality(parts)]))::extensions.vector(1536) $$;
grant execute on function pg_temp.vec(real[]) to public;

create function pg_temp.document(label text, org text, collection text default null)
returns void
language sql
as $$
  insert into tests.fixtures values (label, gen_random_uuid());
  insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status)
  values (tests.fx(label), tests.fx(org), case when collection is null then null else tests.fx(collection) end,
          label || '.pdf', 'application/pdf', 10, tests.fx(org) || '/' || label || '.pdf', 'ready');
$$;

create function pg_temp.collection(label text, org text)
returns void
language sql
as $$
  with c as (insert into public.collections (org_id, name) values (tests.fx(org), label) returning id)
  insert into tests.fixtures select label, c.id from c;
$$;

-- ---------------------------------------------------------------------------
-- 300 chunks of random directions in three documents of one collection; "quokka" in 5 of them.
-- ---------------------------------------------------------------------------
select pg_temp.collection('counted_329', 'counts_329');
select pg_temp.document('counted_a_329', 'counts_329', 'counted_329');
select pg_temp.document('counted_b_329', 'counts_329', 'counted_329');
select pg_temp.document('counted_c_329', 'counts_329', 'counted_329');
select setseed(0.329);
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('counts_329'), tests.fx('counted_' || (array['a', 'b', 'c'])[i % 3 + 1] || '_329'), tests.fx('counted_329'),
  i, 1, 1, 'counted chunk ' || i || case when i <= 5 then ' quokka' else '' end, 4,
  (select array_agg((random() - 0.5)::real) from generate_series(1, 1536) where i > 0)::extensions.vector(1536)
from generate_series(1, 300) i;

-- (rows, distinct contents) of a search of an org.
create function pg_temp.counts(org text, query_text text, match_count integer, collections uuid[] default null)
returns table (total integer, contents integer)
language sql
as $$
  select count(*)::integer, count(distinct m.content)::integer
  from public.match_document_chunks(tests.fx(org), pg_temp.vec(1, 0.25, -0.5), query_text, match_count, collections) m
$$;
grant execute on function pg_temp.counts(text, text, integer, uuid[]) to authenticated;

-- The match_counts from 11 to 50 a search answers with fewer rows.
create function pg_temp.short_counts(query_text text, collections uuid[] default null)
returns integer[]
language sql
as $$
  select array_agg(n order by n) from generate_series(11, 50) n
  where (select c.total from pg_temp.counts('counts_329', query_text, n, collections) c) <> n
$$;
grant execute on function pg_temp.short_counts(text, uuid[]) to authenticated;

select tests.authenticate_as(tests.fx('owner_329'));
select results_eq($$select total from pg_temp.counts('counts_329', null, 50)$$, $$values (50)$$,
  'match_count 50, a plain vector search: 50 rows (the walk stopped at ef_search 40)');
select results_eq($$select total from pg_temp.counts('counts_329', 'zzyzx nothing', 50)$$, $$values (50)$$,
  'match_count 50, words matching nothing: 50 rows');
select results_eq($$select total from pg_temp.counts('counts_329', 'quokka', 50)$$, $$values (50)$$,
  'match_count 50 with words: 50 rows');
select results_eq($$select total from pg_temp.counts('counts_329', null, 50, array[tests.fx('counted_329')])$$, $$values (50)$$,
  'match_count 50 over a collection: 50 rows');
select results_eq($$select total from pg_temp.counts('counts_329', 'quokka', 50, array[tests.fx('counted_329')])$$, $$values (50)$$,
  'match_count 50 over a collection with words: 50 rows');
select is(pg_temp.short_counts(null), null, 'match_count 11 to 50, a plain vector search: as many rows as asked');
select is(pg_temp.short_counts('zzyzx nothing'), null, 'match_count 11 to 50, words matching nothing: as many rows as asked');
select is(pg_temp.short_counts('quokka'), null, 'match_count 11 to 50 with words: as many rows as asked');
select is(pg_temp.short_counts('quokka', array[tests.fx('counted_329')]), null,
  'match_count 11 to 50 over a collection with words: as many rows as asked');
select is(
  (select count(*)::integer from private.vector_matches(tests.fx('counts_329'), pg_temp.vec(1, 0.25, -0.5), null, 200)),
  200, 'the vector half of a fused search gets the 200 candidates it asks for');

-- ---------------------------------------------------------------------------
-- One file stored as two documents of an org (and once in another org): 12 chunks of the same text, the same
-- vectors, the word "tariff" in each.
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');
select pg_temp.collection('copied_329', 'copies_329');
select pg_temp.document('pricing_329', 'copies_329', 'copied_329');
select pg_temp.document('pricing_copy_329', 'copies_329', 'copied_329');
select pg_temp.document('pricing_other_329', 'other_329');
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.org_id, d.id, d.collection_id, i, i + 1, i + 1, 'pricing tier ' || i || ': the tariff of plan ' || i, 8,
  pg_temp.vec(1, (0.25 + i / 10.0)::real, -0.5)
from public.documents d, generate_series(0, 11) i
where d.id in (tests.fx('pricing_329'), tests.fx('pricing_copy_329'), tests.fx('pricing_other_329'))
order by d.id = tests.fx('pricing_copy_329'), i;
with b as (insert into public.bots (org_id, name, slug) values (tests.fx('copies_329'), 'All', 'all-329') returning id)
select tests.remember('bot_329', b.id) from b;

select tests.authenticate_as(tests.fx('owner_329'));
select results_eq($$select total, contents from pg_temp.counts('copies_329', null, 10)$$, $$values (5, 5)$$,
  'a plain vector search of the default 10 reads 10 rows and answers their 5 distinct chunks, not 5 twice');
select results_eq($$select total, contents from pg_temp.counts('copies_329', null, 50)$$, $$values (12, 12)$$,
  'a plain vector search: each chunk once');
select results_eq($$select total, contents from pg_temp.counts('copies_329', 'tariff', 50)$$, $$values (12, 12)$$,
  'a search with words: each chunk once');
select results_eq($$select total, contents from pg_temp.counts('copies_329', 'tariff', 10)$$, $$values (10, 10)$$,
  'a search with words of 10: 10 distinct chunks');
select results_eq($$select total, contents from pg_temp.counts('copies_329', null, 50, array[tests.fx('copied_329')])$$,
  $$values (12, 12)$$, 'a search of a collection: each chunk once');
select results_eq($$select total, contents from pg_temp.counts('copies_329', 'tariff', 50, array[tests.fx('copied_329')])$$,
  $$values (12, 12)$$, 'a search of a collection with words: each chunk once');
select results_eq(
  $$select count(*)::integer, count(distinct m.content)::integer
    from public.match_bot_chunks(tests.fx('bot_329'), pg_temp.vec(1, 0.25, -0.5), 'tariff', 50) m$$,
  $$values (12, 12)$$, 'match_bot_chunks: each chunk once');
select results_eq(
  $$select array_agg(distinct m.document_name), array_agg(m.vector_rank order by m.vector_rank)
    from public.match_document_chunks(tests.fx('copies_329'), pg_temp.vec(1, 0.25, -0.5), null, 50) m$$,
  $$values (array['pricing_329.pdf'], array[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])$$,
  'the best-ranked copy is kept (the same distance: the first stored), and the ranks count distinct chunks');
select results_eq(
  $$select array_agg(distinct m.document_name), count(*)::integer
    from public.match_document_chunks(tests.fx('copies_329'), pg_temp.vec(1, 0.25, -0.5), 'tariff', 50) m
    where m.vector_rank is not null and m.text_rank is not null$$,
  $$values (array['pricing_329.pdf'], 12)$$,
  'a fused search: each chunk found by both halves, as one row');
select results_eq(
  $$select array_agg(distinct m.document_name), count(*)::integer
    from public.match_document_chunks(tests.fx('other_329'), pg_temp.vec(1, 0.25, -0.5), 'tariff', 50) m$$,
  $$values (array['pricing_other_329.pdf'], 12)$$,
  'another org holding the same text: its own chunks, all of them');

-- ---------------------------------------------------------------------------
-- The default search keeps ef_search 40. A probe: the 35 chunks nearest the query are of another model, which
-- the walk passes over after the graph gave them back, so the plain search returns the walk's other rows: 5 at
-- ef_search 40, whatever the session's.
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');
select pg_temp.document('probe_old_329', 'probe_329');
select pg_temp.document('probe_new_329', 'probe_329');
update public.documents set embedding_model = 'model-old' where id = tests.fx('probe_old_329');
update public.documents set embedding_model = 'model-new' where id = tests.fx('probe_new_329');
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('probe_329'), tests.fx('probe_old_329'), i, 1, 1, 'old chunk ' || i, 3, pg_temp.vec(1, (i / 1000.0)::real)
from generate_series(1, 35) i;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('probe_329'), tests.fx('probe_new_329'), i, 1, 1, 'new chunk ' || i, 3, pg_temp.vec(1, (1 + i / 20.0)::real)
from generate_series(1, 70) i;

select tests.authenticate_as(tests.fx('owner_329'));
set local hnsw.ef_search = 77;
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('probe_329'), pg_temp.vec(1, 0), null, 10, null, 'model-new')),
  5, 'the default search (match_count 10, no words) walks with ef_search 40: 40 rows, 35 of another model');
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('probe_329'), pg_temp.vec(1, 0), null, 45, null, 'model-new')),
  10, 'match_count 45 walks with ef_search 45');
select is(current_setting('hnsw.ef_search'), '77', 'the session''s ef_search is restored after the searches');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from pg_proc p
   where p.oid in ('public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[], text)'::regprocedure,
                   'private.vector_matches(uuid, extensions.vector, uuid[], integer, text)'::regprocedure)
     and p.proconfig @> array['hnsw.ef_search=40', 'hnsw.iterative_scan=off'] collate "C"),
  2, 'both walks start from ef_search 40 without iterative scans, restored when they return');

select * from finish();
rollback;
