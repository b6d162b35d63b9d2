-- Week rows for the dashboard summary: a range reads whole local weeks
-- (Monday to Sunday) as one row each instead of seven day rows.
--
-- Why: over 90 days the summary's day figures took about 2.6 ms in process on
-- the benchmark's org, 1.4 ms of it fixed and about 16 us per day row read
-- (1.8 ms over 30 days); the rest of the summary is no longer the larger
-- part. 90 days hold 12 whole weeks, so a range reads 12 week rows and at
-- most 12 day rows instead of 90 day rows.
--
-- A week row (private.analytics_weeks) holds what its seven day rows hold,
-- combined so that private.analytics_day_figures reads it as it reads a day
-- whose day is the week's Monday:
-- - sums, counts per position (channels, statuses, sentiments, sources) and
--   per key (bot; kind, bot and key): summed;
-- - latencies and durations: concatenated and sorted;
-- - distinct conversations and end users: a count and gaps in the day rows'
--   sense. An element is counted in a range on its first active day in it,
--   when its previous active day is before first_day. An element first
--   active in the week on Monday + k with gap g (days since its previous
--   active day, before the week when g > k) has its previous active day at
--   Monday - (g - k): the week keeps g - k for it, and the day rows' rule
--   (counted when the gap is missing or longer than day - first_day) holds
--   with day = Monday. Elements active earlier in the week (g <= k) are not
--   counted again.
-- A week row is derived from its day rows only (never from raw rows), so it
-- is exact whenever they are: a statement trigger on analytics_days deletes
-- the week rows of any day row inserted or deleted (every refresh writes day
-- rows that way; a zone change and a rebuild drop all the org's week rows,
-- those of empty weeks included), and the summary,
-- after refreshing the range's stale days, computes the missing week rows of
-- the range's whole weeks (private.fill_analytics_weeks), under the
-- refresh's per-org lock so that a concurrent refresh cannot slip a day
-- change between the read of the day rows and the insert. A read-only
-- summary (an RPC by GET) writes nothing: it reads the weeks that exist and
-- the day rows of the others. A range's partial weeks (the current one, most
-- often) are read by day, so a write today deletes no week row anyone reads.

create table private.analytics_weeks (
  org_id uuid not null references public.organizations (id) on delete cascade,
  -- The Monday the week starts on, a local day in the org's zone.
  week date not null check (extract(isodow from week) = 1),
  user_messages integer not null,
  assistant_messages integer not null,
  system_messages integer not null,
  tokens_in bigint not null,
  tokens_out bigint not null,
  -- Distinct conversations with messages in the week, and end users who wrote.
  conversation_count integer not null,
  end_user_count integer not null,
  new_end_users integer not null,
  first_responses integer not null,
  first_response_latencies integer[] not null,
  -- For each conversation (end user) active in the week and earlier: the days
  -- from its previous active day before the week to the Monday; sorted.
  conversation_gaps integer[] not null,
  end_user_gaps integer[] not null,
  events_by_channel integer[] not null,
  events_by_bot private.analytics_event_count[] not null,
  usage private.analytics_usage_count[] not null,
  calls integer not null,
  calls_by_status integer[] not null,
  calls_by_sentiment integer[] not null,
  call_durations_ms integer[] not null,
  long_call_durations float8[] not null,
  call_duration_sum numeric not null,
  stt_count integer not null,
  stt_sum bigint not null,
  llm_count integer not null,
  llm_sum bigint not null,
  tts_count integer not null,
  tts_sum bigint not null,
  appointments_by_source integer[] not null,
  appointment_minutes numeric not null,
  appointments_by_bot private.analytics_appointment_count[] not null,
  primary key (org_id, week)
);
comment on table private.analytics_weeks is 'The dashboard summary''s figures per org and local week (Monday to Sunday), combined from its private.analytics_days rows (see 20261123003100): deleted when one of them is written, computed again by the next summary over the whole week (private.fill_analytics_weeks).';
revoke all on private.analytics_weeks from public, anon, authenticated, service_role;

