-- Domain events: one table per org of things that happened (type, payload,
-- time), written by the modules in the same transaction as the change they
-- describe, through one helper: private.emit_event(org_id, type, payload).
-- The catalogue public.event_types holds each type's JSON schema; payloads
-- are validated against it on the way in. Outbound webhooks
-- (20261123000800_webhooks.sql) fan events out to endpoints.

insert into public.role_permissions (permission, min_role, description) values
  ('webhooks.read',   'member', 'See events, webhook endpoints (never their secrets) and delivery attempts'),
  ('webhooks.manage', 'admin',  'Create, change, rotate and delete webhook endpoints; replay deliveries; send test events');

-- ---------------------------------------------------------------------------
-- The catalogue
-- ---------------------------------------------------------------------------

create table public.event_types (
  type text primary key constraint event_types_format check (type ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
  description text not null check (length(description) between 1 and 300),
  schema jsonb not null constraint event_types_schema_is_object check (jsonb_typeof(schema) = 'object')
);
comment on table public.event_types is 'Event types and the JSON schema of each payload (the subset private.json_schema_errors checks). Changed only by migrations.';

alter table public.event_types enable row level security;
revoke all on public.event_types from anon, authenticated, service_role;
grant select on public.event_types to authenticated, service_role;
create policy "signed-in users can read the event catalogue"
  on public.event_types for select to authenticated
  using (true);

insert into public.event_types (type, description, schema) values
  ('document.ready', 'A document was ingested and is searchable.',
   '{"type": "object", "required": ["document_id", "name"], "properties": {
      "document_id": {"type": "string", "format": "uuid"}, "name": {"type": "string"},
      "collection_id": {"type": ["string", "null"], "format": "uuid"},
      "pages": {"type": "integer"}, "chunks": {"type": "integer"}}}'),
  ('document.failed', 'A document could not be ingested.',
   '{"type": "object", "required": ["document_id", "name", "reason"], "properties": {
      "document_id": {"type": "string", "format": "uuid"}, "name": {"type": "string"}, "reason": {"type": "string"}}}'),
  ('conversation.escalated', 'A conversation needs a human.',
   '{"type": "object", "required": ["conversation_id", "bot_id", "reason"], "properties": {
      "conversation_id": {"type": "string", "format": "uuid"}, "bot_id": {"type": "string", "format": "uuid"},
      "channel": {"type": "string"}, "reason": {"type": "string"}, "action": {"type": "string", "enum": ["notify", "transfer", "log"]}}}'),
  ('call.started', 'A call was answered or placed.',
   '{"type": "object", "required": ["call_id", "direction"], "properties": {
      "call_id": {"type": "string", "format": "uuid"}, "bot_id": {"type": ["string", "null"], "format": "uuid"},
      "direction": {"type": "string", "enum": ["inbound", "outbound"]},
      "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]},
      "started_at": {"type": "string", "format": "date-time"}}}'),
  ('call.ended', 'A call ended.',
   '{"type": "object", "required": ["call_id", "status"], "properties": {
      "call_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"},
      "ended_reason": {"type": ["string", "null"]}, "duration_seconds": {"type": ["number", "null"]},
      "ended_at": {"type": "string", "format": "date-time"}}}'),
  ('appointment.created', 'An appointment was booked.',
   '{"type": "object", "required": ["appointment_id", "starts_at", "ends_at"], "properties": {
      "appointment_id": {"type": "string", "format": "uuid"},
      "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
      "bot_id": {"type": ["string", "null"], "format": "uuid"}, "title": {"type": ["string", "null"]}}}'),
  ('appointment.canceled', 'An appointment was canceled.',
   '{"type": "object", "required": ["appointment_id"], "properties": {
      "appointment_id": {"type": "string", "format": "uuid"}, "reason": {"type": ["string", "null"]}}}'),
  ('member.joined', 'Someone joined the organization.',
   '{"type": "object", "required": ["user_id", "role"], "properties": {
      "user_id": {"type": "string", "format": "uuid"},
      "role": {"type": "string", "enum": ["viewer", "member", "admin", "owner"]}}}'),
  ('calendar.connection_broken', 'A calendar connection stopped working (e.g. its refresh token was revoked).',
   '{"type": "object", "required": ["connection_id", "provider", "reason"], "properties": {
      "connection_id": {"type": "string", "format": "uuid"},
      "provider": {"type": "string", "enum": ["google", "microsoft"]}, "reason": {"type": "string"}}}'),
  ('webhook.test', 'A test event an admin sent to one endpoint.',
   '{"type": "object", "required": ["endpoint_id", "message"], "properties": {
      "endpoint_id": {"type": "string", "format": "uuid"}, "message": {"type": "string"}}}');

-- ---------------------------------------------------------------------------
-- JSON schema checks: the subset the catalogue uses (type, or a list of
-- types; required; properties, recursively; items; enum; format uuid and
-- date-time). Returns the first problem found, or null.
-- ---------------------------------------------------------------------------

