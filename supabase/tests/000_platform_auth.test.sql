-- Platform contract: Supabase Auth's SQL surface as the project's migrations
-- and functions rely on it (auth.uid/role/email/jwt from the request's JWT
-- claims, API roles, and auth.users closed to the API roles).
-- Holds on a Supabase project and on the local stack.
begin;
create extension if not exists pgtap with schema extensions;

select plan(16);

-- The API roles and their attributes.
select has_role('anon', 'role anon exists');
select has_role('authenticated', 'role authenticated exists');
select has_role('service_role', 'role service_role exists');
select ok(
  (select rolbypassrls from pg_catalog.pg_roles where rolname = 'service_role'),
  'service_role bypasses RLS'
);
select ok(
  not (select rolbypassrls from pg_catalog.pg_roles where rolname = 'authenticated')
  and not (select rolcanlogin from pg_catalog.pg_roles where rolname = 'authenticated'),
  'authenticated neither bypasses RLS nor logs in'
);
select ok(
  pg_catalog.has_schema_privilege('authenticated', 'extensions', 'usage')
  and pg_catalog.has_schema_privilege('anon', 'public', 'usage'),
  'API roles may use the public and extensions schemas'
);

-- A signed-in user's request: role authenticated, claims in request.jwt.claims.
set local role authenticated;
select set_config(
  'request.jwt.claims',
  '{"sub":"3b0e6f5a-6a43-4c8e-9a3e-1f2d7c9b5a01","role":"authenticated","email":"ada@example.com","app_metadata":{"provider":"email"}}',
  true
);

select is(auth.uid(), '3b0e6f5a-6a43-4c8e-9a3e-1f2d7c9b5a01'::uuid, 'auth.uid() is the sub claim');
select is(auth.role(), 'authenticated', 'auth.role() is the role claim');
select is(auth.email(), 'ada@example.com', 'auth.email() is the email claim');
select is(auth.jwt() ->> 'sub', '3b0e6f5a-6a43-4c8e-9a3e-1f2d7c9b5a01', 'auth.jwt() returns the whole claims object');
select is(auth.jwt() -> 'app_metadata' ->> 'provider', 'email', 'auth.jwt() keeps nested claims');
select is(current_user::text, 'authenticated', 'the request runs as authenticated');

select throws_ok(
  'select count(*) from auth.users',
  '42501',
  'permission denied for table users',
  'authenticated cannot read auth.users'
);

-- No claims: the helpers return null.
select set_config('request.jwt.claims', '', true);
select ok(auth.uid() is null and auth.role() is null and auth.jwt() is null, 'no claims: auth.uid(), auth.role() and auth.jwt() are null');

reset role;

-- An anonymous request.
set local role anon;
select set_config('request.jwt.claims', '{"role":"anon"}', true);
select is(auth.role(), 'anon', 'an anon request has role anon');
select throws_ok(
  'select id, email from auth.users',
  '42501',
  'permission denied for table users',
  'anon cannot read auth.users'
);
reset role;

select * from finish();
rollback;
