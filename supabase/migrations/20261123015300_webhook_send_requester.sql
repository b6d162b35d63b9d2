-- Who asked for a webhook test send or a replay.
--
-- webhook_deliveries is the dispatcher's state and is not audited, so a
-- replay or a webhook.test send left no trace of who asked for it but the
-- new row itself (20261123000800's exemption said such rows were "audited as
-- new rows"; an audit review found they were not). A delivery now names the
-- user who queued it by hand (requested_by, auth.uid() of
-- send_test_webhook / replay_webhook_delivery); deliveries the events queue
-- name nobody. A deleted user's sends keep their rows with requested_by
-- null, as other user references do. Members who read the delivery read the
-- column (the table's policies are unchanged). The column's index, for that
-- deletion, is built without blocking the dispatcher in
-- 20261123015310_webhook_deliveries_requested_by_idx.sql.

-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind its exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing).
select pg_catalog.set_config('lock_timeout', '5s', true);

alter table public.webhook_deliveries
  add column requested_by uuid references auth.users (id) on delete set null;
comment on column public.webhook_deliveries.requested_by is 'The user who queued this delivery by hand (a webhook.test send or a replay); null for deliveries of emitted events and once that user is deleted.';

-- Latest definition: 20261123009200_webhook_test_limits.sql; only requested_by is new.
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
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, requested_by)
  values (endpoint.org_id, endpoint.id, event_id, auth.uid())
  returning id into test_delivery_id;
  return test_delivery_id;
end;
$$;
comment on function private.send_test_webhook(uuid) is 'Queues a webhook.test event''s delivery to the endpoint (webhooks.manage), naming the caller in requested_by. P0002 unknown endpoint or another org''s; 42501 without webhooks.manage; 22023 when the endpoint is disabled; PT409 when it has 100 or more deliveries queued; PT429 (detail: seconds to wait) past 10 a minute per org.';

-- Latest definition: 20261123009200_webhook_test_limits.sql; only requested_by is new.
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
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, replay_of, requested_by)
  values (original.org_id, original.endpoint_id, original.event_id, original.id, auth.uid())
  returning id into replay_id;
  return replay_id;
end;
$$;
comment on function private.replay_webhook_delivery(uuid) is 'Queues a new delivery of a delivery''s event to the same endpoint (webhooks.manage), naming the caller in requested_by. P0002 unknown delivery or another org''s; 42501 without webhooks.manage, or with detail owner_only_event (export.*) or admin_only_event (invoice.*) when the caller may not read the event; 22023 when the endpoint is disabled or receives no events of that type; PT409 when it has 100 or more deliveries queued; PT429 (detail: seconds to wait) past 60 a minute per org.';
