-- 20261123006500: a calendar connection's account is the provider's account
-- id (account_subject), not its e-mail. save_calendar_connection finds a
-- connection by subject first, then a subject-less one (made before) by
-- e-mail, which gets the subject; the e-mail follows the latest spelling; a
-- subject never changes once set; private.calendar_account_connected_elsewhere
-- compares subjects where both rows have one, e-mails otherwise; its
-- (provider, subject, e-mail, except id) variant answers for a connection
-- whose row is gone (a reconnect replaced it during the disconnect).
begin;
create extension if not exists pgtap with schema extensions;

select plan(46);

insert into tests.fixtures (name, id) values
  ('owner1', tests.create_user('owner1@subject236.test')),
  ('admin1', tests.create_user('admin1@subject236.test')),
  ('owner2', tests.create_user('owner2@subject236.test')),
  ('admin2', tests.create_user('admin2@subject236.test'));
select tests.remember('org1', tests.create_org('subject236-org-1', tests.fx('owner1')));
select tests.remember('org2', tests.create_org('subject236-org-2', tests.fx('owner2')));
select tests.add_member(tests.fx('org1'), tests.fx('admin1'), 'admin');
select tests.add_member(tests.fx('org2'), tests.fx('admin2'), 'admin');

-- Saves as the calendar function does (service role); subject null is the call made before 20261123006500.
create function pg_temp.save(org text, admin text, provider text, email text, subject text, ciphertext text default 'v1.cipher')
returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx(org), tests.fx(admin), null, provider, email, null,
    array['https://www.googleapis.com/auth/calendar.events'], ciphertext, now() + interval '1 hour', subject) $$;
create function pg_temp.row_of(name text) returns public.calendar_connections language sql as
  $$ select * from public.calendar_connections where id = tests.fx(name) $$;
create function pg_temp.count_in(org text, provider text) returns integer language sql as
  $$ select count(*)::integer from public.calendar_connections where org_id = tests.fx($1) and provider = $2 $$;
create function pg_temp.elsewhere(name text) returns boolean language sql as
  $$ select private.calendar_account_connected_elsewhere(tests.fx(name)) $$;
grant execute on function pg_temp.save(text, text, text, text, text, text), pg_temp.row_of(text),
  pg_temp.count_in(text, text), pg_temp.elsewhere(text) to public;

-- ---------------------------------------------------------------------------
-- 1. The column, its keys, the function's shape and grants
-- ---------------------------------------------------------------------------

select has_column('public', 'calendar_connections', 'account_subject', 'connections store the provider''s account id');
select has_index('public', 'calendar_connections', 'calendar_connections_subject_key', 'one connection per subject and calendar');
select has_index('public', 'calendar_connections', 'calendar_connections_provider_subject_idx', 'the cross-org subject lookup is indexed');
select is(
  (select count(*)::integer from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
   where n.nspname = 'private' and p.proname = 'save_calendar_connection'),
  1, 'save: one signature (the old one is gone, so calls without a subject are not ambiguous)'
);
select is(has_function_privilege('service_role',
  'private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text)', 'execute'), true,
  'save: the service role may');
select is(has_function_privilege('authenticated',
  'private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text)', 'execute'), false,
  'save: signed-in users may not');
select is(has_function_privilege('anon',
  'private.save_calendar_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz, text)', 'execute'), false,
  'save: anon may not');
select is(has_function_privilege('authenticated', 'private.calendar_account_connected_elsewhere(uuid)', 'execute'), false,
  'elsewhere: still not for signed-in users');
select is(has_function_privilege('service_role', 'private.calendar_account_connected_elsewhere(uuid)', 'execute'), true,
  'elsewhere: still for the service role');

-- ---------------------------------------------------------------------------
-- 2. Saving: subject first, then e-mail for a row without one
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('alice', pg_temp.save('org1', 'admin1', 'google', 'Alice.Smith@Example.test', '110000000000000000236'));
select is((pg_temp.row_of('alice')).account_subject, '110000000000000000236', 'save: the subject is stored');
select is(pg_temp.save('org1', 'admin1', 'google', 'ALICE@example.test', '110000000000000000236', 'v1.renamed'), tests.fx('alice'),
  'save: the same subject under another e-mail is the same connection');
