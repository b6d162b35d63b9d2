-- The knowledge base (20261123000900_knowledge_base.sql): members register
-- upload batches (validated before any byte moves), the upload of each file
-- to Storage queues its ingestion through pg_net, the ingest function (the
-- service role) runs resumable steps that stage chunks and swaps them in at
-- the end, status changes are broadcast on org:<org>:uploads, batch progress
-- is a view, retrieval is a hybrid RRF match under the caller's RLS, and
-- token usage is metered by the service role only.
--
-- Embeddings are small hand-made vectors (a few leading components, the rest
-- zero), so the expected nearest neighbours are obvious from the fixtures.
begin;
create extension if not exists pgtap with schema extensions;

select plan(116);

-- ---------------------------------------------------------------------------
-- Fixtures. Org A has one member of each role, org B only its owner (our
-- outsider). Ids are named fixtures (tests.remember / tests.fx, in
-- 010_test_helpers), which every role may read, so the SQL strings handed to
-- pgTAP can use them whatever the current role.
-- ---------------------------------------------------------------------------

-- What begin_ingest_step returned, per call.
create temp table steps (
  label text primary key,
  org_id uuid,
  storage_path text,
  mime_type text,
  name text,
  run_id uuid,
  cursor integer,
  next_chunk_index integer,
  status public.document_status
);
grant all on steps to public;
-- Counters and chunk ids remembered before a change, compared after it.
create temp table marks (label text primary key, n bigint not null);
grant all on marks to public;
create temp table kept_chunks (label text not null, chunk_id bigint not null);
grant all on kept_chunks to public;

create function pg_temp.mark(label text)
returns bigint
language sql
stable
as $$ select m.n from marks m where m.label = $1 $$;
grant execute on function pg_temp.mark(text) to public;

-- A 1536-dimension embedding whose first components are the arguments.
create function pg_temp.vec(variadic parts real[])
returns extensions.vector
language sql
immutable
as $$ select array_cat(parts, array_fill(0::real, array[1536 - cardinality(parts)]))::extensions.vector(1536) $$;
grant execute on function pg_temp.vec(real[]) to public;

-- Registers a batch as the current user; names each document 'doc:<file name>'.
create function pg_temp.create_batch(label text, org text, files jsonb, project text default null, collection text default null)
returns void
language plpgsql
as $$
declare
  created public.documents;
begin
  for created in
    select * from public.create_upload_batch(tests.fx(org), files, tests.fx(project), tests.fx(collection))
  loop
    insert into tests.fixtures values ('doc:' || created.name, created.id) on conflict (name) do nothing;
    insert into tests.fixtures values (label, created.batch_id) on conflict (name) do nothing;
  end loop;
end;
$$;
grant execute on function pg_temp.create_batch(text, text, jsonb, text, text) to public;

-- A file entry for create_upload_batch.
create function pg_temp.file(name text, mime_type text default 'application/pdf', size_bytes jsonb default '1000')
returns jsonb
language sql
immutable
as $$ select jsonb_build_object('name', name, 'mime_type', mime_type, 'size_bytes', size_bytes) $$;
grant execute on function pg_temp.file(text, text, jsonb) to public;

-- Starts or resumes an ingest run as the current role (the service role) and keeps what it returned.
create function pg_temp.begin_step(label text, doc text)
returns void
language sql
as $$
  insert into steps select label, b.* from private.begin_ingest_step(tests.fx(doc)) b;
  select tests.remember(label, s.run_id) from steps s where s.label = begin_step.label and s.run_id is not null;
$$;
grant execute on function pg_temp.begin_step(text, text) to public;

-- The chunks jsonb a step saves: n chunks from index from_index, all with the same embedding.
create function pg_temp.chunks(from_index integer, n integer, content_prefix text)
returns jsonb
language sql
immutable
as $$
  select jsonb_agg(jsonb_build_object(
    'chunk_index', i, 'page_start', i + 1, 'page_end', i + 1,
    'content', content_prefix || ' chunk ' || i, 'token_count', 400,
    'embedding', pg_temp.vec(0.1, 0.2, 0.3)::text) order by i)
  from generate_series(from_index, from_index + n - 1) i
