-- Voice calls core (20261123001200_calls.sql), everything but the provider
-- events (201_calls_events): permissions, the org time zone, business hours
-- and next_call_slot across the Europe/Berlin DST changes of 2026 (29 March,
-- 25 October) with callee quiet hours, the status lifecycle as direct
-- updates, closing stale calls, provider secrets, and who sees what (RLS on
-- the tables, the recordings bucket and the calls channel: members yes,
-- viewers no).
--
-- One transaction: now() is one instant throughout.
begin;
create extension if not exists pgtap with schema extensions;

select plan(137);

-- ---------------------------------------------------------------------------
-- Fixtures: org A (one user per role), org B (its owner), a platform admin.
-- ---------------------------------------------------------------------------

-- Runs a statement as the current role and returns the rows it changed.
create function pg_temp.changed(statement text)
returns integer
language plpgsql
as $$
declare
  n integer;
begin
  execute statement;
  get diagnostics n = row_count;
  return n;
end;
$$;
grant execute on function pg_temp.changed(text) to public;

-- Secrets handed out, by label.
create temp table secrets (label text primary key, secret text, valid_until timestamptz);
grant all on secrets to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@calls.test')),
  ('admin_a', tests.create_user('admin-a@calls.test')),
  ('member_a', tests.create_user('member-a@calls.test')),
  ('viewer_a', tests.create_user('viewer-a@calls.test')),
  ('owner_b', tests.create_user('owner-b@calls.test')),
  ('ops', tests.create_user('ops@calls.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('calls-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('calls-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

insert into public.bots (org_id, name, slug) values
  (tests.fx('org_a'), 'Default hours', 'default-hours'),
  (tests.fx('org_a'), 'Weekend', 'weekend'),
  (tests.fx('org_a'), 'Night', 'night'),
  (tests.fx('org_b'), 'B bot', 'b-bot');
select tests.remember('bot_default', id) from public.bots where slug = 'default-hours';
select tests.remember('bot_weekend', id) from public.bots where slug = 'weekend';
select tests.remember('bot_night', id) from public.bots where slug = 'night';
select tests.remember('bot_b', id) from public.bots where slug = 'b-bot';

-- ---------------------------------------------------------------------------
-- Permissions
-- ---------------------------------------------------------------------------

select results_eq(
  $$select permission, min_role::text from public.role_permissions where permission like 'calls.%' order by permission$$,
  $$values ('calls.feedback', 'member'), ('calls.manage', 'admin'), ('calls.read', 'member')$$,
  'permissions: calls.read and calls.feedback for members, calls.manage for admins (viewers get nothing of calls)'
);

-- ---------------------------------------------------------------------------
-- The org's time zone
-- ---------------------------------------------------------------------------

select is((select time_zone from public.organizations where id = tests.fx('org_a')), 'UTC', 'time_zone: a new org is in UTC');
select tests.act_as('admin_a');
select is(
  pg_temp.changed(format($$update public.organizations set time_zone = 'Europe/Berlin' where id = %L$$, tests.fx('org_a'))),
  1, 'time_zone: an admin sets Europe/Berlin'
);
select throws_ok(
  format($$update public.organizations set time_zone = 'Mars/Olympus_Mons' where id = %L$$, tests.fx('org_a')),
  '22023', 'unknown time zone: Mars/Olympus_Mons',
  'time_zone: an unknown zone is refused'
);
select throws_ok(
  format($$update public.organizations set time_zone = 'CEST' where id = %L$$, tests.fx('org_a')),
  '22023', 'unknown time zone: CEST',
  'time_zone: an abbreviation is not a zone'
);
select throws_ok(
  format($$update public.organizations set time_zone = null where id = %L$$, tests.fx('org_a')),
  '22023', 'unknown time zone: null',
  'time_zone: it cannot be null'
);
select tests.act_as('member_a');
select is(
  pg_temp.changed(format($$update public.organizations set time_zone = 'Asia/Tokyo' where id = %L$$, tests.fx('org_a'))),
  0, 'time_zone: a member cannot change it (RLS: no row)'
);
select tests.act_as('postgres');
select is((select time_zone from public.organizations where id = tests.fx('org_a')), 'Europe/Berlin', 'time_zone: org A is in Europe/Berlin');
select throws_ok(
  $$insert into public.organizations (name, slug, time_zone) values ('Nowhere', 'calls-nowhere', 'Nowhere/Land')$$,
  '22023', 'unknown time zone: Nowhere/Land',
  'time_zone: checked on insert too'
);
select ok(private.is_time_zone('America/Argentina/Buenos_Aires') and not private.is_time_zone(null) and not private.is_time_zone(''),
  'is_time_zone: a nested IANA name is a zone; null and empty are not');

-- ---------------------------------------------------------------------------
-- Business hours: validation
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes)
    select tests.fx('org_a'), d, time '09:00', time '12:00' from generate_series(1, 5) d
    union all
    select tests.fx('org_a'), d, time '12:00', time '17:00' from generate_series(1, 5) d$$,
  'business hours: the org default Monday to Friday 09:00-12:00 and 12:00-17:00 (touching ranges are fine)'
);
select lives_ok(
  $$insert into public.business_hours (org_id, bot_id, weekday, opens, closes) values
      (tests.fx('org_a'), tests.fx('bot_weekend'), 7, '09:00', '17:00'),
      (tests.fx('org_a'), tests.fx('bot_night'), 7, '02:00', '03:00'),
      (tests.fx('org_a'), tests.fx('bot_night'), 6, '22:00', '24:00')$$,
  'business hours: a bot''s own hours (Sunday), and a range up to 24:00'
);
select throws_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes) values (tests.fx('org_a'), 1, '11:00', '13:00')$$,
  '23P01', null,
  'business hours: an overlapping range of the same org default and weekday is refused'
);
select lives_ok(
  $$insert into public.business_hours (org_id, bot_id, weekday, opens, closes) values (tests.fx('org_a'), tests.fx('bot_default'), 6, '10:00', '11:00')$$,
  'business hours: another bot''s range on its own weekday is not an overlap ...'
);
select lives_ok(
  $$delete from public.business_hours where bot_id = tests.fx('bot_default')$$,
  '... and an admin deletes it (bot_default keeps following the org default)'
);
select throws_ok(
  $$update public.business_hours set closes = '18:00' where org_id = tests.fx('org_a') and bot_id is null and weekday = 1 and opens = '09:00'$$,
  '23P01', null,
  'business hours: an update into an overlap is refused too'
);
select throws_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes) values (tests.fx('org_a'), 8, '09:00', '10:00')$$,
  '23514', null,
  'business hours: weekdays are 1 (Monday) to 7'
);
select throws_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes) values (tests.fx('org_a'), 6, '17:00', '09:00')$$,
  '23514', null,
  'business hours: a range does not cross midnight (opens before closes)'
);
select throws_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes) values (tests.fx('org_a'), 6, '09:00', '09:00')$$,
  '23514', null,
  'business hours: an empty range is refused'
);
select throws_ok(
  $$insert into public.business_hours (org_id, bot_id, weekday, opens, closes) values (tests.fx('org_a'), tests.fx('bot_b'), 6, '09:00', '10:00')$$,
  '23503', null,
  'business hours: a bot of another org cannot be named'
);
select tests.act_as('member_a');
select throws_ok(
  $$insert into public.business_hours (org_id, weekday, opens, closes) values (tests.fx('org_a'), 6, '09:00', '10:00')$$,
  '42501', null,
  'business hours: a member cannot add hours'
);
select is(pg_temp.changed($$delete from public.business_hours$$), 0, 'business hours: a member cannot delete hours');
select is((select count(*)::integer from public.business_hours), 13, 'business hours: a member reads the org''s hours');
select tests.act_as('viewer_a');
select is((select count(*)::integer from public.business_hours), 0, 'business hours: a viewer does not (they are bot settings, bots.read)');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- next_call_slot: business hours in the org's zone (Europe/Berlin), callee
-- quiet hours 08:00-21:00 in the callee's zone. 2026: Europe moves to
-- summer time on Sunday 29 March and back on Sunday 25 October; the US on
-- 8 March and 1 November.
-- ---------------------------------------------------------------------------

