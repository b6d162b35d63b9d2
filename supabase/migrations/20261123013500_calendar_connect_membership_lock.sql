-- A member removed while finishing a calendar connect no longer keeps the calendar connected.
--
-- save_calendar_connection checked that the connecting user still holds calendar.manage with a plain read of
-- their membership. A removal (remove_member, leave_organization) committing meanwhile deleted the membership
-- and ran its trigger (disconnect_calendars_of_leaver), which found no connection of the user yet; the save,
-- which still saw the membership, then stored the connection: the leaver's own calendar stayed connected to the
-- org (its busy times read, bookings written into it, the tokens stored, no grant revocation queued), against
-- the rule that a member leaving loses the calendar connections they connected. Reproduced on a scratch
-- Postgres 15 with the two functions verbatim.
--
-- The save now locks the membership row (for share) before the check, as invitations lock the inviter's since
-- 20261123008400: a removal or demotion under way makes the save wait and then find no permission (42501), and
-- one that comes after waits for the save, so its trigger sees and revokes the new connection. The order is the
-- removal's (membership, then the connections, then the audit chain head), so no new deadlock.

-- Latest definition: 20261123010300_more_grants_revoked.sql; only the membership lock is new.
create or replace function private.save_calendar_connection(
  org_id uuid, user_id uuid, bot_id uuid, provider text, account_email text, external_calendar_id text,
  scopes text[], ciphertext text, token_expires_at timestamptz, account_subject text default null
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  email text := lower(pg_catalog.btrim(save_calendar_connection.account_email));
  subject text := save_calendar_connection.account_subject;
  calendar_id text := nullif(pg_catalog.btrim(save_calendar_connection.external_calendar_id), '');
  existing public.calendar_connections;
  saved uuid;
begin
  perform private.require_calendar_provider(save_calendar_connection.provider);
  if not private.is_email_address(email) then
    raise exception 'account_email must be an e-mail address' using errcode = 'invalid_parameter_value';
  end if;
  if subject is not null and subject !~ '^[!-~]{1,255}$' then
    raise exception 'account_subject must be 1 to 255 printable ASCII characters' using errcode = 'invalid_parameter_value';
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
  -- The code exchange takes a while: the user must still hold calendar.manage. Their membership row is
  -- locked first, so a removal or demotion under way is waited for (and then refuses), and one to come waits
  -- for this save (and its trigger revokes what the save stored).
  perform 1 from public.memberships m
  where m.org_id = save_calendar_connection.org_id and m.user_id = save_calendar_connection.user_id
  for share;
  if not exists (
    select 1 from public.memberships m
    join public.role_permissions p on p.permission = 'calendar.manage'
    where m.org_id = save_calendar_connection.org_id and m.user_id = save_calendar_connection.user_id and m.role >= p.min_role
  ) then
    raise exception 'the user does not have the calendar.manage permission in this organization'
      using errcode = 'insufficient_privilege';
  end if;

  if subject is not null then
    select * into existing from public.calendar_connections c
    where c.org_id = save_calendar_connection.org_id and c.provider = save_calendar_connection.provider
      and c.account_subject = subject and coalesce(c.external_calendar_id, '') = coalesce(calendar_id, '')
    for update;
    if found and existing.status = 'revoked' then
      perform pg_catalog.set_config('private.calendar_grant_kept', existing.id::text, true);
      delete from public.calendar_connections c where c.id = existing.id;
      existing := null;
    end if;
  end if;
  if existing.id is null then
    -- A connection made before subjects were stored; without a subject the
    -- e-mail is all there is, and the subject-less row comes first.
    select * into existing from public.calendar_connections c
    where c.org_id = save_calendar_connection.org_id and c.provider = save_calendar_connection.provider
      and c.account_email = email and coalesce(c.external_calendar_id, '') = coalesce(calendar_id, '')
      and (c.account_subject is null or subject is null)
    order by c.account_subject is null desc, c.updated_at desc
    limit 1
    for update;
    if found and existing.status = 'revoked' then
      perform pg_catalog.set_config('private.calendar_grant_kept', existing.id::text, true);
      delete from public.calendar_connections c where c.id = existing.id;
      existing := null;
    end if;
  end if;
  perform pg_catalog.set_config('private.calendar_grant_kept', '', true);

  if existing.id is not null then
    if existing.bot_id is distinct from save_calendar_connection.bot_id then
      raise exception 'this calendar is already connected for %; disconnect it there first',
        case when existing.bot_id is null then 'the whole organization' else 'another bot' end
        using errcode = 'unique_violation';
    end if;
    update public.calendar_connections c
    set status = 'connected', status_reason = null, scopes = coalesce(save_calendar_connection.scopes, '{}'),
        token_expires_at = save_calendar_connection.token_expires_at, last_refreshed_at = pg_catalog.now(),
        connected_by = save_calendar_connection.user_id, account_email = email,
        account_subject = coalesce(c.account_subject, subject)
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
      org_id, bot_id, provider, account_email, account_subject, external_calendar_id, scopes, token_expires_at,
      last_refreshed_at, connected_by
    ) values (
      save_calendar_connection.org_id, save_calendar_connection.bot_id, save_calendar_connection.provider, email, subject,
      calendar_id, coalesce(save_calendar_connection.scopes, '{}'), save_calendar_connection.token_expires_at,
      pg_catalog.now(), save_calendar_connection.user_id
    )
    returning id into saved;
    insert into private.calendar_tokens (connection_id, ciphertext) values (saved, save_calendar_connection.ciphertext);
  end if;
  return saved;
end;
$$;
