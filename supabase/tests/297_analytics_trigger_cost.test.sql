-- The analytics triggers' change check and call_stats_summary's feedback
-- (20261123012200_analytics_trigger_cost.sql): an UPDATE marks exactly the
-- days it marked before (a change to a column the rollups read marks the
-- days of the statement's rows, a change to any other column marks none),
-- and call_stats_summary answers as its previous definition (kept here as
-- pg_temp.call_stats_summary) on calls with and without feedback.
--
-- Org in UTC; calls c1, c2, c3 start on 2026-10-01, -02, -03; conversations
-- v1, v2 start on 2026-10-01, -02 (a signed-in user's, no messages).
begin;
create extension if not exists pgtap with schema extensions;

select plan(16);

insert into tests.fixtures (name, id) values
  ('owner_t', tests.create_user('owner-t@trigger-cost.test')),
  ('member_t', tests.create_user('member-t@trigger-cost.test')),
  ('owner_u', tests.create_user('owner-u@trigger-cost.test'));
select tests.remember('org_t', tests.create_org('trigger-cost-org-t', tests.fx('owner_t')));
select tests.remember('org_u', tests.create_org('trigger-cost-org-u', tests.fx('owner_u')));
select tests.add_member(tests.fx('org_t'), tests.fx('member_t'), 'member');
update public.organizations set time_zone = 'UTC' where id = tests.fx('org_t');
insert into public.bots (org_id, name, slug) values
  (tests.fx('org_t'), 'Tess', 'tess'), (tests.fx('org_t'), 'Theo', 'theo'), (tests.fx('org_u'), 'Uma', 'uma');
select tests.remember('bot_' || slug, id) from public.bots where slug in ('tess', 'theo', 'uma') and org_id in (tests.fx('org_t'), tests.fx('org_u'));

insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment,
                          stt_latency_ms, llm_latency_ms, tts_latency_ms, to_number)
values
  (tests.fx('org_t'), tests.fx('bot_tess'), 'inbound', 'ended', '2026-10-01 09:59Z', '2026-10-01 10:00Z', '2026-10-01 10:02Z', 120, 'positive', 100, 400, 200, '+14155552971'),
  (tests.fx('org_t'), tests.fx('bot_tess'), 'inbound', 'ended', '2026-10-02 09:59Z', '2026-10-02 10:00Z', '2026-10-02 10:01Z', 60, 'neutral', 200, 600, 300, '+14155552972'),
  (tests.fx('org_t'), tests.fx('bot_theo'), 'outbound', 'no_answer', '2026-10-03 09:59Z', null, '2026-10-03 10:00Z', null, 'unknown', null, null, null, '+14155552973');
select tests.remember('c' || right(to_number, 1), id) from public.calls where to_number like '+1415555297_';

insert into public.conversations (org_id, bot_id, channel, user_id, status, closed_at, created_at)
values (tests.fx('org_t'), tests.fx('bot_tess'), 'web', tests.fx('member_t'), 'closed', '2026-10-01 08:30Z', '2026-10-01 08:00Z'),
       (tests.fx('org_t'), tests.fx('bot_tess'), 'web', tests.fx('member_t'), 'closed', '2026-10-02 08:30Z', '2026-10-02 08:00Z');
select tests.remember('v' || extract(day from created_at)::integer, id) from public.conversations where org_id = tests.fx('org_t');

create function pg_temp.marked()
returns date[]
language sql
as $$
  select coalesce(array_agg(s.day order by s.day), '{}') from private.analytics_stale_days s where s.org_id = tests.fx('org_t');
$$;
create function pg_temp.unmark()
returns void
language sql
as $$
  delete from private.analytics_stale_days s where s.org_id = tests.fx('org_t');
$$;

-- ---------------------------------------------------------------------------
-- analytics_calls_changed
-- ---------------------------------------------------------------------------
select pg_temp.unmark();
update public.calls set ended_reason = 'trigger-cost' where org_id = tests.fx('org_t');
select is(pg_temp.marked(), '{}'::date[], 'calls: a column analytics does not read (ended_reason) marks no day');
update public.calls set bot_id = null where bot_id = tests.fx('bot_tess');
select is(pg_temp.marked(), '{}'::date[], 'calls: nor does the bot going (bot_id set null)');
update public.calls set duration_seconds = 61 where id = tests.fx('c2');
select is(pg_temp.marked(), array['2026-10-02']::date[], 'calls: a read column (duration_seconds) marks its call''s day');
select pg_temp.unmark();
update public.calls set sentiment = case when id = tests.fx('c3') then 'negative'::public.call_sentiment else sentiment end,
  ended_reason = 'trigger-cost-2'
where org_id = tests.fx('org_t');
select is(pg_temp.marked(), array['2026-10-01', '2026-10-02', '2026-10-03']::date[],
  'calls: one row changing a read column marks the days of every row of the statement, as before');
select pg_temp.unmark();
update public.calls set started_at = '2026-10-05 10:00Z' where id = tests.fx('c1');
select is(pg_temp.marked(), array['2026-10-01', '2026-10-05']::date[], 'calls: a moved call marks its old and new day');
select ok(
  p.prosrc ~ 'from old_rows o\s+except\s+select n\.id' and p.prosrc !~ 'join new_rows',
  'calls: the check is a set difference, not a join of the transition tables')
from pg_proc p where p.oid = 'private.analytics_calls_changed()'::regprocedure;

-- ---------------------------------------------------------------------------
-- analytics_conversations_changed
-- ---------------------------------------------------------------------------
select pg_temp.unmark();
update public.conversations set last_message_at = created_at where org_id = tests.fx('org_t');
select is(pg_temp.marked(), '{}'::date[], 'conversations: a column the rollups do not read (last_message_at) marks no day');
update public.conversations set escalated_at = '2026-10-02 08:10Z', escalation_reason = 'trigger cost' where id = tests.fx('v2');
select is(pg_temp.marked(), array['2026-10-02']::date[], 'conversations: a read column (escalated_at) marks its day');
select pg_temp.unmark();
update public.conversations set user_id = null where org_id = tests.fx('org_t');
select is(pg_temp.marked(), array['2026-10-01', '2026-10-02']::date[], 'conversations: the user going (user_id set null) marks both days');
select ok(
  p.prosrc ~ 'from old_rows o\s+except\s+select n\.id' and p.prosrc !~ 'join new_rows',
  'conversations: the check is a set difference, not a join of the transition tables')
from pg_proc p where p.oid = 'private.analytics_conversations_changed()'::regprocedure;

-- ---------------------------------------------------------------------------
-- call_stats_summary: the same answers as the lateral-join definition
-- ---------------------------------------------------------------------------
-- c1: two ratings (5, 2); c2: one (4); c3: none; org U's call: one (1).
insert into public.call_feedback (org_id, call_id, user_id, rating) values
  (tests.fx('org_t'), tests.fx('c1'), tests.fx('member_t'), 5),
  (tests.fx('org_t'), tests.fx('c1'), tests.fx('owner_t'), 2),
  (tests.fx('org_t'), tests.fx('c2'), tests.fx('member_t'), 4);
insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment, to_number)
values (tests.fx('org_u'), tests.fx('bot_uma'), 'inbound', 'ended', '2026-10-02 09:59Z', '2026-10-02 10:00Z', '2026-10-02 10:01Z', 60, 'positive', '+14155552979');
insert into public.call_feedback (org_id, call_id, user_id, rating)
select tests.fx('org_u'), id, tests.fx('owner_u'), 1 from public.calls where to_number = '+14155552979';

