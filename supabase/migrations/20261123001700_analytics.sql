-- Analytics for dashboards: one set of read-only RPCs over every module
-- (conversations, messages and engagement; token usage and the plan's quota;
-- the knowledge base; uploads; the team; appointments; calls through
-- call_stats_summary) and one summary call with the headline figures of all
-- of them.
--
-- Where the functions live: in `public`, named analytics_*, as invoker
-- wrappers over definer code in `private` (the project's pattern). A separate
-- exposed `analytics` schema would have to be added to config.toml
-- [api].schemas, to PostgREST's db_schemas on every project (a dashboard
-- setting, outside migrations) and to the generated types; functions in
-- `public` reach supabase-js `rpc` with nothing else to configure.
--
-- Who reads: `analytics.read` (viewers and up, and platform admins, who read
-- every tenant). The figures are aggregates, so a viewer may see them even
-- where the rows themselves need a member (conversations, appointments) or an
-- admin (usage, invitations): that is why the code is definer and checks
-- analytics.read itself. Calls are the exception: they are
-- call_stats_summary's figures (20261123001210, from analytics_days in the
-- org's zone, else from call_stats_summary itself) and keep its calls.read
-- rule, so the summary's `calls` is null for a caller without it.
--
-- Arguments: every function takes (org_id, from_date, to_date, time_zone
-- default null): local days from_date..to_date, both included, at most 366;
-- the zone defaults to the org's (organizations.time_zone). Days are cut at
-- local midnights, so a DST day is 23 or 25 hours long. Errors: 22023 for a
-- bad argument (from after to, more than 366 days, an unknown zone), 42501
-- without analytics.read.
--
-- Speed: chat and usage figures come from rollups kept per UTC hour, so any
-- zone whose offset is a whole number of hours is cut from them exactly (the
-- org's zone can change, and a caller may ask for another one). Zones with a
-- half-hour or 45-minute offset (India, Nepal, parts of Australia) put a
-- bucket on the local day its first minute falls in: up to 30 or 45 minutes
-- of events at each local midnight land on the neighbouring day there.
-- The dashboard summary in the org's own zone (the default) reads one row per
-- local day (private.analytics_days: chat, usage and call figures derived
-- from the hour rollups and calls; a statement only marks the days it
-- touches stale, and the first read of a stale day, or the pg_cron job within
-- a minute, recomputes it — so the summary is volatile): at dashboard
-- densities an hour bucket holds about one conversation or call, and an
-- org's hour rows lie on as many pages as rows, so 90 day rows replace
-- thousands of page reads. In another zone it reads the hour rollups, and
-- its calls come from call_stats_summary.
-- The rollups are kept exact by statement-level triggers with transition
-- tables (one upsert per statement and rollup, never one per row), checked by
-- private.verify_rollups(org_id) against the raw aggregation, and rebuilt by
-- private.rebuild_analytics_rollups(org_id) (bulk loads may disable triggers
-- and rebuild after). Knowledge, uploads, team and appointments are small per
-- org and are read from their tables directly.

insert into public.role_permissions (permission, min_role, description) values
  ('analytics.read', 'viewer', 'See the organization''s dashboards: aggregated figures of chat, usage, knowledge, uploads, team and appointments');

-- ---------------------------------------------------------------------------
-- Rollups (private: no API role reads them; the definer functions below do)
-- ---------------------------------------------------------------------------

-- Who an end user is, across their conversations: the channel's user id
-- (a Telegram chat, an API `user`), else the signed-in dashboard user, else
-- the conversation itself (an anonymous API caller is one user per
-- conversation).
create function private.analytics_end_user(channel public.chat_channel, external_user_id text, user_id uuid, conversation_id uuid)
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  select channel::text || ':' || coalesce('external:' || external_user_id, 'user:' || user_id::text, 'conversation:' || conversation_id::text);
$$;

-- Messages per conversation and UTC hour: counts by role, tokens, and the end
-- user (so distinct and returning users need no join). One row per
-- conversation and hour it had messages in.
create table private.analytics_conversation_hours (
  org_id uuid not null references public.organizations (id) on delete cascade,
  conversation_id uuid not null,
  hour timestamptz not null,
  end_user text not null,
  user_messages integer not null,
  assistant_messages integer not null,
  system_messages integer not null,
  tokens_in bigint not null,
  tokens_out bigint not null,
  primary key (conversation_id, hour)
);
comment on table private.analytics_conversation_hours is 'Rollup of public.messages per conversation and UTC hour (kept by statement triggers; see private.verify_rollups).';
create index analytics_conversation_hours_org_hour_idx on private.analytics_conversation_hours (org_id, hour);
-- Returning users: an end user's earliest hour with a message of theirs.
create index analytics_conversation_hours_end_user_idx on private.analytics_conversation_hours (org_id, end_user, hour)
  where user_messages > 0;

-- Conversations started, escalated and closed per UTC hour, bot and channel
-- (each counted at the hour of created_at, escalated_at, closed_at).
create table private.analytics_conversation_events (
  org_id uuid not null references public.organizations (id) on delete cascade,
  hour timestamptz not null,
  bot_id uuid not null,
  channel public.chat_channel not null,
  started integer not null,
  escalated integer not null,
  closed integer not null,
  primary key (org_id, hour, bot_id, channel)
);
comment on table private.analytics_conversation_events is 'Rollup of public.conversations: started, escalated, closed per UTC hour, bot and channel.';

-- The bot's first answer in each conversation: when, and its latency
-- (messages.latency_ms, else the time since the user's message before it).
create table private.analytics_first_responses (
  conversation_id uuid primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  responded_at timestamptz not null,
  latency_ms integer
);
comment on table private.analytics_first_responses is 'The first assistant message of each conversation and its latency (for the median first-response time).';
create index analytics_first_responses_org_idx on private.analytics_first_responses (org_id, responded_at);

-- Token usage per UTC hour, kind, bot and API key.
create table private.analytics_usage_hours (
  org_id uuid not null references public.organizations (id) on delete cascade,
  hour timestamptz not null,
  kind text not null,
  bot_id uuid,
  api_key_id uuid,
  events integer not null,
  tokens_in bigint not null,
  tokens_out bigint not null,
  constraint analytics_usage_hours_key unique nulls not distinct (org_id, hour, kind, bot_id, api_key_id)
);
comment on table private.analytics_usage_hours is 'Rollup of public.usage_events per UTC hour, kind, bot and API key.';

-- Each end user's first hour with a message of theirs, so returning users
-- are one join instead of one probe of the hour rollup per user.
create table private.analytics_end_users (
  org_id uuid not null references public.organizations (id) on delete cascade,
  end_user text not null,
  first_hour timestamptz not null,
  primary key (org_id, end_user)
);
comment on table private.analytics_end_users is 'Each end user''s first UTC hour with a user message (derived from analytics_conversation_hours; kept by the message and conversation triggers).';

create index analytics_end_users_first_idx on private.analytics_end_users (org_id, first_hour);

-- The summary's figures per org and LOCAL day in the org's time zone
-- (organizations.time_zone), one row each: a 90-day summary reads 90 rows
-- instead of thousands of hour rows spread over as many pages (an org's hour
-- rows interleave with every other org's, and at dashboard densities an hour
-- holds about one conversation and one call). Derived from the hour rollups
-- (so cut exactly as they are), first_responses, end_users and calls, and
-- recomputed lazily: a statement only marks the (org, day)s it touches stale
-- (private.analytics_stale_days), and they are recomputed by the first read
-- of them (private.refresh_analytics_days, called by the summary and
-- verify_rollups) or by the pg_cron job every minute, whichever comes first.
-- A zone change marks all of the org's days. A summary in another zone reads
-- the hour rollups.
-- Distinct counts over a range come from the per-day sets (conversations
-- and end users of the day); returning users are the end users of the range
-- less those whose first message falls in it (new_end_users); medians and the
-- p95 from the per-day values (sorted).
create table private.analytics_days (
  org_id uuid not null references public.organizations (id) on delete cascade,
  day date not null,
  user_messages integer not null,
  assistant_messages integer not null,
  system_messages integer not null,
  tokens_in bigint not null,
  tokens_out bigint not null,
  -- Conversations with messages that day, and end users who wrote.
  conversations uuid[] not null,
  end_users text[] not null,
  -- End users whose first message ever was that day.
  new_end_users integer not null,
  -- The bot's first answers that day and their latencies (nulls left out).
  first_responses integer not null,
  first_response_latencies integer[] not null,
  -- [{bot_id, channel, started, escalated, closed}]
  events jsonb not null,
  -- [{kind, bot_id, api_key_id, tokens_in, tokens_out}]
  usage jsonb not null,
  -- Calls (not queued) by coalesce(started_at, ended_at, created_at), as
  -- call_stats_summary counts them: {total, by_status, by_sentiment,
  -- durations, duration_sum, stt_count, stt_sum, llm_count, llm_sum,
  -- tts_count, tts_sum}; and the ended calls' durations for the p95.
  calls jsonb not null,
  call_durations numeric[] not null,
  primary key (org_id, day)
);
comment on table private.analytics_days is 'The dashboard summary''s figures per org and local day in the org''s zone (derived from the hour rollups and calls; stale where private.analytics_stale_days says so until private.refresh_analytics_days runs; see private.verify_rollups).';

-- The (org, local day)s whose analytics_days row is out of date: written by
-- the triggers (one insert per statement), deleted by the refresh that
-- recomputes them. One mark per writing transaction (xact), so a writer never
-- relies on another transaction's mark: a refresh deletes only the marks it
-- sees (those committed), in a statement before it recomputes, so the
-- recomputation sees every write those marks stand for, and a write still in
-- progress keeps its own mark. Repeated statements of one transaction on a
-- day conflict and do nothing.
create table private.analytics_stale_days (
  org_id uuid not null references public.organizations (id) on delete cascade,
  day date not null,
  xact xid8 not null default pg_catalog.pg_current_xact_id(),
  primary key (org_id, day, xact)
);
comment on table private.analytics_stale_days is 'The (org, local day)s whose private.analytics_days row must be recomputed (marked by the analytics triggers, cleared by private.refresh_analytics_days).';

revoke all on private.analytics_conversation_hours, private.analytics_conversation_events,
  private.analytics_first_responses, private.analytics_usage_hours, private.analytics_end_users, private.analytics_days,
  private.analytics_stale_days
from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- The raw aggregations: what each rollup must hold. Used to rebuild the
-- rollups, to verify them, and by the raw version of the summary.
-- ---------------------------------------------------------------------------

create function private.analytics_raw_conversation_hours(org_ids uuid[])
returns setof private.analytics_conversation_hours
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, m.conversation_id, pg_catalog.date_trunc('hour', m.created_at, 'UTC'),
    private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    (count(*) filter (where m.role = 'user'))::integer,
    (count(*) filter (where m.role = 'assistant'))::integer,
    (count(*) filter (where m.role = 'system'))::integer,
    coalesce(sum(m.tokens_in), 0)::bigint,
    coalesce(sum(m.tokens_out), 0)::bigint
  from public.messages m
  join public.conversations c on c.id = m.conversation_id
  where m.org_id = any (org_ids)
  group by c.org_id, m.conversation_id, pg_catalog.date_trunc('hour', m.created_at, 'UTC'), c.channel, c.external_user_id, c.user_id, c.id;
$$;

create function private.analytics_raw_conversation_events(org_ids uuid[])
returns setof private.analytics_conversation_events
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, pg_catalog.date_trunc('hour', t.at, 'UTC'), c.bot_id, c.channel,
    sum(t.started)::integer, sum(t.escalated)::integer, sum(t.closed)::integer
  from public.conversations c
  cross join lateral (values (c.created_at, 1, 0, 0), (c.escalated_at, 0, 1, 0), (c.closed_at, 0, 0, 1)) t (at, started, escalated, closed)
  where c.org_id = any (org_ids) and t.at is not null
  group by 1, 2, 3, 4;
$$;

-- The first answer among the assistant messages before `before` (every one
-- when null): a first answer after it is not in any range ending there.
create function private.analytics_raw_first_responses(org_ids uuid[], before timestamptz default null)
returns setof private.analytics_first_responses
language sql
stable
security invoker
set search_path = ''
as $$
  select a.conversation_id, a.org_id, a.created_at,
    coalesce(a.latency_ms, (round(extract(epoch from a.created_at - u.created_at) * 1000))::integer)
  from (
    select distinct on (m.conversation_id) m.conversation_id, m.org_id, m.created_at, m.latency_ms, m.id
    from public.messages m
    where m.org_id = any (org_ids) and m.role = 'assistant' and (before is null or m.created_at < before)
    order by m.conversation_id, m.created_at, m.id
  ) a
  left join lateral (
    select m.created_at from public.messages m
    where m.conversation_id = a.conversation_id and m.role = 'user' and m.created_at <= a.created_at
    order by m.created_at desc, m.id desc
    limit 1
  ) u on true;
$$;

create function private.analytics_raw_usage_hours(org_ids uuid[])
returns setof private.analytics_usage_hours
language sql
stable
security invoker
set search_path = ''
as $$
  select u.org_id, pg_catalog.date_trunc('hour', u.created_at, 'UTC'), u.kind, u.bot_id, u.api_key_id,
    count(*)::integer, sum(u.tokens_in)::bigint, sum(u.tokens_out)::bigint
  from public.usage_events u
  where u.org_id = any (org_ids)
  group by 1, 2, 3, 4, 5;
$$;

create function private.analytics_raw_end_users(org_ids uuid[])
returns setof private.analytics_end_users
language sql
stable
security invoker
set search_path = ''
as $$
  select c.org_id, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    min(pg_catalog.date_trunc('hour', m.created_at, 'UTC'))
  from public.messages m
  join public.conversations c on c.id = m.conversation_id
  where m.org_id = any (org_ids) and m.role = 'user'
  group by 1, 2;
$$;

-- The analytics_days rows of these (org_ids[i], days[i]) pairs, from the
-- hour rollups, first_responses, end_users and calls as they stand (days
-- with nothing give no row).
create function private.analytics_compute_days(org_ids uuid[], days date[])
returns setof private.analytics_days
language sql
stable
security invoker
set search_path = ''
as $$
  with
  w as (
    select k.org_id, k.day, k.day::timestamp at time zone o.time_zone as s, (k.day + 1)::timestamp at time zone o.time_zone as e
    from (select distinct k.org_id, k.day from unnest(org_ids, days) k (org_id, day)) k
    join public.organizations o on o.id = k.org_id
  ),
  msg as (
    select w.org_id, w.day, sum(h.user_messages)::integer as user_messages, sum(h.assistant_messages)::integer as assistant_messages,
      sum(h.system_messages)::integer as system_messages, sum(h.tokens_in)::bigint as tokens_in, sum(h.tokens_out)::bigint as tokens_out,
      array_agg(distinct h.conversation_id) as conversations,
      coalesce(array_agg(distinct h.end_user) filter (where h.user_messages > 0), '{}') as end_users
    from w
    join private.analytics_conversation_hours h on h.org_id = w.org_id and h.hour >= w.s and h.hour < w.e
    group by 1, 2
  ),
  fresh as (
    select w.org_id, w.day, count(*)::integer as n
    from w
    join private.analytics_end_users u on u.org_id = w.org_id and u.first_hour >= w.s and u.first_hour < w.e
    group by 1, 2
  ),
  resp as (
    select w.org_id, w.day, count(*)::integer as n,
      coalesce(array_agg(f.latency_ms order by f.latency_ms) filter (where f.latency_ms is not null), '{}') as latencies
    from w
    join private.analytics_first_responses f on f.org_id = w.org_id and f.responded_at >= w.s and f.responded_at < w.e
    group by 1, 2
  ),
  ev as (
    select x.org_id, x.day,
      jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'channel', x.channel, 'started', x.started, 'escalated', x.escalated, 'closed', x.closed)
                order by x.bot_id, x.channel) as events
    from (
      select w.org_id, w.day, e.bot_id, e.channel, sum(e.started) as started, sum(e.escalated) as escalated, sum(e.closed) as closed
      from w
      join private.analytics_conversation_events e on e.org_id = w.org_id and e.hour >= w.s and e.hour < w.e
      group by 1, 2, 3, 4
    ) x
    where x.started <> 0 or x.escalated <> 0 or x.closed <> 0
    group by 1, 2
  ),
  us as (
    select x.org_id, x.day,
      jsonb_agg(jsonb_build_object('kind', x.kind, 'bot_id', x.bot_id, 'api_key_id', x.api_key_id, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out)
                order by x.kind, x.bot_id, x.api_key_id) as usage
    from (
      select w.org_id, w.day, u.kind, u.bot_id, u.api_key_id, sum(u.tokens_in) as tokens_in, sum(u.tokens_out) as tokens_out
      from w
      join private.analytics_usage_hours u on u.org_id = w.org_id and u.hour >= w.s and u.hour < w.e
      group by 1, 2, 3, 4, 5
    ) x
    where x.tokens_in <> 0 or x.tokens_out <> 0
    group by 1, 2
  ),
  ca as (
    select w.org_id, w.day,
      jsonb_build_object(
        'total', count(*),
        'by_status', jsonb_build_object(
          'ringing', count(*) filter (where c.status = 'ringing'),
          'in_progress', count(*) filter (where c.status = 'in_progress'),
          'ended', count(*) filter (where c.status = 'ended'),
          'failed', count(*) filter (where c.status = 'failed'),
          'no_answer', count(*) filter (where c.status = 'no_answer'),
          'busy', count(*) filter (where c.status = 'busy'),
          'canceled', count(*) filter (where c.status = 'canceled')),
        'by_sentiment', jsonb_build_object(
          'positive', count(*) filter (where c.sentiment = 'positive'),
          'neutral', count(*) filter (where c.sentiment = 'neutral'),
          'negative', count(*) filter (where c.sentiment = 'negative'),
          'unknown', count(*) filter (where c.sentiment = 'unknown')),
        'durations', count(c.duration_seconds) filter (where c.status = 'ended'),
        'duration_sum', coalesce(sum(c.duration_seconds) filter (where c.status = 'ended'), 0),
        'stt_count', count(c.stt_latency_ms), 'stt_sum', coalesce(sum(c.stt_latency_ms), 0),
        'llm_count', count(c.llm_latency_ms), 'llm_sum', coalesce(sum(c.llm_latency_ms), 0),
        'tts_count', count(c.tts_latency_ms), 'tts_sum', coalesce(sum(c.tts_latency_ms), 0)) as calls,
      coalesce(array_agg(c.duration_seconds order by c.duration_seconds)
        filter (where c.status = 'ended' and c.duration_seconds is not null), '{}') as durations
    from w
    join public.calls c on c.org_id = w.org_id
      and coalesce(c.started_at, c.ended_at, c.created_at) >= w.s and coalesce(c.started_at, c.ended_at, c.created_at) < w.e
    where c.status <> 'queued'
    group by 1, 2
  )
  select w.org_id, w.day,
    coalesce(msg.user_messages, 0), coalesce(msg.assistant_messages, 0), coalesce(msg.system_messages, 0),
    coalesce(msg.tokens_in, 0), coalesce(msg.tokens_out, 0), coalesce(msg.conversations, '{}'), coalesce(msg.end_users, '{}'),
    coalesce(fresh.n, 0), coalesce(resp.n, 0), coalesce(resp.latencies, '{}'),
    coalesce(ev.events, '[]'), coalesce(us.usage, '[]'),
    coalesce(ca.calls, jsonb_build_object('total', 0)), coalesce(ca.durations, '{}')
  from w
  left join msg on msg.org_id = w.org_id and msg.day = w.day
  left join fresh on fresh.org_id = w.org_id and fresh.day = w.day
  left join resp on resp.org_id = w.org_id and resp.day = w.day
  left join ev on ev.org_id = w.org_id and ev.day = w.day
  left join us on us.org_id = w.org_id and us.day = w.day
  left join ca on ca.org_id = w.org_id and ca.day = w.day
  where msg.org_id is not null or fresh.org_id is not null or resp.org_id is not null or ev.org_id is not null
    or us.org_id is not null or ca.org_id is not null;