select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-03-21 12:00Z'),
  '2026-03-22 08:00Z'::timestamptz,
  'next_call_slot: Sunday 22 March 09:00 in Berlin is 08:00 UTC (winter time)'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-03-28 12:00Z'),
  '2026-03-29 07:00Z'::timestamptz,
  'next_call_slot: on the spring-forward Sunday 09:00 is 07:00 UTC (summer time)'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-03-29 10:00Z'),
  '2026-03-29 10:00Z'::timestamptz,
  'next_call_slot: a moment inside the hours is itself the slot'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-03-29 15:00Z'),
  '2026-04-05 07:00Z'::timestamptz,
  'next_call_slot: 17:00 Berlin summer time is closing time (half-open); next is the following Sunday'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-10-17 12:00Z'),
  '2026-10-18 07:00Z'::timestamptz,
  'next_call_slot: Sunday 18 October 09:00 is still 07:00 UTC'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-10-24 12:00Z'),
  '2026-10-25 08:00Z'::timestamptz,
  'next_call_slot: on the fall-back Sunday 09:00 is 08:00 UTC again'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'America/New_York', '2026-03-28 12:00Z'),
  '2026-03-29 12:00Z'::timestamptz,
  'next_call_slot: a callee in New York (summer time since 8 March) is called from 08:00 theirs, 12:00 UTC'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'America/New_York', '2026-10-24 12:00Z'),
  '2026-10-25 12:00Z'::timestamptz,
  'next_call_slot: in the week Europe is back on winter time and New York not yet, 08:00 New York is still 12:00 UTC'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Asia/Tokyo', '2026-03-29 12:30Z'),
  '2026-04-05 07:00Z'::timestamptz,
  'next_call_slot: past 21:00 in Tokyo the Sunday is over for that callee; the next Sunday it is'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_night'), 'America/Los_Angeles', '2026-03-28 12:00Z'),
  '2026-03-28 21:00Z'::timestamptz,
  'next_call_slot: the night bot opens Saturday 22:00 Berlin (21:00 UTC; 14:00 in Los Angeles)'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_night'), 'America/Los_Angeles', '2026-03-28 23:00Z'),
  '2026-04-04 20:00Z'::timestamptz,
  'next_call_slot: Sunday 02:00-03:00 does not exist on 29 March (skipped hour); next is Saturday 4 April 22:00 summer time'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_night'), 'Europe/Berlin', '2026-03-28 12:00Z'),
  null::timestamptz,
  'next_call_slot: night hours never meet a Berlin callee''s 08:00-21:00: no slot within 14 days'
);
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_default'), null, '2026-03-28 12:00Z'),
  '2026-03-30 07:00Z'::timestamptz,
  'next_call_slot: a bot without hours follows the org default (Monday 09:00 summer time); the callee defaults to the org''s zone'
);
select is(
  private.next_call_slot(tests.fx('org_a'), null, 'Europe/Berlin', '2026-10-23 15:30Z'),
  '2026-10-26 08:00Z'::timestamptz,
  'next_call_slot: Friday after 17:00 summer time: Monday 26 October 09:00 winter time'
);
select is(
  private.next_call_slot(tests.fx('org_b'), null, 'Europe/Berlin', '2026-03-29 05:00Z'),
  '2026-03-29 06:00Z'::timestamptz,
  'next_call_slot: an org without hours is limited only by the callee''s 08:00 (06:00 UTC in summer time)'
);
select is(
  private.next_call_slot(tests.fx('org_b'), null, 'Europe/Berlin', '2026-10-25 06:30Z'),
  '2026-10-25 07:00Z'::timestamptz,
  'next_call_slot: ... and 07:00 UTC in winter time'
);
select is(
  private.next_call_slot(tests.fx('org_b'), null, 'Europe/Berlin', '2026-03-29 19:00Z'),
  '2026-03-30 06:00Z'::timestamptz,
  'next_call_slot: 21:00 is the callee''s end (half-open): the next morning'
);
select is(
  private.business_hours_ranges(tests.fx('org_b'), null, tstzrange('2026-03-29', '2026-03-30')),
  null::tstzmultirange,
  'business_hours_ranges: null when no hours restrict the org'
);
select is(
  private.business_hours_ranges(tests.fx('org_a'), tests.fx('bot_weekend'), tstzrange('2026-03-28 00:00Z', '2026-03-30 00:00Z')),
  '{["2026-03-29 07:00+00","2026-03-29 15:00+00")}'::tstzmultirange,
  'business_hours_ranges: the spring-forward Sunday is open 07:00-15:00 UTC'
);
select throws_ok(
  $$select private.next_call_slot(tests.fx('org_a'), null, 'Moon/Base', now())$$,
  '22023', 'unknown time zone: Moon/Base',
  'next_call_slot: an unknown callee zone is refused'
);
select throws_ok(
  $$select private.next_call_slot(gen_random_uuid(), null, null, now())$$,
  'PT404', 'organization not found',
  'next_call_slot: an unknown org'
);
select tests.act_as('member_a');
select is(
  private.next_call_slot(tests.fx('org_a'), tests.fx('bot_weekend'), 'Europe/Berlin', '2026-03-28 12:00Z'),
  '2026-03-29 07:00Z'::timestamptz,
  'next_call_slot: a member may ask'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select private.next_call_slot(tests.fx('org_a'), null, null, now())$$,
  '42501', 'you do not have the calls.read permission in this organization',
  'next_call_slot: a viewer may not'
);
select throws_ok(
  $$select private.business_hours_ranges(tests.fx('org_a'), null, tstzrange(now(), now() + interval '1 day'))$$,
  '42501', null,
  'business_hours_ranges: service code only'
);
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- Status lifecycle as direct updates (postgres): whatever the path, the
-- trigger refuses a step back and fills in the end.
-- ---------------------------------------------------------------------------