-- call_stats_summary as 20261123001210_call_operations.sql defined it.
create function pg_temp.call_stats_summary(
  org_id uuid, from_date date, to_date date, bot_id uuid default null, time_zone text default null
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  zone text := private.call_stats_scope(call_stats_summary.org_id, call_stats_summary.from_date, call_stats_summary.to_date,
    call_stats_summary.bot_id, call_stats_summary.time_zone);
  range_start timestamptz := call_stats_summary.from_date::timestamp at time zone zone;
  range_end timestamptz := (call_stats_summary.to_date + 1)::timestamp at time zone zone;
  overall jsonb;
  per_bot jsonb;
begin
  -- One pass: the figures for all calls (grouping set ()) and per bot.
  with counted as (
    select c.id, c.bot_id, c.status, c.sentiment, c.duration_seconds,
      c.stt_latency_ms, c.llm_latency_ms, c.tts_latency_ms, fb.ratings, fb.rating_sum
    from public.calls c
    cross join lateral (
      select count(*)::integer as ratings, sum(f.rating)::integer as rating_sum
      from public.call_feedback f where f.call_id = c.id and f.org_id = c.org_id
    ) fb
    where c.org_id = call_stats_summary.org_id
      and coalesce(c.started_at, c.ended_at, c.created_at) >= range_start
      and coalesce(c.started_at, c.ended_at, c.created_at) < range_end
      and c.status <> 'queued'
      and (call_stats_summary.bot_id is null or c.bot_id = call_stats_summary.bot_id)
  ),
  grouped as (
    select grouping(k.bot_id) = 1 as is_overall, k.bot_id,
      count(*)::integer as total,
      jsonb_build_object(
        'total', count(*),
        'by_status', jsonb_build_object(
          'ringing', count(*) filter (where k.status = 'ringing'),
          'in_progress', count(*) filter (where k.status = 'in_progress'),
          'ended', count(*) filter (where k.status = 'ended'),
          'failed', count(*) filter (where k.status = 'failed'),
          'no_answer', count(*) filter (where k.status = 'no_answer'),
          'busy', count(*) filter (where k.status = 'busy'),
          'canceled', count(*) filter (where k.status = 'canceled')),
        'by_sentiment', jsonb_build_object(
          'positive', count(*) filter (where k.sentiment = 'positive'),
          'neutral', count(*) filter (where k.sentiment = 'neutral'),
          'negative', count(*) filter (where k.sentiment = 'negative'),
          'unknown', count(*) filter (where k.sentiment = 'unknown')),
        'avg_duration_seconds', round(avg(k.duration_seconds) filter (where k.status = 'ended'), 1),
        'p95_duration_seconds', round((percentile_cont(0.95) within group (order by k.duration_seconds)
          filter (where k.status = 'ended' and k.duration_seconds is not null))::numeric, 1),
        'avg_stt_latency_ms', round(avg(k.stt_latency_ms)),
        'avg_llm_latency_ms', round(avg(k.llm_latency_ms)),
        'avg_tts_latency_ms', round(avg(k.tts_latency_ms)),
        'feedback_count', coalesce(sum(k.ratings), 0),
        'avg_rating', round(sum(k.rating_sum)::numeric / nullif(sum(k.ratings), 0), 2)
      ) as figures
    from counted k
    group by grouping sets ((), (k.bot_id))
  )
  select
    (select g.figures from grouped g where g.is_overall),
    coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', g.bot_id, 'bot_name', b.name) || g.figures
                       order by g.total desc, b.name nulls last, g.bot_id)
      from grouped g
      left join public.bots b on b.id = g.bot_id and b.org_id = call_stats_summary.org_id
      where not g.is_overall
    ), '[]'::jsonb)
  into overall, per_bot;

  return jsonb_build_object(
    'org_id', call_stats_summary.org_id, 'bot_id', call_stats_summary.bot_id,
    'from_date', call_stats_summary.from_date, 'to_date', call_stats_summary.to_date, 'time_zone', zone
  ) || overall || jsonb_build_object('by_bot', per_bot);
