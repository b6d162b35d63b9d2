-- Dialling at most once per attempt (20261123004800_call_dial_once.sql):
-- claim_due_calls stamps the attempt it hands out; an attempt whose outcome
-- is unknown (its dispatcher died, its lease ran out, or the dial may have
-- placed the call) is never dialled again but looked up
-- (claim_dial_lookups): found -> ringing, not placed -> the usual retry (or
-- the canceled campaign's cancel), no answer -> record_dial_unknown and a
-- later lookup, 5 unanswered lookups -> failed with the reason; such a call
-- cannot be canceled meanwhile. And live transcript lines without a start
-- time (untimed) are appended in arrival order instead of overwriting each
-- other.
--
-- One transaction, so now() is one instant: leases that "ran out" and
-- lookups that are "due" are written into the rows.
begin;
create extension if not exists pgtap with schema extensions;

select plan(33);

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

-- claim_due_calls / claim_dial_lookups as the service role, kept under label.
create function pg_temp.claim(label text)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(to_jsonb(c) order by c.call_id), '[]') from private.claim_due_calls(10) c
  returning body;
$$;
grant execute on function pg_temp.claim(text) to public;
create function pg_temp.lookups(label text)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(to_jsonb(c) order by c.call_id), '[]') from private.claim_dial_lookups(10) c
  returning body;
$$;
grant execute on function pg_temp.lookups(text) to public;

-- The claimed ids, as call_id#attempt (lookups: #attempt/lookup).
create function pg_temp.ids(body jsonb)
returns text[]
language sql
immutable
as $$
  select coalesce(array_agg((e ->> 'call_id') || '#' || (e ->> 'attempt') || coalesce('/' || (e ->> 'lookup'), '') order by e ->> 'call_id'), '{}')
  from jsonb_array_elements(body) e
$$;
grant execute on function pg_temp.ids(jsonb) to public;

-- As the dispatcher's lease running out, or a scheduled lookup coming due.
create function pg_temp.expire(name text)
returns void
language sql
as $$
  update public.calls set dial_lease_until = now() - interval '1 second', next_dial_at = now() - interval '1 second'
  where id = tests.fx(name);
