-- Call operations (20261123001210_call_operations.sql): where outbound calls
-- go out from, create_outbound_call and its refusals, calling hours, campaigns
-- (normalize, dedupe, cap, invalid numbers, one slot), cancelling, the
-- dispatcher's claim (leases, order, calls that can no longer be dialled),
-- dial results (ringing, the retry schedule, the final failure with its
-- call.ended event, stale reports), waking the dispatcher, after-call
-- analysis (never over the provider's values, metered) and recordings.
--
-- Everything runs in one transaction, so now() is one instant: a lease that
-- "ran out" or a request "10 minutes ago" is written into the rows. The org's
-- zone is one where it is about noon now, so calling hours (08:00-21:00 of
-- the callee) never move a call that should go out at once.
begin;
create extension if not exists pgtap with schema extensions;

select plan(104);

create temp table marks (label text primary key, value text);
grant all on marks to public;
create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

-- A fixed-offset zone where the local time is 12:xx now.
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select extract(hour from now() at time zone 'UTC')::integer - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

-- Monday 00:00 (local) at least two weeks ahead, in a zone.
create function pg_temp.monday(zone text, plus_days integer default 0, at time without time zone default '00:00')
returns timestamptz
language sql
stable
as $$ select ((date_trunc('week', now() at time zone zone)::date + 14 + plus_days) + at) at time zone zone $$;
grant execute on function pg_temp.monday(text, integer, time) to public;

-- claim_due_calls as the service role, kept under label.
create function pg_temp.claim(label text, max_calls integer)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(to_jsonb(c) order by c.call_id), '[]') from private.claim_due_calls(max_calls) c
  returning body;
$$;
grant execute on function pg_temp.claim(text, integer) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@callops.test')),
  ('admin_a', tests.create_user('admin-a@callops.test')),
  ('member_a', tests.create_user('member-a@callops.test')),
  ('viewer_a', tests.create_user('viewer-a@callops.test')),
  ('owner_b', tests.create_user('owner-b@callops.test'));
select tests.remember('org_a', tests.create_org('callops-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('callops-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
update public.organizations set time_zone = pg_temp.noon_zone() where id = tests.fx('org_a');

insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org_a'), 'Voice', 'voice', '{api,voice,web}'),
  (tests.fx('org_a'), 'Noassist', 'noassist', '{api,voice,web}'),
  (tests.fx('org_a'), 'Off', 'off', '{api,voice,web}'),
  (tests.fx('org_a'), 'Hours', 'hours', '{api,voice,web}'),
  (tests.fx('org_a'), 'Fragile', 'fragile', '{api,voice,web}'),
  (tests.fx('org_b'), 'B voice', 'b-voice', '{api,voice,web}');
select tests.remember('bot_' || slug, id) from public.bots where org_id in (tests.fx('org_a'), tests.fx('org_b'));
update public.bots set voice_assistant_id = 'asst_' || slug where slug in ('off', 'hours', 'fragile', 'b-voice');
update public.bots set enabled = false where slug = 'off';
-- The Hours bot is open on Mondays 09:00-17:00 only (the org's zone).
insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
values (tests.fx('org_a'), tests.fx('bot_hours'), 1, '09:00', '17:00');

-- No dispatcher secrets until the wake-up tests create them, so inserts queue nothing before.
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Where calls go out from
-- ---------------------------------------------------------------------------

-- Ids on the shared Vapi account are the platform's (20261123008400).
select tests.act_as('admin_a');
select throws_ok(
  $$update public.bots set voice_assistant_id = 'asst_voice' where id = tests.fx('bot_voice')$$,
  '42501', null,
  'bots.voice_assistant_id: an admin may not set it (the platform provisions it)'
);
select tests.act_as('service_role');
update public.bots set voice_assistant_id = 'asst_voice' where id = tests.fx('bot_voice');
select tests.act_as('member_a');
update public.bots set voice_assistant_id = 'asst_hijack' where id = tests.fx('bot_voice');
select tests.act_as('postgres');
select is((select voice_assistant_id from public.bots where id = tests.fx('bot_voice')), 'asst_voice',
  'bots.voice_assistant_id: a member changes nothing');
select throws_ok(
  $$update public.bots set voice_assistant_id = '' where id = tests.fx('bot_voice')$$,
  '23514', null, 'bots.voice_assistant_id: 1 to 200 characters'
);

select tests.act_as('service_role');
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', 'pn_a')$$,
  'PT404', 'this organization has no vapi provider yet',
  'set_call_provider_outbound: refused when the org has no such provider'
);
select tests.act_as('postgres');
insert into public.call_providers (org_id, provider, secret_created_at) values
  (tests.fx('org_a'), 'vapi', now()), (tests.fx('org_a'), 'generic', now()), (tests.fx('org_b'), 'vapi', now());

select tests.act_as('admin_a');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550100')$$,
  '22023', 'this organization has no vapi phone number to call from',
  'create_outbound_call: refused while the org has no phone number to call from'
);
select tests.act_as('service_role');
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'generic', 'pn_a')$$,
  '22023', 'outbound calls are placed through vapi only, not generic',
  'set_call_provider_outbound: vapi only'
);
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', '  ')$$,
  '22023', 'phone_number_id must have 1 to 200 characters (null clears it)',
  'set_call_provider_outbound: a blank id is refused'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', 'pn_a')$$,
  '42501', 'only the platform (service role) sets an organization''s outbound phone number (outbound_phone_number_id): it is an id on the shared Vapi account',
  'set_call_provider_outbound: admins may not (the platform provisions it)'
);
select tests.act_as('service_role');
select is(
  (select outbound_phone_number_id from public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', ' pn_a ')),
  'pn_a',
  'set_call_provider_outbound: the service role sets the phone number (trimmed)'
);
select public.set_call_provider_outbound(tests.fx('org_b'), 'vapi', 'pn_b');

-- ---------------------------------------------------------------------------
-- create_outbound_call
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '12345')$$,
  '22023', 'not a phone number: 12345',
  'create_outbound_call: a number that is not E.164 is refused, named'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), gen_random_uuid(), '+14155550100')$$,
  'PT404', 'bot not found',
  'create_outbound_call: an unknown bot is not found'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_b-voice'), '+14155550100')$$,
  'PT404', 'bot not found',
  'create_outbound_call: another org''s bot is not found'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_noassist'), '+14155550100')$$,
  '22023', 'the bot Noassist has no voice assistant',
  'create_outbound_call: a bot without a voice assistant places no call'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_off'), '+14155550100')$$,
  '22023', 'the bot Off is disabled',
  'create_outbound_call: a disabled bot places no call'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550100', null, 'Mars/Olympus')$$,
  '22023', 'unknown time zone: Mars/Olympus',
  'create_outbound_call: an unknown callee zone is refused'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550100')$$,
  '42501', 'you do not have the calls.manage permission in this organization',
  'create_outbound_call: members may not'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550100')$$,
  '42501', 'you do not have the calls.manage permission in this organization',
  'create_outbound_call: another org''s owner may not'
);
select tests.act_as('anon');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550100')$$,
  '42501', null,
  'create_outbound_call: anon may not run it'
);

