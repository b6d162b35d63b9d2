-- Call operations on top of the voice calls core (20261123001200_calls.sql):
-- where outbound calls go out from, outbound calls and campaigns, the
-- dispatcher's SQL, after-call work (analysis, recordings), feedback and
-- call analytics.
--
-- Who does what:
-- * admins say which provider assistant speaks as a bot
--   (bots.voice_assistant_id, under the bots policies) and which provider
--   phone number the org dials from (set_call_provider_outbound), then place
--   calls (create_outbound_call) and campaigns (create_call_campaign), and
--   cancel them while they are still queued;
-- * the `call-dispatcher` edge function, woken by pg_cron every 15 seconds
--   and by an insert trigger on calls, claims due calls with row locks
--   (private.claim_due_calls), dials them, reports each dial
--   (private.record_dial_result, which decides retry or failure), and in the
--   same pass does the after-call work: a summary and sentiment for ended
--   calls the provider left without (private.calls_needing_analysis /
--   save_call_analysis, metered as chat usage) and a copy of each recording
--   in the `recordings` bucket (private.calls_needing_recording /
--   save_call_recording);
-- * members rate calls (call_feedback) and read the analytics
--   (call_stats_daily, call_stats_summary), which run as the caller.

-- ---------------------------------------------------------------------------
-- Where outbound calls go out from
-- ---------------------------------------------------------------------------

-- The provider's assistant (e.g. a Vapi assistant whose custom-LLM URL is our
-- chat/completions endpoint) that speaks as the bot on a call.
alter table public.bots add column voice_assistant_id text
  constraint bots_voice_assistant_id_length check (length(voice_assistant_id) between 1 and 200 and voice_assistant_id = btrim(voice_assistant_id));
comment on column public.bots.voice_assistant_id is 'The voice provider''s assistant that speaks as this bot on outbound calls (a Vapi assistant id). Admins set it; without it the bot places no calls.';
-- Bots are written column by column (20261123001100): admins set this one
-- like the others, under the same policies.
grant insert (voice_assistant_id), update (voice_assistant_id) on public.bots to authenticated;

-- The provider's phone number the org dials from (Vapi's phoneNumberId).
alter table public.call_providers add column outbound_phone_number_id text
  constraint call_providers_outbound_phone_number_id_length
    check (length(outbound_phone_number_id) between 1 and 200 and outbound_phone_number_id = btrim(outbound_phone_number_id));
comment on column public.call_providers.outbound_phone_number_id is 'The provider''s phone-number id outbound calls are placed from (vapi only). Set with set_call_provider_outbound.';

create function private.set_call_provider_outbound(org_id uuid, provider text, phone_number_id text)
returns public.call_providers
language plpgsql
security definer
set search_path = ''
as $$
declare
  cleaned text := nullif(pg_catalog.btrim(phone_number_id), '');
  updated public.call_providers;
begin
  perform private.require_permission(set_call_provider_outbound.org_id, 'calls.manage');
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
      using errcode = 'no_data_found', hint = 'Create its secret first with create_call_provider_secret.';
  end if;
  return updated;
end;
$$;

create function public.set_call_provider_outbound(org_id uuid, provider text, phone_number_id text)
returns public.call_providers
language sql
security invoker
set search_path = ''
as $$
  select * from private.set_call_provider_outbound(set_call_provider_outbound.org_id, set_call_provider_outbound.provider,
    set_call_provider_outbound.phone_number_id);
$$;
comment on function public.set_call_provider_outbound(uuid, text, text) is 'Sets (null clears) the provider phone-number id the org''s outbound calls are placed from; vapi only, and the org must have the provider (create_call_provider_secret). Admins (calls.manage).';

-- ---------------------------------------------------------------------------
-- Campaigns: what the creation reported, kept for the dashboard.
-- ---------------------------------------------------------------------------

alter table public.call_campaigns
  add column scheduled_at timestamptz,
  add column calls_created integer not null default 0 constraint call_campaigns_calls_created check (calls_created between 0 and 1000),
  add column duplicates_removed integer not null default 0 constraint call_campaigns_duplicates_removed check (duplicates_removed between 0 and 1000),
  add column invalid_numbers text[] not null default '{}' constraint call_campaigns_invalid_numbers check (cardinality(invalid_numbers) <= 1000),
  add column canceled_at timestamptz,
  add constraint call_campaigns_canceled_at check ((status = 'canceled') = (canceled_at is not null));
comment on column public.call_campaigns.scheduled_at is 'The slot every call of the campaign was first scheduled for.';
comment on column public.call_campaigns.invalid_numbers is 'The given numbers that were not phone numbers (not called).';

-- ---------------------------------------------------------------------------
-- Placing calls (admins: calls.manage)
-- ---------------------------------------------------------------------------