insert into public.calls (org_id, direction, to_number) values (tests.fx('org_a'), 'outbound', '+14155550100');
select tests.remember('call_life', id) from public.calls where to_number = '+14155550100';
insert into public.calls (org_id, direction, to_number) values (tests.fx('org_a'), 'outbound', '+14155550101');
select tests.remember('call_canceled', id) from public.calls where to_number = '+14155550101';

select is((select status::text from public.calls where id = tests.fx('call_life')), 'queued', 'lifecycle: a new call is queued');
select lives_ok($$update public.calls set status = 'ringing' where id = tests.fx('call_life')$$, 'lifecycle: queued -> ringing');
select throws_ok(
  $$update public.calls set status = 'queued' where id = tests.fx('call_life')$$,
  '23514', 'a call cannot go from ringing to queued',
  'lifecycle: ringing -> queued is refused'
);
select lives_ok(
  $$update public.calls set status = 'in_progress', started_at = now() - interval '90 seconds' where id = tests.fx('call_life')$$,
  'lifecycle: ringing -> in_progress'
);
select throws_ok(
  $$update public.calls set status = 'ringing' where id = tests.fx('call_life')$$,
  '23514', 'a call cannot go from in_progress to ringing',
  'lifecycle: in_progress -> ringing is refused'
);
select throws_ok(
  $$update public.calls set status = 'no_answer' where id = tests.fx('call_life')$$,
  '23514', 'a call cannot go from in_progress to no_answer',
  'lifecycle: an answered call is not "no answer"'
);
select lives_ok($$update public.calls set status = 'ended' where id = tests.fx('call_life')$$, 'lifecycle: in_progress -> ended');
select results_eq(
  $$select ended_at, duration_seconds from public.calls where id = tests.fx('call_life')$$,
  $$values (now(), 90.000::numeric(10, 3))$$,
  'lifecycle: the end fills ended_at and the duration from the start'
);
select throws_ok(
  $$update public.calls set status = 'in_progress' where id = tests.fx('call_life')$$,
  '23514', 'a call cannot go from ended to in_progress',
  'lifecycle: ended -> in_progress is refused'
);
select throws_ok(
  $$update public.calls set status = 'failed' where id = tests.fx('call_life')$$,
  '23514', 'a call cannot go from ended to failed',
  'lifecycle: a terminal status is final'
);
select lives_ok($$update public.calls set summary = 'Fine.' where id = tests.fx('call_life')$$, 'lifecycle: an ended call still takes its summary');
select results_eq(
  $$select type, payload ->> 'call_id' from public.events where payload ->> 'call_id' = tests.fx('call_life')::text order by created_at, type desc$$,
  $$values ('call.started', tests.fx('call_life')::text), ('call.ended', tests.fx('call_life')::text)$$,
  'lifecycle: call.started and call.ended, once each'
);
select lives_ok($$update public.calls set status = 'canceled' where id = tests.fx('call_canceled')$$, 'lifecycle: queued -> canceled');
select throws_ok(
  $$update public.calls set status = 'queued' where id = tests.fx('call_canceled')$$,
  '23514', 'a call cannot go from canceled to queued',
  'lifecycle: a canceled call is not queued again'
);
select results_eq(
  $$select type, payload ->> 'status' from public.events where payload ->> 'call_id' = tests.fx('call_canceled')::text$$,
  $$values ('call.ended', 'canceled')$$,
  'lifecycle: a call never answered ends without call.started'
);
select throws_ok(
  $$update public.calls set org_id = tests.fx('org_b') where id = tests.fx('call_canceled')$$,
  '22023', 'a call keeps its id and organization',
  'lifecycle: a call does not move to another org'
);
select throws_ok(
  $$insert into public.calls (org_id, direction, status) values (tests.fx('org_a'), 'outbound', 'queued')$$,
  '23514', null,
  'calls: an outbound call needs a number to dial'
);
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number, callee_time_zone) values (tests.fx('org_a'), 'outbound', '+14155550102', 'Atlantis/Capital')$$,
  '22023', 'unknown time zone: Atlantis/Capital',
  'calls: a callee time zone must be a zone'
);