select tests.act_as('admin_a');
select tests.remember('call_now', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), ' +1 (415) 555-0100 ', now() - interval '1 day')).id);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, bot_id, direction::text, to_number, status::text, provider, created_by, callee_time_zone,
      scheduled_at, next_dial_at, dial_attempts
    from public.calls where id = tests.fx('call_now')$$,
  $$values (tests.fx('org_a'), tests.fx('bot_voice'), 'outbound', '+14155550100', 'queued', 'vapi', tests.fx('admin_a'),
      pg_temp.noon_zone(), now(), now(), 0)$$,
  'create_outbound_call: queued outbound via vapi, number normalized, callee zone the org''s, a past moment is now'
);

-- Calling hours, in Berlin: the Hours bot opens Mondays 09:00-17:00.
update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_a');
select tests.act_as('admin_a');
select is(
  (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_hours'), '+4930123456', pg_temp.monday('Europe/Berlin', 0, '06:00'))).scheduled_at,
  pg_temp.monday('Europe/Berlin', 0, '09:00'),
  'create_outbound_call: before opening, the call moves to the opening (Monday 09:00 Berlin)'
);
select is(
  (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_hours'), '+12125550100', pg_temp.monday('Europe/Berlin', 0, '06:00'),
    'America/New_York')).next_dial_at,
  ((pg_temp.monday('Europe/Berlin') at time zone 'Europe/Berlin')::date + time '08:00') at time zone 'America/New_York',
  'create_outbound_call: and not before 08:00 of the callee (New York) on that Monday, within the bot''s hours'
);
select is(
  (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_hours'), '+4930123456', pg_temp.monday('Europe/Berlin', 0, '18:00'))).scheduled_at,
  pg_temp.monday('Europe/Berlin', 7, '09:00'),
  'create_outbound_call: after closing, the next opening (a week later)'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_hours'), '+4930123456', pg_temp.monday('Europe/Berlin'), 'Pacific/Kiritimati')$$,
  '22023', null,
  'create_outbound_call: no slot within 14 days (the callee''s day never meets the bot''s hours) is refused'
);
select tests.act_as('postgres');
update public.organizations set time_zone = pg_temp.noon_zone() where id = tests.fx('org_a');

-- ---------------------------------------------------------------------------
-- Campaigns
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
insert into answers
select 'campaign', to_jsonb(r) from public.create_call_campaign(
  tests.fx('org_a'), tests.fx('bot_voice'), ' Spring promo ',
  array['+1 415 555 0101', '+14155550101', 'not a number', '+1.415.555.0102', '12345', '+1 (415) 555-0101']
) r;
select tests.remember('campaign', (pg_temp.answer('campaign') ->> 'campaign_id')::uuid);
select is(
  pg_temp.answer('campaign') - 'campaign_id',
  '{"calls_created": 2, "duplicates_removed": 2, "invalid_numbers": ["not a number", "12345"]}'::jsonb,
  'create_call_campaign: duplicates after normalization removed and counted, invalid numbers reported'
);
select results_eq(
  $$select to_number, status::text, bot_id, count(*) over (partition by scheduled_at, next_dial_at)::integer
    from public.calls where campaign_id = tests.fx('campaign') order by to_number$$,
  $$values ('+14155550101', 'queued', tests.fx('bot_voice'), 2), ('+14155550102', 'queued', tests.fx('bot_voice'), 2)$$,
  'create_call_campaign: one queued call per distinct number, all at the same slot'
);
select results_eq(
  $$select name, status, calls_created, duplicates_removed, invalid_numbers, scheduled_at, created_by
    from public.call_campaigns where id = tests.fx('campaign')$$,
  $$values ('Spring promo', 'active', 2, 2, array['not a number', '12345'], now(), tests.fx('admin_a'))$$,
  'create_call_campaign: the campaign keeps its name (trimmed), report and slot'
);
select is(
  (select calls_created || '/' || duplicates_removed from public.create_call_campaign(
    tests.fx('org_a'), tests.fx('bot_voice'), 'Thousand', array_fill('+14155550109'::text, array[1000]))),
  '1/999',
  'create_call_campaign: 1000 numbers are accepted (duplicates count toward the cap)'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), 'Too many', array_fill('+14155550109'::text, array[1001]))$$,
  '22023', 'a campaign has 1 to 1000 numbers (got 1001)',
  'create_call_campaign: 1001 numbers are refused, before removing duplicates'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), 'Empty', '{}')$$,
  '22023', 'a campaign has 1 to 1000 numbers (got 0)',
  'create_call_campaign: no numbers is refused'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), 'Junk', array['x', '1', null])$$,
  '22023', 'none of the 3 numbers is a phone number',
  'create_call_campaign: refused only when no number is valid'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), '  ', array['+14155550101'])$$,
  '22023', 'a campaign name has 1 to 100 characters',
  'create_call_campaign: a blank name is refused'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), repeat('n', 101), array['+14155550101'])$$,
  '22023', 'a campaign name has 1 to 100 characters',
  'create_call_campaign: a name over 100 characters is refused'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_noassist'), 'No assistant', array['+14155550101'])$$,
  '22023', 'the bot Noassist has no voice assistant',
  'create_call_campaign: the same setup checks as a single call'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), 'Nope', array['+14155550101'])$$,
  '42501', 'you do not have the calls.manage permission in this organization',
  'create_call_campaign: members may not'
);

