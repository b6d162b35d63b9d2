-- Servers run call campaigns with an API key (calls.write): POST
-- /functions/v1/calls/campaigns and /functions/v1/calls/campaigns/:id/cancel
-- verify the key, then run create_call_campaign and cancel_call_campaign as
-- the service role acting for the key (the audit log names the key). Both
-- required a user (private.require_permission, and for cancelling
-- private.readable_org_ids), so the service role could do neither. The calls
-- function checks that the bot (through create_call_campaign's org) and the
-- campaign belong to the key's org; private.require_acting_key_org checks it
-- again here.

-- Latest definition: 20261123001210_call_operations.sql; only the permission
-- check changes: the service role passes it (in its key's org).
create or replace function private.create_call_campaign(
  org_id uuid, bot_id uuid, name text, numbers text[], scheduled_at timestamptz, callee_time_zone text
)
returns table (campaign_id uuid, calls_created integer, duplicates_removed integer, invalid_numbers text[])
language plpgsql
security definer
set search_path = ''
as $$
declare
  clean_name text := pg_catalog.btrim(name);
  bad text[];
  valid_count integer;
  distinct_count integer;
  zone text;
  slot timestamptz;
  campaign public.call_campaigns;
begin
  -- The service role queues campaigns for an API key with calls.write, whose
  -- org the calls function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_call_campaign.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(create_call_campaign.org_id);
  end if;
  if clean_name is null or length(clean_name) not between 1 and 100 then
    raise exception 'a campaign name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  -- The cap counts what was sent, duplicates and invalid ones included.
  if coalesce(cardinality(numbers), 0) not between 1 and 1000 then
    raise exception 'a campaign has 1 to 1000 numbers (got %)', coalesce(cardinality(numbers), 0)
      using errcode = 'invalid_parameter_value';
  end if;
  select
    coalesce(array_agg(n.raw order by n.position) filter (where n.number is null), '{}'),
    count(n.number)::integer,
    count(distinct n.number)::integer
  into bad, valid_count, distinct_count
  from (
    select u.raw, u.position, private.normalize_phone_number(u.raw) as number
    from unnest(numbers) with ordinality u(raw, position)
  ) n;
  if valid_count = 0 then
    raise exception 'none of the % numbers is a phone number', cardinality(numbers)
      using errcode = 'invalid_parameter_value', hint = 'Use E.164 with the country code, e.g. +14155550123.';
  end if;
  perform private.require_outbound_setup(create_call_campaign.org_id, create_call_campaign.bot_id);
  zone := private.callee_zone(create_call_campaign.org_id, create_call_campaign.callee_time_zone);
  -- One slot for the whole campaign: the dispatcher works through it in order.
  slot := private.first_call_slot(create_call_campaign.org_id, create_call_campaign.bot_id, zone, create_call_campaign.scheduled_at);

  insert into public.call_campaigns (org_id, bot_id, name, scheduled_at, calls_created, duplicates_removed, invalid_numbers, created_by)
  values (create_call_campaign.org_id, create_call_campaign.bot_id, clean_name, slot, distinct_count,
          valid_count - distinct_count, bad, auth.uid())
  returning * into campaign;

  -- One call per distinct number, in the order the numbers came (first occurrence).
  insert into public.calls (org_id, bot_id, campaign_id, direction, to_number, callee_time_zone, status, scheduled_at, next_dial_at, provider, created_by)
  select create_call_campaign.org_id, create_call_campaign.bot_id, campaign.id, 'outbound', d.number, zone, 'queued', slot, slot, 'vapi', auth.uid()
  from (
    select n.number, min(n.position) as first_position
    from (
      select private.normalize_phone_number(u.raw) as number, u.position
      from unnest(numbers) with ordinality u(raw, position)
    ) n
    where n.number is not null
    group by n.number
  ) d
  order by d.first_position;

  return query select campaign.id, distinct_count, valid_count - distinct_count, bad;
end;
$$;

-- Latest definition: 20261123004800_call_dial_once.sql; only the checks
-- change: the service role finds any campaign and passes the permission
-- check (in its key's org).
create or replace function private.cancel_call_campaign(campaign_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  campaign public.call_campaigns;
  canceled integer;
  service boolean := auth.role() is not distinct from 'service_role';
begin
  select * into campaign from public.call_campaigns k where k.id = cancel_call_campaign.campaign_id for update;
  if not found or not (service or campaign.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'call campaign not found' using errcode = 'no_data_found';
  end if;
  -- The service role cancels for an API key with calls.write, after the calls
  -- function has found the campaign in the key's org; users need the permission.
  if not service then
    perform private.require_permission(campaign.org_id, 'calls.manage');
  else
    perform private.require_acting_key_org(campaign.org_id);
  end if;
  if campaign.status <> 'canceled' then
    update public.call_campaigns k set status = 'canceled', canceled_at = pg_catalog.now() where k.id = campaign.id;
  end if;
  -- Calls being dialled right now, or whose dial's outcome is unknown, are
  -- left to the dispatcher; a retry of theirs is canceled by
  -- record_dial_result (the campaign is canceled).
  update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user'
  where c.campaign_id = campaign.id and c.org_id = campaign.org_id and c.status = 'queued'
    and (c.dial_lease_until is null or c.dial_lease_until <= pg_catalog.now())
    and c.dial_started_at is null;
  get diagnostics canceled = row_count;
  return canceled;
end;
$$;

comment on function public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text) is 'Queues one outbound call per distinct number (at most 1000 given, counted before duplicates are removed), all at the campaign''s first slot; numbers that are not phone numbers are reported and skipped (22023 when none is). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls/campaigns).';
comment on function public.cancel_call_campaign(uuid) is 'Cancels a campaign and its queued calls; returns how many calls it canceled (0 when called again). Admins (calls.manage), or the service role for an API key with calls.write (POST /functions/v1/calls/campaigns/:id/cancel).';

grant execute on function
  public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text),
  private.create_call_campaign(uuid, uuid, text, text[], timestamptz, text),
  public.cancel_call_campaign(uuid),
  private.cancel_call_campaign(uuid)
to service_role;
