-- Analytics (20261123001700_analytics.sql): every RPC against figures
-- computed by hand on a small fixed dataset in Europe/Berlin around the start
-- of summer time (2026-03-29, a 23-hour day: an event at 23:30 local that
-- day is 21:30 UTC), an empty range, another zone, the argument checks, who
-- may read (viewers yes, another org's owner and anon no; calls only with
-- calls.read), and the summary equal to its raw twin.
begin;
create extension if not exists pgtap with schema extensions;

select plan(63);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@analytics.test')),
  ('admin_a', tests.create_user('admin-a@analytics.test')),
  ('member_a', tests.create_user('member-a@analytics.test')),
  ('viewer_a', tests.create_user('viewer-a@analytics.test')),
  ('owner_b', tests.create_user('owner-b@analytics.test'));
select tests.remember('org_a', tests.create_org('analytics-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('analytics-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_a');
-- The admin joined on the 28th (Berlin); the others today.
update public.memberships set created_at = '2026-03-28 10:00Z' where org_id = tests.fx('org_a') and user_id = tests.fx('admin_a');
-- The current period started 10 days ago, so last_24h's usage is in it.
update public.subscriptions set current_period_start = now() - interval '10 days', current_period_end = now() + interval '20 days'
where org_id = tests.fx('org_a') and status = 'active';

insert into public.bots (org_id, name, slug) values
  (tests.fx('org_a'), 'Xena', 'xena'), (tests.fx('org_a'), 'Yuri', 'yuri'), (tests.fx('org_b'), 'Zed', 'zed');
select tests.remember('bot_' || slug, id) from public.bots where slug in ('xena', 'yuri', 'zed');
insert into public.api_keys (org_id, name, prefix, scopes) values (tests.fx('org_a'), 'Server', 'ak_0123abcd', '{chat.write}');
select tests.remember('key_a', id) from public.api_keys where prefix = 'ak_0123abcd';

-- Conversations (Berlin: CET until 2026-03-29 01:00 UTC, CEST after):
--   c1 Xena web (member_a) 27th 10:00, escalated 11:00
--   c2 Xena telegram tg-1 started 28th 23:30 UTC = 29th 00:30; closed 29th 21:30 UTC = 23:30 CEST (29th)
--   c3 Yuri telegram tg-1 30th; c4 Yuri api api-7 31st; c5 Xena telegram tg-2 25th (before the range)
--   c6 org B
insert into public.conversations (id, org_id, bot_id, channel, external_user_id, user_id, status, escalated_at, escalation_reason, closed_at, created_at) values
  ('00000000-0000-4000-a230-000000000001', tests.fx('org_a'), tests.fx('bot_xena'), 'web', null, tests.fx('member_a'), 'escalated', '2026-03-27 10:00Z', 'asked for a human', null, '2026-03-27 09:00Z'),
  ('00000000-0000-4000-a230-000000000002', tests.fx('org_a'), tests.fx('bot_xena'), 'telegram', 'tg-1', null, 'closed', null, null, '2026-03-29 21:30Z', '2026-03-28 23:30Z'),
  ('00000000-0000-4000-a230-000000000003', tests.fx('org_a'), tests.fx('bot_yuri'), 'telegram', 'tg-1', null, 'open', null, null, null, '2026-03-30 08:00Z'),
  ('00000000-0000-4000-a230-000000000004', tests.fx('org_a'), tests.fx('bot_yuri'), 'api', 'api-7', null, 'open', null, null, null, '2026-03-31 12:00Z'),
  ('00000000-0000-4000-a230-000000000005', tests.fx('org_a'), tests.fx('bot_xena'), 'telegram', 'tg-2', null, 'open', null, null, null, '2026-03-25 10:00Z'),
  ('00000000-0000-4000-a230-000000000006', tests.fx('org_b'), tests.fx('bot_zed'), 'web', null, tests.fx('owner_b'), 'open', null, null, null, '2026-03-27 10:00Z');

insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, created_at) values
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000001', 'user', 'hi', 0, 0, null, '2026-03-27 09:00:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000001', 'assistant', 'hello', 100, 20, 1500, '2026-03-27 09:00:02Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000001', 'user', 'more', 0, 0, null, '2026-03-27 09:05:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000001', 'assistant', 'sure', 120, 30, null, '2026-03-27 09:05:03Z'),
  -- c2: no latency recorded: the gap to the question, 4 s.
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000002', 'user', 'hallo', 0, 0, null, '2026-03-28 23:30:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000002', 'assistant', 'hallo!', 0, 0, null, '2026-03-28 23:30:04Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000002', 'system', 'closed by staff', 0, 0, null, '2026-03-29 21:30:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000003', 'user', 'again', 0, 0, null, '2026-03-30 08:00:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000003', 'assistant', 'yes', 50, 10, 800, '2026-03-30 08:00:01Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000004', 'user', 'api question', 0, 0, null, '2026-03-31 12:00:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000005', 'user', 'early', 0, 0, null, '2026-03-25 10:00:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000005', 'assistant', 'early answer', 0, 0, 900, '2026-03-25 10:00:02Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000005', 'user', 'back', 0, 0, null, '2026-03-31 15:00:00Z'),
  (tests.fx('org_a'), '00000000-0000-4000-a230-000000000005', 'assistant', 'welcome back', 0, 0, 700, '2026-03-31 15:00:01Z'),
  (tests.fx('org_b'), '00000000-0000-4000-a230-000000000006', 'user', 'b', 0, 0, null, '2026-03-27 10:00:00Z'),
  (tests.fx('org_b'), '00000000-0000-4000-a230-000000000006', 'assistant', 'b!', 5, 5, 300, '2026-03-27 10:00:01Z');

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, api_key_id, created_at) values
  (tests.fx('org_a'), 'chat', 'gpt-4o-mini', 100, 20, tests.fx('bot_xena'), null, '2026-03-27 09:00:02Z'),
  (tests.fx('org_a'), 'chat', 'gpt-4o-mini', 50, 10, tests.fx('bot_yuri'), tests.fx('key_a'), '2026-03-30 08:00:01Z'),
  (tests.fx('org_a'), 'embedding', 'text-embedding-3-small', 1000, 0, null, null, '2026-03-29 21:45Z'),
  (tests.fx('org_a'), 'chat', 'gpt-4o-mini', 10, 5, tests.fx('bot_xena'), null, now() - interval '2 hours'),
  (tests.fx('org_a'), 'speech', 'tts-1', 7, 3, null, null, now() - interval '3 days'),
  (tests.fx('org_b'), 'chat', 'gpt-4o-mini', 999, 999, tests.fx('bot_zed'), null, '2026-03-27 10:00Z');

