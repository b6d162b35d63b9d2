-- Calendar: connected Google and Microsoft calendars (OAuth bookkeeping and
-- encrypted tokens), closures, open hours, and appointments that cannot be
-- double-booked. Builds on the org time zone and weekly business hours of
-- 20261123001200_calls.sql.
--
-- Who does what:
-- * admins (calendar.manage) connect calendars through the `calendar` edge
--   function: begin_calendar_connection() records a single-use OAuth state
--   (the PKCE verifier stays here, not in the browser); the function signs
--   the state's id (jti) with jose, sends the user to the provider, and on
--   the callback consumes the state (private.consume_calendar_oauth_state,
--   once, within 10 minutes, while the user still holds calendar.manage),
--   exchanges the code and stores the connection with its encrypted tokens
--   (private.save_calendar_connection). disconnect_calendar() marks a
--   connection revoked at once; the function then revokes the grant at the
--   provider and deletes the row (private.delete_calendar_connection);
-- * the function refreshes tokens (private.calendar_tokens_for,
--   private.update_calendar_tokens) and marks a connection needs_reauth when
--   the provider answers invalid_grant (private.mark_calendar_needs_reauth,
--   which tells the org once with calendar.connection_broken);
-- * availability is computed by the function from private.open_ranges
--   (business hours minus closures), the providers' free/busy of
--   private.calendars_for_bot and private.busy_from_appointments;
-- * members (appointments.write) create, reschedule and cancel appointments
--   through RPCs; bots book for a caller through the chat core
--   (private.book_appointment_for_bot, service role); the function mirrors
--   each appointment to the calendar it was booked into and reports back
--   (private.set_appointment_sync);
-- * members read connections (never tokens), closures and appointments;
--   admins write closures. Viewers see nothing of the calendar: calendar.read
--   is a member permission (appointments name people and their contact
--   details), so the `appointments` Realtime channel is narrowed to it too,
--   as the calls channel is.
--
-- Double booking is impossible whatever the path: an exclusion constraint on
-- (org, resource, time range) over booked appointments. Events
-- (appointment.created / .rescheduled / .canceled) come from a trigger, so
-- every path emits them. Errors carry SQLSTATEs as elsewhere: 42501 not
-- allowed, P0002 not found, 22023 invalid argument, 23514 a refused change,
-- 23505 a conflict, 23P01 a time already booked.
--
-- Tokens: the function encrypts each token set (AES-GCM, envelope
-- encryption with the CALENDAR_TOKEN_KEY secret of its environment) and
-- hands the database an opaque ciphertext, which SQL stores and returns to
-- the service role but never decrypts. The same code path serves the local
-- stack and a Supabase project (Vault is not needed, and a database dump or
-- a leaked row is useless without the function's key).

insert into public.role_permissions (permission, min_role, description) values
  ('calendar.read',      'member', 'See connected calendars (never their tokens), closures, appointments and availability'),
  ('calendar.manage',    'admin',  'Connect and disconnect calendars; add, change and remove closures'),
  ('appointments.write', 'member', 'Create, reschedule and cancel appointments');

-- The payload of appointment.rescheduled: the new times and the old ones.
insert into public.event_types (type, description, schema) values
  ('appointment.rescheduled', 'An appointment was moved to another time.',
   '{"type": "object", "required": ["appointment_id", "starts_at", "ends_at", "previous_starts_at", "previous_ends_at"], "properties": {
      "appointment_id": {"type": "string", "format": "uuid"},
      "starts_at": {"type": "string", "format": "date-time"}, "ends_at": {"type": "string", "format": "date-time"},
      "previous_starts_at": {"type": "string", "format": "date-time"}, "previous_ends_at": {"type": "string", "format": "date-time"},
      "bot_id": {"type": ["string", "null"], "format": "uuid"}}}');

-- ---------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------

create function private.require_calendar_provider(provider text)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
begin
  if provider is null or provider not in ('google', 'microsoft') then
    raise exception 'unknown calendar provider: %', coalesce(provider, 'null')
      using errcode = 'invalid_parameter_value', hint = 'google or microsoft.';
  end if;
  return provider;
end;
$$;

-- A loose e-mail check (something@domain.tld, no spaces, at most 320
-- characters): the provider or the attendee's mailbox is the real test.
create function private.is_email_address(address text)
returns boolean
language sql
immutable
security invoker
set search_path = ''
as $$
  select address is not null and length(address) <= 320
    and address ~ '^[^@[:space:][:cntrl:]]+@[^@[:space:][:cntrl:]]+\.[^@[:space:][:cntrl:].]+$';
$$;

-- Where the function may send the user back after connecting: an https URL,
-- or a path on our own site. A protocol-relative "//host" or a backslash
-- ("/\host", which browsers read as "//host") is neither.
create function private.is_calendar_redirect(target text)
returns boolean
language sql
immutable
security invoker
set search_path = ''
as $$
  select target is not null and length(target) <= 2048 and (
    target ~ '^https://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?([/?#][^[:space:][:cntrl:]\\]*)?$'
    or target ~ '^/([^/\\[:space:][:cntrl:]][^[:space:][:cntrl:]\\]*)?$'
  );
$$;

-- A window to compute availability over: bounded, not empty, at most 366
-- days (business hours are walked day by day).
create function private.require_calendar_window(during tstzrange)
returns tstzrange
language plpgsql
immutable
security invoker
set search_path = ''
as $$
begin
  if during is null or pg_catalog.isempty(during) or pg_catalog.lower_inf(during) or pg_catalog.upper_inf(during) then
    raise exception 'the time range must be bounded and not empty' using errcode = 'invalid_parameter_value';
  end if;
  if pg_catalog.upper(during) - pg_catalog.lower(during) > interval '366 days' then
    raise exception 'the time range is at most 366 days' using errcode = 'invalid_parameter_value';
  end if;
  return during;
end;
$$;

-- ---------------------------------------------------------------------------
-- Calendar connections
-- ---------------------------------------------------------------------------

