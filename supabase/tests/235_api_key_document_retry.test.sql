-- Servers retry documents with an API key (20261123006400_api_key_document_reads.sql):
-- the service role may run retry_document (the knowledge function has found
-- the document in the key's org), held to its key's org when it acts for
-- one; users still need knowledge.write, and a document outside their orgs
-- still does not exist for them.
begin;
create extension if not exists pgtap with schema extensions;

select plan(11);

select tests.remember('owner', tests.create_user('doc-retry-owner@a.test'));
select tests.remember('viewer', tests.create_user('doc-retry-viewer@a.test'));
select tests.remember('owner_b', tests.create_user('doc-retry-owner@b.test'));
select tests.remember('org', tests.create_org('doc-retry-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('doc-retry-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org'), tests.fx('viewer'), 'viewer');
select tests.remember('failed', gen_random_uuid());
select tests.remember('queued', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, failure_reason, ingest_attempts)
values
  (tests.fx('failed'), tests.fx('org'), 'broken.pdf', 'application/pdf', 10, tests.fx('org') || '/broken.pdf', 'failed',
   'The PDF could not be read.', 3),
  (tests.fx('queued'), tests.fx('org'), 'waiting.pdf', 'application/pdf', 10, tests.fx('org') || '/waiting.pdf', 'queued',
   null, 0);

select tests.act_as('owner_b');
select tests.remember('key_b', k.id) from public.create_api_key(tests.fx('org_b'), 'cms', array['knowledge.write']) k;
select tests.act_as('owner');
select tests.remember('key', k.id) from public.create_api_key(tests.fx('org'), 'cms', array['knowledge.write']) k;

-- Acting for another org's key, the service role retries nothing in this org.
select tests.act_as('service_role');
select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key_b'))::text, true);
select throws_ok(
  $$select public.retry_document(tests.fx('failed'))$$,
  '42501', 'this API key belongs to another organization',
  'acting for another org''s key, the service role cannot retry this org''s document'
);

select tests.act_as('viewer');
select throws_ok($$select public.retry_document(tests.fx('failed'))$$, '42501', null, 'a viewer still lacks knowledge.write');
select tests.act_as('owner_b');
select throws_ok(
  $$select public.retry_document(tests.fx('failed'))$$,
  'PT404', 'document not found',
  'another org''s owner is still told the document does not exist'
);
select tests.act_as('anon');
select throws_ok($$select public.retry_document(tests.fx('failed'))$$, '42501', null, 'anon cannot call it');

select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, ingest_attempts from public.documents where id = tests.fx('failed')$$,
  $$values ('failed'::public.document_status, 'The PDF could not be read.'::text, 3)$$,
  'the refused retries changed nothing'
);

-- Acting for the org's own key, it retries.
select tests.act_as('service_role');
select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key'))::text, true);
select results_eq(
  $$select status, progress, failure_reason from public.retry_document(tests.fx('failed'))$$,
  $$values ('queued'::public.document_status, 0::smallint, null::text)$$,
  'acting for the org''s key, the service role queues the failed document again'
);
select throws_ok(
  $$select public.retry_document(tests.fx('queued'))$$,
  '22023', 'only a failed or ready document can be ingested again (it is queued)',
  'a document still queued is refused as for users'
);
select tests.act_as('postgres');
update public.documents set status = 'failed', failure_reason = 'broken', deletion_started_at = now() where id = tests.fx('queued');
select tests.act_as('service_role');
select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key'))::text, true);
select throws_ok(
  $$select public.retry_document(tests.fx('queued'))$$,
  '22023', 'the document is being deleted',
  'a document being deleted is not queued again'
);
select throws_ok(
  $$select public.retry_document(gen_random_uuid())$$,
  'PT404', 'document not found',
  'an unknown id is not found'
);

-- Without a key (a scheduled job), the service role is not held to an org.
select tests.act_as('postgres');
update public.documents set status = 'failed', failure_reason = 'again' where id = tests.fx('failed');
select tests.act_as('service_role');
select is(
  (select status from public.retry_document(tests.fx('failed'))),
  'queued'::public.document_status,
  'the service role without a key retries in any org'
);

select tests.act_as('postgres');
select results_eq(
  $$select status, ingest_attempts from public.documents where id = tests.fx('failed')$$,
  $$values ('queued'::public.document_status, 0)$$,
  'the retried document is queued with a fresh budget of attempts'
);

select * from finish();
rollback;
