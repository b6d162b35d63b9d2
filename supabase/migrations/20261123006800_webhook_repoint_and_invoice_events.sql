-- A repointed endpoint answers for its new URL only; invoice events are the
-- admins' only.
--
-- 1. An answer from the URL an endpoint had before it was repointed no longer
--    acts on the endpoint. The dispatcher sends to the URL the claim handed
--    out; an admin may change the endpoint's URL while that attempt is in
--    flight, and record_webhook_attempt judged the answer against the
--    endpoint as it is now: a late 410 from the old URL disabled the
--    repointed endpoint and canceled what was queued for the new URL, a
--    success from the old URL cleared failing_since, and the attempt row
--    named the new URL. record_webhook_attempt now takes sent_url, the URL
--    the attempt went to (the dispatcher passes the claim's url): the attempt
--    row names it, and when it is no longer the endpoint's URL the answer
--    touches only its delivery. A success ends it succeeded (it was
--    delivered); any failure, a 410 included, is retried on the schedule,
--    and the retry goes to the new URL. No 410 disable, no failing_since set
--    or cleared, no 5-day disable. Without sent_url the endpoint's URL is
--    assumed, as before.
--    update_webhook_endpoint clears failing_since when the URL changes: a run
--    of failures belongs to the URL that failed, so an endpoint that failed
--    4.9 days and then had its URL fixed is not disabled by the new URL's
--    first transient 500.
--
-- 2. invoice.* events are read with billing.read (admins and up), as
--    invoices are. Events are read with webhooks.read (members), so a member
--    read invoice.created's total_cents, period and currency, which the
--    invoices themselves keep from them, and an endpoint set up by an admin
--    later demoted to member kept receiving them. event_type_read_permission
--    now answers billing.read for invoice.*, so fan-out, the check of every
--    claim and replay hold invoice events to endpoints whose URL and filter
--    were last set by someone with billing.read (20261123004100); a
--    restrictive policy holds the app's reads to billing.read too, platform
--    admins included as for invoices (readable_org_ids). The replay refusal
--    names the role that may read the event: its detail is
--    `<role>_only_event`, owner_only_event for export.* as before
--    (20261123005500), admin_only_event for invoice.*; the export.* messages
--    are unchanged.
--    Existing endpoints whose configured_by is unknown or below admin stop
--    receiving invoice.created until an admin or owner saves them.

-- ---------------------------------------------------------------------------
-- 1. The URL an attempt went to. record_webhook_attempt: latest definition
-- 20261123003900_webhook_delivery_fixes.sql; new are sent_url and the
-- repointed case. The signature changes, so the old one is dropped (a tenth
-- defaulted argument beside it would make every call ambiguous).
-- ---------------------------------------------------------------------------

drop function private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz);

create function private.record_webhook_attempt(
  delivery_id uuid,
  attempt_number integer,
  started_at timestamptz,
  duration_ms integer,
  status_code integer,
  error text,
  response_body text,
  retry_after_seconds integer default null,
  recorded_at timestamptz default now(),
  sent_url text default null
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
  repointed boolean;
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
    delivery.org_id, delivery.id, delivery.endpoint_id, record_webhook_attempt.attempt_number,
    coalesce(record_webhook_attempt.sent_url, endpoint.url),
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

  -- The endpoint was repointed while the attempt was in flight: the answer
  -- is the old URL's and says nothing of the endpoint's current URL, so it
  -- neither disables the endpoint nor starts or ends its run of failures
  -- (20261123006800).
  repointed := coalesce(record_webhook_attempt.sent_url <> endpoint.url, false);

  if succeeded then
    next_status := 'succeeded';
    if not repointed then
      update public.webhook_endpoints e set failing_since = null where e.id = endpoint.id and e.failing_since is not null;
    end if;
  elsif status_code = 410 and not repointed then
    next_status := 'failed';
    perform private.disable_webhook_endpoint(endpoint.id, 'the endpoint answered 410 Gone', recorded_at);
  else
    if not repointed then
      update public.webhook_endpoints e set failing_since = coalesce(e.failing_since, record_webhook_attempt.started_at)
      where e.id = endpoint.id
      returning e.failing_since into endpoint.failing_since;
    end if;
    if not repointed and endpoint.failing_since <= recorded_at - interval '5 days' then
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
comment on function private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text) is 'Records an attempt (to sent_url, else the endpoint''s URL) and decides the next step: done, retry per the schedule (Retry-After honoured on 429/503), or give up; disables the endpoint on 410 or after 5 days of failures, unless sent_url is no longer the endpoint''s URL (repointed meanwhile: only the delivery is concerned).';

