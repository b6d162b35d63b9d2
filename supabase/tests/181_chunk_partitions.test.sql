-- Chunks partitioned by org (20261123001000_document_chunks_per_org.sql):
-- every org gets its own partition (and HNSW graph) when it is created; the
-- partitions sit in private and answer nobody but their owner, so the
-- parent's policies are the only way in; a search prunes to the org's
-- partition and walks its graph; partitions of deleted orgs are dropped by
-- the scheduled job. The text half of the hybrid match takes any of the
-- query's words of 4 letters or more.
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

create function pg_temp.partition_of(org_id uuid)
returns regclass
language sql
stable
as $$ select to_regclass('private.document_chunks_' || replace(org_id::text, '-', '')) $$;

create function pg_temp.vec(a real, b real)
returns extensions.vector
language sql
immutable
as $$ select (array[a, b] || array_fill(0::real, array[1534]))::extensions.vector $$;
grant execute on function pg_temp.vec(real, real) to public;

-- The plan of private.vector_matches' walk, with its forcing settings.
create function pg_temp.vector_plan(org_id uuid)
returns text
language plpgsql
set enable_sort = off
set enable_seqscan = off
set enable_bitmapscan = off
set plan_cache_mode = 'force_custom_plan'
as $$
declare
  plan json;
begin
  execute format(
    'explain (format json) select c.id from public.document_chunks c where c.org_id = %L
     order by c.embedding operator(extensions.<=>) %L::extensions.vector limit 40',
    org_id, pg_temp.vec(1, 0)) into plan;
  return plan::text;
end;
$$;

insert into tests.fixtures values
  ('owner_a', tests.create_user('part-owner@a.test')),
  ('owner_b', tests.create_user('part-owner@b.test'));
insert into tests.fixtures values
  ('org_a', tests.create_org('part-a', tests.fx('owner_a'))),
  ('org_b', tests.create_org('part-b', tests.fx('owner_b')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
select gen_random_uuid(), o.id, 'faq.txt', 'text/plain', 10, o.id || '/faq.txt', 'ready'
from tests.fixtures o where o.name in ('org_a', 'org_b');
insert into tests.fixtures select 'doc_' || right(o.name, 1), d.id from public.documents d join tests.fixtures o on o.id = d.org_id;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values
  (tests.fx('org_a'), tests.fx('doc_a'), 0, 1, 1, 'opening hours', 2, pg_temp.vec(1, 0)),
  (tests.fx('org_a'), tests.fx('doc_a'), 1, 2, 2, 'refunds', 1, pg_temp.vec(0, 1)),
  (tests.fx('org_b'), tests.fx('doc_b'), 0, 1, 1, 'opening hours of B', 4, pg_temp.vec(1, 0));

-- ---------------------------------------------------------------------------
-- One partition per org, created with the org
-- ---------------------------------------------------------------------------

select isnt(pg_temp.partition_of(tests.fx('org_a')), null, 'creating an org creates its chunk partition in private');
select is(
  (select count(*)::integer from pg_inherits i
   where i.inhparent = 'public.document_chunks'::regclass
     and i.inhrelid in (pg_temp.partition_of(tests.fx('org_a')), pg_temp.partition_of(tests.fx('org_b')))),
  2, 'both orgs'' partitions are attached to public.document_chunks');
select is(
  (select count(*)::integer from public.organizations o where pg_temp.partition_of(o.id) is null),
  0, 'every org has a partition');
select is(
  (select count(*)::integer from pg_temp.partition_of(tests.fx('org_a')) p
   join pg_index x on x.indrelid = p
   join pg_class i on i.oid = x.indexrelid
   join pg_am am on am.oid = i.relam
   where am.amname = 'hnsw'),
  1, 'the org''s partition has its own HNSW index');
select is(
  (select count(*)::integer from pg_class c
   where c.relispartition and c.oid in (select inhrelid from pg_inherits where inhparent = 'public.document_chunks'::regclass)
     and c.relnamespace <> 'private'::regnamespace),
  0, 'no chunk partition lives outside private (nothing exposed by the Data API)');
select is(
  (select count(*)::integer from public.document_chunks c where c.org_id = tests.fx('org_a')),
  2, 'rows inserted through the parent land in the org''s partition');
select isnt(pg_temp.partition_of(tests.fx('org_b')), pg_temp.partition_of(tests.fx('org_a')), 'org B has a partition of its own');
select is(pg_temp.partition_of('5a6b0000-0000-4000-9000-00000000beef'), null, 'no partition for an org that does not exist');
select lives_ok(
  $$select private.create_chunk_partition(tests.fx('org_a'))$$,
  'creating a partition that exists is a no-op');

-- ---------------------------------------------------------------------------
-- Nobody reads a partition directly: the parent's policies are the way in
-- ---------------------------------------------------------------------------

select tests.authenticate_as(tests.fx('owner_a'));
select throws_ok(
  format('select * from private.%I', 'document_chunks_' || replace(tests.fx('org_a')::text, '-', '')),
  '42501', null, 'an org''s owner cannot read its partition directly');
select is(
  (select count(*)::integer from public.document_chunks),
  2, 'through the parent the owner sees their org''s chunks only');
select is(
  (select array_agg(content order by vector_rank) from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0), null, 10)),
  array['opening hours', 'refunds'], 'match_document_chunks walks the org''s own graph, nearest first');
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_b'), pg_temp.vec(1, 0), null, 10)),
  0, 'and finds nothing in another org');
select is(
  (select text_rank from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0), 'When are refunds possible?', 10)
   where content = 'refunds'),
  1, 'the text half matches any longer word of a question (not all of them), so it finds the refunds chunk');
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0), 'how are you', 10)
   where text_rank is not null),
  0, 'words under 4 letters match nothing on their own');
select tests.authenticate_as_service_role();
select throws_ok(
  format('select * from private.%I', 'document_chunks_' || replace(tests.fx('org_a')::text, '-', '')),
  '42501', null, 'neither can the service role');
select tests.clear_authentication();

select matches(
  pg_temp.vector_plan(tests.fx('org_a')),
  format('"Index Name": "document_chunks_%s_embedding_idx"', replace(tests.fx('org_a')::text, '-', '')),
  'the vector search is planned as a walk of the HNSW graph of the org''s partition');
select doesnt_match(
  pg_temp.vector_plan(tests.fx('org_a')),
  replace(tests.fx('org_b')::text, '-', ''),
  'and reads no other org''s partition');

-- ---------------------------------------------------------------------------
-- Deleted orgs: rows cascade, the scheduled job drops the empty partition
-- ---------------------------------------------------------------------------

delete from public.organizations where id = tests.fx('org_b');
select cmp_ok(private.drop_orphaned_chunk_partitions(), '>=', 1, 'the scheduled job drops the partition of the deleted org');
select is(pg_temp.partition_of(tests.fx('org_b')), null, 'org B''s partition is gone; org A''s stays');

select * from finish();
rollback;
