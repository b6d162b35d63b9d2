-- Stalled ingestion runs (20261123003200_ingest_resume_stalled_runs.sql):
-- private.retry_stuck_ingestion wakes a run left for 2 minutes on the same
-- run, at its cursor, keeping what it staged; 5 wake-ups without a step saved
-- fail it; a step saved (or a new run) sets the count back to 0; a queued
-- document still starts a fresh run and fails after 5 runs.
begin;
create extension if not exists pgtap with schema extensions;

select plan(19);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('resume-test-key', 'service_role_key');

select tests.remember('owner', tests.create_user('resume-owner@a.test'));
select tests.remember('org', tests.create_org('resume-a', tests.fx('owner')));
select tests.remember('run', gen_random_uuid());
select tests.remember('doc', gen_random_uuid());
select tests.remember('queued', gen_random_uuid());
select tests.remember('runless', gen_random_uuid());
select tests.remember('fresh', gen_random_uuid());

insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count,
                              ingest_run, ingest_cursor, ingest_attempts)
values
  (tests.fx('doc'), tests.fx('org'), 'manual.pdf', 'application/pdf', 10, tests.fx('org') || '/manual.pdf',
   'processing', 40, 20, tests.fx('run'), 8, 1),
  (tests.fx('queued'), tests.fx('org'), 'queued.txt', 'text/plain', 10, tests.fx('org') || '/queued.txt',
   'queued', 0, null, null, 0, 2),
  (tests.fx('runless'), tests.fx('org'), 'runless.txt', 'text/plain', 10, tests.fx('org') || '/runless.txt',
   'processing', 0, null, null, 0, 5),
  (tests.fx('fresh'), tests.fx('org'), 'fresh.txt', 'text/plain', 10, tests.fx('org') || '/fresh.txt',
   'processing', 10, 4, gen_random_uuid(), 1, 1);
insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('run'), tests.fx('doc'), i, i + 1, i + 1, 'staged ' || i, 400, array_fill(0.1::real, array[1536])::extensions.vector
from generate_series(0, 5) i;

-- Every row is stamped with the transaction's time when it changes; this
-- moves one back past the sweeper's 2 minutes.
create function pg_temp.leave_idle(document_id uuid)
returns void
language plpgsql
as $$
begin
  alter table public.documents disable trigger documents_set_updated_at;
  update public.documents set updated_at = now() - interval '3 minutes' where id = document_id;
  alter table public.documents enable trigger documents_set_updated_at;
end;
$$;

create temp table marks (label text primary key, n bigint not null);
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;

select pg_temp.leave_idle(tests.fx('doc'));
select is(private.retry_stuck_ingestion(), 1, 'a run idle for 2 minutes is woken (and nothing updated lately)');
select results_eq(
  $$select status, ingest_run, ingest_cursor, ingest_stalls, ingest_attempts, progress from public.documents where id = tests.fx('doc')$$,
  $$values ('processing'::public.document_status, tests.fx('run'), 8, 1::smallint, 1, 40::smallint)$$,
  'it stays in the same run at its cursor: one stall counted, no new attempt, the progress kept'
);
select is(
  (select count(*)::integer from private.document_chunk_staging where document_id = tests.fx('doc') and run_id = tests.fx('run')),
  6,
  'what the run staged is kept'
);
select results_eq(
  $$select url, convert_from(body, 'UTF8')::jsonb from net.http_request_queue where id > (select n from marks where label = 'queue')$$,
  $$values ('https://project.example.test/functions/v1/ingest', jsonb_build_object('document_id', tests.fx('doc')))$$,
  'the ingest function is asked for the document once'
);
select is(private.retry_stuck_ingestion(), 0, 'the wake-up restarted the 2-minute clock: the next sweep leaves it');

