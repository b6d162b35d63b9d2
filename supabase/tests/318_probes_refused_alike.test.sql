-- Probes refused alike (supabase/migrations/20261123014500_probes_refused_alike.sql): at the creation cap,
-- create_organization answers PT429 whatever the slug, taken or free, so a capped user learns no tenant's slug;
-- an upload nobody could have made (anon, or a user outside their own avatar folder or their writable orgs) is
-- refused with RLS's 42501 alike for an existing user's folder and a made-up one, for a live org, a deleted one and
-- an unknown one; the service role's writes, the database owner's and a user's own keep the 23503 guard.
begin;
create extension if not exists pgtap with schema extensions;

select plan(33);

select tests.remember('capped', tests.create_user('capped@probes-318.test'));
select tests.remember('below', tests.create_user('below@probes-318.test'));
select tests.remember('tenant', tests.create_user('tenant@probes-318.test'));
select tests.remember('outsider', tests.create_user('outsider@probes-318.test'));
select tests.remember('member', tests.create_user('member@probes-318.test'));
select tests.remember('gone', tests.create_user('gone@probes-318.test'));
select tests.remember('live_org', tests.create_org('probes-318-live', tests.fx('tenant')));
select tests.remember('doomed_org', tests.create_org('probes-318-doomed', tests.fx('tenant')));
select tests.add_member(tests.fx('live_org'), tests.fx('member'), 'member');
select tests.remember('never', gen_random_uuid());
delete from public.organizations where id = tests.fx('doomed_org');
delete from auth.users where id = tests.fx('gone');

-- The sqlstate, message, detail and hint a statement raises (null when it raises none).
create function pg_temp.answer(statement text) returns text[] language plpgsql
as $$
declare
  answer_message text;
  answer_detail text;
  answer_hint text;
begin
  execute statement;
  return null;
exception when others then
  get stacked diagnostics answer_message = message_text, answer_detail = pg_exception_detail,
    answer_hint = pg_exception_hint;
  return array[sqlstate, answer_message, answer_detail, answer_hint];
end;
$$;
grant execute on function pg_temp.answer(text) to anon, authenticated, service_role;

-- An upload of `<folder>/<file>` into a bucket, as the Storage API writes it.
create function pg_temp.upload(bucket text, folder uuid, file text) returns text language sql
as $$ select format($s$insert into storage.objects (bucket_id, name, metadata) values (%L, %L, '{}')$s$,
  bucket, folder::text || '/' || file) $$;
grant execute on function pg_temp.upload(text, uuid, text) to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 1. At the cap, a taken slug is refused as a free one is
-- ---------------------------------------------------------------------------

select tests.act_as('capped');
select is(
  (select count(*)::integer from generate_series(1, 10) i, public.create_organization('Probe ' || i, 'probes-318-cap-' || i) o),
  10,
  'a user creates their 10 organizations'
);
select is(
  pg_temp.answer($$select public.create_organization('Probe', 'probes-318-live')$$),
  pg_temp.answer($$select public.create_organization('Probe', 'probes-318-free')$$),
  'at the cap, another tenant''s slug and a free slug get the same answer'
);
select is(
  (pg_temp.answer($$select public.create_organization('Probe', 'probes-318-live')$$))[1:2],
  array['PT429', 'a user creates at most 10 organizations in 30 days'],
  '... PT429, the cap''s refusal'
);
select throws_ok(
  $$select public.create_organization('Probe', 'probes-318-cap-1')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... so is a slug the user holds themselves'
);
select throws_ok(
  $$select public.create_organization('Probe', '  PROBES-318-LIVE ')$$,
  'PT429', 'a user creates at most 10 organizations in 30 days',
  '... and a taken slug in other case and with spaces'
);
select throws_ok(
  $$select public.create_organization('Probe', 'ab')$$,
  '22023', 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens',
  '... a malformed slug still answers 22023 first (the input alone decides it)'
);
select throws_ok(
  $$select public.create_organization(' ', 'probes-318-live')$$,
  '22023', 'an organization name has 1 to 100 characters',
  '... and a bad name'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.organizations o where o.created_by = tests.fx('capped')),
  10,
  'the refused probes created nothing'
);
select is(
  (select count(*)::integer from private.organization_creations c where c.user_id = tests.fx('capped')),
  10,
  '... and spent nothing of the ledger'
);

