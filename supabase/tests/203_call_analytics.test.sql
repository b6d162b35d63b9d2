-- Call feedback and analytics (20261123001210_call_operations.sql): one
-- rating per member and call, only one's own row written, viewers and other
-- orgs kept out; call_stats_daily and call_stats_summary against figures
-- computed by hand on seeded calls around the start of summer time in Berlin
-- (2026-03-29, a 23-hour day), an empty day, p95, per-bot figures, and the
-- argument and permission checks.
begin;
create extension if not exists pgtap with schema extensions;

select plan(43);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@callstats.test')),
  ('admin_a', tests.create_user('admin-a@callstats.test')),
  ('member_a', tests.create_user('member-a@callstats.test')),
  ('member2_a', tests.create_user('member2-a@callstats.test')),
  ('viewer_a', tests.create_user('viewer-a@callstats.test')),
  ('owner_b', tests.create_user('owner-b@callstats.test')),
  ('ops', tests.create_user('ops@callstats.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('callstats-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('callstats-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('member2_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_a');

insert into public.bots (org_id, name, slug) values
  (tests.fx('org_a'), 'Xena', 'xena'), (tests.fx('org_a'), 'Yuri', 'yuri'), (tests.fx('org_b'), 'Zed', 'zed');
select tests.remember('bot_' || slug, id) from public.bots where slug in ('xena', 'yuri', 'zed');

-- The calls, by Berlin day (CET until 2026-03-29 02:00, CEST after):
--   27th: k1 X ended 120 s positive; k2 X ended 60 s neutral; k3 Y no_answer
--   28th: nothing (k4 starts 23:30 UTC on the 28th: already the 29th in Berlin)
--   29th: k4 X ended 300 s negative; k5 Y ended 30 s positive (21:30 UTC = 23:30 CEST)
--   30th: k6 Y failed (ended 22:30 UTC on the 29th = 00:30 CEST); k7 X busy
--   31st: k8 X canceled; k9 X queued (not counted); k10 no bot, ended 90 s neutral; k11 X in progress
--   out of range: k12 X ended on the 26th 23:30 CET; k13 org B on the 27th.
insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment,
                          stt_latency_ms, llm_latency_ms, tts_latency_ms, to_number, ended_reason)
values
  (tests.fx('org_a'), tests.fx('bot_xena'), 'outbound', 'ended', '2026-03-27 09:59Z', '2026-03-27 10:00Z', '2026-03-27 10:02Z', 120, 'positive', 100, 400, 200, '+14155551001', null),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'outbound', 'ended', '2026-03-27 11:59Z', '2026-03-27 12:00Z', '2026-03-27 12:01Z', 60, 'neutral', 200, 600, 300, '+14155551002', null),
  (tests.fx('org_a'), tests.fx('bot_yuri'), 'outbound', 'no_answer', '2026-03-27 14:59Z', null, '2026-03-27 15:00Z', null, 'unknown', null, null, null, '+14155551003', 'customer-did-not-answer'),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'inbound', 'ended', '2026-03-28 23:29Z', '2026-03-28 23:30Z', '2026-03-28 23:35Z', 300, 'negative', 300, 800, 400, '+14155551004', null),
  (tests.fx('org_a'), tests.fx('bot_yuri'), 'inbound', 'ended', '2026-03-29 21:29Z', '2026-03-29 21:30Z', '2026-03-29 21:30:30Z', 30, 'positive', null, null, null, '+14155551005', null),
  (tests.fx('org_a'), tests.fx('bot_yuri'), 'outbound', 'failed', '2026-03-29 22:00Z', null, '2026-03-29 22:30Z', null, 'unknown', null, null, null, '+14155551006', 'dial-failed: 503'),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'outbound', 'busy', '2026-03-30 07:59Z', null, '2026-03-30 08:00Z', null, 'unknown', null, null, null, '+14155551007', null),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'outbound', 'canceled', '2026-03-31 08:00Z', null, '2026-03-31 09:00Z', null, 'unknown', null, null, null, '+14155551008', 'canceled-by-user'),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'outbound', 'queued', '2026-03-31 10:00Z', null, null, null, 'unknown', null, null, null, '+14155551009', null),
  (tests.fx('org_a'), null, 'inbound', 'ended', '2026-03-31 11:59Z', '2026-03-31 12:00Z', '2026-03-31 12:01:30Z', 90, 'neutral', null, null, null, '+14155551010', null),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'inbound', 'in_progress', '2026-03-31 12:59Z', '2026-03-31 13:00Z', null, null, 'unknown', null, null, null, '+14155551011', null),
  (tests.fx('org_a'), tests.fx('bot_xena'), 'inbound', 'ended', '2026-03-26 22:29Z', '2026-03-26 22:30Z', '2026-03-26 22:31Z', 60, 'positive', null, null, null, '+14155551012', null),
  (tests.fx('org_b'), tests.fx('bot_zed'), 'inbound', 'ended', '2026-03-27 09:59Z', '2026-03-27 10:00Z', '2026-03-27 10:01Z', 60, 'positive', null, null, null, '+14155551013', null);
