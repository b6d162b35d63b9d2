-- Distinct conversations and end users over a range, from the day rows'
-- gaps (20261123002900_analytics_compact_days.sql): hand-computed counts for
-- ranges that cut through conversations and returning users, and writes to
-- an earlier day that move a later day's gap, read through a range that
-- refreshes only some of the stale days.
--
-- Org in UTC, local days 2026-11-01 (d1) .. 2026-11-06 (d6):
--   conversation A (end user u1): user messages on d1, d3, d6 (closed since:
--     one live conversation per end user and bot)
--   conversation B (end user u2): user messages on d3, d4
--   conversation C (end user u1): a user message on d6
--   conversation D (end user u3): an assistant message only, on d2
begin;
create extension if not exists pgtap with schema extensions;

select plan(19);

insert into tests.fixtures (name, id) values ('owner_g', tests.create_user('owner-g@range-distinct.test'));
select tests.remember('org_g', tests.create_org('range-distinct-org', tests.fx('owner_g')));
update public.organizations set time_zone = 'UTC' where id = tests.fx('org_g');
insert into public.bots (org_id, name, slug) values (tests.fx('org_g'), 'Bot', 'bot');
select tests.remember('bot_g', id) from public.bots where org_id = tests.fx('org_g');

with c as (
  insert into public.conversations (org_id, bot_id, channel, external_user_id, status, closed_at, created_at)
  values (tests.fx('org_g'), tests.fx('bot_g'), 'api', 'u1', 'closed', '2026-11-06 09:30Z', '2026-11-01 08:00Z'),
         (tests.fx('org_g'), tests.fx('bot_g'), 'api', 'u2', 'open', null, '2026-11-03 08:00Z'),
         (tests.fx('org_g'), tests.fx('bot_g'), 'api', 'u1', 'open', null, '2026-11-06 08:00Z'),
         (tests.fx('org_g'), tests.fx('bot_g'), 'api', 'u3', 'open', null, '2026-11-02 08:00Z')
  returning id, created_at
)
select tests.remember('conv_' || case extract(day from c.created_at) when 1 then 'a' when 3 then 'b' when 6 then 'c' else 'd' end, c.id) from c;

insert into public.messages (org_id, conversation_id, role, content, created_at) values
  (tests.fx('org_g'), tests.fx('conv_a'), 'user', 'a1', '2026-11-01 09:00Z'),
  (tests.fx('org_g'), tests.fx('conv_a'), 'user', 'a3', '2026-11-03 09:00Z'),
  (tests.fx('org_g'), tests.fx('conv_a'), 'user', 'a6', '2026-11-06 09:00Z'),
  (tests.fx('org_g'), tests.fx('conv_b'), 'user', 'b3', '2026-11-03 10:00Z'),
  (tests.fx('org_g'), tests.fx('conv_b'), 'user', 'b4', '2026-11-04 10:00Z'),
  (tests.fx('org_g'), tests.fx('conv_c'), 'user', 'c6', '2026-11-06 10:00Z'),
  (tests.fx('org_g'), tests.fx('conv_d'), 'assistant', 'd2', '2026-11-02 10:00Z');

create function pg_temp.engagement(from_date date, to_date date)
returns text
language sql
as $$
  select (s -> 'engagement' ->> 'active_conversations') || ' conversations, ' || (s -> 'engagement' ->> 'end_users') || ' end users, '
    || (s -> 'engagement' ->> 'returning_users') || ' returning'
  from (select public.analytics_dashboard_summary(tests.fx('org_g'), from_date, to_date) as s) x;
$$;
create function pg_temp.raw_engagement(from_date date, to_date date)
returns text
language sql
as $$
  select (s -> 'engagement' ->> 'active_conversations') || ' conversations, ' || (s -> 'engagement' ->> 'end_users') || ' end users, '
    || (s -> 'engagement' ->> 'returning_users') || ' returning'
  from (select private.dashboard_summary_raw(tests.fx('org_g'), from_date, to_date) as s) x;
$$;
grant execute on function pg_temp.engagement(date, date), pg_temp.raw_engagement(date, date) to service_role;

select tests.act_as('service_role');
select is(pg_temp.engagement('2026-11-01', '2026-11-06'), '4 conversations, 2 end users, 0 returning', 'the whole span: A, B, C, D; u1 and u2 wrote');
select is(pg_temp.engagement('2026-11-03', '2026-11-04'), '2 conversations, 2 end users, 1 returning', 'd3..d4: A and B once each; u1 came back');
select is(pg_temp.engagement('2026-11-04', '2026-11-06'), '3 conversations, 2 end users, 2 returning', 'd4..d6: B, A, C; u1 twice on d6 counts once; both came back');
select is(pg_temp.engagement('2026-11-02', '2026-11-02'), '1 conversations, 0 end users, 0 returning', 'd2: D has no user message');
select is(pg_temp.engagement('2026-11-05', '2026-11-05'), '0 conversations, 0 end users, 0 returning', 'an empty day: zeros');
select is(pg_temp.engagement('2026-11-02', '2026-11-06'), pg_temp.raw_engagement('2026-11-02', '2026-11-06'), 'd2..d6 equals its raw twin');

