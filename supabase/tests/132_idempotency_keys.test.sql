-- Idempotency keys of API requests (20261123006100_idempotency_keys.sql): a
-- key is claimed once per API key, replays its recorded answer, is new again
-- after 24 hours, goes with its API key, and is reachable by the service
-- role only, through the functions.
begin;
create extension if not exists pgtap with schema extensions;

select plan(19);

select tests.remember('owner', tests.create_user('owner@idempotency.test'));
select tests.remember('org', tests.create_org('idempotency-org', tests.fx('owner')));
select tests.act_as('owner');
select tests.remember('key', k.id) from public.create_api_key(tests.fx('org'), 'crm', array['calls.write']) k;
select tests.remember('other_key', k.id) from public.create_api_key(tests.fx('org'), 'other', array['calls.write']) k;

select tests.act_as('service_role');
select results_eq(
  $$select claimed, response_status from private.claim_idempotency_key(tests.fx('key'), 'k-1', repeat('a', 64))$$,
  $$values (true, null::integer)$$,
  'the first request claims the key'
);
select private.record_idempotent_response(tests.fx('key'), 'k-1', 201, '{"id": "call-1"}'::jsonb);
select results_eq(
  $$select claimed, first_fingerprint, response_status, response_body
    from private.claim_idempotency_key(tests.fx('key'), 'k-1', repeat('a', 64))$$,
  $$values (false, repeat('a', 64), 201, '{"id": "call-1"}'::jsonb)$$,
  'a retry gets the recorded answer, not a claim'
);
select results_eq(
  $$select claimed, first_fingerprint from private.claim_idempotency_key(tests.fx('key'), 'k-1', repeat('b', 64))$$,
  $$values (false, repeat('a', 64))$$,
  'another request with the key is not claimed either, and sees the first fingerprint to refuse it'
);
select is(
  (select claimed from private.claim_idempotency_key(tests.fx('other_key'), 'k-1', repeat('b', 64))),
  true,
  'keys are per API key: another API key claims the same key afresh'
);

select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '25 hours'
where api_key_id = tests.fx('key') and idempotency_key = 'k-1';
select tests.act_as('service_role');
select results_eq(
  $$select claimed, response_status from private.claim_idempotency_key(tests.fx('key'), 'k-1', repeat('c', 64))$$,
  $$values (true, null::integer)$$,
  'past 24 hours a key is claimed afresh, its old answer gone'
);

select throws_ok(
  $$select private.claim_idempotency_key(tests.fx('key'), 'has space', repeat('a', 64))$$,
  '23514', null,
  'a key of other than 1 to 255 visible ASCII characters is refused'
);
select throws_ok(
  $$select private.record_idempotent_response(tests.fx('key'), 'k-1', 500, '{}'::jsonb)$$,
  '23514', null,
  'only a success is recorded (a failure rolls its claim back instead)'
);

select tests.act_as('postgres');
select private.claim_idempotency_key(tests.fx('key'), 'old', repeat('d', 64));
update private.idempotency_keys set created_at = now() - interval '2 days' where idempotency_key = 'old';
select is(private.purge_idempotency_keys(), 1, 'the purge removes answers past their 24 hours');
select is(
  (select schedule from cron.job where jobname = 'purge-idempotency-keys'),
  '23 * * * *',
  'the purge runs hourly'
);
select tests.act_as('service_role');
select throws_ok(
  $$select private.record_idempotent_response(tests.fx('key'), 'never-claimed', 201, '{}'::jsonb)$$,
  'P0002', null,
  'an answer is kept only for a key the request claimed'
);
select lives_ok(
  $$select private.record_idempotent_response(tests.fx('other_key'), 'k-1', 201, '{}'::jsonb)$$,
  'the claiming request keeps its answer'
);
select throws_ok(
  $$select private.record_idempotent_response(tests.fx('other_key'), 'k-1', 201, '{}'::jsonb)$$,
  'P0002', null,
  'once'
);

select tests.act_as('service_role');
select private.claim_idempotency_key(tests.fx('key'), 'k-upload', repeat('e', 64));
select is(private.release_idempotency_key(tests.fx('key'), 'k-upload'), true, 'a claim whose work failed is given up');
select is(
  (select claimed from private.claim_idempotency_key(tests.fx('key'), 'k-upload', repeat('e', 64))),
  true,
  'and the request may claim its key again'
);
select is(private.release_idempotency_key(tests.fx('other_key'), 'k-1'), false, 'an answered claim is not given up');
select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '11 minutes'
where api_key_id = tests.fx('key') and idempotency_key = 'k-upload';
select tests.act_as('service_role');
select is(
  (select claimed from private.claim_idempotency_key(tests.fx('key'), 'k-upload', repeat('f', 64))),
  true,
  'a claim left without an answer for 10 minutes (its request died) is claimed afresh'
);

select tests.act_as('owner');
select throws_ok(
  $$select * from private.idempotency_keys$$,
  '42501', null,
  'users cannot read kept answers'
);
select throws_ok(
  $$select private.claim_idempotency_key(tests.fx('key'), 'k-2', repeat('a', 64))$$,
  '42501', null,
  'nor claim keys'
);

select tests.act_as('postgres');
delete from public.api_keys where id = tests.fx('key');
select is(
  (select count(*)::integer from private.idempotency_keys where api_key_id = tests.fx('key')),
  0,
  'answers go with their API key'
);

select * from finish();
rollback;
