-- Fair ingestion between orgs (20261123011600_fair_ingestion.sql): an org has at most
-- private.ingest_runs_per_org() runs under way, the rest wait queued and the end of a run wakes the next;
-- private.defer_ingest puts a throttled run off without counting a stall; private.retry_stuck_ingestion
-- takes documents round-robin by org and wakes queued ones only into a free slot.
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('fair-ingestion-test-key', 'service_role_key');

select tests.remember('owner', tests.create_user('fair-ingestion-owner@a.test'));
select tests.remember('flood', tests.create_org('fair-ingestion-flood', tests.fx('owner')));
select tests.remember('small', tests.create_org('fair-ingestion-small', tests.fx('owner')));
select tests.remember('busy', tests.create_org('fair-ingestion-busy', tests.fx('owner')));
select tests.remember('roomy', tests.create_org('fair-ingestion-roomy', tests.fx('owner')));

-- Documents straight into a state; the plan's document allowance is not what this file tests.
create function pg_temp.add_document(org_id uuid, label text, status public.document_status, run_id uuid, idle interval)
returns uuid
language plpgsql
as $$
declare
  doc_id uuid := gen_random_uuid();
begin
  alter table public.documents disable trigger documents_require_quota;
  insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count,
                                ingest_run, ingest_cursor, ingest_attempts)
  values (doc_id, org_id, label || '.txt', 'text/plain', 10, org_id || '/' || doc_id || '/' || label || '.txt', status,
          case when run_id is null then 0 else 10 end, case when run_id is null then null else 4 end, run_id,
          case when run_id is null then 0 else 1 end, case when run_id is null then 0 else 1 end);
  alter table public.documents enable trigger documents_require_quota;
  perform pg_temp.leave_idle(doc_id, idle);
  return doc_id;
end;
$$;

-- Every row is stamped with the transaction's time when it changes; this moves one back.
create function pg_temp.leave_idle(document_id uuid, idle interval)
returns void
language plpgsql
as $$
begin
  alter table public.documents disable trigger documents_set_updated_at;
  update public.documents set updated_at = now() - idle where id = document_id;
  alter table public.documents enable trigger documents_set_updated_at;
end;
$$;

create temp table marks (label text primary key, n bigint not null);
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;
create function pg_temp.requested_since_mark()
returns setof uuid
language sql
as $$
  select (convert_from(q.body, 'UTF8')::jsonb ->> 'document_id')::uuid from net.http_request_queue q
  where q.id > (select n from marks where label = 'queue') order by q.id;
$$;
create function pg_temp.mark()
returns void
language sql
as $$
  update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';
$$;

-- ---------------------------------------------------------------------------
-- Round-robin: 150 stalled runs of one org (idle 30 minutes) and one of another (idle 3 minutes).
-- ---------------------------------------------------------------------------

select tests.remember('small_run', pg_temp.add_document(tests.fx('small'), 'small-run', 'processing', gen_random_uuid(), interval '3 minutes'));
select pg_temp.add_document(tests.fx('flood'), 'flood-' || i, 'processing', gen_random_uuid(), interval '30 minutes' - i * interval '1 second')
from generate_series(1, 150) i;

select pg_temp.mark();
select is(private.retry_stuck_ingestion(), 100, 'one sweep wakes 100 documents');
select is(
  (select ingest_stalls from public.documents where id = tests.fx('small_run')), 1::smallint,
  'the other org''s one stalled run is among them, though 150 of the first org''s are older'
);
select ok(
  tests.fx('small_run') in (select pg_temp.requested_since_mark()),
  'and its ingest step is requested'
);
select is(
  (select count(*)::integer from public.documents where org_id = tests.fx('flood') and ingest_stalls = 1), 99,
  'the first org gets the rest of the 100'
);
select is(
  (select count(*)::integer from public.documents where org_id = tests.fx('flood') and ingest_stalls = 1
     and updated_at = now() and name in (select 'flood-' || i || '.txt' from generate_series(1, 99) i)),
  99,
  'its oldest first'
);
delete from public.documents where org_id in (tests.fx('flood'), tests.fx('small'));

-- ---------------------------------------------------------------------------
-- Admission: 3 runs an org, the rest queued; the end of a run wakes the next.
-- ---------------------------------------------------------------------------