$$;
grant execute on function pg_temp.chunks(integer, integer, text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@knowledge.test')),
  ('admin_a', tests.create_user('admin-a@knowledge.test')),
  ('member_a', tests.create_user('member-a@knowledge.test')),
  ('viewer_a', tests.create_user('viewer-a@knowledge.test')),
  ('owner_b', tests.create_user('owner-b@knowledge.test'));
select tests.remember('org_a', tests.create_org('knowledge-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('knowledge-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

insert into public.projects (org_id, name) values (tests.fx('org_a'), 'Spring import'), (tests.fx('org_b'), 'B import');
insert into public.collections (org_id, name) values (tests.fx('org_a'), 'Handbook'), (tests.fx('org_b'), 'B docs');
select tests.remember('project_a', id) from public.projects where org_id = tests.fx('org_a');
select tests.remember('project_b', id) from public.projects where org_id = tests.fx('org_b');
select tests.remember('collection_a', id) from public.collections where org_id = tests.fx('org_a');
select tests.remember('collection_b', id) from public.collections where org_id = tests.fx('org_b');

-- The ingest wake-up reads these (another file or a developer may have
-- stored others); rolled back with the rest. The trailing slash checks that
-- the URL is joined without a double slash.
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('kb-test-key', 'service_role_key');

-- A bucket outside the knowledge base, for the trigger's bucket check.
insert into storage.buckets (id, name, public) values ('kb-test-other', 'kb-test-other', false);

-- ---------------------------------------------------------------------------
-- create_upload_batch
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select pg_temp.create_batch('batch1', 'org_a',
      jsonb_build_array(pg_temp.file('guide.pdf'),
        pg_temp.file('notes.txt', 'text/plain', '2048') || jsonb_build_object('checksum_sha256', repeat('ab', 32))),
      'project_a', 'collection_a')$$,
  'create_upload_batch: a member registers a batch of 2 files with a project and a collection of the org'
);

select tests.act_as('postgres');
select results_eq(
  $$select name, mime_type, size_bytes, checksum_sha256, status, progress, storage_path, batch_id, project_id, collection_id, created_by
    from public.documents where org_id = tests.fx('org_a') order by name$$,
  $$values
    ('guide.pdf', 'application/pdf', 1000::bigint, null::text, 'uploading'::public.document_status, 0::smallint,
     tests.fx('org_a')::text || '/' || tests.fx('doc:guide.pdf')::text || '/guide.pdf',
     tests.fx('batch1'), tests.fx('project_a'), tests.fx('collection_a'), tests.fx('member_a')),
    ('notes.txt', 'text/plain', 2048::bigint, repeat('ab', 32), 'uploading'::public.document_status, 0::smallint,
     tests.fx('org_a')::text || '/' || tests.fx('doc:notes.txt')::text || '/notes.txt',
     tests.fx('batch1'), tests.fx('project_a'), tests.fx('collection_a'), tests.fx('member_a'))$$,
  'create_upload_batch: one document per file, uploading, stored at <org>/<document id>/<name>, in the batch, project and collection'
);
select results_eq(
  $$select org_id, project_id, collection_id, created_by from public.upload_batches where id = tests.fx('batch1')$$,
  $$values (tests.fx('org_a'), tests.fx('project_a'), tests.fx('collection_a'), tests.fx('member_a'))$$,
  'create_upload_batch: the batch records the org, project, collection and creator'
);

-- Refusals. Each is one call, so a refusal in the middle of a batch must
-- leave nothing of the batch behind; the counts are checked after them all.
insert into marks values
  ('batches_a', (select count(*) from public.upload_batches where org_id = tests.fx('org_a'))),
  ('documents_a', (select count(*) from public.documents where org_id = tests.fx('org_a')));

select tests.act_as('viewer_a');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('v.pdf')))$$,
  '42501', 'you do not have the knowledge.write permission in this organization',
  'create_upload_batch: a viewer may not upload'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('b.pdf')))$$,
  '42501', 'you do not have the knowledge.write permission in this organization',
  'create_upload_batch: the owner of another org may not upload into org A'
);
select tests.act_as('anon');
select throws_ok(
  $$select public.create_upload_batch('00000000-0000-0000-0000-000000000000', '[]')$$,
  '42501', 'permission denied for function create_upload_batch',
  'create_upload_batch: anon may not call it at all'
);

select tests.act_as('member_a');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), '[]')$$,
  '22023', 'files must be a list of 1 to 100 files',
  'create_upload_batch: an empty list is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'),
      (select jsonb_agg(pg_temp.file('f' || n || '.pdf')) from generate_series(1, 101) n))$$,
  '22023', 'files must be a list of 1 to 100 files',
  'create_upload_batch: 101 files are refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), pg_temp.file('single.pdf'))$$,
  '22023', 'files must be a list of 1 to 100 files',
  'create_upload_batch: a single object instead of a list is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('ok.pdf'), pg_temp.file('a/b.pdf')))$$,
  '22023', 'invalid file name: a/b.pdf',
  'create_upload_batch: a name with a slash is refused (it would escape <org>/<document id>/), even after a good file'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('a\b.pdf')))$$,
  '22023', 'invalid file name: a\b.pdf',
  'create_upload_batch: a name with a backslash is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('   ')))$$,
  '22023', 'invalid file name:    ',
  'create_upload_batch: an empty (blank) name is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file(repeat('n', 252) || '.pdf')))$$,
  '22023', 'invalid file name: ' || repeat('n', 252) || '.pdf',
  'create_upload_batch: a name of 256 characters is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('setup.exe', 'application/x-msdownload')))$$,
  '22023', 'setup.exe: unsupported type application/x-msdownload',
  'create_upload_batch: an unsupported type is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('empty.pdf', 'application/pdf', '0')))$$,
  '22023', 'empty.pdf: a file has 1 byte to 25 MB',
  'create_upload_batch: an empty file is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('big.pdf', 'application/pdf', '26214401')))$$,
  '22023', 'big.pdf: a file has 1 byte to 25 MB',
  'create_upload_batch: a file over 25 MB is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('str.pdf', 'application/pdf', '"1000"')))$$,
  '22023', 'str.pdf: a file has 1 byte to 25 MB',
  'create_upload_batch: a size that is not a JSON number is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'),
      jsonb_build_array(pg_temp.file('sum.pdf') || jsonb_build_object('checksum_sha256', upper(repeat('ab', 32)))))$$,
  '22023', 'sum.pdf: checksum_sha256 must be 64 lower-case hex characters',
  'create_upload_batch: a checksum that is not 64 lower-case hex characters is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('p.pdf')), tests.fx('project_b'))$$,
  '22023', 'project not found in this organization',
  'create_upload_batch: a project of another org is refused'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(pg_temp.file('c.pdf')), null, tests.fx('collection_b'))$$,
  '22023', 'collection not found in this organization',
  'create_upload_batch: a collection of another org is refused'
);

