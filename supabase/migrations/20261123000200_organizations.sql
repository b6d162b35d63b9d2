-- Organizations (the tenants), memberships with org roles, user profiles, and
-- the policy helpers every tenant table uses.
--
-- Writes to organizations and memberships go through the team RPCs
-- (20261123000500_team.sql); the only direct writes frontends may do are
-- renaming an org (admins) and deleting it (owners), both under RLS.

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null
    constraint organizations_name_length check (length(btrim(name)) between 1 and 100 and name = btrim(name)),
  slug text not null unique
    constraint organizations_slug_format check (slug ~ '^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$'),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.organizations is 'Tenants. Created with create_organization(); the creator becomes the first owner.';
create index organizations_created_by_idx on public.organizations (created_by);

create table public.memberships (
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.org_role not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, user_id)
);
comment on table public.memberships is 'Who belongs to which organization, with which role. Written only by the team RPCs.';
-- The policy helpers look memberships up by user; the primary key serves org lookups.
create index memberships_user_id_idx on public.memberships (user_id, org_id, role);

create table public.profiles (
  user_id uuid primary key references auth.users (id) on delete cascade,
  display_name text
    constraint profiles_display_name_length check (length(display_name) between 1 and 100),
  avatar_path text
    constraint profiles_avatar_path_length check (length(avatar_path) between 1 and 1024),
  locale text not null default 'en'
    constraint profiles_locale_format check (locale ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
  time_zone text not null default 'UTC',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.profiles is 'One per user, created when the user signs up. A user edits their own; members of a shared org read each other''s.';

create trigger organizations_set_updated_at before update on public.organizations
  for each row execute function private.set_updated_at();
create trigger memberships_set_updated_at before update on public.memberships
  for each row execute function private.set_updated_at();
create trigger profiles_set_updated_at before update on public.profiles
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------
-- Policy helpers. `stable`, `security definer` (they read memberships, which
-- the caller may not read in full), `search_path = ''`, fully qualified.
-- Policies call them as `org_id = any (array(select private.readable_org_ids('...')))`:
-- the helper runs once per statement (an init plan) and the array comparison
-- can use the index on org_id. (An `or` beside it, e.g. a separate
-- platform-admin test, would force a scan of every tenant's rows; measured
-- by npm run bench:rls.)
-- Roles are read from public.memberships at query time, never from JWT
-- claims, so a removed or demoted member loses access on their next statement.
-- ---------------------------------------------------------------------------

create function private.org_ids_with_permission(permission text)
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.org_id
  from public.memberships m
  join public.role_permissions p on p.permission = org_ids_with_permission.permission
  where m.user_id = (select auth.uid())
    and m.role >= p.min_role;
$$;
comment on function private.org_ids_with_permission(text) is 'The orgs in which the caller holds a permission of the matrix. For write policies: org_id = any (array(select private.org_ids_with_permission(''x.y''))).';

create function private.readable_org_ids(permission text)
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  -- Platform admins read every tenant.
  if private.is_platform_admin() then
    return query select o.id from public.organizations o;
  else
    return query select private.org_ids_with_permission(readable_org_ids.permission);
  end if;
end;
$$;
comment on function private.readable_org_ids(text) is 'For read policies: the orgs whose rows the caller may read under a permission; every org for platform admins.';

create function private.has_permission(org_id uuid, permission text)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
    from public.memberships m
    join public.role_permissions p on p.permission = has_permission.permission
    where m.org_id = has_permission.org_id
      and m.user_id = (select auth.uid())
      and m.role >= p.min_role
  );
$$;

create function private.member_role(org_id uuid, user_id uuid)
returns public.org_role
language sql
stable
security definer
set search_path = ''
as $$
  select m.role from public.memberships m
  where m.org_id = member_role.org_id and m.user_id = member_role.user_id;
$$;

create function private.readable_profile_user_ids()
returns setof uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if private.is_platform_admin() then
    return query select p.user_id from public.profiles p;
  else
    -- The caller, and everyone who shares an organization with them.
    return query
      select auth.uid()
      union
      select others.user_id
      from public.memberships mine
      join public.memberships others on others.org_id = mine.org_id
      where mine.user_id = auth.uid();
  end if;
end;
$$;

grant execute on function private.org_ids_with_permission(text) to authenticated, service_role;
grant execute on function private.has_permission(uuid, text) to authenticated, service_role;
grant execute on function private.member_role(uuid, uuid) to authenticated, service_role;
grant execute on function private.readable_org_ids(text) to authenticated, service_role;
grant execute on function private.readable_profile_user_ids() to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Invariant: an organization always has an owner. Checked on every change to
-- memberships, whatever the path (RPC, service role, SQL editor); deleting the
-- organization itself is the one way its last owner goes.
-- ---------------------------------------------------------------------------

create function private.ensure_org_keeps_an_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role = 'owner'
    and exists (select 1 from public.organizations o where o.id = old.org_id)
    and not exists (select 1 from public.memberships m where m.org_id = old.org_id and m.role = 'owner')
  then
    raise exception 'an organization must keep at least one owner'
      using errcode = 'check_violation',
            hint = 'Transfer ownership or make another member an owner first.';
  end if;
  return null;
end;
$$;

create constraint trigger memberships_keep_an_owner
  after update of role or delete on public.memberships
  for each row execute function private.ensure_org_keeps_an_owner();

-- ---------------------------------------------------------------------------
-- Profiles: created with the user; the time zone must be one Postgres knows.
-- ---------------------------------------------------------------------------

create function private.create_profile_for_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.profiles (user_id, display_name)
  values (new.id, nullif(left(btrim(coalesce(new.raw_user_meta_data ->> 'display_name', new.raw_user_meta_data ->> 'full_name', '')), 100), ''))
  on conflict (user_id) do nothing;
  return new;
end;
$$;

create trigger on_auth_user_created_create_profile
  after insert on auth.users
  for each row execute function private.create_profile_for_new_user();

create function private.validate_profile_time_zone()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_timezone_names where name = new.time_zone) then
    raise exception 'unknown time zone: %', new.time_zone
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/Berlin.';
  end if;
  return new;
