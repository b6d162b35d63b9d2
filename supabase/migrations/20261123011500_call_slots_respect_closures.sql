-- Outbound calls respect business closures.
--
-- private.next_call_slot intersected the business hours with the callee's 08:00-21:00 and never read
-- public.business_closures, so a business closed for Christmas (an org closure) or a bot's staff on leave (the
-- bot's closure) still had its calls and campaigns dialled on those days, while calendar availability
-- (private.open_ranges) subtracted them. A slot is now also outside every closure of the org (bot_id null) and
-- of the call's bot, within the same 14-day horizon: a closure that covers the rest of it leaves no slot (null),
-- as hours with no opening do, so create_outbound_call and create_call_campaign refuse such a call (22023) and
-- claim_due_calls fails a queued one (dial-failed: no moment within 14 days ...).
--
-- The closure rule moves into private.closed_ranges, which open_ranges and next_call_slot both subtract.
-- Every caller takes the slot as before: claim_due_calls defers a due call whose bot or org closed after it
-- was queued to the closure's end (or the next opening after it) without an attempt, as it does outside
-- calling hours; record_dial_result keeps a retry out of closures; first_call_slot starts a new call or
-- campaign after one.

-- Invoker and no grants: only definer code (open_ranges, next_call_slot) reads it, each with its own check.
create function private.closed_ranges(org_id uuid, bot_id uuid, during tstzrange)
returns tstzmultirange
language sql
stable
security invoker
set search_path = ''
as $$
  select coalesce(pg_catalog.range_agg(c.during), '{}'::tstzmultirange) * pg_catalog.tstzmultirange(closed_ranges.during)
  from public.business_closures c
  where c.org_id = closed_ranges.org_id
    and (c.bot_id is null or c.bot_id = closed_ranges.bot_id)
    and c.during && closed_ranges.during;
$$;
comment on table public.business_closures is 'Times the org (bot_id null) or a bot is closed (holidays, leave), at most 366 days each; subtracted from business hours (private.closed_ranges) by availability (private.open_ranges) and by outbound calling hours (private.next_call_slot). Members read; admins write.';

comment on function private.closed_ranges(uuid, uuid, tstzrange) is 'The instants within a window when the org (closures with bot_id null) or the bot (its own closures) is closed; bot_id null: the org''s only. No permission check: definer code only.';

-- Latest definition: 20261123001400_calendar.sql; the closures now come from private.closed_ranges.
create or replace function private.open_ranges(org_id uuid, bot_id uuid, during tstzrange)
returns tstzmultirange
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  hours tstzmultirange;
begin
  perform private.require_calendar_window(open_ranges.during);
  if auth.role() = 'authenticated' and not private.has_permission(open_ranges.org_id, 'calendar.read') then
    raise exception 'you do not have the calendar.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  hours := coalesce(
    private.business_hours_ranges(open_ranges.org_id, open_ranges.bot_id, open_ranges.during),
    pg_catalog.tstzmultirange(open_ranges.during));
  return (hours - private.closed_ranges(open_ranges.org_id, open_ranges.bot_id, open_ranges.during))
    * pg_catalog.tstzmultirange(open_ranges.during);
end;
$$;

-- Latest definition: 20261123010000_bot_time_zones.sql; new is the subtraction of the closures.
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
  allowed := callee_ranges * pg_catalog.tstzmultirange(window_range)
    - private.closed_ranges(next_call_slot.org_id, next_call_slot.bot_id, window_range);
  if open_ranges is not null then
    allowed := allowed * open_ranges;
  end if;
  if pg_catalog.isempty(allowed) then
    return null;
  end if;
  return pg_catalog.lower(allowed);
end;
$$;
comment on function private.next_call_slot(uuid, uuid, text, timestamptz) is 'Earliest instant >= not_before inside the bot''s (else the org''s) business hours and 08:00-21:00 in the callee''s time zone (default: the bot''s, else the org''s), outside every closure of the org and of the bot, at most 14 days ahead; null if none (a closure covering the rest of the 14 days included).';

-- Latest definition: 20261123001210_call_operations.sql; the hint names closures, a new reason for no slot.
create or replace function private.first_call_slot(org_id uuid, bot_id uuid, callee_time_zone text, scheduled_at timestamptz)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  slot timestamptz;
begin
  -- A moment in the past means as soon as possible.
  slot := private.next_call_slot(first_call_slot.org_id, first_call_slot.bot_id, first_call_slot.callee_time_zone,
    greatest(coalesce(first_call_slot.scheduled_at, pg_catalog.now()), pg_catalog.now()));
  if slot is null then
    raise exception 'no moment within the 14 days from % is inside the business hours and 08:00-21:00 of the callee''s time zone (%)',
      private.rfc3339(greatest(coalesce(first_call_slot.scheduled_at, pg_catalog.now()), pg_catalog.now())), first_call_slot.callee_time_zone
      using errcode = 'invalid_parameter_value', hint = 'Check the bot''s (or the organization''s) business hours and closures.';
  end if;
  return slot;
end;
$$;
