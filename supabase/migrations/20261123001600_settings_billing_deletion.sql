-- Settings, plans and quotas, invoices, data exports, account and
-- organization deletion.
--
-- * Settings: public.org_settings (one row per org: notification routing,
--   voice, the default AI model) and public.user_settings (one row per user:
--   e-mail notifications and per-user notification overrides). Business hours
--   and the org's time zone stay where they are (public.business_hours and
--   organizations.time_zone, 20261123001200); a user's locale and time zone
--   stay in public.profiles (20261123000200). Nothing is stored twice.
-- * Plans: change_plan (owners): upgrades at once, downgrades at the end of
--   the period (subscriptions.scheduled_plan_id, applied by
--   private.roll_subscriptions). Quotas: private.plan_usage and
--   private.require_quota, wired into document and outbound-call creation.
-- * Invoices: private.generate_invoices(month) makes one invoice per org and
--   calendar month (UTC), idempotently, with a plan line and one overage line
--   per metric over its allowance; the `billing` edge function renders the
--   PDFs (private.invoices_needing_pdf / private.save_invoice_pdf) into the
--   private `invoices` bucket.
-- * Data export: request_data_export (owners) and the step API the `export`
--   edge function drives (claim, rows, progress, finish), progress on the
--   org's `exports` channel, files in the private `exports` bucket.
-- * Deletion: delete_account (the caller leaves every org, then the service
--   role deletes the auth user) and delete_organization (owners, confirmed by
--   name); every deletion of an org is recorded in private.deleted_organizations
--   and, row by row, in the audit chain (which outlives the org).
--
-- Errors carry SQLSTATEs as elsewhere: 42501 not allowed, P0002 not found,
-- 22023 invalid argument, 23514 a refused state change, 23505 a conflict;
-- and PT402 (PostgREST answers HTTP 402, as the chat function answers
-- `quota_exceeded`) when a plan's allowance is used up.

insert into public.role_permissions (permission, min_role, description) values
  ('settings.read',   'member', 'See the organization''s notification, voice and AI model settings'),
  ('settings.manage', 'admin',  'Change the organization''s notification, voice and AI model settings'),
  ('billing.manage',  'owner',  'Change the organization''s plan'),
  ('data.export',     'owner',  'Export all of the organization''s data and download the exports');

-- ---------------------------------------------------------------------------
-- Events of this module
-- ---------------------------------------------------------------------------

insert into public.event_types (type, description, schema) values
  ('invoice.created', 'A monthly invoice was issued.',
   '{"type": "object", "required": ["invoice_id", "period_start", "period_end", "total_cents", "currency"], "properties": {
      "invoice_id": {"type": "string", "format": "uuid"},
      "period_start": {"type": "string"}, "period_end": {"type": "string"},
      "total_cents": {"type": "integer"}, "currency": {"type": "string"}}}'),
  ('export.ready', 'A data export finished; its files are in Storage until it expires, the link works until link_expires_at.',
   '{"type": "object", "required": ["export_id", "storage_prefix", "expires_at"], "properties": {
      "export_id": {"type": "string", "format": "uuid"}, "storage_prefix": {"type": "string"},
      "expires_at": {"type": "string", "format": "date-time"},
      "download_url": {"type": ["string", "null"]}, "link_expires_at": {"type": ["string", "null"], "format": "date-time"}}}');

-- export.ready carries a signed link to the whole export: in the app, only
-- those who may export (owners) read export events. Webhook endpoints
-- subscribed to it receive the link as the org's own systems.
create policy "only owners read export events"
  on public.events as restrictive for select to authenticated
  using (type not like 'export.%' or org_id = any (array(select private.readable_org_ids('data.export'))));

-- ---------------------------------------------------------------------------
-- Notification preferences: which event types reach whom.
--
-- Org level (org_settings.notification_preferences):
--   { "<event type or *>": { "in_app": ["owner", "admin", ...], "webhook": true } }
-- User level (user_settings.notification_overrides):
--   { "<event type or *>": { "in_app": false, "email": true } }
-- Keys are event types of public.event_types or "*" (every other type). An
-- entry names only the channels it sets; the others come from "*", then from
-- the defaults (in_app: nobody, webhook: true; a user's in_app: true, email:
-- user_settings.email_notifications).
-- ---------------------------------------------------------------------------

create function private.notification_preferences_problem(preferences jsonb, scope text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  entry record;
  channel record;
begin
  if preferences is null or pg_catalog.jsonb_typeof(preferences) <> 'object' then
    return 'notification preferences must be a JSON object';
  end if;
  if (select count(*) from pg_catalog.jsonb_object_keys(preferences)) > 100 then
    return 'notification preferences have at most 100 entries';
  end if;
  for entry in select e.key, e.value from pg_catalog.jsonb_each(preferences) e loop
    if entry.key <> '*' and not exists (select 1 from public.event_types t where t.type = entry.key) then
      return pg_catalog.format('unknown event type in notification preferences: %s', entry.key);
    end if;
    if pg_catalog.jsonb_typeof(entry.value) <> 'object' then
      return pg_catalog.format('$["%s"] must be an object of channels', entry.key);
    end if;
    for channel in select c.key, c.value from pg_catalog.jsonb_each(entry.value) c loop
      if scope = 'org' and channel.key = 'in_app' then
        if pg_catalog.jsonb_typeof(channel.value) <> 'array' or exists (
          select 1 from pg_catalog.jsonb_array_elements(channel.value) r
          where pg_catalog.jsonb_typeof(r) <> 'string' or (r #>> '{}') not in ('viewer', 'member', 'admin', 'owner')
        ) then
          return pg_catalog.format('$["%s"].in_app must be a list of roles (viewer, member, admin, owner)', entry.key);
        end if;
      elsif (scope = 'org' and channel.key = 'webhook') or (scope = 'user' and channel.key in ('in_app', 'email')) then
        if pg_catalog.jsonb_typeof(channel.value) <> 'boolean' then
          return pg_catalog.format('$["%s"].%s must be true or false', entry.key, channel.key);
        end if;
      else
        return pg_catalog.format('$["%s"].%s is not a notification channel (%s)', entry.key, channel.key,
          case scope when 'org' then 'in_app, webhook' else 'in_app, email' end);
      end if;
    end loop;
  end loop;
  return null;
end;
$$;
comment on function private.notification_preferences_problem(jsonb, text) is 'The first problem of a notification preferences document (scope org or user), or null.';

-- ---------------------------------------------------------------------------
-- Org settings
-- ---------------------------------------------------------------------------

create table public.org_settings (
  org_id uuid primary key references public.organizations (id) on delete cascade,
  notification_preferences jsonb not null default
    '{"*": {"in_app": ["owner", "admin"], "webhook": true}, "conversation.escalated": {"in_app": ["owner", "admin", "member"]}}',
  -- The voice provider's voice id; 'default' leaves the choice to the provider.
  voice text not null default 'default'
    constraint org_settings_voice_format check (voice ~ '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$'),
  voice_language text not null default 'en'
    constraint org_settings_voice_language_format check (voice_language ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
  speaking_rate numeric(3, 2) not null default 1.0
    constraint org_settings_speaking_rate_range check (speaking_rate between 0.5 and 2.0),
  interruption_sensitivity numeric(3, 2) not null default 0.5
    constraint org_settings_interruption_sensitivity_range check (interruption_sensitivity between 0 and 1),
  default_chat_model text not null default 'gpt-4o-mini' references public.chat_models (id),
  temperature numeric(3, 2) not null default 0.3
    constraint org_settings_temperature_range check (temperature between 0 and 2),
  -- Also at most the model's max_output_tokens (trigger below).
  max_tokens integer not null default 512
    constraint org_settings_max_tokens_range check (max_tokens between 1 and 8192),
  updated_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.org_settings is 'One per org: notification routing, voice and default AI model settings (defaults in the column defaults). Members read (settings.read); admins change (settings.manage). Business hours: public.business_hours; time zone: organizations.time_zone.';
comment on column public.org_settings.notification_preferences is '{ "<event type or *>": { "in_app": [roles], "webhook": boolean } }; see private.notification_route.';
comment on column public.org_settings.default_chat_model is 'The model new bots start with (public.chat_models; a disabled model cannot be newly chosen).';
create index org_settings_default_chat_model_idx on public.org_settings (default_chat_model);
create index org_settings_updated_by_idx on public.org_settings (updated_by);

-- Before the constraints, so every bad value is a 22023 with a message (a
-- check or foreign key violation would be 23514 / 23503 without one).
create function private.validate_org_settings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text := private.notification_preferences_problem(new.notification_preferences, 'org');
  model public.chat_models;
begin
  if problem is not null then
    raise exception '%', problem using errcode = 'invalid_parameter_value',
      hint = 'Keys are event types of public.event_types or "*"; values {"in_app": [roles], "webhook": true|false}.';
  end if;
  if new.voice is null or new.voice !~ '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$' then
    raise exception 'a voice is 1 to 100 letters, digits, spaces, dots, colons, underscores or hyphens'
      using errcode = 'invalid_parameter_value';
  end if;
  if new.voice_language is null or new.voice_language !~ '^[a-z]{2,3}(-[A-Z]{2})?$' then
    raise exception 'the voice language is a language tag such as en or pt-BR, not %', coalesce(new.voice_language, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if new.speaking_rate is null or new.speaking_rate not between 0.5 and 2.0 then
    raise exception 'the speaking rate is between 0.5 and 2.0' using errcode = 'invalid_parameter_value';
  end if;
  if new.interruption_sensitivity is null or new.interruption_sensitivity not between 0 and 1 then
    raise exception 'the interruption sensitivity is between 0 and 1' using errcode = 'invalid_parameter_value';
  end if;
  if new.temperature is null or new.temperature not between 0 and 2 then
    raise exception 'the temperature is between 0 and 2' using errcode = 'invalid_parameter_value';
  end if;
  select * into model from public.chat_models m where m.id = new.default_chat_model;
  if not found then
    raise exception 'unknown model: %', coalesce(new.default_chat_model, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.chat_models.';
  end if;
  if not model.enabled and (tg_op = 'INSERT' or new.default_chat_model is distinct from old.default_chat_model) then
    raise exception 'the model % is disabled and cannot be chosen', model.id using errcode = 'invalid_parameter_value';
  end if;
  if new.max_tokens is null or new.max_tokens not between 1 and least(8192, model.max_output_tokens) then
    raise exception 'max_tokens is between 1 and % for %', least(8192, model.max_output_tokens), model.id
      using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;

create trigger org_settings_validate before insert or update on public.org_settings
  for each row execute function private.validate_org_settings();
create trigger org_settings_set_updated_at before update on public.org_settings
  for each row execute function private.set_updated_at();
create trigger org_settings_audit after insert or update or delete on public.org_settings
  for each row execute function private.audit_row_change('org_id', 'org_id');

-- Who last changed the settings, whatever the client sends.
create function private.set_org_settings_updated_by()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.updated_by := auth.uid();
  return new;
end;
$$;
create trigger org_settings_set_updated_by before update on public.org_settings
  for each row execute function private.set_org_settings_updated_by();

-- A row for every org. It is created with the org's first membership (which
-- create_organization adds in the same transaction), not with the org row
-- itself, so that a new org's audit chain still starts with the org, its
-- subscription and its owner; an org that has no member yet reads the
-- defaults (private.notification_route).
create function private.create_org_settings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.org_settings (org_id) values (new.org_id)
  on conflict on constraint org_settings_pkey do nothing;
  return null;
end;
$$;

create trigger memberships_ensure_org_settings after insert on public.memberships
  for each row execute function private.create_org_settings();

insert into public.org_settings (org_id) select o.id from public.organizations o on conflict do nothing;

alter table public.org_settings enable row level security;
revoke all on public.org_settings from anon, authenticated;
grant select on public.org_settings to authenticated;
grant update (notification_preferences, voice, voice_language, speaking_rate, interruption_sensitivity,
  default_chat_model, temperature, max_tokens) on public.org_settings to authenticated;

create policy "members and up can read their org's settings"
  on public.org_settings for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('settings.read'))));
create policy "admins and up can change their org's settings"
  on public.org_settings for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('settings.manage'))))
  with check (org_id = any (array(select private.org_ids_with_permission('settings.manage'))));

