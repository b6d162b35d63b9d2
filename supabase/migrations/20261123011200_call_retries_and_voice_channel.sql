-- Fixes to outbound calls and their provider secrets, found by review:
-- 1. A call was dialled for a bot that does not answer on the voice channel (bots' channels default to
--    {web,api}): the callee's phone rang and every turn of the provider's custom LLM was refused
--    (chat_prepare: channel_not_enabled). require_outbound_setup now refuses such a bot (22023, raised with
--    constraint bots_voice_channel, which the calls function answers as 422 voice_channel_disabled), and
--    claim_due_calls fails a queued call whose bot no longer answers on it (an admin removed 'voice' while a
--    campaign was queued): `dial-failed: the bot does not answer on the voice channel`.
-- 2. A member placing calls through PostgREST had no idempotency: a retry after a lost answer, or a double
--    click, queued every number twice. public.create_outbound_call and public.create_call_campaign take an
--    optional idempotency_key, kept per user and org (private.claim_user_idempotency_key, 20261123009000) in
--    the transaction that does the work: a retry with the same arguments gets the first answer again, the
--    same key with other arguments is refused (22023). API keys send Idempotency-Key to the calls function
--    instead (their keys are kept per API key). The old signatures are dropped, so no call is ambiguous.
-- 3. A provider secret rotation kept one previous secret: a second rotation within the overlap (a double
--    click, a retry) dropped the first one at once, and every event the provider still signed with it was
--    refused (401) until the provider was reconfigured. Earlier secrets are now kept with their own
--    valid_until, at most 4 (as webhook endpoints' secrets, 20261123003900), and all unexpired ones verify.
-- 4. cancel_call sent again after a lost answer raised 23514 for the call it had just canceled (campaign
--    cancel answers 0 calls canceled): a call already canceled by a user is returned as it is.
-- 5. Fair dialling between orgs (a fairness review; claim_due_calls edited in place while this file was
--    unlanded). The claim handed out due calls oldest first across all orgs: one org's 10,000-number campaign
--    due at 09:00 held another org's call due at 09:01 back for about 25 minutes (100 calls a pass, a pass
--    every 15 s), for hours under the provider's throttling. It now serves orgs in turn: each org's oldest
--    due call, then each one's second, older first within a turn, oldest first within an org. And one org's
--    calls outside calling hours ended the pass for everyone: a claim set aside up to 1000 of them, a round
--    of max_calls at a time, and returned no call, which the dispatcher reads as nothing due (3,001 such calls:
--    three empty claims of 2+ s before another org's callable call). The groups (org, bot, callee zone)
--    waiting for a later slot are now found once per claim, and up to 1000 of their calls are set aside in
--    its first round beside the callable calls it hands out; the round-robin bounds its own set-aside at
--    1000 as before.

-- ---------------------------------------------------------------------------
-- 1. Bots that do not answer on the voice channel place no calls
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001210_call_operations.sql; only the voice channel check is new.
create or replace function private.require_outbound_setup(org_id uuid, bot_id uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  bot public.bots;
begin
  select * into bot from public.bots b where b.id = require_outbound_setup.bot_id and b.org_id = require_outbound_setup.org_id;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  if not bot.enabled then
    raise exception 'the bot % is disabled', bot.name using errcode = 'invalid_parameter_value';
  end if;
  if bot.voice_assistant_id is null then
    raise exception 'the bot % has no voice assistant', bot.name
      using errcode = 'invalid_parameter_value',
            hint = 'Set bots.voice_assistant_id to the provider''s assistant id (a Vapi assistant that uses this bot as its custom LLM).';
  end if;
  -- The provider's assistant speaks through the bot's voice channel; without it every turn is refused.
  if not ('voice' = any (bot.channels)) then
    raise exception 'the bot % does not answer on the voice channel', bot.name
      using errcode = 'invalid_parameter_value', constraint = 'bots_voice_channel',
            hint = 'Add voice to the bot''s channels.';
  end if;
  if not exists (
    select 1 from public.call_providers p
    where p.org_id = require_outbound_setup.org_id and p.provider = 'vapi' and p.outbound_phone_number_id is not null
  ) then
    raise exception 'this organization has no vapi phone number to call from'
      using errcode = 'invalid_parameter_value',
            hint = 'Create the vapi provider (create_call_provider_secret) and set its phone number with set_call_provider_outbound.';
  end if;
  return bot.voice_assistant_id;
end;
$$;

-- Latest definition: 20261123011000_dial_throttle.sql. New: the voice channel reason (the bot may have lost
-- the channel since the call was placed), and the choice of calls (item 5 of the header): round-robin per
-- org, and the calls outside calling hours set aside in the claim's first round beside the callable ones.
-- The checks, reasons and verdicts are as before.
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
  -- How many calls one claim may move forward or fail before it stops: the calls set aside for their slot
  -- in the first round, and as many again in the round-robin.
  max_set_aside constant integer := 1000;
  per_call constant integer := private.call_minutes_held_per_call();
  handed_out uuid[] := '{}';
  round_handed_out uuid[];
  round_examined integer;
  set_aside integer := 0;
  -- The groups of due calls whose callee may not be called now, each [org_id, bot_id, callee_time_zone].
  waiting_groups jsonb[];
  chosen uuid[];
  parked uuid[] := '{}';
  -- Chosen calls another transaction held: left to it.
  skipped uuid[] := '{}';
  round_skipped uuid[];
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

  -- Once per group: a campaign's calls share one slot, so its calls outside calling hours are set aside
  -- together below instead of one round at a time (which returned nothing, and the dispatcher stopped).
  select coalesce(array_agg(pg_catalog.jsonb_build_array(g.org_id, g.bot_id, g.callee_time_zone)) filter (where g.waits), '{}')
  into waiting_groups
  from (
    select d.org_id, d.bot_id, d.callee_time_zone,
      coalesce(private.next_call_slot(d.org_id, d.bot_id, d.callee_time_zone, pg_catalog.now()) > pg_catalog.now(), false) as waits
    from (
      select distinct c.org_id, c.bot_id, c.callee_time_zone
      from public.calls c
      where c.status = 'queued' and c.direction = 'outbound'
        and c.next_dial_at <= pg_catalog.now()
        and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
        -- An attempt whose outcome is unknown is looked up (claim_dial_lookups), never dialled again.
        and c.dial_started_at is null
    ) d
  ) g;

  -- The first round's calls outside calling hours, oldest first.
  parked := array(
    select c.id
    from public.calls c
    where c.status = 'queued' and c.direction = 'outbound'
      and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
      and c.dial_started_at is null
      and pg_catalog.jsonb_build_array(c.org_id, c.bot_id, c.callee_time_zone) = any (waiting_groups)
    order by c.next_dial_at, c.created_at, c.id
    limit max_set_aside
  );

  loop
    -- Round-robin: each org's oldest due call, then each one's second, and so on, older first within a
    -- turn; a campaign of 10,000 calls no longer keeps another org's call waiting behind it.
    chosen := array(
      select r.id
      from (
        select c.id, c.next_dial_at, c.created_at,
          pg_catalog.row_number() over (partition by c.org_id order by c.next_dial_at, c.created_at, c.id) as turn
        from public.calls c
        where c.status = 'queued' and c.direction = 'outbound'
          and c.next_dial_at <= pg_catalog.now()
          and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
          and c.dial_started_at is null
          and c.org_id <> all (busy_orgs)
          and c.id <> all (skipped)
          and pg_catalog.jsonb_build_array(c.org_id, c.bot_id, c.callee_time_zone) <> all (waiting_groups)
      ) r
      where r.turn <= max_calls - pg_catalog.cardinality(handed_out)
      order by r.turn, r.next_dial_at, r.created_at, r.id
      limit max_calls - pg_catalog.cardinality(handed_out)
    );
    exit when pg_catalog.cardinality(chosen) + pg_catalog.cardinality(parked) = 0;

    -- Still due (another transaction may have committed a change since), skip locked.
    picked := array(
      select c.id
      from public.calls c
      where c.id = any (chosen || parked)
        and c.status = 'queued' and c.direction = 'outbound'
        and c.next_dial_at <= pg_catalog.now()
        and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
        and c.dial_started_at is null
      order by c.id
      for update of c skip locked
    );
    round_skipped := array(select u.id from pg_catalog.unnest(chosen) u(id) where u.id <> all (picked));
    skipped := skipped || round_skipped;
    parked := array(select u.id from pg_catalog.unnest(parked) u(id) where u.id = any (picked));

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
    -- Once per (org, bot, callee zone): a campaign's calls share one. Materialized here and in budgets: a
    -- round may set aside up to 1000 calls, and inlined, the planner ran call_minutes_standing once per call
    -- (13 ms each on PGlite).
    slots as materialized (
      select g.org_id, g.bot_id, g.callee_time_zone,
        private.next_call_slot(g.org_id, g.bot_id, g.callee_time_zone, pg_catalog.now()) as slot
      from (
        select distinct c.org_id, c.bot_id, c.callee_time_zone
        from due join public.calls c on c.id = due.id
      ) g
    ),
    -- Once per org: the minutes left once the calls already dialled (earlier rounds and claims included)
    -- hold theirs.
    budgets as materialized (
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
          when not ('voice' = any (b.channels)) then 'the bot does not answer on the voice channel'
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
    -- The parked calls are bounded apart (max_set_aside in the first round); this counts the round-robin's.
    select (count(*) filter (where cl.id <> all (parked)))::integer, coalesce(array_agg(cl.id) filter (where cl.verdict = 'dial'), '{}')
    into round_examined, round_handed_out
    from claimed cl;

    handed_out := handed_out || round_handed_out;
    set_aside := set_aside + round_examined - pg_catalog.cardinality(round_handed_out);
    parked := '{}';
    -- A round that hands out fewer than it examined set calls aside; those
    -- are no longer due, so the next round reaches the calls behind them, as it does behind busy orgs and
    -- calls another transaction holds.
    exit when (round_examined = 0 and pg_catalog.cardinality(round_busy) = 0 and pg_catalog.cardinality(round_skipped) = 0)
      or pg_catalog.cardinality(handed_out) >= max_calls or set_aside >= max_set_aside;
  end loop;

  return query
  select c.id, c.org_id, c.bot_id, c.to_number, coalesce(c.provider, 'vapi'),
    c.dial_target ->> 'assistant_id', c.dial_target ->> 'phone_number_id', c.dial_attempts
  from public.calls c
  where c.id = any (handed_out)
  order by c.id;
end;
$$;
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) that may be called now and returns what to dial with the attempt number, stamping the attempt (dial_started_at) until its outcome is recorded; a call outside the callee''s 08:00-21:00 or the business hours moves to its next slot (next_call_slot) without an attempt (a throttled one''s dial_throttled_since moving by as much), and one without a slot within 14 days fails (dial-failed: no moment within 14 days ...); a call that the org''s call minutes (used, plus those held by calls being dialled, plus one per call handed out) no longer cover fails with ended_reason quota_exceeded, counted under the org''s active subscription (skip locked: an org whose subscription another transaction holds is left to the next pass); a call whose last attempt has an unknown outcome is never handed out (see claim_dial_lookups); calls that can no longer be dialled (the bot deleted, disabled, without a voice assistant or no longer answering on the voice channel, no phone number to call from) fail here with the reason. Orgs are served in turn (each org''s oldest due call, then each one''s second, older first within a turn). Calls moved or failed do not count against max_calls (per claim at most 1000 calls outside calling hours set aside in its first round, and 1000 more moved or failed). Service role.';

-- ---------------------------------------------------------------------------
-- 2. Idempotency keys for members placing calls and campaigns
-- ---------------------------------------------------------------------------

-- The signed-in user's claim of idempotency_key in the org for `request` (the call's arguments, as given;
-- instants in UTC, so the session's time zone does not make a retry another request):
-- null when this transaction claimed it (do the work, then record_user_idempotent_response), else the first
-- request's answer to return again. The same key with other arguments is refused. The key is kept per user
-- and org, so two members (or one member in two orgs) never collide.
create function private.claim_user_request(org_id uuid, idempotency_key text, request jsonb)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
declare
  fingerprint constant text := pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(request::text, 'UTF8')), 'hex');
  claimed boolean;
  first_fingerprint text;
  response_status integer;
  response_body jsonb;
