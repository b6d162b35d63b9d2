-- Analytics rollups (20261123001700_analytics.sql) stay equal to the raw
-- aggregation through random inserts, updates and deletes of messages,
-- conversations, usage events, calls and appointments, by single rows and whole statements, a
-- bot's deletion (its conversations cascade, its usage keeps a null bot) and
-- a user's (their conversations' end user changes) and a change of the org's
-- time zone, checked with private.verify_rollups and by comparing the summary
-- (calls included, with feedback) with its raw twin.
-- Deterministic (setseed), and small: a few hundred rows.
begin;
create extension if not exists pgtap with schema extensions;

select plan(15);

select setseed(0.23);

insert into tests.fixtures (name, id) values
  ('owner_r', tests.create_user('owner-r@rollups.test')),
  ('web_user', tests.create_user('web-user@rollups.test'));
select tests.remember('org_r', tests.create_org('rollups-org-r', tests.fx('owner_r')));
update public.organizations set time_zone = 'America/New_York' where id = tests.fx('org_r');
insert into public.bots (org_id, name, slug) values
  (tests.fx('org_r'), 'One', 'one'), (tests.fx('org_r'), 'Two', 'two'), (tests.fx('org_r'), 'Three', 'three');
select tests.remember('bot_' || slug, id) from public.bots where slug in ('one', 'two', 'three') and org_id = tests.fx('org_r');

-- 40 conversations over 2026-10-25 .. 2026-11-05 (New York leaves summer time on 2026-11-01).
insert into public.conversations (org_id, bot_id, channel, external_user_id, user_id, created_at)
select tests.fx('org_r'),
  (array[tests.fx('bot_one'), tests.fx('bot_two'), tests.fx('bot_three')])[1 + (n % 3)],
  (array['web', 'telegram', 'api', 'voice']::public.chat_channel[])[1 + (n % 4)],
  case when n % 4 = 0 then null else 'u' || (n % 7) end,
  case when n % 4 = 0 then tests.fx('web_user') end,
  '2026-10-25 00:00Z'::timestamptz + random() * interval '11 days'
from generate_series(1, 40) n;

-- One statement, 300 messages.
insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, created_at)
select c.org_id, c.id, (array['user', 'assistant', 'system']::public.message_role[])[1 + floor(random() * 2.2)::integer], 'm',
  floor(random() * 100)::integer, floor(random() * 50)::integer,
  case when random() < 0.7 then floor(random() * 3000)::integer end,
  c.created_at + random() * interval '3 days'
from (select c.*, row_number() over (order by c.id) as rn from public.conversations c where c.org_id = tests.fx('org_r')) c
cross join generate_series(1, 8) k
where random() < 0.95 and k <= 1 + (c.rn % 8);

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, created_at)
select tests.fx('org_r'), (array['chat', 'embedding', 'speech'])[1 + (n % 3)], 'm', floor(random() * 500)::integer, floor(random() * 200)::integer,
  case when n % 5 = 0 then null else (array[tests.fx('bot_one'), tests.fx('bot_two'), tests.fx('bot_three')])[1 + (n % 3)] end,
  '2026-10-25 00:00Z'::timestamptz + random() * interval '12 days'
from generate_series(1, 150) n;

-- 33 of the calls below are queued, ringing or in progress, each holding a call minute (20261123009100):
-- more than the free plan's 30, so the org is on business.
update public.subscriptions set plan_id = 'business' where org_id = tests.fx('org_r') and status = 'active';
-- 120 calls in all states (queued ones are not counted), some without a bot.
-- Calls draw from hashes, not random(), so the sequence the other rows draw
-- from stays as it was.
insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment, to_number,
                          stt_latency_ms, llm_latency_ms, tts_latency_ms)
