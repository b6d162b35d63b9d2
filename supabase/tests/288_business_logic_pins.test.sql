-- Business rules that held but that no test pinned, each found by a surviving mutation: next_call_slot's
-- 14-day horizon; match_document_chunks' reciprocal rank fusion (the constant 60 in both halves, and each half
-- searching 4 x match_count candidates); call_stats_daily averaging the talk time of ended calls only; the
-- ±10% jitter of webhook retries; record_dial_result capping Retry-After at a day; metered_usage's periods
-- half-open, so usage at a period's end counts toward the next one.
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@288-business-logic-pins.test'));
select tests.remember('org_hours', tests.create_org('business-logic-pins-288-hours', tests.fx('owner')));
select tests.remember('org_kb', tests.create_org('business-logic-pins-288-kb', tests.fx('owner')));
select tests.remember('org_calls', tests.create_org('business-logic-pins-288-calls', tests.fx('owner')));
select tests.remember('org_hooks', tests.create_org('business-logic-pins-288-hooks', tests.fx('owner')));
select tests.remember('org_usage', tests.create_org('business-logic-pins-288-usage', tests.fx('owner')));
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- 1. next_call_slot looks 14 days ahead, no further
-- ---------------------------------------------------------------------------

-- Open Mon-Fri 16:00-17:00 New York time, calling a London number (08:00-21:00 London time). That hour is
-- 21:00-22:00 in London while both keep winter time, so it is closed to this callee until New York moves its
-- clocks on Sunday 8 March 2026; from Monday 9 March until London follows on the 29th it is 20:00-21:00 there.
-- Weekly hours alone leave no gap over 7 days, so a DST gap between the two zones makes the long wait.
update public.organizations set time_zone = 'America/New_York' where id = tests.fx('org_hours');
insert into public.business_hours (org_id, weekday, opens, closes)
select tests.fx('org_hours'), d, '16:00', '17:00' from generate_series(1, 5) d;

select tests.act_as('service_role');
select is(
  private.next_call_slot(tests.fx('org_hours'), null, 'America/New_York', '2026-02-26 12:00 America/New_York'),
  '2026-02-26 16:00 America/New_York'::timestamptz,
  'next_call_slot: a callee in New York is called at the next weekday opening'
);
select is(
  private.next_call_slot(tests.fx('org_hours'), null, 'Europe/London', '2026-02-26 12:00 America/New_York'),
  '2026-03-09 20:00Z'::timestamptz,
  'next_call_slot: with no opening for the London callee in the next 10 days, the first one after them (11 days ahead)'
);
select is(
  private.next_call_slot(tests.fx('org_hours'), null, 'Europe/London', '2026-02-22 20:00Z'),
  null::timestamptz,
  'next_call_slot: with none for 14.9 days, there is no slot (the horizon is 14 days)'
);

-- ---------------------------------------------------------------------------
-- 2-3. match_document_chunks fuses the halves' ranks as 1 / (60 + rank), each half searching 4 x match_count
-- ---------------------------------------------------------------------------

-- A unit vector at angle theta in the plane of dimensions first and first + 1.
create function pg_temp.vec(theta double precision, first integer)
returns extensions.vector
language sql
immutable
as $$
  select (array_fill(0::real, array[first - 1]) || array[cos(theta)::real, sin(theta)::real]
    || array_fill(0::real, array[1536 - first - 1]))::extensions.vector;
$$;

insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values (gen_random_uuid(), tests.fx('org_kb'), 'pins.txt', 'text/plain', 10, tests.fx('org_kb') || '/pins.txt', 'ready');
select tests.remember('doc', id) from public.documents where org_id = tests.fx('org_kb');

-- Around dimension 1: X, W, Z nearest in that order, then 10 fillers, then Y far off (past the 12 candidates
-- of match_count 3). The word "zephyrine": Y three times (text rank 1), Z once (text rank 2).
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values
  (tests.fx('org_kb'), tests.fx('doc'), 1, 1, 1, 'X: closest by meaning', 5, pg_temp.vec(0.01, 1)),
  (tests.fx('org_kb'), tests.fx('doc'), 2, 1, 1, 'W: second by meaning', 5, pg_temp.vec(0.02, 1)),
  (tests.fx('org_kb'), tests.fx('doc'), 3, 1, 1, 'Z: third by meaning, zephyrine once', 5, pg_temp.vec(0.03, 1));
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
select tests.fx('org_kb'), tests.fx('doc'), 3 + n, 1, 1, 'filler ' || n, 2, pg_temp.vec(0.03 + n * 0.01, 1)
from generate_series(1, 10) n;
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_kb'), tests.fx('doc'), 14, 1, 1, 'Y: zephyrine zephyrine zephyrine', 5, pg_temp.vec(1.5, 1));

