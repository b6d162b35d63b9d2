-- Dialling under the provider's throttling (20261123011000_dial_throttle.sql): release_dial_claims gives
-- back dial claims (the attempt undone) and lookup claims (the lookup not counted) the dispatcher could not
-- use, due again after Retry-After (default 30 s, at most an hour); a call throttled for over 24 hours
-- fails with the reason, an undialled call of a canceled campaign is canceled, a claim that moved on is
-- stale; record_dial_result ends the throttled run (dial_throttled_since cleared); claim_due_calls moving a
-- throttled call to its next slot stops its clock meanwhile (a call throttled on a Friday afternoon and moved
-- to Monday is not failed at Monday's first 429); a Retry-After beyond an integer is capped, not an error.
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

-- A fixed-offset zone where the local time is 12:xx now (calling hours never move a call).
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select extract(hour from now() at time zone 'UTC')::integer - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

-- claim_due_calls / claim_dial_lookups as the service role: the claimed ids as call_id#attempt(/lookup).
create function pg_temp.claim(label text)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg((c.call_id::text || '#' || c.attempt) order by c.call_id), '[]') from private.claim_due_calls(10) c
  returning body;
$$;
grant execute on function pg_temp.claim(text) to public;
create function pg_temp.lookups(label text)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg((c.call_id::text || '#' || c.attempt || '/' || c.lookup) order by c.call_id), '[]')
  from private.claim_dial_lookups(10) c
  returning body;
$$;
grant execute on function pg_temp.lookups(text) to public;

-- release_dial_claims as the service role, for the named calls' claims: outcome by fixture name.
create function pg_temp.release(names text[], attempts integer[], lookups integer[], retry_after numeric)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  select coalesce(jsonb_object_agg(f.name, r.outcome), '{}')
  from private.release_dial_claims(
    array(select tests.fx(n) from unnest(names) with ordinality u(n, i) order by i), attempts, lookups,
    'Vapi POST /call failed with 429: Too Many Requests', retry_after) r
  join tests.fixtures f on f.id = r.call_id and f.name = any (names);
$$;
grant execute on function pg_temp.release(text[], integer[], integer[], numeric) to public;

-- Due now, with no lease (the next pass).
create function pg_temp.due(name text)
returns void
language sql
as $$
  update public.calls set dial_lease_until = null, next_dial_at = now() - interval '1 second' where id = tests.fx(name);
$$;
grant execute on function pg_temp.due(text) to public;

insert into tests.fixtures (name, id) values
  ('owner_t', tests.create_user('owner-t@dial-throttle.test')),
  ('admin_t', tests.create_user('admin-t@dial-throttle.test'));
select tests.remember('org_t', tests.create_org('dial-throttle-org-t', tests.fx('owner_t')));
select tests.add_member(tests.fx('org_t'), tests.fx('admin_t'), 'admin');
update public.organizations set time_zone = pg_temp.noon_zone() where id = tests.fx('org_t');
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (tests.fx('org_t'), 'Voice', 'voice', 'asst_throttle', '{api,voice,web}');
select tests.remember('bot_t', id) from public.bots where org_id = tests.fx('org_t') and slug = 'voice';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('org_t'), 'vapi', now(), 'pn_throttle');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('admin_t');
select tests.remember('t1', (public.create_outbound_call(tests.fx('org_t'), tests.fx('bot_t'), '+14155550801')).id);
select tests.remember('t2', (public.create_outbound_call(tests.fx('org_t'), tests.fx('bot_t'), '+14155550802')).id);

-- ---------------------------------------------------------------------------
-- Dial claims given back: no attempt, due after Retry-After
-- ---------------------------------------------------------------------------

select pg_temp.claim('claim1');
select tests.act_as('postgres');
select is(jsonb_array_length(pg_temp.answer('claim1')), 2, 'claim_due_calls: both calls handed out as attempt 1');

select tests.act_as('admin_t');
select throws_ok($$select * from private.release_dial_claims(array[tests.fx('t1')], array[1], array[0], 'x', null)$$, '42501', null,
  'release_dial_claims: signed-in users may not run it (service role only)');
select tests.act_as('service_role');
select throws_ok($$select * from private.release_dial_claims(array[tests.fx('t1')], array[1, 2], array[0], 'x', null)$$, '22023', null,
  'release_dial_claims: arrays of different lengths are refused');

