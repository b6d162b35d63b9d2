-- Documents know which embedding model made their vectors (20261123015200_document_embedding_model.sql): a run
-- records its model with its first save and refuses another's, restart_ingest_run starts it over, finish_ingest
-- publishes the model with the chunks, fail_ingest keeps it only with the chunks it keeps, and
-- match_document_chunks(..., query_model) drops another model's chunks from its vector half only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

insert into tests.fixtures values
  ('owner_325', tests.create_user('owner-325@embedding-model.test')),
  ('viewer_325', tests.create_user('viewer-325@embedding-model.test'));
insert into tests.fixtures values
  ('org_325', tests.create_org('embedding-model-325', tests.fx('owner_325'))),
  ('search_325', tests.create_org('embedding-model-325-search', tests.fx('owner_325'))),
  ('run_325', gen_random_uuid()),
  ('restart_run_325', gen_random_uuid()),
  ('retry_run_325', gen_random_uuid()),
  ('fail_run_325', gen_random_uuid());
select tests.add_member(tests.fx('search_325'), tests.fx('viewer_325'), 'viewer');

-- A 1536-dimension embedding whose first components are the arguments.
create function pg_temp.vec(variadic parts real[])
returns extensions.vector
language sql
immutable
as $$ select array_cat(parts, array_fill(0::real, array[1536 - cardinality(parts)]))::extensions.vector(1536) $$;
grant execute on function pg_temp.vec(real[]) to public;

-- The chunks jsonb a step saves: one chunk at index i.
create function pg_temp.chunk(i integer)
returns jsonb
language sql
immutable
as $$
  select jsonb_build_array(jsonb_build_object('chunk_index', i, 'page_start', i + 1, 'page_end', i + 1,
    'content', 'step chunk ' || i, 'token_count', 3, 'embedding', pg_temp.vec(1, 0.5)::text))
$$;
grant execute on function pg_temp.chunk(integer) to public;

create function pg_temp.document(label text, org text, status public.document_status, run text default null)
returns void
language sql
as $$
  insert into tests.fixtures values (label, gen_random_uuid());
  insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, ingest_run, ingest_cursor)
  values (tests.fx(label), tests.fx(org), label || '.txt', 'text/plain', 10, tests.fx(org) || '/' || label || '.txt', status,
          case when run is null then null else tests.fx(run) end, 0);
$$;

-- ---------------------------------------------------------------------------
-- A run's model: recorded by its first save, another refused, published with the chunks.
-- ---------------------------------------------------------------------------
select pg_temp.document('steps', 'org_325', 'processing', 'run_325');
select tests.act_as('service_role');
select is(private.save_ingest_step(tests.fx('steps'), tests.fx('run_325'), pg_temp.chunk(0), 1, 50, 2, 'model-new'), true,
  'save_ingest_step: the first save of a run stages its chunks');
select is((select ingest_model from public.documents where id = tests.fx('steps')), 'model-new',
  'save_ingest_step: the first save records the run''s model');
select is(private.save_ingest_step(tests.fx('steps'), tests.fx('run_325'), pg_temp.chunk(1), 2, 99, 2, 'model-old'), false,
  'save_ingest_step: a later save of another model is refused');
select tests.act_as('postgres');
select results_eq(
  $$select d.ingest_cursor, d.ingest_model, (select count(*)::integer from private.document_chunk_staging s where s.document_id = d.id)
    from public.documents d where d.id = tests.fx('steps')$$,
  $$values (1, 'model-new', 1)$$,
  'save_ingest_step: the refused save staged nothing and moved nothing');
select tests.act_as('service_role');
select is(private.save_ingest_step(tests.fx('steps'), tests.fx('run_325'), pg_temp.chunk(1), 2, 99, 2, 'model-new'), true,
  'save_ingest_step: a later save of the run''s model is taken');
select is(private.finish_ingest(tests.fx('steps'), tests.fx('run_325')), 2, 'finish_ingest publishes the run''s chunks');
select results_eq(
  $$select status::text, embedding_model, ingest_model from public.documents where id = tests.fx('steps')$$,
  $$values ('ready', 'model-new'::text, null::text)$$,
  'finish_ingest: the document is ready with the model that embedded its chunks');