select tests.fx('org_r'),
  case when n % 6 = 0 then null else (array[tests.fx('bot_one'), tests.fx('bot_two'), tests.fx('bot_three')])[1 + (n % 3)] end,
  'outbound', s.status, t,
  case when s.status in ('ended', 'in_progress') or n % 5 = 0 then t + interval '20 seconds' end,
  case when s.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy') then t + interval '4 minutes' end,
  case when s.status = 'ended' and n % 9 <> 0 then (abs(hashint4(n * 7)) % 600000)::numeric / 1000 end,
  (array['positive', 'neutral', 'negative', 'unknown']::public.call_sentiment[])[1 + abs(hashint4(n * 3)) % 4],
  '+14155550' || lpad(n::text, 3, '0'),
  case when n % 5 <> 1 then abs(hashint4(n * 11)) % 300 end,
  case when n % 5 <> 2 then abs(hashint4(n * 13)) % 900 end,
  case when n % 5 <> 3 then abs(hashint4(n * 17)) % 400 end
from generate_series(1, 120) n
cross join lateral (select '2026-10-25 00:00Z'::timestamptz + (abs(hashint4(n)) % 950400) * interval '1 second' as t) ts
cross join lateral (select (array['queued', 'ringing', 'in_progress', 'ended', 'ended', 'ended', 'failed', 'no_answer', 'busy', 'canceled']::public.call_status[])
  [1 + abs(hashint4(n * 5)) % 10] as status) s;
insert into public.call_feedback (org_id, call_id, user_id, rating)
select c.org_id, c.id, tests.fx('owner_r'), 1 + abs(hashtext(c.to_number)) % 5
from public.calls c where c.org_id = tests.fx('org_r') and abs(hashtext(c.to_number || 'f')) % 10 < 3;

-- 30 appointments by bots and by staff, each on its own resource (booked
-- ones may not overlap on one).
insert into public.appointments (org_id, bot_id, resource, starts_at, ends_at, status, attendee_name, attendee_email, source, reschedule_count)
select tests.fx('org_r'),
  case when n % 3 = 0 then null else (array[tests.fx('bot_one'), tests.fx('bot_two'), tests.fx('bot_three')])[1 + (n % 3)] end,
  'room ' || n, t, t + (15 + abs(hashint4(n * 31)) % 90) * interval '1 minute',
  (array['booked', 'completed', 'canceled', 'no_show'])[1 + abs(hashint4(n * 19)) % 4],
  'Attendee ' || n, 'a' || n || '@rollups.test', case when n % 3 = 0 then 'staff' else 'bot' end, abs(hashint4(n * 23)) % 2
from generate_series(1, 30) n
cross join lateral (select '2026-10-25 00:00Z'::timestamptz + (abs(hashint4(n * 29)) % 1000) * interval '15 minutes' as t) ts;

select is_empty($$select * from private.verify_rollups(tests.fx('org_r'))$$, 'rollups equal the raw aggregation after bulk inserts');

-- Updates: move messages in time and change roles and tokens (many per statement), and single rows.
update public.messages m set created_at = m.created_at + (random() * 48 - 24) * interval '1 hour',
  role = case when random() < 0.3 then 'assistant'::public.message_role else m.role end,
  tokens_in = m.tokens_in + 1
where m.org_id = tests.fx('org_r') and random() < 0.3;
update public.messages set latency_ms = null where id = (select min(id) from public.messages where org_id = tests.fx('org_r') and role = 'assistant');
update public.conversations c set status = 'escalated', escalated_at = c.created_at + interval '90 minutes', escalation_reason = 'r'
where c.org_id = tests.fx('org_r') and random() < 0.3;
update public.conversations c set status = 'closed', closed_at = c.created_at + random() * interval '5 days'
where c.org_id = tests.fx('org_r') and random() < 0.3;
-- A new end-user id too: the conversation may be live, and another live one
-- of bot two on api could hold its current end user.
update public.conversations c set bot_id = tests.fx('bot_two'), channel = 'api', external_user_id = 'moved'
where c.id = (select min(id::text)::uuid from public.conversations where org_id = tests.fx('org_r'));
update public.usage_events u set tokens_out = u.tokens_out + 7, bot_id = tests.fx('bot_one'), created_at = u.created_at + interval '5 hours'
where u.org_id = tests.fx('org_r') and random() < 0.3;