-- ---------------------------------------------------------------------------
-- User settings (personal: no org, so not in any org's audit chain, like
-- profiles)
-- ---------------------------------------------------------------------------

create table public.user_settings (
  user_id uuid primary key references auth.users (id) on delete cascade,
  email_notifications boolean not null default true,
  notification_overrides jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.user_settings is 'One per user: e-mail notifications on or off and per-user overrides of the org''s notification routing. Each user reads and changes only their own. Locale and time zone live in public.profiles.';
comment on column public.user_settings.notification_overrides is '{ "<event type or *>": { "in_app": boolean, "email": boolean } }, checked like the org''s preferences.';

create function private.validate_user_settings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text := private.notification_preferences_problem(new.notification_overrides, 'user');
begin
  if problem is not null then
    raise exception '%', problem using errcode = 'invalid_parameter_value',
      hint = 'Keys are event types of public.event_types or "*"; values {"in_app": true|false, "email": true|false}.';
  end if;
  if new.email_notifications is null then
    raise exception 'email_notifications is true or false' using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;

create trigger user_settings_validate before insert or update on public.user_settings
  for each row execute function private.validate_user_settings();
create trigger user_settings_set_updated_at before update on public.user_settings
  for each row execute function private.set_updated_at();

create function private.create_user_settings_for_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.user_settings (user_id) values (new.id)
  on conflict on constraint user_settings_pkey do nothing;
  return new;
end;
$$;

create trigger on_auth_user_created_create_user_settings
  after insert on auth.users
  for each row execute function private.create_user_settings_for_new_user();

insert into public.user_settings (user_id) select u.id from auth.users u on conflict do nothing;

alter table public.user_settings enable row level security;
revoke all on public.user_settings from anon, authenticated;
grant select on public.user_settings to authenticated;
grant update (email_notifications, notification_overrides) on public.user_settings to authenticated;

create policy "users read their own settings"
  on public.user_settings for select to authenticated
  using (user_id = (select auth.uid()));
create policy "users change their own settings"
  on public.user_settings for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));

-- Where an event of a type goes in an org: the roles notified in the app and
-- whether webhooks fire. The type's own entry wins over "*", channel by channel.
create function private.notification_route(org_id uuid, type text)
returns table (in_app_roles public.org_role[], webhook boolean)
language sql
stable
security definer
set search_path = ''
as $$
  with prefs as (
    select coalesce(
      (select s.notification_preferences from public.org_settings s where s.org_id = notification_route.org_id),
      '{"*": {"in_app": ["owner", "admin"], "webhook": true}, "conversation.escalated": {"in_app": ["owner", "admin", "member"]}}'::jsonb
    ) as p
  )
  select
    array(select pg_catalog.jsonb_array_elements_text(coalesce(p -> notification_route.type -> 'in_app', p -> '*' -> 'in_app', '[]'))::public.org_role),
    coalesce((p -> notification_route.type ->> 'webhook')::boolean, (p -> '*' ->> 'webhook')::boolean, true)
  from prefs;
$$;
comment on function private.notification_route(uuid, text) is 'The roles an event type is shown to in the app, and whether it goes to webhooks, per the org''s settings (defaults for an org without a settings row).';

-- The `webhook` flag is honoured where deliveries are made: a fanned-out
-- delivery of a type the org switched off is skipped. Test sends and
-- replays (explicit admin actions) always go.
create function private.skip_muted_webhook_delivery()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  event_type text;
begin
  if new.replay_of is not null then
    return new;
  end if;
  select e.type into event_type from public.events e where e.id = new.event_id;
  if event_type is null or event_type = 'webhook.test' then
    return new;
  end if;
  if not (select r.webhook from private.notification_route(new.org_id, event_type) r) then
    return null;
  end if;
  return new;
end;
$$;

create trigger webhook_deliveries_skip_muted before insert on public.webhook_deliveries
  for each row execute function private.skip_muted_webhook_delivery();

-- ---------------------------------------------------------------------------
-- Plans and subscriptions
--
-- A subscription is one plan from started_at until it is canceled; its
-- current period runs month by month (UTC) from started_at. change_plan:
-- * an upgrade (a higher monthly price) takes effect at once: the active
--   subscription is canceled and a new one starts now, with a fresh monthly
--   period (so the usage counters of the quotas start again). The rest of the
--   old period is neither refunded nor prorated: the invoice of a month bills
--   the plan in force at its end, in full;
-- * a downgrade (a lower or equal price) is stored as scheduled_plan_id and
--   applied by private.roll_subscriptions when the current period ends;
-- * choosing the current plan again cancels a scheduled downgrade.
-- The partial unique index subscriptions_one_active_per_org (20261123001100)
-- keeps exactly one active subscription per org whatever the path.
-- ---------------------------------------------------------------------------

alter table public.subscriptions
  add column started_at timestamptz,
  add column scheduled_plan_id text references public.plans (id);
update public.subscriptions set started_at = current_period_start where started_at is null;
alter table public.subscriptions
  alter column started_at set default now(),
  alter column started_at set not null,
  add constraint subscriptions_scheduled_only_active check (scheduled_plan_id is null or status = 'active');
comment on column public.subscriptions.started_at is 'When this plan started for the org; periods are whole months (UTC) from here.';
comment on column public.subscriptions.scheduled_plan_id is 'A downgrade chosen with change_plan, applied when the current period ends (private.roll_subscriptions).';
create index subscriptions_scheduled_plan_idx on public.subscriptions (scheduled_plan_id);