select is(pg_temp.release(array['t1', 't2'], array[1, 1], array[0, 0], 60), '{"t1": "released", "t2": "released"}'::jsonb,
  'release_dial_claims: the throttled and the undialled claims are given back');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, dial_attempts, dial_started_at, dial_target, dial_lease_until, next_dial_at - now(), dial_throttled_since,
      last_dial_error
    from public.calls where id = tests.fx('t1')$$,
  $$values ('queued', 0, null::timestamptz, null::jsonb, null::timestamptz, interval '60 seconds', now(),
      'Vapi POST /call failed with 429: Too Many Requests')$$,
  '... the attempt is undone (no attempt counted, no stamp, no lease), due after Retry-After, the throttling noted'
);
select is(pg_temp.release(array['t1'], array[1], array[0], 60), '{"t1": "stale"}'::jsonb,
  'release_dial_claims: a claim already given back is stale');
select is(
  (select jsonb_agg(r.outcome) from private.release_dial_claims(array[gen_random_uuid()], array[1], array[0], 'x', null) r),
  '["gone"]'::jsonb, 'release_dial_claims: an unknown call is gone');
select tests.act_as('postgres');
select pg_temp.claim('claim_early');
select tests.act_as('postgres');
select is(pg_temp.answer('claim_early'), '[]'::jsonb, 'claim_due_calls: a call given back is not handed out before its wait');

-- The wait: Retry-After capped at an hour, 30 s without one.
select pg_temp.due('t1');
select pg_temp.due('t2');
select pg_temp.claim('claim2');
select tests.act_as('postgres');
select is(jsonb_array_length(pg_temp.answer('claim2')), 2, 'claim_due_calls: given back, they are handed out again as attempt 1');
select pg_temp.release(array['t1'], array[1], array[0], 86400);
select pg_temp.release(array['t2'], array[1], array[0], null);
select tests.act_as('postgres');
select results_eq(
  $$select dial_attempts, next_dial_at - now() from public.calls where id in (tests.fx('t1'), tests.fx('t2')) order by to_number$$,
  $$values (0, interval '1 hour'), (0, interval '30 seconds')$$,
  'release_dial_claims: Retry-After is capped at an hour; without one the call waits 30 s'
);

-- A real answer ends the throttled run.
select pg_temp.due('t2');
select pg_temp.claim('claim3');
select tests.act_as('service_role');
select is(private.record_dial_result(tests.fx('t2'), 1, null, 'Vapi POST /call failed with 502.', true) ->> 'outcome', 'retry',
  'record_dial_result: a retryable failure of a once-throttled call');
select tests.act_as('postgres');
select results_eq($$select dial_attempts, dial_throttled_since from public.calls where id = tests.fx('t2')$$,
  $$values (1, null::timestamptz)$$, '... counts its attempt and clears dial_throttled_since');

-- ---------------------------------------------------------------------------
-- Throttled for over 24 hours: failed with the reason
-- ---------------------------------------------------------------------------

update public.calls set dial_throttled_since = now() - interval '24 hours 1 second' where id = tests.fx('t1');
select pg_temp.due('t1');
select pg_temp.claim('claim4');
select tests.act_as('postgres');
select is(pg_temp.answer('claim4'), jsonb_build_array(tests.fx('t1') || '#1'), 'claim_due_calls: the long-throttled call is handed out');
select is(pg_temp.release(array['t1'], array[1], array[0], 60), '{"t1": "failed"}'::jsonb,
  'release_dial_claims: a call throttled for over 24 hours fails');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, dial_attempts, dial_started_at from public.calls where id = tests.fx('t1')$$,
  $$values ('failed', 'dial-failed: throttled by the provider for over 24 hours: Vapi POST /call failed with 429: Too Many Requests', 0,
      null::timestamptz)$$,
  '... ended dial-failed with the reason, no attempt counted'
);
select is((select count(*)::integer from public.events where type = 'call.ended' and payload ->> 'call_id' = tests.fx('t1')::text), 1,
  '... and call.ended is emitted once');

-- ---------------------------------------------------------------------------
-- A lookup claim given back: the lookup not counted, the attempt still unknown
-- ---------------------------------------------------------------------------

select tests.act_as('admin_t');
select tests.remember('t3', (public.create_outbound_call(tests.fx('org_t'), tests.fx('bot_t'), '+14155550803')).id);
select pg_temp.claim('claim5');
select tests.act_as('service_role');
select private.record_dial_unknown(tests.fx('t3'), 1, 'Vapi POST /call failed: no answer within 15000 ms.', 120);
select tests.act_as('postgres');
select pg_temp.due('t3');
select pg_temp.lookups('lookup1');
select tests.act_as('postgres');
select is(pg_temp.answer('lookup1'), jsonb_build_array(tests.fx('t3') || '#1/1'), 'claim_dial_lookups: lookup 1 of attempt 1');
select is(pg_temp.release(array['t3'], array[1], array[1], 60), '{"t3": "released"}'::jsonb,
  'release_dial_claims: a throttled lookup is given back');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, dial_attempts, dial_lookups, dial_started_at is not null, dial_lease_until, next_dial_at - now()
    from public.calls where id = tests.fx('t3')$$,
  $$values ('queued', 1, 0, true, null::timestamptz, interval '60 seconds')$$,
  '... the lookup is not counted; the attempt stays stamped (never dialled before a lookup settles it)'
);