-- ---------------------------------------------------------------------------
-- restart_ingest_run: staged chunks discarded, a new run from the first page.
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');
select pg_temp.document('restarted', 'org_325', 'processing', 'restart_run_325');
select tests.act_as('service_role');
select private.save_ingest_step(tests.fx('restarted'), tests.fx('restart_run_325'), pg_temp.chunk(0), 3, 60, 5, 'model-old');
select is(private.restart_ingest_run(tests.fx('restarted'), tests.fx('restart_run_325')), true,
  'restart_ingest_run restarts the current run');
select tests.act_as('postgres');
select results_eq(
  $$select d.status::text, d.ingest_cursor, d.progress::integer, d.ingest_model, d.ingest_run is distinct from tests.fx('restart_run_325'),
      d.ingest_run is not null, (select count(*)::integer from private.document_chunk_staging s where s.document_id = d.id)
    from public.documents d where d.id = tests.fx('restarted')$$,
  $$values ('processing', 0, 0, null::text, true, true, 0)$$,
  'restart_ingest_run: a new run at page 0, without a model or staged chunks');
select tests.act_as('service_role');
select is(private.restart_ingest_run(tests.fx('restarted'), tests.fx('restart_run_325')), false,
  'restart_ingest_run: the old run is no longer current');

-- ---------------------------------------------------------------------------
-- fail_ingest keeps the model with the chunks it keeps, and only then.
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');
select pg_temp.document('retried', 'org_325', 'processing', 'retry_run_325');
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_325'), tests.fx('retried'), 0, 1, 1, 'kept chunk', 2, pg_temp.vec(1));
update public.documents set chunk_count = 1, retried_at = now(), embedding_model = 'model-old', ingest_model = 'model-new'
where id = tests.fx('retried');
select pg_temp.document('failing', 'org_325', 'processing', 'fail_run_325');
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_325'), tests.fx('failing'), 0, 1, 1, 'dropped chunk', 2, pg_temp.vec(1));
update public.documents set chunk_count = 1, embedding_model = 'model-old' where id = tests.fx('failing');
select tests.act_as('service_role');
select private.fail_ingest(tests.fx('retried'), tests.fx('retry_run_325'), 'broken');
select private.fail_ingest(tests.fx('failing'), tests.fx('fail_run_325'), 'broken');
select results_eq(
  $$select status::text, chunk_count, embedding_model, ingest_model from public.documents where id = tests.fx('retried')$$,
  $$values ('ready', 1, 'model-old'::text, null::text)$$,
  'fail_ingest: a failed retry keeps the live chunks and their model');
select results_eq(
  $$select status::text, chunk_count, embedding_model from public.documents where id = tests.fx('failing')$$,
  $$values ('failed', 0, null::text)$$,
  'fail_ingest: a document left without chunks has no model');

select tests.act_as('postgres');
select throws_ok($$update public.documents set embedding_model = '' where id = tests.fx('steps')$$, '23514', null,
  'embedding_model: an empty name is refused');
select throws_ok($$update public.documents set embedding_model = repeat('m', 101) where id = tests.fx('steps')$$, '23514', null,
  'embedding_model: a name over 100 characters is refused');

-- ---------------------------------------------------------------------------
-- match_document_chunks(..., query_model): three documents of one direction, of the query's model, another
-- model and unknown (null), each a chunk holding the word "zebrafinch", in a collection.
-- ---------------------------------------------------------------------------
with c as (insert into public.collections (org_id, name) values (tests.fx('search_325'), 'All') returning id)
select tests.remember('collection_325', c.id) from c;
select pg_temp.document('current', 'search_325', 'ready');
select pg_temp.document('other', 'search_325', 'ready');
select pg_temp.document('legacy', 'search_325', 'ready');
update public.documents set embedding_model = 'model-new' where id = tests.fx('current');
update public.documents set embedding_model = 'model-old' where id = tests.fx('other');
update public.documents set collection_id = tests.fx('collection_325') where org_id = tests.fx('search_325');
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
select d.org_id, d.id, d.collection_id, 0, 1, 1, 'the zebrafinch of ' || d.name, 4, pg_temp.vec(1, 0.5)
from public.documents d where d.org_id = tests.fx('search_325');