-- ---------------------------------------------------------------------------
-- Stale calls
-- ---------------------------------------------------------------------------

insert into public.calls (org_id, direction, from_number, status, started_at, last_event_at, provider, provider_call_id) values
  (tests.fx('org_a'), 'inbound', '+14155550110', 'in_progress', now() - interval '25 minutes', now() - interval '20 minutes', 'vapi', 'stale-talk'),
  (tests.fx('org_a'), 'inbound', '+14155550111', 'ringing', null, now() - interval '16 minutes', 'vapi', 'stale-ring'),
  (tests.fx('org_a'), 'inbound', '+14155550112', 'in_progress', now() - interval '30 minutes', now() - interval '1 minute', 'vapi', 'fresh-talk'),
  (tests.fx('org_b'), 'inbound', '+14155550113', 'ringing', null, now() - interval '14 minutes', 'vapi', 'fresh-ring');
insert into public.calls (org_id, direction, to_number, created_at, last_event_at) values
  (tests.fx('org_a'), 'outbound', '+14155550114', now() - interval '2 hours', now() - interval '2 hours');
select tests.remember('stale_talk', id) from public.calls where provider_call_id = 'stale-talk';
select tests.remember('stale_ring', id) from public.calls where provider_call_id = 'stale-ring';
select tests.remember('fresh_talk', id) from public.calls where provider_call_id = 'fresh-talk';
select tests.remember('fresh_ring', id) from public.calls where provider_call_id = 'fresh-ring';
select tests.remember('old_queued', id) from public.calls where to_number = '+14155550114';

