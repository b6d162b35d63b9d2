-- Storage writes after membership ends; re-uploads of checksummed documents; avatar reads
-- (20261123015500_storage_signed_writes_need_membership.sql): a service-role write naming an owner (a signed
-- upload URL's PUT, as hosted Storage writes it) needs that user's files.write in the path's org now, refused
-- alike with RLS's 42501 and changing nothing otherwise; the service role's own writes (no owner) are as before;
-- an upload replacing a document's stored file clears the checksum declared for the first file and queues it;
-- avatars are read by their user and by users sharing an org with them, no one else.
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

select tests.remember('owner', tests.create_user('owner@signed-writes-328.test'));
select tests.remember('writer', tests.create_user('writer@signed-writes-328.test'));
select tests.remember('leaver', tests.create_user('leaver@signed-writes-328.test'));
select tests.remember('demoted', tests.create_user('demoted@signed-writes-328.test'));
select tests.remember('stranger', tests.create_user('stranger@signed-writes-328.test'));
select tests.remember('elsewhere', tests.create_user('elsewhere@signed-writes-328.test'));
select tests.remember('org', tests.create_org('signed-writes-328', tests.fx('owner')));
select tests.remember('other_org', tests.create_org('signed-writes-328-other', tests.fx('elsewhere')));
select tests.add_member(tests.fx('org'), tests.fx('writer'), 'member');
select tests.add_member(tests.fx('org'), tests.fx('leaver'), 'member');
select tests.add_member(tests.fx('org'), tests.fx('demoted'), 'member');

-- The sqlstate and message a statement raises (null when it raises none).
create function pg_temp.answer(statement text) returns text[] language plpgsql
as $$
begin
  execute statement;
  return null;
exception when others then
  return array[sqlstate, sqlerrm];
end;
$$;
grant execute on function pg_temp.answer(text) to authenticated, service_role;

-- A write of a knowledge file as Storage makes it (an upsert), with the owner it names (or none).
create function pg_temp.put(file text, owner_id uuid, size integer) returns text language sql
as $$ select format($s$insert into storage.objects (bucket_id, name, owner_id, metadata)
  values ('knowledge', %L, %L, jsonb_build_object('size', %s, 'mimetype', 'text/plain'))
  on conflict (bucket_id, name) do update set metadata = excluded.metadata, owner_id = excluded.owner_id$s$,
  file, owner_id::text, size) $$;
grant execute on function pg_temp.put(text, uuid, integer) to authenticated, service_role;

-- A document's file: its status, checksum (declared) and stored size, read as postgres.
create function pg_temp.state(fixture text) returns text language sql
as $$
  select d.status || ' / checksum ' || coalesce(left(d.checksum_sha256, 4), '-') || ' / stored '
    || coalesce(o.metadata ->> 'size', '-')
  from public.documents d
  left join storage.objects o on o.bucket_id = 'knowledge' and o.name = d.storage_path
  where d.id = tests.fx(fixture)
$$;

select tests.act_as('owner');
select tests.remember('signed', id) from public.create_upload_batch(tests.fx('org'),
  jsonb_build_array(jsonb_build_object('name', 'signed.txt', 'mime_type', 'text/plain', 'size_bytes', 10)));
select tests.remember('policy', id) from public.create_upload_batch(tests.fx('org'),
  jsonb_build_array(jsonb_build_object('name', 'policy.txt', 'mime_type', 'text/plain', 'size_bytes', 10,
    'checksum_sha256', repeat('ab', 32))));
select tests.act_as('postgres');
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('leaver');
update public.memberships set role = 'viewer' where org_id = tests.fx('org') and user_id = tests.fx('demoted');

create temporary table paths as
  select (select storage_path from public.documents where id = tests.fx('signed')) as signed,
         (select storage_path from public.documents where id = tests.fx('policy')) as policy;
grant select on paths to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 1. A signed upload is held to its signer's rights at the write
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(
  pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('leaver'), 10)),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'a service-role write naming a removed member (a URL they signed while a member) is refused with RLS''s 42501'
);
select tests.act_as('postgres');
select is(pg_temp.state('signed'), 'uploading / checksum - / stored -', 'and stores nothing: the document still waits for its file');