with b as (insert into public.bots (org_id, name, slug) values (tests.fx('search_325'), 'All', 'all-325') returning id)
select tests.remember('bot_325', b.id) from b;

create function pg_temp.vector_hits(query_text text, collections uuid[], model text)
returns setof text
language sql
as $$
  select m.document_name from public.match_document_chunks(tests.fx('search_325'), pg_temp.vec(1, 0.5), query_text, 10,
    collections, model) m
  where m.vector_rank is not null
$$;
grant execute on function pg_temp.vector_hits(text, uuid[], text) to authenticated;

select tests.authenticate_as(tests.fx('viewer_325'));
select set_eq($$select pg_temp.vector_hits(null, null, null)$$, array['current.txt', 'other.txt', 'legacy.txt'],
  'without query_model the vector half searches every document, as before');
select set_eq($$select pg_temp.vector_hits(null, null, 'model-new')$$, array['current.txt', 'legacy.txt'],
  'the one-statement vector search passes over another model''s chunks, keeping those of unknown model');
select results_eq(
  $$select m.vector_rank from public.match_document_chunks(tests.fx('search_325'), pg_temp.vec(1, 0.5), null, 10, null, 'model-new') m
    order by m.vector_rank$$,
  $$values (1), (2)$$,
  'the filter applies before the limit: ranks follow each other');
select set_eq($$select pg_temp.vector_hits(null, array[tests.fx('collection_325')], 'model-new')$$, array['current.txt', 'legacy.txt'],
  'a search of collections (private.vector_matches) passes over another model''s chunks too');
select set_eq($$select pg_temp.vector_hits('zebrafinch', null, 'model-new')$$, array['current.txt', 'legacy.txt'],
  'a search with words: the vector half passes over another model''s chunks');
select results_eq(
  $$select m.vector_rank is null, m.text_rank is not null
    from public.match_document_chunks(tests.fx('search_325'), pg_temp.vec(1, 0.5), 'zebrafinch', 10, null, 'model-new') m
    where m.document_name = 'other.txt'$$,
  $$values (true, true)$$,
  'the text half still finds another model''s chunk by its words');
select tests.authenticate_as(tests.fx('owner_325'));
select set_eq(
  $$select m.document_name from public.match_bot_chunks(tests.fx('bot_325'), pg_temp.vec(1, 0.5), null, 10, 'model-new') m$$,
  array['current.txt', 'legacy.txt'],
  'match_bot_chunks passes query_model on');

-- ---------------------------------------------------------------------------
-- Grants: the callers as before; the old signatures are gone.
-- ---------------------------------------------------------------------------
select tests.act_as('postgres');
select results_eq(
  $$select has_function_privilege(r, 'public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[], text)', 'execute')
    from unnest(array['authenticated', 'service_role', 'anon']) r$$,
  $$values (true), (true), (false)$$,
  'match_document_chunks: authenticated and service_role may call it, anon may not');
select results_eq(
  $$select has_function_privilege(r, 'public.match_bot_chunks(uuid, extensions.vector, text, integer, text)', 'execute')
    from unnest(array['authenticated', 'service_role', 'anon']) r$$,
  $$values (true), (true), (false)$$,
  'match_bot_chunks: authenticated and service_role may call it, anon may not');
select results_eq(
  $$select has_function_privilege(r, f, 'execute')
    from unnest(array['private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer, text)',
                      'private.restart_ingest_run(uuid, uuid)']) f,
         unnest(array['service_role', 'authenticated']) r$$,
  $$values (true), (false), (true), (false)$$,
  'save_ingest_step and restart_ingest_run: the service role only');
select is(
  (select array_agg(s order by s) from unnest(array[
    'public.match_document_chunks(uuid, extensions.vector, text, integer, uuid[])',
    'public.match_bot_chunks(uuid, extensions.vector, text, integer)',
    'private.vector_matches(uuid, extensions.vector, uuid[], integer)',
    'private.save_ingest_step(uuid, uuid, jsonb, integer, integer, integer)']) s
   where to_regprocedure(s) is not null),
  null,
  'the old signatures are dropped, not left as overloads');

select * from finish();
rollback;
