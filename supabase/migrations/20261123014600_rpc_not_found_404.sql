-- Public RPCs answer "not found" as PT404, which PostgREST turns into 404.
--
-- PostgREST answers SQLSTATE P0001 with 400 and every other P0... with 500;
-- PTxxx gives status xxx. So each no_data_found (P0002) a public RPC raised
-- reached a client calling it through PostgREST (supabase-js rpc) as a 500:
-- an admin removing a member twice, a member leaving twice, revoking an API
-- key with a stale id (the README promises 404 not_found). Each function a
-- public RPC reaches that raised it now raises PT404 with the same message;
-- the edge functions map PT404 as they mapped P0002 (pg-errors.ts), so their
-- answers do not change. Functions only the service role reaches keep P0002,
-- as does record_user_idempotent_response, whose P0002 is our own bug (a key
-- this request never claimed), not the client's.
--
-- Each definition is the latest one, changed only in that errcode;
-- create or replace keeps the grants. The comments that named P0002 name
-- PT404 now.

create or replace function private.target_membership(org_id uuid, user_id uuid)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.memberships;
begin
  select * into target from public.memberships m
  where m.org_id = target_membership.org_id and m.user_id = target_membership.user_id
  for update;
  if not found then
    raise exception 'no such member in this organization' using errcode = 'PT404';
  end if;
  return target;
end;
$$;

create or replace function private.revoke_api_key(api_key_id uuid)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  select * into target from public.api_keys k where k.id = revoke_api_key.api_key_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'API key not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is null then
    update public.api_keys k set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
    where k.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;

create or replace function private.set_api_key_rate_limit(api_key_id uuid, per_minute integer)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  if per_minute is null or per_minute not between 1 and 10000 then
    raise exception 'per_minute must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  select * into target from public.api_keys k where k.id = set_api_key_rate_limit.api_key_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'API key not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is not null then
    raise exception 'the API key is revoked' using errcode = 'invalid_parameter_value';
  end if;
  update public.api_keys k set rate_limit_per_minute = set_api_key_rate_limit.per_minute
  where k.id = target.id
  returning * into target;
  return target;
end;
$$;

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
    raise exception 'call not found' using errcode = 'PT404';
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
    raise exception 'call campaign not found' using errcode = 'PT404';
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

create or replace function private.retry_document(document_id uuid)
returns public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.documents;
  service boolean := auth.role() is not distinct from 'service_role';
begin
  select * into target from public.documents d where d.id = retry_document.document_id for update;
  if not found or not (service or target.org_id = any (array(select private.readable_org_ids('knowledge.read')))) then
    raise exception 'document not found' using errcode = 'PT404';
  end if;
  -- The service role retries for an API key with knowledge.write, after the
  -- knowledge function has found the document in the key's org; users need
  -- the permission.
  if not service then
    perform private.require_permission(target.org_id, 'knowledge.write');
  else
    perform private.require_acting_key_org(target.org_id);
  end if;
  -- A document being deleted takes no ingestion (20261123004900): queued, it would stay queued.
  if target.deletion_started_at is not null then
    raise exception 'the document is being deleted' using errcode = 'invalid_parameter_value';
  end if;
  -- Sent again after a lost answer: the retry it queued is under way.
  if target.status in ('queued', 'processing') and target.retried_at is not null then
    return target;
  end if;
  if target.status not in ('failed', 'ready') then
    raise exception 'only a failed or ready document can be ingested again (it is %)', target.status
      using errcode = 'invalid_parameter_value';
  end if;
  -- Every retry embeds the whole file again: refused once the period's embedding tokens are used up.
  perform private.require_quota(target.org_id, 'embedding_tokens');
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_attempts = 0,
      retried_at = pg_catalog.now(), last_failure_reason = null
  where d.id = target.id
  returning * into target;
  perform private.request_ingest(target.id);
  return target;
end;
$$;

