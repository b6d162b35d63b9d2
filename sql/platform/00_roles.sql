-- Local stand-in: the roles, schemas, extensions, grants and settings that a
-- Supabase project database has before any project migration runs.
--
-- Mirrors supabase/postgres:
--   migrations/db/init-scripts/00000000000000-initial-schema.sql
--   migrations/db/init-scripts/00000000000003-post-setup.sql
--   migrations/db/migrations/20230529180330_alter_api_roles_for_inherit.sql
--   migrations/db/migrations/20250605172253_grant_with_admin_to_postgres_16_and_above.sql
-- and the ACLs / default ACLs of a current hosted project (pg_dump of a 2025 project).
--
-- Loaded once, on a fresh database, as the superuser `postgres`, before
-- supabase/migrations. Differences from the hosted platform that cannot be
-- avoided here: `postgres` is a superuser (on Supabase it is not, but it has
-- bypassrls, createrole and broad grants), and PGlite is one session.
--
-- NOTE (PGlite): settings stored with `alter database ... set` / `alter role ... set`
-- land in pg_db_role_setting but PGlite does not apply them when it opens the
-- database (measured on 0.5.14: search_path stays the command-line `public`).
-- sql/session/apply_db_role_settings.sql applies them; the loader runs it after
-- every open.

-- ---------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------

-- The platform superuser (owns the platform schemas).
create role supabase_admin with superuser createdb createrole replication bypassrls login;

-- The API roles PostgREST switches to from the JWT `role` claim. Created
-- noinherit, then switched to inherit by 20230529180330_alter_api_roles_for_inherit.
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
alter role authenticated inherit;
alter role anon inherit;
alter role service_role inherit;

-- The login role PostgREST connects as; it may `set role` to the API roles.
create role authenticator with login noinherit;
grant anon to authenticator;
grant authenticated to authenticator;
grant service_role to authenticator;

-- Service-owned roles (GoTrue, Storage API, Realtime, pg_net webhooks).
create role supabase_auth_admin with noinherit createrole login noreplication;
create role supabase_storage_admin with noinherit createrole login noreplication;
create role supabase_realtime_admin with noinherit nologin noreplication;
create role supabase_functions_admin with noinherit createrole login noreplication;

-- The dashboard's role.
create role dashboard_user with nosuperuser createdb createrole replication;

-- PostgreSQL 16+: postgres administers the API roles (grant_with_admin_to_postgres_16_and_above).
grant anon, authenticated, service_role to postgres with admin option;

-- Statement timeouts Supabase sets for the API roles (they apply on login as
-- that role, not on `set role`).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';

-- ---------------------------------------------------------------------------
-- Extensions schema: pgcrypto and uuid-ossp are installed there on every project.
-- vector, pg_trgm, pgtap, ... are NOT: migrations and tests enable them
-- `with schema extensions`, as on Supabase.
-- ---------------------------------------------------------------------------

create schema if not exists extensions;
create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to dashboard_user;
grant all on all tables in schema extensions to dashboard_user;
grant all on all sequences in schema extensions to dashboard_user;
grant all on all routines in schema extensions to dashboard_user;

-- ---------------------------------------------------------------------------
-- public: usage and default privileges for the API roles, so every table,
-- sequence and function a migration creates is granted to them (RLS decides).
-- ---------------------------------------------------------------------------

grant usage on schema public to postgres, anon, authenticated, service_role;

alter default privileges for role postgres in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public grant all on sequences to postgres, anon, authenticated, service_role;

alter default privileges for role supabase_admin in schema public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public grant all on sequences to postgres, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- graphql_public: exposed by PostgREST next to public. pg_graphql is off by
-- default on current projects (20260421000000_pg_graphql-off-by-default), and
-- dropping it leaves this placeholder (extensions.set_graphql_placeholder), so
-- `supabase gen types` lists graphql_public.graphql as it does for a real project.
-- ---------------------------------------------------------------------------

create schema graphql_public authorization supabase_admin;
grant usage on schema graphql_public to postgres, anon, authenticated, service_role;
grant usage on schema graphql_public to postgres with grant option;

alter default privileges for role supabase_admin in schema graphql_public grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema graphql_public grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema graphql_public grant all on sequences to postgres, anon, authenticated, service_role;

create function graphql_public.graphql(
  "operationName" text default null,
  query text default null,
  variables jsonb default null,
  extensions jsonb default null
)
returns jsonb
language plpgsql
security invoker
set search_path = ''
as $$
begin
  return pg_catalog.jsonb_build_object(
    'errors', pg_catalog.jsonb_build_array(
      pg_catalog.jsonb_build_object('message', 'pg_graphql extension is not enabled.')
    )
  );
end;
$$;
alter function graphql_public.graphql(text, text, jsonb, jsonb) owner to supabase_admin;
grant all on function graphql_public.graphql(text, text, jsonb, jsonb) to postgres, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Database and role settings (stored; see the PGlite note at the top).
-- ---------------------------------------------------------------------------

-- post-setup.sql: the search_path every `postgres` session (migrations, the
-- SQL editor, `supabase test db`, functions connecting as postgres and then
-- `set local role authenticated`) runs with.
alter role postgres set search_path to "$user", public, extensions;
alter role supabase_admin set search_path to "$user", public, auth, extensions;
alter role supabase_auth_admin set search_path = auth;
alter role supabase_storage_admin set search_path = storage;

-- The same search_path for the database, so a session of any other role gets
-- `extensions` too (on Supabase PostgREST adds it via db-extra-search-path),
-- and the schemas PostgREST exposes. current_database(): PGlite's default
-- database name depends on how it is opened.
do $$
begin
  execute pg_catalog.format(
    'alter database %I set search_path to "$user", public, extensions',
    pg_catalog.current_database()
  );
  execute pg_catalog.format(
    'alter database %I set pgrst.db_schemas = %L',
    pg_catalog.current_database(), 'public,graphql_public'
  );
  execute pg_catalog.format('grant all on database %I to dashboard_user', pg_catalog.current_database());
end;
$$;
