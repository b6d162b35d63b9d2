-- Outbound webhooks per the Standard Webhooks spec: endpoints per org with
-- event filters and rotating secrets, one delivery per (event, endpoint),
-- every attempt recorded, retries on the spec's schedule, endpoints disabled
-- on 410 Gone or after failing continuously for 5 days (as Svix does).
--
-- Who does what:
-- * admins manage endpoints, replay deliveries and send test events through
--   the `webhooks` edge function (it checks URLs after DNS resolution, which
--   SQL cannot), which calls the private functions below as the admin;
-- * members read endpoints (never secrets), deliveries and attempts;
-- * the `webhook-dispatcher` edge function, called by pg_cron through pg_net
--   and right after new deliveries, claims due deliveries with row locks
--   (private.claim_webhook_deliveries), sends them, and records each attempt
--   (private.record_webhook_attempt), which decides what happens next.

create extension if not exists pg_cron with schema pg_catalog;
create extension if not exists pg_net with schema extensions;

-- ---------------------------------------------------------------------------
-- Endpoints and their secrets
-- ---------------------------------------------------------------------------

create table public.webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  url text not null constraint webhook_endpoints_url_format
    check (length(url) <= 2048 and url ~ '^https?://[^\s/?#@]+(/[^\s]*)?$'),
  description text not null default '' constraint webhook_endpoints_description_length check (length(description) <= 500),
  -- Empty: every event type (except webhook.test, which goes only where it is sent).
  event_types text[] not null default '{}' constraint webhook_endpoints_event_types_count check (cardinality(event_types) <= 50),
  enabled boolean not null default true,
  disabled_reason text,
  disabled_at timestamptz,
  -- Start of the current run of failures; cleared by a success.
  failing_since timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint webhook_endpoints_disabled_state check (enabled = (disabled_at is null))
);
comment on table public.webhook_endpoints is 'Where an org''s events are sent. Managed through the webhooks edge function; secrets are never readable.';
create index webhook_endpoints_org_id_idx on public.webhook_endpoints (org_id);

create trigger webhook_endpoints_set_updated_at before update on public.webhook_endpoints
  for each row execute function private.set_updated_at();
create trigger webhook_endpoints_audit after insert or update or delete on public.webhook_endpoints
  for each row execute function private.audit_row_change();

create function private.validate_webhook_event_types()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  unknown text[];
begin
  -- Types already subscribed stay valid even if the catalogue later drops one,
  -- so such an endpoint can still be edited or disabled.
  select array_agg(t) into unknown from unnest(new.event_types) t
  where t is null
    or ((tg_op = 'UPDATE' and t = any (old.event_types)) is not true
        and not exists (select 1 from public.event_types e where e.type = t));
  if unknown is not null then
    raise exception 'unknown event type(s): %', array_to_string(unknown, ', ', 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.event_types.';
  end if;
  return new;
end;
$$;

create trigger webhook_endpoints_validate_event_types before insert or update of event_types on public.webhook_endpoints
  for each row execute function private.validate_webhook_event_types();

-- Secrets are needed in clear to sign, so they live where no API role can
-- read them. During a rotation the old secret stays valid until expires_at
-- and both sign every message.
create table private.webhook_endpoint_secrets (
  id bigint generated always as identity primary key,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  secret text not null constraint webhook_endpoint_secrets_format check (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
  created_at timestamptz not null default clock_timestamp(),
  expires_at timestamptz
);
create index webhook_endpoint_secrets_endpoint_idx on private.webhook_endpoint_secrets (endpoint_id);

alter table public.webhook_endpoints enable row level security;
revoke all on public.webhook_endpoints from anon, authenticated;
grant select on public.webhook_endpoints to authenticated;
create policy "members and up can read their org's webhook endpoints"
  on public.webhook_endpoints for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('webhooks.read'))));

-- ---------------------------------------------------------------------------
-- Deliveries and attempts
-- ---------------------------------------------------------------------------