$$;

-- Every local day (in each org's zone) on which these orgs have anything
-- analytics_days holds: for rebuilds and the check.
create function private.analytics_org_days(org_ids uuid[])
returns table (org_id uuid, day date)
language sql
stable
security invoker
set search_path = ''
as $$
  select distinct o.id, (x.at at time zone o.time_zone)::date
  from public.organizations o
  cross join lateral (
    select h.hour from private.analytics_conversation_hours h where h.org_id = o.id
    union
    select e.hour from private.analytics_conversation_events e where e.org_id = o.id
    union
    select f.responded_at from private.analytics_first_responses f where f.org_id = o.id
    union
    select u.first_hour from private.analytics_end_users u where u.org_id = o.id
    union
    select u.hour from private.analytics_usage_hours u where u.org_id = o.id
    union
    select coalesce(c.started_at, c.ended_at, c.created_at) from public.calls c where c.org_id = o.id and c.status <> 'queued'
  ) x (at)
  where o.id = any (org_ids);
$$;

-- Marks stale the local days (in each org's zone) these instants
-- (org_ids[i], ats[i]) fall on: one insert, called once by every trigger
-- statement with the instants it moved something from or to.
create function private.analytics_mark_days(org_ids uuid[], ats timestamptz[])
returns void
language sql
security invoker
set search_path = ''
as $$
  insert into private.analytics_stale_days (org_id, day)
  select distinct k.org_id, (k.at at time zone o.time_zone)::date
  from unnest(org_ids, ats) k (org_id, at)
  join public.organizations o on o.id = k.org_id
  where k.at is not null
  on conflict do nothing;
$$;

-- Recomputes the org's stale days in from_day..to_day (at most max_days of
-- them, the latest first; all when null) and clears their marks; returns how
-- many. Refreshes of one org take turns (an advisory lock to the end of the
-- transaction), so two of them never write the same day rows; without wait it
-- gives up (0) when another holds the org. Cheap when nothing is stale.
create function private.refresh_analytics_days(org_id uuid, from_day date, to_day date, max_days integer default null,
  wait boolean default true)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
-- Plans for the day count at hand: a generic plan cached after the cron job's
-- or verify_rollups' hundreds of days made a reader's one-day refresh take
-- about 100 ms instead of 4.
set plan_cache_mode = force_custom_plan
as $$
declare
  org uuid := refresh_analytics_days.org_id;
  days date[];
begin
  if not exists (
    select 1 from private.analytics_stale_days s
    where s.org_id = org and s.day >= refresh_analytics_days.from_day and s.day <= refresh_analytics_days.to_day
  ) then
    return 0;
  end if;
  if wait then
    perform pg_catalog.pg_advisory_xact_lock(1700, pg_catalog.hashtext(org::text));
  elsif not pg_catalog.pg_try_advisory_xact_lock(1700, pg_catalog.hashtext(org::text)) then
    return 0;
  end if;
  days := array(
    select distinct s.day from private.analytics_stale_days s
    where s.org_id = org and s.day >= refresh_analytics_days.from_day and s.day <= refresh_analytics_days.to_day
    order by s.day desc
    limit refresh_analytics_days.max_days);
  -- The marks go first, in their own statement: the recomputation below
  -- (a later snapshot) sees every write behind a mark deleted here.
  delete from private.analytics_stale_days s where s.org_id = org and s.day = any (days);
  delete from private.analytics_days d where d.org_id = org and d.day = any (days);
  insert into private.analytics_days
  select * from private.analytics_compute_days(array_fill(org, array[cardinality(days)]), days);
  return cardinality(days);
end;
$$;
comment on function private.refresh_analytics_days(uuid, date, date, integer, boolean) is 'Recomputes an org''s stale analytics_days in from_day..to_day (at most max_days) and clears their marks; returns how many. Called by every reader of analytics_days and the refresh-analytics-days cron job.';

-- The pg_cron job (every minute): every org's stale days, at most max_days in
-- a run, skipping an org another refresh holds; returns how many.
create function private.refresh_stale_analytics_days(max_days integer default 500)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  org uuid;
  done integer := 0;
begin
  for org in select distinct s.org_id from private.analytics_stale_days s loop
    exit when done >= max_days;
    done := done + private.refresh_analytics_days(org, '-infinity', 'infinity', max_days - done, false);
  end loop;
  return done;
end;
$$;
comment on function private.refresh_stale_analytics_days(integer) is 'Recomputes the stale analytics_days of every org (at most max_days in a run). Run every minute by pg_cron (refresh-analytics-days).';

-- ---------------------------------------------------------------------------
-- Keeping the rollups: statement triggers with transition tables. Each
-- statement folds its old rows (subtracted) and new rows (added) into one
-- upsert per rollup. Rows of an org being deleted are skipped (its rollups
-- go with it by cascade, and an insert would break the foreign key).
-- ---------------------------------------------------------------------------

-- Recomputes the first answer of these conversations from their messages.
create function private.analytics_refresh_first_responses(conversation_ids uuid[])
returns void
language sql
security invoker
set search_path = ''
as $$
  delete from private.analytics_first_responses f where f.conversation_id = any (conversation_ids);
  insert into private.analytics_first_responses (conversation_id, org_id, responded_at, latency_ms)
  select a.conversation_id, a.org_id, a.created_at,
    coalesce(a.latency_ms, (round(extract(epoch from a.created_at - u.created_at) * 1000))::integer)
  from unnest(conversation_ids) i (id)
  cross join lateral (
    select m.conversation_id, m.org_id, m.created_at, m.latency_ms from public.messages m
    where m.conversation_id = i.id and m.role = 'assistant'
    order by m.created_at, m.id
    limit 1
  ) a
  left join lateral (
    select m.created_at from public.messages m
    where m.conversation_id = i.id and m.role = 'user' and m.created_at <= a.created_at
    order by m.created_at desc, m.id desc
    limit 1
  ) u on true;
$$;

-- Recomputes the first hour of these end users (pairs of org_ids[i],
-- end_users[i]) from the hour rollup, which is up to date when this runs.
create function private.analytics_refresh_end_users(org_ids uuid[], end_users text[])
returns void
language sql
security invoker
set search_path = ''
as $$
  delete from private.analytics_end_users e
  using unnest(org_ids, end_users) k (org_id, end_user)
  where e.org_id = k.org_id and e.end_user = k.end_user;
  insert into private.analytics_end_users (org_id, end_user, first_hour)
  select k.org_id, k.end_user, f.first_hour
  from (select distinct k.org_id, k.end_user from unnest(org_ids, end_users) k (org_id, end_user)) k
  cross join lateral (
    select min(h.hour) as first_hour from private.analytics_conversation_hours h
    where h.org_id = k.org_id and h.end_user = k.end_user and h.user_messages > 0
  ) f
  where f.first_hour is not null;
$$;

create function private.analytics_messages_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.messages[] := '{}';
  new_list public.messages[] := '{}';
  conversation_ids uuid[];
  user_orgs uuid[];
  end_users text[];
  day_orgs uuid[];
  day_ats timestamptz[];
begin
  -- Each event has its own trigger (transition tables allow one event each);
  -- only the tables of this event exist here.
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_conversation_hours as h
    (org_id, conversation_id, hour, end_user, user_messages, assistant_messages, system_messages, tokens_in, tokens_out)
  select c.org_id, d.conversation_id, d.hour, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
    d.user_messages, d.assistant_messages, d.system_messages, d.tokens_in, d.tokens_out
  from (
    select r.conversation_id, pg_catalog.date_trunc('hour', r.created_at, 'UTC') as hour,
      sum(r.sign * (r.role = 'user')::integer)::integer as user_messages,
      sum(r.sign * (r.role = 'assistant')::integer)::integer as assistant_messages,
      sum(r.sign * (r.role = 'system')::integer)::integer as system_messages,
      sum(r.sign * r.tokens_in::bigint)::bigint as tokens_in,
      sum(r.sign * r.tokens_out::bigint)::bigint as tokens_out
    from (
      select o.conversation_id, o.created_at, o.role, o.tokens_in, o.tokens_out, -1 as sign from unnest(old_list) o
      union all
      select n.conversation_id, n.created_at, n.role, n.tokens_in, n.tokens_out, 1 from unnest(new_list) n
    ) r
    group by 1, 2
  ) d
  -- No conversation: this is its cascade, and its rows went with it.
  join public.conversations c on c.id = d.conversation_id
  where d.user_messages <> 0 or d.assistant_messages <> 0 or d.system_messages <> 0
    or d.tokens_in <> 0 or d.tokens_out <> 0
  on conflict (conversation_id, hour) do update
  set user_messages = h.user_messages + excluded.user_messages,
      assistant_messages = h.assistant_messages + excluded.assistant_messages,
      system_messages = h.system_messages + excluded.system_messages,
      tokens_in = h.tokens_in + excluded.tokens_in,
      tokens_out = h.tokens_out + excluded.tokens_out;

  if tg_op <> 'INSERT' then
    delete from private.analytics_conversation_hours h
    where h.conversation_id = any (array(select distinct o.conversation_id from unnest(old_list) o))
      and h.user_messages = 0 and h.assistant_messages = 0 and h.system_messages = 0;
  end if;

  conversation_ids := array(
    select o.conversation_id from unnest(old_list) o
    union
    select n.conversation_id from unnest(new_list) n
  );
  -- The end users who wrote in the conversations touched (none when their
  -- conversation is being deleted: its trigger refreshes them).
  select coalesce(array_agg(k.org_id), '{}'), coalesce(array_agg(k.end_user), '{}') into user_orgs, end_users
  from (
    select distinct c.org_id, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id) as end_user
    from public.conversations c
    where c.id = any (array(
      select o.conversation_id from unnest(old_list) o where o.role = 'user'
      union
      select n.conversation_id from unnest(new_list) n where n.role = 'user'))
  ) k;

  -- The days touched: the messages' own, and those of the first answers and
  -- first-seen hours before and after they are recomputed (a deleted first
  -- answer moves its conversation's to another message, maybe another day).
  select array_agg(x.org_id), array_agg(x.at) into day_orgs, day_ats
  from (
    select o.org_id, o.created_at as at from unnest(old_list) o
    union
    select n.org_id, n.created_at from unnest(new_list) n
    union
    select f.org_id, f.responded_at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;
  perform private.analytics_refresh_first_responses(conversation_ids);
  perform private.analytics_refresh_end_users(user_orgs, end_users);
  select day_orgs || array_agg(x.org_id), day_ats || array_agg(x.at) into day_orgs, day_ats
  from (
    select f.org_id, f.responded_at as at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;
  perform private.analytics_mark_days(day_orgs, day_ats);
  return null;
end;
$$;

create function private.analytics_conversations_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.conversations[] := '{}';
  new_list public.conversations[] := '{}';
  conversation_ids uuid[];
  user_orgs uuid[];
  end_users text[];
  day_orgs uuid[];
  day_ats timestamptz[];
begin
  if tg_op = 'UPDATE' then
    -- Most updates are the message counter (one per message): stop at once
    -- when nothing the rollups read has changed.
    if not exists (
      select 1 from old_rows o
      left join new_rows n on n.id = o.id
      where n.id is null
        or (o.org_id, o.bot_id, o.channel, o.created_at, o.escalated_at, o.closed_at, o.external_user_id, o.user_id)
           is distinct from (n.org_id, n.bot_id, n.channel, n.created_at, n.escalated_at, n.closed_at, n.external_user_id, n.user_id)
    ) then
      return null;
    end if;
  end if;
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_conversation_events as e (org_id, hour, bot_id, channel, started, escalated, closed)
  select d.org_id, d.hour, d.bot_id, d.channel, sum(d.started)::integer, sum(d.escalated)::integer, sum(d.closed)::integer
  from (
    select r.org_id, pg_catalog.date_trunc('hour', t.at, 'UTC') as hour, r.bot_id, r.channel,
      r.sign * t.started as started, r.sign * t.escalated as escalated, r.sign * t.closed as closed
    from (
      select o.org_id, o.bot_id, o.channel, o.created_at, o.escalated_at, o.closed_at, -1 as sign from unnest(old_list) o
      union all
      select n.org_id, n.bot_id, n.channel, n.created_at, n.escalated_at, n.closed_at, 1 from unnest(new_list) n
    ) r
    cross join lateral (values (r.created_at, 1, 0, 0), (r.escalated_at, 0, 1, 0), (r.closed_at, 0, 0, 1)) t (at, started, escalated, closed)
    where t.at is not null
  ) d
  where exists (select 1 from public.organizations o where o.id = d.org_id)
  group by 1, 2, 3, 4
  having sum(d.started) <> 0 or sum(d.escalated) <> 0 or sum(d.closed) <> 0
  on conflict (org_id, hour, bot_id, channel) do update
  set started = e.started + excluded.started,
      escalated = e.escalated + excluded.escalated,
      closed = e.closed + excluded.closed;

  -- The days touched: the events' own and, when conversations go or change
  -- hands, those of their hour rows, first answers and end users' first
  -- hours (before and after).
  conversation_ids := array(select o.id from unnest(old_list) o);
  select coalesce(array_agg(k.org_id), '{}'), coalesce(array_agg(k.end_user), '{}') into user_orgs, end_users
  from (
    select o.org_id, private.analytics_end_user(o.channel, o.external_user_id, o.user_id, o.id) as end_user from unnest(old_list) o
    union
    select n.org_id, private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id) from unnest(new_list) n
    where tg_op = 'UPDATE'
  ) k;
  select array_agg(x.org_id), array_agg(x.at) into day_orgs, day_ats
  from (
    select r.org_id, t.at
    from (
      select o.org_id, o.created_at, o.escalated_at, o.closed_at from unnest(old_list) o
      union all
      select n.org_id, n.created_at, n.escalated_at, n.closed_at from unnest(new_list) n
    ) r
    cross join lateral (values (r.created_at), (r.escalated_at), (r.closed_at)) t (at)
    union
    select h.org_id, h.hour from private.analytics_conversation_hours h where h.conversation_id = any (conversation_ids)
    union
    select f.org_id, f.responded_at from private.analytics_first_responses f where f.conversation_id = any (conversation_ids)
    union
    select e.org_id, e.first_hour from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user
  ) x;

  if tg_op = 'DELETE' then
    -- Its messages go too (cascade), whichever trigger runs first.
    delete from private.analytics_conversation_hours h where h.conversation_id = any (conversation_ids);
    delete from private.analytics_first_responses f where f.conversation_id = any (conversation_ids);
  elsif tg_op = 'UPDATE' then
    -- The end user changes when the signed-in user is deleted (user_id set
    -- null): a departed user's conversations become end users of their own.
    update private.analytics_conversation_hours h
    set org_id = n.org_id, end_user = private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id)
    from unnest(new_list) n
    where h.conversation_id = n.id
      and (h.org_id, h.end_user) is distinct from (n.org_id, private.analytics_end_user(n.channel, n.external_user_id, n.user_id, n.id));
    update private.analytics_first_responses f
    set org_id = n.org_id
    from unnest(new_list) n
    where f.conversation_id = n.id and f.org_id <> n.org_id;
  end if;
  if tg_op <> 'INSERT' then
    perform private.analytics_refresh_end_users(user_orgs, end_users);
    select day_orgs || array_agg(e.org_id), day_ats || array_agg(e.first_hour) into day_orgs, day_ats
    from private.analytics_end_users e, unnest(user_orgs, end_users) k (org_id, end_user)
    where e.org_id = k.org_id and e.end_user = k.end_user;
  end if;
  perform private.analytics_mark_days(day_orgs, day_ats);
  return null;
end;
$$;

create function private.analytics_usage_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.usage_events[] := '{}';
  new_list public.usage_events[] := '{}';
begin
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  insert into private.analytics_usage_hours as h (org_id, hour, kind, bot_id, api_key_id, events, tokens_in, tokens_out)
  select r.org_id, pg_catalog.date_trunc('hour', r.created_at, 'UTC'), r.kind, r.bot_id, r.api_key_id,
    sum(r.sign)::integer, sum(r.sign * r.tokens_in::bigint)::bigint, sum(r.sign * r.tokens_out::bigint)::bigint
  from (
    select o.org_id, o.created_at, o.kind, o.bot_id, o.api_key_id, o.tokens_in, o.tokens_out, -1 as sign from unnest(old_list) o
    union all
    select n.org_id, n.created_at, n.kind, n.bot_id, n.api_key_id, n.tokens_in, n.tokens_out, 1 from unnest(new_list) n
  ) r
  where exists (select 1 from public.organizations o where o.id = r.org_id)
  group by 1, 2, 3, 4, 5
  having sum(r.sign) <> 0 or sum(r.sign * r.tokens_in::bigint) <> 0 or sum(r.sign * r.tokens_out::bigint) <> 0
  on conflict on constraint analytics_usage_hours_key do update
  set events = h.events + excluded.events,
      tokens_in = h.tokens_in + excluded.tokens_in,
      tokens_out = h.tokens_out + excluded.tokens_out;

  perform private.analytics_mark_days(array_agg(x.org_id), array_agg(x.created_at))
  from (
    select o.org_id, o.created_at from unnest(old_list) o
    union
    select n.org_id, n.created_at from unnest(new_list) n
  ) x;
  return null;
end;
$$;

create function private.analytics_calls_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  old_list public.calls[] := '{}';
  new_list public.calls[] := '{}';
begin
  if tg_op = 'UPDATE' then
    -- Calls are updated often (events, dialling, costs): stop at once when
    -- nothing analytics_days reads has changed.
    if not exists (
      select 1 from old_rows o
      left join new_rows n on n.id = o.id
      where n.id is null
        or (o.org_id, o.status, o.sentiment, o.started_at, o.ended_at, o.created_at, o.duration_seconds,
            o.stt_latency_ms, o.llm_latency_ms, o.tts_latency_ms)
           is distinct from (n.org_id, n.status, n.sentiment, n.started_at, n.ended_at, n.created_at, n.duration_seconds,
            n.stt_latency_ms, n.llm_latency_ms, n.tts_latency_ms)
    ) then
      return null;
    end if;
  end if;
  if tg_op <> 'INSERT' then
    select coalesce(array_agg(o), '{}') into old_list from old_rows o;
  end if;
  if tg_op <> 'DELETE' then
    select coalesce(array_agg(n), '{}') into new_list from new_rows n;
  end if;

  -- Calls are few per org and day: their days are recomputed from them.
  perform private.analytics_mark_days(array_agg(x.org_id), array_agg(x.at))
  from (
    select o.org_id, coalesce(o.started_at, o.ended_at, o.created_at) as at from unnest(old_list) o
    union
    select n.org_id, coalesce(n.started_at, n.ended_at, n.created_at) from unnest(new_list) n
  ) x;
  return null;
end;
$$;

create trigger analytics_messages_inserted after insert on public.messages
  referencing new table as new_rows for each statement execute function private.analytics_messages_changed();
create trigger analytics_messages_updated after update on public.messages
  referencing old table as old_rows new table as new_rows for each statement execute function private.analytics_messages_changed();
create trigger analytics_messages_deleted after delete on public.messages
  referencing old table as old_rows for each statement execute function private.analytics_messages_changed();

create trigger analytics_conversations_inserted after insert on public.conversations
  referencing new table as new_rows for each statement execute function private.analytics_conversations_changed();
create trigger analytics_conversations_updated after update on public.conversations
  referencing old table as old_rows new table as new_rows for each statement execute function private.analytics_conversations_changed();
create trigger analytics_conversations_deleted after delete on public.conversations
  referencing old table as old_rows for each statement execute function private.analytics_conversations_changed();

create trigger analytics_usage_inserted after insert on public.usage_events
  referencing new table as new_rows for each statement execute function private.analytics_usage_changed();
create trigger analytics_usage_updated after update on public.usage_events
  referencing old table as old_rows new table as new_rows for each statement execute function private.analytics_usage_changed();
create trigger analytics_usage_deleted after delete on public.usage_events
  referencing old table as old_rows for each statement execute function private.analytics_usage_changed();

create trigger analytics_calls_inserted after insert on public.calls
  referencing new table as new_rows for each statement execute function private.analytics_calls_changed();
create trigger analytics_calls_updated after update on public.calls
  referencing old table as old_rows new table as new_rows for each statement execute function private.analytics_calls_changed();
create trigger analytics_calls_deleted after delete on public.calls
  referencing old table as old_rows for each statement execute function private.analytics_calls_changed();

-- An org's days are cut in its zone: a new zone drops them all and marks
-- every day with anything on it (in the new zone) stale. Cheaper than a
-- rebuild (finding the days reads the org's rollup keys; computing them reads
-- their rows), and the reads and the cron job recompute them as needed.
create function private.analytics_org_zone_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(1700, pg_catalog.hashtext(new.id::text));
  delete from private.analytics_days d where d.org_id = new.id;
  delete from private.analytics_stale_days s where s.org_id = new.id;
  insert into private.analytics_stale_days (org_id, day)
  select k.org_id, k.day from private.analytics_org_days(array[new.id]) k
  on conflict do nothing;
  return null;
end;
$$;

create trigger analytics_org_zone_changed after update of time_zone on public.organizations
  for each row when (old.time_zone is distinct from new.time_zone) execute function private.analytics_org_zone_changed();

-- Rebuilds the rollups of one org (every org when null) from the raw rows in
-- one statement each, holding off writers meanwhile so the result is exact.
-- After a bulk load with triggers off (session_replication_role = replica),
-- and in this migration for the rows that exist already.
create function private.rebuild_analytics_rollups(org_id uuid default null)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  org_ids uuid[];
begin
  lock table public.messages, public.conversations, public.usage_events, public.calls in share mode;
  org_ids := case when rebuild_analytics_rollups.org_id is null then array(select o.id from public.organizations o)
                  else array[rebuild_analytics_rollups.org_id] end;
  delete from private.analytics_conversation_hours h where h.org_id = any (org_ids);
  delete from private.analytics_conversation_events e where e.org_id = any (org_ids);
  delete from private.analytics_first_responses f where f.org_id = any (org_ids);
  delete from private.analytics_usage_hours u where u.org_id = any (org_ids);
  delete from private.analytics_end_users e where e.org_id = any (org_ids);
  delete from private.analytics_days d where d.org_id = any (org_ids);
  delete from private.analytics_stale_days s where s.org_id = any (org_ids);
  insert into private.analytics_conversation_hours select * from private.analytics_raw_conversation_hours(org_ids);
  insert into private.analytics_conversation_events select * from private.analytics_raw_conversation_events(org_ids);
  insert into private.analytics_first_responses select * from private.analytics_raw_first_responses(org_ids);
  insert into private.analytics_usage_hours select * from private.analytics_raw_usage_hours(org_ids);
  insert into private.analytics_end_users select * from private.analytics_raw_end_users(org_ids);
  -- Last: the days are derived from the rollups above.
  insert into private.analytics_days
  select * from private.analytics_compute_days(
    array(select k.org_id from private.analytics_org_days(org_ids) k order by k.org_id, k.day),
    array(select k.day from private.analytics_org_days(org_ids) k order by k.org_id, k.day));
end;
$$;
comment on function private.rebuild_analytics_rollups(uuid) is 'Recomputes the analytics rollups of one org (all when null) from messages, conversations, usage_events and calls. Service role.';

-- Every difference between an org's rollups and the raw aggregation (none
-- when they agree), after refreshing the org's stale days (so a day the
-- triggers failed to mark still shows). Rows whose figures are all zero count as absent.
create function private.verify_rollups(org_id uuid)
returns table (rollup text, key text, stored jsonb, expected jsonb)
language sql
volatile
security definer
set search_path = ''
as $$
  -- The stale days first (a read like any other), then every row checked.
  select private.refresh_analytics_days(verify_rollups.org_id, '-infinity', 'infinity');
  with
  s1 as (select h.conversation_id || ' ' || h.hour as k, to_jsonb(h) as j from private.analytics_conversation_hours h
         where h.org_id = verify_rollups.org_id and (h.user_messages, h.assistant_messages, h.system_messages, h.tokens_in, h.tokens_out) <> (0, 0, 0, 0, 0)),
  r1 as (select h.conversation_id || ' ' || h.hour as k, to_jsonb(h) as j from private.analytics_raw_conversation_hours(array[verify_rollups.org_id]) h),
  s2 as (select e.hour || ' ' || e.bot_id || ' ' || e.channel as k, to_jsonb(e) as j from private.analytics_conversation_events e
         where e.org_id = verify_rollups.org_id and (e.started, e.escalated, e.closed) <> (0, 0, 0)),
  r2 as (select e.hour || ' ' || e.bot_id || ' ' || e.channel as k, to_jsonb(e) as j from private.analytics_raw_conversation_events(array[verify_rollups.org_id]) e),
  s3 as (select f.conversation_id::text as k, to_jsonb(f) as j from private.analytics_first_responses f where f.org_id = verify_rollups.org_id),
  r3 as (select f.conversation_id::text as k, to_jsonb(f) as j from private.analytics_raw_first_responses(array[verify_rollups.org_id]) f),
  s4 as (select u.hour || ' ' || u.kind || ' ' || coalesce(u.bot_id::text, '-') || ' ' || coalesce(u.api_key_id::text, '-') as k, to_jsonb(u) as j
         from private.analytics_usage_hours u where u.org_id = verify_rollups.org_id and (u.events, u.tokens_in, u.tokens_out) <> (0, 0, 0)),
  r4 as (select u.hour || ' ' || u.kind || ' ' || coalesce(u.bot_id::text, '-') || ' ' || coalesce(u.api_key_id::text, '-') as k, to_jsonb(u) as j
         from private.analytics_raw_usage_hours(array[verify_rollups.org_id]) u),
  s5 as (select e.end_user as k, to_jsonb(e) as j from private.analytics_end_users e where e.org_id = verify_rollups.org_id),
  r5 as (select e.end_user as k, to_jsonb(e) as j from private.analytics_raw_end_users(array[verify_rollups.org_id]) e),
  -- The days against a fresh computation from the (checked) hour rollups and
  -- calls, over every day the org has anything on.
  s6 as (select d.day::text as k, to_jsonb(d) as j from private.analytics_days d where d.org_id = verify_rollups.org_id),
  r6 as (select d.day::text as k, to_jsonb(d) as j
         from private.analytics_compute_days(
           array(select k.org_id from private.analytics_org_days(array[verify_rollups.org_id]) k order by k.day),
           array(select k.day from private.analytics_org_days(array[verify_rollups.org_id]) k order by k.day)) d)
  select 'conversation_hours', coalesce(s1.k, r1.k), s1.j, r1.j from s1 full join r1 on r1.k = s1.k where s1.j is distinct from r1.j
  union all
  select 'conversation_events', coalesce(s2.k, r2.k), s2.j, r2.j from s2 full join r2 on r2.k = s2.k where s2.j is distinct from r2.j
  union all
  select 'first_responses', coalesce(s3.k, r3.k), s3.j, r3.j from s3 full join r3 on r3.k = s3.k where s3.j is distinct from r3.j
  union all
  select 'usage_hours', coalesce(s4.k, r4.k), s4.j, r4.j from s4 full join r4 on r4.k = s4.k where s4.j is distinct from r4.j
  union all
  select 'end_users', coalesce(s5.k, r5.k), s5.j, r5.j from s5 full join r5 on r5.k = s5.k where s5.j is distinct from r5.j
  union all
  select 'days', coalesce(s6.k, r6.k), s6.j, r6.j from s6 full join r6 on r6.k = s6.k where s6.j is distinct from r6.j;
