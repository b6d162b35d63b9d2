-- Retrieval reads each chunk once: the vector half returns the chunk's
-- columns from the graph walk itself (the index scan fetches the heap rows
-- anyway), and so does the text half, so match_document_chunks no longer
-- joins document_chunks again to read its winners back; only their documents
-- (for the name) are joined. The same answers; about 1 ms less per search on
-- PGlite for an org of a few thousand chunks, a third of the function's time
-- (npm run bench:rag), from one partition scan and its row-level-security
-- check fewer.
--
-- private.vector_matches replaces private.vector_candidates (which returned
-- ids and distances only) with the same settings: each org has its own graph
-- (20261123001000), iterative scans only with a collection filter, ef_search
-- 40 (20261123002000).

create function private.vector_matches(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer
)
returns table (
  id bigint, document_id uuid, collection_id uuid, page_start integer, page_end integer, content text, rank integer
)
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
  -- The rank follows the walk's order (the window orders by the distance the
  -- scan is already ordered by, so no sort is planned).
  return query
  select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
    (row_number() over (order by c.distance))::integer
  from (
    select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
      c.embedding operator(extensions.<=>) query_embedding as distance
    from public.document_chunks c
    where c.org_id = vector_matches.org_id
      and (collection_ids is null or c.collection_id = any (collection_ids))
    order by c.embedding operator(extensions.<=>) query_embedding
    limit candidates
  ) c;
end;
$$;
revoke execute on function private.vector_matches(uuid, extensions.vector, uuid[], integer) from public;
grant execute on function private.vector_matches(uuid, extensions.vector, uuid[], integer) to authenticated, service_role;
comment on function private.vector_matches(uuid, extensions.vector, uuid[], integer) is 'match_document_chunks'' vector half: the org''s nearest chunks by its HNSW graph, with their columns and rank (invoker: RLS applies).';

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

  -- Without words, the vector side's best match_count, scored as reciprocal
  -- rank fusion scores a chunk only the vector side found.
  if words is null then
    return query
    select v.id, v.document_id, d.name, v.collection_id, v.page_start, v.page_end, v.content,
      (1.0 / (60 + v.rank))::double precision, v.rank, null::integer
    from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, match_count) v
    join public.documents d on d.id = v.document_id
    order by v.rank;
    return;
  end if;

  return query
  with vector_matches as (
    select v.id, v.document_id, v.collection_id, v.page_start, v.page_end, v.content, v.rank
    from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, candidates) v
  ),
  text_matches as (
    select t.id, t.document_id, t.collection_id, t.page_start, t.page_end, t.content,
      row_number() over (order by t.rank_value desc)::integer as rank
    from (
      select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
        ts_rank_cd(c.fts, words) as rank_value
      from public.document_chunks c
      where c.fts @@ words
        and c.org_id = match_document_chunks.org_id
        and (collection_ids is null or c.collection_id = any (collection_ids))
      order by rank_value desc
      limit candidates
    ) t
  ),
  fused as (
    select coalesce(v.id, t.id) as id, coalesce(v.document_id, t.document_id) as document_id,
      coalesce(v.collection_id, t.collection_id) as collection_id, coalesce(v.page_start, t.page_start) as page_start,
      coalesce(v.page_end, t.page_end) as page_end, coalesce(v.content, t.content) as content,
      v.rank as v_rank, t.rank as t_rank,
      coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) as rrf
    from vector_matches v
    full join text_matches t on t.id = v.id
    order by rrf desc, id
    limit match_count
  )
  select f.id, f.document_id, d.name, f.collection_id, f.page_start, f.page_end, f.content,
    f.rrf::double precision, f.v_rank, f.t_rank
  from fused f
  join public.documents d on d.id = f.document_id
  order by f.rrf desc, f.id;
end;
$$;

drop function private.vector_candidates(uuid, extensions.vector, uuid[], integer);
