-- Documents know which embedding model made their vectors.
--
-- Vectors of OpenAI text-embedding-3-small, offline-lexical-v2 and offline-lexical-v1 live in unrelated spaces,
-- and nothing recorded which one embedded a document's chunks. A deployment that set OPENAI_API_KEY after running
-- offline ranked every old chunk by the cosine between two unrelated spaces (random chunks filled the vector
-- half's top 10 and became chat sources), nobody could list what to re-ingest, and a document ingested in steps
-- across a redeploy that changed the provider published chunks of two spaces.
--
-- 1. public.documents.embedding_model: the model of the document's live chunks, set by finish_ingest from the
--    run's ingest_model; null is unknown (published before this migration) or no chunks. fail_ingest keeps it
--    with the chunks it keeps (a retry of a ready document) and clears it with the chunks it deletes.
-- 2. public.documents.ingest_model: the model of the run's staged chunks, recorded by the run's first save
--    (save_ingest_step at cursor 0). A later save of another model is refused (stale), and the ingest step
--    restarts a run whose model differs from its provider's (restart_ingest_run: staged chunks discarded, a new
--    run from page 1), so one run never stages two models. A run staged before this migration (cursor past 0,
--    no model) restarts too: its model is unknown.
-- 3. match_document_chunks(..., query_model): given, its vector half keeps only chunks of documents whose
--    embedding_model is query_model or null (legacy documents of unknown model are kept: they are most likely of
--    the deployment's only model, and dropping them would empty the vector half of every org until it
--    re-ingests); the text half is unchanged. The one-statement search joins the winners' documents inside the
--    walk, so the filter applies before the limit (one scan of the org's partition, one plan, as before);
--    private.vector_matches (searches with words or collections) checks the document in its walk. Both fold the
--    check away when query_model is null (custom plans), so callers that pass nothing search as before.
--    match_bot_chunks passes its own query_model through.
-- 4. Each walk sets hnsw.ef_search to the rows it must yield (at least pgvector's default 40, which the default
--    search keeps): without an iterative scan a walk gives back at most ef_search rows, so match_count 50
--    returned 40 and the fused paths got 40 of their 200 vector candidates (20261123002000 fixed ef_search at 40).
-- 5. One search returns a chunk content once: the same file stored as two documents (a re-post without an
--    Idempotency-Key, a second upload) filled the chat's sources with the same text twice. Each half keeps the
--    best-ranked row of a content and ranks the contents; the fused halves meet on the content and ask for
--    match_count * 4 rows, so match_count distinct chunks still come back; the plain walk reads match_count rows
--    and answers their distinct contents (fewer when copies are among them: four times the rows cost 0.3-0.4 ms
--    a search in the bench's small orgs).

-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind the exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing). The
-- columns are plain (no rewrite) and their checks not valid: validating them scanned every document under the
-- exclusive lock (a quarter of a second at 1M documents), and every existing value is null.
select pg_catalog.set_config('lock_timeout', '5s', true);
alter table public.documents
  add column embedding_model text,
  add column ingest_model text,
  add constraint documents_embedding_model_length check (char_length(embedding_model) between 1 and 100) not valid,
  add constraint documents_ingest_model_length check (char_length(ingest_model) between 1 and 100) not valid;

comment on column public.documents.embedding_model is 'The embedding model of the document''s chunks (set when a run publishes them); null: unknown (published before 20261123015200) or no chunks.';
comment on column public.documents.ingest_model is 'The embedding model of the current run''s staged chunks, recorded by its first save; ingestion''s bookkeeping.';

-- ---------------------------------------------------------------------------
-- Ingestion
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123007900_knowledge_deletion_and_paths.sql; only model is new.
drop function private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer);
create function private.save_ingest_step(
  document_id uuid, run_id uuid, chunks jsonb, next_cursor integer, progress integer, page_count integer,
  model text default null
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  at_cursor integer;
  run_model text;
begin
  select d.ingest_cursor, d.ingest_model into at_cursor, run_model from public.documents d
  where d.id = save_ingest_step.document_id and d.ingest_run = save_ingest_step.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  -- Past the first save the run has a model: chunks of another would be published beside its own.
  if model is not null and at_cursor > 0 and run_model is distinct from model then
    return false;
  end if;
  insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select save_ingest_step.run_id, save_ingest_step.document_id, (c ->> 'chunk_index')::integer,
    (c ->> 'page_start')::integer, (c ->> 'page_end')::integer, c ->> 'content', (c ->> 'token_count')::integer,
    (c ->> 'embedding')::extensions.vector(1536)
  from jsonb_array_elements(coalesce(chunks, '[]')) c
  on conflict on constraint document_chunk_staging_pkey do update
    set page_start = excluded.page_start, page_end = excluded.page_end, content = excluded.content,
        token_count = excluded.token_count, embedding = excluded.embedding;
  update public.documents d
  set ingest_cursor = next_cursor, progress = least(greatest(save_ingest_step.progress, 0), 99),
      page_count = coalesce(save_ingest_step.page_count, d.page_count),
      ingest_model = coalesce(save_ingest_step.model, d.ingest_model)
  where d.id = save_ingest_step.document_id;
  return true;
end;
$$;
revoke execute on function private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer, text) from public;
grant execute on function private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer, text) to service_role;
comment on function private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer, text) is 'Stages a step''s chunks and moves the run''s cursor; the first save records the run''s embedding model, a later save of another model is refused (false), as a stale step is.';

