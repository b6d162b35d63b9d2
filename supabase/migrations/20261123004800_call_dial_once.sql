-- Outbound calls are dialled at most once per attempt (on top of
-- 20261123001210_call_operations.sql), and live transcript lines without a
-- start time are appended instead of overwriting each other.
--
-- Dialling at most once. Until now a claimed call whose dispatcher died after
-- Vapi accepted it (a crash, the function's wall-clock limit, a database error
-- while recording the result) came back when its lease ran out and was
-- dialled again: two calls to the customer, two bills. Now:
-- * claim_due_calls stamps the attempt it hands out (dial_started_at, with
--   the assistant and phone number it is dialled with in dial_target) before
--   the provider is asked, and record_dial_result clears the stamp once the
--   outcome is known (ringing, a retry, failed, canceled);
-- * a queued call still stamped has a dial whose outcome is unknown: it is
--   never handed out for dialling again. private.claim_dial_lookups hands it
--   out for a lookup at the provider instead (Vapi: GET /call, matching our
--   call id in assistantOverrides.metadata): found, it is recorded as dialled
--   (record_dial_result with the provider's id); not placed, as a retryable
--   failure of that attempt (the usual schedule, calling hours, campaign
--   cancelation); a lookup that cannot answer is recorded with
--   private.record_dial_unknown and tried again later;
-- * a dial failure that may have placed the call (a timeout, a gateway 5xx)
--   is recorded with record_dial_unknown too: looked up first, never simply
--   dialled again;
-- * after 5 lookups without an answer the call fails with
--   `dial-failed: outcome unknown: <why>` rather than being dialled again;
-- * an admin cannot cancel a call (nor a campaign its call) whose dial
--   outcome is unknown, as while it is being dialled.
-- Vapi documents no idempotency key for POST /call, so none is sent.
--
-- Transcripts: Vapi's live `transcript` messages carry no start time; the
-- adapter derives one from the call's start (or creation) and the message's
-- time, and marks the segment `untimed: true` (start_ms 0, a placeholder)
-- when it cannot. Untimed segments are appended in arrival order, never
-- matched on (speaker, start_ms): they all had start_ms 0 and overwrote each
-- other. A re-delivered identical message is still a duplicate event (its
-- event id is the body's hash) and writes nothing.

-- ---------------------------------------------------------------------------
-- The state of a dial attempt
-- ---------------------------------------------------------------------------

alter table public.calls
  add column dial_started_at timestamptz,
  add column dial_target jsonb constraint calls_dial_target_object check (jsonb_typeof(dial_target) = 'object'),
  add column dial_lookups integer not null default 0 constraint calls_dial_lookups check (dial_lookups >= 0);
comment on column public.calls.dial_started_at is 'When the current dial attempt was handed to a dispatcher; set until its outcome is recorded. A queued call with it set may already be ringing: it is looked up at the provider, never dialled again.';
comment on column public.calls.dial_target is 'What the current dial attempt dials with: { assistant_id, phone_number_id }, for looking the call up at the provider.';
comment on column public.calls.dial_lookups is 'Lookups at the provider of the current attempt''s unknown outcome (5 at most, then the call fails).';

-- How many lookups of an unknown dial outcome before the call fails.
create function private.max_dial_lookups()
returns integer
language sql
immutable
security invoker
set search_path = ''
as $$
  select 5;
$$;

-- Latest definition: 20261123001210_call_operations.sql; only the skipping
-- of calls whose dial outcome is unknown (dial_started_at) and the stamping
-- of dial_started_at, dial_target and dial_lookups are new.
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
begin
  if max_calls is null or max_calls not between 1 and 500 then
    raise exception 'max_calls must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'lease_seconds must be between 5 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with due as (
    select c.id
    from public.calls c
    where c.status = 'queued' and c.direction = 'outbound'
      and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
      -- An attempt whose outcome is unknown is looked up (claim_dial_lookups), never dialled again.
      and c.dial_started_at is null
    order by c.next_dial_at, c.created_at
    limit max_calls
    for update of c skip locked
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
      end as problem
    from due
    join public.calls c on c.id = due.id
    left join public.bots b on b.id = c.bot_id and b.org_id = c.org_id
    left join public.call_providers p on p.org_id = c.org_id and p.provider = coalesce(c.provider, 'vapi')
  ),
  claimed as (
    update public.calls c set
      dial_attempts = c.dial_attempts + case when k.problem is null then 1 else 0 end,
      dial_lease_until = case when k.problem is null then pg_catalog.now() + pg_catalog.make_interval(secs => lease_seconds) end,
      status = case when k.problem is null then 'queued' else 'failed' end::public.call_status,
      ended_reason = case when k.problem is null then c.ended_reason else left('dial-failed: ' || k.problem, 200) end,
      last_dial_error = case when k.problem is null then c.last_dial_error else k.problem end,
      dial_started_at = case when k.problem is null then pg_catalog.now() end,
      dial_target = case when k.problem is null
        then pg_catalog.jsonb_build_object('assistant_id', k.assistant, 'phone_number_id', k.phone_number) end,
      dial_lookups = 0
    from checked k
    where c.id = k.id
    returning c.id, c.org_id, c.bot_id, c.to_number, c.provider, c.dial_attempts, k.assistant, k.phone_number, k.problem
  )
  select cl.id, cl.org_id, cl.bot_id, cl.to_number, coalesce(cl.provider, 'vapi'), cl.assistant, cl.phone_number, cl.dial_attempts
  from claimed cl
  where cl.problem is null
  order by cl.id;
end;
$$;
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) and returns what to dial with the attempt number, stamping the attempt (dial_started_at) until its outcome is recorded; a call whose last attempt has an unknown outcome is never handed out (see claim_dial_lookups); calls that can no longer be dialled fail here with the reason. Service role.';

-- Latest definition: 20261123001210_call_operations.sql; only the clearing
-- of dial_started_at, dial_target and dial_lookups (the attempt's outcome is
-- now known) is new.
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
      dial_started_at = null, dial_target = null, dial_lookups = 0
    where c.id = target.id
    returning * into target;
    return jsonb_build_object('outcome', 'dialled', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  select k.status = 'canceled' into campaign_canceled
  from public.call_campaigns k where k.id = target.campaign_id and k.org_id = target.org_id;
  if coalesce(campaign_canceled, false) then
    update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user', last_dial_error = left(reason, 1000),
      dial_started_at = null, dial_target = null, dial_lookups = 0
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
        dial_started_at = null, dial_target = null, dial_lookups = 0
      where c.id = target.id
      returning * into target;
      return jsonb_build_object('outcome', 'retry', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
        'next_dial_at', target.next_dial_at);
    end if;
  end if;

  update public.calls c set status = 'failed', ended_reason = left('dial-failed: ' || reason, 200), last_dial_error = left(reason, 1000),
    dial_started_at = null, dial_target = null, dial_lookups = 0
  where c.id = target.id
  returning * into target;
  return jsonb_build_object('outcome', 'failed', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
    'ended_reason', target.ended_reason);
end;
$$;
comment on function private.record_dial_result(uuid, integer, text, text, boolean, integer) is 'Records the known outcome of one dial attempt: provider call id -> ringing; a retryable failure (the provider did not take the call) before the 5th attempt -> queued again after 30 s, 2 min, 10 min, 30 min (or Retry-After, at most a day; moved into calling hours); else failed (dial-failed: <error>). An outcome that may have placed the call goes to record_dial_unknown instead. A stale attempt changes nothing. {outcome: dialled|retry|failed|canceled|stale|gone, ...}. Service role.';

-- Locks and returns queued calls whose last dial attempt has an unknown
-- outcome and is due for a lookup at the provider (its dispatcher died or
-- its lease ran out, or record_dial_unknown scheduled one), oldest first,
-- leases them and counts the lookup. A call already looked up
-- max_dial_lookups() times without an answer fails here instead (ended
-- `dial-failed: outcome unknown: ...`, call.ended): it is never dialled
-- again. Returns what the attempt was dialled with and when it started, for
-- the provider's call list.
create function private.claim_dial_lookups(max_calls integer, lease_seconds integer default 60)
returns table (
  call_id uuid,
  org_id uuid,
  to_number text,
  provider text,
  assistant_id text,
  phone_number_id text,
  attempt integer,
  dial_started_at timestamptz,
  lookup integer
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  max_lookups constant integer := private.max_dial_lookups();
begin
  if max_calls is null or max_calls not between 1 and 500 then
    raise exception 'max_calls must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'lease_seconds must be between 5 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with due as (
    select c.id
    from public.calls c
    where c.status = 'queued' and c.direction = 'outbound'
      and c.dial_started_at is not null
      and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
    order by c.next_dial_at, c.created_at
    limit max_calls
    for update of c skip locked
  ),
  claimed as (
    update public.calls c set
      dial_lookups = c.dial_lookups + case when c.dial_lookups < max_lookups then 1 else 0 end,
      dial_lease_until = case when c.dial_lookups < max_lookups
        then pg_catalog.now() + pg_catalog.make_interval(secs => lease_seconds) end,
      status = case when c.dial_lookups < max_lookups then 'queued' else 'failed' end::public.call_status,
      ended_reason = case when c.dial_lookups < max_lookups then c.ended_reason
        else pg_catalog.left('dial-failed: outcome unknown: ' || coalesce(c.last_dial_error, 'no lookup result was reported'), 200) end,
      last_dial_error = case when c.dial_lookups < max_lookups or c.last_dial_error is not null then c.last_dial_error
        else 'no lookup result was reported' end
    from due
    where c.id = due.id
    returning c.id, c.org_id, c.to_number, c.provider, c.dial_target, c.dial_attempts, c.dial_started_at, c.dial_lookups, c.status
  )
  select cl.id, cl.org_id, cl.to_number, coalesce(cl.provider, 'vapi'),
    cl.dial_target ->> 'assistant_id', cl.dial_target ->> 'phone_number_id', cl.dial_attempts, cl.dial_started_at, cl.dial_lookups
  from claimed cl
  where cl.status = 'queued'
  order by cl.id;
end;
$$;
comment on function private.claim_dial_lookups(integer, integer) is 'Leases up to max_calls queued calls whose last dial attempt has an unknown outcome, for a lookup at the provider (found: record_dial_result with its id; not placed: record_dial_result as a retryable failure; no answer: record_dial_unknown); the 6th lookup fails the call (dial-failed: outcome unknown: ...) instead of dialling again. Service role.';

-- The outcome of a dial attempt is unknown: the provider may have placed the
-- call (a timeout, a dropped connection, a gateway 5xx) or a lookup could not
-- tell. The call stays queued and stamped, never to be dialled again before
-- a lookup says it was not placed; the next lookup is due after
-- retry_after_seconds (at least 30 s, at most a day; the dispatcher asks 2
-- minutes after a dial) or, after a failed lookup, the dial backoff (30 s,
-- 2 min, 10 min, 30 min). Lookups call nobody, so calling hours do not apply.
-- Once max_dial_lookups() lookups failed, the call fails with
-- `dial-failed: outcome unknown: <error>`.
create function private.record_dial_unknown(call_id uuid, attempt integer, error text, retry_after_seconds integer default null)
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
begin
  select * into target from public.calls c where c.id = record_dial_unknown.call_id for update;
  if not found then
    return pg_catalog.jsonb_build_object('outcome', 'gone', 'call_id', record_dial_unknown.call_id);
  end if;
  if target.status <> 'queued' or target.dial_started_at is null
    or target.dial_attempts is distinct from record_dial_unknown.attempt then
    return pg_catalog.jsonb_build_object('outcome', 'stale', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  if target.dial_lookups >= private.max_dial_lookups() then
    update public.calls c set status = 'failed', ended_reason = pg_catalog.left('dial-failed: outcome unknown: ' || reason, 200),
      last_dial_error = pg_catalog.left(reason, 1000)
    where c.id = target.id
    returning * into target;
    return pg_catalog.jsonb_build_object('outcome', 'failed', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
      'ended_reason', target.ended_reason);
  end if;

  delay_seconds := greatest(
    delays[least(greatest(target.dial_lookups, 1), pg_catalog.cardinality(delays))],
    least(coalesce(retry_after_seconds, 0), 86400));
  update public.calls c set next_dial_at = pg_catalog.now() + pg_catalog.make_interval(secs => delay_seconds),
    dial_lease_until = null, last_dial_error = pg_catalog.left(reason, 1000)
  where c.id = target.id
  returning * into target;
  return pg_catalog.jsonb_build_object('outcome', 'unknown', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
    'lookups', target.dial_lookups, 'next_lookup_at', target.next_dial_at);
end;
$$;
comment on function private.record_dial_unknown(uuid, integer, text, integer) is 'Records that the outcome of a dial attempt is unknown (it may have placed the call): the call stays queued, is never dialled again before a lookup at the provider, and is looked up after retry_after_seconds or the backoff; after 5 unanswered lookups it fails (dial-failed: outcome unknown: <error>). {outcome: unknown|failed|stale|gone, ...}. Service role.';

-- Latest definition: 20261123001210_call_operations.sql; only the refusal
-- while a dial attempt's outcome is unknown (dial_started_at) is new.
create or replace function private.cancel_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls := private.manageable_call(cancel_call.call_id);
begin
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
comment on function public.cancel_call(uuid) is 'Cancels a queued call (ended_reason canceled-by-user); 23514 for any other status, while the dispatcher is dialling it, or while a dial''s outcome is being checked with the provider. Admins (calls.manage).';

-- Latest definition: 20261123001210_call_operations.sql; only leaving alone
-- calls whose dial outcome is unknown (dial_started_at) is new.
create or replace function private.cancel_call_campaign(campaign_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  campaign public.call_campaigns;
  canceled integer;
begin
  select * into campaign from public.call_campaigns k where k.id = cancel_call_campaign.campaign_id for update;
  if not found or not (campaign.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'call campaign not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(campaign.org_id, 'calls.manage');
  if campaign.status <> 'canceled' then
    update public.call_campaigns k set status = 'canceled', canceled_at = pg_catalog.now() where k.id = campaign.id;
  end if;
  -- Calls being dialled right now, or whose dial's outcome is unknown, are
  -- left to the dispatcher; a retry of theirs is canceled by
  -- record_dial_result (the campaign is canceled).
  update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user'
  where c.campaign_id = campaign.id and c.org_id = campaign.org_id and c.status = 'queued'
    and (c.dial_lease_until is null or c.dial_lease_until <= pg_catalog.now())
    and c.dial_started_at is null;
  get diagnostics canceled = row_count;
  return canceled;
end;
$$;

revoke execute on function
  private.max_dial_lookups(),
  private.claim_dial_lookups(integer, integer),
  private.record_dial_unknown(uuid, integer, text, integer)
from public, anon, authenticated;
grant execute on function
  private.claim_dial_lookups(integer, integer),
  private.record_dial_unknown(uuid, integer, text, integer)
to service_role;

-- ---------------------------------------------------------------------------
-- Live transcript lines without a start time
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001900_call_event_batches.sql; only the
-- `untimed` segments (the provider gave no start time: start_ms is a
-- placeholder) are new: they are never matched to a stored segment by
-- (speaker, start_ms), so they are appended in arrival order instead of
-- overwriting each other. A re-delivered message is a duplicate event and
-- writes nothing.
create or replace function private.write_call_transcript(target_call public.calls, segments jsonb, mode text)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  written integer;
begin
  if segments is null or jsonb_typeof(segments) <> 'array' or jsonb_array_length(segments) = 0 then
    return 0;
  end if;
  if coalesce(mode, 'append') = 'replace' then
    with
    incoming as (
      select distinct on (p.seq) p.*
      from (
        select coalesce((s.value ->> 'seq')::integer, (s.ordinality - 1)::integer) as seq, s.ordinality,
          s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
          (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
          (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms
        from jsonb_array_elements(segments) with ordinality s
      ) p
      order by p.seq, p.ordinality desc
    ),
    dropped as (
      delete from public.call_transcript_segments t
      where t.call_id = target_call.id and not exists (select 1 from incoming i where i.seq = t.seq)
    )
    insert into public.call_transcript_segments as t (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
    select target_call.org_id, target_call.id, i.seq, i.speaker, i.text, i.start_ms, i.end_ms, i.stt_ms, i.llm_ms, i.tts_ms
    from incoming i
    order by i.seq
    on conflict on constraint call_transcript_segments_position do update
      set speaker = excluded.speaker, text = excluded.text, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
          stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms
      where (t.speaker, t.text, t.start_ms, t.end_ms, t.stt_ms, t.llm_ms, t.tts_ms)
        is distinct from (excluded.speaker, excluded.text, excluded.start_ms, excluded.end_ms, excluded.stt_ms, excluded.llm_ms, excluded.tts_ms);
    get diagnostics written = row_count;
    update public.calls c set transcript_final = true where c.id = target_call.id and not c.transcript_final;
    return written;
  end if;
  if target_call.transcript_final then
    return 0;
  end if;

  insert into public.call_transcript_segments as t (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
  select distinct on (k.seq) target_call.org_id, target_call.id, k.seq, k.speaker, k.text, k.start_ms, k.end_ms, k.stt_ms, k.llm_ms, k.tts_ms
  from (
    select p.*,
      coalesce(p.given_seq, p.matched_seq,
        base.last_seq + (row_number() over (partition by p.given_seq is null and p.matched_seq is null order by p.ordinality))::integer
      ) as seq
    from (
      select (s.value ->> 'seq')::integer as given_seq, s.ordinality,
        s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
        (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
        (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms,
        (select min(x.seq) from public.call_transcript_segments x
         where s.value ->> 'seq' is null and x.call_id = target_call.id
           -- A segment without a start time of its own is a new line, appended in arrival order.
           and (s.value -> 'untimed') is distinct from 'true'::jsonb
           and x.speaker = s.value ->> 'speaker' and x.start_ms = (s.value ->> 'start_ms')::integer) as matched_seq
      from jsonb_array_elements(segments) with ordinality s
    ) p
    cross join (select coalesce(max(x.seq), -1) as last_seq from public.call_transcript_segments x where x.call_id = target_call.id) base
  ) k
  order by k.seq, k.ordinality desc
  on conflict on constraint call_transcript_segments_position do update
    set speaker = excluded.speaker, text = excluded.text, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
        stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms
    -- An identical re-delivery writes (and broadcasts) nothing.
    where (t.speaker, t.text, t.start_ms, t.end_ms, t.stt_ms, t.llm_ms, t.tts_ms)
      is distinct from (excluded.speaker, excluded.text, excluded.start_ms, excluded.end_ms, excluded.stt_ms, excluded.llm_ms, excluded.tts_ms);
  get diagnostics written = row_count;
  return written;
end;
$$;
