-- Catalog guards: rules every new table, policy and function must follow, so
-- a migration that forgets one fails here rather than leaking in production.
begin;
create extension if not exists pgtap with schema extensions;
select plan(6);

create temp view exposed_schemas as
select unnest(string_to_array(
  replace(coalesce(nullif(current_setting('pgrst.db_schemas', true), ''), 'public,graphql_public'), ' ', ''), ','
)) as name;

select is_empty(
  $$select n.nspname || '.' || c.relname
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p') and not c.relrowsecurity
      and n.nspname in (select name from exposed_schemas)$$,
  'every table in an exposed schema has RLS enabled'
);

select is_empty(
  $$select schemaname || '.' || tablename || ': ' || policyname
    from pg_catalog.pg_policies
    where schemaname in ('public', 'storage', 'realtime') and 'public' = any(roles)$$,
  'every policy names its role (to authenticated / anon), none applies to PUBLIC'
);

-- Splinter lints 0028/0029: a definer function in an exposed schema is a
-- privileged RPC endpoint. Definer code lives in `private`.
select is_empty(
  $$select n.nspname || '.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where p.prosecdef
      and n.nspname in (select name from exposed_schemas)
      and (pg_catalog.has_function_privilege('anon', p.oid, 'execute')
        or pg_catalog.has_function_privilege('authenticated', p.oid, 'execute'))$$,
  'no security definer function in an exposed schema is executable by anon or authenticated'
);

select is_empty(
  $$select n.nspname || '.' || p.proname
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'private')
      and not coalesce(p.proconfig, '{}') && array['search_path=""']$$,
  'every function in public and private pins search_path to an empty string'
);

-- Policies filter tenant tables by org_id: each needs an index led by it.
select is_empty(
  $$select c.relname
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
    where n.nspname = 'public' and c.relkind in ('r', 'p')
      and not exists (
        select 1 from pg_catalog.pg_index i
        where i.indrelid = c.oid and i.indkey[0] = a.attnum
      )$$,
  'every tenant table has an index led by org_id'
);

-- Definer code the API roles can run must not be reachable through PUBLIC.
select is_empty(
  $$select n.nspname || '.' || p.proname
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'private' and p.prosecdef
      and exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl where acl.grantee = 0)$$,
  'no security definer function in private is executable by PUBLIC'
);

select * from finish();
rollback;
