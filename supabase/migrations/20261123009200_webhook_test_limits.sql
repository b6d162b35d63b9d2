-- Test sends and replays are limited: each queued a delivery (and a test an
-- event) with no limit, 5,000 test sends to one endpoint in 1.9 s, each
-- delivery attempted up to 10 times, so the platform reflected traffic to any
-- public host and events and webhook_deliveries grew without a cap.
--
-- * Per org, from the rate-limit buckets private.take_rate_limit keeps
--   (60 s sliding window, shared by every function instance): 10 test sends
--   and 60 replays a minute. A test is a dashboard button; a replay is a
--   repair after a receiver's outage, a few dozen at a time. The limit is in
--   SQL so every caller of these functions (granted to authenticated) is
--   limited, not only the webhooks function.
-- * Per endpoint, refused while 100 or more of its deliveries are queued
--   (pending or sending): a receiver that far behind is down or slow, and more
--   manual sends would only wait behind the backlog and be retried with it.
--
-- Refusals raise PT429 (detail: the seconds to wait) and PT409; the webhooks
-- function answers 429 rate_limited with Retry-After and 409
-- endpoint_backlog. A refused request changes nothing: its transaction,
-- the bucket's hit included, is rolled back.

-- An endpoint's queue is counted by webhook_deliveries_queued_endpoint_idx, without reading its whole
-- history; built without blocking deliveries' writes in 20261123009720.

