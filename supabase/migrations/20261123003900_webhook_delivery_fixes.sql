-- Outbound webhook delivery fixes (20261123000800_webhooks.sql).
--
-- 1. Lock order. record_webhook_attempt locked its delivery, then the
--    endpoint; on a 410 (or the 5-day rule) it disabled the endpoint, which
--    updates every queued delivery of that endpoint. Two attempts on one
--    endpoint recorded at once could each hold their own delivery and wait
--    for the other's (40P01 on Postgres, and the attempt's report is lost).
--    Every path that locks both now takes them in one order:
--
--      the endpoint row first, then its deliveries, in id order.
--
--    * record_webhook_attempt: endpoint, then its delivery (then, through
--      disable_webhook_endpoint, the endpoint's other deliveries by id);
--    * disable_webhook_endpoint: the endpoint, then the deliveries by id;
--    * managed_webhook_endpoint (every admin operation) already locks the
--      endpoint before its caller touches deliveries (update, delete, replay,
--      test), so it is unchanged;
--    * claim_webhook_deliveries locks deliveries only, with skip locked, and
--      locks no endpoint: it never waits for a lock, so it cannot close a
--      cycle. Its updates change no foreign key, so they take no lock on the
--      endpoint either.
--    The endpoint is locked for no key update (what the updates below need):
--    an emitter's fan-out insert takes a key-share lock on it through the
--    foreign key and is not held up by a dispatcher recording an attempt.
--
-- 2. A delivery whose tenth attempt was claimed and never reported (its
--    worker died) was claimed again when its lease ran out, as attempt 11.
--    The claim now ends such a delivery failed instead: attempts stop at ten.
--
-- 3. Fairness. The claim took the oldest due deliveries whatever their
--    endpoint, so one endpoint's backlog (a receiver that hangs until the
--    timeout) filled every batch and held back every other tenant. It now
--    takes due deliveries in turns, round robin over endpoints: every
--    endpoint's oldest due delivery first, then every endpoint's second,
--    and so on, an endpoint's deliveries still in flight under another
--    worker's lease counting as turns it has had. Nothing is held back when
--    only one endpoint has work (no fixed cap per endpoint), but another
--    endpoint's due delivery no longer waits behind a backlog.
--
-- 4. Limits: an event payload is at most 256 KB (emit_event accepted 5 MB),
--    and an endpoint has at most 5 live secrets (each rotation within an
--    overlap added one: 32 after 31 rotations).

-- ---------------------------------------------------------------------------
-- 1. Lock order
-- ---------------------------------------------------------------------------

-- Disables an endpoint and cancels what it still had queued.
create or replace function private.disable_webhook_endpoint(endpoint_id uuid, reason text, disabled_at timestamptz)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- The endpoint first, even when it is already disabled (the update below
  -- would then lock nothing), then its deliveries in id order: the one lock
  -- order of every webhook path (20261123003900).
  perform 1 from public.webhook_endpoints e
  where e.id = disable_webhook_endpoint.endpoint_id
  for no key update;
  perform 1 from public.webhook_deliveries d
  where d.endpoint_id = disable_webhook_endpoint.endpoint_id and d.status in ('pending', 'sending')
  order by d.id
  for no key update;

  update public.webhook_endpoints e
  set enabled = false, disabled_reason = reason, disabled_at = disable_webhook_endpoint.disabled_at
  where e.id = disable_webhook_endpoint.endpoint_id and e.enabled;
  -- In-flight ones too: a worker's late report then comes back 'stale'.
  update public.webhook_deliveries d
  set status = 'canceled', next_attempt_at = null, locked_until = null
  where d.endpoint_id = disable_webhook_endpoint.endpoint_id and d.status in ('pending', 'sending');
end;
$$;

create or replace function private.record_webhook_attempt(
  delivery_id uuid,
  attempt_number integer,
  started_at timestamptz,
  duration_ms integer,
  status_code integer,
  error text,
  response_body text,
  retry_after_seconds integer default null,
  recorded_at timestamptz default now()
)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  delivery public.webhook_deliveries;
  endpoint public.webhook_endpoints;
  delivery_endpoint_id uuid;
  succeeded boolean := status_code between 200 and 299;
  delays integer[] := private.webhook_retry_delays();
  delay_seconds numeric;
  next_status text;