-- ---------------------------------------------------------------------------
-- Cancelling
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select public.cancel_call(tests.fx('call_now'))$$,
  '42501', 'you do not have the calls.manage permission in this organization',
  'cancel_call: members read the call but may not cancel it'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.cancel_call(tests.fx('call_now'))$$,
  'PT404', 'call not found',
  'cancel_call: another org''s call is not found'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select public.cancel_call(gen_random_uuid())$$,
  'PT404', 'call not found',
  'cancel_call: an unknown call is not found'
);
select results_eq(
  $$select status::text, ended_reason, ended_at is not null from public.cancel_call(tests.fx('call_now'))$$,
  $$values ('canceled', 'canceled-by-user', true)$$,
  'cancel_call: a queued call is canceled by the user, and ended'
);
select tests.act_as('postgres');
select is(
  (select payload ->> 'status' from public.events where type = 'call.ended' and payload ->> 'call_id' = tests.fx('call_now')::text),
  'canceled',
  'cancel_call: call.ended is emitted'
);
select tests.act_as('admin_a');
select results_eq(
  $$select status, ended_reason from public.cancel_call(tests.fx('call_now'))$$,
  $$values ('canceled'::public.call_status, 'canceled-by-user'::text)$$,
  'cancel_call sent again: the canceled call as it is (20261123011200; it raised 23514)'
);
select tests.remember('call_leased', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550111')).id);
select tests.act_as('postgres');
update public.calls set dial_lease_until = now() + interval '30 seconds' where id = tests.fx('call_leased');
select tests.act_as('admin_a');
select throws_ok(
  $$select public.cancel_call(tests.fx('call_leased'))$$,
  '23514', 'the call is being dialled right now and can no longer be canceled',
  'cancel_call: not while the dispatcher holds the call'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign'))$$,
  '42501', 'you do not have the calls.manage permission in this organization',
  'cancel_call_campaign: members may not'
);
select tests.act_as('admin_a');
select is(public.cancel_call_campaign(tests.fx('campaign')), 2, 'cancel_call_campaign: cancels the campaign''s queued calls');
select is(public.cancel_call_campaign(tests.fx('campaign')), 0, 'cancel_call_campaign: again, nothing left to cancel');
select results_eq(
  $$select k.status, k.canceled_at is not null, (select array_agg(distinct c.status::text || ':' || c.ended_reason) from public.calls c where c.campaign_id = k.id)
    from public.call_campaigns k where k.id = tests.fx('campaign')$$,
  $$values ('canceled', true, array['canceled:canceled-by-user'])$$,
  'cancel_call_campaign: the campaign and its calls are canceled'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.cancel_call_campaign(tests.fx('campaign'))$$,
  'PT404', 'call campaign not found',
  'cancel_call_campaign: another org''s campaign is not found'
);

-- ---------------------------------------------------------------------------
-- claim_due_calls
-- ---------------------------------------------------------------------------

-- Only this section's calls are due: everything queued so far waits a year.
select tests.act_as('postgres');
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('admin_a');
select tests.remember('c1', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550001')).id);
select tests.remember('c2', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550002')).id);
select tests.remember('c3', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550003')).id);
select tests.remember('c_later', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550004', now() + interval '1 hour')).id);
select tests.act_as('postgres');
update public.calls set next_dial_at = now() - interval '3 minutes' where id = tests.fx('c1');
update public.calls set next_dial_at = now() - interval '2 minutes' where id = tests.fx('c2');
update public.calls set next_dial_at = now() - interval '1 minute' where id = tests.fx('c3');

select tests.act_as('admin_a');
select throws_ok(
  $$select * from private.claim_due_calls(10)$$,
  '42501', null,
  'claim_due_calls: signed-in users may not run it (service role only)'
);

select pg_temp.claim('claim1', 2);
select tests.act_as('postgres');
select is(
  pg_temp.answer('claim1'),
  (select jsonb_agg(jsonb_build_object('call_id', id, 'org_id', org_id, 'bot_id', bot_id, 'to_number', to_number, 'provider', 'vapi',
     'assistant_id', 'asst_voice', 'phone_number_id', 'pn_a', 'attempt', 1) order by id)
   from public.calls where id in (tests.fx('c1'), tests.fx('c2'))),
  'claim_due_calls: the oldest due calls first, with the assistant, the phone number and attempt 1'
);
select results_eq(
  $$select dial_attempts, dial_lease_until, status::text from public.calls where id in (tests.fx('c1'), tests.fx('c2'))$$,
  $$values (1, now() + interval '60 seconds', 'queued'), (1, now() + interval '60 seconds', 'queued')$$,
  'claim_due_calls: claimed calls are leased for 60 s, their attempt counted, still queued'
);
select pg_temp.claim('claim2', 10);
select is(
  (select array_agg(e ->> 'call_id') from jsonb_array_elements(pg_temp.answer('claim2')) e),
  array[tests.fx('c3')::text],
  'claim_due_calls: a second claim gets only the call not leased (never a call twice; not one not due yet)'
);
select pg_temp.claim('claim3', 10);
select is(pg_temp.answer('claim3'), '[]'::jsonb, 'claim_due_calls: nothing left while the leases hold');
-- c1's dispatcher died: its lease ran out. Attempt 1 may have placed the
-- call, so it is looked up at the provider, never dialled again
-- (20261123004800_call_dial_once.sql; 205_call_dial_once.test.sql).
select tests.act_as('postgres');
update public.calls set dial_lease_until = now() - interval '1 second' where id = tests.fx('c1');
select pg_temp.claim('claim4', 10);
select is(
  (select array_agg((e ->> 'call_id') || '#' || (e ->> 'attempt')) from jsonb_array_elements(pg_temp.answer('claim4')) e),
  null,
  'claim_due_calls: after its lease ran out a call whose dial outcome is unknown is not dialled again'
);
-- c1 as if a lookup found attempt 1 placed nothing and attempt 2 is now being dialled.
select tests.act_as('postgres');
update public.calls set dial_attempts = 2, dial_lease_until = now() + interval '60 seconds' where id = tests.fx('c1');
select throws_ok(
  $$select * from private.claim_due_calls(0)$$,
  '22023', 'max_calls must be between 1 and 500',
  'claim_due_calls: the batch size is checked'
);

-- Calls that can no longer be dialled fail at the claim, with the reason.
select tests.act_as('admin_a');
select tests.remember('c_fragile', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_fragile'), '+14155550005')).id);
select tests.remember('c_deleted', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_fragile'), '+14155550006')).id);
select tests.act_as('postgres');
update public.calls set bot_id = null where id = tests.fx('c_deleted');
update public.bots set voice_assistant_id = null where id = tests.fx('bot_fragile');
select pg_temp.claim('claim5', 10);
select is(pg_temp.answer('claim5'), '[]'::jsonb, 'claim_due_calls: a call whose bot lost its assistant, or was deleted, is not handed out ...');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, dial_attempts from public.calls where id in (tests.fx('c_fragile'), tests.fx('c_deleted')) order by to_number$$,
  $$values ('failed', 'dial-failed: the bot has no voice assistant', 0), ('failed', 'dial-failed: the bot was deleted', 0)$$,
  'claim_due_calls: ... it fails there, with the reason'
);

-- ---------------------------------------------------------------------------
-- record_dial_result
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$select private.record_dial_result(tests.fx('c2'), 1, 'x', null, false)$$,
  '42501', null,
  'record_dial_result: signed-in users may not run it'
);
select tests.act_as('service_role');
select is(
  private.record_dial_result(tests.fx('c2'), 1, 'vapi-call-2', null, null) - 'call_id',
  '{"outcome": "dialled", "status": "ringing", "attempt": 1}'::jsonb,
  'record_dial_result: a provider call id means dialled'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, provider_call_id, next_dial_at, dial_lease_until from public.calls where id = tests.fx('c2')$$,
  $$values ('ringing', 'vapi-call-2', null::timestamptz, null::timestamptz)$$,
  'record_dial_result: ringing, with the provider''s id, no longer scheduled or leased'
);
select tests.act_as('service_role');
select is(
  private.record_dial_result(tests.fx('c2'), 1, 'vapi-call-2', null, null) ->> 'outcome',
  'stale',
  'record_dial_result: the same report again is stale'
);
select is(
  private.record_dial_result(tests.fx('c1'), 1, null, 'late report', true) - 'call_id',
  '{"outcome": "stale", "status": "queued", "attempt": 2}'::jsonb,
  'record_dial_result: a report of an attempt the call has moved past says so ...'
);
select tests.act_as('postgres');
select results_eq(
  $$select dial_attempts, last_dial_error, dial_lease_until from public.calls where id = tests.fx('c1')$$,
  $$values (2, null::text, now() + interval '60 seconds')$$,
  '... and changes nothing'
);

-- c3 fails retryably five times: 30 s, 2 min, 10 min, 30 min, then failed.
select tests.act_as('service_role');
insert into answers select 'retry1', private.record_dial_result(tests.fx('c3'), 1, null, 'Vapi POST /call failed with 503.', true);
select tests.act_as('postgres');
select results_eq(
  $$select (pg_temp.answer('retry1') ->> 'outcome'), status::text, next_dial_at - now(), dial_lease_until, last_dial_error
    from public.calls where id = tests.fx('c3')$$,
  $$values ('retry', 'queued', interval '30 seconds', null::timestamptz, 'Vapi POST /call failed with 503.')$$,
  'record_dial_result: a retryable failure of attempt 1 retries in 30 s, lease released'
);
create function pg_temp.fail_again(attempt integer)
returns interval
language plpgsql
as $$
declare
  claimed jsonb;
begin
  update public.calls set next_dial_at = now() - interval '1 second' where id = tests.fx('c3');
  claimed := pg_temp.claim('retry_claim' || attempt, 1);
  if (claimed -> 0 ->> 'attempt')::integer is distinct from attempt then
    raise exception 'expected attempt %, claimed %', attempt, claimed;
  end if;
  insert into answers select 'retry' || attempt,
    private.record_dial_result(tests.fx('c3'), attempt, null, 'Vapi POST /call failed with 503.', true);
  perform tests.act_as('postgres');
  return (select next_dial_at - now() from public.calls where id = tests.fx('c3'));
end;
$$;
select is(pg_temp.fail_again(2), interval '2 minutes', 'record_dial_result: after attempt 2, 2 minutes');
select is(pg_temp.fail_again(3), interval '10 minutes', 'record_dial_result: after attempt 3, 10 minutes');
select is(pg_temp.fail_again(4), interval '30 minutes', 'record_dial_result: after attempt 4, 30 minutes');
select is(pg_temp.fail_again(5), null::interval, 'record_dial_result: the 5th failure is final');
select results_eq(
  $$select pg_temp.answer('retry5') ->> 'outcome', status::text, ended_reason, dial_attempts, ended_at is not null
    from public.calls where id = tests.fx('c3')$$,
  $$values ('failed', 'failed', 'dial-failed: Vapi POST /call failed with 503.', 5, true)$$,
  'record_dial_result: failed after 5 attempts, with the reason'
);
select results_eq(
  $$select payload ->> 'status', payload ->> 'ended_reason' from public.events
    where type = 'call.ended' and payload ->> 'call_id' = tests.fx('c3')::text$$,
  $$values ('failed', 'dial-failed: Vapi POST /call failed with 503.')$$,
  'record_dial_result: the final failure emits call.ended'
);

-- Retry-After, the calling hours, a non-retryable failure, a long error.
select tests.act_as('admin_a');
select tests.remember('c_ra', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550007')).id);
select tests.remember('c_night', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550008')).id);
select tests.remember('c_4xx', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550009')).id);
select tests.remember('c_long', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550010')).id);
select pg_temp.claim('claim6', 10);
select tests.act_as('postgres');
select is(jsonb_array_length(pg_temp.answer('claim6')), 4, 'claim_due_calls: four new calls claimed');
select tests.act_as('service_role');
select private.record_dial_result(tests.fx('c_ra'), 1, null, 'Vapi POST /call failed with 429.', true, 300);
-- A Retry-After that lands at 22:00 local: the retry waits for 08:00 the next day.
select private.record_dial_result(tests.fx('c_night'), 1, null, 'Vapi POST /call failed with 429.', true,
  extract(epoch from (((now() at time zone pg_temp.noon_zone())::date + time '22:00') at time zone pg_temp.noon_zone()) - now())::integer);
select is(
  private.record_dial_result(tests.fx('c_4xx'), 1, null, 'Vapi POST /call failed with 400: customer.number must be a valid phone number', false) ->> 'outcome',
  'failed',
  'record_dial_result: a non-retryable failure fails at once'
);
select private.record_dial_result(tests.fx('c_long'), 1, null, repeat('x', 1500), true, null);
select tests.act_as('postgres');
select is((select next_dial_at - now() from public.calls where id = tests.fx('c_ra')), interval '300 seconds',
  'record_dial_result: Retry-After longer than the backoff is honoured');
select is((select next_dial_at from public.calls where id = tests.fx('c_night')),
  (((now() at time zone pg_temp.noon_zone())::date + 1 + time '08:00') at time zone pg_temp.noon_zone()),
  'record_dial_result: a retry outside the callee''s hours moves to 08:00 the next day');
select results_eq(
  $$select status::text, ended_reason from public.calls where id = tests.fx('c_4xx')$$,
  $$values ('failed', 'dial-failed: Vapi POST /call failed with 400: customer.number must be a valid phone number')$$,
  'record_dial_result: its reason is the error'
);
select results_eq(
  $$select status::text, length(last_dial_error) from public.calls where id = tests.fx('c_long')$$,
  $$values ('queued', 1000)$$,
  'record_dial_result: a long error is kept to 1000 characters'
);
select tests.act_as('postgres');
update public.calls set dial_attempts = 4, dial_lease_until = now() + interval '1 minute' where id = tests.fx('c_long');
select tests.act_as('service_role');
select private.record_dial_result(tests.fx('c_long'), 4, null, repeat('x', 1500), false);
select tests.act_as('postgres');
select results_eq(
  $$select length(ended_reason), left(ended_reason, 14) from public.calls where id = tests.fx('c_long')$$,
  $$values (200, 'dial-failed: x')$$,
  'record_dial_result: the ended reason is cut to 200 characters'
);

-- A campaign canceled while one of its calls was being dialled: no retry.
select tests.act_as('admin_a');
insert into answers select 'campaign2', to_jsonb(r) from public.create_call_campaign(
  tests.fx('org_a'), tests.fx('bot_voice'), 'Short', array['+14155550201']) r;
select pg_temp.claim('claim7', 10);
select tests.act_as('admin_a');
select is(public.cancel_call_campaign((pg_temp.answer('campaign2') ->> 'campaign_id')::uuid), 0,
  'cancel_call_campaign: a call being dialled is left to its dispatcher ...');
select tests.act_as('service_role');
select is(
  private.record_dial_result((pg_temp.answer('claim7') -> 0 ->> 'call_id')::uuid, 1, null, 'Vapi POST /call failed with 503.', true) ->> 'outcome',
  'canceled',
  '... and its retryable failure cancels it instead of retrying'
);

-- ---------------------------------------------------------------------------
-- Waking the dispatcher
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
update private.call_dispatch_requests set last_requested_at = '-infinity';
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;
select tests.act_as('admin_a');
select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550301');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select value::bigint from marks where label = 'queue')),
  0,
  'dispatch: without the Vault secrets a due call queues no request ...'
);
select is((select last_requested_at from private.call_dispatch_requests), '-infinity'::timestamptz,
  '... and leaves the throttle alone');
select vault.create_secret('http://127.0.0.1:54321', 'project_url');
select vault.create_secret('test-key', 'service_role_key');
select tests.act_as('admin_a');
select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550302', now() + interval '2 days');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select value::bigint from marks where label = 'queue')),
  0,
  'dispatch: a call scheduled for later wakes nobody'
);
select tests.act_as('admin_a');
select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550303');
select tests.act_as('postgres');
select results_eq(
  $$select method::text, url, headers ->> 'Authorization', convert_from(body, 'UTF8')::jsonb
    from net.http_request_queue where id > (select value::bigint from marks where label = 'queue')$$,
  $$values ('POST', 'http://127.0.0.1:54321/functions/v1/call-dispatcher', 'Bearer test-key', '{}'::jsonb)$$,
  'dispatch: a call due now queues one POST to call-dispatcher with the service key'
);
select tests.act_as('admin_a');
select public.create_call_campaign(tests.fx('org_a'), tests.fx('bot_voice'), 'Burst', array['+14155550304', '+14155550305']);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select value::bigint from marks where label = 'queue')),
  1,
  'dispatch: more due calls within the same second queue no second request'
);
update private.call_dispatch_requests set last_requested_at = clock_timestamp() - interval '2 seconds';
select tests.act_as('service_role');
select private.request_call_dispatch();
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select value::bigint from marks where label = 'queue')),
  2,
  'dispatch: the scheduled check wakes it again a second later while calls are due'
);
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'dispatch-calls'$$,
  $$values ('15 seconds', 'select private.request_call_dispatch()', true)$$,
  'dispatch: the cron job dispatch-calls checks every 15 seconds'
);
select tests.act_as('admin_a');
select throws_ok($$select private.request_call_dispatch()$$, '42501', null, 'dispatch: signed-in users may not wake it');
select tests.act_as('postgres');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- After-call analysis
-- ---------------------------------------------------------------------------

