-- Outbound calls respect business closures (20261123011500_call_slots_respect_closures.sql): next_call_slot
-- answers the first instant inside the business hours and the callee's 08:00-21:00 that no closure of the org
-- (bot_id null) or of the call's bot covers, within 14 days (none: null); a bot's closure leaves other bots
-- alone. Its callers follow: claim_due_calls defers a call due inside a closure added after it was queued to
-- the closure's end without an attempt (and fails one closed for the whole horizon), record_dial_result keeps a
-- retry out of a closure, and a new call starts after one (or is refused, 22023, when no slot is left).
--
-- One transaction, so now() is one instant. The fixed dates are Berlin wall times, the org's zone, open
-- 09:00-17:00 every day; the dialling org's zone is a fixed offset where it is 12:xx now, with no hours.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@289-call-slots-respect-closures.test')),
  ('member', tests.create_user('member@289-call-slots-respect-closures.test'));
select tests.remember('org', tests.create_org('call-slots-closures-289', tests.fx('owner')));
select tests.remember('org_other', tests.create_org('call-slots-closures-289-other', tests.fx('owner')));
select tests.remember('org_dial', tests.create_org('call-slots-closures-289-dial', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
update public.organizations set time_zone = 'Europe/Berlin' where id in (tests.fx('org'), tests.fx('org_other'));
delete from vault.secrets where name in ('project_url', 'service_role_key');

insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org'), 'Desk A', 'desk-a-289', '{api,voice,web}'),
  (tests.fx('org'), 'Desk B', 'desk-b-289', '{api,voice,web}'),
  (tests.fx('org'), 'Busy desk', 'busy-289', '{api,voice,web}');
select tests.remember('a', (select id from public.bots where slug = 'desk-a-289'));
select tests.remember('b', (select id from public.bots where slug = 'desk-b-289'));
select tests.remember('busy', (select id from public.bots where slug = 'busy-289'));
insert into public.business_hours (org_id, weekday, opens, closes)
select tests.fx('org'), d, '09:00', '17:00' from generate_series(1, 7) d;

-- A Berlin wall time as an instant.
create function pg_temp.berlin(wall text) returns timestamptz language sql immutable as $$
  select wall::timestamp at time zone 'Europe/Berlin';
$$;
-- Closes the org (bot null) or one bot over [from, until).
create function pg_temp.close(org uuid, bot uuid, from_at timestamptz, until timestamptz, reason text) returns void
language sql as $$
  insert into public.business_closures (org_id, bot_id, during, reason) values (org, bot, tstzrange(from_at, until, '[)'), reason);
$$;
create function pg_temp.slot(bot uuid, not_before timestamptz) returns timestamptz language sql stable as $$
  select private.next_call_slot(tests.fx('org'), bot, null, not_before);
$$;
grant execute on function pg_temp.berlin(text), pg_temp.slot(uuid, timestamptz) to public;

-- ---------------------------------------------------------------------------
-- next_call_slot subtracts closures
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2027-12-24 18:00')), pg_temp.berlin('2027-12-25 09:00'),
  'without closures, Friday 18:00 gives Saturday''s opening');
select tests.act_as('postgres');
select pg_temp.close(tests.fx('org'), tests.fx('a'), pg_temp.berlin('2027-12-25 00:00'), pg_temp.berlin('2027-12-26 00:00'), 'Christmas leave');
select tests.act_as('service_role');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2027-12-24 18:00')), pg_temp.berlin('2027-12-26 09:00'),
  'a bot''s closure covering tomorrow''s hours moves its slot to the day after''s opening');
select is(pg_temp.slot(tests.fx('b'), pg_temp.berlin('2027-12-24 18:00')), pg_temp.berlin('2027-12-25 09:00'),
  'a bot''s closure does not affect another bot of the org');
select is(pg_temp.slot(null, pg_temp.berlin('2027-12-24 18:00')), pg_temp.berlin('2027-12-25 09:00'),
  '... nor the org''s calls without a bot');