select tests.remember('k' || (right(to_number, 2)::integer)::text, id) from public.calls where to_number like '+141555510%';

-- ---------------------------------------------------------------------------
-- Feedback
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$insert into public.call_feedback (org_id, call_id, rating, comment) values (tests.fx('org_a'), tests.fx('k1'), 5, 'Great call')$$,
  'call_feedback: a member rates a call of the org'
);
select is((select user_id from public.call_feedback where call_id = tests.fx('k1')), tests.fx('member_a'),
  'call_feedback: the rating is the member''s own (user_id defaults to auth.uid())');
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, rating) values (tests.fx('org_a'), tests.fx('k1'), 4)$$,
  '23505', null,
  'call_feedback: one rating per member and call'
);
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, user_id, rating) values (tests.fx('org_a'), tests.fx('k4'), tests.fx('member2_a'), 1)$$,
  '42501', null,
  'call_feedback: nobody rates in someone else''s name'
);
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, rating) values (tests.fx('org_a'), tests.fx('k4'), 6)$$,
  '23514', null,
  'call_feedback: ratings are 1 to 5'
);
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, rating, comment) values (tests.fx('org_a'), tests.fx('k4'), 2, repeat('c', 2001))$$,
  '23514', null,
  'call_feedback: comments are at most 2000 characters'
);
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, rating) values (tests.fx('org_b'), tests.fx('k13'), 2)$$,
  '42501', null,
  'call_feedback: not in another org'
);
insert into public.call_feedback (org_id, call_id, rating) values (tests.fx('org_a'), tests.fx('k4'), 2);
select tests.act_as('member2_a');
insert into public.call_feedback (org_id, call_id, rating, comment) values (tests.fx('org_a'), tests.fx('k1'), 3, 'Fine');
select tests.act_as('postgres');
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, user_id, rating) values (tests.fx('org_b'), tests.fx('k1'), tests.fx('owner_b'), 3)$$,
  '23503', null,
  'call_feedback: the feedback''s org is the call''s (composite foreign key)'
);

select tests.act_as('member_a');
update public.call_feedback set rating = 1 where call_id = tests.fx('k1');
delete from public.call_feedback where call_id = tests.fx('k1') and user_id = tests.fx('member2_a');
select results_eq(
  $$select user_id, rating, comment from public.call_feedback where call_id = tests.fx('k1') order by rating$$,
  $$values (tests.fx('member_a'), 1::smallint, 'Great call'), (tests.fx('member2_a'), 3::smallint, 'Fine')$$,
  'call_feedback: a member changes their own rating, not another''s, and deletes no other''s'
);
update public.call_feedback set rating = 5 where call_id = tests.fx('k1');
select tests.act_as('viewer_a');
select throws_ok(
  $$insert into public.call_feedback (org_id, call_id, rating) values (tests.fx('org_a'), tests.fx('k2'), 4)$$,
  '42501', null,
  'call_feedback: a viewer cannot rate'
);
select is((select count(*)::integer from public.call_feedback), 0, 'call_feedback: a viewer reads none (calls.read is a member permission)');
select tests.act_as('admin_a');
select is((select count(*)::integer from public.call_feedback where org_id = tests.fx('org_a')), 3, 'call_feedback: admins read the org''s feedback');
select is(
  (select count(*)::integer from public.call_feedback where user_id = tests.fx('member_a')),
  2,
  'call_feedback: members'' rows are visible to the org''s readers'
);
select tests.act_as('owner_b');
select is((select count(*)::integer from public.call_feedback), 0, 'call_feedback: another org sees none');
select tests.act_as('postgres');
select results_eq(
  $$select action, actor_user_id, new_values ->> 'rating' from public.audit_log
    where table_name = 'call_feedback' and org_id = tests.fx('org_a') order by seq$$,
  $$values ('insert', tests.fx('member_a'), '5'), ('insert', tests.fx('member_a'), '2'), ('insert', tests.fx('member2_a'), '3'),
           ('update', tests.fx('member_a'), '1'), ('update', tests.fx('member_a'), '5')$$,
  'call_feedback: audited, with the member as actor'
);

