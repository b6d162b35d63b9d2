-- Upload batch fixes (20261123015700_upload_batch_fixes.sql): create_upload_batch answers in the order of files;
-- upload_batch_progress.percent is at most 99 until every file is finished and counts deleted files as done; a
-- batch over the documents quota is refused with its own numbers, and key-shares its collection before the
-- subscription; a batch with file_count 0 (from before the migration) averages its live files; the last
-- ingestion step's collection lock
-- (private.share_document_collection) key-shares the collection and leaves the document unlocked.
--
-- The deadlock itself needs two sessions and PGlite runs one: the order of the step's statements is checked in
-- tests/functions/ingest-publish-lock.test.ts, the lock's mode here. Row locks do not show in pg_locks: the call
-- runs in a savepoint (its own xid), then this transaction locks the row for no key update, which turns xmax
-- into a multixact whose members and modes pg_get_multixact_members lists (as pgTAP 259 does).
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

delete from vault.secrets where name in ('project_url', 'service_role_key');
insert into tests.fixtures values
  ('owner_331', tests.create_user('owner-331@upload-batch-fixes.test'));
insert into tests.fixtures values
  ('org_331', tests.create_org('upload-batch-fixes-331', tests.fx('owner_331'))),
  ('quota_org_331', tests.create_org('upload-batch-fixes-331-quota', tests.fx('owner_331')));
-- Room for the progress batches (111 files); quota_org_331 stays on Free (50 documents).
update public.subscriptions set plan_id = 'pro' where org_id = tests.fx('org_331') and status = 'active';

-- n text files named f1.txt ... fn.txt.
create function pg_temp.files(n integer)
returns jsonb
language sql
as $$
  select jsonb_agg(jsonb_build_object('name', 'f' || i || '.txt', 'mime_type', 'text/plain', 'size_bytes', 10) order by i)
  from generate_series(1, n) i
$$;
grant execute on function pg_temp.files(integer) to authenticated;

-- ---------------------------------------------------------------------------
-- 1. The answer in the order of files
-- ---------------------------------------------------------------------------

select tests.act_as('owner_331');
create temp table ordered_331 as
select row_number() over () as n, d.*
from public.create_upload_batch(tests.fx('org_331'), '[
  {"name": "zeta.pdf", "mime_type": "application/pdf", "size_bytes": 300},
  {"name": "Alpha.txt", "mime_type": "text/plain", "size_bytes": 100},
  {"name": "notes.txt", "mime_type": "text/plain", "size_bytes": 7},
  {"name": "notes.txt", "mime_type": "text/plain", "size_bytes": 8},
  {"name": " beta.md", "mime_type": "text/markdown", "size_bytes": 200}
]'::jsonb) d;
select tests.act_as('postgres');
select results_eq(
  $$select name, size_bytes from ordered_331 order by n$$,
  $$values ('zeta.pdf', 300::bigint), ('Alpha.txt', 100::bigint), ('notes.txt', 7::bigint), ('notes.txt', 8::bigint),
           ('beta.md', 200::bigint)$$,
  'create_upload_batch answers one document per file in the order of files (not by name), duplicates and trimmed names included');
select ok((select bool_and(storage_path = org_id || '/' || id || '/' || private.knowledge_object_name(name)) from ordered_331),
  'each answer''s storage_path is its own document''s');
select is((select b.file_count from public.upload_batches b where b.id = (select batch_id from ordered_331 limit 1)), 5,
  'the batch records its file count');

-- ---------------------------------------------------------------------------
-- 3. 99 at most until every file is finished
-- ---------------------------------------------------------------------------

select tests.act_as('owner_331');
create temp table almost_331 as select * from public.create_upload_batch(tests.fx('org_331'), pg_temp.files(2));
select tests.act_as('postgres');
update public.documents set status = 'ready', progress = 100, chunk_count = 1
where id = (select id from almost_331 where name = 'f1.txt');
update public.documents set status = 'processing', progress = 99 where id = (select id from almost_331 where name = 'f2.txt');
select tests.act_as('owner_331');
select is((select percent from public.upload_batch_progress where batch_id = (select batch_id from almost_331 limit 1)), 99,
  'one file ready and one at 99%: 99, not the rounded 100, while a file is processing');
