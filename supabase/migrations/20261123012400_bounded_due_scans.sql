-- Due work handed out without ranking every due row. The fair hand-outs (20261123011200 item 5,
-- 20261123011800) ranked every due call of every org to serve the orgs in turn: with one org's 10,000 due calls
-- and 50 other orgs a claim of 10 took 0.26-0.6 s on PGlite (0.06-0.19 s before fairness), and an after-call
-- hand-out about 150 ms at 20,000 due calls of one org (2-45 ms before), on every pass (15 s), growing with the
-- backlog. Now each reads only the turns it can hand out: the orgs with work queued, one index probe each
-- (skipping from one org to the next: calls_dial_queue_idx, 20261123012410; calls_analysis_queue_idx and
-- calls_recording_queue_idx, 20261123012420/012430, each with its hand-out's predicate), then each org's oldest due calls, at most a batch, and ranks those. A call's turn is the
-- same (the calls of an org ranked before it are the ones read), so the order is as before. Measured in
-- process on PGlite (that shape, medians): a claim of 10 37 -> 23 ms, an analysis hand-out of 1 44 -> 3 ms, of
-- 20 54 -> 12 ms, a recording hand-out of 20 43 -> 2 ms.
--
-- The after-call hand-outs skip calls another pass holds (skip locked) and take the next ones: when the calls
-- read are not enough because some were held, each org's queue is read deeper (twice as far) and the
-- hand-out is picked again, so a held call is passed over as before instead of ending the hand-out short.
-- claim_due_calls already goes round again without the calls it skipped.
--
-- Still read in full, once per claim: the due calls' groups (org, bot, callee zone) waiting for a later slot
-- (about 11 ms of the 23 at 10,000 due calls; bounding it needs an index in group order). The scan for the
-- calls to set aside is skipped when no group waits, and a round's read of an org passes over its calls that
-- wait and were not set aside.

-- Latest definition: 20261123011200_call_retries_and_voice_channel.sql; only the choice of each round's calls
-- (the round-robin read per org, bounded) and the set-aside scan skipped when no group waits are new. Checks,
-- set-aside, locking, verdicts and answer are as before.
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

  -- The first round's calls outside calling hours, oldest first. None when no group waits: the scan of every
  -- due call is skipped then.
  if pg_catalog.cardinality(waiting_groups) > 0 then
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
  end if;

  loop
    -- Round-robin: each org's oldest due call, then each one's second, and so on, older first within a
    -- turn. Only the turns this round can hand out are read: the orgs with queued calls, one index probe each
    -- (calls_dial_queue_idx, ordered by its whole key so that the planner takes it and not another index on
    -- org_id that would walk an org's other calls), then each org's oldest due calls up to the round's size,
    -- ranked.
    chosen := array(
      with recursive queue_orgs as (
        (select c.org_id from public.calls c
         where c.status = 'queued' and c.direction = 'outbound' and c.dial_started_at is null
         order by c.org_id, c.next_dial_at, c.created_at, c.id
         limit 1)
        union all
        select (select c.org_id from public.calls c
                where c.status = 'queued' and c.direction = 'outbound' and c.dial_started_at is null
                  and c.org_id > q.org_id
                order by c.org_id, c.next_dial_at, c.created_at, c.id
                limit 1)
        from queue_orgs q
        where q.org_id is not null
      )
      select r.id
      from (
        select d.id, d.next_dial_at, d.created_at,
          pg_catalog.row_number() over (partition by d.org_id order by d.next_dial_at, d.created_at, d.id) as turn
        from queue_orgs q
        cross join lateral (
          select c.id, c.org_id, c.next_dial_at, c.created_at
          from public.calls c
          where c.org_id = q.org_id
            and c.status = 'queued' and c.direction = 'outbound'
            -- next_dial_at <= now(), as a bound on (org_id, next_dial_at): only calls_dial_queue_idx serves it,
            -- so the planner cannot walk every org's due calls in calls_due_idx (next_dial_at) instead, as it
            -- did when its statistics saw few due calls.
            and (c.org_id, c.next_dial_at) <= (q.org_id, pg_catalog.now())
            and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
            and c.dial_started_at is null
            and c.id <> all (skipped)
            and pg_catalog.jsonb_build_array(c.org_id, c.bot_id, c.callee_time_zone) <> all (waiting_groups)
          order by c.next_dial_at, c.created_at, c.id
          limit max_calls - pg_catalog.cardinality(handed_out)
        ) d
        where q.org_id is not null and q.org_id <> all (busy_orgs)
      ) r
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

-- Latest definition: 20261123011800_fair_after_call.sql; only how the due calls are read (each org's oldest,
-- at most the hand-out's size, deeper when held calls were skipped) is new. The due test is repeated where
-- the row is locked, so a call another pass took meanwhile is rechecked there and skipped.
create or replace function private.calls_needing_analysis(max_calls integer)
returns table (
  call_id uuid,
  org_id uuid,
  bot_id uuid,
  summary text,
  sentiment public.call_sentiment,
  transcript jsonb,
  language text
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- How many of each org's oldest due calls are read and ranked.
  depth integer := max_calls;
  queued uuid[];
  -- Some org had more due calls than were read.
  cut boolean;
  picked uuid[];
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  loop
    -- A call's turn is its place in its org's due queue (oldest first); within a turn the org served longest
    -- ago (after_call_turns) goes first, then the oldest call. The orgs are probed in calls_analysis_queue_idx,
    -- ordered by its whole key so that the planner takes it (not calls_org_id_idx, which walks an org's other
    -- calls).
    with recursive queue_orgs as (
      (select c.org_id from public.calls c
       where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
         and c.has_transcript and c.analysis_attempts < 5
       order by c.org_id, c.ended_at, c.id
       limit 1)
      union all
      select (select c.org_id from public.calls c
              where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
                and c.has_transcript and c.analysis_attempts < 5
                and c.org_id > q.org_id
              order by c.org_id, c.ended_at, c.id
              limit 1)
      from queue_orgs q
      where q.org_id is not null
    ),
    ranked as (
      select d.id, d.ended_at, t.served_at,
        pg_catalog.row_number() over (partition by d.org_id order by d.ended_at, d.id) as turn
      from queue_orgs q
      cross join lateral (
        select c.id, c.org_id, c.ended_at
        from public.calls c
        where c.org_id = q.org_id
          and c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
          and c.has_transcript and c.analysis_attempts < 5
          -- ended_at within 7 days, as a bound on (org_id, ended_at): only calls_analysis_queue_idx serves it,
          -- so the planner cannot walk every org's calls in calls_awaiting_analysis_idx (ended_at) instead.
          and (c.org_id, c.ended_at) > (q.org_id, pg_catalog.now() - interval '7 days')
          and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
        order by c.ended_at, c.id
        limit depth
      ) d
      left join private.after_call_turns t on t.kind = 'analysis' and t.org_id = d.org_id
      where q.org_id is not null
    )
    select coalesce(array_agg(r.id order by r.turn, r.served_at nulls first, r.ended_at, r.id), '{}'),
      coalesce(bool_or(r.turn = depth), false)
    into queued, cut
    from ranked r;

    picked := array(
      select c.id
      from pg_catalog.unnest(queued) with ordinality u(id, place)
      join public.calls c on c.id = u.id
      where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
        and c.has_transcript and c.analysis_attempts < 5
        and c.ended_at > pg_catalog.now() - interval '7 days'
        -- A dispatcher that took it and died gives it back after 10 minutes.
        and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
      order by u.place
      limit max_calls
      for update of c skip locked
    );
    exit when pg_catalog.cardinality(picked) = max_calls or not cut;
    depth := depth * 2;
  end loop;

  return query
  with marked as (
    update public.calls c set analysis_requested_at = pg_catalog.now(), analysis_attempts = c.analysis_attempts + 1
    where c.id = any (picked)
    returning c.id, c.org_id, c.bot_id, c.summary, c.sentiment
  ),
  served as (
    insert into private.after_call_turns as t (kind, org_id, served_at)
    select 'analysis', o.org_id, pg_catalog.clock_timestamp() from (select distinct m.org_id from marked m) o
    order by o.org_id
    on conflict on constraint after_call_turns_pkey do update set served_at = excluded.served_at
  )
  select m.id, m.org_id, m.bot_id, m.summary, m.sentiment,
    (select jsonb_agg(jsonb_build_object('speaker', t.speaker, 'text', t.text) order by t.seq)
     from public.call_transcript_segments t where t.call_id = m.id),
    b.language
  from marked m
  left join public.bots b on b.id = m.bot_id and b.org_id = m.org_id
  order by m.id;
end;
$$;

-- Latest definition: 20261123011800_fair_after_call.sql; only how the due calls are read is new, as in
-- calls_needing_analysis.
create or replace function private.calls_needing_recording(max_calls integer)
returns table (call_id uuid, org_id uuid, recording_url text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  depth integer := max_calls;
  queued uuid[];
  cut boolean;
  picked uuid[];
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  loop
    with recursive queue_orgs as (
      (select c.org_id from public.calls c
       where c.recording_url is not null and c.recording_path is null
       order by c.org_id, c.ended_at, c.id
       limit 1)
      union all
      select (select c.org_id from public.calls c
              where c.recording_url is not null and c.recording_path is null
                and c.org_id > q.org_id
              order by c.org_id, c.ended_at, c.id
              limit 1)
      from queue_orgs q
      where q.org_id is not null
    ),
    ranked as (
      select d.id, d.ended_at, t.served_at,
        pg_catalog.row_number() over (partition by d.org_id order by d.ended_at, d.id) as turn
      from queue_orgs q
      cross join lateral (
        select c.id, c.org_id, c.ended_at
        from public.calls c
        where c.org_id = q.org_id
          and c.recording_url is not null and c.recording_path is null
          -- As in calls_needing_analysis: not calls_needing_recording_idx (ended_at), which walks every org's calls.
          and (c.org_id, c.ended_at) > (q.org_id, pg_catalog.now() - interval '7 days')
          -- Once every 10 minutes, 5 times at most: the provider's link expires. A subquery per call read, not a
          -- join: joined, the planner hashed every due call of the org to sort them after.
          and coalesce((
            select r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5
            from private.call_recording_requests r
            where r.call_id = c.id
          ), true)
        order by c.ended_at, c.id
        limit depth
      ) d
      left join private.after_call_turns t on t.kind = 'recording' and t.org_id = d.org_id
      where q.org_id is not null
    )
    select coalesce(array_agg(r.id order by r.turn, r.served_at nulls first, r.ended_at, r.id), '{}'),
      coalesce(bool_or(r.turn = depth), false)
    into queued, cut
    from ranked r;

    picked := array(
      select c.id
      from pg_catalog.unnest(queued) with ordinality u(id, place)
      join public.calls c on c.id = u.id
      where c.recording_url is not null and c.recording_path is null
        and c.ended_at > pg_catalog.now() - interval '7 days'
      order by u.place
      limit max_calls
      for update of c skip locked
    );
    exit when pg_catalog.cardinality(picked) = max_calls or not cut;
    depth := depth * 2;
  end loop;

  return query
  with marked as (
    insert into private.call_recording_requests as r (call_id, requested_at)
    select u.id, pg_catalog.now() from pg_catalog.unnest(picked) u(id)
    on conflict on constraint call_recording_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
      where r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5
    returning r.call_id
  ),
  served as (
    insert into private.after_call_turns as t (kind, org_id, served_at)
    select 'recording', o.org_id, pg_catalog.clock_timestamp()
    from (select distinct c.org_id from marked m join public.calls c on c.id = m.call_id) o
    order by o.org_id
    on conflict on constraint after_call_turns_pkey do update set served_at = excluded.served_at
  )
  select c.id, c.org_id, c.recording_url from marked m join public.calls c on c.id = m.call_id
  order by c.id;
end;
$$;
