-- Test helpers shared by the pgTAP files after this one (files run in name
-- order). Deliberately not wrapped in a rolled-back transaction, so the
-- `tests` schema stays for the files that follow, as in Supabase's guide to
-- pgTAP helpers; every statement is idempotent. The schema is not exposed by
-- the API and holds no data.
--
--   tests.create_user(email[, app_metadata])  -> user id (a profile is created too)
--   tests.create_org(slug, owner_id)          -> org id
--   tests.add_member(org_id, user_id, role)
--   tests.authenticate_as(user_id)            -> role authenticated, JWT claims of that user
--   tests.authenticate_as_anon() / tests.authenticate_as_service_role()
--   tests.clear_authentication()              -> back to the test's own role
--   tests.act_as(who[, user_id])              -> 'anon', 'service_role', 'postgres' or that user
-- Committed explicitly: a runner that sends the whole file as one query
-- would otherwise fold these statements into the final rolled-back block.
begin;
create extension if not exists pgtap with schema extensions;

create schema if not exists tests;
grant usage on schema tests to anon, authenticated, service_role;

create or replace function tests.create_user(email text, app_metadata jsonb default '{}')
returns uuid
language plpgsql
security invoker
set search_path = ''
as $$
declare
  user_id uuid := gen_random_uuid();
begin
  insert into auth.users (id, instance_id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
  values (
    user_id, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', lower(email),
    '{"provider": "email", "providers": ["email"]}'::jsonb || app_metadata,
    jsonb_build_object('display_name', split_part(email, '@', 1)), now(), now()
  );
  return user_id;
end;
$$;

create or replace function tests.create_org(slug text, owner_id uuid)
returns uuid
language plpgsql
security invoker
set search_path = ''
as $$
declare
  org_id uuid;
begin
  insert into public.organizations (name, slug, created_by) values (initcap(slug), slug, owner_id)
  returning id into org_id;
  insert into public.memberships (org_id, user_id, role) values (org_id, owner_id, 'owner');
  return org_id;
end;
$$;

create or replace function tests.add_member(org_id uuid, user_id uuid, role public.org_role)
returns void
language sql
security invoker
set search_path = ''
as $$
  insert into public.memberships (org_id, user_id, role) values (add_member.org_id, add_member.user_id, add_member.role);
$$;

-- The claims Supabase Auth puts in an access token, for that user.
create or replace function tests.authenticate_as(user_id uuid)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  person auth.users;
begin
  -- Back to the session's own role first, so switching between users works.
  perform set_config('role', session_user, true);
  select * into person from auth.users u where u.id = authenticate_as.user_id;
  if not found then
    raise exception 'tests.authenticate_as: no user %', user_id;
  end if;
  perform set_config('role', 'authenticated', true);
  perform set_config('request.jwt.claims', jsonb_build_object(
    'sub', person.id,
    'role', 'authenticated',
    'aud', 'authenticated',
    'email', person.email,
    'exp', extract(epoch from now() + interval '1 hour')::bigint,
    'app_metadata', person.raw_app_meta_data,
    'user_metadata', person.raw_user_meta_data
  )::text, true);
end;
$$;

create or replace function tests.authenticate_as_anon()
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform set_config('role', 'anon', true);
  perform set_config('request.jwt.claims', '{"role": "anon"}', true);
end;
$$;

create or replace function tests.authenticate_as_service_role()
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform set_config('role', 'service_role', true);
  perform set_config('request.jwt.claims', '{"role": "service_role"}', true);
end;
$$;

create or replace function tests.clear_authentication()
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform set_config('role', session_user, true);
  perform set_config('request.jwt.claims', '', true);
end;
$$;

-- One call to become an actor by name: 'anon', 'service_role', 'postgres'
-- (the test's own role), or a user (whose id is given).
create or replace function tests.act_as(who text, user_id uuid default null)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform tests.clear_authentication();
  if who = 'anon' then
    perform tests.authenticate_as_anon();
  elsif who = 'service_role' then
    perform tests.authenticate_as_service_role();
  elsif who <> 'postgres' then
    perform tests.authenticate_as(user_id);
  end if;
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
commit;

begin;
select plan(1);
select has_function('tests', 'authenticate_as', array['uuid'], 'the test helpers are installed');
select * from finish();
rollback;