-- The metrics a plan meters, in display order, and their allowance.
create function private.plan_metrics()
returns text[]
language sql
immutable
security invoker
set search_path = ''
as $$
  select array['chat_tokens', 'embedding_tokens', 'call_minutes', 'documents'];
$$;

create function private.plan_included(plan_id text, metric text)
returns bigint
language sql
stable
security definer
set search_path = ''
as $$
  select case plan_included.metric
    when 'chat_tokens' then p.monthly_chat_tokens
    when 'embedding_tokens' then p.monthly_embedding_tokens
    when 'call_minutes' then p.monthly_call_minutes::bigint
    when 'documents' then p.max_documents::bigint
  end
  from public.plans p where p.id = plan_included.plan_id;
$$;

-- What an org used between two instants, per metric:
-- chat_tokens and embedding_tokens: tokens in + out of usage_events of that kind;
-- call_minutes: the talk time (duration_seconds) of the calls that ended in
--   the window, summed, then rounded up to whole minutes;
-- documents: the documents the org holds that were created before the end
--   (a count, not a flow: deleting documents frees the allowance).
create function private.metered_usage(org_id uuid, from_at timestamptz, to_at timestamptz)
returns table (metric text, used bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select 'chat_tokens', coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0)::bigint
  from public.usage_events u
  where u.org_id = metered_usage.org_id and u.kind = 'chat' and u.created_at >= from_at and u.created_at < to_at
  union all
  select 'embedding_tokens', coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0)::bigint
  from public.usage_events u
  where u.org_id = metered_usage.org_id and u.kind = 'embedding' and u.created_at >= from_at and u.created_at < to_at
  union all
  select 'call_minutes', ceil(coalesce(sum(c.duration_seconds), 0) / 60)::bigint
  from public.calls c
  where c.org_id = metered_usage.org_id and c.ended_at >= from_at and c.ended_at < to_at and c.duration_seconds is not null
  union all
  select 'documents', count(*)::bigint
  from public.documents d
  where d.org_id = metered_usage.org_id and d.created_at < to_at;
$$;

-- The call-minutes sum reads ended calls of an org by end time.
create index calls_org_ended_idx on public.calls (org_id, ended_at) where duration_seconds is not null;

