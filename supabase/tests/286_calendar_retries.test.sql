-- 20261123011300: requests sent again and finishing a token-key rotation.
-- private.conversation_booking finds a conversation's booking of the same time, resource and attendee
-- as stored (trimmed name, lower-cased e-mail, E.164 phone) and nothing else; the starting user's repeat
-- of complete_calendar_connection gets the same row until the request would have expired (nobody else,
-- not once revoked, purged after); calendar_secrets_to_reseal lists sealed sets whose header names
-- another key, reseal_calendar_secret replaces only the set read and nothing else. Service role only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(30);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@retries286.test')),
  ('admin', tests.create_user('admin@retries286.test'));
select tests.remember('org', tests.create_org('retries286-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
insert into public.bots (org_id, name, slug) values (tests.fx('org'), 'Desk 286', 'desk-286');
select tests.remember('bot', (select id from public.bots where slug = 'desk-286' and org_id = tests.fx('org')));
insert into public.conversations (org_id, bot_id, channel, external_conversation_id) values
  (tests.fx('org'), tests.fx('bot'), 'web', 'retries286-first'), (tests.fx('org'), tests.fx('bot'), 'web', 'retries286-second');
select tests.remember('conversation', (select id from public.conversations where external_conversation_id = 'retries286-first'));
select tests.remember('other_conversation', (select id from public.conversations where external_conversation_id = 'retries286-second'));

create function pg_temp.at(hours integer) returns timestamptz language sql stable as
  $$ select date_trunc('hour', now()) + interval '3 days' + hours * interval '1 hour' $$;
create function pg_temp.found(conversation text, starts integer, name text, email text, phone text) returns uuid language sql as $$
  select id from private.conversation_booking(tests.fx(conversation), tests.fx('bot'), pg_temp.at(starts), pg_temp.at(starts) + interval '30 minutes',
    'default', name, email, phone) $$;
grant execute on function pg_temp.at(integer), pg_temp.found(text, integer, text, text, text) to public;

-- ---------------------------------------------------------------------------
-- 1. Who may call what
-- ---------------------------------------------------------------------------

select is(has_function_privilege('service_role', 'private.conversation_booking(uuid, uuid, timestamptz, timestamptz, text, text, text, text)', 'execute'),
  true, 'conversation_booking: the service role may');
select is(has_function_privilege('authenticated', 'private.conversation_booking(uuid, uuid, timestamptz, timestamptz, text, text, text, text)', 'execute'),
  false, 'conversation_booking: signed-in users may not');
select is(has_function_privilege('service_role', 'private.calendar_secrets_to_reseal(text, integer, uuid[], uuid)', 'execute'),
  true, 'calendar_secrets_to_reseal: the service role may');
select is(has_function_privilege('authenticated', 'private.calendar_secrets_to_reseal(text, integer, uuid[], uuid)', 'execute'),
  false, 'calendar_secrets_to_reseal: signed-in users may not');
select is(has_function_privilege('authenticated', 'private.reseal_calendar_secret(text, uuid, text, text)', 'execute'),
  false, 'reseal_calendar_secret: signed-in users may not');
select is(has_function_privilege('anon', 'private.count_calendar_secrets_to_reseal(text)', 'execute'),
  false, 'count_calendar_secrets_to_reseal: anon may not');
select tests.act_as('service_role');
select throws_ok($$select * from private.calendar_completed_connections$$, '42501', null,
  'the service role does not read completion receipts directly');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 2. The conversation's booking of a time
-- ---------------------------------------------------------------------------

select tests.remember('booked', (private.book_appointment_for_bot(tests.fx('bot'), pg_temp.at(1), pg_temp.at(1) + interval '30 minutes',
  'Rita Retry', 'Rita@Retries286.test', '+1 (415) 555-0142', null, tests.fx('conversation'), null)).id);

select tests.act_as('service_role');
select is(pg_temp.found('conversation', 1, ' Rita Retry ', ' rita@retries286.TEST', '+14155550142'), tests.fx('booked'),
  'the same attendee, spelt otherwise: found');
select is(pg_temp.found('conversation', 1, 'Carl Colleague', 'rita@retries286.test', '+14155550142'), null, 'another name: none');
select is(pg_temp.found('conversation', 1, 'Rita Retry', 'rita@retries286.test', null), null, 'no phone where one was booked: none');
select is(pg_temp.found('conversation', 1, 'Rita Retry', 'other@retries286.test', '+14155550142'), null, 'another e-mail: none');
select is(pg_temp.found('other_conversation', 1, 'Rita Retry', 'rita@retries286.test', '+14155550142'), null, 'another conversation: none');
select is(pg_temp.found('conversation', 2, 'Rita Retry', 'rita@retries286.test', '+14155550142'), null, 'another time: none');
select tests.act_as('postgres');
update public.appointments set status = 'canceled', canceled_at = now() where id = tests.fx('booked');
select tests.act_as('service_role');
select is(pg_temp.found('conversation', 1, 'Rita Retry', 'rita@retries286.test', '+14155550142'), null, 'canceled: none');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 3. Completing a connect twice
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('request', (select id from private.store_calendar_pending_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'desk@retries286.test', 'sub-desk-286', array['https://www.googleapis.com/auth/calendar.events'], 'v1.0000beef.a.b.c', now() + interval '1 hour')));
select tests.remember('connection', (select connection_id from private.complete_calendar_connection(tests.fx('request'), tests.fx('admin'))));
select results_eq($$select connection_id, provider, account_email from private.complete_calendar_connection(tests.fx('request'), tests.fx('admin'))$$,
  $$values (tests.fx('connection'), 'google'::text, 'desk@retries286.test'::text)$$, 'the starter''s repeat: the same row again');
select is((select count(*) from private.complete_calendar_connection(tests.fx('request'), tests.fx('owner'))), 0::bigint,
  'anyone else: no row');
select tests.act_as('postgres');
select is((select count(*) from public.calendar_connections where org_id = tests.fx('org')), 1::bigint, 'one connection');
select is((select count(*) from private.calendar_completed_connections where request_id = tests.fx('request')), 1::bigint,
  'anyone else''s attempt leaves the receipt');
select is((select count(*) from private.deleted_org_calendar_grants where connection_id = tests.fx('request')), 0::bigint,
  'completing queued no revocation of the grant');
update public.calendar_connections set status = 'revoked' where id = tests.fx('connection');
select tests.act_as('service_role');
select is((select count(*) from private.complete_calendar_connection(tests.fx('request'), tests.fx('admin'))), 0::bigint,
  'once disconnected: no row');
select tests.act_as('postgres');
update public.calendar_connections set status = 'connected' where id = tests.fx('connection');
update private.calendar_completed_connections set expires_at = now() - interval '1 second' where request_id = tests.fx('request');
select tests.act_as('service_role');
select is((select count(*) from private.complete_calendar_connection(tests.fx('request'), tests.fx('admin'))), 0::bigint,
  'past the request''s expiry: no row');
select tests.act_as('postgres');
select lives_ok($$select private.purge_calendar_pending_connections()$$, 'the purge runs');
select is((select count(*) from private.calendar_completed_connections where request_id = tests.fx('request')), 0::bigint,
  'the purge takes expired receipts');

-- ---------------------------------------------------------------------------
-- 4. Re-sealing
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select throws_ok($$select * from private.calendar_secrets_to_reseal('nothex!!', 10)$$, '22023', null, 'a kid that is not 8 hex digits: 22023');
select throws_ok($$select * from private.calendar_secrets_to_reseal('0000beef', 0)$$, '22023', null, 'max_rows 0: 22023');
select is((select count(*) from private.calendar_secrets_to_reseal('0000beef', 500) where id = tests.fx('connection')), 0::bigint,
  'sealed with the current key: not listed');
select results_eq($$select kind, org_id, account_email, external_calendar_id from private.calendar_secrets_to_reseal('1111cafe', 500) where id = tests.fx('connection')$$,
  $$values ('connection'::text, tests.fx('org'), 'desk@retries286.test'::text, 'primary'::text)$$,
  'sealed with another key: listed with its calendar key');
select is(private.reseal_calendar_secret('connection', tests.fx('connection'), 'v1.0000beef.stale', 'v1.1111cafe.x.y.z'), false,
  'not the stored set: nothing written');
select tests.act_as('postgres');
update public.calendar_connections set status = 'needs_reauth', status_reason = 'invalid_grant: 286' where id = tests.fx('connection');
select tests.act_as('service_role');
select is(private.reseal_calendar_secret('connection', tests.fx('connection'), 'v1.0000beef.a.b.c', 'v1.1111cafe.x.y.z'), true,
  'the stored set: replaced');
select tests.act_as('postgres');
select results_eq($$select c.status, c.status_reason, t.ciphertext from public.calendar_connections c
    join private.calendar_tokens t on t.connection_id = c.id where c.id = tests.fx('connection')$$,
  $$values ('needs_reauth'::text, 'invalid_grant: 286'::text, 'v1.1111cafe.x.y.z'::text)$$,
  'only the ciphertext changed: a broken connection stays broken');

select * from finish();
rollback;
