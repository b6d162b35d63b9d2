-- Fair after-call work (20261123011800_fair_after_call.sql).
-- F: calls_needing_analysis and calls_needing_recording take the orgs in turn: one org's older backlog no
--    longer holds another org's call back, in a batch or one call at a time.
-- T: release_throttled_call_analysis gives a throttled try back (not counted, due after Retry-After, capped)
--    while the hand-out holds the call and its 7 days leave room; otherwise it changes nothing.
--
-- One transaction (rolled back), so now() is one instant. Every other call's after-call work is set aside first,
-- as in 274, so only this file's calls are due.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

select tests.remember('owner', tests.create_user('owner@fair-after-call-293.test'));
select tests.remember('org_a', tests.create_org('fair-after-call-293-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('fair-after-call-293-b', tests.fx('owner')));

update public.calls set analysis_requested_at = now()
where status = 'ended' and (summary is null or sentiment = 'unknown') and ended_at > now() - interval '7 days';
insert into private.call_recording_requests (call_id, requested_at)
select c.id, now() from public.calls c
where c.recording_url is not null and c.recording_path is null and c.ended_at > now() - interval '7 days'
on conflict (call_id) do update set requested_at = excluded.requested_at;

-- Org A's campaign: three calls, all ended before org B's one. a1..a3 await an analysis, r1..r3 a recording copy.
create function pg_temp.ended_call(id uuid, org uuid, ended_ago interval, analysis boolean, number text)
returns void
language sql
as $$
  insert into public.calls (id, org_id, direction, status, started_at, ended_at, from_number, has_transcript, recording_url)
  values (id, org, 'inbound', 'ended', now() - ended_ago - interval '1 minute', now() - ended_ago, number, analysis,
    case when analysis then null else 'https://recordings.example.com/293/' || id::text || '.wav' end);
$$;
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000a1', tests.fx('org_a'), '6 days 23 hours 40 minutes', true, '+14155559301');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000a2', tests.fx('org_a'), '6 days 23 hours 30 minutes', true, '+14155559302');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000a3', tests.fx('org_a'), '6 days 23 hours 20 minutes', true, '+14155559303');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000b1', tests.fx('org_b'), '6 days 23 hours 10 minutes', true, '+14155559304');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000c1', tests.fx('org_a'), '6 days 23 hours 40 minutes', false, '+14155559305');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000c2', tests.fx('org_a'), '6 days 23 hours 30 minutes', false, '+14155559306');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000c3', tests.fx('org_a'), '6 days 23 hours 20 minutes', false, '+14155559307');
select pg_temp.ended_call('29300000-0000-4000-8000-0000000000d1', tests.fx('org_b'), '6 days 23 hours 10 minutes', false, '+14155559308');

-- What one hand-out of max_calls gives, as the dispatcher (service role): the calls' last hex digits, in id order.
create function pg_temp.analyses(max_calls integer)
returns text
language plpgsql
as $$
declare
  taken text;
begin
  perform tests.act_as('service_role');
  select string_agg(right(a.call_id::text, 2), ',' order by a.call_id) into taken from private.calls_needing_analysis(max_calls) a;
  perform tests.act_as('postgres');
  return coalesce(taken, '');
end;
$$;

create function pg_temp.recordings(max_calls integer)
returns text
language plpgsql
as $$
declare
  taken text;
begin
  perform tests.act_as('service_role');
  select string_agg(right(r.call_id::text, 2), ',' order by r.call_id) into taken from private.calls_needing_recording(max_calls) r;
  perform tests.act_as('postgres');
  return coalesce(taken, '');
end;
$$;

-- Hands the calls back as if their 10 minutes had passed, with their tries and the orgs' turns forgotten.
create function pg_temp.reset()
returns void
language sql
as $$
  update public.calls set analysis_requested_at = null, analysis_attempts = 0
  where id::text like '29300000-%' and recording_url is null;
  delete from private.call_recording_requests where call_id::text like '29300000-%';
  delete from private.after_call_turns where org_id in (tests.fx('org_a'), tests.fx('org_b'));
$$;

-- ---------------------------------------------------------------------------
-- F: the orgs in turn
-- ---------------------------------------------------------------------------

select is(pg_temp.analyses(2), 'a1,b1', 'calls_needing_analysis: a batch takes each org''s oldest call first (before: a1, a2)');
select is(pg_temp.recordings(2), 'c1,d1', 'calls_needing_recording: a batch takes each org''s oldest call first (before: c1, c2)');
select pg_temp.reset();

select is(pg_temp.analyses(1), 'a1', 'calls_needing_analysis one at a time: the oldest call first');
select is(pg_temp.analyses(1), 'b1', 'calls_needing_analysis one at a time: then the org served longer ago (before: a2)');
select is(pg_temp.analyses(1), 'a2', 'calls_needing_analysis one at a time: then org A again');
select is(pg_temp.analyses(1), 'a3', 'calls_needing_analysis one at a time: only org A has calls left');
select is(pg_temp.analyses(1), '', 'calls_needing_analysis one at a time: none is handed out twice');
select is(
  (select string_agg(analysis_attempts::text, ',' order by id) from public.calls
   where id in ('29300000-0000-4000-8000-0000000000a1', '29300000-0000-4000-8000-0000000000a2',
     '29300000-0000-4000-8000-0000000000a3', '29300000-0000-4000-8000-0000000000b1')),
  '1,1,1,1', 'calls_needing_analysis: each hand-out still counts a try'
);