-- Ended calls: a1 bare, a2 with the provider's summary, a3 with the
-- provider's sentiment, a_done complete, a_silent without transcript, a_old
-- ended 8 days ago, a_live still in progress.
insert into public.calls (org_id, bot_id, direction, status, started_at, ended_at, summary, sentiment, sentiment_score, from_number, to_number)
values
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'ended', now() - interval '10 minutes', now() - interval '5 minutes', null, 'unknown', null, '+14155550901', null),
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'ended', now() - interval '10 minutes', now() - interval '4 minutes', 'Provider summary', 'unknown', null, '+14155550902', null),
  (tests.fx('org_a'), null, 'inbound', 'ended', now() - interval '10 minutes', now() - interval '3 minutes', null, 'negative', -0.700, '+14155550903', null),
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'ended', now() - interval '10 minutes', now() - interval '2 minutes', 'Done', 'neutral', 0, '+14155550904', null),
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'ended', now() - interval '10 minutes', now() - interval '1 minutes', null, 'unknown', null, '+14155550905', null),
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'ended', now() - interval '8 days', now() - interval '8 days', null, 'unknown', null, '+14155550906', null),
  (tests.fx('org_a'), tests.fx('bot_voice'), 'inbound', 'in_progress', now() - interval '1 minute', null, null, 'unknown', null, '+14155550907', null);
