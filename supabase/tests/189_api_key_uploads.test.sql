-- Servers push documents with an API key (20261123005900_api_key_uploads.sql):
-- the service role may register files through create_upload_batch (the
-- knowledge function has checked the key's scope and org); users still need
-- knowledge.write, and anon cannot call it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(6);

select tests.remember('owner', tests.create_user('uploads-owner@a.test'));
select tests.remember('viewer', tests.create_user('uploads-viewer@a.test'));
select tests.remember('org', tests.create_org('uploads-a', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('viewer'), 'viewer');

select tests.act_as('service_role');
select results_eq(
  $$select name, status, created_by from public.create_upload_batch(tests.fx('org'),
      '[{"name": "prices.txt", "mime_type": "text/plain", "size_bytes": 12}]'::jsonb)$$,
  $$values ('prices.txt'::text, 'uploading'::public.document_status, null::uuid)$$,
  'the service role registers a file in any org it names, with no user as its creator'
);
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org'), '[{"name": "a/b.txt", "mime_type": "text/plain", "size_bytes": 1}]'::jsonb)$$,
  '22023', null,
  'its files get the same checks as a user''s'
);

select tests.act_as('viewer');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org'), '[{"name": "x.txt", "mime_type": "text/plain", "size_bytes": 1}]'::jsonb)$$,
  '42501', null,
  'a viewer still lacks knowledge.write'
);

select tests.act_as('owner');
select is(
  (select count(*)::integer from public.create_upload_batch(tests.fx('org'),
     '[{"name": "y.txt", "mime_type": "text/plain", "size_bytes": 1}]'::jsonb)),
  1,
  'an owner still registers'
);

select tests.act_as('anon');
select throws_ok(
  $$select public.create_upload_batch(tests.fx('org'), '[{"name": "z.txt", "mime_type": "text/plain", "size_bytes": 1}]'::jsonb)$$,
  '42501', null,
  'anon cannot call it'
);

select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.documents where org_id = tests.fx('org')),
  2,
  'only the two accepted registrations exist'
);

select * from finish();
rollback;
