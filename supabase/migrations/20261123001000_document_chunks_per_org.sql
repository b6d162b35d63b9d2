-- Chunks partitioned by org: each org's chunks in their own table with their
-- own HNSW graph, so a search walks one tenant's graph instead of filtering a
-- shared one.
--
-- Why (npm run bench:rag, 100,000 chunks over 20 orgs): with one shared HNSW
-- index the org filter cost either recall (a 1.5% org lost most of its
-- neighbours to other orgs' chunks) or speed (iterative scans wading through
-- other orgs' nodes), and retrieval was at best 4x faster than an exact scan.
-- With a graph per org there is no filter to fight: recall is the graph's own
-- and the search cost grows with the org's size, not everyone's.
--
-- Partitions live in `private` (not exposed by the Data API) as
-- private.document_chunks_<org id hex>; reads and writes go through
-- public.document_chunks, whose policies apply. A partition is created and
-- attached when the org is created. ATTACH PARTITION takes only a SHARE UPDATE
-- EXCLUSIVE lock on the parent (CREATE TABLE ... PARTITION OF would take an
-- ACCESS EXCLUSIVE one), so creating an org never blocks searches. Dropping a
-- partition does need that lock, so partitions of deleted orgs (empty by then:
-- the rows cascade) are dropped by a scheduled job that gives up quickly
-- rather than queue behind searches.

alter table public.document_chunks rename to document_chunks_unpartitioned;

create table public.document_chunks (
  id bigint generated always as identity,
  org_id uuid not null references public.organizations (id) on delete cascade,
  document_id uuid not null references public.documents (id) on delete cascade,
  -- Copied from the document, so retrieval filters without a join.
  collection_id uuid references public.collections (id) on delete set null,
  chunk_index integer not null,
  page_start integer not null,
  page_end integer not null,
  content text not null,
  token_count integer not null,
  embedding extensions.vector(1536) not null,
  fts tsvector generated always as (to_tsvector('simple', content)) stored,
  -- A partitioned table's keys must hold the partition key.
  constraint document_chunks_pk primary key (org_id, id),
  constraint document_chunks_position_in_org unique (org_id, document_id, chunk_index),
  constraint document_chunks_page_range check (page_start between 1 and page_end)
) partition by list (org_id);
comment on table public.document_chunks is 'Searchable chunks of ready documents: about 400 tokens each, 40 overlapping; replaced as a whole on re-ingestion. Partitioned by org (partitions in private).';

create function private.chunk_partition_name(org_id uuid)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select 'document_chunks_' || replace(org_id::text, '-', '');
$$;

create function private.create_chunk_partition(org_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  partition_name text := private.chunk_partition_name(create_chunk_partition.org_id);
begin
  if to_regclass(format('private.%I', partition_name)) is not null then
    return;
  end if;
  execute format(
    'create table private.%I (like public.document_chunks including defaults including constraints including generated)',
    partition_name);
  -- Only through the parent: its policies do not apply to a partition read
  -- directly, so nobody but the owner may.
  execute format('revoke all on private.%I from public, anon, authenticated, service_role', partition_name);
  execute format('alter table private.%I enable row level security', partition_name);
  execute format('alter table public.document_chunks attach partition private.%I for values in (%L)',
    partition_name, create_chunk_partition.org_id);
end;
$$;
revoke execute on function private.create_chunk_partition(uuid) from public;

create function private.create_org_chunk_partition()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.create_chunk_partition(new.id);
  return null;
end;
$$;
revoke execute on function private.create_org_chunk_partition() from public;

create trigger organizations_create_chunk_partition after insert on public.organizations
  for each row execute function private.create_org_chunk_partition();

select private.create_chunk_partition(o.id) from public.organizations o;

insert into public.document_chunks (id, org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
overriding system value
select id, org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding
from public.document_chunks_unpartitioned;
select setval(pg_get_serial_sequence('public.document_chunks', 'id'),
  greatest((select max(id) from public.document_chunks_unpartitioned), 1),
  (select max(id) from public.document_chunks_unpartitioned) is not null);
drop table public.document_chunks_unpartitioned;

-- Created after the data is in: building each org's graph once is faster
-- than growing it row by row.
create index document_chunks_org_collection_idx on public.document_chunks (org_id, collection_id);
create index document_chunks_document_idx on public.document_chunks (document_id);
create index document_chunks_embedding_idx on public.document_chunks using hnsw (embedding extensions.vector_cosine_ops);
create index document_chunks_fts_idx on public.document_chunks using gin (fts);

alter table public.document_chunks enable row level security;
revoke all on public.document_chunks from anon, authenticated;
grant select on public.document_chunks to authenticated;
create policy "viewers and up can read their org's chunks"
  on public.document_chunks for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('knowledge.read'))));

