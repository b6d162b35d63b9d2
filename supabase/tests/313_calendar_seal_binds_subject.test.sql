-- 20261123014000: the readers of sealed calendar token sets answer the account subject each set is bound to
-- (the function's AES-GCM context): calendar_tokens_for for connections, calendar_secrets_to_reseal for
-- connections, connection requests and dropped grants. Two accounts of one e-mail and calendar are two
-- connections with two subjects; a connection made before 20261123006500 answers none, and instead the subjects
-- of the org's other sets sealed under the same old `org:provider:email:calendar` context (other_subjects), which
-- a set sealed under it must not name to open there. Service role only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(10);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@seal313.test')),
  ('admin', tests.create_user('admin@seal313.test'));
select tests.remember('org', tests.create_org('seal313-org', tests.fx('owner')));
select tests.remember('other_org', tests.create_org('seal313-other-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');

select tests.act_as('service_role');
-- The address passed from A's account to B's: the same e-mail and calendar, another subject.
select tests.remember('conn_a', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'shared@seal313.test', 'primary', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.a.a.a',
  now() + interval '1 hour', 'sub-a-313'));
select tests.remember('conn_b', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'shared@seal313.test', 'primary', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.b.b.b',
  now() + interval '1 hour', 'sub-b-313'));
-- As a connection made before 20261123006500 was saved: no subject.
select tests.remember('conn_old', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'old@seal313.test', 'primary', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.o.o.o',
  now() + interval '1 hour'));
-- Another one, whose address became A's and B's since (a connection's e-mail follows its account's): the same old
-- context as theirs. Saved under another address, since a save without a subject takes the row of its e-mail.
select tests.remember('conn_legacy', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'legacy@seal313.test', 'primary', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.l.l.l',
  now() + interval '1 hour'));
-- Another org's account of that address: another context.
select tests.remember('conn_other_org', private.save_calendar_connection(tests.fx('other_org'), tests.fx('owner'), null,
  'google', 'shared@seal313.test', 'primary', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.x.x.x',
  now() + interval '1 hour', 'sub-other-org-313'));
select tests.remember('request', (select id from private.store_calendar_pending_connection(tests.fx('org'), tests.fx('admin'), null,
  'google', 'shared@seal313.test', 'sub-request-313', array['https://www.googleapis.com/auth/calendar.events'],
  'v1.0000beef.r.r.r', now() + interval '1 hour')));
select tests.act_as('postgres');
update public.calendar_connections set account_email = 'shared@seal313.test' where id = tests.fx('conn_legacy');
insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
  external_calendar_id, ciphertext, next_attempt_at)
values (gen_random_uuid(), tests.fx('org'), 'google', 'sub-dropped-313', 'dropped@seal313.test', 'primary', 'v1.0000beef.d.d.d',
  now() + interval '1 day');
select tests.remember('dropped', (select id from private.deleted_org_calendar_grants where account_subject = 'sub-dropped-313'));
-- A dropped copy of a connection made before 20261123006500, of the shared address: no subject either.
insert into private.deleted_org_calendar_grants (connection_id, org_id, provider, account_subject, account_email,
  external_calendar_id, ciphertext, next_attempt_at)
values (gen_random_uuid(), tests.fx('org'), 'google', null, 'shared@seal313.test', 'primary', 'v1.0000beef.e.e.e',
  now() + interval '1 day');
select tests.remember('dropped_legacy', (select id from private.deleted_org_calendar_grants
  where org_id = tests.fx('org') and ciphertext = 'v1.0000beef.e.e.e'));

select isnt(tests.fx('conn_a'), tests.fx('conn_b'), 'two accounts of one e-mail and calendar: two connections');

-- ---------------------------------------------------------------------------
-- 1. Who may call them (dropped and created again)
-- ---------------------------------------------------------------------------

select is(has_function_privilege('service_role', 'private.calendar_tokens_for(uuid[])', 'execute'), true,
  'calendar_tokens_for: the service role may');