create function private.week_start(day date)
returns date
language sql
immutable
security invoker
set search_path = ''
as $$
  -- 2000-01-03 was a Monday.
  select day - ((day - date '2000-01-03') % 7 + 7) % 7;
$$;
comment on function private.week_start(date) is 'The Monday of the ISO week holding day.';

-- The week rows of org for these Mondays, from the day rows as they stand
-- (a week without day rows gives zeros and empty arrays).
create function private.analytics_compute_weeks(org uuid, weeks date[])
returns setof private.analytics_weeks
language sql
stable
security invoker
set search_path = ''
as $$
  with
  w as (select distinct x.week from unnest(weeks) x (week)),
  d as materialized (
    select w.week, d.day - w.week as k, d.*
    from w
    join private.analytics_days d on d.org_id = org and d.day >= w.week and d.day < w.week + 7
  )
  select org, w.week,
    coalesce(s.user_messages, 0), coalesce(s.assistant_messages, 0), coalesce(s.system_messages, 0),
    coalesce(s.tokens_in, 0), coalesce(s.tokens_out, 0),
    coalesce(s.conversation_count, 0), coalesce(s.end_user_count, 0),
    coalesce(s.new_end_users, 0), coalesce(s.first_responses, 0),
    extensions.sort_asc(array(select l from d, unnest(d.first_response_latencies) l where d.week = w.week)),
    extensions.sort_asc(array(select g - d.k from d, unnest(d.conversation_gaps) g where d.week = w.week and g > d.k)),
    extensions.sort_asc(array(select g - d.k from d, unnest(d.end_user_gaps) g where d.week = w.week and g > d.k)),
    array(
      select sum(e.n)::integer from d, unnest(d.events_by_channel) with ordinality e (n, i) where d.week = w.week
      group by e.i order by e.i),
    array(
      select row(e.bot_id, sum(e.started), sum(e.escalated), sum(e.closed))::private.analytics_event_count
      from d, unnest(d.events_by_bot) e where d.week = w.week
      group by e.bot_id order by e.bot_id),
    array(
      select row(u.kind, u.bot_id, u.api_key_id, sum(u.tokens_in), sum(u.tokens_out))::private.analytics_usage_count
      from d, unnest(d.usage) u where d.week = w.week
      group by u.kind, u.bot_id, u.api_key_id order by u.kind, u.bot_id, u.api_key_id),
    coalesce(s.calls, 0),
    array(
      select sum(e.n)::integer from d, unnest(d.calls_by_status) with ordinality e (n, i) where d.week = w.week
      group by e.i order by e.i),
    array(
      select sum(e.n)::integer from d, unnest(d.calls_by_sentiment) with ordinality e (n, i) where d.week = w.week
      group by e.i order by e.i),
    extensions.sort_asc(array(select l from d, unnest(d.call_durations_ms) l where d.week = w.week)),
    array(select l from d, unnest(d.long_call_durations) l where d.week = w.week),
    coalesce(s.call_duration_sum, 0),
    coalesce(s.stt_count, 0), coalesce(s.stt_sum, 0), coalesce(s.llm_count, 0), coalesce(s.llm_sum, 0),
    coalesce(s.tts_count, 0), coalesce(s.tts_sum, 0),
    array(
      select sum(e.n)::integer from d, unnest(d.appointments_by_source) with ordinality e (n, i) where d.week = w.week
      group by e.i order by e.i),
    coalesce(s.appointment_minutes, 0),
    array(
      select row(a.bot_id, sum(a.total), sum(a.booked), sum(a.completed), sum(a.canceled), sum(a.no_show),
        sum(a.rescheduled))::private.analytics_appointment_count
      from d, unnest(d.appointments_by_bot) a where d.week = w.week
      group by a.bot_id order by a.bot_id)
  from w
  left join lateral (
    select sum(d.user_messages)::integer as user_messages, sum(d.assistant_messages)::integer as assistant_messages,
      sum(d.system_messages)::integer as system_messages, sum(d.tokens_in)::bigint as tokens_in, sum(d.tokens_out)::bigint as tokens_out,
      -- Each element once: on its first active day in the week (a gap
      -- longer than the days since Monday, or none).
      sum(cardinality(d.conversations) - pg_catalog.width_bucket(d.k, d.conversation_gaps))::integer as conversation_count,
      sum(cardinality(d.end_users) - pg_catalog.width_bucket(d.k, d.end_user_gaps))::integer as end_user_count,
      sum(d.new_end_users)::integer as new_end_users, sum(d.first_responses)::integer as first_responses,
      sum(d.calls)::integer as calls, sum(d.call_duration_sum) as call_duration_sum,
      sum(d.stt_count)::integer as stt_count, sum(d.stt_sum)::bigint as stt_sum,
      sum(d.llm_count)::integer as llm_count, sum(d.llm_sum)::bigint as llm_sum,
      sum(d.tts_count)::integer as tts_count, sum(d.tts_sum)::bigint as tts_sum,
      sum(d.appointment_minutes) as appointment_minutes
    from d where d.week = w.week
  ) s on true;
