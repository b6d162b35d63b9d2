-- No file can be stored for a deleted organization
-- (20261123005700_no_files_for_deleted_orgs.sql): an object under a deleted
-- org's prefix in an org bucket is refused (insert, upsert, move), so a job
-- still running when the org was deleted cannot leave a file behind its
-- storage removal; an upload for a live org locks the org row as a foreign
-- key would, so a deletion waits for it; other names and buckets are as
-- before.
begin;
create extension if not exists pgtap with schema extensions;

select plan(12);

-- An org committed before this test (the seed's): the rows of orgs made
-- here are already held by this transaction (their memberships' foreign keys).
select tests.remember('committed', (select id from public.organizations order by created_at, id limit 1));
insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@late-files.test'));
select tests.remember('doomed', tests.create_org('late-files-doomed', tests.fx('owner')));
select tests.remember('never', gen_random_uuid());
insert into storage.buckets (id, name) values ('late-files-plain', 'late-files-plain');

create function pg_temp.held_by_us(org uuid) returns boolean language sql as $$
  select o.xmax::text = pg_catalog.pg_current_xact_id()::xid::text from public.organizations o where o.id = org;
$$;

-- ---------------------------------------------------------------------------
-- A live org: uploads go through, holding the org row as a foreign key would
-- ---------------------------------------------------------------------------

select is(pg_temp.held_by_us(tests.fx('committed')), false,
  'before an upload, this transaction holds no lock on the org row');
select tests.act_as('service_role');
insert into storage.objects (bucket_id, name, metadata)
values ('exports', tests.fx('committed') || '/exports/e/organizations.json', '{}');
select tests.act_as('postgres');
select is(
  (select count(*)::int from storage.objects where name = tests.fx('committed') || '/exports/e/organizations.json'), 1,
  'a live org''s file is stored');
select is(pg_temp.held_by_us(tests.fx('committed')), true,
  'the upload holds the org row until it commits, so the org''s deletion waits for it and then lists the file');

-- ---------------------------------------------------------------------------
-- A deleted org: nothing more is stored under its prefix
-- ---------------------------------------------------------------------------

insert into storage.objects (bucket_id, name, metadata)
values ('invoices', tests.fx('doomed') || '/invoices/before.pdf', '{}');
delete from public.organizations where id = tests.fx('doomed');
select tests.act_as('service_role');
select is((select count(*)::int from private.org_storage_objects(tests.fx('doomed'))), 1,
  'the file stored before the deletion is listed for removal');
-- Removed, as the Storage API does it.
select tests.act_as('postgres');
select set_config('storage.allow_delete_query', 'true', true);
delete from storage.objects where bucket_id = 'invoices' and name = tests.fx('doomed') || '/invoices/before.pdf';
select tests.act_as('service_role');
select is(private.finish_org_storage_removal(tests.fx('doomed')), 0, 'the removal is recorded: no file is left');

select throws_ok(
  $$insert into storage.objects (bucket_id, name, metadata)
    values ('exports', tests.fx('doomed') || '/exports/e/manifest.json', '{}')$$,
  '23503', format('organization %s was deleted; nothing can be stored under its prefix', tests.fx('doomed')),
  'an export file uploaded after the removal is refused');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, metadata)
    values ('invoices', tests.fx('doomed') || '/invoices/late.pdf', '{}')$$,
  '23503', null, 'so is an invoice PDF');
select throws_ok(
  $$insert into storage.objects (bucket_id, name, metadata) values ('knowledge', tests.fx('doomed') || '/doc/a.txt', '{}')
    on conflict (bucket_id, name) do update set metadata = excluded.metadata$$,
  '23503', null, 'and an upsert (the trigger runs before its conflict check)');
select throws_ok(
  $$update storage.objects set name = tests.fx('doomed') || '/exports/e/moved.json'
    where bucket_id = 'exports' and name = tests.fx('committed') || '/exports/e/organizations.json'$$,
  '23503', null, 'and a move into its prefix, by name');
select tests.act_as('postgres');
select results_eq(
  $$select (select count(*)::int from private.org_storage_objects(tests.fx('doomed'))),
           (select storage_removed_at is not null from private.deleted_organizations where org_id = tests.fx('doomed'))$$,
  $$values (0, true)$$,
  'so the org stays without files, and its removal stays done'
);

-- ---------------------------------------------------------------------------
-- Everything else as before
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, metadata)
    values ('late-files-plain', tests.fx('doomed') || '/not-an-org-bucket.txt', '{}')$$,
  'a bucket that is not an org bucket is not concerned');
select lives_ok(
  $$insert into storage.objects (bucket_id, name, metadata) values ('exports', tests.fx('never') || '/exports/e/x.json', '{}')$$,
  'nor a prefix that never named an org');

select * from finish();
rollback;
