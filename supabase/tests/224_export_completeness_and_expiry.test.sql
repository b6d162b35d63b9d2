-- Data export completeness and expiry
-- (20261123004600_export_completeness_and_expiry.sql): every public table
-- with an org_id is exported or excluded on purpose, with the reason; no
-- exported column is a secret; the new tables (invitations, upload batches,
-- call events, ...) and a manifest of the org's Storage objects are in a new
-- export, with the org's rows only; expired exports are listed for removal
-- through the Storage API, marked expired once their files are gone
-- (idempotently), and woken hourly by pg_cron.
begin;
create extension if not exists pgtap with schema extensions;

select plan(34);

-- ---------------------------------------------------------------------------
-- Completeness of the lists (these fail when a new org table is added and
-- neither exported nor excluded)
-- ---------------------------------------------------------------------------

select is(
  array(
    select c.relname::text from pg_catalog.pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
      and exists (select 1 from pg_catalog.pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
      and c.relname not in (select t.table_name from private.export_tables t where t.source = 'table')
      and c.relname not in (select x.table_name from private.export_excluded_tables x)
    order by 1),
  '{}'::text[],
  'completeness: every public table with an org_id is exported (private.export_tables) or excluded with a reason (private.export_excluded_tables)'
);
select is(
  array(select t.table_name from private.export_tables t join private.export_excluded_tables x using (table_name) order by 1),
  '{}'::text[],
  'completeness: no table is both exported and excluded'
);
select is(
  array(
    select t.table_name from private.export_tables t
    where t.source = 'table' and not exists (
      select 1 from pg_catalog.pg_class c
      join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attname = t.org_column and not a.attisdropped
      where c.relnamespace = 'public'::regnamespace and c.relname = t.table_name
        and (t.key_column is null or exists (
          select 1 from pg_catalog.pg_attribute k where k.attrelid = c.oid and k.attname = t.key_column and not k.attisdropped)))
    order by 1),
  '{}'::text[],
  'completeness: every exported table exists in public with its org column and key'
);
select is(
  array(select t.table_name || '.' || o from private.export_tables t cross join unnest(t.omit_columns) o
        where not exists (select 1 from pg_catalog.pg_attribute a
                          where a.attrelid = pg_catalog.to_regclass('public.' || pg_catalog.quote_ident(t.table_name))
                            and a.attname = o and not a.attisdropped)),
  '{}'::text[],
  'completeness: omitted columns exist (a renamed one would be exported again)'
);
select is(
  array(select x.table_name from private.export_excluded_tables x order by 1),
  array['document_chunks'],
  'completeness: only the document chunks (derived from the documents) are left out'
);
-- Secrets live in private tables (API key hashes, webhook and provider
-- secrets, Telegram and invitation tokens); an exported column that looks
-- like one fails here until it is omitted or moved. The audit chain's hashes
-- (and its hash version, 20261123005200) are integrity checks, not secrets.
select is(
  array(
    select t.table_name || '.' || a.attname from private.export_tables t
    join pg_catalog.pg_class c on c.relname = t.table_name and c.relnamespace = 'public'::regnamespace
    join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where t.source = 'table' and not (a.attname = any (t.omit_columns))
      and a.attname ~ '(secret|token|hash|password|passwd|credential|private_key|signing|api_key$)'
      and a.attname !~ '(_at|_until|_count|_id|^tokens_(in|out)|^max_tokens)$'
    order by 1),
  array['audit_log.hash', 'audit_log.hash_version', 'audit_log.prev_hash', 'audit_log.values_hash'],
  'secrets: no exported column holds a secret, token or key hash'
);

-- ---------------------------------------------------------------------------
-- A new export holds the new tables and the Storage manifest
-- ---------------------------------------------------------------------------

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@export-complete.test')),
  ('admin_a', tests.create_user('admin-a@export-complete.test')),
  ('owner_b', tests.create_user('owner-b@export-complete.test'));
select tests.remember('org_a', tests.create_org('export-complete-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('export-complete-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');

insert into public.invitations (org_id, email, role, expires_at)
select o, 'invitee@' || o || '.test', 'member', now() + interval '1 day' from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into public.upload_batches (org_id) select o from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
insert into public.call_events (org_id, provider, event_id, event_type, occurred_at)
select o, 'vapi', 'evt-' || o, 'call.status', now() from unnest(array[tests.fx('org_a'), tests.fx('org_b')]) o;
select tests.remember('doc_a', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, progress)
values (tests.fx('doc_a'), tests.fx('org_a'), 'notes.txt', 'text/plain', 5, tests.fx('org_a') || '/' || tests.fx('doc_a') || '/notes.txt', 'ready', 100);
insert into storage.objects (bucket_id, name, metadata) values
  ('knowledge', tests.fx('org_a') || '/' || tests.fx('doc_a') || '/notes.txt', '{"size": 5, "mimetype": "text/plain"}'),
  ('recordings', tests.fx('org_a') || '/calls/c1/recording.wav', '{"size": 4, "mimetype": "audio/wav"}'),
  ('exports', tests.fx('org_a') || '/exports/00000000-0000-4000-8000-000000000001/bots.json', '{"size": 2}'),
  ('knowledge', tests.fx('org_b') || '/other/notes.txt', '{"size": 7}');

select tests.act_as('owner_a');
select tests.remember('export_a', (public.request_data_export(tests.fx('org_a'))).id);
select ok(
  (select tables @> array['invitations', 'upload_batches', 'call_events', 'call_providers', 'webhook_deliveries',
                          'webhook_attempts', 'data_exports', 'storage_objects']
          and not ('document_chunks' = any (tables)) and tables[1] = 'organizations' and tables[array_length(tables, 1)] = 'audit_log'
   from public.data_exports where id = tests.fx('export_a')),
  'export: a new export lists the invitations, upload batches, call events, webhook deliveries, its Storage files...'
);
select tests.act_as('service_role');
select is((private.claim_export_step(tests.fx('export_a'))).status::text, 'running', 'export: claimed');
select is(
  (select array_agg(row_data ->> 'email') from private.export_rows(tests.fx('export_a'), 'invitations', null, 100)),
  array['invitee@' || tests.fx('org_a') || '.test'],
  'export rows: the org''s invitations (team), not another org''s'
);
select is(
  (select count(*)::int from private.export_rows(tests.fx('export_a'), 'upload_batches', null, 100) where row_data ->> 'org_id' = tests.fx('org_a')::text),
  1, 'export rows: the org''s upload batches'
);
select is(
  (select array_agg(row_data ->> 'event_id') from private.export_rows(tests.fx('export_a'), 'call_events', null, 100)),
  array['evt-' || tests.fx('org_a')],
  'export rows: the org''s call events'
);
select results_eq(
  $$select row_key, row_data ->> 'bucket_id', row_data ->> 'name', (row_data ->> 'size_bytes')::int, row_data ->> 'mime_type',
           (row_data ->> 'document_id')::uuid, (row_data ->> 'org_id')::uuid
    from private.export_rows(tests.fx('export_a'), 'storage_objects', null, 100)$$,
  $$values
    ('knowledge/' || tests.fx('org_a') || '/' || tests.fx('doc_a') || '/notes.txt', 'knowledge',
     tests.fx('org_a') || '/' || tests.fx('doc_a') || '/notes.txt', 5, 'text/plain', tests.fx('doc_a'), tests.fx('org_a')),
    ('recordings/' || tests.fx('org_a') || '/calls/c1/recording.wav', 'recordings',
     tests.fx('org_a') || '/calls/c1/recording.wav', 4, 'audio/wav', null::uuid, tests.fx('org_a'))$$,
  'export rows: storage_objects lists the org''s files (bucket, path, size, type, the document of a knowledge original), not exports nor another org''s'
);
select results_eq(
  $$select r.row_data ->> 'bucket_id' from private.export_rows(tests.fx('export_a'), 'storage_objects', null, 1) first_page
    cross join lateral private.export_rows(tests.fx('export_a'), 'storage_objects', first_page.row_key, 10) r$$,
  $$values ('recordings')$$,
  'export rows: storage_objects pages by its key'
);
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'storage_objects', 'no-slash', 10)$$, '22023', null,
  'export rows: a storage key is <bucket>/<name>');
select ok(
  (select bool_and(not (row_data ? 'cursor')) and count(*) = 1 from private.export_rows(tests.fx('export_a'), 'data_exports', null, 100)),
  'export rows: the org''s exports, without their internal cursor (omit_columns)'
);
select is(
  (select count(*)::int from unnest((select tables from public.data_exports where id = tests.fx('export_a'))) t(name)
   cross join lateral private.export_rows(tests.fx('export_a'), t.name, null, 5000) r
   where r.row_data ->> 'org_id' = tests.fx('org_b')::text or r.row_data ->> 'id' = tests.fx('org_b')::text
      or r.row_data::text like '%' || tests.fx('org_b') || '%'),
  0,
  'export rows: no table of the export holds anything of another org'
);
select throws_ok($$select private.export_rows(tests.fx('export_a'), 'document_chunks', null, 10)$$, '22023',
  'not a table of this export: document_chunks', 'export rows: excluded tables are refused');

-- ---------------------------------------------------------------------------
-- Expiry
-- ---------------------------------------------------------------------------

select is((private.finish_export(tests.fx('export_a'), true, null)).status::text, 'ready', 'expiry: the export is ready');
select tests.act_as('postgres');
insert into storage.objects (bucket_id, name, metadata)
select 'exports', tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/' || f, '{"size": 2}'
from unnest(array['manifest.json', 'bots.json', 'export.zip']) f;
select tests.act_as('service_role');
select is((select count(*)::int from private.exports_due_for_expiry(100) where export_id = tests.fx('export_a')), 0,
  'expiry: a ready export within its 7 days is not due');
select throws_ok($$select * from private.export_expiry_objects(tests.fx('export_a'))$$, '22023', 'the export has not expired',
  'expiry: the files of a live export are not listed for removal');
select throws_ok($$select private.finish_export_expiry(tests.fx('export_a'))$$, '22023', 'the export has not expired',
  'expiry: a live export is not marked');

select tests.act_as('postgres');
update public.data_exports set expires_at = now() - interval '1 minute', finished_at = now() - interval '7 days 1 minute'
where id = tests.fx('export_a');
-- A failed export 8 days old (its partial files are due) and one failed yesterday (kept).
insert into public.data_exports (id, org_id, tables, storage_prefix, status, error, finished_at)
select i, tests.fx('org_b'), '{organizations}', tests.fx('org_b') || '/exports/' || i || '/', 'failed', 'boom', f
from (values ('00000000-0000-4000-8000-0000000000f8'::uuid, now() - interval '8 days'),
             ('00000000-0000-4000-8000-0000000000f1'::uuid, now() - interval '1 day')) v (i, f);
select tests.remember('failed_old', '00000000-0000-4000-8000-0000000000f8');
select tests.remember('failed_new', '00000000-0000-4000-8000-0000000000f1');
select tests.act_as('service_role');
select is(
  array(select export_id from private.exports_due_for_expiry(100) where export_id in (tests.fx('export_a'), tests.fx('failed_old'), tests.fx('failed_new')) order by export_id),
  array[tests.fx('failed_old'), tests.fx('export_a')] ,
  'expiry: due are the ready export past expires_at and the failed one over 7 days old'
);
select is(
  array(select name from private.export_expiry_objects(tests.fx('export_a'), 2)),
  array[tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/bots.json', tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/export.zip'],
  'expiry: the export''s own objects are listed, in batches (not another export''s of the org)'
);
select is(private.finish_export_expiry(tests.fx('export_a')), 3, 'expiry: not marked while files are left (their count)');
select is((select expired_at from public.data_exports where id = tests.fx('export_a')), null, 'expiry: expired_at stays null meanwhile');
-- Functions next to the database (rolled back with the rest).
select tests.act_as('postgres');
delete from vault.secrets where name in ('project_url', 'service_role_key');
select vault.create_secret('https://project.example.test/', 'project_url');
select vault.create_secret('export-test-key', 'service_role_key');
select tests.act_as('service_role');
select ok(private.request_export_expiry(), 'expiry: the hourly job wakes the function while an export is due');
select is(
  (select method || ' ' || url from net.http_request_queue order by id desc limit 1),
  'POST https://project.example.test/functions/v1/export/expire', 'expiry: the wake-up posts to /functions/v1/export/expire'
);

-- The function removes the files through the Storage API; here, directly.
select tests.act_as('postgres');
set local storage.allow_delete_query = 'true';
delete from storage.objects where bucket_id = 'exports' and starts_with(name, tests.fx('org_a') || '/exports/' || tests.fx('export_a') || '/');
reset storage.allow_delete_query;
select tests.act_as('service_role');
select is(private.finish_export_expiry(tests.fx('export_a')), 0, 'expiry: once the files are gone, the export is marked');
select tests.act_as('postgres');
create temporary table expired_once on commit drop as select expired_at from public.data_exports where id = tests.fx('export_a');
select tests.act_as('service_role');
select is(private.finish_export_expiry(tests.fx('export_a')), 0, 'expiry: marking again is harmless');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, expired_at is not null, expired_at = (select expired_at from expired_once) from public.data_exports where id = tests.fx('export_a')$$,
  $$values ('ready', true, true)$$,
  'expiry: the export keeps its status and is marked once (expired_at)'
);
select is(
  (select count(*)::int from private.exports_due_for_expiry(100) where export_id = tests.fx('export_a')), 0,
  'expiry: a marked export is no longer due'
);
select is(
  (select count(*)::int from realtime.messages where topic = 'org:' || tests.fx('org_a') || ':exports'
     and payload -> 'record' ->> 'id' = tests.fx('export_a')::text and payload -> 'record' ->> 'expired_at' is not null),
  1, 'expiry: the change is broadcast on the org''s exports channel'
);
select is(
  (select schedule || ' | ' || command from cron.job where jobname = 'expire-exports'),
  '41 * * * * | select private.request_export_expiry()',
  'expiry: pg_cron runs the job hourly'
);
select tests.act_as('owner_a');
select throws_ok($$select private.finish_export_expiry(tests.fx('export_a'))$$, '42501', null,
  'expiry: signed-in users (even owners) cannot run the expiry steps');

select * from finish();
rollback;
