-- The claim (20261123011700) still read each endpoint's whole queue: its
-- oldest batch_size came from a sort of every due delivery of the endpoint
-- (webhook_deliveries_queued_endpoint_idx is on endpoint_id only), its count
-- in flight read the whole queue for the few sending, the step ending
-- tenth attempts failed read every due delivery, and the owner-only cancel
-- was planned as a join of every queued delivery with its event. With one
-- endpoint 100,000 deep and 81 others due, a claim of 16 took 130 ms on
-- PGlite (50 ms at 1,000 deep), growing with that one endpoint's backlog.
--
-- Restated from 20261123011700, the claim now reads, per endpoint, at most
-- batch_size pending and batch_size sending deliveries (plus, to count them,
-- those still in flight), through webhook_deliveries_endpoint_due_idx
-- (20261123012510: endpoint_id, status, next_attempt_at, id; queued only):
-- each status in the claim's order, merged. The endpoints come from a loose
-- scan of the queued deliveries' endpoint_id (one index descent per
-- endpoint with queued work) instead of every enabled endpoint. Turns,
-- batch and order are unchanged: an endpoint's n-th claimable delivery
-- follows its first n - 1 in both turn orders, so none past its
-- batch_size-th could make the batch, and an endpoint without queued work
-- has no turn and nothing in flight to count. The same claim takes 16 ms
-- at 100,000 deep and 15 ms at 1,000.
--
-- The step ending tenth attempts failed reads each endpoint's sending
-- deliveries only. A pending delivery is never at its tenth attempt:
-- record_webhook_attempt ends it failed instead (20261123003900), the only
-- writer that leaves one pending after an attempt.
--
-- The owner-only cancel reads the queue of an endpoint only when that
-- endpoint fails some owner-only type, planned for that endpoint's size.
--
-- The locked row is checked again for being due (next_attempt_at, attempts
-- left), as the first definition (20261123000800) did and 20261123003900's
-- snapshot lost: a delivery another pass claimed, sent and recorded pending
-- with a Retry-After of an hour after this claim's snapshot was claimed
-- again at once, hitting the throttling receiver twice.
--
-- The rest is as it was: turns per org then per endpoint, in flight first,
-- enabled endpoints only, owner-only events canceled and skipped, leases,
-- skip locked, the body and secrets returned.

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
  queued_endpoints uuid[];
  barred_endpoints uuid[];
  barred_types text[];
  barred_endpoint uuid;