-- Usage against the allowance in the org's current period (the period of
-- private.chat_quota: the stored one, rolled forward while roll_subscriptions
-- has not run yet). Internal: no permission check (callers check).
create function private.plan_usage(org_id uuid)
returns table (metric text, used bigint, included bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select m.metric, m.used, private.plan_included(q.plan_id, m.metric)
  from private.chat_quota(plan_usage.org_id) q
  cross join lateral private.metered_usage(plan_usage.org_id, q.period_start, q.period_end) m
  order by pg_catalog.array_position(private.plan_metrics(), m.metric);
$$;
comment on function private.plan_usage(uuid) is 'Used and included amounts of chat_tokens, embedding_tokens, call_minutes and documents in the org''s current period. Service role.';

create function private.read_plan_usage(org_id uuid)
returns table (metric text, used bigint, included bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if auth.role() is distinct from 'service_role' and not (
    private.is_platform_admin() or private.has_permission(read_plan_usage.org_id, 'billing.read')
  ) then
    raise exception 'you may not read this organization''s billing' using errcode = 'insufficient_privilege';
  end if;
  return query select * from private.plan_usage(read_plan_usage.org_id);
end;
$$;

create function public.plan_usage(org_id uuid)
returns table (metric text, used bigint, included bigint)
language sql
stable
security invoker
set search_path = ''
as $$
  select * from private.read_plan_usage(plan_usage.org_id);
$$;
comment on function public.plan_usage(uuid) is 'Used and included chat_tokens, embedding_tokens, call_minutes and documents in the current period. Admins and up (billing.read).';

-- Refuses (SQLSTATE PT402: PostgREST answers 402 Payment Required) when the
-- org has used its plan's allowance of the metric in the current period.
create function private.require_quota(org_id uuid, metric text)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  usage record;
  quota record;
begin
  if metric is null or not (metric = any (private.plan_metrics())) then
    raise exception 'unknown metric: %', coalesce(metric, 'null')
      using errcode = 'invalid_parameter_value', hint = 'One of chat_tokens, embedding_tokens, call_minutes, documents.';
  end if;
  select * into usage from private.plan_usage(require_quota.org_id) u where u.metric = require_quota.metric;
  if usage.used < usage.included then
    return;
  end if;
  select q.plan_id, q.period_end, p.name into quota
  from private.chat_quota(require_quota.org_id) q join public.plans p on p.id = q.plan_id;
  if metric = 'documents' then
    raise exception 'quota exceeded: the % plan includes % documents and this organization has %', quota.name, usage.included, usage.used
      using errcode = 'PT402', hint = 'Delete documents or upgrade the plan (change_plan).';
  end if;
  raise exception 'quota exceeded: the % plan includes % % per month and % are used in this period',
    quota.name, usage.included, pg_catalog.replace(metric, '_', ' '), usage.used
    using errcode = 'PT402',
          hint = pg_catalog.format('The allowance renews at %s; or upgrade the plan (change_plan).', private.rfc3339(quota.period_end));
end;
$$;
comment on function private.require_quota(uuid, text) is 'Raises PT402 (HTTP 402) with the plan, allowance and use when the org''s allowance of the metric is used up in the current period.';

-- Documents: refused at the plan's max_documents, whatever the path (the
-- upload RPC, the service role). The org's active subscription row is locked
-- so that concurrent uploads count one after the other.
create function private.require_document_quota()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.subscriptions s where s.org_id = new.org_id and s.status = 'active' for update;
  perform private.require_quota(new.org_id, 'documents');
  return new;
end;
$$;

create trigger documents_require_quota before insert on public.documents
  for each row execute function private.require_document_quota();

-- Outbound calls we dial (queued, no provider call yet) are refused once the
-- period's call minutes are used up. Once per statement: a campaign inserts
-- up to 1000 calls at once. Calls the provider tells us about (inbound, web,
-- or placed elsewhere) are always recorded, and count as usage.
create function private.require_call_minutes_for_new_calls()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org uuid;
begin
  for org in
    select distinct n.org_id from new_calls n
    where n.direction = 'outbound' and n.status = 'queued' and n.provider_call_id is null
  loop
    perform private.require_quota(org, 'call_minutes');
  end loop;
  return null;
end;
$$;

create trigger calls_require_call_minutes after insert on public.calls
  referencing new table as new_calls
  for each statement execute function private.require_call_minutes_for_new_calls();

-- The monthly period of a subscription that holds an instant: whole months
-- (UTC) from its start, each computed from the start so that clamped month
-- ends do not drift (Jan 31 -> Feb 28 -> Mar 31).
create function private.subscription_period_at(started_at timestamptz, at timestamptz, out period_start timestamptz, out period_end timestamptz)
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  months integer := 0;
begin
  while private.add_months_utc(started_at, months + 1) <= at loop
    months := months + 1;
  end loop;
  period_start := private.add_months_utc(started_at, months);
  period_end := private.add_months_utc(started_at, months + 1);
end;
$$;

create function private.change_plan(org_id uuid, plan_id text)
returns public.subscriptions
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.plans;
  active public.subscriptions;
  current_plan public.plans;
  created public.subscriptions;
begin
  perform private.require_permission(change_plan.org_id, 'billing.manage');
  select * into target from public.plans p where p.id = change_plan.plan_id;
  if not found then
    raise exception 'unknown plan: %', coalesce(change_plan.plan_id, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.plans.';
  end if;
  select * into active from public.subscriptions s
  where s.org_id = change_plan.org_id and s.status = 'active'
  for update;
  if not found then
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;
  select * into current_plan from public.plans p where p.id = active.plan_id;

  if target.id = active.plan_id then
    -- Staying: a scheduled downgrade is called off.
    update public.subscriptions s set scheduled_plan_id = null where s.id = active.id returning * into active;
    return active;
  end if;

  if target.price_cents > current_plan.price_cents then
    update public.subscriptions s set status = 'canceled', canceled_at = pg_catalog.now(), scheduled_plan_id = null
    where s.id = active.id;
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;

  update public.subscriptions s set scheduled_plan_id = target.id where s.id = active.id returning * into active;
  return active;
end;
$$;

create function public.change_plan(org_id uuid, plan_id text)
returns public.subscriptions
language sql
security invoker
set search_path = ''
as $$
  select * from private.change_plan(change_plan.org_id, change_plan.plan_id);
$$;
comment on function public.change_plan(uuid, text) is 'Owners (billing.manage): an upgrade (higher price) starts now, unprorated; a downgrade is scheduled for the end of the current period; the current plan again cancels a scheduled change. Returns the active subscription.';

-- Renews every active subscription whose period has ended, applying a
-- scheduled plan: the old subscription is canceled at its period's end and
-- the new plan starts there. Returns the number of subscriptions renewed.
create function private.roll_subscriptions()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  due public.subscriptions;
  renewed integer := 0;
  next_period record;
begin
  for due in
    select * from public.subscriptions s
    where s.status = 'active' and s.current_period_end <= pg_catalog.now()
    order by s.current_period_end
    for update skip locked
  loop
    if due.scheduled_plan_id is not null then
      update public.subscriptions s set status = 'canceled', canceled_at = due.current_period_end, scheduled_plan_id = null
      where s.id = due.id;
      insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
      values (due.org_id, due.scheduled_plan_id, 'active', due.current_period_end, due.current_period_end,
        private.add_months_utc(due.current_period_end, 1))
      returning * into due;
    end if;
    -- Whole months from the start until the period holds now (a job that
    -- missed several months catches up in one step).
    next_period := private.subscription_period_at(due.started_at, pg_catalog.now());
    update public.subscriptions s
    set current_period_start = next_period.period_start, current_period_end = next_period.period_end
    where s.id = due.id and s.current_period_end <= pg_catalog.now();
    renewed := renewed + 1;
  end loop;
  return renewed;
end;
$$;
comment on function private.roll_subscriptions() is 'Starts the next monthly period of every active subscription whose period ended, applying a scheduled downgrade. Daily (pg_cron) and before invoicing. Service role.';

-- ---------------------------------------------------------------------------
-- Overage prices
--
-- Price per unit in cents, fractional (0.2000 cents per 1k chat tokens is
-- $2 per million). A line's amount is quantity x price rounded half up to
-- whole cents, per line; the invoice total is the sum of its lines' amounts.
-- Tokens are billed per 1k with the exact quantity (12,345 tokens = 12.345),
-- call minutes per started minute of the period's summed talk time,
-- documents per document held beyond the plan's count.
-- The free plan is listed at 0: usage beyond its allowance (embedding
-- tokens, which ingestion meters without refusing; minutes of inbound calls)
-- appears on its invoice as a 0-cent line, so the org sees it; nothing is
-- charged.
-- ---------------------------------------------------------------------------

create table public.plan_overage_prices (
  plan_id text not null references public.plans (id) on delete cascade,
  metric text not null constraint plan_overage_prices_metric check (metric in ('chat_tokens', 'embedding_tokens', 'call_minutes', 'documents')),
  unit text not null constraint plan_overage_prices_unit check (unit in ('1k tokens', 'minute', 'document')),
  price_cents_per_unit numeric(12, 4) not null constraint plan_overage_prices_price check (price_cents_per_unit >= 0),
  primary key (plan_id, metric),
  constraint plan_overage_prices_unit_matches check (
    (metric in ('chat_tokens', 'embedding_tokens') and unit = '1k tokens')
    or (metric = 'call_minutes' and unit = 'minute')
    or (metric = 'documents' and unit = 'document')
  )
);
comment on table public.plan_overage_prices is 'Price per unit (cents, fractional) of usage beyond a plan''s allowance. Changed only by migrations; signed-in users read.';

insert into public.plan_overage_prices (plan_id, metric, unit, price_cents_per_unit) values
  ('free',     'chat_tokens',      '1k tokens', 0),
  ('free',     'embedding_tokens', '1k tokens', 0),
  ('free',     'call_minutes',     'minute',    0),
  ('free',     'documents',        'document',  0),
  ('pro',      'chat_tokens',      '1k tokens', 0.2),
  ('pro',      'embedding_tokens', '1k tokens', 0.002),
  ('pro',      'call_minutes',     'minute',    5),
  ('pro',      'documents',        'document',  1),
  ('business', 'chat_tokens',      '1k tokens', 0.15),
  ('business', 'embedding_tokens', '1k tokens', 0.0015),
  ('business', 'call_minutes',     'minute',    4),
  ('business', 'documents',        'document',  0.5);

alter table public.plan_overage_prices enable row level security;
revoke all on public.plan_overage_prices from anon, authenticated, service_role;
grant select on public.plan_overage_prices to authenticated, service_role;
create policy "signed-in users can read the overage prices"
  on public.plan_overage_prices for select to authenticated
  using (true);

-- ---------------------------------------------------------------------------
-- Invoices
-- ---------------------------------------------------------------------------

create table public.invoices (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  -- A calendar month in UTC: [period_start, period_end).
  period_start date not null,
  period_end date not null,
  subscription_id uuid references public.subscriptions (id) on delete set null,
  plan_id text not null references public.plans (id),
  currency char(3) not null constraint invoices_currency_format check (currency ~ '^[A-Z]{3}$'),
  subtotal_cents bigint not null constraint invoices_subtotal_cents check (subtotal_cents >= 0),
  -- No taxes or discounts yet: the total is the subtotal.
  total_cents bigint not null constraint invoices_total_cents check (total_cents >= 0),
  status text not null default 'open' constraint invoices_status check (status in ('open', 'paid', 'void')),
  pdf_path text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint invoices_one_per_month unique (org_id, period_start),
  constraint invoices_id_org_id_key unique (id, org_id),
  constraint invoices_period check (period_start = date_trunc('month', period_start)::date and period_end = (period_start + interval '1 month')::date),
  constraint invoices_pdf_path_format check (pdf_path = org_id::text || '/invoices/' || id::text || '.pdf')
);
comment on table public.invoices is 'One per org and calendar month (UTC), made by private.generate_invoices. Owners and admins read (billing.read). The PDF is in the invoices bucket at pdf_path.';
comment on column public.invoices.pdf_path is 'Object <org_id>/invoices/<id>.pdf in the invoices bucket, once the billing function rendered it.';
create index invoices_org_id_idx on public.invoices (org_id, period_start desc);
create index invoices_subscription_idx on public.invoices (subscription_id);
create index invoices_plan_idx on public.invoices (plan_id);
create index invoices_needing_pdf_idx on public.invoices (created_at) where pdf_path is null;

create table public.invoice_lines (
  id uuid primary key default gen_random_uuid(),
  invoice_id uuid not null,
  org_id uuid not null references public.organizations (id) on delete cascade,
  position smallint not null constraint invoice_lines_position check (position >= 1),
  kind text not null constraint invoice_lines_kind check (kind in ('plan', 'overage')),
  metric text constraint invoice_lines_metric check (metric in ('chat_tokens', 'embedding_tokens', 'call_minutes', 'documents')),
  description text not null constraint invoice_lines_description_length check (length(description) between 1 and 300),
  quantity numeric(20, 3) not null constraint invoice_lines_quantity check (quantity >= 0),
  unit text not null constraint invoice_lines_unit check (unit in ('month', '1k tokens', 'minute', 'document')),
  unit_price_cents numeric(12, 4) not null constraint invoice_lines_unit_price check (unit_price_cents >= 0),
  -- round(quantity * unit_price_cents), half up, to whole cents.
  amount_cents bigint not null constraint invoice_lines_amount check (amount_cents >= 0),
  constraint invoice_lines_metric_for_overage check ((kind = 'overage') = (metric is not null)),
  constraint invoice_lines_position_unique unique (invoice_id, position),
  constraint invoice_lines_invoice_fk foreign key (invoice_id, org_id) references public.invoices (id, org_id) on delete cascade
);
comment on table public.invoice_lines is 'The lines of an invoice: the plan, then one overage line per metric used beyond the allowance. Owners and admins read (billing.read).';
create index invoice_lines_org_id_idx on public.invoice_lines (org_id);
create index invoice_lines_invoice_idx on public.invoice_lines (invoice_id, org_id);

create trigger invoices_set_updated_at before update on public.invoices
  for each row execute function private.set_updated_at();
create trigger invoices_audit after insert or update or delete on public.invoices
  for each row execute function private.audit_row_change();
create trigger invoice_lines_audit after insert or update or delete on public.invoice_lines
  for each row execute function private.audit_row_change();

alter table public.invoices enable row level security;
alter table public.invoice_lines enable row level security;
revoke all on public.invoices, public.invoice_lines from anon, authenticated;
grant select on public.invoices, public.invoice_lines to authenticated;
create policy "admins and up can read their org's invoices"
  on public.invoices for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('billing.read'))));
create policy "admins and up can read their org's invoice lines"
  on public.invoice_lines for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('billing.read'))));

-- Makes the invoices of one calendar month (UTC) that has ended: one per org
-- with a subscription active at any time in it, for the plan in force at the
-- month's end (the latest started), billed in full; plus one overage line per
-- metric whose use in the month exceeded that plan's allowance. Idempotent:
-- an org that has the month's invoice is skipped (and concurrent runs meet
-- on the unique key), so a second run returns 0. Emits invoice.created per
-- new invoice and wakes the billing function to render the PDFs.
create function private.generate_invoices(period_start date)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  period_end date := (generate_invoices.period_start + interval '1 month')::date;
  from_at timestamptz := generate_invoices.period_start::timestamp at time zone 'UTC';
  to_at timestamptz := (generate_invoices.period_start + interval '1 month')::timestamp at time zone 'UTC';
  billed record;
  invoice public.invoices;
  usage record;
  line_position smallint;
  overage numeric;
  created integer := 0;
