-- Fair ingestion between orgs.
--
-- Every uploaded file fires its own ingest invocation and every step embeds with the one OPENAI_API_KEY, and
-- nothing limited how many documents were processing at once. Org A uploading 5,000 files flooded the
-- provider; its 429s hit everyone; org B's 2-page PDF used up its SDK retries, its step answered 503, the
-- sweeper counted each such wake-up as a stall, and after 5 B's document failed ("Ingestion kept failing").
--
-- 1. Admission: at most private.ingest_runs_per_org() (3) documents of an org have a run under way (status
--    `processing` with a run, not being deleted). private.begin_ingest_step starts a run only below that; the
--    rest stay `queued` (the step answers 200 `"status": "queued", "skipped": true`). When one of the org's
--    runs ends (finished, failed, or its document marked for deletion), a trigger wakes the org's oldest queued
--    document, so a big upload drains 3 at a time while another org's file starts at once. The count runs
--    under a transaction advisory lock per org (class 11600), taken after the document row, so two steps
--    starting together cannot both take the last slot; no path waits on a document while holding it.
-- 2. Deferral: a step the embeddings provider throttled (429, 5xx, or an answer asking to wait) reports it
--    with private.defer_ingest(document_id, run_id, seconds) instead of just failing: the run keeps its
--    cursor and staged chunks, documents.ingest_wake_at tells private.retry_stuck_ingestion when to wake it
--    (30 s to 15 min from now; the sweep runs every minute), and that wake-up counts no stall, so only real
--    failures use up the 5. A run the provider keeps deferring for 6 hours without saving a step is failed by
--    the sweeper ("The embeddings provider kept refusing requests for 6 hours; try again later.").
-- 3. private.retry_stuck_ingestion took 100 documents a minute oldest first across orgs: A's 5,000 stalled
--    documents held B's back for ~50 minutes. It now takes them round-robin by org (each org's oldest, then
--    each org's second, ...) within the 100, and wakes a queued document only into a free slot of its org:
--    the rest wait for a run to end instead of being woken every 2 minutes to be turned away.

alter table public.documents
  add column ingest_wake_at timestamptz,
  add column ingest_deferred_since timestamptz;
comment on column public.documents.ingest_wake_at is
  'When private.retry_stuck_ingestion wakes a run the embeddings provider throttled (private.defer_ingest); null otherwise.';
comment on column public.documents.ingest_deferred_since is
  'The first deferral of the current run since it last saved a step; the run fails when it reaches 6 hours.';

create function private.ingest_runs_per_org()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$
  select 3;
$$;
revoke execute on function private.ingest_runs_per_org() from public;
comment on function private.ingest_runs_per_org() is
  'How many documents of one org may have an ingestion run under way at once; the rest wait queued.';

create function private.ingest_runs_in_progress(org_id uuid)
returns integer
language sql
stable
security invoker
set search_path = ''
as $$
  select count(*)::integer from public.documents d
  where d.org_id = ingest_runs_in_progress.org_id and d.status = 'processing' and d.ingest_run is not null
    and d.deletion_started_at is null;
$$;
revoke execute on function private.ingest_runs_in_progress(uuid) from public;
comment on function private.ingest_runs_in_progress(uuid) is
  'The org''s documents holding one of its private.ingest_runs_per_org() slots.';

-- Latest definition: 20261123003200_ingest_resume_stalled_runs.sql; a step saved or a new run now also ends a
-- deferral: the provider answered, or the run that was refused is gone.
create or replace function private.reset_ingest_stalls()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.ingest_stalls := 0;
  new.ingest_wake_at := null;
  new.ingest_deferred_since := null;
  return new;
end;
$$;

