-- Every calendar grant whose tokens we drop is revoked at the provider first.
--
-- Leavers (20261123008900) and an org's deletion (20261123009800) queue
-- their sealed tokens for the calendar function's revocation pass, but two
-- other paths still dropped a live Google grant with the only tokens that
-- could revoke it:
-- 1. a connection deleted any other way: an admin deleting a bot (policy
--    "admins and up can delete bots") cascades to the bot's connections,
--    their tokens and any pending leaver revocation, as would a delete in
--    SQL; nothing was queued and the grant stayed valid for ever;
-- 2. a connection request (20261123007400) that expired, was purged, was
--    given up (another user's completion) or went with its bot, user or
--    org: its sealed tokens were deleted unrevoked.
--
-- Now a before-delete trigger on each table copies what the pass needs into
-- private.deleted_org_calendar_grants (its name is 9800's; the pass, its
-- claim, bounds and job are unchanged), except where the grant is already
-- taken care of:
-- * private.delete_calendar_connection runs after the revocation (a
--   disconnect, the leavers' pass) and save_calendar_connection replaces a
--   revoked row by the same account's new grant (revoking the old one would
--   end the new one's): each names the row it deletes in the
--   transaction-local setting private.calendar_grant_kept;
-- * an org's deletion: its own trigger queued every connection already
--   (the org row is gone by the time the cascade reaches them);
-- * the starting user's completion of a request, whose tokens become the
--   connection's (complete_calendar_connection names the request likewise).
-- A request's tokens are sealed under the connection the completion would
-- save (org, provider, e-mail, default calendar: 'primary' for Google, none
-- for Microsoft), which is the copy's calendar key, so the pass opens them
-- as any other.
--
-- A live (unexpired) connection request also holds its account for the
-- pass's "connected elsewhere" check: Google's revocation ends the whole
-- grant, so revoking a leaver's or a deleted bot's copy while the same
-- account is being connected would leave the completed connection with dead
-- tokens (needs_reauth at its first refresh). Skipping is safe: the request
-- either becomes a live connection, whose grant is meant to stay, or is
-- deleted, which queues it.
--
-- Not restored: a deleted bot's pending deletions of stray mirrored events
-- (calendar_event_deletions) still go with its connections, as an org's do;
-- once the grant is revoked they could not be deleted anyway.

comment on table private.deleted_org_calendar_grants is 'Calendar grants whose tokens were dropped and that the calendar function still has to revoke at the provider: a deleted org''s connections (20261123009800), a connection deleted any other way than by delete_calendar_connection or a reconnect (a bot''s deletion, SQL) and connection requests deleted uncompleted (20261123010300; connection_id is then the request''s id, sealed under the default calendar). The account, calendar key and sealed tokens, due at next_attempt_at, attempts counted by each claim. Personal data (account e-mail, tokens) kept only until revoked or given up (about 85 minutes at worst, a day at most). Written by the deletion triggers; the calendar function (service role) through claim_due_deleted_org_calendar_grants and finish_deleted_org_calendar_grant.';
comment on column private.deleted_org_calendar_grants.connection_id is 'The deleted connection''s id, or the deleted connection request''s (private.calendar_pending_connections): no key, it is gone. The pass answers by it and leaves it out of the "connected elsewhere" check.';

-- ---------------------------------------------------------------------------
-- One queue function for every path that drops a connection's tokens
-- ---------------------------------------------------------------------------

-- 9800's insert, for one connection or (connection_id null) all of an org:
-- only reads and an insert into a table without keys, so no lock is taken.
-- A leaver's pending revocation goes on with its attempts and schedule.
create function private.queue_calendar_grants(org_id uuid, connection_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued integer;
begin
  insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
    external_calendar_id, ciphertext, attempts, next_attempt_at, last_error)
  select c.id, c.org_id, c.provider, c.account_subject, c.account_email, c.external_calendar_id, t.ciphertext,
    coalesce(r.attempts, 0), coalesce(r.next_attempt_at, pg_catalog.now()), r.last_error
  from public.calendar_connections c
  join private.calendar_tokens t on t.connection_id = c.id
  left join private.calendar_grant_revocations r on r.connection_id = c.id
  where c.org_id = queue_calendar_grants.org_id
    and (queue_calendar_grants.connection_id is null or c.id = queue_calendar_grants.connection_id);
  get diagnostics queued = row_count;
  return queued;
end;
$$;
comment on function private.queue_calendar_grants(uuid, uuid) is 'Copies the connection (every connection of the org when connection_id is null) that holds tokens into private.deleted_org_calendar_grants for the revocation pass, a leaver''s pending revocation with its attempts and schedule; the count. Called by the deletion triggers of organizations and calendar_connections.';
revoke execute on function private.queue_calendar_grants(uuid, uuid) from public, anon, authenticated, service_role;

-- Latest definition: 20261123009800_org_deletion_revokes_grants.sql. The
-- same insert, shared.
create or replace function private.queue_deleted_org_calendar_grants()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.queue_calendar_grants(old.id, null);
  return old;
end;
$$;

-- ---------------------------------------------------------------------------
-- 1. A connection deleted by any other path
-- ---------------------------------------------------------------------------

create function private.queue_deleted_calendar_connection_grant()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.id::text = pg_catalog.current_setting('private.calendar_grant_kept', true) then
    return old;
  end if;
  -- The org is being deleted: organizations_revoke_calendar_grants queued it.
  if not exists (select 1 from public.organizations o where o.id = old.org_id) then
    return old;
  end if;
  perform private.queue_calendar_grants(old.org_id, old.id);
  return old;
end;
$$;
revoke execute on function private.queue_deleted_calendar_connection_grant() from public, anon, authenticated, service_role;

-- Before: the tokens and a leaver's revocation cascade after the row.
create trigger calendar_connections_revoke_dropped_grant before delete on public.calendar_connections
  for each row execute function private.queue_deleted_calendar_connection_grant();

-- Latest definition: 20261123001400_calendar.sql. Its callers revoked the
-- grant first (or gave up, saying so in status_reason): nothing to queue.
create or replace function private.delete_calendar_connection(connection_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  deleted boolean;
begin
  perform pg_catalog.set_config('private.calendar_grant_kept', delete_calendar_connection.connection_id::text, true);
  -- Only a disconnected one: a calendar reconnected meanwhile is a new row.
  delete from public.calendar_connections c
  where c.id = delete_calendar_connection.connection_id and c.status = 'revoked';
  deleted := found;
  perform pg_catalog.set_config('private.calendar_grant_kept', '', true);
  return deleted;
end;
$$;

-- Latest definition: 20261123006500_calendar_account_subject.sql. The
-- revoked row a reconnect replaces names itself in private.calendar_grant_kept:
-- its grant is the same account's, renewed by this connect.
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

-- ---------------------------------------------------------------------------
-- 2. A connection request deleted uncompleted
-- ---------------------------------------------------------------------------

-- Whatever the path (expired and purged, given up, its bot, user or org
-- deleted: the org's trigger does not see requests), but the completion
-- that turns its tokens into a connection. Sealed under the default
-- calendar of the account (oauth.ts, connectionKey with no calendar).
create function private.queue_deleted_calendar_request_grant()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.id::text = pg_catalog.current_setting('private.calendar_grant_kept', true) then
    return old;
  end if;
  insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
    external_calendar_id, ciphertext)
  values (old.id, old.org_id, old.provider, old.account_subject, old.account_email,
    case when old.provider = 'google' then 'primary' end, old.ciphertext);
  return old;
end;
$$;
revoke execute on function private.queue_deleted_calendar_request_grant() from public, anon, authenticated, service_role;

create trigger calendar_pending_connections_revoke_dropped_grant before delete on private.calendar_pending_connections
  for each row execute function private.queue_deleted_calendar_request_grant();

-- Latest definition: 20261123007400_calendar_connect_completion.sql. The
-- starting user's completion names the request it takes: its tokens become
-- the connection's. An expired or someone else's request is queued by the
-- trigger as it is deleted.
create or replace function private.complete_calendar_connection(request_id uuid, user_id uuid)
returns table (connection_id uuid, provider text, account_email text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  request private.calendar_pending_connections;
begin
  select * into request from private.calendar_pending_connections p
  where p.id = complete_calendar_connection.request_id
  for update;
  if not found then
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
  return query select private.save_calendar_connection(request.org_id, request.user_id, request.bot_id, request.provider,
    request.account_email, null, request.scopes, request.ciphertext, request.token_expires_at, request.account_subject),
    request.provider, request.account_email;
end;
$$;

-- ---------------------------------------------------------------------------
-- A live connection request holds its account
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123006500_calendar_account_subject.sql. Also true
-- while an unexpired connection request (other than except_connection_id,
-- which may be a request's copy) holds the account: revoking would leave its
-- completion with dead tokens, and if it is never completed its deletion
-- queues the grant.
create or replace function private.calendar_account_connected_elsewhere(
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
  ) or exists (
    select 1
    from private.calendar_pending_connections pending
    where pending.provider = calendar_account_connected_elsewhere.provider
      and (pending.account_subject = calendar_account_connected_elsewhere.account_subject
        or (calendar_account_connected_elsewhere.account_subject is null
          and pending.account_email = calendar_account_connected_elsewhere.account_email))
      and pending.id is distinct from calendar_account_connected_elsewhere.except_connection_id
      and pending.expires_at > pg_catalog.now()
  );
$$;
comment on function private.calendar_account_connected_elsewhere(text, text, text, uuid) is 'Whether a live (not revoked) connection, or an unexpired connection request, other than except_connection_id, in any org, holds this provider account (the same account_subject; by account e-mail where either has no subject): then revoking at the provider would end that one''s grant too. Needs no row for the excepted id (it may be gone). Answers a boolean only. Service role (the calendar function''s disconnect and revocation pass).';
