-- Every foreign key to public.organizations has a full index led by its column (20261123014900): an org's
-- deletion follows each, and a partial index (calendar_connections had only its two partial unique keys) cannot
-- serve it, so the cascade read every tenant's rows on Postgres 15/17.
begin;
create extension if not exists pgtap with schema extensions;

select plan(1);

select is_empty(
  $$select c.conrelid::regclass::text || '.' || a.attname
    from pg_catalog.pg_constraint c
    join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.confrelid = 'public.organizations'::regclass and c.conparentid = 0
      and not exists (
        select 1 from pg_catalog.pg_index i
        where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1] and i.indpred is null
      )$$,
  'every foreign key to public.organizations has a full index led by its column'
);

select * from finish();
rollback;
