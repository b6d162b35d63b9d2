-- A document being deleted takes no ingestion (20261123004900_document_deletion_marker.sql):
-- once private.begin_document_deletion has marked it, no step starts or
-- resumes a run, a running step can neither finish nor fail it (so no
-- document.ready or document.failed), and the stuck-run sweeper leaves it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(10);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('deletion-test-key', 'service_role_key');

select tests.remember('owner', tests.create_user('deletion-owner@a.test'));
select tests.remember('org', tests.create_org('deletion-a', tests.fx('owner')));
select tests.remember('run', gen_random_uuid());
select tests.remember('running', gen_random_uuid());
select tests.remember('queued', gen_random_uuid());

insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count,
                              ingest_run, ingest_cursor, ingest_attempts)
values
  (tests.fx('running'), tests.fx('org'), 'running.pdf', 'application/pdf', 10, tests.fx('org') || '/running.pdf',
   'processing', 40, 20, tests.fx('run'), 8, 1),
  (tests.fx('queued'), tests.fx('org'), 'queued.txt', 'text/plain', 10, tests.fx('org') || '/queued.txt',
   'queued', 0, null, null, 0, 0);
insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('run'), tests.fx('running'), 0, 1, 1, 'staged', 400, array_fill(0.1::real, array[1536])::extensions.vector);

select tests.act_as('service_role');
select private.begin_document_deletion(tests.fx('running'));
select private.begin_document_deletion(tests.fx('queued'));
select isnt(
  (select deletion_started_at from public.documents where id = tests.fx('running')), null,
  'begin_document_deletion marks the document'
);
select results_eq(
  $$select run_id, status from private.begin_ingest_step(tests.fx('queued'))$$,
  $$values (null::uuid, 'queued'::public.document_status)$$,
  'a queued document being deleted starts no run'
);
select results_eq(
  $$select run_id from private.begin_ingest_step(tests.fx('running'))$$,
  $$values (null::uuid)$$,
  'a running one is not resumed: the step gets no run and skips it'
);
select is(private.fail_ingest(tests.fx('running'), tests.fx('run'), 'The file was not found in storage; upload it again.'), false,
  'a step that finds the file gone cannot fail it');
select is(private.fail_ingest(tests.fx('queued'), null, 'refused'), false, 'nor can a refused upload fail a queued one');
select is(private.finish_ingest(tests.fx('running'), tests.fx('run')), null, 'a step that got that far cannot finish it');
select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, ingest_run from public.documents where id = tests.fx('running')$$,
  $$values ('processing'::public.document_status, null::text, tests.fx('run'))$$,
  'the document is left as it was until its row goes'
);
select is(
  (select count(*)::integer from public.events
   where type in ('document.failed', 'document.ready') and payload ->> 'document_id' in (tests.fx('running')::text, tests.fx('queued')::text)),
  0,
  'no document.failed or document.ready is emitted for it'
);

alter table public.documents disable trigger documents_set_updated_at;
update public.documents set updated_at = now() - interval '3 minutes' where org_id = tests.fx('org');
alter table public.documents enable trigger documents_set_updated_at;
select is(private.retry_stuck_ingestion(), 0, 'the sweeper does not wake documents being deleted');

select tests.act_as('authenticated', tests.fx('owner'));
select throws_ok(
  $$select private.begin_document_deletion(gen_random_uuid())$$,
  '42501', null,
  'users cannot call it'
);

select * from finish();
rollback;
