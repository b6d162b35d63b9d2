-- Calendar: a connect is completed by the user who started it, in their own
-- session.
--
-- The OAuth callback trusted the signed state alone (it carries no JWT and
-- sets no cookie), so whoever consented on the provider's screen connected
-- their account for whoever started the flow: a user could start a connect
-- for an org they own, send the authorization URL to someone else, and get
-- that person's free/busy and write access to their calendar once they
-- accepted (OAuth account-linking injection). Now the callback exchanges the
-- code and seals the tokens as before but only parks them here, for 10
-- minutes, under a random id it hands to the browser (redirect_to, whose
-- origin the function allow-lists, or JSON); the dashboard then completes the
-- connection with the signed-in user's JWT, and
-- private.complete_calendar_connection saves it only when that user is the
-- one who started it. A request of someone else is answered as an unknown
-- one, so ids cannot be probed, and given up: the consenting victim's own
-- dashboard, where the browser lands, completes first and so cancels an
-- injected connect, and a leaked id cannot be completed later.

create table private.calendar_pending_connections (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  bot_id uuid,
  provider text not null constraint calendar_pending_connections_provider check (provider in ('google', 'microsoft')),
  account_email text not null constraint calendar_pending_connections_account_email
    check (private.is_email_address(account_email) and account_email = lower(account_email)),
  account_subject text not null constraint calendar_pending_connections_account_subject check (account_subject ~ '^[!-~]{1,255}$'),
  scopes text[] not null default '{}' constraint calendar_pending_connections_scopes check (cardinality(scopes) <= 50),
  -- Sealed under the connection as save_calendar_connection will store it (org, provider, e-mail, default calendar).
  ciphertext text not null constraint calendar_pending_connections_ciphertext check (length(ciphertext) between 1 and 16384),
  token_expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default now() + interval '10 minutes',
  constraint calendar_pending_connections_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade
);
create index calendar_pending_connections_org_id_idx on private.calendar_pending_connections (org_id);
create index calendar_pending_connections_user_id_idx on private.calendar_pending_connections (user_id);
create index calendar_pending_connections_bot_idx on private.calendar_pending_connections (bot_id, org_id);
create index calendar_pending_connections_expires_idx on private.calendar_pending_connections (expires_at);
revoke all on private.calendar_pending_connections from public, anon, authenticated, service_role;

-- The callback's half (service role), after the state was used and the code
-- exchanged: parks the sealed token set and returns the request's id.
create function private.store_calendar_pending_connection(
  org_id uuid, user_id uuid, bot_id uuid, provider text, account_email text, account_subject text,
  scopes text[], ciphertext text, token_expires_at timestamptz
)
returns table (id uuid, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  stored private.calendar_pending_connections;
begin
  -- Tokens nobody came back for do not stay longer than needed (the cron purge catches the rest).
  delete from private.calendar_pending_connections p where p.expires_at <= pg_catalog.now();
  insert into private.calendar_pending_connections (
    org_id, user_id, bot_id, provider, account_email, account_subject, scopes, ciphertext, token_expires_at
  ) values (
    store_calendar_pending_connection.org_id, store_calendar_pending_connection.user_id,
    store_calendar_pending_connection.bot_id, store_calendar_pending_connection.provider,
    lower(pg_catalog.btrim(store_calendar_pending_connection.account_email)),
    store_calendar_pending_connection.account_subject, coalesce(store_calendar_pending_connection.scopes, '{}'),
    store_calendar_pending_connection.ciphertext, store_calendar_pending_connection.token_expires_at
  )
  returning * into stored;
  return query select stored.id, stored.expires_at;
end;
$$;
comment on function private.store_calendar_pending_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz) is 'The OAuth callback''s half: parks a sealed token set for 10 minutes as a connection request of the user who started the connect and returns its id and expiry. Service role.';
revoke execute on function private.store_calendar_pending_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz) from public;
grant execute on function private.store_calendar_pending_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz) to service_role;

-- The signed-in half (service role, for the JWT's user): the request, once,
-- saved as the connection. No row answers an unknown, expired, used or
-- someone else's request alike. The row is locked first, so of two
-- concurrent completions the second finds it gone. A save that fails
-- (calendar.manage lost, calendar connected elsewhere) rolls the take back:
-- the request stays until it expires.
create function private.complete_calendar_connection(request_id uuid, user_id uuid)
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
  delete from private.calendar_pending_connections p where p.id = request.id;
  return query select private.save_calendar_connection(request.org_id, request.user_id, request.bot_id, request.provider,
    request.account_email, null, request.scopes, request.ciphertext, request.token_expires_at, request.account_subject),
    request.provider, request.account_email;
end;
$$;
comment on function private.complete_calendar_connection(uuid, uuid) is 'Completes a connection request for the user who started the connect: saves it (private.save_calendar_connection, which re-checks calendar.manage) and returns the connection id, provider and account e-mail, once. No row for an unknown, expired, completed or another user''s request, and another user''s attempt gives the request up (the victim''s own dashboard, landing first, cancels an injected connect). Service role (the calendar function, with the JWT''s user).';
revoke execute on function private.complete_calendar_connection(uuid, uuid) from public;
grant execute on function private.complete_calendar_connection(uuid, uuid) to service_role;

create function private.purge_calendar_pending_connections()
returns integer
language sql
security definer
set search_path = ''
as $$
  with purged as (
    delete from private.calendar_pending_connections p where p.expires_at <= pg_catalog.now() returning 1
  )
  select count(*)::integer from purged;
$$;
revoke execute on function private.purge_calendar_pending_connections() from public;

select cron.schedule('purge-calendar-pending-connections', '*/10 * * * *', 'select private.purge_calendar_pending_connections()');
