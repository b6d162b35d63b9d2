-- Every statement on public.document_chunks names its org, so the planner opens one partition, not all.
--
-- document_chunks has one partition per org (20261123001000), each with 6 indexes. A statement the planner
-- cannot prune (no org_id equality with a value known when planning) opens, plans and locks every partition
-- and every index: finish_ingest and fail_ingest deleted a document's old chunks by document_id alone, 374 ms
-- and 14,036 relation locks at 2,002 orgs (4 ms and 21 locks with the org named). Real Postgres keeps
-- max_locks_per_transaction (64) x max_connections lock slots for the whole server: between 2,000 and 3,000
-- orgs that delete failed with "out of shared memory" and no document on the platform could become ready or
-- failed. The deletes now name the document's org, as begin_document_deletion's already did.
--
-- plan_cache_mode = force_custom_plan on the three: PL/pgSQL plans doc.org_id as a parameter, so its first 5
-- runs in a session get custom plans (the value known: pruned), and the 6th also builds a generic plan to
-- compare costs, with no value to prune on: every partition and index again, once per connection and
-- statement (in process, 500 orgs: 644 ms and 3,514 locks on that call, 3 ms and 7 on the others). The
-- retrieval functions already force custom plans for this reason (20261123001000).
--
-- create_organization takes `lock table only` (20261123012800): a plain LOCK TABLE also locks every partition
-- (1 lock per org, 502 at 502 orgs).
--
-- Not changed: the select policy on document_chunks (org_id = any (array(select
-- private.readable_org_ids('knowledge.read')))). The planner prunes only on values it knows when planning; no
-- policy expression is one, so a member's `select ... where document_id = X` still plans every partition
-- (in process, 500 orgs: 100-530 ms, 3,514 locks) and one naming the org as a literal (PostgREST:
-- `org_id=eq.<org>`) plans one (4 ms, 7 locks). Nothing in this repository reads the table through the policy:
-- the functions search with match_document_chunks and match_bot_chunks, which name the org.
--
-- The foreign keys' cascades into document_chunks (a document's, an org's, a collection's delete) name the org
-- (the keys hold org_id) but are cached plans with parameters, so the 6th in a connection builds the generic
-- plan too (in process, 500 orgs: the 6th `delete from public.documents` took 755 ms and 3,514 locks, the others
-- 2-26 ms and 7). Only the deleting transaction can force custom plans: the knowledge function's document
-- deletions set plan_cache_mode locally (deleteDocumentRow). Not delete_organization: forced there it re-plans
-- every statement of the whole cascade (calls, messages, audit and grant triggers) row by row, 2.5x slower (4x
-- 20261123012100's org: 4 s -> 10 s, past PostgREST's 8 s). So an org's deletion still plans the document ->
-- chunk cascade generically from its 6th document, locking every org's partition (at thousands of orgs on real
-- Postgres it may exhaust the lock table), as does a collection or document deleted through PostgREST from a
-- connection's 6th such delete.
--
-- supabase/tests/310_chunk_queries_name_their_org.test.sql fails for any function in public or private that
-- reaches document_chunks without naming the org, or names it without forcing custom plans.

-- Latest definition: 20261123011400_retry_safe_actions.sql; only the org in the delete of the live chunks
-- (c.org_id = doc.org_id) and plan_cache_mode are new.
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
  -- A retry with no upload since re-reads the file the live chunks were built from: they stay the answer.
  if doc.retried_at is not null and doc.chunk_count > 0 then
    update public.documents d
    set status = 'ready', progress = 100, ingest_run = null, retried_at = null, last_failure_reason = why
    where d.id = doc.id;
    perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
      'document_id', doc.id, 'name', doc.name, 'reason', why, 'status', 'ready'));
    return true;
  end if;
  delete from public.document_chunks c where c.org_id = doc.org_id and c.document_id = doc.id;
  update public.documents d
  set status = 'failed', failure_reason = why, progress = 0, chunk_count = 0, ingest_run = null,
      retried_at = null, last_failure_reason = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'reason', why));
  return true;
end;
$$;

-- Latest definition: 20261123011400_retry_safe_actions.sql; only the org in the delete of the old chunks
-- (c.org_id = doc.org_id) and plan_cache_mode are new.
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
  update public.documents d
  set status = 'ready', progress = 100, chunk_count = chunk_total, ingest_run = null, ingested_at = now(),
      retried_at = null, last_failure_reason = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.ready', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'collection_id', doc.collection_id,
    'pages', coalesce(doc.page_count, 1), 'chunks', chunk_total));
  return chunk_total;
end;
$$;

-- Latest definition: 20261123007900_knowledge_deletion_and_paths.sql; its delete already names the org, only
-- plan_cache_mode is new (a connection's 6th document deletion planned every partition).
alter function private.begin_document_deletion(uuid) set plan_cache_mode = force_custom_plan;