revoke execute on function
  private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text)
from public;
grant execute on function
  private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text)
to service_role;

-- update_webhook_endpoint: latest definition 20261123000800_webhooks.sql;
-- new is clearing failing_since when the URL changes.
-- Null arguments leave a field as it is.
create or replace function private.update_webhook_endpoint(
  endpoint_id uuid, url text, description text, event_types text[], enabled boolean
)
returns public.webhook_endpoints
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints := private.managed_webhook_endpoint(update_webhook_endpoint.endpoint_id);
begin
  update public.webhook_endpoints e set
    url = coalesce(update_webhook_endpoint.url, e.url),
    description = coalesce(update_webhook_endpoint.description, e.description),
    event_types = coalesce((select array_agg(distinct t order by t) from unnest(update_webhook_endpoint.event_types) t),
                           case when update_webhook_endpoint.event_types is not null then '{}'::text[] end, e.event_types),
    -- A run of failures belongs to the URL that failed; a new URL starts
    -- with none, so the 5-day rule counts from its own first failure.
    failing_since = case when coalesce(update_webhook_endpoint.url, e.url) <> e.url then null else e.failing_since end
  where e.id = endpoint.id;
  if update_webhook_endpoint.enabled is true and not endpoint.enabled then
    -- Re-enabled: a fresh start, failures before the pause do not count.
    update public.webhook_endpoints e
    set enabled = true, disabled_reason = null, disabled_at = null, failing_since = null
    where e.id = endpoint.id;
  elsif update_webhook_endpoint.enabled is false and endpoint.enabled then
    perform private.disable_webhook_endpoint(endpoint.id, 'disabled by an admin', now());
  end if;
  select * into endpoint from public.webhook_endpoints e where e.id = endpoint.id;
  return endpoint;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. Invoice events: billing.read. event_type_read_permission: latest
-- definition 20261123004100_owner_only_webhook_events.sql; new is invoice.*.
-- ---------------------------------------------------------------------------

-- The same tests as the restrictive policies on public.events ("only owners
-- read export events", 20261123006700; "only admins read invoice events",
-- below); a type added to those policies must be added here too.
create or replace function private.event_type_read_permission(event_type text)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when event_type like 'export.%' then 'data.export'
    when event_type like 'invoice.%' then 'billing.read'
  end;
$$;
comment on function private.event_type_read_permission(text) is 'The permission, beyond webhooks.read, needed to read events of a type in the app (data.export for export.*, billing.read for invoice.*), or null.';
comment on function private.webhook_endpoint_receives(uuid, uuid, text) is 'True unless the event type needs a permission beyond webhooks.read (export.*, invoice.*) and the endpoint''s URL or filter was last set by someone who does not (now) hold it.';

-- As the invoices themselves are read ("admins and up can read their org's
-- invoices", 20261123001600): billing.read, platform admins included.
create policy "only admins read invoice events"
  on public.events as restrictive for select to authenticated
  using (type not like 'invoice.%' or org_id = any (array(select private.readable_org_ids('billing.read'))));

-- replay_webhook_delivery: latest definition
-- 20261123005500_owner_only_replay_marker.sql; new is naming the role that
-- may read the event in the refusals (unchanged for export.*).
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
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, replay_of)
  values (original.org_id, original.endpoint_id, original.event_id, original.id)
  returning id into replay_id;
  return replay_id;
end;
$$;
comment on function private.replay_webhook_delivery(uuid) is 'Queues a new delivery of a delivery''s event to the same endpoint (webhooks.manage). P0002 unknown delivery; 42501 without webhooks.manage, or with detail owner_only_event (export.*) or admin_only_event (invoice.*) when the caller may not read the event; 22023 when the endpoint is disabled or receives no events of that type.';