-- What an outbound call of this bot needs, checked when it is placed (and
-- again, by claim_due_calls, when it is dialled): the bot, in the org and
-- enabled, with a provider assistant, and the org's vapi phone number.
-- Returns the bot's assistant id.
create function private.require_outbound_setup(org_id uuid, bot_id uuid)
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
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  if not bot.enabled then
    raise exception 'the bot % is disabled', bot.name using errcode = 'invalid_parameter_value';
  end if;
  if bot.voice_assistant_id is null then
    raise exception 'the bot % has no voice assistant', bot.name
      using errcode = 'invalid_parameter_value',
            hint = 'Set bots.voice_assistant_id to the provider''s assistant id (a Vapi assistant that uses this bot as its custom LLM).';
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

-- The first slot for a new call or campaign (at or after now), or 22023.
create function private.first_call_slot(org_id uuid, bot_id uuid, callee_time_zone text, scheduled_at timestamptz)
returns timestamptz
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  slot timestamptz;
begin
  -- A moment in the past means as soon as possible.
  slot := private.next_call_slot(first_call_slot.org_id, first_call_slot.bot_id, first_call_slot.callee_time_zone,
    greatest(coalesce(first_call_slot.scheduled_at, pg_catalog.now()), pg_catalog.now()));
  if slot is null then
    raise exception 'no moment within the 14 days from % is inside the business hours and 08:00-21:00 of the callee''s time zone (%)',
      private.rfc3339(greatest(coalesce(first_call_slot.scheduled_at, pg_catalog.now()), pg_catalog.now())), first_call_slot.callee_time_zone
      using errcode = 'invalid_parameter_value', hint = 'Check the bot''s (or the organization''s) business hours.';
  end if;
  return slot;
end;
$$;

