-- Audit rows name who connected a calendar, a reconnect is one, and export rows are the owners'.
--
-- 1. POST calendar/oauth/complete ran private.complete_calendar_connection as the bare service role, so the
--    calendar_connections row it inserted was audited with actor null (the actor is auth.uid()), as was an owner
--    taking a connection over (connected_by changing). The function now keeps the signed-in user's claims and
--    only switches the role (as document deletion does). A reconnect of the same account (a new grant replacing
--    the tokens) changed only token_expires_at, last_refreshed_at and updated_at, which the update trigger skips
--    as refresh bookkeeping, so it left no audit row at all: connected_at, set by every save, is when the current
--    grant was given, and the trigger now watches it. Existing rows get their created_at.
-- 2. The audit log's read policy (audit.read: admins, and platform admins for every org) showed data_exports
--    rows, a table only owners read (data.export, membership only, 20261123006700). A restrictive policy keeps
--    them to the members holding data.export, as the events policy does for export.* events.

-- ---------------------------------------------------------------------------
-- 1. connected_at, saved and audited
-- ---------------------------------------------------------------------------

alter table public.calendar_connections add column connected_at timestamptz;
-- The backfill is not a change of the connections: their updated_at stays (and the audit trigger, recreated
-- below, does not watch the column yet).
alter table public.calendar_connections disable trigger calendar_connections_set_updated_at;
update public.calendar_connections c set connected_at = c.created_at;
alter table public.calendar_connections enable trigger calendar_connections_set_updated_at;
alter table public.calendar_connections
  alter column connected_at set default now(),
  alter column connected_at set not null;
comment on column public.calendar_connections.connected_at is 'When the current grant was given: the first connect or the latest reconnect (20261123014800; created_at before). Audited, unlike the token bookkeeping.';

-- Restated from 20261123006500_calendar_account_subject.sql; connected_at is new, so a reconnect is audited.
drop trigger calendar_connections_audit_update on public.calendar_connections;
create trigger calendar_connections_audit_update after update on public.calendar_connections
  for each row
  when (
    old.status is distinct from new.status or old.status_reason is distinct from new.status_reason
    or old.bot_id is distinct from new.bot_id or old.account_email is distinct from new.account_email
    or old.account_subject is distinct from new.account_subject
    or old.external_calendar_id is distinct from new.external_calendar_id or old.scopes is distinct from new.scopes
    or old.connected_by is distinct from new.connected_by or old.provider is distinct from new.provider
    or old.connected_at is distinct from new.connected_at
  )
  execute function private.audit_row_change();

-- Latest definition: 20261123013500_calendar_connect_membership_lock.sql; only connected_at is new.
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
        connected_by = save_calendar_connection.user_id, connected_at = pg_catalog.now(), account_email = email,
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
      last_refreshed_at, connected_by, connected_at
    ) values (
      save_calendar_connection.org_id, save_calendar_connection.bot_id, save_calendar_connection.provider, email, subject,
      calendar_id, coalesce(save_calendar_connection.scopes, '{}'), save_calendar_connection.token_expires_at,
      pg_catalog.now(), save_calendar_connection.user_id, pg_catalog.now()
    )
    returning id into saved;
    insert into private.calendar_tokens (connection_id, ciphertext) values (saved, save_calendar_connection.ciphertext);
  end if;
  return saved;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. Export rows of the audit log: owners only
-- ---------------------------------------------------------------------------

-- org_ids_with_permission, not readable_org_ids: membership only, so platform admins who are not owners are
-- left out, as on data_exports itself.
create policy "only owners read data export audit rows"
  on public.audit_log as restrictive for select to authenticated
  using (table_name <> 'data_exports' or org_id = any (array(select private.org_ids_with_permission('data.export'))));