select tests.act_as('postgres');
update public.documents set status = 'queued', progress = 100 where id = (select id from almost_331 where name = 'f2.txt');
select is((select percent from public.upload_batch_progress where batch_id = (select batch_id from almost_331 limit 1)), 99,
  'a queued file holds the batch at 99 whatever its progress');
update public.documents set status = 'ready', progress = 100, chunk_count = 1 where id = (select id from almost_331 where name = 'f2.txt');
select is((select percent from public.upload_batch_progress where batch_id = (select batch_id from almost_331 limit 1)), 100,
  'every file finished: 100');

select tests.act_as('owner_331');
create temp table hundred_331 as select * from public.create_upload_batch(tests.fx('org_331'), pg_temp.files(100));
select tests.act_as('postgres');
update public.documents set status = 'ready', progress = 100, chunk_count = 1
where batch_id = (select batch_id from hundred_331 limit 1) and name <> 'f100.txt';
update public.documents set status = 'processing', progress = 59
where batch_id = (select batch_id from hundred_331 limit 1) and name = 'f100.txt';
select results_eq(
  $$select files, ready, in_progress, percent from public.upload_batch_progress where batch_id = (select batch_id from hundred_331 limit 1)$$,
  $$values (100, 99, 1, 99)$$,
  'the reviewer''s batch: 99 ready and one at 59% reads 99');

-- ---------------------------------------------------------------------------
-- 4. Deleted files count as done
-- ---------------------------------------------------------------------------

select tests.act_as('owner_331');
create temp table four_331 as select * from public.create_upload_batch(tests.fx('org_331'), pg_temp.files(4));
select tests.act_as('postgres');
update public.documents set status = 'ready', progress = 100, chunk_count = 1
where id in (select id from four_331 where name in ('f1.txt', 'f2.txt'));
update public.documents set status = 'queued', progress = 0 where id in (select id from four_331 where name in ('f3.txt', 'f4.txt'));
select is((select percent from public.upload_batch_progress where batch_id = (select batch_id from four_331 limit 1)), 50,
  '2 ready + 2 queued: 50');
delete from public.documents where id = (select id from four_331 where name = 'f1.txt');
select results_eq(
  $$select files, ready, in_progress, percent, deleted from public.upload_batch_progress where batch_id = (select batch_id from four_331 limit 1)$$,
  $$values (3, 1, 2, 50, 1)$$,
  'a ready file deleted: still 50 (it counts as done, not 33), and deleted counts it');
delete from public.documents where id = (select id from four_331 where name = 'f3.txt');
select is((select percent from public.upload_batch_progress where batch_id = (select batch_id from four_331 limit 1)), 75,
  'a queued file deleted: done with it too (1 ready + 2 deleted + 1 queued = 75)');
delete from public.documents where batch_id = (select batch_id from four_331 limit 1);
select results_eq(
  $$select files, percent, deleted from public.upload_batch_progress where batch_id = (select batch_id from four_331 limit 1)$$,
  $$values (0, 100, 4)$$,
  'every file deleted: 100');

-- A batch written another way (file_count 0) averages its live files.
insert into tests.fixtures values ('direct_batch_331', gen_random_uuid());
insert into public.upload_batches (id, org_id) values (tests.fx('direct_batch_331'), tests.fx('org_331'));
insert into public.documents (org_id, batch_id, name, mime_type, size_bytes, storage_path, status, progress, chunk_count)
values
  (tests.fx('org_331'), tests.fx('direct_batch_331'), 'direct-1.txt', 'text/plain', 10, tests.fx('org_331') || '/direct-331/1.txt', 'ready', 100, 1),
  (tests.fx('org_331'), tests.fx('direct_batch_331'), 'direct-2.txt', 'text/plain', 10, tests.fx('org_331') || '/direct-331/2.txt', 'processing', 50, 0);
