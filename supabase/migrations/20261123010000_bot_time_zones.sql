-- Bot time zones: business hours and time zones per org or bot.
--
-- Only organizations had a time zone, and private.business_hours_ranges read every row in it, a bot's own
-- hours included: a Berlin org's bot for a São Paulo branch, open 09:00-18:00, was open 09:00-18:00 Berlin
-- time (04:00-13:00 in São Paulo in the northern winter), and its free slots, booking checks and outbound
-- calling hours with it.
--
-- bots.time_zone (null: the org's) is the zone the bot's own business hours are read in. The org's default
-- hours (bot_id null) stay the org's, read in the org's zone, also for a bot with a zone of its own that has
-- no hours of its own: the bot then keeps the org's opening instants. Where no hours restrict the bot, its
-- zone is where the slot grid's local midnights fall. A callee given no zone is taken to be in the bot's
-- zone (else the org's), for the 08:00-21:00 calling hours. Closures are instants (tstzrange), read in no
-- zone, so they need no change; bookings are checked against private.open_ranges, which follows
-- business_hours_ranges.

alter table public.bots add column time_zone text;
comment on column public.bots.time_zone is 'IANA zone the bot''s own business hours (and, with none, its slot grid and its callees'' default zone) are in; null: the org''s time_zone. The org''s default hours stay in the org''s zone. Admins change it.';

create function private.validate_bot_time_zone()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.time_zone is not null then
    perform private.require_time_zone(new.time_zone);
  end if;
  return new;
end;
$$;

create trigger bots_validate_time_zone
  before insert or update of time_zone on public.bots
  for each row execute function private.validate_bot_time_zone();

-- Admins write bots under the bots.manage policies; the zone is one more column of them.
grant insert (time_zone), update (time_zone) on public.bots to authenticated;

comment on table public.business_hours is 'Weekly opening hours per bot (in the bot''s time_zone, else the org''s) or the org''s default (bot_id null, in the org''s time zone); ISO weekdays (1 = Monday). No rows: no restriction. Members read; admins write.';

-- The bot's zone, else the org's; null when the org does not exist. Invoker: definer callers read through it,
-- and availability reads it as the signed-in member (RLS) or the service role.
create function private.bot_time_zone(org_id uuid, bot_id uuid)
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(
    (select b.time_zone from public.bots b where b.id = bot_time_zone.bot_id and b.org_id = bot_time_zone.org_id),
    o.time_zone)
  from public.organizations o
  where o.id = bot_time_zone.org_id;
$$;
comment on function private.bot_time_zone(uuid, uuid) is 'The bot''s time_zone, else the org''s (bot_id null: the org''s); null for an unknown org.';
grant execute on function private.bot_time_zone(uuid, uuid) to authenticated, service_role;

-- Latest definition: 20261123001200_calls.sql; new is the zone: the bot's (else the org's) for the bot's own
-- hours, the org's for its default hours.
create or replace function private.business_hours_ranges(org_id uuid, bot_id uuid, during tstzrange)
returns tstzmultirange
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
  hours_bot uuid;
  open_ranges tstzmultirange;
begin
  -- The bot's own hours if it has any, else the org's default.
  if business_hours_ranges.bot_id is not null and exists (
    select 1 from public.business_hours h
    where h.org_id = business_hours_ranges.org_id and h.bot_id = business_hours_ranges.bot_id
  ) then
    hours_bot := business_hours_ranges.bot_id;
  end if;
  zone := private.bot_time_zone(business_hours_ranges.org_id, hours_bot);
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  if not exists (
    select 1 from public.business_hours h
    where h.org_id = business_hours_ranges.org_id and h.bot_id is not distinct from hours_bot
  ) then
    return null;
  end if;
  select pg_catalog.range_agg(pg_catalog.tstzrange((d.day + h.opens) at time zone zone, (d.day + h.closes) at time zone zone, '[)'))
  into open_ranges
  from (
    select g::date as day
    from pg_catalog.generate_series(
      (pg_catalog.lower(during) at time zone zone)::date - 1,
      (pg_catalog.upper(during) at time zone zone)::date + 1,
      interval '1 day'
    ) g
  ) d
  join public.business_hours h
    on h.org_id = business_hours_ranges.org_id
   and h.bot_id is not distinct from hours_bot
   and h.weekday = extract(isodow from d.day);
  return coalesce(open_ranges, '{}'::tstzmultirange) * pg_catalog.tstzmultirange(during);
end;
$$;
comment on function private.business_hours_ranges(uuid, uuid, tstzrange) is 'The instants within a window when the bot (else the org) is open: the bot''s own hours in its time_zone (else the org''s), or the org''s default hours in the org''s zone; null when no business hours restrict it. The one place later rules (closures) subtract from.';

-- Latest definition: 20261123009300_time_fixes.sql; new is the zone: the openings are read in the zone
-- business_hours_ranges reads them in, and without hours the midnights are the bot's (else the org's).
create or replace function private.slot_origins(org_id uuid, bot_id uuid, during tstzrange)
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
  -- Whose hours count, as private.business_hours_ranges decides: the bot's own if it has any, else the org's.
  if slot_origins.bot_id is not null and exists (
    select 1 from public.business_hours h where h.org_id = slot_origins.org_id and h.bot_id = slot_origins.bot_id
  ) then
    hours_bot := slot_origins.bot_id;
  end if;
  has_hours := exists (
    select 1 from public.business_hours h where h.org_id = slot_origins.org_id and h.bot_id is not distinct from hours_bot
  );
  zone := private.bot_time_zone(slot_origins.org_id, case when has_hours then hours_bot else slot_origins.bot_id end);
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;

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
comment on function private.slot_origins(uuid, uuid, tstzrange) is 'Where the slot grid starts, from three local days before the window to its end: each business-hours opening of the bot (else the org), in the zone its hours are read in, a 00:00 opening continuing an overnight row excepted; each local midnight of the bot''s zone (else the org''s) when no hours are set. Service role, or members with calendar.read.';