create function private.allow_manual_webhook_send(endpoint public.webhook_endpoints, kind text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  tests_per_minute constant integer := 10;
  replays_per_minute constant integer := 60;
  max_queued constant integer := 100;
  per_minute integer := case allow_manual_webhook_send.kind
    when 'test' then tests_per_minute
    when 'replay' then replays_per_minute
  end;
  queued integer;
  hit record;
begin
  if per_minute is null then
    raise exception 'kind is test or replay' using errcode = 'invalid_parameter_value';
  end if;
  -- The caller holds the endpoint's row lock (managed_webhook_endpoint), so
  -- concurrent sends to one endpoint count one after another.
  select count(*) into queued from (
    select 1 from public.webhook_deliveries d
    where d.endpoint_id = (allow_manual_webhook_send.endpoint).id and d.status in ('pending', 'sending')
    limit max_queued
  ) q;
  if queued >= max_queued then
    raise exception 'the endpoint already has % or more deliveries queued; send again once they are delivered', max_queued
      using errcode = 'PT409';
  end if;
  select * into hit from private.take_rate_limit(
    'webhook_' || allow_manual_webhook_send.kind || ':' || (allow_manual_webhook_send.endpoint).org_id,
    per_minute, 60);
  if not hit.allowed then
    raise exception 'at most % webhook % sends a minute per organization; try again in % seconds',
      per_minute, allow_manual_webhook_send.kind, hit.retry_after_seconds
      using errcode = 'PT429', detail = hit.retry_after_seconds::text;
  end if;
end;
$$;
revoke execute on function private.allow_manual_webhook_send(public.webhook_endpoints, text) from public;
comment on function private.allow_manual_webhook_send(public.webhook_endpoints, text) is 'Takes one test or replay send from the endpoint''s org''s bucket (10 tests or 60 replays a minute). PT409 when the endpoint has 100 or more deliveries queued; PT429 (detail: seconds to wait) when the bucket is spent.';

-- Latest definition: 20261123000800_webhooks.sql; only the limits are new.
create or replace function private.send_test_webhook(endpoint_id uuid)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints := private.managed_webhook_endpoint(send_test_webhook.endpoint_id);
  event_id uuid;
  test_delivery_id uuid;
begin
  if not endpoint.enabled then
    raise exception 'the endpoint is disabled (%); enable it first', endpoint.disabled_reason
      using errcode = 'invalid_parameter_value';
  end if;
  perform private.allow_manual_webhook_send(endpoint, 'test');
  event_id := private.emit_event(endpoint.org_id, 'webhook.test',
    jsonb_build_object('endpoint_id', endpoint.id, 'message', 'A test event sent from the dashboard.'));
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
  values (endpoint.org_id, endpoint.id, event_id)
  returning id into test_delivery_id;
  return test_delivery_id;
end;
$$;
comment on function private.send_test_webhook(uuid) is 'Queues a webhook.test event''s delivery to the endpoint (webhooks.manage). P0002 unknown endpoint or another org''s; 42501 without webhooks.manage; 22023 when the endpoint is disabled; PT409 when it has 100 or more deliveries queued; PT429 (detail: seconds to wait) past 10 a minute per org.';

-- Latest definition: 20261123006800_webhook_repoint_and_invoice_events.sql;
-- only the limits are new.
create or replace function private.replay_webhook_delivery(delivery_id uuid)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  original public.webhook_deliveries;
  endpoint public.webhook_endpoints;
  event_type text;
  read_permission text;
  reader_role public.org_role;
  readers text;
  a_reader text;
  replay_id uuid;
begin
  select * into original from public.webhook_deliveries d where d.id = replay_webhook_delivery.delivery_id;
  if not found then
    raise exception 'webhook delivery not found' using errcode = 'no_data_found';
  end if;
  endpoint := private.managed_webhook_endpoint(original.endpoint_id);
  -- An event readable only beyond webhooks.read is replayed only by someone
  -- who may read it, and only to an endpoint set up by such a reader
  -- (20261123004100): a replay skips the muting rule and is sent wherever
  -- the endpoint now points.
  select ev.type into event_type from public.events ev where ev.id = original.event_id;
  read_permission := private.event_type_read_permission(event_type);
  if read_permission is not null then
    select p.min_role into reader_role from public.role_permissions p where p.permission = read_permission;
    readers := case reader_role when 'owner' then 'owners' else reader_role || 's and owners' end;
    a_reader := case reader_role when 'owner' then 'an owner' else 'an ' || reader_role || ' or owner' end;
    if not private.has_permission(original.org_id, read_permission) then
      -- The detail is the marker callers test (owner_only_event since
      -- 20261123005500, admin_only_event since 20261123006800); the wording may change.
      raise exception 'only % may replay a delivery of an % event', readers, event_type
        using errcode = 'insufficient_privilege', detail = reader_role || '_only_event';
    end if;
    if not private.webhook_endpoint_receives(endpoint.org_id, endpoint.configured_by, event_type) then
      raise exception 'this endpoint''s URL or event filter was last set by someone who is not %, so it receives no % events; % must save it first', a_reader, event_type, a_reader
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  if not endpoint.enabled then
    raise exception 'the endpoint is disabled (%); enable it first', endpoint.disabled_reason
      using errcode = 'invalid_parameter_value';
  end if;
  perform private.allow_manual_webhook_send(endpoint, 'replay');
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, replay_of)
  values (original.org_id, original.endpoint_id, original.event_id, original.id)
  returning id into replay_id;
  return replay_id;
end;
$$;
comment on function private.replay_webhook_delivery(uuid) is 'Queues a new delivery of a delivery''s event to the same endpoint (webhooks.manage). P0002 unknown delivery or another org''s; 42501 without webhooks.manage, or with detail owner_only_event (export.*) or admin_only_event (invoice.*) when the caller may not read the event; 22023 when the endpoint is disabled or receives no events of that type; PT409 when it has 100 or more deliveries queued; PT429 (detail: seconds to wait) past 60 a minute per org.';