$$;
comment on function private.verify_rollups(uuid) is 'The differences between an org''s analytics rollups and the raw aggregation of its messages, conversations, usage and calls (none when exact). Service role.';

-- ---------------------------------------------------------------------------
-- Arguments and access, shared by every analytics function
-- ---------------------------------------------------------------------------

create function private.analytics_scope(org_id uuid, from_date date, to_date date, time_zone text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
begin
  if analytics_scope.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if auth.role() is distinct from 'service_role'
    and not (analytics_scope.org_id = any (array(select private.readable_org_ids('analytics.read')))) then
    raise exception 'you do not have the analytics.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  if analytics_scope.from_date is null or analytics_scope.to_date is null then
    raise exception 'from_date and to_date are required' using errcode = 'invalid_parameter_value';
  end if;
  if analytics_scope.from_date > analytics_scope.to_date then
    raise exception 'from_date must not be after to_date' using errcode = 'invalid_parameter_value';
  end if;
  if analytics_scope.to_date - analytics_scope.from_date + 1 > 366 then
    raise exception 'the range is at most 366 days (asked for %)', analytics_scope.to_date - analytics_scope.from_date + 1
      using errcode = 'invalid_parameter_value';
  end if;
  zone := coalesce(analytics_scope.time_zone,
    (select o.time_zone from public.organizations o where o.id = analytics_scope.org_id), 'UTC');
  return private.require_time_zone(zone);
end;
$$;
comment on function private.analytics_scope(uuid, date, date, text) is 'Checks an analytics call (42501 without analytics.read; 22023 for a missing or reversed range, over 366 days, or an unknown zone) and returns the zone days are cut in (default the org''s).';

-- ---------------------------------------------------------------------------
-- Range figures (jsonb). Chat and usage read the rollups, or with `raw` the
-- raw tables (the same figures, for the benchmark and the equality test):
-- the unused branch is a constant-false filter and costs nothing.
-- ---------------------------------------------------------------------------

create function private.analytics_chat_figures(org uuid, range_start timestamptz, range_end timestamptz, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  ev as (
    select e.bot_id, e.channel, sum(e.started)::integer as started, sum(e.escalated)::integer as escalated, sum(e.closed)::integer as closed
    from private.analytics_conversation_events e
    where not raw and e.org_id = org and e.hour >= range_start and e.hour < range_end
    group by 1, 2
    union all
    select c.bot_id, c.channel, sum(t.started)::integer, sum(t.escalated)::integer, sum(t.closed)::integer
    from public.conversations c
    cross join lateral (values (c.created_at, 1, 0, 0), (c.escalated_at, 0, 1, 0), (c.closed_at, 0, 0, 1)) t (at, started, escalated, closed)
    where raw and c.org_id = org and t.at >= range_start and t.at < range_end
    group by 1, 2
  ),
  act as (
    select h.conversation_id, h.end_user, sum(h.user_messages)::bigint as user_messages, sum(h.assistant_messages)::bigint as assistant_messages,
      sum(h.system_messages)::bigint as system_messages, sum(h.tokens_in)::bigint as tokens_in, sum(h.tokens_out)::bigint as tokens_out
    from private.analytics_conversation_hours h
    where not raw and h.org_id = org and h.hour >= range_start and h.hour < range_end
    group by 1, 2
    union all
    select m.conversation_id, private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id),
      count(*) filter (where m.role = 'user'), count(*) filter (where m.role = 'assistant'), count(*) filter (where m.role = 'system'),
      sum(m.tokens_in)::bigint, sum(m.tokens_out)::bigint
    from public.messages m
    join public.conversations c on c.id = m.conversation_id
    where raw and m.org_id = org and m.created_at >= range_start and m.created_at < range_end
    group by m.conversation_id, c.channel, c.external_user_id, c.user_id, c.id
  ),
  users as (
    select distinct a.end_user from act a where a.user_messages > 0
  ),
  returning_users as (
    select u.end_user from users u
    join private.analytics_end_users e on e.org_id = org and e.end_user = u.end_user
    where not raw and e.first_hour < range_start
    union all
    select u.end_user from users u
    join (
      select distinct private.analytics_end_user(c.channel, c.external_user_id, c.user_id, c.id) as end_user
      from public.messages m
      join public.conversations c on c.id = m.conversation_id
      where raw and m.org_id = org and m.role = 'user' and m.created_at < range_start
    ) earlier on earlier.end_user = u.end_user
  ),
  responses as (
    select f.latency_ms from private.analytics_first_responses f
    where not raw and f.org_id = org and f.responded_at >= range_start and f.responded_at < range_end
    union all
    select f.latency_ms from private.analytics_raw_first_responses(array[org], range_end) f
    where raw and f.responded_at >= range_start
  ),
  totals as (
    select coalesce(sum(a.user_messages), 0) as user_messages, coalesce(sum(a.assistant_messages), 0) as assistant_messages,
      coalesce(sum(a.system_messages), 0) as system_messages, coalesce(sum(a.tokens_in), 0) as tokens_in,
      coalesce(sum(a.tokens_out), 0) as tokens_out, count(*) as conversations
    from act a
  )
  select jsonb_build_object(
    'conversations', jsonb_build_object(
      'started', (select coalesce(sum(ev.started), 0) from ev),
      'escalated', (select coalesce(sum(ev.escalated), 0) from ev),
      'closed', (select coalesce(sum(ev.closed), 0) from ev),
      'by_channel', (
        select jsonb_object_agg(x.channel, jsonb_build_object('started', x.started, 'escalated', x.escalated, 'closed', x.closed))
        from (
          select ch.channel, coalesce(sum(ev.started), 0) as started, coalesce(sum(ev.escalated), 0) as escalated, coalesce(sum(ev.closed), 0) as closed
          from unnest(enum_range(null::public.chat_channel)) ch (channel)
          left join ev on ev.channel = ch.channel
          group by ch.channel
        ) x),
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'started', x.started, 'escalated', x.escalated, 'closed', x.closed)
                         order by x.started desc, x.bot_id)
        from (select ev.bot_id, sum(ev.started) as started, sum(ev.escalated) as escalated, sum(ev.closed) as closed from ev group by ev.bot_id) x
        left join public.bots b on b.id = x.bot_id
        where x.started <> 0 or x.escalated <> 0 or x.closed <> 0), '[]'::jsonb)),
    'messages', (
      select jsonb_build_object('user', t.user_messages, 'assistant', t.assistant_messages, 'system', t.system_messages,
        'total', t.user_messages + t.assistant_messages + t.system_messages, 'tokens_in', t.tokens_in, 'tokens_out', t.tokens_out)
      from totals t),
    'engagement', jsonb_build_object(
      'end_users', (select count(*) from users),
      'returning_users', (select count(*) from returning_users),
      'active_conversations', (select t.conversations from totals t),
      'avg_messages_per_conversation', (
        select round((t.user_messages + t.assistant_messages + t.system_messages)::numeric / nullif(t.conversations, 0), 2) from totals t),
      'first_responses', (select count(*) from responses),
      'median_first_response_ms', (
        select round((percentile_cont(0.5) within group (order by r.latency_ms))::numeric) from responses r where r.latency_ms is not null)));
