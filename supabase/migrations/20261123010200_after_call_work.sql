-- After-call analysis: tries capped, and only calls with a transcript looked at.
--
-- 1. An ended call in the analysis set (no summary, or sentiment unknown) was handed out again every 10
--    minutes for 7 days as long as its analysis failed: a call the caller said nothing in (the rules' verdict,
--    'unknown', which save_call_analysis refuses) about 1000 times, with a model each time. The dispatcher now
--    stores such a call as neutral (functions/_shared/voice/analysis.ts), and, as recordings are
--    (calls_needing_recording), a call is handed out 5 times at most: calls.analysis_attempts counts them.
-- 2. private.request_call_dispatch (pg_cron, every 15 s) and private.calls_needing_analysis read every ended
--    call of the last 7 days in that set and looked its transcript up, row by row; a call without one never
--    left the set (125 ms a run at 50,000 such calls). calls.has_transcript is set when a call's first
--    transcript line is stored (a trigger on call_transcript_segments), and both read only calls that have
--    one and tries left, which calls_awaiting_analysis_idx (20261123010210, built concurrently) holds.
--
-- The trigger updates the call row in the transaction that writes the line: private.apply_call_event and a
-- batch (private.apply_call_events, 20261123008700) hold that row `for update` by then, so no lock is added
-- to the lock order, and neither column is audited, broadcast or read by analytics.

alter table public.calls
  add column has_transcript boolean not null default false,
  add column analysis_attempts smallint not null default 0;
comment on column public.calls.has_transcript is 'A transcript line was stored for the call (set by call_transcript_segments_mark_call, from 20261123010200; earlier calls only if ringing, in progress or awaiting analysis then).';
comment on column public.calls.analysis_attempts is 'How many times private.calls_needing_analysis handed the call out (5 at most).';

-- Bookkeeping, like analysis_requested_at: not broadcast (latest definition: 20261123001200_calls.sql).
drop trigger calls_broadcast_update on public.calls;
create trigger calls_broadcast_update after update on public.calls
  for each row
  when ((to_jsonb(old) - array['last_event_at', 'updated_at', 'dial_lease_until', 'analysis_requested_at', 'analysis_attempts', 'has_transcript'])
        is distinct from (to_jsonb(new) - array['last_event_at', 'updated_at', 'dial_lease_until', 'analysis_requested_at', 'analysis_attempts', 'has_transcript']))
  execute function private.broadcast_org_change('calls');

-- Once per statement: write_call_transcript stores an event's lines in one insert.
create function private.call_transcript_segments_mark_call()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.calls c set has_transcript = true
  where c.id in (select distinct n.call_id from new_segments n) and not c.has_transcript;
  return null;
end;
$$;
comment on function private.call_transcript_segments_mark_call() is 'Sets calls.has_transcript for the calls whose lines a statement inserted (20261123010200).';
revoke execute on function private.call_transcript_segments_mark_call() from public, anon, authenticated, service_role;

create trigger call_transcript_segments_mark_call after insert on public.call_transcript_segments
  referencing new table as new_segments
  for each statement execute function private.call_transcript_segments_mark_call();

-- Only the calls the after-call work can still take: those ended in the last 7 days awaiting an analysis (the
-- rows of calls_needing_analysis_idx), and calls still live, whose end-of-call transcript may repeat the
-- lines they have and so store none. Two statements, each served by its partial index; calls is locked by the
-- alter table above, so no line is stored meanwhile and no other transaction sees the triggers turned off.
-- They are off for the backfill only: analytics_calls_updated joins the statement's old and new rows without
-- an index (25,000 rows took 117 s on PGlite, past hosted's 2-minute statement timeout), and the row
-- triggers would move updated_at and check transitions for a column nobody reads there.
alter table public.calls disable trigger analytics_calls_updated;
alter table public.calls disable trigger calls_before_write;
alter table public.calls disable trigger calls_set_updated_at;
update public.calls c set has_transcript = true
where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
  and c.ended_at > pg_catalog.now() - interval '7 days'
  and exists (select 1 from public.call_transcript_segments t where t.call_id = c.id);
update public.calls c set has_transcript = true
where c.status in ('ringing', 'in_progress')
  and exists (select 1 from public.call_transcript_segments t where t.call_id = c.id);
alter table public.calls enable trigger analytics_calls_updated;
alter table public.calls enable trigger calls_before_write;
alter table public.calls enable trigger calls_set_updated_at;

-- Latest definition: 20261123001210_call_operations.sql; has_transcript and the cap of 5 replace the
-- transcript lookup, and each call handed out counts a try.
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
  with picked as (
    select c.id
    from public.calls c
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.has_transcript and c.analysis_attempts < 5
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- A dispatcher that took it and died gives it back after 10 minutes.
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
    order by c.ended_at
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    update public.calls c set analysis_requested_at = pg_catalog.now(), analysis_attempts = c.analysis_attempts + 1
    from picked
    where c.id = picked.id
    returning c.id, c.org_id, c.bot_id, c.summary, c.sentiment
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
comment on function private.calls_needing_analysis(integer) is 'Takes up to max_calls ended calls (last 7 days) with a transcript (has_transcript) and no summary or an unknown sentiment, each at most every 10 minutes and 5 times (skip locked), and returns their transcript as [{speaker, text}] in order and the bot''s language. Service role.';

-- Latest definition: 20261123001210_call_operations.sql; only the analysis test is new, the same as
-- calls_needing_analysis's.
create or replace function private.request_call_dispatch()
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Not configured (no functions next to this database): leave the throttle row alone.
  if (select count(*) from vault.secrets s where s.name in ('project_url', 'service_role_key')) < 2 then
    return;
  end if;
  -- Nothing to do, nothing to wake (each test is served by a partial index).
  if not exists (
    select 1 from public.calls c
    where c.status = 'queued' and c.direction = 'outbound' and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
  ) and not exists (
    select 1 from public.calls c
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.has_transcript and c.analysis_attempts < 5
      and c.ended_at > pg_catalog.now() - interval '7 days'
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
  ) and not exists (
    select 1 from public.calls c
    left join private.call_recording_requests r on r.call_id = c.id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
      and (r.call_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
  ) then
    return;
  end if;
  -- Skip locked: a long transaction placing calls must not make others wait here.
  update private.call_dispatch_requests r set last_requested_at = clock_timestamp()
  where r.id in (
    select q.id from private.call_dispatch_requests q
    where q.last_requested_at < clock_timestamp() - interval '1 second'
    for update skip locked
  );
  if not found then
    return;
  end if;
  -- Longer than a dispatch pass, so the call is not cut off mid-pass.
  perform private.invoke_edge_function('call-dispatcher', '{}'::jsonb, 30000);
end;
$$;
