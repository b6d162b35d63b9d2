-- Knowledge-file corrections (20261123007000_knowledge_file_moves_and_requeues.sql):
-- a document's file cannot be moved or renamed (so it cannot be made a stray
-- file and deleted behind its document), while uploading it again (an
-- upsert, hosted Storage's way too), changing its metadata and moving other
-- files go on as before; and a document being deleted is not queued again
-- when its file is uploaded again.
begin;
create extension if not exists pgtap with schema extensions;

select plan(12);

select tests.remember('owner', tests.create_user('owner@file-moves.test'));
select tests.remember('member', tests.create_user('member@file-moves.test'));
select tests.remember('org', tests.create_org('file-moves', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
select tests.remember('doc', gen_random_uuid());
select tests.remember('marked', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress, ingested_at)
values
  (tests.fx('doc'), tests.fx('org'), 'manual.pdf', 'application/pdf', 10,
   tests.fx('org') || '/' || tests.fx('doc') || '/manual.pdf', 'ready', 100, now()),
  (tests.fx('marked'), tests.fx('org'), 'old.txt', 'text/plain', 10,
   tests.fx('org') || '/' || tests.fx('marked') || '/old.txt', 'ready', 100, now());
insert into storage.objects (bucket_id, name, owner_id, metadata)
values
  ('knowledge', tests.fx('org') || '/' || tests.fx('doc') || '/manual.pdf', tests.fx('member')::text, '{"size": 10}'),
  ('knowledge', tests.fx('org') || '/' || tests.fx('marked') || '/old.txt', tests.fx('member')::text, '{"size": 10}'),
  ('knowledge', tests.fx('org') || '/stray/notes.txt', tests.fx('member')::text, '{"size": 3}');
-- The inserts queued both documents; they are ready again, as if ingested.
update public.documents set status = 'ready', progress = 100, ingest_run = null
where id in (tests.fx('doc'), tests.fx('marked'));

create function pg_temp.doc_path(fixture text) returns text language sql as $$
  select d.storage_path from public.documents d where d.id = tests.fx(fixture);
$$;
grant execute on function pg_temp.doc_path(text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- A document's file stays where its document says
-- ---------------------------------------------------------------------------

select tests.act_as('member');
select throws_ok(
  $$update storage.objects set name = tests.fx('org') || '/x.pdf'
    where bucket_id = 'knowledge' and name = pg_temp.doc_path('doc')$$,
  '42501', format('the file %s belongs to a document; delete the document instead of moving its file', pg_temp.doc_path('doc')),
  'a member cannot move a document''s file out of its place'
);
select throws_ok(
  $$update storage.objects set name = pg_temp.doc_path('doc') || '.bak'
    where bucket_id = 'knowledge' and name = pg_temp.doc_path('doc')$$,
  '42501', null,
  'nor rename it in its folder'
);
select tests.act_as('service_role');
select throws_ok(
  $$update storage.objects set bucket_id = 'exports'
    where bucket_id = 'knowledge' and name = pg_temp.doc_path('doc')$$,
  '42501', null,
  'nor can the service role move it to another bucket'
);
select tests.act_as('postgres');
select results_eq(
  $$select o.name, d.status from storage.objects o join public.documents d on d.storage_path = o.name
    where o.bucket_id = 'knowledge' and d.id = tests.fx('doc')$$,
  $$values (pg_temp.doc_path('doc'), 'ready'::public.document_status)$$,
  'the file is still at the document''s path, the document ready'
);

-- ---------------------------------------------------------------------------
-- Everything else as before
-- ---------------------------------------------------------------------------

select tests.act_as('member');
select throws_ok(
  $$update storage.objects set name = tests.fx('org') || '/stray/renamed.txt'
    where bucket_id = 'knowledge' and name = tests.fx('org') || '/stray/notes.txt'$$,
  '42501', format('moving or renaming %s needs the files.delete permission', tests.fx('org') || '/stray/notes.txt'),
  'a member cannot move even a file no document points at: a move takes it away as a delete does'
);
select tests.act_as('owner');
with moved as (
  update storage.objects set name = tests.fx('org') || '/stray/renamed.txt'
  where bucket_id = 'knowledge' and name = tests.fx('org') || '/stray/notes.txt'
  returning 1
)
select is(count(*)::integer, 1, 'an owner (files.delete) moves a knowledge file no document points at') from moved;
select tests.act_as('member');
with updated as (
  update storage.objects set metadata = '{"size": 10, "cacheControl": "max-age=60"}'
  where bucket_id = 'knowledge' and name = pg_temp.doc_path('doc')
  returning 1
)
select is(count(*)::integer, 1, 'a member changes a document file''s metadata') from updated;
select tests.act_as('postgres');
update public.documents set status = 'ready', progress = 100, ingest_run = null where id = tests.fx('doc');

-- Uploading again, as hosted Storage's upsert writes it: the conflict updates every inserted column, bucket_id
-- and name to the values they had.
select tests.act_as('member');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('knowledge', pg_temp.doc_path('doc'), tests.fx('member')::text, '{"size": 12}')
    on conflict (bucket_id, name) do update
    set bucket_id = excluded.bucket_id, name = excluded.name, owner_id = excluded.owner_id, metadata = excluded.metadata$$,
  'a document''s file is uploaded again over itself (upsert)'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, size_bytes from public.documents where id = tests.fx('doc')$$,
  $$values ('queued'::public.document_status, 12::bigint)$$,
  'the upload queues the document again, with the new size'
);

-- ---------------------------------------------------------------------------
-- A document being deleted is not queued by an upload of its file
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select private.begin_document_deletion(tests.fx('marked'));
select tests.act_as('member');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('knowledge', pg_temp.doc_path('marked'), tests.fx('member')::text, '{"size": 14}')
    on conflict (bucket_id, name) do update set metadata = excluded.metadata$$,
  'the file of a document being deleted is uploaded again'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, progress, size_bytes, deletion_started_at is not null from public.documents where id = tests.fx('marked')$$,
  $$values ('ready'::public.document_status, 100::smallint, 10::bigint, true)$$,
  'the marked document stays as it was: not queued, its size unchanged'
);
select is(
  (select count(*)::integer from public.documents where id = tests.fx('doc') and status = 'queued'), 1,
  'while an unmarked document''s re-upload still queues it'
);

select * from finish();
rollback;