select results_eq(
  $$select files, percent, deleted from public.upload_batch_progress where batch_id = tests.fx('direct_batch_331')$$,
  $$values (2, 75, 0)$$,
  'a batch with file_count 0 averages its live files');
-- As batches created before this migration do (it backfills none): a deleted file drops out of the average.
delete from public.documents where batch_id = tests.fx('direct_batch_331') and name = 'direct-1.txt';
select results_eq(
  $$select files, percent, deleted from public.upload_batch_progress where batch_id = tests.fx('direct_batch_331')$$,
  $$values (1, 50, 0)$$,
  'a batch with file_count 0 keeps the old average: a deleted file is forgotten, not counted as done');
delete from public.documents where batch_id = tests.fx('direct_batch_331');
select results_eq(
  $$select files, percent, deleted from public.upload_batch_progress where batch_id = tests.fx('direct_batch_331')$$,
  $$values (0, 100, 0)$$,
  'a batch with file_count 0 and no file left: 100, as before');
select is((select count(*)::integer from public.upload_batches where file_count = 0 and org_id = tests.fx('org_331')), 1,
  'only the batch written directly has file_count 0 (create_upload_batch records its files)');

-- ---------------------------------------------------------------------------
-- 5. The batch's own quota message
-- ---------------------------------------------------------------------------

select tests.act_as('owner_331');
select throws_ok(
  $$select * from public.create_upload_batch(tests.fx('quota_org_331'), pg_temp.files(60))$$,
  'PT402', 'quota exceeded: this batch has 60 files; the Free plan allows 50 more documents',
  'a batch of 60 in an org with no documents on Free: the batch''s numbers, not "this organization has 50"');
select tests.act_as('postgres');
select is((select count(*)::integer from public.upload_batches where org_id = tests.fx('quota_org_331')), 0,
  'the refused batch left no batch');
select tests.act_as('owner_331');
select is((select count(*)::integer from public.create_upload_batch(tests.fx('quota_org_331'), pg_temp.files(49))), 49,
  '49 files fit');
select throws_ok(
  $$select * from public.create_upload_batch(tests.fx('quota_org_331'), pg_temp.files(2))$$,
  'PT402', 'quota exceeded: this batch has 2 files; the Free plan allows 1 more document',
  '2 files with room for 1');
select is((select count(*)::integer from public.create_upload_batch(tests.fx('quota_org_331'), pg_temp.files(1))), 1,
  'the 50th document fits exactly');
select throws_ok(
  $$select * from public.create_upload_batch(tests.fx('quota_org_331'), pg_temp.files(1))$$,
  'PT402', 'quota exceeded: this batch has 1 file; the Free plan allows 0 more documents',
  'a full org: one file is refused with the batch''s numbers');
select tests.act_as('postgres');
select throws_ok(
  $$insert into public.documents (org_id, name, mime_type, size_bytes, storage_path)
    values (tests.fx('quota_org_331'), 'direct.txt', 'text/plain', 10, tests.fx('quota_org_331') || '/direct-331.txt')$$,
  'PT402', 'quota exceeded: the Free plan includes 50 documents and this organization has 50',
  'the per-row check still guards every other path');

-- ---------------------------------------------------------------------------
-- 5. create_upload_batch key-shares its collection before the subscription
-- ---------------------------------------------------------------------------