select tests.act_as('postgres');
select is(
  (select count(*) from public.upload_batches where org_id = tests.fx('org_a')),
  pg_temp.mark('batches_a'),
  'create_upload_batch: the refused calls created no batch'
);
select is(
  (select count(*) from public.documents where org_id = tests.fx('org_a')),
  pg_temp.mark('documents_a'),
  'create_upload_batch: the refused calls created no document (not even the good file before a bad one)'
);

-- The limits themselves are allowed: 100 files, 255 characters, exactly 25 MB.
-- (On a plan that holds 100 more documents: free holds 50, 20261123001600.)
update public.subscriptions set plan_id = 'pro' where org_id = tests.fx('org_a') and status = 'active';
select tests.act_as('member_a');
select lives_ok(
  $$select pg_temp.create_batch('batch_max', 'org_a',
      (select jsonb_agg(pg_temp.file('max' || n || '.md', 'text/markdown')) from generate_series(1, 98) n)
      || jsonb_build_array(pg_temp.file(repeat('n', 251) || '.pdf'), pg_temp.file('limit.pdf', 'application/pdf', '26214400')))$$,
  'create_upload_batch: 100 files, a 255-character name and a file of exactly 25 MB are accepted'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.documents where batch_id = tests.fx('batch_max')),
  100,
  'create_upload_batch: the batch at the limits holds its 100 documents'
);
-- The rest of the file does not need them.
delete from public.documents where batch_id = tests.fx('batch_max');

-- ---------------------------------------------------------------------------
-- The upload trigger on storage.objects (the Storage API inserts the row
-- when a file is uploaded; here postgres does it directly).
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;
insert into marks select 'messages', count(*) from realtime.messages;

insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', (select storage_path from public.documents where id = tests.fx('doc:guide.pdf')), '{"size": 1234, "mimetype": "application/pdf"}');
select results_eq(
  $$select status, progress, size_bytes from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('queued'::public.document_status, 0::smallint, 1234::bigint)$$,
  'upload trigger: the uploaded file is queued, with the size Storage measured'
);
select results_eq(
  $$select method::text, url, headers ->> 'Authorization', headers ->> 'Content-Type', convert_from(body, 'UTF8')::jsonb, timeout_milliseconds
    from net.http_request_queue where id > pg_temp.mark('queue')$$,
  $$values ('POST', 'https://project.example.test/functions/v1/ingest', 'Bearer kb-test-key', 'application/json',
            jsonb_build_object('document_id', tests.fx('doc:guide.pdf')), 30000)$$,
  'upload trigger: exactly one POST to the ingest function, with the document id and the service key'
);
update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';

-- The same path in another bucket, and an unknown path in the knowledge bucket.
insert into storage.objects (bucket_id, name, metadata)
values ('kb-test-other', (select storage_path from public.documents where id = tests.fx('doc:notes.txt')), '{"size": 10}');
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', tests.fx('org_a')::text || '/' || gen_random_uuid()::text || '/notes.txt', '{"size": 10}');
select results_eq(
  $$select status, size_bytes from public.documents where id = tests.fx('doc:notes.txt')$$,
  $$values ('uploading'::public.document_status, 2048::bigint)$$,
  'upload trigger: an object in another bucket or at an unknown path leaves the documents alone'
);
select is_empty(
  $$select id from net.http_request_queue where id > pg_temp.mark('queue')$$,
  'upload trigger: and queues no ingestion'
);

-- ---------------------------------------------------------------------------
-- Ingestion steps, as the service role (the ingest function)
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok($$select pg_temp.begin_step('run1', 'doc:guide.pdf')$$, 'begin_ingest_step: the service role starts a run');
select results_eq(
  $$select org_id, storage_path, mime_type, name, cursor, next_chunk_index, status, run_id is not null from steps where label = 'run1'$$,
  $$select org_id, storage_path, mime_type, name, 0, 0, 'processing'::public.document_status, true
    from public.documents where id = tests.fx('doc:guide.pdf')$$,
  'begin_ingest_step: returns where the file is, a new run id, cursor 0, chunk 0 and status processing'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, progress, ingest_run, ingest_cursor, ingest_attempts, ingest_started_at is not null
    from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('processing'::public.document_status, 0::smallint, tests.fx('run1'), 0, 1, true)$$,
  'begin_ingest_step: the document is processing, in that run, at page 0, attempt 1'
);

select tests.act_as('service_role');
select is(
  private.save_ingest_step(tests.fx('doc:guide.pdf'), tests.fx('run1'), pg_temp.chunks(0, 2, 'first run'), 2, 40, 5),
  true,
  'save_ingest_step: the current run saves a step of 2 chunks'
);
select tests.act_as('postgres');
select results_eq(
  $$select chunk_index, page_start, content, token_count, embedding = pg_temp.vec(0.1, 0.2, 0.3)
    from private.document_chunk_staging where document_id = tests.fx('doc:guide.pdf') and run_id = tests.fx('run1') order by chunk_index$$,
  $$values (0, 1, 'first run chunk 0', 400, true), (1, 2, 'first run chunk 1', 400, true)$$,
  'save_ingest_step: the chunks are staged with their embeddings'
);
select results_eq(
  $$select ingest_cursor, progress, page_count from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values (2, 40::smallint, 5)$$,
  'save_ingest_step: cursor, progress and page count move on'
);
select is_empty(
  $$select 1 from public.document_chunks where document_id = tests.fx('doc:guide.pdf')$$,
  'save_ingest_step: nothing is searchable before the run finishes'
);

