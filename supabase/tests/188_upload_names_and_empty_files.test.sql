-- Upload names and empty files (20261123003300_upload_names_and_empty_files.sql):
-- a document keeps its name as given while its storage_path ends in a safe
-- form of it that both Storage services accept; names with control
-- characters, blank ones, "." and ".." are refused; an empty or oversized
-- upload is stored and fails its document with a reason instead of failing
-- the Storage insert.
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

create temp table marks (label text primary key, n bigint not null);
grant all on marks to public;
create function pg_temp.mark(label text)
returns bigint
language sql
stable
as $$ select m.n from marks m where m.label = $1 $$;
grant execute on function pg_temp.mark(text) to public;

-- Registers one file as the current user and remembers its document as 'doc:<label>'.
create function pg_temp.register(label text, name text, mime_type text default 'text/plain', size_bytes integer default 100)
returns uuid
language sql
as $$
  select tests.remember('doc:' || label, d.id)
  from public.create_upload_batch(tests.fx('org_a'),
    jsonb_build_array(jsonb_build_object('name', name, 'mime_type', mime_type, 'size_bytes', size_bytes))) d;
$$;
grant execute on function pg_temp.register(text, text, text, integer) to public;

-- The error create_upload_batch raises for one file named name (null when it accepts it).
create function pg_temp.refusal(name jsonb)
returns text
language plpgsql
as $$
begin
  perform public.create_upload_batch(tests.fx('org_a'),
    jsonb_build_array(jsonb_build_object('name', name, 'mime_type', 'text/plain', 'size_bytes', 10)));
  return null;
exception when others then
  return sqlstate || ' ' || sqlerrm;
end;
$$;
grant execute on function pg_temp.refusal(jsonb) to public;