select tests.act_as('postgres');
select is(
  (select d.conversation_gaps from private.analytics_days d where d.org_id = tests.fx('org_g') and d.day = '2026-11-06'),
  array[3], 'd6 keeps A''s gap to d3 (C is new)');
select is(
  (select d.end_user_gaps from private.analytics_days d where d.org_id = tests.fx('org_g') and d.day = '2026-11-06'),
  array[3], 'and u1''s gap to d3');

-- A's d3 message goes: only d3 is marked stale, yet d6's gaps move to d1.
delete from public.messages where conversation_id = tests.fx('conv_a') and content = 'a3';
select is((select array_agg(s.day order by s.day) from private.analytics_stale_days s where s.org_id = tests.fx('org_g')),
  array['2026-11-01', '2026-11-03']::date[], 'the delete marks its own day and u1''s first day, not d6');

-- A range after the stale day refreshes nothing, and still counts right.
select tests.act_as('service_role');
select is(pg_temp.engagement('2026-11-04', '2026-11-06'), '3 conversations, 2 end users, 2 returning', 'd4..d6 with d3 still stale');
select tests.act_as('postgres');
select is((select count(*)::integer from private.analytics_stale_days s where s.org_id = tests.fx('org_g')), 2, 'd1 and d3 are still stale');

-- A range holding d3 refreshes it, and with it d6, A's and u1's next day.
select tests.act_as('service_role');
select is(pg_temp.engagement('2026-11-02', '2026-11-03'), '2 conversations, 1 end users, 0 returning', 'd2..d3 after the delete: D and B; u2 only');
select tests.act_as('postgres');
select is(
  (select d.conversation_gaps || d.end_user_gaps from private.analytics_days d where d.org_id = tests.fx('org_g') and d.day = '2026-11-06'),
  array[5, 5], 'd6''s gaps now reach back to d1, though d6 was never marked');
select tests.act_as('service_role');
select is(pg_temp.engagement('2026-11-02', '2026-11-06'), '4 conversations, 2 end users, 1 returning', 'd2..d6: D, B, A (once, on d6), C');
select is(pg_temp.engagement('2026-11-01', '2026-11-06'), pg_temp.raw_engagement('2026-11-01', '2026-11-06'), 'the whole span equals its raw twin');
select is_empty($$select * from private.verify_rollups(tests.fx('org_g'))$$, 'and the rollups equal the raw aggregation');

-- The calls' p95 duration from the days' sorted milliseconds equals
-- percentile_cont's; a call past 2^31 ms (24.8 days) takes the slow path.
select tests.act_as('postgres');
insert into public.calls (org_id, direction, status, created_at, started_at, ended_at, duration_seconds, to_number)
values (tests.fx('org_g'), 'outbound', 'ended', '2026-11-02 08:00Z', '2026-11-02 08:00Z', '2026-11-02 08:10Z', 10, '+14155550101'),
       (tests.fx('org_g'), 'outbound', 'ended', '2026-11-04 08:00Z', '2026-11-04 08:00Z', '2026-11-04 08:10Z', 20.5, '+14155550102');
select tests.act_as('service_role');
select is((select s -> 'calls' -> 'p95_duration_seconds' from public.analytics_dashboard_summary(tests.fx('org_g'), '2026-11-01', '2026-11-06') s),
  '20.0'::jsonb, 'p95 of 10 s and 20.5 s: 10 + 0.95 x 10.5 = 19.975, rounded 20.0');
select tests.act_as('postgres');
insert into public.calls (org_id, direction, status, created_at, started_at, ended_at, duration_seconds, to_number)
values (tests.fx('org_g'), 'outbound', 'ended', '2026-11-05 08:00Z', '2026-11-05 08:00Z', '2026-11-05 08:10Z', 2500000.125, '+14155550103');
select tests.act_as('service_role');
select is(
  (select s -> 'calls' from public.analytics_dashboard_summary(tests.fx('org_g'), '2026-11-01', '2026-11-06') s),
  (select s -> 'calls' from private.dashboard_summary_raw(tests.fx('org_g'), '2026-11-01', '2026-11-06') s),
  'with a call of 2,500,000 s the call figures still equal the raw twin''s');
select is((select s -> 'calls' -> 'p95_duration_seconds' from public.analytics_dashboard_summary(tests.fx('org_g'), '2026-11-01', '2026-11-06') s),
  to_jsonb(round((20.5::float8 + 0.9::float8 * (2500000.125::float8 - 20.5::float8))::numeric, 1)), 'p95: 20.5 + 0.9 x (2,500,000.125 - 20.5)');

select * from finish();
rollback;