create or replace function private.rotate_call_provider_secret(org_id uuid, provider text, overlap_hours integer)
returns table (secret text, previous_secret_valid_until timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  fresh text;
  current private.call_provider_secrets;
  overlap_ends timestamptz;
begin
  perform private.require_permission(rotate_call_provider_secret.org_id, 'calls.manage');
  perform private.require_call_provider(rotate_call_provider_secret.provider);
  if overlap_hours is null or overlap_hours not between 0 and 168 then
    raise exception 'the overlap is 0 to 168 hours' using errcode = 'invalid_parameter_value';
  end if;
  select * into current from private.call_provider_secrets s
  where s.org_id = rotate_call_provider_secret.org_id and s.provider = rotate_call_provider_secret.provider
  for update;
  if not found then
    raise exception 'this organization has no % secret yet', rotate_call_provider_secret.provider
      using errcode = 'PT404', hint = 'Create one with create_call_provider_secret.';
  end if;
  fresh := private.new_call_provider_secret(rotate_call_provider_secret.provider);
  -- The secret being replaced stays valid for the overlap, so the provider can switch without a gap.
  overlap_ends := case when overlap_hours > 0 then pg_catalog.now() + pg_catalog.make_interval(hours => overlap_hours) end;

  -- A second rotation within the overlap (a double click, a retry after a lost answer) must not end the
  -- secret the provider may still be using: the previous one joins the older ones, with its own time.
  if current.previous_secret is not null then
    insert into private.call_provider_older_secrets (org_id, provider, secret, valid_until)
    values (current.org_id, current.provider, current.previous_secret, current.previous_valid_until);
  end if;
  -- None outlives the new overlap, as with webhook secrets: an overlap of 0 (a leaked secret) ends them all.
  update private.call_provider_older_secrets o
  set valid_until = least(o.valid_until, coalesce(overlap_ends, pg_catalog.now()))
  where o.org_id = current.org_id and o.provider = current.provider;
  delete from private.call_provider_older_secrets o
  where o.org_id = current.org_id and o.provider = current.provider and o.valid_until <= pg_catalog.now();
  -- Each accepted secret is one more to try on every event: with the previous one, at most 4 earlier ones.
  delete from private.call_provider_older_secrets o
  where o.org_id = current.org_id and o.provider = current.provider
    and o.id not in (
      select k.id from private.call_provider_older_secrets k
      where k.org_id = current.org_id and k.provider = current.provider
      order by k.id desc
      limit 3
    );

  update private.call_provider_secrets s
  set secret = fresh,
      previous_secret = case when overlap_ends is not null then current.secret end,
      previous_valid_until = overlap_ends,
      created_at = clock_timestamp()
  where s.org_id = current.org_id and s.provider = current.provider;
  update public.call_providers p
  set secret_created_at = pg_catalog.now(), previous_secret_valid_until = overlap_ends
  where p.org_id = current.org_id and p.provider = current.provider;
  return query select fresh, overlap_ends;
end;
$$;

create or replace function private.set_call_provider_outbound(org_id uuid, provider text, phone_number_id text)
returns public.call_providers
language plpgsql
security definer
set search_path = ''
as $$
declare
  cleaned text := nullif(pg_catalog.btrim(phone_number_id), '');
  updated public.call_providers;
begin
  perform private.require_platform_for_voice_id('an organization''s outbound phone number (outbound_phone_number_id)');
  perform private.require_call_provider(set_call_provider_outbound.provider);
  -- Only the Vapi dialer exists; a generic provider only sends us events.
  if set_call_provider_outbound.provider <> 'vapi' then
    raise exception 'outbound calls are placed through vapi only, not %', set_call_provider_outbound.provider
      using errcode = 'invalid_parameter_value';
  end if;
  if phone_number_id is not null and (cleaned is null or length(cleaned) > 200) then
    raise exception 'phone_number_id must have 1 to 200 characters (null clears it)'
      using errcode = 'invalid_parameter_value';
  end if;
  update public.call_providers p set outbound_phone_number_id = cleaned
  where p.org_id = set_call_provider_outbound.org_id and p.provider = set_call_provider_outbound.provider
  returning * into updated;
  if not found then
    raise exception 'this organization has no % provider yet', set_call_provider_outbound.provider
      using errcode = 'PT404', hint = 'Create its secret first with create_call_provider_secret.';
  end if;
  return updated;
end;
$$;

create or replace function private.require_outbound_setup(org_id uuid, bot_id uuid)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  bot public.bots;
begin
  select * into bot from public.bots b where b.id = require_outbound_setup.bot_id and b.org_id = require_outbound_setup.org_id;
  if not found then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  if not bot.enabled then
    raise exception 'the bot % is disabled', bot.name using errcode = 'invalid_parameter_value';
  end if;
  if bot.voice_assistant_id is null then
    raise exception 'the bot % has no voice assistant', bot.name
      using errcode = 'invalid_parameter_value',
            hint = 'Set bots.voice_assistant_id to the provider''s assistant id (a Vapi assistant that uses this bot as its custom LLM).';
  end if;
  -- The provider's assistant speaks through the bot's voice channel; without it every turn is refused.
  if not ('voice' = any (bot.channels)) then
    raise exception 'the bot % does not answer on the voice channel', bot.name
      using errcode = 'invalid_parameter_value', constraint = 'bots_voice_channel',
            hint = 'Add voice to the bot''s channels.';
  end if;
  if not exists (
    select 1 from public.call_providers p
    where p.org_id = require_outbound_setup.org_id and p.provider = 'vapi' and p.outbound_phone_number_id is not null
  ) then
    raise exception 'this organization has no vapi phone number to call from'
      using errcode = 'invalid_parameter_value',
            hint = 'Create the vapi provider (create_call_provider_secret) and set its phone number with set_call_provider_outbound.';
  end if;
  return bot.voice_assistant_id;
end;
$$;

create or replace function private.call_stats_scope(org_id uuid, from_date date, to_date date, bot_id uuid, time_zone text)
returns text
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  zone text;
begin
  if call_stats_scope.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if auth.role() is distinct from 'service_role'
    and not (call_stats_scope.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'you may not read this organization''s calls' using errcode = 'insufficient_privilege';
  end if;
  if from_date is null or to_date is null then
    raise exception 'from_date and to_date are required' using errcode = 'invalid_parameter_value';
  end if;
  if from_date > to_date then
    raise exception 'from_date must not be after to_date' using errcode = 'invalid_parameter_value';
  end if;
  if to_date - from_date + 1 > 366 then
    raise exception 'a call statistics range spans at most 366 days (asked for %)', to_date - from_date + 1
      using errcode = 'invalid_parameter_value';
  end if;
  zone := coalesce(call_stats_scope.time_zone,
    (select o.time_zone from public.organizations o where o.id = call_stats_scope.org_id), 'UTC');
  perform private.require_time_zone(zone);
  if call_stats_scope.bot_id is not null and not exists (
    select 1 from public.bots b where b.id = call_stats_scope.bot_id and b.org_id = call_stats_scope.org_id
  ) then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  return zone;
end;
$$;

create or replace function private.next_call_slot(org_id uuid, bot_id uuid, callee_time_zone text, not_before timestamptz)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
  callee_zone text;
  window_range tstzrange;
  callee_ranges tstzmultirange;
  open_ranges tstzmultirange;
  allowed tstzmultirange;
begin
  if next_call_slot.org_id is null or next_call_slot.not_before is null then
    raise exception 'org_id and not_before are required' using errcode = 'invalid_parameter_value';
  end if;
  if auth.role() = 'authenticated' and not private.has_permission(next_call_slot.org_id, 'calls.read') then
    raise exception 'you do not have the calls.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  zone := private.bot_time_zone(next_call_slot.org_id, next_call_slot.bot_id);
  if zone is null then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  callee_zone := coalesce(next_call_slot.callee_time_zone, zone);
  if callee_zone <> zone then
    perform private.require_time_zone(callee_zone);
  end if;
  window_range := pg_catalog.tstzrange(not_before, not_before + interval '14 days', '[)');

  select pg_catalog.range_agg(pg_catalog.tstzrange(
    (g::date + time '08:00') at time zone callee_zone, (g::date + time '21:00') at time zone callee_zone, '[)'))
  into callee_ranges
  from pg_catalog.generate_series(
    (not_before at time zone callee_zone)::date - 1, (not_before at time zone callee_zone)::date + 15, interval '1 day'
  ) g;

  open_ranges := private.business_hours_ranges(next_call_slot.org_id, next_call_slot.bot_id, window_range);
  allowed := callee_ranges * pg_catalog.tstzmultirange(window_range)
    - private.closed_ranges(next_call_slot.org_id, next_call_slot.bot_id, window_range);
  if open_ranges is not null then
    allowed := allowed * open_ranges;
  end if;
  if pg_catalog.isempty(allowed) then
    return null;
  end if;
  return pg_catalog.lower(allowed);
end;
$$;

comment on function private.next_call_slot(uuid, uuid, text, timestamptz) is 'Earliest instant >= not_before inside the bot''s (else the org''s) business hours and 08:00-21:00 in the callee''s time zone (default: the bot''s, else the org''s), outside every closure of the org and of the bot, at most 14 days ahead; null if none (a closure covering the rest of the 14 days included).';

create or replace function private.business_hours_ranges(org_id uuid, bot_id uuid, during tstzrange)
returns tstzmultirange
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  zone text;
  hours_bot uuid;
  open_ranges tstzmultirange;
begin
  -- The bot's own hours if it has any, else the org's default.
  if business_hours_ranges.bot_id is not null and exists (
    select 1 from public.business_hours h
    where h.org_id = business_hours_ranges.org_id and h.bot_id = business_hours_ranges.bot_id
  ) then
    hours_bot := business_hours_ranges.bot_id;
  end if;
  zone := private.bot_time_zone(business_hours_ranges.org_id, hours_bot);
  if zone is null then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  if not exists (
    select 1 from public.business_hours h
    where h.org_id = business_hours_ranges.org_id and h.bot_id is not distinct from hours_bot
  ) then
    return null;
  end if;
  select pg_catalog.range_agg(pg_catalog.tstzrange((d.day + h.opens) at time zone zone, (d.day + h.closes) at time zone zone, '[)'))
  into open_ranges
  from (
    select g::date as day
    from pg_catalog.generate_series(
      (pg_catalog.lower(during) at time zone zone)::date - 1,
      (pg_catalog.upper(during) at time zone zone)::date + 1,
      interval '1 day'
    ) g
  ) d
  join public.business_hours h
    on h.org_id = business_hours_ranges.org_id
   and h.bot_id is not distinct from hours_bot
   and h.weekday = extract(isodow from d.day);
  return coalesce(open_ranges, '{}'::tstzmultirange) * pg_catalog.tstzmultirange(during);
end;
$$;

comment on function private.business_hours_ranges(uuid, uuid, tstzrange) is 'The instants within a window when the bot (else the org) is open: the bot''s own hours in its time_zone (else the org''s), or the org''s default hours in the org''s zone; null when no business hours restrict it. The one place later rules (closures) subtract from.';

create or replace function private.begin_calendar_connection(org_id uuid, provider text, code_verifier text, bot_id uuid, redirect_to text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid;
  state_id uuid;
begin
  perform private.require_permission(begin_calendar_connection.org_id, 'calendar.manage');
  caller := auth.uid();
  perform private.require_calendar_provider(begin_calendar_connection.provider);
  if begin_calendar_connection.code_verifier is null
    or begin_calendar_connection.code_verifier !~ '^[A-Za-z0-9._~-]{43,128}$' then
    raise exception 'code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, "-", ".", "_" and "~" (RFC 7636)'
      using errcode = 'invalid_parameter_value';
  end if;
  if begin_calendar_connection.bot_id is not null and not exists (
    select 1 from public.bots b where b.id = begin_calendar_connection.bot_id and b.org_id = begin_calendar_connection.org_id
  ) then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  if begin_calendar_connection.redirect_to is not null and not private.is_calendar_redirect(begin_calendar_connection.redirect_to) then
    raise exception 'redirect_to must be an https URL or a path starting with a single /' using errcode = 'invalid_parameter_value';
  end if;
  -- Housekeeping: the caller's expired states, and anyone's expired a day ago
  -- (a state nobody came back for); both cheap through the indexes.
  delete from private.calendar_oauth_states s where s.user_id = caller and s.expires_at < pg_catalog.now();
  delete from private.calendar_oauth_states s where s.expires_at < pg_catalog.now() - interval '1 day';
  insert into private.calendar_oauth_states (org_id, user_id, bot_id, provider, code_verifier, redirect_to)
  values (begin_calendar_connection.org_id, caller, begin_calendar_connection.bot_id, begin_calendar_connection.provider,
          begin_calendar_connection.code_verifier, begin_calendar_connection.redirect_to)
  returning jti into state_id;
  return state_id;
end;
$$;

create or replace function private.disconnect_calendar(inout connection_id uuid, out provider text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calendar_connections;
begin
  select * into target from public.calendar_connections c where c.id = disconnect_calendar.connection_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('calendar.read')))) then
    raise exception 'calendar connection not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'calendar.manage');
  -- Disconnecting twice is fine (a retry after a failed revocation).
  update public.calendar_connections c set status = 'revoked', status_reason = 'disconnected'
  where c.id = target.id and c.status <> 'revoked';
  connection_id := target.id;
  provider := target.provider;
end;
$$;

create or replace function private.writable_appointment(appointment_id uuid)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.appointments;
begin
  select * into target from public.appointments a where a.id = writable_appointment.appointment_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('calendar.read')))) then
    raise exception 'appointment not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'appointments.write');
  return target;