create table public.calendar_connections (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  -- The bot whose calendar this is; null: the org's calendar (counts for every bot).
  bot_id uuid,
  provider text not null constraint calendar_connections_provider check (provider in ('google', 'microsoft')),
  -- Stored lower-case, so a reconnect finds the same row whatever the provider's casing.
  account_email text not null constraint calendar_connections_account_email check (
    account_email = lower(btrim(account_email)) and length(account_email) between 3 and 320 and account_email like '%_@_%'),
  -- Google: a calendar id ('primary' by default). Microsoft: a calendar id, null for the default calendar.
  external_calendar_id text constraint calendar_connections_external_calendar_id_length
    check (length(external_calendar_id) between 1 and 1024),
  status text not null default 'connected'
    constraint calendar_connections_status check (status in ('connected', 'needs_reauth', 'revoked')),
  status_reason text constraint calendar_connections_status_reason_length check (length(status_reason) between 1 and 500),
  scopes text[] not null default '{}' constraint calendar_connections_scopes_count check (cardinality(scopes) <= 50),
  token_expires_at timestamptz,
  last_refreshed_at timestamptz,
  connected_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calendar_connections_id_org_id_key unique (id, org_id),
  -- A connection of a deleted bot goes with it (tokens included).
  constraint calendar_connections_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade,
  constraint calendar_connections_google_calendar check (provider <> 'google' or external_calendar_id is not null),
  constraint calendar_connections_reason check (status <> 'connected' or status_reason is null)
);
comment on table public.calendar_connections is 'Google and Microsoft calendars connected per org (bot_id null) or per bot, with their health (never their tokens). Members read; written by the calendar function''s SQL (connect, refresh, reauth, disconnect).';
comment on column public.calendar_connections.status is 'connected; needs_reauth (the provider refused the refresh token: an admin must connect again); revoked (disconnected, being deleted).';
-- One row per calendar and org: a reconnect of the same account replaces its tokens.
create unique index calendar_connections_account_key
  on public.calendar_connections (org_id, provider, account_email, (coalesce(external_calendar_id, '')));
create index calendar_connections_bot_idx on public.calendar_connections (bot_id, org_id);
create index calendar_connections_connected_by_idx on public.calendar_connections (connected_by);

create trigger calendar_connections_set_updated_at before update on public.calendar_connections
  for each row execute function private.set_updated_at();
-- Audited: creation, deletion, and what the connection is and how it fares
-- (status and reason, bot, account, calendar, scopes), not the token
-- bookkeeping every refresh touches (token_expires_at, last_refreshed_at).
create trigger calendar_connections_audit after insert or delete on public.calendar_connections
  for each row execute function private.audit_row_change();
create trigger calendar_connections_audit_update after update on public.calendar_connections
  for each row
  when (
    old.status is distinct from new.status or old.status_reason is distinct from new.status_reason
    or old.bot_id is distinct from new.bot_id or old.account_email is distinct from new.account_email
    or old.external_calendar_id is distinct from new.external_calendar_id or old.scopes is distinct from new.scopes
    or old.connected_by is distinct from new.connected_by or old.provider is distinct from new.provider
  )
  execute function private.audit_row_change();

alter table public.calendar_connections enable row level security;
revoke all on public.calendar_connections from anon, authenticated;
grant select on public.calendar_connections to authenticated;
create policy "members and up can read their org's calendar connections"
  on public.calendar_connections for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calendar.read'))));

-- The token set of a connection (access and refresh token, as the provider
-- returned them), encrypted by the calendar function (AES-GCM under a data
-- key wrapped with CALENDAR_TOKEN_KEY). Opaque here: never decrypted in SQL,
-- readable by no API role; the service role reaches it only through
-- private.calendar_tokens_for.
create table private.calendar_tokens (
  connection_id uuid primary key references public.calendar_connections (id) on delete cascade,
  ciphertext text not null constraint calendar_tokens_ciphertext_length check (length(ciphertext) between 1 and 16384),
  updated_at timestamptz not null default now()
);
revoke all on private.calendar_tokens from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- OAuth states: one per sign-in started, single-use, valid 10 minutes, bound
-- to the user, org, bot and provider. The function signs the jti (jose) into
-- the provider's `state` parameter; the PKCE verifier stays here.
-- ---------------------------------------------------------------------------

create table private.calendar_oauth_states (
  jti uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  bot_id uuid,
  provider text not null constraint calendar_oauth_states_provider check (provider in ('google', 'microsoft')),
  -- RFC 7636 section 4.1: 43 to 128 unreserved characters.
  code_verifier text not null constraint calendar_oauth_states_code_verifier check (code_verifier ~ '^[A-Za-z0-9._~-]{43,128}$'),
  redirect_to text constraint calendar_oauth_states_redirect_to check (redirect_to is null or private.is_calendar_redirect(redirect_to)),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '10 minutes',
  used_at timestamptz,
  constraint calendar_oauth_states_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade
);
create index calendar_oauth_states_org_id_idx on private.calendar_oauth_states (org_id);
create index calendar_oauth_states_user_idx on private.calendar_oauth_states (user_id, expires_at);
create index calendar_oauth_states_bot_idx on private.calendar_oauth_states (bot_id, org_id);
create index calendar_oauth_states_expires_idx on private.calendar_oauth_states (expires_at);
revoke all on private.calendar_oauth_states from public, anon, authenticated, service_role;

create function private.begin_calendar_connection(org_id uuid, provider text, code_verifier text, bot_id uuid, redirect_to text)
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
    raise exception 'bot not found' using errcode = 'no_data_found';
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

create function public.begin_calendar_connection(
  org_id uuid, provider text, code_verifier text, bot_id uuid default null, redirect_to text default null
)
returns uuid
language sql
security invoker
set search_path = ''
as $$
  select private.begin_calendar_connection(begin_calendar_connection.org_id, begin_calendar_connection.provider,
    begin_calendar_connection.code_verifier, begin_calendar_connection.bot_id, begin_calendar_connection.redirect_to);
$$;
comment on function public.begin_calendar_connection(uuid, text, text, uuid, text) is 'Starts connecting a Google or Microsoft calendar (the org''s, or a bot''s): records a single-use OAuth state valid 10 minutes with the PKCE verifier and returns its id (jti) for the calendar function to sign. Admins (calendar.manage).';

