-- Retrieval without words: when the query has no text (or none of its words
-- has 4 letters or more), match_document_chunks skips the full-text half and
-- its fusion, and reads the chunks of the vector side's best match_count
-- directly, scored as reciprocal rank fusion scores a chunk only the vector
-- side found (1 / (60 + rank)). The answers are the ones the fused query
-- gives then; each search saves the planning and the row-level-security
-- checks of the unused half, which matter next to a small org's graph walk.
--
-- The graph walk itself: each org has its own graph (20261123001000), so the
-- only filter left is the optional collections one, and iterative scans
-- (which keep walking until enough rows pass a filter) run only with it;
-- without a filter they cost time for nothing (npm run bench:rag: 10-30% per
-- search). ef_search is pgvector's default, 40: the candidates asked for
-- (match_count * 4, 40 by default); recall@10 stays 0.975 on the 25,000-chunk
-- org of the benchmark (0.987 at 100, 1.000 for the smaller orgs).

create or replace function private.vector_candidates(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer
)
returns table (id bigint, distance double precision)
language plpgsql
stable
security invoker
-- What it returns at most (match_count * 4), so the caller's joins are planned
-- as index lookups rather than hash joins over the whole partition.
rows 40
set search_path = ''
set plan_cache_mode = 'force_custom_plan'
set hnsw.iterative_scan = 'off'
set hnsw.ef_search = 40
set enable_sort = off
set enable_seqscan = off
set enable_bitmapscan = off
as $$
begin
  if collection_ids is not null then
    -- Restored with the function's other settings when it returns.
    perform pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
  end if;
  return query
  select c.id, c.embedding operator(extensions.<=>) query_embedding
  from public.document_chunks c
  where c.org_id = vector_candidates.org_id
    and (collection_ids is null or c.collection_id = any (collection_ids))
  order by c.embedding operator(extensions.<=>) query_embedding
  limit candidates;
end;
$$;

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
  if query_text is not null then
    select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(w), ' | '))
    into words
    from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', left(query_text, 2000)))) w
    where length(w) >= 4;
  end if;

  if words is null then
    return query
    select c.id, c.document_id, d.name, c.collection_id, c.page_start, c.page_end, c.content,
      (1.0 / (60 + v.rank))::double precision, v.rank, null::integer
    from (
      select v.id, row_number() over (order by v.distance)::integer as rank
      from private.vector_candidates(match_document_chunks.org_id, query_embedding, collection_ids, match_count) v
    ) v
    join public.document_chunks c on c.org_id = match_document_chunks.org_id and c.id = v.id
    join public.documents d on d.id = c.document_id
    order by v.rank;
    return;
  end if;

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
      where c.fts @@ words
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
