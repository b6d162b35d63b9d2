-- Voice calls: call records with their lifecycle, transcripts, raw provider
-- events, per-org provider secrets, stale-call closing, the recordings
-- bucket; org time zones and business hours. Outbound calls and campaigns
-- dialled by a dispatcher within business and callee hours, after-call
-- analysis, feedback and analytics build on this core in
-- 20261123001210_call_operations.sql.
--
-- Who does what:
-- * the provider's events reach the `call-events` edge function, which checks
--   the signature with private.call_provider_secrets_for() and hands the
--   normalized event to private.apply_call_event() (service role): one
--   transaction stores the raw event (a duplicate changes nothing), creates
--   or finds the call, applies the status in lifecycle order (an older status
--   never overwrites a newer one), merges transcript and end-of-call data;
-- * admins manage the provider secrets (RPCs below); outbound calls,
--   campaigns and the `call-dispatcher` come in 20261123001210;
-- * pg_cron closes, every minute, calls the provider went silent on
--   (private.close_stale_calls);
-- * members read calls, transcripts and campaigns; admins read the raw
--   events and which providers have a secret. Viewers see nothing of calls: calls.read is a
--   member permission, so the `calls` Realtime channel and the `recordings`
--   bucket are narrowed to it too (restrictive policies below), where the
--   security core lets viewers receive and download everything of the org.
--
-- Whatever the path (event, RPC, dispatcher, job, SQL editor), a trigger on
-- calls enforces the status transitions, fills ended_at and the duration,
-- emits call.started / call.ended once per call, and broadcasts the change on
-- org:<org_id>:calls. Errors carry SQLSTATEs as elsewhere: 42501 not allowed,
-- P0002 not found, 22023 invalid argument, 23514 a refused transition, 23505
-- a conflict.

insert into public.role_permissions (permission, min_role, description) values
  ('calls.read',     'member', 'See calls, their transcripts, recordings, campaigns, feedback and call analytics'),
  ('calls.manage',   'admin',  'Place outbound calls and campaigns, cancel queued calls, manage voice provider secrets, read raw provider events'),
  ('calls.feedback', 'member', 'Rate calls and comment on them (one rating per member and call)');

-- Exclusion constraints over (uuid, smallint, range) need btree_gist's operator classes.
create extension if not exists btree_gist with schema extensions;

-- ---------------------------------------------------------------------------
-- Small shared helpers
-- ---------------------------------------------------------------------------

-- Time zone names: reading pg_timezone_names scans the time zone database
-- (about 20 ms on PGlite), too slow for a check that runs per call. The names
-- are copied here once; a name not found falls back to the scan, so a zone
-- added by a later Postgres (tzdata) release is still accepted, and only a
-- wrong name pays for the scan.
create table private.time_zone_names (
  name text primary key
);
comment on table private.time_zone_names is 'A copy of pg_timezone_names.name, for fast validation of IANA zone names.';
insert into private.time_zone_names (name) select z.name from pg_catalog.pg_timezone_names z on conflict do nothing;
revoke all on private.time_zone_names from public, anon, authenticated, service_role;

-- Definer: reads the private copy for whoever validates (an admin setting
-- the org's zone goes through the trigger as themselves).
create function private.is_time_zone(zone text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select zone is not null and (
    exists (select 1 from private.time_zone_names z where z.name = zone)
    or exists (select 1 from pg_catalog.pg_timezone_names z where z.name = zone)
  );
$$;

create function private.require_time_zone(zone text)
returns text
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if not private.is_time_zone(zone) then
    raise exception 'unknown time zone: %', coalesce(zone, 'null')
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/Berlin.';
  end if;
  return zone;
end;
$$;

-- A phone number as people type it ("+1 (415) 555-0123", "+49 30 1234-567")
-- in E.164, or null when it is not one once spaces, dashes, dots and
-- parentheses are gone.
create function private.normalize_phone_number(raw text)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select case when cleaned ~ '^\+[1-9][0-9]{6,14}$' then cleaned end
  from (select pg_catalog.regexp_replace(pg_catalog.btrim(raw), '[[:space:]().-]', '', 'g') as cleaned) n;
$$;

-- Event payloads carry times as RFC 3339 in UTC, whatever the session's zone.
create function private.rfc3339(at timestamptz)
returns text
language sql
immutable
security invoker
set search_path = ''
as $$
  select pg_catalog.to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
$$;

revoke execute on function
  private.is_time_zone(text), private.require_time_zone(text), private.normalize_phone_number(text), private.rfc3339(timestamptz)
from public;
grant execute on function
  private.is_time_zone(text), private.require_time_zone(text), private.normalize_phone_number(text), private.rfc3339(timestamptz)
to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Org time zone and business hours
-- ---------------------------------------------------------------------------

alter table public.organizations add column time_zone text not null default 'UTC';
comment on column public.organizations.time_zone is 'IANA zone the org''s business hours and daily call figures are in. Admins change it.';

create function private.validate_org_time_zone()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform private.require_time_zone(new.time_zone);
  return new;
end;
$$;

create trigger organizations_validate_time_zone
  before insert or update of time_zone on public.organizations
  for each row execute function private.validate_org_time_zone();

-- Admins already update organizations (name) under the org.update policy;
-- the time zone is one more column of it.
grant update (time_zone) on public.organizations to authenticated;

-- Weekly opening hours: per bot, or the org's default (bot_id null) for bots
-- without hours of their own. A bot with any rows follows only its rows. No
-- rows at all means no restriction (a call may go out at any hour the callee
-- allows). A range does not cross midnight: 22:00-02:00 is two rows (Monday
-- 22:00-24:00, Tuesday 00:00-02:00). Times are wall-clock times in the
-- org's time zone, so they keep their meaning across DST changes.
-- private.business_hours_ranges() turns them into instants; the calendar
-- module subtracts closures there.
create table public.business_hours (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid,
  weekday smallint not null constraint business_hours_weekday check (weekday between 1 and 7),
  opens time not null,
  closes time not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint business_hours_range check (opens < closes),
  constraint business_hours_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade,
  -- No two ranges of the same org, bot (or default) and weekday overlap;
  -- ranges are half-open, so 09:00-12:00 and 12:00-17:00 may both exist.
  constraint business_hours_no_overlap exclude using gist (
    org_id with =,
    (coalesce(bot_id, '00000000-0000-0000-0000-000000000000'::uuid)) with =,
    weekday with =,
    (int4range(extract(epoch from opens)::integer, extract(epoch from closes)::integer)) with &&
  )
);
comment on table public.business_hours is 'Weekly opening hours per bot or the org''s default (bot_id null), in the org''s time zone; ISO weekdays (1 = Monday). No rows: no restriction. Members read; admins write.';
comment on column public.business_hours.closes is 'Exclusive end; 24:00 is the end of the day.';
create index business_hours_bot_idx on public.business_hours (bot_id, org_id);

create trigger business_hours_set_updated_at before update on public.business_hours
  for each row execute function private.set_updated_at();
create trigger business_hours_audit after insert or update or delete on public.business_hours
  for each row execute function private.audit_row_change();

alter table public.business_hours enable row level security;
revoke all on public.business_hours from anon, authenticated;
grant select, delete on public.business_hours to authenticated;
grant insert (org_id, bot_id, weekday, opens, closes), update (weekday, opens, closes)
  on public.business_hours to authenticated;

-- Hours are bot settings (the default row applies to every bot without its own).
create policy "members and up can read their org's business hours"
  on public.business_hours for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('bots.read'))));
create policy "admins and up can add business hours"
  on public.business_hours for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));
create policy "admins and up can change business hours"
  on public.business_hours for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('bots.manage'))))
  with check (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));
create policy "admins and up can delete business hours"
  on public.business_hours for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));

-- The instants within a window when the bot (else the org) is open, or null
-- when no hours restrict it. Local dates are walked in the org's zone and each
-- opening turned into an instant with `at time zone`, so a day is 23 or 25
-- hours long across a DST change and 09:00 stays 09:00 local.
create function private.business_hours_ranges(org_id uuid, bot_id uuid, during tstzrange)
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
  select o.time_zone into zone from public.organizations o where o.id = business_hours_ranges.org_id;
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  -- The bot's own hours if it has any, else the org's default.
  if business_hours_ranges.bot_id is not null and exists (
    select 1 from public.business_hours h
    where h.org_id = business_hours_ranges.org_id and h.bot_id = business_hours_ranges.bot_id
  ) then
    hours_bot := business_hours_ranges.bot_id;
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
comment on function private.business_hours_ranges(uuid, uuid, tstzrange) is 'The instants within a window when the bot (else the org) is open; null when no business hours restrict it. The one place later rules (closures) subtract from.';

