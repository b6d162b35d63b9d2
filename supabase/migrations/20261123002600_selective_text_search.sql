-- The text half of a hybrid search keeps only the query's selective words.
--
-- match_document_chunks' text half ranks every chunk of the org that holds
-- any of the query's words (4 letters or more). A word most chunks hold (a
-- business's name, "price" in a price list) made it rank the whole org:
-- 77.6 ms at p50 for a 25,000-chunk org on PGlite, where a vector search
-- takes 3.5 ms (npm run bench:rag). Such a word carries almost nothing for
-- ranking (inverse document frequency), so the text half now takes the
-- query's words rarest first while the chunks holding them add up to
-- 1,000 at most, and leaves the others to the vector half; a query with no
-- word that selective searches by vector alone, as one without words did.
--
-- The rarity comes from private.chunk_term_counts: per org and indexed word,
-- how many chunks hold it, kept exact by statement triggers on
-- document_chunks as chunks come and go (ingestion replaces a document's
-- chunks in one transaction). Counting at query time instead read the
-- partition once per word and cost more than the search it bounded (tried
-- first and taken back). Counts are per org: a collection holds no more of a
-- word's chunks than its org, so the bound holds with a collection filter.
--
-- Lexemes come from the same 'simple' configuration as document_chunks.fts,
-- so the words looked up are exactly the ones the full-text index holds.
--
-- The text half also moves into a definer helper, private.text_matches,
-- which applies the chunks' read policy itself. Under row-level security
-- Postgres evaluates the policy before any condition that is not leakproof,
-- and the full-text match operator (@@) is not, so the invoker's query could
-- never use the full-text index: it read the org's whole partition (7 ms for
-- 25,000 chunks here) whatever the words. As the table's owner the helper's
-- query can, so the bound on the words bounds the rows read. Its rule is the
-- policy's own (knowledge.read in the org, or the service role), tested in
-- pgTAP 184 beside the policy's tests.
--
-- The full-text index is rebuilt without GIN's pending list (fastupdate
-- off). With it, new entries wait in an unordered list that every search
-- reads in full until a vacuum merges them, and PGlite runs no autovacuum:
-- a search for a word one chunk holds read 221 pending pages (1.4 ms), for
-- three such words 8.6 ms, in a 25,000-chunk org. Ingestion writes each
-- chunk's words into the index directly instead. New partitions inherit the
-- setting from the partitioned index.

drop index public.document_chunks_fts_idx;
create index document_chunks_fts_idx on public.document_chunks using gin (fts) with (fastupdate = off);

create table private.chunk_term_counts (
  org_id uuid not null references public.organizations (id) on delete cascade,
  term text not null,
  chunks integer not null constraint chunk_term_counts_positive check (chunks > 0),
  primary key (org_id, term)
);
comment on table private.chunk_term_counts is 'Per org and full-text lexeme, the number of document_chunks holding it (exact: statement triggers on document_chunks). The text half of match_document_chunks reads it to leave out the words most chunks hold.';
revoke all on private.chunk_term_counts from public, anon, authenticated, service_role;

-- Applies one statement's change in counts (parallel arrays: org, word,
-- change). Rows are locked in key order, so concurrent ingestions in one org
-- cannot deadlock on the words they share.
create function private.apply_chunk_term_deltas(org_ids uuid[], terms text[], deltas integer[])
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1
  from private.chunk_term_counts c
  join unnest(org_ids, terms) d(org_id, term) on d.org_id = c.org_id and d.term = c.term
  order by c.org_id, c.term
  for update of c;

  delete from private.chunk_term_counts c
  using unnest(org_ids, terms, deltas) d(org_id, term, delta)
  where d.org_id = c.org_id and d.term = c.term and c.chunks + d.delta <= 0;

  update private.chunk_term_counts c
  set chunks = c.chunks + d.delta
  from unnest(org_ids, terms, deltas) d(org_id, term, delta)
  where d.org_id = c.org_id and d.term = c.term and d.delta < 0;

  insert into private.chunk_term_counts as c (org_id, term, chunks)
  select d.org_id, d.term, d.delta
  from unnest(org_ids, terms, deltas) d(org_id, term, delta)
  where d.delta > 0
  order by d.org_id, d.term
  on conflict (org_id, term) do update set chunks = c.chunks + excluded.chunks;
end;
$$;
revoke execute on function private.apply_chunk_term_deltas(uuid[], text[], integer[]) from public;

create function private.count_chunk_terms()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org_ids uuid[];
  terms text[];
  deltas integer[];
begin
  -- Transition tables exist only for their operations; PL/pgSQL plans each
  -- branch on first use, so a branch names only the tables its operation has.
  if tg_op = 'INSERT' then
    select array_agg(t.org_id), array_agg(t.term), array_agg(t.delta) into org_ids, terms, deltas
    from (
      select n.org_id, w.term, count(*)::integer as delta
      from new_chunks n
      cross join lateral unnest(pg_catalog.tsvector_to_array(n.fts)) w(term)
      group by n.org_id, w.term
    ) t;
  elsif tg_op = 'DELETE' then
    select array_agg(t.org_id), array_agg(t.term), array_agg(t.delta) into org_ids, terms, deltas
    from (
      select o.org_id, w.term, -count(*)::integer as delta
      from old_chunks o
      cross join lateral unnest(pg_catalog.tsvector_to_array(o.fts)) w(term)
      -- Deleting an org removes its counts by cascade; nothing to subtract.
      where exists (select 1 from public.organizations g where g.id = o.org_id)
      group by o.org_id, w.term
    ) t;
  else
    -- Only rows whose text (or org) changed: moving a document to another
    -- collection updates its chunks without changing a word.
    with changed as (
      select o.org_id as old_org_id, o.fts as old_fts, n.org_id as new_org_id, n.fts as new_fts
      from old_chunks o join new_chunks n on n.id = o.id
      where o.fts is distinct from n.fts or o.org_id is distinct from n.org_id
    )
    select array_agg(t.org_id), array_agg(t.term), array_agg(t.delta) into org_ids, terms, deltas
    from (
      select x.org_id, w.term, sum(x.delta)::integer as delta
      from (
        select c.old_org_id as org_id, c.old_fts as fts, -1 as delta from changed c
        union all
        select c.new_org_id, c.new_fts, 1 from changed c
      ) x
      cross join lateral unnest(pg_catalog.tsvector_to_array(x.fts)) w(term)
      group by x.org_id, w.term
      having sum(x.delta) <> 0
    ) t;
  end if;
  if terms is not null then
    perform private.apply_chunk_term_deltas(org_ids, terms, deltas);
  end if;
  return null;
