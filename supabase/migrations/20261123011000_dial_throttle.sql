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
--   `dial-failed: outcome unknown: throttled ...`, as an unanswered lookup ends); 24 h spans a whole
--   calling day and nights, and campaigns have no end date to bound it by;
-- * a call of a canceled campaign given back undialled is canceled (canceled-by-user), as record_dial_result
--   cancels its retry; a lookup claim is not (the attempt may have placed the call).
-- Locks: the given-back calls only (for update, in id order), as record_dial_result locks its call; nothing
-- else. Two passes never hold the same claim; a claim that moved on (another attempt or lookup, its lease
-- taken over, no longer queued) is stale and left alone.

alter table public.calls
  add column dial_throttled_since timestamptz;
comment on column public.calls.dial_throttled_since is 'When the provider began throttling this call''s dials (given back without an attempt: release_dial_claims); cleared when an attempt gets a real answer. Past dial_throttle_limit() the call fails.';

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
comment on function private.dial_throttle_limit() is 'How long a call may be held back by the provider''s throttling before it fails.';

-- Gives back claims a dispatcher made but could not use because the provider is throttling: dial claims
-- (lookup 0) not dialled or answered 429/503, and lookup claims (their lookup number) not sent or
-- throttled. One row per call given: released (due again after the wait, no attempt or lookup counted),
-- failed (throttled past dial_throttle_limit()), canceled (its campaign was canceled), stale (the claim
-- moved on or is no longer this attempt's) or gone.
create function private.release_dial_claims(
  call_ids uuid[], attempts integer[], lookups integer[], reason text, retry_after_seconds integer default null
)
returns table (call_id uuid, outcome text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  wait_seconds constant integer := least(
    greatest(coalesce(retry_after_seconds, private.dial_throttle_default_seconds()), 1),
    private.dial_throttle_max_wait_seconds());
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
comment on function private.release_dial_claims(uuid[], integer[], integer[], text, integer) is 'Gives back dial claims (lookup 0: the attempt is undone) and lookup claims (the lookup is not counted) a dispatcher could not use because the provider throttled it (429/503): due again after retry_after_seconds (default 30, 1 to 3600); a call throttled for over 24 hours fails (dial-failed: throttled by the provider ...), an undialled call of a canceled campaign is canceled. Rows (call_id, outcome released|failed|canceled|stale|gone). Service role.';

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
  private.release_dial_claims(uuid[], integer[], integer[], text, integer)
from public, anon, authenticated;
grant execute on function private.release_dial_claims(uuid[], integer[], integer[], text, integer) to service_role;