-- The callback's half (service role): the state, once. The update marks it
-- used only while it is unused, so of two concurrent callbacks the second
-- waits for the first and then finds it used.
create function private.consume_calendar_oauth_state(jti uuid)
returns table (org_id uuid, user_id uuid, bot_id uuid, provider text, code_verifier text, redirect_to text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  state private.calendar_oauth_states;
begin
  update private.calendar_oauth_states s set used_at = pg_catalog.now()
  where s.jti = consume_calendar_oauth_state.jti and s.used_at is null
  returning * into state;
  if not found then
    if exists (select 1 from private.calendar_oauth_states s where s.jti = consume_calendar_oauth_state.jti) then
      raise exception 'this sign-in link was already used' using errcode = 'invalid_parameter_value',
        detail = 'state_used', hint = 'Start connecting the calendar again.';
    end if;
    raise exception 'this sign-in link is unknown' using errcode = 'no_data_found',
      hint = 'Start connecting the calendar again.';
  end if;
  if state.expires_at <= pg_catalog.now() then
    raise exception 'this sign-in link has expired' using errcode = 'invalid_parameter_value',
      detail = 'state_expired', hint = 'Start connecting the calendar again (a sign-in must be finished within 10 minutes).';
  end if;
  -- The user may have been demoted or removed since the sign-in started.
  if not exists (
    select 1 from public.memberships m
    join public.role_permissions p on p.permission = 'calendar.manage'
    where m.org_id = state.org_id and m.user_id = state.user_id and m.role >= p.min_role
  ) then
    raise exception 'you no longer have the calendar.manage permission in this organization'
      using errcode = 'insufficient_privilege';
  end if;
  return query select state.org_id, state.user_id, state.bot_id, state.provider, state.code_verifier, state.redirect_to;
end;
$$;
comment on function private.consume_calendar_oauth_state(uuid) is 'Uses an OAuth state once: P0002 unknown; 22023 already used (detail state_used) or expired (detail state_expired); 42501 when the user no longer holds calendar.manage. Returns what the sign-in was for and its PKCE verifier. Service role.';

-- After the code exchange (service role): the connection and its encrypted
-- tokens. A reconnect of the same calendar (org, provider, account,
-- calendar id) replaces the tokens and makes it connected again; the same
-- calendar cannot be connected for two places at once (23505). A revoked row
-- (a disconnect still under way) is replaced by a new connection, so the
-- pending delete of the old one cannot remove it.
create function private.save_calendar_connection(
  org_id uuid, user_id uuid, bot_id uuid, provider text, account_email text, external_calendar_id text,
  scopes text[], ciphertext text, token_expires_at timestamptz
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  email text := lower(pg_catalog.btrim(save_calendar_connection.account_email));
  calendar_id text := nullif(pg_catalog.btrim(save_calendar_connection.external_calendar_id), '');
  existing public.calendar_connections;
  saved uuid;
begin
  perform private.require_calendar_provider(save_calendar_connection.provider);
  if not private.is_email_address(email) then
    raise exception 'account_email must be an e-mail address' using errcode = 'invalid_parameter_value';
  end if;
  if save_calendar_connection.provider = 'google' then
    calendar_id := coalesce(calendar_id, 'primary');
  end if;
  if length(calendar_id) > 1024 then
    raise exception 'external_calendar_id is at most 1024 characters' using errcode = 'invalid_parameter_value';
  end if;
  if coalesce(length(save_calendar_connection.ciphertext), 0) = 0 then
    raise exception 'ciphertext is required' using errcode = 'invalid_parameter_value';
  end if;
  if save_calendar_connection.bot_id is not null and not exists (
    select 1 from public.bots b where b.id = save_calendar_connection.bot_id and b.org_id = save_calendar_connection.org_id
  ) then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  -- The code exchange takes a while: the user must still hold calendar.manage.
  if not exists (
    select 1 from public.memberships m
    join public.role_permissions p on p.permission = 'calendar.manage'
    where m.org_id = save_calendar_connection.org_id and m.user_id = save_calendar_connection.user_id and m.role >= p.min_role
  ) then
    raise exception 'the user does not have the calendar.manage permission in this organization'
      using errcode = 'insufficient_privilege';
  end if;

  select * into existing from public.calendar_connections c
  where c.org_id = save_calendar_connection.org_id and c.provider = save_calendar_connection.provider
    and c.account_email = email and coalesce(c.external_calendar_id, '') = coalesce(calendar_id, '')
  for update;
  if found and existing.status = 'revoked' then
    delete from public.calendar_connections c where c.id = existing.id;
    existing := null;
  end if;

  if existing.id is not null then
    if existing.bot_id is distinct from save_calendar_connection.bot_id then
      raise exception 'this calendar is already connected for %; disconnect it there first',
        case when existing.bot_id is null then 'the whole organization' else 'another bot' end
        using errcode = 'unique_violation';
    end if;
    update public.calendar_connections c
    set status = 'connected', status_reason = null, scopes = coalesce(save_calendar_connection.scopes, '{}'),
        token_expires_at = save_calendar_connection.token_expires_at, last_refreshed_at = pg_catalog.now(),
        connected_by = save_calendar_connection.user_id
    where c.id = existing.id
    returning c.id into saved;
    update private.calendar_tokens t
    set ciphertext = save_calendar_connection.ciphertext, updated_at = pg_catalog.now()
    where t.connection_id = saved;
    if not found then
      insert into private.calendar_tokens (connection_id, ciphertext) values (saved, save_calendar_connection.ciphertext);
    end if;
  else
    insert into public.calendar_connections (
      org_id, bot_id, provider, account_email, external_calendar_id, scopes, token_expires_at, last_refreshed_at, connected_by
    ) values (
      save_calendar_connection.org_id, save_calendar_connection.bot_id, save_calendar_connection.provider, email, calendar_id,
      coalesce(save_calendar_connection.scopes, '{}'), save_calendar_connection.token_expires_at, pg_catalog.now(),
      save_calendar_connection.user_id
    )
    returning id into saved;
    insert into private.calendar_tokens (connection_id, ciphertext) values (saved, save_calendar_connection.ciphertext);
  end if;
  return saved;
end;
$$;
comment on function private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz) is 'Stores a connected calendar and its encrypted token set; a reconnect of the same calendar replaces the tokens and sets it connected (23505 when it is connected for another bot or the org). Returns the connection id. Service role.';

-- ---------------------------------------------------------------------------
-- Token lifecycle (service role)
-- ---------------------------------------------------------------------------

create function private.calendar_tokens_for(connection_ids uuid[])
returns table (
  connection_id uuid, org_id uuid, provider text, account_email text, external_calendar_id text, status text,
  ciphertext text, token_expires_at timestamptz
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if cardinality(connection_ids) > 100 then
    raise exception 'at most 100 connections at a time' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select c.id, c.org_id, c.provider, c.account_email, c.external_calendar_id, c.status, t.ciphertext, c.token_expires_at
  from public.calendar_connections c
  join private.calendar_tokens t on t.connection_id = c.id
  where c.id = any (calendar_tokens_for.connection_ids)
  order by c.created_at, c.id;
end;
$$;
comment on function private.calendar_tokens_for(uuid[]) is 'The encrypted token sets of the given connections (at most 100), with what the function needs to use them; revoked ones included (to revoke at the provider). Unknown ids are left out. Service role.';

-- A refresh worked: new tokens. It also heals a needs_reauth connection (the
-- provider just accepted its grant, e.g. after a refresh race).
create function private.update_calendar_tokens(connection_id uuid, ciphertext text, token_expires_at timestamptz)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if coalesce(length(update_calendar_tokens.ciphertext), 0) = 0 then
    raise exception 'ciphertext is required' using errcode = 'invalid_parameter_value';
  end if;
  update public.calendar_connections c
  set token_expires_at = update_calendar_tokens.token_expires_at, last_refreshed_at = pg_catalog.now(),
      status = 'connected', status_reason = null
  where c.id = update_calendar_tokens.connection_id and c.status <> 'revoked';
  if not found then
    raise exception 'calendar connection not found (or disconnected)' using errcode = 'no_data_found';
  end if;
  update private.calendar_tokens t
  set ciphertext = update_calendar_tokens.ciphertext, updated_at = pg_catalog.now()
  where t.connection_id = update_calendar_tokens.connection_id;
  if not found then
    insert into private.calendar_tokens (connection_id, ciphertext)
    values (update_calendar_tokens.connection_id, update_calendar_tokens.ciphertext);
  end if;
end;
$$;
comment on function private.update_calendar_tokens(uuid, text, timestamptz) is 'Stores refreshed (encrypted) tokens and their expiry, sets last_refreshed_at and status connected. P0002 for an unknown or revoked connection. Service role.';

-- The provider refused the grant (invalid_grant): the org must reconnect.
-- Emits calendar.connection_broken once per break: only the call that moves
-- the connection from connected does (row lock: a concurrent second call
-- finds it needs_reauth already). Returns whether this call broke it.
create function private.mark_calendar_needs_reauth(connection_id uuid, reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  cleaned text := left(nullif(pg_catalog.btrim(mark_calendar_needs_reauth.reason), ''), 500);
  broken public.calendar_connections;
begin
  if cleaned is null then
    raise exception 'a reason is required' using errcode = 'invalid_parameter_value';
  end if;
  update public.calendar_connections c set status = 'needs_reauth', status_reason = cleaned
  where c.id = mark_calendar_needs_reauth.connection_id and c.status = 'connected'
  returning * into broken;
  if not found then
    if not exists (select 1 from public.calendar_connections c where c.id = mark_calendar_needs_reauth.connection_id) then
      raise exception 'calendar connection not found' using errcode = 'no_data_found';
    end if;
    return false;
  end if;
  perform private.emit_event(broken.org_id, 'calendar.connection_broken', pg_catalog.jsonb_build_object(
    'connection_id', broken.id, 'provider', broken.provider, 'reason', cleaned));
  return true;
end;
$$;
comment on function private.mark_calendar_needs_reauth(uuid, text) is 'Marks a connected calendar needs_reauth with the reason (at most 500 characters kept) and emits calendar.connection_broken; false (nothing emitted) when it was not connected. P0002 unknown. Service role.';

-- ---------------------------------------------------------------------------
-- Disconnecting: revoked at once (no longer used for busy times or
-- mirroring), then the function revokes the grant at the provider and
-- deletes the row. Appointments keep their data (connection_id set null).
-- ---------------------------------------------------------------------------

create function private.disconnect_calendar(inout connection_id uuid, out provider text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.calendar_connections;
begin
  select * into target from public.calendar_connections c where c.id = disconnect_calendar.connection_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('calendar.read')))) then
    raise exception 'calendar connection not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'calendar.manage');
  -- Disconnecting twice is fine (a retry after a failed revocation).
  update public.calendar_connections c set status = 'revoked', status_reason = 'disconnected'
  where c.id = target.id and c.status <> 'revoked';
  connection_id := target.id;
  provider := target.provider;
end;
$$;

create function public.disconnect_calendar(inout connection_id uuid, out provider text)
language sql
security invoker
set search_path = ''
as $$
  select * from private.disconnect_calendar(disconnect_calendar.connection_id);
$$;
comment on function public.disconnect_calendar(uuid) is 'Disconnects a calendar: marks it revoked at once and returns { connection_id, provider }; the calendar function then revokes the grant at the provider and deletes it. Admins (calendar.manage); P0002 outside the caller''s orgs.';

create function private.delete_calendar_connection(connection_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Only a disconnected one: a calendar reconnected meanwhile is a new row.
  delete from public.calendar_connections c
  where c.id = delete_calendar_connection.connection_id and c.status = 'revoked';
  return found;
end;
$$;
comment on function private.delete_calendar_connection(uuid) is 'Deletes a disconnected (revoked) connection and its tokens; appointments keep their data. False when there is none (already deleted, or not disconnected). Service role.';

-- ---------------------------------------------------------------------------
-- Which calendars count for a bot: its own and the org's (bot_id null).
-- needs_reauth ones are listed too, so availability can say which calendar
-- is missing instead of silently ignoring it.
-- ---------------------------------------------------------------------------

create function private.calendars_for_bot(org_id uuid, bot_id uuid)
returns table (connection_id uuid, provider text, status text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if auth.role() = 'authenticated' and not private.has_permission(calendars_for_bot.org_id, 'calendar.read') then
    raise exception 'you do not have the calendar.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  return query
  select c.id, c.provider, c.status
  from public.calendar_connections c
  where c.org_id = calendars_for_bot.org_id and c.status <> 'revoked'
    and (c.bot_id is null or c.bot_id = calendars_for_bot.bot_id)
  order by (c.bot_id is null), c.created_at, c.id;
end;
$$;
comment on function private.calendars_for_bot(uuid, uuid) is 'The connections whose busy times count for a bot (its own first, then the org''s; the org''s only for a null bot), connected or needs_reauth. Service role, or members with calendar.read.';

-- The calendar an appointment is mirrored to: the bot's own, else the
-- org's; connected ones first, then the oldest. Null: none (not mirrored).
create function private.booking_calendar(org_id uuid, bot_id uuid)
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select c.id
  from public.calendar_connections c
  where c.org_id = booking_calendar.org_id and c.status <> 'revoked'
    and (c.bot_id is null or c.bot_id = booking_calendar.bot_id)
  order by (c.bot_id is null), (c.status <> 'connected'), c.created_at, c.id
  limit 1;
$$;

-- ---------------------------------------------------------------------------
-- Closures: holidays and other times the org (bot_id null) or one bot is
-- closed, subtracted from the business hours.
-- ---------------------------------------------------------------------------

create table public.business_closures (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid,
  during tstzrange not null constraint business_closures_during check (
    not isempty(during) and not lower_inf(during) and not upper_inf(during)
    and upper(during) - lower(during) <= interval '366 days'),
  reason text constraint business_closures_reason_length check (length(reason) between 1 and 200),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint business_closures_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade
);
comment on table public.business_closures is 'Times the org (bot_id null) or a bot is closed (holidays, leave), at most 366 days each; subtracted from business hours by private.open_ranges. Members read; admins write.';
create index business_closures_org_id_idx on public.business_closures (org_id);
create index business_closures_during_idx on public.business_closures using gist (org_id, during);
create index business_closures_bot_idx on public.business_closures (bot_id, org_id);
create index business_closures_created_by_idx on public.business_closures (created_by);

create trigger business_closures_set_updated_at before update on public.business_closures
  for each row execute function private.set_updated_at();
create trigger business_closures_audit after insert or update or delete on public.business_closures
  for each row execute function private.audit_row_change();

alter table public.business_closures enable row level security;
revoke all on public.business_closures from anon, authenticated;
grant select, delete on public.business_closures to authenticated;
grant insert (org_id, bot_id, during, reason), update (bot_id, during, reason) on public.business_closures to authenticated;

create policy "members and up can read their org's closures"
  on public.business_closures for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calendar.read'))));
create policy "admins and up can add closures"
  on public.business_closures for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('calendar.manage'))));
