-- The SHA-256 of the bytes an ingestion run reads
-- (20261123002700_document_content_checksum.sql): recorded by the run's first
-- step through private.record_ingested_content (service role, current run
-- only, well-formed hashes only), and forgotten whenever the document goes
-- back to queued. The ingest function's check against the registered
-- checksum is in tests/functions/ingest.test.ts.
begin;
create extension if not exists pgtap with schema extensions;

select plan(10);

insert into tests.fixtures values ('owner_c', tests.create_user('checksum-owner@c.test'));
insert into tests.fixtures values ('org_c', tests.create_org('content-checksum-c', tests.fx('owner_c')));
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, ingest_run)
values (gen_random_uuid(), tests.fx('org_c'), 'manual.pdf', 'application/pdf', 10, tests.fx('org_c') || '/manual.pdf',
  'processing', gen_random_uuid());
insert into tests.fixtures select 'doc', id from public.documents where org_id = tests.fx('org_c');
insert into tests.fixtures select 'run', ingest_run from public.documents where id = tests.fx('doc');

select is(
  (select content_sha256 from public.documents where id = tests.fx('doc')), null,
  'a document has no content hash before a run has read its file'
);

select tests.authenticate_as(tests.fx('owner_c'));
select throws_ok(
  $$select private.record_ingested_content(tests.fx('doc'), tests.fx('run'), repeat('a', 64))$$,
  '42501', null,
  'an org owner cannot record a content hash: only the ingest function (service role) does'
);
select tests.clear_authentication();

select tests.authenticate_as_service_role();
select throws_ok(
  $$select private.record_ingested_content(tests.fx('doc'), tests.fx('run'), repeat('A', 64))$$,
  '22023', 'content_sha256 must be 64 lower-case hex characters',
  'a hash that is not 64 lower-case hex characters is refused'
);
select is(
  private.record_ingested_content(tests.fx('doc'), gen_random_uuid(), repeat('b', 64)), false,
  'a run that is no longer current records nothing'
);
select is(
  private.record_ingested_content(tests.fx('doc'), tests.fx('run'), repeat('c', 64)), true,
  'the current run records the hash of the file it read'
);
select tests.clear_authentication();

select is(
  (select content_sha256 from public.documents where id = tests.fx('doc')), repeat('c', 64),
  'the hash is on the document'
);

update public.documents set status = 'ready', ingest_run = null where id = tests.fx('doc');
select is(
  (select content_sha256 from public.documents where id = tests.fx('doc')), repeat('c', 64),
  'it stays once the run has ended'
);

select throws_ok(
  $$update public.documents set content_sha256 = 'not a hash' where id = tests.fx('doc')$$,
  '23514', null,
  'the column holds only SHA-256 hex digests'
);

update public.documents set status = 'queued' where id = tests.fx('doc');
select is(
  (select content_sha256 from public.documents where id = tests.fx('doc')), null,
  'a document queued again (an upload, a retry) forgets it until its next run reads the file'
);

select ok(
  not has_column_privilege('authenticated', 'public.documents', 'content_sha256', 'update'),
  'users cannot write the content hash'
);

select * from finish();
rollback;