-- ---------------------------------------------------------------------------
-- call_stats_daily
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select results_eq(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', null, 'Europe/Berlin')$$,
  $$values
    ('2026-03-27'::date, 3, 2, 0, 1, 0, 0, 1, 1, 0, 1, 90.0),
    ('2026-03-28'::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null::numeric),
    ('2026-03-29'::date, 2, 2, 0, 0, 0, 0, 1, 0, 1, 0, 165.0),
    ('2026-03-30'::date, 2, 0, 1, 0, 1, 0, 0, 0, 0, 2, null::numeric),
    ('2026-03-31'::date, 3, 1, 0, 0, 0, 1, 0, 1, 0, 2, 90.0)$$,
  'call_stats_daily: Berlin days across the DST change, zeros for an empty day, queued calls not counted'
);
select results_eq(
  $$select day, total from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', null, 'UTC')$$,
  $$values ('2026-03-27'::date, 3), ('2026-03-28'::date, 1), ('2026-03-29'::date, 2), ('2026-03-30'::date, 1), ('2026-03-31'::date, 3)$$,
  'call_stats_daily: the same calls cut in UTC days'
);
select results_eq(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', null, 'Europe/Berlin')$$,
  'call_stats_daily: days are cut in the org''s zone by default'
);
select results_eq(
  $$select day, total, ended, avg_duration_seconds from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', tests.fx('bot_xena'))$$,
  $$values ('2026-03-27'::date, 2, 2, 90.0), ('2026-03-28'::date, 0, 0, null), ('2026-03-29'::date, 1, 1, 300.0),
           ('2026-03-30'::date, 1, 0, null), ('2026-03-31'::date, 2, 0, null)$$,
  'call_stats_daily: one bot''s calls'
);
select results_eq(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-28', '2026-03-28')$$,
  $$values ('2026-03-28'::date, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, null::numeric)$$,
  'call_stats_daily: a range of one empty day is one row of zeros'
);

-- ---------------------------------------------------------------------------
-- call_stats_summary
-- ---------------------------------------------------------------------------

