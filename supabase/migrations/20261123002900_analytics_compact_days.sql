-- The dashboard summary's day rows (private.analytics_days) in a form a
-- range reads without sorting or parsing: over 90 days the summary spent
-- most of its time unnesting and sorting the days' sets of conversations and
-- end users for two distinct counts (3.8 of 8.1 ms in process on the
-- benchmark's org), and parsing jsonb for the events, usage and call sums
-- (about 3 ms).
--
-- Distinct counts over a range, without the sets: each day also keeps, for
-- every conversation (and end user) it holds that was active on an earlier
-- local day, the days since its latest such day (its gap), sorted. An element
-- active in first_day..last_day is counted once, on its first active day in
-- the range: the day whose gap is missing or longer than the days since
-- first_day. So distinct = the sum over the range's days of
-- (elements - gaps no longer than day - first_day), and the second term is a
-- binary search (width_bucket over the sorted gaps).
-- A day's gaps depend on earlier days, so the refresh of a day also
-- recomputes the next active day of every element it held before or holds
-- now (an element added or removed there moves that day's gap). Days before a
-- range that are still stale cannot change its count: they move a gap only
-- between two values that both reach before first_day.
--
-- Events and usage become arrays of composite rows (unnest instead of
-- jsonb_to_recordset), the call figures plain columns (status and sentiment
-- counts as arrays in a fixed order), and the call durations float8:
-- percentile_cont works in double precision, so the p95 is the same number
-- and the sort is cheaper than numeric's.
--
-- The rows are derived data: the migration drops them and marks their days
-- stale, and the first read of a day (or the pg_cron job) recomputes it.

create type private.analytics_event_count as (
  bot_id uuid,
  channel public.chat_channel,
  started integer,
  escalated integer,
  closed integer
);

create type private.analytics_usage_count as (
  kind text,
  bot_id uuid,
  api_key_id uuid,
  tokens_in bigint,
  tokens_out bigint
);

insert into private.analytics_stale_days (org_id, day)
select d.org_id, d.day from private.analytics_days d
on conflict do nothing;
delete from private.analytics_days;

alter table private.analytics_days
  drop column events,
  drop column usage,
  drop column calls,
  drop column call_durations,
  -- Sorted ascending; see the header.
  add column conversation_gaps integer[] not null,
  add column end_user_gaps integer[] not null,
  add column events private.analytics_event_count[] not null,
  add column usage private.analytics_usage_count[] not null,
  -- Calls (not queued) by coalesce(started_at, ended_at, created_at), as
  -- call_stats_summary counts them.
  add column calls integer not null,
  -- ringing, in_progress, ended, failed, no_answer, busy, canceled
  add column calls_by_status integer[] not null,
  -- positive, neutral, negative, unknown
  add column calls_by_sentiment integer[] not null,
  -- The ended calls' durations, sorted.
  add column call_durations float8[] not null,
  add column call_duration_sum numeric not null,
  add column stt_count integer not null,
  add column stt_sum bigint not null,
  add column llm_count integer not null,
  add column llm_sum bigint not null,
  add column tts_count integer not null,
  add column tts_sum bigint not null;

comment on column private.analytics_days.conversation_gaps is 'For each conversation with messages that day and on an earlier local day: the days since the latest such day; sorted (distinct counts over a range, see 20261123002900).';
comment on column private.analytics_days.end_user_gaps is 'For each end user who wrote that day and on an earlier local day: the days since the latest such day; sorted.';

-- The analytics_days rows of these (org_ids[i], days[i]) pairs, from the
-- hour rollups, first_responses, end_users and calls as they stand (days
-- with nothing give no row).
create or replace function private.analytics_compute_days(org_ids uuid[], days date[])
returns setof private.analytics_days
language sql
stable
security invoker
set search_path = ''
as $$
  with
  w as materialized (
    select k.org_id, k.day, o.time_zone as zone,
      k.day::timestamp at time zone o.time_zone as s, (k.day + 1)::timestamp at time zone o.time_zone as e
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
  -- Each conversation's and end user's latest earlier bucket (an index probe
  -- each), as a gap in local days.
  conversation_gaps as (
    select w.org_id, w.day, array_agg(w.day - (p.hour at time zone w.zone)::date order by w.day - (p.hour at time zone w.zone)::date) as gaps
    from w
    join msg on msg.org_id = w.org_id and msg.day = w.day
    cross join unnest(msg.conversations) c (conversation_id)
    cross join lateral (
      select max(h.hour) as hour from private.analytics_conversation_hours h where h.conversation_id = c.conversation_id and h.hour < w.s
    ) p
    where p.hour is not null
    group by 1, 2
  ),
  end_user_gaps as (
    select w.org_id, w.day, array_agg(w.day - (p.hour at time zone w.zone)::date order by w.day - (p.hour at time zone w.zone)::date) as gaps
    from w
    join msg on msg.org_id = w.org_id and msg.day = w.day
    cross join unnest(msg.end_users) u (end_user)
    cross join lateral (
      select max(h.hour) as hour from private.analytics_conversation_hours h
      where h.org_id = w.org_id and h.end_user = u.end_user and h.user_messages > 0 and h.hour < w.s
    ) p
    where p.hour is not null
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
      array_agg(row(x.bot_id, x.channel, x.started, x.escalated, x.closed)::private.analytics_event_count order by x.bot_id, x.channel) as events
    from (
      select w.org_id, w.day, e.bot_id, e.channel, sum(e.started)::integer as started, sum(e.escalated)::integer as escalated,
        sum(e.closed)::integer as closed
      from w
      join private.analytics_conversation_events e on e.org_id = w.org_id and e.hour >= w.s and e.hour < w.e
      group by 1, 2, 3, 4
    ) x
    where x.started <> 0 or x.escalated <> 0 or x.closed <> 0
    group by 1, 2
  ),
  us as (
    select x.org_id, x.day,
      array_agg(row(x.kind, x.bot_id, x.api_key_id, x.tokens_in, x.tokens_out)::private.analytics_usage_count
                order by x.kind, x.bot_id, x.api_key_id) as usage
    from (
      select w.org_id, w.day, u.kind, u.bot_id, u.api_key_id, sum(u.tokens_in)::bigint as tokens_in, sum(u.tokens_out)::bigint as tokens_out
      from w
      join private.analytics_usage_hours u on u.org_id = w.org_id and u.hour >= w.s and u.hour < w.e
      group by 1, 2, 3, 4, 5
    ) x
    where x.tokens_in <> 0 or x.tokens_out <> 0
    group by 1, 2
  ),
  ca as (
    select w.org_id, w.day, count(*)::integer as calls,
      array[
        count(*) filter (where c.status = 'ringing'), count(*) filter (where c.status = 'in_progress'),
        count(*) filter (where c.status = 'ended'), count(*) filter (where c.status = 'failed'),
        count(*) filter (where c.status = 'no_answer'), count(*) filter (where c.status = 'busy'),
        count(*) filter (where c.status = 'canceled')]::integer[] as by_status,
      array[
        count(*) filter (where c.sentiment = 'positive'), count(*) filter (where c.sentiment = 'neutral'),
        count(*) filter (where c.sentiment = 'negative'), count(*) filter (where c.sentiment = 'unknown')]::integer[] as by_sentiment,
      coalesce(array_agg(c.duration_seconds::float8 order by c.duration_seconds)
        filter (where c.status = 'ended' and c.duration_seconds is not null), '{}') as durations,
      coalesce(sum(c.duration_seconds) filter (where c.status = 'ended'), 0) as duration_sum,
      count(c.stt_latency_ms)::integer as stt_count, coalesce(sum(c.stt_latency_ms), 0)::bigint as stt_sum,
      count(c.llm_latency_ms)::integer as llm_count, coalesce(sum(c.llm_latency_ms), 0)::bigint as llm_sum,
      count(c.tts_latency_ms)::integer as tts_count, coalesce(sum(c.tts_latency_ms), 0)::bigint as tts_sum
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
    coalesce(cg.gaps, '{}'), coalesce(ug.gaps, '{}'),
    coalesce(ev.events, '{}'), coalesce(us.usage, '{}'),
    coalesce(ca.calls, 0), coalesce(ca.by_status, '{0,0,0,0,0,0,0}'), coalesce(ca.by_sentiment, '{0,0,0,0}'),
    coalesce(ca.durations, '{}'), coalesce(ca.duration_sum, 0),
    coalesce(ca.stt_count, 0), coalesce(ca.stt_sum, 0), coalesce(ca.llm_count, 0), coalesce(ca.llm_sum, 0),
    coalesce(ca.tts_count, 0), coalesce(ca.tts_sum, 0)
  from w
  left join msg on msg.org_id = w.org_id and msg.day = w.day
  left join conversation_gaps cg on cg.org_id = w.org_id and cg.day = w.day
  left join end_user_gaps ug on ug.org_id = w.org_id and ug.day = w.day
  left join fresh on fresh.org_id = w.org_id and fresh.day = w.day
  left join resp on resp.org_id = w.org_id and resp.day = w.day
  left join ev on ev.org_id = w.org_id and ev.day = w.day
  left join us on us.org_id = w.org_id and us.day = w.day
  left join ca on ca.org_id = w.org_id and ca.day = w.day
  where msg.org_id is not null or fresh.org_id is not null or resp.org_id is not null or ev.org_id is not null
    or us.org_id is not null or ca.org_id is not null;
$$;

-- As before (20261123001700), and then the days whose gaps the refreshed
-- days move: the next active day, in the org's zone, of each conversation and
-- end user the refreshed days held before or hold now.
create or replace function private.refresh_analytics_days(org_id uuid, from_day date, to_day date, max_days integer default null,
  wait boolean default true)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  org uuid := refresh_analytics_days.org_id;
  zone text;
  days date[];
  later date[];
  conversation_days date[];
  conversation_ids uuid[];
  end_user_days date[];
  end_user_ids text[];
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
  select o.time_zone into zone from public.organizations o where o.id = org;

  -- What the days held before, then after.
  select coalesce(array_agg(d.day), '{}'), coalesce(array_agg(c), '{}') into conversation_days, conversation_ids
  from private.analytics_days d, unnest(d.conversations) c where d.org_id = org and d.day = any (days);
  select coalesce(array_agg(d.day), '{}'), coalesce(array_agg(u), '{}') into end_user_days, end_user_ids
  from private.analytics_days d, unnest(d.end_users) u where d.org_id = org and d.day = any (days);
  delete from private.analytics_days d where d.org_id = org and d.day = any (days);
  insert into private.analytics_days
  select * from private.analytics_compute_days(array_fill(org, array[cardinality(days)]), days);
  select conversation_days || coalesce(array_agg(d.day), '{}'), conversation_ids || coalesce(array_agg(c), '{}')
  into conversation_days, conversation_ids
  from private.analytics_days d, unnest(d.conversations) c where d.org_id = org and d.day = any (days);
  select end_user_days || coalesce(array_agg(d.day), '{}'), end_user_ids || coalesce(array_agg(u), '{}')
  into end_user_days, end_user_ids
  from private.analytics_days d, unnest(d.end_users) u where d.org_id = org and d.day = any (days);

  later := array(
    select distinct (n.hour at time zone zone)::date
    from (
      select distinct k.day, k.conversation_id from unnest(conversation_days, conversation_ids) k (day, conversation_id)
    ) k
    cross join lateral (
      select min(h.hour) as hour from private.analytics_conversation_hours h
      where h.conversation_id = k.conversation_id and h.hour >= (k.day + 1)::timestamp at time zone zone
    ) n
    where n.hour is not null
    union
    select distinct (n.hour at time zone zone)::date
    from (select distinct k.day, k.end_user from unnest(end_user_days, end_user_ids) k (day, end_user)) k
    cross join lateral (
      select min(h.hour) as hour from private.analytics_conversation_hours h
      where h.org_id = org and h.end_user = k.end_user and h.user_messages > 0 and h.hour >= (k.day + 1)::timestamp at time zone zone
    ) n
    where n.hour is not null);
  later := array(select l from unnest(later) l where not (l = any (days)));
  if cardinality(later) > 0 then
    delete from private.analytics_days d where d.org_id = org and d.day = any (later);
    insert into private.analytics_days
    select * from private.analytics_compute_days(array_fill(org, array[cardinality(later)]), later);
  end if;
  return cardinality(days);
end;
$$;

create or replace function private.analytics_day_figures(org uuid, first_day date, last_day date, range_start timestamptz, range_end timestamptz)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  d as materialized (
    select d.day, d.user_messages, d.assistant_messages, d.system_messages, d.tokens_in, d.tokens_out, d.new_end_users, d.first_responses,
      -- Elements counted on this day: those not active earlier in the range.
      cardinality(d.conversations) - pg_catalog.width_bucket(d.day - first_day, d.conversation_gaps) as new_conversations,
      cardinality(d.end_users) - pg_catalog.width_bucket(d.day - first_day, d.end_user_gaps) as new_range_end_users,
      d.first_response_latencies, d.events, d.usage, d.calls, d.calls_by_status, d.calls_by_sentiment, d.call_durations,
      d.call_duration_sum, d.stt_count, d.stt_sum, d.llm_count, d.llm_sum, d.tts_count, d.tts_sum
    from private.analytics_days d where d.org_id = org and d.day >= first_day and d.day <= last_day
  ),
  ev as (
    select x.bot_id, x.channel, sum(x.started) as started, sum(x.escalated) as escalated, sum(x.closed) as closed
    from d cross join unnest(d.events) x
    group by 1, 2
  ),
  us as (
    select x.kind, x.bot_id, x.api_key_id, sum(x.tokens_in) as tokens_in, sum(x.tokens_out) as tokens_out
    from d cross join unnest(d.usage) x
    group by 1, 2, 3
  ),
  t as (
    select coalesce(sum(d.user_messages), 0) as user_messages, coalesce(sum(d.assistant_messages), 0) as assistant_messages,
      coalesce(sum(d.system_messages), 0) as system_messages, coalesce(sum(d.tokens_in), 0) as tokens_in,
      coalesce(sum(d.tokens_out), 0) as tokens_out, coalesce(sum(d.new_end_users), 0) as new_end_users,
      coalesce(sum(d.first_responses), 0) as first_responses,
      coalesce(sum(d.new_conversations), 0) as conversations,
      coalesce(sum(d.new_range_end_users), 0) as end_users,
      (select round((percentile_cont(0.5) within group (order by l))::numeric) from d, unnest(d.first_response_latencies) l) as median_first_response_ms,
      coalesce(sum(d.calls), 0) as calls,
      coalesce(sum(cardinality(d.call_durations)), 0) as durations, coalesce(sum(d.call_duration_sum), 0) as duration_sum,
      coalesce(sum(d.stt_count), 0) as stt_count, coalesce(sum(d.stt_sum), 0) as stt_sum,
      coalesce(sum(d.llm_count), 0) as llm_count, coalesce(sum(d.llm_sum), 0) as llm_sum,
      coalesce(sum(d.tts_count), 0) as tts_count, coalesce(sum(d.tts_sum), 0) as tts_sum
    from d
  ),
  cs as (
    select 'status' as dimension, x.i, sum(x.n) as n from d cross join unnest(d.calls_by_status) with ordinality x (n, i) group by x.i
    union all
    select 'sentiment', x.i, sum(x.n) from d cross join unnest(d.calls_by_sentiment) with ordinality x (n, i) group by x.i
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
        select jsonb_object_agg(st.status, coalesce(cs.n, 0))
        from unnest(array['ringing', 'in_progress', 'ended', 'failed', 'no_answer', 'busy', 'canceled']) with ordinality st (status, i)
        left join cs on cs.dimension = 'status' and cs.i = st.i),
      'by_sentiment', (
        select jsonb_object_agg(se.sentiment, coalesce(cs.n, 0))
        from unnest(array['positive', 'neutral', 'negative', 'unknown']) with ordinality se (sentiment, i)
        left join cs on cs.dimension = 'sentiment' and cs.i = se.i),
      -- avg() is sum / count in numeric: the same digits.
      'avg_duration_seconds', round(t.duration_sum / nullif(t.durations, 0), 1),
      'p95_duration_seconds', (
        select round((percentile_cont(0.95) within group (order by x))::numeric, 1) from d, unnest(d.call_durations) x),
      'avg_stt_latency_ms', round(t.stt_sum::numeric / nullif(t.stt_count, 0)),
      'avg_llm_latency_ms', round(t.llm_sum::numeric / nullif(t.llm_count, 0)),
      'avg_tts_latency_ms', round(t.tts_sum::numeric / nullif(t.tts_count, 0)),
      'feedback_count', fb.ratings,
      'avg_rating', round(fb.rating_sum::numeric / nullif(fb.ratings, 0), 2)))
  from t, fb;
$$;