end;
$$;
revoke execute on function private.count_chunk_terms() from public;

create trigger document_chunks_count_terms_inserted after insert on public.document_chunks
  referencing new table as new_chunks for each statement execute function private.count_chunk_terms();
create trigger document_chunks_count_terms_updated after update on public.document_chunks
  referencing old table as old_chunks new table as new_chunks for each statement execute function private.count_chunk_terms();
create trigger document_chunks_count_terms_deleted after delete on public.document_chunks
  referencing old table as old_chunks for each statement execute function private.count_chunk_terms();

insert into private.chunk_term_counts (org_id, term, chunks)
select c.org_id, w.term, count(*)::integer
from public.document_chunks c
cross join lateral unnest(pg_catalog.tsvector_to_array(c.fts)) w(term)
group by c.org_id, w.term;

-- The query's words for the text half: lexemes of 4 letters or more that the
-- org's chunks hold, rarest first while their chunks add up to `budget` at
-- most. Definer (the counts are private), so it answers only for the service
-- role and for orgs whose knowledge the caller may read, and nothing
-- otherwise, as RLS would.
create function private.selective_query_terms(org_id uuid, query_text text, budget integer)
returns text[]
language sql
stable
security definer
set search_path = ''
as $$
  select pg_catalog.array_agg(s.term order by s.chunks, s.term)
  from (
    select c.term, c.chunks,
      sum(c.chunks) over (order by c.chunks, c.term) as running
    from (
      select distinct w as term
      from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', left(query_text, 2000)))) w
      where length(w) >= 4
    ) q
    join private.chunk_term_counts c on c.org_id = selective_query_terms.org_id and c.term = q.term
    -- The service role too: bot API keys and Telegram chat as it.
    where auth.role() is not distinct from 'service_role'
      or selective_query_terms.org_id = any (array(select private.readable_org_ids('knowledge.read')))
  ) s
  where s.running <= budget;
$$;
revoke execute on function private.selective_query_terms(uuid, text, integer) from public;
grant execute on function private.selective_query_terms(uuid, text, integer) to authenticated, service_role;
comment on function private.selective_query_terms(uuid, text, integer) is 'match_document_chunks'' text half: the query''s words the org''s chunks hold, rarest first while their chunk counts add up to budget at most (null when none); only for the service role and orgs the caller may read.';

-- The text half: the org's chunks holding any of the words, best covered
-- first. Definer, with the read policy of document_chunks applied here (see
-- above); anyone else gets no rows, as RLS would give them.
create function private.text_matches(org_id uuid, words tsquery, collection_ids uuid[], candidates integer)
returns table (
  id bigint, document_id uuid, collection_id uuid, page_start integer, page_end integer, content text, rank integer
)
language sql
stable
security definer
rows 40
set search_path = ''
-- Planned for the org and the words (one partition, the words' selectivity).
set plan_cache_mode = 'force_custom_plan'
as $$
  select t.id, t.document_id, t.collection_id, t.page_start, t.page_end, t.content,
    (row_number() over (order by t.rank_value desc, t.id))::integer
  from (
    select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
      pg_catalog.ts_rank_cd(c.fts, words) as rank_value
    from public.document_chunks c
    where c.org_id = text_matches.org_id
      and c.fts operator(pg_catalog.@@) words
      and (collection_ids is null or c.collection_id = any (collection_ids))
      and (auth.role() is not distinct from 'service_role'
        or text_matches.org_id = any (array(select private.readable_org_ids('knowledge.read'))))
    order by rank_value desc, c.id
    limit candidates
  ) t;
$$;
revoke execute on function private.text_matches(uuid, tsquery, uuid[], integer) from public;
grant execute on function private.text_matches(uuid, tsquery, uuid[], integer) to authenticated, service_role;
comment on function private.text_matches(uuid, tsquery, uuid[], integer) is 'match_document_chunks'' text half: the org''s chunks matching the words, ranked by ts_rank_cd; definer so the full-text index is usable, with document_chunks'' read policy applied in the query (knowledge.read or the service role).';

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
  -- At most this many chunks hold the words the text half searches for.
  text_budget constant integer := 1000;
  candidates integer;
  terms text[];
  words tsquery;
begin
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  candidates := match_count * 4;
  -- Any of the selective words, ranked by how densely a chunk covers them: a
  -- question ("how long does delivery take?") rarely has all its words in
  -- one chunk, which websearch_to_tsquery would demand.
  if query_text is not null then
    terms := private.selective_query_terms(match_document_chunks.org_id, query_text, text_budget);
    if terms is not null then
      select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(t), ' | '))
      into words
      from unnest(terms) t;
    end if;
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
    select t.id, t.document_id, t.collection_id, t.page_start, t.page_end, t.content, t.rank
    from private.text_matches(match_document_chunks.org_id, words, collection_ids, candidates) t
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