select tests.remember(v.name, c.id)
from public.calls c
join (values ('+14155550901', 'a1'), ('+14155550902', 'a2'), ('+14155550903', 'a3'), ('+14155550904', 'a_done'),
             ('+14155550905', 'a_silent'), ('+14155550906', 'a_old'), ('+14155550907', 'a_live')) v(number, name)
  on v.number = c.from_number
where c.org_id = tests.fx('org_a');
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
select tests.fx('org_a'), tests.fx(v.call), v.seq, v.speaker, v.text, v.seq * 1000, v.seq * 1000 + 900
from (values
  ('a1', 1, 'user', 'I would like a table for two.'),
  ('a1', 0, 'assistant', 'Hello, how can I help?'),
  ('a1', 2, 'assistant', 'Booked for 8 pm.'),
  ('a2', 0, 'user', 'Hi'), ('a3', 0, 'user', 'This is terrible'), ('a_done', 0, 'user', 'Thanks'),
  ('a_old', 0, 'user', 'Old'), ('a_live', 0, 'user', 'Still talking')
) v(call, seq, speaker, text);

select tests.act_as('admin_a');
select throws_ok($$select * from private.calls_needing_analysis(10)$$, '42501', null,
  'calls_needing_analysis: signed-in users may not run it');
select tests.act_as('service_role');
insert into answers select 'analysis1', coalesce(jsonb_agg(to_jsonb(a) order by a.call_id), '[]')
from private.calls_needing_analysis(100) a where a.org_id = tests.fx('org_a');
select tests.act_as('postgres');
select is(
  (select array_agg(e ->> 'call_id' order by e ->> 'call_id') from jsonb_array_elements(pg_temp.answer('analysis1')) e),
  (select array_agg(id::text order by id::text) from public.calls where id in (tests.fx('a1'), tests.fx('a2'), tests.fx('a3'))),
  'calls_needing_analysis: ended calls of the last 7 days with a transcript and no summary or sentiment'
);
select is(
  (select e - 'call_id' from jsonb_array_elements(pg_temp.answer('analysis1')) e where e ->> 'call_id' = tests.fx('a1')::text),
  jsonb_build_object('org_id', tests.fx('org_a'), 'bot_id', tests.fx('bot_voice'), 'summary', null, 'sentiment', 'unknown', 'language', 'en',
    'transcript', '[{"speaker": "assistant", "text": "Hello, how can I help?"}, {"speaker": "user", "text": "I would like a table for two."}, {"speaker": "assistant", "text": "Booked for 8 pm."}]'::jsonb),
  'calls_needing_analysis: the transcript as [{speaker, text}] in order, with what the provider gave'
);
select is(
  (select count(*)::integer from public.calls where id in (tests.fx('a1'), tests.fx('a2'), tests.fx('a3')) and analysis_requested_at = now()),
  3,
  'calls_needing_analysis: marks the calls it hands out'
);
select tests.act_as('service_role');
select is(
  (select count(*)::integer from private.calls_needing_analysis(100) a where a.org_id = tests.fx('org_a')),
  0,
  'calls_needing_analysis: a call handed out is not handed out again ...'
);
select tests.act_as('postgres');
update public.calls set analysis_requested_at = now() - interval '11 minutes' where id = tests.fx('a1');
select tests.act_as('service_role');
select is(
  (select array_agg(a.call_id) from private.calls_needing_analysis(100) a where a.org_id = tests.fx('org_a')),
  array[tests.fx('a1')],
  '... until 10 minutes have passed without an analysis'
);