-- Calls: the queued ones ring, ended ones get their analysis, some move in time, one loses its duration.
update public.calls c set status = 'ringing' where c.org_id = tests.fx('org_r') and c.status = 'queued' and hashtext(c.to_number) % 2 = 0;
update public.calls c set sentiment = 'positive', duration_seconds = c.duration_seconds + 1.5, llm_latency_ms = null
where c.org_id = tests.fx('org_r') and c.status = 'ended' and abs(hashtext(c.to_number || 's')) % 10 < 4;
update public.calls c set created_at = c.created_at - interval '2 days', started_at = c.started_at - interval '2 days',
  ended_at = c.ended_at - interval '2 days'
where c.org_id = tests.fx('org_r') and abs(hashtext(c.to_number || 'm')) % 10 < 2;
update public.calls set duration_seconds = null
where id = (select min(id::text)::uuid from public.calls where org_id = tests.fx('org_r') and status = 'ended' and duration_seconds is not null);
update public.call_feedback f set rating = 6 - f.rating where f.org_id = tests.fx('org_r') and f.rating <> 3;

-- Booked appointments (the others are final) move to another day, are
-- rescheduled, change bot, complete.
update public.appointments a set starts_at = a.starts_at + interval '1 day 2 hours', ends_at = a.ends_at + interval '1 day 2 hours',
  reschedule_count = a.reschedule_count + 1
where a.org_id = tests.fx('org_r') and a.status = 'booked' and abs(hashtext(a.resource || 'm')) % 10 < 6;
update public.appointments a set bot_id = tests.fx('bot_two'), source = 'bot'
where a.org_id = tests.fx('org_r') and a.status = 'booked' and abs(hashtext(a.resource || 'b')) % 10 < 4;
update public.appointments a set status = 'completed' where a.org_id = tests.fx('org_r') and a.status = 'booked' and abs(hashtext(a.resource || 's')) % 2 = 0;

select is_empty($$select * from private.verify_rollups(tests.fx('org_r'))$$, 'rollups equal the raw aggregation after updates');

-- Deletes: messages (many and one), a conversation (its messages cascade), usage.
delete from public.messages m where m.org_id = tests.fx('org_r') and random() < 0.2;
delete from public.messages where id = (select max(id) from public.messages where org_id = tests.fx('org_r'));
delete from public.conversations where id = (select max(id::text)::uuid from public.conversations where org_id = tests.fx('org_r'));
delete from public.usage_events u where u.org_id = tests.fx('org_r') and random() < 0.2;
delete from public.calls c where c.org_id = tests.fx('org_r') and abs(hashtext(c.to_number || 'd')) % 10 < 2;
delete from public.appointments a where a.org_id = tests.fx('org_r') and abs(hashtext(a.resource || 'd')) % 10 < 2;

select is_empty($$select * from private.verify_rollups(tests.fx('org_r'))$$, 'rollups equal the raw aggregation after deletes');

-- A bot goes: its conversations cascade, its usage keeps a null bot.
delete from public.bots where id = tests.fx('bot_three');
-- A user goes: their web conversations' end user becomes the conversation.
delete from auth.users where id = tests.fx('web_user');
-- Interleaved inserts again, one row at a time.
insert into public.messages (org_id, conversation_id, role, content, created_at)
select c.org_id, c.id, 'user', 'late', '2026-11-01 05:30Z' from public.conversations c where c.org_id = tests.fx('org_r') order by c.id limit 1;
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at) values (tests.fx('org_r'), 'chat', 'm', 1, 1, now() - interval '30 minutes');

select is_empty($$select * from private.verify_rollups(tests.fx('org_r'))$$, 'rollups equal the raw aggregation after a bot and a user are deleted');
select ok((select count(*) from private.analytics_conversation_hours where org_id = tests.fx('org_r')) > 20, 'the rollups are not trivially empty');