select tests.act_as('service_role');
select is(
  private.save_ingest_step(tests.fx('doc:guide.pdf'), tests.fx('run1'), pg_temp.chunks(2, 1, 'first run'), 5, 150, null),
  true,
  'save_ingest_step: a second step appends'
);
select tests.act_as('postgres');
select results_eq(
  $$select ingest_cursor, progress, page_count,
      (select count(*)::integer from private.document_chunk_staging s where s.document_id = d.id)
    from public.documents d where id = tests.fx('doc:guide.pdf')$$,
  $$values (5, 99::smallint, 5, 3)$$,
  'save_ingest_step: progress is capped at 99 until the run finishes, a null page count keeps the known one, 3 chunks staged'
);

-- A second invocation (say the first timed out) resumes the run.
select tests.act_as('service_role');
select pg_temp.begin_step('run1_again', 'doc:guide.pdf');
select results_eq(
  $$select run_id, cursor, next_chunk_index, status from steps where label = 'run1_again'$$,
  $$values (tests.fx('run1'), 5, 3, 'processing'::public.document_status)$$,
  'begin_ingest_step: a second call resumes the same run at its cursor and next chunk'
);
select tests.act_as('postgres');
select is(
  (select ingest_attempts from public.documents where id = tests.fx('doc:guide.pdf')),
  1,
  'begin_ingest_step: resuming is not a new attempt'
);

-- A step from a run that is no longer current (a stale invocation).
select tests.act_as('service_role');
select is(
  private.save_ingest_step(tests.fx('doc:guide.pdf'), gen_random_uuid(), pg_temp.chunks(3, 2, 'stale'), 9, 90, 9),
  false,
  'save_ingest_step: a step with a stale run id is refused'
);
select tests.act_as('postgres');
select results_eq(
  $$select ingest_cursor, progress, page_count,
      (select count(*)::integer from private.document_chunk_staging s where s.document_id = d.id)
    from public.documents d where id = tests.fx('doc:guide.pdf')$$,
  $$values (5, 99::smallint, 5, 3)$$,
  'save_ingest_step: the stale step staged nothing and moved nothing'
);

-- Nothing to begin: a document still uploading, or an unknown id.
select tests.act_as('service_role');
select pg_temp.begin_step('uploading', 'doc:notes.txt');
select results_eq(
  $$select run_id, status from steps where label = 'uploading'$$,
  $$values (null::uuid, 'uploading'::public.document_status)$$,
  'begin_ingest_step: a document not yet uploaded starts no run (the caller sees its status)'
);
select is_empty(
  $$select * from private.begin_ingest_step(gen_random_uuid())$$,
  'begin_ingest_step: an unknown document returns nothing'
);

-- The steps are the service role's alone.
select tests.act_as('owner_a');
select throws_ok(
  $$select * from private.begin_ingest_step(tests.fx('doc:guide.pdf'))$$,
  '42501', 'permission denied for function begin_ingest_step',
  'begin_ingest_step: even an owner may not call it'
);
select throws_ok(
  $$select private.save_ingest_step(tests.fx('doc:guide.pdf'), tests.fx('run1'), '[]', 9, 9, 9)$$,
  '42501', 'permission denied for function save_ingest_step',
  'save_ingest_step: nor this'
);
select throws_ok(
  $$select private.finish_ingest(tests.fx('doc:guide.pdf'), tests.fx('run1'))$$,
  '42501', 'permission denied for function finish_ingest',
  'finish_ingest: nor this'
);
select throws_ok(
  $$select private.fail_ingest(tests.fx('doc:guide.pdf'), tests.fx('run1'), 'no')$$,
  '42501', 'permission denied for function fail_ingest',
  'fail_ingest: nor this'
);

-- Finishing swaps the staged chunks in.
select tests.act_as('postgres');
insert into marks select 'events_a', count(*) from public.events where org_id = tests.fx('org_a');
select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('doc:guide.pdf'), tests.fx('run1')), 3, 'finish_ingest: returns the number of chunks');
select tests.act_as('postgres');
select results_eq(
  $$select status, progress, chunk_count, ingest_run, failure_reason, ingested_at is not null
    from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('ready'::public.document_status, 100::smallint, 3, null::uuid, null::text, true)$$,
  'finish_ingest: the document is ready at 100%, with its chunk count, and no run'
);
select results_eq(
  $$select org_id, collection_id, chunk_index, page_start, page_end, content, token_count
    from public.document_chunks where document_id = tests.fx('doc:guide.pdf') order by chunk_index$$,
  $$select tests.fx('org_a'), tests.fx('collection_a'), i, i + 1, i + 1, 'first run chunk ' || i, 400
    from generate_series(0, 2) i$$,
  'finish_ingest: all the staged chunks are searchable, with the org and the document''s collection'
);
select is_empty(
  $$select 1 from private.document_chunk_staging where document_id = tests.fx('doc:guide.pdf')$$,
  'finish_ingest: the staging is emptied'
);
select results_eq(
  $$select type, payload from public.events where org_id = tests.fx('org_a') and type like 'document.%'$$,
  $$values ('document.ready', jsonb_build_object('document_id', tests.fx('doc:guide.pdf'), 'name', 'guide.pdf',
            'collection_id', tests.fx('collection_a'), 'pages', 5, 'chunks', 3))$$,
  'finish_ingest: one document.ready event with the pages and chunks'
);
select tests.act_as('service_role');
select is(
  private.finish_ingest(tests.fx('doc:guide.pdf'), tests.fx('run1')),
  null,
  'finish_ingest: finishing the same run again does nothing'
);
insert into kept_chunks select 'first run', id from public.document_chunks where document_id = tests.fx('doc:guide.pdf');