end;
$$;

grant execute on function pg_temp.call_stats_summary(uuid, date, date, uuid, text) to authenticated;

select tests.act_as('member_t');
select is(public.call_stats_summary(tests.fx('org_t'), '2026-09-30', '2026-10-06'),
  pg_temp.call_stats_summary(tests.fx('org_t'), '2026-09-30', '2026-10-06'), 'summary: the whole span equals the old definition''s');
select is(
  (select s ->> 'feedback_count' || ' ratings, ' || (s ->> 'avg_rating')
   from (select public.call_stats_summary(tests.fx('org_t'), '2026-09-30', '2026-10-06') as s) x),
  '3 ratings, 3.67', 'summary: 3 ratings averaging 11 / 3, org U''s not counted');
select is(
  (select jsonb_agg(b ->> 'feedback_count' || '/' || coalesce(b ->> 'avg_rating', 'null') order by b ->> 'bot_id' nulls first)
   from jsonb_array_elements(public.call_stats_summary(tests.fx('org_t'), '2026-09-30', '2026-10-06') -> 'by_bot') b),
  '["3/3.67", "0/null"]'::jsonb, 'summary: per bot, c1 and c2 (no bot since Tess''s calls lost it) and Theo''s c3 without feedback');
select is(public.call_stats_summary(tests.fx('org_t'), '2026-10-02', '2026-10-03', tests.fx('bot_theo')),
  pg_temp.call_stats_summary(tests.fx('org_t'), '2026-10-02', '2026-10-03', tests.fx('bot_theo')),
  'summary: one bot without feedback equals the old definition''s');
select is(public.call_stats_summary(tests.fx('org_t'), '2026-10-02', '2026-10-02', null, 'America/Los_Angeles'),
  pg_temp.call_stats_summary(tests.fx('org_t'), '2026-10-02', '2026-10-02', null, 'America/Los_Angeles'),
  'summary: another zone and one day equal the old definition''s');
select is(public.call_stats_summary(tests.fx('org_t'), '2026-11-01', '2026-11-02'),
  pg_temp.call_stats_summary(tests.fx('org_t'), '2026-11-01', '2026-11-02'), 'summary: an empty range equals the old definition''s');

select * from finish();
rollback;