-- ---------------------------------------------------------------------------
-- The claim (restated from 20261123004100) takes turns per org first, then
-- per endpoint within the org. Turns per endpoint alone let an org with 20
-- endpoints take 20 turns a round: with 2 due deliveries each, older than
-- another org's, it filled a whole claim of 16, and the dispatcher
-- (functions/webhook-dispatcher/claims.ts) had its deliveries at hand and
-- nobody else's, so its workers went to that org.
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

  -- An owner-only event whose endpoint no longer passes (its URL or filter
  -- was changed by a non-owner since it was queued, or its owner was
  -- demoted or left) is canceled rather than sent (20261123004100). The
  -- claim below skips such deliveries too, in case one was locked here.
  update public.webhook_deliveries d
  set status = 'canceled', next_attempt_at = null, locked_until = null
  where d.id in (
    select x.id
    from public.webhook_deliveries x
    join public.webhook_endpoints e on e.id = x.endpoint_id
    join public.events ev on ev.id = x.event_id
    where x.status in ('pending', 'sending')
      and x.next_attempt_at <= claimed_at
      and (x.status = 'pending' or x.locked_until <= claimed_at)
      and private.event_type_read_permission(ev.type) is not null
      and not private.webhook_endpoint_receives(e.org_id, e.configured_by, ev.type)
    for update of x skip locked
  );

  return query
  with queued as (
    -- Every queued delivery that has come due, claimable or still in
    -- flight under another worker's lease; only enabled endpoints.
    select
      d.id,
      d.endpoint_id,
      e.org_id,
      d.next_attempt_at,
      (d.status = 'pending' or d.locked_until <= claimed_at) as claimable
    from public.webhook_deliveries d
    join public.webhook_endpoints e on e.id = d.endpoint_id and e.enabled
    join public.events ev on ev.id = d.event_id
    where d.status in ('pending', 'sending')
      and d.next_attempt_at <= claimed_at
      and d.attempt_count < max_attempts
      and (private.event_type_read_permission(ev.type) is null
           or private.webhook_endpoint_receives(e.org_id, e.configured_by, ev.type))
  ),
  endpoint_turns as (
    -- Round robin over an org's endpoints: an endpoint's n-th claimable
    -- delivery (oldest first) takes endpoint turn n, after the ones it
    -- already has in flight.
    select
      q.id,
      q.org_id,
      q.next_attempt_at,
      q.claimable,
      count(*) filter (where not q.claimable) over (partition by q.endpoint_id)
        + row_number() over (partition by q.endpoint_id, q.claimable order by q.next_attempt_at, q.id) as endpoint_turn
    from queued q
  ),
  turns as (
    -- Round robin over orgs, the tenants: an org's n-th claimable delivery
    -- in its endpoints' turn order takes org turn n, after the ones it
    -- already has in flight, so an org with many endpoints gets one turn
    -- per round like an org with one.
    select
      t.id,
      t.claimable,
      t.endpoint_turn,
      count(*) filter (where not t.claimable) over (partition by t.org_id)
        + row_number() over (
            partition by t.org_id, t.claimable order by t.endpoint_turn, t.next_attempt_at, t.id
          ) as org_turn
    from endpoint_turns t
  ),
  due as (
    select d.id, t.org_turn, t.endpoint_turn
    from public.webhook_deliveries d
    join turns t on t.id = d.id and t.claimable
    -- Checked again on the locked row: another worker may have claimed it since.
    where d.status in ('pending', 'sending')
      and (d.status = 'pending' or d.locked_until <= claimed_at)
    order by t.org_turn, t.endpoint_turn, d.next_attempt_at, d.id
    limit batch_size
    for update of d skip locked
  ),
  claimed as (
    update public.webhook_deliveries d
    set status = 'sending', locked_until = claimed_at + lease, attempt_count = d.attempt_count + 1
    from due
    where d.id = due.id
    returning d.id, d.attempt_count, d.endpoint_id, d.event_id, due.org_turn, due.endpoint_turn, d.next_attempt_at
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
  -- In turn order, so a batch's first requests go to as many orgs, then endpoints, as it has.
  order by c.org_turn, c.endpoint_turn, c.next_attempt_at, c.id;
end;
$$;
comment on function private.claim_webhook_deliveries(integer, interval, timestamptz) is 'Locks and returns due deliveries (skip locked, so concurrent workers never share one; round robin over orgs, then over each org''s endpoints), with the exact body and secrets to sign; ends failed a delivery whose tenth attempt was never reported; cancels an owner-only event''s delivery to an endpoint no owner set up.';