select tests.remember('owner_a', tests.create_user('names-owner@a.test'));
select tests.remember('member_a', tests.create_user('names-member@a.test'));
select tests.remember('org_a', tests.create_org('upload-names-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

-- The ingest wake-up reads these; rolled back with the rest.
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test', 'project_url');
select vault.create_secret('names-test-key', 'service_role_key');

-- ---------------------------------------------------------------------------
-- The safe name
-- ---------------------------------------------------------------------------

select results_eq(
  $$select private.knowledge_object_name(n) from unnest(array[
      'guide.pdf', 'price #2.txt', 'what?.txt', '50%.txt', 'Прайс.pdf', 'Прайс лист 2024.pdf',
      'Report (final) v2.docx', 'naïve café.md', 'a__b?.csv', 'archive.tar.gz', 'notes.тхт', '.env', '...',
      '. hidden .txt', 'x' || chr(9) || 'y.txt', 'a&b=c;d+e,f@g$h!i*j''k:l.json', repeat('a', 300) || '.pdf',
      repeat('b', 99) || '  ##  c.txt'
    ]) with ordinality t(n, i) order by i$$,
  $$values ('guide.pdf'), ('price _2.txt'), ('what.txt'), ('50.txt'), ('file.pdf'), ('2024.pdf'),
      ('Report (final) v2.docx'), ('na_ve caf.md'), ('a_b.csv'), ('archive.tar.gz'), ('notes'), ('env'), ('file'),
      ('hidden.txt'), ('x_y.txt'), ('a_b_c_d_e_f_g_h_i_j_k_l.json'), (repeat('a', 100) || '.pdf'),
      (repeat('b', 99) || '.txt')$$,
  'knowledge_object_name: unsafe characters become one _ per run, ends trimmed, the extension kept, "file" when nothing is left, the stem cut at 100'
);
select is_empty(
  $$select n from (values ('.'), ('..'), (' '), ('#?%'), ('..pdf'), ('.' || repeat('.', 200)), (repeat('é', 255)),
      ('日本語のファイル.docx'), ('%2e%2e'), ('a/../b'), ('con.txt ..'), ('emoji 😀.md'), (chr(8232)), (repeat('x.', 120))) t(n)
    where private.knowledge_object_name(n) !~ '^[A-Za-z0-9._ ()-]{1,111}$'
       or private.knowledge_object_name(n) in ('.', '..')
       or private.knowledge_object_name(n) ~ '^[ .]|[ .]$'$$,
  'knowledge_object_name: always 1 to 111 characters Storage accepts, never "." or "..", no dot or space at either end'
);

-- ---------------------------------------------------------------------------
-- create_upload_batch: the name as given, a safe storage_path
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select pg_temp.register('price', 'price #2.txt'), pg_temp.register('what', 'what?.txt'),
      pg_temp.register('percent', '50%.txt'), pg_temp.register('cyrillic', 'Прайс.pdf', 'application/pdf'),
      pg_temp.register('spaced', '  naïve café.md  ', 'text/markdown'), pg_temp.register('plain', 'guide.txt')$$,
  'create_upload_batch: names with #, ?, %, Cyrillic and accents are registered'
);
select results_eq(
  $$select d.name, d.storage_path from unnest(array['price', 'what', 'percent', 'cyrillic', 'spaced', 'plain']) with ordinality l(label, i)
    join public.documents d on d.id = tests.fx('doc:' || l.label) order by l.i$$,
  $$values
    ('price #2.txt', tests.fx('org_a') || '/' || tests.fx('doc:price') || '/price _2.txt'),
    ('what?.txt', tests.fx('org_a') || '/' || tests.fx('doc:what') || '/what.txt'),
    ('50%.txt', tests.fx('org_a') || '/' || tests.fx('doc:percent') || '/50.txt'),
    ('Прайс.pdf', tests.fx('org_a') || '/' || tests.fx('doc:cyrillic') || '/file.pdf'),
    ('naïve café.md', tests.fx('org_a') || '/' || tests.fx('doc:spaced') || '/na_ve caf.md'),
    ('guide.txt', tests.fx('org_a') || '/' || tests.fx('doc:plain') || '/guide.txt')$$,
  'create_upload_batch: the document keeps the name as given (spaces trimmed); storage_path is <org>/<document>/<safe name>'
);

insert into marks select 'batches', count(*) from public.upload_batches where org_id = tests.fx('org_a');
select is(
  pg_temp.refusal(to_jsonb('tab' || chr(9) || 'name.txt')),
  '22023 invalid file name: "tab\tname.txt" (control characters are not allowed)',
  'create_upload_batch: a tab is refused, the name shown escaped'
);
select is(
  pg_temp.refusal(to_jsonb('two' || chr(10) || 'lines.txt')),
  '22023 invalid file name: "two\nlines.txt" (control characters are not allowed)',
  'create_upload_batch: a newline is refused'
);
select is(
  pg_temp.refusal(to_jsonb('bell' || chr(7) || '.txt')),
  '22023 invalid file name: "bell\u0007.txt" (control characters are not allowed)',
  'create_upload_batch: any C0 control character is refused'
);
select is(
  pg_temp.refusal(to_jsonb('del' || chr(127) || '.txt')),
  '22023 invalid file name: "del\u007f.txt" (control characters are not allowed)',
  'create_upload_batch: DEL is refused'
);
select is(
  pg_temp.refusal(to_jsonb('c1' || chr(133) || '.txt')),
  '22023 invalid file name: "c1\u0085.txt" (control characters are not allowed)',
  'create_upload_batch: a C1 control character (NEL) is refused'
);
select is(
  pg_temp.refusal(to_jsonb('line' || chr(8232) || 'separator.txt')),
  '22023 invalid file name: "line\u2028separator.txt" (control characters are not allowed)',
  'create_upload_batch: the Unicode line separator is refused'
);
select is(pg_temp.refusal('"."'), '22023 invalid file name: .', 'create_upload_batch: "." is refused');
select is(pg_temp.refusal('".."'), '22023 invalid file name: ..', 'create_upload_batch: ".." is refused');
select is(pg_temp.refusal('" .. "'), '22023 invalid file name:  .. ', 'create_upload_batch: ".." between spaces is refused');
select is(
  pg_temp.refusal(to_jsonb(chr(12288) || chr(160))),
  '22023 invalid file name: ' || chr(12288) || chr(160),
  'create_upload_batch: a name of non-ASCII spaces only is blank, and refused'
);
select is(pg_temp.refusal('42'), '22023 invalid file name: 42', 'create_upload_batch: a name that is not a string is refused');
select is(pg_temp.refusal(null), '22023 invalid file name: null', 'create_upload_batch: a missing name is refused');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org_a'), jsonb_build_array(
      jsonb_build_object('name', 'fine.txt', 'mime_type', 'text/plain', 'size_bytes', 10),
      jsonb_build_object('name', 'bad' || chr(27) || '.txt', 'mime_type', 'text/plain', 'size_bytes', 10)))$$,
  '22023', 'invalid file name: "bad\u001b.txt" (control characters are not allowed)',
  'create_upload_batch: a bad name after a good one refuses the whole batch'
);
select is(
  (select count(*) from public.upload_batches where org_id = tests.fx('org_a')),
  pg_temp.mark('batches'),
  'create_upload_batch: the refusals left no batch behind'
);