select is(pg_temp.count_in('org1', 'google'), 1, 'save: still one connection');
select is((pg_temp.row_of('alice')).account_email, 'alice@example.test', 'save: the e-mail shows the latest spelling');
select tests.act_as('postgres');
select is((select ciphertext from private.calendar_tokens where connection_id = tests.fx('alice')), 'v1.renamed',
  'save: the tokens are the reconnect''s');

select tests.act_as('postgres');
insert into public.calendar_connections (org_id, provider, account_email, external_calendar_id)
values (tests.fx('org1'), 'microsoft', 'old@subject236.test', null);
select tests.remember('old', (select id from public.calendar_connections where org_id = tests.fx('org1') and account_email = 'old@subject236.test'));
select tests.act_as('service_role');
select is(pg_temp.save('org1', 'admin1', 'microsoft', 'Old@Subject236.test', '5e0c1a3f-0236-4c1d-9a3e-000000000236'), tests.fx('old'),
  'save: a connection made before subjects is found by e-mail');
select is((pg_temp.row_of('old')).account_subject, '5e0c1a3f-0236-4c1d-9a3e-000000000236', 'save: and gets its subject');
select is(pg_temp.count_in('org1', 'microsoft'), 1, 'save: not duplicated');

-- The address passed to another account: another subject with the same e-mail is another connection.
select tests.remember('successor', pg_temp.save('org1', 'admin1', 'microsoft', 'old@subject236.test', '9b1d0000-0236-4000-8000-00000000beef'));
select isnt(tests.fx('successor'), tests.fx('old'), 'save: another subject with the same e-mail is another connection');
select is(pg_temp.count_in('org1', 'microsoft'), 2, 'save: two accounts, two connections');
select is((pg_temp.row_of('old')).account_subject, '5e0c1a3f-0236-4c1d-9a3e-000000000236', 'save: the first keeps its subject');

-- Without a subject (a caller from before): the e-mail, as before; a stored subject stays.
select is(pg_temp.save('org1', 'admin1', 'google', 'alice@example.test', null), tests.fx('alice'),
  'save: without a subject the e-mail finds the connection');
select is((pg_temp.row_of('alice')).account_subject, '110000000000000000236', 'save: and its subject stays');

select throws_ok($$select pg_temp.save('org1', 'admin1', 'google', 'bad@example.test', 'has space')$$, '22023', null,
  'save: a subject with a space is refused');
select throws_ok($$select pg_temp.save('org1', 'admin1', 'google', 'bad@example.test', '')$$, '22023', null,
  'save: an empty subject is refused');
select throws_ok(format($$select pg_temp.save('org1', 'admin1', 'google', 'bad@example.test', %L)$$, repeat('1', 256)), '22023', null,
  'save: a subject over 255 characters is refused');
select is((select count(*)::integer from public.calendar_connections where account_email = 'bad@example.test'), 0,
  'save: a refused subject stores nothing');

-- ---------------------------------------------------------------------------
-- 3. A subject never changes once set
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select throws_ok($$update public.calendar_connections set account_subject = 'someone-else' where id = tests.fx('alice')$$,
  '23514', null, 'a subject cannot be swapped for another');
select throws_ok($$update public.calendar_connections set account_subject = null where id = tests.fx('alice')$$,
  '23514', null, 'a subject cannot be cleared');
select throws_ok($$insert into public.calendar_connections (org_id, provider, account_email, account_subject)
  values (tests.fx('org1'), 'microsoft', 'spaced@subject236.test', 'x y')$$,
  '23514', null, 'the column refuses what no provider sends');
select is(
  (select count(*)::integer from public.audit_log
   where table_name = 'calendar_connections' and record_id = tests.fx('old')::text and action = 'update'
     and new_values ->> 'account_subject' = '5e0c1a3f-0236-4c1d-9a3e-000000000236'),
  1, 'learning the subject is audited'
);