$$;
revoke execute on function private.analytics_compute_weeks(uuid, date[]) from public;
comment on function private.analytics_compute_weeks(uuid, date[]) is 'The private.analytics_weeks rows of an org for these Mondays, combined from its analytics_days rows as they stand.';

create function private.analytics_days_written()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from private.analytics_weeks w
  using (select distinct c.org_id, private.week_start(c.day) as week from changed_days c) c
  where w.org_id = c.org_id and w.week = c.week;
  return null;
end;
$$;
revoke execute on function private.analytics_days_written() from public;

create trigger analytics_days_inserted after insert on private.analytics_days
  referencing new table as changed_days for each statement execute function private.analytics_days_written();
create trigger analytics_days_deleted after delete on private.analytics_days
  referencing old table as changed_days for each statement execute function private.analytics_days_written();
create trigger analytics_days_updated after update on private.analytics_days
  referencing new table as changed_days for each statement execute function private.analytics_days_written();

-- A week without day rows has a row (zeros) that no day-row write drops:
-- a zone change, which cuts the days anew, and a rebuild drop the org's week
-- rows themselves. As before (20261123001700) otherwise.
create or replace function private.analytics_org_zone_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(1700, pg_catalog.hashtext(new.id::text));
  delete from private.analytics_days d where d.org_id = new.id;
  -- Empty weeks have rows but no day rows to drop them.
  delete from private.analytics_weeks w where w.org_id = new.id;
  delete from private.analytics_stale_days s where s.org_id = new.id;
  insert into private.analytics_stale_days (org_id, day)
  select k.org_id, k.day from private.analytics_org_days(array[new.id]) k
  on conflict do nothing;
  return null;
end;
$$;

create or replace function private.rebuild_analytics_rollups(org_id uuid default null)
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
  -- Also those of empty weeks, and after a load with triggers off.
  delete from private.analytics_weeks w where w.org_id = any (org_ids);
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

-- The week rows of org's whole weeks in first_day..last_day that are missing.
-- The caller has refreshed those days (private.refresh_analytics_days).
create function private.fill_analytics_weeks(org uuid, first_day date, last_day date)
returns integer
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  first_week date := private.week_start(first_day + 6);
  missing date[];
begin
  missing := array(
    select first_week + 7 * i
    from generate_series(0, (last_day - 6 - first_week) / 7) i
    where last_day - 6 >= first_week
      and not exists (select 1 from private.analytics_weeks w where w.org_id = org and w.week = first_week + 7 * i));
  if cardinality(missing) = 0 then
    return 0;
  end if;
  -- The refresh's lock: no day row of the org changes until this commits,
  -- and the insert below (a later snapshot) sees every change before it.
  perform pg_catalog.pg_advisory_xact_lock(1700, pg_catalog.hashtext(org::text));
  insert into private.analytics_weeks
  select * from private.analytics_compute_weeks(org, missing)
  on conflict do nothing;
  return cardinality(missing);