-- The callee's zone: the one given (checked), else the org's.
create function private.callee_zone(org_id uuid, callee_time_zone text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if callee_time_zone is not null then
    return private.require_time_zone(callee_time_zone);
  end if;
  return (select o.time_zone from public.organizations o where o.id = callee_zone.org_id);
end;
$$;

create function private.create_outbound_call(
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
  perform private.require_permission(create_outbound_call.org_id, 'calls.manage');
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

create function public.create_outbound_call(
  org_id uuid, bot_id uuid, to_number text, scheduled_at timestamptz default null, callee_time_zone text default null
)
returns public.calls
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_outbound_call(create_outbound_call.org_id, create_outbound_call.bot_id, create_outbound_call.to_number,
    create_outbound_call.scheduled_at, create_outbound_call.callee_time_zone);
$$;
comment on function public.create_outbound_call(uuid, uuid, text, timestamptz, text) is 'Queues an outbound call from a bot to a number (normalized to E.164), dialled at the first moment at or after scheduled_at (default now) inside the bot''s business hours and 08:00-21:00 of the callee''s time zone (default the org''s). Admins (calls.manage).';

create function private.create_call_campaign(
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
  perform private.require_permission(create_call_campaign.org_id, 'calls.manage');
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

create function public.create_call_campaign(
  org_id uuid, bot_id uuid, name text, numbers text[], scheduled_at timestamptz default null, callee_time_zone text default null
)
returns table (campaign_id uuid, calls_created integer, duplicates_removed integer, invalid_numbers text[])
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_call_campaign(create_call_campaign.org_id, create_call_campaign.bot_id, create_call_campaign.name,
    create_call_campaign.numbers, create_call_campaign.scheduled_at, create_call_campaign.callee_time_zone);
$$;
comment on function public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text) is 'Queues one outbound call per distinct number (at most 1000 given, counted before duplicates are removed), all at the campaign''s first slot; numbers that are not phone numbers are reported and skipped (22023 when none is). Admins (calls.manage).';

-- A call the caller cannot read is not found; a reader without calls.manage gets 42501.
create function private.manageable_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
begin
  select * into target from public.calls c where c.id = manageable_call.call_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'call not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'calls.manage');
  return target;
end;
$$;

create function private.cancel_call(call_id uuid)
returns public.calls
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls := private.manageable_call(cancel_call.call_id);
begin
  if target.status <> 'queued' then
    raise exception 'only a queued call can be canceled; this one is %', target.status using errcode = 'check_violation';
  end if;
  -- The dispatcher holds it and may be placing it this very moment.
  if target.dial_lease_until > pg_catalog.now() then
    raise exception 'the call is being dialled right now and can no longer be canceled' using errcode = 'check_violation';
  end if;
  update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user'
  where c.id = target.id
  returning * into target;
  return target;
end;
$$;

create function public.cancel_call(call_id uuid)
returns public.calls
language sql
security invoker
set search_path = ''
as $$
  select * from private.cancel_call(cancel_call.call_id);
$$;
comment on function public.cancel_call(uuid) is 'Cancels a queued call (ended_reason canceled-by-user); 23514 for any other status or while the dispatcher is dialling it. Admins (calls.manage).';

create function private.cancel_call_campaign(campaign_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  campaign public.call_campaigns;
  canceled integer;
begin
  select * into campaign from public.call_campaigns k where k.id = cancel_call_campaign.campaign_id for update;
  if not found or not (campaign.org_id = any (array(select private.readable_org_ids('calls.read')))) then
    raise exception 'call campaign not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(campaign.org_id, 'calls.manage');
  if campaign.status <> 'canceled' then
    update public.call_campaigns k set status = 'canceled', canceled_at = pg_catalog.now() where k.id = campaign.id;
  end if;
  -- Calls being dialled right now are left to finish; a retry of theirs is
  -- canceled by record_dial_result (the campaign is canceled).
  update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user'
  where c.campaign_id = campaign.id and c.org_id = campaign.org_id and c.status = 'queued'
    and (c.dial_lease_until is null or c.dial_lease_until <= pg_catalog.now());
  get diagnostics canceled = row_count;
  return canceled;
end;
$$;

create function public.cancel_call_campaign(campaign_id uuid)
returns integer
language sql
security invoker
set search_path = ''
as $$
  select private.cancel_call_campaign(cancel_call_campaign.campaign_id);
$$;
comment on function public.cancel_call_campaign(uuid) is 'Cancels a campaign and its queued calls; returns how many calls it canceled (0 when called again). Admins (calls.manage).';

revoke execute on function
  private.set_call_provider_outbound(uuid, text, text),
  private.require_outbound_setup(uuid, uuid),
  private.first_call_slot(uuid, uuid, text, timestamptz),
  private.callee_zone(uuid, text),
  private.create_outbound_call(uuid, uuid, text, timestamptz, text),
  private.create_call_campaign(uuid, uuid, text, text[], timestamptz, text),
  private.manageable_call(uuid),
  private.cancel_call(uuid),
  private.cancel_call_campaign(uuid)
from public, anon;
grant execute on function
  public.set_call_provider_outbound(uuid, text, text),
  public.create_outbound_call(uuid, uuid, text, timestamptz, text),
  public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text),
  public.cancel_call(uuid),
  public.cancel_call_campaign(uuid),
  private.set_call_provider_outbound(uuid, text, text),
  private.create_outbound_call(uuid, uuid, text, timestamptz, text),
  private.create_call_campaign(uuid, uuid, text, text[], timestamptz, text),
  private.cancel_call(uuid),
  private.cancel_call_campaign(uuid)
to authenticated;

-- ---------------------------------------------------------------------------
-- Dispatch (service role: the call-dispatcher function)
-- ---------------------------------------------------------------------------

-- How long to wait after failed attempt n (1..4) before the next; the 5th
-- failure is final.
create function private.dial_retry_delays()
returns integer[]
language sql
immutable
security invoker
set search_path = ''
as $$
  select array[30, 120, 600, 1800];
$$;

-- Locks and returns due outbound calls, oldest first (skip locked, so two
-- dispatchers never get the same call), leases them and counts the attempt.
-- A call that can no longer be dialled (bot deleted or disabled, assistant
-- id or phone number removed, or its 5th attempt never reported) fails here
-- with the reason, rather than being handed out with nulls.
create function private.claim_due_calls(max_calls integer, lease_seconds integer default 60)
returns table (
  call_id uuid,
  org_id uuid,
  bot_id uuid,
  to_number text,
  provider text,
  assistant_id text,
  phone_number_id text,
  attempt integer
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  max_attempts constant integer := cardinality(private.dial_retry_delays()) + 1;
begin
  if max_calls is null or max_calls not between 1 and 500 then
    raise exception 'max_calls must be between 1 and 500' using errcode = 'invalid_parameter_value';
  end if;
  if lease_seconds is null or lease_seconds not between 5 and 900 then
    raise exception 'lease_seconds must be between 5 and 900' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with due as (
    select c.id
    from public.calls c
    where c.status = 'queued' and c.direction = 'outbound'
      and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
    order by c.next_dial_at, c.created_at
    limit max_calls
    for update of c skip locked
  ),
  checked as (
    select due.id,
      b.voice_assistant_id as assistant,
      p.outbound_phone_number_id as phone_number,
      case
        when c.dial_attempts >= max_attempts then 'no result was reported for the last dial attempt'
        when c.bot_id is null then 'the bot was deleted'
        when not b.enabled then 'the bot is disabled'
        when b.voice_assistant_id is null then 'the bot has no voice assistant'
        when p.outbound_phone_number_id is null then 'the organization has no ' || coalesce(c.provider, 'vapi') || ' phone number to call from'
      end as problem
    from due
    join public.calls c on c.id = due.id
    left join public.bots b on b.id = c.bot_id and b.org_id = c.org_id
    left join public.call_providers p on p.org_id = c.org_id and p.provider = coalesce(c.provider, 'vapi')
  ),
  claimed as (
    update public.calls c set
      dial_attempts = c.dial_attempts + case when k.problem is null then 1 else 0 end,
      dial_lease_until = case when k.problem is null then pg_catalog.now() + pg_catalog.make_interval(secs => lease_seconds) end,
      status = case when k.problem is null then 'queued' else 'failed' end::public.call_status,
      ended_reason = case when k.problem is null then c.ended_reason else left('dial-failed: ' || k.problem, 200) end,
      last_dial_error = case when k.problem is null then c.last_dial_error else k.problem end
    from checked k
    where c.id = k.id
    returning c.id, c.org_id, c.bot_id, c.to_number, c.provider, c.dial_attempts, k.assistant, k.phone_number, k.problem
  )
  select cl.id, cl.org_id, cl.bot_id, cl.to_number, coalesce(cl.provider, 'vapi'), cl.assistant, cl.phone_number, cl.dial_attempts
  from claimed cl
  where cl.problem is null
  order by cl.id;
end;
$$;
comment on function private.claim_due_calls(integer, integer) is 'Leases up to max_calls due outbound calls (skip locked) and returns what to dial with the attempt number; calls that can no longer be dialled fail here with the reason. Service role.';

create function private.record_dial_result(
  call_id uuid, attempt integer, provider_call_id text, error text, retryable boolean, retry_after_seconds integer default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
  delays integer[] := private.dial_retry_delays();
  reason text := coalesce(nullif(pg_catalog.btrim(error), ''), 'unknown error');
  delay_seconds integer;
  slot timestamptz;
  campaign_canceled boolean;
begin
  select * into target from public.calls c where c.id = record_dial_result.call_id for update;
  if not found then
    return jsonb_build_object('outcome', 'gone', 'call_id', record_dial_result.call_id);
  end if;
  -- A report for an attempt the call has moved past (a dispatcher that
  -- outlived its lease, a duplicate report, the provider's events first).
  if target.status <> 'queued' or target.dial_attempts is distinct from record_dial_result.attempt then
    return jsonb_build_object('outcome', 'stale', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  if nullif(record_dial_result.provider_call_id, '') is not null then
    -- Dialled: the provider's events move it on from here.
    update public.calls c set status = 'ringing', provider_call_id = record_dial_result.provider_call_id, last_dial_error = null
    where c.id = target.id
    returning * into target;
    return jsonb_build_object('outcome', 'dialled', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  select k.status = 'canceled' into campaign_canceled
  from public.call_campaigns k where k.id = target.campaign_id and k.org_id = target.org_id;
  if coalesce(campaign_canceled, false) then
    update public.calls c set status = 'canceled', ended_reason = 'canceled-by-user', last_dial_error = left(reason, 1000)
    where c.id = target.id
    returning * into target;
    return jsonb_build_object('outcome', 'canceled', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts);
  end if;

  if coalesce(retryable, false) and target.dial_attempts between 1 and cardinality(delays) then
    delay_seconds := greatest(delays[target.dial_attempts], least(coalesce(retry_after_seconds, 0), 86400));
    -- A retry keeps to the calling hours too.
    slot := private.next_call_slot(target.org_id, target.bot_id, target.callee_time_zone,
      pg_catalog.now() + pg_catalog.make_interval(secs => delay_seconds));
    if slot is not null then
      update public.calls c set next_dial_at = slot, dial_lease_until = null, last_dial_error = left(reason, 1000)
      where c.id = target.id
      returning * into target;
      return jsonb_build_object('outcome', 'retry', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
        'next_dial_at', target.next_dial_at);
    end if;
  end if;

  update public.calls c set status = 'failed', ended_reason = left('dial-failed: ' || reason, 200), last_dial_error = left(reason, 1000)
  where c.id = target.id
  returning * into target;
  return jsonb_build_object('outcome', 'failed', 'call_id', target.id, 'status', target.status, 'attempt', target.dial_attempts,
    'ended_reason', target.ended_reason);
end;
$$;
comment on function private.record_dial_result(uuid, integer, text, text, boolean, integer) is 'Records one dial attempt: provider call id -> ringing; a retryable failure before the 5th attempt -> queued again after 30 s, 2 min, 10 min, 30 min (or Retry-After, at most a day; moved into calling hours); else failed (dial-failed: <error>). A stale attempt changes nothing. {outcome: dialled|retry|failed|canceled|stale|gone, ...}. Service role.';

-- ---------------------------------------------------------------------------
-- After-call work (service role: the call-dispatcher function)
-- ---------------------------------------------------------------------------

create function private.calls_needing_analysis(max_calls integer)
returns table (
  call_id uuid,
  org_id uuid,
  bot_id uuid,
  summary text,
  sentiment public.call_sentiment,
  transcript jsonb,
  language text
)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with picked as (
    select c.id
    from public.calls c
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- A dispatcher that took it and died gives it back after 10 minutes.
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
      and exists (select 1 from public.call_transcript_segments t where t.call_id = c.id)
    order by c.ended_at
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    update public.calls c set analysis_requested_at = pg_catalog.now()
    from picked
    where c.id = picked.id
    returning c.id, c.org_id, c.bot_id, c.summary, c.sentiment
  )
  select m.id, m.org_id, m.bot_id, m.summary, m.sentiment,
    (select jsonb_agg(jsonb_build_object('speaker', t.speaker, 'text', t.text) order by t.seq)
     from public.call_transcript_segments t where t.call_id = m.id),
    b.language
  from marked m
  left join public.bots b on b.id = m.bot_id and b.org_id = m.org_id
  order by m.id;
end;
$$;
comment on function private.calls_needing_analysis(integer) is 'Takes up to max_calls ended calls (last 7 days) with a transcript and no summary or an unknown sentiment, not taken in the last 10 minutes (skip locked), and returns their transcript as [{speaker, text}] in order and the bot''s language. Service role.';

create function private.save_call_analysis(
  call_id uuid, summary text, sentiment public.call_sentiment, sentiment_score numeric, model text, tokens_in integer, tokens_out integer
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
  clean_summary text := left(nullif(pg_catalog.btrim(summary), ''), 10000);
begin
  if sentiment is null or sentiment = 'unknown' then
    raise exception 'an analysis gives a sentiment: positive, neutral or negative' using errcode = 'invalid_parameter_value';
  end if;
  if sentiment_score is not null and sentiment_score not between -1 and 1 then
    raise exception 'sentiment_score is between -1 and 1' using errcode = 'invalid_parameter_value';
  end if;
  if nullif(pg_catalog.btrim(model), '') is null or coalesce(tokens_in, -1) < 0 or coalesce(tokens_out, -1) < 0 then
    raise exception 'the model and its tokens (0 or more) are required' using errcode = 'invalid_parameter_value';
  end if;
  select * into target from public.calls c where c.id = save_call_analysis.call_id for update;
  if not found then
    raise exception 'call not found' using errcode = 'no_data_found';
  end if;
  -- Fills what is missing; never overwrites what the provider gave.
  update public.calls c set
    summary = coalesce(c.summary, clean_summary),
    sentiment = case when c.sentiment = 'unknown' then save_call_analysis.sentiment else c.sentiment end,
    sentiment_score = case when c.sentiment = 'unknown' then round(save_call_analysis.sentiment_score, 3) else c.sentiment_score end
  where c.id = target.id;
  -- Metered whatever it filled, zero tokens included (the rules, offline):
  -- the analysis ran and counts as chat work of the call's bot.
  perform private.record_usage(target.org_id, 'chat', pg_catalog.btrim(model), tokens_in, tokens_out,
    null, null, target.bot_id, target.conversation_id, null);
end;
$$;
comment on function private.save_call_analysis(uuid, text, public.call_sentiment, numeric, text, integer, integer) is 'Stores an after-call analysis: the summary only where none is, the sentiment (and score) only where it is unknown, and meters it as chat usage of the call''s org and bot (zero tokens too). Service role.';

-- When a recording copy was last tried, per call: kept apart from calls so
-- the bookkeeping neither broadcasts nor audits a call change.
create table private.call_recording_requests (
  call_id uuid primary key references public.calls (id) on delete cascade,
  requested_at timestamptz not null,
  attempts integer not null default 1
);
revoke all on private.call_recording_requests from public, anon, authenticated, service_role;

create index calls_needing_recording_idx on public.calls (ended_at)
  where recording_url is not null and recording_path is null;

create function private.calls_needing_recording(max_calls integer)
returns table (call_id uuid, org_id uuid, recording_url text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with picked as (
    select c.id, c.org_id, c.recording_url
    from public.calls c
    left join private.call_recording_requests r on r.call_id = c.id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- Once every 10 minutes, 5 times at most: the provider's link expires.
      and (r.call_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
    order by c.ended_at
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    insert into private.call_recording_requests as r (call_id, requested_at)
    select picked.id, pg_catalog.now() from picked
    on conflict on constraint call_recording_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
    returning r.call_id
  )
  select p.id, p.org_id, p.recording_url from picked p join marked m on m.call_id = p.id
  order by p.id;
end;
$$;
comment on function private.calls_needing_recording(integer) is 'Takes up to max_calls ended calls (last 7 days) whose provider recording has no copy in Storage yet, each at most every 10 minutes and 5 times (skip locked). Service role.';

create function private.save_call_recording(call_id uuid, object_path text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calls;
  prefix text;
begin
  select * into target from public.calls c where c.id = save_call_recording.call_id for update;
  if not found then
    raise exception 'call not found' using errcode = 'no_data_found';
  end if;
  prefix := target.org_id::text || '/calls/' || target.id::text || '/';
  if object_path is null or not starts_with(object_path, prefix) or length(object_path) <= length(prefix) or length(object_path) > 1024 then
    raise exception 'a call''s recording is stored under %<name>, not %', prefix, coalesce(object_path, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  -- Never a pointer to nothing: the upload comes first.
  if not exists (select 1 from storage.objects o where o.bucket_id = 'recordings' and o.name = object_path) then
    raise exception 'no object % in the recordings bucket', object_path
      using errcode = 'no_data_found', hint = 'Upload the recording first.';
  end if;
  update public.calls c set recording_path = object_path where c.id = target.id;
  delete from private.call_recording_requests r where r.call_id = target.id;
end;
$$;
comment on function private.save_call_recording(uuid, text) is 'Points a call at its recording''s copy in the recordings bucket (<org_id>/calls/<call_id>/..., uploaded first). Service role.';

-- ---------------------------------------------------------------------------
-- Waking the dispatcher: at once when a due outbound call is inserted (at
-- most one request a second), and by pg_cron every 15 seconds when there is
-- anything to do (a call come due or up for retry, an analysis, a
-- recording). Same Vault secrets and pg_net path as the webhook dispatcher.
-- ---------------------------------------------------------------------------

create table private.call_dispatch_requests (
  id boolean primary key default true check (id),
  last_requested_at timestamptz not null default '-infinity'
);
insert into private.call_dispatch_requests default values;
revoke all on private.call_dispatch_requests from public, anon, authenticated, service_role;

create function private.request_call_dispatch()
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
  -- Nothing to do, nothing to wake (each test is served by a partial index).
  if not exists (
    select 1 from public.calls c
    where c.status = 'queued' and c.direction = 'outbound' and c.next_dial_at <= pg_catalog.now()
      and (c.dial_lease_until is null or c.dial_lease_until < pg_catalog.now())
  ) and not exists (
    select 1 from public.calls c
    where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown')
      and c.ended_at > pg_catalog.now() - interval '7 days'
      and (c.analysis_requested_at is null or c.analysis_requested_at < pg_catalog.now() - interval '10 minutes')
      and exists (select 1 from public.call_transcript_segments t where t.call_id = c.id)
  ) and not exists (
    select 1 from public.calls c
    left join private.call_recording_requests r on r.call_id = c.id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
      and (r.call_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
  ) then
    return;
  end if;
  -- Skip locked: a long transaction placing calls must not make others wait here.
  update private.call_dispatch_requests r set last_requested_at = clock_timestamp()
  where r.id in (
    select q.id from private.call_dispatch_requests q
    where q.last_requested_at < clock_timestamp() - interval '1 second'
    for update skip locked
  );
  if not found then
    return;
  end if;
  -- Longer than a dispatch pass, so the call is not cut off mid-pass.
  perform private.invoke_edge_function('call-dispatcher', '{}'::jsonb, 30000);
end;
$$;
comment on function private.request_call_dispatch() is 'Wakes the call-dispatcher function through pg_net (at most once a second) when a call is due or after-call work waits; a no-op without the Vault secrets project_url and service_role_key.';

create function private.request_dispatch_for_new_calls()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Only an outbound call due now wakes it; later ones wait for pg_cron.
  if exists (
    select 1 from new_calls n
    where n.status = 'queued' and n.direction = 'outbound' and n.next_dial_at <= pg_catalog.now()
  ) then
    perform private.request_call_dispatch();
  end if;
  return null;
end;
$$;

create trigger calls_request_dispatch after insert on public.calls
  referencing new table as new_calls
  for each statement execute function private.request_dispatch_for_new_calls();

select cron.schedule('dispatch-calls', '15 seconds', 'select private.request_call_dispatch()');

revoke execute on function
  private.dial_retry_delays(),
  private.claim_due_calls(integer, integer),
  private.record_dial_result(uuid, integer, text, text, boolean, integer),
  private.calls_needing_analysis(integer),
  private.save_call_analysis(uuid, text, public.call_sentiment, numeric, text, integer, integer),
  private.calls_needing_recording(integer),
  private.save_call_recording(uuid, text),
  private.request_call_dispatch(),
  private.request_dispatch_for_new_calls()
from public, anon, authenticated;
grant execute on function
  private.claim_due_calls(integer, integer),
  private.record_dial_result(uuid, integer, text, text, boolean, integer),
  private.calls_needing_analysis(integer),
  private.save_call_analysis(uuid, text, public.call_sentiment, numeric, text, integer, integer),
  private.calls_needing_recording(integer),
  private.save_call_recording(uuid, text),
  private.request_call_dispatch()
to service_role;

-- ---------------------------------------------------------------------------
-- Feedback: one rating per member and call
-- ---------------------------------------------------------------------------

create table public.call_feedback (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  call_id uuid not null,
  -- A departed user's ratings stay in the figures, anonymous.
  user_id uuid default auth.uid() references auth.users (id) on delete set null,
  rating smallint not null constraint call_feedback_rating check (rating between 1 and 5),
  comment text constraint call_feedback_comment_length check (length(comment) <= 2000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint call_feedback_once unique (call_id, user_id),
  -- The feedback's org is its call's org.
  constraint call_feedback_call_fk foreign key (call_id, org_id) references public.calls (id, org_id) on delete cascade
);
comment on table public.call_feedback is 'Members'' ratings (1-5) and comments on calls, one per member and call. Members read the org''s; each writes only their own.';
create index call_feedback_org_id_idx on public.call_feedback (org_id, created_at desc);
create index call_feedback_call_idx on public.call_feedback (call_id, org_id);
create index call_feedback_user_idx on public.call_feedback (user_id);

create trigger call_feedback_set_updated_at before update on public.call_feedback
  for each row execute function private.set_updated_at();
create trigger call_feedback_audit after insert or update or delete on public.call_feedback
  for each row execute function private.audit_row_change();

alter table public.call_feedback enable row level security;
revoke all on public.call_feedback from anon, authenticated;
grant select, delete on public.call_feedback to authenticated;
grant insert (org_id, call_id, rating, comment), update (rating, comment) on public.call_feedback to authenticated;

create policy "members and up can read their org's call feedback"
  on public.call_feedback for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.read'))));
create policy "members and up can rate their org's calls"
  on public.call_feedback for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('calls.feedback'))) and user_id = (select auth.uid()));
create policy "members can change their own call feedback"
  on public.call_feedback for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('calls.feedback'))) and user_id = (select auth.uid()))
  with check (org_id = any (array(select private.org_ids_with_permission('calls.feedback'))) and user_id = (select auth.uid()));
create policy "members can delete their own call feedback"
  on public.call_feedback for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('calls.feedback'))) and user_id = (select auth.uid()));

-- ---------------------------------------------------------------------------
-- Analytics: invoker functions, so RLS on calls, bots and call_feedback
-- decides what is counted; a caller without calls.read in the org gets 42501
-- rather than zeros that look real. Calls still queued have not happened and
-- are not counted; ringing and in-progress ones count in the total only. A
-- call belongs to the local day of coalesce(started_at, ended_at,
-- created_at) (calls_org_activity_idx).
-- ---------------------------------------------------------------------------

-- Checks the arguments and returns the zone days are cut in.
create function private.call_stats_scope(org_id uuid, from_date date, to_date date, bot_id uuid, time_zone text)
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
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  return zone;
end;
$$;

create function public.call_stats_daily(
  org_id uuid, from_date date, to_date date, bot_id uuid default null, time_zone text default null
)
returns table (
  day date,
  total integer,
  ended integer,
  failed integer,
  no_answer integer,
  busy integer,
  canceled integer,
  positive integer,
  neutral integer,
  negative integer,
  unknown integer,
  avg_duration_seconds numeric
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  zone text := private.call_stats_scope(call_stats_daily.org_id, call_stats_daily.from_date, call_stats_daily.to_date,
    call_stats_daily.bot_id, call_stats_daily.time_zone);
  -- Local midnights, so a day is 23 or 25 hours long across a DST change.
  range_start timestamptz := call_stats_daily.from_date::timestamp at time zone zone;
  range_end timestamptz := (call_stats_daily.to_date + 1)::timestamp at time zone zone;
begin
  return query
  with days as (
    select g::date as d
    from pg_catalog.generate_series(call_stats_daily.from_date::timestamp, call_stats_daily.to_date::timestamp, interval '1 day') g
  ),
  counted as (
    select (coalesce(c.started_at, c.ended_at, c.created_at) at time zone zone)::date as d,
      c.status as s, c.sentiment as m, c.duration_seconds as secs
    from public.calls c
    where c.org_id = call_stats_daily.org_id
      and coalesce(c.started_at, c.ended_at, c.created_at) >= range_start
      and coalesce(c.started_at, c.ended_at, c.created_at) < range_end
      and c.status <> 'queued'
      and (call_stats_daily.bot_id is null or c.bot_id = call_stats_daily.bot_id)
  ),
  per_day as (
    select k.d,
      count(*)::integer as n_total,
      (count(*) filter (where k.s = 'ended'))::integer as n_ended,
      (count(*) filter (where k.s = 'failed'))::integer as n_failed,
      (count(*) filter (where k.s = 'no_answer'))::integer as n_no_answer,
      (count(*) filter (where k.s = 'busy'))::integer as n_busy,
      (count(*) filter (where k.s = 'canceled'))::integer as n_canceled,
      (count(*) filter (where k.m = 'positive'))::integer as n_positive,
      (count(*) filter (where k.m = 'neutral'))::integer as n_neutral,
      (count(*) filter (where k.m = 'negative'))::integer as n_negative,
      (count(*) filter (where k.m = 'unknown'))::integer as n_unknown,
      round(avg(k.secs) filter (where k.s = 'ended'), 1) as avg_secs
    from counted k
    group by k.d
  )
  select days.d, coalesce(p.n_total, 0), coalesce(p.n_ended, 0), coalesce(p.n_failed, 0), coalesce(p.n_no_answer, 0),
    coalesce(p.n_busy, 0), coalesce(p.n_canceled, 0), coalesce(p.n_positive, 0), coalesce(p.n_neutral, 0),
    coalesce(p.n_negative, 0), coalesce(p.n_unknown, 0), p.avg_secs
  from days
  left join per_day p on p.d = days.d
  order by days.d;
end;
$$;
comment on function public.call_stats_daily(uuid, date, date, uuid, text) is 'Calls per local day (zeros for empty days) by status and sentiment, with the average talk time of ended calls; days cut in time_zone (default the org''s); at most 366 days; optionally one bot. Queued calls are not counted. Members (calls.read).';

create function public.call_stats_summary(
  org_id uuid, from_date date, to_date date, bot_id uuid default null, time_zone text default null
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  zone text := private.call_stats_scope(call_stats_summary.org_id, call_stats_summary.from_date, call_stats_summary.to_date,
    call_stats_summary.bot_id, call_stats_summary.time_zone);
  range_start timestamptz := call_stats_summary.from_date::timestamp at time zone zone;
  range_end timestamptz := (call_stats_summary.to_date + 1)::timestamp at time zone zone;
  overall jsonb;
  per_bot jsonb;
begin
  -- One pass: the figures for all calls (grouping set ()) and per bot.
  with counted as (
    select c.id, c.bot_id, c.status, c.sentiment, c.duration_seconds,
      c.stt_latency_ms, c.llm_latency_ms, c.tts_latency_ms, fb.ratings, fb.rating_sum
    from public.calls c
    cross join lateral (
      select count(*)::integer as ratings, sum(f.rating)::integer as rating_sum
      from public.call_feedback f where f.call_id = c.id and f.org_id = c.org_id
    ) fb
    where c.org_id = call_stats_summary.org_id
      and coalesce(c.started_at, c.ended_at, c.created_at) >= range_start
      and coalesce(c.started_at, c.ended_at, c.created_at) < range_end
      and c.status <> 'queued'
      and (call_stats_summary.bot_id is null or c.bot_id = call_stats_summary.bot_id)
  ),
  grouped as (
    select grouping(k.bot_id) = 1 as is_overall, k.bot_id,
      count(*)::integer as total,
      jsonb_build_object(
        'total', count(*),
        'by_status', jsonb_build_object(
          'ringing', count(*) filter (where k.status = 'ringing'),
          'in_progress', count(*) filter (where k.status = 'in_progress'),
          'ended', count(*) filter (where k.status = 'ended'),
          'failed', count(*) filter (where k.status = 'failed'),
          'no_answer', count(*) filter (where k.status = 'no_answer'),
          'busy', count(*) filter (where k.status = 'busy'),
          'canceled', count(*) filter (where k.status = 'canceled')),
        'by_sentiment', jsonb_build_object(
          'positive', count(*) filter (where k.sentiment = 'positive'),
          'neutral', count(*) filter (where k.sentiment = 'neutral'),
          'negative', count(*) filter (where k.sentiment = 'negative'),
          'unknown', count(*) filter (where k.sentiment = 'unknown')),
        'avg_duration_seconds', round(avg(k.duration_seconds) filter (where k.status = 'ended'), 1),
        'p95_duration_seconds', round((percentile_cont(0.95) within group (order by k.duration_seconds)
          filter (where k.status = 'ended' and k.duration_seconds is not null))::numeric, 1),
        'avg_stt_latency_ms', round(avg(k.stt_latency_ms)),
        'avg_llm_latency_ms', round(avg(k.llm_latency_ms)),
        'avg_tts_latency_ms', round(avg(k.tts_latency_ms)),
        'feedback_count', coalesce(sum(k.ratings), 0),
        'avg_rating', round(sum(k.rating_sum)::numeric / nullif(sum(k.ratings), 0), 2)
      ) as figures
    from counted k
    group by grouping sets ((), (k.bot_id))
  )
  select
    (select g.figures from grouped g where g.is_overall),
    coalesce((
      select jsonb_agg(jsonb_build_object('bot_id', g.bot_id, 'bot_name', b.name) || g.figures
                       order by g.total desc, b.name nulls last, g.bot_id)
      from grouped g
      left join public.bots b on b.id = g.bot_id and b.org_id = call_stats_summary.org_id
      where not g.is_overall
    ), '[]'::jsonb)
  into overall, per_bot;

  return jsonb_build_object(
    'org_id', call_stats_summary.org_id, 'bot_id', call_stats_summary.bot_id,
    'from_date', call_stats_summary.from_date, 'to_date', call_stats_summary.to_date, 'time_zone', zone
  ) || overall || jsonb_build_object('by_bot', per_bot);
end;
$$;
comment on function public.call_stats_summary(uuid, date, date, uuid, text) is 'Call figures over local days from_date..to_date (at most 366; zone default the org''s): total, by_status, by_sentiment, average and p95 talk time of ended calls, average STT/LLM/TTS latencies, feedback count and average rating, and the same per bot in by_bot (bot_id null: calls without a bot). Queued calls are not counted. Members (calls.read).';

grant execute on function private.call_stats_scope(uuid, date, date, uuid, text) to authenticated, service_role;
grant execute on function
  public.call_stats_daily(uuid, date, date, uuid, text),
  public.call_stats_summary(uuid, date, date, uuid, text)
to authenticated, service_role;