select tests.act_as('service_role');
select results_eq(
  $$select run_id, cursor, next_chunk_index from private.begin_ingest_step(tests.fx('doc'))$$,
  $$values (tests.fx('run'), 8, 6)$$,
  'the step it wakes continues the run: its cursor and the chunk after those staged'
);
select is(
  private.save_ingest_step(tests.fx('doc'), tests.fx('run'), '[]'::jsonb, 10, 50, 20),
  true,
  'that step saves'
);
select tests.act_as('postgres');
select is(
  (select ingest_stalls from public.documents where id = tests.fx('doc')),
  0::smallint,
  'a step saved sets the stalls back to 0'
);

-- A run that never gets further: woken 5 times, then failed.
select pg_temp.leave_idle(tests.fx('doc'));
select private.retry_stuck_ingestion();
select pg_temp.leave_idle(tests.fx('doc'));
select private.retry_stuck_ingestion();
select pg_temp.leave_idle(tests.fx('doc'));
select private.retry_stuck_ingestion();
select pg_temp.leave_idle(tests.fx('doc'));
select private.retry_stuck_ingestion();
select pg_temp.leave_idle(tests.fx('doc'));
select private.retry_stuck_ingestion();
select results_eq(
  $$select status, ingest_run, ingest_cursor, ingest_stalls from public.documents where id = tests.fx('doc')$$,
  $$values ('processing'::public.document_status, tests.fx('run'), 10, 5::smallint)$$,
  'five wake-ups without a step saved: still the same run, 5 stalls'
);
update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';
select pg_temp.leave_idle(tests.fx('doc'));
select is(private.retry_stuck_ingestion(), 0, 'the sixth sweep wakes nothing');
select results_eq(
  $$select status, failure_reason, ingest_run, chunk_count from public.documents where id = tests.fx('doc')$$,
  $$values ('failed'::public.document_status, 'Ingestion kept failing; try again later.', null::uuid, 0)$$,
  'it fails the document with a reason'
);
select is_empty(
  $$select 1 from private.document_chunk_staging where document_id = tests.fx('doc')$$,
  'and keeps nothing it staged'
);
select is_empty(
  $$select 1 from net.http_request_queue where id > (select n from marks where label = 'queue')
      and convert_from(body, 'UTF8')::jsonb ->> 'document_id' = tests.fx('doc')::text$$,
  'and does not ask the ingest function for it again (its end wakes the org''s queued document: 20261123011600)'
);

-- A new run starts with no stalls.
update public.documents set status = 'processing', failure_reason = null, ingest_run = tests.fx('run'), ingest_stalls = 3
where id = tests.fx('doc');
update public.documents set ingest_run = gen_random_uuid() where id = tests.fx('doc');
select is((select ingest_stalls from public.documents where id = tests.fx('doc')), 0::smallint, 'a new run sets the stalls back to 0');
update public.documents set ingest_stalls = 2, progress = 20 where id = tests.fx('doc');
select is((select ingest_stalls from public.documents where id = tests.fx('doc')), 2::smallint, 'other changes leave them');

-- Queued, and processing without a run (its first step never began): a fresh run, up to 5 of them.
select pg_temp.leave_idle(tests.fx('queued'));
select pg_temp.leave_idle(tests.fx('runless'));
update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';
select is(private.retry_stuck_ingestion(), 1, 'the queued document is woken');
select results_eq(
  $$select status, ingest_run, ingest_attempts from public.documents where id = tests.fx('queued')$$,
  $$values ('queued'::public.document_status, null::uuid, 2)$$,
  'it stays queued for a fresh run'
);
select results_eq(
  $$select status, failure_reason from public.documents where id = tests.fx('runless')$$,
  $$values ('failed'::public.document_status, 'Ingestion kept failing; try again later.')$$,
  'a document without a run after 5 runs fails'
);
select results_eq(
  $$select status, ingest_stalls from public.documents where id = tests.fx('fresh')$$,
  $$values ('processing'::public.document_status, 0::smallint)$$,
  'a run that saved a step in the last 2 minutes is left alone'
);

select * from finish();
rollback;