-- Re-ingestion replaces the whole chunk set, and only at the end.
select tests.act_as('member_a');
select lives_ok(
  $$select public.retry_document(tests.fx('doc:guide.pdf'))$$,
  'retry_document: a member queues a ready document again'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, progress from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('queued'::public.document_status, 0::smallint)$$,
  'retry_document: the document is queued'
);
select results_eq(
  $$select url, convert_from(body, 'UTF8')::jsonb from net.http_request_queue where id > pg_temp.mark('queue')$$,
  $$values ('https://project.example.test/functions/v1/ingest', jsonb_build_object('document_id', tests.fx('doc:guide.pdf')))$$,
  'retry_document: and its ingestion is requested'
);
select tests.act_as('service_role');
select pg_temp.begin_step('run2', 'doc:guide.pdf');
select isnt(tests.fx('run2'), tests.fx('run1'), 'begin_ingest_step: the re-ingestion is a new run');
select is(
  private.save_ingest_step(tests.fx('doc:guide.pdf'), tests.fx('run2'), pg_temp.chunks(0, 2, 'second run'), 3, 100, 3),
  true,
  'save_ingest_step: the new run stages its chunks'
);
select tests.act_as('postgres');
select results_eq(
  $$select id, content from public.document_chunks where document_id = tests.fx('doc:guide.pdf') order by id$$,
  $$select c.id, c.content from public.document_chunks c join kept_chunks k on k.chunk_id = c.id and k.label = 'first run' order by c.id$$,
  're-ingestion: while the new run is staged, the old chunks (and only they) stay searchable'
);
select tests.act_as('service_role');
select is(private.finish_ingest(tests.fx('doc:guide.pdf'), tests.fx('run2')), 2, 'finish_ingest: the new run finishes with 2 chunks');
select tests.act_as('postgres');
select results_eq(
  $$select chunk_index, content from public.document_chunks where document_id = tests.fx('doc:guide.pdf') order by chunk_index$$,
  $$values (0, 'second run chunk 0'), (1, 'second run chunk 1')$$,
  're-ingestion: the new chunk set replaced the old one'
);
select is_empty(
  $$select 1 from public.document_chunks c join kept_chunks k on k.chunk_id = c.id$$,
  're-ingestion: none of the old rows is left'
);
select results_eq(
  $$select chunk_count, page_count, ingest_attempts from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values (2, 3, 1)$$,
  're-ingestion: chunk and page counts are the new ones; a retry starts a fresh budget of attempts (20261123001300)'
);

-- A run without any chunk fails with the no-text reason.
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', (select storage_path from public.documents where id = tests.fx('doc:notes.txt')), '{"size": 2048}');
select tests.act_as('service_role');
select pg_temp.begin_step('run_empty', 'doc:notes.txt');
select is(private.finish_ingest(tests.fx('doc:notes.txt'), tests.fx('run_empty')), 0, 'finish_ingest: a run with no chunks returns 0');
select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, progress, chunk_count, ingest_run from public.documents where id = tests.fx('doc:notes.txt')$$,
  $$values ('failed'::public.document_status, 'The file contains no text to index (a scanned document needs OCR first).',
            0::smallint, 0, null::uuid)$$,
  'finish_ingest: with no chunks the document fails with the no-text reason'
);
select results_eq(
  $$select payload from public.events where org_id = tests.fx('org_a') and type = 'document.failed'$$,
  $$values (jsonb_build_object('document_id', tests.fx('doc:notes.txt'), 'name', 'notes.txt',
            'reason', 'The file contains no text to index (a scanned document needs OCR first).'))$$,
  'finish_ingest: and a document.failed event is emitted'
);

-- fail_ingest in the middle of a new upload's run: nothing staged stays, nor do the old chunks (the file changed;
-- a failed retry of the same file keeps them since 20261123011400, pgTAP 287).
select tests.act_as('postgres');
update storage.objects set metadata = '{"size": 1234, "mimetype": "application/pdf"}'
where bucket_id = 'knowledge' and name = (select storage_path from public.documents where id = tests.fx('doc:guide.pdf'));
select is(
  (select status from public.documents where id = tests.fx('doc:guide.pdf')), 'queued'::public.document_status,
  'upload trigger: the file uploaded again queues the ready document'
);
select tests.act_as('service_role');
select pg_temp.begin_step('run3', 'doc:guide.pdf');
select private.save_ingest_step(tests.fx('doc:guide.pdf'), tests.fx('run3'), pg_temp.chunks(0, 1, 'third run'), 1, 30, 3);
select is(
  private.fail_ingest(tests.fx('doc:guide.pdf'), gen_random_uuid(), 'stale'),
  false,
  'fail_ingest: a stale run cannot fail the document'
);
select is(
  private.fail_ingest(tests.fx('doc:guide.pdf'), tests.fx('run3'), '  Embedding service unavailable  '),
  true,
  'fail_ingest: the current run fails the document'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, progress, chunk_count, ingest_run from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('failed'::public.document_status, 'Embedding service unavailable', 0::smallint, 0, null::uuid)$$,
  'fail_ingest: failed with the trimmed reason, no progress, no chunks, no run'
);
select is_empty(
  $$select 1 from private.document_chunk_staging where document_id = tests.fx('doc:guide.pdf')$$,
  'fail_ingest: the staged chunks are discarded'
);
select is_empty(
  $$select 1 from public.document_chunks where document_id = tests.fx('doc:guide.pdf')$$,
  'fail_ingest: the chunks of the earlier run are removed too (they describe a file being replaced)'
);
select results_eq(
  $$select payload ->> 'reason' from public.events
    where org_id = tests.fx('org_a') and type = 'document.failed' and payload ->> 'document_id' = tests.fx('doc:guide.pdf')::text$$,
  $$values ('Embedding service unavailable')$$,
  'fail_ingest: a document.failed event carries the reason'
);
select is(
  (select count(*) - pg_temp.mark('events_a') from public.events where org_id = tests.fx('org_a')),
  4::bigint,
  'events: ready twice, failed twice; nothing else'
);
select tests.act_as('service_role');
select is(
  private.fail_ingest(tests.fx('doc:guide.pdf'), null, 'again'),
  false,
  'fail_ingest: a document that is not queued or processing is left alone'
);

