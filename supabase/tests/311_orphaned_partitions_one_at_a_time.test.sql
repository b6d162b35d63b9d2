-- 20261123013800: deleted orgs' chunk partitions are listed first, then dropped one a statement (the hourly job
-- commits after each), so the parent is locked for one drop at a time; a live org's partition is never dropped.
begin;
create extension if not exists pgtap with schema extensions;

select plan(6);

select tests.remember('owner', tests.create_user('owner@orphans311.test'));
select tests.remember('org_live', tests.create_org('orphans311-live', tests.fx('owner')));
select tests.remember('org_gone', tests.create_org('orphans311-gone', tests.fx('owner')));

create function pg_temp.partition_name(org_id uuid) returns text language sql stable as $$
  select 'document_chunks_' || replace(org_id::text, '-', '')
$$;

delete from public.organizations where id = tests.fx('org_gone');

select ok(pg_temp.partition_name(tests.fx('org_gone')) in (select private.orphaned_chunk_partitions()),
  'a deleted org''s partition is listed as an orphan');
select ok(pg_temp.partition_name(tests.fx('org_live')) not in (select private.orphaned_chunk_partitions()),
  'a live org''s is not');
select is(private.drop_chunk_partition(pg_temp.partition_name(tests.fx('org_live'))), false,
  'drop_chunk_partition refuses a live org''s partition');
select isnt(to_regclass('private.' || pg_temp.partition_name(tests.fx('org_live'))), null, '... which stays');
select is(private.drop_chunk_partition(pg_temp.partition_name(tests.fx('org_gone'))), true,
  'and drops the deleted org''s');
select matches(
  (select j.command from cron.job j where j.jobname = 'drop-orphaned-chunk-partitions'),
  'for orphan in select private\.orphaned_chunk_partitions\(\) limit 100 loop\s+perform private\.drop_chunk_partition\(orphan\);\s+commit;',
  'the hourly job drops one partition a committed statement, at most 100 a run');

select * from finish();
rollback;