select tests.act_as('service_role');
select is(private.close_stale_calls(), 2, 'close_stale_calls: two calls silent for over 15 minutes are closed');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, ended_at, duration_seconds from public.calls where id = tests.fx('stale_talk')$$,
  $$values ('ended', 'no-final-event-timeout', now() - interval '20 minutes', 300.000::numeric(10, 3))$$,
  'close_stale_calls: an in_progress call ends (ended), at the last time we heard of it'
);
select results_eq(
  $$select status::text, ended_reason, ended_at, started_at from public.calls where id = tests.fx('stale_ring')$$,
  $$values ('no_answer', 'no-final-event-timeout', now() - interval '16 minutes', null::timestamptz)$$,
  'close_stale_calls: a ringing call was never answered (no_answer)'
);
select results_eq(
  $$select status::text from public.calls where id in (tests.fx('fresh_talk'), tests.fx('fresh_ring'), tests.fx('old_queued')) order by from_number nulls last$$,
  $$values ('in_progress'), ('ringing'), ('queued')$$,
  'close_stale_calls: calls heard from recently, and queued calls, are left alone'
);
select results_eq(
  $$select payload ->> 'call_id', payload ->> 'status', payload ->> 'ended_reason' from public.events
    where type = 'call.ended' and payload ->> 'ended_reason' = 'no-final-event-timeout' order by payload ->> 'status'$$,
  $$values (tests.fx('stale_talk')::text, 'ended', 'no-final-event-timeout'), (tests.fx('stale_ring')::text, 'no_answer', 'no-final-event-timeout')$$,
  'close_stale_calls: call.ended goes out for each'
);
select is(
  (select count(*)::integer from realtime.messages
   where topic = 'org:' || tests.fx('org_a') || ':calls' and event = 'UPDATE'
     and payload -> 'record' ->> 'id' in (tests.fx('stale_talk')::text, tests.fx('stale_ring')::text)
     and payload -> 'record' ->> 'ended_reason' = 'no-final-event-timeout'),
  2,
  'close_stale_calls: each closing is broadcast on the org''s calls channel'
);
select is(
  (select count(*)::integer from public.audit_log
   where table_name = 'calls' and action = 'update' and record_id in (tests.fx('stale_talk')::text, tests.fx('stale_ring')::text)),
  2,
  'close_stale_calls: each closing is audited'
);
select tests.act_as('service_role');
select is(private.close_stale_calls(), 0, 'close_stale_calls: a second run finds nothing');
select is(private.close_stale_calls(interval '10 minutes'), 1, 'close_stale_calls: with a shorter silence the 14-minute ringing call closes too');
select throws_ok(
  $$select private.close_stale_calls(interval '30 seconds')$$,
  '22023', 'the silence before closing a call is at least 1 minute',
  'close_stale_calls: a silence under a minute is refused'
);
select tests.act_as('owner_a');
select throws_ok($$select private.close_stale_calls()$$, '42501', null, 'close_stale_calls: not for signed-in users');
select tests.act_as('postgres');
select results_eq(
  $$select schedule, command from cron.job where jobname = 'close-stale-calls'$$,
  $$values ('* * * * *', 'select private.close_stale_calls()')$$,
  'close_stale_calls: pg_cron runs it every minute'
);

