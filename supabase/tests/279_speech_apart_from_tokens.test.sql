-- Speech apart from tokens (20261123010700_speech_apart_from_tokens.sql).
--
-- Token totals count chat and embedding only; speech (seconds in tokens_in, 20261123009900) stays in
-- by_kind.speech and in speech_seconds beside each total: the usage section's range, last_24h and last_7d,
-- its by_bot and by_api_key (a bot with speech alone listed), analytics_usage_daily's by_bot and by_api_key,
-- and the dashboard summary's usage from day and week rows, equal to its raw twin. A call's metered talk time
-- (the real trigger) is in the windows' speech_seconds, not in their tokens nor in the chat quota.
--
-- One transaction, so now() is one instant. Range: 2025-06-01 (a Sunday) to 2025-06-08, so the week of
-- Monday 2025-06-02 is read from its week row and the 1st from its day row.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

select tests.remember('owner', tests.create_user('owner@279-speech-apart.test'));
select tests.remember('org', tests.create_org('speech-apart-279', tests.fx('owner')));
update public.organizations set time_zone = 'UTC' where id = tests.fx('org');
update public.subscriptions set current_period_start = now() - interval '10 days', current_period_end = now() + interval '20 days'
where org_id = tests.fx('org') and status = 'active';
insert into public.bots (org_id, name, slug) values
  (tests.fx('org'), 'Voice 279', 'voice-279'), (tests.fx('org'), 'Phone only 279', 'phone-only-279');
select tests.remember('voice', (select id from public.bots where slug = 'voice-279'));
select tests.remember('phone', (select id from public.bots where slug = 'phone-only-279'));
insert into public.api_keys (org_id, name, prefix, scopes) values (tests.fx('org'), 'Server 279', 'ak_279e5ec0', '{chat.write}');
select tests.remember('key', (select id from public.api_keys where prefix = 'ak_279e5ec0'));

-- In the range: 1100 + 20 tokens, 90 + 45 seconds of speech (the phone bot has speech only).
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, api_key_id, created_at) values
  (tests.fx('org'), 'chat', 'gpt-4o-mini', 100, 20, tests.fx('voice'), tests.fx('key'), '2025-06-02 10:00Z'),
  (tests.fx('org'), 'embedding', 'text-embedding-3-small', 1000, 0, null, null, '2025-06-02 11:00Z'),
  (tests.fx('org'), 'speech', 'vapi', 90, 0, tests.fx('voice'), null, '2025-06-02 12:00Z'),
  (tests.fx('org'), 'speech', 'vapi', 45, 0, tests.fx('phone'), null, '2025-06-03 09:00Z'),
  -- In the windows: 10 + 5 chat tokens an hour ago.
  (tests.fx('org'), 'chat', 'gpt-4o-mini', 10, 5, tests.fx('phone'), tests.fx('key'), now() - interval '1 hour');

-- A call ending with 61.2 s of talk: metered by its trigger as 62 s of speech now.
insert into public.calls (org_id, bot_id, direction, status, started_at, ended_at, duration_seconds, to_number) values
  (tests.fx('org'), tests.fx('voice'), 'inbound', 'ended', now() - interval '2 minutes', now() - interval '1 minute', 61.2, '+14155552790');

select is(
  (select tokens_in from public.usage_events where org_id = tests.fx('org') and kind = 'speech' and created_at = now()),
  62,
  'the fixture call''s talk time is metered as 62 s of speech'
);

-- ---------------------------------------------------------------------------
-- The usage section (hour rollups)
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
select is(
  (select u - 'org_id' - 'from_date' - 'to_date' - 'time_zone' - 'by_bot' - 'by_api_key' - 'quota' - 'last_24h' - 'last_7d'
   from public.analytics_usage(tests.fx('org'), '2025-06-01', '2025-06-08') u),
  '{"tokens_in": 1100, "tokens_out": 20, "speech_seconds": 135,
    "by_kind": {"chat": {"tokens_in": 100, "tokens_out": 20}, "embedding": {"tokens_in": 1000, "tokens_out": 0},
                "speech": {"tokens_in": 135, "tokens_out": 0}}}'::jsonb,
  'usage: the range''s tokens are chat and embedding; speech is its seconds, beside them and in by_kind'
);
select is(
  (select u -> 'by_bot' from public.analytics_usage(tests.fx('org'), '2025-06-01', '2025-06-08') u),
  jsonb_build_array(
    jsonb_build_object('bot_id', null, 'bot_name', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 0),
    jsonb_build_object('bot_id', tests.fx('voice'), 'bot_name', 'Voice 279', 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 90),
    jsonb_build_object('bot_id', tests.fx('phone'), 'bot_name', 'Phone only 279', 'tokens_in', 0, 'tokens_out', 0, 'speech_seconds', 45)),
  'usage: by_bot counts tokens only, speech_seconds beside them; a bot with speech alone is listed'
);
select is(
  (select u -> 'by_api_key' from public.analytics_usage(tests.fx('org'), '2025-06-01', '2025-06-08') u),
  jsonb_build_array(
    jsonb_build_object('api_key_id', null, 'api_key_name', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 135),
    jsonb_build_object('api_key_id', tests.fx('key'), 'api_key_name', 'Server 279', 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 0)),
  'usage: by_api_key counts tokens only, speech_seconds beside them'
);
select is(
  (select jsonb_build_object('last_24h', u -> 'last_24h', 'last_7d', u -> 'last_7d')
   from public.analytics_usage(tests.fx('org'), '2025-06-01', '2025-06-08') u),
  '{"last_24h": {"tokens_in": 10, "tokens_out": 5, "speech_seconds": 62,
                 "by_kind": {"chat": {"tokens_in": 10, "tokens_out": 5}, "embedding": {"tokens_in": 0, "tokens_out": 0},
                             "speech": {"tokens_in": 62, "tokens_out": 0}}},
    "last_7d": {"tokens_in": 10, "tokens_out": 5, "speech_seconds": 62,
                "by_kind": {"chat": {"tokens_in": 10, "tokens_out": 5}, "embedding": {"tokens_in": 0, "tokens_out": 0},
                            "speech": {"tokens_in": 62, "tokens_out": 0}}}}'::jsonb,
  'usage: the last 24 hours and 7 days count the call''s 62 s as speech seconds, not tokens'
);
select is(
  (select u -> 'quota' -> 'chat_tokens_used' from public.analytics_usage(tests.fx('org'), '2025-06-01', '2025-06-08') u),
  '15'::jsonb,
  'usage: the chat quota counts chat tokens only'
);