$$;

-- Tokens per kind in [from_at, to_at): whole hours from the rollup, the
-- partial hours at either end from usage_events (or everything raw). Each
-- part is its own bounded range, so the raw ends read only their minutes.
create function private.analytics_usage_between(org uuid, from_at timestamptz, to_at timestamptz, raw boolean)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  full_start timestamptz := case when pg_catalog.date_trunc('hour', from_at, 'UTC') = from_at then from_at
                                 else pg_catalog.date_trunc('hour', from_at, 'UTC') + interval '1 hour' end;
  full_end timestamptz := pg_catalog.date_trunc('hour', to_at, 'UTC');
  whole_raw boolean := raw or full_start >= full_end;
  result jsonb;
begin
  with
  parts as (
    select h.kind, h.tokens_in, h.tokens_out
    from private.analytics_usage_hours h
    where not whole_raw and h.org_id = org and h.hour >= full_start and h.hour < full_end
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where whole_raw and u.org_id = org and u.created_at >= from_at and u.created_at < to_at
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where not whole_raw and u.org_id = org and u.created_at >= from_at and u.created_at < full_start
    union all
    select u.kind, u.tokens_in::bigint, u.tokens_out::bigint
    from public.usage_events u
    where not whole_raw and u.org_id = org and u.created_at >= full_end and u.created_at < to_at
  ),
  per_kind as materialized (
    select p.kind, sum(p.tokens_in) as tokens_in, sum(p.tokens_out) as tokens_out from parts p group by p.kind
  ),
  k as (
    select kinds.kind, coalesce(p.tokens_in, 0) as tokens_in, coalesce(p.tokens_out, 0) as tokens_out
    from unnest(array['chat', 'embedding', 'speech']) kinds (kind)
    left join per_kind p on p.kind = kinds.kind
  )
  select jsonb_build_object(
    'tokens_in', sum(k.tokens_in), 'tokens_out', sum(k.tokens_out),
    'by_kind', jsonb_object_agg(k.kind, jsonb_build_object('tokens_in', k.tokens_in, 'tokens_out', k.tokens_out)))
  into result
  from k;
  return result;
