-- Calling hours hold when a call is dialled (20261123006900_call_hours_at_dial.sql):
-- claim_due_calls hands out only calls the callee's 08:00-21:00 and the
-- business hours allow now; a call whose slot passed while nothing dialled
-- moves to its next slot without an attempt, one without a slot within 14
-- days fails with the reason (call.ended), and neither uses up max_calls.
--
-- One transaction, so now() is one instant. Zones are fixed offsets chosen
-- from now(): local 02:xx (night) or 12:xx (noon).
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

-- A fixed-offset zone where the local time is <hour>:xx now.
create function pg_temp.zone_at(hour integer)
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select ((extract(hour from now() at time zone 'UTC')::integer - hour + 36) % 24) - 12 as n) x
$$;
grant execute on function pg_temp.zone_at(integer) to public;

-- Today's (days = 0) or another day's local wall-clock time in a zone, as an instant.
create function pg_temp.local_at(zone text, days integer, at time without time zone)
returns timestamptz
language sql
stable
as $$ select (((now() at time zone zone)::date + days) + at) at time zone zone $$;
grant execute on function pg_temp.local_at(text, integer, time without time zone) to public;

-- claim_due_calls(max) as the service role, kept under label as call_id#attempt.
create function pg_temp.claim(label text, max_calls integer)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(((c.call_id)::text || '#' || c.attempt) order by c.call_id), '[]')
  from private.claim_due_calls(max_calls) c
  returning body;
$$;
grant execute on function pg_temp.claim(text, integer) to public;

-- As a slot that passed while nothing dialled: due yesterday at 20:59 local.
create function pg_temp.due_last_evening(name text, zone text)
returns void
language sql
as $$
  update public.calls set next_dial_at = pg_temp.local_at(zone, -1, '20:59'), scheduled_at = pg_temp.local_at(zone, -1, '20:59')
  where id = tests.fx(name);
$$;
grant execute on function pg_temp.due_last_evening(text, text) to public;

insert into tests.fixtures (name, id) values ('owner_h', tests.create_user('owner-h@hours-at-dial.test'));
select tests.remember('org_h', tests.create_org('hours-at-dial-org', tests.fx('owner_h')));
update public.organizations set time_zone = pg_temp.zone_at(2) where id = tests.fx('org_h');
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org_h'), 'Voice', 'voice', 'asst_hours', '{api,voice,web}'),
  (tests.fx('org_h'), 'Office', 'office', 'asst_office', '{api,voice,web}'),
  (tests.fx('org_h'), 'Never', 'never', 'asst_never', '{api,voice,web}');
select tests.remember('bot_' || slug, id) from public.bots where org_id = tests.fx('org_h');
-- The office bot is open 10:00-17:00 every day (org zone: local 02:xx now).
insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
select tests.fx('org_h'), tests.fx('bot_office'), d, '10:00', '17:00' from generate_series(1, 7) d;
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('org_h'), 'vapi', now(), 'pn_hours');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('owner_h');
select tests.remember('night', (public.create_outbound_call(tests.fx('org_h'), tests.fx('bot_voice'), '+14155552401', null, pg_temp.zone_at(2))).id);
select tests.remember('noon', (public.create_outbound_call(tests.fx('org_h'), tests.fx('bot_voice'), '+14155552402', null, pg_temp.zone_at(12))).id);
select tests.remember('office', (public.create_outbound_call(tests.fx('org_h'), tests.fx('bot_office'), '+14155552403', null, pg_temp.zone_at(2))).id);
select tests.remember('never', (public.create_outbound_call(tests.fx('org_h'), tests.fx('bot_never'), '+14155552404', null, pg_temp.zone_at(2))).id);
select tests.act_as('postgres');
-- Since it was queued, the never bot's hours became 00:00-01:00: no overlap with 08:00-21:00.
insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
select tests.fx('org_h'), tests.fx('bot_never'), d, '00:00', '01:00' from generate_series(1, 7) d;
-- The night, office and never calls were due last evening; the noon call a minute ago (after them).
select pg_temp.due_last_evening('night', pg_temp.zone_at(2));
select pg_temp.due_last_evening('office', pg_temp.zone_at(2));
select pg_temp.due_last_evening('never', pg_temp.zone_at(2));
update public.calls set next_dial_at = now() - interval '1 minute' where id = tests.fx('noon');

-- ---------------------------------------------------------------------------
-- One claim of one call
-- ---------------------------------------------------------------------------

select pg_temp.claim('claim1', 1);
select tests.act_as('postgres');
select is(pg_temp.answer('claim1'), jsonb_build_array(tests.fx('noon') || '#1'),
  'claim_due_calls(1): the call inside calling hours is handed out, behind three older ones set aside that did not use up max_calls');