begin
  if generate_invoices.period_start is null
    or generate_invoices.period_start <> date_trunc('month', generate_invoices.period_start)::date then
    raise exception 'an invoice period starts on the first of a month, not %', coalesce(generate_invoices.period_start::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if to_at > pg_catalog.now() then
    raise exception 'the month of % has not ended yet', generate_invoices.period_start
      using errcode = 'invalid_parameter_value', hint = 'Invoices are made for months that have ended.';
  end if;

  for billed in
    select distinct on (s.org_id) s.org_id, s.id as subscription_id, p.*
    from public.subscriptions s
    join public.plans p on p.id = s.plan_id
    where s.started_at < to_at
      and (s.canceled_at is null or s.canceled_at > from_at)
      and not exists (select 1 from public.invoices i where i.org_id = s.org_id and i.period_start = generate_invoices.period_start)
    order by s.org_id, s.started_at desc, s.created_at desc
  loop
    insert into public.invoices (org_id, period_start, period_end, subscription_id, plan_id, currency, subtotal_cents, total_cents)
    values (billed.org_id, generate_invoices.period_start, period_end, billed.subscription_id, billed.id, billed.currency, 0, 0)
    on conflict on constraint invoices_one_per_month do nothing
    returning * into invoice;
    continue when invoice.id is null;

    insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents)
    values (invoice.id, invoice.org_id, 1, 'plan', null,
      pg_catalog.format('%s plan, %s', billed.name, pg_catalog.to_char(generate_invoices.period_start, 'FMMonth YYYY')),
      1, 'month', billed.price_cents, billed.price_cents);
    line_position := 1;

    for usage in
      select m.metric, m.used, private.plan_included(billed.id, m.metric) as included, o.unit, o.price_cents_per_unit
      from private.metered_usage(billed.org_id, from_at, to_at) m
      join public.plan_overage_prices o on o.plan_id = billed.id and o.metric = m.metric
      order by pg_catalog.array_position(private.plan_metrics(), m.metric)
    loop
      continue when usage.used <= usage.included;
      overage := case when usage.unit = '1k tokens' then (usage.used - usage.included) / 1000.0 else usage.used - usage.included end;
      line_position := line_position + 1;
      insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents)
      values (invoice.id, invoice.org_id, line_position, 'overage', usage.metric,
        pg_catalog.format('%s beyond the %s included: %s used',
          pg_catalog.initcap(pg_catalog.replace(usage.metric, '_', ' ')),
          pg_catalog.to_char(usage.included, 'FM999,999,999,999'), pg_catalog.to_char(usage.used, 'FM999,999,999,999')),
        overage, usage.unit, usage.price_cents_per_unit,
        -- numeric round() rounds half away from zero: half up for these positive amounts.
        pg_catalog.round(overage * usage.price_cents_per_unit)::bigint);
    end loop;

    update public.invoices i
    set subtotal_cents = t.total, total_cents = t.total
    from (select coalesce(sum(l.amount_cents), 0)::bigint as total from public.invoice_lines l where l.invoice_id = invoice.id) t
    where i.id = invoice.id
    returning i.* into invoice;

    perform private.emit_event(invoice.org_id, 'invoice.created', pg_catalog.jsonb_build_object(
      'invoice_id', invoice.id, 'period_start', invoice.period_start::text, 'period_end', invoice.period_end::text,
      'total_cents', invoice.total_cents, 'currency', invoice.currency));
    created := created + 1;
  end loop;

  if created > 0 then
    perform private.invoke_edge_function('billing', '{"action": "render_pdfs"}'::jsonb, 5000);
  end if;
  return created;
end;
$$;
comment on function private.generate_invoices(date) is 'Invoices one ended calendar month (UTC; period_start = its first day) for every org with a subscription in it; idempotent (a second run returns 0); emits invoice.created. Service role and pg_cron.';

-- PDFs: the billing function takes invoices without a PDF, renders each with
-- pdf-lib, uploads it to the invoices bucket at <org_id>/invoices/<id>.pdf
-- (service role), then records the path. A taken invoice is not handed out
-- again for 10 minutes (a crashed render is retried), at most 5 times.
create table private.invoice_pdf_requests (
  invoice_id uuid primary key references public.invoices (id) on delete cascade,
  requested_at timestamptz not null,
  attempts integer not null default 1
);
revoke all on private.invoice_pdf_requests from public, anon, authenticated, service_role;

