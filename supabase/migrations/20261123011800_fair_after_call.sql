-- After-call work fair between orgs, and a model throttle no longer spends an analysis try.
--
-- 1. Both hand-outs took the oldest-ended call first across every org, and the dispatcher takes them one at a
--    time (20 of each kind a pass at most, 20 s). During one org's campaign its backlog, all older, held every
--    other org's summaries back until it drained, and their recording copies too, whose provider links expire.
--    Now the orgs take turns: a call's turn is its place in its org's due queue (oldest first), and within a
--    turn the org served longest ago (private.after_call_turns) comes first, then the oldest call. A batch goes
--    round the orgs; so do one-call hand-outs, pass after pass and across overlapping passes (the turn in an
--    org's queue alone would not: a hand-out of one call would still be the oldest). The price: each hand-out
--    ranks every due call of its kind, not the oldest few (on PGlite, about 150 ms at 20,000 due calls of one
--    org, against 2-45 ms before); no index serves the per-org order.
-- 2. The analysis model shares the platform's OpenAI key, so a 429 caused by other orgs' traffic used up one of
--    an org's 5 tries, and after 5 it got the rules' summary. private.release_throttled_call_analysis gives a
--    throttled try back: the hand-out is not counted and the call is due again after the model's Retry-After.

-- When each org was last handed a call of each kind: the turn order within a round. No foreign key: its
-- key-share lock on the org row, taken by the hand-out after the call rows, would invert the lock order
-- (org row first) against an org's deletion, which locks the org row and then cascades to its calls. A deleted
-- org's two rows are left behind, a timestamp each.
create table private.after_call_turns (
  kind text not null check (kind in ('analysis', 'recording')),
  org_id uuid not null,
  served_at timestamptz not null,
  primary key (kind, org_id)
);
comment on table private.after_call_turns is 'When private.calls_needing_analysis / calls_needing_recording last handed a call of the org out (20261123011800): of two orgs with calls due in the same turn, the one served longer ago goes first.';
revoke all on private.after_call_turns from public, anon, authenticated, service_role;

comment on column public.calls.analysis_attempts is 'How many times private.calls_needing_analysis handed the call out (5 at most), less the tries given back because the model was throttled (private.release_throttled_call_analysis, 20261123011800).';

-- Latest definition: 20261123010200_after_call_work.sql; only the order (the orgs in turn) and the org's turn
-- recorded are new. The turn is ranked in a CTE (a window function cannot share a query level with for
-- update); the due test is repeated where the row is locked, so a call another pass took meanwhile is
-- rechecked there and skipped.
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
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with queued as (
    select c.id, c.ended_at, t.served_at,
      row_number() over (partition by c.org_id order by c.ended_at, c.id) as turn
    from public.calls c
    left join private.after_call_turns t on t.kind = 'analysis' and t.org_id = c.org_id
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.has_transcript and c.analysis_attempts < 5
      and c.ended_at > pg_catalog.now() - interval '7 days'
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
  ),
  picked as (
    select c.id
    from queued q
    join public.calls c on c.id = q.id
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.has_transcript and c.analysis_attempts < 5
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- A dispatcher that took it and died gives it back after 10 minutes.
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
    order by q.turn, q.served_at nulls first, q.ended_at, q.id
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    update public.calls c set analysis_requested_at = pg_catalog.now(), analysis_attempts = c.analysis_attempts + 1
    from picked
    where c.id = picked.id
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
comment on function private.calls_needing_analysis(integer) is 'Takes up to max_calls ended calls (last 7 days) with a transcript (has_transcript) and no summary or an unknown sentiment, each at most every 10 minutes and 5 times (skip locked), the orgs in turn (20261123011800), and returns their transcript as [{speaker, text}] in order and the bot''s language. Service role.';

-- Latest definition: 20261123008600_lock_order_and_claims.sql; only the order (the orgs in turn) and the org's
-- turn recorded are new, ranked as in calls_needing_analysis.
create or replace function private.calls_needing_recording(max_calls integer)
returns table (call_id uuid, org_id uuid, recording_url text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with queued as (
    select c.id, c.ended_at, t.served_at,
      row_number() over (partition by c.org_id order by c.ended_at, c.id) as turn
    from public.calls c
    left join private.call_recording_requests r on r.call_id = c.id
    left join private.after_call_turns t on t.kind = 'recording' and t.org_id = c.org_id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- Once every 10 minutes, 5 times at most: the provider's link expires.
      and (r.call_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
  ),
  picked as (
    select c.id, c.org_id, c.recording_url
    from queued q
    join public.calls c on c.id = q.id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
    order by q.turn, q.served_at nulls first, q.ended_at, q.id
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    insert into private.call_recording_requests as r (call_id, requested_at)
    select picked.id, pg_catalog.now() from picked
    on conflict on constraint call_recording_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
      where r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5
    returning r.call_id
  ),
  served as (
    insert into private.after_call_turns as t (kind, org_id, served_at)
    select 'recording', o.org_id, pg_catalog.clock_timestamp()
    from (select distinct p.org_id from picked p join marked m on m.call_id = p.id) o
    order by o.org_id
    on conflict on constraint after_call_turns_pkey do update set served_at = excluded.served_at
  )
  select p.id, p.org_id, p.recording_url from picked p join marked m on m.call_id = p.id
  order by p.id;
end;
$$;
comment on function private.calls_needing_recording(integer) is 'Takes up to max_calls ended calls (last 7 days) whose provider recording has no copy in Storage yet, each at most every 10 minutes and 5 times (skip locked), the orgs in turn (20261123011800). Service role.';

-- The analysis model throttled (429, or 503 with Retry-After): the try is given back. Only while the hand-out
-- holds the call (taken less than 10 minutes ago, not analysed since), and only when the call can still be
-- handed out within its 7 days: after the wait, with a minute to spare for a pass to reach it (passes come
-- every 15 s, as ANALYSIS_HANDOUT_MARGIN in functions/call-dispatcher/after-call.ts says). Otherwise false, and
-- the dispatcher falls back to the rules as on a last try.
create function private.release_throttled_call_analysis(call_id uuid, retry_after_seconds integer)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- A minute when the model named no wait; an hour at most, as a dial throttle waits.
  wait constant interval := pg_catalog.make_interval(
    secs => least(greatest(coalesce(retry_after_seconds, 60), 1), 3600));
begin
  update public.calls c
  set analysis_attempts = c.analysis_attempts - 1,
    -- Due again once the wait is over: the hand-out's 10 minutes end then.
    analysis_requested_at = pg_catalog.now() + wait - interval '10 minutes'
  where c.id = release_throttled_call_analysis.call_id
    and c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
    and c.analysis_attempts > 0
    and c.analysis_requested_at >= pg_catalog.now() - interval '10 minutes'
    and c.ended_at + interval '7 days' > pg_catalog.now() + wait + interval '1 minute';
  return found;
end;
$$;
comment on function private.release_throttled_call_analysis(uuid, integer) is 'Gives back the analysis try of a call the model throttled (20261123011800): analysis_attempts less one, due again after retry_after_seconds (default 60, 1 to 3600), while the hand-out holds it and its 7-day window leaves a minute after the wait; true when given back. Service role.';
revoke execute on function private.release_throttled_call_analysis(uuid, integer) from public, anon, authenticated;
grant execute on function private.release_throttled_call_analysis(uuid, integer) to service_role;