end;
$$;

create or replace function private.insert_appointment(appointment public.appointments)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  created public.appointments;
begin
  if appointment.bot_id is not null and not exists (
    select 1 from public.bots b where b.id = appointment.bot_id and b.org_id = appointment.org_id
  ) then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  if appointment.call_id is not null and not exists (
    select 1 from public.calls c where c.id = appointment.call_id and c.org_id = appointment.org_id
  ) then
    raise exception 'call not found' using errcode = 'PT404';
  end if;
  if appointment.conversation_id is not null and not exists (
    select 1 from public.conversations c where c.id = appointment.conversation_id and c.org_id = appointment.org_id
  ) then
    raise exception 'conversation not found' using errcode = 'PT404';
  end if;
  if appointment.resource is null or length(appointment.resource) not between 1 and 200 or appointment.resource <> pg_catalog.btrim(appointment.resource) then
    raise exception 'resource must have 1 to 200 characters, without surrounding spaces' using errcode = 'invalid_parameter_value';
  end if;
  perform private.require_bookable_time(appointment.org_id, appointment.bot_id, appointment.starts_at, appointment.ends_at);
  begin
    insert into public.appointments (
      org_id, bot_id, connection_id, resource, starts_at, ends_at, time_zone, status, attendee_name, attendee_email,
      attendee_phone, notes, call_id, conversation_id, source, sync_status, created_by
    ) values (
      appointment.org_id, appointment.bot_id, private.booking_calendar(appointment.org_id, appointment.bot_id),
      appointment.resource, appointment.starts_at, appointment.ends_at, appointment.time_zone, 'booked',
      appointment.attendee_name, appointment.attendee_email, appointment.attendee_phone, appointment.notes,
      appointment.call_id, appointment.conversation_id, appointment.source, 'pending', auth.uid()
    )
    returning * into created;
  exception
    when exclusion_violation then
      raise exception 'that time is already booked' using errcode = 'exclusion_violation',
        hint = 'Choose another time, or ask for the free slots.';
  end;
  return created;