select is(private.next_call_slot(tests.fx('org'), tests.fx('a'), 'America/New_York', pg_temp.berlin('2027-12-24 18:00')),
  pg_temp.berlin('2027-12-26 14:00'),
  'with a callee in New York, the first instant of both 08:00-21:00 there and the hours after the closure');

select tests.act_as('postgres');
select pg_temp.close(tests.fx('org'), null, pg_temp.berlin('2027-12-27 00:00'), pg_temp.berlin('2027-12-28 00:00'), 'Company holiday');
-- Another org's closure at the same time counts for that org only.
select pg_temp.close(tests.fx('org_other'), null, pg_temp.berlin('2027-12-26 00:00'), pg_temp.berlin('2028-01-01 00:00'), 'Other org');
select tests.act_as('service_role');
select results_eq(
  $$select pg_temp.slot(x.bot, pg_temp.berlin('2027-12-26 18:00')) from (values (1, tests.fx('a')), (2, tests.fx('b')), (3, null::uuid)) x(n, bot) order by x.n$$,
  $$values (pg_temp.berlin('2027-12-28 09:00')), (pg_temp.berlin('2027-12-28 09:00')), (pg_temp.berlin('2027-12-28 09:00'))$$,
  'an org closure (bot_id null) moves the slot of every bot, and of calls without a bot'
);

select tests.act_as('postgres');
select pg_temp.close(tests.fx('org'), null, pg_temp.berlin('2027-12-29 00:00'), pg_temp.berlin('2027-12-29 12:30'), 'Half day');
select pg_temp.close(tests.fx('org'), tests.fx('b'), pg_temp.berlin('2027-12-30 05:00'), pg_temp.berlin('2027-12-30 07:00'), 'Early');
select pg_temp.close(tests.fx('org'), tests.fx('b'), pg_temp.berlin('2027-12-30 11:00'), pg_temp.berlin('2027-12-30 12:00'), 'Later');
select tests.act_as('service_role');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2027-12-28 18:00')), pg_temp.berlin('2027-12-29 12:30'),
  'a closure ending inside the hours gives its end');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2027-12-29 10:15')), pg_temp.berlin('2027-12-29 12:30'),
  '... also asked from inside the closure');
select is(pg_temp.slot(tests.fx('b'), pg_temp.berlin('2027-12-29 18:00')), pg_temp.berlin('2027-12-30 09:00'),
  'a closure ending before the opening leaves the opening');
select is(pg_temp.slot(tests.fx('b'), pg_temp.berlin('2027-12-30 10:00')), pg_temp.berlin('2027-12-30 10:00'),
  'a closure that starts later does not move a slot open now');

-- A long closure: the slot right after it when that is within 14 days, else none.
select tests.act_as('postgres');
select pg_temp.close(tests.fx('org'), tests.fx('a'), pg_temp.berlin('2028-01-03 00:00'), pg_temp.berlin('2028-01-14 00:00'), 'Parental leave');
select pg_temp.close(tests.fx('org'), tests.fx('b'), pg_temp.berlin('2028-01-03 00:00'), pg_temp.berlin('2028-01-20 00:00'), 'Sabbatical');
select tests.act_as('service_role');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2028-01-02 18:00')), pg_temp.berlin('2028-01-14 09:00'),
  'after an 11-day closure, the first opening after it (11.6 days ahead)');
select is(pg_temp.slot(tests.fx('b'), pg_temp.berlin('2028-01-02 18:00')), null::timestamptz,
  'a closure covering the rest of the 14-day horizon leaves no slot (null)');

-- The same answers for a member (calls.read); the closures need no calendar.read of the caller.
select tests.act_as('member');
select is(pg_temp.slot(tests.fx('a'), pg_temp.berlin('2027-12-24 18:00')), pg_temp.berlin('2027-12-26 09:00'),
  'a member with calls.read gets the same slot');