-- ---------------------------------------------------------------------------
-- analytics_usage_daily
-- ---------------------------------------------------------------------------

select results_eq(
  $$select day, speech_tokens_in, by_bot, by_api_key
    from public.analytics_usage_daily(tests.fx('org'), '2025-06-02', '2025-06-03')$$,
  $$values
    ('2025-06-02'::date, 90::bigint,
     jsonb_build_array(
       jsonb_build_object('bot_id', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 0),
       jsonb_build_object('bot_id', tests.fx('voice'), 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 90)),
     jsonb_build_array(
       jsonb_build_object('api_key_id', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 90),
       jsonb_build_object('api_key_id', tests.fx('key'), 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 0))),
    ('2025-06-03'::date, 45::bigint,
     jsonb_build_array(jsonb_build_object('bot_id', tests.fx('phone'), 'tokens_in', 0, 'tokens_out', 0, 'speech_seconds', 45)),
     jsonb_build_array(jsonb_build_object('api_key_id', null, 'tokens_in', 0, 'tokens_out', 0, 'speech_seconds', 45)))$$,
  'usage_daily: speech_tokens_in is the day''s seconds; by_bot and by_api_key count tokens only, speech_seconds beside them'
);

-- ---------------------------------------------------------------------------
-- The dashboard summary (day and week rows), and its raw twin
-- ---------------------------------------------------------------------------

select is(
  (select (s -> 'usage') - 'by_bot' - 'by_api_key' - 'by_kind' - 'quota' - 'last_24h' - 'last_7d'
   from public.analytics_dashboard_summary(tests.fx('org'), '2025-06-01', '2025-06-08') s),
  '{"tokens_in": 1100, "tokens_out": 20, "speech_seconds": 135}'::jsonb,
  'summary: usage tokens are chat and embedding, speech seconds beside them'
);
select is(
  (select s -> 'usage' -> 'by_bot' from public.analytics_dashboard_summary(tests.fx('org'), '2025-06-01', '2025-06-08') s),
  jsonb_build_array(
    jsonb_build_object('bot_id', null, 'bot_name', null, 'tokens_in', 1000, 'tokens_out', 0, 'speech_seconds', 0),
    jsonb_build_object('bot_id', tests.fx('voice'), 'bot_name', 'Voice 279', 'tokens_in', 100, 'tokens_out', 20, 'speech_seconds', 90),
    jsonb_build_object('bot_id', tests.fx('phone'), 'bot_name', 'Phone only 279', 'tokens_in', 0, 'tokens_out', 0, 'speech_seconds', 45)),
  'summary: by_bot as the usage section has it'
);
select is(
  (select s -> 'usage' -> 'last_24h' -> 'speech_seconds' from public.analytics_dashboard_summary(tests.fx('org'), '2025-06-01', '2025-06-08') s),
  '62'::jsonb,
  'summary: the window''s speech seconds'
);

select tests.act_as('postgres');
select ok(
  exists (select 1 from private.analytics_weeks w where w.org_id = tests.fx('org') and w.week = '2025-06-02'),
  'the summary read the week of 2025-06-02 from its week row'
);

select tests.act_as('service_role');
select is(
  public.analytics_dashboard_summary(tests.fx('org'), '2025-06-01', '2025-06-08'),
  private.dashboard_summary_raw(tests.fx('org'), '2025-06-01', '2025-06-08'),
  'summary: the day and week rows give exactly the raw aggregation''s figures'
);
select is(
  public.analytics_dashboard_summary(tests.fx('org'), '2025-06-01', '2025-06-08', 'America/New_York') -> 'usage',
  private.dashboard_summary_raw(tests.fx('org'), '2025-06-01', '2025-06-08', 'America/New_York') -> 'usage',
  'summary: the hour rollups in another zone give the raw aggregation''s usage'
);

select tests.act_as('postgres');
select is(
  private.analytics_usage_figures(tests.fx('org'), '2025-06-01 00:00Z', '2025-06-09 00:00Z', false),
  private.analytics_usage_figures(tests.fx('org'), '2025-06-01 00:00Z', '2025-06-09 00:00Z', true),
  'usage figures: the hour rollups equal the raw events'
);

select * from finish();
rollback;
