-- Local stand-in for the `auth` schema that Supabase Auth (GoTrue) owns.
--
-- Mirrors supabase/postgres init-scripts/00000000000001-auth-schema.sql and the
-- supabase/auth migrations as they stand on a current project: the users and
-- identities tables with their current columns, indexes and RLS, and the
-- auth.uid() / role() / email() / jwt() helpers. The local stack's auth
-- endpoints write these tables as postgres; nothing else should.
--
-- Grants are the hosted ones: the API roles have USAGE on the schema and may
-- execute the helpers (default PUBLIC execute), but have no privilege on the
-- tables, so `select ... from auth.users` as anon/authenticated fails with
-- 42501. PostgREST does not expose the auth schema.

create schema auth authorization supabase_admin;

grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema auth to postgres;
grant all on schema auth to supabase_auth_admin;
grant all on schema auth to dashboard_user;

-- ---------------------------------------------------------------------------
-- auth.users
-- ---------------------------------------------------------------------------

create table auth.users (
  instance_id uuid,
  id uuid not null,
  aud character varying(255),
  role character varying(255),
  email character varying(255),
  encrypted_password character varying(255),
  email_confirmed_at timestamp with time zone,
  invited_at timestamp with time zone,
  confirmation_token character varying(255),
  confirmation_sent_at timestamp with time zone,
  recovery_token character varying(255),
  recovery_sent_at timestamp with time zone,
  email_change_token_new character varying(255),
  email_change character varying(255),
  email_change_sent_at timestamp with time zone,
  last_sign_in_at timestamp with time zone,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamp with time zone,
  updated_at timestamp with time zone,
  phone text default null::character varying,
  phone_confirmed_at timestamp with time zone,
  phone_change text default ''::character varying,
  phone_change_token character varying(255) default ''::character varying,
  phone_change_sent_at timestamp with time zone,
  confirmed_at timestamp with time zone generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current character varying(255) default ''::character varying,
  email_change_confirm_status smallint default 0,
  banned_until timestamp with time zone,
  reauthentication_token character varying(255) default ''::character varying,
  reauthentication_sent_at timestamp with time zone,
  is_sso_user boolean default false not null,
  deleted_at timestamp with time zone,
  is_anonymous boolean default false not null,
  constraint users_pkey primary key (id),
  constraint users_phone_key unique (phone),
  constraint users_email_change_confirm_status_check
    check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2)
);

comment on table auth.users is 'Auth: Stores user login data within a secure schema.';
comment on column auth.users.is_sso_user is
  'Auth: Set this column to true when the account comes from SSO. These accounts can have duplicate emails.';

create unique index users_email_partial_key on auth.users using btree (email) where (is_sso_user = false);
comment on index auth.users_email_partial_key is
  'Auth: A partial unique index that applies only when is_sso_user is false';
create index users_instance_id_email_idx on auth.users using btree (instance_id, lower((email)::text));
create index users_instance_id_idx on auth.users using btree (instance_id);
create index users_is_anonymous_idx on auth.users using btree (is_anonymous);
create unique index confirmation_token_idx on auth.users using btree (confirmation_token)
  where ((confirmation_token)::text !~ '^[0-9 ]*$');
create unique index recovery_token_idx on auth.users using btree (recovery_token)
  where ((recovery_token)::text !~ '^[0-9 ]*$');
create unique index email_change_token_current_idx on auth.users using btree (email_change_token_current)
  where ((email_change_token_current)::text !~ '^[0-9 ]*$');
create unique index email_change_token_new_idx on auth.users using btree (email_change_token_new)
  where ((email_change_token_new)::text !~ '^[0-9 ]*$');
create unique index reauthentication_token_idx on auth.users using btree (reauthentication_token)
  where ((reauthentication_token)::text !~ '^[0-9 ]*$');

alter table auth.users enable row level security;
alter table auth.users owner to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- auth.identities
-- ---------------------------------------------------------------------------

create table auth.identities (
  provider_id text not null,
  user_id uuid not null,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamp with time zone,
  created_at timestamp with time zone,
  updated_at timestamp with time zone,
  email text generated always as (lower((identity_data ->> 'email'::text))) stored,
  id uuid default gen_random_uuid() not null,
  constraint identities_pkey primary key (id),
  constraint identities_provider_id_provider_unique unique (provider_id, provider),
  constraint identities_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade
);

comment on table auth.identities is 'Auth: Stores identities associated to a user.';
comment on column auth.identities.email is
  'Auth: Email is a generated column that references the optional email property in the identity_data';

create index identities_email_idx on auth.identities using btree (email text_pattern_ops);
comment on index auth.identities_email_idx is 'Auth: Ensures indexed queries on the email column';
create index identities_user_id_idx on auth.identities using btree (user_id);

alter table auth.identities enable row level security;
alter table auth.identities owner to supabase_auth_admin;

-- ---------------------------------------------------------------------------
-- Table privileges (hosted ACLs): dashboard_user all; postgres everything,
-- select with grant option; nothing for anon / authenticated / service_role.
-- ---------------------------------------------------------------------------

grant all on table auth.users, auth.identities to dashboard_user;
grant insert, references, delete, trigger, truncate, maintain, update on table auth.users, auth.identities to postgres;
grant select on table auth.users, auth.identities to postgres with grant option;

alter default privileges for role supabase_auth_admin in schema auth grant all on tables to postgres, dashboard_user;
alter default privileges for role supabase_auth_admin in schema auth grant all on sequences to postgres, dashboard_user;
alter default privileges for role supabase_auth_admin in schema auth grant all on functions to postgres, dashboard_user;

-- ---------------------------------------------------------------------------
-- Helpers read the claims PostgREST (and the local stack) put in the
-- transaction: `request.jwt.claims` (whole JWT payload, PostgREST 9+), with the
-- legacy per-claim settings `request.jwt.claim.<name>` taking precedence.
-- Bodies as in supabase/auth; `set search_path = ''` added (the hosted
-- functions have no SET clause, so PostgreSQL may inline them into a policy;
-- these are evaluated as calls: same results, use `(select auth.uid())` in
-- policies either way).
-- ---------------------------------------------------------------------------

create function auth.uid()
returns uuid
language sql
stable
security invoker
set search_path = ''
as $$
  select
    coalesce(
      nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
      (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';

create function auth.role()
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  select
    coalesce(
      nullif(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
      (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$$;
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';

create function auth.email()
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  select
    coalesce(
      nullif(pg_catalog.current_setting('request.jwt.claim.email', true), ''),
      (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$$;
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

create function auth.jwt()
returns jsonb
language sql
stable
security invoker
set search_path = ''
as $$
  select
    coalesce(
      nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
      nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
    )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;

-- EXECUTE stays granted to PUBLIC (the PostgreSQL default, kept on Supabase),
-- so anon / authenticated / service_role can call them in policies.
grant all on function auth.uid(), auth.role(), auth.email(), auth.jwt() to dashboard_user;
grant all on function auth.jwt() to postgres;