create table public.webhook_deliveries (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  event_id uuid not null references public.events (id) on delete cascade,
  status text not null default 'pending'
    constraint webhook_deliveries_status check (status in ('pending', 'sending', 'succeeded', 'failed', 'canceled')),
  attempt_count integer not null default 0,
  next_attempt_at timestamptz default now(),
  locked_until timestamptz,
  last_attempt_at timestamptz,
  last_status_code integer,
  replay_of uuid references public.webhook_deliveries (id) on delete set null,
  created_at timestamptz not null default now(),
  constraint webhook_deliveries_schedule check ((status in ('pending', 'sending')) = (next_attempt_at is not null))
);
comment on table public.webhook_deliveries is 'One message to one endpoint; its webhook-id (msg_ + event id) is stable across retries and replays.';
create index webhook_deliveries_org_id_idx on public.webhook_deliveries (org_id, created_at desc);
create index webhook_deliveries_endpoint_idx on public.webhook_deliveries (endpoint_id, created_at desc);
create index webhook_deliveries_event_idx on public.webhook_deliveries (event_id);
create index webhook_deliveries_replay_of_idx on public.webhook_deliveries (replay_of);
create index webhook_deliveries_due_idx on public.webhook_deliveries (next_attempt_at)
  where status in ('pending', 'sending');

create table public.webhook_attempts (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  delivery_id uuid not null references public.webhook_deliveries (id) on delete cascade,
  endpoint_id uuid not null references public.webhook_endpoints (id) on delete cascade,
  attempt_number integer not null,
  url text not null,
  started_at timestamptz not null,
  duration_ms integer not null check (duration_ms >= 0),
  status_code integer,
  outcome text not null constraint webhook_attempts_outcome check (outcome in ('succeeded', 'failed')),
  error text check (length(error) <= 1000),
  response_body text check (length(response_body) <= 4096),
  -- One row per attempt: the evidence that no attempt is sent twice.
  constraint webhook_attempts_once unique (delivery_id, attempt_number)
);
comment on table public.webhook_attempts is 'Every attempt to send a delivery: status code, latency, error and the first 4 KB of the response.';
create index webhook_attempts_org_id_idx on public.webhook_attempts (org_id, started_at desc);
create index webhook_attempts_endpoint_idx on public.webhook_attempts (endpoint_id);

alter table public.webhook_deliveries enable row level security;
alter table public.webhook_attempts enable row level security;
revoke all on public.webhook_deliveries, public.webhook_attempts from anon, authenticated;
grant select on public.webhook_deliveries, public.webhook_attempts to authenticated;
create policy "members and up can read their org's webhook deliveries"
  on public.webhook_deliveries for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('webhooks.read'))));
create policy "members and up can read their org's webhook attempts"
  on public.webhook_attempts for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('webhooks.read'))));

insert into private.audit_exempt_tables (table_name, reason) values
  ('webhook_deliveries', 'delivery state kept by the dispatcher; admin replays are audited as new rows of this log, not edits'),
  ('webhook_attempts', 'append-only log of send attempts written by the dispatcher');

-- ---------------------------------------------------------------------------
-- Fan-out: each new event becomes one delivery per enabled, subscribed endpoint.
-- ---------------------------------------------------------------------------

create function private.fan_out_event()
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
      and (cardinality(e.event_types) = 0 or new.type = any (e.event_types));
  end if;
  return null;
end;
$$;

create trigger events_fan_out after insert on public.events
  for each row execute function private.fan_out_event();

-- ---------------------------------------------------------------------------
-- Dispatch: claiming and recording (service_role only).
-- ---------------------------------------------------------------------------

-- The spec's schedule: attempt n waits retry_delays[n] seconds after attempt n-1 failed.
create function private.webhook_retry_delays()
returns integer[]
language sql
immutable
security invoker
set search_path = ''
as $$
  select array[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];
$$;