-- Latest definition: 20261123001200_calls.sql; new is the callee's default zone: the bot's, else the org's.
create or replace function private.next_call_slot(org_id uuid, bot_id uuid, callee_time_zone text, not_before timestamptz)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
  callee_zone text;
  window_range tstzrange;
  callee_ranges tstzmultirange;
  open_ranges tstzmultirange;
  allowed tstzmultirange;
begin
  if next_call_slot.org_id is null or next_call_slot.not_before is null then
    raise exception 'org_id and not_before are required' using errcode = 'invalid_parameter_value';
  end if;
  if auth.role() = 'authenticated' and not private.has_permission(next_call_slot.org_id, 'calls.read') then
    raise exception 'you do not have the calls.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  zone := private.bot_time_zone(next_call_slot.org_id, next_call_slot.bot_id);
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  callee_zone := coalesce(next_call_slot.callee_time_zone, zone);
  if callee_zone <> zone then
    perform private.require_time_zone(callee_zone);
  end if;
  window_range := pg_catalog.tstzrange(not_before, not_before + interval '14 days', '[)');

  select pg_catalog.range_agg(pg_catalog.tstzrange(
    (g::date + time '08:00') at time zone callee_zone, (g::date + time '21:00') at time zone callee_zone, '[)'))
  into callee_ranges
  from pg_catalog.generate_series(
    (not_before at time zone callee_zone)::date - 1, (not_before at time zone callee_zone)::date + 15, interval '1 day'
  ) g;

  open_ranges := private.business_hours_ranges(next_call_slot.org_id, next_call_slot.bot_id, window_range);
  allowed := callee_ranges * pg_catalog.tstzmultirange(window_range);
  if open_ranges is not null then
    allowed := allowed * open_ranges;
  end if;
  if pg_catalog.isempty(allowed) then
    return null;
  end if;
  return pg_catalog.lower(allowed);
