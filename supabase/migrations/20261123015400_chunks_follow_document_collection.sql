-- A document's chunks follow it to another collection.
--
-- document_chunks.collection_id is a copy of the document's, written once when finish_ingest publishes the
-- chunks: bots (match_bot_chunks, through their collections) and searches with collection_ids filter on the
-- copy. A document moved from one collection to another (the service role may update documents.collection_id;
-- no grant, policy or RPC lets a member) kept its chunks in the old one: a bot linked only to "Public FAQ" went
-- on answering from a document moved to "Internal HR", citing the old collection, until it was re-ingested.
--
-- An after-update row trigger now copies the new collection onto the document's chunks, in the same
-- transaction. Lock order (README "Lock order"): the update holds the document row; the trigger takes the org's
-- chunk lock (8600), as every other chunk writer does, before the chunk rows; the audit of the move
-- (documents_audit_update) locks the chain head after: triggers on one event fire in name order, and
-- documents_align_chunk_collection sorts before documents_audit_update. A multi-row update of documents locks
-- all its rows before any after-row trigger runs, so it never waits for a document row while holding 8600.
--
-- Not changed:
-- - finish_ingest: it copies doc.collection_id from the document row it holds `for update` at publish time
--   (staged chunks carry no collection), so a move during an ingest either commits first, and the chunks are
--   published in the new collection, or waits for the publish and then moves them.
-- - the word counts (private.chunk_term_counts) are per org, and their update trigger counts only chunks whose
--   text or org changed: a move changes no count.
-- - deleting a collection: its documents' and chunks' foreign keys set collection_id to null; the trigger runs
--   for each document, finds its chunks already null (the is-distinct condition) or sets them, whichever
--   cascade runs first.
--
-- The update names the org (one partition planned and locked, pgTAP 310) and forces custom plans: the 6th run
-- of a PL/pgSQL statement in a connection would also build a generic plan, which prunes no partition.

-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind its exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing).
select pg_catalog.set_config('lock_timeout', '5s', true);

create function private.align_chunk_collection()
returns trigger
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
begin
  -- One chunk-writing transaction of the org at a time (20261123008600).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(new.org_id::text));
  update public.document_chunks c
  set collection_id = new.collection_id
  where c.org_id = new.org_id and c.document_id = new.id and c.collection_id is distinct from new.collection_id;
  return null;
end;
$$;
comment on function private.align_chunk_collection() is 'Trigger: copies a document''s new collection_id onto its chunks (bots and searches filter chunks by it), under the org''s chunk lock.';
revoke execute on function private.align_chunk_collection() from public;

create trigger documents_align_chunk_collection
  after update of collection_id on public.documents
  for each row
  when (old.collection_id is distinct from new.collection_id)
  execute function private.align_chunk_collection();