-- Availability still subtracts them, through the same rule.
select tests.act_as('service_role');
select is(
  private.open_ranges(tests.fx('org'), tests.fx('a'), tstzrange(pg_temp.berlin('2027-12-29 00:00'), pg_temp.berlin('2027-12-31 00:00'))),
  tstzmultirange(tstzrange(pg_temp.berlin('2027-12-29 12:30'), pg_temp.berlin('2027-12-29 17:00')),
                 tstzrange(pg_temp.berlin('2027-12-30 09:00'), pg_temp.berlin('2027-12-30 17:00'))),
  'open_ranges keeps subtracting the org''s and the bot''s closures'
);
select is(
  private.open_ranges(tests.fx('org'), tests.fx('b'), tstzrange(pg_temp.berlin('2027-12-30 00:00'), pg_temp.berlin('2027-12-31 00:00'))),
  tstzmultirange(tstzrange(pg_temp.berlin('2027-12-30 09:00'), pg_temp.berlin('2027-12-30 11:00')),
                 tstzrange(pg_temp.berlin('2027-12-30 12:00'), pg_temp.berlin('2027-12-30 17:00'))),
  '... a bot''s own closure included'
);

-- 50 closures: 4 per day filling 09:00-17:00 for 12 days, then 09:00-10:00 and 10:00-10:30 on the 13th.
select tests.act_as('postgres');
select pg_temp.close(tests.fx('org'), tests.fx('busy'),
  pg_temp.berlin('2028-02-01 09:00') + (d || ' days')::interval + (q * 2 || ' hours')::interval,
  pg_temp.berlin('2028-02-01 11:00') + (d || ' days')::interval + (q * 2 || ' hours')::interval, 'Busy ' || d || '/' || q)
from generate_series(0, 11) d cross join generate_series(0, 3) q;
select pg_temp.close(tests.fx('org'), tests.fx('busy'), pg_temp.berlin('2028-02-13 09:00'), pg_temp.berlin('2028-02-13 10:00'), 'Busy 12/0');
select pg_temp.close(tests.fx('org'), tests.fx('busy'), pg_temp.berlin('2028-02-13 10:00'), pg_temp.berlin('2028-02-13 10:30'), 'Busy 12/1');
select is((select count(*)::integer from public.business_closures where bot_id = tests.fx('busy')), 50, 'the busy bot has 50 closures');
select tests.act_as('service_role');
select is(pg_temp.slot(tests.fx('busy'), pg_temp.berlin('2028-02-01 08:00')), pg_temp.berlin('2028-02-13 10:30'),
  'with 50 closures over 12.5 days, the slot is the end of the last one');
-- Timed, not asserted (a timing bound would be flaky on a loaded machine): 20 calls, each with its own not_before.
select tests.act_as('postgres');
create function pg_temp.time_slots(n integer) returns double precision language plpgsql as $$
declare
  started timestamptz := clock_timestamp();
  answer timestamptz;
begin
  for i in 1..n loop
    answer := private.next_call_slot(tests.fx('org'), tests.fx('busy'), null,
      pg_temp.berlin('2028-02-01 08:00') + (random() * interval '1 second'));
  end loop;
  return extract(epoch from clock_timestamp() - started) * 1000 / n;
end;
$$;
select diag('next_call_slot with 50 closures: ' || round(pg_temp.time_slots(20)::numeric, 2) || ' ms per call (20 calls)');

-- ---------------------------------------------------------------------------
-- Callers: claim_due_calls, record_dial_result, create_outbound_call
-- ---------------------------------------------------------------------------

-- A fixed-offset zone where the local time is <hour>:xx now.
create function pg_temp.zone_at(hour integer) returns text language sql stable as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select ((extract(hour from now() at time zone 'UTC')::integer - hour + 36) % 24) - 12 as n) x
$$;
grant execute on function pg_temp.zone_at(integer) to public;
create temp table answers (label text primary key, body jsonb);
grant all on answers to public;
create function pg_temp.claim(label text, max_calls integer) returns jsonb language sql as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(((c.call_id)::text || '#' || c.attempt) order by c.call_id), '[]')
  from private.claim_due_calls(max_calls) c
  returning body;
$$;
grant execute on function pg_temp.claim(text, integer) to public;

