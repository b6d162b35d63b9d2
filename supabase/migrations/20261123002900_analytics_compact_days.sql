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
-- Counts over a fixed set of keys are positions in an integer array, summed
-- position by position (subscripts, no unnest): conversation events per
-- channel, calls by status and sentiment, appointments per source. The rest
-- are small composite arrays (events and appointments per bot, usage per
-- kind, bot and key) unnested instead of jsonb_to_recordset.
--
-- Percentiles without unnesting: the median first response and the calls'
-- p95 duration unnested about 2,700 and 2,300 values into a sort (1.2 ms
-- together). The days' values are integers (latencies in ms; durations,
-- numeric(10,3) seconds, in ms), so a range concatenates its days' arrays
-- (private.analytics_sorted_day_values), sorts them in C (intarray's sort_asc) and
-- reads the two values percentile_cont interpolates between, as it does
-- (private.sorted_percentile): the same double. A duration past int4's
-- 24.8 days of ms is kept apart (long_call_durations, seconds as float8);
-- a range holding one takes percentile_cont itself.
--
-- Appointments join the day rows (by the local day they start on, per
-- source and per bot), marked stale by a statement trigger on public.appointments
-- like the other sources: the summary read them from the table, 743 rows
-- over 90 days for the benchmark's org, the costliest section after the
-- chat figures.
--
-- The summary (private.analytics_summary) runs with generic plans: with the
-- default, Postgres planned its sections' queries afresh at every call.
--
-- The rows are derived data: the migration drops them and marks their days
-- stale, and the first read of a day (or the pg_cron job) recomputes it.

create extension if not exists intarray with schema extensions;

-- percentile_cont(fraction) of the values sorted[i] / unit, given sorted
-- ascending: the same arithmetic in double precision as Postgres's
-- percentile_cont_final_common (the rows at floor and ceil of
-- fraction * (n - 1), and lo + (pos - floor) * (hi - lo) between them), so
-- the same double; null for no values.
create function private.sorted_percentile(sorted integer[], fraction float8, unit float8)
returns float8
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when x.n = 0 then null
    when pg_catalog.floor(x.pos) = pg_catalog.ceil(x.pos) then sorted[pg_catalog.floor(x.pos)::integer + 1]::float8 / unit
    else sorted[pg_catalog.floor(x.pos)::integer + 1]::float8 / unit
      + ((x.pos - pg_catalog.floor(x.pos))
         * (sorted[pg_catalog.ceil(x.pos)::integer + 1]::float8 / unit - sorted[pg_catalog.floor(x.pos)::integer + 1]::float8 / unit))
  end
  from (select cardinality(sorted) as n, fraction * (cardinality(sorted) - 1) as pos) x;
$$;
revoke execute on function private.sorted_percentile(integer[], float8, float8) from public;

-- The first-response latencies and the ended calls' durations (ms) of the
-- org's days first_day..last_day, each concatenated and sorted. A loop, not
-- an aggregate over array_cat: an aggregate cannot pin its search_path (the
-- database advisors flag it), and unnesting the values is what this avoids.
create function private.analytics_sorted_day_values(org uuid, first_day date, last_day date,
  out latencies integer[], out call_durations_ms integer[])
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  day_latencies integer[];
  day_durations integer[];
begin
  latencies := '{}';
  call_durations_ms := '{}';
  for day_latencies, day_durations in
    select d.first_response_latencies, d.call_durations_ms from private.analytics_days d
    where d.org_id = org and d.day >= first_day and d.day <= last_day
  loop
    latencies := latencies || day_latencies;
    call_durations_ms := call_durations_ms || day_durations;
  end loop;
  latencies := extensions.sort_asc(latencies);
  call_durations_ms := extensions.sort_asc(call_durations_ms);
end;
$$;
revoke execute on function private.analytics_sorted_day_values(uuid, date, date) from public;

create type private.analytics_event_count as (
  bot_id uuid,
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

create type private.analytics_appointment_count as (
  bot_id uuid,
  total integer,
  booked integer,
  completed integer,
  canceled integer,
  no_show integer,
  rescheduled integer
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
  -- Conversations started, escalated, closed per channel, three by three
  -- in enum_range(null::public.chat_channel) order (a summary sums them
  -- position by position: no unnest); a channel added to the enum must go
  -- last, or the org's days be rebuilt. And the same per bot.
  add column events_by_channel integer[] not null,
  add column events_by_bot private.analytics_event_count[] not null,
  add column usage private.analytics_usage_count[] not null,
  -- Calls (not queued) by coalesce(started_at, ended_at, created_at), as
  -- call_stats_summary counts them.
  add column calls integer not null,
  -- ringing, in_progress, ended, failed, no_answer, busy, canceled
  add column calls_by_status integer[] not null,
  -- positive, neutral, negative, unknown
  add column calls_by_sentiment integer[] not null,
  -- The ended calls' durations in ms, sorted; those of 2^31 ms or more
  -- apart, in seconds.
  add column call_durations_ms integer[] not null,
  add column long_call_durations float8[] not null,
  add column call_duration_sum numeric not null,
  add column stt_count integer not null,
  add column stt_sum bigint not null,
  add column llm_count integer not null,
  add column llm_sum bigint not null,
  add column tts_count integer not null,
  add column tts_sum bigint not null,
  -- By the local day they start on: per source (bot, then staff), six by
  -- six (total, booked, completed, canceled, no_show, rescheduled); the
  -- minutes of those not canceled; per bot.
  add column appointments_by_source integer[] not null,
  add column appointment_minutes numeric not null,
  add column appointments_by_bot private.analytics_appointment_count[] not null;

comment on column private.analytics_days.conversation_gaps is 'For each conversation with messages that day and on an earlier local day: the days since the latest such day; sorted (distinct counts over a range, see 20261123002900).';
comment on column private.analytics_days.end_user_gaps is 'For each end user who wrote that day and on an earlier local day: the days since the latest such day; sorted.';

-- The analytics_days rows of these (org_ids[i], days[i]) pairs, from the
-- hour rollups, first_responses, end_users, calls and appointments as they
-- stand (days with nothing give no row).
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
  evx as materialized (
    select x.* from (
      select w.org_id, w.day, e.bot_id, e.channel, sum(e.started)::integer as started, sum(e.escalated)::integer as escalated,
        sum(e.closed)::integer as closed
      from w
      join private.analytics_conversation_events e on e.org_id = w.org_id and e.hour >= w.s and e.hour < w.e
      group by 1, 2, 3, 4
    ) x
    where x.started <> 0 or x.escalated <> 0 or x.closed <> 0
  ),
  ev as (
    select k.org_id, k.day, array_agg(v.n order by ch.i, v.j) as by_channel
    from (select distinct x.org_id, x.day from evx x) k
    cross join unnest(enum_range(null::public.chat_channel)) with ordinality ch (channel, i)
    left join (
      select x.org_id, x.day, x.channel, sum(x.started) as started, sum(x.escalated) as escalated, sum(x.closed) as closed
      from evx x group by 1, 2, 3
    ) c on c.org_id = k.org_id and c.day = k.day and c.channel = ch.channel
    cross join lateral (values (1, coalesce(c.started, 0)::integer), (2, coalesce(c.escalated, 0)::integer), (3, coalesce(c.closed, 0)::integer)) v (j, n)
    group by 1, 2
  ),
  evb as (
    select b.org_id, b.day, array_agg(row(b.bot_id, b.started, b.escalated, b.closed)::private.analytics_event_count order by b.bot_id) as by_bot
    from (
      select x.org_id, x.day, x.bot_id, sum(x.started)::integer as started, sum(x.escalated)::integer as escalated, sum(x.closed)::integer as closed
      from evx x group by 1, 2, 3
    ) b
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
      coalesce(array_agg((c.duration_seconds * 1000)::integer order by c.duration_seconds)
        filter (where c.status = 'ended' and c.duration_seconds < 2147483.648), '{}') as durations_ms,
      coalesce(array_agg(c.duration_seconds::float8 order by c.duration_seconds)
        filter (where c.status = 'ended' and c.duration_seconds >= 2147483.648), '{}') as long_durations,
      coalesce(sum(c.duration_seconds) filter (where c.status = 'ended'), 0) as duration_sum,
      count(c.stt_latency_ms)::integer as stt_count, coalesce(sum(c.stt_latency_ms), 0)::bigint as stt_sum,
      count(c.llm_latency_ms)::integer as llm_count, coalesce(sum(c.llm_latency_ms), 0)::bigint as llm_sum,
      count(c.tts_latency_ms)::integer as tts_count, coalesce(sum(c.tts_latency_ms), 0)::bigint as tts_sum
    from w
    join public.calls c on c.org_id = w.org_id
      and coalesce(c.started_at, c.ended_at, c.created_at) >= w.s and coalesce(c.started_at, c.ended_at, c.created_at) < w.e
    where c.status <> 'queued'
    group by 1, 2
  ),
  apx as materialized (
    select w.org_id, w.day, a.bot_id, a.source, count(*)::integer as total,
      count(*) filter (where a.status = 'booked')::integer as booked,
      count(*) filter (where a.status = 'completed')::integer as completed,
      count(*) filter (where a.status = 'canceled')::integer as canceled,
      count(*) filter (where a.status = 'no_show')::integer as no_show,
      count(*) filter (where a.reschedule_count > 0)::integer as rescheduled,
      coalesce(sum(extract(epoch from a.ends_at - a.starts_at) / 60) filter (where a.status <> 'canceled'), 0)::numeric as booked_minutes
    from w
    join public.appointments a on a.org_id = w.org_id and a.starts_at >= w.s and a.starts_at < w.e
    group by 1, 2, 3, 4
  ),
  ap as (
    select k.org_id, k.day, array_agg(v.n order by src.i, v.j) as by_source
    from (select distinct x.org_id, x.day from apx x) k
    cross join unnest(array['bot', 'staff']) with ordinality src (source, i)
    left join (
      select x.org_id, x.day, x.source, sum(x.total) as total, sum(x.booked) as booked, sum(x.completed) as completed,
        sum(x.canceled) as canceled, sum(x.no_show) as no_show, sum(x.rescheduled) as rescheduled
      from apx x group by 1, 2, 3
    ) c on c.org_id = k.org_id and c.day = k.day and c.source = src.source
    cross join lateral (values (1, coalesce(c.total, 0)::integer), (2, coalesce(c.booked, 0)::integer), (3, coalesce(c.completed, 0)::integer),
      (4, coalesce(c.canceled, 0)::integer), (5, coalesce(c.no_show, 0)::integer), (6, coalesce(c.rescheduled, 0)::integer)) v (j, n)
    group by 1, 2
  ),
  apb as (
    select b.org_id, b.day, sum(b.booked_minutes) as minutes,
      array_agg(row(b.bot_id, b.total, b.booked, b.completed, b.canceled, b.no_show, b.rescheduled)::private.analytics_appointment_count
                order by b.bot_id) as by_bot
    from (
      select x.org_id, x.day, x.bot_id, sum(x.total)::integer as total, sum(x.booked)::integer as booked, sum(x.completed)::integer as completed,
        sum(x.canceled)::integer as canceled, sum(x.no_show)::integer as no_show, sum(x.rescheduled)::integer as rescheduled,
        sum(x.booked_minutes) as booked_minutes
      from apx x group by 1, 2, 3
    ) b
    group by 1, 2
  )
  select w.org_id, w.day,
    coalesce(msg.user_messages, 0), coalesce(msg.assistant_messages, 0), coalesce(msg.system_messages, 0),
    coalesce(msg.tokens_in, 0), coalesce(msg.tokens_out, 0), coalesce(msg.conversations, '{}'), coalesce(msg.end_users, '{}'),
    coalesce(fresh.n, 0), coalesce(resp.n, 0), coalesce(resp.latencies, '{}'),
    coalesce(cg.gaps, '{}'), coalesce(ug.gaps, '{}'),
    coalesce(ev.by_channel, '{}'), coalesce(evb.by_bot, '{}'), coalesce(us.usage, '{}'),
    coalesce(ca.calls, 0), coalesce(ca.by_status, '{0,0,0,0,0,0,0}'), coalesce(ca.by_sentiment, '{0,0,0,0}'),
    coalesce(ca.durations_ms, '{}'), coalesce(ca.long_durations, '{}'), coalesce(ca.duration_sum, 0),
    coalesce(ca.stt_count, 0), coalesce(ca.stt_sum, 0), coalesce(ca.llm_count, 0), coalesce(ca.llm_sum, 0),
    coalesce(ca.tts_count, 0), coalesce(ca.tts_sum, 0), coalesce(ap.by_source, '{}'), coalesce(apb.minutes, 0), coalesce(apb.by_bot, '{}')
  from w
  left join msg on msg.org_id = w.org_id and msg.day = w.day
  left join conversation_gaps cg on cg.org_id = w.org_id and cg.day = w.day
  left join end_user_gaps ug on ug.org_id = w.org_id and ug.day = w.day
  left join fresh on fresh.org_id = w.org_id and fresh.day = w.day
  left join resp on resp.org_id = w.org_id and resp.day = w.day
  left join ev on ev.org_id = w.org_id and ev.day = w.day
  left join evb on evb.org_id = w.org_id and evb.day = w.day
  left join us on us.org_id = w.org_id and us.day = w.day
  left join ca on ca.org_id = w.org_id and ca.day = w.day
  left join ap on ap.org_id = w.org_id and ap.day = w.day
  left join apb on apb.org_id = w.org_id and apb.day = w.day
  where msg.org_id is not null or fresh.org_id is not null or resp.org_id is not null or ev.org_id is not null
    or us.org_id is not null or ca.org_id is not null or ap.org_id is not null;
$$;

-- As before (20261123001700), with the days appointments start on.
create or replace function private.analytics_org_days(org_ids uuid[])
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
    union
    select a.starts_at from public.appointments a where a.org_id = o.id
  ) x (at)
  where o.id = any (org_ids);
$$;

-- Appointments only mark the days they start on, before and after; the
-- refresh reads the table itself. An update marks only the rows whose
-- figures it changes: the calendar function's mirroring (sync_status,
-- external_event_id) touches every booking once or more, and marks nothing.
create function private.analytics_appointments_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org_ids uuid[];
  ats timestamptz[];
begin
  -- Each event has its own trigger; only the tables of this event exist here.
  if tg_op = 'INSERT' then
    select array_agg(n.org_id), array_agg(n.starts_at) into org_ids, ats from new_rows n;
  elsif tg_op = 'DELETE' then
    select array_agg(o.org_id), array_agg(o.starts_at) into org_ids, ats from old_rows o;
  else
    with changed as (
      select o.org_id as old_org_id, o.starts_at as old_starts_at, n.org_id, n.starts_at
      from old_rows o
      join new_rows n on n.id = o.id
      where (o.org_id, o.starts_at, o.ends_at, o.status, o.bot_id, o.source, o.reschedule_count)
        is distinct from (n.org_id, n.starts_at, n.ends_at, n.status, n.bot_id, n.source, n.reschedule_count)
    )
    select array_agg(x.org_id), array_agg(x.starts_at) into org_ids, ats
    from (select c.old_org_id, c.old_starts_at from changed c union select c.org_id, c.starts_at from changed c) x (org_id, starts_at);
  end if;
  if org_ids is not null then
    perform private.analytics_mark_days(org_ids, ats);
  end if;
  return null;
end;
$$;
revoke execute on function private.analytics_appointments_changed() from public;

create trigger analytics_appointments_inserted after insert on public.appointments
  referencing new table as new_rows for each statement execute function private.analytics_appointments_changed();
create trigger analytics_appointments_updated after update on public.appointments
  referencing old table as old_rows new table as new_rows for each statement execute function private.analytics_appointments_changed();
create trigger analytics_appointments_deleted after delete on public.appointments
  referencing old table as old_rows for each statement execute function private.analytics_appointments_changed();

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
      d.events_by_channel, d.events_by_bot, d.usage, d.calls, d.calls_by_status, d.calls_by_sentiment,
      cardinality(d.call_durations_ms) as call_durations, d.long_call_durations,
      d.call_duration_sum, d.stt_count, d.stt_sum, d.llm_count, d.llm_sum, d.tts_count, d.tts_sum,
      d.appointments_by_source, d.appointment_minutes, d.appointments_by_bot
    from private.analytics_days d where d.org_id = org and d.day >= first_day and d.day <= last_day
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

-- As before (20261123001700), with the appointments of analytics_days when
-- the days come from there, and generic plans for everything it runs: with
-- the default (auto), Postgres kept planning the sections' queries afresh at
-- every call (a custom plan looked cheaper than the generic one), about 1 ms
-- of the summary's 7.5 in process; the generic plans are the same index
-- scans. The raw twin takes as long either way (175 and 174 ms). Functions
-- with a setting of their own (refresh_analytics_days) keep it.
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
