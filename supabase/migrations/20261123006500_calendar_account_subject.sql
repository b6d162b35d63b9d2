-- Calendar: a connection's account is the provider's stable account id, not
-- its e-mail.
--
-- An e-mail is not an identity: a user can change the primary address of
-- their Google or Microsoft account, and an address can pass from one
-- account to another. Keyed by e-mail, connecting the same account again
-- after its address changed made a second connection (its busy times
-- counted twice, appointments mirrored by two rows), and
-- private.calendar_account_connected_elsewhere missed the same account
-- connected in another org under the other address, so a disconnect
-- revoked that connection's Google grant too.
--
-- Now every connect stores account_subject: Google's ID-token `sub`, Graph's
-- /me `id` (OpenID Connect Core 1.0 §2: never reassigned, at most 255 ASCII
-- characters). A reconnect finds its connection by subject first, and only
-- then a connection made before this migration (no subject) by e-mail, which
-- gets the subject then; the e-mail stays as what is shown and follows the
-- account's latest address. A subject, once set, never changes. Two accounts
-- with one e-mail (an address that passed to someone else) are two
-- connections, even of one org's same calendar slot: they are two calendars
-- with two grants, and merging them would hand one account's appointments
-- and mirrored events to the other.

-- ---------------------------------------------------------------------------
-- The column, its keys and its rule
-- ---------------------------------------------------------------------------

alter table public.calendar_connections
  add column account_subject text
    constraint calendar_connections_account_subject check (account_subject ~ '^[!-~]{1,255}$');
comment on column public.calendar_connections.account_subject is 'The provider''s stable id of the connected account (Google ID-token sub, Graph user id): what identifies the account; account_email is only shown. Null for connections made before 20261123006500 until they are connected again. Set once, never changed.';

-- One connection per account and calendar in an org; rows without a subject
-- keep the e-mail key they had, rows with one are keyed by it alone.
drop index public.calendar_connections_account_key;
create unique index calendar_connections_account_key
  on public.calendar_connections (org_id, provider, account_email, (coalesce(external_calendar_id, '')))
  where account_subject is null;
create unique index calendar_connections_subject_key
  on public.calendar_connections (org_id, provider, account_subject, (coalesce(external_calendar_id, '')))
  where account_subject is not null;
-- The cross-org lookup of private.calendar_account_connected_elsewhere.
create index calendar_connections_provider_subject_idx
  on public.calendar_connections (provider, account_subject) where account_subject is not null;

-- A connection's account is what its tokens and mirrored events belong to:
-- learning it (null to a value) is fine, swapping it for another is not.
create function private.calendar_connections_keep_subject()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if old.account_subject is not null and new.account_subject is distinct from old.account_subject then
    raise exception 'the account of a calendar connection cannot change'
      using errcode = 'check_violation', hint = 'Connect the other account as a new calendar.';
  end if;
  return new;
end;
$$;
create trigger calendar_connections_keep_subject before update of account_subject on public.calendar_connections
  for each row execute function private.calendar_connections_keep_subject();

-- Restated from 20261123001400_calendar.sql: learning the account's subject
-- is audited like the rest of what the connection is.
drop trigger calendar_connections_audit_update on public.calendar_connections;
create trigger calendar_connections_audit_update after update on public.calendar_connections
  for each row
  when (
    old.status is distinct from new.status or old.status_reason is distinct from new.status_reason
    or old.bot_id is distinct from new.bot_id or old.account_email is distinct from new.account_email
    or old.account_subject is distinct from new.account_subject
    or old.external_calendar_id is distinct from new.external_calendar_id or old.scopes is distinct from new.scopes
    or old.connected_by is distinct from new.connected_by or old.provider is distinct from new.provider
  )
  execute function private.audit_row_change();