create function private.restart_ingest_run(document_id uuid, run_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d
  where d.id = restart_ingest_run.document_id and d.ingest_run = restart_ingest_run.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  -- A new run: a copy of the old run's step still embedding finds itself stale when it saves.
  update public.documents d
  set ingest_run = gen_random_uuid(), ingest_cursor = 0, progress = 0, ingest_model = null
  where d.id = doc.id;
  return true;
end;
$$;
revoke execute on function private.restart_ingest_run(uuid, uuid) from public;
grant execute on function private.restart_ingest_run(uuid, uuid) to service_role;
comment on function private.restart_ingest_run(uuid, uuid) is 'Starts the document''s run again from its first page, its staged chunks discarded: the ingest step''s provider embeds with another model than the run staged (or a run staged before 20261123015200, of unknown model). False when the run is no longer current.';

-- Latest definition: 20261123013700_chunk_queries_name_their_org.sql; only embedding_model and ingest_model are new.
create or replace function private.fail_ingest(document_id uuid, run_id uuid, reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  doc public.documents;
  why text := left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000);
begin
  select * into doc from public.documents d
  where d.id = fail_ingest.document_id
    and (fail_ingest.run_id is null or d.ingest_run = fail_ingest.run_id)
    and d.status in ('queued', 'processing')
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  -- One chunk-writing transaction of the org at a time (see the header).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(doc.org_id::text));
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  -- A retry with no upload since re-reads the file the live chunks were built from: they stay the answer,
  -- with the model that embedded them.
  if doc.retried_at is not null and doc.chunk_count > 0 then
    update public.documents d
    set status = 'ready', progress = 100, ingest_run = null, retried_at = null, last_failure_reason = why,
        ingest_model = null
    where d.id = doc.id;
    perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
      'document_id', doc.id, 'name', doc.name, 'reason', why, 'status', 'ready'));
    return true;
  end if;
  delete from public.document_chunks c where c.org_id = doc.org_id and c.document_id = doc.id;
  update public.documents d
  set status = 'failed', failure_reason = why, progress = 0, chunk_count = 0, ingest_run = null,
      retried_at = null, last_failure_reason = null, embedding_model = null, ingest_model = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'reason', why));
  return true;
end;
$$;

