-- Outbound dialling under the provider's throttling (on top of 20261123004800_call_dial_once.sql and
-- 20261123009100_call_quota_and_product_cap.sql).
--
-- A 429 (or 503) from Vapi's POST /call delayed only the call it answered: the pass went on dialling every
-- other call it had claimed (up to 100 POSTs a pass, a pass every 15 s) at an API that had asked us to wait,
-- and each 429 used up one of the call's 5 attempts, so after about 43 minutes of throttling every call
-- still queued ended `failed` without ever being placed. Now:
-- * the dispatcher stops dialling at the first throttled answer (429 or 503: Vapi created nothing) and claims
--   no further batch; the calls it claimed but did not dial, and the throttled ones, are given back with
--   private.release_dial_claims: the attempt is undone (dial_attempts back to what it was, the stamp and the
--   lease cleared, as if never claimed) and the call is due again after the provider's Retry-After
--   (default private.dial_throttle_default_seconds(), 30 s; at most private.dial_throttle_max_wait_seconds(),
--   an hour: waiting longer than asked costs a call its turn, asking too early costs one request). Calling
--   hours are left to claim_due_calls, which moves a call to its next slot without an attempt;
-- * lookups of unknown outcomes (GET /call) throttled alike are given back too: the lookup is not counted
--   (dial_lookups back by one), the attempt stays stamped and is never dialled before a lookup settles it;
-- * a throttled call cannot wait forever: calls.dial_throttled_since is when its current run of throttled
--   answers began (set by the first give-back, cleared when an attempt gets a real answer:
--   record_dial_result). A give-back more than private.dial_throttle_limit() (24 hours) after it fails the
--   call instead, `dial-failed: throttled by the provider for over 24 hours: <error>` (a lookup claim:
--   `dial-failed: outcome unknown: throttled ...`, as an unanswered lookup ends); campaigns have no end
--   date to bound it by. Only time the call could have been dialled counts: when claim_due_calls moves a
--   throttled call to its next slot (calling hours, business hours), dial_throttled_since moves by as much,
--   so the clock stops meanwhile. Else a campaign throttled on Friday afternoon, moved to Monday 09:00,
--   failed every call at Monday's first 429, calls never dialled among them. 24 h is about two calling
--   days of 08:00-21:00;
-- * a call of a canceled campaign given back undialled is canceled (canceled-by-user), as record_dial_result
--   cancels its retry; a lookup claim is not (the attempt may have placed the call).
-- Locks: the given-back calls only (for update, in id order), as record_dial_result locks its call; nothing
-- else. Two passes never hold the same claim; a claim that moved on (another attempt or lookup, its lease
-- taken over, no longer queued) is stale and left alone.

alter table public.calls
  add column dial_throttled_since timestamptz;
comment on column public.calls.dial_throttled_since is 'When the provider began throttling this call''s dials (given back without an attempt: release_dial_claims), moved on by the time claim_due_calls defers the call to its next slot (outside calling or business hours); cleared when an attempt gets a real answer. Past dial_throttle_limit() the call fails.';

create function private.dial_throttle_default_seconds()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$ select 30 $$;
comment on function private.dial_throttle_default_seconds() is 'How long a call given back for throttling waits when the provider sent no Retry-After.';

create function private.dial_throttle_max_wait_seconds()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$ select 3600 $$;
comment on function private.dial_throttle_max_wait_seconds() is 'The longest a call given back for throttling waits, whatever Retry-After says.';

create function private.dial_throttle_limit()
returns interval
language sql
immutable
security invoker
set search_path = ''
as $$ select interval '24 hours' $$;
comment on function private.dial_throttle_limit() is 'How long a call may be held back by the provider''s throttling before it fails (time outside its calling slots not counted).';

