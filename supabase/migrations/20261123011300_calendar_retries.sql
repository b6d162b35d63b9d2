-- Calendar requests sent again, and finishing a CALENDAR_TOKEN_KEY rotation.
--
-- 1. A chat booking turn sent again after its answer was lost was refused
--    ("that time isn't available") by its own booking: the chat core now
--    first asks private.conversation_booking for the conversation's booked
--    appointment of the same time, resource and attendee, and confirms it
--    again. The attendee is compared as the appointments trigger stores it
--    (trimmed name, lower-cased e-mail, E.164 phone), which needs
--    private.normalize_phone_number: not the service role's, hence definer.
-- 2. POST /calendar/oauth/complete sent twice by the user who started it (a
--    lost answer, React StrictMode, two tabs) answered 404 for a calendar
--    just connected: complete_calendar_connection deleted the request. The
--    completion now leaves a receipt (request, user, connection) until the
--    request would have expired, and the same user gets the same row again;
--    anyone else still gets none. A receipt and not the request row kept:
--    the request's sealed tokens would stay a second copy of the grant (held
--    for "connected elsewhere", re-sealed on rotation, queued for revocation
--    when purged) although the connection owns them now.
-- 3. Rotation: tokens sealed under an old key were re-sealed only by a
--    refresh, so dropping the old key left them unreadable. The calendar
--    function's POST calendar/reseal re-seals a batch of every table holding
--    sealed tokens through the two functions below; the ciphertext header
--    names the key (v1.<kid>.…), so SQL finds them without decrypting.

-- ---------------------------------------------------------------------------
-- 1. The conversation's booking of a time
-- ---------------------------------------------------------------------------

create function private.conversation_booking(
  conversation_id uuid, bot_id uuid, starts_at timestamptz, ends_at timestamptz, resource text,
  attendee_name text, attendee_email text, attendee_phone text
)
returns setof public.appointments
language sql
stable
security definer
set search_path = ''
as $$
  select a.*
  from public.appointments a
  where a.conversation_id = conversation_booking.conversation_id
    and a.bot_id = conversation_booking.bot_id
    and a.status = 'booked'
    and a.starts_at = conversation_booking.starts_at
    and a.ends_at = conversation_booking.ends_at
    and a.resource = conversation_booking.resource
    and a.attendee_name = pg_catalog.btrim(conversation_booking.attendee_name)
    and a.attendee_email is not distinct from lower(nullif(pg_catalog.btrim(conversation_booking.attendee_email), ''))
    and a.attendee_phone is not distinct from
      private.normalize_phone_number(nullif(pg_catalog.btrim(conversation_booking.attendee_phone), ''))
  order by a.created_at
  limit 1;
$$;
comment on function private.conversation_booking(uuid, uuid, timestamptz, timestamptz, text, text, text, text) is 'The booked appointment a conversation already holds for this time, bot, resource and attendee (as stored: trimmed name, lower-cased e-mail, E.164 phone), if any: a booking turn sent again is confirmed again instead of refused by its own booking. Service role (the chat core).';
revoke execute on function private.conversation_booking(uuid, uuid, timestamptz, timestamptz, text, text, text, text) from public;
grant execute on function private.conversation_booking(uuid, uuid, timestamptz, timestamptz, text, text, text, text) to service_role;

-- ---------------------------------------------------------------------------
-- 2. Completing a connect twice
-- ---------------------------------------------------------------------------

create table private.calendar_completed_connections (
  request_id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  connection_id uuid not null references public.calendar_connections (id) on delete cascade,
  expires_at timestamptz not null
);
comment on table private.calendar_completed_connections is 'Connection requests completed (20261123011300), until the request would have expired: the starting user''s repeat of POST calendar/oauth/complete gets the same connection again. No tokens (the connection holds them). Purged with the requests.';
create index calendar_completed_connections_user_id_idx on private.calendar_completed_connections (user_id);
create index calendar_completed_connections_connection_id_idx on private.calendar_completed_connections (connection_id);
create index calendar_completed_connections_expires_idx on private.calendar_completed_connections (expires_at);
alter table private.calendar_completed_connections enable row level security;
revoke all on private.calendar_completed_connections from public, anon, authenticated, service_role;