-- Latest definition: 20261123013700_chunk_queries_name_their_org.sql; only embedding_model and ingest_model are new.
create or replace function private.finish_ingest(document_id uuid, run_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  doc public.documents;
  chunk_total integer;
begin
  select * into doc from public.documents d
  where d.id = finish_ingest.document_id and d.ingest_run = finish_ingest.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return null;
  end if;
  -- One chunk-writing transaction of the org at a time (see the header).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(doc.org_id::text));
  select count(*) into chunk_total from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id;
  if chunk_total = 0 then
    perform private.fail_ingest(doc.id, finish_ingest.run_id, 'The file contains no text to index (a scanned document needs OCR first).');
    return 0;
  end if;
  delete from public.document_chunks c where c.org_id = doc.org_id and c.document_id = doc.id;
  insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select doc.org_id, doc.id, doc.collection_id, s.chunk_index, s.page_start, s.page_end, s.content, s.token_count, s.embedding
  from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id
  order by s.chunk_index;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  -- The published chunks are the run's: so is their model (null when the run's saves named none).
  update public.documents d
  set status = 'ready', progress = 100, chunk_count = chunk_total, ingest_run = null, ingested_at = now(),
      retried_at = null, last_failure_reason = null, embedding_model = doc.ingest_model, ingest_model = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.ready', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'collection_id', doc.collection_id,
    'pages', coalesce(doc.page_count, 1), 'chunks', chunk_total));
  return chunk_total;
end;
$$;

-- ---------------------------------------------------------------------------
-- Retrieval
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123002000_retrieval_one_read_and_exact_collections.sql; only query_model is new.
drop function private.vector_matches(uuid, extensions.vector, uuid[], integer);
create function private.vector_matches(
  org_id uuid, query_embedding extensions.vector(1536), collection_ids uuid[], candidates integer,
  query_model text default null
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
-- Raised to the candidates before the walk; restored with the others when it returns.
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
          and (query_model is null or exists (
            select 1 from public.documents d
            where d.id = c.document_id and (d.embedding_model is null or d.embedding_model = query_model)))
        order by distance, c.id
        limit candidates
      ) c;
      return;
    end if;
    perform pg_catalog.set_config('hnsw.iterative_scan', 'relaxed_order', true);
  end if;
  -- Without an iterative scan the walk gives back at most ef_search rows (pgvector allows up to 1000).
  perform pg_catalog.set_config('hnsw.ef_search', least(greatest(40, candidates), 1000)::text, true);
  -- Materialised and ordered again: with a relaxed-order iterative scan the
  -- walk's rows may come slightly out of order.
  return query
  with walk as materialized (
    select c.id, c.document_id, c.collection_id, c.page_start, c.page_end, c.content,
      c.embedding operator(extensions.<=>) query_embedding as distance
    from public.document_chunks c
    where c.org_id = vector_matches.org_id
      and (collection_ids is null or c.collection_id = any (collection_ids))
      and (query_model is null or exists (
        select 1 from public.documents d
        where d.id = c.document_id and (d.embedding_model is null or d.embedding_model = query_model)))
    order by c.embedding operator(extensions.<=>) query_embedding
    limit candidates
  )
  select w.id, w.document_id, w.collection_id, w.page_start, w.page_end, w.content,
    (row_number() over (order by w.distance, w.id))::integer
  from walk w;
end;
$$;
revoke execute on function private.vector_matches(uuid, extensions.vector, uuid[], integer, text) from public;
grant execute on function private.vector_matches(uuid, extensions.vector, uuid[], integer, text) to authenticated, service_role;
comment on function private.vector_matches(uuid, extensions.vector, uuid[], integer, text) is 'match_document_chunks'' vector half: the org''s nearest chunks by its HNSW graph, with their columns and rank (invoker: RLS applies); with query_model, only chunks of documents embedded by it or of unknown model.';