-- retry_document refusals.
select tests.act_as('viewer_a');
select throws_ok(
  $$select public.retry_document(tests.fx('doc:guide.pdf'))$$,
  '42501', 'you do not have the knowledge.write permission in this organization',
  'retry_document: a viewer may not retry'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.retry_document(tests.fx('doc:guide.pdf'))$$,
  'PT404', 'document not found',
  'retry_document: to the owner of another org the document does not exist (20261123001300)'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.retry_document(gen_random_uuid())$$,
  'PT404', 'document not found',
  'retry_document: an unknown document is not found'
);
select lives_ok(
  $$select public.retry_document(tests.fx('doc:guide.pdf'))$$,
  'retry_document: a member retries a failed document'
);
select tests.act_as('service_role');
select pg_temp.begin_step('run4', 'doc:guide.pdf');
select tests.act_as('member_a');
select is(
  (select status from public.retry_document(tests.fx('doc:guide.pdf'))), 'processing'::public.document_status,
  'retry_document sent again while its retry runs: the document as it is, not queued again (20261123011400; it raised 22023)'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, ingest_run from public.documents where id = tests.fx('doc:guide.pdf')$$,
  $$values ('processing'::public.document_status, tests.fx('run4'))$$,
  'retry_document: the refused retries left the run alone'
);
select is(
  (select failure_reason from public.documents where id = tests.fx('doc:notes.txt')),
  'The file contains no text to index (a scanned document needs OCR first).',
  'retry_document: the refused retry by the viewer left the failed document as it was'
);

-- ---------------------------------------------------------------------------
-- Live status on org:<org>:uploads
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select results_eq(
  $$select distinct payload -> 'record' ->> 'status' from realtime.messages
    where topic = 'org:' || tests.fx('org_a') || ':uploads' and payload -> 'record' ->> 'id' = tests.fx('doc:guide.pdf')::text
    order by 1$$,
  $$values ('failed'), ('processing'), ('queued'), ('ready'), ('uploading')$$,
  'broadcast: every status of the document went out on org:<org>:uploads'
);
select ok(
  (select count(*) from realtime.messages
   where topic = 'org:' || tests.fx('org_a') || ':uploads' and event = 'UPDATE'
     and payload -> 'record' ->> 'id' = tests.fx('doc:guide.pdf')::text
     and payload -> 'record' ->> 'status' = 'processing' and payload -> 'record' ->> 'progress' = '99') > 0,
  'broadcast: progress ticks go out too'
);
select is_empty(
  $$select 1 from realtime.messages
    where payload ->> 'table' = 'documents' and payload -> 'record' ->> 'org_id' = tests.fx('org_a')::text
      and topic <> 'org:' || tests.fx('org_a') || ':uploads'$$,
  'broadcast: org A''s documents go out on no other topic'
);
-- Receiving, as the Realtime server authorises a join (the topic set locally).
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':uploads', true);
select tests.act_as('viewer_a');
select isnt_empty(
  $$select 1 from realtime.messages where topic = realtime.topic()$$,
  'broadcast: a viewer of org A receives the uploads channel'
);
select tests.act_as('owner_b');
select is_empty(
  $$select 1 from realtime.messages where topic = realtime.topic()$$,
  'broadcast: the owner of org B does not'
);

-- ---------------------------------------------------------------------------
-- upload_batch_progress
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select pg_temp.create_batch('batch2', 'org_a', jsonb_build_array(
  pg_temp.file('p-ready.pdf'), pg_temp.file('p-failed.pdf'), pg_temp.file('p-half.pdf'), pg_temp.file('p-new.pdf')));
select tests.act_as('postgres');
-- The states ingestion would leave them in, set directly.
update public.documents set status = 'ready', progress = 100 where id = tests.fx('doc:p-ready.pdf');
update public.documents set status = 'failed', failure_reason = 'x' where id = tests.fx('doc:p-failed.pdf');
update public.documents set status = 'processing', progress = 50 where id = tests.fx('doc:p-half.pdf');
-- A batch whose documents were all deleted.
with created as (insert into public.upload_batches (org_id) values (tests.fx('org_a')) returning id)
select tests.remember('batch_empty', id) from created;

