-- The private schema, default-deny execution, org roles and the permissions
-- matrix.
--
-- Layout (after basejump): tables frontends read live in `public` behind RLS;
-- policy helpers and everything `security definer` live in `private`, which
-- the API does not expose (it is not in config.toml [api].schemas). Frontends
-- reach definer code only through the thin `security invoker` RPCs in
-- `public` that each migration grants deliberately.

-- ---------------------------------------------------------------------------
-- Default-deny execution: a function is callable by the API roles only when a
-- migration grants it. (PostgreSQL grants EXECUTE to PUBLIC by default and
-- Supabase adds anon/authenticated/service_role in `public`.)
-- ---------------------------------------------------------------------------

alter default privileges for role postgres revoke execute on functions from public;
alter default privileges for role postgres in schema public revoke execute on functions from anon, authenticated, service_role;
-- Extensions installed later (pgtap in tests, for one) keep their usual
-- PUBLIC execute.
alter default privileges for role postgres in schema extensions grant execute on functions to public;

create schema private;
revoke all on schema private from public;
-- Policies call private helpers as the querying role, so the API roles need
-- USAGE; EXECUTE is still granted function by function.
grant usage on schema private to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Org roles, ordered: owner > admin > member > viewer.
-- ---------------------------------------------------------------------------

create type public.org_role as enum ('viewer', 'member', 'admin', 'owner');
comment on type public.org_role is 'Roles in an organization, declared from least to most privileged so that comparisons follow the role order.';

-- ---------------------------------------------------------------------------
-- The permissions matrix: which role may do what. The single source of truth
-- for the policies and RPCs (they ask `private.org_ids_with_permission`), and
-- readable by every signed-in user so frontends can show and hide controls.
-- A role holds a permission when its rank is at least `min_role`.
-- ---------------------------------------------------------------------------

create table public.role_permissions (
  permission text primary key
    constraint role_permissions_permission_format check (permission ~ '^[a-z_]+\.[a-z_]+$'),
  min_role public.org_role not null,
  description text not null check (length(description) between 1 and 200)
);
comment on table public.role_permissions is 'The permissions matrix: the least role that holds each permission. Changed only by migrations.';

alter table public.role_permissions enable row level security;
revoke all on public.role_permissions from anon, authenticated, service_role;
grant select on public.role_permissions to authenticated, service_role;

create policy "signed-in users can read the permissions matrix"
  on public.role_permissions for select to authenticated
  using (true);

insert into public.role_permissions (permission, min_role, description) values
  ('org.read',             'viewer', 'See the organization and its members'),
  ('org.update',           'admin',  'Rename the organization'),
  ('org.delete',           'owner',  'Delete the organization and all its data'),
  ('members.read',         'viewer', 'See members and their roles'),
  ('members.invite',       'admin',  'Invite, resend and revoke invitations (up to the inviter''s own role)'),
  ('members.change_role',  'admin',  'Change a member''s role (never above one''s own; owners only by owners)'),
  ('members.remove',       'admin',  'Remove a member (owners only by owners)'),
  ('ownership.transfer',   'owner',  'Hand ownership to another member'),
  ('invitations.read',     'admin',  'See pending and past invitations'),
  ('api_keys.read',        'admin',  'See API keys (never their secrets)'),
  ('api_keys.manage',      'admin',  'Create and revoke API keys'),
  ('audit.read',           'admin',  'Read the audit log and verify its hash chain'),
  ('files.read',           'viewer', 'Download the organization''s files'),
  ('files.write',          'member', 'Upload and replace files'),
  ('files.delete',         'admin',  'Delete files'),
  ('realtime.receive',     'viewer', 'Receive on the organization''s private realtime channels'),
  ('realtime.send',        'member', 'Send on the organization''s private realtime channels');

-- ---------------------------------------------------------------------------
-- Policy helpers: see 20261123000200_organizations.sql for the rules they follow.
-- ---------------------------------------------------------------------------

create function private.is_platform_admin()
returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  -- app_metadata is writable only with the service role, so users cannot set it.
  select coalesce((auth.jwt() -> 'app_metadata' ->> 'platform_admin')::boolean, false);
$$;
comment on function private.is_platform_admin() is 'True when the caller''s JWT app_metadata has platform_admin = true. Platform admins read every tenant and change nothing unless a function says so.';

-- The helpers that read memberships are created with that table, in
-- 20261123000200_organizations.sql (SQL function bodies are checked on creation).

grant execute on function private.is_platform_admin() to authenticated, service_role;

-- Shared trigger: keeps updated_at honest whatever the client sends.
create function private.set_updated_at()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;
