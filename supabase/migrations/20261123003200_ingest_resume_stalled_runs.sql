-- A stalled ingestion run resumes where it stopped.
--
-- pg_net does not retry, so a step lost to a crash, a timeout or a 503 (the
-- embeddings API or Storage briefly down) leaves its document processing
-- until private.retry_stuck_ingestion (pg_cron, every minute) wakes documents
-- untouched for 2 minutes. It used to start a fresh run: whatever the run had
-- staged was dropped and embedded (and metered) again from page 1, and after
-- 5 runs the document failed, so a 500-page PDF that met five brief outages
-- anywhere along its 20 steps failed, having paid for its first pages up to
-- five times.
--
-- Now a document with a run in progress is woken on that run: the next step
-- begins at the saved cursor and keeps the staged chunks. documents.
-- ingest_stalls counts the wake-ups since the run last saved a step; a
-- trigger sets it back to 0 whenever the cursor or the run changes, and a
-- run woken 5 times without saving a step in between fails with a reason (a
-- page that crashes the extractor every time ends there, not in a loop). A
-- step still running when the sweep comes (over 2 minutes: the embeddings
-- API retrying) is harmless: both copies start from the same cursor and the
-- cursor check in the ingest function saves one; the other is stale. A
-- queued document (its request lost) still starts a fresh run and fails
-- after 5 runs.

alter table public.documents
  add column ingest_stalls smallint not null default 0 constraint documents_ingest_stalls_range check (ingest_stalls >= 0);
comment on column public.documents.ingest_stalls is 'Times private.retry_stuck_ingestion woke the current run since it last saved a step (0 after every step); the run fails at 5.';

create function private.reset_ingest_stalls()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.ingest_stalls := 0;
  return new;
end;
$$;
revoke execute on function private.reset_ingest_stalls() from public;

create trigger documents_reset_ingest_stalls before update of ingest_cursor, ingest_run on public.documents
  for each row
  when (old.ingest_cursor is distinct from new.ingest_cursor or old.ingest_run is distinct from new.ingest_run)
  execute function private.reset_ingest_stalls();

create or replace function private.retry_stuck_ingestion()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- Wake-ups of one run without a step saved, or fresh runs of a queued document, before it fails.
  max_tries constant integer := 5;
  stuck record;
  woken integer := 0;
begin
  for stuck in
    select d.id, d.status, d.ingest_run, d.ingest_attempts, d.ingest_stalls from public.documents d
    where d.status in ('queued', 'processing') and d.updated_at < now() - interval '2 minutes'
    order by d.updated_at
    limit 100
    for update skip locked
  loop
    if stuck.status = 'processing' and stuck.ingest_run is not null then
      if stuck.ingest_stalls >= max_tries then
        perform private.fail_ingest(stuck.id, stuck.ingest_run, 'Ingestion kept failing; try again later.');
        continue;
      end if;
      -- The same run, from its cursor; touching the row also restarts the 2-minute clock.
      update public.documents d set ingest_stalls = d.ingest_stalls + 1 where d.id = stuck.id;
    elsif stuck.ingest_attempts >= max_tries then
      perform private.fail_ingest(stuck.id, null, 'Ingestion kept failing; try again later.');
      continue;
    else
      update public.documents d set status = 'queued', ingest_run = null where d.id = stuck.id;
    end if;
    perform private.request_ingest(stuck.id);
    woken := woken + 1;
  end loop;
  return woken;
end;
$$;
comment on function private.retry_stuck_ingestion() is 'pg_cron, every minute: wakes documents left queued or processing for 2 minutes (a run resumes at its cursor; a queued document starts a run) and fails those woken 5 times without progress.';