select ok((select count(*) from private.analytics_days where org_id = tests.fx('org_r') and calls <> 0 and cardinality(end_users) > 0) > 5
  and (select count(*) from private.analytics_days where org_id = tests.fx('org_r') and cardinality(appointments_by_bot) > 0) > 5
  and (select count(*) from private.analytics_end_users where org_id = tests.fx('org_r')) > 3, 'the day and end-user rollups are not empty');

select tests.act_as('service_role');
select is(
  public.analytics_dashboard_summary(tests.fx('org_r'), '2026-10-25', '2026-11-08'),
  private.dashboard_summary_raw(tests.fx('org_r'), '2026-10-25', '2026-11-08'),
  'summary from rollups = summary from raw tables, across the end of summer time in New York'
);
select is(
  public.analytics_dashboard_summary(tests.fx('org_r'), '2026-10-31', '2026-11-02', 'Europe/Berlin'),
  private.dashboard_summary_raw(tests.fx('org_r'), '2026-10-31', '2026-11-02', 'Europe/Berlin'),
  'the same over a part of the range in another zone'
);
-- The org moves to another zone: the rollups are per UTC hour, so the new
-- default zone is cut from them as exactly.
select tests.act_as('postgres');
update public.organizations set time_zone = 'Asia/Tokyo' where id = tests.fx('org_r');
select tests.act_as('service_role');
select is(
  public.analytics_dashboard_summary(tests.fx('org_r'), '2026-10-26', '2026-11-04'),
  private.dashboard_summary_raw(tests.fx('org_r'), '2026-10-26', '2026-11-04'),
  'the same after the org''s time zone changes'
);

-- Writes only mark their day stale (one mark per day and transaction); the
-- first read of it recomputes it and clears the mark.
select tests.act_as('postgres');
select private.refresh_stale_analytics_days(100000);
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
values (tests.fx('org_r'), 'chat', 'm', 5, 5, '2026-11-03 12:00Z'), (tests.fx('org_r'), 'chat', 'm', 2, 3, '2026-11-03 13:00Z');
select is(
  (select array_agg(day) from private.analytics_stale_days where org_id = tests.fx('org_r')),
  array['2026-11-03'::date],
  'a write leaves its own day stale, marked once, and nothing else (21:00 and 22:00 in Tokyo)'
);
select tests.act_as('service_role');
select is(
  public.analytics_dashboard_summary(tests.fx('org_r'), '2026-10-26', '2026-11-04'),
  private.dashboard_summary_raw(tests.fx('org_r'), '2026-10-26', '2026-11-04'),
  'the read after it refreshes the day: the summary equals its raw twin'
);
select tests.act_as('postgres');
select is_empty($$select * from private.analytics_stale_days where org_id = tests.fx('org_r')$$, 'and the read cleared the mark');
select tests.remember('appointment', (select id from public.appointments where org_id = tests.fx('org_r') and status = 'booked' order by resource limit 1));
update public.appointments set external_event_id = 'mirrored-1', sync_status = 'synced' where id = tests.fx('appointment');
select is_empty($$select * from private.analytics_stale_days where org_id = tests.fx('org_r')$$,
  'an update that changes no figure (a calendar mirror''s event id and sync status) marks nothing');
update public.appointments set status = 'no_show' where id = tests.fx('appointment');
select is(
  (select array_agg(day) from private.analytics_stale_days where org_id = tests.fx('org_r')),
  (select array[(starts_at at time zone 'Asia/Tokyo')::date] from public.appointments where id = tests.fx('appointment')),
  'an appointment''s change marks the local day it starts on'
);

-- A rebuild gives the same rollups.
select tests.act_as('postgres');
create temp table rollup_before on commit drop as
  select to_jsonb(h) as j from private.analytics_conversation_hours h where h.org_id = tests.fx('org_r');
select private.rebuild_analytics_rollups(tests.fx('org_r'));
select is_empty(
  $$select j from rollup_before except select to_jsonb(h) from private.analytics_conversation_hours h where h.org_id = tests.fx('org_r')$$,
  'rebuild_analytics_rollups recomputes the same rows'
);

select * from finish();
rollback;