-- Latest definition: 20261123005000_vector_search_one_statement.sql; only query_model is new, and the
-- one-statement path joins the documents inside the walk (the filter applies before its limit).
drop function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[]);
create function public.match_document_chunks(
  org_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10,
  collection_ids uuid[] default null,
  query_model text default null
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
-- For the walk below (as private.vector_matches sets them): the org's HNSW
-- graph, no iterative scan, ef_search 40 raised to the walk's candidates. The
-- other searches take Postgres's defaults back first.
set hnsw.iterative_scan = 'off'
set hnsw.ef_search = 40
set enable_sort = off
set enable_seqscan = off
set enable_bitmapscan = off
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
  -- Every distance to a null vector is null, so the walk would return chunks
  -- in no meaningful order, scored as if they matched.
  if query_embedding is null then
    raise exception 'query_embedding is required' using errcode = 'invalid_parameter_value';
  end if;
  -- A zero vector has no direction: its cosine distance to anything is NaN.
  if extensions.vector_norm(query_embedding) = 0 then
    raise exception 'query_embedding must not be all zeros' using errcode = 'invalid_parameter_value';
  end if;
  -- Each fused half's rows, so match_count distinct contents remain when a
  -- file is stored twice (every search keeps one row per content, compared
  -- bytewise: collate "C" is exact equality, and cheaper than an md5 of every
  -- row).
  candidates := match_count * 4;

  -- A vector search of the whole org (no words, no collections): the walk
  -- and the winners' documents in one statement; a chunk of a document
  -- embedded by another model than the query's is passed over in the walk.
  -- It reads match_count rows and answers their distinct contents, so a copy
  -- costs a row rather than every search reading four times the rows (0.3-0.4
  -- ms more a search in `npm run bench:rag`'s orgs of 1,500 and 4,084 chunks).
  if query_text is null and collection_ids is null then
    -- The walk gives back at most ef_search rows: 40, the default's, for
    -- match_count 10.
    perform pg_catalog.set_config('hnsw.ef_search', greatest(40, match_count)::text, true);
    return query
    select w.id, w.document_id, w.name, w.collection_id, w.page_start, w.page_end, w.content,
      (1.0 / (60 + w.rank))::double precision, w.rank, null::integer
    from (
      select u.id, u.document_id, u.name, u.collection_id, u.page_start, u.page_end, u.content,
        (row_number() over (order by u.distance, u.id))::integer as rank
      from (
        select n.id, n.document_id, n.name, n.collection_id, n.page_start, n.page_end, n.content, n.distance,
          row_number() over (partition by n.content collate "C" order by n.distance, n.id) as nth_copy
        from (
          select c.id, c.document_id, d.name, c.collection_id, c.page_start, c.page_end, c.content,
            c.embedding operator(extensions.<=>) query_embedding as distance
          from public.document_chunks c
          join public.documents d on d.id = c.document_id
            and (query_model is null or d.embedding_model is null or d.embedding_model = query_model)
          where c.org_id = match_document_chunks.org_id
          order by c.embedding operator(extensions.<=>) query_embedding
          limit match_count
        ) n
      ) u
      where u.nth_copy = 1
    ) w
    where w.rank <= match_count
    order by w.rank;
    return;
  end if;
  -- Restored with the function's settings when it returns.
  perform pg_catalog.set_config('enable_sort', 'on', true), pg_catalog.set_config('enable_seqscan', 'on', true),
    pg_catalog.set_config('enable_bitmapscan', 'on', true);
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

  -- Without words, the vector side's best match_count contents, scored as
  -- reciprocal rank fusion scores a chunk only the vector side found.
  if words is null then
    return query
    select v.id, v.document_id, d.name, v.collection_id, v.page_start, v.page_end, v.content,
      (1.0 / (60 + v.rank))::double precision, v.rank, null::integer
    from (
      select u.id, u.document_id, u.collection_id, u.page_start, u.page_end, u.content,
        (row_number() over (order by u.rank))::integer as rank
      from (
        select m.id, m.document_id, m.collection_id, m.page_start, m.page_end, m.content, m.rank,
          row_number() over (partition by m.content collate "C" order by m.rank) as nth_copy
        from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, candidates, query_model) m
      ) u
      where u.nth_copy = 1
    ) v
    join public.documents d on d.id = v.document_id
    where v.rank <= match_count
    order by v.rank;
    return;
  end if;

  -- Each half ranks its contents (a content's best row), and the halves meet on
  -- the content: one copy found by its vector and another by its words is one
  -- chunk found by both.
  return query
  with vector_matches as (
    select u.id, u.document_id, u.collection_id, u.page_start, u.page_end, u.content,
      (row_number() over (order by u.rank))::integer as rank
    from (
      select m.id, m.document_id, m.collection_id, m.page_start, m.page_end, m.content, m.rank,
        row_number() over (partition by m.content collate "C" order by m.rank) as nth_copy
      from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, candidates, query_model) m
    ) u
    where u.nth_copy = 1
  ),
  text_matches as (
    select u.id, u.document_id, u.collection_id, u.page_start, u.page_end, u.content,
      (row_number() over (order by u.rank))::integer as rank
    from (
      select m.id, m.document_id, m.collection_id, m.page_start, m.page_end, m.content, m.rank,
        row_number() over (partition by m.content collate "C" order by m.rank) as nth_copy
      from private.text_matches(match_document_chunks.org_id, words, collection_ids, candidates) m
    ) u
    where u.nth_copy = 1
  ),
  fused as (
    select coalesce(v.id, t.id) as id, coalesce(v.document_id, t.document_id) as document_id,
      coalesce(v.collection_id, t.collection_id) as collection_id, coalesce(v.page_start, t.page_start) as page_start,
      coalesce(v.page_end, t.page_end) as page_end, coalesce(v.content, t.content) as content,
      v.rank as v_rank, t.rank as t_rank,
      coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) as rrf
    from vector_matches v
    full join text_matches t on t.content collate "C" = v.content
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
revoke execute on function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[], text) from public, anon;
grant execute on function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[], text) to authenticated, service_role;
comment on function public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[], text) is 'Hybrid retrieval (vector + full text, RRF) over the org''s chunks the caller may read; returns text, score, document and pages for citations, each chunk content once (its best-ranked copy). With query_model (the model that embedded query_embedding), the vector half keeps only chunks of documents embedded by that model or of unknown model (embedding_model null); the text half is unchanged.';

