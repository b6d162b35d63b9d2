-- Corrections to the knowledge base (20261123001300_knowledge_reupload.sql):
-- uploading a file again while its document is queued or being ingested
-- starts a fresh run (the old run's steps change nothing any more), and a
-- document outside the caller's orgs does not exist for retry_document.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

select tests.remember('owner_a', tests.create_user('reupload-owner@a.test'));
select tests.remember('owner_b', tests.create_user('reupload-owner@b.test'));
select tests.remember('org_a', tests.create_org('reupload-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('reupload-b', tests.fx('owner_b')));
select tests.remember('run', gen_random_uuid());
select tests.remember('doc', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, ingest_run, ingest_cursor, ingest_attempts)
values (tests.fx('doc'), tests.fx('org_a'), 'guide.txt', 'text/plain', 10, tests.fx('org_a') || '/guide.txt',
        'processing', 40, tests.fx('run'), 3, 2);

-- The same file uploaded again, mid-run.
insert into storage.objects (bucket_id, name, owner_id, metadata)
values ('knowledge', tests.fx('org_a') || '/guide.txt', tests.fx('owner_a')::text, '{"size": 12}');

select results_eq(
  $$select status, progress, ingest_run, ingest_attempts, size_bytes from public.documents where id = tests.fx('doc')$$,
  $$values ('queued'::public.document_status, 0::smallint, null::uuid, 0, 12::bigint)$$,
  'a re-upload mid-run queues the document afresh: no run, a fresh budget of attempts, the new size'
);
select tests.act_as('service_role');
select is(
  private.save_ingest_step(tests.fx('doc'), tests.fx('run'), '[]'::jsonb, 4, 60, 5),
  false,
  'a step of the old run changes nothing any more'
);
select is(private.finish_ingest(tests.fx('doc'), tests.fx('run')), null, 'nor can the old run finish');
select isnt(
  (select s.run_id from private.begin_ingest_step(tests.fx('doc')) s),
  tests.fx('run'),
  'the next step begins a new run, reading the new bytes from the start'
);
select tests.act_as('postgres');

-- retry_document: existence is not revealed outside the org.
update public.documents set status = 'failed', failure_reason = 'probe', ingest_run = null where id = tests.fx('doc');
select tests.act_as('owner_b');
select throws_ok(
  $$select public.retry_document(tests.fx('doc'))$$,
  'PT404', 'document not found',
  'retry_document: another org''s owner is told the document does not exist'
);
select throws_ok(
  $$select public.retry_document(gen_random_uuid())$$,
  'PT404', 'document not found',
  'retry_document: as for an id that does not exist'
);
select tests.act_as('owner_a');
select lives_ok($$select public.retry_document(tests.fx('doc'))$$, 'retry_document: the org''s owner retries it');
select results_eq(
  $$select status, ingest_attempts from public.documents where id = tests.fx('doc')$$,
  $$values ('queued'::public.document_status, 0)$$,
  'retry_document: queued with a fresh budget of attempts'
);

select * from finish();
rollback;