-- Around dimension 3: A, B, C nearest; D and E opposite. The word "quillwort": D three times, E twice, C once.
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values
  (tests.fx('org_kb'), tests.fx('doc'), 21, 1, 1, 'A: first by meaning', 5, pg_temp.vec(0.01, 3)),
  (tests.fx('org_kb'), tests.fx('doc'), 22, 1, 1, 'B: second by meaning', 5, pg_temp.vec(0.02, 3)),
  (tests.fx('org_kb'), tests.fx('doc'), 23, 1, 1, 'C: third by meaning, quillwort once', 5, pg_temp.vec(0.03, 3)),
  (tests.fx('org_kb'), tests.fx('doc'), 24, 1, 1, 'D: quillwort quillwort quillwort', 5, pg_temp.vec(pi(), 3)),
  (tests.fx('org_kb'), tests.fx('doc'), 25, 1, 1, 'E: quillwort quillwort', 5, pg_temp.vec(pi() - 0.01, 3));

select tests.act_as('owner');
select results_eq(
  $$select left(content, 1), score, vector_rank, text_rank
    from public.match_document_chunks(tests.fx('org_kb'), pg_temp.vec(0, 1), 'zephyrine', 3)$$,
  $$values ('Z', (1.0 / 63 + 1.0 / 62)::double precision, 3, 2),
           ('X', (1.0 / 61)::double precision, 1, null::integer),
           ('Y', (1.0 / 61)::double precision, null::integer, 1)$$,
  'match_document_chunks: vector rank 3 and text rank 2 score 1/63 + 1/62 and come first; rank 1 of one half alone scores 1/61'
);
select results_eq(
  $$select left(content, 1), score, vector_rank, text_rank
    from public.match_document_chunks(tests.fx('org_kb'), pg_temp.vec(0, 3), 'quillwort', 2)$$,
  $$values ('C', (2.0 / 63)::double precision, 3, 3), ('A', (1.0 / 61)::double precision, 1, null::integer)$$,
  'match_document_chunks: with match_count 2, a chunk 3rd in both halves (2/63) beats the 1st of one half (1/61)'
);

-- ---------------------------------------------------------------------------
-- 4. call_stats_daily averages the talk time of ended calls only
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
update public.organizations set time_zone = 'UTC' where id = tests.fx('org_calls');
insert into public.calls (org_id, direction, status, to_number, created_at, started_at, ended_at, duration_seconds, ended_reason)
values
  (tests.fx('org_calls'), 'outbound', 'ended', '+14155552881', '2026-05-05 09:59Z', '2026-05-05 10:00Z', '2026-05-05 10:02Z', 120, null),
  (tests.fx('org_calls'), 'outbound', 'no_answer', '+14155552882', '2026-05-05 10:59Z', null, '2026-05-05 11:00Z', 10,
   'customer-did-not-answer');

select tests.act_as('owner');
select results_eq(
  $$select total, ended, no_answer, avg_duration_seconds
    from public.call_stats_daily(tests.fx('org_calls'), '2026-05-05', '2026-05-05')$$,
  $$values (2, 1, 1, 120.0)$$,
  'call_stats_daily: the ring time of a call not answered is not talk time: the average is the ended call''s 120.0 s'
);
select is(
  (public.call_stats_summary(tests.fx('org_calls'), '2026-05-05', '2026-05-05') ->> 'avg_duration_seconds')::numeric,
  (select avg_duration_seconds from public.call_stats_daily(tests.fx('org_calls'), '2026-05-05', '2026-05-05')),
  'call_stats_daily: ... the same as call_stats_summary''s'
);

-- ---------------------------------------------------------------------------
-- 5. Webhook retries are spread by ±10%
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into public.webhook_endpoints (org_id, url) values (tests.fx('org_hooks'), 'https://pins-288.example.com/hook');
select tests.remember('endpoint', id) from public.webhook_endpoints where org_id = tests.fx('org_hooks');
-- Straight into events (as postgres), then the fan-out's deliveries replaced by 30 in their third attempt.
create temp table hook_events as
with e as (
  insert into public.events (org_id, type, payload)
  select tests.fx('org_hooks'), 'member.joined', jsonb_build_object('user_id', gen_random_uuid(), 'role', 'member')
  from generate_series(1, 30)
  returning id
)
select id from e;
delete from public.webhook_deliveries where org_id = tests.fx('org_hooks');
insert into public.webhook_deliveries (org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at, locked_until)
select tests.fx('org_hooks'), tests.fx('endpoint'), e.id, 'sending', 3, '2001-03-01 00:00Z', '2001-03-01 00:01Z'
from hook_events e;

