-- Knowledge-base corrections (20261123007900_knowledge_deletion_and_paths.sql): a document being deleted keeps
-- no chunks (so no search returns it), a knowledge object is stored only at the path of a document not being
-- deleted, a batch with no file left is at 100%, no object is moved onto a document's path, and a running step's
-- heartbeat keeps the sweeper away from its run.
begin;
create extension if not exists pgtap with schema extensions;

select plan(21);

delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('kb2-fixes-test-key', 'service_role_key');

select tests.remember('owner', tests.create_user('owner@kb-deletion-paths.test'));
select tests.remember('member', tests.create_user('member@kb-deletion-paths.test'));
select tests.remember('org', tests.create_org('kb-deletion-paths', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
select tests.remember('doomed', gen_random_uuid());
select tests.remember('waiting', gen_random_uuid());
select tests.remember('running', gen_random_uuid());
select tests.remember('run', gen_random_uuid());
select tests.remember('batch', gen_random_uuid());

insert into public.upload_batches (id, org_id) values (tests.fx('batch'), tests.fx('org'));
insert into public.documents (id, org_id, batch_id, name, mime_type, size_bytes, storage_path, status, progress,
                              chunk_count, page_count, ingest_run, ingest_cursor)
values
  (tests.fx('doomed'), tests.fx('org'), tests.fx('batch'), 'doomed.txt', 'text/plain', 10,
   tests.fx('org') || '/' || tests.fx('doomed') || '/doomed.txt', 'processing', 50, 1, 4, tests.fx('run'), 2),
  (tests.fx('waiting'), tests.fx('org'), null, 'waiting.txt', 'text/plain', 10,
   tests.fx('org') || '/' || tests.fx('waiting') || '/waiting.txt', 'uploading', 0, 0, null, null, 0),
  (tests.fx('running'), tests.fx('org'), null, 'running.txt', 'text/plain', 10,
   tests.fx('org') || '/' || tests.fx('running') || '/running.txt', 'processing', 20, 0, 10, tests.fx('run'), 2);
-- An earlier run's chunk (a re-ingestion is in flight) and the current run's staged one.
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org'), tests.fx('doomed'), 0, 1, 1, 'zanzibar quokka warranty', 3,
        array_fill(0.1::real, array[1536])::extensions.vector);
insert into private.document_chunk_staging (run_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('run'), tests.fx('doomed'), 0, 1, 1, 'staged', 1, array_fill(0.1::real, array[1536])::extensions.vector);
insert into storage.objects (bucket_id, name, metadata)
values ('knowledge', tests.fx('org') || '/stray/notes.txt', '{"size": 3}');

-- ---------------------------------------------------------------------------
-- 1. The mark takes the chunks away
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org'), array_fill(0.1::real, array[1536])::extensions.vector,
     'zanzibar quokka')),
  1, 'before: the document''s chunk is found');
select private.begin_document_deletion(tests.fx('doomed'));
select is(
  (select count(*)::integer from public.match_document_chunks(tests.fx('org'), array_fill(0.1::real, array[1536])::extensions.vector,
     'zanzibar quokka')),
  0, 'right after begin_document_deletion, match_document_chunks no longer finds it');
select is(
  (select count(*)::integer from public.match_document_chunks_by_text(tests.fx('org'), 'zanzibar quokka')),
  0, 'nor does match_document_chunks_by_text');
select tests.act_as('postgres');
select results_eq(
  $$select chunk_count, deletion_started_at is not null, status from public.documents where id = tests.fx('doomed')$$,
  $$values (0, true, 'processing'::public.document_status)$$,
  'the document is marked with chunk_count 0');
select is((select count(*)::integer from private.document_chunk_staging where document_id = tests.fx('doomed')), 0,
  'its staged chunks are gone too');
select is((select count(*)::integer from private.chunk_term_counts where org_id = tests.fx('org') and term = 'zanzibar'), 0,
  'the chunk term counts follow');
select tests.act_as('service_role');
select is(
  private.save_ingest_step(tests.fx('doomed'), tests.fx('run'),
    jsonb_build_array(jsonb_build_object('chunk_index', 1, 'page_start', 2, 'page_end', 2, 'content', 'late', 'token_count', 1,
      'embedding', array_fill(0.1::real, array[1536])::extensions.vector::text)),
    3, 75, 4),
  false, 'a step that was embedding when the mark came stages nothing');
