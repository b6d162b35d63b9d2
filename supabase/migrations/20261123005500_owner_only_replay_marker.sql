-- The owner-only replay refusal gets a stable marker.
--
-- replay_webhook_delivery (20261123004100) refuses an owner-only event's
-- replay by a caller who may not read the event with SQLSTATE 42501, the
-- same code managed_webhook_endpoint raises for a caller without
-- webhooks.manage. The webhooks function tells the two apart to say which
-- rule refused, and could only do so by the message's wording, which is no
-- contract. The refusal now also carries `detail = 'owner_only_event'`, the
-- convention of consume_calendar_oauth_state (20261123001400): the errcode
-- says what kind of refusal, the detail which one. Nothing else changes,
-- the message included.

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
      -- The detail is the marker callers test (20261123005500); the wording may change.
      raise exception 'only owners may replay a delivery of an % event', event_type
        using errcode = 'insufficient_privilege', detail = 'owner_only_event';
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
comment on function private.replay_webhook_delivery(uuid) is 'Queues a new delivery of a delivery''s event to the same endpoint (webhooks.manage). P0002 unknown delivery; 42501 without webhooks.manage, or with detail owner_only_event when the event is owner-only (export.*) and the caller may not read it; 22023 when the endpoint is disabled or receives no owner-only events.';