end;
$$;

-- The usage figures that do not depend on the range: sliding windows ending
-- now, and the plan's quota over the current period.
create function private.analytics_usage_windows(org uuid, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  q as (
    select q.plan_id, q.monthly_chat_tokens, q.period_start, q.period_end, p.monthly_embedding_tokens,
      private.analytics_usage_between(org, q.period_start, q.period_end, raw) as used
    from private.chat_quota(org) q
    join public.plans p on p.id = q.plan_id
  ),
  quota as (
    select q.*,
      ((q.used -> 'by_kind' -> 'chat' ->> 'tokens_in')::bigint + (q.used -> 'by_kind' -> 'chat' ->> 'tokens_out')::bigint) as chat_used,
      ((q.used -> 'by_kind' -> 'embedding' ->> 'tokens_in')::bigint + (q.used -> 'by_kind' -> 'embedding' ->> 'tokens_out')::bigint) as embedding_used
    from q
  )
  select jsonb_build_object(
    'last_24h', private.analytics_usage_between(org, pg_catalog.now() - interval '24 hours', 'infinity', raw),
    'last_7d', private.analytics_usage_between(org, pg_catalog.now() - interval '7 days', 'infinity', raw),
    'quota', (
      select jsonb_build_object(
        'plan_id', quota.plan_id, 'period_start', quota.period_start, 'period_end', quota.period_end,
        'chat_tokens_used', quota.chat_used, 'chat_tokens_included', quota.monthly_chat_tokens,
        'chat_share', round(quota.chat_used::numeric / nullif(quota.monthly_chat_tokens, 0), 4),
        'embedding_tokens_used', quota.embedding_used, 'embedding_tokens_included', quota.monthly_embedding_tokens,
        'embedding_share', round(quota.embedding_used::numeric / nullif(quota.monthly_embedding_tokens, 0), 4))
      from quota));
$$;

-- Tokens over the range by kind (usage_between), bot and key, from the hour
-- rollup or (raw) usage_events.
create function private.analytics_usage_figures(org uuid, range_start timestamptz, range_end timestamptz, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  u as materialized (
    select h.bot_id, h.api_key_id, sum(h.tokens_in)::bigint as tokens_in, sum(h.tokens_out)::bigint as tokens_out
    from private.analytics_usage_hours h
    where not raw and h.org_id = org and h.hour >= range_start and h.hour < range_end
    group by 1, 2
    union all
    select e.bot_id, e.api_key_id, sum(e.tokens_in)::bigint, sum(e.tokens_out)::bigint
    from public.usage_events e
    where raw and e.org_id = org and e.created_at >= range_start and e.created_at < range_end
    group by 1, 2
  )
  select private.analytics_usage_between(org, range_start, range_end, raw) || jsonb_build_object(
    'by_bot', coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out)
                       order by x.tokens_in + x.tokens_out desc, x.bot_id nulls last)
      from (select u.bot_id, sum(u.tokens_in) as tokens_in, sum(u.tokens_out) as tokens_out from u group by u.bot_id) x
      left join public.bots b on b.id = x.bot_id
      where x.tokens_in <> 0 or x.tokens_out <> 0), '[]'::jsonb),
    'by_api_key', coalesce((
      select jsonb_agg(jsonb_build_object('api_key_id', x.api_key_id, 'api_key_name', k.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out)
                       order by x.tokens_in + x.tokens_out desc, x.api_key_id nulls last)
      from (select u.api_key_id, sum(u.tokens_in) as tokens_in, sum(u.tokens_out) as tokens_out from u group by u.api_key_id) x
      left join public.api_keys k on k.id = x.api_key_id
      where x.tokens_in <> 0 or x.tokens_out <> 0), '[]'::jsonb))
    || private.analytics_usage_windows(org, raw);
$$;

create function private.analytics_knowledge_figures(org uuid, zone text, first_day date, last_day date, with_daily boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  b as (select first_day::timestamp at time zone zone as s, (last_day + 1)::timestamp at time zone zone as e),
  ready as (
    select (d.ingested_at at time zone zone)::date as day, coalesce(d.page_count, 0) as pages, d.chunk_count as chunks,
      extract(epoch from d.ingested_at - d.created_at) as seconds
    from public.documents d, b
    where d.org_id = org and d.status = 'ready' and d.ingested_at >= b.s and d.ingested_at < b.e
  ),
  -- A failed document is final until retried; updated_at is when it failed.
  failed as (
    select d.failure_reason from public.documents d, b
    where d.org_id = org and d.status = 'failed' and d.updated_at >= b.s and d.updated_at < b.e
  )
  select jsonb_build_object(
    'documents_by_status', (
      select jsonb_object_agg(st.status, (select count(*) from public.documents d where d.org_id = org and d.status = st.status))
      from unnest(enum_range(null::public.document_status)) st (status)),
    'documents_ready', (select count(*) from ready),
    'pages_ingested', (select coalesce(sum(r.pages), 0) from ready r),
    'chunks_ingested', (select coalesce(sum(r.chunks), 0) from ready r),
    'median_ready_seconds', (select round((percentile_cont(0.5) within group (order by r.seconds))::numeric, 1) from ready r),
    'documents_failed', (select count(*) from failed),
    'failure_reasons', coalesce((
      select jsonb_agg(jsonb_build_object('reason', x.failure_reason, 'documents', x.n) order by x.n desc, x.failure_reason)
      from (select f.failure_reason, count(*) as n from failed f group by 1 order by 2 desc, 1 limit 10) x), '[]'::jsonb)
  ) || case when with_daily then jsonb_build_object('daily', (
    select jsonb_agg(jsonb_build_object('day', g.day, 'documents_ready', coalesce(x.n, 0), 'pages', coalesce(x.pages, 0), 'chunks', coalesce(x.chunks, 0))
                     order by g.day)
    from (select d::date as day from pg_catalog.generate_series(first_day::timestamp, last_day::timestamp, interval '1 day') d) g
    left join (select r.day, count(*) as n, sum(r.pages) as pages, sum(r.chunks) as chunks from ready r group by r.day) x on x.day = g.day))
  else '{}'::jsonb end;
$$;

create function private.analytics_upload_figures(org uuid, zone text, first_day date, last_day date, with_daily boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  b as (select first_day::timestamp at time zone zone as s, (last_day + 1)::timestamp at time zone zone as e),
  batches as (
    select ub.id, (ub.created_at at time zone zone)::date as day,
      case
        when count(d.id) = 0 then 'empty'
        when count(d.id) filter (where d.status in ('uploading', 'queued', 'processing')) > 0 then 'in_progress'
        when count(d.id) filter (where d.status = 'failed') > 0 then 'failed'
        else 'complete'
      end as status
    from public.upload_batches ub
    cross join b
    left join public.documents d on d.batch_id = ub.id
    where ub.org_id = org and ub.created_at >= b.s and ub.created_at < b.e
    group by ub.id, ub.created_at
  ),
  files as (
    select (d.created_at at time zone zone)::date as day, d.status, d.size_bytes, d.ingest_attempts
    from public.documents d, b
    where d.org_id = org and d.created_at >= b.s and d.created_at < b.e
  )
  select jsonb_build_object(
    'batches', (select count(*) from batches),
    'batches_by_status', (
      select jsonb_object_agg(st.status, (select count(*) from batches x where x.status = st.status))
      from unnest(array['in_progress', 'complete', 'failed', 'empty']) st (status)),
    'files', (select count(*) from files),
    'files_by_status', (
      select jsonb_object_agg(st.status, (select count(*) from files f where f.status = st.status))
      from unnest(enum_range(null::public.document_status)) st (status)),
    'bytes', (select coalesce(sum(f.size_bytes), 0) from files f),
    -- Ingestion runs per file since its last upload or retry (a retry starts
    -- again at 0): files that needed more than one, and the runs in all.
    'retried_files', (select count(*) from files f where f.ingest_attempts > 1),
    'ingest_attempts', (select coalesce(sum(f.ingest_attempts), 0) from files f)
  ) || case when with_daily then jsonb_build_object('daily', (
    select jsonb_agg(jsonb_build_object('day', g.day, 'batches', coalesce(bx.n, 0), 'files', coalesce(fx.n, 0), 'bytes', coalesce(fx.bytes, 0))
                     order by g.day)
    from (select d::date as day from pg_catalog.generate_series(first_day::timestamp, last_day::timestamp, interval '1 day') d) g
    left join (select x.day, count(*) as n from batches x group by x.day) bx on bx.day = g.day
    left join (select f.day, count(*) as n, sum(f.size_bytes) as bytes from files f group by f.day) fx on fx.day = g.day))
  else '{}'::jsonb end;
$$;

create function private.analytics_team_figures(org uuid, zone text, first_day date, last_day date)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select jsonb_build_object(
    'members', (select count(*) from public.memberships m where m.org_id = org),
    'members_by_role', (
      select jsonb_object_agg(r.role, (select count(*) from public.memberships m where m.org_id = org and m.role = r.role))
      from unnest(enum_range(null::public.org_role)) r (role)),
    'pending_invitations', (
      select count(*) from public.invitations i
      where i.org_id = org and i.accepted_at is null and i.revoked_at is null and i.expires_at > pg_catalog.now()),
    'joined_in_range', (
      select count(*) from public.memberships m
      where m.org_id = org and m.created_at >= first_day::timestamp at time zone zone and m.created_at < (last_day + 1)::timestamp at time zone zone),
    'joined_last_30_days', (
      select count(*) from public.memberships m where m.org_id = org and m.created_at >= pg_catalog.now() - interval '30 days'),
    'recent_joins', coalesce((
      select jsonb_agg(jsonb_build_object('user_id', x.user_id, 'display_name', x.display_name, 'role', x.role, 'joined_at', x.created_at)
                       order by x.created_at desc, x.user_id)
      from (
        select m.user_id, p.display_name, m.role, m.created_at
        from public.memberships m
        left join public.profiles p on p.user_id = m.user_id
        where m.org_id = org and m.created_at >= pg_catalog.now() - interval '30 days'
        order by m.created_at desc, m.user_id
        limit 20
      ) x), '[]'::jsonb));
$$;

-- Minutes the org is open within a window: private.open_ranges' rule for the
-- org (its business hours, the whole window when none are set, minus its
-- closures), without open_ranges' calendar.read check: analytics.read, checked
-- by the caller, is the rule here.
create function private.analytics_open_minutes(org uuid, during tstzrange)
returns numeric
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(sum(extract(epoch from pg_catalog.upper(r) - pg_catalog.lower(r)) / 60), 0)::numeric
  from unnest(
    (coalesce(private.business_hours_ranges(org, null, during), pg_catalog.tstzmultirange(during))
     - coalesce((select pg_catalog.range_agg(c.during) from public.business_closures c
                 where c.org_id = org and c.bot_id is null and c.during && during), '{}'::tstzmultirange))
    * pg_catalog.tstzmultirange(during)
  ) r;
$$;

-- Appointments by the local day they start on, by current status;
-- `rescheduled`: moved at least once.
create function private.analytics_appointment_figures(org uuid, zone text, first_day date, last_day date)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  b as (select first_day::timestamp at time zone zone as s, (last_day + 1)::timestamp at time zone zone as e),
  a as (
    select ap.bot_id, ap.source, ap.status, ap.reschedule_count, extract(epoch from ap.ends_at - ap.starts_at) / 60 as minutes
    from public.appointments ap, b
    where ap.org_id = org and ap.starts_at >= b.s and ap.starts_at < b.e
  ),
  counts as (
    select grouping(a.bot_id) = 0 as per_bot, grouping(a.source) = 0 as per_source, a.bot_id, a.source,
      count(*) as total,
      jsonb_build_object('total', count(*),
        'booked', count(*) filter (where a.status = 'booked'),
        'completed', count(*) filter (where a.status = 'completed'),
        'canceled', count(*) filter (where a.status = 'canceled'),
        'no_show', count(*) filter (where a.status = 'no_show'),
        'rescheduled', count(*) filter (where a.reschedule_count > 0)) as figures,
      coalesce(sum(a.minutes) filter (where a.status <> 'canceled'), 0)::numeric as booked_minutes
    from a
    group by grouping sets ((), (a.bot_id), (a.source))
  ),
  open as (select private.analytics_open_minutes(org, pg_catalog.tstzrange(b.s, b.e, '[)')) as minutes from b),
  zero as (select jsonb_build_object('total', 0, 'booked', 0, 'completed', 0, 'canceled', 0, 'no_show', 0, 'rescheduled', 0) as figures)
  select coalesce((select c.figures from counts c where not c.per_bot and not c.per_source), (select z.figures from zero z))
    || jsonb_build_object(
    'by_source', (
      select jsonb_object_agg(src.source, coalesce(c.figures, z.figures))
      from unnest(array['bot', 'staff']) src (source)
      cross join zero z
      left join counts c on c.per_source and c.source = src.source),
    'by_bot', coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', c.bot_id, 'bot_name', bt.name) || c.figures order by c.total desc, c.bot_id nulls last)
      from counts c
      left join public.bots bt on bt.id = c.bot_id
      where c.per_bot), '[]'::jsonb),
    'utilisation', (
      select jsonb_build_object(
        'open_minutes', round(o.minutes, 1),
        'booked_minutes', round(t.booked_minutes, 1),
        'share', round(t.booked_minutes / nullif(o.minutes, 0), 4))
      from open o
      cross join (select coalesce((select c.booked_minutes from counts c where not c.per_bot and not c.per_source), 0) as booked_minutes) t));
