-- Test helpers shared by the pgTAP files after this one (files run in name
-- order). Deliberately not wrapped in a rolled-back transaction, so the
-- `tests` schema stays for the files that follow, as in Supabase's guide to
-- pgTAP helpers; every statement is idempotent. The schema is not exposed by
-- the API and holds no data (tests.fixtures is filled only inside a test
-- file's transaction, which is rolled back).
--
--   tests.create_user(email[, app_metadata])  -> user id, e-mail confirmed (a profile is created too)
--   tests.create_org(slug, owner_id)          -> org id
--   tests.add_member(org_id, user_id, role)
--   tests.authenticate_as(user_id)            -> role authenticated, JWT claims of that user
--   tests.authenticate_as_anon() / tests.authenticate_as_service_role()
--   tests.clear_authentication()              -> back to the test's own role
--   tests.act_as(who[, user_id])              -> 'anon', 'service_role', 'postgres' or that user
--                                                (without user_id: the fixture named who)
--   tests.remember(name, id)                  -> id, kept as a named fixture
--   tests.fx(name)                            -> the id of that fixture
--   tests.fixtures                            -> the named fixtures themselves (name, id)
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
  -- Confirmed at sign-up, as Supabase Auth does with email confirmations off
  -- (supabase/config.toml; the seed's users too). A test that needs an
  -- unconfirmed user clears email_confirmed_at itself.
  insert into auth.users (id, instance_id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                          created_at, updated_at)
  values (
    user_id, '00000000-0000-0000-0000-000000000000', 'authenticated', 'authenticated', lower(email), now(),
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

-- Named fixtures: the ids a test file creates ('owner_a', 'org_b', ...),
-- kept under short names so that the SQL strings handed to pgTAP can use them
-- whatever the role they run as; hence every API role reads and writes the
-- table. Each test file runs in one transaction that is rolled back, so its
-- rows never outlive the file and the next file starts with none. Not exposed
-- by the API (the schema is not), so no RLS.
create table if not exists tests.fixtures (
  name text primary key,
  id uuid not null
);
grant select, insert, update, delete on tests.fixtures to anon, authenticated, service_role;

-- Keeps id under name and returns it, so a creating call can be wrapped:
-- select tests.remember('org_a', tests.create_org(...)). A name is given once
-- and an id is required: either mistake is reported here, by name, rather
-- than later as a confusing failure of some other assertion.
create or replace function tests.remember(name text, id uuid)
returns uuid
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if id is null then
    raise exception 'tests.remember: no id for fixture %', quote_literal(name)
      using errcode = 'not_null_violation';
  end if;
  insert into tests.fixtures as f (name, id) values (remember.name, remember.id)
  on conflict on constraint fixtures_pkey do nothing;
  if not found then
    raise exception 'tests.remember: fixture % already exists', quote_literal(name)
      using errcode = 'unique_violation';
  end if;
  return id;
end;
$$;

-- The id of a fixture. A name that was never remembered (a typo, or a step
-- that created nothing) is an error naming it, not a null that a query would
-- quietly match no row with. Strict: a null name (an optional fixture
-- argument left out, as in pg_temp helpers) gives null.
create or replace function tests.fx(name text)
returns uuid
language plpgsql
stable
strict
security invoker
set search_path = ''
as $$
declare
  found_id uuid;
begin
  select f.id into found_id from tests.fixtures f where f.name = fx.name;
  if not found then
    raise exception 'tests.fx: no fixture named %', quote_literal(name)
      using errcode = 'no_data_found', hint = 'Keep it first with tests.remember(name, id).';
  end if;
  return found_id;
end;
$$;

-- One call to become an actor by name: 'anon', 'service_role', 'postgres'
-- (the test's own role), or a user: the one whose id is given, else the
-- fixture of that name (tests.act_as('owner_a')).
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
    perform tests.authenticate_as(coalesce(user_id, tests.fx(who)));
  end if;
end;
$$;

grant execute on all functions in schema tests to anon, authenticated, service_role;
commit;

begin;
select plan(14);
select has_function('tests', 'authenticate_as', array['uuid'], 'the test helpers are installed');

-- Named fixtures (this block is rolled back, so they do not reach the next file).
select is(
  tests.remember('given', '5a6b0000-0000-4000-9000-000000000010'),
  '5a6b0000-0000-4000-9000-000000000010'::uuid,
  'tests.remember returns the id it keeps'
);
select tests.remember('someone', tests.create_user('someone@helpers.test'));
select is(tests.fx('someone'), (select id from auth.users where email = 'someone@helpers.test'), 'tests.fx returns the id kept under that name');
select throws_ok(
  $$select tests.fx('nobody')$$,
  'P0002', 'tests.fx: no fixture named ''nobody''',
  'tests.fx: a name never remembered is an error, not null'
);
select is(tests.fx(null), null::uuid, 'tests.fx: a null name (an optional argument left out) gives null');
select throws_ok(
  $$select tests.remember('someone', gen_random_uuid())$$,
  '23505', 'tests.remember: fixture ''someone'' already exists',
  'tests.remember: a name is given once'
);
select throws_ok(
  $$select tests.remember('nothing', null)$$,
  '23502', 'tests.remember: no id for fixture ''nothing''',
  'tests.remember: a fixture needs an id'
);

-- tests.act_as: a fixture's name is enough; role names stay roles.
select tests.act_as('someone');
select is(
  array[current_user::text, auth.uid()::text],
  array['authenticated', tests.fx('someone')::text],
  'tests.act_as(name): without an id, becomes the user remembered under that name'
);
select lives_ok(
  $$select tests.remember('from_authenticated', '5a6b0000-0000-4000-9000-000000000011')$$,
  'tests.fixtures: a signed-in user keeps fixtures ...'
);
select tests.act_as('anon');
select is(current_user::text, 'anon', 'tests.act_as(''anon'') is still the anon role (no fixture needed)');
select is(tests.fx('from_authenticated'), '5a6b0000-0000-4000-9000-000000000011'::uuid, '... and anon reads them');
select tests.act_as('service_role');
select is(current_user::text, 'service_role', 'tests.act_as(''service_role'') is still the service role');
select tests.act_as('postgres');
select is(current_user::text, session_user::text, 'tests.act_as(''postgres'') is still the test''s own role');
select throws_ok(
  $$select tests.act_as('nobody')$$,
  'P0002', 'tests.fx: no fixture named ''nobody''',
  'tests.act_as: an unknown actor is an error'
);
select * from finish();
rollback;