-- ---------------------------------------------------------------------------
-- Saving a connection: matched by subject, then by e-mail
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001400_calendar.sql; account_subject is new (a
-- last parameter with a default, so the old calls still resolve; without it
-- the e-mail names the account, as before). With a subject, the connection
-- is found by (org, provider, subject, calendar), else a connection without
-- a subject by e-mail (it gets the subject), else a new one is made; either
-- way account_email becomes the spelling given. A revoked match (a
-- disconnect under way) is deleted and not reused, so the pending delete of
-- the old row cannot remove the new one.
drop function private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz);
create function private.save_calendar_connection(
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
  -- The code exchange takes a while: the user must still hold calendar.manage.
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
      delete from public.calendar_connections c where c.id = existing.id;
      existing := null;
    end if;
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
comment on function private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text) is 'Stores a connected calendar and its encrypted token set. A reconnect of the same calendar (by account_subject, the provider''s account id; else a connection without one by e-mail, which then gets it) replaces the tokens, sets it connected and shows the e-mail given (23505 when it is connected for another bot or the org). 22023 for a bad e-mail or subject (1-255 printable ASCII). Returns the connection id. Service role.';

revoke execute on function private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text) from public;
grant execute on function private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text) to service_role;

-- ---------------------------------------------------------------------------
-- Whether the account is connected elsewhere: by subject
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123005600_calendar_shared_grants_and_stray_events.sql.
-- Two connections with subjects hold the same account when their subjects
-- are equal, whatever their e-mails; where either has none (connected
-- before 20261123006500), equal e-mails still count, the safe side for a
-- revocation that would end the other's grant.
--
-- The disconnect asks by account, not by id: the connection it revokes can
-- be deleted under it (a connect of the same account replaces a revoked
-- row with a new one), and asked by that gone id the answer was false, so
-- the revocation ended the new connection's grant. It reads the account
-- before it disconnects and asks the variant below, which needs no row.
create function private.calendar_account_connected_elsewhere(
  provider text, account_subject text, account_email text, except_connection_id uuid
)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.calendar_connections other
    where other.provider = calendar_account_connected_elsewhere.provider
      and other.account_subject = calendar_account_connected_elsewhere.account_subject
      and other.id is distinct from calendar_account_connected_elsewhere.except_connection_id
      and other.status <> 'revoked'
  ) or exists (
    select 1
    from public.calendar_connections other
    where other.provider = calendar_account_connected_elsewhere.provider
      and other.account_email = calendar_account_connected_elsewhere.account_email
      and other.id is distinct from calendar_account_connected_elsewhere.except_connection_id
      and other.status <> 'revoked'
      and (calendar_account_connected_elsewhere.account_subject is null or other.account_subject is null)
  );
$$;
comment on function private.calendar_account_connected_elsewhere(text, text, text, uuid) is 'Whether a live (not revoked) connection other than except_connection_id, in any org, holds this provider account (the same account_subject; by account e-mail where either has no subject): then revoking at the provider would end that one''s grant too. Needs no row for the excepted id (it may be gone). Answers a boolean only. Service role (the calendar function''s disconnect).';
revoke execute on function private.calendar_account_connected_elsewhere(text, text, text, uuid) from public;
grant execute on function private.calendar_account_connected_elsewhere(text, text, text, uuid) to service_role;

create or replace function private.calendar_account_connected_elsewhere(connection_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce((
    select private.calendar_account_connected_elsewhere(target.provider, target.account_subject, target.account_email, target.id)
    from public.calendar_connections target
    where target.id = calendar_account_connected_elsewhere.connection_id
  ), false);
$$;
comment on function private.calendar_account_connected_elsewhere(uuid) is 'Whether another live (not revoked) connection, in any org, holds the same provider account as this one (the same account_subject; by account e-mail where either has no subject): then revoking at the provider would end that one''s grant too. False for an unknown id: the disconnect asks the (provider, subject, e-mail, except id) variant instead, which needs no row. Answers a boolean only. Service role.';

revoke execute on function private.calendar_connections_keep_subject() from public;