select tests.act_as('viewer_a');
select results_eq(
  $$select files, ready, failed, in_progress, percent from public.upload_batch_progress where batch_id = tests.fx('batch2')$$,
  $$values (4, 1, 1, 2, 63)$$,
  'upload_batch_progress: files, ready, failed, in progress, and percent (finished files count as 100, 250/4 rounds to 63)'
);
select results_eq(
  $$select files, ready, failed, in_progress, percent from public.upload_batch_progress where batch_id = tests.fx('batch1')$$,
  $$values (2, 0, 1, 1, 50)$$,
  'upload_batch_progress: batch 1 has one failed file and one processing at 0%'
);
select results_eq(
  $$select files, ready, failed, in_progress, percent from public.upload_batch_progress where batch_id = tests.fx('batch_empty')$$,
  $$values (0, 0, 0, 0, 100)$$,
  'upload_batch_progress: a batch without documents (every file deleted) is complete: 100% (20261123007900)'
);
select tests.act_as('owner_b');
select is_empty(
  $$select 1 from public.upload_batch_progress where org_id = tests.fx('org_a')$$,
  'upload_batch_progress: another org sees none of org A''s batches'
);
select tests.act_as('anon');
select throws_ok(
  $$select 1 from public.upload_batch_progress$$,
  '42501', 'permission denied for view upload_batch_progress',
  'upload_batch_progress: anon may not read it'
);

-- ---------------------------------------------------------------------------
-- match_document_chunks. Chunks inserted as postgres (as finish_ingest
-- would), one-hot-ish embeddings: for the query e1, org A's chunks are at
-- cosine similarity 1, 0.8, 0.2 and 0; org B holds an exact match too.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status, progress)
values
  (gen_random_uuid(), tests.fx('org_a'), tests.fx('collection_a'), 'store.md', 'text/markdown', 10, 'kb-test/a/store.md', 'ready', 100),
  (gen_random_uuid(), tests.fx('org_a'), null, 'misc.md', 'text/markdown', 10, 'kb-test/a/misc.md', 'ready', 100),
  (gen_random_uuid(), tests.fx('org_b'), tests.fx('collection_b'), 'b.md', 'text/markdown', 10, 'kb-test/b/b.md', 'ready', 100);
select tests.remember('doc:' || name, id) from public.documents where storage_path like 'kb-test/%';
insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
values
  (tests.fx('org_a'), tests.fx('doc:store.md'), tests.fx('collection_a'), 0, 1, 1,
   'Opening hours of the Lisbon store', 7, pg_temp.vec(1, 0, 0)),
  (tests.fx('org_a'), tests.fx('doc:misc.md'), null, 0, 1, 1,
   'Parking next to the store', 5, pg_temp.vec(0.8, 0.6, 0)),
  (tests.fx('org_a'), tests.fx('doc:store.md'), tests.fx('collection_a'), 1, 2, 2,
   'Refund policy for damaged parcels', 5, pg_temp.vec(0.2, 0.98, 0)),
  (tests.fx('org_a'), tests.fx('doc:misc.md'), null, 1, 2, 3,
   'Team holiday calendar', 3, pg_temp.vec(0, 0, 1)),
  (tests.fx('org_b'), tests.fx('doc:b.md'), tests.fx('collection_b'), 0, 1, 1,
   'Refund policy of org B for parcels', 7, pg_temp.vec(1, 0, 0));
insert into kept_chunks select content, id from public.document_chunks where document_id in
  (tests.fx('doc:store.md'), tests.fx('doc:misc.md'), tests.fx('doc:b.md'));
create function pg_temp.chunk(content text)
returns bigint
language sql
stable
as $$ select k.chunk_id from kept_chunks k where k.label = $1 $$;
grant execute on function pg_temp.chunk(text) to public;