select is(private.ingest_runs_per_org(), 3, 'an org has 3 runs under way at most');
select tests.remember('busy_1', pg_temp.add_document(tests.fx('busy'), 'busy-1', 'processing', gen_random_uuid(), interval '0'));
select tests.remember('busy_2', pg_temp.add_document(tests.fx('busy'), 'busy-2', 'processing', gen_random_uuid(), interval '0'));
select tests.remember('busy_3', pg_temp.add_document(tests.fx('busy'), 'busy-3', 'processing', gen_random_uuid(), interval '0'));
select tests.remember('queued_1', pg_temp.add_document(tests.fx('busy'), 'queued-1', 'queued', null, interval '10 minutes'));
select tests.remember('queued_2', pg_temp.add_document(tests.fx('busy'), 'queued-2', 'queued', null, interval '5 minutes'));
select tests.remember('other_queued', pg_temp.add_document(tests.fx('small'), 'other-queued', 'queued', null, interval '0'));
insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.ingest_run, d.id, 0, 1, 1, 'staged', 4, array_fill(0.1::real, array[1536])::extensions.vector
from public.documents d where d.id = tests.fx('busy_2');

select tests.act_as('service_role');
select results_eq(
  $$select run_id, status from private.begin_ingest_step(tests.fx('queued_1'))$$,
  $$values (null::uuid, 'queued'::public.document_status)$$,
  'with 3 runs under way, a queued document of the org starts no run'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, ingest_run, ingest_attempts from public.documents where id = tests.fx('queued_1')$$,
  $$values ('queued'::public.document_status, null::uuid, 0)$$,
  'it stays queued, no attempt counted'
);
select tests.act_as('service_role');
select results_eq(
  $$select run_id is not null, status from private.begin_ingest_step(tests.fx('other_queued'))$$,
  $$values (true, 'processing'::public.document_status)$$,
  'another org''s document starts at once'
);

select tests.act_as('postgres');
select pg_temp.mark();
select tests.act_as('service_role');
select is(private.fail_ingest(tests.fx('busy_1'), null, 'The file is broken.'), true, 'one of the org''s runs fails');
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.requested_since_mark()$$,
  $$values (tests.fx('queued_1'))$$,
  'its end asks the ingest function for the org''s oldest queued document, and only that'
);
select is(
  (select updated_at from public.documents where id = tests.fx('queued_1')), now(),
  'which is touched, so the sweeper does not wake it again meanwhile'
);
select tests.act_as('service_role');
select results_eq(
  $$select run_id is not null, status from private.begin_ingest_step(tests.fx('queued_1'))$$,
  $$values (true, 'processing'::public.document_status)$$,
  'its step takes the free slot'
);
select results_eq(
  $$select run_id, status from private.begin_ingest_step(tests.fx('queued_2'))$$,
  $$values (null::uuid, 'queued'::public.document_status)$$,
  'and the next queued document waits again'
);

select tests.act_as('postgres');
select pg_temp.mark();
select tests.act_as('service_role');
select is(
  private.finish_ingest(tests.fx('busy_2'), (select ingest_run from public.documents where id = tests.fx('busy_2'))), 1,
  'a run that finishes'
);
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.requested_since_mark()$$,
  $$values (tests.fx('queued_2'))$$,
  'wakes the next queued document too'
);

select pg_temp.mark();
select tests.act_as('service_role');
select private.begin_document_deletion(tests.fx('busy_3'));
select tests.act_as('postgres');
select is(
  (select count(*)::integer from pg_temp.requested_since_mark()), 1,
  'so does a running document marked for deletion (no other queued document left: queued_2 again)'
);

-- ---------------------------------------------------------------------------
-- The sweeper wakes queued documents only into free slots.
-- ---------------------------------------------------------------------------

update public.documents set status = 'failed', failure_reason = 'set aside', ingest_run = null
where org_id in (tests.fx('busy'), tests.fx('small'));
select tests.remember('full_run', pg_temp.add_document(tests.fx('busy'), 'full-run', 'processing', gen_random_uuid(), interval '0'));
select pg_temp.add_document(tests.fx('busy'), 'full-run-' || i, 'processing', gen_random_uuid(), interval '0') from generate_series(2, 3) i;
select tests.remember('full_waiting', pg_temp.add_document(tests.fx('busy'), 'full-waiting', 'queued', null, interval '20 minutes'));
select pg_temp.add_document(tests.fx('roomy'), 'roomy-run', 'processing', gen_random_uuid(), interval '0');
select tests.remember('roomy_1', pg_temp.add_document(tests.fx('roomy'), 'roomy-1', 'queued', null, interval '20 minutes'));
select tests.remember('roomy_2', pg_temp.add_document(tests.fx('roomy'), 'roomy-2', 'queued', null, interval '15 minutes'));
select tests.remember('roomy_3', pg_temp.add_document(tests.fx('roomy'), 'roomy-3', 'queued', null, interval '10 minutes'));

