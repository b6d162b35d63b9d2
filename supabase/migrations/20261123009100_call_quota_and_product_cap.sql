-- Call minutes held by calls not yet ended; a cap on queued calls; a cap on products.
--
-- 1. The call-minutes quota counted only ended calls (private.metered_usage), and the check on new outbound
--    calls (calls_require_call_minutes) ran once per statement against that figure; claim_due_calls never
--    looked at it. A free org (30 minutes) queued 10 campaigns of 1,000 numbers, 10,000 calls the platform's
--    Vapi account would dial, at an overage price of 0. Now:
--    * every outbound call not yet ended (queued, ringing, in_progress) holds
--      private.call_minutes_held_per_call() minutes (1: no plan or bot sets a longest call; a larger guess
--      would refuse campaigns the allowance may well cover, and the dial-time check below stops dialling once
--      real talk time has used the minutes). A statement that queues calls we dial is refused
--      (PT402, HTTP 402 quota_exceeded) unless the period's used minutes plus the minutes held by all the
--      org's open outbound calls, the new ones included, stay within the plan's allowance. The check runs
--      under the org's active subscription row (`for update`), the documents' quota lock, taken by a
--      before-insert trigger (and by create_call_campaign before its audited campaign row), so two campaigns
--      of one org count one after the other, and in the project's lock order (20261123008600: subscription
--      before the audit chain head);
--    * claim_due_calls checks again at dial time, as talk time may exceed what a call held: per org, the used
--      minutes plus the minutes held by calls being dialled or in progress plus 1 per call handed out, in
--      claim order; a call beyond the allowance is not dialled but failed with ended_reason
--      `quota_exceeded` (call.ended, broadcast, audit, as the other claim failures). On every plan:
--      require_quota refuses at the allowance whatever the plan's overage price, so a paid plan's overage
--      comes only from calls the org did not place through us (inbound, web, reported by the provider) and
--      from talk time beyond what a dialled call held;
--    * an org has at most private.max_queued_calls() (10,000) queued outbound calls (22023, as the other
--      per-org limits; HTTP 422), checked before the minutes.
--    Inbound, web and provider-reported calls are recorded as before and count when they end.
--    Not serialised: the claim takes no subscription lock (it locks its calls first, skip locked), so two
--    claims running at once each count the other's dials only once committed, and may each hand out the
--    minutes an org has left; creation, which reserves the minutes, is serialised.
--
-- 2. Products had no per-org cap: any member could insert 20,000 in one PostgREST statement, each audited.
--    An org now has at most private.max_products() (10,000; the chat bench's catalog has a few dozen),
--    refused with 22023 like the 1,000 categories: the org row is locked `for no key update` before each row
--    (as validate_catalog_category does), and the count is checked once per statement, after the rows.

create function private.call_minutes_held_per_call()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$ select 1 $$;
comment on function private.call_minutes_held_per_call() is
  'Minutes each outbound call not yet ended (queued, ringing, in_progress) holds against the call-minutes quota until its talk time counts.';

create function private.max_queued_calls()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$ select 10000 $$;
comment on function private.max_queued_calls() is 'Most queued outbound calls an org may have at once.';

create function private.max_products()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$ select 10000 $$;
comment on function private.max_products() is 'Most products an org may have.';

-- What the quota check and the claim count per org, open outbound calls, finds by
-- calls_org_open_outbound_idx, built without blocking calls' writes in 20261123009730.

-- The org's call minutes in its current period (private.billing_period, the quotas' period): the allowance,
-- the talk time of calls ended in it (as private.metered_usage counts it), and its open outbound calls.
create function private.call_minutes_standing(org_id uuid)
returns table (
  plan_name text,
  included bigint,
  used bigint,
  open_calls bigint,
  queued_calls bigint,
  dialling_calls bigint,
  period_end timestamptz
)
language sql
stable
security definer
set search_path = ''
as $$
  select p.name, p.monthly_call_minutes::bigint,
    (select ceil(coalesce(sum(c.duration_seconds), 0) / 60)::bigint
     from public.calls c
     where c.org_id = call_minutes_standing.org_id and c.ended_at >= b.period_start and c.ended_at < b.period_end
       and c.duration_seconds is not null),
    o.open_calls, o.queued_calls, o.dialling_calls, b.period_end
  from private.billing_period(call_minutes_standing.org_id) b
  join public.plans p on p.id = b.plan_id
  cross join lateral (
    select count(*) as open_calls,
      count(*) filter (where c.status = 'queued') as queued_calls,
      -- Handed to the provider (or its outcome unknown), ringing or talking.
      count(*) filter (where c.status <> 'queued' or c.dial_started_at is not null) as dialling_calls
    from public.calls c
    where c.org_id = call_minutes_standing.org_id and c.direction = 'outbound'
      and c.status in ('queued', 'ringing', 'in_progress')
  ) o;
