-- Servers place and cancel calls with an API key (20261123006000_api_key_calls.sql):
-- the service role may run create_outbound_call and cancel_call (the calls
-- function has checked the key's scope and org); users still need
-- calls.manage, and anon cannot call either.
begin;
create extension if not exists pgtap with schema extensions;

select plan(17);

select tests.remember('owner', tests.create_user('apicalls-owner@a.test'));
select tests.remember('member', tests.create_user('apicalls-member@a.test'));
select tests.remember('owner_b', tests.create_user('apicalls-owner@b.test'));
select tests.remember('org', tests.create_org('apicalls-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('apicalls-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');

insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org'), 'Voice', 'voice', 'asst_a', '{api,voice,web}'),
  (tests.fx('org_b'), 'B voice', 'b-voice', 'asst_b', '{api,voice,web}');
select tests.remember('bot', id) from public.bots where org_id = tests.fx('org');
select tests.remember('bot_b', id) from public.bots where org_id = tests.fx('org_b');
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id) values
  (tests.fx('org'), 'vapi', now(), 'pn_a'), (tests.fx('org_b'), 'vapi', now(), 'pn_b');
-- No dispatcher secrets, so the inserts wake nothing.
delete from vault.secrets where name in ('project_url', 'service_role_key');

select tests.act_as('service_role');
select results_eq(
  $$select direction, status, to_number, created_by from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+1 415 555 0100')$$,
  $$values ('outbound'::public.call_direction, 'queued'::public.call_status, '+14155550100'::text, null::uuid)$$,
  'the service role queues a call in the org it names, with no user as its creator'
);
select tests.remember('call', (select id from public.calls where org_id = tests.fx('org') and to_number = '+14155550100'));
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot'), 'not a number')$$,
  '22023', null,
  'its numbers get the same checks as a user''s'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot_b'), '+14155550101')$$,
  'PT404', 'bot not found',
  'a bot of another org is not found in the org named'
);
select results_eq(
  $$select status, ended_reason from public.cancel_call(tests.fx('call'))$$,
  $$values ('canceled'::public.call_status, 'canceled-by-user'::text)$$,
  'the service role cancels a queued call'
);
select results_eq(
  $$select status, ended_reason from public.cancel_call(tests.fx('call'))$$,
  $$values ('canceled'::public.call_status, 'canceled-by-user'::text)$$,
  'its cancellation sent again answers the canceled call, as a user''s does (20261123011200)'
);
select throws_ok(
  $$select public.cancel_call(gen_random_uuid())$$,
  'PT404', 'call not found',
  'an unknown call is not found'
);
select tests.remember('call_2', (select id from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+14155550102')));

select tests.act_as('member');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+14155550103')$$,
  '42501', null,
  'a member still lacks calls.manage to place a call'
);
select throws_ok(
  $$select public.cancel_call(tests.fx('call_2'))$$,
  '42501', null,
  'a member still lacks calls.manage to cancel one'
);

select tests.act_as('owner_b');
select throws_ok(
  $$select public.cancel_call(tests.fx('call_2'))$$,
  'PT404', 'call not found',
  'another org''s owner still does not find the call'
);

select tests.act_as('owner');
select results_eq(
  $$select status, created_by from public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+14155550104')$$,
  $$values ('queued'::public.call_status, tests.fx('owner'))$$,
  'an owner still places calls, as their creator'
);

select tests.act_as('anon');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+14155550105')$$,
  '42501', null,
  'anon cannot place a call'
);
select throws_ok(
  $$select public.cancel_call(tests.fx('call_2'))$$,
  '42501', null,
  'anon cannot cancel one'
);

-- The service role acting for an API key (its id in the claims, as the
-- functions set them) stays in the key's org even if a caller forgot to check.
select tests.act_as('owner_b');
select tests.remember('key_b', k.id) from public.create_api_key(tests.fx('org_b'), 'crm', array['calls.write']) k;
select tests.act_as('service_role');
select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key_b'))::text, true);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('bot'), '+14155550106')$$,
  '42501', 'this API key belongs to another organization',
  'acting for another org''s key, the service role places no call in this org'
);
select throws_ok(
  $$select public.cancel_call(tests.fx('call_2'))$$,
  '42501', 'this API key belongs to another organization',
  'nor cancels its calls'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org'), '[{"name": "x.txt", "mime_type": "text/plain", "size_bytes": 1}]'::jsonb)$$,
  '42501', 'this API key belongs to another organization',
  'nor registers files in it'
);
select is(
  (select status from public.create_outbound_call(tests.fx('org_b'), tests.fx('bot_b'), '+14155550107')),
  'queued'::public.call_status,
  'in its own key''s org it does'
);

select tests.act_as('postgres');
select results_eq(
  $$select to_number, status from public.calls where org_id = tests.fx('org') order by to_number$$,
  $$values ('+14155550100'::text, 'canceled'::public.call_status), ('+14155550102', 'queued'), ('+14155550104', 'queued')$$,
  'only the accepted calls exist, and only the cancelled one changed'
);

select * from finish();
rollback;
