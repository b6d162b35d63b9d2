-- Servers place and cancel calls with an API key (calls.write): POST
-- /functions/v1/calls and /functions/v1/calls/:id/cancel verify the key, then
-- run create_outbound_call and cancel_call as the service role acting for
-- the key (the audit log names the key). Both required a user
-- (private.require_permission, and for cancelling private.readable_org_ids),
-- so the service role could do neither. The calls function checks that the
-- bot (through create_outbound_call's org) and the call belong to the key's org.

-- Latest definition: 20261123001210_call_operations.sql; only the permission
-- check changes: the service role passes it.
create or replace function private.create_outbound_call(
  org_id uuid, bot_id uuid, to_number text, scheduled_at timestamptz, callee_time_zone text
)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  number text := private.normalize_phone_number(to_number);
  zone text;
  slot timestamptz;
  created public.calls;
begin
  -- The service role places calls for an API key with calls.write, whose
  -- org the calls function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_outbound_call.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(create_outbound_call.org_id);
  end if;
  if number is null then
    raise exception 'not a phone number: %', coalesce(to_number, 'null')
      using errcode = 'invalid_parameter_value', hint = 'Use E.164 with the country code, e.g. +14155550123.';
  end if;
  perform private.require_outbound_setup(create_outbound_call.org_id, create_outbound_call.bot_id);
  zone := private.callee_zone(create_outbound_call.org_id, create_outbound_call.callee_time_zone);
  slot := private.first_call_slot(create_outbound_call.org_id, create_outbound_call.bot_id, zone, create_outbound_call.scheduled_at);
  insert into public.calls (org_id, bot_id, direction, to_number, callee_time_zone, status, scheduled_at, next_dial_at, provider, created_by)
  values (create_outbound_call.org_id, create_outbound_call.bot_id, 'outbound', number, zone, 'queued', slot, slot, 'vapi', auth.uid())
  returning * into created;
  return created;
end;
$$;

-- Latest definition: 20261123001210_call_operations.sql (cancel_call, its only
-- user, was restated in 20261123004800_call_dial_once.sql and calls it
-- unchanged); only the checks change: the service role finds any call and
-- passes the permission check.
create or replace function private.manageable_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
  service boolean := auth.role() is not distinct from 'service_role';
begin
  select * into target from public.calls c where c.id = manageable_call.call_id for update;
  if not found or not (service or target.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'call not found' using errcode = 'no_data_found';
  end if;
  -- The service role cancels for an API key with calls.write, after the calls
  -- function has found the call in the key's org; users need the permission.
  if not service then
    perform private.require_permission(target.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(target.org_id);
  end if;
  return target;
end;
$$;

comment on function public.create_outbound_call(uuid, uuid, text, timestamptz, text) is 'Queues an outbound call from a bot to a number (normalized to E.164), dialled at the first moment at or after scheduled_at (default now) inside the bot''s business hours and 08:00-21:00 of the callee''s time zone (default the org''s). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls).';
comment on function public.cancel_call(uuid) is 'Cancels a queued call (ended_reason canceled-by-user); 23514 for any other status, while the dispatcher is dialling it, or while a dial''s outcome is being checked with the provider. Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls/:id/cancel).';

grant execute on function
  public.create_outbound_call(uuid, uuid, text, timestamptz, text),
  private.create_outbound_call(uuid, uuid, text, timestamptz, text),
  public.cancel_call(uuid),
  private.cancel_call(uuid)
to service_role;
