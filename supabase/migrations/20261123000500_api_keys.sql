-- API keys for bots and servers: created by admins, shown once, stored as a
-- sha256 hash (in a private table, apart from the rows admins list), with a
-- display prefix, scopes, optional expiry, last-used time and revocation.
--
-- Key format: `ak_` + 48 hex characters (192 random bits). The first 11
-- characters (`ak_` + 8 hex) are the prefix shown in lists. A key is looked
-- up by its hash, so verification costs one index probe and leaks no timing.
-- Edge functions call private.verify_api_key() as service_role; a revoked or
-- expired key, or a key of a deleted org, never verifies.

create table public.api_key_scopes (
  scope text primary key constraint api_key_scopes_format check (scope ~ '^[a-z_]+\.[a-z_]+$'),
  description text not null
);
comment on table public.api_key_scopes is 'What an API key may be allowed to do. Changed only by migrations.';

insert into public.api_key_scopes (scope, description) values
  ('chat.write',      'Talk to the org''s bots (chat and chat/completions)'),
  ('knowledge.read',  'Search the org''s knowledge base'),
  ('knowledge.write', 'Upload and delete documents'),
  ('catalog.read',    'Read the product catalog'),
  ('calls.read',      'Read call records'),
  ('calls.write',     'Create and update calls'),
  ('calendar.read',   'Read availability and appointments'),
  ('calendar.write',  'Book, reschedule and cancel appointments');

alter table public.api_key_scopes enable row level security;
revoke all on public.api_key_scopes from anon, authenticated, service_role;
grant select on public.api_key_scopes to authenticated, service_role;
create policy "signed-in users can read the API key scopes"
  on public.api_key_scopes for select to authenticated
  using (true);

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null constraint api_keys_name_length check (length(btrim(name)) between 1 and 100),
  prefix text not null constraint api_keys_prefix_format check (prefix ~ '^ak_[0-9a-f]{8}$'),
  scopes text[] not null constraint api_keys_scopes_present check (cardinality(scopes) between 1 and 20),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null,
  constraint api_keys_expiry_after_creation check (expires_at is null or expires_at > created_at)
);
comment on table public.api_keys is 'API keys of an organization (never their secrets). Create with create_api_key(), revoke with revoke_api_key().';
create index api_keys_org_id_idx on public.api_keys (org_id, created_at desc);

create table private.api_key_secrets (
  api_key_id uuid primary key references public.api_keys (id) on delete cascade,
  secret_hash bytea not null unique
);

-- Scopes are checked against the catalogue on every write, whoever writes.
create function private.validate_api_key_scopes()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  unknown text[];
begin
  select array_agg(s) into unknown
  from unnest(new.scopes) s
  where not exists (select 1 from public.api_key_scopes k where k.scope = s);
  if unknown is not null then
    raise exception 'unknown API key scope(s): %', array_to_string(unknown, ', ')
      using errcode = 'invalid_parameter_value', hint = 'See public.api_key_scopes.';
  end if;
  return new;
end;
$$;

create trigger api_keys_validate_scopes before insert or update of scopes on public.api_keys
  for each row execute function private.validate_api_key_scopes();
-- last_used_at is usage telemetry, not a change anyone made: updates that
-- touch only it are not audited.
create trigger api_keys_audit after insert or delete on public.api_keys
  for each row execute function private.audit_row_change();
create trigger api_keys_audit_update
  after update of org_id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, revoked_by
  on public.api_keys
  for each row execute function private.audit_row_change();

alter table public.api_keys enable row level security;
revoke all on public.api_keys from anon, authenticated;
grant select on public.api_keys to authenticated;

create policy "admins and platform admins can read their org's API keys"
  on public.api_keys for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('api_keys.read'))));

-- ---------------------------------------------------------------------------
-- Create and revoke (RPCs)
-- ---------------------------------------------------------------------------

create type public.new_api_key as (id uuid, key text, prefix text, scopes text[], expires_at timestamptz);
comment on type public.new_api_key is 'What create_api_key returns: the key''s secret appears here and nowhere else.';

create function private.create_api_key(org_id uuid, name text, scopes text[], expires_at timestamptz)
returns public.new_api_key
language plpgsql
security definer
set search_path = ''
as $$
declare
  secret text := 'ak_' || pg_catalog.encode(extensions.gen_random_bytes(24), 'hex');
  created public.api_keys;
