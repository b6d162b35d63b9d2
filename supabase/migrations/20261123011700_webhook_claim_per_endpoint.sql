-- One org's backlog slowed every org's claim: each claim read and ranked
-- every due delivery of every org (a window over the whole queued set, each
-- row's event read for the owner-only rule) to return 20. With one endpoint
-- timing out and 100,000 deliveries pending, a claim cost 1.2-1.6 s, so the
-- platform delivered ~16 a second for all orgs (README bench: 252-300).
--
-- The claim (restated from 20261123009200) now ranks at most batch_size
-- claimable deliveries per enabled endpoint, the oldest, read through
-- webhook_deliveries_queued_endpoint_idx (20261123009720), plus a count of
-- each endpoint's in flight. An endpoint's n-th claimable delivery follows
-- its first n - 1 in both its endpoint turns and its org's turns, so none
-- past its batch_size-th could make the batch: the turns, and so the batch
-- and its order, are those the whole set gave. The owner-only cancel weighs
-- each endpoint with due work once per gated event type instead of each
-- delivery, and cancels the same deliveries. The rules (turns per org then
-- per endpoint, in flight first, enabled endpoints only, owner-only events,
-- the tenth attempt, leases, skip locked) are as they were.

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
  -- Weighed once per endpoint with due work and event type, not once per
  -- delivery: per delivery it was most of a claim's cost under a backlog
  -- (0.5-0.7 s of 1.0-1.4 s with 20,000 due), and only the deliveries of an
  -- endpoint and type that fail are read.
  update public.webhook_deliveries d
  set status = 'canceled', next_attempt_at = null, locked_until = null
  where d.id in (
    with due_endpoints as materialized (
      select e.id, e.org_id, e.configured_by
      from public.webhook_endpoints e
      where exists (
        select 1 from public.webhook_deliveries q
        where q.endpoint_id = e.id
          and q.status in ('pending', 'sending')
          and q.next_attempt_at <= claimed_at
          and (q.status = 'pending' or q.locked_until <= claimed_at)
      )
    ),
    barred as materialized (
      select e.id as endpoint_id, t.type
      from due_endpoints e
      cross join public.event_types t
      where private.event_type_read_permission(t.type) is not null
        and not private.webhook_endpoint_receives(e.org_id, e.configured_by, t.type)
    )
    select x.id
    from barred b
    join public.webhook_deliveries x on x.endpoint_id = b.endpoint_id
    join public.events ev on ev.id = x.event_id and ev.type = b.type
    where x.status in ('pending', 'sending')
      and x.next_attempt_at <= claimed_at
      and (x.status = 'pending' or x.locked_until <= claimed_at)
    for update of x skip locked
  );

  return query
  with endpoints as (
    -- Every enabled endpoint, with its deliveries in flight: due, queued and
    -- still under another worker's lease. An endpoint, then its org, takes
    -- its turns after those.
    select e.id, e.org_id, e.configured_by, f.in_flight, sum(f.in_flight) over (partition by e.org_id) as org_in_flight
    from public.webhook_endpoints e
    cross join lateral (
      select count(*) as in_flight
      from public.webhook_deliveries d
      join public.events ev on ev.id = d.event_id
      where d.endpoint_id = e.id
        and d.status = 'sending'
        and d.locked_until > claimed_at
        and d.next_attempt_at <= claimed_at
        and d.attempt_count < max_attempts
        and (private.event_type_read_permission(ev.type) is null
             or private.webhook_endpoint_receives(e.org_id, e.configured_by, ev.type))
    ) f
    where e.enabled
  ),
  candidates as (
    -- An endpoint's n-th claimable delivery comes after its first n - 1 in
    -- both turn orders, so past its oldest batch_size none can make the
    -- batch: each endpoint brings at most that many to be ranked, whatever
    -- its backlog. They are sorted before the events are read, so a backlog
    -- costs one sort of its ids, not a read of each event.
    select p.id as endpoint_id, p.org_id, p.in_flight, p.org_in_flight, c.id, c.next_attempt_at
    from endpoints p
    cross join lateral (
      select x.id, x.next_attempt_at
      from (
        select d.id, d.event_id, d.next_attempt_at
        from public.webhook_deliveries d
        where d.endpoint_id = p.id
          and d.status in ('pending', 'sending')
          and (d.status = 'pending' or d.locked_until <= claimed_at)
          and d.next_attempt_at <= claimed_at
          and d.attempt_count < max_attempts
        order by d.next_attempt_at, d.id
      ) x
      join public.events ev on ev.id = x.event_id
      where private.event_type_read_permission(ev.type) is null
        or private.webhook_endpoint_receives(p.org_id, p.configured_by, ev.type)
      order by x.next_attempt_at, x.id
      limit batch_size
    ) c
  ),
  endpoint_turns as (
    -- Round robin over an org's endpoints: an endpoint's n-th claimable
    -- delivery (oldest first) takes endpoint turn n, after the ones it
    -- already has in flight.
    select
      c.id,
      c.org_id,
      c.org_in_flight,
      c.next_attempt_at,
      c.in_flight + row_number() over (partition by c.endpoint_id order by c.next_attempt_at, c.id) as endpoint_turn
    from candidates c
  ),
  turns as (
    -- Round robin over orgs, the tenants: an org's n-th claimable delivery
    -- in its endpoints' turn order takes org turn n, after the ones it
    -- already has in flight, so an org with many endpoints gets one turn
    -- per round like an org with one.
    select
      t.id,
      t.endpoint_turn,
      t.org_in_flight
        + row_number() over (partition by t.org_id order by t.endpoint_turn, t.next_attempt_at, t.id) as org_turn
    from endpoint_turns t
  ),
  due as (
    select d.id, t.org_turn, t.endpoint_turn
    from public.webhook_deliveries d
    join turns t on t.id = d.id
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
