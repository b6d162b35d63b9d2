-- Analytics rollups (20261123001700_analytics.sql) stay equal to the raw
-- aggregation through random inserts, updates and deletes of messages,
-- conversations and usage events, by single rows and whole statements, a
-- bot's deletion (its conversations cascade, its usage keeps a null bot) and
-- a user's (their conversations' end user changes), checked with
-- private.verify_rollups and by comparing the summary with its raw twin.
-- Deterministic (setseed), and small: a few hundred rows.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

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
update public.conversations c set bot_id = tests.fx('bot_two'), channel = 'api'
where c.id = (select min(id::text)::uuid from public.conversations where org_id = tests.fx('org_r'));
update public.usage_events u set tokens_out = u.tokens_out + 7, bot_id = tests.fx('bot_one'), created_at = u.created_at + interval '5 hours'
where u.org_id = tests.fx('org_r') and random() < 0.3;

select is_empty($$select * from private.verify_rollups(tests.fx('org_r'))$$, 'rollups equal the raw aggregation after updates');

-- Deletes: messages (many and one), a conversation (its messages cascade), usage.
delete from public.messages m where m.org_id = tests.fx('org_r') and random() < 0.2;
delete from public.messages where id = (select max(id) from public.messages where org_id = tests.fx('org_r'));
delete from public.conversations where id = (select max(id::text)::uuid from public.conversations where org_id = tests.fx('org_r'));
delete from public.usage_events u where u.org_id = tests.fx('org_r') and random() < 0.2;

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