-- ---------------------------------------------------------------------------
-- 4. Connected elsewhere: by subject, by e-mail where a row has none
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('alice2', pg_temp.save('org2', 'admin2', 'google', 'alicesmith@example.test', '110000000000000000236'));
select is(pg_temp.elsewhere('alice'), true, 'elsewhere: the same subject in another org under another e-mail');
select is(pg_temp.elsewhere('alice2'), true, 'elsewhere: asked from the other side too');
select is(pg_temp.elsewhere('old'), false,
  'elsewhere: the same e-mail with another subject is another account (its revocation is its own)');

select tests.act_as('postgres');
insert into public.calendar_connections (org_id, provider, account_email, external_calendar_id)
values (tests.fx('org2'), 'google', 'carol@example.test', 'primary');
select tests.remember('carol_old', (select id from public.calendar_connections where org_id = tests.fx('org2') and account_email = 'carol@example.test'));
select tests.act_as('service_role');
select tests.remember('carol', pg_temp.save('org1', 'admin1', 'google', 'carol@example.test', '110000000000000000999'));
select is(pg_temp.elsewhere('carol'), true, 'elsewhere: a row without a subject with the same e-mail counts (the safe side)');
select is(pg_temp.elsewhere('carol_old'), true, 'elsewhere: and the other way round');

select tests.act_as('postgres');
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('alice2');
select tests.act_as('service_role');
select is(pg_temp.elsewhere('alice'), false, 'elsewhere: a revoked connection of the subject does not count: the last one revokes');
select is(private.calendar_account_connected_elsewhere(gen_random_uuid()), false, 'elsewhere: unknown is false');

-- ---------------------------------------------------------------------------
-- 5. Asked by account: the disconnected row may be gone, replaced by a reconnect
-- ---------------------------------------------------------------------------

select is(has_function_privilege('authenticated', 'private.calendar_account_connected_elsewhere(text, text, text, uuid)', 'execute'),
  false, 'by account: not for signed-in users');
select is(has_function_privilege('service_role', 'private.calendar_account_connected_elsewhere(text, text, text, uuid)', 'execute'),
  true, 'by account: for the service role');

-- The disconnect marks dave revoked; before it decides on revoking, a connect of the same account replaces the row.
select tests.remember('dave', pg_temp.save('org1', 'admin1', 'google', 'dave@subject236.test', '110000000000000000444'));
select tests.act_as('postgres');
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('dave');
select tests.act_as('service_role');
select tests.remember('dave_again', pg_temp.save('org1', 'admin1', 'google', 'dave@subject236.test', '110000000000000000444'));
select is((select count(*)::integer from public.calendar_connections where id = tests.fx('dave')), 0,
  'by account: the reconnect replaced the revoked row');
select is(pg_temp.elsewhere('dave'), false, 'by id: the gone row is unknown, so false (why the disconnect asks by account)');
select is(private.calendar_account_connected_elsewhere('google', '110000000000000000444', 'dave@subject236.test', tests.fx('dave')),
  true, 'by account: the reconnected connection holds the account, so the grant is not revoked');
select is(private.calendar_account_connected_elsewhere('google', '110000000000000000444', 'dave@subject236.test', tests.fx('dave_again')),
  false, 'by account: the excepted connection itself does not count');
select is(private.calendar_account_connected_elsewhere('microsoft', '110000000000000000444', 'dave@subject236.test', tests.fx('dave')),
  false, 'by account: another provider is another account');
select is(private.calendar_account_connected_elsewhere('google', null, 'dave@subject236.test', gen_random_uuid()),
  true, 'by account: without a subject the e-mail counts (the safe side)');
select is(private.calendar_account_connected_elsewhere('google', '110000000000000000555', 'dave@subject236.test', gen_random_uuid()),
  false, 'by account: another subject with the same e-mail is another account');

select * from finish();
rollback;
