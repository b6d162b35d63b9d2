-- Provider events (20261123001200_calls.sql): private.apply_call_event, as
-- the call-events function calls it (service role). A whole call through
-- its events with broadcasts, domain events and audit; duplicates;
-- out-of-order and late events; transcripts (append, replace, after the
-- end); finding the call (provider id, our metadata.call_id, never another
-- org's); refused events that store nothing; the raw events being
-- append-only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(76);

-- ---------------------------------------------------------------------------
-- Fixtures and helpers
-- ---------------------------------------------------------------------------

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@call-events.test')),
  ('owner_b', tests.create_user('owner-b@call-events.test'));
select tests.remember('org_a', tests.create_org('call-events-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('call-events-b', tests.fx('owner_b')));
insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'A bot', 'a-bot'), (tests.fx('org_b'), 'B bot', 'b-bot');
select tests.remember('bot_a', id) from public.bots where slug = 'a-bot';
select tests.remember('bot_b', id) from public.bots where slug = 'b-bot';

-- What apply_call_event answered, per label.
create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

-- A vapi event: the required fields, then whatever else is given.
create function pg_temp.ev(event_id text, type text, provider_call_id text, occurred_at text, extra jsonb default '{}')
returns jsonb
language sql
immutable
as $$
  select jsonb_strip_nulls(jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', type,
    'provider_call_id', provider_call_id, 'occurred_at', occurred_at)) || extra
$$;
grant execute on function pg_temp.ev(text, text, text, text, jsonb) to public;

-- Applies an event for a fixture org as the current role; keeps the answer.
create function pg_temp.apply(label text, org text, event jsonb)
returns jsonb
language sql
as $$
  insert into answers select label, private.apply_call_event(tests.fx(org), event, jsonb_build_object('raw', event))
  returning body
$$;
grant execute on function pg_temp.apply(text, text, jsonb) to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

create function pg_temp.call_id(label text)
returns uuid
language sql
stable
as $$ select (pg_temp.answer(label) ->> 'call_id')::uuid $$;
grant execute on function pg_temp.call_id(text) to public;

-- Everything an event could write, to compare before and after a refusal.
create function pg_temp.state()
returns text
language sql
stable
as $$
  select format('calls=%s segments=%s raw=%s events=%s broadcasts=%s',
    (select count(*) from public.calls), (select count(*) from public.call_transcript_segments),
    (select count(*) from public.call_events), (select count(*) from public.events),
    (select count(*) from realtime.messages))
$$;
grant execute on function pg_temp.state() to public;

create function pg_temp.topic(org text)
returns text
language sql
stable
as $$ select 'org:' || tests.fx(org) || ':calls' $$;
grant execute on function pg_temp.topic(text) to public;

-- ---------------------------------------------------------------------------
-- A whole inbound call: ringing, answered, two transcript events (one
-- segment re-delivered with a correction), ended with the end-of-call data.
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(
  pg_temp.apply('ring', 'org_a', pg_temp.ev('full-1', 'call.status', 'full', '2026-11-23T10:00:00Z',
    jsonb_build_object('status', 'ringing', 'direction', 'inbound', 'from', '+1 (415) 555-0123', 'to', '+49 30 123456',
      'metadata', jsonb_build_object('bot_id', tests.fx('bot_a'))))) - 'call_id',
  '{"duplicate": false, "status": "ringing", "applied_status": true}'::jsonb,
  'full call: the first event of an unknown provider call id creates the call'
);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, direction::text, status::text, from_number, to_number, provider, provider_call_id, bot_id, started_at
    from public.calls where id = pg_temp.call_id('ring')$$,
  $$values (tests.fx('org_a'), 'inbound', 'ringing', '+14155550123', '+4930123456', 'vapi', 'full', tests.fx('bot_a'), null::timestamptz)$$,
  'full call: an inbound call of org A, numbers in E.164, the bot from the metadata'
);
select tests.act_as('service_role');
select is(
  pg_temp.apply('start', 'org_a', pg_temp.ev('full-2', 'call.started', 'full', '2026-11-23T10:00:05Z')) ->> 'status',
  'in_progress',
  'full call: call.started moves it to in_progress'
);
select is(pg_temp.call_id('start'), pg_temp.call_id('ring'), 'full call: the same call, found by its provider id');
select lives_ok(
  $$select pg_temp.apply('t1', 'org_a', pg_temp.ev('full-3', 'call.transcript', 'full', '2026-11-23T10:00:10Z',
      '{"transcript_mode": "append", "transcript": [
         {"speaker": "assistant", "text": "Hello, Example Dental.", "start_ms": 0, "end_ms": 1400, "stt_ms": 0, "llm_ms": 300, "tts_ms": 120},
         {"speaker": "user", "text": "I need to reshedule.", "start_ms": 2000, "end_ms": 3900, "stt_ms": 180}]}'))$$,
  'full call: a transcript event with two segments'
);
select lives_ok(
  $$select pg_temp.apply('t2', 'org_a', pg_temp.ev('full-4', 'call.transcript', 'full', '2026-11-23T10:00:20Z',
      '{"transcript": [
         {"speaker": "user", "text": "I need to reschedule.", "start_ms": 2000, "end_ms": 3900, "stt_ms": 180},
         {"speaker": "assistant", "text": "Of course. When suits you?", "start_ms": 4200, "end_ms": 5600, "llm_ms": 500, "tts_ms": 140}]}'))$$,
  'full call: a second one re-delivers a corrected segment and adds one'
);
select results_eq(
  $$select seq, speaker, text, start_ms from public.call_transcript_segments where call_id = pg_temp.call_id('ring') order by seq$$,
  $$values (0, 'assistant', 'Hello, Example Dental.', 0), (1, 'user', 'I need to reschedule.', 2000), (2, 'assistant', 'Of course. When suits you?', 4200)$$,
  'full call: segments in order; the re-delivered one (same speaker and start) replaced in place'
);
select is(
  (pg_temp.apply('end', 'org_a', pg_temp.ev('full-5', 'call.ended', 'full', '2026-11-23T10:02:06Z',
    '{"status": "ended", "ended_reason": "customer-ended-call", "ended_at": "2026-11-23T10:02:05Z",
      "recording_url": "https://recordings.example.com/full.wav", "summary": "Rescheduled to Friday.",
      "sentiment": "positive", "sentiment_score": 0.8,
      "cost": {"amount": "0.1234", "currency": "USD", "breakdown": {"stt": 0.01, "llm": 0.1}},
      "latencies": {"stt_ms": 181.4, "llm_ms": 402, "tts_ms": 130}}')) ->> 'status'),
  'ended',
  'full call: call.ended ends it'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, started_at, ended_at, duration_seconds, recording_url, summary, sentiment::text, sentiment_score,
      cost, cost_currency::text, cost_breakdown, stt_latency_ms, llm_latency_ms, tts_latency_ms
    from public.calls where id = pg_temp.call_id('ring')$$,
  $$values ('ended', 'customer-ended-call', '2026-11-23 10:00:05Z'::timestamptz, '2026-11-23 10:02:05Z'::timestamptz, 120.000::numeric(10, 3),
      'https://recordings.example.com/full.wav', 'Rescheduled to Friday.', 'positive', 0.800::numeric(4, 3),
      0.1234::numeric(12, 4), 'USD', '{"stt": 0.01, "llm": 0.1}'::jsonb, 181, 402, 130)$$,
  'full call: status, reason, times, duration from the times, recording, summary, sentiment, cost (decimal string) and latencies'
);
select results_eq(
  $$select type, payload - 'call_id' from public.events where payload ->> 'call_id' = pg_temp.call_id('ring')::text order by type desc$$,
  $$values
    ('call.started', jsonb_build_object('direction', 'inbound', 'bot_id', tests.fx('bot_a'), 'from', '+14155550123', 'to', '+4930123456',
       'started_at', '2026-11-23T10:00:05.000000Z')),
    ('call.ended', '{"status": "ended", "ended_reason": "customer-ended-call", "duration_seconds": 120.000, "ended_at": "2026-11-23T10:02:05.000000Z"}'::jsonb)$$,
  'full call: call.started and call.ended, exactly once each, with their payloads'
);
select results_eq(
  $$select event, count(*)::integer from realtime.messages
    where topic = pg_temp.topic('org_a') and payload ->> 'table' = 'calls' and payload -> 'record' ->> 'id' = pg_temp.call_id('ring')::text
    group by event order by event$$,
  $$values ('INSERT', 1), ('UPDATE', 2)$$,
  'full call: broadcast on org:<A>:calls when created and at each status change (not for transcript-only events)'
);
select set_eq(
  $$select payload -> 'record' ->> 'status' from realtime.messages
    where topic = pg_temp.topic('org_a') and payload ->> 'table' = 'calls' and payload -> 'record' ->> 'id' = pg_temp.call_id('ring')::text$$,
  array['ringing', 'in_progress', 'ended'],
  'full call: the broadcasts carry ringing, in_progress, ended'
);
select results_eq(
  $$select event, count(*)::integer from realtime.messages
    where topic = pg_temp.topic('org_a') and payload ->> 'table' = 'call_transcript_segments'
      and payload -> 'record' ->> 'call_id' = pg_temp.call_id('ring')::text
    group by event order by event$$,
  $$values ('INSERT', 3), ('UPDATE', 1)$$,
  'full call: every new or corrected transcript segment is broadcast'
);
select is(
  (select count(*)::integer from realtime.messages where topic = pg_temp.topic('org_b')),
  0,
  'full call: nothing on org B''s channel'
);
select results_eq(
  $$select event_id, event_type, payload -> 'raw' ->> 'event_id' from public.call_events where call_id = pg_temp.call_id('ring') order by id$$,
  $$values ('full-1', 'call.status', 'full-1'), ('full-2', 'call.started', 'full-2'), ('full-3', 'call.transcript', 'full-3'),
           ('full-4', 'call.transcript', 'full-4'), ('full-5', 'call.ended', 'full-5')$$,
  'full call: every raw event is kept, with its payload'
);
select results_eq(
  $$select action, count(*)::integer from public.audit_log where table_name = 'calls' and record_id = pg_temp.call_id('ring')::text
    group by action order by action$$,
  $$values ('insert', 1), ('update', 2)$$,
  'full call: creation and the two status changes are audited, transcript events are not'
);

-- ---------------------------------------------------------------------------
-- Duplicates
-- ---------------------------------------------------------------------------

create temp table before_state as select pg_temp.state() as s;
grant select on before_state to public;
select tests.act_as('service_role');
select is(
  pg_temp.apply('dup', 'org_a', pg_temp.ev('full-5', 'call.ended', 'full', '2026-11-23T10:09:00Z',
    '{"status": "failed", "summary": "Something else entirely."}')),
  '{"duplicate": true}'::jsonb,
  'duplicate: a re-delivered event id answers duplicate = true ...'
);
select tests.act_as('postgres');
select is(pg_temp.state(), (select s from before_state), '... and changes nothing (no call, segment, raw event, domain event or broadcast)');
select is((select summary from public.calls where id = pg_temp.call_id('ring')), 'Rescheduled to Friday.', '... the call keeps its summary');
select tests.act_as('service_role');
select is(
  pg_temp.apply('dup_other_org', 'org_b', pg_temp.ev('full-5', 'call.ended', 'full', '2026-11-23T10:02:06Z', '{"status": "ended"}')) -> 'duplicate',
  'false'::jsonb,
  'duplicate: the same event id in another org is that org''s own event'
);
select isnt(pg_temp.call_id('dup_other_org'), pg_temp.call_id('ring'), 'duplicate: ... and makes org B''s own call, never touching A''s');

-- ---------------------------------------------------------------------------
-- A transcript after the end
-- ---------------------------------------------------------------------------

select lives_ok(
  $$select pg_temp.apply('late_t', 'org_a', pg_temp.ev('full-6', 'call.transcript', 'full', '2026-11-23T10:00:30Z',
      '{"transcript": [{"speaker": "user", "text": "Friday works.", "start_ms": 6000, "end_ms": 7000}]}'))$$,
  'late transcript: a segment arriving after the end ...'
);
select tests.act_as('postgres');
select results_eq(
  $$select c.status::text, (select max(seq) from public.call_transcript_segments s where s.call_id = c.id) from public.calls c where c.id = pg_temp.call_id('ring')$$,
  $$values ('ended', 3)$$,
  '... is appended to the transcript; the call stays ended'
);

-- ---------------------------------------------------------------------------
-- Out of order: the end first, then late ringing and answered events
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(
  pg_temp.apply('ooo_end', 'org_a', pg_temp.ev('ooo-3', 'call.ended', 'ooo', '2026-11-23T11:05:00Z',
    '{"status": "ended", "started_at": "2026-11-23T11:01:00Z", "ended_at": "2026-11-23T11:05:00Z", "ended_reason": "assistant-ended-call"}')) ->> 'status',
  'ended',
  'out of order: the end arrives first and creates the call, ended'
);
select is(
  pg_temp.apply('ooo_ring', 'org_a', pg_temp.ev('ooo-1', 'call.status', 'ooo', '2026-11-23T11:00:00Z', '{"status": "ringing"}')) - 'call_id',
  '{"duplicate": false, "status": "ended", "applied_status": false}'::jsonb,
  'out of order: a late ringing does not move it back'
);
select is(
  pg_temp.apply('ooo_start', 'org_a', pg_temp.ev('ooo-2', 'call.started', 'ooo', '2026-11-23T11:01:00Z',
    '{"summary": "Asked about prices.", "cost": {"amount": 0.05, "currency": "EUR"},
      "transcript": [{"speaker": "user", "text": "How much is it?", "start_ms": 0, "end_ms": 900}]}')) ->> 'status',
  'ended',
  'out of order: nor does a late in_progress ...'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, started_at, ended_at, duration_seconds, summary, cost, cost_currency::text,
      (select count(*)::integer from public.call_transcript_segments s where s.call_id = c.id)
    from public.calls c where id = pg_temp.call_id('ooo_end')$$,
  $$values ('ended', '2026-11-23 11:01:00Z'::timestamptz, '2026-11-23 11:05:00Z'::timestamptz, 240.000::numeric(10, 3),
           'Asked about prices.', 0.0500::numeric(12, 4), 'EUR', 1)$$,
  '... but its transcript, cost and summary are merged'
);
select results_eq(
  $$select type from public.events where payload ->> 'call_id' = pg_temp.call_id('ooo_end')::text order by type desc$$,
  $$values ('call.started'), ('call.ended')$$,
  'out of order: still exactly one call.started and one call.ended'
);

-- Answered, then the provider says "no answer": it was a conversation that ended.
select tests.act_as('service_role');
select pg_temp.apply('na_start', 'org_a', pg_temp.ev('na-1', 'call.started', 'na', '2026-11-23T12:00:00Z'));
select is(
  pg_temp.apply('na_end', 'org_a', pg_temp.ev('na-2', 'call.ended', 'na', '2026-11-23T12:01:00Z', '{"status": "no_answer", "ended_reason": "voicemail"}')) ->> 'status',
  'ended',
  'an answered call reported as no_answer ends as ended (its reason kept)'
);

-- Same rank, later: a second ringing moves the status time on; an earlier one does not.
select pg_temp.apply('rr1', 'org_a', pg_temp.ev('rr-1', 'call.status', 'rr', '2026-11-23T12:10:00Z', '{"status": "ringing"}'));
select is(
  pg_temp.apply('rr2', 'org_a', pg_temp.ev('rr-2', 'call.status', 'rr', '2026-11-23T12:09:00Z', '{"status": "ringing"}')) -> 'applied_status',
  'false'::jsonb,
  'same status reported with an earlier time: not applied'
);
select is(
  pg_temp.apply('rr3', 'org_a', pg_temp.ev('rr-3', 'call.status', 'rr', '2026-11-23T12:11:00Z', '{"status": "ringing"}')) -> 'applied_status',
  'true'::jsonb,
  'same status reported later: applied (the status time moves on)'
);
select tests.act_as('postgres');
select is((select status_occurred_at from public.calls where id = pg_temp.call_id('rr1')), '2026-11-23 12:11:00Z'::timestamptz,
  'the status time is the provider''s');

-- ---------------------------------------------------------------------------
-- Replace, then late live segments
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.apply('rep_t', 'org_a', pg_temp.ev('rep-1', 'call.transcript', 'rep', '2026-11-23T13:00:00Z',
  '{"transcript": [{"speaker": "user", "text": "helo", "start_ms": 0, "end_ms": 500},
                   {"speaker": "assistant", "text": "Hi there", "start_ms": 600, "end_ms": 1200}]}'));
select is(
  pg_temp.apply('rep_end', 'org_a', pg_temp.ev('rep-2', 'call.ended', 'rep', '2026-11-23T13:01:00Z',
    '{"status": "ended", "transcript_mode": "replace", "transcript": [
       {"speaker": "user", "text": "Hello.", "start_ms": 0, "end_ms": 500, "stt_ms": 100},
       {"speaker": "assistant", "text": "Hi there!", "start_ms": 600, "end_ms": 1200, "llm_ms": 300, "tts_ms": 50},
       {"speaker": "user", "text": "Bye.", "start_ms": 1300, "end_ms": 1500, "stt_ms": 200}]}')) ->> 'status',
  'ended',
  'replace: the end-of-call report brings the final transcript'
);
select pg_temp.apply('rep_late', 'org_a', pg_temp.ev('rep-3', 'call.transcript', 'rep', '2026-11-23T13:00:30Z',
  '{"transcript_mode": "append", "transcript": [{"speaker": "user", "text": "late live copy", "start_ms": 1300, "end_ms": 1500},
                                                 {"speaker": "user", "text": "another late one", "start_ms": 9000, "end_ms": 9500}]}'));
select tests.act_as('postgres');
select results_eq(
  $$select seq, speaker, text from public.call_transcript_segments where call_id = pg_temp.call_id('rep_t') order by seq$$,
  $$values (0, 'user', 'Hello.'), (1, 'assistant', 'Hi there!'), (2, 'user', 'Bye.')$$,
  'replace: the final transcript replaced the live one, and late append segments are ignored'
);
select results_eq(
  $$select transcript_final, stt_latency_ms, llm_latency_ms, tts_latency_ms from public.calls where id = pg_temp.call_id('rep_t')$$,
  $$values (true, 150, 300, 50)$$,
  'replace: the transcript is final; latencies the provider did not give are averaged from the turns'
);
select is(
  (select count(*)::integer from public.call_events where call_id = pg_temp.call_id('rep_t')),
  3,
  'replace: the ignored late event is still kept as a raw event'
);

-- ---------------------------------------------------------------------------
-- Finding the call: metadata.call_id for calls we placed; never another org's
-- ---------------------------------------------------------------------------

insert into public.calls (org_id, direction, to_number) values (tests.fx('org_a'), 'outbound', '+14155550177');
select tests.remember('placed', id) from public.calls where to_number = '+14155550177';
select tests.act_as('service_role');
select is(
  pg_temp.apply('placed_ring', 'org_a', pg_temp.ev('out-1', 'call.status', 'out-call', '2026-11-23T14:00:00Z',
    jsonb_build_object('status', 'ringing', 'direction', 'outbound', 'metadata', jsonb_build_object('call_id', tests.fx('placed'))))),
  jsonb_build_object('duplicate', false, 'call_id', tests.fx('placed'), 'status', 'ringing', 'applied_status', true),
  'metadata.call_id: the event finds the call we placed'
);
select pg_temp.apply('placed_start', 'org_a', pg_temp.ev('out-2', 'call.started', 'out-call', '2026-11-23T14:00:10Z'));
select is(pg_temp.call_id('placed_start'), tests.fx('placed'), 'metadata.call_id: a later event without it finds the call by the provider call id it learnt');
select tests.act_as('postgres');
select results_eq(
  $$select provider, provider_call_id, status::text, (select count(*)::integer from public.calls where to_number = '+14155550177')
    from public.calls where id = tests.fx('placed')$$,
  $$values ('vapi', 'out-call', 'in_progress', 1)$$,
  'metadata.call_id: one call, now with the provider''s id'
);
select tests.act_as('service_role');
select throws_ok(
  format($$select private.apply_call_event(tests.fx('org_a'), %L, '{}')$$,
    pg_temp.ev('out-3', 'call.status', 'someone-else', '2026-11-23T14:00:20Z',
      jsonb_build_object('status', 'ringing', 'metadata', jsonb_build_object('call_id', tests.fx('placed'))))),
  '22023', 'metadata.call_id names a call with another provider call id',
  'metadata.call_id: naming our call with another provider call id is refused'
);
-- Org B names org A's call: never a match.
select pg_temp.apply('b_names_a', 'org_b', pg_temp.ev('b-1', 'call.status', 'b-call', '2026-11-23T14:01:00Z',
  jsonb_build_object('status', 'ringing', 'metadata', jsonb_build_object('call_id', tests.fx('placed')))));
select isnt(pg_temp.call_id('b_names_a'), tests.fx('placed'), 'another org: an event for B naming A''s call id makes B''s own call');
select tests.act_as('postgres');
select is((select org_id from public.calls where id = pg_temp.call_id('b_names_a')), tests.fx('org_b'), '... in org B');
select tests.act_as('service_role');
select throws_ok(
  format($$select private.apply_call_event(tests.fx('org_b'), %L, '{}')$$,
    pg_temp.ev('b-2', 'call.status', null, '2026-11-23T14:02:00Z',
      jsonb_build_object('status', 'ended', 'metadata', jsonb_build_object('call_id', tests.fx('placed'))))),
  '22023', 'metadata.call_id is not a call of this organization, and the event has no provider_call_id',
  'another org: with only A''s call id, B''s event is refused'
);
select pg_temp.apply('b_same_pcid', 'org_b', pg_temp.ev('b-3', 'call.status', 'full', '2026-11-23T14:03:00Z', '{"status": "ringing"}'));
select tests.act_as('postgres');
select results_eq(
  $$select c.id, c.org_id from public.calls c where c.id = pg_temp.call_id('b_same_pcid')$$,
  $$values (pg_temp.call_id('dup_other_org'), tests.fx('org_b'))$$,
  'another org: A''s provider call id used in B finds B''s own call of that id (made by B''s earlier event), not A''s'
);
select results_eq(
  $$select status::text, provider_call_id, summary from public.calls where id in (tests.fx('placed'), pg_temp.call_id('ring')) order by provider_call_id$$,
  $$values ('ended', 'full', 'Rescheduled to Friday.'), ('in_progress', 'out-call', null)$$,
  'another org: A''s calls are untouched'
);
select tests.act_as('service_role');
select pg_temp.apply('foreign_bot', 'org_a', pg_temp.ev('fb-1', 'call.started', 'fb', '2026-11-23T14:05:00Z',
  jsonb_build_object('metadata', jsonb_build_object('bot_id', tests.fx('bot_b')))));
select tests.act_as('postgres');
select results_eq(
  $$select bot_id, direction::text, status::text from public.calls where id = pg_temp.call_id('foreign_bot')$$,
  $$values (null::uuid, 'inbound', 'in_progress')$$,
  'another org: a bot of another org is not attached; an event without direction makes an inbound call'
);

-- An outbound call placed elsewhere, callee as a SIP address: kept, without a number.
select tests.act_as('service_role');
select pg_temp.apply('sip', 'org_a', pg_temp.ev('sip-1', 'call.status', 'sip', '2026-11-23T14:05:30Z',
  '{"status": "ringing", "direction": "outbound", "from": "+14155550150", "to": "sip:frontdesk@example.com"}'));
select tests.act_as('postgres');
select results_eq(
  $$select direction::text, from_number, to_number from public.calls where id = pg_temp.call_id('sip')$$,
  $$values ('outbound', '+14155550150', null::text)$$,
  'an outbound call we did not place is kept though its callee is not a phone number'
);

-- A web call: call.started admits the direction.
select tests.act_as('service_role');
select pg_temp.apply('web', 'org_a', pg_temp.ev('web-1', 'call.started', 'web', '2026-11-23T14:06:00Z', '{"direction": "web"}'));
select tests.act_as('postgres');
select is(
  (select payload ->> 'direction' from public.events where type = 'call.started' and payload ->> 'call_id' = pg_temp.call_id('web')::text),
  'web',
  'web calls: call.started carries direction web'
);

-- ---------------------------------------------------------------------------
-- A call we closed for silence, then the provider's late end
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.apply('quiet', 'org_a', pg_temp.ev('quiet-1', 'call.started', 'quiet', '2026-11-23T15:00:00Z'));
select tests.act_as('postgres');
update public.calls set last_event_at = now() - interval '30 minutes' where id = pg_temp.call_id('quiet');
select tests.act_as('service_role');
select ok(private.close_stale_calls() >= 1, 'late end: the silent call is closed by the timeout');
select pg_temp.apply('quiet_end', 'org_a', pg_temp.ev('quiet-2', 'call.ended', 'quiet', '2026-11-23T15:04:00Z',
  '{"status": "ended", "ended_reason": "customer-ended-call", "ended_at": "2026-11-23T15:04:00Z"}'));
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, ended_at, duration_seconds from public.calls where id = pg_temp.call_id('quiet')$$,
  $$values ('ended', 'customer-ended-call', '2026-11-23 15:04:00Z'::timestamptz, 240.000::numeric(10, 3))$$,
  'late end: the provider''s own reason and end replace the timeout''s'
);
select is(
  (select count(*)::integer from public.events where type = 'call.ended' and payload ->> 'call_id' = pg_temp.call_id('quiet')::text),
  1,
  'late end: call.ended was emitted once (by the timeout)'
);

-- ---------------------------------------------------------------------------
-- Refused events: SQLSTATE 22023 with the path; nothing is stored
-- ---------------------------------------------------------------------------

delete from before_state;
insert into before_state select pg_temp.state();
select tests.act_as('service_role');

create function pg_temp.refused(event jsonb)
returns text
language sql
as $$ select format($f$select private.apply_call_event(tests.fx('org_a'), %L, '{}')$f$, event) $$;
grant execute on function pg_temp.refused(jsonb) to public;

select throws_ok(pg_temp.refused('[]'), '22023', 'invalid call event: the event must be a JSON object', 'refused: not an object');
select throws_ok(pg_temp.refused(pg_temp.ev(null, 'call.status', 'x', '2026-11-23T10:00:00Z', '{"status": "ringing"}')),
  '22023', 'invalid call event: $.event_id must be a string of 1 to 255 characters', 'refused: no event id');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-1', 'call.exploded', 'x', '2026-11-23T10:00:00Z')),
  '22023', 'invalid call event: $.type must be call.started, call.status, call.transcript or call.ended', 'refused: an unknown type');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-2', 'call.status', 'x', 'yesterday', '{"status": "ringing"}')),
  '22023', 'invalid call event: $.occurred_at must be an RFC 3339 date-time', 'refused: a time that is not RFC 3339');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-3', 'call.status', 'x', '2026-11-23T10:00:00Z', '{"status": "done"}')),
  '22023', 'invalid call event: $.status must be queued, ringing, in_progress, ended, failed, canceled, no_answer or busy', 'refused: an unknown status');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-4', 'call.status', 'x', '2026-11-23T10:00:00Z')),
  '22023', 'invalid call event: $.status is required for call.status', 'refused: call.status without a status');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-5', 'call.ended', 'x', '2026-11-23T10:00:00Z', '{"status": "ringing"}')),
  '22023', 'invalid call event: $.status must be a terminal status for call.ended', 'refused: call.ended with a live status');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-6', 'call.status', null, '2026-11-23T10:00:00Z', '{"status": "ringing"}')),
  '22023', 'invalid call event: $.provider_call_id is required (or $.metadata.call_id for a call we placed)', 'refused: no way to find the call');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-7', 'call.transcript', 'x', '2026-11-23T10:00:00Z',
    '{"transcript": [{"speaker": "user", "text": "ok", "start_ms": 0, "end_ms": 1}, {"speaker": "robot", "text": "beep", "start_ms": 2, "end_ms": 3}]}')),
  '22023', 'invalid call event: $.transcript[1].speaker must be user, assistant or system', 'refused: a bad segment, by its index');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-8', 'call.transcript', 'x', '2026-11-23T10:00:00Z',
    '{"transcript": [{"speaker": "user", "text": "ok", "start_ms": 500, "end_ms": 100}]}')),
  '22023', 'invalid call event: $.transcript[0].end_ms must not be before start_ms', 'refused: a segment ending before it starts');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-9', 'call.ended', 'x', '2026-11-23T10:00:00Z', '{"status": "ended", "cost": {"amount": "-1", "currency": "USD"}}')),
  '22023', 'invalid call event: $.cost.amount must be a non-negative amount below 100000000', 'refused: a negative cost');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-10', 'call.ended', 'x', '2026-11-23T10:00:00Z', '{"status": "ended", "cost": {"amount": 1, "currency": "usd"}}')),
  '22023', 'invalid call event: $.cost.currency must be an ISO 4217 code in capitals, e.g. USD', 'refused: a currency in lower case');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-11', 'call.status', 'x', '2026-11-23T10:00:00Z', '{"status": "ringing", "metadata": {"call_id": "abc"}}')),
  '22023', 'invalid call event: $.metadata.call_id must be a uuid', 'refused: a metadata call id that is not a uuid');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-12', 'call.ended', 'x', '2026-11-23T10:00:00Z', '{"status": "ended", "sentiment_score": 3}')),
  '22023', 'invalid call event: $.sentiment_score must be a number from -1 to 1', 'refused: a sentiment score out of range');