end;
$$;

create or replace function public.search_products(
  org_id uuid,
  query text default null,
  category_id uuid default null,
  include_subcategories boolean default true,
  min_price numeric default null,
  max_price numeric default null,
  active_only boolean default true,
  match_count integer default 10,
  offset_count integer default 0
)
returns setof public.product_search_result
language plpgsql
stable
security invoker
set search_path = ''
-- word_similarity >= 0.4 (the default, 0.6, misses one-letter typos in short words).
set pg_trgm.word_similarity_threshold = 0.4
as $$
declare
  text_query text := nullif(btrim(search_products.query), '');
  ts_query tsquery;
  category_ids uuid[];
begin
  if search_products.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  if offset_count is null or offset_count not between 0 and 10000 then
    raise exception 'offset_count must be between 0 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  if min_price < 0 or max_price < 0 then
    raise exception 'prices are not negative' using errcode = 'invalid_parameter_value';
  end if;
  if min_price > max_price then
    raise exception 'min_price must not exceed max_price' using errcode = 'invalid_parameter_value';
  end if;
  if length(text_query) > 200 then
    raise exception 'a search text has at most 200 characters' using errcode = 'invalid_parameter_value';
  end if;

  if search_products.category_id is not null then
    if not exists (
      select 1 from public.catalog_categories c
      where c.id = search_products.category_id and c.org_id = search_products.org_id
    ) then
      raise exception 'category not found' using errcode = 'PT404';
    end if;
    with recursive tree (id, depth) as (
      select search_products.category_id, 1
      union all
      select c.id, t.depth + 1 from public.catalog_categories c
      join tree t on c.parent_id = t.id
      where coalesce(include_subcategories, true) and t.depth < 20
    )
    select array_agg(t.id) into category_ids from tree t;
  end if;
  if text_query is not null then
    ts_query := websearch_to_tsquery('simple', text_query);
  end if;

  return query
  select p.id, p.org_id, p.category_id, p.name, p.description, p.price, p.currency::text, p.stock, p.sku, p.url,
    p.active, p.created_at, p.updated_at, c.name,
    case when text_query is null then 0::double precision
      else (ts_rank_cd(p.search, ts_query) + extensions.word_similarity(text_query, p.name))::double precision
    end as score
  from public.products p
  left join public.catalog_categories c on c.id = p.category_id
  where p.org_id = search_products.org_id
    and (category_ids is null or p.category_id = any (category_ids))
    and (search_products.min_price is null or p.price >= search_products.min_price)
    and (search_products.max_price is null or p.price <= search_products.max_price)
    and (not coalesce(active_only, true) or p.active)
    and (text_query is null or p.search @@ ts_query or text_query operator(extensions.<%) p.name)
  order by score desc, p.name, p.id
  limit match_count
  offset offset_count;