begin
  if auth.uid() is null then
    raise exception 'idempotency_key is for signed-in users; an API key sends an Idempotency-Key header to the calls function'
      using errcode = 'invalid_parameter_value';
  end if;
  if idempotency_key !~ '^[!-~]{1,255}$' then
    raise exception 'idempotency_key must be 1 to 255 visible ASCII characters (a UUID will do)'
      using errcode = 'invalid_parameter_value';
  end if;
  select k.claimed, k.first_fingerprint, k.response_status, k.response_body
  into claimed, first_fingerprint, response_status, response_body
  from private.claim_user_idempotency_key(claim_user_request.org_id, claim_user_request.idempotency_key, fingerprint) k;
  if claimed then
    return null;
  end if;
  if first_fingerprint <> fingerprint then
    raise exception 'this idempotency_key was first sent with other arguments'
      using errcode = 'invalid_parameter_value', hint = 'Send a new key for a new request.';
  end if;
  -- A claim without an answer belongs to a request that has not committed yet.
  if response_status is null then
    raise exception 'a request with this idempotency_key is still being processed; send it again shortly'
      using errcode = 'lock_not_available';
  end if;
  return response_body;
end;
$$;
comment on function private.claim_user_request(uuid, text, jsonb) is 'Claims a signed-in user''s idempotency key in an org for a request (its arguments as jsonb): null when claimed by this transaction, else the first answer to replay; 22023 when the key was first sent with other arguments. Members.';
revoke execute on function private.claim_user_request(uuid, text, jsonb) from public, anon;
-- The service role too, so an API key's call with an idempotency_key is told where its keys go.
grant execute on function private.claim_user_request(uuid, text, jsonb) to authenticated, service_role;

