-- Local stand-in for Supabase Vault (supabase_vault 0.3): vault.secrets,
-- vault.decrypted_secrets, vault.create_secret and vault.update_secret with
-- the same columns, signatures and grants (only postgres and service_role).
--
-- Encryption is a LOCAL-ONLY stand-in for libsodium's deterministic AEAD (the
-- real key lives outside the database and never in a table): secrets are
-- encrypted with pgcrypto's pgp_sym_encrypt under a random key generated when
-- this file is loaded and kept in vault._local_key, bound to the secret's id,
-- and stored base64-encoded in vault.secrets.secret as on Supabase. A local
-- database's secrets are only as safe as its data folder.

create schema vault authorization supabase_admin;

grant usage on schema vault to postgres with grant option;
grant usage on schema vault to service_role;

create table vault._local_key (
  id integer primary key default 1 check (id = 1),
  key bytea not null default extensions.gen_random_bytes(32)
);
insert into vault._local_key default values;
comment on table vault._local_key is
  'Local stand-in only: the key of the local vault. Supabase keeps the vault key outside the database.';

create table vault.secrets (
  id uuid default gen_random_uuid() not null,
  name text,
  description text default ''::text not null,
  secret text not null,
  key_id uuid,
  nonce bytea default extensions.gen_random_bytes(16),
  created_at timestamp with time zone default current_timestamp not null,
  updated_at timestamp with time zone default current_timestamp not null,
  constraint secrets_pkey primary key (id)
);
comment on table vault.secrets is
  'Table with encrypted `secret` column for storing sensitive information on disk.';
create unique index secrets_name_idx on vault.secrets using btree (name) where (name is not null);

-- Encrypts one secret for the row with the given id (called by the definer
-- functions below only).
create function vault._local_encrypt(secret_id uuid, plaintext text)
returns text
language sql
volatile
security definer
set search_path = ''
as $$
  select pg_catalog.encode(
    extensions.pgp_sym_encrypt(plaintext, pg_catalog.encode(k.key, 'hex') || ':' || secret_id::text),
    'base64'
  )
  from vault._local_key as k
$$;

-- One table in FROM, so the view stays automatically updatable (service_role
-- may delete through it, as on Supabase); the key is read with the view
-- owner's privileges.
create view vault.decrypted_secrets as
select
  s.id,
  s.name,
  s.description,
  s.secret,
  extensions.pgp_sym_decrypt(
    pg_catalog.decode(s.secret, 'base64'),
    pg_catalog.encode((select k.key from vault._local_key as k), 'hex') || ':' || s.id::text
  ) as decrypted_secret,
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
from vault.secrets as s;

create function vault.create_secret(
  new_secret text,
  new_name text default null,
  new_description text default '',
  -- unused
  new_key_id uuid default null
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_id uuid := pg_catalog.gen_random_uuid();
begin
  insert into vault.secrets (id, secret, name, description)
  values (new_id, vault._local_encrypt(new_id, new_secret), new_name, new_description);
  return new_id;
end
$$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text default null,
  new_name text default null,
  new_description text default null,
  -- unused
  new_key_id uuid default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update vault.secrets as s
  set
    secret = case when new_secret is null then s.secret
                  else vault._local_encrypt(s.id, new_secret) end,
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = pg_catalog.now()
  where s.id = secret_id;
end
$$;

alter table vault._local_key owner to supabase_admin;
alter table vault.secrets owner to supabase_admin;
alter view vault.decrypted_secrets owner to supabase_admin;
alter function vault._local_encrypt(uuid, text) owner to supabase_admin;
alter function vault.create_secret(text, text, text, uuid) owner to supabase_admin;
alter function vault.update_secret(uuid, text, text, text, uuid) owner to supabase_admin;

-- Hosted ACLs: nothing for PUBLIC, anon or authenticated.
revoke all on table vault._local_key from public;
revoke all on function vault._local_encrypt(uuid, text) from public;
revoke all on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid) from public;

grant select, references, delete, truncate on table vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant select, delete on table vault.secrets, vault.decrypted_secrets to service_role;
grant all on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to postgres with grant option;
grant all on function vault.create_secret(text, text, text, uuid), vault.update_secret(uuid, text, text, text, uuid)
  to service_role;
