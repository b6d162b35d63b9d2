-- Every statement on public.document_chunks names its org (20261123013700_chunk_queries_name_their_org.sql):
-- one partition per org, and a statement without an org_id equality plans and locks every partition and its
-- 6 indexes (14,036 locks at 2,002 orgs; "out of shared memory" past ~2,000 on real Postgres).
--
-- 1. The guard, over every function in public and private whose body names document_chunks: each statement
--    (split at ';', comments removed) that names the table must hold an org_id equality, unless it is
--    - an insert into it (rows are routed to their org's partition, the others are not opened),
--    - `lock table only` (the parent alone),
--    - DDL on the parent or a partition (create/alter/drop table: create_chunk_partition and the orphan job),
--    - the name as a quoted catalog reference ('public.document_chunks'::regclass, for pg_inherits).
--    And such a function forces custom plans: a PL/pgSQL or SQL statement's org is a parameter, and the 6th
--    run in a session also builds a generic plan, which prunes nothing (every partition, once per connection).
--    The textual check cannot see which table an org_id equality belongs to (a subquery's would pass); it
--    catches the usual regression, a chunk statement keyed by document or collection alone.
-- 2. The functions themselves, among 50 more orgs: finish_ingest (7 times: past the 6th run), fail_ingest,
--    finish_ingest with nothing staged (through fail_ingest), begin_document_deletion, create_organization and
--    a member's read naming the org take no lock on another org's partition or index, and still do their job.
begin;
create extension if not exists pgtap with schema extensions;

select plan(18);

-- Statements that reach document_chunks without an org_id equality, with their function; and functions that
-- name the org without forcing custom plans.
create function pg_temp.unpruned_chunk_statements()
returns setof text
language sql
stable
as $$
  with bodies as (
    select p.oid::regprocedure::text as fn, p.proconfig,
      pg_catalog.regexp_replace(lower(p.prosrc), '--[^\n]*', '', 'g') as body
    from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'private') and p.prosrc ~* 'document_chunks'
  ), statements as (
    select b.fn, b.proconfig,
      pg_catalog.regexp_replace(s.statement, '''(public\.)?document_chunks''', '''catalog reference''', 'g') as statement
    from bodies b
    cross join lateral pg_catalog.regexp_split_to_table(b.body, ';') s(statement)
  ), chunk_statements as (
    select s.fn, s.proconfig, s.statement
    from statements s
    where s.statement ~ '(public\.|[^a-z0-9_.])document_chunks\M'
      and not (s.statement ~ 'insert\s+into\s+public\.document_chunks\M'
        and s.statement !~ 'document_chunks\M.*document_chunks\M')
      and s.statement !~ 'lock\s+table\s+only\s+public\.document_chunks\M'
      and s.statement !~ '\m(create|alter|drop)\s+table\M'
  )
  select c.fn || ': ' || left(btrim(pg_catalog.regexp_replace(c.statement, '\s+', ' ', 'g')), 160)
  from chunk_statements c
  where c.statement !~ 'org_id\s*=\s*(?!any\M)'
  union all
  select distinct c.fn || ': names the org but plans generic plans (set plan_cache_mode = force_custom_plan)'
  from chunk_statements c
  where not coalesce('plan_cache_mode=force_custom_plan' = any (c.proconfig), false)
$$;

-- Relations (partitions and their indexes) of document_chunks for orgs other than the test org.
create function pg_temp.other_orgs_chunk_relations()
returns oid[]
language sql
stable
as $$
  with own as (
    select coalesce(to_regclass('private.document_chunks_' || replace(tests.fx('org')::text, '-', ''))::oid, 0) as oid
  ), partitions as (
    select h.inhrelid as oid from pg_catalog.pg_inherits h
    where h.inhparent = 'public.document_chunks'::regclass and h.inhrelid <> (select own.oid from own)
  )
  select pg_catalog.array_agg(r.oid)
  from (
    select p.oid from partitions p
    union all
    select i.indexrelid from pg_catalog.pg_index i join partitions p on p.oid = i.indrelid
  ) r
$$;
grant execute on function pg_temp.other_orgs_chunk_relations() to public;

-- How many locks a call took on other orgs' partitions and indexes (that existed before it) which this
-- transaction did not hold yet. A statement pruned to the test org's partition takes none. A lock already held
-- in that mode hides another: hence 10 new orgs before each call (pg_temp.more_orgs), whose partitions hold no
-- lock of the modes a read or write takes.
create function pg_temp.other_orgs_locked_by(call text)
returns integer
language plpgsql
as $$
declare
  existing oid[] := pg_temp.other_orgs_chunk_relations();
  held text[];
begin
  held := array(select l.relation::text || ' ' || l.mode from pg_catalog.pg_locks l
                where l.locktype = 'relation' and l.pid = pg_catalog.pg_backend_pid() and l.relation = any (existing));
  execute call;
  return (select count(*)::integer from pg_catalog.pg_locks l
          where l.locktype = 'relation' and l.pid = pg_catalog.pg_backend_pid() and l.relation = any (existing)
            and not (l.relation::text || ' ' || l.mode) = any (held));
end;
$$;
grant execute on function pg_temp.other_orgs_locked_by(text) to public;

create function pg_temp.more_orgs(batch text)
returns void
language sql
as $$
  select tests.create_org('chunk-orgs-310-' || batch || '-' || i, tests.fx('owner')) from generate_series(1, 10) i;
$$;

-- A processing document of the org with 2 live chunks from an earlier run and `staged` chunks of this run.
create function pg_temp.processing_document(name text, staged integer)
returns void
language plpgsql
as $$
begin
  perform tests.remember(name, gen_random_uuid());
  perform tests.remember(name || '_run', gen_random_uuid());
  insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, page_count, ingest_run)
  values (tests.fx(name), tests.fx('org'), name || '.txt', 'text/plain', 10, tests.fx('org') || '/' || name || '.txt',
          'processing', 10, 1, tests.fx(name || '_run'));
  insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select tests.fx('org'), tests.fx(name), i, 1, 1, 'chunk-orgs-310 old ' || i, 3, array_fill(0.1::real, array[1536])::extensions.vector
  from generate_series(0, 1) i;
  insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select tests.fx(name || '_run'), tests.fx(name), i, 1, 1, 'chunk-orgs-310 new ' || i, 3, array_fill(0.2::real, array[1536])::extensions.vector
  from generate_series(0, staged - 1) i;
