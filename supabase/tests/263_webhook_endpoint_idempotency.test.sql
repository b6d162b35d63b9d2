-- Idempotency keys of users' requests (20261123009000_webhook_endpoint_idempotency.sql): a key is claimed once
-- per user and org, replays its recorded answer to that user only, goes with the membership, is held to one
-- scope per row, and the API-key scope works as before. A claim locks the org row before its insert, whose
-- foreign key check key-share locks the membership (README "Lock order").
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

select tests.remember('wei_admin', tests.create_user('admin@webhook-endpoint-idempotency.test'));
select tests.remember('wei_other', tests.create_user('other@webhook-endpoint-idempotency.test'));
select tests.remember('wei_outsider', tests.create_user('outsider@webhook-endpoint-idempotency.test'));
select tests.remember('wei_org', tests.create_org('webhook-endpoint-idempotency', tests.fx('wei_admin')));
select tests.remember('wei_org2', tests.create_org('webhook-endpoint-idempotency-2', tests.fx('wei_admin')));
select tests.add_member(tests.fx('wei_org'), tests.fx('wei_other'), 'admin');

-- The org row's lock modes when the claim inserts its row: as in 259, this transaction key-share locks the row
-- first and the claim runs in a savepoint (its own xid), so a lock the claim takes turns xmax into a multixact.
select 1 from public.organizations o where o.id = tests.fx('wei_org') for key share;
create temp table wei_org_before as select o.xmax::text as xmax_text from public.organizations o where o.id = tests.fx('wei_org');
create temp table wei_org_locks_at_insert (modes text[]);
create function pg_temp.record_org_locks()
returns trigger
language plpgsql
as $$
begin
  insert into wei_org_locks_at_insert (modes)
  select (select array_agg(m.mode order by m.mode) from pg_catalog.pg_get_multixact_members(o.xmax) m)
  from public.organizations o, wei_org_before b
  where o.id = new.org_id and o.xmax::text <> b.xmax_text;
  return new;
end;
$$;
create trigger wei_record_org_locks before insert on private.idempotency_keys
  for each row when (new.org_id is not null) execute function pg_temp.record_org_locks();

savepoint claim;
select tests.act_as('wei_admin');
select is(
  (select claimed from private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-lock', repeat('a', 64))),
  true,
  'a claim in a subtransaction'
);
select tests.act_as('postgres');
select ok(
  (select 'fornokeyupd' = any (l.modes) from wei_org_locks_at_insert l),
  'locks the org row for no key update (as create_webhook_endpoint then does) before it inserts its row, whose '
  'foreign key check key-share locks the membership'
);
rollback to savepoint claim;
drop trigger wei_record_org_locks on private.idempotency_keys;

select tests.act_as('wei_admin');
select results_eq(
  $$select claimed, response_status from private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-1', repeat('a', 64))$$,
  $$values (true, null::integer)$$,
  'a member claims a key in their org'
);
select lives_ok(
  $$select private.record_user_idempotent_response(tests.fx('wei_org'), 'w-1', 201, '{"secret": "whsec_x"}'::jsonb)$$,
  'and keeps the answer of the request that claimed it'
);
select results_eq(
  $$select claimed, first_fingerprint, response_status, response_body
    from private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-1', repeat('a', 64))$$,
  $$values (false, repeat('a', 64), 201, '{"secret": "whsec_x"}'::jsonb)$$,
  'a retry gets the recorded answer, not a claim'
);
select results_eq(
  $$select claimed, first_fingerprint from private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-1', repeat('b', 64))$$,
  $$values (false, repeat('a', 64))$$,
  'another request with the key sees the first fingerprint, to refuse it'
);
select throws_ok(
  $$select private.record_user_idempotent_response(tests.fx('wei_org'), 'w-1', 201, '{}'::jsonb)$$,
  'P0002', null,
  'an answer is kept once'
);
select is(
  (select claimed from private.claim_user_idempotency_key(tests.fx('wei_org2'), 'w-1', repeat('b', 64))),
  true,
  'keys are per org: the same user claims the key afresh in another org'
);

select tests.act_as('wei_other');
select results_eq(
  $$select claimed, response_body from private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-1', repeat('a', 64))$$,
  $$values (true, null::jsonb)$$,
  'keys are per user: another member claims the same key afresh and never sees the first answer'
);
select throws_ok(
  $$select private.record_user_idempotent_response(tests.fx('wei_org'), 'never-claimed', 201, '{}'::jsonb)$$,
  'P0002', null,
  'an answer is kept only for a key the request claimed'
);

select tests.act_as('wei_outsider');
select throws_ok(
  $$select private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-2', repeat('a', 64))$$,
  '42501', null,
  'a non-member claims nothing in the org'
);
select throws_ok(
  $$select * from private.idempotency_keys$$,
  '42501', null,
  'users cannot read kept answers'
);
select tests.act_as('anon');
select throws_ok(
  $$select private.claim_user_idempotency_key(tests.fx('wei_org'), 'w-3', repeat('a', 64))$$,
  '42501', null,
  'nor can anyone signed out'
);

select tests.act_as('wei_admin');
select throws_ok(
  $$select private.claim_user_idempotency_key(tests.fx('wei_org'), 'has space', repeat('a', 64))$$,
  '23514', null,
  'a key of other than 1 to 255 visible ASCII characters is refused'
);

select tests.act_as('postgres');
select throws_ok(
  $$insert into private.idempotency_keys (api_key_id, org_id, user_id, idempotency_key, request_fingerprint)
    select k.id, tests.fx('wei_org'), tests.fx('wei_admin'), 'both', repeat('a', 64)
    from (select gen_random_uuid() as id) k$$,
  '23514', null,
  'a row is scoped by an API key or a membership, not both'
);
select throws_ok(
  $$insert into private.idempotency_keys (idempotency_key, request_fingerprint) values ('neither', repeat('a', 64))$$,
  '23514', null,
  'nor neither'
);

select tests.act_as('wei_admin');
select tests.remember('wei_key', k.id) from public.create_api_key(tests.fx('wei_org'), 'crm', array['calls.write']) k;
select tests.act_as('service_role');
select is(
  (select claimed from private.claim_idempotency_key(tests.fx('wei_key'), 'w-1', repeat('a', 64))),
  true,
  'an API key claims its keys apart from users'' keys of the same name'
);
select is(
  (select claimed from private.claim_idempotency_key(tests.fx('wei_key'), 'w-1', repeat('a', 64))),
  false,
  'and once'
);

select tests.act_as('postgres');
update private.idempotency_keys set created_at = now() - interval '2 days'
where user_id = tests.fx('wei_admin') and org_id = tests.fx('wei_org2');
select is(private.purge_idempotency_keys(), 1, 'the purge removes users'' answers past their 24 hours');

delete from public.memberships where org_id = tests.fx('wei_org') and user_id = tests.fx('wei_other');
select is(
  (select count(*)::integer from private.idempotency_keys where user_id = tests.fx('wei_other')),
  0,
  'answers go with the membership: a user who leaves the org leaves them'
);

select * from finish();
rollback;
