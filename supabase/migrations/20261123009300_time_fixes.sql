-- Time fixes: the slot grid, the billing anniversary and usage_daily's zone.
--
-- 1. Slot grid origins. Availability cut slots on a grid that started where the open ranges were read from
--    (local midnight of `from`'s day), and private.open_ranges returns one range for time that runs on past
--    midnight (no business hours, all-day hours, overnight rows such as Monday 22:00-24:00 plus Tuesday
--    00:00-02:00), so a day's slots depended on `from` (Berlin, no hours, 25-minute step: Tuesday 00:10,
--    00:35 when asked from Monday; 00:00, 00:25 when asked from Tuesday). private.slot_origins names the
--    instants where the grid starts, fixed by the hours alone: every business-hours opening, except a 00:00
--    opening that continues an overnight row (the day before has a row closing at 24:00 that opened after
--    00:00), which keeps that row's opening; with no hours, every local midnight of the org's zone. The
--    availability code reads the open ranges from the last origin at or before `from` and restarts the grid
--    at each origin (functions/_shared/scheduling/availability.ts, calendar/availability.ts).
-- 2. Billing anniversary. roll_subscription started a scheduled plan at the period's end with periods
--    counted from there, so a Pro started on Jan 31 and downgraded at Feb 28 counted Free's months from
--    the 28th for good ([Feb 28, Mar 28)), while billing_period, before the job ran, answered [Feb 28,
--    Mar 31): the quota period changed when the job ran. subscriptions.period_anchor_at keeps the anchor
--    across a roll (null: started_at, as for a new subscription or an upgrade, which starts now); every
--    function that steps through periods counts from coalesce(period_anchor_at, started_at).
-- 3. usage_daily cut days in UTC unless told a zone; it now defaults to the org's time_zone, as
--    analytics_usage_daily does.

-- ---------------------------------------------------------------------------
-- 1. Slot grid origins
-- ---------------------------------------------------------------------------

-- Three local days before the window: the opening of a range open at the window's start is at most two days
-- back (an overnight row continued by an all-day row), and the caller reads the open ranges from it.
create function private.slot_origins(org_id uuid, bot_id uuid, during tstzrange)
returns timestamptz[]
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
  hours_bot uuid;
  has_hours boolean;
  origins timestamptz[];
begin
  perform private.require_calendar_window(slot_origins.during);
  if auth.role() = 'authenticated' and not private.has_permission(slot_origins.org_id, 'calendar.read') then
    raise exception 'you do not have the calendar.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  select o.time_zone into zone from public.organizations o where o.id = slot_origins.org_id;
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  -- Whose hours count, as private.business_hours_ranges decides: the bot's own if it has any, else the org's.
  if slot_origins.bot_id is not null and exists (
    select 1 from public.business_hours h where h.org_id = slot_origins.org_id and h.bot_id = slot_origins.bot_id
  ) then
    hours_bot := slot_origins.bot_id;
  end if;
  has_hours := exists (
    select 1 from public.business_hours h where h.org_id = slot_origins.org_id and h.bot_id is not distinct from hours_bot
  );

  with days as (
    select g::date as day
    from pg_catalog.generate_series(
      (pg_catalog.lower(slot_origins.during) at time zone zone)::date - 3,
      (pg_catalog.upper(slot_origins.during) at time zone zone)::date,
      interval '1 day'
    ) g
  ),
  openings as (
    select d.day::timestamp as local_at from days d where not has_hours
    union
    select d.day + h.opens
    from days d
    join public.business_hours h
      on h.org_id = slot_origins.org_id
     and h.bot_id is not distinct from hours_bot
     and h.weekday = extract(isodow from d.day)
    where has_hours
      and not (h.opens = '00:00'::time and exists (
        select 1 from public.business_hours p
        where p.org_id = slot_origins.org_id
          and p.bot_id is not distinct from hours_bot
          and p.weekday = extract(isodow from d.day - 1)
          and p.closes = '24:00'::time
          and p.opens > '00:00'::time))
  )
  select pg_catalog.array_agg(o.at order by o.at) into origins
  from (select distinct x.local_at at time zone zone as at from openings x) o
  where o.at < pg_catalog.upper(slot_origins.during);
  return coalesce(origins, '{}'::timestamptz[]);
end;
$$;
comment on function private.slot_origins(uuid, uuid, tstzrange) is 'Where the slot grid starts, from three local days before the window to its end: each business-hours opening of the bot (else the org), a 00:00 opening continuing an overnight row excepted; each local midnight when no hours are set. Service role, or members with calendar.read.';
grant execute on function private.slot_origins(uuid, uuid, tstzrange) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 2. The billing anniversary survives a scheduled plan change
-- ---------------------------------------------------------------------------