begin
  -- Lock order: the endpoint, then the delivery (20261123003900). A
  -- delivery never changes endpoint, so reading which one without a lock is
  -- safe; the delivery may be deleted meanwhile, which the locked read sees.
  select d.endpoint_id into delivery_endpoint_id
  from public.webhook_deliveries d where d.id = record_webhook_attempt.delivery_id;
  if not found then
    return 'gone';
  end if;
  select * into endpoint from public.webhook_endpoints e where e.id = delivery_endpoint_id for no key update;
  if not found then
    return 'gone';
  end if;
  select * into delivery from public.webhook_deliveries d where d.id = record_webhook_attempt.delivery_id for no key update;
  if not found then
    return 'gone';
  end if;

  insert into public.webhook_attempts (
    org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms, status_code, outcome, error, response_body
  ) values (
    delivery.org_id, delivery.id, delivery.endpoint_id, record_webhook_attempt.attempt_number, endpoint.url,
    record_webhook_attempt.started_at, greatest(record_webhook_attempt.duration_ms, 0), record_webhook_attempt.status_code,
    case when succeeded then 'succeeded' else 'failed' end,
    left(record_webhook_attempt.error, 1000), left(record_webhook_attempt.response_body, 4096)
  )
  on conflict on constraint webhook_attempts_once do nothing;
  if not found then
    -- The same attempt reported twice (a worker retrying its report).
    return 'stale';
  end if;

  -- A worker that outlived its lease reports an attempt the delivery has moved past.
  if delivery.status <> 'sending' or delivery.attempt_count <> record_webhook_attempt.attempt_number then
    return 'stale';
  end if;

  if succeeded then
    next_status := 'succeeded';
    update public.webhook_endpoints e set failing_since = null where e.id = endpoint.id and e.failing_since is not null;
  elsif status_code = 410 then
    next_status := 'failed';
    perform private.disable_webhook_endpoint(endpoint.id, 'the endpoint answered 410 Gone', recorded_at);
  else
    update public.webhook_endpoints e set failing_since = coalesce(e.failing_since, record_webhook_attempt.started_at)
    where e.id = endpoint.id
    returning e.failing_since into endpoint.failing_since;
    if endpoint.failing_since <= recorded_at - interval '5 days' then
      next_status := 'failed';
      perform private.disable_webhook_endpoint(endpoint.id, 'failing continuously for 5 days', recorded_at);
    elsif record_webhook_attempt.attempt_number >= cardinality(delays) then
      next_status := 'failed';
    else
      next_status := 'pending';
      -- ±10% jitter spreads retries of many deliveries that failed together.
      delay_seconds := delays[record_webhook_attempt.attempt_number + 1] * (0.9 + random() * 0.2);
      if status_code in (429, 503) and retry_after_seconds is not null then
        delay_seconds := greatest(delay_seconds, least(retry_after_seconds, 86400));
      end if;
    end if;
  end if;

  update public.webhook_deliveries d
  set status = next_status,
      next_attempt_at = case when next_status = 'pending' then recorded_at + make_interval(secs => delay_seconds) end,
      locked_until = null,
      last_attempt_at = record_webhook_attempt.started_at,
      last_status_code = record_webhook_attempt.status_code
  where d.id = delivery.id;
  return next_status;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2 and 3. The claim: no eleventh attempt; endpoints take turns.
-- ---------------------------------------------------------------------------

