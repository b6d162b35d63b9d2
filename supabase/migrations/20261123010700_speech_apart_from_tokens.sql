-- Speech apart from tokens.
--
-- Since 20261123009900 a call's talk time is usage_events kind 'speech' with its seconds in tokens_in. The
-- analytics readers that add usage across kinds added those seconds into token totals: the usage section's
-- tokens_in/tokens_out (range, last_24h, last_7d), the summary's usage, and every by_bot / by_api_key entry
-- (range and per day). Token totals now count chat and embedding only; speech stays in by_kind.speech (its
-- tokens_in the seconds) and, wherever a total per range, window, bot or API key is answered, in a new
-- speech_seconds beside the token totals. Per-kind readers (usage_totals, usage_daily, analytics_usage_daily's
-- columns, the quota shares, private.metered_usage for invoices, the export's raw usage_events rows) never mixed
-- kinds and are unchanged; the public ones' comments now say what speech's tokens_in holds. Nothing stored
-- changes: the rollups keep their kind.

-- ---------------------------------------------------------------------------
-- Range and window totals (the usage section, its last_24h and last_7d, the quota's windows)
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123002500_analytics_quarter_hour_buckets.sql; only the token totals' filter and
-- speech_seconds are new.
create or replace function private.analytics_usage_between(org uuid, from_at timestamptz, to_at timestamptz, raw boolean)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  full_start timestamptz := case when pg_catalog.date_bin('15 minutes', from_at, timestamptz '2000-01-01 00:00+00') = from_at then from_at
                                 else pg_catalog.date_bin('15 minutes', from_at, timestamptz '2000-01-01 00:00+00') + interval '15 minutes' end;
  full_end timestamptz := pg_catalog.date_bin('15 minutes', to_at, timestamptz '2000-01-01 00:00+00');
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
  -- Speech counts seconds in tokens_in: beside the token totals, not in them.
  select jsonb_build_object(
    'tokens_in', sum(k.tokens_in) filter (where k.kind in ('chat', 'embedding')),
    'tokens_out', sum(k.tokens_out) filter (where k.kind in ('chat', 'embedding')),
    'speech_seconds', sum(k.tokens_in) filter (where k.kind = 'speech'),
    'by_kind', jsonb_object_agg(k.kind, jsonb_build_object('tokens_in', k.tokens_in, 'tokens_out', k.tokens_out)))
  into result
  from k;
  return result;
end;
$$;

-- ---------------------------------------------------------------------------
-- The usage section's by_bot and by_api_key (hour rollups, or raw)
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001700_analytics.sql; only the totals per bot and key (tokens of chat and
-- embedding, speech_seconds beside them) are new. An entry with speech alone is listed; ties in tokens go to
-- the one with more speech.
create or replace function private.analytics_usage_figures(org uuid, range_start timestamptz, range_end timestamptz, raw boolean)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  u as materialized (
    select h.bot_id, h.api_key_id,
      coalesce(sum(h.tokens_in) filter (where h.kind in ('chat', 'embedding')), 0)::bigint as tokens_in,
      coalesce(sum(h.tokens_out) filter (where h.kind in ('chat', 'embedding')), 0)::bigint as tokens_out,
      coalesce(sum(h.tokens_in) filter (where h.kind = 'speech'), 0)::bigint as speech_seconds
    from private.analytics_usage_hours h
    where not raw and h.org_id = org and h.hour >= range_start and h.hour < range_end
    group by 1, 2
    union all
    select e.bot_id, e.api_key_id,
      coalesce(sum(e.tokens_in) filter (where e.kind in ('chat', 'embedding')), 0)::bigint,
      coalesce(sum(e.tokens_out) filter (where e.kind in ('chat', 'embedding')), 0)::bigint,
      coalesce(sum(e.tokens_in) filter (where e.kind = 'speech'), 0)::bigint
    from public.usage_events e
    where raw and e.org_id = org and e.created_at >= range_start and e.created_at < range_end
    group by 1, 2
  )
  select private.analytics_usage_between(org, range_start, range_end, raw) || jsonb_build_object(
    'by_bot', coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out,
                                          'speech_seconds', x.speech_seconds)
                       order by x.tokens_in + x.tokens_out desc, x.speech_seconds desc, x.bot_id nulls last)
      from (select u.bot_id, sum(u.tokens_in) as tokens_in, sum(u.tokens_out) as tokens_out, sum(u.speech_seconds) as speech_seconds
            from u group by u.bot_id) x
      left join public.bots b on b.id = x.bot_id
      where x.tokens_in <> 0 or x.tokens_out <> 0 or x.speech_seconds <> 0), '[]'::jsonb),
    'by_api_key', coalesce((
      select jsonb_agg(jsonb_build_object('api_key_id', x.api_key_id, 'api_key_name', k.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out,
                                          'speech_seconds', x.speech_seconds)
                       order by x.tokens_in + x.tokens_out desc, x.speech_seconds desc, x.api_key_id nulls last)
      from (select u.api_key_id, sum(u.tokens_in) as tokens_in, sum(u.tokens_out) as tokens_out, sum(u.speech_seconds) as speech_seconds
            from u group by u.api_key_id) x
      left join public.api_keys k on k.id = x.api_key_id
      where x.tokens_in <> 0 or x.tokens_out <> 0 or x.speech_seconds <> 0), '[]'::jsonb))
    || private.analytics_usage_windows(org, raw);