update public.organizations set time_zone = pg_temp.zone_at(12) where id = tests.fx('org_dial');
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org_dial'), 'Closed later', 'closed-later-289', 'asst_289_closed', '{api,voice,web}'),
  (tests.fx('org_dial'), 'Open', 'open-289', 'asst_289_open', '{api,voice,web}'),
  (tests.fx('org_dial'), 'Away', 'away-289', 'asst_289_away', '{api,voice,web}');
select tests.remember('closed_later', (select id from public.bots where slug = 'closed-later-289'));
select tests.remember('open', (select id from public.bots where slug = 'open-289'));
select tests.remember('away', (select id from public.bots where slug = 'away-289'));
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('org_dial'), 'vapi', now(), 'pn_289');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('owner');
select tests.remember('call_closed', (public.create_outbound_call(tests.fx('org_dial'), tests.fx('closed_later'), '+14155552891', null, null)).id);
select tests.remember('call_open', (public.create_outbound_call(tests.fx('org_dial'), tests.fx('open'), '+14155552892', null, null)).id);
select tests.remember('call_away', (public.create_outbound_call(tests.fx('org_dial'), tests.fx('away'), '+14155552893', null, null)).id);
select tests.act_as('postgres');
select is((select count(*)::integer from public.calls where id in (tests.fx('call_closed'), tests.fx('call_open'), tests.fx('call_away')) and next_dial_at = now()),
  3, 'the three calls were queued due now');
-- After queuing: the first bot closes for two hours, the third for 20 days.
select pg_temp.close(tests.fx('org_dial'), tests.fx('closed_later'), now() - interval '1 minute', now() + interval '2 hours', 'Staff meeting');
select pg_temp.close(tests.fx('org_dial'), tests.fx('away'), now() - interval '1 minute', now() + interval '20 days', 'Closed for renovation');

select pg_temp.claim('claim1', 10);
select tests.act_as('postgres');
select is((select body from answers where label = 'claim1'), jsonb_build_array(tests.fx('call_open') || '#1'),
  'claim_due_calls hands out only the call of the bot that is open');
select results_eq(
  $$select status::text, next_dial_at, dial_attempts, dial_started_at, dial_lease_until, ended_reason, last_dial_error
    from public.calls where id = tests.fx('call_closed')$$,
  $$values ('queued', now() + interval '2 hours', 0, null::timestamptz, null::timestamptz, null::text, null::text)$$,
  'a call due inside a closure created after it was queued is deferred to the closure''s end, no attempt counted'
);
select results_eq(
  $$select status::text, ended_reason, dial_attempts from public.calls where id = tests.fx('call_away')$$,
  $$values ('failed', 'dial-failed: no moment within 14 days is inside the business hours and 08:00-21:00 of the callee''s time zone ('
    || pg_temp.zone_at(12) || ')', 0)$$,
  'a call whose bot is closed for the whole 14 days fails, never dialled'
);

-- A retry due inside a closure waits for its end.
select pg_temp.close(tests.fx('org_dial'), tests.fx('open'), now(), now() + interval '3 hours', 'Lunch');
select tests.act_as('service_role');
select is(private.record_dial_result(tests.fx('call_open'), 1, null, 'Vapi POST /call failed: 503.', true) ->> 'outcome', 'retry',
  'a retryable failure is retried');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, next_dial_at, dial_attempts from public.calls where id = tests.fx('call_open')$$,
  $$values ('queued', now() + interval '3 hours', 1)$$,
  '... at the end of the bot''s closure, not 30 seconds later'
);

-- New calls start after a closure, or are refused when it outlasts the horizon.
select tests.act_as('owner');
select is((public.create_outbound_call(tests.fx('org_dial'), tests.fx('closed_later'), '+14155552894', null, null)).scheduled_at,
  now() + interval '2 hours', 'a new call to a closed bot is scheduled at the closure''s end');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_dial'), tests.fx('away'), '+14155552895', null, null)$$,
  '22023', null, 'a new call to a bot closed for the whole 14 days is refused (22023)'
);

select * from finish();
rollback;