-- Latest definition: 20261123014600_rpc_not_found_404.sql; only query_model is new.
drop function public.match_bot_chunks(uuid, extensions.vector, text, integer);
create function public.match_bot_chunks(
  bot_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10,
  query_model text default null
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
as $$
declare
  bot_org_id uuid;
  collection_ids uuid[];
begin
  if query_embedding is null then
    raise exception 'query_embedding is required' using errcode = 'invalid_parameter_value';
  end if;
  if extensions.vector_norm(query_embedding) = 0 then
    raise exception 'query_embedding must not be all zeros' using errcode = 'invalid_parameter_value';
  end if;
  select b.org_id into bot_org_id from public.bots b where b.id = match_bot_chunks.bot_id;
  if bot_org_id is null then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  -- No linked collection: the bot answers from every document of its org.
  select array_agg(bc.collection_id order by bc.collection_id) into collection_ids
  from public.bot_collections bc where bc.bot_id = match_bot_chunks.bot_id;
  return query
  select m.* from public.match_document_chunks(bot_org_id, query_embedding, query_text, match_count, collection_ids, query_model) m;
end;
$$;
revoke execute on function public.match_bot_chunks(uuid, extensions.vector, text, integer, text) from public, anon;
grant execute on function public.match_bot_chunks(uuid, extensions.vector, text, integer, text) to authenticated, service_role;
comment on function public.match_bot_chunks(uuid, extensions.vector, text, integer, text) is 'match_document_chunks over what a bot answers from: its collections, or every document of its org when it has none. As the caller: the bot must be visible (bots.read) and the chunks readable (knowledge.read); PT404 for a bot the caller cannot see. query_model as match_document_chunks''.';