$$;

-- ---------------------------------------------------------------------------
-- The summary's usage from day and week rows
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123003100_analytics_weeks.sql; only the usage totals, by_bot and by_api_key are
-- new, as in analytics_usage_between and analytics_usage_figures above.
create or replace function private.analytics_day_figures(org uuid, first_day date, last_day date, range_start timestamptz, range_end timestamptz)
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  with
  -- The range's whole weeks that have a row, each read as one day (its
  -- Monday); the other days one by one.
  wk as materialized (
    select w.* from private.analytics_weeks w
    where w.org_id = org and w.week >= first_day and w.week <= last_day - 6
  ),
  d as materialized (
    select w.week as day, w.user_messages, w.assistant_messages, w.system_messages, w.tokens_in, w.tokens_out, w.new_end_users, w.first_responses,
      w.conversation_count - pg_catalog.width_bucket(w.week - first_day, w.conversation_gaps) as new_conversations,
      w.end_user_count - pg_catalog.width_bucket(w.week - first_day, w.end_user_gaps) as new_range_end_users,
      w.events_by_channel, w.events_by_bot, w.usage, w.calls, w.calls_by_status, w.calls_by_sentiment,
      cardinality(w.call_durations_ms) as call_durations, w.long_call_durations,
      w.call_duration_sum, w.stt_count, w.stt_sum, w.llm_count, w.llm_sum, w.tts_count, w.tts_sum,
      w.appointments_by_source, w.appointment_minutes, w.appointments_by_bot
    from wk w
    union all
    select d.day, d.user_messages, d.assistant_messages, d.system_messages, d.tokens_in, d.tokens_out, d.new_end_users, d.first_responses,
      -- Elements counted on this day: those not active earlier in the range.
      cardinality(d.conversations) - pg_catalog.width_bucket(d.day - first_day, d.conversation_gaps) as new_conversations,
      cardinality(d.end_users) - pg_catalog.width_bucket(d.day - first_day, d.end_user_gaps) as new_range_end_users,
      d.events_by_channel, d.events_by_bot, d.usage, d.calls, d.calls_by_status, d.calls_by_sentiment,
      cardinality(d.call_durations_ms) as call_durations, d.long_call_durations,
      d.call_duration_sum, d.stt_count, d.stt_sum, d.llm_count, d.llm_sum, d.tts_count, d.tts_sum,
      d.appointments_by_source, d.appointment_minutes, d.appointments_by_bot
    from private.analytics_days d where d.org_id = org and d.day >= first_day and d.day <= last_day
      -- The day's Monday, private.week_start written out: a function with its
      -- own search_path is called per row, not inlined.
      and not (d.day - ((d.day - date '2000-01-03') % 7 + 7) % 7 = any (array(select w.week from wk w)))
  ),
  -- Per channel, from the days' positions.
  evc as materialized (
    select ch.channel, coalesce(sum(d.events_by_channel[ch.i * 3 - 2]), 0) as started,
      coalesce(sum(d.events_by_channel[ch.i * 3 - 1]), 0) as escalated, coalesce(sum(d.events_by_channel[ch.i * 3]), 0) as closed
    from unnest(enum_range(null::public.chat_channel)) with ordinality ch (channel, i)
    left join d on true
    group by ch.channel
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
      coalesce(sum(cardinality(d.long_call_durations)), 0) as long_calls,
      coalesce(sum(d.calls), 0) as calls,
      coalesce(sum(d.call_durations + cardinality(d.long_call_durations)), 0) as durations, coalesce(sum(d.call_duration_sum), 0) as duration_sum,
      coalesce(sum(d.stt_count), 0) as stt_count, coalesce(sum(d.stt_sum), 0) as stt_sum,
      coalesce(sum(d.llm_count), 0) as llm_count, coalesce(sum(d.llm_sum), 0) as llm_sum,
      coalesce(sum(d.tts_count), 0) as tts_count, coalesce(sum(d.tts_sum), 0) as tts_sum,
      -- Position by position (subscripts, not an unnest of every day's array).
      array[sum(d.calls_by_status[1]), sum(d.calls_by_status[2]), sum(d.calls_by_status[3]), sum(d.calls_by_status[4]),
            sum(d.calls_by_status[5]), sum(d.calls_by_status[6]), sum(d.calls_by_status[7])] as calls_by_status,
      array[sum(d.calls_by_sentiment[1]), sum(d.calls_by_sentiment[2]), sum(d.calls_by_sentiment[3]), sum(d.calls_by_sentiment[4])]
        as calls_by_sentiment,
      coalesce(sum(d.appointment_minutes), 0) as appointment_minutes
    from d
  ),
  -- The appointments as analytics_appointment_figures counts them: per
  -- source from the days' positions, per bot from their arrays.
  aps as materialized (
    select src.source, coalesce(sum(d.appointments_by_source[src.i * 6 - 5]), 0) as total,
      coalesce(sum(d.appointments_by_source[src.i * 6 - 4]), 0) as booked, coalesce(sum(d.appointments_by_source[src.i * 6 - 3]), 0) as completed,
      coalesce(sum(d.appointments_by_source[src.i * 6 - 2]), 0) as canceled, coalesce(sum(d.appointments_by_source[src.i * 6 - 1]), 0) as no_show,
      coalesce(sum(d.appointments_by_source[src.i * 6]), 0) as rescheduled
    from unnest(array['bot', 'staff']) with ordinality src (source, i)
    left join d on true
    group by src.source
  ),
  open as materialized (select private.analytics_open_minutes(org, pg_catalog.tstzrange(range_start, range_end, '[)')) as minutes),
  fb as (
    select count(*) as ratings, sum(f.rating) as rating_sum
    from public.call_feedback f
    join public.calls c on c.id = f.call_id and c.org_id = f.org_id
    where f.org_id = org and c.status <> 'queued'
      and coalesce(c.started_at, c.ended_at, c.created_at) >= range_start and coalesce(c.started_at, c.ended_at, c.created_at) < range_end
  )
  select jsonb_build_object(
    'conversations', jsonb_build_object(
      'started', (select sum(x.started) from evc x),
      'escalated', (select sum(x.escalated) from evc x),
      'closed', (select sum(x.closed) from evc x),
      'by_channel', (
        select jsonb_object_agg(x.channel, jsonb_build_object('started', x.started, 'escalated', x.escalated, 'closed', x.closed))
        from evc x),
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'started', x.started, 'escalated', x.escalated, 'closed', x.closed)
                         order by x.started desc, x.bot_id)
        from (
          select e.bot_id, sum(e.started) as started, sum(e.escalated) as escalated, sum(e.closed) as closed
          from d cross join unnest(d.events_by_bot) e
          group by e.bot_id
        ) x
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
      'median_first_response_ms', round(private.sorted_percentile(sv.latencies, 0.5, 1)::numeric)),
    'usage', (
      select jsonb_build_object(
        'tokens_in', sum(k.tokens_in) filter (where k.kind in ('chat', 'embedding')),
        'tokens_out', sum(k.tokens_out) filter (where k.kind in ('chat', 'embedding')),
        'speech_seconds', sum(k.tokens_in) filter (where k.kind = 'speech'),
        'by_kind', jsonb_object_agg(k.kind, jsonb_build_object('tokens_in', k.tokens_in, 'tokens_out', k.tokens_out)))
      from (
        select kinds.kind, coalesce(sum(us.tokens_in), 0) as tokens_in, coalesce(sum(us.tokens_out), 0) as tokens_out
        from unnest(array['chat', 'embedding', 'speech']) kinds (kind)
        left join us on us.kind = kinds.kind
        group by kinds.kind
      ) k) || jsonb_build_object(
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', b.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out,
                                            'speech_seconds', x.speech_seconds)
                         order by x.tokens_in + x.tokens_out desc, x.speech_seconds desc, x.bot_id nulls last)
        from (
          select us.bot_id, coalesce(sum(us.tokens_in) filter (where us.kind in ('chat', 'embedding')), 0) as tokens_in,
            coalesce(sum(us.tokens_out) filter (where us.kind in ('chat', 'embedding')), 0) as tokens_out,
            coalesce(sum(us.tokens_in) filter (where us.kind = 'speech'), 0) as speech_seconds
          from us group by us.bot_id) x
        left join public.bots b on b.id = x.bot_id
        where x.tokens_in <> 0 or x.tokens_out <> 0 or x.speech_seconds <> 0), '[]'::jsonb),
      'by_api_key', coalesce((
        select jsonb_agg(jsonb_build_object('api_key_id', x.api_key_id, 'api_key_name', k.name, 'tokens_in', x.tokens_in, 'tokens_out', x.tokens_out,
                                            'speech_seconds', x.speech_seconds)
                         order by x.tokens_in + x.tokens_out desc, x.speech_seconds desc, x.api_key_id nulls last)
        from (
          select us.api_key_id, coalesce(sum(us.tokens_in) filter (where us.kind in ('chat', 'embedding')), 0) as tokens_in,
            coalesce(sum(us.tokens_out) filter (where us.kind in ('chat', 'embedding')), 0) as tokens_out,
            coalesce(sum(us.tokens_in) filter (where us.kind = 'speech'), 0) as speech_seconds
          from us group by us.api_key_id) x
        left join public.api_keys k on k.id = x.api_key_id
        where x.tokens_in <> 0 or x.tokens_out <> 0 or x.speech_seconds <> 0), '[]'::jsonb)),
    'calls', jsonb_build_object(
      'total', t.calls,
      'by_status', (
        select jsonb_object_agg(st.status, coalesce(t.calls_by_status[st.i], 0))
        from unnest(array['ringing', 'in_progress', 'ended', 'failed', 'no_answer', 'busy', 'canceled']) with ordinality st (status, i)),
      'by_sentiment', (
        select jsonb_object_agg(se.sentiment, coalesce(t.calls_by_sentiment[se.i], 0))
        from unnest(array['positive', 'neutral', 'negative', 'unknown']) with ordinality se (sentiment, i)),
      -- avg() is sum / count in numeric: the same digits.
      'avg_duration_seconds', round(t.duration_sum / nullif(t.durations, 0), 1),
      'p95_duration_seconds', round((case
        when t.long_calls = 0 then private.sorted_percentile(sv.call_durations_ms, 0.95, 1000)
        else (select percentile_cont(0.95) within group (order by x.seconds)
              from (select ms::float8 / 1000 as seconds from unnest(sv.call_durations_ms) ms
                    union all
                    select l from d, unnest(d.long_call_durations) l) x)
        end)::numeric, 1),
      'avg_stt_latency_ms', round(t.stt_sum::numeric / nullif(t.stt_count, 0)),
      'avg_llm_latency_ms', round(t.llm_sum::numeric / nullif(t.llm_count, 0)),
      'avg_tts_latency_ms', round(t.tts_sum::numeric / nullif(t.tts_count, 0)),
      'feedback_count', fb.ratings,
      'avg_rating', round(fb.rating_sum::numeric / nullif(fb.ratings, 0), 2)),
    'appointments', (
      select jsonb_build_object('total', sum(a.total), 'booked', sum(a.booked), 'completed', sum(a.completed), 'canceled', sum(a.canceled),
        'no_show', sum(a.no_show), 'rescheduled', sum(a.rescheduled))
      from aps a) || jsonb_build_object(
      'by_source', (
        select jsonb_object_agg(a.source, jsonb_build_object('total', a.total, 'booked', a.booked, 'completed', a.completed,
          'canceled', a.canceled, 'no_show', a.no_show, 'rescheduled', a.rescheduled))
        from aps a),
      'by_bot', coalesce((
        select jsonb_agg(jsonb_build_object('bot_id', x.bot_id, 'bot_name', bt.name, 'total', x.total, 'booked', x.booked, 'completed', x.completed,
                           'canceled', x.canceled, 'no_show', x.no_show, 'rescheduled', x.rescheduled)
                         order by x.total desc, x.bot_id nulls last)
        from (
          select b.bot_id, sum(b.total) as total, sum(b.booked) as booked, sum(b.completed) as completed, sum(b.canceled) as canceled,
            sum(b.no_show) as no_show, sum(b.rescheduled) as rescheduled
          from d cross join unnest(d.appointments_by_bot) b
          group by b.bot_id
        ) x
        left join public.bots bt on bt.id = x.bot_id), '[]'::jsonb),
      'utilisation', (
        select jsonb_build_object(
          'open_minutes', round(o.minutes, 1),
          'booked_minutes', round(t.appointment_minutes, 1),
          'share', round(t.appointment_minutes / nullif(o.minutes, 0), 4))
        from open o)))
  from t, fb, private.analytics_sorted_day_values(org, first_day, last_day) sv;
