-- 20261123014600: the "not found" of the public RPCs (team, API keys, calls, campaigns, call providers,
-- calendar, appointments, documents, call statistics, catalog search, bot retrieval) is PT404 with the
-- message it had, which PostgREST answers 404; P0002 was a 500. A second remove_member or
-- leave_organization (a double click) is such a not found.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

select tests.remember('owner_a', tests.create_user('owner-a@rpc404-319.test'));
select tests.remember('member_a', tests.create_user('member-a@rpc404-319.test'));
select tests.remember('leaver_a', tests.create_user('leaver-a@rpc404-319.test'));
select tests.remember('outsider', tests.create_user('outsider@rpc404-319.test'));
select tests.remember('org_a', tests.create_org('rpc404-319-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('leaver_a'), 'member');
select tests.remember('random', gen_random_uuid());

-- ---------------------------------------------------------------------------
-- Team: private.target_membership
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select is(
  (select m.user_id from public.remove_member(tests.fx('org_a'), tests.fx('member_a')) m),
  tests.fx('member_a'), 'remove_member: the first click removes the member');
select throws_ok(
  $$select public.remove_member(tests.fx('org_a'), tests.fx('member_a'))$$,
  'PT404', 'no such member in this organization', 'remove_member: the second click is PT404');
select throws_ok(
  $$select public.change_member_role(tests.fx('org_a'), tests.fx('outsider'), 'admin')$$,
  'PT404', 'no such member in this organization', 'change_member_role: a non-member is PT404');
select throws_ok(
  $$select public.transfer_ownership(tests.fx('org_a'), tests.fx('outsider'))$$,
  'PT404', 'no such member in this organization', 'transfer_ownership: to a non-member is PT404');

select tests.act_as('leaver_a');
select lives_ok($$select public.leave_organization(tests.fx('org_a'))$$, 'leave_organization: the first submit leaves');
select throws_ok(
  $$select public.leave_organization(tests.fx('org_a'))$$,
  'PT404', 'no such member in this organization', 'leave_organization: the second submit is PT404');

select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.memberships m
   where m.org_id = tests.fx('org_a') and m.user_id in (tests.fx('member_a'), tests.fx('leaver_a'))),
  0, 'both are gone once, and only the owner is left');

-- ---------------------------------------------------------------------------
-- Unknown ids, as the org's owner
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select throws_ok($$select public.revoke_api_key(tests.fx('random'))$$,
  'PT404', 'API key not found', 'revoke_api_key: a stale id is PT404');
select throws_ok($$select public.set_api_key_rate_limit(tests.fx('random'), 5)$$,
  'PT404', 'API key not found', 'set_api_key_rate_limit: an unknown key is PT404');
select throws_ok($$select public.cancel_call(tests.fx('random'))$$,
  'PT404', 'call not found', 'cancel_call: an unknown call is PT404');
select throws_ok($$select public.cancel_call_campaign(tests.fx('random'))$$,
  'PT404', 'call campaign not found', 'cancel_call_campaign: an unknown campaign is PT404');
select throws_ok($$select public.create_outbound_call(tests.fx('org_a'), tests.fx('random'), '+14155550100')$$,
  'PT404', 'bot not found', 'create_outbound_call: an unknown bot is PT404');
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('random'), 'rpc404-319', array['+14155550100'])$$,
  'PT404', 'bot not found', 'create_call_campaign: an unknown bot is PT404');
select throws_ok($$select * from public.rotate_call_provider_secret(tests.fx('org_a'), 'generic')$$,
  'PT404', 'this organization has no generic secret yet', 'rotate_call_provider_secret: no secret yet is PT404');
select throws_ok(
  $$select * from public.call_stats_summary(tests.fx('org_a'), '2026-03-01', '2026-03-02', tests.fx('random'))$$,
  'PT404', 'bot not found', 'call_stats_summary: an unknown bot is PT404');
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-01', '2026-03-02', tests.fx('random'))$$,
  'PT404', 'bot not found', 'call_stats_daily: an unknown bot is PT404');
select throws_ok($$select public.disconnect_calendar(tests.fx('random'))$$,
  'PT404', 'calendar connection not found', 'disconnect_calendar: an unknown connection is PT404');
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', repeat('v', 43), tests.fx('random'))$$,
  'PT404', 'bot not found', 'begin_calendar_connection: an unknown bot is PT404');
select throws_ok($$select public.cancel_appointment(tests.fx('random'))$$,
  'PT404', 'appointment not found', 'cancel_appointment: an unknown appointment is PT404');
select throws_ok(
  $$select public.reschedule_appointment(tests.fx('random'), now() + interval '1 day', now() + interval '1 day 30 minutes')$$,
  'PT404', 'appointment not found', 'reschedule_appointment: an unknown appointment is PT404');
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), now() + interval '1 day', now() + interval '1 day 30 minutes',
    'Rpc 319', 'rpc319@example.com', bot_id => tests.fx('random'))$$,
  'PT404', 'bot not found', 'create_appointment: an unknown bot is PT404');
select throws_ok($$select public.retry_document(tests.fx('random'))$$,
  'PT404', 'document not found', 'retry_document: an unknown document is PT404');
select throws_ok($$select * from public.search_products(tests.fx('org_a'), null, tests.fx('random'))$$,
  'PT404', 'category not found', 'search_products: an unknown category is PT404');
select throws_ok(
  $$select * from public.match_bot_chunks(tests.fx('random'), array_fill(1::real, array[1536])::extensions.vector, 'x', 5)$$,
  'PT404', 'bot not found', 'match_bot_chunks: an unknown bot is PT404');

select tests.act_as('service_role');
select throws_ok($$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', 'pn_rpc404_319')$$,
  'PT404', 'this organization has no vapi provider yet', 'set_call_provider_outbound: no provider yet is PT404');

-- An org gone between the permission check and the read (a double-submitted deletion): PT404 too.
select tests.act_as('postgres');
select throws_ok(
  $$select private.business_hours_ranges(tests.fx('random'), null, tstzrange(now(), now() + interval '1 day'))$$,
  'PT404', 'organization not found', 'business_hours_ranges: an unknown org is PT404');
select throws_ok($$select private.next_call_slot(tests.fx('random'), null, null, now())$$,
  'PT404', 'organization not found', 'next_call_slot: an unknown org is PT404');

-- None of the functions the public RPCs reach raises P0002 any more;
-- record_user_idempotent_response's is our own bug, not the client's, and stays a 500.
select is(
  (select array_agg(p.proname::text order by p.proname) from pg_proc p
   where p.pronamespace in ('public'::regnamespace, 'private'::regnamespace)
     and p.proname in ('target_membership', 'revoke_api_key', 'set_api_key_rate_limit', 'manageable_call',
       'cancel_call_campaign', 'retry_document', 'rotate_call_provider_secret', 'set_call_provider_outbound',
       'require_outbound_setup', 'call_stats_scope', 'next_call_slot', 'business_hours_ranges',
       'begin_calendar_connection', 'disconnect_calendar', 'writable_appointment', 'insert_appointment',
       'search_products', 'match_bot_chunks', 'delete_organization')
     and p.prosrc ~ 'no_data_found|P0002'),
  null, 'no function a public RPC reaches raises P0002');

select * from finish();
rollback;