select tests.act_as('postgres');
insert into marks select 'usage', coalesce(max(id), 0)::text from public.usage_events;
select tests.act_as('service_role');
select private.save_call_analysis(tests.fx('a1'), 'The caller booked a table for two at 8 pm.', 'positive', 0.8, 'gpt-4o-mini', 120, 30);
select private.save_call_analysis(tests.fx('a2'), 'Our summary', 'neutral', 0.1, 'gpt-4o-mini', 50, 10);
select private.save_call_analysis(tests.fx('a3'), 'The caller complained.', 'positive', 0.9, 'offline', 0, 0);
select tests.act_as('postgres');
select results_eq(
  $$select summary, sentiment::text, sentiment_score from public.calls where id in (tests.fx('a1'), tests.fx('a2'), tests.fx('a3')) order by from_number$$,
  $$values ('The caller booked a table for two at 8 pm.', 'positive', 0.800),
           ('Provider summary', 'neutral', 0.100),
           ('The caller complained.', 'negative', -0.700)$$,
  'save_call_analysis: fills the summary and sentiment only where missing, never over the provider''s'
);
select results_eq(
  $$select org_id, kind, model, tokens_in, tokens_out, bot_id from public.usage_events
    where id > (select value::bigint from marks where label = 'usage') order by id$$,
  $$values (tests.fx('org_a'), 'chat', 'gpt-4o-mini', 120, 30, tests.fx('bot_voice')),
           (tests.fx('org_a'), 'chat', 'gpt-4o-mini', 50, 10, tests.fx('bot_voice')),
           (tests.fx('org_a'), 'chat', 'offline', 0, 0, null::uuid)$$,
  'save_call_analysis: metered as chat usage of the call''s org and bot, the offline rules with 0 tokens'
);
select tests.act_as('service_role');
select is(
  (select count(*)::integer from private.calls_needing_analysis(100) a where a.org_id = tests.fx('org_a')),
  0,
  'calls_needing_analysis: analysed calls are done'
);
select throws_ok(
  $$select private.save_call_analysis(tests.fx('a1'), 'x', 'unknown', null, 'offline', 0, 0)$$,
  '22023', 'an analysis gives a sentiment: positive, neutral or negative',
  'save_call_analysis: an analysis without a verdict is refused'
);
select throws_ok(
  $$select private.save_call_analysis(gen_random_uuid(), 'x', 'neutral', null, 'offline', 0, 0)$$,
  'P0002', 'call not found',
  'save_call_analysis: an unknown call is not found'
);