select is(has_function_privilege('authenticated', 'private.calendar_tokens_for(uuid[])', 'execute')
    or has_function_privilege('anon', 'private.calendar_tokens_for(uuid[])', 'execute'), false,
  'calendar_tokens_for: signed-in users and anon may not');
select is(has_function_privilege('service_role', 'private.calendar_secrets_to_reseal(text, integer, uuid[], uuid)', 'execute'), true,
  'calendar_secrets_to_reseal: the service role may');
select is(has_function_privilege('authenticated', 'private.calendar_secrets_to_reseal(text, integer, uuid[], uuid)', 'execute')
    or has_function_privilege('anon', 'private.calendar_secrets_to_reseal(text, integer, uuid[], uuid)', 'execute'), false,
  'calendar_secrets_to_reseal: signed-in users and anon may not');
select is(has_function_privilege('service_role', 'private.calendar_legacy_context_subjects(uuid, text, text, text)', 'execute')
    or has_function_privilege('authenticated', 'private.calendar_legacy_context_subjects(uuid, text, text, text)', 'execute'),
  false, 'calendar_legacy_context_subjects: only through the readers');

-- ---------------------------------------------------------------------------
-- 2. What they answer
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select set_eq(
  $$select connection_id, account_subject, account_email, external_calendar_id, ciphertext, other_subjects
    from private.calendar_tokens_for(array[tests.fx('conn_a'), tests.fx('conn_b'), tests.fx('conn_old'),
      tests.fx('conn_legacy')])$$,
  $$values (tests.fx('conn_a'), 'sub-a-313'::text, 'shared@seal313.test'::text, 'primary'::text, 'v1.0000beef.a.a.a'::text,
             '{}'::text[]),
           (tests.fx('conn_b'), 'sub-b-313', 'shared@seal313.test', 'primary', 'v1.0000beef.b.b.b', '{}'),
           (tests.fx('conn_old'), null, 'old@seal313.test', 'primary', 'v1.0000beef.o.o.o', '{}'),
           (tests.fx('conn_legacy'), null, 'shared@seal313.test', 'primary', 'v1.0000beef.l.l.l',
             '{sub-a-313,sub-b-313,sub-request-313}')$$,
  'calendar_tokens_for: each connection''s subject (none before 20261123006500) with the rest of its key; without one, the subjects of the org''s other sets of its old context'
);
select set_eq(
  $$select kind, id, account_subject, account_email, external_calendar_id, other_subjects
    from private.calendar_secrets_to_reseal('1111cafe', 500, '{}', tests.fx('org'))$$,
  $$values ('connection'::text, tests.fx('conn_a'), 'sub-a-313'::text, 'shared@seal313.test'::text, 'primary'::text,
             '{}'::text[]),
           ('connection', tests.fx('conn_b'), 'sub-b-313', 'shared@seal313.test', 'primary', '{}'),
           ('connection', tests.fx('conn_old'), null, 'old@seal313.test', 'primary', '{}'),
           ('connection', tests.fx('conn_legacy'), null, 'shared@seal313.test', 'primary',
             '{sub-a-313,sub-b-313,sub-request-313}'),
           ('request', tests.fx('request'), 'sub-request-313', 'shared@seal313.test', 'primary', '{}'),
           ('dropped_grant', tests.fx('dropped'), 'sub-dropped-313', 'dropped@seal313.test', 'primary', '{}'),
           ('dropped_grant', tests.fx('dropped_legacy'), null, 'shared@seal313.test', 'primary',
             '{sub-a-313,sub-b-313,sub-request-313}')$$,
  'calendar_secrets_to_reseal: every kind with the subject it is sealed under; without one, the subjects of the org''s other sets of its old context'
);
select is((select count(*) from private.calendar_secrets_to_reseal('0000beef', 500, '{}', tests.fx('org'))), 0::bigint,
  'calendar_secrets_to_reseal: sets under the current key are still left out');
select throws_ok($$select * from private.calendar_tokens_for(array_fill(gen_random_uuid(), array[101]))$$, '22023', null,
  'calendar_tokens_for: still at most 100 at a time');
select tests.act_as('postgres');

select * from finish();
rollback;