-- ---------------------------------------------------------------------------
-- An undialled call of a campaign canceled meanwhile: canceled
-- ---------------------------------------------------------------------------

select tests.act_as('admin_t');
insert into answers select 'campaign', to_jsonb(r) from public.create_call_campaign(
  tests.fx('org_t'), tests.fx('bot_t'), 'Throttled', array['+14155550804']) r;
select tests.remember('t4', (select id from public.calls where campaign_id = (pg_temp.answer('campaign') ->> 'campaign_id')::uuid));
select tests.act_as('postgres');
select pg_temp.due('t4');
select pg_temp.claim('claim6');
select tests.act_as('admin_t');
select public.cancel_call_campaign((pg_temp.answer('campaign') ->> 'campaign_id')::uuid);
select is(pg_temp.release(array['t4'], array[1], array[0], 60), '{"t4": "canceled"}'::jsonb,
  'release_dial_claims: the undialled call of a canceled campaign is canceled, not queued again');
select tests.act_as('postgres');
select results_eq($$select status::text, ended_reason, dial_attempts from public.calls where id = tests.fx('t4')$$,
  $$values ('canceled', 'canceled-by-user', 0)$$, '... as canceled-by-user, without an attempt');

-- ---------------------------------------------------------------------------
-- Moved to its next slot: the throttled clock stops meanwhile
-- ---------------------------------------------------------------------------

select tests.act_as('admin_t');
select tests.remember('t5', (public.create_outbound_call(tests.fx('org_t'), tests.fx('bot_t'), '+14155550805')).id);
select pg_temp.claim('claim7');
select tests.act_as('postgres');
select is(pg_temp.answer('claim7'), jsonb_build_array(tests.fx('t5') || '#1'), 'claim_due_calls: t5 handed out as attempt 1');
select is(pg_temp.release(array['t5'], array[1], array[0], 60), '{"t5": "released"}'::jsonb, 'release_dial_claims: t5 throttled');
select tests.act_as('postgres');
-- Throttled for 2 hours (a Friday afternoon, say); the org now opens only 3 days from today, so the next
-- claim moves the call to that morning, over 2.5 days on.
update public.calls set dial_throttled_since = now() - interval '2 hours' where id = tests.fx('t5');
insert into public.business_hours (org_id, weekday, opens, closes)
values (tests.fx('org_t'), extract(isodow from (now() at time zone pg_temp.noon_zone())::date + 3), '09:00', '17:00');
select pg_temp.due('t5');
select pg_temp.claim('claim8');
select tests.act_as('postgres');
select is(pg_temp.answer('claim8'), '[]'::jsonb, 'claim_due_calls: a throttled call outside the business hours is not handed out');
select results_eq(
  $$select dial_attempts, next_dial_at - now() > interval '2 days 12 hours', next_dial_at - dial_throttled_since
    from public.calls where id = tests.fx('t5')$$,
  $$values (0, true, interval '2 hours')$$,
  '... it moves to its slot over 2.5 days on, its throttled clock with it: 2 hours run when the slot begins'
);

-- At the slot (every instant of the call moved back by the deferral, the hours lifted), throttled once more,
-- with a Retry-After beyond an integer (an HTTP date past 2100 is).
update public.calls set dial_throttled_since = dial_throttled_since - (next_dial_at - now()) where id = tests.fx('t5');
select pg_temp.due('t5');
delete from public.business_hours where org_id = tests.fx('org_t');
select pg_temp.claim('claim9');
select tests.act_as('postgres');
select is(pg_temp.answer('claim9'), jsonb_build_array(tests.fx('t5') || '#1'), 'claim_due_calls: at its slot t5 is handed out again');
select is(pg_temp.release(array['t5'], array[1], array[0], 99999999999), '{"t5": "released"}'::jsonb,
  'release_dial_claims: throttled again at its slot, 2 hours into its run, the call is given back, not failed');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, dial_attempts, now() - dial_throttled_since, next_dial_at - now() from public.calls where id = tests.fx('t5')$$,
  $$values ('queued', 0, interval '2 hours', interval '1 hour')$$,
  '... its run kept (2 hours, the days outside its hours not counted), the huge Retry-After capped at an hour'
);

select * from finish();
rollback;
