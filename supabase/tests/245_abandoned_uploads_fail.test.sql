-- 20261123007600: a document still uploading a day after it was registered,
-- with no file at its path, ends failed with a reason (document.failed);
-- younger ones, ones whose file is there and ones being deleted are left.
begin;
create extension if not exists pgtap with schema extensions;

select plan(7);

select tests.remember('owner', tests.create_user('owner@abandoned245.test'));
select tests.remember('org', tests.create_org('abandoned245', tests.fx('owner')));
select tests.remember('old', gen_random_uuid());
select tests.remember('young', gen_random_uuid());
select tests.remember('marked', gen_random_uuid());
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status, created_at, deletion_started_at)
values
  (tests.fx('old'), tests.fx('org'), 'old.pdf', 'application/pdf', 10, tests.fx('org') || '/' || tests.fx('old') || '/old.pdf',
   'uploading', now() - interval '25 hours', null),
  (tests.fx('young'), tests.fx('org'), 'young.pdf', 'application/pdf', 10, tests.fx('org') || '/' || tests.fx('young') || '/young.pdf',
   'uploading', now() - interval '23 hours', null),
  (tests.fx('marked'), tests.fx('org'), 'marked.pdf', 'application/pdf', 10, tests.fx('org') || '/' || tests.fx('marked') || '/marked.pdf',
   'uploading', now() - interval '3 days', now());

select is(has_function_privilege('authenticated', 'private.fail_abandoned_uploads()', 'execute'), false,
  'signed-in users cannot run it');
select ok(exists (select 1 from cron.job where jobname = 'fail-abandoned-uploads'), 'the job runs hourly');

select is(private.fail_abandoned_uploads(), 1, 'one abandoned upload is failed');
select results_eq(
  $$select id, status::text, failure_reason from public.documents where org_id = tests.fx('org') order by created_at$$,
  $$values (tests.fx('marked'), 'uploading', null::text),
           (tests.fx('old'), 'failed', 'The file never arrived (the upload stopped); upload it again.'),
           (tests.fx('young'), 'uploading', null::text)$$,
  'the one a day old without a file is failed; the younger one and the one being deleted are left'
);
select is(
  (select payload ->> 'document_id' from public.events where org_id = tests.fx('org') and type = 'document.failed'),
  tests.fx('old')::text, 'document.failed is emitted for it'
);
select is(private.fail_abandoned_uploads(), 0, 'a second run finds nothing');

-- Its file arriving afterwards queues it, as for any failed document.
insert into storage.objects (bucket_id, name, owner_id, metadata)
values ('knowledge', tests.fx('org') || '/' || tests.fx('old') || '/old.pdf', tests.fx('owner')::text, '{"size": 10}');
select is((select status::text from public.documents where id = tests.fx('old')), 'queued', 'uploading it again queues it');

select * from finish();
rollback;
