-- Week rows (20261123003100_analytics_weeks.sql): a summary over a range
-- reads its whole weeks as one row each. Its figures equal the raw twin's
-- over ranges that start and end inside weeks and at their edges, with
-- conversations and end users that come back weeks later. A write inside a
-- week drops that week's row when its day is refreshed, and the next summary
-- recomputes it. A read-only summary reads the week rows that exist and the
-- day rows of the other weeks. A zone change drops every week row.
--
-- Org in UTC, 2026-10-01 .. 2026-11-04; whole weeks start on Mondays
-- 10-05, 10-12, 10-19 and 10-26 (and, empty, 09-07, 09-14, 09-21).
begin;
create extension if not exists pgtap with schema extensions;

select plan(17);

insert into tests.fixtures (name, id) values ('owner_w', tests.create_user('owner-w@weeks.test'));
select tests.remember('org_w', tests.create_org('weeks-org', tests.fx('owner_w')));
update public.organizations set time_zone = 'UTC' where id = tests.fx('org_w');
insert into public.bots (org_id, name, slug) values (tests.fx('org_w'), 'Bot', 'bot');
select tests.remember('bot_w', id) from public.bots where org_id = tests.fx('org_w');

-- 30 conversations of 7 end users; each conversation's user writes again
-- 0, 8 or 16 days after it starts, so users and conversations return across weeks.
insert into public.conversations (org_id, bot_id, channel, external_user_id, status, closed_at, created_at)
select tests.fx('org_w'), tests.fx('bot_w'), (array['web', 'api', 'voice']::public.chat_channel[])[1 + n % 3], 'u' || (n % 7),
  'closed', '2026-11-20 00:00Z', '2026-10-01 08:00Z'::timestamptz + ((n * 37) % 18) * interval '1 day' + n * interval '7 minutes'
from generate_series(1, 30) n;

insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, created_at)
select c.org_id, c.id, m.role, 'm', 10, 5, m.latency, c.created_at + m.after
from (select c.*, row_number() over (order by c.created_at) as n from public.conversations c where c.org_id = tests.fx('org_w')) c
cross join lateral (values
  ('user'::public.message_role, null::integer, interval '0'),
  ('assistant'::public.message_role, (100 + c.n * 13)::integer, interval '1 minute'),
  ('user'::public.message_role, null::integer, (c.n % 3) * interval '8 days' + interval '2 hours')
) m (role, latency, after);

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
select tests.fx('org_w'), (array['chat', 'embedding'])[1 + n % 2], 'm', n, n * 2, '2026-10-01 06:00Z'::timestamptz + n * interval '29 hours'
from generate_series(1, 28) n;

insert into public.calls (org_id, direction, status, created_at, started_at, ended_at, duration_seconds, to_number)
select tests.fx('org_w'), 'outbound', 'ended', t, t, t + interval '5 minutes', 30 + n * 7.5, '+1415555' || lpad(n::text, 4, '0')
from generate_series(1, 16) n, lateral (select '2026-10-01 10:00Z'::timestamptz + n * interval '53 hours') x (t);

create function pg_temp.summary_differs(from_date date, to_date date)
returns boolean
language sql
as $$
  select public.analytics_dashboard_summary(tests.fx('org_w'), from_date, to_date)
    is distinct from private.dashboard_summary_raw(tests.fx('org_w'), from_date, to_date);
$$;
grant execute on function pg_temp.summary_differs(date, date) to service_role;

select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  private.dashboard_summary_raw(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  '10-03..11-03 (four whole weeks) equals its raw twin');
select tests.act_as('postgres');
select is((select array_agg(w.week order by w.week) from private.analytics_weeks w where w.org_id = tests.fx('org_w')),
  array['2026-10-05', '2026-10-12', '2026-10-19', '2026-10-26']::date[], 'and made the rows of its whole weeks');
select ok((select sum(w.conversation_count) from private.analytics_weeks w where w.org_id = tests.fx('org_w'))
    > (select count(*) from public.conversations c where c.org_id = tests.fx('org_w') and c.created_at >= '2026-10-05' and c.created_at < '2026-11-02')
  and (select count(*) from private.analytics_weeks w where w.org_id = tests.fx('org_w') and cardinality(w.conversation_gaps) > 0) >= 2,
  'conversations come back in later weeks (gaps reaching before their week)');