select is(pg_temp.recordings(1), 'c1', 'calls_needing_recording one at a time: the oldest call first');
select is(pg_temp.recordings(1), 'd1', 'calls_needing_recording one at a time: then the org served longer ago (before: c2)');
select is(pg_temp.recordings(1), 'c2', 'calls_needing_recording one at a time: then org A again');

-- Across passes: org B was served last, so when both have calls due in the same turn, org A goes first.
select pg_temp.reset();
insert into private.after_call_turns (kind, org_id, served_at)
values ('analysis', tests.fx('org_a'), now() - interval '1 minute'), ('analysis', tests.fx('org_b'), now());
update public.calls set ended_at = now() - interval '6 days 23 hours 50 minutes' where id = '29300000-0000-4000-8000-0000000000b1';
select is(pg_temp.analyses(1), 'a1', 'calls_needing_analysis: the org served longer ago first, though its call is newer');
select is(pg_temp.analyses(1), 'b1', 'calls_needing_analysis: then the other');
update public.calls set ended_at = now() - interval '6 days 23 hours 10 minutes' where id = '29300000-0000-4000-8000-0000000000b1';

-- ---------------------------------------------------------------------------
-- T: a throttled try given back
-- ---------------------------------------------------------------------------

create function pg_temp.release(call_id uuid, retry_after_seconds integer)
returns boolean
language plpgsql
as $$
declare
  released boolean;
begin
  perform tests.act_as('service_role');
  released := private.release_throttled_call_analysis(call_id, retry_after_seconds);
  perform tests.act_as('postgres');
  return released;
end;
$$;

create function pg_temp.state(call_id uuid)
returns text
language sql
as $$
  select c.analysis_attempts || ' tries, due in '
    || coalesce(round(extract(epoch from c.analysis_requested_at + interval '10 minutes' - now()))::text || ' s', '0 s')
  from public.calls c where c.id = call_id;
$$;

-- A hand-out counting the call's nth try, now (the hand-out itself is F's).
create function pg_temp.handed_out(call_id uuid, tries integer)
returns void
language sql
as $$
  update public.calls c set analysis_attempts = tries, analysis_requested_at = now() where c.id = call_id;
$$;

select pg_temp.handed_out('29300000-0000-4000-8000-0000000000a1', 1);
select is(pg_temp.release('29300000-0000-4000-8000-0000000000a1', 120), true, 'release: a throttled try is given back');
select is(pg_temp.state('29300000-0000-4000-8000-0000000000a1'), '0 tries, due in 120 s',
  'release: the try is not counted, and the call is due again after Retry-After');

update public.calls set analysis_attempts = 1, analysis_requested_at = now() - interval '11 minutes'
where id = '29300000-0000-4000-8000-0000000000a1';
select is(pg_temp.release('29300000-0000-4000-8000-0000000000a1', 120), false,
  'release: not once the hand-out has lapsed (another pass may hold the call)');
select is(pg_temp.state('29300000-0000-4000-8000-0000000000a1'), '1 tries, due in -60 s', 'release: which changes nothing');

-- The 5th try, throttled, is no longer the last.
select pg_temp.handed_out('29300000-0000-4000-8000-0000000000a2', 5);
select is(pg_temp.release('29300000-0000-4000-8000-0000000000a2', null), true, 'release: the 5th try given back');
select is(pg_temp.state('29300000-0000-4000-8000-0000000000a2'), '4 tries, due in 60 s',
  'release: 4 tries counted (one left), due in a minute when the model named no wait');

update public.calls set ended_at = now() - interval '1 day' where id = '29300000-0000-4000-8000-0000000000a3';
select pg_temp.handed_out('29300000-0000-4000-8000-0000000000a3', 2);
select is(pg_temp.release('29300000-0000-4000-8000-0000000000a3', 2000000000), true, 'release: a huge Retry-After');
select is(pg_temp.state('29300000-0000-4000-8000-0000000000a3'), '1 tries, due in 3600 s', 'release: the wait is capped at an hour');

-- An analysed call is not given back.
select pg_temp.handed_out('29300000-0000-4000-8000-0000000000a3', 2);
update public.calls set summary = 'Done.', sentiment = 'neutral' where id = '29300000-0000-4000-8000-0000000000a3';
select is(pg_temp.release('29300000-0000-4000-8000-0000000000a3', 60), false, 'release: not a call analysed since');

-- b1's 7 days end in 10 minutes: a wait of 9 leaves less than a minute for the next pass.
update public.calls set ended_at = now() - interval '6 days 23 hours 50 minutes', analysis_requested_at = now(), analysis_attempts = 1
where id = '29300000-0000-4000-8000-0000000000b1';
select is(pg_temp.release('29300000-0000-4000-8000-0000000000b1', 540), false,
  'release: not when the window closes before a hand-out could follow the wait (the rules answer then)');
select is(pg_temp.state('29300000-0000-4000-8000-0000000000b1'), '1 tries, due in 600 s', 'release: which changes nothing');

select tests.act_as('owner');
select throws_ok($$select private.release_throttled_call_analysis('29300000-0000-4000-8000-0000000000b1', 60)$$, '42501', null,
  'release: signed-in users may not run it');
select tests.act_as('postgres');

select * from finish();
rollback;