select tests.act_as('viewer_a');
select results_eq(
  $$select chunk_id, document_id, document_name, collection_id, page_start, page_end, vector_rank, text_rank, round(score::numeric, 12)
    from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 10)$$,
  $$values
    (pg_temp.chunk('Opening hours of the Lisbon store'), tests.fx('doc:store.md'), 'store.md', tests.fx('collection_a'), 1, 1, 1, null::integer, round(1.0 / 61, 12)),
    (pg_temp.chunk('Parking next to the store'), tests.fx('doc:misc.md'), 'misc.md', null, 1, 1, 2, null, round(1.0 / 62, 12)),
    (pg_temp.chunk('Refund policy for damaged parcels'), tests.fx('doc:store.md'), 'store.md', tests.fx('collection_a'), 2, 2, 3, null, round(1.0 / 63, 12)),
    (pg_temp.chunk('Team holiday calendar'), tests.fx('doc:misc.md'), 'misc.md', null, 2, 3, 4, null, round(1.0 / 64, 12))$$,
  'match_document_chunks: a viewer gets org A''s chunks by vector similarity, with document, pages and RRF score (org B''s exact match is not among them)'
);
select results_eq(
  $$select content, vector_rank, text_rank
    from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), 'refund parcels', 10)$$,
  $$values
    ('Refund policy for damaged parcels', 3, 1),
    ('Opening hours of the Lisbon store', 1, null::integer),
    ('Parking next to the store', 2, null),
    ('Team holiday calendar', 4, null)$$,
  'match_document_chunks: hybrid: the only chunk matching the text ranks first though it is third by vector'
);
select results_eq(
  $$select chunk_id, vector_rank, text_rank, score from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), 'is it at the', 10)$$,
  $$select chunk_id, vector_rank, text_rank, score from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 10)$$,
  'match_document_chunks: a text without words of 4 letters or more ranks by vector alone, as no text does'
);
select results_eq(
  $$select content from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 10, array[tests.fx('collection_a')])$$,
  $$values ('Opening hours of the Lisbon store'), ('Refund policy for damaged parcels')$$,
  'match_document_chunks: the collection filter keeps only that collection''s chunks'
);
select is_empty(
  $$select 1 from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), 'refund', 10, array[tests.fx('collection_b')])$$,
  'match_document_chunks: another org''s collection matches nothing in org A'
);
select results_eq(
  $$select content from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(0, 0.1, 1), null, 2)$$,
  $$values ('Team holiday calendar'), ('Refund policy for damaged parcels')$$,
  'match_document_chunks: match_count limits the rows, nearest first'
);
select is_empty(
  $$select 1 from public.match_document_chunks(tests.fx('org_b'), pg_temp.vec(1, 0, 0), 'refund', 10)$$,
  'match_document_chunks: asking for another org''s id returns nothing (RLS)'
);
select throws_ok(
  $$select 1 from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 0)$$,
  '22023', 'match_count must be between 1 and 50',
  'match_document_chunks: match_count 0 is refused'
);
select throws_ok(
  $$select 1 from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 51)$$,
  '22023', 'match_count must be between 1 and 50',
  'match_document_chunks: match_count 51 is refused'
);
select throws_ok(
  $$select 1 from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, null)$$,
  '22023', 'match_count must be between 1 and 50',
  'match_document_chunks: a null match_count is refused'
);
select tests.act_as('owner_b');
select results_eq(
  $$select content from public.match_document_chunks(tests.fx('org_b'), pg_temp.vec(1, 0, 0), 'refund', 10)$$,
  $$values ('Refund policy of org B for parcels')$$,
  'match_document_chunks: org B''s owner gets org B''s chunk only'
);
select tests.act_as('anon');
select throws_ok(
  $$select 1 from public.match_document_chunks(tests.fx('org_a'), pg_temp.vec(1, 0, 0), null, 10)$$,
  '42501', 'permission denied for function match_document_chunks',
  'match_document_chunks: anon may not search'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select 1 from private.document_chunk_staging$$,
  '42501', 'permission denied for table document_chunk_staging',
  'staging: signed-in users cannot read the chunks of a run in progress'
);

-- ---------------------------------------------------------------------------
-- Usage metering
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$select private.record_usage(tests.fx('org_a'), 'embedding', 'text-embedding-3-small', 1200, 0, tests.fx('doc:guide.pdf'))$$,
  'record_usage: the service role records tokens'
);
select throws_ok(
  $$select private.record_usage(tests.fx('org_a'), 'vision', 'x', 1, 0)$$,
  '23514', 'new row for relation "usage_events" violates check constraint "usage_events_kind"',
  'record_usage: an unknown kind is refused'
);
select throws_ok(
  $$select private.record_usage(tests.fx('org_a'), 'chat', 'x', -1, 0)$$,
  '23514', 'new row for relation "usage_events" violates check constraint "usage_events_tokens_in_check"',
  'record_usage: negative tokens are refused'
);
select tests.act_as('member_a');
select throws_ok(
  $$select private.record_usage(tests.fx('org_a'), 'embedding', 'x', 1, 0)$$,
  '42501', 'permission denied for function record_usage',
  'record_usage: a signed-in user may not record usage'
);
select throws_ok(
  $$insert into public.usage_events (org_id, kind, model) values (tests.fx('org_a'), 'embedding', 'x')$$,
  '42501', 'permission denied for table usage_events',
  'usage_events: nor write the table directly'
);
select is_empty($$select 1 from public.usage_events$$, 'usage_events: a member does not see usage (usage.read is admin and up)');
select tests.act_as('admin_a');
select results_eq(
  $$select org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id from public.usage_events$$,
  $$values (tests.fx('org_a'), 'embedding', 'text-embedding-3-small', 1200, 0, tests.fx('doc:guide.pdf'), null::uuid)$$,
  'usage_events: an admin sees the org''s usage, one row'
);
select tests.act_as('owner_b');
select is_empty($$select 1 from public.usage_events$$, 'usage_events: another org''s owner sees none of it');

-- Knowledge files go with their documents (20261123003600).
select tests.act_as('postgres');
select set_config('storage.allow_delete_query', 'true', true);
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', tests.fx('org_a') || '/stray/leftover.txt', '{"size": 3}');
select tests.act_as('admin_a');
with deleted as (
  delete from storage.objects
  where bucket_id = 'knowledge' and name = (select storage_path from public.documents where id = tests.fx('doc:guide.pdf'))
  returning 1
)
select is(count(*)::integer, 0, 'storage: an admin cannot delete a document''s file behind its back') from deleted;
with deleted as (
  delete from storage.objects where bucket_id = 'knowledge' and name = tests.fx('org_a') || '/stray/leftover.txt'
  returning 1
)
select is(count(*)::integer, 1, 'storage: but deletes a knowledge object no document points at') from deleted;
select tests.act_as('postgres');
select isnt_empty(
  $$select 1 from storage.objects
    where bucket_id = 'knowledge' and name = (select storage_path from public.documents where id = tests.fx('doc:guide.pdf'))$$,
  'storage: the document''s file is still there'
);

select * from finish();
rollback;