create policy "admins and up can change closures"
  on public.business_closures for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('calendar.manage'))))
  with check (org_id = any (array(select private.org_ids_with_permission('calendar.manage'))));
create policy "admins and up can delete closures"
  on public.business_closures for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('calendar.manage'))));

-- When the bot (else the org) takes appointments within a window: its
-- business hours (the whole window when no hours restrict it) minus the
-- org's closures and the bot's own, within the window. Business hours are
-- walked in local days (DST-safe, see private.business_hours_ranges).
create function private.open_ranges(org_id uuid, bot_id uuid, during tstzrange)
returns tstzmultirange
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  hours tstzmultirange;
  closed tstzmultirange;
begin
  perform private.require_calendar_window(open_ranges.during);
  if auth.role() = 'authenticated' and not private.has_permission(open_ranges.org_id, 'calendar.read') then
    raise exception 'you do not have the calendar.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  hours := coalesce(
    private.business_hours_ranges(open_ranges.org_id, open_ranges.bot_id, open_ranges.during),
    pg_catalog.tstzmultirange(open_ranges.during));
  select pg_catalog.range_agg(c.during) into closed
  from public.business_closures c
  where c.org_id = open_ranges.org_id
    and (c.bot_id is null or c.bot_id = open_ranges.bot_id)
    and c.during && open_ranges.during;
  return (hours - coalesce(closed, '{}'::tstzmultirange)) * pg_catalog.tstzmultirange(open_ranges.during);