select tests.act_as('below');
select throws_ok(
  $$select public.create_organization('Probe', 'probes-318-live')$$,
  '23505', 'the slug "probes-318-live" is taken',
  'below the cap, a taken slug still answers 23505 (only a creation it could make)'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.organization_creations c where c.user_id = tests.fx('below')),
  0,
  '... and creates nothing'
);

-- ---------------------------------------------------------------------------
-- 2. Avatars: RLS answers for any folder but one's own
-- ---------------------------------------------------------------------------

select tests.act_as('anon');
select is(
  pg_temp.answer(pg_temp.upload('avatars', tests.fx('never'), 'a.png')),
  pg_temp.answer(pg_temp.upload('avatars', tests.fx('tenant'), 'a.png')),
  'anon: a made-up user''s avatar folder gets the answer an existing user''s gets'
);
select is(
  (pg_temp.answer(pg_temp.upload('avatars', tests.fx('gone'), 'a.png')))[1],
  '42501',
  '... a deleted user''s too: 42501'
);

select tests.act_as('outsider');
select is(
  array[
    pg_temp.answer(pg_temp.upload('avatars', tests.fx('never'), 'a.png')),
    pg_temp.answer(pg_temp.upload('avatars', tests.fx('gone'), 'a.png'))
  ],
  array[
    pg_temp.answer(pg_temp.upload('avatars', tests.fx('tenant'), 'a.png')),
    pg_temp.answer(pg_temp.upload('avatars', tests.fx('tenant'), 'a.png'))
  ],
  'a user: made-up and deleted users'' folders get the answer another user''s gets'
);
select is(
  (pg_temp.answer(pg_temp.upload('avatars', tests.fx('never'), 'a.png')))[1:2],
  array['42501', 'new row violates row-level security policy for table "objects"'],
  '... RLS''s 42501'
);
select lives_ok(pg_temp.upload('avatars', tests.fx('outsider'), 'me.png'), '... while their own folder takes avatars');

-- A token outliving its user: their own folder, so the guard answers.
select tests.act_as('postgres');
select set_config('role', 'authenticated', true),
  set_config('request.jwt.claims', jsonb_build_object('sub', tests.fx('gone'), 'role', 'authenticated')::text, true);
select throws_ok(
  pg_temp.upload('avatars', tests.fx('gone'), 'late.png'),
  '23503', format('user %s does not exist; no avatar can be stored in their folder', tests.fx('gone')),
  'a deleted user''s own token into their own folder is still refused 23503'
);
select tests.act_as('service_role');
select throws_ok(
  pg_temp.upload('avatars', tests.fx('gone'), 'late.png'),
  '23503', format('user %s does not exist; no avatar can be stored in their folder', tests.fx('gone')),
  'the service role into a deleted user''s folder: 23503, as before'
);
select tests.act_as('postgres');
select throws_ok(
  pg_temp.upload('avatars', tests.fx('never'), 'late.png'),
  '23503', null,
  '... and the database owner into a made-up one'
);

-- ---------------------------------------------------------------------------
-- 3. Org buckets: RLS answers for a deleted org as for a live or unknown one
-- ---------------------------------------------------------------------------

-- Every org bucket, for each caller: the answer to an upload under the org's prefix.
create function pg_temp.org_answers(org text, callers text[]) returns text[] language plpgsql
as $$
declare
  answers text[] := '{}';
  bucket text;
  who text;
begin
  for bucket in select b.bucket_id from private.org_buckets b order by b.bucket_id loop
    foreach who in array callers loop
      perform tests.act_as(who);
      answers := answers || (bucket || ' ' || who || ': ' || coalesce(
        array_to_string(pg_temp.answer(pg_temp.upload(bucket, tests.fx(org), 'probe/x.txt')), ' | '), 'stored'));
      perform tests.act_as('postgres');
    end loop;
  end loop;
  return answers;