begin
  perform private.require_permission(create_api_key.org_id, 'api_keys.manage');
  -- Serialises key creation per org, so concurrent calls cannot pass the limit together.
  perform 1 from public.organizations o where o.id = create_api_key.org_id for update;
  if length(btrim(coalesce(create_api_key.name, ''))) not between 1 and 100 then
    raise exception 'an API key name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if create_api_key.scopes is null or cardinality(create_api_key.scopes) = 0 then
    raise exception 'an API key needs at least one scope' using errcode = 'invalid_parameter_value';
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= pg_catalog.now() then
    raise exception 'expires_at must be in the future' using errcode = 'invalid_parameter_value';
  end if;
  if (
    select count(*) from public.api_keys k
    where k.org_id = create_api_key.org_id and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > pg_catalog.now())
  ) >= 100 then
    raise exception 'an organization has at most 100 active API keys' using errcode = 'invalid_parameter_value',
      hint = 'Revoke keys you no longer use.';
  end if;

  insert into public.api_keys (org_id, name, prefix, scopes, created_by, expires_at)
  values (
    create_api_key.org_id, btrim(create_api_key.name), left(secret, 11),
    (select array_agg(distinct s order by s) from unnest(create_api_key.scopes) s),
    auth.uid(), create_api_key.expires_at
  )
  returning * into created;
  insert into private.api_key_secrets (api_key_id, secret_hash)
  values (created.id, pg_catalog.sha256(pg_catalog.convert_to(secret, 'UTF8')));

  return (created.id, secret, created.prefix, created.scopes, created.expires_at)::public.new_api_key;
end;
$$;

create function public.create_api_key(org_id uuid, name text, scopes text[], expires_at timestamptz default null)
returns public.new_api_key
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_api_key(create_api_key.org_id, create_api_key.name, create_api_key.scopes, create_api_key.expires_at);
$$;
comment on function public.create_api_key(uuid, text, text[], timestamptz) is 'Creates an API key and returns its secret once; only a hash is stored.';

create function private.revoke_api_key(api_key_id uuid)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  select * into target from public.api_keys k where k.id = revoke_api_key.api_key_id for update;
  if not found then
    raise exception 'API key not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is null then
    update public.api_keys k set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
    where k.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;

create function public.revoke_api_key(api_key_id uuid)
returns public.api_keys
language sql
security invoker
set search_path = ''
as $$
  select * from private.revoke_api_key(revoke_api_key.api_key_id);
$$;
comment on function public.revoke_api_key(uuid) is 'Revokes an API key at once. Revoking twice is a no-op.';

grant execute on function
  public.create_api_key(uuid, text, text[], timestamptz),
  public.revoke_api_key(uuid),
  private.create_api_key(uuid, text, text[], timestamptz),
  private.revoke_api_key(uuid)
to authenticated;

-- ---------------------------------------------------------------------------
-- Verification, for edge functions (service_role only). Records the use at
-- most once a minute per key, so a busy bot does not rewrite the row on every
-- request.
-- ---------------------------------------------------------------------------

create function private.verify_api_key(secret text)
returns table (api_key_id uuid, org_id uuid, scopes text[])
language plpgsql
security definer
set search_path = ''
as $$
declare
  found_key public.api_keys;
begin
  if secret is null or secret !~ '^ak_[0-9a-f]{48}$' then
    return;
  end if;
  select k.* into found_key
  from private.api_key_secrets s join public.api_keys k on k.id = s.api_key_id
  where s.secret_hash = pg_catalog.sha256(pg_catalog.convert_to(secret, 'UTF8'))
    and k.revoked_at is null
    and (k.expires_at is null or k.expires_at > pg_catalog.now());
  if not found then
    return;
  end if;
  if found_key.last_used_at is null or found_key.last_used_at < pg_catalog.now() - interval '1 minute' then
    update public.api_keys k set last_used_at = pg_catalog.now() where k.id = found_key.id;
  end if;
  return query select found_key.id, found_key.org_id, found_key.scopes;
end;
$$;
comment on function private.verify_api_key(text) is 'The key''s id, org and scopes when the secret is a live key; no row otherwise.';

revoke execute on function private.verify_api_key(text) from public;
grant execute on function private.verify_api_key(text) to service_role;