create temp table summaries (label text primary key, body jsonb);
grant all on summaries to public;
insert into summaries values ('all', public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31'));
insert into summaries values ('xena', public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31', tests.fx('bot_xena')));
insert into summaries values ('empty', public.call_stats_summary(tests.fx('org_a'), '2026-03-28', '2026-03-28'));

select is(
  (select body - 'by_bot' from summaries where label = 'all'),
  jsonb_build_object(
    'org_id', tests.fx('org_a'), 'bot_id', null, 'from_date', '2026-03-27', 'to_date', '2026-03-31', 'time_zone', 'Europe/Berlin',
    'total', 10,
    'by_status', '{"ringing": 0, "in_progress": 1, "ended": 5, "failed": 1, "no_answer": 1, "busy": 1, "canceled": 1}'::jsonb,
    'by_sentiment', '{"positive": 2, "neutral": 2, "negative": 1, "unknown": 5}'::jsonb,
    'avg_duration_seconds', 120.0, 'p95_duration_seconds', 264.0,
    'avg_stt_latency_ms', 200, 'avg_llm_latency_ms', 600, 'avg_tts_latency_ms', 300,
    'feedback_count', 3, 'avg_rating', 3.33),
  'call_stats_summary: totals, by status and sentiment, average and p95 talk time, latencies, feedback'
);
select results_eq(
  $$select e.value ->> 'bot_id', e.value ->> 'bot_name', (e.value ->> 'total')::integer, (e.value ->> 'avg_duration_seconds')::numeric,
      (e.value ->> 'p95_duration_seconds')::numeric, (e.value ->> 'avg_stt_latency_ms')::numeric, (e.value ->> 'avg_llm_latency_ms')::numeric,
      (e.value ->> 'avg_tts_latency_ms')::numeric, e.value -> 'by_sentiment', (e.value ->> 'avg_rating')::numeric
    from summaries s, jsonb_array_elements(s.body -> 'by_bot') with ordinality e
    where s.label = 'all' order by e.ordinality$$,
  $$values
    (tests.fx('bot_xena')::text, 'Xena', 6, 160.0, 282.0, 200::numeric, 600::numeric, 300::numeric,
     '{"positive": 1, "neutral": 1, "negative": 1, "unknown": 3}'::jsonb, 3.33),
    (tests.fx('bot_yuri')::text, 'Yuri', 3, 30.0, 30.0, null, null, null,
     '{"positive": 1, "neutral": 0, "negative": 0, "unknown": 2}'::jsonb, null),
    (null, null, 1, 90.0, 90.0, null, null, null,
     '{"positive": 0, "neutral": 1, "negative": 0, "unknown": 0}'::jsonb, null)$$,
  'call_stats_summary: by_bot, busiest first, calls without a bot last, each with its own figures'
);
select is(
  (select body -> 'by_bot' -> 0 -> 'by_status' from summaries where label = 'all'),
  '{"ringing": 0, "in_progress": 1, "ended": 3, "failed": 0, "no_answer": 0, "busy": 1, "canceled": 1}'::jsonb,
  'call_stats_summary: per bot by status too'
);
select is(
  (select jsonb_build_array(body -> 'total', body -> 'bot_id', body -> 'avg_duration_seconds', jsonb_array_length(body -> 'by_bot'))
   from summaries where label = 'xena'),
  jsonb_build_array(6, tests.fx('bot_xena'), 160.0, 1),
  'call_stats_summary: one bot''s figures'
);
select is(
  (select jsonb_build_array(body -> 'total', body -> 'by_bot', body -> 'avg_duration_seconds', body -> 'p95_duration_seconds',
     body -> 'feedback_count', body -> 'avg_rating', body -> 'by_status' -> 'ended')
   from summaries where label = 'empty'),
  '[0, [], null, null, 0, null, 0]'::jsonb,
  'call_stats_summary: an empty range is zeros and nulls, no bots'
);

-- ---------------------------------------------------------------------------
-- Arguments and permissions
-- ---------------------------------------------------------------------------

select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-31', '2026-03-27')$$,
  '22023', 'from_date must not be after to_date',
  'call_stats_daily: from_date after to_date is refused'
);
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2025-01-01', '2026-01-02')$$,
  '22023', 'a call statistics range spans at most 366 days (asked for 367)',
  'call_stats_daily: at most 366 days'
);
select lives_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2024-01-01', '2024-12-31')$$,
  'call_stats_daily: 366 days (a leap year) are fine'
);
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', null, 'Mars/Olympus')$$,
  '22023', 'unknown time zone: Mars/Olympus',
  'call_stats_daily: an unknown zone is refused'
);
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), null, '2026-03-31')$$,
  '22023', 'from_date and to_date are required',
  'call_stats_daily: both dates are required'
);
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', tests.fx('bot_zed'))$$,
  'PT404', 'bot not found',
  'call_stats_daily: another org''s bot is not found'
);
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2026-03-31', '2026-03-27')$$,
  '22023', 'from_date must not be after to_date',
  'call_stats_summary: from_date after to_date is refused'
);
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2025-01-01', '2026-01-02')$$,
  '22023', 'a call statistics range spans at most 366 days (asked for 367)',
  'call_stats_summary: at most 366 days'
);
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31', null, 'Nowhere')$$,
  '22023', 'unknown time zone: Nowhere',
  'call_stats_summary: an unknown zone is refused'
);

select tests.act_as('viewer_a');
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', 'you may not read this organization''s calls',
  'call_stats_daily: a viewer (no calls.read) gets 42501'
);
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', 'you may not read this organization''s calls',
  'call_stats_summary: a viewer gets 42501'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select * from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', 'you may not read this organization''s calls',
  'call_stats_daily: another org''s owner gets 42501'
);
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', 'you may not read this organization''s calls',
  'call_stats_summary: another org''s owner gets 42501'
);
select is(
  (select sum(total)::integer from public.call_stats_daily(tests.fx('org_b'), '2026-03-27', '2026-03-31')),
  1,
  'call_stats_daily: org B''s owner counts only org B''s calls'
);
select tests.act_as('anon');
select throws_ok(
  $$select public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null,
  'call_stats_summary: anon may not run it'
);
select tests.act_as('ops');
select is(
  (public.call_stats_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31') -> 'total')::integer,
  10,
  'call_stats_summary: a platform admin reads every tenant''s figures'
);
select tests.act_as('service_role');
select is(
  (select sum(total)::integer from public.call_stats_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')),
  10,
  'call_stats_daily: the service role reads them too'
);

-- Deleting a call takes its feedback with it.
select tests.act_as('postgres');
delete from public.calls where id = tests.fx('k1');
select is((select count(*)::integer from public.call_feedback where call_id = tests.fx('k1')), 0,
  'call_feedback: deleted with its call');

select * from finish();
rollback;