end;
$$;
comment on function private.open_ranges(uuid, uuid, tstzrange) is 'Business hours of the bot (else the org; the whole window when none are set) minus the org''s and the bot''s closures, within the window (at most 366 days). Service role, or members with calendar.read.';

-- ---------------------------------------------------------------------------
-- Appointments
-- ---------------------------------------------------------------------------

create table public.appointments (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid,
  -- The calendar the appointment is mirrored to.
  connection_id uuid,
  -- What cannot be double-booked (a calendar, a room, a person).
  resource text not null default 'default'
    constraint appointments_resource_length check (length(resource) between 1 and 200 and resource = btrim(resource)),
  starts_at timestamptz not null,
  ends_at timestamptz not null,
  -- The attendee's IANA zone (validated by the trigger below).
  time_zone text,
  status text not null default 'booked'
    constraint appointments_status check (status in ('booked', 'canceled', 'completed', 'no_show')),
  attendee_name text not null
    constraint appointments_attendee_name_length check (length(attendee_name) between 1 and 200 and attendee_name = btrim(attendee_name)),
  attendee_email text constraint appointments_attendee_email_format check (attendee_email is null or private.is_email_address(attendee_email)),
  attendee_phone text constraint appointments_attendee_phone_format check (attendee_phone ~ '^\+[1-9][0-9]{6,14}$'),
  notes text constraint appointments_notes_length check (length(notes) <= 2000),
  call_id uuid,
  conversation_id uuid,
  source text not null constraint appointments_source check (source in ('bot', 'staff')),
  external_event_id text constraint appointments_external_event_id_length check (length(external_event_id) between 1 and 1024),
  sync_status text not null default 'pending'
    constraint appointments_sync_status check (sync_status in ('pending', 'synced', 'failed', 'not_mirrored')),
  sync_error text constraint appointments_sync_error_length check (length(sync_error) between 1 and 1000),
  reschedule_count integer not null default 0 constraint appointments_reschedule_count check (reschedule_count >= 0),
  canceled_at timestamptz,
  cancel_reason text constraint appointments_cancel_reason_length check (length(cancel_reason) between 1 and 500),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint appointments_times check (ends_at > starts_at and ends_at - starts_at <= interval '24 hours'),
  constraint appointments_contact check (attendee_email is not null or attendee_phone is not null),
  constraint appointments_canceled_at check ((status = 'canceled') = (canceled_at is not null)),
  -- Appointments outlive the bot, calendar, call and conversation they came from.
  constraint appointments_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete set null (bot_id),
  constraint appointments_connection_fk foreign key (connection_id, org_id)
    references public.calendar_connections (id, org_id) on delete set null (connection_id),
  constraint appointments_call_fk foreign key (call_id, org_id) references public.calls (id, org_id) on delete set null (call_id),
  constraint appointments_conversation_fk foreign key (conversation_id, org_id)
    references public.conversations (id, org_id) on delete set null (conversation_id),
  -- No two booked appointments of one resource overlap (half-open: 10:00-10:30 and 10:30-11:00 may both exist).
  constraint appointments_no_double_booking exclude using gist (
    org_id with =, resource with =, (tstzrange(starts_at, ends_at, '[)')) with &&
  ) where (status = 'booked')
);
comment on table public.appointments is 'Appointments per org and resource, booked by staff or by bots for a caller, mirrored to a connected calendar. Booked ones never overlap per resource. Members read; written through the appointment RPCs.';
comment on column public.appointments.sync_status is 'Mirroring to connection_id: pending (the calendar function has work to do: create, move or delete the external event), synced, failed (sync_error says why), not_mirrored (no calendar).';
create index appointments_org_id_idx on public.appointments (org_id, starts_at);
create index appointments_bot_idx on public.appointments (bot_id, org_id);
create index appointments_connection_idx on public.appointments (connection_id, org_id);
create index appointments_call_idx on public.appointments (call_id, org_id);
create index appointments_conversation_idx on public.appointments (conversation_id, org_id);
create index appointments_created_by_idx on public.appointments (created_by);
create index appointments_sync_pending_idx on public.appointments (updated_at) where sync_status = 'pending';

-- Before every write, whoever writes: clean and check the attendee (clear
-- 22023 messages rather than a constraint name), the status rules, and the
-- mirroring state.
create function private.appointments_before_write()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
declare
  phone text;