-- ---------------------------------------------------------------------------
-- Recordings
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into storage.buckets (id, name) values ('recordings', 'recordings') on conflict do nothing;
update public.calls set recording_url = 'https://storage.vapi.ai/' || from_number || '.wav'
where id in (tests.fx('a1'), tests.fx('a_old'), tests.fx('a_done'));
update public.calls set recording_path = org_id || '/calls/' || id || '/recording.wav' where id = tests.fx('a_done');

select tests.act_as('admin_a');
select throws_ok($$select * from private.calls_needing_recording(10)$$, '42501', null,
  'calls_needing_recording: signed-in users may not run it');
select tests.act_as('service_role');
select results_eq(
  $$select call_id, org_id, recording_url from private.calls_needing_recording(100) where org_id = tests.fx('org_a')$$,
  $$values (tests.fx('a1'), tests.fx('org_a'), 'https://storage.vapi.ai/+14155550901.wav')$$,
  'calls_needing_recording: ended calls of the last 7 days with a provider recording and no copy'
);
select is_empty(
  $$select 1 from private.calls_needing_recording(100) where org_id = tests.fx('org_a')$$,
  'calls_needing_recording: not handed out again within 10 minutes'
);
create function pg_temp.recording_retry()
returns integer
language plpgsql
as $$
begin
  perform tests.act_as('postgres');
  update private.call_recording_requests set requested_at = now() - interval '11 minutes' where call_id = tests.fx('a1');
  perform tests.act_as('service_role');
  return (select count(*)::integer from private.calls_needing_recording(100) r where r.org_id = tests.fx('org_a'));