select is(private.finish_ingest(tests.fx('doomed'), tests.fx('run')), null, 'nor can it finish the run');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.document_chunks where document_id = tests.fx('doomed'))
    + (select count(*)::integer from private.document_chunk_staging where document_id = tests.fx('doomed')),
  0, 'so no chunk comes back');

-- ---------------------------------------------------------------------------
-- 2. Objects only at a live document's path
-- ---------------------------------------------------------------------------

select tests.act_as('member');
select throws_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata) values ('knowledge', %L, %L, '{"size": 10}')$$,
    tests.fx('org') || '/' || gen_random_uuid() || '/gone.txt', tests.fx('member')),
  '42501', null, 'a member cannot store a file no document names (its document deleted)');
select throws_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata) values ('knowledge', %L, %L, '{"size": 10}')$$,
    tests.fx('org') || '/' || tests.fx('doomed') || '/doomed.txt', tests.fx('member')),
  '42501', null, 'nor the file of a document being deleted');
select lives_ok(
  format($$insert into storage.objects (bucket_id, name, owner_id, metadata) values ('knowledge', %L, %L, '{"size": 10}')$$,
    tests.fx('org') || '/' || tests.fx('waiting') || '/waiting.txt', tests.fx('member')),
  'while a registered document''s file is stored');
select tests.act_as('service_role');
select throws_ok(
  format($$insert into storage.objects (bucket_id, name, metadata) values ('knowledge', %L, '{"size": 10}')
           on conflict (bucket_id, name) do update set metadata = excluded.metadata$$,
    tests.fx('org') || '/' || gen_random_uuid() || '/gone.txt'),
  '42501', null, 'the service role is held to it as well, upsert or not');
select tests.act_as('postgres');
select results_eq(
  $$select status from public.documents where id = tests.fx('waiting')$$,
  $$values ('queued'::public.document_status)$$,
  'the registered upload queued its document');

-- ---------------------------------------------------------------------------
-- 3. A batch with no file left is complete
-- ---------------------------------------------------------------------------

delete from public.documents where id = tests.fx('doomed');
select results_eq(
  $$select files, in_progress, percent from public.upload_batch_progress where batch_id = tests.fx('batch')$$,
  $$values (0, 0, 100)$$,
  'a batch whose files were all deleted is at 100%');

-- ---------------------------------------------------------------------------
-- 4. No move onto a document's path
-- ---------------------------------------------------------------------------

insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values (gen_random_uuid(), tests.fx('org'), 'target.txt', 'text/plain', 3, tests.fx('org') || '/target/target.txt', 'uploading');
select tests.act_as('owner');
select throws_ok(
  format($$update storage.objects set name = %L where bucket_id = 'knowledge' and name = %L$$,
    tests.fx('org') || '/target/target.txt', tests.fx('org') || '/stray/notes.txt'),
  '42501', null, 'an owner cannot move a file onto a document''s path');
select lives_ok(
  format($$update storage.objects set name = %L where bucket_id = 'knowledge' and name = %L$$,
    tests.fx('org') || '/stray/renamed.txt', tests.fx('org') || '/stray/notes.txt'),
  'while moving a stray file elsewhere still works');

-- ---------------------------------------------------------------------------
-- 5. The heartbeat of a running step
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
alter table public.documents disable trigger documents_set_updated_at;
update public.documents set updated_at = now() - interval '3 minutes' where id = tests.fx('running');
alter table public.documents enable trigger documents_set_updated_at;
select tests.act_as('service_role');
select is(private.ingest_heartbeat(tests.fx('running'), gen_random_uuid()), false, 'another run''s heartbeat is refused');
select is(private.ingest_heartbeat(tests.fx('running'), tests.fx('run')), true, 'the current run''s heartbeat is taken');
select tests.act_as('postgres');
select ok((select updated_at > now() - interval '1 minute' from public.documents where id = tests.fx('running')),
  'it restarts the run''s idle clock');
select private.retry_stuck_ingestion();
select is((select ingest_stalls::integer from public.documents where id = tests.fx('running')), 0,
  'so the sweeper does not wake a run whose step is waiting on the provider');

select * from finish();
rollback;