end;
$$;

create trigger profiles_validate_time_zone
  before insert or update of time_zone on public.profiles
  for each row execute function private.validate_profile_time_zone();

-- ---------------------------------------------------------------------------
-- Privileges and policies. anon has nothing here; authenticated gets only
-- the privileges some policy can use, so anything else is a clear 42501.
-- ---------------------------------------------------------------------------

alter table public.organizations enable row level security;
alter table public.memberships enable row level security;
alter table public.profiles enable row level security;

revoke all on public.organizations, public.memberships, public.profiles from anon, authenticated;
grant select, delete on public.organizations to authenticated;
grant update (name) on public.organizations to authenticated;
grant select on public.memberships to authenticated;
grant select on public.profiles to authenticated;
grant update (display_name, avatar_path, locale, time_zone) on public.profiles to authenticated;

create policy "members and platform admins can read organizations"
  on public.organizations for select to authenticated
  using (id = any (array(select private.readable_org_ids('org.read'))));

create policy "admins can rename their organization"
  on public.organizations for update to authenticated
  using (id = any (array(select private.org_ids_with_permission('org.update'))))
  with check (id = any (array(select private.org_ids_with_permission('org.update'))));

create policy "owners can delete their organization"
  on public.organizations for delete to authenticated
  using (id = any (array(select private.org_ids_with_permission('org.delete'))));

create policy "members and platform admins can read memberships"
  on public.memberships for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('members.read'))));

create policy "users read their own profile, their co-members' and (platform admins) all"
  on public.profiles for select to authenticated
  using (user_id = any (array(select private.readable_profile_user_ids())));

create policy "users can edit their own profile"
  on public.profiles for update to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()));