-- Replaced by the signatures below, which add idempotency_key (one signature each: no ambiguous calls).
drop function public.create_outbound_call(uuid, uuid, text, timestamptz, text);
drop function public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text);

create function public.create_outbound_call(
  org_id uuid, bot_id uuid, to_number text, scheduled_at timestamptz default null, callee_time_zone text default null,
  idempotency_key text default null
)
returns public.calls
language plpgsql
security invoker
set search_path = ''
as $$
declare
  replay jsonb;
  created public.calls;
begin
  if create_outbound_call.idempotency_key is not null then
    replay := private.claim_user_request(create_outbound_call.org_id, create_outbound_call.idempotency_key,
      pg_catalog.jsonb_build_object('function', 'create_outbound_call', 'bot_id', create_outbound_call.bot_id,
        'to_number', create_outbound_call.to_number, 'scheduled_at', create_outbound_call.scheduled_at at time zone 'UTC',
        'callee_time_zone', create_outbound_call.callee_time_zone));
    if replay is not null then
      return pg_catalog.jsonb_populate_record(null::public.calls, replay);
    end if;
  end if;
  created := private.create_outbound_call(create_outbound_call.org_id, create_outbound_call.bot_id, create_outbound_call.to_number,
    create_outbound_call.scheduled_at, create_outbound_call.callee_time_zone);
  if create_outbound_call.idempotency_key is not null then
    perform private.record_user_idempotent_response(create_outbound_call.org_id, create_outbound_call.idempotency_key, 201,
      pg_catalog.to_jsonb(created));
  end if;
  return created;