-- Partitions of deleted orgs. lock_timeout: dropping needs an ACCESS EXCLUSIVE
-- lock on the parent; rather than make searches queue behind it, give up and
-- try again next hour.
create function private.drop_orphaned_chunk_partitions()
returns integer
language plpgsql
security definer
set search_path = ''
set lock_timeout = '1s'
as $$
declare
  orphan record;
  dropped integer := 0;
begin
  for orphan in
    select c.relname, (regexp_match(pg_get_expr(c.relpartbound, c.oid), '''([0-9a-f-]{36})'''))[1]::uuid as org_id
    from pg_catalog.pg_inherits i
    join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.document_chunks'::regclass
  loop
    continue when exists (select 1 from public.organizations o where o.id = orphan.org_id);
    begin
      execute format('drop table private.%I', orphan.relname);
      dropped := dropped + 1;
    exception when lock_not_available then
      null;
    end;
  end loop;
  return dropped;
end;
$$;
revoke execute on function private.drop_orphaned_chunk_partitions() from public;
select cron.schedule('drop-orphaned-chunk-partitions', '17 * * * *', 'select private.drop_orphaned_chunk_partitions()');

-- ---------------------------------------------------------------------------
-- Retrieval. The vector part always walks the org's own graph: the planner
-- prices distances as nearly free and would sort an exact scan instead, hence
-- the forcing settings; they live on a function of their own so the full-text
-- part keeps its GIN bitmap scan. plan_cache_mode: plans are made for the
-- org at hand, so the partition is pruned when planning (a generic plan would
-- append every org's partition and sort). Within one org the only filter left
-- is the optional collections one, which iterative scans handle.
-- ---------------------------------------------------------------------------

drop function private.vector_candidates_hnsw(uuid, extensions.vector, uuid[], integer);

create function private.vector_candidates(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer
)
returns table (id bigint, distance double precision)
language sql
stable
security invoker
-- What it returns at most (match_count * 4), so the caller's joins are planned
-- as index lookups rather than hash joins over the whole partition.
rows 40
set search_path = ''
set plan_cache_mode = 'force_custom_plan'
set hnsw.iterative_scan = 'relaxed_order'
set hnsw.ef_search = 100
set enable_sort = off
set enable_seqscan = off
set enable_bitmapscan = off
as $$
  select c.id, c.embedding operator(extensions.<=>) query_embedding
  from public.document_chunks c
  where c.org_id = vector_candidates.org_id
    and (collection_ids is null or c.collection_id = any (collection_ids))
  order by c.embedding operator(extensions.<=>) query_embedding
  limit candidates;
$$;
revoke execute on function private.vector_candidates(uuid, extensions.vector, uuid[], integer) from public;
grant execute on function private.vector_candidates(uuid, extensions.vector, uuid[], integer) to authenticated, service_role;

create or replace function public.match_document_chunks(
  org_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10,
  collection_ids uuid[] default null
)
returns table (
  chunk_id bigint,
  document_id uuid,
  document_name text,
  collection_id uuid,
  page_start integer,
  page_end integer,
  content text,
  score double precision,
  vector_rank integer,
  text_rank integer
)
language plpgsql
stable
security invoker
set search_path = ''
set plan_cache_mode = 'force_custom_plan'
as $$
declare
  candidates integer;
  words tsquery;
begin
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  candidates := match_count * 4;
  -- Any of the text's words of 4 letters or more, ranked by how densely a
  -- chunk covers them: a question ("how long does delivery take?") rarely
  -- has all its words in one chunk, which websearch_to_tsquery would demand,
  -- and the shortest words are the ones every chunk has.
  select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(w), ' | '))
  into words
  from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', left(coalesce(query_text, ''), 2000)))) w
  where length(w) >= 4;
  return query
  with vector_matches as (
    select v.id, row_number() over (order by v.distance)::integer as rank
    from private.vector_candidates(match_document_chunks.org_id, query_embedding, collection_ids, candidates) v
  ),
  text_matches as (
    select t.id, row_number() over (order by t.rank_value desc)::integer as rank
    from (
      select c.id, ts_rank_cd(c.fts, words) as rank_value
      from public.document_chunks c
      where words is not null and c.fts @@ words
        and c.org_id = match_document_chunks.org_id
        and (collection_ids is null or c.collection_id = any (collection_ids))
      order by rank_value desc
      limit candidates
    ) t
  ),
  fused as (
    select coalesce(v.id, t.id) as id, v.rank as v_rank, t.rank as t_rank,
      coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) as rrf
    from vector_matches v
    full join text_matches t on t.id = v.id
    order by rrf desc, id
    limit match_count
  )
  -- Only the winners are read back with their text and document.
  select c.id, c.document_id, d.name, c.collection_id, c.page_start, c.page_end, c.content,
    f.rrf::double precision, f.v_rank, f.t_rank
  from fused f
  join public.document_chunks c on c.org_id = match_document_chunks.org_id and c.id = f.id
  join public.documents d on d.id = c.document_id
  order by f.rrf desc, c.id;
end;
$$;