-- The earliest moment at or after not_before when the bot's (else the org's)
-- business hours and the callee's allowed hours overlap, searching 14 days
-- ahead; null when there is none. Callees are called between 08:00 and 21:00
-- of their own time zone (the TCPA's quiet hours, applied everywhere).
create function private.next_call_slot(org_id uuid, bot_id uuid, callee_time_zone text, not_before timestamptz)
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
  select o.time_zone into zone from public.organizations o where o.id = next_call_slot.org_id;
  if zone is null then
    raise exception 'organization not found' using errcode = 'no_data_found';
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
  allowed := callee_ranges * pg_catalog.tstzmultirange(window_range);
  if open_ranges is not null then
    allowed := allowed * open_ranges;
  end if;
  if pg_catalog.isempty(allowed) then
    return null;
  end if;
  return pg_catalog.lower(allowed);
end;
$$;
comment on function private.next_call_slot(uuid, uuid, text, timestamptz) is 'Earliest instant >= not_before inside the bot''s (else the org''s) business hours and 08:00-21:00 in the callee''s time zone (default: the org''s), at most 14 days ahead; null if none.';

-- ---------------------------------------------------------------------------
-- Calls
-- ---------------------------------------------------------------------------

create type public.call_direction as enum ('inbound', 'outbound', 'web');
create type public.call_status as enum ('queued', 'ringing', 'in_progress', 'ended', 'failed', 'canceled', 'no_answer', 'busy');
create type public.call_sentiment as enum ('positive', 'neutral', 'negative', 'unknown');
comment on type public.call_status is 'queued > ringing > in_progress > a terminal status (ended: answered and finished; failed, canceled, no_answer, busy: never a conversation, or broken). Terminal statuses never change.';

-- Campaigns come first: calls reference them.
create table public.call_campaigns (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid,
  name text not null constraint call_campaigns_name_length check (length(name) between 1 and 100 and name = btrim(name)),
  status text not null default 'active' constraint call_campaigns_status check (status in ('active', 'canceled')),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint call_campaigns_id_org_id_key unique (id, org_id),
  -- A deleted bot leaves the campaign (its queued calls fail when they come due).
  constraint call_campaigns_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete set null (bot_id)
);
comment on table public.call_campaigns is 'A batch of outbound calls to a list of numbers (at most 1000). Members read; admins create and cancel through RPCs.';
create index call_campaigns_org_id_idx on public.call_campaigns (org_id, created_at desc);
create index call_campaigns_bot_idx on public.call_campaigns (bot_id, org_id);
create index call_campaigns_created_by_idx on public.call_campaigns (created_by);

create trigger call_campaigns_set_updated_at before update on public.call_campaigns
  for each row execute function private.set_updated_at();
create trigger call_campaigns_audit after insert or update or delete on public.call_campaigns
  for each row execute function private.audit_row_change();

create table public.calls (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid,
  conversation_id uuid,
  campaign_id uuid,
  direction public.call_direction not null,
  -- E.164; null for web calls (and for a caller id that is not a number, e.g. "anonymous").
  from_number text constraint calls_from_number_format check (from_number ~ '^\+[1-9][0-9]{6,14}$'),
  to_number text constraint calls_to_number_format check (to_number ~ '^\+[1-9][0-9]{6,14}$'),
  -- Validated (private.is_time_zone) by the triggers below.
  callee_time_zone text,
  status public.call_status not null default 'queued',
  -- Lifecycle order, for events that arrive out of order.
  status_rank smallint not null generated always as (
    case status when 'queued' then 1 when 'ringing' then 2 when 'in_progress' then 3 else 4 end
  ) stored,
  -- When the stored status happened (the provider's clock for events).
  status_occurred_at timestamptz not null default now(),
  ended_reason text constraint calls_ended_reason_length check (length(ended_reason) between 1 and 200),
  scheduled_at timestamptz,
  started_at timestamptz,
  ended_at timestamptz,
  duration_seconds numeric(10, 3) constraint calls_duration_seconds check (duration_seconds >= 0),
  recording_path text,
  recording_url text constraint calls_recording_url_format check (length(recording_url) <= 2048 and recording_url ~ '^https?://[^\s]+$'),
  summary text constraint calls_summary_length check (length(summary) between 1 and 10000),
  sentiment public.call_sentiment not null default 'unknown',
  sentiment_score numeric(4, 3) constraint calls_sentiment_score_range check (sentiment_score between -1 and 1),
  cost numeric(12, 4) constraint calls_cost_range check (cost >= 0),
  cost_currency char(3) not null default 'USD' constraint calls_cost_currency_format check (cost_currency ~ '^[A-Z]{3}$'),
  cost_breakdown jsonb constraint calls_cost_breakdown_object check (jsonb_typeof(cost_breakdown) = 'object'),
  -- Averages over the call's turns, in milliseconds.
  stt_latency_ms integer constraint calls_stt_latency_ms check (stt_latency_ms >= 0),
  llm_latency_ms integer constraint calls_llm_latency_ms check (llm_latency_ms >= 0),
  tts_latency_ms integer constraint calls_tts_latency_ms check (tts_latency_ms >= 0),
  provider text constraint calls_provider_format check (provider ~ '^[a-z][a-z0-9_-]{0,31}$'),
  provider_call_id text constraint calls_provider_call_id_length check (length(provider_call_id) between 1 and 255),
  -- The provider's final transcript replaced the live segments; later live ones are ignored.
  transcript_final boolean not null default false,
  -- When we last heard about the call, for closing calls whose end never came.
  last_event_at timestamptz,
  dial_attempts integer not null default 0 constraint calls_dial_attempts check (dial_attempts >= 0),
  next_dial_at timestamptz,
  dial_lease_until timestamptz,
  last_dial_error text constraint calls_last_dial_error_length check (length(last_dial_error) <= 1000),
  analysis_requested_at timestamptz,
  -- The call.started / call.ended events emitted for this call (each once).
  started_event_id uuid,
  ended_event_id uuid,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calls_id_org_id_key unique (id, org_id),
  -- Call history outlives the bot, conversation and campaign it belonged to.
  constraint calls_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete set null (bot_id),
  constraint calls_conversation_fk foreign key (conversation_id, org_id)
    references public.conversations (id, org_id) on delete set null (conversation_id),
  constraint calls_campaign_fk foreign key (campaign_id, org_id)
    references public.call_campaigns (id, org_id) on delete set null (campaign_id),
  -- We dial only E.164 numbers; an outbound call we learn of from the
  -- provider's events (placed elsewhere) may name the callee otherwise (SIP).
  constraint calls_outbound_needs_number check (direction <> 'outbound' or to_number is not null or provider_call_id is not null),
  constraint calls_provider_call_id_needs_provider check (provider_call_id is null or provider is not null),
  constraint calls_ended_at check ((status in ('ended', 'failed', 'canceled', 'no_answer', 'busy')) = (ended_at is not null)),
  constraint calls_dialling_only_queued check (status = 'queued' or (next_dial_at is null and dial_lease_until is null)),
  -- Storage objects of a call: <org_id>/calls/<call_id>/... in the recordings bucket.
  constraint calls_recording_path_format check (
    length(recording_path) <= 1024 and starts_with(recording_path, org_id::text || '/calls/' || id::text || '/')
    and length(recording_path) > length(org_id::text || '/calls/' || id::text || '/')
  )
);
comment on table public.calls is 'Voice calls: inbound, outbound (dialled by the dispatcher) and web. Members read; written only by the call functions (events, RPCs, dispatcher, jobs).';
comment on column public.calls.scheduled_at is 'Outbound: the first moment the call may be dialled (within business and callee hours).';
comment on column public.calls.duration_seconds is 'Talk time: the provider''s figure, else ended_at - started_at.';
comment on column public.calls.recording_path is 'Object in the recordings bucket: <org_id>/calls/<call_id>/...';
comment on column public.calls.recording_url is 'Where the provider keeps the recording.';
create index calls_org_id_idx on public.calls (org_id, created_at desc);
-- Analytics cut calls into days by when they happened: started, else ended, else created.
create index calls_org_activity_idx on public.calls (org_id, (coalesce(started_at, ended_at, created_at)));
create unique index calls_provider_call_id_key on public.calls (org_id, provider, provider_call_id)
  where provider_call_id is not null;
create index calls_bot_idx on public.calls (bot_id, org_id);
create index calls_conversation_idx on public.calls (conversation_id, org_id);
create index calls_campaign_idx on public.calls (campaign_id, to_number);
create index calls_created_by_idx on public.calls (created_by);
create index calls_due_idx on public.calls (next_dial_at) where status = 'queued';
create index calls_live_idx on public.calls (last_event_at) where status in ('ringing', 'in_progress');
create index calls_needing_analysis_idx on public.calls (ended_at)
  where status = 'ended' and (summary is null or sentiment = 'unknown');

create function private.call_status_transition_allowed(from_status public.call_status, to_status public.call_status)
returns boolean
language sql
immutable
security invoker
set search_path = ''
as $$
  select from_status = to_status or case from_status
    when 'queued' then to_status <> 'queued'
    when 'ringing' then to_status not in ('queued', 'ringing')
    when 'in_progress' then to_status in ('ended', 'failed')
    else false
  end;
$$;
comment on function private.call_status_transition_allowed(public.call_status, public.call_status) is 'queued -> anything later; ringing -> in_progress or terminal; in_progress -> ended or failed; terminal -> nothing.';

-- Before every write, whoever writes: transitions, bookkeeping, and the
-- call.started / call.ended events (each once per call; definer: emit_event
-- is not for API roles). call.started goes out when the call is answered
-- (in_progress), or when it ends with a start time after its in_progress was
-- never seen; never after call.ended.
create function private.calls_before_write()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  terminal boolean := new.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy');
begin
  if tg_op = 'UPDATE' then
    if new.org_id <> old.org_id or new.id <> old.id then
      raise exception 'a call keeps its id and organization' using errcode = 'invalid_parameter_value';
    end if;
    if new.status <> old.status then
      if not private.call_status_transition_allowed(old.status, new.status) then
        raise exception 'a call cannot go from % to %', old.status, new.status
          using errcode = 'check_violation',
                hint = 'queued -> any later status; ringing -> in_progress or a terminal status; in_progress -> ended or failed; terminal statuses are final.';
      end if;
      if new.status_occurred_at is not distinct from old.status_occurred_at then
        new.status_occurred_at := pg_catalog.now();
      end if;
      new.last_event_at := greatest(coalesce(new.last_event_at, pg_catalog.now()), pg_catalog.now());
    end if;
  else
    new.last_event_at := coalesce(new.last_event_at, pg_catalog.now());
  end if;

  if new.status <> 'queued' then
    new.next_dial_at := null;
    new.dial_lease_until := null;
  end if;
  if terminal then
    new.ended_at := coalesce(new.ended_at, pg_catalog.now());
    if new.duration_seconds is null and new.started_at is not null then
      new.duration_seconds := round(greatest(extract(epoch from new.ended_at - new.started_at), 0), 3);
    end if;
  end if;

  if new.started_event_id is null and new.ended_event_id is null
    and (new.status = 'in_progress' or (terminal and new.started_at is not null)) then
    new.started_event_id := private.emit_event(new.org_id, 'call.started', pg_catalog.jsonb_build_object(
      'call_id', new.id, 'direction', new.direction, 'bot_id', new.bot_id,
      'from', new.from_number, 'to', new.to_number,
      'started_at', private.rfc3339(coalesce(new.started_at, new.status_occurred_at))));
  end if;
  if terminal and new.ended_event_id is null then
    new.ended_event_id := private.emit_event(new.org_id, 'call.ended', pg_catalog.jsonb_build_object(
      'call_id', new.id, 'status', new.status, 'ended_reason', new.ended_reason,
      'duration_seconds', new.duration_seconds, 'ended_at', private.rfc3339(new.ended_at)));
  end if;
  return new;
end;
$$;

create trigger calls_before_write before insert or update on public.calls
  for each row execute function private.calls_before_write();
create trigger calls_set_updated_at before update on public.calls
  for each row execute function private.set_updated_at();

-- Audited: creation, deletion, and changes to what the call is and how it
-- went (status, numbers, times, recording, cost, summary, sentiment), not the
-- bookkeeping every event and dial attempt touches (last_event_at, latencies,
-- leases, attempts, analysis requests).
create trigger calls_audit after insert or delete on public.calls
  for each row execute function private.audit_row_change();
create trigger calls_audit_update after update on public.calls
  for each row
  when (
    old.status is distinct from new.status or old.ended_reason is distinct from new.ended_reason
    or old.bot_id is distinct from new.bot_id or old.conversation_id is distinct from new.conversation_id
    or old.campaign_id is distinct from new.campaign_id or old.direction is distinct from new.direction
    or old.from_number is distinct from new.from_number or old.to_number is distinct from new.to_number
    or old.callee_time_zone is distinct from new.callee_time_zone or old.scheduled_at is distinct from new.scheduled_at
    or old.started_at is distinct from new.started_at or old.ended_at is distinct from new.ended_at
    or old.recording_path is distinct from new.recording_path or old.recording_url is distinct from new.recording_url
    or old.cost is distinct from new.cost or old.cost_currency is distinct from new.cost_currency
    or old.summary is distinct from new.summary or old.sentiment is distinct from new.sentiment
    or old.provider is distinct from new.provider or old.provider_call_id is distinct from new.provider_call_id
  )
  execute function private.audit_row_change();

-- Live: every change of a call on org:<org_id>:calls, except one that only
-- moves bookkeeping clocks (a transcript event touches last_event_at; its
-- segment is broadcast by itself).
create trigger calls_broadcast after insert or delete on public.calls
  for each row execute function private.broadcast_org_change('calls');
create trigger calls_broadcast_update after update on public.calls
  for each row
  when ((to_jsonb(old) - array['last_event_at', 'updated_at', 'dial_lease_until', 'analysis_requested_at'])
        is distinct from (to_jsonb(new) - array['last_event_at', 'updated_at', 'dial_lease_until', 'analysis_requested_at']))
  execute function private.broadcast_org_change('calls');

-- A callee time zone must be one Postgres knows. Checked once per statement
-- (a campaign inserts up to 1000 calls with the same zone), and on updates
-- that change it.
create function private.validate_new_calls_time_zones()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
declare
  zone text;
begin
  for zone in select distinct n.callee_time_zone from new_calls n where n.callee_time_zone is not null loop
    perform private.require_time_zone(zone);
  end loop;
  return null;
end;
$$;

create trigger calls_validate_time_zones after insert on public.calls
  referencing new table as new_calls
  for each statement execute function private.validate_new_calls_time_zones();

create function private.validate_call_time_zone()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if new.callee_time_zone is not null then
    perform private.require_time_zone(new.callee_time_zone);
  end if;
  return new;
end;
$$;

create trigger calls_validate_time_zone before update of callee_time_zone on public.calls
  for each row when (old.callee_time_zone is distinct from new.callee_time_zone)
  execute function private.validate_call_time_zone();

alter table public.call_campaigns enable row level security;
alter table public.calls enable row level security;
revoke all on public.call_campaigns, public.calls from anon, authenticated;
grant select on public.call_campaigns, public.calls to authenticated;

create policy "members and up can read their org's call campaigns"
  on public.call_campaigns for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.read'))));
create policy "members and up can read their org's calls"
  on public.calls for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.read'))));

-- ---------------------------------------------------------------------------
-- Transcript segments
-- ---------------------------------------------------------------------------

create table public.call_transcript_segments (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  call_id uuid not null,
  -- Position in the call's transcript, from 0.
  seq integer not null constraint call_transcript_segments_seq check (seq >= 0),
  speaker text not null constraint call_transcript_segments_speaker check (speaker in ('user', 'assistant', 'system')),
  text text not null constraint call_transcript_segments_text_length check (length(text) between 1 and 10000),
  -- Milliseconds from the start of the call.
  start_ms integer not null constraint call_transcript_segments_start_ms check (start_ms >= 0),
  end_ms integer not null,
  -- This turn's latencies, when the provider reports them.
  stt_ms integer constraint call_transcript_segments_stt_ms check (stt_ms >= 0),
  llm_ms integer constraint call_transcript_segments_llm_ms check (llm_ms >= 0),
  tts_ms integer constraint call_transcript_segments_tts_ms check (tts_ms >= 0),
  created_at timestamptz not null default now(),
  constraint call_transcript_segments_times check (end_ms >= start_ms),
  -- A re-delivered segment replaces itself (upsert), never duplicates.
  constraint call_transcript_segments_position unique (call_id, seq),
  constraint call_transcript_segments_call_fk foreign key (call_id, org_id) references public.calls (id, org_id) on delete cascade
);
comment on table public.call_transcript_segments is 'What was said in a call, in order, with per-turn latencies. Members read; written by private.apply_call_event. Not audited row by row.';
create index call_transcript_segments_org_id_idx on public.call_transcript_segments (org_id);
create index call_transcript_segments_call_org_idx on public.call_transcript_segments (call_id, org_id);

create trigger call_transcript_segments_broadcast after insert or update on public.call_transcript_segments
  for each row execute function private.broadcast_org_change('calls');

alter table public.call_transcript_segments enable row level security;
revoke all on public.call_transcript_segments from anon, authenticated;
grant select on public.call_transcript_segments to authenticated;
create policy "members and up can read their org's call transcripts"
  on public.call_transcript_segments for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.read'))));

-- ---------------------------------------------------------------------------
-- Raw provider events: the evidence of what the provider told us, and the
-- key (org, provider, event id) that makes a re-delivery a no-op.
-- ---------------------------------------------------------------------------

create table public.call_events (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  -- Deferred: the event is stored before the call an inbound call's first event creates.
  call_id uuid references public.calls (id) on delete set null deferrable initially deferred,
  provider text not null constraint call_events_provider_format check (provider ~ '^[a-z][a-z0-9_-]{0,31}$'),
  event_id text not null constraint call_events_event_id_length check (length(event_id) between 1 and 255),
  event_type text not null constraint call_events_event_type check (event_type in ('call.started', 'call.status', 'call.transcript', 'call.ended')),
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  payload jsonb not null default '{}',
  constraint call_events_once unique (org_id, provider, event_id)
);
comment on table public.call_events is 'Every provider event as received (append-only). Admins read. A re-delivered event id is ignored.';
create index call_events_org_received_idx on public.call_events (org_id, received_at desc);
create index call_events_call_idx on public.call_events (call_id);

-- Append-only: no update or delete by anyone, the table owner included,
-- except what the foreign keys do (the org's deletion removes its events; a
-- deleted call leaves its events with call_id null).
create function private.refuse_call_event_change()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and not exists (select 1 from public.organizations o where o.id = old.org_id) then
    return old;
  end if;
  if tg_op = 'UPDATE' and new.call_id is null and old.call_id is not null
    and (to_jsonb(new) - 'call_id') = (to_jsonb(old) - 'call_id')
    and not exists (select 1 from public.calls c where c.id = old.call_id) then
    return new;
  end if;
  raise exception 'call events are append-only: % is not allowed', lower(tg_op)
    using errcode = 'insufficient_privilege';
end;
$$;

create trigger call_events_append_only before update or delete on public.call_events
  for each row execute function private.refuse_call_event_change();
create trigger call_events_no_truncate before truncate on public.call_events
  for each statement execute function private.refuse_call_event_change();

alter table public.call_events enable row level security;
revoke all on public.call_events from anon, authenticated, service_role;
grant select on public.call_events to authenticated, service_role;
create policy "admins and up can read their org's raw call events"
  on public.call_events for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.manage'))));

insert into private.audit_exempt_tables (table_name, reason) values
  ('call_transcript_segments', 'call transcript appended by the provider''s events (hundreds per call); the call itself is audited'),
  ('call_events', 'append-only log of raw provider events; the changes they make to calls are audited there');

-- ---------------------------------------------------------------------------
-- Provider secrets: which secret an org's provider signs (generic: Standard
-- Webhooks) or authenticates (vapi: X-Vapi-Secret / HMAC) its events with.
-- The secrets are needed in clear, so they live where no API role can read
-- them; public.call_providers shows admins that one exists and since when
-- (and puts creation and rotation in the audit log, without the secret).
-- ---------------------------------------------------------------------------

create table public.call_providers (
  org_id uuid not null references public.organizations (id) on delete cascade,
  provider text not null constraint call_providers_provider check (provider in ('vapi', 'generic')),
  secret_created_at timestamptz not null,
  previous_secret_valid_until timestamptz,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, provider)
);
comment on table public.call_providers is 'The voice providers an org receives call events from, and when their secret was made or rotated (never the secret). Admins read.';
create index call_providers_created_by_idx on public.call_providers (created_by);