$$;
comment on function private.call_minutes_standing(uuid) is
  'Call-minute allowance, minutes used (calls ended in the current period) and open outbound calls (all, queued, being dialled or in progress) of an org. Internal.';

-- The lock the call-minutes check runs under, taken before the row's audit trigger takes the audit chain head.
create function private.lock_call_quota()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.direction = 'outbound' and new.status = 'queued' and new.provider_call_id is null then
    perform 1 from public.subscriptions s where s.org_id = new.org_id and s.status = 'active' for update;
  end if;
  return new;
end;
$$;

create trigger calls_lock_quota before insert on public.calls
  for each row execute function private.lock_call_quota();

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the queued cap and the minutes held by
-- open calls are new. Still once per statement (a campaign inserts up to 1000 calls at once).
create or replace function private.require_call_minutes_for_new_calls()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org uuid;
  new_count bigint;
  standing record;
  held bigint;
begin
  for org, new_count in
    select n.org_id, count(*) from new_calls n
    where n.direction = 'outbound' and n.status = 'queued' and n.provider_call_id is null
    group by n.org_id
    order by n.org_id
  loop
    -- Under the subscription lock private.lock_call_quota took before these rows.
    select * into standing from private.call_minutes_standing(org);
    if standing.queued_calls > private.max_queued_calls() then
      raise exception 'an organization has at most % queued calls (% would be queued)', private.max_queued_calls(), standing.queued_calls
        using errcode = 'invalid_parameter_value', hint = 'Wait for queued calls to be dialled, or cancel some.';
    end if;
    -- Ended talk time alone: the message it always gave.
    perform private.require_quota(org, 'call_minutes');
    held := standing.open_calls * private.call_minutes_held_per_call();
    if standing.used + held > standing.included then
      raise exception 'quota exceeded: the % plan includes % call minutes per month; % are used in this period and % calls not yet ended (% of them new) would hold % minutes',
        standing.plan_name, standing.included, standing.used, standing.open_calls, new_count, held
        using errcode = 'PT402',
              hint = pg_catalog.format('Each queued, ringing or in-progress call holds %s minute(s) until it ends. The allowance renews at %s; or upgrade the plan (change_plan).',
                private.call_minutes_held_per_call(), private.rfc3339(standing.period_end));
    end if;
  end loop;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- create_call_campaign: the subscription lock before the audited campaign row.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123006200_api_key_campaigns.sql; only the subscription lock is new.
create or replace function private.create_call_campaign(
  org_id uuid, bot_id uuid, name text, numbers text[], scheduled_at timestamptz, callee_time_zone text
)
returns table (campaign_id uuid, calls_created integer, duplicates_removed integer, invalid_numbers text[])
language plpgsql
security definer
set search_path = ''
as $$
declare
  clean_name text := pg_catalog.btrim(name);
  bad text[];
  valid_count integer;
  distinct_count integer;
  zone text;
  slot timestamptz;
  campaign public.call_campaigns;