-- Latest definition: 20261123010300_more_grants_revoked.sql. A request
-- completed before answers its connection again, for its user only and
-- while the connection is live.
create or replace function private.complete_calendar_connection(request_id uuid, user_id uuid)
returns table (connection_id uuid, provider text, account_email text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  request private.calendar_pending_connections;
  saved uuid;
begin
  select * into request from private.calendar_pending_connections p
  where p.id = complete_calendar_connection.request_id
  for update;
  if not found then
    return query
    select c.id, c.provider, c.account_email
    from private.calendar_completed_connections done
    join public.calendar_connections c on c.id = done.connection_id
    where done.request_id = complete_calendar_connection.request_id
      and done.user_id = complete_calendar_connection.user_id
      and done.expires_at > pg_catalog.now()
      and c.status <> 'revoked';
    return;
  end if;
  if request.expires_at <= pg_catalog.now() then
    delete from private.calendar_pending_connections p where p.id = request.id;
    return;
  end if;
  -- Someone else holds the id: the consenting user's own dashboard (the
  -- attack's victim lands there first) or a leak. Either way the request is
  -- given up, so a leaked id cannot be completed later by whoever started it.
  if request.user_id is distinct from complete_calendar_connection.user_id then
    delete from private.calendar_pending_connections p where p.id = request.id;
    return;
  end if;
  perform pg_catalog.set_config('private.calendar_grant_kept', request.id::text, true);
  delete from private.calendar_pending_connections p where p.id = request.id;
  perform pg_catalog.set_config('private.calendar_grant_kept', '', true);
  saved := private.save_calendar_connection(request.org_id, request.user_id, request.bot_id, request.provider,
    request.account_email, null, request.scopes, request.ciphertext, request.token_expires_at, request.account_subject);
  insert into private.calendar_completed_connections (request_id, user_id, connection_id, expires_at)
  values (request.id, request.user_id, saved, request.expires_at);
  return query select saved, request.provider, request.account_email;
end;
$$;
comment on function private.complete_calendar_connection(uuid, uuid) is 'Completes a connection request for the user who started the connect: saves it (private.save_calendar_connection, which re-checks calendar.manage) and returns the connection id, provider and account e-mail; the same user''s repeat, until the request would have expired, returns the same row again (20261123011300) while the connection is not revoked. No row for an unknown, expired or another user''s request, and another user''s attempt on an uncompleted request gives it up (the victim''s own dashboard, landing first, cancels an injected connect). Service role (the calendar function, with the JWT''s user).';

-- Latest definition: 20261123007400_calendar_connect_completion.sql. Also
-- purges expired receipts; answers the requests purged, as before.
create or replace function private.purge_calendar_pending_connections()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from private.calendar_completed_connections done where done.expires_at <= pg_catalog.now();
  delete from private.calendar_pending_connections p where p.expires_at <= pg_catalog.now();
  get diagnostics purged = row_count;
  return purged;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. Re-sealing tokens under the current key
-- ---------------------------------------------------------------------------

-- kind: 'connection' (private.calendar_tokens, id = the connection's),
-- 'request' (private.calendar_pending_connections, sealed under the default
-- calendar) or 'dropped_grant' (private.deleted_org_calendar_grants); with
-- the calendar key each is sealed under.
create function private.calendar_secrets_to_reseal(
  current_kid text, max_rows integer, except_ids uuid[] default '{}', only_org uuid default null
)
returns table (
  kind text, id uuid, org_id uuid, provider text, account_email text, external_calendar_id text, ciphertext text
)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if current_kid is null or current_kid !~ '^[0-9a-f]{8}$' then
    raise exception 'current_kid must be 8 hex digits' using errcode = 'invalid_parameter_value';
  end if;
  if max_rows is null or max_rows not between 1 and 500 then
    raise exception 'max_rows must be 1 to 500' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select s.kind, s.id, s.org_id, s.provider, s.account_email, s.external_calendar_id, s.ciphertext
  from (
    select 'connection'::text as kind, c.id, c.org_id, c.provider, c.account_email, c.external_calendar_id, t.ciphertext
    from private.calendar_tokens t
    join public.calendar_connections c on c.id = t.connection_id
    union all
    select 'request', p.id, p.org_id, p.provider, p.account_email,
      case when p.provider = 'google' then 'primary' end, p.ciphertext
    -- Expired requests too: until purged, each is one whose purge queues its grant for revocation.
    from private.calendar_pending_connections p
    union all
    select 'dropped_grant', g.id, g.org_id, g.provider, g.account_email, g.external_calendar_id, g.ciphertext
    from private.deleted_org_calendar_grants g
  ) s
  where not pg_catalog.starts_with(s.ciphertext, 'v1.' || current_kid || '.')
    and s.id <> all (coalesce(except_ids, '{}'))
    and (only_org is null or s.org_id = only_org)
  order by s.kind, s.id
  limit max_rows;
end;
$$;
comment on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) is 'Sealed calendar token sets whose header names another key than current_kid (8 hex digits), at most max_rows (1 to 500), except except_ids, only only_org''s when given: connections'' tokens, connection requests'' (expired ones too, until purged: their purge queues the grant for revocation) and dropped grants'' copies, each with the calendar key it is sealed under. Service role (POST calendar/reseal).';
revoke execute on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) from public;
grant execute on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) to service_role;