select tests.act_as('service_role');
select is(pg_temp.answer(pg_temp.put((select signed from paths), null, 10)), null,
  'a service-role write naming no owner (the functions'' own uploads) is stored as before');
select tests.act_as('postgres');
select is(pg_temp.state('signed'), 'queued / checksum - / stored 10', 'and queues the document');

select tests.act_as('service_role');
select is(
  pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('leaver'), 20)),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'a removed member''s signed upload over the stored file is refused'
);
select is(
  pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('demoted'), 20)),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'so is one of a member demoted to viewer (below files.write) since signing'
);
select is(
  pg_temp.answer(format($s$insert into storage.objects (bucket_id, name, owner, metadata)
    values ('knowledge', %L, %L, '{"size": 20}')
    on conflict (bucket_id, name) do update set metadata = excluded.metadata, owner = excluded.owner$s$,
    (select signed from paths), tests.fx('leaver'))),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'and one naming the removed member in the deprecated owner column'
);
select is(
  pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('elsewhere'), 20)),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'and one signed by a user of another org'
);
select tests.act_as('postgres');
select is(pg_temp.state('signed'), 'queued / checksum - / stored 10', 'the refused writes changed neither file nor document');

select tests.act_as('stranger');
select is(
  pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('stranger'), 20)),
  array['42501', 'new row violates row-level security policy for table "objects"'],
  'the signed writer''s refusal is the one an outsider''s own upload gets'
);

select tests.act_as('service_role');
select is(pg_temp.answer(pg_temp.put((select signed from paths), tests.fx('writer'), 30)), null,
  'a service-role write naming a current member with files.write is stored');
select tests.act_as('postgres');
select is(pg_temp.state('signed'), 'queued / checksum - / stored 30', 'and replaces the file');

-- ---------------------------------------------------------------------------
-- 2. A replaced file forgets the first file's declared checksum
-- ---------------------------------------------------------------------------

select tests.act_as('writer');
select is(pg_temp.answer(pg_temp.put((select policy from paths), tests.fx('writer'), 10)), null, 'a member uploads the registered file');
select tests.act_as('postgres');
select is(pg_temp.state('policy'), 'queued / checksum abab / stored 10', 'the first upload keeps the checksum it was registered with');
-- As if its run had read it and ended.
update public.documents set status = 'ready', progress = 100 where id = tests.fx('policy');

select tests.act_as('writer');
select is(pg_temp.answer(pg_temp.put((select policy from paths), tests.fx('writer'), 12)), null,
  'a member uploads a new version over it (an upsert)');
select tests.act_as('postgres');
select is(pg_temp.state('policy'), 'queued / checksum - / stored 12',
  'the upsert queues the document for ingestion with no declared checksum (it described the first file)');
select is(
  (select ingest_run is null and content_sha256 is null from public.documents where id = tests.fx('policy')), true,
  'a fresh run, with no content hash until it reads the new file'
);

-- ---------------------------------------------------------------------------
-- 3. Avatars: their user and co-members read them
-- ---------------------------------------------------------------------------

insert into storage.objects (bucket_id, name, owner_id, metadata) values
  ('avatars', tests.fx('owner') || '/me.png', tests.fx('owner')::text, '{"size": 8}'),
  ('avatars', tests.fx('elsewhere') || '/me.png', tests.fx('elsewhere')::text, '{"size": 8}');

create function pg_temp.avatars_read() returns text[] language sql
as $$
  select coalesce(array_agg(case split_part(o.name, '/', 1)
      when tests.fx('owner')::text then 'owner' when tests.fx('elsewhere')::text then 'elsewhere' end
    order by o.name), '{}')
  from storage.objects o
  where o.bucket_id = 'avatars'
    and split_part(o.name, '/', 1) in (tests.fx('owner')::text, tests.fx('elsewhere')::text)
$$;
grant execute on function pg_temp.avatars_read() to authenticated;

select tests.act_as('stranger');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'avatars'), 0,
  'a signed-in user in no org reads no avatar (nor lists any user''s folder)'
);
select tests.act_as('writer');
select is(pg_temp.avatars_read(), array['owner'], 'a co-member reads the avatar of a user sharing their org, not another org''s');
select tests.act_as('owner');
select is(pg_temp.avatars_read(), array['owner'], 'the owner reads their own avatar, not a stranger''s');

select * from finish();
rollback;