begin
  -- The service role queues campaigns for an API key with calls.write, whose
  -- org the calls function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_call_campaign.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(create_call_campaign.org_id);
  end if;
  if clean_name is null or length(clean_name) not between 1 and 100 then
    raise exception 'a campaign name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  -- The cap counts what was sent, duplicates and invalid ones included.
  if coalesce(cardinality(numbers), 0) not between 1 and 1000 then
    raise exception 'a campaign has 1 to 1000 numbers (got %)', coalesce(cardinality(numbers), 0)
      using errcode = 'invalid_parameter_value';
  end if;
  select
    coalesce(array_agg(n.raw order by n.position) filter (where n.number is null), '{}'),
    count(n.number)::integer,
    count(distinct n.number)::integer
  into bad, valid_count, distinct_count
  from (
    select u.raw, u.position, private.normalize_phone_number(u.raw) as number
    from unnest(numbers) with ordinality u(raw, position)
  ) n;
  if valid_count = 0 then
    raise exception 'none of the % numbers is a phone number', cardinality(numbers)
      using errcode = 'invalid_parameter_value', hint = 'Use E.164 with the country code, e.g. +14155550123.';
  end if;
  perform private.require_outbound_setup(create_call_campaign.org_id, create_call_campaign.bot_id);
  zone := private.callee_zone(create_call_campaign.org_id, create_call_campaign.callee_time_zone);
  -- One slot for the whole campaign: the dispatcher works through it in order.
  slot := private.first_call_slot(create_call_campaign.org_id, create_call_campaign.bot_id, zone, create_call_campaign.scheduled_at);

  -- The calls' quota lock (private.lock_call_quota), before the audited campaign row takes the org's audit
  -- chain head.
  perform 1 from public.subscriptions s
  where s.org_id = create_call_campaign.org_id and s.status = 'active'
  for update;

  insert into public.call_campaigns (org_id, bot_id, name, scheduled_at, calls_created, duplicates_removed, invalid_numbers, created_by)
  values (create_call_campaign.org_id, create_call_campaign.bot_id, clean_name, slot, distinct_count,
          valid_count - distinct_count, bad, auth.uid())
  returning * into campaign;

  -- One call per distinct number, in the order the numbers came (first occurrence).
  insert into public.calls (org_id, bot_id, campaign_id, direction, to_number, callee_time_zone, status, scheduled_at, next_dial_at, provider, created_by)
  select create_call_campaign.org_id, create_call_campaign.bot_id, campaign.id, 'outbound', d.number, zone, 'queued', slot, slot, 'vapi', auth.uid()
  from (
    select n.number, min(n.position) as first_position
    from (
      select private.normalize_phone_number(u.raw) as number, u.position
      from unnest(numbers) with ordinality u(raw, position)
    ) n
    where n.number is not null
    group by n.number
  ) d
  order by d.first_position;

  return query select campaign.id, distinct_count, valid_count - distinct_count, bad;
end;
$$;

