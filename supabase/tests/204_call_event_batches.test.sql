-- Call events in batches (20261123001900_call_event_batches.sql):
-- private.apply_call_events applies each item as apply_call_event would, in
-- the given order (a duplicate within the batch answered as one, a later
-- status after an earlier one, two orgs side by side), answers in that order,
-- and one refused item aborts the whole statement; service role only. The
-- end-of-call transcript (replace) keeps the segments it repeats without
-- writing or broadcasting them again.
begin;
create extension if not exists pgtap with schema extensions;

select plan(12);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@call-batches.test')),
  ('owner_b', tests.create_user('owner-b@call-batches.test'));
select tests.remember('org_a', tests.create_org('call-batches-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('call-batches-b', tests.fx('owner_b')));

create function pg_temp.item(org text, event_id text, provider_call_id text, occurred_at text, status text)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('org_id', tests.fx(org), 'payload', jsonb_build_object('raw', event_id), 'event',
    jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.status', 'provider_call_id', provider_call_id,
      'occurred_at', occurred_at, 'status', status))
$$;
grant execute on function pg_temp.item(text, text, text, text, text) to public;

create temp table answers (body jsonb);
grant all on answers to public;

select tests.act_as('service_role');
insert into answers select private.apply_call_events(jsonb_build_array(
  pg_temp.item('org_a', 'e1', 'batch-1', '2026-11-23T10:00:00Z', 'ringing'),
  pg_temp.item('org_a', 'e2', 'batch-1', '2026-11-23T10:00:05Z', 'in_progress'),
  pg_temp.item('org_a', 'e1', 'batch-1', '2026-11-23T10:00:00Z', 'ringing'),
  pg_temp.item('org_b', 'e1', 'batch-1', '2026-11-23T10:00:01Z', 'ringing')));

select is(jsonb_array_length((select body from answers)), 4, 'one answer per item');
select is((select body -> 0 ->> 'status' from answers), 'ringing', 'the first item created the call, ringing');
select is((select body -> 1 ->> 'status' from answers), 'in_progress', '... the second moved it on, in order');
select is((select body -> 2 -> 'duplicate' from answers), 'true'::jsonb, '... the re-delivery in the same batch is a duplicate');
select isnt((select body -> 3 ->> 'call_id' from answers), (select body -> 0 ->> 'call_id' from answers),
  'the same provider call id in another org is another call');
select tests.act_as('postgres');
select results_eq(
  $$select o.slug, c.status::text from public.calls c join public.organizations o on o.id = c.org_id
    where c.provider_call_id = 'batch-1' order by o.slug$$,
  $$values ('call-batches-a', 'in_progress'), ('call-batches-b', 'ringing')$$,
  'each org holds its own call in its own state'
);

select tests.act_as('service_role');
select throws_ok(
  format($$select private.apply_call_events(%L)$$, jsonb_build_array(
    pg_temp.item('org_a', 'e3', 'batch-2', '2026-11-23T11:00:00Z', 'ringing'),
    pg_temp.item('org_a', 'e4', 'batch-3', '2026-11-23T11:00:00Z', 'no-such-status'))),
  '22023', null, 'an invalid item aborts the whole batch'
);
select tests.act_as('postgres');
select is((select count(*)::integer from public.calls where provider_call_id = 'batch-2'), 0, '... and nothing of its other items stays');

-- Three live segments, then a final transcript repeating the first, correcting the second, without the third.
create function pg_temp.transcript(event_id text, mode text, segments jsonb)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('org_id', tests.fx('org_a'), 'payload', '{}'::jsonb, 'event',
    jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.transcript', 'provider_call_id', 'batch-5',
      'occurred_at', '2026-11-23T13:00:00Z', 'transcript_mode', mode, 'transcript', segments))
$$;
grant execute on function pg_temp.transcript(text, text, jsonb) to public;
select tests.act_as('service_role');
select private.apply_call_events(jsonb_build_array(
  pg_temp.item('org_a', 't0', 'batch-5', '2026-11-23T12:59:00Z', 'in_progress'),
  pg_temp.transcript('t1', 'append', '[{"speaker": "assistant", "text": "Hello.", "start_ms": 0, "end_ms": 900}]'),
  pg_temp.transcript('t2', 'append', '[{"speaker": "user", "text": "I need a dentist", "start_ms": 1000, "end_ms": 2000}]'),
  pg_temp.transcript('t3', 'append', '[{"speaker": "user", "text": "uh", "start_ms": 2100, "end_ms": 2200}]'),
  pg_temp.transcript('t4', 'replace', '[{"speaker": "assistant", "text": "Hello.", "start_ms": 0, "end_ms": 900},
    {"speaker": "user", "text": "I need a dentist.", "start_ms": 1000, "end_ms": 2000}]')));
select tests.act_as('postgres');
select results_eq(
  $$select s.seq, s.text from public.call_transcript_segments s join public.calls c on c.id = s.call_id
    where c.provider_call_id = 'batch-5' order by s.seq$$,
  $$values (0, 'Hello.'), (1, 'I need a dentist.')$$,
  'replace: the final transcript is the call''s transcript'
);
select results_eq(
  $$select m.event, count(*)::integer from realtime.messages m
    where m.payload ->> 'table' = 'call_transcript_segments'
      and m.payload -> 'record' ->> 'call_id' = (select c.id::text from public.calls c where c.provider_call_id = 'batch-5')
    group by m.event order by m.event$$,
  $$values ('INSERT', 3), ('UPDATE', 1)$$,
  'replace: only the corrected segment is broadcast again (three live inserts, one update)'
);
select is((select transcript_final from public.calls where provider_call_id = 'batch-5'), true, 'replace: the transcript is final');

select tests.act_as('authenticated', tests.fx('owner_a'));
select throws_ok(
  format($$select private.apply_call_events(%L)$$, jsonb_build_array(pg_temp.item('org_a', 'e5', 'batch-4', '2026-11-23T12:00:00Z', 'ringing'))),
  '42501', null, 'a signed-in user cannot call it'
);

select * from finish();
rollback;