begin
  if tg_op = 'UPDATE' then
    if new.org_id <> old.org_id or new.id <> old.id then
      raise exception 'an appointment keeps its id and organization' using errcode = 'invalid_parameter_value';
    end if;
    if old.status <> 'booked' and (new.status <> old.status or new.starts_at <> old.starts_at or new.ends_at <> old.ends_at) then
      raise exception 'a % appointment cannot be changed', replace(old.status, '_', '-')
        using errcode = 'check_violation', hint = 'Book a new appointment instead.';
    end if;
  end if;

  if new.starts_at is null or new.ends_at is null then
    raise exception 'starts_at and ends_at are required' using errcode = 'invalid_parameter_value';
  end if;
  if new.ends_at <= new.starts_at then
    raise exception 'an appointment must end after it starts' using errcode = 'invalid_parameter_value';
  end if;
  if new.ends_at - new.starts_at > interval '24 hours' then
    raise exception 'an appointment lasts at most 24 hours' using errcode = 'invalid_parameter_value';
  end if;

  new.attendee_name := pg_catalog.btrim(new.attendee_name);
  if coalesce(length(new.attendee_name), 0) not between 1 and 200 then
    raise exception 'attendee_name must have 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  new.attendee_email := lower(nullif(pg_catalog.btrim(new.attendee_email), ''));
  if new.attendee_email is not null and not private.is_email_address(new.attendee_email) then
    raise exception 'attendee_email is not an e-mail address: %', new.attendee_email using errcode = 'invalid_parameter_value';
  end if;
  if nullif(pg_catalog.btrim(new.attendee_phone), '') is null then
    new.attendee_phone := null;
  else
    phone := private.normalize_phone_number(new.attendee_phone);
    if phone is null then
      raise exception 'attendee_phone is not a phone number in international format: %', new.attendee_phone
        using errcode = 'invalid_parameter_value', hint = 'Start with + and the country code, e.g. +49 30 1234567.';
    end if;
    new.attendee_phone := phone;
  end if;
  if new.attendee_email is null and new.attendee_phone is null then
    raise exception 'an appointment needs the attendee''s e-mail address or phone number' using errcode = 'invalid_parameter_value';
  end if;
  if length(new.notes) > 2000 then
    raise exception 'notes are at most 2000 characters' using errcode = 'invalid_parameter_value';
  end if;
  new.notes := nullif(new.notes, '');
  if new.time_zone is not null and (tg_op = 'INSERT' or new.time_zone is distinct from old.time_zone) then
    perform private.require_time_zone(new.time_zone);
  end if;

  if new.status = 'canceled' then
    new.canceled_at := coalesce(new.canceled_at, pg_catalog.now());
  end if;
  -- Mirroring: nothing to do without a calendar; a change of time or status
  -- (what the external event shows) is work for the calendar function again.
  if tg_op = 'UPDATE' and new.connection_id is not null
    and (new.starts_at <> old.starts_at or new.ends_at <> old.ends_at or new.status <> old.status)
    and new.sync_status is not distinct from old.sync_status then
    new.sync_status := 'pending';
    new.sync_error := null;
  end if;
  if new.connection_id is null and new.sync_status = 'pending' then
    new.sync_status := 'not_mirrored';
  end if;
  return new;
end;
$$;

create trigger appointments_before_write before insert or update on public.appointments
  for each row execute function private.appointments_before_write();
create trigger appointments_set_updated_at before update on public.appointments
  for each row execute function private.set_updated_at();

-- appointment.created / .rescheduled / .canceled, whatever the path
-- (definer: emit_event is not for API roles).
create function private.appointments_emit_events()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    if new.status = 'booked' then
      perform private.emit_event(new.org_id, 'appointment.created', pg_catalog.jsonb_build_object(
        'appointment_id', new.id, 'starts_at', private.rfc3339(new.starts_at), 'ends_at', private.rfc3339(new.ends_at),
        'bot_id', new.bot_id));
    end if;
  elsif new.status = 'canceled' and old.status <> 'canceled' then
    perform private.emit_event(new.org_id, 'appointment.canceled', pg_catalog.jsonb_build_object(
      'appointment_id', new.id, 'reason', new.cancel_reason));
  elsif new.status = 'booked' and (new.starts_at <> old.starts_at or new.ends_at <> old.ends_at) then
    perform private.emit_event(new.org_id, 'appointment.rescheduled', pg_catalog.jsonb_build_object(
      'appointment_id', new.id, 'starts_at', private.rfc3339(new.starts_at), 'ends_at', private.rfc3339(new.ends_at),
      'previous_starts_at', private.rfc3339(old.starts_at), 'previous_ends_at', private.rfc3339(old.ends_at),
      'bot_id', new.bot_id));
  end if;
  return null;
end;
$$;

create trigger appointments_emit_events after insert or update on public.appointments
  for each row execute function private.appointments_emit_events();
create trigger appointments_audit after insert or update or delete on public.appointments
  for each row execute function private.audit_row_change();
-- Live: every change on org:<org_id>:appointments (narrowed to calendar.read below).
create trigger appointments_broadcast after insert or update or delete on public.appointments
  for each row execute function private.broadcast_org_change('appointments');

alter table public.appointments enable row level security;
revoke all on public.appointments from anon, authenticated;
grant select on public.appointments to authenticated;
create policy "members and up can read their org's appointments"
  on public.appointments for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('calendar.read'))));

-- The booked times of a resource within a window, for availability.
create function private.busy_from_appointments(org_id uuid, resource text, during tstzrange)
returns tstzmultirange
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  busy tstzmultirange;
begin
  perform private.require_calendar_window(busy_from_appointments.during);
  if auth.role() = 'authenticated' and not private.has_permission(busy_from_appointments.org_id, 'calendar.read') then
    raise exception 'you do not have the calendar.read permission in this organization' using errcode = 'insufficient_privilege';
  end if;
  select pg_catalog.range_agg(pg_catalog.tstzrange(a.starts_at, a.ends_at, '[)')) into busy
  from public.appointments a
  where a.org_id = busy_from_appointments.org_id
    and a.resource = coalesce(busy_from_appointments.resource, 'default')
    and a.status = 'booked'
    and pg_catalog.tstzrange(a.starts_at, a.ends_at, '[)') && busy_from_appointments.during;
  return coalesce(busy, '{}'::tstzmultirange) * pg_catalog.tstzmultirange(busy_from_appointments.during);
end;
$$;
comment on function private.busy_from_appointments(uuid, text, tstzrange) is 'The times booked appointments of a resource (default ''default'') take within a window. Service role, or members with calendar.read.';

-- The checks every booking and move passes before the row is written: a
-- time in the future, inside the open ranges of the bot (else the org).
-- Overlaps are left to the exclusion constraint (the only check that holds
-- under concurrency).
create function private.require_bookable_time(org_id uuid, bot_id uuid, starts_at timestamptz, ends_at timestamptz)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  slot tstzrange;
begin
  if starts_at is null or ends_at is null then
    raise exception 'starts_at and ends_at are required' using errcode = 'invalid_parameter_value';
  end if;
  if ends_at <= starts_at then
    raise exception 'an appointment must end after it starts' using errcode = 'invalid_parameter_value';
  end if;
  if ends_at - starts_at > interval '24 hours' then
    raise exception 'an appointment lasts at most 24 hours' using errcode = 'invalid_parameter_value';
  end if;
  if starts_at < pg_catalog.now() then
    raise exception 'that time has already passed' using errcode = 'invalid_parameter_value';
  end if;
  slot := pg_catalog.tstzrange(starts_at, ends_at, '[)');
  if not (private.open_ranges(require_bookable_time.org_id, require_bookable_time.bot_id, slot) @> slot) then
    raise exception 'that time is outside business hours'
      using errcode = 'invalid_parameter_value', hint = 'See the business hours and closures, or ask for the free slots.';
  end if;
end;
$$;

-- Writes a new booked appointment; a taken slot is a clear 23P01.
create function private.insert_appointment(appointment public.appointments)
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
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  if appointment.call_id is not null and not exists (
    select 1 from public.calls c where c.id = appointment.call_id and c.org_id = appointment.org_id
  ) then
    raise exception 'call not found' using errcode = 'no_data_found';
  end if;
  if appointment.conversation_id is not null and not exists (
    select 1 from public.conversations c where c.id = appointment.conversation_id and c.org_id = appointment.org_id
  ) then
    raise exception 'conversation not found' using errcode = 'no_data_found';
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