end;
$$;
comment on function public.create_outbound_call(uuid, uuid, text, timestamptz, text, text) is 'Queues an outbound call from a bot to a number (normalized to E.164), dialled at the first moment at or after scheduled_at (default now) inside the bot''s business hours and 08:00-21:00 of the callee''s time zone (default the bot''s, else the org''s); the bot must answer on the voice channel. With idempotency_key (signed-in users; kept per user and org for 24 hours) a retry with the same arguments returns the call it first queued instead of queueing another, and other arguments are refused (22023). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls).';

create function public.create_call_campaign(
  org_id uuid, bot_id uuid, name text, numbers text[], scheduled_at timestamptz default null, callee_time_zone text default null,
  idempotency_key text default null
)
returns table (campaign_id uuid, calls_created integer, duplicates_removed integer, invalid_numbers text[])
language plpgsql
security invoker
set search_path = ''
as $$
declare
  answer jsonb;
begin
  if create_call_campaign.idempotency_key is not null then
    answer := private.claim_user_request(create_call_campaign.org_id, create_call_campaign.idempotency_key,
      pg_catalog.jsonb_build_object('function', 'create_call_campaign', 'bot_id', create_call_campaign.bot_id,
        'name', create_call_campaign.name, 'numbers', create_call_campaign.numbers,
        'scheduled_at', create_call_campaign.scheduled_at at time zone 'UTC', 'callee_time_zone', create_call_campaign.callee_time_zone));
  end if;
  if answer is null then
    select pg_catalog.to_jsonb(k) into answer
    from private.create_call_campaign(create_call_campaign.org_id, create_call_campaign.bot_id, create_call_campaign.name,
      create_call_campaign.numbers, create_call_campaign.scheduled_at, create_call_campaign.callee_time_zone) k;
    if create_call_campaign.idempotency_key is not null then
      perform private.record_user_idempotent_response(create_call_campaign.org_id, create_call_campaign.idempotency_key, 201, answer);
    end if;
  end if;
  return query
  select (answer ->> 'campaign_id')::uuid, (answer ->> 'calls_created')::integer, (answer ->> 'duplicates_removed')::integer,
    array(select pg_catalog.jsonb_array_elements_text(answer -> 'invalid_numbers'));