-- Knowledge and uploads: batches b1 (27th), b2 (29th 23:00 CEST), b3 (31st).
insert into public.upload_batches (id, org_id, created_at) values
  ('00000000-0000-4000-b230-000000000001', tests.fx('org_a'), '2026-03-27 08:00Z'),
  ('00000000-0000-4000-b230-000000000002', tests.fx('org_a'), '2026-03-29 21:00Z'),
  ('00000000-0000-4000-b230-000000000003', tests.fx('org_a'), '2026-03-31 09:30Z');
insert into public.documents (org_id, batch_id, name, mime_type, size_bytes, storage_path, status, failure_reason, page_count, chunk_count,
                              ingest_attempts, ingested_at, created_at, updated_at) values
  (tests.fx('org_a'), '00000000-0000-4000-b230-000000000001', 'd1.pdf', 'application/pdf', 1000, 'an/d1', 'ready', null, 3, 7, 1, '2026-03-27 08:01Z', '2026-03-27 08:00Z', '2026-03-27 08:01Z'),
  (tests.fx('org_a'), '00000000-0000-4000-b230-000000000002', 'd2.pdf', 'application/pdf', 2000, 'an/d2', 'ready', null, 2, 4, 2, '2026-03-29 21:35Z', '2026-03-29 21:00Z', '2026-03-29 21:35Z'),
  (tests.fx('org_a'), '00000000-0000-4000-b230-000000000002', 'd3.pdf', 'application/pdf', 500, 'an/d3', 'failed', 'encrypted PDF', null, 0, 3, null, '2026-03-30 09:00Z', '2026-03-30 09:05Z'),
  (tests.fx('org_a'), null, 'd4.pdf', 'application/pdf', 300, 'an/d4', 'failed', 'encrypted PDF', null, 0, 1, null, '2026-03-31 09:00Z', '2026-03-31 09:01Z'),
  (tests.fx('org_a'), '00000000-0000-4000-b230-000000000003', 'd5.txt', 'text/plain', 200, 'an/d5', 'failed', 'no text', null, 0, 1, null, '2026-03-31 10:00Z', '2026-03-31 10:01Z'),
  (tests.fx('org_a'), '00000000-0000-4000-b230-000000000003', 'd6.txt', 'text/plain', 100, 'an/d6', 'queued', null, null, 0, 0, null, '2026-03-31 11:00Z', '2026-03-31 11:00Z');