-- Only the ciphertext changes (no status, expiry or refresh time: a
-- needs_reauth connection stays so), and only while it is still the one
-- read: a refresh or reconnect meanwhile keeps its newer set.
create function private.reseal_calendar_secret(kind text, id uuid, replaces text, ciphertext text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if coalesce(length(reseal_calendar_secret.ciphertext), 0) not between 1 and 16384 then
    raise exception 'ciphertext must have 1 to 16384 characters' using errcode = 'invalid_parameter_value';
  end if;
  if kind = 'connection' then
    update private.calendar_tokens t set ciphertext = reseal_calendar_secret.ciphertext, updated_at = pg_catalog.now()
    where t.connection_id = reseal_calendar_secret.id and t.ciphertext = reseal_calendar_secret.replaces;
  elsif kind = 'request' then
    update private.calendar_pending_connections p set ciphertext = reseal_calendar_secret.ciphertext
    where p.id = reseal_calendar_secret.id and p.ciphertext = reseal_calendar_secret.replaces;
  elsif kind = 'dropped_grant' then
    update private.deleted_org_calendar_grants g
    set ciphertext = reseal_calendar_secret.ciphertext, updated_at = pg_catalog.now()
    where g.id = reseal_calendar_secret.id and g.ciphertext = reseal_calendar_secret.replaces;
  else
    raise exception 'kind must be connection, request or dropped_grant' using errcode = 'invalid_parameter_value';
  end if;
  return found;
end;
$$;
comment on function private.reseal_calendar_secret(text, uuid, text, text) is 'Replaces one sealed token set (kind as private.calendar_secrets_to_reseal answers it) by the same set sealed under the current key, only while replaces is still stored; true when written. Changes nothing else. Service role (POST calendar/reseal).';
revoke execute on function private.reseal_calendar_secret(text, uuid, text, text) from public;
grant execute on function private.reseal_calendar_secret(text, uuid, text, text) to service_role;

create function private.count_calendar_secrets_to_reseal(current_kid text)
returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if current_kid is null or current_kid !~ '^[0-9a-f]{8}$' then
    raise exception 'current_kid must be 8 hex digits' using errcode = 'invalid_parameter_value';
  end if;
  return (select count(*) from private.calendar_tokens t where not pg_catalog.starts_with(t.ciphertext, 'v1.' || current_kid || '.'))
    + (select count(*) from private.calendar_pending_connections p
       where not pg_catalog.starts_with(p.ciphertext, 'v1.' || current_kid || '.'))
    + (select count(*) from private.deleted_org_calendar_grants g where not pg_catalog.starts_with(g.ciphertext, 'v1.' || current_kid || '.'));
end;
$$;
comment on function private.count_calendar_secrets_to_reseal(text) is 'How many sealed calendar token sets private.calendar_secrets_to_reseal would still list (no limit, none excepted). Service role.';
revoke execute on function private.count_calendar_secrets_to_reseal(text) from public;
grant execute on function private.count_calendar_secrets_to_reseal(text) to service_role;