alter table public.subscriptions add column period_anchor_at timestamptz;
comment on column public.subscriptions.period_anchor_at is 'Periods are whole months (UTC) from here; null: from started_at. A plan applied at a period''s end (a scheduled downgrade) keeps the anchor of the subscription it replaces.';

-- Latest definition: 20261123008800_final_invoice_on_org_deletion.sql; new is the anchor, copied to the
-- subscription a scheduled plan starts, whose periods are counted from it.
create or replace function private.roll_subscription(due public.subscriptions)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  anchor timestamptz := coalesce(due.period_anchor_at, due.started_at);
  next_period record;
begin
  if due.scheduled_plan_id is not null then
    update public.subscriptions s set status = 'canceled', canceled_at = due.current_period_end, scheduled_plan_id = null
    where s.id = due.id;
    next_period := private.subscription_period_at(anchor, due.current_period_end);
    -- A stored end off the anchor's anniversaries (a period not computed by these functions) starts afresh there,
    -- so the new subscription's first period still starts at its start.
    if next_period.period_start <> due.current_period_end then
      anchor := due.current_period_end;
      next_period := private.subscription_period_at(anchor, anchor);
    end if;
    insert into public.subscriptions (org_id, plan_id, status, started_at, period_anchor_at, current_period_start, current_period_end)
    values (due.org_id, due.scheduled_plan_id, 'active', due.current_period_end, nullif(anchor, due.current_period_end),
      next_period.period_start, next_period.period_end)
    returning * into due;
  end if;
  -- Whole months from the anchor until the period holds now (a job that
  -- missed several months catches up in one step).
  next_period := private.subscription_period_at(anchor, pg_catalog.now());
  update public.subscriptions s
  set current_period_start = next_period.period_start, current_period_end = next_period.period_end
  where s.id = due.id and s.current_period_end <= pg_catalog.now();
end;
$$;