create trigger call_providers_set_updated_at before update on public.call_providers
  for each row execute function private.set_updated_at();
create trigger call_providers_audit after insert or update or delete on public.call_providers
  for each row execute function private.audit_row_change('org_id', 'org_id', 'provider');

alter table public.call_providers enable row level security;
revoke all on public.call_providers from anon, authenticated;
grant select on public.call_providers to authenticated;
create policy "admins and up can read their org's voice providers"
  on public.call_providers for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calls.manage'))));

create table private.call_provider_secrets (
  org_id uuid not null,
  provider text not null,
  secret text not null,
  -- During a rotation's overlap the previous secret is accepted too.
  previous_secret text,
  previous_valid_until timestamptz,
  created_at timestamptz not null default clock_timestamp(),
  primary key (org_id, provider),
  constraint call_provider_secrets_provider_fk foreign key (org_id, provider)
    references public.call_providers (org_id, provider) on delete cascade,
  constraint call_provider_secrets_previous check ((previous_secret is null) = (previous_valid_until is null))
);
revoke all on private.call_provider_secrets from public, anon, authenticated, service_role;

-- generic: as the webhooks module makes them (Standard Webhooks); vapi: 64 hex.
create function private.new_call_provider_secret(provider text)
returns text
language sql
volatile
security invoker
set search_path = ''
as $$
  select case provider
    when 'generic' then 'whsec_' || pg_catalog.encode(extensions.gen_random_bytes(32), 'base64')
    when 'vapi' then pg_catalog.encode(extensions.gen_random_bytes(32), 'hex')
  end;