$$;

-- ---------------------------------------------------------------------------
-- analytics_usage_daily's by_bot and by_api_key
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001700_analytics.sql; only the per-day entries of by_bot and by_api_key are new
-- (their columns per kind never mixed).
create or replace function private.analytics_usage_daily(org_id uuid, from_date date, to_date date, time_zone text)
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
    select y.d, jsonb_agg(jsonb_build_object('bot_id', y.bot_id, 'tokens_in', y.ti, 'tokens_out', y.t_out, 'speech_seconds', y.ss)
                          order by y.ti + y.t_out desc, y.ss desc, y.bot_id nulls last) as j
    from (
      select u.d, u.bot_id, coalesce(sum(u.tokens_in) filter (where u.kind in ('chat', 'embedding')), 0) as ti,
        coalesce(sum(u.tokens_out) filter (where u.kind in ('chat', 'embedding')), 0) as t_out,
        coalesce(sum(u.tokens_in) filter (where u.kind = 'speech'), 0) as ss
      from u group by 1, 2) y
    where y.ti <> 0 or y.t_out <> 0 or y.ss <> 0
    group by y.d
  ),
  per_key as (
    select y.d, jsonb_agg(jsonb_build_object('api_key_id', y.api_key_id, 'tokens_in', y.ti, 'tokens_out', y.t_out, 'speech_seconds', y.ss)
                          order by y.ti + y.t_out desc, y.ss desc, y.api_key_id nulls last) as j
    from (
      select u.d, u.api_key_id, coalesce(sum(u.tokens_in) filter (where u.kind in ('chat', 'embedding')), 0) as ti,
        coalesce(sum(u.tokens_out) filter (where u.kind in ('chat', 'embedding')), 0) as t_out,
        coalesce(sum(u.tokens_in) filter (where u.kind = 'speech'), 0) as ss
      from u group by 1, 2) y
    where y.ti <> 0 or y.t_out <> 0 or y.ss <> 0
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

-- ---------------------------------------------------------------------------
-- What speech's numbers are, where readers see them
-- ---------------------------------------------------------------------------

comment on function public.analytics_usage(uuid, date, date, text) is 'Tokens over the range (by kind, bot and API key), over the last 24 hours and 7 days, and the share of the plan''s chat and embedding tokens used in the current period. tokens_in/tokens_out count chat and embedding tokens only; speech (call talk time) is by_kind.speech.tokens_in in seconds and speech_seconds beside each total (range, last_24h, last_7d, every by_bot and by_api_key entry). Viewers and up (analytics.read).';
comment on function public.analytics_usage_daily(uuid, date, date, text) is 'Tokens in and out per local day and kind, with by_bot and by_api_key [{id, tokens_in, tokens_out, speech_seconds}] (zeros for empty days). speech_tokens_in is call talk time in seconds; by_bot and by_api_key tokens count chat and embedding only, speech in speech_seconds. Viewers and up (analytics.read).';
comment on function public.usage_totals(uuid) is 'Tokens in and out per kind over the last 24 hours and 7 days; for kind speech, tokens_in is call talk time in seconds (tokens_out 0). Admins and up: usage.read.';
comment on function public.usage_daily(uuid, date, date, text) is 'Tokens in and out per day and kind (zeros for empty days), days cut in time_zone (default the org''s time_zone); at most 366 days; for kind speech, tokens_in is call talk time in seconds (tokens_out 0). Admins and up (usage.read).';
