-- A search filtered to collections that hold few chunks is exact. With the
-- filter, the HNSW walk keeps going until enough of the chunks it meets are
-- in the collections (pgvector's iterative scan), so the rarer they are in the
-- org's graph the longer it walks, and it stops at hnsw.max_scan_tuples
-- (20,000) with what it found. Scanning the collections' chunks through the
-- (org_id, collection_id) index and ordering them all costs about 5 us a chunk
-- on PGlite: npm run bench:rag measured, for a collection of 2% of a
-- 5,000-chunk org, the walk at p50 9.5 ms with recall@10 0.975 and the exact
-- search at 1.5 ms. Up to 2,000 chunks (about 11 ms at worst) the search is
-- exact; above, the walk, which then meets a match at least every few
-- steps. Counting stops at the limit, so a large collection costs at most
-- 2,001 index entries to find out.

create or replace function private.vector_matches(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer
)
returns table (
  id bigint, document_id uuid, collection_id uuid, page_start integer, page_end integer, content text, rank integer
)
language plpgsql
stable
security invoker
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
        order by 7, c.id
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
