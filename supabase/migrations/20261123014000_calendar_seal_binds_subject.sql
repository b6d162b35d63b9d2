-- Calendar: a token set is sealed under its connection's account subject.
--
-- The function sealed each token set under `org:provider:email:calendar` as
-- AES-GCM associated data. Since 20261123006500 a connection is keyed by
-- (org, provider, account_subject, calendar), and two accounts sharing one
-- e-mail (an address that passed to someone else) are two connections of the
-- same context: one account's ciphertext copied onto the other's row (by
-- anyone who can write private.calendar_tokens, or a definer bug) opened, and
-- that connection's bot read and wrote the other account's calendar. The
-- function now seals under a JSON array of the connection's unique key,
-- subject included (stored-tokens.ts), and opens a set sealed before under
-- the old context only when the set itself names the row's account.
--
-- A connection made before 20261123006500 has no subject to compare, and its
-- old context may be another account's too: one whose address became the
-- same by a reconnect in between. So a row without a subject is answered the
-- subjects of the org's other sets sealed under the same old context
-- (connections, connection requests, dropped grants), and such a set opens
-- there only when it names none of them.
--
-- Both readers of sealed sets answer the subject and those others too. Their
-- return types change, so each is dropped and created again with the same
-- grants. The dropped grants' rows (private.claim_due_deleted_org_calendar_grants)
-- already carry the subject.

create function private.calendar_legacy_context_subjects(
  org_id uuid, provider text, account_email text, external_calendar_id text
)
returns text[]
language sql
stable
security invoker
set search_path = ''
as $$
  -- Matched as the old context string was built (stored-tokens.ts legacyTokenContext), separators and all.
  select coalesce(array_agg(distinct s.account_subject order by s.account_subject), '{}')
  from (
    select c.account_subject, c.account_email, c.external_calendar_id
    from public.calendar_connections c
    where c.org_id = calendar_legacy_context_subjects.org_id and c.provider = calendar_legacy_context_subjects.provider
    union all
    select p.account_subject, p.account_email, case when p.provider = 'google' then 'primary' end
    from private.calendar_pending_connections p
    where p.org_id = calendar_legacy_context_subjects.org_id and p.provider = calendar_legacy_context_subjects.provider
    union all
    select g.account_subject, g.account_email, g.external_calendar_id
    from private.deleted_org_calendar_grants g
    where g.org_id = calendar_legacy_context_subjects.org_id and g.provider = calendar_legacy_context_subjects.provider
  ) s
  where s.account_subject is not null
    and s.account_email || ':' || coalesce(s.external_calendar_id, '')
      = calendar_legacy_context_subjects.account_email || ':' || coalesce(calendar_legacy_context_subjects.external_calendar_id, '');
$$;
comment on function private.calendar_legacy_context_subjects(uuid, text, text, text) is 'The account subjects of the org''s connections, connection requests and dropped grants of the same `org:provider:email:calendar` context as this key (the seal''s context before 20261123014000), sorted: the accounts a set without a subject must not name to open under that context. For the readers of sealed sets.';
revoke execute on function private.calendar_legacy_context_subjects(uuid, text, text, text) from public;

-- Latest definition: 20261123001400_calendar.sql. account_subject added.
drop function private.calendar_tokens_for(uuid[]);
create function private.calendar_tokens_for(connection_ids uuid[])
returns table (
  connection_id uuid, org_id uuid, provider text, account_email text, external_calendar_id text, status text,
  ciphertext text, token_expires_at timestamptz, account_subject text, other_subjects text[]
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
  select c.id, c.org_id, c.provider, c.account_email, c.external_calendar_id, c.status, t.ciphertext, c.token_expires_at,
    c.account_subject,
    case when c.account_subject is null
      then private.calendar_legacy_context_subjects(c.org_id, c.provider, c.account_email, c.external_calendar_id)
      else '{}'
    end
  from public.calendar_connections c
  join private.calendar_tokens t on t.connection_id = c.id
  where c.id = any (calendar_tokens_for.connection_ids)
  order by c.created_at, c.id;
end;
$$;
comment on function private.calendar_tokens_for(uuid[]) is 'The encrypted token sets of the given connections (at most 100), with what the function needs to use them, the account subject their seal is bound to included (null: a connection made before 20261123006500, which also answers other_subjects, the accounts its set must not name: calendar_legacy_context_subjects); revoked ones included (to revoke at the provider). Unknown ids are left out. Service role.';
revoke execute on function private.calendar_tokens_for(uuid[]) from public;
grant execute on function private.calendar_tokens_for(uuid[]) to service_role;

-- Latest definition: 20261123011300_calendar_retries.sql. account_subject
-- added: a request's and a dropped grant's as stored with them; and
-- other_subjects, for the rows without one (connections, dropped grants).
drop function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid);
create function private.calendar_secrets_to_reseal(
  current_kid text, max_rows integer, except_ids uuid[] default '{}', only_org uuid default null
)
returns table (
  kind text, id uuid, org_id uuid, provider text, account_email text, external_calendar_id text, ciphertext text,
  account_subject text, other_subjects text[]
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
  select s.kind, s.id, s.org_id, s.provider, s.account_email, s.external_calendar_id, s.ciphertext, s.account_subject,
    case when s.account_subject is null
      then private.calendar_legacy_context_subjects(s.org_id, s.provider, s.account_email, s.external_calendar_id)
      else '{}'
    end
  from (
    select 'connection'::text as kind, c.id, c.org_id, c.provider, c.account_email, c.external_calendar_id, t.ciphertext,
      c.account_subject
    from private.calendar_tokens t
    join public.calendar_connections c on c.id = t.connection_id
    union all
    select 'request', p.id, p.org_id, p.provider, p.account_email,
      case when p.provider = 'google' then 'primary' end, p.ciphertext, p.account_subject
    -- Expired requests too: until purged, each is one whose purge queues its grant for revocation.
    from private.calendar_pending_connections p
    union all
    select 'dropped_grant', g.id, g.org_id, g.provider, g.account_email, g.external_calendar_id, g.ciphertext,
      g.account_subject
    from private.deleted_org_calendar_grants g
  ) s
  where not pg_catalog.starts_with(s.ciphertext, 'v1.' || current_kid || '.')
    and s.id <> all (coalesce(except_ids, '{}'))
    and (only_org is null or s.org_id = only_org)
  order by s.kind, s.id
  limit max_rows;
end;
$$;
comment on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) is 'Sealed calendar token sets whose header names another key than current_kid (8 hex digits), at most max_rows (1 to 500), except except_ids, only only_org''s when given: connections'' tokens, connection requests'' (expired ones too, until purged: their purge queues the grant for revocation) and dropped grants'' copies, each with the calendar key it is sealed under (account subject included; null: a connection made before 20261123006500, whose row also answers other_subjects, the accounts its set must not name: calendar_legacy_context_subjects). Service role (POST calendar/reseal).';
revoke execute on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) from public;
grant execute on function private.calendar_secrets_to_reseal(text, integer, uuid[], uuid) to service_role;