create function private.claim_webhook_deliveries(
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
begin
  if batch_size is null or batch_size not between 1 and 500 then
    raise exception 'batch_size must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with due as (
    -- Pending and due, or claimed by a worker whose lease ran out (it died).
    select d.id
    from public.webhook_deliveries d
    join public.webhook_endpoints e on e.id = d.endpoint_id and e.enabled
    where d.status in ('pending', 'sending')
      and d.next_attempt_at <= claimed_at
      and (d.status = 'pending' or d.locked_until <= claimed_at)
    order by d.next_attempt_at
    limit batch_size
    for update of d skip locked
  ),
  claimed as (
    update public.webhook_deliveries d
    set status = 'sending', locked_until = claimed_at + lease, attempt_count = d.attempt_count + 1
    from due
    where d.id = due.id
    returning d.id, d.attempt_count, d.endpoint_id, d.event_id
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
  join public.events ev on ev.id = c.event_id;
end;
$$;
comment on function private.claim_webhook_deliveries(integer, interval, timestamptz) is 'Locks and returns due deliveries (skip locked, so concurrent workers never share one), with the exact body and secrets to sign.';

-- Disables an endpoint and cancels what it still had queued.
create function private.disable_webhook_endpoint(endpoint_id uuid, reason text, disabled_at timestamptz)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.webhook_endpoints e
  set enabled = false, disabled_reason = reason, disabled_at = disable_webhook_endpoint.disabled_at
  where e.id = disable_webhook_endpoint.endpoint_id and e.enabled;
  -- In-flight ones too: a worker's late report then comes back 'stale'.
  update public.webhook_deliveries d
  set status = 'canceled', next_attempt_at = null, locked_until = null
  where d.endpoint_id = disable_webhook_endpoint.endpoint_id and d.status in ('pending', 'sending');
end;
$$;

create function private.record_webhook_attempt(
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
  succeeded boolean := status_code between 200 and 299;
  delays integer[] := private.webhook_retry_delays();
  delay_seconds numeric;
  next_status text;
begin
  select * into delivery from public.webhook_deliveries d where d.id = record_webhook_attempt.delivery_id for update;
  if not found then
    return 'gone';
  end if;
  select * into endpoint from public.webhook_endpoints e where e.id = delivery.endpoint_id for update;

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
comment on function private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz) is 'Records an attempt and decides the next step: done, retry per the schedule (Retry-After honoured on 429/503), or give up; disables the endpoint on 410 or after 5 days of failures.';

revoke execute on function
  private.claim_webhook_deliveries(integer, interval, timestamptz),
  private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz)
from public;
grant execute on function
  private.claim_webhook_deliveries(integer, interval, timestamptz),
  private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz)
to service_role;

-- ---------------------------------------------------------------------------
-- Management, called by the webhooks edge function as the admin (EXECUTE for
-- authenticated, but private is not exposed, so PostgREST cannot reach them).
-- ---------------------------------------------------------------------------

create function private.new_webhook_secret()
returns text
language sql
volatile
security invoker
set search_path = ''
as $$
  select 'whsec_' || pg_catalog.encode(extensions.gen_random_bytes(32), 'base64');
$$;

