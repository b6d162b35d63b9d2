-- Platform contract: Supabase Storage's SQL surface (buckets and objects with
-- RLS, the path helpers used in policies, and the guard against deleting
-- storage rows behind the Storage API's back).
-- Holds on a Supabase project and on the local stack.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

-- Path helpers.
select is(storage.foldername('org/a/b.pdf'), array['org', 'a'], 'foldername() is every segment but the last');
select is(storage.foldername('b.pdf'), '{}'::text[], 'foldername() of a top-level file is empty');
select is(storage.filename('org/a/b.pdf'), 'b.pdf', 'filename() is the last segment');
select is(storage.extension('org/a/b.pdf'), 'pdf', 'extension() is the part after the last dot');
select is(storage.extension('org/a/archive.tar.gz'), 'gz', 'extension() of a double extension is the last one');

-- Tables, RLS and privileges.
select ok(
  (select relrowsecurity from pg_catalog.pg_class where oid = 'storage.objects'::regclass)
  and (select relrowsecurity from pg_catalog.pg_class where oid = 'storage.buckets'::regclass),
  'RLS is enabled on storage.objects and storage.buckets'
);
select ok(
  pg_catalog.has_table_privilege('authenticated', 'storage.objects', 'select, insert, update, delete')
  and pg_catalog.has_table_privilege('anon', 'storage.objects', 'select'),
  'the API roles hold table privileges on storage.objects (RLS decides)'
);
select ok(pg_catalog.has_schema_privilege('authenticated', 'storage', 'usage'), 'authenticated may use the storage schema');

-- Rows as the Storage API writes them.
insert into storage.buckets (id, name, public) values ('platform-test', 'platform-test', false);
insert into storage.objects (bucket_id, name, owner_id, metadata)
values ('platform-test', 'org/a/b.pdf', '3b0e6f5a-6a43-4c8e-9a3e-1f2d7c9b5a01', '{"size": 3, "mimetype": "application/pdf"}');

select is(
  (select path_tokens from storage.objects where bucket_id = 'platform-test' and name = 'org/a/b.pdf'),
  array['org', 'a', 'b.pdf'],
  'path_tokens is generated from the name'
);
select is(
  (select public from storage.buckets where id = 'platform-test'),
  false,
  'a bucket keeps its public flag'
);
select isnt(
  (select id from storage.objects where bucket_id = 'platform-test' and name = 'org/a/b.pdf'),
  null,
  'an object gets an id by default'
);

-- A plain SQL delete is refused unless the caller opts in like the Storage API.
select throws_ok(
  $$delete from storage.objects where bucket_id = 'platform-test'$$,
  '42501',
  'Direct deletion from storage tables is not allowed. Use the Storage API instead.',
  'deleting storage.objects rows directly is refused'
);
select set_config('storage.allow_delete_query', 'true', true);
select lives_ok(
  $$delete from storage.objects where bucket_id = 'platform-test'$$,
  'with storage.allow_delete_query the delete goes through'
);
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'platform-test'),
  0,
  'the object row is gone'
);

select * from finish();
rollback;