$$;

-- The summary's chat, usage (of the range) and call figures over the org's
-- local days first_day..last_day (its zone), from analytics_days: the same
-- figures as analytics_chat_figures, analytics_usage_figures' range part and
-- call_stats_summary without by_bot. Call feedback (a few ratings per org) is
-- read from its table, joined to the calls of [range_start, range_end).
create function private.analytics_day_figures(org uuid, first_day date, last_day date, range_start timestamptz, range_end timestamptz)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  d as materialized (
    select d.* from private.analytics_days d where d.org_id = org and d.day >= first_day and d.day <= last_day
  ),
  ev as (
    select x.bot_id, x.channel, sum(x.started) as started, sum(x.escalated) as escalated, sum(x.closed) as closed
    from d cross join jsonb_to_recordset(d.events) x (bot_id uuid, channel public.chat_channel, started integer, escalated integer, closed integer)
    group by 1, 2
  ),
  us as (
    select x.kind, x.bot_id, x.api_key_id, sum(x.tokens_in) as tokens_in, sum(x.tokens_out) as tokens_out
    from d cross join jsonb_to_recordset(d.usage) x (kind text, bot_id uuid, api_key_id uuid, tokens_in bigint, tokens_out bigint)
    group by 1, 2, 3
  ),
  t as (
    select coalesce(sum(d.user_messages), 0) as user_messages, coalesce(sum(d.assistant_messages), 0) as assistant_messages,
      coalesce(sum(d.system_messages), 0) as system_messages, coalesce(sum(d.tokens_in), 0) as tokens_in,
      coalesce(sum(d.tokens_out), 0) as tokens_out, coalesce(sum(d.new_end_users), 0) as new_end_users,
      coalesce(sum(d.first_responses), 0) as first_responses,
      (select count(distinct c) from d, unnest(d.conversations) c) as conversations,
      (select count(distinct u) from d, unnest(d.end_users) u) as end_users,
      (select round((percentile_cont(0.5) within group (order by l))::numeric) from d, unnest(d.first_response_latencies) l) as median_first_response_ms,
      coalesce(sum((d.calls ->> 'total')::integer), 0) as calls
    from d
  ),
  -- Sums of the days' call figures, key by key.
  cf as (
    select x.key, sum(x.value::numeric) as value
    from d cross join jsonb_each_text(d.calls - 'by_status' - 'by_sentiment') x
    group by x.key
  ),
  cs as (
    select 'status' as dimension, x.key, sum(x.value::integer) as value
    from d cross join jsonb_each_text(coalesce(d.calls -> 'by_status', '{}')) x group by x.key
    union all
    select 'sentiment', x.key, sum(x.value::integer)
    from d cross join jsonb_each_text(coalesce(d.calls -> 'by_sentiment', '{}')) x group by x.key
  ),
  fb as (
    select count(*) as ratings, sum(f.rating) as rating_sum
    from public.call_feedback f
    join public.calls c on c.id = f.call_id and c.org_id = f.org_id
    where f.org_id = org and c.status <> 'queued'
      and coalesce(c.started_at, c.ended_at, c.created_at) >= range_start and coalesce(c.started_at, c.ended_at, c.created_at) < range_end
  )
  select jsonb_build_object(
    'conversations', jsonb_build_object(
      'started', (select coalesce(sum(ev.started), 0) from ev),
      'escalated', (select coalesce(sum(ev.escalated), 0) from ev),
      'closed', (select coalesce(sum(ev.closed), 0) from ev),
      'by_channel', (
        select jsonb_object_agg(x.channel, jsonb_build_object('started', x.started, 'escalated', x.escalated, 'closed', x.closed))
        from (
          select ch.channel, coalesce(sum(ev.started), 0) as started, coalesce(sum(ev.escalated), 0) as escalated, coalesce(sum(ev.closed), 0) as closed
          from unnest(enum_range(null::public.chat_channel)) ch (channel)
          left join ev on ev.channel = ch.channel
          group by ch.channel
        ) x),
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'started', x.started, 'escalated', x.escalated, 'closed', x.closed)
                         order by x.started desc, x.bot_id)
        from (select ev.bot_id, sum(ev.started) as started, sum(ev.escalated) as escalated, sum(ev.closed) as closed from ev group by ev.bot_id) x
        left join public.bots b on b.id = x.bot_id
        where x.started <> 0 or x.escalated <> 0 or x.closed <> 0), '[]'::jsonb)),
    'messages', jsonb_build_object('user', t.user_messages, 'assistant', t.assistant_messages, 'system', t.system_messages,
      'total', t.user_messages + t.assistant_messages + t.system_messages, 'tokens_in', t.tokens_in, 'tokens_out', t.tokens_out),
    'engagement', jsonb_build_object(
      'end_users', t.end_users,
      -- Who wrote in the range, less those whose first message is in it.
      'returning_users', t.end_users - t.new_end_users,
      'active_conversations', t.conversations,
      'avg_messages_per_conversation',
        round((t.user_messages + t.assistant_messages + t.system_messages)::numeric / nullif(t.conversations, 0), 2),
      'first_responses', t.first_responses,
      'median_first_response_ms', t.median_first_response_ms),
    'usage', (
      select jsonb_build_object(
        'tokens_in', sum(k.tokens_in), 'tokens_out', sum(k.tokens_out),
        'by_kind', jsonb_object_agg(k.kind, jsonb_build_object('tokens_in', k.tokens_in, 'tokens_out', k.tokens_out)))
      from (
        select kinds.kind, coalesce(sum(us.tokens_in), 0) as tokens_in, coalesce(sum(us.tokens_out), 0) as tokens_out
        from unnest(array['chat', 'embedding', 'speech']) kinds (kind)
        left join us on us.kind = kinds.kind
        group by kinds.kind
      ) k) || jsonb_build_object(
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out)
                         order by x.tokens_in + x.tokens_out desc, x.bot_id nulls last)
        from (select us.bot_id, sum(us.tokens_in) as tokens_in, sum(us.tokens_out) as tokens_out from us group by us.bot_id) x
        left join public.bots b on b.id = x.bot_id
        where x.tokens_in <> 0 or x.tokens_out <> 0), '[]'::jsonb),
      'by_api_key', coalesce((
        select jsonb_agg(jsonb_build_object('api_key_id', x.api_key_id, 'api_key_name', k.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out)
                         order by x.tokens_in + x.tokens_out desc, x.api_key_id nulls last)
        from (select us.api_key_id, sum(us.tokens_in) as tokens_in, sum(us.tokens_out) as tokens_out from us group by us.api_key_id) x
        left join public.api_keys k on k.id = x.api_key_id
        where x.tokens_in <> 0 or x.tokens_out <> 0), '[]'::jsonb)),
    'calls', jsonb_build_object(
      'total', t.calls,
      'by_status', (
        select jsonb_object_agg(st.status, coalesce(cs.value, 0))
        from unnest(array['ringing', 'in_progress', 'ended', 'failed', 'no_answer', 'busy', 'canceled']) st (status)
        left join cs on cs.dimension = 'status' and cs.key = st.status),
      'by_sentiment', (
        select jsonb_object_agg(se.sentiment, coalesce(cs.value, 0))
        from unnest(array['positive', 'neutral', 'negative', 'unknown']) se (sentiment)
        left join cs on cs.dimension = 'sentiment' and cs.key = se.sentiment),
      -- avg() is sum / count in numeric: the same digits.
      'avg_duration_seconds', (
        select round(s.value / nullif(n.value, 0), 1) from cf s, cf n where s.key = 'duration_sum' and n.key = 'durations'),
      'p95_duration_seconds', (
        select round((percentile_cont(0.95) within group (order by x))::numeric, 1) from d, unnest(d.call_durations) x),
      'avg_stt_latency_ms', (select round(s.value / nullif(n.value, 0)) from cf s, cf n where s.key = 'stt_sum' and n.key = 'stt_count'),
      'avg_llm_latency_ms', (select round(s.value / nullif(n.value, 0)) from cf s, cf n where s.key = 'llm_sum' and n.key = 'llm_count'),
      'avg_tts_latency_ms', (select round(s.value / nullif(n.value, 0)) from cf s, cf n where s.key = 'tts_sum' and n.key = 'tts_count'),
      'feedback_count', fb.ratings,
      'avg_rating', round(fb.rating_sum::numeric / nullif(fb.ratings, 0), 2)))
  from t, fb;
$$;

-- ---------------------------------------------------------------------------
-- The dashboard summary (one round trip) and its raw twin
-- ---------------------------------------------------------------------------

create function private.analytics_summary(org_id uuid, from_date date, to_date date, time_zone text, raw boolean)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
as $$
declare
  zone text := private.analytics_scope(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date, analytics_summary.time_zone);
  range_start timestamptz := analytics_summary.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_summary.to_date + 1)::timestamp at time zone zone;
  -- Days in the org's own zone (the default) come from analytics_days;
  -- another zone, from the hour rollups; the raw twin, from the tables.
  by_day boolean := not analytics_summary.raw
    and zone = (select o.time_zone from public.organizations o where o.id = analytics_summary.org_id);
  figures jsonb;
  calls jsonb;