end;
$$;
select is(
  array[pg_temp.recording_retry(), pg_temp.recording_retry(), pg_temp.recording_retry(), pg_temp.recording_retry(), pg_temp.recording_retry()],
  array[1, 1, 1, 1, 0],
  'calls_needing_recording: tried again every 10 minutes, 5 times at most'
);
select tests.act_as('service_role');
select throws_ok(
  format($$select private.save_call_recording(%L, %L)$$, tests.fx('a1'), tests.fx('org_b') || '/calls/' || tests.fx('a1') || '/r.wav'),
  '22023', null,
  'save_call_recording: a path outside <org_id>/calls/<call_id>/ is refused'
);
select throws_ok(
  format($$select private.save_call_recording(%L, %L)$$, tests.fx('a1'), tests.fx('org_a') || '/calls/' || tests.fx('a1') || '/r.wav'),
  'P0002', null,
  'save_call_recording: refused until the object is in the recordings bucket'
);
select tests.act_as('postgres');
insert into storage.objects (bucket_id, name) values ('recordings', tests.fx('org_a') || '/calls/' || tests.fx('a1') || '/r.wav');
select tests.act_as('service_role');
select lives_ok(
  format($$select private.save_call_recording(%L, %L)$$, tests.fx('a1'), tests.fx('org_a') || '/calls/' || tests.fx('a1') || '/r.wav'),
  'save_call_recording: records the uploaded copy'
);
select tests.act_as('postgres');
select results_eq(
  $$select recording_path, (select count(*)::integer from private.call_recording_requests r where r.call_id = c.id)
    from public.calls c where c.id = tests.fx('a1')$$,
  $$values (tests.fx('org_a') || '/calls/' || tests.fx('a1') || '/r.wav', 0)$$,
  'save_call_recording: the call points at it and its retry bookkeeping is gone'
);

select * from finish();
rollback;