end;
$$;

comment on function public.search_products(uuid, text, uuid, boolean, numeric, numeric, boolean, integer, integer) is 'Searches the org''s catalog the caller may read: text (full text, or trigram similarity of the name so typos match), category (with its subcategories), price range, active only; ranked, paged (match_count 1 to 50).';

create or replace function public.match_bot_chunks(
  bot_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10
)
returns table (
  chunk_id bigint,
  document_id uuid,
  document_name text,
  collection_id uuid,
  page_start integer,
  page_end integer,
  content text,
  score double precision,
  vector_rank integer,
  text_rank integer
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  bot_org_id uuid;
  collection_ids uuid[];
begin
  if query_embedding is null then
    raise exception 'query_embedding is required' using errcode = 'invalid_parameter_value';
  end if;
  if extensions.vector_norm(query_embedding) = 0 then
    raise exception 'query_embedding must not be all zeros' using errcode = 'invalid_parameter_value';
  end if;
  select b.org_id into bot_org_id from public.bots b where b.id = match_bot_chunks.bot_id;
  if bot_org_id is null then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  -- No linked collection: the bot answers from every document of its org.
  select array_agg(bc.collection_id order by bc.collection_id) into collection_ids
  from public.bot_collections bc where bc.bot_id = match_bot_chunks.bot_id;
  return query
  select m.* from public.match_document_chunks(bot_org_id, query_embedding, query_text, match_count, collection_ids) m;
end;
$$;

create or replace function private.delete_organization(org_id uuid, confirm_name text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.organizations;
begin
  perform private.require_permission(delete_organization.org_id, 'org.delete');
  select * into target from public.organizations o where o.id = delete_organization.org_id;
  if not found then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  -- A running ingest step holds its document and then needs the org row's key share and the head: it
  -- commits before the org row is locked (see 20261123009600's header).
  perform 1 from public.documents d where d.org_id = target.id order by d.id for update;
  select * into target from public.organizations o where o.id = delete_organization.org_id for update;
  if not found then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.set_config('private.deleting_org', target.id::text, true);
  delete from public.organizations o where o.id = target.id;
  perform pg_catalog.set_config('private.deleting_org', '', true);
end;
$$;

comment on function public.revoke_api_key(uuid) is 'Revokes an API key at once. Revoking twice is a no-op. PT404 for an unknown key or another org''s; 42501 without api_keys.manage.';
comment on function public.set_api_key_rate_limit(uuid, integer) is 'Sets how many requests a minute the key may make to the chat endpoints (1 to 10,000; admins and up). PT404 for an unknown key or another org''s.';
comment on function public.disconnect_calendar(uuid) is 'Disconnects a calendar: marks it revoked at once and returns { connection_id, provider }; the calendar function then revokes the grant at the provider and deletes it. Admins (calendar.manage); PT404 outside the caller''s orgs.';
comment on function public.match_bot_chunks(uuid, extensions.vector, text, integer) is 'match_document_chunks over what a bot answers from: its collections, or every document of its org when it has none. As the caller: the bot must be visible (bots.read) and the chunks readable (knowledge.read); PT404 for a bot the caller cannot see.';