create function private.create_appointment(
  org_id uuid, starts_at timestamptz, ends_at timestamptz, attendee_name text, attendee_email text,
  attendee_phone text, notes text, bot_id uuid, resource text, time_zone text, call_id uuid, conversation_id uuid
)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  draft public.appointments;
begin
  perform private.require_permission(create_appointment.org_id, 'appointments.write');
  draft.org_id := create_appointment.org_id;
  draft.bot_id := create_appointment.bot_id;
  draft.resource := coalesce(create_appointment.resource, 'default');
  draft.starts_at := create_appointment.starts_at;
  draft.ends_at := create_appointment.ends_at;
  draft.time_zone := create_appointment.time_zone;
  draft.attendee_name := create_appointment.attendee_name;
  draft.attendee_email := create_appointment.attendee_email;
  draft.attendee_phone := create_appointment.attendee_phone;
  draft.notes := create_appointment.notes;
  draft.call_id := create_appointment.call_id;
  draft.conversation_id := create_appointment.conversation_id;
  draft.source := 'staff';
  return private.insert_appointment(draft);
end;
$$;

create function public.create_appointment(
  org_id uuid, starts_at timestamptz, ends_at timestamptz, attendee_name text, attendee_email text default null,
  attendee_phone text default null, notes text default null, bot_id uuid default null, resource text default 'default',
  time_zone text default null, call_id uuid default null, conversation_id uuid default null
)
returns public.appointments
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_appointment(create_appointment.org_id, create_appointment.starts_at, create_appointment.ends_at,
    create_appointment.attendee_name, create_appointment.attendee_email, create_appointment.attendee_phone,
    create_appointment.notes, create_appointment.bot_id, create_appointment.resource, create_appointment.time_zone,
    create_appointment.call_id, create_appointment.conversation_id);
$$;
comment on function public.create_appointment(uuid, timestamptz, timestamptz, text, text, text, text, uuid, text, text, uuid, uuid) is 'Books an appointment (source staff) inside the open hours of the bot (else the org): 22023 outside them, in the past or with a bad attendee; 23P01 when the resource is already booked then. Members (appointments.write).';

-- The chat core books for a caller (service role): the bot's org, its
-- hours, the same checks; source bot.
create function private.book_appointment_for_bot(
  bot_id uuid, starts_at timestamptz, ends_at timestamptz, attendee_name text, attendee_email text,
  attendee_phone text, notes text, conversation_id uuid, call_id uuid, resource text default 'default'
)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  bot public.bots;
  draft public.appointments;
begin
  select * into bot from public.bots b where b.id = book_appointment_for_bot.bot_id;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  if not bot.enabled then
    raise exception 'the bot is disabled' using errcode = 'invalid_parameter_value';
  end if;
  draft.org_id := bot.org_id;
  draft.bot_id := bot.id;
  draft.resource := book_appointment_for_bot.resource;
  draft.starts_at := book_appointment_for_bot.starts_at;
  draft.ends_at := book_appointment_for_bot.ends_at;
  draft.attendee_name := book_appointment_for_bot.attendee_name;
  draft.attendee_email := book_appointment_for_bot.attendee_email;
  draft.attendee_phone := book_appointment_for_bot.attendee_phone;
  draft.notes := book_appointment_for_bot.notes;
  draft.call_id := book_appointment_for_bot.call_id;
  draft.conversation_id := book_appointment_for_bot.conversation_id;
  draft.source := 'bot';
  return private.insert_appointment(draft);
end;
$$;
comment on function private.book_appointment_for_bot(uuid, timestamptz, timestamptz, text, text, text, text, uuid, uuid, text) is 'Books an appointment for a caller on a bot''s behalf (source bot; the resource it occupies, default ''default'') with the checks of create_appointment; the conversation and call must be of the bot''s org. Service role (the chat core).';

-- An appointment the caller may change: P0002 outside the caller's orgs,
-- 42501 without appointments.write.
create function private.writable_appointment(appointment_id uuid)
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
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'appointments.write');
  return target;
end;
$$;

create function private.reschedule_appointment(appointment_id uuid, starts_at timestamptz, ends_at timestamptz)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.appointments;
begin
  target := private.writable_appointment(reschedule_appointment.appointment_id);
  if target.status <> 'booked' then
    raise exception 'only a booked appointment can be rescheduled (this one is %)', replace(target.status, '_', '-')
      using errcode = 'check_violation';
  end if;
  if target.starts_at = reschedule_appointment.starts_at and target.ends_at = reschedule_appointment.ends_at then
    return target;
  end if;
  perform private.require_bookable_time(target.org_id, target.bot_id, reschedule_appointment.starts_at, reschedule_appointment.ends_at);
  begin
    update public.appointments a
    set starts_at = reschedule_appointment.starts_at, ends_at = reschedule_appointment.ends_at,
        reschedule_count = a.reschedule_count + 1
    where a.id = target.id
    returning * into target;
  exception
    when exclusion_violation then
      raise exception 'that time is already booked' using errcode = 'exclusion_violation',
        hint = 'Choose another time, or ask for the free slots.';
  end;
  return target;
end;
$$;

create function public.reschedule_appointment(appointment_id uuid, starts_at timestamptz, ends_at timestamptz)
returns public.appointments
language sql
security invoker
set search_path = ''
as $$
  select * from private.reschedule_appointment(reschedule_appointment.appointment_id, reschedule_appointment.starts_at,
    reschedule_appointment.ends_at);
$$;
comment on function public.reschedule_appointment(uuid, timestamptz, timestamptz) is 'Moves a booked appointment, with the checks of create_appointment (23P01 when taken, 22023 outside hours); counts the reschedule and makes the mirror pending. The same times change nothing. Members (appointments.write).';

create function private.cancel_appointment(appointment_id uuid, reason text)
returns public.appointments
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.appointments;
  cleaned text := nullif(pg_catalog.btrim(cancel_appointment.reason), '');
begin
  target := private.writable_appointment(cancel_appointment.appointment_id);
  if target.status = 'canceled' then
    return target;
  end if;
  if target.status <> 'booked' then
    raise exception 'only a booked appointment can be canceled (this one is %)', replace(target.status, '_', '-')
      using errcode = 'check_violation';
  end if;
  if length(cleaned) > 500 then
    raise exception 'the reason is at most 500 characters' using errcode = 'invalid_parameter_value';
  end if;
  update public.appointments a
  set status = 'canceled', canceled_at = pg_catalog.now(), cancel_reason = cleaned
  where a.id = target.id
  returning * into target;
  return target;
end;
$$;

create function public.cancel_appointment(appointment_id uuid, reason text default null)
returns public.appointments
language sql
security invoker
set search_path = ''
as $$
  select * from private.cancel_appointment(cancel_appointment.appointment_id, cancel_appointment.reason);