$$;
grant execute on function pg_temp.expire(text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@dial-once.test')),
  ('admin_a', tests.create_user('admin-a@dial-once.test'));
select tests.remember('org_a', tests.create_org('dial-once-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
update public.organizations set time_zone = pg_temp.noon_zone() where id = tests.fx('org_a');
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (tests.fx('org_a'), 'Voice', 'voice', 'asst_voice', '{api,voice,web}');
select tests.remember('bot_voice', id) from public.bots where org_id = tests.fx('org_a') and slug = 'voice';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('org_a'), 'vapi', now(), 'pn_a');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('admin_a');
select tests.remember('d1', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550401')).id);

-- ---------------------------------------------------------------------------
-- The dispatcher died after handing attempt 1 to the provider
-- ---------------------------------------------------------------------------

select pg_temp.claim('claim1');
select tests.act_as('postgres');
select is(pg_temp.ids(pg_temp.answer('claim1')), array[tests.fx('d1') || '#1'], 'claim_due_calls: attempt 1 handed out');
select results_eq(
  $$select dial_started_at, dial_target, dial_lookups from public.calls where id = tests.fx('d1')$$,
  $$values (now(), '{"assistant_id": "asst_voice", "phone_number_id": "pn_a"}'::jsonb, 0)$$,
  'claim_due_calls: the attempt is stamped before it is dialled, with what it is dialled with'
);
select pg_temp.expire('d1');
select pg_temp.claim('claim2');
select tests.act_as('postgres');
select is(pg_temp.answer('claim2'), '[]'::jsonb,
  'claim_due_calls: after the lease ran out, the attempt of unknown outcome is not dialled again');

select tests.act_as('admin_a');
select throws_ok($$select * from private.claim_dial_lookups(10)$$, '42501', null,
  'claim_dial_lookups: signed-in users may not run it (service role only)');
select pg_temp.lookups('lookup1');
select tests.act_as('postgres');
select is(
  pg_temp.answer('lookup1'),
  jsonb_build_array(jsonb_build_object('call_id', tests.fx('d1'), 'org_id', tests.fx('org_a'), 'to_number', '+14155550401',
    'provider', 'vapi', 'assistant_id', 'asst_voice', 'phone_number_id', 'pn_a', 'attempt', 1,
    'dial_started_at', now(), 'lookup', 1)),
  'claim_dial_lookups: it is handed out for a lookup, with what attempt 1 dialled and when'
);
select results_eq(
  $$select status::text, dial_attempts, dial_lookups, dial_lease_until from public.calls where id = tests.fx('d1')$$,
  $$values ('queued', 1, 1, now() + interval '60 seconds')$$,
  'claim_dial_lookups: leased, the lookup counted, the attempt not'
);
select pg_temp.lookups('lookup2');
select tests.act_as('postgres');
select is(pg_temp.answer('lookup2'), '[]'::jsonb, 'claim_dial_lookups: not again while leased');

-- The provider has it: ringing with its id.
select tests.act_as('service_role');
select is(private.record_dial_result(tests.fx('d1'), 1, 'vapi-found-1', null, false) ->> 'outcome', 'dialled',
  'a lookup that found the call records it as dialled ...');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, provider_call_id, dial_attempts, dial_started_at, dial_target from public.calls where id = tests.fx('d1')$$,
  $$values ('ringing', 'vapi-found-1', 1, null::timestamptz, null::jsonb)$$,
  '... ringing with the provider''s id, dialled once, the stamp cleared'
);
select tests.act_as('service_role');
select is(private.record_dial_unknown(tests.fx('d1'), 1, 'late', null) ->> 'outcome', 'stale',
  'record_dial_unknown: a call no longer queued is stale');
select tests.act_as('admin_a');
select throws_ok($$select private.record_dial_unknown(tests.fx('d1'), 1, 'x', null)$$, '42501', null,
  'record_dial_unknown: signed-in users may not run it');

-- ---------------------------------------------------------------------------
-- The provider has no call for the attempt: dialled again, as attempt 2
-- ---------------------------------------------------------------------------

select tests.remember('d2', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550402')).id);
select pg_temp.claim('claim3');
select tests.act_as('postgres');
select pg_temp.expire('d2');
select pg_temp.lookups('lookup3');
select tests.act_as('service_role');
select is(
  private.record_dial_result(tests.fx('d2'), 1, null, 'dial attempt 1 placed no call (the provider has none for it)', true) ->> 'outcome',
  'retry',
  'a lookup that found no call is a retryable failure of the attempt ...'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, next_dial_at - now(), dial_started_at from public.calls where id = tests.fx('d2')$$,
  $$values ('queued', interval '30 seconds', null::timestamptz)$$,
  '... on the usual schedule, the stamp cleared'
);
select pg_temp.expire('d2');
select pg_temp.claim('claim4');
select tests.act_as('postgres');
select is(pg_temp.ids(pg_temp.answer('claim4')), array[tests.fx('d2') || '#2'], '... and only then dialled again, as attempt 2');

-- ---------------------------------------------------------------------------
-- A dial that may have placed the call (a timeout): looked up, not redialled
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
insert into answers select 'campaign', to_jsonb(r) from public.create_call_campaign(
  tests.fx('org_a'), tests.fx('bot_voice'), 'Once', array['+14155550403']) r;
select tests.remember('d3', (select id from public.calls where campaign_id = (pg_temp.answer('campaign') ->> 'campaign_id')::uuid));
select pg_temp.claim('claim5');
select tests.act_as('service_role');
select is(
  private.record_dial_unknown(tests.fx('d3'), 1, 'Vapi POST /call failed: no answer within 15000 ms.', 120)
    - array['call_id', 'next_lookup_at'],
  '{"outcome": "unknown", "status": "queued", "attempt": 1, "lookups": 0}'::jsonb,
  'record_dial_unknown: the outcome is unknown ...'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, next_dial_at - now(), dial_lease_until, dial_started_at is not null, last_dial_error
    from public.calls where id = tests.fx('d3')$$,
  $$values ('queued', interval '120 seconds', null::timestamptz, true, 'Vapi POST /call failed: no answer within 15000 ms.')$$,
  '... the call stays queued and stamped, its lookup due in 2 minutes'
);
select tests.act_as('admin_a');
select throws_ok($$select public.cancel_call(tests.fx('d3'))$$, '23514',
  'the call may already be ringing (its last dial is being checked with the provider) and can no longer be canceled',
  'cancel_call: refused while the dial''s outcome is unknown');
select is(public.cancel_call_campaign((pg_temp.answer('campaign') ->> 'campaign_id')::uuid), 0,
  'cancel_call_campaign: leaves a call whose dial''s outcome is unknown to the dispatcher');
select tests.act_as('postgres');
update public.calls set next_dial_at = now() - interval '1 second' where id = tests.fx('d3');
select pg_temp.claim('claim6');
select tests.act_as('postgres');
select is(pg_temp.answer('claim6'), '[]'::jsonb, 'claim_due_calls: a due call of unknown dial outcome is not dialled');
select pg_temp.lookups('lookup4');
select tests.act_as('postgres');
select is(pg_temp.ids(pg_temp.answer('lookup4')), array[tests.fx('d3') || '#1/1'], 'claim_dial_lookups: it is looked up instead');
select tests.act_as('service_role');
select is(
  private.record_dial_result(tests.fx('d3'), 1, null, 'dial attempt 1 placed no call (the provider has none for it)', true) ->> 'outcome',
  'canceled',
  'not placed, in a campaign canceled meanwhile: canceled, not dialled'
);

-- ---------------------------------------------------------------------------
-- Lookups that cannot answer: backoff, then failed with the reason
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select tests.remember('d4', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550404')).id);
select pg_temp.claim('claim7');
select tests.act_as('service_role');
select private.record_dial_unknown(tests.fx('d4'), 1, 'Vapi POST /call failed with 502.', 120);
create function pg_temp.lookup_fails(n integer)
returns jsonb
language plpgsql
as $$
declare
  claimed jsonb;
  result jsonb;
begin
  perform tests.act_as('postgres');
  perform pg_temp.expire('d4');
  claimed := pg_temp.lookups('d4_lookup' || n);
  if pg_temp.ids(claimed) is distinct from array[tests.fx('d4') || '#1/' || n] then
    raise exception 'expected lookup %, claimed %', n, claimed;
  end if;
  result := private.record_dial_unknown(tests.fx('d4'), 1, 'Vapi GET /call failed: 500.', null);
  perform tests.act_as('postgres');
  return result || jsonb_build_object('wait', (select extract(epoch from next_dial_at - now()) from public.calls where id = tests.fx('d4')));
end;
$$;
select is(pg_temp.lookup_fails(1) -> 'wait', '30'::jsonb, 'record_dial_unknown: after a failed lookup 1, the next in 30 s');
select is(pg_temp.lookup_fails(2) -> 'wait', '120'::jsonb, '... after lookup 2, 2 minutes');
select is(pg_temp.lookup_fails(3) -> 'wait', '600'::jsonb, '... after lookup 3, 10 minutes');
select is(pg_temp.lookup_fails(4) -> 'wait', '1800'::jsonb, '... after lookup 4, 30 minutes');
select is(pg_temp.lookup_fails(5) ->> 'outcome', 'failed', '... the 5th failed lookup fails the call');
select results_eq(
  $$select status::text, ended_reason, dial_attempts from public.calls where id = tests.fx('d4')$$,
  $$values ('failed', 'dial-failed: outcome unknown: Vapi GET /call failed: 500.', 1)$$,
  'failed with the reason, after a single dial'
);
select results_eq(
  $$select payload ->> 'status', payload ->> 'ended_reason' from public.events
    where type = 'call.ended' and payload ->> 'call_id' = tests.fx('d4')::text$$,
  $$values ('failed', 'dial-failed: outcome unknown: Vapi GET /call failed: 500.')$$,
  'the failure emits call.ended'
);

-- Lookups handed out and never reported (the dispatcher keeps dying): the 6th claim fails the call.
select tests.act_as('admin_a');
select tests.remember('d5', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_voice'), '+14155550405')).id);
select pg_temp.claim('claim8');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup1');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup2');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup3');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup4');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup5');
select tests.act_as('postgres');
select pg_temp.expire('d5');
select pg_temp.lookups('d5_lookup6');
select tests.act_as('postgres');
select is(
  pg_temp.ids(pg_temp.answer('d5_lookup5')) || pg_temp.ids(pg_temp.answer('d5_lookup6')),
  array[tests.fx('d5') || '#1/5'],
  'claim_dial_lookups: five lookups, then no more'
);
select results_eq(
  $$select status::text, ended_reason, dial_attempts from public.calls where id = tests.fx('d5')$$,
  $$values ('failed', 'dial-failed: outcome unknown: no lookup result was reported', 1)$$,
  'claim_dial_lookups: the call fails there with the reason, never dialled again'
);

-- ---------------------------------------------------------------------------
-- Live transcript lines without a start time
-- ---------------------------------------------------------------------------

create function pg_temp.line(event_id text, speaker text, text text, start_ms integer, untimed boolean)
returns jsonb
language sql
immutable
as $$
  select jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.transcript',
    'provider_call_id', 'untimed-call-1', 'occurred_at', '2026-11-23T10:00:00Z', 'transcript_mode', 'append',
    'transcript', jsonb_build_array(jsonb_build_object('speaker', speaker, 'text', text, 'start_ms', start_ms, 'end_ms', start_ms)
      || case when untimed then '{"untimed": true}'::jsonb else '{}'::jsonb end))
$$;
grant execute on function pg_temp.line(text, text, text, integer, boolean) to public;

select tests.act_as('service_role');
select private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-1', 'user', 'Hello?', 0, true), '{}');
select private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-2', 'user', 'Is anyone there?', 0, true), '{}');
select private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-3', 'assistant', 'Yes, hello!', 0, true), '{}');
insert into answers select 'line-1-again',
  private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-1', 'user', 'Hello?', 0, true), '{}');
select tests.act_as('postgres');
select results_eq(
  $$select t.seq, t.speaker, t.text from public.call_transcript_segments t
    join public.calls c on c.id = t.call_id where c.provider_call_id = 'untimed-call-1' order by t.seq$$,
  $$values (0, 'user', 'Hello?'), (1, 'user', 'Is anyone there?'), (2, 'assistant', 'Yes, hello!')$$,
  'untimed lines are appended in arrival order, none overwriting another; a re-delivery adds nothing'
);
select is(pg_temp.answer('line-1-again') -> 'duplicate', 'true'::jsonb, 'the re-delivered line is a duplicate event');
select tests.act_as('service_role');
select private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-4', 'user', 'Tuesday', 5000, false), '{}');
select private.apply_call_event(tests.fx('org_a'), pg_temp.line('line-5', 'user', 'Tuesday works.', 5000, false), '{}');
select tests.act_as('postgres');
select results_eq(
  $$select t.seq, t.text from public.call_transcript_segments t
    join public.calls c on c.id = t.call_id where c.provider_call_id = 'untimed-call-1' and t.seq >= 3 order by t.seq$$,
  $$values (3, 'Tuesday works.')$$,
  'a timed line still replaces the one with its speaker and start'
);

select * from finish();
rollback;
