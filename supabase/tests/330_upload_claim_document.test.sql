-- An upload's Idempotency-Key claim names its document (20261123015600): a
-- retry of the same request that takes the claim over unanswered after 10
-- minutes is told that document; a claim answered, still fresh, past its 24
-- hours, or taken over by another request tells none; a claim taken starts
-- without one; service role only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(13);

select tests.remember('owner', tests.create_user('owner@upload-claim-document-330.test'));
select tests.remember('org', tests.create_org('upload-claim-document-330', tests.fx('owner')));
select tests.act_as('owner');
select tests.remember('key', k.id) from public.create_api_key(tests.fx('org'), 'sync', array['knowledge.write']) k;
select tests.remember('doc', gen_random_uuid());
select tests.remember('doc_2', gen_random_uuid());

select tests.act_as('service_role');
select results_eq(
  $$select claimed, document_id from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('a', 64))$$,
  $$values (true, null::uuid)$$,
  'a first claim names no document'
);
select lives_ok(
  $$select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc'))$$,
  'the registration names its document on the claim'
);
select results_eq(
  $$select claimed, response_status, document_id
    from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('a', 64))$$,
  $$values (false, null::integer, null::uuid)$$,
  'a retry while the claim is fresh is not claimed (the caller''s 409), and told no document'
);

select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '11 minutes'
where api_key_id = tests.fx('key') and idempotency_key = 'u-1';
select tests.act_as('service_role');
select results_eq(
  $$select claimed, response_status, document_id
    from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('a', 64))$$,
  $$values (true, null::integer, tests.fx('doc'))$$,
  'the same request taking an unanswered claim over after 10 minutes is told its document'
);
select tests.act_as('postgres');
select is(
  (select document_id from private.idempotency_keys where api_key_id = tests.fx('key') and idempotency_key = 'u-1'),
  null::uuid,
  'the claim taken over starts without a document'
);
update private.idempotency_keys set created_at = now() - interval '11 minutes'
where api_key_id = tests.fx('key') and idempotency_key = 'u-1';
select tests.act_as('service_role');
select is(
  (select document_id from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('a', 64))),
  null::uuid,
  'so a request that died before naming one leaves none to the next'
);

select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc_2'));
select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '11 minutes'
where api_key_id = tests.fx('key') and idempotency_key = 'u-1';
select tests.act_as('service_role');
select results_eq(
  $$select claimed, document_id from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('b', 64))$$,
  $$values (true, null::uuid)$$,
  'another request taking the claim over is told no document: it is not its'
);

select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc'));
select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '25 hours'
where api_key_id = tests.fx('key') and idempotency_key = 'u-1';
select tests.act_as('service_role');
select results_eq(
  $$select claimed, document_id from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('b', 64))$$,
  $$values (true, null::uuid)$$,
  'past its 24 hours the key is new: the same request is told no document'
);

select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc'));
select private.record_idempotent_response(tests.fx('key'), 'u-1', 202, '{"id": "answered"}'::jsonb);
select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '11 minutes'
where api_key_id = tests.fx('key') and idempotency_key = 'u-1';
select tests.act_as('service_role');
select results_eq(
  $$select claimed, response_status, response_body, document_id
    from private.claim_upload_idempotency_key(tests.fx('key'), 'u-1', repeat('b', 64))$$,
  $$values (false, 202, '{"id": "answered"}'::jsonb, null::uuid)$$,
  'an answered claim replays its answer and tells no document'
);
select throws_ok(
  $$select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc_2'))$$,
  'P0002', null,
  'an answered claim names no other document'
);
select throws_ok(
  $$select private.record_idempotent_document(tests.fx('key'), 'never-claimed', tests.fx('doc'))$$,
  'P0002', null,
  'nor does a key no request claimed'
);

select tests.act_as('owner');
select throws_ok(
  $$select private.claim_upload_idempotency_key(tests.fx('key'), 'u-2', repeat('a', 64))$$,
  '42501', null,
  'users cannot claim upload keys'
);
select throws_ok(
  $$select private.record_idempotent_document(tests.fx('key'), 'u-1', tests.fx('doc'))$$,
  '42501', null,
  'nor name documents on claims'
);

select * from finish();
rollback;