-- Gives back claims a dispatcher made but could not use because the provider is throttling: dial claims
-- (lookup 0) not dialled or answered 429/503, and lookup claims (their lookup number) not sent or
-- throttled. One row per call given: released (due again after the wait, no attempt or lookup counted),
-- failed (throttled past dial_throttle_limit()), canceled (its campaign was canceled), stale (the claim
-- moved on or is no longer this attempt's) or gone. retry_after_seconds is numeric: the provider's
-- Retry-After may be any number of seconds (an HTTP date past 2100 exceeds an integer); it is capped here.
create function private.release_dial_claims(
  call_ids uuid[], attempts integer[], lookups integer[], reason text, retry_after_seconds numeric default null
)
returns table (call_id uuid, outcome text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  wait_seconds constant integer := pg_catalog.ceil(least(
    greatest(coalesce(retry_after_seconds, private.dial_throttle_default_seconds()), 1),
    private.dial_throttle_max_wait_seconds()));
  why constant text := coalesce(nullif(pg_catalog.btrim(reason), ''), 'the provider is throttling requests');
  given_up constant text := 'throttled by the provider for over '
    || (pg_catalog.date_part('epoch', private.dial_throttle_limit()) / 3600)::integer || ' hours: ' || why;
begin
  if call_ids is null or pg_catalog.cardinality(call_ids) > 500
    or pg_catalog.cardinality(attempts) is distinct from pg_catalog.cardinality(call_ids)
    or pg_catalog.cardinality(lookups) is distinct from pg_catalog.cardinality(call_ids) then
    raise exception 'call_ids, attempts and lookups are arrays of one length, at most 500' using errcode = 'invalid_parameter_value';
  end if;

  -- Record_dial_result's lock, one call after another in id order: two passes never deadlock here.
  perform 1 from public.calls c where c.id = any (call_ids) order by c.id for update;

  return query
  with given as (
    select distinct on (g.call_id) g.call_id, g.attempt, g.lookup
    from unnest(call_ids, attempts, lookups) g(call_id, attempt, lookup)
    order by g.call_id
  ),
  held as (
    select c.id, g.lookup,
      case
        when g.lookup = 0 and coalesce(k.status = 'canceled', false) then 'canceled'
        when c.dial_throttled_since < pg_catalog.now() - private.dial_throttle_limit() then 'failed'
        else 'released'
      end as verdict
    from given g
    join public.calls c on c.id = g.call_id
    left join public.call_campaigns k on k.id = c.campaign_id and k.org_id = c.org_id
    -- Still the claim this pass made: the same attempt and lookup, stamped, not yet answered.
    where c.status = 'queued' and c.dial_started_at is not null
      and c.dial_attempts = g.attempt and c.dial_lookups = g.lookup and g.lookup >= 0
      and (g.lookup > 0 or c.dial_attempts > 0)
  ),
  changed as (
    update public.calls c set
      status = case h.verdict when 'released' then 'queued' else h.verdict end::public.call_status,
      ended_reason = case h.verdict
        when 'canceled' then 'canceled-by-user'
        when 'failed' then pg_catalog.left('dial-failed: ' || case when h.lookup > 0 then 'outcome unknown: ' else '' end || given_up, 200)
        else c.ended_reason end,
      last_dial_error = pg_catalog.left(why, 1000),
      next_dial_at = case when h.verdict = 'released' then pg_catalog.now() + pg_catalog.make_interval(secs => wait_seconds) end,
      dial_lease_until = null,
      dial_throttled_since = coalesce(c.dial_throttled_since, pg_catalog.now()),
      -- A dial claim is undone: no attempt was made. A lookup claim keeps its stamp: its attempt is still unknown.
      dial_attempts = c.dial_attempts - case when h.lookup = 0 then 1 else 0 end,
      dial_lookups = c.dial_lookups - case when h.lookup > 0 then 1 else 0 end,
      dial_started_at = case when h.lookup = 0 then null else c.dial_started_at end,
      dial_target = case when h.lookup = 0 then null else c.dial_target end
    from held h
    where c.id = h.id
    returning c.id, h.verdict
  )
  select g.call_id, coalesce(ch.verdict, case when exists (select 1 from public.calls c where c.id = g.call_id) then 'stale' else 'gone' end)
  from given g
  left join changed ch on ch.id = g.call_id
  order by g.call_id;
end;
$$;
comment on function private.release_dial_claims(uuid[], integer[], integer[], text, numeric) is 'Gives back dial claims (lookup 0: the attempt is undone) and lookup claims (the lookup is not counted) a dispatcher could not use because the provider throttled it (429/503): due again after retry_after_seconds (default 30, 1 to 3600); a call throttled for over 24 hours (time deferred to its next calling slot not counted) fails (dial-failed: throttled by the provider ...), an undialled call of a canceled campaign is canceled. Rows (call_id, outcome released|failed|canceled|stale|gone). Service role.';

-- Latest definition: 20261123009100_call_quota_and_product_cap.sql; only the shift of dial_throttled_since
-- when a call is moved to its next slot (the `wait` verdict) is new: the time a call waits outside its
-- calling slots is not time the provider held it back (this file's header). Its locks, and the header the
-- body refers to, are 20261123009100's.
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
        -- The throttled clock stops while the call waits for its slot (null stays null: not throttled).
        dial_throttled_since = case when v.verdict = 'wait'
          then c.dial_throttled_since + (v.later_slot - pg_catalog.now()) else c.dial_throttled_since end,
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
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) that may be called now and returns what to dial with the attempt number, stamping the attempt (dial_started_at) until its outcome is recorded; a call outside the callee''s 08:00-21:00 or the business hours moves to its next slot (next_call_slot) without an attempt (a throttled one''s dial_throttled_since moving by as much), and one without a slot within 14 days fails (dial-failed: no moment within 14 days ...); a call that the org''s call minutes (used, plus those held by calls being dialled, plus one per call handed out) no longer cover fails with ended_reason quota_exceeded, counted under the org''s active subscription (skip locked: an org whose subscription another transaction holds is left to the next pass); a call whose last attempt has an unknown outcome is never handed out (see claim_dial_lookups); calls that can no longer be dialled fail here with the reason. Calls moved or failed do not count against max_calls (at most 1000 per claim). Service role.';

-- Latest definition: 20261123004800_call_dial_once.sql; only the clearing of dial_throttled_since (the
-- attempt got a real answer, so the provider's throttling of this call is over) is new.
create or replace function private.record_dial_result(
  call_id uuid, attempt integer, provider_call_id text, error text, retryable boolean, retry_after_seconds integer default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
  delays integer[] := private.dial_retry_delays();
  reason text := coalesce(nullif(pg_catalog.btrim(error), ''), 'unknown error');
  delay_seconds integer;
  slot timestamptz;
  campaign_canceled boolean;
begin
  select * into target from public.calls c where c.id = record_dial_result.call_id for update;
  if not found then
    return jsonb_build_object('outcome', 'gone', 'call_id', record_dial_result.call_id);
  end if;
  -- A report for an attempt the call has moved past (a dispatcher that
  -- outlived its lease, a duplicate report, the provider's events first).
  if target.status <> 'queued' or target.dial_attempts is distinct from record_dial_result.attempt then
    return jsonb_build_object('outcome', 'stale', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  if nullif(record_dial_result.provider_call_id, '') is not null then
    -- Dialled: the provider's events move it on from here.
    update public.calls c set status = 'ringing', provider_call_id = record_dial_result.provider_call_id, last_dial_error = null,
      dial_started_at = null, dial_target = null, dial_lookups = 0, dial_throttled_since = null
    where c.id = target.id
    returning * into target;
    return jsonb_build_object('outcome', 'dialled', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  select k.status = 'canceled' into campaign_canceled
  from public.call_campaigns k where k.id = target.campaign_id and k.org_id = target.org_id;
  if coalesce(campaign_canceled, false) then
    update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user', last_dial_error = left(reason, 1000),
      dial_started_at = null, dial_target = null, dial_lookups = 0, dial_throttled_since = null
    where c.id = target.id
    returning * into target;
    return jsonb_build_object('outcome', 'canceled', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  if coalesce(retryable, false) and target.dial_attempts between 1 and cardinality(delays) then
    delay_seconds := greatest(delays[target.dial_attempts], least(coalesce(retry_after_seconds, 0), 86400));
    -- A retry keeps to the calling hours too.
    slot := private.next_call_slot(target.org_id, target.bot_id, target.callee_time_zone,
      pg_catalog.now() + pg_catalog.make_interval(secs => delay_seconds));
    if slot is not null then
      update public.calls c set next_dial_at = slot, dial_lease_until = null, last_dial_error = left(reason, 1000),
        dial_started_at = null, dial_target = null, dial_lookups = 0, dial_throttled_since = null
      where c.id = target.id
      returning * into target;
      return jsonb_build_object('outcome', 'retry', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
        'next_dial_at', target.next_dial_at);
    end if;
  end if;

  update public.calls c set status = 'failed', ended_reason = left('dial-failed: ' || reason, 200), last_dial_error = left(reason, 1000),
    dial_started_at = null, dial_target = null, dial_lookups = 0, dial_throttled_since = null
  where c.id = target.id
  returning * into target;
  return jsonb_build_object('outcome', 'failed', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
    'ended_reason', target.ended_reason);
end;
$$;
comment on function private.record_dial_result(uuid, integer, text, text, boolean, integer) is 'Records the known outcome of one dial attempt: provider call id -> ringing; a retryable failure (the provider did not take the call) before the 5th attempt -> queued again after 30 s, 2 min, 10 min, 30 min (or Retry-After, at most a day; moved into calling hours); else failed (dial-failed: <error>). An outcome that may have placed the call goes to record_dial_unknown instead, a throttled one (429/503) to release_dial_claims. A stale attempt changes nothing. {outcome: dialled|retry|failed|canceled|stale|gone, ...}. Service role.';

revoke execute on function
  private.dial_throttle_default_seconds(),
  private.dial_throttle_max_wait_seconds(),
  private.dial_throttle_limit(),
  private.release_dial_claims(uuid[], integer[], integer[], text, numeric)
from public, anon, authenticated;
grant execute on function private.release_dial_claims(uuid[], integer[], integer[], text, numeric) to service_role;
