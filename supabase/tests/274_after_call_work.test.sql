-- After-call work (20261123010200_after_call_work.sql, 20261123010210_calls_needing_analysis_index.sql).
-- T: calls.has_transcript is set by a call's first transcript line, neither broadcast nor audited.
-- S: a call the caller said nothing in is handed out once and saved as the dispatcher sends it (neutral,
--    score 0, "The caller said nothing. ..."), and is done.
-- A: a call whose analysis never saves is handed out every 10 minutes, 5 times at most, and counted.
-- W: the dispatcher's wake-up waits for an analysis only of a call with a transcript and tries left.
-- I: the new partial index serves the wake-up's and the hand-out's test.
--
-- One transaction (rolled back), so now() is one instant: "10 minutes ago" is written into the rows. The
-- calls ended 6 days 23 hours ago, so they come first among the shared database's, oldest first.
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

select tests.remember('owner', tests.create_user('owner@after-call-274.test'));
select tests.remember('org', tests.create_org('after-call-274', tests.fx('owner')));

create temp table marks (label text primary key, value bigint);
grant all on marks to public;

-- Hands out the org's calls awaiting an analysis (as the dispatcher, one at a time) after the last hand-out's
-- 10 minutes have passed.
create function pg_temp.hand_out(call_id uuid)
returns integer
language plpgsql
as $$
declare
  handed integer;
begin
  perform tests.act_as('postgres');
  update public.calls c set analysis_requested_at = now() - interval '11 minutes'
  where c.id = hand_out.call_id and c.analysis_requested_at is not null;
  perform tests.act_as('service_role');
  select count(*)::integer into handed from private.calls_needing_analysis(100) a where a.call_id = hand_out.call_id;
  perform tests.act_as('postgres');
  return handed;
end;
$$;

-- Whether the dispatcher's wake-up sends a request now (its one-second throttle reset first).
create function pg_temp.wakes()
returns boolean
language plpgsql
as $$
declare
  before bigint;
begin
  perform tests.act_as('postgres');
  update private.call_dispatch_requests set last_requested_at = '-infinity';
  select coalesce(max(id), 0) into before from net.http_request_queue;
  perform tests.act_as('service_role');
  perform private.request_call_dispatch();
  perform tests.act_as('postgres');
  return exists (select 1 from net.http_request_queue q where q.id > before);
end;
$$;

-- ---------------------------------------------------------------------------
-- T: the first line marks the call
-- ---------------------------------------------------------------------------

insert into public.calls (id, org_id, direction, status, started_at, from_number)
values ('27400000-0000-4000-8000-000000000001', tests.fx('org'), 'inbound', 'in_progress', now() - interval '1 minute', '+14155557401');
select is((select has_transcript from public.calls where id = '27400000-0000-4000-8000-000000000001'), false,
  'has_transcript: false for a new call');
insert into marks select 'audit', coalesce(max(id), 0) from public.audit_log;
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
values (tests.fx('org'), '27400000-0000-4000-8000-000000000001', 0, 'assistant', 'Hello, how can I help?', 0, 900);
select is((select has_transcript from public.calls where id = '27400000-0000-4000-8000-000000000001'), true,
  'has_transcript: set by the call''s first transcript line');
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
values (tests.fx('org'), '27400000-0000-4000-8000-000000000001', 1, 'user', 'I would like a table.', 1000, 1900),
       (tests.fx('org'), '27400000-0000-4000-8000-000000000001', 2, 'assistant', 'For when?', 2000, 2900);
select is((select has_transcript from public.calls where id = '27400000-0000-4000-8000-000000000001'), true,
  'has_transcript: still set after more lines');
select is(
  (select count(*)::integer from realtime.messages m
   where m.event = 'UPDATE' and m.payload ->> 'table' = 'calls'
     and m.payload -> 'record' ->> 'id' = '27400000-0000-4000-8000-000000000001'),
  0, 'has_transcript: the call''s change is not broadcast (its lines are)'
);
select is(
  (select count(*)::integer from realtime.messages m
   where m.event = 'INSERT' and m.payload ->> 'table' = 'call_transcript_segments'
     and m.payload -> 'record' ->> 'call_id' = '27400000-0000-4000-8000-000000000001'),
  3, 'has_transcript: the lines are broadcast as before'
);
select is(
  (select count(*)::integer from public.audit_log a
   where a.id > (select value from marks where label = 'audit') and a.table_name = 'calls'
     and a.record_id = '27400000-0000-4000-8000-000000000001'),
  0, 'has_transcript: not audited'
);

-- ---------------------------------------------------------------------------
-- W: what the wake-up waits for. Every other call's work is set aside first (rolled back with the file).
-- ---------------------------------------------------------------------------

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('http://127.0.0.1:54321', 'project_url');
select vault.create_secret('test-key', 'service_role_key');
update public.calls set next_dial_at = now() + interval '1 year'
where status = 'queued' and direction = 'outbound' and next_dial_at <= now();
update public.calls set analysis_requested_at = now()
where status = 'ended' and (summary is null or sentiment = 'unknown') and ended_at > now() - interval '7 days';
insert into private.call_recording_requests (call_id, requested_at)
select c.id, now() from public.calls c
where c.recording_url is not null and c.recording_path is null and c.ended_at > now() - interval '7 days'
on conflict (call_id) do update set requested_at = excluded.requested_at;
select is(pg_temp.wakes(), false, 'wake-up: nothing waits, nothing is woken');