end;
$$;

-- A document's status and its live chunks by content.
create function pg_temp.state(name text)
returns text
language sql
stable
as $$
  select d.status || ' / ' || d.chunk_count || ' / '
    || coalesce((select string_agg(c.content, ', ' order by c.chunk_index) from public.document_chunks c
                 where c.org_id = d.org_id and c.document_id = d.id), '-')
  from public.documents d where d.id = tests.fx(state.name)
$$;

-- ===========================================================================
-- 1. The guard
-- ===========================================================================

select is_empty('select * from pg_temp.unpruned_chunk_statements()',
  'every statement of a public or private function on document_chunks names its org, and forces custom plans');

select ok((select count(*) from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
           where n.nspname in ('public', 'private') and p.prosrc ~* 'document_chunks') >= 10,
  'the guard looks at the functions that name document_chunks (finish_ingest, fail_ingest, retrieval, ...)');

-- It catches the regression it is for: a delete by document alone, and an org named under generic plans.
create function private.chunk_orgs_310_by_document(document_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
begin
  delete from public.document_chunks c where c.document_id = chunk_orgs_310_by_document.document_id;
end;
$$;
create function private.chunk_orgs_310_generic(org_id uuid, document_id uuid)
returns bigint
language sql
security definer
set search_path = ''
as $$
  select count(*) from public.document_chunks c
  where c.org_id = chunk_orgs_310_generic.org_id and c.document_id = chunk_orgs_310_generic.document_id;
$$;
select results_eq(
  'select * from pg_temp.unpruned_chunk_statements() order by 1',
  $$values
    ('private.chunk_orgs_310_by_document(uuid): begin delete from public.document_chunks c where c.document_id = chunk_orgs_310_by_document.document_id'),
    ('private.chunk_orgs_310_generic(uuid,uuid): names the org but plans generic plans (set plan_cache_mode = force_custom_plan)')$$,
  'the guard names a chunk delete keyed by document alone, and an org named without forced custom plans');
drop function private.chunk_orgs_310_by_document(uuid);
drop function private.chunk_orgs_310_generic(uuid, uuid);

select is(
  (select pg_catalog.array_agg(p.proname::text order by p.proname) from pg_catalog.pg_proc p
   where p.oid in ('private.finish_ingest(uuid,uuid)'::regprocedure, 'private.fail_ingest(uuid,uuid,text)'::regprocedure,
                   'private.begin_document_deletion(uuid)'::regprocedure)
     and 'plan_cache_mode=force_custom_plan' = any (p.proconfig)),
  array['begin_document_deletion', 'fail_ingest', 'finish_ingest'],
  'the three functions that delete chunks force custom plans');

-- ===========================================================================
-- 2. The functions, among 50 more orgs
-- ===========================================================================

delete from vault.secrets where name in ('project_url', 'service_role_key');
select tests.remember('owner', tests.create_user('owner@chunk-orgs-310.test'));
select tests.remember('org', tests.create_org('chunk-orgs-310', tests.fx('owner')));
select pg_temp.processing_document('finished_' || i, 1) from generate_series(1, 7) i;
select pg_temp.processing_document('failed', 1);
select pg_temp.processing_document('empty', 0);
select pg_temp.processing_document('deleted', 1);

select pg_temp.more_orgs('finish');
select is(
  (select array_agg(pg_temp.other_orgs_locked_by(format('select private.finish_ingest(%L, %L)', tests.fx('finished_' || i), tests.fx('finished_' || i || '_run')))
     order by i)
   from generate_series(1, 7) i),
  array_fill(0, array[7]),
  'finish_ingest, 7 times in one session: none locks another org''s partition or index, the 6th run included');
select is(
  (select array_agg(pg_temp.state('finished_' || i) order by i) from generate_series(1, 7) i),
  array_fill('ready / 1 / chunk-orgs-310 new 0'::text, array[7]),
  'finish_ingest still swaps the staged chunks in for the old ones');

select pg_temp.more_orgs('fail');
select is(
  pg_temp.other_orgs_locked_by(format('select private.fail_ingest(%L, %L, %L)', tests.fx('failed'), tests.fx('failed_run'), 'chunk-orgs-310 failure')),
  0, 'fail_ingest locks no other org''s partition or index');
select is(pg_temp.state('failed'), 'failed / 0 / -', 'fail_ingest still removes the document''s chunks');

select pg_temp.more_orgs('empty');
select is(
  pg_temp.other_orgs_locked_by(format('select private.finish_ingest(%L, %L)', tests.fx('empty'), tests.fx('empty_run'))),
  0, 'finish_ingest with nothing staged (through fail_ingest) locks no other org''s partition or index');
select is(pg_temp.state('empty'), 'failed / 0 / -', 'and still fails the document, without its old chunks');

select pg_temp.more_orgs('deletion');
select is(
  pg_temp.other_orgs_locked_by(format('select private.begin_document_deletion(%L)', tests.fx('deleted'))),
  0, 'begin_document_deletion locks no other org''s partition or index');
select is(
  (select count(*)::integer from public.document_chunks c where c.org_id = tests.fx('org') and c.document_id = tests.fx('deleted')),
  0, 'and still removes the document''s chunks');

select cmp_ok(
  (select count(*)::integer from pg_catalog.pg_inherits h where h.inhparent = 'public.document_chunks'::regclass), '>=', 41,
  'all this among the partitions of 40 more orgs');

select tests.act_as('owner');
select is(
  pg_temp.other_orgs_locked_by($$select public.create_organization('Chunk orgs 310 new', 'chunk-orgs-310-new')$$),
  0, 'create_organization locks the parent and its new partition, no other org''s partition');
select tests.act_as('postgres');
select isnt(
  (select to_regclass(format('private.%I', private.chunk_partition_name(o.id))) from public.organizations o
   where o.slug = 'chunk-orgs-310-new'),
  null, 'and still attaches the new org''s partition');

-- A member's read through the select policy prunes when the org is named as a value (PostgREST: org_id=eq.<org>).
select pg_temp.more_orgs('read');
select tests.remember('viewer', tests.create_user('viewer@chunk-orgs-310.test'));
select tests.add_member(tests.fx('org'), tests.fx('viewer'), 'viewer');
select tests.act_as('viewer');
select is(
  pg_temp.other_orgs_locked_by(format('select count(*) from public.document_chunks c where c.org_id = %L and c.document_id = %L',
    tests.fx('org'), tests.fx('finished_1'))),
  0, 'a member''s read naming the org as a value locks no other org''s partition or index');
select is(
  (select count(*)::integer from public.document_chunks c where c.org_id = tests.fx('org') and c.document_id = tests.fx('finished_1')),
  1, 'and reads the org''s chunks through the policy');
select tests.act_as('postgres');

select is(
  (select count(*)::integer from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'private' and p.proname like 'chunk_orgs_310_%'),
  0, 'the guard''s probes are gone');

select * from finish();
rollback;