select pg_temp.mark();
select is(private.retry_stuck_ingestion(), 2, 'the sweep wakes two queued documents');
select set_eq(
  $$select * from pg_temp.requested_since_mark()$$,
  $$values (tests.fx('roomy_1')), (tests.fx('roomy_2'))$$,
  'the two oldest of the org with 2 free slots; none of the org whose 3 slots are taken'
);
select results_eq(
  $$select status, ingest_attempts from public.documents where id = tests.fx('full_waiting')$$,
  $$values ('queued'::public.document_status, 0)$$,
  'the waiting one is left queued, no attempt counted'
);

-- ---------------------------------------------------------------------------
-- A throttled run is deferred, not stalled.
-- ---------------------------------------------------------------------------

select tests.remember('throttled', pg_temp.add_document(tests.fx('small'), 'throttled', 'processing', gen_random_uuid(), interval '0'));
update public.documents set ingest_stalls = 2 where id = tests.fx('throttled');
select tests.act_as('service_role');
select is(
  private.defer_ingest(tests.fx('throttled'), (select ingest_run from public.documents where id = tests.fx('throttled')), 45),
  45,
  'defer_ingest puts the run off by the seconds asked'
);
select tests.act_as('postgres');
select results_eq(
  $$select ingest_wake_at, ingest_deferred_since, ingest_stalls, ingest_cursor, status from public.documents where id = tests.fx('throttled')$$,
  $$values (now() + interval '45 seconds', now(), 2::smallint, 1, 'processing'::public.document_status)$$,
  'the wake-up is set, the deferral dated; the stalls, cursor and status are as they were'
);
select tests.act_as('service_role');
select is(
  private.defer_ingest(tests.fx('throttled'), (select ingest_run from public.documents where id = tests.fx('throttled')), 5),
  30, 'at least 30 seconds'
);
select is(
  private.defer_ingest(tests.fx('throttled'), (select ingest_run from public.documents where id = tests.fx('throttled')), 86400),
  900, 'at most 15 minutes'
);
select is(private.defer_ingest(tests.fx('throttled'), gen_random_uuid(), 60), null, 'another run defers nothing');
select tests.act_as('postgres');
select ok(
  not has_function_privilege('authenticated', 'private.defer_ingest(uuid, uuid, integer)', 'execute')
    and not has_function_privilege('anon', 'private.defer_ingest(uuid, uuid, integer)', 'execute'),
  'only the service role defers'
);

select pg_temp.leave_idle(tests.fx('throttled'), interval '10 minutes');
select pg_temp.mark();
select private.retry_stuck_ingestion();
select is_empty(
  $$select 1 from pg_temp.requested_since_mark() r where r = tests.fx('throttled')$$,
  'idle past 2 minutes, a run deferred until later is not woken'
);

update public.documents set ingest_wake_at = now() - interval '1 second' where id = tests.fx('throttled');
select pg_temp.mark();
select private.retry_stuck_ingestion();
select results_eq(
  $$select ingest_stalls, ingest_wake_at, status from public.documents where id = tests.fx('throttled')$$,
  $$values (2::smallint, null::timestamptz, 'processing'::public.document_status)$$,
  'when due (though touched just now) it is woken without a stall counted'
);
select ok(tests.fx('throttled') in (select pg_temp.requested_since_mark()), 'at its run''s cursor, by the ingest function');

update public.documents set ingest_wake_at = now() - interval '1 second', ingest_deferred_since = now() - interval '2 hours'
where id = tests.fx('throttled');
update public.documents set ingest_cursor = 2 where id = tests.fx('throttled');
select results_eq(
  $$select ingest_wake_at, ingest_deferred_since, ingest_stalls from public.documents where id = tests.fx('throttled')$$,
  $$values (null::timestamptz, null::timestamptz, 0::smallint)$$,
  'a step saved ends the deferral'
);

update public.documents set ingest_wake_at = now() - interval '1 second', ingest_deferred_since = now() - interval '7 hours'
where id = tests.fx('throttled');
select private.retry_stuck_ingestion();
select results_eq(
  $$select status, failure_reason from public.documents where id = tests.fx('throttled')$$,
  $$values ('failed'::public.document_status, 'The embeddings provider kept refusing requests for 6 hours; try again later.')$$,
  'a run the provider kept refusing for 6 hours fails with a reason'
);

-- A stall still counts: woken after 2 idle minutes with no deferral.
select tests.remember('stalled', pg_temp.add_document(tests.fx('small'), 'stalled', 'processing', gen_random_uuid(), interval '3 minutes'));
select private.retry_stuck_ingestion();
select is((select ingest_stalls from public.documents where id = tests.fx('stalled')), 1::smallint, 'a run that just went quiet counts a stall');

select * from finish();
rollback;