select throws_ok(pg_temp.refused(pg_temp.ev('bad-13', 'call.ended', 'x', '2026-11-23T10:00:00Z', '{"status": "ended", "recording_url": "ftp://x/y"}')),
  '22023', 'invalid call event: $.recording_url must be an http(s) URL of at most 2048 characters', 'refused: a recording URL that is not http(s)');
select throws_ok(
  $$select private.apply_call_event(gen_random_uuid(), pg_temp.ev('bad-14', 'call.status', 'x', '2026-11-23T10:00:00Z', '{"status": "ringing"}'), '{}')$$,
  'P0002', 'organization not found', 'refused: an unknown org'
);
select tests.act_as('postgres');
select is(pg_temp.state(), (select s from before_state), 'refused: nothing was stored, raw events included');

select tests.act_as('owner_a');
select throws_ok(
  $$select private.apply_call_event(tests.fx('org_a'), pg_temp.ev('auth-1', 'call.status', 'x', '2026-11-23T10:00:00Z', '{"status": "ringing"}'), '{}')$$,
  '42501', null, 'apply_call_event is for the service role, not signed-in users'
);

-- ---------------------------------------------------------------------------
-- Raw events are append-only
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select throws_ok(
  $$update public.call_events set payload = '{"forged": true}' where event_id = 'full-1'$$,
  '42501', 'call events are append-only: update is not allowed',
  'append-only: not even the table owner updates a raw event'
);
select throws_ok(
  $$delete from public.call_events where event_id = 'full-1'$$,
  '42501', 'call events are append-only: delete is not allowed',
  'append-only: nor deletes one'
);
-- (The deferred call_id checks must run first, or truncate refuses for them.)
set constraints all immediate;
select throws_ok(
  $$truncate public.call_events$$,
  '42501', 'call events are append-only: truncate is not allowed',
  'append-only: nor truncates the table'
);
select tests.act_as('service_role');
select throws_ok(
  $$update public.call_events set payload = '{}' where event_id = 'full-1'$$,
  '42501', null,
  'append-only: the service role has no update privilege'
);
select throws_ok(
  $$insert into public.call_events (org_id, provider, event_id, event_type, occurred_at) values (tests.fx('org_a'), 'vapi', 'forged', 'call.status', now())$$,
  '42501', null,
  'append-only: nor inserts directly (apply_call_event is the way in)'
);
select tests.act_as('postgres');
select lives_ok(
  $$delete from public.calls where id = pg_temp.call_id('web')$$,
  'append-only: a call may still be deleted ...'
);
select results_eq(
  $$select call_id, event_id from public.call_events where event_id = 'web-1'$$,
  $$values (null::uuid, 'web-1')$$,
  '... and its raw events stay, detached'
);

select * from finish();
rollback;
