-- The text half of a hybrid search answers whoever the vector half answers.
--
-- match_document_chunks runs as its caller: its vector half reads
-- document_chunks under RLS, so a role that bypasses RLS (the service role,
-- the table's superuser owner) reads every org's chunks. Its text half runs
-- in definer helpers (private.selective_query_terms, private.text_matches:
-- 20261123002600) that apply the read policy themselves, and they let the
-- service role through only by its JWT claims (auth.role()). A caller that is
-- the service role without claims (an edge function's asServiceRole, a cron
-- job, the SQL editor as postgres) got vector results with the text half
-- silently missing: a part number the vector half cannot see was never found.
-- The helpers now also let through the role RLS itself lets through: the
-- role the query runs as (SET ROLE, else the session's user) when it is a
-- superuser or has BYPASSRLS. A definer function does not change the role
-- setting, so the helpers see the caller's.

create function private.caller_bypasses_rls()
returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce((
    select r.rolsuper or r.rolbypassrls
    from pg_catalog.pg_roles r
    where r.rolname = coalesce(nullif(pg_catalog.current_setting('role', true), 'none'), session_user)
  ), false);
$$;
revoke execute on function private.caller_bypasses_rls() from public;
comment on function private.caller_bypasses_rls() is 'Whether the role the current query runs as (SET ROLE, else the session user) bypasses row-level security: for definer helpers that apply a table''s read policy themselves.';

create or replace function private.selective_query_terms(org_id uuid, query_text text, budget integer)
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
      or (select private.caller_bypasses_rls())
      or selective_query_terms.org_id = any (array(select private.readable_org_ids('knowledge.read')))
  ) s
  where s.running <= budget;
$$;
comment on function private.selective_query_terms(uuid, text, integer) is 'match_document_chunks'' text half: the query''s words the org''s chunks hold, rarest first while their chunk counts add up to budget at most (null when none); only for the service role, roles that bypass RLS, and orgs the caller may read.';

create or replace function private.text_matches(org_id uuid, words tsquery, collection_ids uuid[], candidates integer)
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
        or (select private.caller_bypasses_rls())
        or text_matches.org_id = any (array(select private.readable_org_ids('knowledge.read'))))
    order by rank_value desc, c.id
    limit candidates
  ) t;
$$;
comment on function private.text_matches(uuid, tsquery, uuid[], integer) is 'match_document_chunks'' text half: the org''s chunks matching the words, ranked by ts_rank_cd; definer so the full-text index is usable, with document_chunks'' read policy applied in the query (knowledge.read, the service role, or a role that bypasses RLS).';
