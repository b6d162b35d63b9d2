-- Servers run call campaigns with an API key (20261123006200_api_key_campaigns.sql):
-- the service role may run create_call_campaign and cancel_call_campaign (the
-- calls function has checked the key's scope and org), held to its key's org
-- when it acts for one; users still need calls.manage, and anon cannot call
-- either.
begin;
create extension if not exists pgtap with schema extensions;

select plan(21);

select tests.remember('owner', tests.create_user('apicampaigns-owner@a.test'));
select tests.remember('member', tests.create_user('apicampaigns-member@a.test'));
select tests.remember('owner_b', tests.create_user('apicampaigns-owner@b.test'));
select tests.remember('org', tests.create_org('apicampaigns-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('apicampaigns-b', tests.fx('owner_b')));
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

select tests.act_as('owner');
select tests.remember('key_a', k.id) from public.create_api_key(tests.fx('org'), 'crm', array['calls.write']) k;
select tests.act_as('owner_b');
select tests.remember('key_b', k.id) from public.create_api_key(tests.fx('org_b'), 'crm', array['calls.write']) k;

select tests.act_as('service_role');
select results_eq(
  $$select calls_created, duplicates_removed, invalid_numbers
    from public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Spring', array['+1 415 555 0100', '+14155550100', 'nope', '+14155550101'])$$,
  $$values (2, 1, array['nope'])$$,
  'the service role queues a campaign in the org it names'
);
select tests.remember('campaign', (select id from public.call_campaigns where org_id = tests.fx('org') and name = 'Spring'));
select results_eq(
  $$select to_number, status, created_by from public.calls where campaign_id = tests.fx('campaign') order by to_number$$,
  $$values ('+14155550100'::text, 'queued'::public.call_status, null::uuid), ('+14155550101', 'queued', null)$$,
  'one queued call per distinct number, with no user as its creator'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Bad', array['nope', '+1'])$$,
  '22023', 'none of the 2 numbers is a phone number',
  'its numbers get the same checks as a user''s'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('bot_b'), 'Theirs', array['+14155550102'])$$,
  'PT404', 'bot not found',
  'a bot of another org is not found in the org named'
);
select is(public.cancel_call_campaign(tests.fx('campaign')), 2, 'the service role cancels a campaign and its queued calls');
select is(public.cancel_call_campaign(tests.fx('campaign')), 0, 'cancelling it again cancels nothing more');
select throws_ok(
  $$select public.cancel_call_campaign(gen_random_uuid())$$,
  'PT404', 'call campaign not found',
  'an unknown campaign is not found'
);
select tests.remember('campaign_2', (
  select campaign_id from public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Summer', array['+14155550103'])
));

select tests.act_as('member');
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Member', array['+14155550104'])$$,
  '42501', null,
  'a member still lacks calls.manage to queue a campaign'
);
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign_2'))$$,
  '42501', null,
  'a member still lacks calls.manage to cancel one'
);

select tests.act_as('owner_b');
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign_2'))$$,
  'PT404', 'call campaign not found',
  'another org''s owner still does not find the campaign'
);

select tests.act_as('owner');
select is(
  (select calls_created from public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Owner''s', array['+14155550105'])),
  1,
  'an owner still queues campaigns'
);

select tests.act_as('anon');
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Anon', array['+14155550106'])$$,
  '42501', null,
  'anon cannot queue a campaign'
);
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign_2'))$$,
  '42501', null,
  'anon cannot cancel one'
);

-- The service role acting for an API key (its id in the claims, as the
-- functions set them) stays in the key's org even if a caller forgot to check.
select tests.act_as('service_role');
select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key_b'))::text, true);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('bot'), 'Intruder', array['+14155550107'])$$,
  '42501', 'this API key belongs to another organization',
  'acting for another org''s key, the service role queues no campaign in this org'
);
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign_2'))$$,
  '42501', 'this API key belongs to another organization',
  'nor cancels its campaigns'
);
select tests.remember('campaign_b', (
  select campaign_id from public.create_call_campaign(tests.fx('org_b'), tests.fx('bot_b'), 'B', array['+14155550108'])
));
select is(
  (select calls_created from public.call_campaigns where id = tests.fx('campaign_b')),
  1,
  'in its own key''s org it queues one'
);
select is(public.cancel_call_campaign(tests.fx('campaign_b')), 1, 'and cancels it');

select set_config('request.jwt.claims', json_build_object('role', 'service_role', 'api_key_id', tests.fx('key_a'))::text, true);
select is(public.cancel_call_campaign(tests.fx('campaign_2')), 1, 'acting for this org''s key, it cancels this org''s campaign');
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign_b'))$$,
  '42501', 'this API key belongs to another organization',
  'but not the other org''s'
);

select tests.act_as('postgres');
select results_eq(
  $$select name, status, created_by from public.call_campaigns where org_id = tests.fx('org') order by name$$,
  $$values ('Owner''s'::text, 'active'::text, tests.fx('owner')), ('Spring', 'canceled', null::uuid), ('Summer', 'canceled', null)$$,
  'only the accepted campaigns exist in the org, cancelled where asked, an owner''s with its creator'
);
select results_eq(
  $$select action, actor_api_key_id from public.audit_log
    where table_name = 'call_campaigns' and record_id = tests.fx('campaign_b')::text order by seq$$,
  $$values ('insert'::text, tests.fx('key_b')), ('update', tests.fx('key_b'))$$,
  'the audit log names the key the service role acted for'
);

select * from finish();
rollback;
