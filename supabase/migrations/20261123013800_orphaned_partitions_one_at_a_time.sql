-- Dropping deleted orgs' chunk partitions one at a time.
--
-- The hourly drop-orphaned-chunk-partitions ran private.drop_orphaned_chunk_partitions in one statement: from its
-- first `drop table` it held ACCESS EXCLUSIVE on public.document_chunks (a partition's drop takes it on the
-- parent) until it returned, while it went on reading every other partition's bound and dropping the rest, and
-- each orphan it could not lock waited its 1 s first. Every org's searches and ingestion queued behind it: 20
-- orphans at 2,002 orgs held the lock 175 ms on PGlite, the scan alone taking 71 ms (about 0.35 s at 10,000).
--
-- The job now lists the orphans first (private.orphaned_chunk_partitions: one read of the catalog, no lock on
-- the table) and drops each in a statement of its own (private.drop_chunk_partition), committing after each, so
-- the parent is locked for one drop at a time; at most 100 a run, the rest the next hour.
-- private.drop_orphaned_chunk_partitions stays, for one transaction (tests, by hand).

create function private.orphaned_chunk_partitions()
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select c.relname::text
  from pg_catalog.pg_inherits i
  join pg_catalog.pg_class c on c.oid = i.inhrelid
  where i.inhparent = 'public.document_chunks'::regclass
    and not exists (
      select 1 from public.organizations o
      where o.id = (pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '''([0-9a-f-]{36})'''))[1]::uuid
    )
  order by c.relname;
$$;
comment on function private.orphaned_chunk_partitions() is 'The chunk partitions whose org no longer exists (their rows went with it), by name.';
revoke execute on function private.orphaned_chunk_partitions() from public, anon, authenticated, service_role;

-- An orphan only (checked again here), and without waiting more than 1 s for the parent's lock: searches would
-- queue behind the wait.
create function private.drop_chunk_partition(partition_name text)
returns boolean
language plpgsql
security definer
set search_path = ''
set lock_timeout = '1s'
as $$
begin
  if not exists (select 1 from private.orphaned_chunk_partitions() p where p = drop_chunk_partition.partition_name) then
    return false;
  end if;
  execute format('drop table private.%I', drop_chunk_partition.partition_name);
  return true;
exception when lock_not_available then
  return false;
end;
$$;
comment on function private.drop_chunk_partition(text) is 'Drops one chunk partition of a deleted org (false when it is not one, or its lock was not had within 1 s).';
revoke execute on function private.drop_chunk_partition(text) from public, anon, authenticated, service_role;

-- Latest definition: 20261123001000_document_chunks_per_org.sql; now over the orphans listed first.
create or replace function private.drop_orphaned_chunk_partitions()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  orphan text;
  dropped integer := 0;
begin
  for orphan in select private.orphaned_chunk_partitions() loop
    if private.drop_chunk_partition(orphan) then
      dropped := dropped + 1;
    end if;
  end loop;
  return dropped;
end;
$$;

select cron.schedule('drop-orphaned-chunk-partitions', '17 * * * *', $job$do $$
declare
  orphan text;
begin
  for orphan in select private.orphaned_chunk_partitions() limit 100 loop
    perform private.drop_chunk_partition(orphan);
    commit;
  end loop;
end
$$$job$);