insert into public.invitations (org_id, email, role, expires_at, revoked_at) values
  (tests.fx('org_a'), 'pending@analytics.test', 'member', now() + interval '3 days', null),
  (tests.fx('org_a'), 'revoked@analytics.test', 'member', now() + interval '3 days', now());

-- Open: Monday to Friday 09:00-17:00 Berlin (27th, 30th, 31st: 3 x 480 min),
-- closed the 31st 09:00-13:00 CEST (240 min): 1200 open minutes.
insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
select tests.fx('org_a'), null, d, '09:00', '17:00' from generate_series(1, 5) d;
insert into public.business_closures (org_id, during, reason) values
  (tests.fx('org_a'), tstzrange('2026-03-31 07:00Z', '2026-03-31 11:00Z'), 'team meeting');

insert into public.appointments (org_id, bot_id, starts_at, ends_at, status, attendee_name, attendee_email, source, reschedule_count) values
  (tests.fx('org_a'), tests.fx('bot_xena'), '2026-03-27 09:00Z', '2026-03-27 09:30Z', 'booked', 'A1', 'a1@x.test', 'bot', 0),
  (tests.fx('org_a'), null, '2026-03-30 07:00Z', '2026-03-30 08:00Z', 'completed', 'A2', 'a2@x.test', 'staff', 0),
  (tests.fx('org_a'), tests.fx('bot_yuri'), '2026-03-30 09:00Z', '2026-03-30 09:30Z', 'canceled', 'A3', 'a3@x.test', 'bot', 0),
  (tests.fx('org_a'), tests.fx('bot_xena'), '2026-03-31 12:00Z', '2026-03-31 12:45Z', 'no_show', 'A4', 'a4@x.test', 'staff', 1),
  -- 23:30 CEST on the 29th (the short day)
  (tests.fx('org_a'), tests.fx('bot_xena'), '2026-03-29 21:30Z', '2026-03-29 22:00Z', 'booked', 'A5', 'a5@x.test', 'bot', 2),
  (tests.fx('org_a'), tests.fx('bot_xena'), '2026-04-01 10:00Z', '2026-04-01 10:30Z', 'booked', 'A6', 'a6@x.test', 'bot', 0);

insert into public.calls (org_id, bot_id, direction, status, created_at, started_at, ended_at, duration_seconds, sentiment, to_number) values
  (tests.fx('org_a'), tests.fx('bot_xena'), 'inbound', 'ended', '2026-03-27 09:59Z', '2026-03-27 10:00Z', '2026-03-27 10:02Z', 120, 'positive', '+14155552301');

-- ---------------------------------------------------------------------------
-- The permission
-- ---------------------------------------------------------------------------

select is((select min_role::text from public.role_permissions where permission = 'analytics.read'), 'viewer',
  'analytics.read is held by viewers and up');

-- ---------------------------------------------------------------------------
-- Conversations, messages, engagement (as a viewer: viewers may read)
-- ---------------------------------------------------------------------------

select tests.act_as('viewer_a');