$$;

create function private.require_call_provider(provider text)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
begin
  if provider is null or provider not in ('vapi', 'generic') then
    raise exception 'unknown voice provider: %', coalesce(provider, 'null')
      using errcode = 'invalid_parameter_value', hint = 'vapi or generic.';
  end if;
  return provider;
end;
$$;

create function private.create_call_provider_secret(org_id uuid, provider text)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  fresh text;
begin
  perform private.require_permission(create_call_provider_secret.org_id, 'calls.manage');
  perform private.require_call_provider(create_call_provider_secret.provider);
  fresh := private.new_call_provider_secret(create_call_provider_secret.provider);
  insert into public.call_providers (org_id, provider, secret_created_at)
  values (create_call_provider_secret.org_id, create_call_provider_secret.provider, pg_catalog.now())
  on conflict do nothing;
  if not found then
    raise exception 'this organization already has a % secret; rotate it instead', create_call_provider_secret.provider
      using errcode = 'unique_violation';
  end if;
  insert into private.call_provider_secrets (org_id, provider, secret)
  values (create_call_provider_secret.org_id, create_call_provider_secret.provider, fresh);
  return fresh;
end;
$$;

create function public.create_call_provider_secret(org_id uuid, provider text)
returns text
language sql
security invoker
set search_path = ''
as $$
  select private.create_call_provider_secret(create_call_provider_secret.org_id, create_call_provider_secret.provider);
$$;
comment on function public.create_call_provider_secret(uuid, text) is 'Makes the secret an org''s voice provider (vapi: 64 hex; generic: whsec_ + base64) authenticates its call events with, and returns it once. Admins.';