-- ---------------------------------------------------------------------------
-- Provider secrets
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
insert into secrets select 'vapi', public.create_call_provider_secret(tests.fx('org_a'), 'vapi');
insert into secrets select 'generic', public.create_call_provider_secret(tests.fx('org_a'), 'generic');
select ok((select secret ~ '^[0-9a-f]{64}$' from secrets where label = 'vapi'), 'secrets: a vapi secret is 64 hex, returned once');
select ok((select secret ~ '^whsec_[A-Za-z0-9+/]{43}=$' from secrets where label = 'generic'), 'secrets: a generic secret is whsec_ + base64 of 32 bytes');
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'vapi')$$,
  '23505', 'this organization already has a vapi secret; rotate it instead',
  'secrets: a second create is a conflict'
);
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'twilio')$$,
  '22023', 'unknown voice provider: twilio',
  'secrets: only known providers'
);
select results_eq(
  $$select provider, previous_secret_valid_until from public.call_providers where org_id = tests.fx('org_a') order by provider$$,
  $$values ('generic', null::timestamptz), ('vapi', null::timestamptz)$$,
  'secrets: an admin sees which providers have a secret (never the secret)'
);
select throws_ok($$select * from private.call_provider_secrets$$, '42501', null, 'secrets: the secrets table is out of reach of admins');
select throws_ok($$select private.call_provider_secrets_for(tests.fx('org_a'), 'vapi')$$, '42501', null,
  'secrets: call_provider_secrets_for is not for signed-in users');

select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org_a'), 'vapi'),
  array[(select secret from secrets where label = 'vapi')],
  'secrets: call_provider_secrets_for gives the service role the current secret'
);
select is(private.call_provider_secrets_for(tests.fx('org_b'), 'vapi'), '{}'::text[], 'secrets: nothing for an org without one');
select throws_ok($$select * from private.call_provider_secrets$$, '42501', null, 'secrets: not even the service role reads the table');

select tests.act_as('owner_a');
insert into secrets select 'vapi_2', r.secret, r.previous_secret_valid_until
from public.rotate_call_provider_secret(tests.fx('org_a'), 'vapi') r;
select results_eq(
  $$select secret ~ '^[0-9a-f]{64}$' and secret <> (select secret from secrets where label = 'vapi'), valid_until from secrets where label = 'vapi_2'$$,
  $$values (true, now() + interval '24 hours')$$,
  'secrets: rotating returns a new secret; the old one stays valid 24 hours by default'
);
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org_a'), 'vapi'),
  array[(select secret from secrets where label = 'vapi_2'), (select secret from secrets where label = 'vapi')],
  'secrets: during the overlap both are accepted, the new one first'
);
select tests.act_as('admin_a');
insert into secrets select 'vapi_3', r.secret, r.previous_secret_valid_until
from public.rotate_call_provider_secret(tests.fx('org_a'), 'vapi', 0) r;
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org_a'), 'vapi'),
  array[(select secret from secrets where label = 'vapi_3')],
  'secrets: rotating without overlap drops the previous one at once'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select * from public.rotate_call_provider_secret(tests.fx('org_a'), 'vapi', 169)$$,
  '22023', 'the overlap is 0 to 168 hours',
  'secrets: an overlap over a week is refused'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select * from public.rotate_call_provider_secret(tests.fx('org_b'), 'generic')$$,
  'PT404', 'this organization has no generic secret yet',
  'secrets: rotating a secret that does not exist'
);
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'vapi')$$,
  '42501', null,
  'secrets: the owner of another org cannot create one for A'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'vapi')$$,
  '42501', null,
  'secrets: a member cannot create one'
);
select throws_ok(
  $$select * from public.rotate_call_provider_secret(tests.fx('org_a'), 'vapi')$$,
  '42501', null,
  'secrets: a member cannot rotate one'
);
select is((select count(*)::integer from public.call_providers), 0, 'secrets: a member does not see the providers');
select tests.act_as('viewer_a');
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'generic')$$,
  '42501', null,
  'secrets: a viewer cannot create one'
);
select tests.act_as('anon');
select throws_ok(
  $$select public.create_call_provider_secret(tests.fx('org_a'), 'generic')$$,
  '42501', null,
  'secrets: anon cannot create one'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.audit_log a, secrets s
   where a.org_id = tests.fx('org_a') and a.table_name = 'call_providers' and a::text like '%' || s.secret || '%'),
  0,
  'secrets: the audit log records the provider rows, never a secret'
);
select is(
  (select count(*)::integer from public.audit_log where org_id = tests.fx('org_a') and table_name = 'call_providers'),
  4,
  'secrets: two creations and two rotations are audited'
);

-- ---------------------------------------------------------------------------
-- Who sees what. Org A gets a call with a transcript and its raw event, a
-- campaign, a recording and messages on its calls channel; org B a call too.
-- ---------------------------------------------------------------------------