-- An ended call without a transcript (no line was ever stored) is no analysis's.
insert into public.calls (id, org_id, direction, status, started_at, ended_at, from_number)
values ('27400000-0000-4000-8000-000000000002', tests.fx('org'), 'inbound', 'ended',
  now() - interval '6 days 23 hours 1 minute', now() - interval '6 days 23 hours', '+14155557402');
select is(pg_temp.wakes(), false, 'wake-up: an ended call without a transcript wakes nobody');
select is(pg_temp.hand_out('27400000-0000-4000-8000-000000000002'), 0, 'calls_needing_analysis: nor is it handed out');

-- ---------------------------------------------------------------------------
-- S: a call the caller said nothing in
-- ---------------------------------------------------------------------------

insert into public.calls (id, org_id, direction, status, started_at, ended_at, from_number)
values ('27400000-0000-4000-8000-000000000003', tests.fx('org'), 'inbound', 'ended',
  now() - interval '6 days 23 hours 1 minute', now() - interval '6 days 23 hours' + interval '1 second', '+14155557403');
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
values (tests.fx('org'), '27400000-0000-4000-8000-000000000003', 0, 'assistant', 'Hello? Is anyone there?', 0, 900);
select is(pg_temp.wakes(), true, 'wake-up: an ended call with a transcript and no analysis wakes the dispatcher');
select is(pg_temp.hand_out('27400000-0000-4000-8000-000000000003'), 1, 'silent call: handed out');
select is((select analysis_attempts::integer from public.calls where id = '27400000-0000-4000-8000-000000000003'), 1,
  'silent call: the hand-out counts a try');
insert into marks select 'usage', coalesce(max(id), 0) from public.usage_events;
select tests.act_as('service_role');
select lives_ok(
  $$select private.save_call_analysis('27400000-0000-4000-8000-000000000003',
    'The caller said nothing. Assistant: Hello? Is anyone there?', 'neutral', 0, 'offline', 0, 0)$$,
  'silent call: the dispatcher''s analysis (neutral, score 0) is saved'
);
select tests.act_as('postgres');
select results_eq(
  $$select summary, sentiment::text, sentiment_score from public.calls where id = '27400000-0000-4000-8000-000000000003'$$,
  $$values ('The caller said nothing. Assistant: Hello? Is anyone there?', 'neutral', 0.000)$$,
  'silent call: its summary and sentiment are stored'
);
select is(
  (select count(*)::integer from public.usage_events
   where id > (select value from marks where label = 'usage') and org_id = tests.fx('org') and kind = 'chat' and model = 'offline'),
  1, 'silent call: the analysis is metered once'
);
update public.calls set analysis_requested_at = now() - interval '11 minutes' where id = '27400000-0000-4000-8000-000000000003';
select is(pg_temp.hand_out('27400000-0000-4000-8000-000000000003'), 0, 'silent call: done, not handed out again');
select is(pg_temp.wakes(), false, 'wake-up: nor does it wake the dispatcher');

-- ---------------------------------------------------------------------------
-- A: an analysis that never saves
-- ---------------------------------------------------------------------------

insert into public.calls (id, org_id, direction, status, started_at, ended_at, from_number)
values ('27400000-0000-4000-8000-000000000004', tests.fx('org'), 'inbound', 'ended',
  now() - interval '6 days 23 hours 1 minute', now() - interval '6 days 23 hours' + interval '2 seconds', '+14155557404');
insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms)
values (tests.fx('org'), '27400000-0000-4000-8000-000000000004', 0, 'user', 'Please call me back tomorrow.', 0, 900);
select is(
  array[pg_temp.hand_out('27400000-0000-4000-8000-000000000004'), pg_temp.hand_out('27400000-0000-4000-8000-000000000004'),
        pg_temp.hand_out('27400000-0000-4000-8000-000000000004'), pg_temp.hand_out('27400000-0000-4000-8000-000000000004'),
        pg_temp.hand_out('27400000-0000-4000-8000-000000000004'), pg_temp.hand_out('27400000-0000-4000-8000-000000000004')],
  array[1, 1, 1, 1, 1, 0],
  'attempts: handed out every 10 minutes, 5 times at most'
);
select is((select analysis_attempts::integer from public.calls where id = '27400000-0000-4000-8000-000000000004'), 5,
  'attempts: 5 counted');
select is(
  (select count(*)::integer from realtime.messages m
   where m.event = 'UPDATE' and m.payload ->> 'table' = 'calls'
     and m.payload -> 'record' ->> 'id' = '27400000-0000-4000-8000-000000000004'),
  0, 'attempts: the hand-outs are not broadcast'
);
select is(pg_temp.wakes(), false, 'wake-up: a call out of tries wakes nobody');

-- ---------------------------------------------------------------------------
-- I: the partial index serves both tests
-- ---------------------------------------------------------------------------

create function pg_temp.plan_of(query text)
returns text
language plpgsql
as $$
declare
  line text;
  plan text := '';
begin
  for line in execute 'explain ' || query loop
    plan := plan || line || E'\n';
  end loop;
  return plan;
end;
$$;
set local enable_seqscan = off;
set local enable_bitmapscan = off;
select ok(
  pg_temp.plan_of($q$select 1 from public.calls c
     where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
       and c.has_transcript and c.analysis_attempts < 5
       and c.ended_at > now() - interval '7 days'
       and (c.analysis_requested_at is null or c.analysis_requested_at < now() - interval '10 minutes')$q$)
    ~ '(calls_awaiting_analysis_idx|calls_analysis_queue_idx)',
  'index: calls_awaiting_analysis_idx (or, since 20261123012420, calls_analysis_queue_idx, with the same predicate) serves the test of calls awaiting an analysis'
);

select * from finish();
rollback;