select is((select w.conversation_count from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-12'),
  (select count(distinct m.conversation_id)::integer from public.messages m
   where m.org_id = tests.fx('org_w') and m.created_at >= '2026-10-12' and m.created_at < '2026-10-19'),
  'a week counts its conversations once each');
select is_empty($$select * from private.verify_analytics_weeks(tests.fx('org_w'))$$, 'the week rows equal their day rows combined');

select tests.act_as('service_role');
select is_empty($$
  select f, t from unnest(array['2026-09-05', '2026-10-01', '2026-10-05', '2026-10-06', '2026-10-12', '2026-10-14']::date[]) f,
    unnest(array['2026-10-18', '2026-10-25', '2026-10-27', '2026-11-01', '2026-11-04']::date[]) t
  where pg_temp.summary_differs(f, t)
$$, 'every range from 09-05 (three whole weeks without activity), 10-01, 10-05, 10-06, 10-12, 10-14 to 10-18, 10-25, 10-27, 11-01, 11-04 equals its raw twin');

-- A user comes back on Wednesday 10-14 in a new conversation: the week of
-- 10-12 holds a row until the day is refreshed, which drops it.
select tests.act_as('postgres');
with c as (
  insert into public.conversations (org_id, bot_id, channel, external_user_id, status, closed_at, created_at)
  values (tests.fx('org_w'), tests.fx('bot_w'), 'telegram', 'u3', 'closed', '2026-11-20 00:00Z', '2026-10-14 12:00Z')
  returning id
)
insert into public.messages (org_id, conversation_id, role, content, created_at)
select tests.fx('org_w'), c.id, 'user', 'back again', '2026-10-14 12:00Z' from c;
select ok(exists (select 1 from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-12'),
  'a write only marks its day stale: its week''s row stays until the day is refreshed');
select private.refresh_analytics_days(tests.fx('org_w'), '2026-10-14', '2026-10-14');
select ok(not exists (select 1 from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-12')
  and exists (select 1 from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-05'),
  'refreshing the day drops its week''s row, not the week before');
select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_w'), '2026-10-06', '2026-11-01'),
  private.dashboard_summary_raw(tests.fx('org_w'), '2026-10-06', '2026-11-01'),
  'the next summary over the week equals its raw twin');
select tests.act_as('postgres');
select ok(exists (select 1 from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-12'),
  'and made the week''s row again');
select is_empty($$select * from private.verify_analytics_weeks(tests.fx('org_w'))$$, 'every week row still equals its day rows combined');
select is((select array_agg(w.conversation_count || '/' || cardinality(w.events_by_channel) order by w.week) from private.analytics_weeks w
           where w.org_id = tests.fx('org_w') and w.week < '2026-09-28'),
  array['0/0', '0/0', '0/0'], 'the empty weeks have rows too: zeros and empty arrays');

-- The zone's days are cut differently: a zone change drops the week rows.
update public.organizations set time_zone = 'Asia/Tokyo' where id = tests.fx('org_w');
select is_empty($$select * from private.analytics_weeks w where w.org_id = tests.fx('org_w')$$, 'a zone change drops every week row, those of empty weeks too');
select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  private.dashboard_summary_raw(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  'in the new zone, the summary equals its raw twin');

-- A rebuild drops the org's week rows (empty weeks too; a bulk load with
-- triggers off writes no day rows); the next summary makes them again.
select tests.act_as('postgres');
select private.rebuild_analytics_rollups(tests.fx('org_w'));
select is_empty($$select * from private.analytics_weeks w where w.org_id = tests.fx('org_w')$$, 'a rebuild drops every week row');
select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_w'), '2026-09-05', '2026-11-03'),
  private.dashboard_summary_raw(tests.fx('org_w'), '2026-09-05', '2026-11-03'),
  'after it, 09-05..11-03 (empty weeks included) equals its raw twin');

-- Read-only (an RPC by GET): the week rows that exist, the day rows of the rest.
select tests.act_as('postgres');
delete from private.analytics_weeks w where w.org_id = tests.fx('org_w') and w.week = '2026-10-19';
set local transaction_read_only = on;
select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  private.dashboard_summary_raw(tests.fx('org_w'), '2026-10-03', '2026-11-03'),
  'read-only, with one week''s row missing, the summary equals its raw twin');

select * from finish();
rollback;