select tests.act_as('service_role');
select is(
  (select array_agg(distinct private.record_webhook_attempt(d.id, 3, '2001-03-01 00:00:01Z', 5, 500, null, null, null,
     '2001-03-01 00:00:02Z'))
   from public.webhook_deliveries d where d.org_id = tests.fx('org_hooks')),
  array['pending'],
  'record_webhook_attempt: 30 deliveries failing their third attempt at the same moment are all retried'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.webhook_deliveries d
   where d.org_id = tests.fx('org_hooks')
     and d.next_attempt_at - timestamptz '2001-03-01 00:00:02Z'
         between (0.9 * (private.webhook_retry_delays())[4]) * interval '1 second'
             and (1.1 * (private.webhook_retry_delays())[4]) * interval '1 second'),
  30,
  'record_webhook_attempt: each retry is due within 0.9-1.1 x the 4th delay of the schedule'
);
select cmp_ok(
  (select count(distinct d.next_attempt_at)::integer from public.webhook_deliveries d where d.org_id = tests.fx('org_hooks')),
  '>', 1,
  'record_webhook_attempt: ... at different times, not all at once'
);

-- ---------------------------------------------------------------------------
-- 6. record_dial_result waits at most a day for Retry-After
-- ---------------------------------------------------------------------------

-- A fixed-offset zone where the local time is 12:xx now, so a day from now is inside calling hours.
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select extract(hour from now() at time zone 'UTC')::integer - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

insert into public.calls (org_id, direction, status, to_number, callee_time_zone, provider, scheduled_at, next_dial_at,
                          dial_attempts, dial_started_at)
values (tests.fx('org_calls'), 'outbound', 'queued', '+14155552883', pg_temp.noon_zone(), 'vapi', now(), now(), 1, now());
select tests.remember('dialled', id) from public.calls where to_number = '+14155552883' and org_id = tests.fx('org_calls');

select tests.act_as('service_role');
select is(
  private.record_dial_result(tests.fx('dialled'), 1, null, 'Vapi POST /call failed with 503', true, 10000000) ->> 'outcome',
  'retry',
  'record_dial_result: a retryable failure with a Retry-After of 10,000,000 s is retried'
);
select tests.act_as('postgres');
select is(
  (select next_dial_at from public.calls where id = tests.fx('dialled')),
  now() + interval '1 day',
  'record_dial_result: ... a day from now, not 115 days (Retry-After capped at 86,400 s)'
);

-- ---------------------------------------------------------------------------
-- 7. metered_usage: usage at a period's end belongs to the next period
-- ---------------------------------------------------------------------------

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
values
  (tests.fx('org_usage'), 'chat', 'gpt-4o-mini', 700, 77, '2026-06-01 00:00Z'),
  (tests.fx('org_usage'), 'embedding', 'text-embedding-3-small', 500, 0, '2026-06-01 00:00Z'),
  (tests.fx('org_usage'), 'chat', 'gpt-4o-mini', 100, 11, '2026-05-31 23:59:59.999999Z');
insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('org_usage'), 'inbound', 'ended', '2026-05-31 23:58Z', '2026-06-01 00:00Z', 120);

select results_eq(
  $$select metric, used from private.metered_usage(tests.fx('org_usage'), '2026-05-01 00:00Z', '2026-06-01 00:00Z')
    where metric <> 'documents' order by metric$$,
  $$values ('call_minutes', 0::bigint), ('chat_tokens', 111::bigint), ('embedding_tokens', 0::bigint)$$,
  'metered_usage: usage at the period''s end is not the period''s (a microsecond before it is)'
);
select results_eq(
  $$select metric, used from private.metered_usage(tests.fx('org_usage'), '2026-06-01 00:00Z', '2026-07-01 00:00Z')
    where metric <> 'documents' order by metric$$,
  $$values ('call_minutes', 2::bigint), ('chat_tokens', 777::bigint), ('embedding_tokens', 500::bigint)$$,
  'metered_usage: ... it is the next period''s'
);

select * from finish();
rollback;
