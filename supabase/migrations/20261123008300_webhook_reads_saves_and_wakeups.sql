-- Webhook reads, saves, wake-ups and rotations (review of 20261123000800_webhooks.sql and its fixes).
--
-- 1. Attempts are read as their events are. Members read webhook_attempts
--    (and webhook_deliveries) with webhooks.read, whatever the event: a
--    receiver that echoes the body put export.ready's download_url (a signed
--    link to the whole org's export) or invoice.created's totals in
--    webhook_attempts.response_body, readable by every member, though the
--    events themselves are the owners' ("only owners read export events",
--    20261123006700) and the admins' ("only admins read invoice events",
--    20261123006800). Restrictive policies now go through the events table's
--    own policies (the caller's RLS applies inside them), so a rule added
--    there holds here too with nothing to keep in step:
--    * an attempt is readable only where its event is;
--    * a delivery only where its event is, or by those who manage the org's
--      webhooks (webhooks.manage, as members: not platform admins): a
--      delivery holds no payload and no response (ids, status, status code),
--      and admins replay deliveries and see them fail, export.ready's too
--      (replay then refuses them, 42501 owner_only_event).
--    A member thus reads no delivery nor attempt of export.* or invoice.*
--    events; an admin reads invoice.* ones and export.* deliveries, not
--    their attempts; an owner reads all.
--
-- 2. Saving an endpoint's URL or filter unchanged makes the caller its
--    configurer when the caller's role is at least the current configurer's
--    (or the configurer is gone from the org, or unknown). configured_by
--    (20261123004100) changed only when the URL or filter value changed, so
--    an owner re-saving an admin-set endpoint, as the README and replay's
--    refusal ("an owner must save it first") tell them to, changed nothing
--    and the endpoint still received no export.ready. An admin re-saving an
--    owner's endpoint unchanged still does not take it over; changing the
--    URL or filter still does, whoever changes it. "Passed" is the UPDATE's
--    SET list: a column trigger (update of url, event_types) fires whenever
--    the statement sets them, equal values included, and
--    update_webhook_endpoint sets them only when the caller passed one.
--
-- 3. pg_cron wakes the dispatcher whatever the throttle row's lock. Every
--    wake-up, the 5-second cron included, updated the one throttle row
--    (private.webhook_dispatch_requests) with skip locked, and the row stays
--    locked until the emitter's transaction ends: while a long transaction
--    that emitted an event ran (generate_invoices over every org), no
--    wake-up of any tenant went out, retries included. The cron's
--    private.request_webhook_dispatch() (its command is unchanged) no longer
--    touches the throttle: it sends one request a tick when something is
--    due. New deliveries wake the dispatcher through
--    private.request_throttled_webhook_dispatch(), the old body: at most once
--    a second, skipped while another transaction holds the row (the cron
--    then wakes it within 5 seconds).
--
-- 4. A rotation is audited. rotate_webhook_secret changed only
--    private.webhook_endpoint_secrets, which is not audited (it holds the
--    secrets), so nothing recorded who rotated an endpoint's secret or when.
--    It now also sets webhook_endpoints.rotated_at, so the endpoint's audit
--    trigger logs the rotation with its actor. Not named secret_*: no public
--    webhook column may look like a secret (pgTAP 170, 224).

-- ---------------------------------------------------------------------------
-- 1. Reads of attempts (and deliveries) follow their events.
-- ---------------------------------------------------------------------------

-- The permissive policies ("members and up can read their org's webhook
-- deliveries / attempts", 20261123000800) stay; these narrow them.
create policy "deliveries are read as their events are, or by webhook managers"
  on public.webhook_deliveries as restrictive for select to authenticated
  using (
    exists (select 1 from public.events ev where ev.id = event_id)
    or org_id = any (array(select private.org_ids_with_permission('webhooks.manage')))
  );

create policy "attempts are read as their events are"
  on public.webhook_attempts as restrictive for select to authenticated
  using (exists (
    select 1 from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
    where d.id = delivery_id
  ));

-- ---------------------------------------------------------------------------
-- 2. A save that passes the URL or filter.
-- ---------------------------------------------------------------------------

-- Runs after webhook_endpoints_record_configurer (triggers of one timing run
-- in name order), which has already named the caller when a value changed
-- and kept configured_by otherwise.
create function private.record_webhook_endpoint_resave()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role;
  configurer_role public.org_role;
begin
  if auth.uid() is null or new.configured_by is not distinct from auth.uid() then
    return new;
  end if;
  caller_role := private.member_role(new.org_id, auth.uid());
  configurer_role := private.member_role(new.org_id, new.configured_by);
  -- An admin re-saving an owner's endpoint unchanged leaves it the owner's.
  if caller_role is not null and (configurer_role is null or caller_role >= configurer_role) then
    new.configured_by := auth.uid();
  end if;
  return new;
end;
$$;

comment on function private.record_webhook_endpoint_resave() is 'A save that sets url or event_types, even unchanged, makes the caller the configurer when their role is at least the current configurer''s, or the configurer is no longer a member or unknown.';

create trigger webhook_endpoints_record_configurer_on_save before update of url, event_types on public.webhook_endpoints
  for each row execute function private.record_webhook_endpoint_resave();

-- Latest definition: 20261123006800_webhook_repoint_and_invoice_events.sql;
-- only setting url and event_types solely when one of them is passed is new
-- (the trigger above reads the SET list).
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
  if update_webhook_endpoint.url is not null or update_webhook_endpoint.event_types is not null then
    update public.webhook_endpoints e set
      url = coalesce(update_webhook_endpoint.url, e.url),
      description = coalesce(update_webhook_endpoint.description, e.description),
      event_types = coalesce((select array_agg(distinct t order by t) from unnest(update_webhook_endpoint.event_types) t),
                             case when update_webhook_endpoint.event_types is not null then '{}'::text[] end, e.event_types),
      -- A run of failures belongs to the URL that failed; a new URL starts
      -- with none, so the 5-day rule counts from its own first failure.
      failing_since = case when coalesce(update_webhook_endpoint.url, e.url) <> e.url then null else e.failing_since end
    where e.id = endpoint.id;
  elsif update_webhook_endpoint.description is not null then
    update public.webhook_endpoints e set description = update_webhook_endpoint.description
    where e.id = endpoint.id;
  end if;
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
-- 3. Wake-ups: the cron ignores the throttle; new deliveries use it.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000800_webhooks.sql; only the name is new (the
-- body is the old request_webhook_dispatch, now for new deliveries only).
create function private.request_throttled_webhook_dispatch()
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
  -- Skip locked: an emitter's long transaction must not make other tenants'
  -- writes wait here; the cron wakes the dispatcher meanwhile (20261123008300).
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
comment on function private.request_throttled_webhook_dispatch() is 'Wakes the webhook dispatcher for new deliveries: at most once a second, and not while another transaction holds the throttle row (pg_cron''s request_webhook_dispatch wakes it then).';
revoke execute on function private.request_throttled_webhook_dispatch() from public;

-- Latest definition: 20261123000800_webhooks.sql; only leaving out the
-- throttle row is new. pg_cron's dispatch-webhooks calls it once a tick, so
-- it sends at most one request a tick, and a transaction holding the
-- throttle row no longer silences it.
create or replace function private.request_webhook_dispatch()
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Nothing due, nothing to wake (the partial index on due deliveries makes this cheap).
  if not exists (
    select 1 from public.webhook_deliveries d
    where d.status in ('pending', 'sending') and d.next_attempt_at <= now()
      and (d.status = 'pending' or d.locked_until <= now())
  ) then
    return;
  end if;
  -- Without the Vault secrets (no functions next to this database) this sends nothing.
  perform private.invoke_edge_function('webhook-dispatcher', '{}'::jsonb, 30000);
end;
$$;
comment on function private.request_webhook_dispatch() is 'pg_cron''s wake-up of the webhook dispatcher (dispatch-webhooks, every 5 seconds): one request when a delivery is due, whatever the throttle of new-delivery wake-ups.';

-- Latest definition: 20261123000800_webhooks.sql; only calling the throttled
-- wake-up is new.
create or replace function private.request_dispatch_for_new_deliveries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Every event runs the fan-out insert; only one that queued something wakes the dispatcher.
  if exists (select 1 from new_deliveries) then
    perform private.request_throttled_webhook_dispatch();
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- 4. Rotations leave an audit row.
-- ---------------------------------------------------------------------------

alter table public.webhook_endpoints add column rotated_at timestamptz;
comment on column public.webhook_endpoints.rotated_at is 'When the signing secret was last rotated (null: never); set by rotate_webhook_secret, so the audit log names who rotated it.';

-- Latest definition: 20261123003900_webhook_delivery_fixes.sql; only setting
-- rotated_at is new.
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
  -- The secrets table is not audited (it holds them); this row is, with the caller as actor.
  update public.webhook_endpoints e set rotated_at = clock_timestamp() where e.id = endpoint.id;
  return query select new_secret, (
    select max(s.expires_at) from private.webhook_endpoint_secrets s
    where s.endpoint_id = endpoint.id and s.secret <> new_secret
  );
end;
$$;