-- Latest definition: 20261123004900_document_deletion_marker.sql; only the admission check is new.
create or replace function private.begin_ingest_step(document_id uuid)
returns table (
  org_id uuid, storage_path text, mime_type text, name text, run_id uuid, cursor integer,
  next_chunk_index integer, status public.document_status
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d where d.id = begin_ingest_step.document_id for update;
  if not found then
    return;
  end if;
  -- No run: the step skips the document.
  if doc.deletion_started_at is not null then
    return query select doc.org_id, doc.storage_path, doc.mime_type, doc.name, null::uuid, doc.ingest_cursor, 0, doc.status;
    return;
  end if;
  if doc.status = 'queued' or (doc.status = 'processing' and doc.ingest_run is null) then
    -- Serialises the count of the org's runs with the other steps starting now (see the header).
    perform pg_catalog.pg_advisory_xact_lock(11600, pg_catalog.hashtext(doc.org_id::text));
    -- Every slot taken: it waits without a run until one of the org's runs ends and wakes it.
    if private.ingest_runs_in_progress(doc.org_id) >= private.ingest_runs_per_org() then
      return query select doc.org_id, doc.storage_path, doc.mime_type, doc.name, null::uuid, doc.ingest_cursor, 0, doc.status;
      return;
    end if;
    -- A new run: whatever an earlier run staged is discarded.
    delete from private.document_chunk_staging s where s.document_id = doc.id;
    update public.documents d
    set status = 'processing', progress = 0, ingest_run = gen_random_uuid(), ingest_cursor = 0,
        ingest_attempts = d.ingest_attempts + 1, ingest_started_at = now()
    where d.id = doc.id
    returning * into doc;
  end if;
  return query
  select doc.org_id, doc.storage_path, doc.mime_type, doc.name, doc.ingest_run, doc.ingest_cursor,
    coalesce((select max(s.chunk_index) + 1 from private.document_chunk_staging s
              where s.document_id = doc.id and s.run_id = doc.ingest_run), 0),
    doc.status;
end;
$$;

create function private.wake_queued_ingest()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  next_id uuid;
begin
  -- Skip locked: never waits on a document while holding this one (and the org's chunk lock, from
  -- finish_ingest or fail_ingest); a document another transaction holds is being started or changed already.
  select d.id into next_id from public.documents d
  where d.org_id = old.org_id and d.status = 'queued' and d.deletion_started_at is null and d.id <> old.id
  order by d.updated_at, d.id
  limit 1
  for update skip locked;
  if next_id is null then
    return null;
  end if;
  -- Touched, so the sweeper does not wake it a second time while its first step starts.
  update public.documents d set status = 'queued' where d.id = next_id;
  perform private.request_ingest(next_id);
  return null;
end;
$$;
revoke execute on function private.wake_queued_ingest() from public;

create trigger documents_wake_queued_ingest
  after update of ingest_run, deletion_started_at on public.documents
  for each row
  when (old.status = 'processing' and old.ingest_run is not null and old.deletion_started_at is null
        and (new.ingest_run is null or new.deletion_started_at is not null))
  execute function private.wake_queued_ingest();

create function private.defer_ingest(document_id uuid, run_id uuid, seconds integer)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  wait integer := least(greatest(coalesce(defer_ingest.seconds, 60), 30), 900);
begin
  update public.documents d
  set ingest_wake_at = now() + pg_catalog.make_interval(secs => wait),
      ingest_deferred_since = coalesce(d.ingest_deferred_since, now())
  where d.id = defer_ingest.document_id and d.ingest_run = defer_ingest.run_id and d.status = 'processing'
    and d.deletion_started_at is null;
  if not found then
    return null;
  end if;
  return wait;
end;
$$;
revoke execute on function private.defer_ingest(uuid, uuid, integer) from public;
grant execute on function private.defer_ingest(uuid, uuid, integer) to service_role;
comment on function private.defer_ingest(uuid, uuid, integer) is
  'The ingest function, when the embeddings provider throttled a step: the run is woken at its cursor after that many seconds (clamped to 30..900, returned) without counting a stall; null when the run is no longer current.';

-- Latest definition: 20261123004900_document_deletion_marker.sql; the order (round-robin by org), the slots
-- of queued documents and the wake-up of deferred runs are new.
create or replace function private.retry_stuck_ingestion()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- Wake-ups of one run without a step saved, or fresh runs of a queued document, before it fails.
  max_tries constant integer := 5;
  -- How long a run may be deferred by the provider without saving a step before it fails.
  longest_deferral constant interval := interval '6 hours';
  stuck record;
  woken integer := 0;
begin
  for stuck in
    with due as (
      select d.id, d.org_id, coalesce(d.ingest_wake_at, d.updated_at) as idle_since, d.ingest_attempts,
        d.status = 'processing' and d.ingest_run is not null as running
      from public.documents d
      where d.status in ('queued', 'processing') and d.deletion_started_at is null
        and case when d.ingest_wake_at is not null then d.ingest_wake_at <= now()
                 else d.updated_at < now() - interval '2 minutes' end
    ),
    open_slots as (
      select o.org_id, private.ingest_runs_per_org() - private.ingest_runs_in_progress(o.org_id) as slots
      from (select distinct due.org_id from due where not due.running) o
    ),
    waiting as (
      select due.id, row_number() over (partition by due.org_id order by due.idle_since, due.id) as place
      from due where not due.running and due.ingest_attempts < max_tries
    ),
    -- A queued document is woken only into a free slot of its org (or to be failed); the end of a run wakes
    -- the next one, so the rest would only be turned away.
    wakeable as (
      select due.* from due
      left join waiting w on w.id = due.id
      left join open_slots f on f.org_id = due.org_id
      where due.running or due.ingest_attempts >= max_tries or w.place <= f.slots
    ),
    turns as (
      select e.id, e.idle_since, row_number() over (partition by e.org_id order by e.idle_since, e.id) as turn
      from wakeable e
      order by turn, e.idle_since, e.id
      limit 100
    )
    select d.id, d.status, d.ingest_run, d.ingest_attempts, d.ingest_stalls, d.ingest_wake_at, d.ingest_deferred_since
    from public.documents d
    join turns t on t.id = d.id
    -- Rechecked on the row locked: a document that moved on since the scan is left alone.
    where d.status in ('queued', 'processing') and d.deletion_started_at is null
    order by t.turn, t.idle_since, t.id
    for update of d skip locked
  loop
    if stuck.status = 'processing' and stuck.ingest_run is not null then
      if stuck.ingest_deferred_since < now() - longest_deferral then
        perform private.fail_ingest(stuck.id, stuck.ingest_run,
          'The embeddings provider kept refusing requests for 6 hours; try again later.');
        continue;
      elsif stuck.ingest_wake_at is not null then
        -- Deferred by the provider, not stalled: woken without counting.
        update public.documents d set ingest_wake_at = null where d.id = stuck.id;
      elsif stuck.ingest_stalls >= max_tries then
        perform private.fail_ingest(stuck.id, stuck.ingest_run, 'Ingestion kept failing; try again later.');
        continue;
      else
        -- The same run, from its cursor; touching the row also restarts the 2-minute clock.
        update public.documents d set ingest_stalls = d.ingest_stalls + 1 where d.id = stuck.id;
      end if;
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
comment on function private.retry_stuck_ingestion() is 'pg_cron, every minute: wakes documents left queued or processing for 2 minutes, or deferred runs when due, round-robin by org, 100 at most (a run resumes at its cursor; a queued document starts a run if its org has a free slot), and fails those woken 5 times without progress.';