create function private.invoices_needing_pdf(max_invoices integer)
returns table (invoice_id uuid, org_id uuid, pdf_path text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_invoices is null or max_invoices not between 1 and 100 then
    raise exception 'max_invoices must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with picked as (
    select i.id, i.org_id
    from public.invoices i
    left join private.invoice_pdf_requests r on r.invoice_id = i.id
    where i.pdf_path is null
      and (r.invoice_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
    order by i.created_at
    limit max_invoices
    for update of i skip locked
  ),
  marked as (
    insert into private.invoice_pdf_requests as r (invoice_id, requested_at)
    select picked.id, pg_catalog.now() from picked
    on conflict on constraint invoice_pdf_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
    returning r.invoice_id
  )
  select p.id, p.org_id, p.org_id::text || '/invoices/' || p.id::text || '.pdf'
  from picked p join marked m on m.invoice_id = p.id
  order by p.id;
end;
$$;
comment on function private.invoices_needing_pdf(integer) is 'Takes up to max_invoices invoices without a PDF (each again after 10 minutes, 5 times at most; skip locked) with the path to upload to. Service role.';

create function private.save_invoice_pdf(invoice_id uuid, pdf_path text)
returns public.invoices
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.invoices;
  expected text;
begin
  select * into target from public.invoices i where i.id = save_invoice_pdf.invoice_id for update;
  if not found then
    raise exception 'invoice not found' using errcode = 'no_data_found';
  end if;
  expected := target.org_id::text || '/invoices/' || target.id::text || '.pdf';
  if pdf_path is distinct from expected then
    raise exception 'an invoice''s PDF is stored at %, not %', expected, coalesce(pdf_path, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from storage.objects o where o.bucket_id = 'invoices' and o.name = expected) then
    raise exception 'no object % in the invoices bucket', expected
      using errcode = 'no_data_found', hint = 'Upload the PDF first.';
  end if;
  update public.invoices i set pdf_path = expected where i.id = target.id returning * into target;
  delete from private.invoice_pdf_requests r where r.invoice_id = target.id;
  return target;
end;
$$;
comment on function private.save_invoice_pdf(uuid, text) is 'Records an invoice''s PDF once uploaded to the invoices bucket at <org_id>/invoices/<id>.pdf. Service role.';

create function private.request_invoice_pdfs()
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (
    select 1 from public.invoices i left join private.invoice_pdf_requests r on r.invoice_id = i.id
    where i.pdf_path is null
      and (r.invoice_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
  ) then
    return false;
  end if;
  return private.invoke_edge_function('billing', '{"action": "render_pdfs"}'::jsonb, 5000);
end;
$$;

-- The invoices bucket: private, PDFs only, written by the service role.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('invoices', 'invoices', false, 5242880, array['application/pdf']);
insert into private.org_buckets (bucket_id) values ('invoices');

-- Read with billing.read (owners, admins, platform admins), written by the service role only.
insert into private.narrowed_buckets (bucket_id, read_permission) values ('invoices', 'billing.read');

-- ---------------------------------------------------------------------------
-- Data export
--
-- An owner asks with request_data_export(org_id); the `export` edge function
-- (service role) produces it in steps, each within a function's CPU budget:
--   1. private.claim_export_step(export_id) -> the export (status running,
--      a 2-minute lease) or null when another worker holds it or it is over;
--   2. for the cursor's table: private.export_rows(export_id, table, after_key,
--      max_rows) -> (row_key, row_data) in key order; write them as JSON and
--      CSV under storage_prefix (<org_id>/exports/<export_id>/<table>.json,
--      .csv, then manifest.json) in the exports bucket; fewer rows than asked
--      means the table is done;
--   3. private.record_export_progress(export_id, cursor, percent) stores
--      where to resume ({"table": t, "after": last row_key, "part": n}),
--      releases the lease and wakes the function for the next step;
--   4. private.finish_export(export_id, ok, error) ends it: ready (expires in
--      7 days; event export.ready) or failed with the error.
-- A step that dies leaves its lease to run out; pg_cron wakes the function
-- every minute for exports that wait. Every status or progress change is
-- broadcast on org:<org_id>:exports (owners only).
-- ---------------------------------------------------------------------------

-- What an export holds: the org's rows of these tables, in this order, each
-- in the order of its key. (Not exported: document chunks and their
-- embeddings, derived from the documents; webhook deliveries and attempts;
-- secrets of any kind, which live in private tables.)
create table private.export_tables (
  table_name text primary key,
  position smallint not null unique,
  org_column text not null default 'org_id',
  -- How rows are keyed and ordered: a column of type uuid or bigint, or a
  -- text expression over the row t (ordered with the C collation).
  key_column text,
  key_type text not null constraint export_tables_key_type check (key_type in ('uuid', 'bigint', 'text')),
  key_expression text,
  constraint export_tables_key check ((key_type = 'text') = (key_expression is not null) and (key_type = 'text') = (key_column is null))
);
revoke all on private.export_tables from public, anon, authenticated, service_role;

insert into private.export_tables (table_name, position, org_column, key_column, key_type, key_expression) values
  ('organizations',            1,  'id',     'id',      'uuid',   null),
  ('memberships',              2,  'org_id', 'user_id', 'uuid',   null),
  ('org_settings',             3,  'org_id', 'org_id',  'uuid',   null),
  ('subscriptions',            4,  'org_id', 'id',      'uuid',   null),
  ('invoices',                 5,  'org_id', 'id',      'uuid',   null),
  ('invoice_lines',            6,  'org_id', 'id',      'uuid',   null),
  ('api_keys',                 7,  'org_id', 'id',      'uuid',   null),
  ('webhook_endpoints',        8,  'org_id', 'id',      'uuid',   null),
  ('events',                   9,  'org_id', 'id',      'uuid',   null),
  ('projects',                 10, 'org_id', 'id',      'uuid',   null),
  ('collections',              11, 'org_id', 'id',      'uuid',   null),
  ('documents',                12, 'org_id', 'id',      'uuid',   null),
  ('bots',                     13, 'org_id', 'id',      'uuid',   null),
  ('bot_collections',          14, 'org_id', null,      'text',   't.bot_id::text || '':'' || t.collection_id::text'),
  ('conversations',            15, 'org_id', 'id',      'uuid',   null),
  ('messages',                 16, 'org_id', 'id',      'bigint', null),
  ('catalog_categories',       17, 'org_id', 'id',      'uuid',   null),
  ('products',                 18, 'org_id', 'id',      'uuid',   null),
  ('business_hours',           19, 'org_id', 'id',      'uuid',   null),
  ('business_closures',        20, 'org_id', 'id',      'uuid',   null),
  ('call_campaigns',           21, 'org_id', 'id',      'uuid',   null),
  ('calls',                    22, 'org_id', 'id',      'uuid',   null),
  ('call_transcript_segments', 23, 'org_id', 'id',      'bigint', null),
  ('call_feedback',            24, 'org_id', 'id',      'uuid',   null),
  ('calendar_connections',     25, 'org_id', 'id',      'uuid',   null),
  ('appointments',             26, 'org_id', 'id',      'uuid',   null),
  ('usage_events',             27, 'org_id', 'id',      'bigint', null),
  ('audit_log',                28, 'org_id', 'seq',     'bigint', null);

create type public.data_export_status as enum ('queued', 'running', 'ready', 'failed');

create table public.data_exports (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  requested_by uuid references auth.users (id) on delete set null,
  status public.data_export_status not null default 'queued',
  progress_percent smallint not null default 0 constraint data_exports_progress check (progress_percent between 0 and 100),
  tables text[] not null,
  -- Where the next step resumes: {"table": <name or null when done>, "after": <row key or null>, "part": n}.
  cursor jsonb not null default '{}' constraint data_exports_cursor_object check (jsonb_typeof(cursor) = 'object'),
  storage_prefix text not null,
  error text constraint data_exports_error_length check (length(error) between 1 and 1000),
  lease_until timestamptz,
  steps integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  expires_at timestamptz,
  constraint data_exports_prefix check (storage_prefix = org_id::text || '/exports/' || id::text || '/'),
  constraint data_exports_failed_has_error check ((status = 'failed') = (error is not null)),
  constraint data_exports_finished check ((status in ('ready', 'failed')) = (finished_at is not null)),
  constraint data_exports_ready_expires check ((status = 'ready') = (expires_at is not null))
);
comment on table public.data_exports is 'An owner''s export of all the org''s data (JSON and CSV per table under storage_prefix in the exports bucket), made in resumable steps by the export function. Owners read (data.export).';
create index data_exports_org_id_idx on public.data_exports (org_id, created_at desc);
create index data_exports_requested_by_idx on public.data_exports (requested_by);
create index data_exports_waiting_idx on public.data_exports (lease_until) where status in ('queued', 'running');
-- One export in progress per org, whatever the path.
create unique index data_exports_one_in_progress on public.data_exports (org_id) where status in ('queued', 'running');

create trigger data_exports_set_updated_at before update on public.data_exports
  for each row execute function private.set_updated_at();
-- Audited when requested, deleted, and when the status changes (not each
-- progress tick or lease).
create trigger data_exports_audit after insert or delete on public.data_exports
  for each row execute function private.audit_row_change();
create trigger data_exports_audit_update after update of status on public.data_exports
  for each row execute function private.audit_row_change();
create trigger data_exports_broadcast
  after insert or update of status, progress_percent, error or delete on public.data_exports
  for each row execute function private.broadcast_org_change('exports');

alter table public.data_exports enable row level security;
revoke all on public.data_exports from anon, authenticated;
grant select on public.data_exports to authenticated;
create policy "owners can read their org's data exports"
  on public.data_exports for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('data.export'))));

create function private.request_export_step(export_id uuid)
returns boolean
language sql
security definer
set search_path = ''
as $$
  select private.invoke_edge_function('export', pg_catalog.jsonb_build_object('export_id', export_id), 5000);
$$;

create function private.request_data_export(org_id uuid)
returns public.data_exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_id uuid := gen_random_uuid();
  created public.data_exports;
  export_table_names text[] := array(select t.table_name from private.export_tables t order by t.position);
begin
  perform private.require_permission(request_data_export.org_id, 'data.export');
  -- Serialise requests of one org: the check below then sees the other's row.
  perform 1 from public.organizations o where o.id = request_data_export.org_id for no key update;
  if exists (select 1 from public.data_exports e where e.org_id = request_data_export.org_id and e.status in ('queued', 'running')) then
    raise exception 'an export of this organization is already in progress'
      using errcode = 'unique_violation', hint = 'Wait for it to finish (its progress is on the exports channel).';
  end if;
  insert into public.data_exports (id, org_id, requested_by, tables, cursor, storage_prefix)
  values (new_id, request_data_export.org_id, auth.uid(), export_table_names,
    pg_catalog.jsonb_build_object('table', export_table_names[1], 'after', null, 'part', 0),
    request_data_export.org_id::text || '/exports/' || new_id::text || '/')
  returning * into created;
  perform private.request_export_step(created.id);
  return created;
end;
$$;

create function public.request_data_export(org_id uuid)
returns public.data_exports
language sql
security invoker
set search_path = ''
as $$
  select * from private.request_data_export(request_data_export.org_id);
$$;
comment on function public.request_data_export(uuid) is 'Owners (data.export): queues an export of all the org''s data; 23505 while another is in progress. Progress on org:<org_id>:exports; export.ready when done.';

create function private.claim_export_step(export_id uuid)
returns public.data_exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
begin
  if not exists (select 1 from public.data_exports e where e.id = claim_export_step.export_id) then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  select * into target from public.data_exports e
  where e.id = claim_export_step.export_id
    and e.status in ('queued', 'running')
    and (e.lease_until is null or e.lease_until < pg_catalog.now())
  for update skip locked;
  if not found then
    return null;
  end if;
  update public.data_exports e
  set status = 'running', lease_until = pg_catalog.now() + interval '2 minutes', steps = e.steps + 1
  where e.id = target.id
  returning * into target;
  return target;
end;
$$;
comment on function private.claim_export_step(uuid) is 'Takes the next step of an export (status running, a 2-minute lease); null when another worker holds it or it is over. P0002 for an unknown export. Service role.';