end;
$$;
comment on function public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text, text) is 'Queues one outbound call per distinct number (at most 1000 given, counted before duplicates are removed), all at the campaign''s first slot; numbers that are not phone numbers are reported and skipped (22023 when none is); the bot must answer on the voice channel. With idempotency_key (signed-in users; kept per user and org for 24 hours) a retry with the same arguments returns the campaign it first queued instead of queueing the numbers again, and other arguments are refused (22023). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls/campaigns).';

-- The grants of the signatures they replace (20261123001210, 20261123006000, 20261123006200).
grant execute on function
  public.create_outbound_call(uuid, uuid, text, timestamptz, text, text),
  public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text, text)
to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 3. Earlier provider secrets, each until its own time
-- ---------------------------------------------------------------------------

-- call_provider_secrets keeps the secret the latest rotation replaced (previous_secret, previous_valid_until);
-- the ones replaced before it, still inside their overlap, are kept here, at most 3, so with the previous
-- one at most 4 earlier secrets verify (as webhook endpoints' secrets sign, 20261123003900). No row exists
-- yet: every rotation so far kept only the previous secret, which stays where it is.
create table private.call_provider_older_secrets (
  id bigint generated always as identity primary key,
  org_id uuid not null,
  provider text not null,
  secret text not null,
  valid_until timestamptz not null,
  constraint call_provider_older_secrets_provider_fk foreign key (org_id, provider)
    references private.call_provider_secrets (org_id, provider) on delete cascade
);
comment on table private.call_provider_older_secrets is 'Voice provider secrets replaced before the previous one (call_provider_secrets.previous_secret), each accepted until its valid_until; at most 3 per org and provider.';
create index call_provider_older_secrets_provider_idx on private.call_provider_older_secrets (org_id, provider);
revoke all on private.call_provider_older_secrets from public, anon, authenticated, service_role;

-- Latest definition: 20261123001200_calls.sql; the secret the previous rotation replaced is kept (among the
-- older secrets) instead of being dropped.
create or replace function private.rotate_call_provider_secret(org_id uuid, provider text, overlap_hours integer)
returns table (secret text, previous_secret_valid_until timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  fresh text;
  current private.call_provider_secrets;
  overlap_ends timestamptz;
begin
  perform private.require_permission(rotate_call_provider_secret.org_id, 'calls.manage');
  perform private.require_call_provider(rotate_call_provider_secret.provider);
  if overlap_hours is null or overlap_hours not between 0 and 168 then
    raise exception 'the overlap is 0 to 168 hours' using errcode = 'invalid_parameter_value';
  end if;
  select * into current from private.call_provider_secrets s
  where s.org_id = rotate_call_provider_secret.org_id and s.provider = rotate_call_provider_secret.provider
  for update;
  if not found then
    raise exception 'this organization has no % secret yet', rotate_call_provider_secret.provider
      using errcode = 'no_data_found', hint = 'Create one with create_call_provider_secret.';
  end if;
  fresh := private.new_call_provider_secret(rotate_call_provider_secret.provider);
  -- The secret being replaced stays valid for the overlap, so the provider can switch without a gap.
  overlap_ends := case when overlap_hours > 0 then pg_catalog.now() + pg_catalog.make_interval(hours => overlap_hours) end;

  -- A second rotation within the overlap (a double click, a retry after a lost answer) must not end the
  -- secret the provider may still be using: the previous one joins the older ones, with its own time.
  if current.previous_secret is not null then
    insert into private.call_provider_older_secrets (org_id, provider, secret, valid_until)
    values (current.org_id, current.provider, current.previous_secret, current.previous_valid_until);
  end if;
  -- None outlives the new overlap, as with webhook secrets: an overlap of 0 (a leaked secret) ends them all.
  update private.call_provider_older_secrets o
  set valid_until = least(o.valid_until, coalesce(overlap_ends, pg_catalog.now()))
  where o.org_id = current.org_id and o.provider = current.provider;
  delete from private.call_provider_older_secrets o
  where o.org_id = current.org_id and o.provider = current.provider and o.valid_until <= pg_catalog.now();
  -- Each accepted secret is one more to try on every event: with the previous one, at most 4 earlier ones.
  delete from private.call_provider_older_secrets o
  where o.org_id = current.org_id and o.provider = current.provider
    and o.id not in (
      select k.id from private.call_provider_older_secrets k
      where k.org_id = current.org_id and k.provider = current.provider
      order by k.id desc
      limit 3
    );

  update private.call_provider_secrets s
  set secret = fresh,
      previous_secret = case when overlap_ends is not null then current.secret end,
      previous_valid_until = overlap_ends,
      created_at = clock_timestamp()
  where s.org_id = current.org_id and s.provider = current.provider;
  update public.call_providers p
  set secret_created_at = pg_catalog.now(), previous_secret_valid_until = overlap_ends
  where p.org_id = current.org_id and p.provider = current.provider;
  return query select fresh, overlap_ends;
end;
$$;
comment on function public.rotate_call_provider_secret(uuid, text, integer) is 'Replaces an org''s voice provider secret and returns the new one once; the old one stays valid for overlap_hours (0 to 168, default 24), and earlier ones still inside their overlap stay valid until their own time (never past the new overlap; at most 4 earlier secrets, the newest kept; an overlap of 0 ends them all). Admins.';

-- Latest definition: 20261123001200_calls.sql; the older secrets still inside their overlap are new.
create or replace function private.call_provider_secrets_for(org_id uuid, provider text)
returns text[]
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce((
    select array[s.secret]
      || case when s.previous_valid_until > pg_catalog.now() then array[s.previous_secret] else '{}'::text[] end
      || array(
        select o.secret from private.call_provider_older_secrets o
        where o.org_id = s.org_id and o.provider = s.provider and o.valid_until > pg_catalog.now()
        order by o.id desc
      )
    from private.call_provider_secrets s
    where s.org_id = call_provider_secrets_for.org_id and s.provider = call_provider_secrets_for.provider
  ), '{}');
$$;
comment on function private.call_provider_secrets_for(uuid, text) is 'The secrets an org''s provider may use now, newest first: the current one and the earlier ones still inside their rotation''s overlap (at most 4). Service role.';

-- ---------------------------------------------------------------------------
-- 4. Cancelling a call again answers the canceled call
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123004800_call_dial_once.sql; only the early return is new.
create or replace function private.cancel_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls := private.manageable_call(cancel_call.call_id);
begin
  if target.status = 'canceled' and target.ended_reason = 'canceled-by-user' then
    return target;
  end if;
  if target.status <> 'queued' then
    raise exception 'only a queued call can be canceled; this one is %', target.status using errcode = 'check_violation';
  end if;
  -- The dispatcher holds it and may be placing it this very moment.
  if target.dial_lease_until > pg_catalog.now() then
    raise exception 'the call is being dialled right now and can no longer be canceled' using errcode = 'check_violation';
  end if;
  -- A dial attempt may have placed it; the provider is asked first.
  if target.dial_started_at is not null then
    raise exception 'the call may already be ringing (its last dial is being checked with the provider) and can no longer be canceled'
      using errcode = 'check_violation';
  end if;
  update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user'
  where c.id = target.id
  returning * into target;
  return target;
end;
$$;
