-- Days cut exactly in zones whose offset is not a whole number of hours
-- (20261123002500_analytics_quarter_hour_buckets.sql): the rollups count per
-- UTC quarter hour, so local midnight in India (+5:30) and Nepal (+5:45) is
-- a bucket boundary. With hour buckets, every event below fell on the 10th.
--
-- Local midnight of the 11th is 2026-11-10 18:30 UTC in Asia/Kolkata and
-- 18:15 UTC in Asia/Kathmandu. Events (UTC, 2026-11-10):
--   18:10 conversation c1 started, user message (Kolkata 23:40, Kathmandu 23:55: both the 10th)
--   18:20 assistant message (Kolkata 23:50 the 10th; Kathmandu 00:05 the 11th)
--   18:35 user message in c2, started then, and a usage event (the 11th in both)
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures (name, id) values ('owner_q', tests.create_user('owner-q@quarter-hours.test'));
select tests.remember('org_q', tests.create_org('quarter-hours-org', tests.fx('owner_q')));
update public.organizations set time_zone = 'Asia/Kolkata' where id = tests.fx('org_q');
insert into public.bots (org_id, name, slug) values (tests.fx('org_q'), 'Quarter', 'quarter');
select tests.remember('bot_q', id) from public.bots where org_id = tests.fx('org_q');

insert into public.conversations (id, org_id, bot_id, channel, external_user_id, created_at) values
  ('00000000-0000-4000-a232-000000000001', tests.fx('org_q'), tests.fx('bot_q'), 'telegram', 'tg-q1', '2026-11-10 18:10Z'),
  ('00000000-0000-4000-a232-000000000002', tests.fx('org_q'), tests.fx('bot_q'), 'telegram', 'tg-q2', '2026-11-10 18:35Z');
insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, created_at) values
  (tests.fx('org_q'), '00000000-0000-4000-a232-000000000001', 'user', 'late question', 0, 0, null, '2026-11-10 18:10Z'),
  (tests.fx('org_q'), '00000000-0000-4000-a232-000000000001', 'assistant', 'late answer', 100, 20, 900, '2026-11-10 18:20Z'),
  (tests.fx('org_q'), '00000000-0000-4000-a232-000000000002', 'user', 'after midnight', 0, 0, null, '2026-11-10 18:35Z');
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, created_at)
values (tests.fx('org_q'), 'chat', 'm', 70, 30, tests.fx('bot_q'), '2026-11-10 18:35Z');

select tests.act_as('owner_q');

select results_eq(
  $$select day, user_messages, assistant_messages from public.analytics_messages_daily(tests.fx('org_q'), '2026-11-10', '2026-11-11')$$,
  $$values ('2026-11-10'::date, 1, 1), ('2026-11-11'::date, 1, 0)$$,
  'Asia/Kolkata (+5:30): messages fall on their local day on each side of midnight'
);
select results_eq(
  $$select day, started from public.analytics_conversations_daily(tests.fx('org_q'), '2026-11-10', '2026-11-11')$$,
  $$values ('2026-11-10'::date, 1), ('2026-11-11'::date, 1)$$,
  'Asia/Kolkata: conversations started on each side of midnight'
);
select results_eq(
  $$select day, end_users from public.analytics_engagement_daily(tests.fx('org_q'), '2026-11-10', '2026-11-11')$$,
  $$values ('2026-11-10'::date, 1), ('2026-11-11'::date, 1)$$,
  'Asia/Kolkata: end users who wrote, each on their day'
);
select results_eq(
  $$select day, chat_tokens_in, chat_tokens_out from public.analytics_usage_daily(tests.fx('org_q'), '2026-11-10', '2026-11-11')$$,
  $$values ('2026-11-10'::date, 0::bigint, 0::bigint), ('2026-11-11'::date, 70::bigint, 30::bigint)$$,
  'Asia/Kolkata: usage after midnight is on the 11th'
);
select is(
  (select (s -> 'messages' ->> 'total')::integer * 1000 + (s -> 'usage' ->> 'tokens_in')::integer
   from public.analytics_dashboard_summary(tests.fx('org_q'), '2026-11-11', '2026-11-11') s),
  1070, 'the summary of the 11th in the org''s zone (day rows): one message and the usage after midnight'
);
select is(
  (select (s -> 'messages' ->> 'total')::integer
   from public.analytics_dashboard_summary(tests.fx('org_q'), '2026-11-10', '2026-11-10') s),
  2, 'and of the 10th: the two messages before midnight'
);
select results_eq(
  $$select day, user_messages, assistant_messages from public.analytics_messages_daily(tests.fx('org_q'), '2026-11-10', '2026-11-11', 'Asia/Kathmandu')$$,
  $$values ('2026-11-10'::date, 1, 0), ('2026-11-11'::date, 1, 1)$$,
  'Asia/Kathmandu (+5:45), asked for explicitly: the answer at 00:05 local is on the 11th'
);
select is(
  (select (s -> 'messages' ->> 'total')::integer
   from public.analytics_dashboard_summary(tests.fx('org_q'), '2026-11-11', '2026-11-11', 'Asia/Kathmandu') s),
  2, 'the summary in another zone (bucket rollups) cuts the same way'
);

select tests.act_as('postgres');
select is_empty(
  $$select * from private.verify_rollups(tests.fx('org_q'))$$,
  'the rollups equal the raw aggregation'
);

select * from finish();
rollback;