end;
$$;
revoke execute on function private.fill_analytics_weeks(uuid, date, date) from public;
comment on function private.fill_analytics_weeks(uuid, date, date) is 'Computes the missing private.analytics_weeks rows of the whole weeks in a range whose days are fresh (the summary calls it after private.refresh_analytics_days).';

-- For pgTAP and operators: the week rows that differ from a computation from
-- the day rows as they stand (none, or a trigger missed a write).
create function private.verify_analytics_weeks(org_id uuid)
returns table (week date, stored jsonb, computed jsonb)
language sql
stable
security definer
set search_path = ''
as $$
  with
  s as (select w.week, to_jsonb(w) as j from private.analytics_weeks w where w.org_id = verify_analytics_weeks.org_id),
  c as (
    select w.week, to_jsonb(w) as j
    from private.analytics_compute_weeks(verify_analytics_weeks.org_id, array(select s.week from s)) w
  )
  select s.week, s.j, c.j from s left join c on c.week = s.week where s.j is distinct from c.j;
$$;
revoke execute on function private.verify_analytics_weeks(uuid) from public, anon, authenticated;
grant execute on function private.verify_analytics_weeks(uuid) to service_role;
comment on function private.verify_analytics_weeks(uuid) is 'The org''s week rows that differ from their day rows'' combination (empty when the week rows are exact). Service role.';

-- The range's whole weeks that have a row are read as one row each, the
-- other days one by one. As before (20261123002900) otherwise.
create or replace function private.analytics_sorted_day_values(org uuid, first_day date, last_day date,
  out latencies integer[], out call_durations_ms integer[])
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  day_latencies integer[];
  day_durations integer[];
  weeks date[];
begin
  latencies := '{}';
  call_durations_ms := '{}';
  weeks := array(
    select w.week from private.analytics_weeks w
    where w.org_id = org and w.week >= first_day and w.week <= last_day - 6);
  for day_latencies, day_durations in
    select w.first_response_latencies, w.call_durations_ms from private.analytics_weeks w
    where w.org_id = org and w.week = any (weeks)
    union all
    select d.first_response_latencies, d.call_durations_ms from private.analytics_days d
    -- The day's Monday (private.week_start, written out).
    where d.org_id = org and d.day >= first_day and d.day <= last_day and not (d.day - ((d.day - date '2000-01-03') % 7 + 7) % 7 = any (weeks))
  loop
    latencies := latencies || day_latencies;
    call_durations_ms := call_durations_ms || day_durations;
  end loop;
  latencies := extensions.sort_asc(latencies);
  call_durations_ms := extensions.sort_asc(call_durations_ms);
end;
$$;

-- As before (20261123002900), with the range's week rows.
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

-- As before (20261123002900), and then the missing week rows of the range's
-- whole weeks, once its days are fresh.
create or replace function private.analytics_summary(org_id uuid, from_date date, to_date date, time_zone text, raw boolean)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = ''
set plan_cache_mode = force_generic_plan
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
      perform private.fill_analytics_weeks(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date);
    end if;
  end if;
  if by_day then
    figures := private.analytics_day_figures(analytics_summary.org_id, analytics_summary.from_date, analytics_summary.to_date, range_start, range_end);
  else
    figures := private.analytics_chat_figures(analytics_summary.org_id, range_start, range_end, analytics_summary.raw)
      || jsonb_build_object(
        'usage', private.analytics_usage_figures(analytics_summary.org_id, range_start, range_end, analytics_summary.raw),
        'appointments', private.analytics_appointment_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date));
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
    || (figures - 'calls' - 'usage' - 'appointments')
    || jsonb_build_object(
      'usage', (figures -> 'usage') || case when by_day then private.analytics_usage_windows(analytics_summary.org_id, false) else '{}'::jsonb end,
      'knowledge', private.analytics_knowledge_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date, false),
      'uploads', private.analytics_upload_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date, false),
      'team', private.analytics_team_figures(analytics_summary.org_id, zone, analytics_summary.from_date, analytics_summary.to_date),
      'appointments', figures -> 'appointments',
      'calls', calls);
end;
$$;