-- An org's deletion locks the collections, then the org row (20261123015800); an upload that held the
-- subscription and the org row's key share and then key-shared the collection deadlocked with it. Both locks are
-- this call's own subtransaction's, with no statement between them to observe, so the order is read from the
-- function (as pgTAP 332 does); 180 checks the not-found errors.
select ok(
  (select position('from public.collections c
    where c.id = create_upload_batch.collection_id and c.org_id = create_upload_batch.org_id
    for key share;' in p.prosrc) between 1
     and position('from public.subscriptions s
  where s.org_id = create_upload_batch.org_id and s.status = ''active''
  for update;' in p.prosrc) - 1
   from pg_proc p where p.oid = 'private.create_upload_batch(uuid, jsonb, uuid, uuid)'::regprocedure),
  'create_upload_batch key-shares the target collection before it locks the active subscription');
select ok(
  (select position('from public.organizations o where o.id = create_upload_batch.org_id for key share;' in p.prosrc)
     between 1
     and position('from public.subscriptions s
  where s.org_id = create_upload_batch.org_id and s.status = ''active''
  for update;' in p.prosrc) - 1
   from pg_proc p where p.oid = 'private.create_upload_batch(uuid, jsonb, uuid, uuid)'::regprocedure),
  'create_upload_batch key-shares the org row before it locks the active subscription (an org''s deletion locks the row, then deletes the subscription)');

-- ---------------------------------------------------------------------------
-- 2. The last step's collection lock: key share, the document left unlocked
-- ---------------------------------------------------------------------------

insert into tests.fixtures values ('collection_331', gen_random_uuid()), ('doc_331', gen_random_uuid()),
  ('loose_doc_331', gen_random_uuid());
insert into public.collections (id, org_id, name) values (tests.fx('collection_331'), tests.fx('org_331'), 'Lock order 331');
-- Without triggers, so the documents' foreign key check does not key-share the collection in this transaction
-- (the call's lock would then be one this transaction already holds, and leave no trace).
set local session_replication_role = replica;
insert into public.documents (id, org_id, collection_id, name, mime_type, size_bytes, storage_path, status)
values
  (tests.fx('doc_331'), tests.fx('org_331'), tests.fx('collection_331'), 'locked-331.txt', 'text/plain', 10,
   tests.fx('org_331') || '/locked-331.txt', 'processing'),
  (tests.fx('loose_doc_331'), tests.fx('org_331'), null, 'loose-331.txt', 'text/plain', 10,
   tests.fx('org_331') || '/loose-331.txt', 'processing');
set local session_replication_role = origin;

select is((select xmax::text from public.collections where id = tests.fx('collection_331')), '0',
  'the collection row is not locked before the call');
savepoint share_331;
select tests.act_as('service_role');
select lives_ok($$select private.share_document_collection(tests.fx('doc_331'))$$,
  'the service role takes the step''s collection lock');
select tests.act_as('postgres');
select isnt((select xmax::text from public.collections where id = tests.fx('collection_331')), '0',
  'it locks the document''s collection row');
select is((select xmax::text from public.documents where id = tests.fx('doc_331')), '0',
  'it leaves the document row unlocked (the step locks it next)');
release savepoint share_331;
-- The mode: a stronger lock of this transaction's own turns xmax into a multixact that keeps the call's lock
-- (its subtransaction's xid) beside it, with its mode.
do $$ begin
  perform 1 from public.collections c where c.id = tests.fx('collection_331') for no key update;
end $$;
select is(
  (select array_agg(m.mode::text order by m.mode)
   from public.collections c, pg_catalog.pg_get_multixact_members(c.xmax) m where c.id = tests.fx('collection_331')),
  array['fornokeyupd', 'keysh'],
  'the call''s lock is a key share, what the chunks'' foreign key check takes: a delete waits for it, readers and other publishes do not');
select lives_ok($$select private.share_document_collection(tests.fx('loose_doc_331'))$$,
  'a document in no collection: nothing to lock');
select lives_ok($$select private.share_document_collection(gen_random_uuid())$$, 'an unknown document: nothing to lock');
select tests.act_as('owner_331');
select throws_ok($$select private.share_document_collection(tests.fx('doc_331'))$$, '42501', null,
  'users may not call it');
select tests.act_as('postgres');

select * from finish();
rollback;
