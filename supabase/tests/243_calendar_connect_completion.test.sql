-- 20261123007400: the OAuth callback parks the sealed tokens as a connection
-- request; only the user who started the connect completes it, once, within
-- 10 minutes; an unknown, expired, used or someone else's request gives no
-- row alike, and someone else's attempt leaves it for its user. No API role
-- reads the parked tokens.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@pending243.test')),
  ('attacker', tests.create_user('attacker@pending243.test')),
  ('admin', tests.create_user('admin@pending243.test'));
select tests.remember('org', tests.create_org('pending243-org', tests.fx('owner')));
select tests.remember('other_org', tests.create_org('pending243-other', tests.fx('attacker')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');

-- Parks as the callback does (service role).
create function pg_temp.park(org text, starter text, email text, subject text) returns uuid language sql as $$
  select id from private.store_calendar_pending_connection(tests.fx(org), tests.fx(starter), null, 'google', email, subject,
    array['https://www.googleapis.com/auth/calendar.events'], 'v1.sealed-' || subject, now() + interval '1 hour') $$;
create function pg_temp.complete(request text, caller text) returns uuid language sql as $$
  select connection_id from private.complete_calendar_connection(tests.fx(request), tests.fx(caller)) $$;
create function pg_temp.pending(request text) returns bigint language sql as
  $$ select count(*) from private.calendar_pending_connections where id = tests.fx(request) $$;
create function pg_temp.connections(org text) returns bigint language sql as
  $$ select count(*) from public.calendar_connections where org_id = tests.fx(org) $$;
grant execute on function pg_temp.park(text, text, text, text), pg_temp.complete(text, text), pg_temp.pending(text),
  pg_temp.connections(text) to public;

-- ---------------------------------------------------------------------------
-- 1. Who may call what, and read what
-- ---------------------------------------------------------------------------

select is(has_function_privilege('service_role', 'private.store_calendar_pending_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz)', 'execute'),
  true, 'store: the service role may');
select is(has_function_privilege('authenticated', 'private.store_calendar_pending_connection(uuid, uuid, uuid, text, text, text, text[], text, timestamptz)', 'execute'),
  false, 'store: signed-in users may not');
select is(has_function_privilege('service_role', 'private.complete_calendar_connection(uuid, uuid)', 'execute'),
  true, 'complete: the service role may');
select is(has_function_privilege('authenticated', 'private.complete_calendar_connection(uuid, uuid)', 'execute'),
  false, 'complete: signed-in users may not (the function passes the JWT''s user)');
select is(has_function_privilege('anon', 'private.complete_calendar_connection(uuid, uuid)', 'execute'),
  false, 'complete: anon may not');

select tests.act_as('service_role');
select tests.remember('victim_request', pg_temp.park('other_org', 'attacker', 'Victim@Pending243.test', 'sub-victim-243'));
select tests.remember('own_request', pg_temp.park('org', 'admin', 'desk@pending243.test', 'sub-desk-243'));
select throws_ok($$select * from private.calendar_pending_connections$$, '42501', null,
  'the service role does not read parked tokens');
select tests.act_as('attacker');
select throws_ok($$select * from private.calendar_pending_connections$$, '42501', null,
  'a signed-in user does not read parked tokens');
select tests.act_as('anon');
select throws_ok($$select * from private.calendar_pending_connections$$, '42501', null, 'anon does not read parked tokens');
select tests.act_as('postgres');
select is((select account_email from private.calendar_pending_connections where id = tests.fx('victim_request')),
  'victim@pending243.test', 'parked: the e-mail as save_calendar_connection stores it');
select is((select expires_at from private.calendar_pending_connections where id = tests.fx('victim_request')),
  now() + interval '10 minutes', 'parked: for 10 minutes');

-- ---------------------------------------------------------------------------
-- 2. Only the user who started completes it, once
-- ---------------------------------------------------------------------------

-- The consent came from someone else (the victim); the victim's dashboard completes with the victim's session.
select tests.act_as('service_role');
select is(pg_temp.complete('victim_request', 'owner'), null, 'another user completing: no row, as for an unknown request');
select tests.act_as('postgres');
select is(pg_temp.pending('victim_request'), 0::bigint, 'another user completing: the request is given up (a leaked id cannot be completed later)');
select is(pg_temp.connections('other_org'), 0::bigint, 'another user completing: no connection');

select tests.act_as('service_role');
select tests.remember('own_connection', pg_temp.complete('own_request', 'admin'));
select tests.act_as('postgres');
select results_eq(
  $$select org_id, provider, account_email, account_subject, status, connected_by from public.calendar_connections where id = tests.fx('own_connection')$$,
  $$values (tests.fx('org'), 'google'::text, 'desk@pending243.test'::text, 'sub-desk-243'::text, 'connected'::text, tests.fx('admin'))$$,
  'its user completing: the connection of that org and account');
select is((select ciphertext from private.calendar_tokens where connection_id = tests.fx('own_connection')),
  'v1.sealed-sub-desk-243', 'its user completing: the parked tokens are the connection''s');
select is(pg_temp.pending('own_request'), 0::bigint, 'its user completing: the request is used up');
select tests.act_as('service_role');
select is(pg_temp.complete('own_request', 'admin'), tests.fx('own_connection'), 'a second completion by its user: the same connection again (20261123011300)');
select is((select count(*) from private.complete_calendar_connection(gen_random_uuid(), tests.fx('admin'))), 0::bigint,
  'an unknown request: no row');
select tests.act_as('postgres');
select is(pg_temp.connections('org'), 1::bigint, 'a second completion: still one connection');

-- The save's own checks stay: a starter who lost calendar.manage is refused, and the request is kept.
select tests.act_as('service_role');
select tests.remember('demoted_request', pg_temp.park('org', 'admin', 'later@pending243.test', 'sub-later-243'));
select tests.act_as('postgres');
update public.memberships set role = 'member' where org_id = tests.fx('org') and user_id = tests.fx('admin');
select tests.act_as('service_role');
select throws_ok($$select pg_temp.complete('demoted_request', 'admin')$$, '42501', null,
  'a starter without calendar.manage: refused');
select tests.act_as('postgres');
select is(pg_temp.pending('demoted_request'), 1::bigint, 'a refused save: the request is not used up');

-- ---------------------------------------------------------------------------
-- 3. Not after expiry
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('late_request', pg_temp.park('other_org', 'attacker', 'late@pending243.test', 'sub-late-243'));
select tests.act_as('postgres');
update private.calendar_pending_connections set expires_at = now() - interval '1 second' where id = tests.fx('late_request');
select tests.act_as('service_role');
select is(pg_temp.complete('late_request', 'attacker'), null, 'expired: no row, for its own user too');
select tests.act_as('postgres');
select is(pg_temp.pending('late_request'), 0::bigint, 'expired: the request is deleted');
select is(pg_temp.connections('other_org'), 0::bigint, 'expired: no connection');

select tests.act_as('service_role');
select tests.remember('stale_request', pg_temp.park('other_org', 'attacker', 'stale@pending243.test', 'sub-stale-243'));
select tests.act_as('postgres');
update private.calendar_pending_connections set expires_at = now() - interval '1 second' where id = tests.fx('stale_request');
select is(private.purge_calendar_pending_connections() >= 1, true, 'the purge deletes expired requests');

select * from finish();
rollback;