begin
  -- The requested days must be fresh: refresh the stale ones (a write, hence
  -- volatile). A read-only transaction (an RPC by GET) cannot: with any stale
  -- day in the range it reads the hour rollups instead (exact too, slower).
  if by_day then
    if pg_catalog.current_setting('transaction_read_only')::boolean then
      by_day := not exists (
        select 1 from private.analytics_stale_days s
        where s.org_id = analytics_summary.org_id and s.day >= analytics_summary.from_date and s.day <= analytics_summary.to_date);
    else
      perform private.refresh_analytics_days(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date);
    end if;
  end if;
  if by_day then
    figures := private.analytics_day_figures(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date, range_start, range_end);
  else
    figures := private.analytics_chat_figures(analytics_summary.org_id, range_start, range_end, analytics_summary.raw)
      || jsonb_build_object('usage', private.analytics_usage_figures(analytics_summary.org_id, range_start, range_end, analytics_summary.raw));
  end if;
  -- Calls keep their own rule (calls.read, members), so a viewer's summary
  -- has no call figures rather than a 42501. Outside analytics_days they are
  -- call_stats_summary's own.
  if auth.role() is not distinct from 'service_role'
    or analytics_summary.org_id = any (array(select private.readable_org_ids('calls.read'))) then
    if by_day then
      calls := figures -> 'calls';
    else
      calls := public.call_stats_summary(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date, null, zone)
        - 'by_bot' - 'org_id' - 'bot_id' - 'from_date' - 'to_date' - 'time_zone';
    end if;
  end if;
  return jsonb_build_object(
      'org_id', analytics_summary.org_id, 'from_date', analytics_summary.from_date, 'to_date', analytics_summary.to_date,
      'time_zone', zone)
    || (figures - 'calls' - 'usage')
    || jsonb_build_object(
      'usage', (figures -> 'usage') || case when by_day then private.analytics_usage_windows(analytics_summary.org_id, false) else '{}'::jsonb end,
      'knowledge', private.analytics_knowledge_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date, false),
      'uploads', private.analytics_upload_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date, false),
      'team', private.analytics_team_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date),
      'appointments', private.analytics_appointment_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date),
      'calls', calls);
end;
$$;

-- The entry points: definer, so the figures code (and its raw switch) runs
-- as its owner and is granted to nobody.
create function private.analytics_dashboard_summary(org_id uuid, from_date date, to_date date, time_zone text)
returns jsonb
language sql
volatile
security definer
set search_path = ''
as $$
  select private.analytics_summary(org_id, from_date, to_date, time_zone, false);
$$;

