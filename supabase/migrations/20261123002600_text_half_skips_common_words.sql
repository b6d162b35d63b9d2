-- The text half of match_document_chunks ranks about 1,000 chunks at most.
-- It ranks every chunk that matches any of the query's words, so one word
-- found everywhere (a business's name; "about" in npm run bench:rag's
-- synthetic chunks) made it rank the whole org: 18.8 ms at p50 for a
-- 5,000-chunk org instead of 6.7 ms for a topical question, and growing
-- with the org. Now the query's words are taken rarest first while the
-- chunks they match add up to 1,000 at most: the most common ones say least
-- about which chunk answers (the inverse-document-frequency idea), and with
-- none left the search is by vector alone. Counting a word stops at 1,001
-- matches.

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
  rank_limit constant integer := 1000;
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
  -- and the shortest words are the ones every chunk has. Every chunk a word
  -- matches is ranked, so the words are taken rarest first while the chunks
  -- they match add up to rank_limit at most: a word in hundreds of chunks (a
  -- business's name in all its documents) tells little about which one
  -- answers. Each word's count stops past the limit.
  if query_text is not null then
    select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(x.w), ' | '))
    into words
    from (
      select f.w, sum(f.n) over (order by f.n, f.w) as running
      from (
        select w, (
          select count(*) from (
            select 1 from public.document_chunks c
            where c.fts @@ pg_catalog.to_tsquery('simple', pg_catalog.quote_literal(w))
              and c.org_id = match_document_chunks.org_id
              and (collection_ids is null or c.collection_id = any (collection_ids))
            limit rank_limit + 1
          ) few
        ) as n
        from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', left(query_text, 2000)))) w
        where length(w) >= 4
      ) f
    ) x
    where x.running <= rank_limit;
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