-- ---------------------------------------------------------------------------
-- Uploads at the safe path, as the member (the Storage policies apply)
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;
select tests.act_as('member_a');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    select 'knowledge', d.storage_path, tests.fx('member_a')::text, '{"size": 120, "mimetype": "text/plain"}'
    from public.documents d where d.id in (tests.fx('doc:price'), tests.fx('doc:what'), tests.fx('doc:percent'))$$,
  'upload: the member may store files at the safe paths'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, size_bytes from public.documents
    where id in (tests.fx('doc:price'), tests.fx('doc:what'), tests.fx('doc:percent')) order by name$$,
  $$values ('queued'::public.document_status, 120::bigint), ('queued'::public.document_status, 120::bigint),
      ('queued'::public.document_status, 120::bigint)$$,
  'upload: each document is queued with its stored size'
);
select is(
  (select count(*) from net.http_request_queue where id > pg_temp.mark('queue')),
  3::bigint,
  'upload: and its ingestion is requested'
);

-- ---------------------------------------------------------------------------
-- An empty upload
-- ---------------------------------------------------------------------------

update marks set n = (select coalesce(max(id), 0) from net.http_request_queue) where label = 'queue';
select tests.act_as('member_a');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, owner_id, metadata)
    values ('knowledge', (select storage_path from public.documents where id = tests.fx('doc:plain')),
            tests.fx('member_a')::text, '{"size": 0, "mimetype": "text/plain"}')$$,
  'empty upload: Storage stores a 0-byte file (its insert does not fail)'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, size_bytes, progress, ingest_run from public.documents where id = tests.fx('doc:plain')$$,
  $$values ('failed'::public.document_status, 'The file is empty.', 100::bigint, 0::smallint, null::uuid)$$,
  'empty upload: the document fails with a reason and keeps its registered size'
);
select results_eq(
  $$select payload from public.events where org_id = tests.fx('org_a') and type = 'document.failed'$$,
  $$values (jsonb_build_object('document_id', tests.fx('doc:plain'), 'name', 'guide.txt', 'reason', 'The file is empty.'))$$,
  'empty upload: document.failed is emitted'
);
select ok(
  exists (select 1 from realtime.messages
          where topic = 'org:' || tests.fx('org_a') || ':uploads'
            and payload -> 'record' ->> 'id' = tests.fx('doc:plain')::text
            and payload -> 'record' ->> 'status' = 'failed'
            and payload -> 'record' ->> 'failure_reason' = 'The file is empty.'),
  'empty upload: the failure is broadcast on org:<org>:uploads'
);
select is_empty(
  $$select id from net.http_request_queue where id > pg_temp.mark('queue')$$,
  'empty upload: no ingestion is requested'
);

-- Uploading the real file over it queues the document again.
select tests.act_as('member_a');
select lives_ok(
  $$update storage.objects set metadata = '{"size": 42, "mimetype": "text/plain"}'
    where bucket_id = 'knowledge' and name = (select storage_path from public.documents where id = tests.fx('doc:plain'))$$,
  'empty upload: the member uploads the file again (upsert)'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, failure_reason, size_bytes from public.documents where id = tests.fx('doc:plain')$$,
  $$values ('queued'::public.document_status, null::text, 42::bigint)$$,
  'empty upload: the new upload queues the document with its size'
);
select is(
  (select count(*) from net.http_request_queue where id > pg_temp.mark('queue')),
  1::bigint,
  'empty upload: and requests its ingestion'
);

-- A ready document replaced by an empty file keeps no chunks of the old one.
update public.documents set status = 'ready', progress = 100, chunk_count = 1 where id = tests.fx('doc:plain');
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values (tests.fx('org_a'), tests.fx('doc:plain'), 0, 1, 1, 'old text', 2, array_fill(0.1::real, array[1536])::extensions.vector);
update storage.objects set metadata = '{"size": 0, "mimetype": "text/plain"}'
where bucket_id = 'knowledge' and name = (select storage_path from public.documents where id = tests.fx('doc:plain'));
select results_eq(
  $$select d.status, d.chunk_count, (select count(*) from public.document_chunks c where c.document_id = d.id)
    from public.documents d where d.id = tests.fx('doc:plain')$$,
  $$values ('failed'::public.document_status, 0, 0::bigint)$$,
  'empty upload: a ready document replaced by an empty file fails and keeps no chunks'
);

-- ---------------------------------------------------------------------------
-- An upload over 25 MB (the bucket limit refuses it today; were it raised)
-- ---------------------------------------------------------------------------

select lives_ok(
  $$insert into storage.objects (bucket_id, name, metadata)
    values ('knowledge', (select storage_path from public.documents where id = tests.fx('doc:cyrillic')),
            '{"size": 31457280, "mimetype": "application/pdf"}')$$,
  'oversized upload: the Storage insert does not fail'
);
select results_eq(
  $$select status, failure_reason, size_bytes from public.documents where id = tests.fx('doc:cyrillic')$$,
  $$values ('failed'::public.document_status, 'The file is 30.0 MB; files of up to 25 MB can be indexed.', 100::bigint)$$,
  'oversized upload: the document fails with the ingest function''s reason and keeps its registered size'
);

select * from finish();
rollback;