create function private.create_webhook_endpoint(org_id uuid, url text, description text, event_types text[])
returns table (endpoint_id uuid, secret text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  created public.webhook_endpoints;
  new_secret text := private.new_webhook_secret();
begin
  perform private.require_permission(create_webhook_endpoint.org_id, 'webhooks.manage');
  perform 1 from public.organizations o where o.id = create_webhook_endpoint.org_id for update;
  if (select count(*) from public.webhook_endpoints e where e.org_id = create_webhook_endpoint.org_id) >= 20 then
    raise exception 'an organization has at most 20 webhook endpoints' using errcode = 'invalid_parameter_value';
  end if;
  insert into public.webhook_endpoints (org_id, url, description, event_types, created_by)
  values (
    create_webhook_endpoint.org_id, create_webhook_endpoint.url, coalesce(create_webhook_endpoint.description, ''),
    coalesce((select array_agg(distinct t order by t) from unnest(create_webhook_endpoint.event_types) t), '{}'),
    auth.uid()
  )
  returning * into created;
  insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (created.id, new_secret);
  return query select created.id, new_secret;
end;
$$;

create function private.managed_webhook_endpoint(endpoint_id uuid)
returns public.webhook_endpoints
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints;
begin
  select * into endpoint from public.webhook_endpoints e where e.id = managed_webhook_endpoint.endpoint_id for update;
  if not found then
    raise exception 'webhook endpoint not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(endpoint.org_id, 'webhooks.manage');
  return endpoint;
end;
$$;

-- Null arguments leave a field as it is.
create function private.update_webhook_endpoint(
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
                           case when update_webhook_endpoint.event_types is not null then '{}'::text[] end, e.event_types)
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

create function private.rotate_webhook_secret(endpoint_id uuid, overlap interval)
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
  insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (endpoint.id, new_secret);
  return query select new_secret, (
    select max(s.expires_at) from private.webhook_endpoint_secrets s
    where s.endpoint_id = endpoint.id and s.secret <> new_secret
  );
end;
$$;

create function private.delete_webhook_endpoint(endpoint_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints := private.managed_webhook_endpoint(delete_webhook_endpoint.endpoint_id);
begin
  delete from public.webhook_endpoints e where e.id = endpoint.id;
end;
$$;

create function private.replay_webhook_delivery(delivery_id uuid)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  original public.webhook_deliveries;
  endpoint public.webhook_endpoints;
  replay_id uuid;
begin
  select * into original from public.webhook_deliveries d where d.id = replay_webhook_delivery.delivery_id;
  if not found then
    raise exception 'webhook delivery not found' using errcode = 'no_data_found';
  end if;
  endpoint := private.managed_webhook_endpoint(original.endpoint_id);
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

create function private.send_test_webhook(endpoint_id uuid)
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
  event_id := private.emit_event(endpoint.org_id, 'webhook.test',
    jsonb_build_object('endpoint_id', endpoint.id, 'message', 'A test event sent from the dashboard.'));
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
  values (endpoint.org_id, endpoint.id, event_id)
  returning id into test_delivery_id;
  return test_delivery_id;
end;
$$;

revoke execute on function
  private.create_webhook_endpoint(uuid, text, text, text[]),
  private.update_webhook_endpoint(uuid, text, text, text[], boolean),
  private.rotate_webhook_secret(uuid, interval),
  private.delete_webhook_endpoint(uuid),
  private.replay_webhook_delivery(uuid),
  private.send_test_webhook(uuid)
from public;
grant execute on function
  private.create_webhook_endpoint(uuid, text, text, text[]),
  private.update_webhook_endpoint(uuid, text, text, text[], boolean),
  private.rotate_webhook_secret(uuid, interval),
  private.delete_webhook_endpoint(uuid),
  private.replay_webhook_delivery(uuid),
  private.send_test_webhook(uuid)
to authenticated;

-- ---------------------------------------------------------------------------
-- Waking the dispatcher: pg_cron every 5 seconds when something is due (a
-- retry, or a wake-up the throttle skipped), and at once when new deliveries
-- appear (at most one request a second). The dispatcher's URL and
-- key come from Vault secrets `project_url` and `service_role_key`, as in
-- Supabase's guide to scheduling edge functions; without them this is a no-op.
-- ---------------------------------------------------------------------------

create table private.webhook_dispatch_requests (
  id boolean primary key default true check (id),
  last_requested_at timestamptz not null default '-infinity'
);
insert into private.webhook_dispatch_requests default values;

-- Calls an edge function of this project through pg_net with the service-role
-- key, both from Vault (`project_url`, `service_role_key`), as in Supabase's
-- guide to scheduling edge functions. Without them (a database with no
-- functions next to it) it does nothing and answers false.
create function private.invoke_edge_function(function_name text, body jsonb, timeout_milliseconds integer)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  project_url text;
  service_key text;
begin
  select s.decrypted_secret into project_url from vault.decrypted_secrets s where s.name = 'project_url';
  select s.decrypted_secret into service_key from vault.decrypted_secrets s where s.name = 'service_role_key';
  if project_url is null or service_key is null then
    return false;
  end if;
  perform net.http_post(
    url := rtrim(project_url, '/') || '/functions/v1/' || function_name,
    body := body,
    headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || service_key),
    timeout_milliseconds := invoke_edge_function.timeout_milliseconds
  );
  return true;
end;
$$;
revoke execute on function private.invoke_edge_function(text, jsonb, integer) from public;

create function private.request_webhook_dispatch()
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
  -- Nothing due, nothing to wake (the partial index on due deliveries makes this cheap).
  if not exists (
    select 1 from public.webhook_deliveries d
    where d.status in ('pending', 'sending') and d.next_attempt_at <= now()
      and (d.status = 'pending' or d.locked_until <= now())
  ) then
    return;
  end if;
  -- Skip locked: an emitter's long transaction must not make other tenants' writes wait here.
  update private.webhook_dispatch_requests r set last_requested_at = clock_timestamp()
  where r.id in (
    select q.id from private.webhook_dispatch_requests q
    where q.last_requested_at < clock_timestamp() - interval '1 second'
    for update skip locked
  );
  if not found then
    return;
  end if;
  -- Longer than a dispatch pass (about 20 s), so the call is not cut off mid-pass.
  perform private.invoke_edge_function('webhook-dispatcher', '{}'::jsonb, 30000);
end;
$$;

create function private.request_dispatch_for_new_deliveries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Every event runs the fan-out insert; only one that queued something wakes the dispatcher.
  if exists (select 1 from new_deliveries) then
    perform private.request_webhook_dispatch();
  end if;
  return null;
end;
$$;

create trigger webhook_deliveries_request_dispatch after insert on public.webhook_deliveries
  referencing new table as new_deliveries
  for each statement execute function private.request_dispatch_for_new_deliveries();

select cron.schedule('dispatch-webhooks', '5 seconds', 'select private.request_webhook_dispatch()');