select tests.remember('call_a', (private.apply_call_event(tests.fx('org_a'),
  '{"event_id": "rls-a-1", "provider": "vapi", "type": "call.transcript", "provider_call_id": "rls-a",
    "occurred_at": "2026-11-23T10:00:00Z", "from": "+14155550120",
    "transcript": [{"speaker": "user", "text": "Hello A", "start_ms": 0, "end_ms": 900}]}', '{"raw": 1}') ->> 'call_id')::uuid);
select tests.remember('call_b', (private.apply_call_event(tests.fx('org_b'),
  '{"event_id": "rls-b-1", "provider": "vapi", "type": "call.transcript", "provider_call_id": "rls-b",
    "occurred_at": "2026-11-23T10:00:00Z",
    "transcript": [{"speaker": "user", "text": "Hello B", "start_ms": 0, "end_ms": 900}]}', '{"raw": 1}') ->> 'call_id')::uuid);
insert into public.call_campaigns (org_id, name) values (tests.fx('org_a'), 'Reminders'), (tests.fx('org_b'), 'B reminders');

-- What an actor sees of org A's calls, in one row.
create function pg_temp.seen_of_a()
returns text
language sql
stable
as $$
  select format('calls=%s segments=%s events=%s campaigns=%s providers=%s',
    (select count(*) from public.calls where org_id = tests.fx('org_a')),
    (select count(*) from public.call_transcript_segments where org_id = tests.fx('org_a')),
    (select count(*) from public.call_events where org_id = tests.fx('org_a')),
    (select count(*) from public.call_campaigns where org_id = tests.fx('org_a')),
    (select count(*) from public.call_providers where org_id = tests.fx('org_a')))
$$;
grant execute on function pg_temp.seen_of_a() to public;

select tests.act_as('owner_a');
select is(pg_temp.seen_of_a(), 'calls=7 segments=1 events=1 campaigns=1 providers=2', 'RLS: the owner of A sees all of A''s call data');
select tests.act_as('admin_a');
select is(pg_temp.seen_of_a(), 'calls=7 segments=1 events=1 campaigns=1 providers=2', 'RLS: an admin of A too (raw events and providers: calls.manage)');
select tests.act_as('member_a');
select is(pg_temp.seen_of_a(), 'calls=7 segments=1 events=0 campaigns=1 providers=0', 'RLS: a member reads calls, transcripts and campaigns, not raw events or providers');
select is((select count(*)::integer from public.calls where org_id = tests.fx('org_b')), 0, 'RLS: a member of A sees no call of B');
select tests.act_as('viewer_a');
select is(pg_temp.seen_of_a(), 'calls=0 segments=0 events=0 campaigns=0 providers=0', 'RLS: a viewer sees nothing of calls');
select tests.act_as('owner_b');
select is(pg_temp.seen_of_a(), 'calls=0 segments=0 events=0 campaigns=0 providers=0', 'RLS: the owner of B sees nothing of A''s calls');
select is((select count(*)::integer from public.calls), 2, 'RLS: ... and exactly B''s own calls');
select tests.act_as('ops');
select is(pg_temp.seen_of_a(), 'calls=7 segments=1 events=1 campaigns=1 providers=2', 'RLS: a platform admin reads everything');
select tests.act_as('anon');
select throws_ok($$select count(*) from public.calls$$, '42501', null, 'RLS: anon has no access to calls');

select tests.act_as('owner_a');
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number) values (tests.fx('org_a'), 'outbound', '+14155550199')$$,
  '42501', null, 'writes: the owner cannot insert a call directly'
);
select throws_ok(
  $$update public.calls set summary = 'forged' where id = tests.fx('call_a')$$,
  '42501', null, 'writes: the owner cannot update a call directly'
);
select throws_ok(
  $$delete from public.calls where id = tests.fx('call_a')$$,
  '42501', null, 'writes: the owner cannot delete a call'
);
select throws_ok(
  $$insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms) values (tests.fx('org_a'), tests.fx('call_a'), 9, 'user', 'forged', 0, 1)$$,
  '42501', null, 'writes: the owner cannot insert a transcript segment'
);
select throws_ok(
  $$update public.call_transcript_segments set text = 'forged' where call_id = tests.fx('call_a')$$,
  '42501', null, 'writes: the owner cannot change a transcript segment'
);
select throws_ok(
  $$delete from public.call_transcript_segments where call_id = tests.fx('call_a')$$,
  '42501', null, 'writes: the owner cannot delete a transcript segment'
);
select tests.act_as('member_a');
select throws_ok(
  $$update public.calls set summary = 'forged' where id = tests.fx('call_a')$$,
  '42501', null, 'writes: a member cannot update a call directly'
);
select tests.act_as('postgres');
select is((select summary from public.calls where id = tests.fx('call_a')), null, 'writes: the call is unchanged');

-- ---------------------------------------------------------------------------
-- Recordings bucket: members read (calls.read), viewers do not; nobody
-- signed in writes; other org buckets keep their rules.
-- ---------------------------------------------------------------------------

select ok(
  (select not public from storage.buckets where id = 'recordings')
  and exists (select 1 from private.org_buckets where bucket_id = 'recordings'),
  'recordings: a private bucket registered as an org bucket'
);
insert into storage.buckets (id, name, public) values ('test-call-files', 'test-call-files', false);
insert into private.org_buckets (bucket_id) values ('test-call-files');
insert into storage.objects (bucket_id, name, owner_id, metadata) values
  ('recordings', tests.fx('org_a') || '/calls/' || tests.fx('call_a') || '/recording.mp3', null, '{"mimetype": "audio/mpeg"}'),
  ('recordings', tests.fx('org_b') || '/calls/' || tests.fx('call_b') || '/recording.mp3', null, '{"mimetype": "audio/mpeg"}'),
  ('test-call-files', tests.fx('org_a') || '/notes/a.txt', null, '{}');

-- The recordings an actor sees, and the other org bucket's objects.
create function pg_temp.seen_files()
returns text
language sql
stable
as $$
  select format('recordings=%s other=%s',
    (select count(*) from storage.objects where bucket_id = 'recordings'),
    (select count(*) from storage.objects where bucket_id = 'test-call-files'))
$$;
grant execute on function pg_temp.seen_files() to public;
-- The Storage API opts in to SQL deletes for its transaction; so do we.
select set_config('storage.allow_delete_query', 'true', true);

select tests.act_as('member_a');
select is(pg_temp.seen_files(), 'recordings=1 other=1', 'recordings: a member of A reads A''s recording (only)');
select tests.act_as('owner_a');
select is(pg_temp.seen_files(), 'recordings=1 other=1', 'recordings: the owner too');
select tests.act_as('viewer_a');
select is(pg_temp.seen_files(), 'recordings=0 other=1', 'recordings: a viewer reads no recording, and still reads the other org bucket');
select tests.act_as('owner_b');
select is(pg_temp.seen_files(), 'recordings=1 other=0', 'recordings: the owner of B reads B''s recording only');
select tests.act_as('ops');
select is(pg_temp.seen_files(), 'recordings=2 other=1', 'recordings: a platform admin reads them all');
select tests.act_as('owner_a');
select throws_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id) values ('recordings', %L, auth.uid()::text)$$,
    tests.fx('org_a') || '/calls/' || tests.fx('call_a') || '/forged.mp3'),
  '42501', null,
  'recordings: the owner cannot upload a recording'
);
select is(
  pg_temp.changed($$update storage.objects set metadata = '{"forged": true}' where bucket_id = 'recordings'$$),
  0, 'recordings: the owner cannot replace one'
);
select is(
  pg_temp.changed($$delete from storage.objects where bucket_id = 'recordings'$$),
  0, 'recordings: the owner cannot delete one'
);
select tests.act_as('member_a');
select lives_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id) values ('test-call-files', %L, auth.uid()::text)$$, tests.fx('org_a') || '/notes/b.txt'),
  'recordings: a member still uploads to another org bucket'
);
select tests.act_as('admin_a');
select is(
  pg_temp.changed($$delete from storage.objects where bucket_id = 'test-call-files' and name like '%/notes/b.txt'$$),
  1, 'recordings: an admin still deletes in another org bucket'
);