create function private.dashboard_summary_raw(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select private.analytics_summary(org_id, from_date, to_date, time_zone, true);
$$;
comment on function private.dashboard_summary_raw(uuid, date, date, text) is 'analytics_dashboard_summary computed from the raw tables instead of the rollups (the same figures, slower): for npm run bench:analytics and the equality test. Service role.';

-- ---------------------------------------------------------------------------
-- Per-day series (one row per local day, zeros included), from the rollups
-- ---------------------------------------------------------------------------

create function private.analytics_conversations_daily(org_id uuid, from_date date, to_date date, time_zone text)
returns table (day date, started integer, escalated integer, closed integer, by_channel jsonb, by_bot jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  zone text := private.analytics_scope(analytics_conversations_daily.org_id, analytics_conversations_daily.from_date,
    analytics_conversations_daily.to_date, analytics_conversations_daily.time_zone);
  range_start timestamptz := analytics_conversations_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_conversations_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with
  days as (
    select g::date as d
    from pg_catalog.generate_series(analytics_conversations_daily.from_date::timestamp, analytics_conversations_daily.to_date::timestamp, interval '1 day') g
  ),
  ev as (
    select (e.hour at time zone zone)::date as d, e.bot_id, e.channel,
      sum(e.started)::integer as s, sum(e.escalated)::integer as x, sum(e.closed)::integer as c
    from private.analytics_conversation_events e
    where e.org_id = analytics_conversations_daily.org_id and e.hour >= range_start and e.hour < range_end
    group by 1, 2, 3
  ),
  tot as (select ev.d, sum(ev.s)::integer as s, sum(ev.x)::integer as x, sum(ev.c)::integer as c from ev group by ev.d),
  per_channel as (
    select y.d, jsonb_object_agg(y.channel, jsonb_build_object('started', y.s, 'escalated', y.x, 'closed', y.c)) as j
    from (select ev.d, ev.channel, sum(ev.s) as s, sum(ev.x) as x, sum(ev.c) as c from ev group by 1, 2) y
    where y.s <> 0 or y.x <> 0 or y.c <> 0
    group by y.d
  ),
  per_bot as (
    select y.d, jsonb_agg(jsonb_build_object('bot_id', y.bot_id, 'started', y.s, 'escalated', y.x, 'closed', y.c) order by y.s desc, y.bot_id) as j
    from (select ev.d, ev.bot_id, sum(ev.s) as s, sum(ev.x) as x, sum(ev.c) as c from ev group by 1, 2) y
    where y.s <> 0 or y.x <> 0 or y.c <> 0
    group by y.d
  )
  select days.d, coalesce(tot.s, 0), coalesce(tot.x, 0), coalesce(tot.c, 0), coalesce(pc.j, '{}'::jsonb), coalesce(pb.j, '[]'::jsonb)
  from days
  left join tot on tot.d = days.d
  left join per_channel pc on pc.d = days.d
  left join per_bot pb on pb.d = days.d
  order by days.d;
end;
$$;

create function private.analytics_messages_daily(org_id uuid, from_date date, to_date date, time_zone text)
returns table (day date, user_messages integer, assistant_messages integer, system_messages integer, total integer, tokens_in bigint, tokens_out bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  zone text := private.analytics_scope(analytics_messages_daily.org_id, analytics_messages_daily.from_date,
    analytics_messages_daily.to_date, analytics_messages_daily.time_zone);
  range_start timestamptz := analytics_messages_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_messages_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with
  days as (
    select g::date as d
    from pg_catalog.generate_series(analytics_messages_daily.from_date::timestamp, analytics_messages_daily.to_date::timestamp, interval '1 day') g
  ),
  per_day as (
    select (h.hour at time zone zone)::date as d, sum(h.user_messages)::integer as u, sum(h.assistant_messages)::integer as a,
      sum(h.system_messages)::integer as s, sum(h.tokens_in)::bigint as ti, sum(h.tokens_out)::bigint as t_out
    from private.analytics_conversation_hours h
    where h.org_id = analytics_messages_daily.org_id and h.hour >= range_start and h.hour < range_end
    group by 1
  )
  select days.d, coalesce(p.u, 0), coalesce(p.a, 0), coalesce(p.s, 0), coalesce(p.u + p.a + p.s, 0),
    coalesce(p.ti, 0)::bigint, coalesce(p.t_out, 0)::bigint
  from days
  left join per_day p on p.d = days.d
  order by days.d;
end;
$$;

create function private.analytics_engagement_daily(org_id uuid, from_date date, to_date date, time_zone text)
returns table (day date, end_users integer, returning_users integer, active_conversations integer,
  avg_messages_per_conversation numeric, first_responses integer, median_first_response_ms numeric)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  zone text := private.analytics_scope(analytics_engagement_daily.org_id, analytics_engagement_daily.from_date,
    analytics_engagement_daily.to_date, analytics_engagement_daily.time_zone);
  range_start timestamptz := analytics_engagement_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_engagement_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with
  days as (
    select g::date as d, g at time zone zone as starts
    from pg_catalog.generate_series(analytics_engagement_daily.from_date::timestamp, analytics_engagement_daily.to_date::timestamp, interval '1 day') g
  ),
  act as (
    select (h.hour at time zone zone)::date as d, h.conversation_id, h.end_user, h.user_messages,
      h.user_messages + h.assistant_messages + h.system_messages as messages
    from private.analytics_conversation_hours h
    where h.org_id = analytics_engagement_daily.org_id and h.hour >= range_start and h.hour < range_end
  ),
  users as (select distinct a.d, a.end_user from act a where a.user_messages > 0),
  first_seen as (
    select h.end_user, min(h.hour) as first_hour
    from private.analytics_conversation_hours h
    where h.org_id = analytics_engagement_daily.org_id and h.user_messages > 0
      and h.end_user in (select u.end_user from users u)
    group by h.end_user
  ),
  per_user_day as (
    select u.d, count(*)::integer as n, (count(*) filter (where f.first_hour < days.starts))::integer as back
    from users u
    join days on days.d = u.d
    join first_seen f on f.end_user = u.end_user
    group by u.d
  ),
  per_conv as (
    select a.d, count(distinct a.conversation_id)::integer as conversations, sum(a.messages)::numeric as messages
    from act a where a.messages > 0
    group by a.d
  ),
  responses as (
    select (f.responded_at at time zone zone)::date as d, count(*)::integer as n,
      round((percentile_cont(0.5) within group (order by f.latency_ms))::numeric) as median
    from private.analytics_first_responses f
    where f.org_id = analytics_engagement_daily.org_id and f.responded_at >= range_start and f.responded_at < range_end
    group by 1
  )
  select days.d, coalesce(pu.n, 0), coalesce(pu.back, 0), coalesce(pc.conversations, 0),
    round(pc.messages / nullif(pc.conversations, 0), 2), coalesce(r.n, 0), r.median
  from days
  left join per_user_day pu on pu.d = days.d
  left join per_conv pc on pc.d = days.d
  left join responses r on r.d = days.d
  order by days.d;
end;
$$;

create function private.analytics_usage_daily(org_id uuid, from_date date, to_date date, time_zone text)
returns table (day date, chat_tokens_in bigint, chat_tokens_out bigint, embedding_tokens_in bigint, embedding_tokens_out bigint,
  speech_tokens_in bigint, speech_tokens_out bigint, by_bot jsonb, by_api_key jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  zone text := private.analytics_scope(analytics_usage_daily.org_id, analytics_usage_daily.from_date,
    analytics_usage_daily.to_date, analytics_usage_daily.time_zone);
  range_start timestamptz := analytics_usage_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_usage_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with
  days as (
    select g::date as d
    from pg_catalog.generate_series(analytics_usage_daily.from_date::timestamp, analytics_usage_daily.to_date::timestamp, interval '1 day') g
  ),
  u as (
    select (h.hour at time zone zone)::date as d, h.kind, h.bot_id, h.api_key_id, h.tokens_in, h.tokens_out
    from private.analytics_usage_hours h
    where h.org_id = analytics_usage_daily.org_id and h.hour >= range_start and h.hour < range_end
  ),
  kinds as (
    select u.d,
      sum(u.tokens_in) filter (where u.kind = 'chat') as ci, sum(u.tokens_out) filter (where u.kind = 'chat') as co,
      sum(u.tokens_in) filter (where u.kind = 'embedding') as ei, sum(u.tokens_out) filter (where u.kind = 'embedding') as eo,
      sum(u.tokens_in) filter (where u.kind = 'speech') as si, sum(u.tokens_out) filter (where u.kind = 'speech') as so
    from u group by u.d
  ),
  per_bot as (
    select y.d, jsonb_agg(jsonb_build_object('bot_id', y.bot_id, 'tokens_in', y.ti, 'tokens_out', y.t_out)
                          order by y.ti + y.t_out desc, y.bot_id nulls last) as j
    from (select u.d, u.bot_id, sum(u.tokens_in) as ti, sum(u.tokens_out) as t_out from u group by 1, 2) y
    where y.ti <> 0 or y.t_out <> 0
    group by y.d
  ),
  per_key as (
    select y.d, jsonb_agg(jsonb_build_object('api_key_id', y.api_key_id, 'tokens_in', y.ti, 'tokens_out', y.t_out)
                          order by y.ti + y.t_out desc, y.api_key_id nulls last) as j
    from (select u.d, u.api_key_id, sum(u.tokens_in) as ti, sum(u.tokens_out) as t_out from u group by 1, 2) y
    where y.ti <> 0 or y.t_out <> 0
    group by y.d
  )
  select days.d, coalesce(k.ci, 0)::bigint, coalesce(k.co, 0)::bigint, coalesce(k.ei, 0)::bigint, coalesce(k.eo, 0)::bigint,
    coalesce(k.si, 0)::bigint, coalesce(k.so, 0)::bigint, coalesce(pb.j, '[]'::jsonb), coalesce(pk.j, '[]'::jsonb)
  from days
  left join kinds k on k.d = days.d
  left join per_bot pb on pb.d = days.d
  left join per_key pk on pk.d = days.d
  order by days.d;
end;
$$;

create function private.analytics_appointments_daily(org_id uuid, from_date date, to_date date, time_zone text)
returns table (day date, total integer, booked integer, completed integer, canceled integer, no_show integer, rescheduled integer,
  by_source jsonb, by_bot jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  zone text := private.analytics_scope(analytics_appointments_daily.org_id, analytics_appointments_daily.from_date,
    analytics_appointments_daily.to_date, analytics_appointments_daily.time_zone);
  range_start timestamptz := analytics_appointments_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_appointments_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with
  days as (
    select g::date as d
    from pg_catalog.generate_series(analytics_appointments_daily.from_date::timestamp, analytics_appointments_daily.to_date::timestamp, interval '1 day') g
  ),
  a as (
    select (ap.starts_at at time zone zone)::date as d, ap.bot_id, ap.source, ap.status, ap.reschedule_count
    from public.appointments ap
    where ap.org_id = analytics_appointments_daily.org_id and ap.starts_at >= range_start and ap.starts_at < range_end
  ),
  tot as (
    select a.d, count(*)::integer as n, (count(*) filter (where a.status = 'booked'))::integer as bk,
      (count(*) filter (where a.status = 'completed'))::integer as cp, (count(*) filter (where a.status = 'canceled'))::integer as cn,
      (count(*) filter (where a.status = 'no_show'))::integer as ns, (count(*) filter (where a.reschedule_count > 0))::integer as rs
    from a group by a.d
  ),
  per_source as (
    select y.d, jsonb_object_agg(y.source, y.n) as j from (select a.d, a.source, count(*) as n from a group by 1, 2) y group by y.d
  ),
  per_bot as (
    select y.d, jsonb_agg(jsonb_build_object('bot_id', y.bot_id, 'total', y.n) order by y.n desc, y.bot_id nulls last) as j
    from (select a.d, a.bot_id, count(*) as n from a group by 1, 2) y group by y.d
  )
  select days.d, coalesce(tot.n, 0), coalesce(tot.bk, 0), coalesce(tot.cp, 0), coalesce(tot.cn, 0), coalesce(tot.ns, 0), coalesce(tot.rs, 0),
    coalesce(ps.j, '{}'::jsonb), coalesce(pb.j, '[]'::jsonb)
  from days
  left join tot on tot.d = days.d
  left join per_source ps on ps.d = days.d
  left join per_bot pb on pb.d = days.d
  order by days.d;
end;
$$;

-- Range figures of one section, with the scope check.
create function private.analytics_section(org_id uuid, from_date date, to_date date, time_zone text, section text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text := private.analytics_scope(analytics_section.org_id, analytics_section.from_date, analytics_section.to_date, analytics_section.time_zone);
  range_start timestamptz := analytics_section.from_date::timestamp at time zone zone;
  range_end timestamptz := (analytics_section.to_date + 1)::timestamp at time zone zone;
  header jsonb := jsonb_build_object('org_id', analytics_section.org_id, 'from_date', analytics_section.from_date,
    'to_date', analytics_section.to_date, 'time_zone', zone);
begin
  return header || case analytics_section.section
    when 'usage' then private.analytics_usage_figures(analytics_section.org_id, range_start, range_end, false)
    when 'knowledge' then private.analytics_knowledge_figures(analytics_section.org_id, zone, analytics_section.from_date, analytics_section.to_date, true)
    when 'uploads' then private.analytics_upload_figures(analytics_section.org_id, zone, analytics_section.from_date, analytics_section.to_date, true)
    when 'team' then private.analytics_team_figures(analytics_section.org_id, zone, analytics_section.from_date, analytics_section.to_date)
    when 'appointments' then private.analytics_appointment_figures(analytics_section.org_id, zone, analytics_section.from_date, analytics_section.to_date)
  end;
end;
$$;

-- ---------------------------------------------------------------------------
-- The RPCs: invoker wrappers (supabase-js rpc), one per figure set
-- ---------------------------------------------------------------------------

create function public.analytics_conversations_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, started integer, escalated integer, closed integer, by_channel jsonb, by_bot jsonb)
language sql stable security invoker set search_path = ''
as $$ select * from private.analytics_conversations_daily(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_conversations_daily(uuid, date, date, text) is 'Conversations started, escalated and closed per local day (zeros for empty days), with by_channel {channel: {started, escalated, closed}} and by_bot [{bot_id, started, escalated, closed}] (non-zero entries only). Viewers and up (analytics.read); at most 366 days; zone default the org''s.';

create function public.analytics_messages_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, user_messages integer, assistant_messages integer, system_messages integer, total integer, tokens_in bigint, tokens_out bigint)
language sql stable security invoker set search_path = ''
as $$ select * from private.analytics_messages_daily(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_messages_daily(uuid, date, date, text) is 'Messages per local day by role, with their tokens (zeros for empty days). Viewers and up (analytics.read).';

create function public.analytics_engagement_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, end_users integer, returning_users integer, active_conversations integer,
  avg_messages_per_conversation numeric, first_responses integer, median_first_response_ms numeric)
language sql stable security invoker set search_path = ''
as $$ select * from private.analytics_engagement_daily(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_engagement_daily(uuid, date, date, text) is 'Per local day: end users who wrote, of whom returning (wrote before that day), conversations with messages and their average messages, and the median latency of the bot''s first answer in conversations first answered that day. Viewers and up (analytics.read).';

create function public.analytics_usage_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, chat_tokens_in bigint, chat_tokens_out bigint, embedding_tokens_in bigint, embedding_tokens_out bigint,
  speech_tokens_in bigint, speech_tokens_out bigint, by_bot jsonb, by_api_key jsonb)
language sql stable security invoker set search_path = ''
as $$ select * from private.analytics_usage_daily(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_usage_daily(uuid, date, date, text) is 'Tokens in and out per local day and kind, with by_bot and by_api_key [{id, tokens_in, tokens_out}] (zeros for empty days). Viewers and up (analytics.read).';

create function public.analytics_usage(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql stable security invoker set search_path = ''
as $$ select private.analytics_section(org_id, from_date, to_date, time_zone, 'usage'); $$;
comment on function public.analytics_usage(uuid, date, date, text) is 'Tokens over the range (by kind, bot and API key), over the last 24 hours and 7 days, and the share of the plan''s chat and embedding tokens used in the current period. Viewers and up (analytics.read).';

create function public.analytics_knowledge(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql stable security invoker set search_path = ''
as $$ select private.analytics_section(org_id, from_date, to_date, time_zone, 'knowledge'); $$;
comment on function public.analytics_knowledge(uuid, date, date, text) is 'Documents by status now; documents, pages and chunks ingested over the range and per day; failures in the range ranked by reason; median seconds from upload to ready. Viewers and up (analytics.read).';

create function public.analytics_uploads(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql stable security invoker set search_path = ''
as $$ select private.analytics_section(org_id, from_date, to_date, time_zone, 'uploads'); $$;
comment on function public.analytics_uploads(uuid, date, date, text) is 'Upload batches (by status) and files (by status) created in the range, bytes, files that needed more than one ingestion run, and batches, files and bytes per day. Viewers and up (analytics.read).';

create function public.analytics_team(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql stable security invoker set search_path = ''
as $$ select private.analytics_section(org_id, from_date, to_date, time_zone, 'team'); $$;
comment on function public.analytics_team(uuid, date, date, text) is 'Members by role, pending invitations, joins in the range and in the last 30 days, and the 20 most recent joins. Viewers and up (analytics.read).';

create function public.analytics_appointments(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
language sql stable security invoker set search_path = ''
as $$ select private.analytics_section(org_id, from_date, to_date, time_zone, 'appointments'); $$;
comment on function public.analytics_appointments(uuid, date, date, text) is 'Appointments starting in the range by status, rescheduled, by source and by bot, and utilisation: booked minutes (not canceled) over the org''s open minutes (business hours minus closures). Viewers and up (analytics.read).';

create function public.analytics_appointments_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, total integer, booked integer, completed integer, canceled integer, no_show integer, rescheduled integer,
  by_source jsonb, by_bot jsonb)
language sql stable security invoker set search_path = ''
as $$ select * from private.analytics_appointments_daily(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_appointments_daily(uuid, date, date, text) is 'Appointments per local day they start on, by current status, rescheduled (moved at least once), by source and by bot (zeros for empty days). Viewers and up (analytics.read).';

create function public.analytics_dashboard_summary(org_id uuid, from_date date, to_date date, time_zone text default null)
returns jsonb
-- Volatile: it may refresh stale analytics_days (a write).
language sql volatile security invoker set search_path = ''
as $$ select private.analytics_dashboard_summary(org_id, from_date, to_date, time_zone); $$;
comment on function public.analytics_dashboard_summary(uuid, date, date, text) is 'The headline figures of every analytics section in one call: conversations, messages, engagement, usage, knowledge, uploads, team, appointments, and calls (call_stats_summary without by_bot; null without calls.read). Viewers and up (analytics.read).';

-- ---------------------------------------------------------------------------
-- Grants: nothing runs by PUBLIC; the RPCs and their definer code for
-- signed-in users and the service role; upkeep for the service role; the
-- rest only inside the definer code (run as its owner).
-- ---------------------------------------------------------------------------

revoke execute on function
  private.analytics_end_user(public.chat_channel, text, uuid, uuid),
  private.analytics_raw_conversation_hours(uuid[]),
  private.analytics_raw_conversation_events(uuid[]),
  private.analytics_raw_first_responses(uuid[], timestamptz),
  private.analytics_raw_usage_hours(uuid[]),
  private.analytics_raw_end_users(uuid[]),
  private.analytics_compute_days(uuid[], date[]),
  private.analytics_org_days(uuid[]),
  private.analytics_mark_days(uuid[], timestamptz[]),
  private.refresh_analytics_days(uuid, date, date, integer, boolean),
  private.refresh_stale_analytics_days(integer),
  private.analytics_refresh_first_responses(uuid[]),
  private.analytics_refresh_end_users(uuid[], text[]),
  private.analytics_calls_changed(),
  private.analytics_org_zone_changed(),
  private.analytics_day_figures(uuid, date, date, timestamptz, timestamptz),
  private.analytics_usage_windows(uuid, boolean),
  private.analytics_messages_changed(),
  private.analytics_conversations_changed(),
  private.analytics_usage_changed(),
  private.rebuild_analytics_rollups(uuid),
  private.verify_rollups(uuid),
  private.analytics_scope(uuid, date, date, text),
  private.analytics_chat_figures(uuid, timestamptz, timestamptz, boolean),
  private.analytics_usage_between(uuid, timestamptz, timestamptz, boolean),
  private.analytics_usage_figures(uuid, timestamptz, timestamptz, boolean),
  private.analytics_knowledge_figures(uuid, text, date, date, boolean),
  private.analytics_upload_figures(uuid, text, date, date, boolean),
  private.analytics_team_figures(uuid, text, date, date),
  private.analytics_open_minutes(uuid, tstzrange),
  private.analytics_appointment_figures(uuid, text, date, date),
  private.analytics_summary(uuid, date, date, text, boolean),
  private.analytics_dashboard_summary(uuid, date, date, text),
  private.dashboard_summary_raw(uuid, date, date, text),
  private.analytics_conversations_daily(uuid, date, date, text),
  private.analytics_messages_daily(uuid, date, date, text),
  private.analytics_engagement_daily(uuid, date, date, text),
  private.analytics_usage_daily(uuid, date, date, text),
  private.analytics_appointments_daily(uuid, date, date, text),
  private.analytics_section(uuid, date, date, text, text),
  public.analytics_conversations_daily(uuid, date, date, text),
  public.analytics_messages_daily(uuid, date, date, text),
  public.analytics_engagement_daily(uuid, date, date, text),
  public.analytics_usage_daily(uuid, date, date, text),
  public.analytics_usage(uuid, date, date, text),
  public.analytics_knowledge(uuid, date, date, text),
  public.analytics_uploads(uuid, date, date, text),
  public.analytics_team(uuid, date, date, text),
  public.analytics_appointments(uuid, date, date, text),
  public.analytics_appointments_daily(uuid, date, date, text),
  public.analytics_dashboard_summary(uuid, date, date, text)
from public;

-- The RPCs, and the definer code they wrap (each checks analytics.read).
grant execute on function
  public.analytics_conversations_daily(uuid, date, date, text),
  private.analytics_conversations_daily(uuid, date, date, text),
  public.analytics_messages_daily(uuid, date, date, text),
  private.analytics_messages_daily(uuid, date, date, text),
  public.analytics_engagement_daily(uuid, date, date, text),
  private.analytics_engagement_daily(uuid, date, date, text),
  public.analytics_usage_daily(uuid, date, date, text),
  private.analytics_usage_daily(uuid, date, date, text),
  public.analytics_usage(uuid, date, date, text),
  public.analytics_knowledge(uuid, date, date, text),
  public.analytics_uploads(uuid, date, date, text),
  public.analytics_team(uuid, date, date, text),
  public.analytics_appointments(uuid, date, date, text),
  private.analytics_section(uuid, date, date, text, text),
  public.analytics_appointments_daily(uuid, date, date, text),
  private.analytics_appointments_daily(uuid, date, date, text),
  public.analytics_dashboard_summary(uuid, date, date, text),
  private.analytics_dashboard_summary(uuid, date, date, text)
to authenticated, service_role;

-- Upkeep and the raw twin: service code, tests and the benchmark.
grant execute on function
  private.rebuild_analytics_rollups(uuid),
  private.verify_rollups(uuid),
  private.dashboard_summary_raw(uuid, date, date, text)
to service_role;

-- The rows that exist already.
select private.rebuild_analytics_rollups();

-- Stale day rows are recomputed by their first reader, or here within a minute.
select cron.schedule('refresh-analytics-days', '* * * * *', 'select private.refresh_stale_analytics_days(500)');