create function private.rotate_call_provider_secret(org_id uuid, provider text, overlap_hours integer)
returns table (secret text, previous_secret_valid_until timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  fresh text;
  current private.call_provider_secrets;
  valid_until timestamptz;
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
      using errcode = 'no_data_found', hint = 'Create one with create_call_provider_secret.';
  end if;
  fresh := private.new_call_provider_secret(rotate_call_provider_secret.provider);
  -- The secret being replaced stays valid for the overlap, so the provider can switch without a gap.
  valid_until := case when overlap_hours > 0 then pg_catalog.now() + pg_catalog.make_interval(hours => overlap_hours) end;
  update private.call_provider_secrets s
  set secret = fresh,
      previous_secret = case when valid_until is not null then current.secret end,
      previous_valid_until = valid_until,
      created_at = clock_timestamp()
  where s.org_id = current.org_id and s.provider = current.provider;
  update public.call_providers p
  set secret_created_at = pg_catalog.now(), previous_secret_valid_until = valid_until
  where p.org_id = current.org_id and p.provider = current.provider;
  return query select fresh, valid_until;
end;
$$;

create function public.rotate_call_provider_secret(org_id uuid, provider text, overlap_hours integer default 24)
returns table (secret text, previous_secret_valid_until timestamptz)
language sql
security invoker
set search_path = ''
as $$
  select * from private.rotate_call_provider_secret(rotate_call_provider_secret.org_id, rotate_call_provider_secret.provider,
    rotate_call_provider_secret.overlap_hours);
$$;
comment on function public.rotate_call_provider_secret(uuid, text, integer) is 'Replaces an org''s voice provider secret and returns the new one once; the old one stays valid for overlap_hours (0 to 168, default 24). Admins.';

-- For the call-events function (service role): the secrets to accept now,
-- newest first; empty when the org has none for that provider.
create function private.call_provider_secrets_for(org_id uuid, provider text)
returns text[]
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce((
    select array_remove(array[s.secret, case when s.previous_valid_until > pg_catalog.now() then s.previous_secret end], null)
    from private.call_provider_secrets s
    where s.org_id = call_provider_secrets_for.org_id and s.provider = call_provider_secrets_for.provider
  ), '{}');
$$;
comment on function private.call_provider_secrets_for(uuid, text) is 'The secrets an org''s provider may use now: the current one and, during a rotation''s overlap, the previous one. Service role.';

-- ---------------------------------------------------------------------------
-- Applying provider events (service role: the call-events function)
-- ---------------------------------------------------------------------------

-- The first problem of a normalized event, with its path, or null.
create function private.call_event_problem(event jsonb)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  field text;
  segment record;
  kind text;
begin
  if jsonb_typeof(event) is distinct from 'object' then
    return 'the event must be a JSON object';
  end if;
  if jsonb_typeof(event -> 'event_id') is distinct from 'string' or length(event ->> 'event_id') not between 1 and 255 then
    return '$.event_id must be a string of 1 to 255 characters';
  end if;
  if jsonb_typeof(event -> 'provider') is distinct from 'string' or (event ->> 'provider') !~ '^[a-z][a-z0-9_-]{0,31}$' then
    return '$.provider must be a provider name such as vapi or generic';
  end if;
  if (event ->> 'type') is null or (event ->> 'type') not in ('call.started', 'call.status', 'call.transcript', 'call.ended') then
    return '$.type must be call.started, call.status, call.transcript or call.ended';
  end if;
  if event ? 'provider_call_id' and jsonb_typeof(event -> 'provider_call_id') <> 'null'
    and (jsonb_typeof(event -> 'provider_call_id') <> 'string' or length(event ->> 'provider_call_id') not between 1 and 255) then
    return '$.provider_call_id must be a string of 1 to 255 characters';
  end if;
  if nullif(event ->> 'provider_call_id', '') is null and nullif(event #>> '{metadata,call_id}', '') is null then
    return '$.provider_call_id is required (or $.metadata.call_id for a call we placed)';
  end if;
  foreach field in array array['occurred_at', 'started_at', 'ended_at'] loop
    if (field = 'occurred_at' or (event ? field and jsonb_typeof(event -> field) <> 'null'))
      and (jsonb_typeof(event -> field) is distinct from 'string' or not private.is_rfc3339_date_time(event ->> field)) then
      return format('$.%s must be an RFC 3339 date-time', field);
    end if;
  end loop;
  if event ? 'direction' and jsonb_typeof(event -> 'direction') <> 'null'
    and coalesce(event ->> 'direction' not in ('inbound', 'outbound', 'web'), true) then
    return '$.direction must be inbound, outbound or web';
  end if;
  if event ? 'status' and jsonb_typeof(event -> 'status') <> 'null'
    and coalesce(event ->> 'status' not in ('queued', 'ringing', 'in_progress', 'ended', 'failed', 'canceled', 'no_answer', 'busy'), true) then
    return '$.status must be queued, ringing, in_progress, ended, failed, canceled, no_answer or busy';
  end if;
  if event ->> 'type' = 'call.status' and nullif(event ->> 'status', '') is null then
    return '$.status is required for call.status';
  end if;
  if event ->> 'type' = 'call.ended' and event ->> 'status' in ('queued', 'ringing', 'in_progress') then
    return '$.status must be a terminal status for call.ended';
  end if;
  if event ->> 'type' = 'call.started' and event ->> 'status' in ('ended', 'failed', 'canceled', 'no_answer', 'busy') then
    return '$.status must not be a terminal status for call.started';
  end if;
  foreach field in array array['from', 'to', 'ended_reason', 'recording_url', 'summary'] loop
    if event ? field and jsonb_typeof(event -> field) not in ('string', 'null') then
      return format('$.%s must be a string', field);
    end if;
  end loop;
  if length(event ->> 'ended_reason') not between 1 and 200 then
    return '$.ended_reason must have 1 to 200 characters';
  end if;
  if event ->> 'recording_url' is not null
    and (length(event ->> 'recording_url') > 2048 or (event ->> 'recording_url') !~ '^https?://[^\s]+$') then
    return '$.recording_url must be an http(s) URL of at most 2048 characters';
  end if;
  if length(event ->> 'summary') not between 1 and 10000 then
    return '$.summary must have 1 to 10000 characters';
  end if;
  if event ? 'sentiment' and jsonb_typeof(event -> 'sentiment') <> 'null'
    and coalesce(event ->> 'sentiment' not in ('positive', 'neutral', 'negative', 'unknown'), true) then
    return '$.sentiment must be positive, neutral, negative or unknown';
  end if;
  if event ? 'sentiment_score' and jsonb_typeof(event -> 'sentiment_score') <> 'null'
    and (jsonb_typeof(event -> 'sentiment_score') <> 'number' or (event ->> 'sentiment_score')::numeric not between -1 and 1) then
    return '$.sentiment_score must be a number from -1 to 1';
  end if;
  if event ? 'duration_seconds' and jsonb_typeof(event -> 'duration_seconds') <> 'null'
    and (jsonb_typeof(event -> 'duration_seconds') <> 'number' or (event ->> 'duration_seconds')::numeric not between 0 and 9999999) then
    return '$.duration_seconds must be a number of seconds (0 or more)';
  end if;
  if event ? 'cost' and jsonb_typeof(event -> 'cost') <> 'null' then
    if jsonb_typeof(event -> 'cost') <> 'object' then
      return '$.cost must be an object { amount, currency, breakdown? }';
    end if;
    -- A number, or a decimal string (no cent lost to floating point on the way).
    if jsonb_typeof(event #> '{cost,amount}') not in ('number', 'string')
      or (event #>> '{cost,amount}') !~ '^[0-9]{1,8}(\.[0-9]{1,20})?$' then
      return '$.cost.amount must be a non-negative amount below 100000000';
    end if;
    if coalesce((event #>> '{cost,currency}') !~ '^[A-Z]{3}$', true) then
      return '$.cost.currency must be an ISO 4217 code in capitals, e.g. USD';
    end if;
    if event -> 'cost' ? 'breakdown' and jsonb_typeof(event #> '{cost,breakdown}') not in ('object', 'null') then
      return '$.cost.breakdown must be an object';
    end if;
  end if;
  if event ? 'latencies' and jsonb_typeof(event -> 'latencies') <> 'null' then
    if jsonb_typeof(event -> 'latencies') <> 'object' then
      return '$.latencies must be an object { stt_ms?, llm_ms?, tts_ms? }';
    end if;
    foreach field in array array['stt_ms', 'llm_ms', 'tts_ms'] loop
      if event -> 'latencies' ? field and jsonb_typeof(event -> 'latencies' -> field) <> 'null'
        and (jsonb_typeof(event -> 'latencies' -> field) <> 'number'
             or (event -> 'latencies' ->> field) !~ '^[0-9]{1,9}(\.[0-9]+)?$') then
        return format('$.latencies.%s must be milliseconds (0 or more)', field);
      end if;
    end loop;
  end if;
  if event ? 'metadata' and jsonb_typeof(event -> 'metadata') <> 'null' then
    if jsonb_typeof(event -> 'metadata') <> 'object' then
      return '$.metadata must be an object';
    end if;
    foreach field in array array['call_id', 'bot_id', 'conversation_id'] loop
      if event -> 'metadata' ? field and jsonb_typeof(event -> 'metadata' -> field) <> 'null'
        and coalesce((event -> 'metadata' ->> field) !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', true) then
        return format('$.metadata.%s must be a uuid', field);
      end if;
    end loop;
  end if;
  if event ? 'transcript_mode' and jsonb_typeof(event -> 'transcript_mode') <> 'null'
    and coalesce(event ->> 'transcript_mode' not in ('append', 'replace'), true) then
    return '$.transcript_mode must be append or replace';
  end if;
  if event ? 'transcript' and jsonb_typeof(event -> 'transcript') <> 'null' then
    if jsonb_typeof(event -> 'transcript') <> 'array' or jsonb_array_length(event -> 'transcript') > 5000 then
      return '$.transcript must be a list of at most 5000 segments';
    end if;
    for segment in select s.value as v, s.ordinality - 1 as i from jsonb_array_elements(event -> 'transcript') with ordinality s loop
      if jsonb_typeof(segment.v) <> 'object' then
        return format('$.transcript[%s] must be an object', segment.i);
      end if;
      if segment.v ? 'seq' and jsonb_typeof(segment.v -> 'seq') <> 'null'
        and (jsonb_typeof(segment.v -> 'seq') <> 'number' or (segment.v ->> 'seq') !~ '^[0-9]{1,9}$') then
        return format('$.transcript[%s].seq must be a whole number (0 or more)', segment.i);
      end if;
      if coalesce(segment.v ->> 'speaker' not in ('user', 'assistant', 'system'), true) then
        return format('$.transcript[%s].speaker must be user, assistant or system', segment.i);
      end if;
      if jsonb_typeof(segment.v -> 'text') is distinct from 'string' or length(segment.v ->> 'text') not between 1 and 10000 then
        return format('$.transcript[%s].text must have 1 to 10000 characters', segment.i);
      end if;
      foreach kind in array array['start_ms', 'end_ms', 'stt_ms', 'llm_ms', 'tts_ms'] loop
        if (kind in ('start_ms', 'end_ms') or (segment.v ? kind and jsonb_typeof(segment.v -> kind) <> 'null'))
          and (jsonb_typeof(segment.v -> kind) is distinct from 'number' or (segment.v ->> kind) !~ '^[0-9]{1,9}$') then
          return format('$.transcript[%s].%s must be whole milliseconds (0 or more)', segment.i, kind);
        end if;
      end loop;
      if (segment.v ->> 'end_ms')::integer < (segment.v ->> 'start_ms')::integer then
        return format('$.transcript[%s].end_ms must not be before start_ms', segment.i);
      end if;
    end loop;
  end if;
  return null;
end;
$$;

-- Writes an event's transcript segments into a call. With seq: upserted at
-- that position. Without: the segment already stored with the same speaker
-- and start_ms is replaced, else it is appended after the last one. Mode
-- 'replace' (the provider's final transcript) swaps the whole transcript
-- (positions in order) and marks it final; later 'append' segments are then
-- ignored, being live copies of what it holds. Returns the segments written.
create function private.write_call_transcript(target_call public.calls, segments jsonb, mode text)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  written integer;
begin
  if segments is null or jsonb_typeof(segments) <> 'array' or jsonb_array_length(segments) = 0 then
    return 0;
  end if;
  if coalesce(mode, 'append') = 'replace' then
    delete from public.call_transcript_segments t where t.call_id = target_call.id;
    insert into public.call_transcript_segments (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
    select distinct on (p.seq) target_call.org_id, target_call.id, p.seq, p.speaker, p.text, p.start_ms, p.end_ms, p.stt_ms, p.llm_ms, p.tts_ms
    from (
      select coalesce((s.value ->> 'seq')::integer, (s.ordinality - 1)::integer) as seq, s.ordinality,
        s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
        (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
        (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms
      from jsonb_array_elements(segments) with ordinality s
    ) p
    order by p.seq, p.ordinality desc;
    get diagnostics written = row_count;
    update public.calls c set transcript_final = true where c.id = target_call.id and not c.transcript_final;
    return written;
  end if;
  if target_call.transcript_final then
    return 0;
  end if;

  insert into public.call_transcript_segments as t (org_id, call_id, seq, speaker, text, start_ms, end_ms, stt_ms, llm_ms, tts_ms)
  select distinct on (k.seq) target_call.org_id, target_call.id, k.seq, k.speaker, k.text, k.start_ms, k.end_ms, k.stt_ms, k.llm_ms, k.tts_ms
  from (
    select p.*,
      coalesce(p.given_seq, p.matched_seq,
        base.last_seq + (row_number() over (partition by p.given_seq is null and p.matched_seq is null order by p.ordinality))::integer
      ) as seq
    from (
      select (s.value ->> 'seq')::integer as given_seq, s.ordinality,
        s.value ->> 'speaker' as speaker, s.value ->> 'text' as text,
        (s.value ->> 'start_ms')::integer as start_ms, (s.value ->> 'end_ms')::integer as end_ms,
        (s.value ->> 'stt_ms')::integer as stt_ms, (s.value ->> 'llm_ms')::integer as llm_ms, (s.value ->> 'tts_ms')::integer as tts_ms,
        (select min(x.seq) from public.call_transcript_segments x
         where s.value ->> 'seq' is null and x.call_id = target_call.id
           and x.speaker = s.value ->> 'speaker' and x.start_ms = (s.value ->> 'start_ms')::integer) as matched_seq
      from jsonb_array_elements(segments) with ordinality s
    ) p
    cross join (select coalesce(max(x.seq), -1) as last_seq from public.call_transcript_segments x where x.call_id = target_call.id) base
  ) k
  order by k.seq, k.ordinality desc
  on conflict on constraint call_transcript_segments_position do update
    set speaker = excluded.speaker, text = excluded.text, start_ms = excluded.start_ms, end_ms = excluded.end_ms,
        stt_ms = excluded.stt_ms, llm_ms = excluded.llm_ms, tts_ms = excluded.tts_ms
    -- An identical re-delivery writes (and broadcasts) nothing.
    where (t.speaker, t.text, t.start_ms, t.end_ms, t.stt_ms, t.llm_ms, t.tts_ms)
      is distinct from (excluded.speaker, excluded.text, excluded.start_ms, excluded.end_ms, excluded.stt_ms, excluded.llm_ms, excluded.tts_ms);
  get diagnostics written = row_count;
  return written;
end;
$$;

create function private.apply_call_event(org_id uuid, event jsonb, payload jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text;
  ev_type text;
  ev_provider text;
  ev_provider_call_id text;
  ev_occurred_at timestamptz;
  ev_status public.call_status;
  ev_rank smallint;
  ev_started_at timestamptz;
  ev_ended_at timestamptz;
  meta_call_id uuid;
  meta_bot_id uuid;
  meta_conversation_id uuid;
  found_call public.calls;
  target public.calls;
  is_new boolean := false;
  applied boolean := false;
  stored_event_id bigint;
  terminal_statuses public.call_status[] := array['ended', 'failed', 'canceled', 'no_answer', 'busy']::public.call_status[];
  ev_sentiment public.call_sentiment;
begin
  -- Validate before reading anything: a cast of a bad field would otherwise
  -- fail with a less helpful error than the event's path.
  problem := private.call_event_problem(event);
  if problem is not null then
    raise exception 'invalid call event: %', problem using errcode = 'invalid_parameter_value';
  end if;
  ev_type := event ->> 'type';
  ev_provider := event ->> 'provider';
  ev_provider_call_id := nullif(event ->> 'provider_call_id', '');
  meta_call_id := nullif(event #>> '{metadata,call_id}', '')::uuid;
  meta_bot_id := nullif(event #>> '{metadata,bot_id}', '')::uuid;
  meta_conversation_id := nullif(event #>> '{metadata,conversation_id}', '')::uuid;
  if apply_call_event.org_id is null or not exists (select 1 from public.organizations o where o.id = apply_call_event.org_id) then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  ev_occurred_at := (event ->> 'occurred_at')::timestamptz;
  ev_started_at := (event ->> 'started_at')::timestamptz;
  ev_ended_at := (event ->> 'ended_at')::timestamptz;
  -- What each type says when it gives no status; a transcript only moves
  -- a call it creates (someone is talking: it was answered).
  ev_status := coalesce(nullif(event ->> 'status', '')::public.call_status,
    case ev_type when 'call.started' then 'in_progress'::public.call_status when 'call.ended' then 'ended'::public.call_status end);

  -- The call: one we placed (metadata.call_id), else by the provider's id.
  if meta_call_id is not null then
    select * into found_call from public.calls c
    where c.id = meta_call_id and c.org_id = apply_call_event.org_id
    for update;
    if found_call.id is not null and ev_provider_call_id is not null and found_call.provider_call_id is not null
      and (found_call.provider_call_id <> ev_provider_call_id or found_call.provider <> ev_provider) then
      raise exception 'metadata.call_id names a call with another provider call id' using errcode = 'invalid_parameter_value';
    end if;
  end if;
  if found_call.id is null and ev_provider_call_id is not null then
    select * into found_call from public.calls c
    where c.org_id = apply_call_event.org_id and c.provider = ev_provider and c.provider_call_id = ev_provider_call_id
    for update;
    if found_call.id is null then
      -- First word of a call we did not place: serialise its creation, so two
      -- concurrent first events make one call, then look again.
      perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(
        'call:' || apply_call_event.org_id::text || ':' || ev_provider || ':' || ev_provider_call_id, 0));
      select * into found_call from public.calls c
      where c.org_id = apply_call_event.org_id and c.provider = ev_provider and c.provider_call_id = ev_provider_call_id
      for update;
    end if;
  end if;
  if found_call.id is null and ev_provider_call_id is null then
    raise exception 'metadata.call_id is not a call of this organization, and the event has no provider_call_id'
      using errcode = 'invalid_parameter_value';
  end if;

  if found_call.id is null then
    is_new := true;
    target.id := gen_random_uuid();
  else
    target := found_call;
  end if;

  -- The raw event first: a re-delivery stops here and changes nothing.
  insert into public.call_events (org_id, call_id, provider, event_id, event_type, occurred_at, payload)
  values (apply_call_event.org_id, target.id, ev_provider, event ->> 'event_id', ev_type, ev_occurred_at,
          coalesce(apply_call_event.payload, '{}'::jsonb))
  on conflict on constraint call_events_once do nothing
  returning id into stored_event_id;
  if stored_event_id is null then
    return jsonb_build_object('duplicate', true);
  end if;

  if is_new then
    target.org_id := apply_call_event.org_id;
    target.direction := coalesce(nullif(event ->> 'direction', '')::public.call_direction, 'inbound');
    target.status := coalesce(ev_status, 'in_progress');
    target.status_occurred_at := ev_occurred_at;
    target.sentiment := 'unknown';
    target.cost_currency := 'USD';
    target.transcript_final := false;
    target.dial_attempts := 0;
    target.provider := ev_provider;
    target.provider_call_id := ev_provider_call_id;
    target.from_number := private.normalize_phone_number(event ->> 'from');
    target.to_number := private.normalize_phone_number(event ->> 'to');
    applied := ev_status is not null;
    if target.status = 'in_progress' or target.status = any (terminal_statuses) then
      target.started_at := coalesce(ev_started_at, case when target.status = 'in_progress' then ev_occurred_at end);
    end if;
    if target.status = any (terminal_statuses) then
      target.ended_at := coalesce(ev_ended_at, ev_occurred_at);
    end if;
  else
    -- Known from now on.
    target.provider := coalesce(target.provider, ev_provider);
    target.provider_call_id := coalesce(target.provider_call_id, ev_provider_call_id);
    target.from_number := coalesce(target.from_number, private.normalize_phone_number(event ->> 'from'));
    target.to_number := coalesce(target.to_number, private.normalize_phone_number(event ->> 'to'));

    if ev_status is not null then
      ev_rank := case ev_status when 'queued' then 1 when 'ringing' then 2 when 'in_progress' then 3 else 4 end;
      -- A later status, or the same rank reported later; terminal statuses are final.
      if ev_rank > found_call.status_rank
        or (ev_rank = found_call.status_rank and found_call.status_rank < 4 and ev_occurred_at > found_call.status_occurred_at) then
        applied := true;
        -- Answered, then "no answer" / "busy" / "canceled": it was a conversation that ended.
        if found_call.status = 'in_progress' and ev_status in ('no_answer', 'busy', 'canceled') then
          ev_status := 'ended';
        end if;
        target.status := ev_status;
        target.status_occurred_at := ev_occurred_at;
        if ev_status = 'in_progress' then
          target.started_at := coalesce(target.started_at, ev_occurred_at);
        end if;
        if ev_status = any (terminal_statuses) then
          target.ended_at := coalesce(ev_ended_at, ev_occurred_at);
        end if;
      elsif ev_status = 'in_progress' and target.started_at is null and found_call.status = 'ended' then
        -- A late "answered" of a call that already ended: its start is still news.
        target.started_at := ev_occurred_at;
      end if;
    end if;
    if ev_started_at is not null and (target.status = 'in_progress' or target.status = any (terminal_statuses)) then
      target.started_at := ev_started_at;
    end if;
    if ev_ended_at is not null and target.status = any (terminal_statuses) then
      target.ended_at := ev_ended_at;
    end if;
  end if;

  -- What only fills in: the bot and conversation (same org), the reason.
  if target.bot_id is null and meta_bot_id is not null
    and exists (select 1 from public.bots b where b.id = meta_bot_id and b.org_id = apply_call_event.org_id) then
    target.bot_id := meta_bot_id;
  end if;
  if target.conversation_id is null and meta_conversation_id is not null
    and exists (select 1 from public.conversations c where c.id = meta_conversation_id and c.org_id = apply_call_event.org_id) then
    target.conversation_id := meta_conversation_id;
  end if;
  if target.status = any (terminal_statuses) and event ->> 'ended_reason' is not null
    and (target.ended_reason is null or (applied and ev_status = any (terminal_statuses))
         -- We closed it for silence (private.close_stale_calls); the provider's own end says why it ended.
         or (target.ended_reason = 'no-final-event-timeout' and ev_status = any (terminal_statuses))) then
    target.ended_reason := event ->> 'ended_reason';
  end if;
  -- The duration follows the times unless the provider states it.
  if event ? 'duration_seconds' and jsonb_typeof(event -> 'duration_seconds') = 'number' then
    target.duration_seconds := round((event ->> 'duration_seconds')::numeric, 3);
  elsif target.started_at is distinct from found_call.started_at or target.ended_at is distinct from found_call.ended_at then
    target.duration_seconds := null;
  end if;

  -- End-of-call data merges in whatever the event's age: a value replaces
  -- the stored one, an absent (or unknown) one never clears it.
  target.recording_url := coalesce(event ->> 'recording_url', target.recording_url);
  target.summary := coalesce(event ->> 'summary', target.summary);
  ev_sentiment := nullif(event ->> 'sentiment', '')::public.call_sentiment;
  if ev_sentiment is not null and ev_sentiment <> 'unknown' then
    target.sentiment := ev_sentiment;
    target.sentiment_score := coalesce(round((event ->> 'sentiment_score')::numeric, 3), target.sentiment_score);
  end if;
  if jsonb_typeof(event -> 'cost') = 'object' then
    target.cost := round((event #>> '{cost,amount}')::numeric, 4);
    target.cost_currency := event #>> '{cost,currency}';
    target.cost_breakdown := coalesce(nullif(event #> '{cost,breakdown}', 'null'::jsonb), target.cost_breakdown);
  end if;
  if jsonb_typeof(event -> 'latencies') = 'object' then
    target.stt_latency_ms := coalesce(round((event #>> '{latencies,stt_ms}')::numeric)::integer, target.stt_latency_ms);
    target.llm_latency_ms := coalesce(round((event #>> '{latencies,llm_ms}')::numeric)::integer, target.llm_latency_ms);
    target.tts_latency_ms := coalesce(round((event #>> '{latencies,tts_ms}')::numeric)::integer, target.tts_latency_ms);
  end if;
  -- Closing silent calls needs minutes of precision, not each utterance: a
  -- call heard from in the last 30 seconds keeps its clock, so an event that
  -- changes nothing else (most live transcript lines) skips the update of
  -- the call and its triggers.
  if is_new or found_call.last_event_at is null or found_call.last_event_at < pg_catalog.now() - interval '30 seconds' then
    target.last_event_at := pg_catalog.now();
  end if;

  if is_new then
    insert into public.calls (
      id, org_id, bot_id, conversation_id, direction, from_number, to_number, status, status_occurred_at, ended_reason,
      started_at, ended_at, duration_seconds, recording_url, summary, sentiment, sentiment_score, cost, cost_currency,
      cost_breakdown, stt_latency_ms, llm_latency_ms, tts_latency_ms, provider, provider_call_id, last_event_at, created_by
    ) values (
      target.id, target.org_id, target.bot_id, target.conversation_id, target.direction, target.from_number, target.to_number,
      target.status, target.status_occurred_at, target.ended_reason, target.started_at, target.ended_at, target.duration_seconds,
      target.recording_url, target.summary, target.sentiment, target.sentiment_score, target.cost, target.cost_currency,
      target.cost_breakdown, target.stt_latency_ms, target.llm_latency_ms, target.tts_latency_ms, target.provider,
      target.provider_call_id, target.last_event_at, null
    )
    returning * into target;
  elsif target is distinct from found_call then
    update public.calls c set
      bot_id = target.bot_id, conversation_id = target.conversation_id, from_number = target.from_number,
      to_number = target.to_number, status = target.status, status_occurred_at = target.status_occurred_at,
      ended_reason = target.ended_reason, started_at = target.started_at, ended_at = target.ended_at,
      duration_seconds = target.duration_seconds, recording_url = target.recording_url, summary = target.summary,
      sentiment = target.sentiment, sentiment_score = target.sentiment_score, cost = target.cost,
      cost_currency = target.cost_currency, cost_breakdown = target.cost_breakdown, stt_latency_ms = target.stt_latency_ms,
      llm_latency_ms = target.llm_latency_ms, tts_latency_ms = target.tts_latency_ms, provider = target.provider,
      provider_call_id = target.provider_call_id, last_event_at = target.last_event_at
    where c.id = target.id
    returning * into target;
  end if;

  if jsonb_typeof(event -> 'transcript') = 'array' then
    perform private.write_call_transcript(target, event -> 'transcript', event ->> 'transcript_mode');
  end if;

  -- Latencies the provider did not average: from the turns, once the call is over.
  if target.status_rank = 4 and (target.stt_latency_ms is null or target.llm_latency_ms is null or target.tts_latency_ms is null) then
    update public.calls c set
      stt_latency_ms = coalesce(c.stt_latency_ms, a.stt), llm_latency_ms = coalesce(c.llm_latency_ms, a.llm),
      tts_latency_ms = coalesce(c.tts_latency_ms, a.tts)
    from (
      select round(avg(t.stt_ms))::integer as stt, round(avg(t.llm_ms))::integer as llm, round(avg(t.tts_ms))::integer as tts
      from public.call_transcript_segments t where t.call_id = target.id
    ) a
    where c.id = target.id
      and (a.stt is not null and c.stt_latency_ms is null or a.llm is not null and c.llm_latency_ms is null
           or a.tts is not null and c.tts_latency_ms is null);
  end if;

  return jsonb_build_object('duplicate', false, 'call_id', target.id, 'status', target.status, 'applied_status', applied);
end;
$$;
comment on function private.apply_call_event(uuid, jsonb, jsonb) is 'Applies one normalized provider event to the org''s call (creating an inbound call it does not know yet) in lifecycle order, storing the raw payload once: {duplicate, call_id, status, applied_status}. Service role.';

-- Web calls are calls too: call.started's direction admits them (the
-- catalogue was written before calls existed).
update public.event_types
set schema = jsonb_set(schema, '{properties,direction,enum}', '["inbound", "outbound", "web"]'::jsonb)
where type = 'call.started';

-- ---------------------------------------------------------------------------
-- Stuck calls: a provider that never sends the end of a call (a crash, a
-- lost webhook) would leave it ringing or in progress for ever, and the
-- analytics and the live view with it. Every minute, calls silent for the
-- given time are closed through the normal path (trigger: call.ended,
-- broadcast, audit): in_progress ones as ended, ringing ones (never
-- answered) as no_answer, with the reason no-final-event-timeout. The end is
-- when we last heard of the call, not when we gave up on it, so the duration
-- is not inflated by the silence. A late end from the provider still fills
-- in its own reason and times (apply_call_event); the status stays.
-- ---------------------------------------------------------------------------

create function private.close_stale_calls(silence interval default interval '15 minutes')
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  cutoff timestamptz;
  stale record;
  closed integer := 0;
begin
  if silence is null or silence < interval '1 minute' then
    raise exception 'the silence before closing a call is at least 1 minute' using errcode = 'invalid_parameter_value';
  end if;
  cutoff := pg_catalog.now() - silence;
  -- Skip locked: a call an event is updating right now is not silent; it is
  -- looked at again next minute. At most 500 per run keeps a run short.
  for stale in
    select c.id, c.status, coalesce(c.last_event_at, c.started_at, c.created_at) as heard_at, c.started_at
    from public.calls c
    where c.status in ('ringing', 'in_progress')
      and (c.last_event_at < cutoff or (c.last_event_at is null and coalesce(c.started_at, c.created_at) < cutoff))
    order by c.last_event_at
    limit 500
    for update skip locked
  loop
    update public.calls c
    set status = case when stale.status = 'in_progress' then 'ended' else 'no_answer' end::public.call_status,
        ended_reason = 'no-final-event-timeout',
        ended_at = greatest(stale.heard_at, coalesce(stale.started_at, stale.heard_at))
    where c.id = stale.id;
    closed := closed + 1;
  end loop;
  return closed;
end;
$$;
comment on function private.close_stale_calls(interval) is 'Closes ringing (as no_answer) and in_progress (as ended) calls silent for longer than silence (default 15 minutes, at least 1), reason no-final-event-timeout, at most 500 per run; returns how many. pg_cron every minute; service role.';

select cron.schedule('close-stale-calls', '* * * * *', 'select private.close_stale_calls()');

-- ---------------------------------------------------------------------------
-- Recordings: a private bucket of <org_id>/calls/<call_id>/... objects,
-- written by the service role (the call functions copy the provider's
-- recording there) and read by members (calls.read).
-- ---------------------------------------------------------------------------

-- 100 MB (an hour of WAV is about 600 MB at CD quality, but providers record
-- mono 8-16 kHz or MP3). No type list: only the service role writes here, and
-- it stores what the provider serves (types vary: audio/wav, audio/wave,
-- audio/mpeg, audio/mp3, application/octet-stream...).
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('recordings', 'recordings', false, 104857600, null);
insert into private.org_buckets (bucket_id) values ('recordings');

-- Narrowed buckets and channels. The security core lets viewers read and
-- members write every org bucket, and viewers receive (members send) on
-- every org:<org_id>:<channel> topic. Some data needs more: call recordings
-- and the calls channel (calls.read), invoices (billing.read), exports
-- (owners), appointments (calendar.read). A module registers such a bucket
-- (read with its permission, written by the service role only) or channel
-- (received and sent with its permission) here, and the restrictive policies
-- below apply; other buckets and topics pass them untouched.
create table private.narrowed_buckets (
  bucket_id text primary key references private.org_buckets (bucket_id) on delete cascade,
  read_permission text not null references public.role_permissions (permission),
  -- Platform admins read every tenant's data (security core), except where a module says not.
  platform_admins_read boolean not null default true
);
comment on table private.narrowed_buckets is 'Org buckets read only with a permission and written only by the service role (restrictive policies on storage.objects). Modules register theirs.';

create table private.narrowed_channels (
  channel text primary key constraint narrowed_channels_channel_format check (channel ~ '^[a-z][a-z0-9_]*$'),
  permission text not null references public.role_permissions (permission)
);
comment on table private.narrowed_channels is 'Realtime channels (org:<org_id>:<channel>) received and sent only with a permission (restrictive policies on realtime.messages). Modules register theirs.';
revoke all on private.narrowed_buckets, private.narrowed_channels from public, anon, authenticated, service_role;

-- Each returns everything a statement's policy needs in one call (evaluated
-- once per statement, not per row): the narrowed ids, and the (id, org)
-- pairs the caller may use.
create function private.narrowed_bucket_ids()
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select b.bucket_id from private.narrowed_buckets b;
$$;

create function private.readable_narrowed_objects()
returns table (bucket_id text, org_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select b.bucket_id, o.org_id
  from private.narrowed_buckets b
  cross join lateral (
    select r.org_id from private.readable_org_ids(b.read_permission) r (org_id) where b.platform_admins_read
    union all
    select w.org_id from private.org_ids_with_permission(b.read_permission) w (org_id) where not b.platform_admins_read
  ) o;
$$;

create function private.narrowed_channel_names()
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select c.channel from private.narrowed_channels c;
$$;

-- Receiving follows read rights (platform admins included), sending the permission itself, as for every channel.
create function private.usable_narrowed_channels(for_sending boolean)
returns table (channel text, org_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select c.channel, o.org_id
  from private.narrowed_channels c
  cross join lateral (
    select w.org_id from private.org_ids_with_permission(c.permission) w (org_id) where for_sending
    union all
    select r.org_id from private.readable_org_ids(c.permission) r (org_id) where not for_sending
  ) o;
$$;

revoke execute on function private.narrowed_bucket_ids(), private.readable_narrowed_objects(),
  private.narrowed_channel_names(), private.usable_narrowed_channels(boolean) from public;
grant execute on function private.narrowed_bucket_ids(), private.readable_narrowed_objects(),
  private.narrowed_channel_names(), private.usable_narrowed_channels(boolean) to authenticated, service_role;

create policy "narrowed buckets are read with their permission"
  on storage.objects as restrictive for select to authenticated
  using (
    bucket_id not in (select private.narrowed_bucket_ids())
    or (bucket_id, private.object_org_id(name)) in (select r.bucket_id, r.org_id from private.readable_narrowed_objects() r)
  );
create policy "narrowed buckets are not uploaded to by users"
  on storage.objects as restrictive for insert to authenticated
  with check (bucket_id not in (select private.narrowed_bucket_ids()));
create policy "narrowed buckets are not replaced in by users"
  on storage.objects as restrictive for update to authenticated
  using (bucket_id not in (select private.narrowed_bucket_ids()))
  with check (bucket_id not in (select private.narrowed_bucket_ids()));
create policy "narrowed buckets are not deleted from by users"
  on storage.objects as restrictive for delete to authenticated
  using (bucket_id not in (select private.narrowed_bucket_ids()));

-- The topic being joined decides (as the permissive policies check, rows are
-- only ever read on their own topic).
create policy "narrowed channels are received with their permission"
  on realtime.messages as restrictive for select to authenticated
  using (
    (select private.topic_org_id(realtime.topic())) is null
    or pg_catalog.split_part((select realtime.topic()), ':', 3) not in (select private.narrowed_channel_names())
    or (pg_catalog.split_part((select realtime.topic()), ':', 3), (select private.topic_org_id(realtime.topic())))
       in (select u.channel, u.org_id from private.usable_narrowed_channels(false) u)
  );
create policy "narrowed channels are sent on with their permission"
  on realtime.messages as restrictive for insert to authenticated
  with check (
    (select private.topic_org_id(realtime.topic())) is null
    or pg_catalog.split_part((select realtime.topic()), ':', 3) not in (select private.narrowed_channel_names())
    or (pg_catalog.split_part((select realtime.topic()), ':', 3), (select private.topic_org_id(realtime.topic())))
       in (select u.channel, u.org_id from private.usable_narrowed_channels(true) u)
  );

-- Recordings are calls; so is the calls channel (call rows and transcripts).
insert into private.narrowed_buckets (bucket_id, read_permission) values ('recordings', 'calls.read');
insert into private.narrowed_channels (channel, permission) values ('calls', 'calls.read');

-- ---------------------------------------------------------------------------
-- Who may run what
-- ---------------------------------------------------------------------------

revoke execute on function
  private.validate_org_time_zone(),
  private.business_hours_ranges(uuid, uuid, tstzrange),
  private.next_call_slot(uuid, uuid, text, timestamptz),
  private.call_status_transition_allowed(public.call_status, public.call_status),
  private.calls_before_write(),
  private.validate_new_calls_time_zones(),
  private.validate_call_time_zone(),
  private.refuse_call_event_change(),
  private.new_call_provider_secret(text),
  private.require_call_provider(text),
  private.create_call_provider_secret(uuid, text),
  public.create_call_provider_secret(uuid, text),
  private.rotate_call_provider_secret(uuid, text, integer),
  public.rotate_call_provider_secret(uuid, text, integer),
  private.call_provider_secrets_for(uuid, text),
  private.call_event_problem(jsonb),
  private.write_call_transcript(public.calls, jsonb, text),
  private.apply_call_event(uuid, jsonb, jsonb),
  private.close_stale_calls(interval)
from public;

-- Provider secrets: admins, through the invoker wrappers (the definer code
-- checks calls.manage).
grant execute on function
  public.create_call_provider_secret(uuid, text),
  public.rotate_call_provider_secret(uuid, text, integer),
  private.create_call_provider_secret(uuid, text),
  private.rotate_call_provider_secret(uuid, text, integer)
to authenticated;
-- The dialler asks for slots as the service role; a signed-in caller needs calls.read.
grant execute on function private.next_call_slot(uuid, uuid, text, timestamptz) to authenticated, service_role;
-- No permission check inside: service code only.
grant execute on function
  private.business_hours_ranges(uuid, uuid, tstzrange),
  private.call_provider_secrets_for(uuid, text),
  private.apply_call_event(uuid, jsonb, jsonb),
  private.close_stale_calls(interval)
to service_role;