select results_eq(
  $$select day, started, escalated, closed from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$values ('2026-03-27'::date, 1, 1, 0), ('2026-03-28', 0, 0, 0), ('2026-03-29', 1, 0, 1), ('2026-03-30', 1, 0, 0), ('2026-03-31', 1, 0, 0)$$,
  'conversations_daily: per Berlin day, zeros for the empty 28th; c2 starts 00:30 and closes 23:30 on the 23-hour 29th'
);
select is(
  (select by_channel from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31') where day = '2026-03-29'),
  '{"telegram": {"started": 1, "escalated": 0, "closed": 1}}'::jsonb,
  'conversations_daily: by_channel lists the channels with figures'
);
select is(
  (select by_bot from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31') where day = '2026-03-27'),
  jsonb_build_array(jsonb_build_object('bot_id', tests.fx('bot_xena'), 'started', 1, 'escalated', 1, 'closed', 0)),
  'conversations_daily: by_bot'
);
select is(
  (select jsonb_agg(by_channel order by day) from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-28', '2026-03-28')),
  '[{}]'::jsonb,
  'conversations_daily: an empty day has empty breakdowns'
);

select results_eq(
  $$select day, user_messages, assistant_messages, system_messages, total, tokens_in, tokens_out
    from public.analytics_messages_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$values ('2026-03-27'::date, 2, 2, 0, 4, 220::bigint, 50::bigint), ('2026-03-28', 0, 0, 0, 0, 0, 0), ('2026-03-29', 1, 1, 1, 3, 0, 0),
           ('2026-03-30', 1, 1, 0, 2, 50, 10), ('2026-03-31', 2, 1, 0, 3, 0, 0)$$,
  'messages_daily: by role and tokens per Berlin day'
);

select results_eq(
  $$select day, end_users, returning_users, active_conversations, avg_messages_per_conversation, first_responses, median_first_response_ms
    from public.analytics_engagement_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$values ('2026-03-27'::date, 1, 0, 1, 4.00, 1, 1500::numeric), ('2026-03-28', 0, 0, 0, null, 0, null),
           ('2026-03-29', 1, 0, 1, 3.00, 1, 4000), ('2026-03-30', 1, 1, 1, 2.00, 1, 800), ('2026-03-31', 2, 1, 2, 1.50, 0, null)$$,
  'engagement_daily: end users, returning (tg-1 on the 30th, tg-2 seen on the 25th), messages per conversation, first-response median (c2: the 4 s gap)'
);

-- ---------------------------------------------------------------------------
-- Usage
-- ---------------------------------------------------------------------------

select results_eq(
  $$select day, chat_tokens_in, chat_tokens_out, embedding_tokens_in, embedding_tokens_out, speech_tokens_in, speech_tokens_out
    from public.analytics_usage_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$values ('2026-03-27'::date, 100::bigint, 20::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint), ('2026-03-28', 0, 0, 0, 0, 0, 0),
           ('2026-03-29', 0, 0, 1000, 0, 0, 0), ('2026-03-30', 50, 10, 0, 0, 0, 0), ('2026-03-31', 0, 0, 0, 0, 0, 0)$$,
  'usage_daily: tokens per kind and Berlin day (the embedding at 23:45 CEST is on the 29th)'
);
select is(
  (select by_api_key from public.analytics_usage_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31') where day = '2026-03-30'),
  jsonb_build_array(jsonb_build_object('api_key_id', tests.fx('key_a'), 'tokens_in', 50, 'tokens_out', 10, 'speech_seconds', 0)),
  'usage_daily: by_api_key'
);
select is(
  (select by_bot from public.analytics_usage_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31') where day = '2026-03-29'),
  '[{"bot_id": null, "tokens_in": 1000, "tokens_out": 0, "speech_seconds": 0}]'::jsonb,
  'usage_daily: by_bot (usage without a bot under bot_id null)'
);

select is(
  (select u - 'by_bot' - 'by_api_key' - 'quota' - 'last_24h' - 'last_7d' from public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  jsonb_build_object('org_id', tests.fx('org_a'), 'from_date', '2026-03-27', 'to_date', '2026-03-31', 'time_zone', 'Europe/Berlin',
    'tokens_in', 1150, 'tokens_out', 30, 'speech_seconds', 0, 'by_kind', '{"chat": {"tokens_in": 150, "tokens_out": 30}, "embedding": {"tokens_in": 1000, "tokens_out": 0}, "speech": {"tokens_in": 0, "tokens_out": 0}}'::jsonb),
  'usage: range totals by kind'
);
select is(
  (select u -> 'by_bot' from public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  jsonb_build_array(
    jsonb_build_object('bot_id', null, 'bot_name', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 0),
    jsonb_build_object('bot_id', tests.fx('bot_xena'), 'bot_name', 'Xena', 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 0),
    jsonb_build_object('bot_id', tests.fx('bot_yuri'), 'bot_name', 'Yuri', 'tokens_in', 50, 'tokens_out', 10, 'speech_seconds', 0)),
  'usage: by_bot, largest first'
);
select is(
  (select u -> 'by_api_key' from public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  jsonb_build_array(
    jsonb_build_object('api_key_id', null, 'api_key_name', null, 'tokens_in', 1100, 'tokens_out', 20, 'speech_seconds', 0),
    jsonb_build_object('api_key_id', tests.fx('key_a'), 'api_key_name', 'Server', 'tokens_in', 50, 'tokens_out', 10, 'speech_seconds', 0)),
  'usage: by_api_key'
);
select is(
  (select jsonb_build_array(u -> 'last_24h' -> 'tokens_in', u -> 'last_24h' -> 'tokens_out', u -> 'last_7d' -> 'tokens_in', u -> 'last_7d' -> 'tokens_out',
     u -> 'last_7d' -> 'by_kind' -> 'speech' -> 'tokens_in', u -> 'last_24h' -> 'speech_seconds', u -> 'last_7d' -> 'speech_seconds')
   from public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  -- Token totals are chat and embedding only (20261123010700): the speech row of 3 days ago (7 in, 3 out) and
  -- the fixture call's 120 s, metered as speech when inserted at now() (20261123009900), are speech seconds.
  '[10, 5, 10, 5, 127, 120, 127]'::jsonb,
  'usage: last 24 hours and last 7 days, whatever the range; speech seconds beside the tokens'
);
select is(
  (select (u -> 'quota') - 'period_start' - 'period_end' from public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  '{"plan_id": "free", "chat_tokens_used": 15, "chat_tokens_included": 200000, "chat_share": 0.0001,
    "embedding_tokens_used": 0, "embedding_tokens_included": 1000000, "embedding_share": 0.0000}'::jsonb,
  'usage: the share of the plan''s tokens used in the current period'
);

-- ---------------------------------------------------------------------------
-- Knowledge, uploads, team
-- ---------------------------------------------------------------------------

select is(
  (select k - 'daily' - 'org_id' - 'from_date' - 'to_date' - 'time_zone' from public.analytics_knowledge(tests.fx('org_a'), '2026-03-27', '2026-03-31') k),
  '{"documents_by_status": {"uploading": 0, "queued": 1, "processing": 0, "ready": 2, "failed": 3},
    "documents_ready": 2, "pages_ingested": 5, "chunks_ingested": 11, "median_ready_seconds": 1080.0,
    "documents_failed": 3, "failure_reasons": [{"reason": "encrypted PDF", "documents": 2}, {"reason": "no text", "documents": 1}]}'::jsonb,
  'knowledge: by status, ingested pages and chunks, median upload-to-ready (60 s and 2100 s), failure reasons ranked'
);
select is(
  (select k -> 'daily' from public.analytics_knowledge(tests.fx('org_a'), '2026-03-27', '2026-03-31') k),
  '[{"day": "2026-03-27", "documents_ready": 1, "pages": 3, "chunks": 7}, {"day": "2026-03-28", "documents_ready": 0, "pages": 0, "chunks": 0},
    {"day": "2026-03-29", "documents_ready": 1, "pages": 2, "chunks": 4}, {"day": "2026-03-30", "documents_ready": 0, "pages": 0, "chunks": 0},
    {"day": "2026-03-31", "documents_ready": 0, "pages": 0, "chunks": 0}]'::jsonb,
  'knowledge: pages and chunks per day (d2 ready at 23:35 CEST on the 29th)'
);

select is(
  (select u - 'daily' - 'org_id' - 'from_date' - 'to_date' - 'time_zone' from public.analytics_uploads(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  '{"batches": 3, "batches_by_status": {"in_progress": 1, "complete": 1, "failed": 1, "empty": 0},
    "files": 6, "files_by_status": {"uploading": 0, "queued": 1, "processing": 0, "ready": 2, "failed": 3},
    "bytes": 4100, "retried_files": 2, "ingest_attempts": 8}'::jsonb,
  'uploads: batches and files by status, bytes, retries'
);
select is(
  (select u -> 'daily' from public.analytics_uploads(tests.fx('org_a'), '2026-03-27', '2026-03-31') u),
  '[{"day": "2026-03-27", "batches": 1, "files": 1, "bytes": 1000}, {"day": "2026-03-28", "batches": 0, "files": 0, "bytes": 0},
    {"day": "2026-03-29", "batches": 1, "files": 1, "bytes": 2000}, {"day": "2026-03-30", "batches": 0, "files": 1, "bytes": 500},
    {"day": "2026-03-31", "batches": 1, "files": 3, "bytes": 600}]'::jsonb,
  'uploads: batches, files and bytes per day'
);

select is(
  (select t - 'recent_joins' - 'org_id' - 'from_date' - 'to_date' - 'time_zone' from public.analytics_team(tests.fx('org_a'), '2026-03-27', '2026-03-31') t),
  '{"members": 4, "members_by_role": {"viewer": 1, "member": 1, "admin": 1, "owner": 1}, "pending_invitations": 1,
    "joined_in_range": 1, "joined_last_30_days": 3}'::jsonb,
  'team: members by role, pending invitations (not the revoked one), joins in the range and in the last 30 days'
);
select is(
  (select jsonb_array_length(t -> 'recent_joins') from public.analytics_team(tests.fx('org_a'), '2026-03-27', '2026-03-31') t),
  3,
  'team: the recent joins are listed'
);

-- ---------------------------------------------------------------------------
-- Appointments
-- ---------------------------------------------------------------------------

select is(
  (select a - 'by_bot' - 'by_source' - 'utilisation' - 'org_id' - 'from_date' - 'to_date' - 'time_zone'
   from public.analytics_appointments(tests.fx('org_a'), '2026-03-27', '2026-03-31') a),
  '{"total": 5, "booked": 2, "completed": 1, "canceled": 1, "no_show": 1, "rescheduled": 2}'::jsonb,
  'appointments: by status and rescheduled over the range (the one on April 1st is out)'
);
select is(
  (select a -> 'by_source' from public.analytics_appointments(tests.fx('org_a'), '2026-03-27', '2026-03-31') a),
  '{"bot": {"total": 3, "booked": 2, "completed": 0, "canceled": 1, "no_show": 0, "rescheduled": 1},
    "staff": {"total": 2, "booked": 0, "completed": 1, "canceled": 0, "no_show": 1, "rescheduled": 1}}'::jsonb,
  'appointments: by source'
);
select is(
  (select jsonb_agg(jsonb_build_array(b ->> 'bot_name', b -> 'total', b -> 'booked', b -> 'no_show', b -> 'rescheduled'))
   from public.analytics_appointments(tests.fx('org_a'), '2026-03-27', '2026-03-31') a, jsonb_array_elements(a -> 'by_bot') b),
  '[["Xena", 3, 2, 1, 2], ["Yuri", 1, 0, 0, 0], [null, 1, 0, 0, 0]]'::jsonb,
  'appointments: by bot (appointments without a bot under bot_id null)'
);
select is(
  (select a -> 'utilisation' from public.analytics_appointments(tests.fx('org_a'), '2026-03-27', '2026-03-31') a),
  '{"open_minutes": 1200.0, "booked_minutes": 165.0, "share": 0.1375}'::jsonb,
  'appointments: utilisation = booked minutes (not canceled) / open minutes (business hours minus the closure)'
);
select results_eq(
  $$select day, total, booked, completed, canceled, no_show, rescheduled from public.analytics_appointments_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  $$values ('2026-03-27'::date, 1, 1, 0, 0, 0, 0), ('2026-03-28', 0, 0, 0, 0, 0, 0), ('2026-03-29', 1, 1, 0, 0, 0, 1),
           ('2026-03-30', 2, 0, 1, 1, 0, 0), ('2026-03-31', 1, 0, 0, 0, 1, 1)$$,
  'appointments_daily: per Berlin day they start on (23:30 CEST on the 29th stays on the 29th)'
);
select is(
  (select by_source from public.analytics_appointments_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31') where day = '2026-03-30'),
  '{"bot": 1, "staff": 1}'::jsonb,
  'appointments_daily: by source'
);

-- ---------------------------------------------------------------------------
-- The summary
-- ---------------------------------------------------------------------------

select is(
  (select jsonb_build_object('conversations', (s -> 'conversations') - 'by_bot', 'messages', s -> 'messages', 'engagement', s -> 'engagement')
   from public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31') s),
  '{"conversations": {"started": 4, "escalated": 1, "closed": 1, "by_channel": {"web": {"started": 1, "escalated": 1, "closed": 0},
      "telegram": {"started": 2, "escalated": 0, "closed": 1}, "voice": {"started": 0, "escalated": 0, "closed": 0}, "api": {"started": 1, "escalated": 0, "closed": 0}}},
    "messages": {"user": 6, "assistant": 5, "system": 1, "total": 12, "tokens_in": 270, "tokens_out": 60},
    "engagement": {"end_users": 4, "returning_users": 1, "active_conversations": 5, "avg_messages_per_conversation": 2.40,
      "first_responses": 3, "median_first_response_ms": 1500}}'::jsonb,
  'summary: conversations, messages and engagement over the range'
);
select is(
  (select s -> 'calls' from public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31') s),
  'null'::jsonb,
  'summary: a viewer gets no call figures (calls.read is a member permission)'
);
select is(
  (select jsonb_build_array(s -> 'usage' -> 'tokens_in', s -> 'knowledge' -> 'pages_ingested', s -> 'uploads' -> 'bytes',
     s -> 'team' -> 'members', s -> 'appointments' -> 'utilisation' -> 'share', s ->> 'time_zone')
   from public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31') s),
  '[1150, 5, 4100, 4, 0.1375, "Europe/Berlin"]'::jsonb,
  'summary: usage, knowledge, uploads, team and appointments headline figures'
);

select tests.act_as('member_a');
select is(
  (select jsonb_build_array(s -> 'calls' -> 'total', s -> 'calls' -> 'by_status' -> 'ended', s -> 'calls' ? 'by_bot')
   from public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31') s),
  '[1, 1, false]'::jsonb,
  'summary: a member gets call_stats_summary''s figures (without by_bot)'
);

select tests.act_as('service_role');
select is(
  public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31'),
  private.dashboard_summary_raw(tests.fx('org_a'), '2026-03-27', '2026-03-31'),
  'summary: the rollups give exactly the raw aggregation''s figures'
);
select is(
  public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-20', '2026-03-31', 'America/New_York'),
  private.dashboard_summary_raw(tests.fx('org_a'), '2026-03-20', '2026-03-31', 'America/New_York'),
  'summary: equal to the raw aggregation in another zone too'
);
select is_empty($$select * from private.verify_rollups(tests.fx('org_a'))$$, 'verify_rollups: org A''s rollups equal the raw aggregation');

-- ---------------------------------------------------------------------------
-- Zones, empty ranges, arguments
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select results_eq(
  $$select day, started from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-28', '2026-03-29', 'UTC')$$,
  $$values ('2026-03-28'::date, 1), ('2026-03-29', 0)$$,
  'conversations_daily: an explicit zone cuts other days (c2 started 23:30 UTC on the 28th)'
);
select results_eq(
  $$select day, started from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-28', '2026-03-29', 'Asia/Tokyo')$$,
  $$values ('2026-03-28'::date, 0), ('2026-03-29', 1)$$,
  'conversations_daily: and so does Tokyo'
);
select results_eq(
  $$select count(*)::integer, sum(started + escalated + closed)::integer from public.analytics_conversations_daily(tests.fx('org_a'), '2026-01-01', '2026-01-03')$$,
  $$values (3, 0)$$,
  'conversations_daily: an empty range gives a row of zeros per day'
);
select results_eq(
  $$select sum(total)::integer, sum(tokens_in)::integer from public.analytics_messages_daily(tests.fx('org_a'), '2026-01-01', '2026-01-03')$$,
  $$values (0, 0)$$,
  'messages_daily: zeros'
);
select is(
  (select jsonb_build_array(s -> 'conversations' -> 'started', s -> 'messages' -> 'total', s -> 'engagement' -> 'end_users',
     s -> 'engagement' -> 'median_first_response_ms', s -> 'usage' -> 'tokens_in', s -> 'appointments' -> 'total', s -> 'calls' -> 'total',
     s -> 'knowledge' -> 'documents_ready', s -> 'uploads' -> 'files')
   from public.analytics_dashboard_summary(tests.fx('org_a'), '2026-01-01', '2026-01-03') s),
  '[0, 0, 0, null, 0, 0, 0, 0, 0]'::jsonb,
  'summary: an empty range gives zeros'
);
select is(
  (select count(*)::integer from public.analytics_usage_daily(tests.fx('org_a'), '2025-01-01', '2025-12-31')),
  365,
  'usage_daily: a 365-day range'
);
select throws_ok(
  $$select * from public.analytics_messages_daily(tests.fx('org_a'), '2025-01-01', '2026-01-02')$$,
  '22023', 'the range is at most 366 days (asked for 367)',
  'a range over 366 days is refused'
);
select throws_ok(
  $$select public.analytics_dashboard_summary(tests.fx('org_a'), '2024-01-01', '2025-01-01')$$,
  '22023', 'the range is at most 366 days (asked for 367)',
  'the summary too'
);
select throws_ok(
  $$select * from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-31', '2026-03-27')$$,
  '22023', 'from_date must not be after to_date',
  'from_date after to_date is refused'
);
select throws_ok(
  $$select * from public.analytics_engagement_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31', 'Mars/Olympus')$$,
  '22023', 'unknown time zone: Mars/Olympus',
  'an unknown zone is refused'
);
select throws_ok(
  $$select public.analytics_team(tests.fx('org_a'), null, '2026-03-31')$$,
  '22023', 'from_date and to_date are required',
  'dates are required'
);

-- ---------------------------------------------------------------------------
-- Who may read
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select throws_ok($$select public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', 'you do not have the analytics.read permission in this organization', 'another org''s owner: no summary');
select throws_ok($$select * from public.analytics_conversations_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no conversations_daily');
select throws_ok($$select * from public.analytics_messages_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no messages_daily');
select throws_ok($$select * from public.analytics_engagement_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no engagement_daily');
select throws_ok($$select * from public.analytics_usage_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no usage_daily');
select throws_ok($$select public.analytics_usage(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no usage');
select throws_ok($$select public.analytics_knowledge(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no knowledge');
select throws_ok($$select public.analytics_uploads(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no uploads');
select throws_ok($$select public.analytics_team(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no team');
select throws_ok($$select public.analytics_appointments(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no appointments');
select throws_ok($$select * from public.analytics_appointments_daily(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'another org''s owner: no appointments_daily');
select is(
  (select sum(total)::integer from public.analytics_messages_daily(tests.fx('org_b'), '2026-03-27', '2026-03-31')),
  2,
  'another org''s owner reads their own org, and only its messages'
);
select throws_ok($$select private.dashboard_summary_raw(tests.fx('org_b'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'the raw twin is for the service role');
select throws_ok($$select * from private.verify_rollups(tests.fx('org_b'))$$,
  '42501', null, 'verify_rollups is for the service role');
select throws_ok($$select count(*) from private.analytics_conversation_hours$$,
  '42501', null, 'nobody signed in reads the rollups');

select tests.act_as('anon');
select throws_ok($$select public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'anon: no analytics');

-- A member removed mid-session loses access at once.
select tests.act_as('postgres');
delete from public.memberships where org_id = tests.fx('org_a') and user_id = tests.fx('viewer_a');
select tests.act_as('viewer_a');
select throws_ok($$select public.analytics_dashboard_summary(tests.fx('org_a'), '2026-03-27', '2026-03-31')$$,
  '42501', null, 'a removed viewer reads no more analytics');

-- Deleting an org takes its rollups with it (the cascade's triggers skip it).
select tests.act_as('postgres');
delete from public.organizations where id = tests.fx('org_b');
select is(
  (select count(*)::integer from private.analytics_conversation_hours where org_id = tests.fx('org_b'))
  + (select count(*)::integer from private.analytics_usage_hours where org_id = tests.fx('org_b'))
  + (select count(*)::integer from private.analytics_conversation_events where org_id = tests.fx('org_b'))
  + (select count(*)::integer from private.analytics_first_responses where org_id = tests.fx('org_b')),
  0,
  'deleting an org removes its rollups'
);

select * from finish();
rollback;
