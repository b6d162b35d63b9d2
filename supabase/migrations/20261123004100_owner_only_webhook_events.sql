-- Owner-only events reach only endpoints an owner controls.
--
-- export.ready carries a signed link to the whole org's data export; in the
-- app only owners read export events (the restrictive policy "only owners
-- read export events", 20261123001600). Webhook endpoints are managed by
-- admins (webhooks.manage), so an admin could create an endpoint with an
-- empty filter, or point an owner's endpoint at their own server, and
-- receive the link at the next export, or replay an earlier export.ready
-- delivery to such an endpoint (replays skip the muting rule).
--
-- The rule. An event type readable only with a permission beyond
-- webhooks.read (today export.*, which needs data.export: owners) is sent
-- only to an endpoint whose URL and filter were last set by someone who
-- holds that permission in the org at the moment of sending:
--
-- * webhook_endpoints.configured_by is who last set the URL or the filter:
--   the creator, then whoever changed either (a trigger, whatever the path;
--   nobody sets it directly). Changing only the description, the secret or
--   enabled keeps it: none of them changes where events go or which.
-- * Fan-out queues such an event only for endpoints whose configured_by is
--   an owner now; the other types fan out as before.
-- * Replay: only a caller who may read the event (an owner) may replay a
--   delivery of such a type (42501), and only to an endpoint that passes
--   the fan-out test (22023 otherwise: an owner saves its URL or filter).
-- * Every claim checks again: a queued or retried delivery of such a type
--   whose endpoint no longer passes (an admin changed the URL or filter
--   since, or the owner was demoted or left) is canceled, not sent.
--
-- Existing endpoints: configured_by is backfilled from the audit log (the
-- actor of the endpoint's last insert or change of url or event_types), so
-- an owner's endpoint keeps receiving export.ready and an endpoint an admin
-- set up or repointed stops until an owner saves it.

-- ---------------------------------------------------------------------------
-- Which types are owner-only
-- ---------------------------------------------------------------------------

-- The same test as the restrictive policy on public.events (20261123001600);
-- a type added to that policy must be added here too.
create function private.event_type_read_permission(event_type text)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select case when event_type like 'export.%' then 'data.export' end;
$$;
comment on function private.event_type_read_permission(text) is 'The permission, beyond webhooks.read, needed to read events of a type in the app (data.export for export.*), or null.';

-- ---------------------------------------------------------------------------
-- Who last set an endpoint's URL and filter
-- ---------------------------------------------------------------------------

alter table public.webhook_endpoints
  add column configured_by uuid references auth.users (id) on delete set null;
comment on column public.webhook_endpoints.configured_by is 'Who last set the URL or the event filter. Owner-only event types (export.*) are sent only while this user is an owner of the org.';
create index webhook_endpoints_configured_by_idx on public.webhook_endpoints (configured_by);

-- From the audit log: the actor of the last insert, or of the last update
-- that changed url or event_types (an update's new_values hold only the
-- changed columns). Null when unknown, which receives no owner-only events.
update public.webhook_endpoints e
set configured_by = (
  select a.actor_user_id
  from public.audit_log a
  where a.org_id = e.org_id
    and a.table_name = 'webhook_endpoints'
    and a.record_id = e.id::text
    and (a.action = 'insert' or a.new_values ? 'url' or a.new_values ? 'event_types')
  order by a.seq desc
  limit 1
);

create function private.record_webhook_endpoint_configurer()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Nobody sets configured_by by hand (not even the service role): it is
  -- always the caller who set the URL or the filter, else left as it was.
  if tg_op = 'INSERT'
    or new.url is distinct from old.url
    or new.event_types is distinct from old.event_types then
    new.configured_by := auth.uid();
  else
    new.configured_by := old.configured_by;
  end if;
  return new;
end;
$$;

create trigger webhook_endpoints_record_configurer before insert or update on public.webhook_endpoints
  for each row execute function private.record_webhook_endpoint_configurer();

-- Whether an endpoint may be sent events of a type now: every type unless
-- it is owner-only, then only while configured_by holds the permission.
create function private.webhook_endpoint_receives(org_id uuid, configured_by uuid, event_type text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select private.event_type_read_permission(webhook_endpoint_receives.event_type) is null
    or exists (
      select 1
      from public.memberships m
      join public.role_permissions p
        on p.permission = private.event_type_read_permission(webhook_endpoint_receives.event_type)
      where m.org_id = webhook_endpoint_receives.org_id
        and m.user_id = webhook_endpoint_receives.configured_by
        and m.role >= p.min_role
    );
$$;
comment on function private.webhook_endpoint_receives(uuid, uuid, text) is 'True unless the event type is owner-only and the endpoint''s URL or filter was last set by someone who is not (now) allowed to read it.';
revoke execute on function private.webhook_endpoint_receives(uuid, uuid, text) from public;

-- ---------------------------------------------------------------------------
-- Fan-out (restated from 20261123000800)
-- ---------------------------------------------------------------------------

create or replace function private.fan_out_event()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if new.type <> 'webhook.test' then
    insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
    select new.org_id, e.id, new.id
    from public.webhook_endpoints e
    where e.org_id = new.org_id
      and e.enabled
      and (cardinality(e.event_types) = 0 or new.type = any (e.event_types))
      -- Owner-only types only where an owner set the URL and filter (20261123004100).
      and private.webhook_endpoint_receives(e.org_id, e.configured_by, new.type);
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- Replay (restated from 20261123000800)
-- ---------------------------------------------------------------------------

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
  replay_id uuid;
begin
  select * into original from public.webhook_deliveries d where d.id = replay_webhook_delivery.delivery_id;
  if not found then
    raise exception 'webhook delivery not found' using errcode = 'no_data_found';
  end if;
  endpoint := private.managed_webhook_endpoint(original.endpoint_id);
  -- An owner-only event is replayed only by someone who may read it, and
  -- only to an endpoint an owner set up (20261123004100): a replay skips
  -- the muting rule and is sent wherever the endpoint now points.
  select ev.type into event_type from public.events ev where ev.id = original.event_id;
  if private.event_type_read_permission(event_type) is not null then
    if not private.has_permission(original.org_id, private.event_type_read_permission(event_type)) then
      raise exception 'only owners may replay a delivery of an % event', event_type
        using errcode = 'insufficient_privilege';
    end if;
    if not private.webhook_endpoint_receives(endpoint.org_id, endpoint.configured_by, event_type) then
      raise exception 'this endpoint''s URL or event filter was last set by someone who is not an owner, so it receives no % events; an owner must save it first', event_type
        using errcode = 'invalid_parameter_value';
    end if;
  end if;
  if not endpoint.enabled then
    raise exception 'the endpoint is disabled (%); enable it first', endpoint.disabled_reason
      using errcode = 'invalid_parameter_value';
  end if;
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, replay_of)
  values (original.org_id, original.endpoint_id, original.event_id, original.id)
  returning id into replay_id;
  return replay_id;
end;
$$;

-- ---------------------------------------------------------------------------
-- The claim (restated from 20261123003900): owner-only deliveries are
-- checked again before every attempt.
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
comment on function private.claim_webhook_deliveries(integer, interval, timestamptz) is 'Locks and returns due deliveries (skip locked, so concurrent workers never share one; round robin over endpoints), with the exact body and secrets to sign; ends failed a delivery whose tenth attempt was never reported; cancels an owner-only event''s delivery to an endpoint no owner set up.';