-- ---------------------------------------------------------------------------
-- The calls channel: members receive on org:<org>:calls, only the database
-- sends (20261123007200); viewers neither (they still receive on the org's
-- other channels).
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into realtime.messages (topic, extension, event, payload, private) values
  ('org:' || tests.fx('org_a') || ':uploads', 'broadcast', 'fixture', '{}', true);

create function pg_temp.join(who text, channel text)
returns void
language sql
as $$
  select tests.act_as(who);
  select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':' || channel, true);
$$;
grant execute on function pg_temp.join(text, text) to public;

create function pg_temp.received()
returns integer
language sql
stable
as $$ select count(*)::integer from realtime.messages where topic = realtime.topic() $$;
grant execute on function pg_temp.received() to public;

select pg_temp.join('member_a', 'calls');
select ok(pg_temp.received() > 0, 'calls channel: a member of A receives on org:<A>:calls');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  '42501', null,
  'calls channel: not even a member sends on it: only the database does (20261123007200)'
);
select pg_temp.join('ops', 'calls');
select ok(pg_temp.received() > 0, 'calls channel: a platform admin receives');
select pg_temp.join('viewer_a', 'calls');
select is(pg_temp.received(), 0, 'calls channel: a viewer of A receives nothing on it');
select is((select count(*)::integer from realtime.messages), 0, 'calls channel: nothing at all, whatever the row''s topic');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  '42501', null,
  'calls channel: a viewer cannot send on it'
);
select pg_temp.join('viewer_a', 'uploads');
select is(pg_temp.received(), 1, 'calls channel: the same viewer still receives on org:<A>:uploads');
select pg_temp.join('owner_b', 'calls');
select is(pg_temp.received(), 0, 'calls channel: the owner of B receives nothing on A''s');
select tests.act_as('postgres');

select * from finish();
rollback;