select results_eq(
  $$select status::text, dial_attempts, dial_started_at, dial_lease_until from public.calls where id = tests.fx('noon')$$,
  $$values ('queued', 1, now(), now() + interval '60 seconds')$$,
  'the call inside calling hours is leased and stamped as before'
);

-- At 02:xx for the callee: moved to 08:00 today, nothing else.
select results_eq(
  $$select status::text, next_dial_at, dial_attempts, dial_started_at, dial_lease_until, ended_reason, last_dial_error
    from public.calls where id = tests.fx('night')$$,
  $$values ('queued', pg_temp.local_at(pg_temp.zone_at(2), 0, '08:00'), 0, null::timestamptz, null::timestamptz, null::text, null::text)$$,
  'a call due at 20:59 yesterday, claimed at 02:xx for the callee, is not handed out: it waits for 08:00, no attempt counted'
);
select is(
  private.next_call_slot(tests.fx('org_h'), tests.fx('bot_voice'), pg_temp.zone_at(2), now()),
  pg_temp.local_at(pg_temp.zone_at(2), 0, '08:00'),
  '... which is next_call_slot from now'
);
select results_eq(
  $$select status::text, next_dial_at, dial_attempts from public.calls where id = tests.fx('office')$$,
  $$values ('queued', pg_temp.local_at(pg_temp.zone_at(2), 0, '10:00'), 0)$$,
  'a call of a bot open 10:00-17:00 waits for 10:00, its business hours'' start'
);
select is(
  (select count(*)::integer from public.events where payload ->> 'call_id' in (tests.fx('night')::text, tests.fx('office')::text)),
  0,
  'a call set aside emits no event'
);

-- No slot within 14 days: failed with the reason, like other calls the claim cannot dial.
select results_eq(
  $$select status::text, ended_reason, last_dial_error, dial_attempts, next_dial_at from public.calls where id = tests.fx('never')$$,
  $$values ('failed',
    'dial-failed: no moment within 14 days is inside the business hours and 08:00-21:00 of the callee''s time zone (' || pg_temp.zone_at(2) || ')',
    'no moment within 14 days is inside the business hours and 08:00-21:00 of the callee''s time zone (' || pg_temp.zone_at(2) || ')',
    0, null::timestamptz)$$,
  'a call without calling hours within 14 days fails (dial-failed: ...), never dialled'
);
select results_eq(
  $$select payload ->> 'status', payload ->> 'ended_reason' from public.events
    where type = 'call.ended' and payload ->> 'call_id' = tests.fx('never')::text$$,
  $$values ('failed', 'dial-failed: no moment within 14 days is inside the business hours and 08:00-21:00 of the callee''s time zone (' || pg_temp.zone_at(2) || ')')$$,
  'the failure emits call.ended'
);

-- ---------------------------------------------------------------------------
-- Later claims
-- ---------------------------------------------------------------------------

select pg_temp.claim('claim2', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('claim2'), '[]'::jsonb, 'a call moved to its slot is not due before it');

-- Its slot came (as if now were 08:00 for the callee): handed out with attempt 1.
update public.calls set next_dial_at = now() - interval '1 second' where id = tests.fx('night');
update public.calls set callee_time_zone = pg_temp.zone_at(12) where id = tests.fx('night');
select pg_temp.claim('claim3', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('claim3'), jsonb_build_array(tests.fx('night') || '#1'), 'inside calling hours, the call that waited is handed out, attempt 1');

-- A retry that came due at night (say, the dispatcher was down) waits too, keeping its attempt count.
select tests.act_as('service_role');
select is(private.record_dial_result(tests.fx('noon'), 1, null, 'Vapi POST /call failed: 429.', true) ->> 'outcome', 'retry',
  'a retryable failure of attempt 1 is retried');
select tests.act_as('postgres');
update public.calls set callee_time_zone = pg_temp.zone_at(2), next_dial_at = pg_temp.local_at(pg_temp.zone_at(2), -1, '20:59')
where id = tests.fx('noon');
select pg_temp.claim('claim4', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('claim4'), '[]'::jsonb, 'the retry is not handed out at night');
select results_eq(
  $$select status::text, next_dial_at, dial_attempts, last_dial_error from public.calls where id = tests.fx('noon')$$,
  $$values ('queued', pg_temp.local_at(pg_temp.zone_at(2), 0, '08:00'), 1, 'Vapi POST /call failed: 429.')$$,
  'it waits for 08:00 with its attempt count and last error'
);

select tests.act_as('owner_h');
select throws_ok($$select * from private.claim_due_calls(10)$$, '42501', null,
  'claim_due_calls: signed-in users may not run it (service role only)');

select * from finish();
rollback;