end;
$$;

select ok(
  (select count(*) = 4 from private.org_buckets b where b.bucket_id in ('exports', 'knowledge', 'recordings', 'invoices')),
  'the org buckets probed include exports, knowledge, recordings and invoices'
);
select is(pg_temp.org_answers('doomed_org', array['anon', 'outsider']), pg_temp.org_answers('live_org', array['anon', 'outsider']),
  'anon and another org''s user: a deleted org''s prefix gets the answers a live org''s gets, in every org bucket');
select is(pg_temp.org_answers('doomed_org', array['anon', 'outsider', 'member']),
  pg_temp.org_answers('never', array['anon', 'outsider', 'member']),
  '... and an org that never existed, for them and a member of another org');
select is(
  (select array_agg(distinct pg_catalog.split_part(a, ': ', 2)) from unnest(pg_temp.org_answers('doomed_org', array['anon', 'outsider', 'member'])) a),
  array['42501 | new row violates row-level security policy for table "objects" |  | '],
  '... every one RLS''s 42501, with its message'
);
-- A member's upload to their own org goes through the guard, as before.
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status)
values ('31800000-0000-4000-8000-0000000000d1', tests.fx('live_org'), 'manual.txt', 'text/plain', 10,
  tests.fx('live_org') || '/31800000-0000-4000-8000-0000000000d1/manual.txt', 'uploading');
select tests.act_as('outsider');
select is(
  pg_temp.answer(pg_temp.upload('knowledge', tests.fx('live_org'), '31800000-0000-4000-8000-0000000000d1/manual.txt')),
  array['42501', 'new row violates row-level security policy for table "objects"', '', ''],
  'knowledge: another org''s user gets RLS''s answer at a document''s path'
);
select is(
  pg_temp.answer(pg_temp.upload('knowledge', tests.fx('live_org'), '31800000-0000-4000-8000-0000000000d2/manual.txt')),
  array['42501', 'new row violates row-level security policy for table "objects"', '', ''],
  '... as at a path no document takes, so neither tells them which paths are documents'''
);
select tests.act_as('member');
select lives_ok(pg_temp.upload('knowledge', tests.fx('live_org'), '31800000-0000-4000-8000-0000000000d1/manual.txt'),
  'a member uploads their org''s document file');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from storage.objects o
   where o.bucket_id = 'knowledge' and o.name = tests.fx('live_org') || '/31800000-0000-4000-8000-0000000000d1/manual.txt'),
  1,
  '... it is stored'
);

select tests.act_as('service_role');
select throws_ok(
  pg_temp.upload('exports', tests.fx('doomed_org'), 'exports/e/late.json'),
  '23503', format('organization %s was deleted; nothing can be stored under its prefix', tests.fx('doomed_org')),
  'the service role into a deleted org''s prefix: 23503, as before'
);
select throws_ok(
  pg_temp.upload('invoices', tests.fx('doomed_org'), 'invoices/late.pdf'),
  '23503', null,
  '... in every org bucket'
);
select lives_ok(pg_temp.upload('exports', tests.fx('never'), 'exports/e/x.json'),
  '... while a prefix that never named an org is not concerned');
select tests.act_as('postgres');
select throws_ok(
  pg_temp.upload('recordings', tests.fx('doomed_org'), 'late.mp3'),
  '23503', null,
  'the database owner into a deleted org''s prefix: 23503, as before'
);
select is(
  (select count(*)::integer from storage.objects o where o.name like tests.fx('doomed_org') || '/%'),
  0,
  'nothing was stored under the deleted org''s prefix'
);

-- ---------------------------------------------------------------------------
-- The triggers fire for any writing role
-- ---------------------------------------------------------------------------

select is(
  (select array_agg(p.prosecdef order by p.proname) from pg_proc p
   where p.oid in ('private.refuse_avatars_of_missing_users()'::regprocedure, 'private.refuse_deleted_org_objects()'::regprocedure)),
  array[true, true],
  'both guards are security definer (whatever role Storage writes as may fire them) and read the writing role from the role setting'
);

select * from finish();
rollback;