-- Latest definition: 20261123006700_billing_period_and_export_reads.sql; new is the anchor.
create or replace function private.billing_period(org_id uuid)
returns table (plan_id text, period_start timestamptz, period_end timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  active public.subscriptions;
  current_period record;
begin
  select * into active from public.subscriptions s
  where s.org_id = billing_period.org_id and s.status = 'active';
  if not found then
    plan_id := 'free';
    period_start := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC';
    period_end := private.add_months_utc(period_start, 1);
  else
    plan_id := active.plan_id;
    period_start := active.current_period_start;
    period_end := active.current_period_end;
    if pg_catalog.now() >= period_end then
      -- From the anchor, not the stored start, which may be a clamped month
      -- end: the period roll_subscriptions will store, on the plan it will
      -- leave active (which keeps the anchor).
      plan_id := coalesce(active.scheduled_plan_id, active.plan_id);
      current_period := private.subscription_period_at(coalesce(active.period_anchor_at, active.started_at), pg_catalog.now());
      period_start := current_period.period_start;
      period_end := current_period.period_end;
    end if;
  end if;
  return next;
end;
$$;

-- Latest definition: 20261123004300_overage_per_period.sql; new is the anchor. A subscription started at a
-- period's end of the one it replaced starts on an anniversary of the anchor, so its first period starts at
-- started_at.
create or replace function private.subscription_periods_ending(org_id uuid, from_at timestamptz, to_at timestamptz)
returns table (subscription_id uuid, plan_id text, period_start timestamptz, period_end timestamptz)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  sub public.subscriptions;
  period record;
  ends_at timestamptz;
  anchor timestamptz;
begin
  for sub in
    select * from public.subscriptions s
    where s.org_id = subscription_periods_ending.org_id
      and s.started_at < subscription_periods_ending.to_at
      and (s.canceled_at is null or (s.canceled_at > subscription_periods_ending.from_at and s.canceled_at > s.started_at))
    order by s.started_at, s.created_at
  loop
    anchor := coalesce(sub.period_anchor_at, sub.started_at);
    -- From the period holding the month's start (or the first period), while
    -- periods start before the month's end and before the cancellation. A
    -- month holds at most one anniversary and one cancellation, so this is
    -- at most a few steps.
    select * into period
    from private.subscription_period_at(anchor, greatest(sub.started_at, subscription_periods_ending.from_at));
    while period.period_start < subscription_periods_ending.to_at
      and (sub.canceled_at is null or period.period_start < sub.canceled_at) loop
      ends_at := least(period.period_end, coalesce(sub.canceled_at, 'infinity'::timestamptz));
      if ends_at > subscription_periods_ending.from_at and ends_at <= subscription_periods_ending.to_at then
        subscription_id := sub.id;
        plan_id := sub.plan_id;
        period_start := greatest(period.period_start, sub.started_at);
        period_end := ends_at;
        return next;
      end if;
      select * into period from private.subscription_period_at(anchor, period.period_end);
    end loop;
  end loop;
end;
$$;

-- Latest definition: 20261123006700_billing_period_and_export_reads.sql; new is the anchor of a stale
-- stored period's forward move.
create or replace function private.change_plan(org_id uuid, plan_id text)
returns public.subscriptions
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.plans;
  active public.subscriptions;
  current_plan public.plans;
  created public.subscriptions;
  current_period record;
begin
  perform private.require_permission(change_plan.org_id, 'billing.manage');
  select * into target from public.plans p where p.id = change_plan.plan_id;
  if not found then
    raise exception 'unknown plan: %', coalesce(change_plan.plan_id, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.plans.';
  end if;
  select * into active from public.subscriptions s
  where s.org_id = change_plan.org_id and s.status = 'active'
  for update;
  if not found then
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;

  -- The stored period ended but roll_subscriptions has not run yet: the org
  -- is already in the next period (the quotas count it), so a downgrade
  -- chosen now is due at that period's end, not at the passed one. A
  -- downgrade scheduled before the end stays due at that end.
  if active.current_period_end <= pg_catalog.now() and active.scheduled_plan_id is null then
    current_period := private.subscription_period_at(coalesce(active.period_anchor_at, active.started_at), pg_catalog.now());
    update public.subscriptions s
    set current_period_start = current_period.period_start, current_period_end = current_period.period_end
    where s.id = active.id
    returning * into active;
  end if;
  select * into current_plan from public.plans p where p.id = active.plan_id;

  if target.id = active.plan_id then
    -- Staying: a scheduled downgrade is called off.
    update public.subscriptions s set scheduled_plan_id = null where s.id = active.id returning * into active;
    return active;
  end if;

  if target.price_cents > current_plan.price_cents then
    update public.subscriptions s set status = 'canceled', canceled_at = pg_catalog.now(), scheduled_plan_id = null
    where s.id = active.id;
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;

  update public.subscriptions s set scheduled_plan_id = target.id where s.id = active.id returning * into active;
  return active;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. usage_daily in the org's zone
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001100_bots_and_chat.sql; new is the default zone, the org's time_zone
-- (20261123001200) rather than UTC. The org is read after require_usage_reader: a caller without usage.read
-- gets 42501, as before.
create or replace function public.usage_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, kind text, tokens_in bigint, tokens_out bigint)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  zone text;
  range_start timestamptz;
  range_end timestamptz;
begin
  perform private.require_usage_reader(usage_daily.org_id);
  -- Days are the org's, as analytics_usage_daily cuts them, unless the caller names a zone.
  zone := coalesce(
    usage_daily.time_zone,
    (select o.time_zone from public.organizations o where o.id = usage_daily.org_id),
    'UTC');
  if from_date is null or to_date is null then
    raise exception 'from_date and to_date are required' using errcode = 'invalid_parameter_value';
  end if;
  if from_date > to_date then
    raise exception 'from_date must not be after to_date' using errcode = 'invalid_parameter_value';
  end if;
  if to_date - from_date + 1 > 366 then
    raise exception 'a usage range spans at most 366 days (asked for %)', to_date - from_date + 1
      using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = zone) then
    raise exception 'unknown time zone: %', zone
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/Berlin.';
  end if;
  -- Local midnights, so a day is 23 or 25 hours long across a DST change.
  range_start := from_date::timestamp at time zone zone;
  range_end := (to_date + 1)::timestamp at time zone zone;

  return query
  with days as (
    select d::date as day from pg_catalog.generate_series(from_date::timestamp, to_date::timestamp, interval '1 day') d
  ),
  totals as (
    select (u.created_at at time zone zone)::date as day, u.kind,
      sum(u.tokens_in)::bigint as tokens_in, sum(u.tokens_out)::bigint as tokens_out
    from public.usage_events u
    where u.org_id = usage_daily.org_id and u.created_at >= range_start and u.created_at < range_end
    group by 1, 2
  )
  select days.day, k.kind, coalesce(t.tokens_in, 0)::bigint, coalesce(t.tokens_out, 0)::bigint
  from days
  cross join unnest(array['chat', 'embedding', 'speech']) as k(kind)
  left join totals t on t.day = days.day and t.kind = k.kind
  order by days.day, k.kind;
end;
$$;
comment on function public.usage_daily(uuid, date, date, text) is 'Tokens in and out per day and kind (zeros for empty days), days cut in time_zone (default the org''s time_zone); at most 366 days. Admins and up (usage.read).';