begin
  if batch_size is null or batch_size not between 1 and 500 then
    raise exception 'batch_size must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;

  -- Every endpoint with a queued delivery, by a loose scan: the least
  -- endpoint_id past the last one found, one index descent each, however
  -- deep each queue. Work queued after this is left to the next claim, as
  -- if it had been queued after the claim.
  with recursive queued as (
    (
      select q.endpoint_id
      from public.webhook_deliveries q
      where q.status in ('pending', 'sending')
      order by q.endpoint_id
      limit 1
    )
    union all
    select (
      select q.endpoint_id
      from public.webhook_deliveries q
      where q.status in ('pending', 'sending')
        and q.endpoint_id > queued.endpoint_id
      order by q.endpoint_id
      limit 1
    )
    from queued
    where queued.endpoint_id is not null
  )
  select coalesce(array_agg(queued.endpoint_id), '{}')
  into queued_endpoints
  from queued
  where queued.endpoint_id is not null;

  -- Out of attempts: the last one was claimed and never reported (its
  -- worker died) and its lease has run out. Sending stops after the tenth
  -- attempt, so the delivery ends failed rather than being tried an
  -- eleventh time. Deliveries only, skip locked: no wait, no endpoint lock.
  -- Read endpoint by endpoint (a lateral the planner keeps), each through
  -- its sending range: as a join it could be planned along every due one.
  update public.webhook_deliveries d
  set status = 'failed', next_attempt_at = null, locked_until = null
  where d.id in (
    select x.id
    from unnest(queued_endpoints) q(endpoint_id)
    cross join lateral (
      select s.id
      from public.webhook_deliveries s
      where s.endpoint_id = q.endpoint_id
        and s.status = 'sending'
        and s.next_attempt_at <= claimed_at
        and s.locked_until <= claimed_at
        and s.attempt_count >= max_attempts
      for update of s skip locked
    ) x
  );

  -- An owner-only event whose endpoint no longer passes (its URL or filter
  -- was changed by a non-owner since it was queued, or its owner was
  -- demoted or left) is canceled rather than sent (20261123004100). The
  -- claim below skips such deliveries too, in case one was locked here.
  -- Weighed once per endpoint with due work and event type, not once per
  -- delivery (20261123011700), and only those pairs that fail are read.
  with due_endpoints as materialized (
    select e.id, e.org_id, e.configured_by
    from unnest(queued_endpoints) q(endpoint_id)
    join public.webhook_endpoints e on e.id = q.endpoint_id
    -- A probe per status, one descent of the endpoint's range each, in a
    -- lateral the planner keeps: as exists it could hash every queued
    -- delivery, or walk every endpoint's due ones.
    cross join lateral (
      (
        select 1 from public.webhook_deliveries x
        where x.endpoint_id = e.id and x.status = 'pending' and x.next_attempt_at <= claimed_at
        limit 1
      )
      union all
      (
        select 1 from public.webhook_deliveries x
        where x.endpoint_id = e.id and x.status = 'sending' and x.next_attempt_at <= claimed_at
          and x.locked_until <= claimed_at
        limit 1
      )
      limit 1
    ) due
  )
  select coalesce(array_agg(e.id), '{}'), coalesce(array_agg(t.type), '{}')
  into barred_endpoints, barred_types
  from due_endpoints e
  cross join public.event_types t
  where private.event_type_read_permission(t.type) is not null
    and not private.webhook_endpoint_receives(e.org_id, e.configured_by, t.type);

  -- Most claims have none. Otherwise each such endpoint's queue is read by
  -- a statement planned afresh with its id, types and time, so for the
  -- sizes at hand: from the few events of those types when they are rare
  -- (an admin's endpoint 100,000 deep, export.* failing: 6 ms), along the
  -- endpoint's own deliveries when its queue is the smaller. As one cached
  -- plan every claim read every queued delivery, or each delivery's event by
  -- id (70 ms and 170 ms with 100,000 queued).
  for barred_endpoint in select distinct b from unnest(barred_endpoints) b loop
    execute $cancel$
      update public.webhook_deliveries d
      set status = 'canceled', next_attempt_at = null, locked_until = null
      where d.id in (
        select x.id
        from public.webhook_deliveries x
        join public.events ev on ev.id = x.event_id
        where x.endpoint_id = $1
          and ev.type = any ($2)
          and x.status in ('pending', 'sending')
          and x.next_attempt_at <= $3
          and (x.status = 'pending' or x.locked_until <= $3)
        for update of x skip locked
      )
    $cancel$
    using
      barred_endpoint,
      array(select b.type from unnest(barred_endpoints, barred_types) b(endpoint_id, type) where b.endpoint_id = barred_endpoint),
      claimed_at;
  end loop;

  return query
  with endpoints as (
    -- Every enabled endpoint with queued work, with its deliveries in
    -- flight: due, queued and still under another worker's lease. An
    -- endpoint, then its org, takes its turns after those. Read from the
    -- index's sending range, not the endpoint's whole queue.
    select e.id, e.org_id, e.configured_by, f.in_flight, sum(f.in_flight) over (partition by e.org_id) as org_in_flight
    from unnest(queued_endpoints) q(endpoint_id)
    join public.webhook_endpoints e on e.id = q.endpoint_id
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
    -- batch. Each status is read in the claim's order and left after
    -- batch_size that the endpoint may be sent (the event read by id for
    -- each), then the two are merged: at most 2 * batch_size rows an
    -- endpoint, whatever its backlog.
    select p.id as endpoint_id, p.org_id, p.in_flight, p.org_in_flight, c.id, c.next_attempt_at
    from endpoints p
    cross join lateral (
      select x.id, x.next_attempt_at
      from (
        (
          select d.id, d.next_attempt_at
          from public.webhook_deliveries d
          where d.endpoint_id = p.id
            and d.status = 'pending'
            and d.next_attempt_at <= claimed_at
            and d.attempt_count < max_attempts
            and (
              select private.event_type_read_permission(ev.type) is null
                or private.webhook_endpoint_receives(p.org_id, p.configured_by, ev.type)
              from public.events ev
              where ev.id = d.event_id
            )
          order by d.next_attempt_at, d.id
          limit batch_size
        )
        union all
        (
          select d.id, d.next_attempt_at
          from public.webhook_deliveries d
          where d.endpoint_id = p.id
            and d.status = 'sending'
            and d.next_attempt_at <= claimed_at
            and d.locked_until <= claimed_at
            and d.attempt_count < max_attempts
            and (
              select private.event_type_read_permission(ev.type) is null
                or private.webhook_endpoint_receives(p.org_id, p.configured_by, ev.type)
              from public.events ev
              where ev.id = d.event_id
            )
          order by d.next_attempt_at, d.id
          limit batch_size
        )
      ) x
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
    -- The ranked rows fetched by id: as a join alone, a session's first
    -- claims (custom plans, which see batch_size and the endpoints) hashed
    -- every queued delivery to find them.
    where d.id = any (array(select r.id from turns r))
    -- Checked again on the locked row: another worker may have claimed it since, or claimed, sent and
    -- recorded it (due again only after its retry delay or Retry-After), which the snapshot does not see.
      and d.status in ('pending', 'sending')
      and (d.status = 'pending' or d.locked_until <= claimed_at)
      and d.next_attempt_at <= claimed_at
      and d.attempt_count < max_attempts
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
comment on function private.claim_webhook_deliveries(integer, interval, timestamptz) is 'Locks and returns due deliveries (skip locked, so concurrent workers never share one; round robin over orgs, then over each org''s endpoints), with the exact body and secrets to sign; ends failed a delivery whose tenth attempt was never reported; cancels an owner-only event''s delivery to an endpoint no owner set up. Reads an endpoint''s oldest batch_size of each status through webhook_deliveries_endpoint_due_idx, not its whole queue.';
