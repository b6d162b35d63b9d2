-- Calendar: a token refresh or a refused grant acts only on the tokens it read.
--
-- A request that finds a connection's access token about to expire refreshes
-- it at the provider and stores the new set; one whose grant the provider
-- refuses marks the connection needs_reauth. Both wrote unconditionally, so a
-- reconnect that landed in between (new consent, new tokens) was undone:
-- - the refresh overwrote the reconnect's tokens with the old grant's, sealed
--   under the connection's e-mail as the request read it; after a reconnect
--   under another spelling of the account (20261123006500) that seal no longer
--   opens, and the connection reported token_unreadable until connected again;
-- - the refusal of the old grant marked the freshly reconnected calendar
--   needs_reauth and told the org it was broken.
-- Now both take the ciphertext the request read (`replaces`, `refused`) and
-- act only while it is still the stored one; the connection row is locked
-- first, as save_calendar_connection locks it, so a reconnect and a refresh
-- take turns. Without it they act as before.

-- Latest definition: 20261123001400_calendar.sql; `replaces` and the boolean
-- result are new.
drop function private.update_calendar_tokens(uuid, text, timestamptz);
create function private.update_calendar_tokens(
  connection_id uuid, ciphertext text, token_expires_at timestamptz, replaces text default null
)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if coalesce(length(update_calendar_tokens.ciphertext), 0) = 0 then
    raise exception 'ciphertext is required' using errcode = 'invalid_parameter_value';
  end if;
  perform 1 from public.calendar_connections c
  where c.id = update_calendar_tokens.connection_id and c.status <> 'revoked'
  for update;
  if not found then
    raise exception 'calendar connection not found (or disconnected)' using errcode = 'no_data_found';
  end if;
  if update_calendar_tokens.replaces is not null and not exists (
    select 1 from private.calendar_tokens t
    where t.connection_id = update_calendar_tokens.connection_id and t.ciphertext = update_calendar_tokens.replaces
  ) then
    return false;
  end if;
  update public.calendar_connections c
  set token_expires_at = update_calendar_tokens.token_expires_at, last_refreshed_at = pg_catalog.now(),
      status = 'connected', status_reason = null
  where c.id = update_calendar_tokens.connection_id;
  update private.calendar_tokens t
  set ciphertext = update_calendar_tokens.ciphertext, updated_at = pg_catalog.now()
  where t.connection_id = update_calendar_tokens.connection_id;
  if not found then
    insert into private.calendar_tokens (connection_id, ciphertext)
    values (update_calendar_tokens.connection_id, update_calendar_tokens.ciphertext);
  end if;
  return true;
end;
$$;
comment on function private.update_calendar_tokens(uuid, text, timestamptz, text) is 'Stores refreshed (encrypted) tokens and their expiry, sets last_refreshed_at and status connected; true when stored. With replaces (the ciphertext the refresh started from), stores only while that is still the stored set: false, nothing written, when a reconnect or another refresh stored newer tokens meanwhile. P0002 for an unknown or revoked connection. Service role.';

revoke execute on function private.update_calendar_tokens(uuid, text, timestamptz, text) from public;
grant execute on function private.update_calendar_tokens(uuid, text, timestamptz, text) to service_role;

-- Latest definition: 20261123001400_calendar.sql; `refused` is new.
drop function private.mark_calendar_needs_reauth(uuid, text);
create function private.mark_calendar_needs_reauth(connection_id uuid, reason text, refused text default null)
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
  perform 1 from public.calendar_connections c where c.id = mark_calendar_needs_reauth.connection_id for update;
  if not found then
    raise exception 'calendar connection not found' using errcode = 'no_data_found';
  end if;
  if mark_calendar_needs_reauth.refused is not null and not exists (
    select 1 from private.calendar_tokens t
    where t.connection_id = mark_calendar_needs_reauth.connection_id and t.ciphertext = mark_calendar_needs_reauth.refused
  ) then
    return false;
  end if;
  update public.calendar_connections c set status = 'needs_reauth', status_reason = cleaned
  where c.id = mark_calendar_needs_reauth.connection_id and c.status = 'connected'
  returning * into broken;
  if not found then
    return false;
  end if;
  perform private.emit_event(broken.org_id, 'calendar.connection_broken', pg_catalog.jsonb_build_object(
    'connection_id', broken.id, 'provider', broken.provider, 'reason', cleaned));
  return true;
end;
$$;
comment on function private.mark_calendar_needs_reauth(uuid, text, text) is 'Marks a connected calendar needs_reauth with the reason (at most 500 characters kept) and emits calendar.connection_broken; false (nothing emitted) when it was not connected, or when refused (the ciphertext of the token set the provider refused) is no longer the stored set: the calendar was connected again meanwhile. P0002 unknown. Service role.';

revoke execute on function private.mark_calendar_needs_reauth(uuid, text, text) from public;
grant execute on function private.mark_calendar_needs_reauth(uuid, text, text) to service_role;