create or replace function private.claim_webhook_deliveries(
  batch_size integer default 20,
  lease interval default interval '60 seconds',
  claimed_at timestamptz default now()
)
returns table (
  delivery_id uuid,
  attempt_number integer,
  message_id text,
  endpoint_id uuid,
  url text,
  secrets text[],
  body text
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  max_attempts integer := cardinality(private.webhook_retry_delays());
begin
  if batch_size is null or batch_size not between 1 and 500 then
    raise exception 'batch_size must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;

  -- Out of attempts: the last one was claimed and never reported (its
  -- worker died) and its lease has run out. Sending stops after the tenth
  -- attempt, so the delivery ends failed rather than being tried an
  -- eleventh time. Deliveries only, skip locked: no wait, no endpoint lock.
  update public.webhook_deliveries d
  set status = 'failed', next_attempt_at = null, locked_until = null
  where d.id in (
    select x.id from public.webhook_deliveries x
    where x.status in ('pending', 'sending')
      and x.next_attempt_at <= claimed_at
      and (x.status = 'pending' or x.locked_until <= claimed_at)
      and x.attempt_count >= max_attempts
    for update of x skip locked
  );

  return query
  with queued as (
    -- Every queued delivery that has come due, claimable or still in
    -- flight under another worker's lease; only enabled endpoints.
    select
      d.id,
      d.endpoint_id,
      d.next_attempt_at,
      (d.status = 'pending' or d.locked_until <= claimed_at) as claimable
    from public.webhook_deliveries d
    join public.webhook_endpoints e on e.id = d.endpoint_id and e.enabled
    where d.status in ('pending', 'sending')
      and d.next_attempt_at <= claimed_at
      and d.attempt_count < max_attempts
  ),
  turns as (
    -- Round robin: an endpoint's n-th claimable delivery (oldest first)
    -- takes turn n, after the ones it already has in flight.
    select
      q.id,
      q.claimable,
      count(*) filter (where not q.claimable) over (partition by q.endpoint_id)
        + row_number() over (partition by q.endpoint_id, q.claimable order by q.next_attempt_at, q.id) as turn
    from queued q
  ),
  due as (
    select d.id, t.turn
    from public.webhook_deliveries d
    join turns t on t.id = d.id and t.claimable
    -- Checked again on the locked row: another worker may have claimed it since.
    where d.status in ('pending', 'sending')
      and (d.status = 'pending' or d.locked_until <= claimed_at)
    order by t.turn, d.next_attempt_at, d.id
    limit batch_size
    for update of d skip locked
  ),
  claimed as (
    update public.webhook_deliveries d
    set status = 'sending', locked_until = claimed_at + lease, attempt_count = d.attempt_count + 1
    from due
    where d.id = due.id
    returning d.id, d.attempt_count, d.endpoint_id, d.event_id, due.turn, d.next_attempt_at
  )
  select
    c.id,
    c.attempt_count,
    'msg_' || replace(c.event_id::text, '-', ''),
    c.endpoint_id,
    e.url,
    array(
      select s.secret from private.webhook_endpoint_secrets s
      where s.endpoint_id = c.endpoint_id and (s.expires_at is null or s.expires_at > claimed_at)
      order by s.id desc
    ),
    jsonb_build_object(
      'type', ev.type,
      'timestamp', to_char(ev.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'data', ev.payload
    )::text
  from claimed c
  join public.webhook_endpoints e on e.id = c.endpoint_id
  join public.events ev on ev.id = c.event_id
  -- In turn order, so a batch's first requests go to as many endpoints as it has.
  order by c.turn, c.next_attempt_at, c.id;
end;
$$;
comment on function private.claim_webhook_deliveries(integer, interval, timestamptz) is 'Locks and returns due deliveries (skip locked, so concurrent workers never share one; round robin over endpoints), with the exact body and secrets to sign; ends failed a delivery whose tenth attempt was never reported.';

-- ---------------------------------------------------------------------------
-- 4. Limits: payload size, live secrets.
-- ---------------------------------------------------------------------------

-- An event's payload is at most 256 KB (as JSON text): every attempt sends
-- it whole, to every subscribed endpoint, up to ten times, and receivers
-- (Svix among senders) cap request bodies too. Today's largest emitter
-- payload is a few KB (document.failed: a 255-character name and a reason
-- cut at 1,000), so no emitter comes near it.
create or replace function private.emit_event(org_id uuid, type text, payload jsonb)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  catalogue_schema jsonb;
  problem text;
  event_id uuid;
  payload_bytes integer;
begin
  select t.schema into catalogue_schema from public.event_types t where t.type = emit_event.type;
  if not found then
    raise exception 'unknown event type: %', emit_event.type
      using errcode = 'invalid_parameter_value', hint = 'See public.event_types.';
  end if;
  payload_bytes := octet_length(payload::text);
  if payload_bytes > 262144 then
    raise exception 'the % payload is % bytes; at most 262144 (256 KB) are accepted', emit_event.type, payload_bytes
      using errcode = 'invalid_parameter_value', hint = 'Send identifiers and let receivers fetch the rest.';
  end if;
  problem := private.json_schema_errors(catalogue_schema, coalesce(payload, 'null'::jsonb));
  if problem is not null then
    raise exception 'invalid % payload: %', emit_event.type, problem using errcode = 'invalid_parameter_value';
  end if;
  insert into public.events (org_id, type, payload)
  values (emit_event.org_id, emit_event.type, payload)
  returning id into event_id;
  return event_id;
end;
$$;

-- At most 5 live secrets per endpoint: every live secret signs every
-- message, and each rotation within an overlap added one more signature to
-- every webhook-signature header. A rotation keeps the 4 newest earlier secrets
-- for their overlap; older ones stop signing at once.
create or replace function private.rotate_webhook_secret(endpoint_id uuid, overlap interval)
returns table (secret text, previous_secret_valid_until timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints := private.managed_webhook_endpoint(rotate_webhook_secret.endpoint_id);
  new_secret text := private.new_webhook_secret();
begin
  if overlap is null or overlap < interval '0' or overlap > interval '7 days' then
    raise exception 'the overlap is 0 to 7 days' using errcode = 'invalid_parameter_value';
  end if;
  -- Older secrets keep signing until the overlap ends, so receivers can switch without a gap.
  update private.webhook_endpoint_secrets s
  set expires_at = least(coalesce(s.expires_at, 'infinity'), clock_timestamp() + overlap)
  where s.endpoint_id = endpoint.id and (s.expires_at is null or s.expires_at > clock_timestamp());
  delete from private.webhook_endpoint_secrets s where s.endpoint_id = endpoint.id and s.expires_at <= clock_timestamp();
  -- What is left is live: keep the 4 newest, so with the new one at most 5 sign.
  delete from private.webhook_endpoint_secrets s
  where s.endpoint_id = endpoint.id
    and s.id not in (
      select k.id from private.webhook_endpoint_secrets k
      where k.endpoint_id = endpoint.id
      order by k.id desc
      limit 4
    );
  insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (endpoint.id, new_secret);
  return query select new_secret, (
    select max(s.expires_at) from private.webhook_endpoint_secrets s
    where s.endpoint_id = endpoint.id and s.secret <> new_secret
  );
end;
$$;