-- The running export's org's rows of one table of its list, after a key, in
-- key order. The org comes from the export, never from the caller, so a step
-- cannot read another org's rows.
create function private.export_rows(export_id uuid, table_name text, after_key text, max_rows integer)
returns table (row_key text, row_data jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
  spec private.export_tables;
  key_sql text;
begin
  select * into target from public.data_exports e where e.id = export_rows.export_id;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.status <> 'running' then
    raise exception 'the export is %, not running', target.status
      using errcode = 'invalid_parameter_value', hint = 'Claim a step first (private.claim_export_step).';
  end if;
  select * into spec from private.export_tables t where t.table_name = export_rows.table_name;
  if not found or not (export_rows.table_name = any (target.tables)) then
    raise exception 'not a table of this export: %', coalesce(export_rows.table_name, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if max_rows is null or max_rows not between 1 and 5000 then
    raise exception 'max_rows must be between 1 and 5000' using errcode = 'invalid_parameter_value';
  end if;
  if spec.key_type = 'uuid' and after_key is not null
    and after_key !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    raise exception 'after_key must be a row_key of %', spec.table_name using errcode = 'invalid_parameter_value';
  end if;
  if spec.key_type = 'bigint' and after_key is not null and after_key !~ '^[0-9]{1,19}$' then
    raise exception 'after_key must be a row_key of %', spec.table_name using errcode = 'invalid_parameter_value';
  end if;

  if spec.key_type = 'text' then
    key_sql := '(' || spec.key_expression || ') collate "C"';
    return query execute pg_catalog.format(
      'select %1$s::text, pg_catalog.to_jsonb(t) from public.%2$I t where t.%3$I = $1 and ($2 is null or %1$s > $2) order by 1 limit $3',
      key_sql, spec.table_name, spec.org_column)
    using target.org_id, after_key, max_rows;
  else
    return query execute pg_catalog.format(
      'select t.%1$I::text, pg_catalog.to_jsonb(t) from public.%2$I t where t.%3$I = $1 and ($2 is null or t.%1$I > $2::%4$s) order by t.%1$I limit $3',
      spec.key_column, spec.table_name, spec.org_column, spec.key_type)
    using target.org_id, after_key, max_rows;
  end if;
end;
$$;
comment on function private.export_rows(uuid, text, text, integer) is 'Up to max_rows (1-5000) of the export''s org''s rows of one table of its list, with keys after after_key (null: from the start), in key order, as (row_key, row_data). Service role.';

create function private.record_export_progress(export_id uuid, cursor jsonb, progress integer)
returns public.data_exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
begin
  select * into target from public.data_exports e where e.id = record_export_progress.export_id for update;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.status <> 'running' then
    raise exception 'the export is %, not running', target.status using errcode = 'invalid_parameter_value';
  end if;
  if cursor is null or pg_catalog.jsonb_typeof(cursor) <> 'object'
    or (cursor ? 'table' and pg_catalog.jsonb_typeof(cursor -> 'table') <> 'null'
        and not ((cursor ->> 'table') = any (target.tables))) then
    raise exception 'the cursor is an object whose table is one of the export''s tables (or null when done)'
      using errcode = 'invalid_parameter_value';
  end if;
  if progress is null or progress not between 0 and 100 then
    raise exception 'progress is between 0 and 100' using errcode = 'invalid_parameter_value';
  end if;
  update public.data_exports e
  set cursor = record_export_progress.cursor,
      progress_percent = greatest(e.progress_percent, record_export_progress.progress),
      lease_until = null
  where e.id = target.id
  returning * into target;
  perform private.request_export_step(target.id);
  return target;
end;
$$;
comment on function private.record_export_progress(uuid, jsonb, integer) is 'Stores where the export resumes and its percent (never going back), releases the step''s lease and wakes the export function for the next step. Service role.';

create function private.finish_export(
  export_id uuid, ok boolean, error text, download_url text default null, link_expires_at timestamptz default null
)
returns public.data_exports
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
begin
  select * into target from public.data_exports e where e.id = finish_export.export_id for update;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.status not in ('queued', 'running') then
    raise exception 'the export is already %', target.status using errcode = 'invalid_parameter_value';
  end if;
  if ok is null then
    raise exception 'ok is true or false' using errcode = 'invalid_parameter_value';
  end if;
  if ok then
    update public.data_exports e
    set status = 'ready', progress_percent = 100, lease_until = null, cursor = pg_catalog.jsonb_build_object('table', null),
        finished_at = pg_catalog.now(), expires_at = pg_catalog.now() + interval '7 days'
    where e.id = target.id
    returning * into target;
    perform private.emit_event(target.org_id, 'export.ready', pg_catalog.jsonb_build_object(
      'export_id', target.id, 'storage_prefix', target.storage_prefix, 'expires_at', private.rfc3339(target.expires_at),
      'download_url', finish_export.download_url,
      'link_expires_at', case when finish_export.link_expires_at is not null then private.rfc3339(finish_export.link_expires_at) end));
  else
    update public.data_exports e
    set status = 'failed', lease_until = null, finished_at = pg_catalog.now(),
        error = left(coalesce(nullif(pg_catalog.btrim(finish_export.error), ''), 'the export failed'), 1000)
    where e.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;
comment on function private.finish_export(uuid, boolean, text, text, timestamptz) is 'Ends an export: ready (expires in 7 days; emits export.ready with the signed download link the function made, and when it stops working) or failed with the error. 22023 when it already ended. Service role.';

-- pg_cron, every minute: wakes the export function for each export waiting
-- for a step (queued, or a lease that ran out). Returns how many.
create function private.resume_exports()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  waiting record;
  woken integer := 0;
begin
  for waiting in
    select e.id from public.data_exports e
    where e.status in ('queued', 'running') and (e.lease_until is null or e.lease_until < pg_catalog.now())
      and e.updated_at < pg_catalog.now() - interval '30 seconds'
    order by e.created_at limit 20
  loop
    perform private.request_export_step(waiting.id);
    woken := woken + 1;
  end loop;
  return woken;
end;
$$;

-- The exports bucket: private, written by the service role, read by owners
-- only (data.export; not platform admins: an export is all of an org's data).
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('exports', 'exports', false, 524288000, null);
insert into private.org_buckets (bucket_id) values ('exports');

insert into private.narrowed_buckets (bucket_id, read_permission, platform_admins_read) values ('exports', 'data.export', false);

-- The exports channel: only owners (data.export) receive and send on
-- org:<org_id>:exports.
insert into private.narrowed_channels (channel, permission) values ('exports', 'data.export');

-- ---------------------------------------------------------------------------
-- Organization deletion
--
-- Every org-scoped table cascades from public.organizations (document chunks
-- too: the org's partition is emptied by the cascade and dropped by the
-- hourly drop-orphaned-chunk-partitions job). Deleting the org row, by
-- delete_organization or any other path (an owner through RLS, the service
-- role), first records the deletion in private.deleted_organizations (who,
-- when, how many rows of each table); the audit trigger then logs the
-- deletion of the org and of each cascaded row in the org's chain, which
-- outlives the org (public.audit_log has no foreign key to it).
--
-- Files are not rows: Storage objects are removed through the Storage API
-- (so their bytes go too). The sequence, run by the function that deletes an
-- org (another engineer's edge function):
--   1. rpc('delete_organization', { org_id, confirm_name }) as the owner
--      (the checks, the rows, the deletion record);
--   2. as the service role, repeat until empty: private.org_storage_objects
--      (org_id, 1000) -> storage.from(bucket_id).remove(names);
--   3. private.finish_org_storage_removal(org_id) -> 0 (sets
--      storage_removed_at; returns the number of objects left otherwise).
-- private.org_deletions_pending_storage() lists deleted orgs whose files are
-- not gone yet, so a crashed step 2 is resumed.
-- ---------------------------------------------------------------------------

create table private.deleted_organizations (
  org_id uuid primary key,
  name text not null,
  slug text not null,
  deleted_by uuid,
  deleted_at timestamptz not null default now(),
  row_counts jsonb not null,
  storage_objects integer not null,
  storage_removed_at timestamptz
);
comment on table private.deleted_organizations is 'One row per deleted org: who deleted it, when, the rows of each table and the Storage objects it held. Outlives the org (no foreign key); the file removal is recorded in storage_removed_at.';
revoke all on private.deleted_organizations from public, anon, authenticated, service_role;

-- Objects of an org in every org bucket (names <org_id>/...).
create function private.org_storage_objects(org_id uuid, max_objects integer default 1000)
returns table (bucket_id text, name text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if max_objects is null or max_objects not between 1 and 10000 then
    raise exception 'max_objects must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select o.bucket_id, o.name
  from storage.objects o
  where o.bucket_id in (select b.bucket_id from private.org_buckets b)
    and starts_with(o.name, org_storage_objects.org_id::text || '/')
  order by o.bucket_id, o.name
  limit max_objects;
end;
$$;
comment on function private.org_storage_objects(uuid, integer) is 'Storage objects (bucket, name) under <org_id>/ in every org bucket, at most max_objects, for removal through the Storage API. Service role.';

create function private.record_org_deletion()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  counts jsonb := '{}';
  tenant_table record;
  n bigint;
begin
  for tenant_table in
    select c.relname from pg_catalog.pg_class c
    join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
    where ns.nspname = 'public' and c.relkind in ('r', 'p') and c.relname <> 'audit_log'
      and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
    order by c.relname
  loop
    execute pg_catalog.format('select count(*) from public.%I where org_id = $1', tenant_table.relname) into n using old.id;
    if n > 0 then
      counts := counts || pg_catalog.jsonb_build_object(tenant_table.relname, n);
    end if;
  end loop;
  insert into private.deleted_organizations (org_id, name, slug, deleted_by, deleted_at, row_counts, storage_objects)
  values (old.id, old.name, old.slug, auth.uid(), pg_catalog.now(), counts || pg_catalog.jsonb_build_object('organizations', 1),
    (select count(*) from storage.objects o
     where o.bucket_id in (select b.bucket_id from private.org_buckets b) and starts_with(o.name, old.id::text || '/')))
  on conflict on constraint deleted_organizations_pkey do nothing;
  return old;
end;
$$;

create trigger organizations_record_deletion before delete on public.organizations
  for each row execute function private.record_org_deletion();

create function private.delete_organization(org_id uuid, confirm_name text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.organizations;
begin
  perform private.require_permission(delete_organization.org_id, 'org.delete');
  select * into target from public.organizations o where o.id = delete_organization.org_id for update;
  if not found then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  delete from public.organizations o where o.id = target.id;
end;
$$;

create function public.delete_organization(org_id uuid, confirm_name text)
returns void
language sql
security invoker
set search_path = ''
as $$
  select private.delete_organization(delete_organization.org_id, delete_organization.confirm_name);
$$;
comment on function public.delete_organization(uuid, text) is 'Owners (org.delete): deletes the org and every row of it once confirm_name equals its name exactly (22023 otherwise). Its Storage files are then removed by the service role (private.org_storage_objects).';

create function private.finish_org_storage_removal(org_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  remaining integer;
begin
  if exists (select 1 from public.organizations o where o.id = finish_org_storage_removal.org_id) then
    raise exception 'the organization still exists' using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into remaining from private.org_storage_objects(finish_org_storage_removal.org_id, 10000);
  if remaining = 0 then
    update private.deleted_organizations d set storage_removed_at = coalesce(d.storage_removed_at, pg_catalog.now())
    where d.org_id = finish_org_storage_removal.org_id;
  end if;
  return remaining;
end;
$$;
comment on function private.finish_org_storage_removal(uuid) is 'After the files of a deleted org were removed through the Storage API: records it (0) or returns how many objects are left. Service role.';

create function private.org_deletions_pending_storage()
returns table (org_id uuid, deleted_at timestamptz, storage_objects integer)
language sql
stable
security definer
set search_path = ''
as $$
  select d.org_id, d.deleted_at, d.storage_objects from private.deleted_organizations d
  where d.storage_removed_at is null order by d.deleted_at limit 100;
$$;

-- ---------------------------------------------------------------------------
-- Account deletion
--
-- delete_account() (the caller): refused with 23514 naming every org the
-- caller is the only owner of; otherwise removes all the caller's
-- memberships (audited in each org) and records the request. Deleting the
-- auth user needs the service role: the function that serves "delete my
-- account" then calls private.delete_user(user_id) (or the Admin API
-- auth.admin.deleteUser), which deletes the auth.users row; the user's
-- profile and user_settings cascade, and their id is set to null where it
-- is kept for history (created_by, requested_by, ...).
-- ---------------------------------------------------------------------------

create table private.account_deletions (
  user_id uuid primary key,
  requested_at timestamptz not null default now(),
  completed_at timestamptz
);
comment on table private.account_deletions is 'Accounts whose owner asked for deletion (delete_account) and when the auth user was deleted (private.delete_user).';
revoke all on private.account_deletions from public, anon, authenticated, service_role;

create function private.require_not_sole_owner(user_id uuid)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  sole text;
begin
  select pg_catalog.string_agg(pg_catalog.format('"%s"', o.name), ', ' order by o.name) into sole
  from public.memberships m
  join public.organizations o on o.id = m.org_id
  where m.user_id = require_not_sole_owner.user_id and m.role = 'owner'
    and not exists (
      select 1 from public.memberships other
      where other.org_id = m.org_id and other.role = 'owner' and other.user_id <> require_not_sole_owner.user_id
    );
  if sole is not null then
    raise exception 'you are the only owner of %: transfer ownership or delete the organization first', sole
      using errcode = 'check_violation',
            hint = 'transfer_ownership(org_id, new_owner_id) or delete_organization(org_id, confirm_name).';
  end if;
end;
$$;

create function private.delete_account()
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := private.require_user();
begin
  perform private.require_not_sole_owner(caller);
  delete from public.memberships m where m.user_id = caller;
  insert into private.account_deletions (user_id) values (caller)
  on conflict on constraint account_deletions_pkey do update set requested_at = excluded.requested_at, completed_at = null;
end;
$$;

create function public.delete_account()
returns void
language sql
security invoker
set search_path = ''
as $$
  select private.delete_account();
$$;
comment on function public.delete_account() is 'The caller leaves every organization and asks for their account to be deleted (then done by the service role: private.delete_user). 23514 naming the orgs the caller is the only owner of.';

create function private.delete_user(user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if user_id is null then
    raise exception 'user_id is required' using errcode = 'invalid_parameter_value';
  end if;
  -- Ownership may have changed since delete_account: checked again.
  perform private.require_not_sole_owner(user_id);
  delete from public.memberships m where m.user_id = delete_user.user_id;
  delete from auth.users u where u.id = delete_user.user_id;
  if not found then
    return false;
  end if;
  insert into private.account_deletions as d (user_id, completed_at) values (delete_user.user_id, pg_catalog.now())
  on conflict on constraint account_deletions_pkey do update set completed_at = excluded.completed_at;
  return true;
end;
$$;
comment on function private.delete_user(uuid) is 'Deletes a user''s account (memberships, then the auth.users row; profile and settings cascade); 23514 while they are the only owner of an org. False when there is no such user. Service role.';

-- ---------------------------------------------------------------------------
-- Schedules (pg_cron, UTC)
-- ---------------------------------------------------------------------------

select cron.schedule('roll-subscriptions', '5 0 * * *', 'select private.roll_subscriptions()');
select cron.schedule('generate-invoices', '0 2 1 * *',
  $$select private.roll_subscriptions(), private.generate_invoices((date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date)$$);
select cron.schedule('render-invoice-pdfs', '17 * * * *', 'select private.request_invoice_pdfs()');
select cron.schedule('resume-exports', '* * * * *', 'select private.resume_exports()');

-- ---------------------------------------------------------------------------
-- Who may run what. Default-deny: revoked from public, then granted one by
-- one. RPCs (invoker) and the definer code behind them to signed-in users;
-- the service steps to the service role; triggers and internals to nobody.
-- ---------------------------------------------------------------------------

revoke execute on function
  private.notification_preferences_problem(jsonb, text),
  private.validate_org_settings(),
  private.set_org_settings_updated_by(),
  private.create_org_settings(),
  private.validate_user_settings(),
  private.create_user_settings_for_new_user(),
  private.notification_route(uuid, text),
  private.skip_muted_webhook_delivery(),
  private.plan_metrics(),
  private.plan_included(text, text),
  private.metered_usage(uuid, timestamptz, timestamptz),
  private.plan_usage(uuid),
  private.read_plan_usage(uuid),
  public.plan_usage(uuid),
  private.require_quota(uuid, text),
  private.require_document_quota(),
  private.require_call_minutes_for_new_calls(),
  private.subscription_period_at(timestamptz, timestamptz),
  private.change_plan(uuid, text),
  public.change_plan(uuid, text),
  private.roll_subscriptions(),
  private.generate_invoices(date),
  private.invoices_needing_pdf(integer),
  private.save_invoice_pdf(uuid, text),
  private.request_invoice_pdfs(),
  private.request_export_step(uuid),
  private.request_data_export(uuid),
  public.request_data_export(uuid),
  private.claim_export_step(uuid),
  private.export_rows(uuid, text, text, integer),
  private.record_export_progress(uuid, jsonb, integer),
  private.finish_export(uuid, boolean, text, text, timestamptz),
  private.resume_exports(),
  private.org_storage_objects(uuid, integer),
  private.record_org_deletion(),
  private.delete_organization(uuid, text),
  public.delete_organization(uuid, text),
  private.finish_org_storage_removal(uuid),
  private.org_deletions_pending_storage(),
  private.require_not_sole_owner(uuid),
  private.delete_account(),
  public.delete_account(),
  private.delete_user(uuid)
from public;

grant execute on function
  public.plan_usage(uuid),
  private.read_plan_usage(uuid),
  public.change_plan(uuid, text),
  private.change_plan(uuid, text),
  public.request_data_export(uuid),
  private.request_data_export(uuid),
  public.delete_organization(uuid, text),
  private.delete_organization(uuid, text),
  public.delete_account(),
  private.delete_account()
to authenticated;

grant execute on function
  public.plan_usage(uuid),
  private.read_plan_usage(uuid),
  private.notification_route(uuid, text),
  private.plan_usage(uuid),
  private.require_quota(uuid, text),
  private.roll_subscriptions(),
  private.generate_invoices(date),
  private.invoices_needing_pdf(integer),
  private.save_invoice_pdf(uuid, text),
  private.request_invoice_pdfs(),
  private.claim_export_step(uuid),
  private.export_rows(uuid, text, text, integer),
  private.record_export_progress(uuid, jsonb, integer),
  private.finish_export(uuid, boolean, text, text, timestamptz),
  private.resume_exports(),
  private.org_storage_objects(uuid, integer),
  private.finish_org_storage_removal(uuid),
  private.org_deletions_pending_storage(),
  private.delete_user(uuid)
to service_role;