-- ---------------------------------------------------------------------------
-- claim_due_calls: the call minutes at dial time.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123006900_call_hours_at_dial.sql; only the call-minutes check (budgets, the
-- per-org rank of the calls to dial, the `quota` verdict, and the subscription locks they are counted under)
-- is new.
-- Two claims at once must not both hand out an org's last minutes: each round locks
-- the active subscriptions of its calls' orgs (the call minutes' lock: create_call_campaign and
-- calls_lock_quota count under it) after picking the calls and before the arithmetic, which runs in a
-- later statement, hence a snapshot that sees what the previous holder committed. With skip locked: an
-- org whose subscription another transaction holds (another claim, a campaign being queued, change_plan,
-- the org's deletion) is left for the next pass, its calls untouched. Waiting there would be the one
-- place the claim waits while holding rows others need: its calls (delete_organization locks the
-- subscription, then deletes the calls) and, from its second round, the heads of earlier rounds' orgs.
-- Nothing that holds a subscription waits for an existing call but delete_organization, which the claim
-- does not wait for. An org without an active subscription has no row to lock and is not serialised.
create or replace function private.claim_due_calls(max_calls integer, lease_seconds integer default 60)
returns table (
  call_id uuid,
  org_id uuid,
  bot_id uuid,
  to_number text,
  provider text,
  assistant_id text,
  phone_number_id text,
  attempt integer
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  max_attempts constant integer := cardinality(private.dial_retry_delays()) + 1;
  -- How many calls one claim may move forward or fail before it stops.
  max_set_aside constant integer := 1000;
  per_call constant integer := private.call_minutes_held_per_call();
  handed_out uuid[] := '{}';
  round_handed_out uuid[];
  round_examined integer;
  set_aside integer := 0;
  picked uuid[];
  locked_orgs uuid[];
  -- Orgs whose active subscription another transaction held: left to the next pass.
  busy_orgs uuid[] := '{}';
  round_busy uuid[];
begin
  if max_calls is null or max_calls not between 1 and 500 then
    raise exception 'max_calls must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'lease_seconds must be between 5 and 900' using errcode = 'invalid_parameter_value';
  end if;
  loop
    select coalesce(array_agg(d.id), '{}') into picked
    from (
      select c.id
      from public.calls c
      where c.status = 'queued' and c.direction = 'outbound'
        and c.next_dial_at <= pg_catalog.now()
        and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
        -- An attempt whose outcome is unknown is looked up (claim_dial_lookups), never dialled again.
        and c.dial_started_at is null
        and c.org_id <> all (busy_orgs)
      order by c.next_dial_at, c.created_at
      limit max_calls - pg_catalog.cardinality(handed_out)
      for update of c skip locked
    ) d;
    exit when pg_catalog.cardinality(picked) = 0;

    -- The call minutes' lock, skip locked: the claim never waits on it (see the header).
    select coalesce(array_agg(s.org_id), '{}') into locked_orgs
    from (
      select s.org_id
      from public.subscriptions s
      where s.status = 'active'
        and s.org_id in (select c.org_id from public.calls c where c.id = any (picked))
      order by s.org_id
      for update of s skip locked
    ) s;
    round_busy := array(
      select distinct c.org_id
      from public.calls c
      where c.id = any (picked) and c.org_id <> all (locked_orgs)
        and exists (select 1 from public.subscriptions s where s.org_id = c.org_id and s.status = 'active')
    );
    busy_orgs := busy_orgs || round_busy;

    with due as (
      select c.id
      from public.calls c
      where c.id = any (picked) and c.org_id <> all (busy_orgs)
    ),
    -- Once per (org, bot, callee zone): a campaign's calls share one.
    slots as (
      select g.org_id, g.bot_id, g.callee_time_zone,
        private.next_call_slot(g.org_id, g.bot_id, g.callee_time_zone, pg_catalog.now()) as slot
      from (
        select distinct c.org_id, c.bot_id, c.callee_time_zone
        from due join public.calls c on c.id = due.id
      ) g
    ),
    -- Once per org: the minutes left once the calls already dialled (earlier rounds and claims included)
    -- hold theirs.
    budgets as (
      select g.org_id, m.plan_name, m.included, m.used,
        m.included - m.used - m.dialling_calls * per_call as minutes_left
      from (select distinct c.org_id from due join public.calls c on c.id = due.id) g
      cross join lateral private.call_minutes_standing(g.org_id) m
    ),
    checked as (
      select due.id, c.org_id, c.next_dial_at, c.created_at,
        b.voice_assistant_id as assistant,
        p.outbound_phone_number_id as phone_number,
        case
          when c.dial_attempts >= max_attempts then 'no result was reported for the last dial attempt'
          when c.bot_id is null then 'the bot was deleted'
          when not b.enabled then 'the bot is disabled'
          when b.voice_assistant_id is null then 'the bot has no voice assistant'
          when p.outbound_phone_number_id is null then 'the organization has no ' || coalesce(c.provider, 'vapi') || ' phone number to call from'
          when s.slot is null then 'no moment within 14 days is inside the business hours and 08:00-21:00 of the callee''s time zone ('
            || coalesce(c.callee_time_zone, o.time_zone) || ')'
        end as problem,
        -- Set when the callee may not be called now: the call waits for it.
        case when s.slot > pg_catalog.now() then s.slot end as later_slot
      from due
      join public.calls c on c.id = due.id
      join public.organizations o on o.id = c.org_id
      left join slots s on s.org_id = c.org_id and s.bot_id is not distinct from c.bot_id
        and s.callee_time_zone is not distinct from c.callee_time_zone
      left join public.bots b on b.id = c.bot_id and b.org_id = c.org_id
      left join public.call_providers p on p.org_id = c.org_id and p.provider = coalesce(c.provider, 'vapi')
    ),
    dialable as (
      select k.*, case when k.problem is not null then 'fail' when k.later_slot is not null then 'wait' else 'dial' end as verdict
      from checked k
    ),
    -- The calls to dial, each holding per_call minutes in claim order, until the org's minutes run out.
    verdicts as (
      select d.id, d.assistant, d.phone_number, d.problem, d.later_slot,
        case when d.verdict = 'dial'
          and pg_catalog.row_number() over (partition by d.org_id, d.verdict order by d.next_dial_at, d.created_at, d.id) * per_call
              > q.minutes_left
          then 'quota' else d.verdict end as verdict,
        pg_catalog.format('the call minutes are used up: the %s plan includes %s per month, %s are used in this period and %s held by calls being dialled',
          q.plan_name, q.included, q.used, q.included - q.used - q.minutes_left) as quota_problem
      from dialable d
      join budgets q on q.org_id = d.org_id
    ),
    claimed as (
      update public.calls c set
        next_dial_at = case when v.verdict = 'wait' then v.later_slot else c.next_dial_at end,
        dial_attempts = c.dial_attempts + case when v.verdict = 'dial' then 1 else 0 end,
        dial_lease_until = case when v.verdict = 'dial' then pg_catalog.now() + pg_catalog.make_interval(secs => lease_seconds) end,
        status = case when v.verdict in ('fail', 'quota') then 'failed' else 'queued' end::public.call_status,
        ended_reason = case v.verdict
          when 'fail' then left('dial-failed: ' || v.problem, 200)
          when 'quota' then 'quota_exceeded'
          else c.ended_reason end,
        last_dial_error = case v.verdict when 'fail' then v.problem when 'quota' then v.quota_problem else c.last_dial_error end,
        dial_started_at = case when v.verdict = 'dial' then pg_catalog.now() end,
        dial_target = case when v.verdict = 'dial'
          then pg_catalog.jsonb_build_object('assistant_id', v.assistant, 'phone_number_id', v.phone_number) end,
        dial_lookups = 0
      from verdicts v
      where c.id = v.id
      returning c.id, v.verdict
    )
    select count(*)::integer, coalesce(array_agg(cl.id) filter (where cl.verdict = 'dial'), '{}')
    into round_examined, round_handed_out
    from claimed cl;

    handed_out := handed_out || round_handed_out;
    set_aside := set_aside + round_examined - pg_catalog.cardinality(round_handed_out);
    -- A round that hands out fewer than it examined set calls aside; those
    -- are no longer due, so the next round reaches the calls behind them, as it does behind busy orgs.
    exit when (round_examined = 0 and pg_catalog.cardinality(round_busy) = 0) or pg_catalog.cardinality(handed_out) >= max_calls or set_aside >= max_set_aside;
  end loop;

  return query
  select c.id, c.org_id, c.bot_id, c.to_number, coalesce(c.provider, 'vapi'),
    c.dial_target ->> 'assistant_id', c.dial_target ->> 'phone_number_id', c.dial_attempts
  from public.calls c
  where c.id = any (handed_out)
  order by c.id;
end;
$$;
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) that may be called now and returns what to dial with the attempt number, stamping the attempt (dial_started_at) until its outcome is recorded; a call outside the callee''s 08:00-21:00 or the business hours moves to its next slot (next_call_slot) without an attempt, and one without a slot within 14 days fails (dial-failed: no moment within 14 days ...); a call that the org''s call minutes (used, plus those held by calls being dialled, plus one per call handed out) no longer cover fails with ended_reason quota_exceeded, counted under the org''s active subscription (skip locked: an org whose subscription another transaction holds is left to the next pass); a call whose last attempt has an unknown outcome is never handed out (see claim_dial_lookups); calls that can no longer be dialled fail here with the reason. Calls moved or failed do not count against max_calls (at most 1000 per claim). Service role.';

revoke execute on function
  private.call_minutes_held_per_call(),
  private.max_queued_calls(),
  private.max_products(),
  private.call_minutes_standing(uuid),
  private.lock_call_quota()
from public;

-- ---------------------------------------------------------------------------
-- Products: at most max_products() per org.
-- ---------------------------------------------------------------------------

-- The lock the count runs under, before the row's audit trigger takes the audit chain head.
create function private.lock_org_for_product()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Refused by RLS after this trigger; takes no lock on another org.
  if auth.role() = 'authenticated' and not private.has_permission(new.org_id, 'catalog.write') then
    return new;
  end if;
  perform 1 from public.organizations o where o.id = new.org_id for no key update;
  return new;
end;
$$;

create trigger products_lock_org before insert on public.products
  for each row execute function private.lock_org_for_product();

-- Once per statement: counting before each row would cost the square of a large insert.
create function private.require_product_room()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  crowded record;
begin
  select p.org_id, count(*) as products into crowded
  from public.products p
  where p.org_id in (select distinct n.org_id from new_products n)
  group by p.org_id
  having count(*) > private.max_products()
  limit 1;
  if found then
    raise exception 'an organization has at most % products (this would make %)', private.max_products(), crowded.products
      using errcode = 'invalid_parameter_value', hint = 'Delete products the catalog no longer needs.';
  end if;
  return null;
end;
$$;

create trigger products_require_room after insert on public.products
  referencing new table as new_products
  for each statement execute function private.require_product_room();

revoke execute on function private.lock_org_for_product(), private.require_product_room() from public;

comment on table public.products is 'An org''s products (at most 10,000). Viewers read; members write. Search with search_products().';