end;
$$;
comment on function private.next_call_slot(uuid, uuid, text, timestamptz) is 'Earliest instant >= not_before inside the bot''s (else the org''s) business hours and 08:00-21:00 in the callee''s time zone (default: the bot''s, else the org''s), at most 14 days ahead; null if none.';

-- ---------------------------------------------------------------------------
-- New calls: a callee given no zone is in the bot's
-- ---------------------------------------------------------------------------

-- Replaces private.callee_zone(org_id, callee_time_zone) (20261123001210), which knew no bot.
create function private.callee_zone(org_id uuid, bot_id uuid, callee_time_zone text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if callee_time_zone is not null then
    return private.require_time_zone(callee_time_zone);
  end if;
  return private.bot_time_zone(callee_zone.org_id, callee_zone.bot_id);
end;
$$;
revoke execute on function private.callee_zone(uuid, uuid, text) from public, anon;

-- Latest definition: 20261123006000_api_key_calls.sql; the callee's default zone changes, and scheduled_at is
-- bounded.
create or replace function private.create_outbound_call(
  org_id uuid, bot_id uuid, to_number text, scheduled_at timestamptz, callee_time_zone text
)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  number text := private.normalize_phone_number(to_number);
  zone text;
  slot timestamptz;
  created public.calls;
begin
  -- The service role places calls for an API key with calls.write, whose
  -- org the calls function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_outbound_call.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(create_outbound_call.org_id);
  end if;
  -- Further out, a queued call holds a call minute of the plan's quota until canceled, and past year 9999 its
  -- time no longer prints as RFC 3339.
  if create_outbound_call.scheduled_at > pg_catalog.now() + interval '366 days' then
    raise exception 'scheduled_at may be at most 366 days ahead' using errcode = 'invalid_parameter_value';
  end if;
  if number is null then
    raise exception 'not a phone number: %', coalesce(to_number, 'null')
      using errcode = 'invalid_parameter_value', hint = 'Use E.164 with the country code, e.g. +14155550123.';
  end if;
  perform private.require_outbound_setup(create_outbound_call.org_id, create_outbound_call.bot_id);
  zone := private.callee_zone(create_outbound_call.org_id, create_outbound_call.bot_id, create_outbound_call.callee_time_zone);
  slot := private.first_call_slot(create_outbound_call.org_id, create_outbound_call.bot_id, zone, create_outbound_call.scheduled_at);
  insert into public.calls (org_id, bot_id, direction, to_number, callee_time_zone, status, scheduled_at, next_dial_at, provider, created_by)
  values (create_outbound_call.org_id, create_outbound_call.bot_id, 'outbound', number, zone, 'queued', slot, slot, 'vapi', auth.uid())
  returning * into created;
  return created;
end;
$$;
comment on function public.create_outbound_call(uuid, uuid, text, timestamptz, text) is 'Queues an outbound call from a bot to a number (normalized to E.164), dialled at the first moment at or after scheduled_at (default now) inside the bot''s business hours and 08:00-21:00 of the callee''s time zone (default the bot''s, else the org''s). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls).';

-- Latest definition: 20261123009100_call_quota_and_product_cap.sql; the callee's default zone changes, and
-- scheduled_at is bounded.
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
  -- Further out, a queued call holds a call minute of the plan's quota until canceled, and past year 9999 its
  -- time no longer prints as RFC 3339.
  if create_call_campaign.scheduled_at > pg_catalog.now() + interval '366 days' then
    raise exception 'scheduled_at may be at most 366 days ahead' using errcode = 'invalid_parameter_value';
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
  zone := private.callee_zone(create_call_campaign.org_id, create_call_campaign.bot_id, create_call_campaign.callee_time_zone);
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

drop function private.callee_zone(uuid, text);
