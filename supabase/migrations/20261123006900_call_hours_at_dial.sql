-- Calling hours hold when a call is dialled, not only when it is scheduled.
--
-- create_outbound_call, create_call_campaign and the retry path of
-- record_dial_result put next_dial_at inside the callee's 08:00-21:00 and the
-- bot's (else the org's) business hours, but claim_due_calls handed out any
-- call with next_dial_at <= now(). A call whose slot passed while nothing
-- dialled (a dispatcher outage, no VAPI_API_KEY for a while, the tail of a
-- large campaign queued at 20:59 that one pass of at most 100 dials could not
-- reach) went out at 02:22 in the callee's zone. Now the claim asks
-- private.next_call_slot(org, bot, callee zone, now()) for every due call:
-- * the slot is now: the call is handed out as before;
-- * the slot is later: next_dial_at moves to it and the call is not handed
--   out (no attempt counted, still queued, no error);
-- * there is none within 14 days (the hours changed since it was queued):
--   the call fails like any call the claim can no longer dial, with
--   `dial-failed: no moment within 14 days is inside the business hours and
--   08:00-21:00 of the callee's time zone (<zone>)` (call.ended).
-- Calls moved forward or failed do not use up the claim's max_calls: it keeps
-- claiming, in the same order, until max_calls are handed out, nothing is due,
-- or 1000 calls were set aside in one claim (a night-time backlog is moved in
-- bounded steps; the rest in the next pass).

-- Latest definition: 20261123004800_call_dial_once.sql; only the calling
-- hours check (calls moved forward to their next slot, or failed without
-- one) and the claiming in rounds until max_calls are handed out are new.
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
  handed_out uuid[] := '{}';
  round_handed_out uuid[];
  round_examined integer;
  set_aside integer := 0;
begin
  if max_calls is null or max_calls not between 1 and 500 then
    raise exception 'max_calls must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'lease_seconds must be between 5 and 900' using errcode = 'invalid_parameter_value';
  end if;
  loop
    with due as (
      select c.id
      from public.calls c
      where c.status = 'queued' and c.direction = 'outbound'
        and c.next_dial_at <= pg_catalog.now()
        and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
        -- An attempt whose outcome is unknown is looked up (claim_dial_lookups), never dialled again.
        and c.dial_started_at is null
      order by c.next_dial_at, c.created_at
      limit max_calls - pg_catalog.cardinality(handed_out)
      for update of c skip locked
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
    checked as (
      select due.id,
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
    verdicts as (
      select k.*, case when k.problem is not null then 'fail' when k.later_slot is not null then 'wait' else 'dial' end as verdict
      from checked k
    ),
    claimed as (
      update public.calls c set
        next_dial_at = case when v.verdict = 'wait' then v.later_slot else c.next_dial_at end,
        dial_attempts = c.dial_attempts + case when v.verdict = 'dial' then 1 else 0 end,
        dial_lease_until = case when v.verdict = 'dial' then pg_catalog.now() + pg_catalog.make_interval(secs => lease_seconds) end,
        status = case when v.verdict = 'fail' then 'failed' else 'queued' end::public.call_status,
        ended_reason = case when v.verdict = 'fail' then left('dial-failed: ' || v.problem, 200) else c.ended_reason end,
        last_dial_error = case when v.verdict = 'fail' then v.problem else c.last_dial_error end,
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
    -- are no longer due, so the next round reaches the calls behind them.
    exit when round_examined = 0 or pg_catalog.cardinality(handed_out) >= max_calls or set_aside >= max_set_aside;
  end loop;

  return query
  select c.id, c.org_id, c.bot_id, c.to_number, coalesce(c.provider, 'vapi'),
    c.dial_target ->> 'assistant_id', c.dial_target ->> 'phone_number_id', c.dial_attempts
  from public.calls c
  where c.id = any (handed_out)
  order by c.id;
end;
$$;
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) that may be called now and returns what to dial with the attempt number, stamping the attempt (dial_started_at) until its outcome is recorded; a call outside the callee''s 08:00-21:00 or the business hours moves to its next slot (next_call_slot) without an attempt, and one without a slot within 14 days fails (dial-failed: no moment within 14 days ...); a call whose last attempt has an unknown outcome is never handed out (see claim_dial_lookups); calls that can no longer be dialled fail here with the reason. Calls moved or failed do not count against max_calls (at most 1000 per claim). Service role.';