-- The shape of RFC 3339, and a real moment (no month 13, no minute 61).
create function private.is_rfc3339_date_time(value text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = ''
as $$
begin
  if value !~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$' then
    return false;
  end if;
  perform value::timestamptz;
  return true;
exception
  when others then
    return false;
end;
$$;

create function private.json_schema_errors(schema jsonb, value jsonb, path text default '$')
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  allowed_types jsonb := case jsonb_typeof(schema -> 'type')
    when 'string' then jsonb_build_array(schema -> 'type')
    when 'array' then schema -> 'type'
  end;
  actual text := jsonb_typeof(value);
  property record;
  problem text;
  element record;
begin
  if allowed_types is not null and not (
    allowed_types ? actual
    or (actual = 'number' and allowed_types ? 'integer' and (value #>> '{}')::numeric = trunc((value #>> '{}')::numeric))
  ) then
    return format('%s must be %s, not %s', path, array_to_string(array(select jsonb_array_elements_text(allowed_types)), ' or '), actual);
  end if;
  if schema ? 'enum' and not (schema -> 'enum') @> jsonb_build_array(value) then
    return format('%s must be one of %s', path, schema -> 'enum');
  end if;
  if actual = 'string' and schema ->> 'format' = 'uuid'
    and value #>> '{}' !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return format('%s must be a uuid', path);
  end if;
  if actual = 'string' and schema ->> 'format' = 'date-time'
    and not private.is_rfc3339_date_time(value #>> '{}') then
    return format('%s must be an RFC 3339 date-time', path);
  end if;
  if actual = 'object' then
    for property in select jsonb_array_elements_text(coalesce(schema -> 'required', '[]')) as name loop
      if not value ? property.name then
        return format('%s.%s is required', path, property.name);
      end if;
    end loop;
    for property in select key as name, v as subschema from jsonb_each(coalesce(schema -> 'properties', '{}')) as p(key, v) loop
      if value ? property.name then
        problem := private.json_schema_errors(property.subschema, value -> property.name, path || '.' || property.name);
        if problem is not null then
          return problem;
        end if;
      end if;
    end loop;
  end if;
  if actual = 'array' and schema ? 'items' then
    for element in select e, ordinality - 1 as i from jsonb_array_elements(value) with ordinality as a(e, ordinality) loop
      problem := private.json_schema_errors(schema -> 'items', element.e, path || '[' || element.i || ']');
      if problem is not null then
        return problem;
      end if;
    end loop;
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- Events
-- ---------------------------------------------------------------------------

create table public.events (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  type text not null references public.event_types (type),
  payload jsonb not null,
  created_at timestamptz not null default now()
);
comment on table public.events is 'Domain events per org, written with private.emit_event() in the transaction of the change they describe.';
create index events_org_id_idx on public.events (org_id, created_at desc);
create index events_type_idx on public.events (type);

alter table public.events enable row level security;
-- Not even the service role writes events directly: emit_event() is the one way in.
revoke all on public.events from anon, authenticated, service_role;
grant select on public.events to authenticated, service_role;
create policy "members and up can read their org's events"
  on public.events for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('webhooks.read'))));

-- Tables written only by the platform (logs of what happened, not changes a
-- user made) and not audited row by row; the audit tests skip what is listed here.
create table private.audit_exempt_tables (
  table_name text primary key,
  reason text not null
);
insert into private.audit_exempt_tables (table_name, reason) values
  ('audit_log', 'the audit log itself'),
  ('events', 'append-only log of domain events; the changes they describe are audited where they happen');

create function private.emit_event(org_id uuid, type text, payload jsonb)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  catalogue_schema jsonb;
  problem text;
  event_id uuid;
begin
  select t.schema into catalogue_schema from public.event_types t where t.type = emit_event.type;
  if not found then
    raise exception 'unknown event type: %', emit_event.type
      using errcode = 'invalid_parameter_value', hint = 'See public.event_types.';
  end if;
  problem := private.json_schema_errors(catalogue_schema, coalesce(payload, 'null'::jsonb));
  if problem is not null then
    raise exception 'invalid % payload: %', emit_event.type, problem using errcode = 'invalid_parameter_value';
  end if;
  insert into public.events (org_id, type, payload)
  values (emit_event.org_id, emit_event.type, payload)
  returning id into event_id;
  return event_id;
end;
$$;
comment on function private.emit_event(uuid, text, jsonb) is 'The one way to record a domain event: validates the payload against the type''s schema, in the caller''s transaction.';
revoke execute on function private.emit_event(uuid, text, jsonb) from public;
grant execute on function private.emit_event(uuid, text, jsonb) to service_role;

-- member.joined, whatever the path that added the member.
create function private.emit_member_joined()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.emit_event(new.org_id, 'member.joined',
    jsonb_build_object('user_id', new.user_id, 'role', new.role));
  return null;
end;
$$;

create trigger memberships_emit_member_joined after insert on public.memberships
  for each row execute function private.emit_member_joined();
