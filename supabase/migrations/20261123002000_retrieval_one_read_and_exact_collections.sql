-- Retrieval, three changes to match_document_chunks and its vector half.
--
-- Without words: when the query has no text (or none of its words has 4
-- letters or more), the function skips the full-text half and its fusion and
-- reads the vector side's best match_count directly, scored as reciprocal
-- rank fusion scores a chunk only the vector side found (1 / (60 + rank)):
-- the answers the fused query gives then, without the planning and the
-- row-level-security checks of the unused half.
--
-- Each chunk read once: the vector half (private.vector_matches, replacing
-- private.vector_candidates, which returned ids and distances only) and the
-- text half return the chunk's columns from their own scans (the index scan
-- fetches the heap rows anyway), so the winners are not read back from
-- document_chunks; only their documents (for the name) are joined. About
-- 1 ms less per search on PGlite for an org of a few thousand chunks, a
-- third of the function's time (npm run bench:rag).
--
-- The graph walk: each org has its own graph (20261123001000), so the only
-- filter left is the optional collections one, and iterative scans (which
-- keep walking until enough rows pass a filter) run only with it; without a
-- filter they cost time for nothing (10-30% per search). ef_search is
-- pgvector's default, 40: the candidates asked for (match_count * 4).
-- A collection filter over collections holding few chunks is exact: with the
-- filter, the walk goes on until enough of the chunks it meets are in the
-- collections, so the rarer they are in the org's graph the longer it walks,
-- and it stops at hnsw.max_scan_tuples (20,000) with what it found. Scanning
-- the collections' chunks through the (org_id, collection_id) index and
-- ordering them all costs about 5 us a chunk on PGlite: for a collection of
-- 2% of a 5,000-chunk org the walk took 9.5 ms at p50 with recall@10 0.975,
-- the exact search 1.5 ms. Up to 2,000 chunks (about 11 ms at worst) the
-- search is exact; above, the walk, which then meets a match at least every
-- few steps. Counting stops at the limit, so a large collection costs at most
-- 2,001 index entries to find out.

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
declare
  exact_limit constant integer := 2000;
begin
  if collection_ids is not null then
    if (
      select count(*) from (
        select 1 from public.document_chunks c
        where c.org_id = vector_matches.org_id and c.collection_id = any (collection_ids)
        limit exact_limit + 1
      ) few
    ) <= exact_limit then
      -- Restored with the function's other settings when it returns.
      perform pg_catalog.set_config('enable_sort', 'on', true);
      return query
      select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
        (row_number() over (order by c.distance, c.id))::integer
      from (
        -- Ordered by an expression the graph cannot serve: every distance is computed.
        select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
          (c.embedding operator(extensions.<=>) query_embedding) + 0 as distance
        from public.document_chunks c
        where c.org_id = vector_matches.org_id and c.collection_id = any (collection_ids)
        order by distance, c.id
        limit candidates
      ) c;
      return;
    end if;
    perform pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
  end if;
  -- Materialised and ordered again: with a relaxed-order iterative scan the
  -- walk's rows may come slightly out of order.
  return query
  with walk as materialized (
    select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
      c.embedding operator(extensions.<=>) query_embedding as distance
    from public.document_chunks c
    where c.org_id = vector_matches.org_id
      and (collection_ids is null or c.collection_id = any (collection_ids))
    order by c.embedding operator(extensions.<=>) query_embedding
    limit candidates
  )
  select w.id, w.document_id, w.collection_id, w.page_start, w.page_end, w.content,
    (row_number() over (order by w.distance, w.id))::integer
  from walk w;
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