$$;
comment on function public.cancel_appointment(uuid, text) is 'Cancels a booked appointment (the slot is free at once) with an optional reason (at most 500 characters); canceling twice changes nothing. Members (appointments.write).';

-- The mirroring result (service role). A null external_event_id keeps the
-- stored one; sync_error is kept only for failed.
-- The result of mirroring one version of an appointment: `mirrored_at` is
-- the updated_at the function read before calling the provider. When the
-- appointment changed since (moved or canceled while the provider answered),
-- the result is stale and ignored: the change's own mirroring reports.
create function private.set_appointment_sync(
  appointment_id uuid, external_event_id text, sync_status text, sync_error text, mirrored_at timestamptz
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  current_version timestamptz;
begin
  if set_appointment_sync.sync_status is null or set_appointment_sync.sync_status not in ('pending', 'synced', 'failed', 'not_mirrored') then
    raise exception 'sync_status must be pending, synced, failed or not_mirrored' using errcode = 'invalid_parameter_value';
  end if;
  if length(set_appointment_sync.external_event_id) not between 1 and 1024 then
    raise exception 'external_event_id must have 1 to 1024 characters' using errcode = 'invalid_parameter_value';
  end if;
  select a.updated_at into current_version from public.appointments a where a.id = set_appointment_sync.appointment_id for update;
  if not found then
    raise exception 'appointment not found' using errcode = 'no_data_found';
  end if;
  if set_appointment_sync.mirrored_at is not null and current_version is distinct from set_appointment_sync.mirrored_at then
    -- A newer version exists; keep what was made at the provider, leave the status to the newer mirroring.
    update public.appointments a
    set external_event_id = coalesce(a.external_event_id, set_appointment_sync.external_event_id)
    where a.id = set_appointment_sync.appointment_id and a.external_event_id is null
      and set_appointment_sync.external_event_id is not null;
    return false;
  end if;
  update public.appointments a
  set external_event_id = coalesce(set_appointment_sync.external_event_id, a.external_event_id),
      sync_status = set_appointment_sync.sync_status,
      sync_error = case when set_appointment_sync.sync_status = 'failed'
                        then left(coalesce(nullif(pg_catalog.btrim(set_appointment_sync.sync_error), ''), 'unknown error'), 1000) end
  where a.id = set_appointment_sync.appointment_id;
  return true;
end;
$$;
comment on function private.set_appointment_sync(uuid, text, text, text, timestamptz) is 'Records the result of mirroring an appointment to its calendar: the external event id (null keeps it), the sync status, the error (failed only, at most 1000 characters kept). Ignored (false) when the appointment changed after mirrored_at (its updated_at when mirroring began; null skips the check), except that an event id made at the provider is kept. P0002 unknown. Service role.';

-- ---------------------------------------------------------------------------
-- The appointments channel carries attendee details: receiving (and sending)
-- on org:<org_id>:appointments needs calendar.read on top of the realtime
-- permissions (a narrowed channel, see 20261123001200).
-- ---------------------------------------------------------------------------

insert into private.narrowed_channels (channel, permission) values ('appointments', 'calendar.read');

-- ---------------------------------------------------------------------------
-- Who may run what
-- ---------------------------------------------------------------------------

revoke execute on function
  private.require_calendar_provider(text),
  private.is_email_address(text),
  private.is_calendar_redirect(text),
  private.require_calendar_window(tstzrange),
  private.begin_calendar_connection(uuid, text, text, uuid, text),
  public.begin_calendar_connection(uuid, text, text, uuid, text),
  private.consume_calendar_oauth_state(uuid),
  private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz),
  private.calendar_tokens_for(uuid[]),
  private.update_calendar_tokens(uuid, text, timestamptz),
  private.mark_calendar_needs_reauth(uuid, text),
  private.disconnect_calendar(uuid),
  public.disconnect_calendar(uuid),
  private.delete_calendar_connection(uuid),
  private.calendars_for_bot(uuid, uuid),
  private.booking_calendar(uuid, uuid),
  private.open_ranges(uuid, uuid, tstzrange),
  private.appointments_before_write(),
  private.appointments_emit_events(),
  private.busy_from_appointments(uuid, text, tstzrange),
  private.require_bookable_time(uuid, uuid, timestamptz, timestamptz),
  private.insert_appointment(public.appointments),
  private.create_appointment(uuid, timestamptz, timestamptz, text, text, text, text, uuid, text, text, uuid, uuid),
  public.create_appointment(uuid, timestamptz, timestamptz, text, text, text, text, uuid, text, text, uuid, uuid),
  private.book_appointment_for_bot(uuid, timestamptz, timestamptz, text, text, text, text, uuid, uuid, text),
  private.writable_appointment(uuid),
  private.reschedule_appointment(uuid, timestamptz, timestamptz),
  public.reschedule_appointment(uuid, timestamptz, timestamptz),
  private.cancel_appointment(uuid, text),
  public.cancel_appointment(uuid, text),
  private.set_appointment_sync(uuid, text, text, text, timestamptz)
from public;

-- Checks a check constraint (oauth states, appointments) and the appointment
-- trigger run as whoever writes: the service role writes appointments directly too.
grant execute on function
  private.is_email_address(text),
  private.is_calendar_redirect(text)
to authenticated, service_role;

-- Signed-in users, through the invoker wrappers (the definer code checks
-- calendar.manage or appointments.write in the row's org).
grant execute on function
  public.begin_calendar_connection(uuid, text, text, uuid, text),
  private.begin_calendar_connection(uuid, text, text, uuid, text),
  public.disconnect_calendar(uuid),
  private.disconnect_calendar(uuid),
  public.create_appointment(uuid, timestamptz, timestamptz, text, text, text, text, uuid, text, text, uuid, uuid),
  private.create_appointment(uuid, timestamptz, timestamptz, text, text, text, text, uuid, text, text, uuid, uuid),
  public.reschedule_appointment(uuid, timestamptz, timestamptz),
  private.reschedule_appointment(uuid, timestamptz, timestamptz),
  public.cancel_appointment(uuid, text),
  private.cancel_appointment(uuid, text)
to authenticated;

-- Availability parts: the calendar function as the service role, or a
-- signed-in member with calendar.read (checked inside).
grant execute on function
  private.calendars_for_bot(uuid, uuid),
  private.open_ranges(uuid, uuid, tstzrange),
  private.busy_from_appointments(uuid, text, tstzrange)
to authenticated, service_role;

-- No permission check inside: service code only (the calendar function and
-- the chat core).
grant execute on function
  private.consume_calendar_oauth_state(uuid),
  private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz),
  private.calendar_tokens_for(uuid[]),
  private.update_calendar_tokens(uuid, text, timestamptz),
  private.mark_calendar_needs_reauth(uuid, text),
  private.delete_calendar_connection(uuid),
  private.book_appointment_for_bot(uuid, timestamptz, timestamptz, text, text, text, text, uuid, uuid, text),
  private.set_appointment_sync(uuid, text, text, text, timestamptz)
to service_role;
