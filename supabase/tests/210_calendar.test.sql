-- Calendar (20261123001400_calendar.sql): permissions; tokens nobody reads
-- through the API; the OAuth state (single use, 10 minutes, the user must
-- still hold calendar.manage); saving, reconnecting, refreshing, breaking
-- (one calendar.connection_broken per break) and disconnecting connections;
-- which calendars count for a bot; closures and open ranges (across the
-- Europe/Berlin DST change of 29 March 2026); appointments (no double
-- booking, hours, attendee checks, reschedule, cancel, bot bookings,
-- mirroring state, events); and who sees what (RLS, the appointments
-- channel: members yes, viewers and other orgs no).
--
-- One transaction: now() is one instant throughout. Appointment days are
-- counted from the Monday two weeks ahead (local time in Europe/Berlin).
begin;
create extension if not exists pgtap with schema extensions;

select plan(177);

-- ---------------------------------------------------------------------------
-- Fixtures: org A (Europe/Berlin, one user per role, Monday-Friday
-- 09:00-17:00), org B (its owner), a platform admin.
-- ---------------------------------------------------------------------------

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@calendar.test')),
  ('admin_a', tests.create_user('admin-a@calendar.test')),
  ('member_a', tests.create_user('member-a@calendar.test')),
  ('viewer_a', tests.create_user('viewer-a@calendar.test')),
  ('owner_b', tests.create_user('owner-b@calendar.test')),
  ('ops', tests.create_user('ops@calendar.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('calendar-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('calendar-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_a');

insert into public.bots (org_id, name, slug) values
  (tests.fx('org_a'), 'Front desk', 'cal-front-desk'),
  (tests.fx('org_a'), 'Second', 'cal-second'),
  (tests.fx('org_b'), 'B bot', 'cal-b-bot');
select tests.remember('bot_a', id) from public.bots where slug = 'cal-front-desk';
select tests.remember('bot_a2', id) from public.bots where slug = 'cal-second';
select tests.remember('bot_b', id) from public.bots where slug = 'cal-b-bot';
insert into public.business_hours (org_id, weekday, opens, closes)
select tests.fx('org_a'), d, time '09:00', time '17:00' from generate_series(1, 5) d;

with c as (
  insert into public.conversations (org_id, bot_id, channel) values (tests.fx('org_a'), tests.fx('bot_a2'), 'voice') returning id
) select tests.remember('conv_a', id) from c;
with c as (
  insert into public.conversations (org_id, bot_id, channel) values (tests.fx('org_b'), tests.fx('bot_b'), 'web') returning id
) select tests.remember('conv_b', id) from c;
with c as (
  insert into public.calls (org_id, direction) values (tests.fx('org_a'), 'inbound') returning id
) select tests.remember('call_a', id) from c;
with c as (
  insert into public.calls (org_id, direction) values (tests.fx('org_b'), 'inbound') returning id
) select tests.remember('call_b', id) from c;

-- The Monday two weeks ahead (local date in Berlin), and a local time on a
-- day counted from it, as an instant.
create function pg_temp.day(day_offset integer default 0)
returns date
language sql
stable
as $$ select (date_trunc('week', now() at time zone 'Europe/Berlin'))::date + 14 + day_offset $$;
create function pg_temp.at(day_offset integer, local_time time)
returns timestamptz
language sql
stable
as $$ select (pg_temp.day(day_offset) + local_time) at time zone 'Europe/Berlin' $$;
create function pg_temp.local_range(day_offset integer, opens time, closes time)
returns tstzrange
language sql
stable
as $$ select tstzrange(pg_temp.at(day_offset, opens), pg_temp.at(day_offset, closes), '[)') $$;
grant execute on function pg_temp.day(integer), pg_temp.at(integer, time), pg_temp.local_range(integer, time, time) to public;

-- An RFC 7636 verifier (the example of appendix B, 43 characters).
create function pg_temp.verifier()
returns text
language sql
immutable
as $$ select 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk' $$;
grant execute on function pg_temp.verifier() to public;

-- ---------------------------------------------------------------------------
-- Permissions and the event catalogue
-- ---------------------------------------------------------------------------

select results_eq(
  $$select permission, min_role::text from public.role_permissions
    where permission in ('calendar.read', 'calendar.manage', 'appointments.write') order by permission$$,
  $$values ('appointments.write', 'member'), ('calendar.manage', 'admin'), ('calendar.read', 'member')$$,
  'permissions: calendar.read and appointments.write for members, calendar.manage for admins (viewers get nothing of the calendar)'
);
select is(
  (select schema -> 'required' from public.event_types where type = 'appointment.rescheduled'),
  '["appointment_id", "starts_at", "ends_at", "previous_starts_at", "previous_ends_at"]'::jsonb,
  'events: appointment.rescheduled is catalogued with the new and the previous times'
);

-- ---------------------------------------------------------------------------
-- Tokens and OAuth states: no API role reads them
-- ---------------------------------------------------------------------------

select tests.act_as('anon');
select throws_ok($$select * from private.calendar_tokens$$, '42501', 'permission denied for table calendar_tokens',
  'tokens: anon cannot read them');
select tests.act_as('owner_a');
select throws_ok($$select * from private.calendar_tokens$$, '42501', 'permission denied for table calendar_tokens',
  'tokens: a signed-in owner cannot read them');
select throws_ok($$select * from private.calendar_oauth_states$$, '42501', 'permission denied for table calendar_oauth_states',
  'oauth states: a signed-in owner cannot read them (the PKCE verifiers)');
select throws_ok($$select * from private.calendar_tokens_for(array[gen_random_uuid()])$$, '42501',
  'permission denied for function calendar_tokens_for',
  'tokens: a signed-in owner cannot call calendar_tokens_for');
select tests.act_as('service_role');
select throws_ok($$select * from private.calendar_tokens$$, '42501', 'permission denied for table calendar_tokens',
  'tokens: even the service role reads them only through calendar_tokens_for');
select tests.act_as('postgres');
select is_empty(
  $$select n.nspname || '.' || p.proname
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'private') and p.prosrc ~ 'calendar_tokens'
      and (pg_catalog.has_function_privilege('anon', p.oid, 'execute')
        or pg_catalog.has_function_privilege('authenticated', p.oid, 'execute'))$$,
  'tokens: no function anon or a signed-in user may run touches them'
);
select is_empty(
  $$select p.proname from pg_catalog.pg_proc p
    where p.pronamespace = 'public'::regnamespace and ('ciphertext' = any (p.proargnames) or 'code_verifier' = any (p.proargnames) and p.proname <> 'begin_calendar_connection')$$,
  'tokens: no function in public returns a ciphertext or a verifier'
);

-- ---------------------------------------------------------------------------
-- OAuth state: begin
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$select tests.remember('state1', public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier(),
      redirect_to => 'https://app.example.com/settings/calendar?tab=1'))$$,
  'begin: an admin starts connecting the org''s Google calendar'
);
select lives_ok(
  $$select tests.remember('state_bot', public.begin_calendar_connection(tests.fx('org_a'), 'microsoft', repeat('a~._-', 25) || 'abc',
      tests.fx('bot_a'), '/settings/calendar'))$$,
  'begin: ... and a bot''s Microsoft calendar, with a 128-character verifier and a relative redirect'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', left(pg_temp.verifier(), 42))$$,
  '22023', 'code_verifier must be 43 to 128 characters of A-Z, a-z, 0-9, "-", ".", "_" and "~" (RFC 7636)',
  'begin: a 42-character verifier is refused'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', repeat('a', 129))$$,
  '22023', null, 'begin: a 129-character verifier is refused'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', left(pg_temp.verifier(), 42) || '+')$$,
  '22023', null, 'begin: a verifier with a character outside [A-Za-z0-9-._~] is refused'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'yahoo', pg_temp.verifier())$$,
  '22023', 'unknown calendar provider: yahoo', 'begin: only google and microsoft'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier(), tests.fx('bot_b'))$$,
  'PT404', 'bot not found', 'begin: a bot of another org is not found'
);
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier(), null, r)
    from unnest(array['//evil.example.com/x', 'http://app.example.com/', 'javascript:alert(1)', '/\evil.example.com',
                      'https://user@evil.example.com/', 'settings']) r$$,
  '22023', 'redirect_to must be an https URL or a path starting with a single /',
  'begin: redirects other than https URLs and own paths are refused'
);
select is(
  (select count(*)::integer from unnest(array['//evil.example.com/x', 'http://app.example.com/', 'javascript:alert(1)',
     '/\evil.example.com', 'https://user@evil.example.com/', 'settings', '/a b', 'https://app.example.com/' || repeat('x', 2048)]) r
   where private.is_calendar_redirect(r)),
  0, 'begin: none of the unsafe redirects passes (protocol-relative, http, javascript:, backslash, userinfo, relative, spaces, too long)'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier())$$,
  '42501', 'you do not have the calendar.manage permission in this organization',
  'begin: a member cannot connect calendars'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier())$$,
  '42501', null, 'begin: the owner of B cannot start a connection for A'
);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, user_id, bot_id, provider, used_at is null, expires_at - created_at from private.calendar_oauth_states where jti = tests.fx('state1')$$,
  $$values (tests.fx('org_a'), tests.fx('admin_a'), null::uuid, 'google', true, interval '10 minutes')$$,
  'begin: the state is bound to the org, the user and the provider, unused, valid 10 minutes'
);

-- ---------------------------------------------------------------------------
-- OAuth state: consume
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state1'))$$,
  '42501', 'permission denied for function consume_calendar_oauth_state',
  'consume: service role only'
);
select tests.act_as('service_role');
select results_eq(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state1'))$$,
  $$values (tests.fx('org_a'), tests.fx('admin_a'), null::uuid, 'google', pg_temp.verifier(), 'https://app.example.com/settings/calendar?tab=1')$$,
  'consume: the first use returns what the sign-in was for, with its verifier'
);
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state1'))$$,
  '22023', 'this sign-in link was already used',
  'consume: a second use is refused'
);
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(gen_random_uuid())$$,
  'P0002', 'this sign-in link is unknown',
  'consume: an unknown state is not found'
);
select tests.act_as('postgres');
select isnt((select used_at from private.calendar_oauth_states where jti = tests.fx('state1')), null, 'consume: the state is marked used');

-- Expired: ten minutes and a second ago.
select tests.act_as('admin_a');
select tests.remember('state_old', public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier()));
select tests.act_as('postgres');
update private.calendar_oauth_states set created_at = now() - interval '601 seconds', expires_at = now() - interval '1 second'
where jti = tests.fx('state_old');
select tests.act_as('service_role');
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state_old'))$$,
  '22023', 'this sign-in link has expired',
  'consume: an expired state is refused'
);
select tests.act_as('admin_a');
select tests.remember('state_lost', public.begin_calendar_connection(tests.fx('org_a'), 'google', pg_temp.verifier()));
select tests.act_as('postgres');
select is((select count(*)::integer from private.calendar_oauth_states where jti = tests.fx('state_old')), 0,
  'begin: starting again deletes the caller''s expired states');

-- The admin is demoted between the redirect and the callback.
update public.memberships set role = 'member' where org_id = tests.fx('org_a') and user_id = tests.fx('admin_a');
select tests.act_as('service_role');
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state_lost'))$$,
  '42501', 'you no longer have the calendar.manage permission in this organization',
  'consume: a user who lost calendar.manage cannot complete the connection'
);
select tests.act_as('postgres');
update public.memberships set role = 'admin' where org_id = tests.fx('org_a') and user_id = tests.fx('admin_a');
select is((select used_at from private.calendar_oauth_states where jti = tests.fx('state_lost')), null,
  'consume: a refused state stays unused');

-- ---------------------------------------------------------------------------
-- Saving connections
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$select tests.remember('conn_google', private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), null, 'google',
      ' Front.Desk@Example.com ', null, array['https://www.googleapis.com/auth/calendar.events'], 'v1.cipher-1', now() + interval '1 hour'))$$,
  'save: the org''s Google calendar is stored'
);
select lives_ok(
  $$select tests.remember('conn_ms_bot', private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), tests.fx('bot_a'), 'microsoft',
      'desk@example.com', null, array['Calendars.ReadWrite', 'offline_access', 'User.Read'], 'v1.cipher-ms', now() + interval '1 hour'))$$,
  'save: a bot''s Microsoft calendar is stored'
);
select tests.act_as('postgres');
select results_eq(
  $$select account_email, external_calendar_id, status, status_reason, connected_by, bot_id from public.calendar_connections
    where id in (tests.fx('conn_google'), tests.fx('conn_ms_bot')) order by provider$$,
  $$values ('front.desk@example.com', 'primary', 'connected', null::text, tests.fx('admin_a'), null::uuid),
           ('desk@example.com', null, 'connected', null, tests.fx('admin_a'), tests.fx('bot_a'))$$,
  'save: e-mails are lower-cased; Google defaults to the primary calendar, Microsoft to the default one (null)'
);
select is((select ciphertext from private.calendar_tokens where connection_id = tests.fx('conn_google')), 'v1.cipher-1',
  'save: the token set is kept as given (an opaque ciphertext)');

-- A break, then a reconnect of the same account (any casing).
select tests.act_as('service_role');
select is(private.mark_calendar_needs_reauth(tests.fx('conn_google'), 'invalid_grant'), true, 'reauth: the Google calendar breaks');
select is(
  private.save_calendar_connection(tests.fx('org_a'), tests.fx('owner_a'), null, 'google', 'FRONT.DESK@example.com', 'primary',
    array['https://www.googleapis.com/auth/calendar'], 'v1.cipher-2', now() + interval '2 hours'),
  tests.fx('conn_google'),
  'save: reconnecting the same calendar keeps the connection'
);
select tests.act_as('postgres');
select results_eq(
  $$select c.status, c.status_reason, c.connected_by, c.scopes, t.ciphertext from public.calendar_connections c
    join private.calendar_tokens t on t.connection_id = c.id where c.id = tests.fx('conn_google')$$,
  $$values ('connected', null::text, tests.fx('owner_a'), array['https://www.googleapis.com/auth/calendar'], 'v1.cipher-2')$$,
  'save: ... with the new tokens and scopes, connected again, the reason cleared'
);
select is((select count(*)::integer from public.calendar_connections where org_id = tests.fx('org_a')), 2, 'save: no duplicate row');
select tests.act_as('service_role');
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), null, 'microsoft', 'desk@example.com', null,
      '{}', 'v1.x', null)$$,
  '23505', 'this calendar is already connected for another bot; disconnect it there first',
  'save: the same calendar cannot also be the org''s while it is a bot''s'
);
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('member_a'), null, 'google', 'm@example.com', null, '{}', 'v1.x', null)$$,
  '42501', 'the user does not have the calendar.manage permission in this organization',
  'save: only for a user who holds calendar.manage'
);
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), null, 'google', 'not-an-email', null, '{}', 'v1.x', null)$$,
  '22023', 'account_email must be an e-mail address', 'save: the account must be an e-mail address'
);
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), null, 'google', 'a@example.com', null, '{}', '', null)$$,
  '22023', 'ciphertext is required', 'save: tokens are required'
);
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), tests.fx('bot_b'), 'google', 'a@example.com', null, '{}', 'v1.x', null)$$,
  'P0002', 'bot not found', 'save: a bot of another org is not found'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), null, 'google', 'a@example.com', null, '{}', 'v1.x', null)$$,
  '42501', 'permission denied for function save_calendar_connection', 'save: service role only'
);
select throws_ok(
  $$insert into public.calendar_connections (org_id, provider, account_email) values (tests.fx('org_a'), 'microsoft', 'x@example.com')$$,
  '42501', null, 'connections: nobody signed in writes them directly'
);

-- ---------------------------------------------------------------------------
-- Token lifecycle
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select set_eq(
  $$select connection_id, org_id, provider, external_calendar_id, status, ciphertext
    from private.calendar_tokens_for(array[tests.fx('conn_ms_bot'), tests.fx('conn_google'), gen_random_uuid()])$$,
  $$values (tests.fx('conn_google'), tests.fx('org_a'), 'google', 'primary', 'connected', 'v1.cipher-2'),
           (tests.fx('conn_ms_bot'), tests.fx('org_a'), 'microsoft', null, 'connected', 'v1.cipher-ms')$$,
  'tokens_for: the token sets of the known connections, with what is needed to use them'
);
select tests.act_as('postgres');
create temp table marks (label text primary key, n bigint);
grant all on marks to public;
insert into marks select 'audit before refresh', count(*) from public.audit_log where table_name = 'calendar_connections';
select tests.act_as('service_role');
select lives_ok(
  $$select private.update_calendar_tokens(tests.fx('conn_google'), 'v1.cipher-3', now() + interval '3 hours')$$,
  'refresh: new tokens are stored'
);
select tests.act_as('postgres');
select results_eq(
  $$select c.token_expires_at, c.last_refreshed_at, t.ciphertext from public.calendar_connections c
    join private.calendar_tokens t on t.connection_id = c.id where c.id = tests.fx('conn_google')$$,
  $$values (now() + interval '3 hours', now(), 'v1.cipher-3')$$,
  'refresh: ciphertext, expiry and last_refreshed_at are updated'
);
select is(
  (select count(*) from public.audit_log where table_name = 'calendar_connections'),
  (select n from marks where label = 'audit before refresh'),
  'refresh: token bookkeeping is not audited'
);
select tests.act_as('service_role');
select throws_ok(
  $$select private.update_calendar_tokens(gen_random_uuid(), 'v1.x', null)$$,
  'P0002', 'calendar connection not found (or disconnected)', 'refresh: an unknown connection is not found'
);

select is(private.mark_calendar_needs_reauth(tests.fx('conn_ms_bot'), 'invalid_grant: AADSTS50173 the grant was revoked'), true,
  'reauth: the first failure breaks the connection');
select is(private.mark_calendar_needs_reauth(tests.fx('conn_ms_bot'), 'invalid_grant again'), false,
  'reauth: a second failure while broken changes nothing');
select throws_ok(
  $$select private.mark_calendar_needs_reauth(tests.fx('conn_ms_bot'), '  ')$$,
  '22023', 'a reason is required', 'reauth: a reason is required'
);
select throws_ok(
  $$select private.mark_calendar_needs_reauth(gen_random_uuid(), 'x')$$,
  'P0002', 'calendar connection not found', 'reauth: an unknown connection is not found'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, status_reason from public.calendar_connections where id = tests.fx('conn_ms_bot')$$,
  $$values ('needs_reauth', 'invalid_grant: AADSTS50173 the grant was revoked')$$,
  'reauth: the connection needs reauthorization, with the first reason'
);
select results_eq(
  $$select payload from public.events where type = 'calendar.connection_broken' and payload ->> 'connection_id' = tests.fx('conn_ms_bot')::text$$,
  $$values (jsonb_build_object('connection_id', tests.fx('conn_ms_bot'), 'provider', 'microsoft',
                               'reason', 'invalid_grant: AADSTS50173 the grant was revoked'))$$,
  'reauth: exactly one calendar.connection_broken for the break'
);
select is(
  (select count(*)::integer from public.audit_log where table_name = 'calendar_connections' and record_id = tests.fx('conn_ms_bot')::text
     and action = 'update' and new_values ->> 'status' = 'needs_reauth'),
  1, 'reauth: the status change is audited'
);

-- ---------------------------------------------------------------------------
-- Which calendars count for a bot
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select results_eq(
  $$select * from private.calendars_for_bot(tests.fx('org_a'), tests.fx('bot_a'))$$,
  $$values (tests.fx('conn_ms_bot'), 'microsoft', 'needs_reauth'), (tests.fx('conn_google'), 'google', 'connected')$$,
  'calendars_for_bot: the bot''s own (listed although it needs reauthorization) and the org''s'
);
select results_eq(
  $$select connection_id from private.calendars_for_bot(tests.fx('org_a'), tests.fx('bot_a2'))$$,
  $$values (tests.fx('conn_google'))$$,
  'calendars_for_bot: a bot without its own calendar has the org''s'
);
select results_eq(
  $$select connection_id from private.calendars_for_bot(tests.fx('org_a'), null)$$,
  $$values (tests.fx('conn_google'))$$,
  'calendars_for_bot: no bot, the org''s only'
);
select tests.act_as('member_a');
select is((select count(*)::integer from private.calendars_for_bot(tests.fx('org_a'), tests.fx('bot_a'))), 2,
  'calendars_for_bot: a member may ask');
select is((select count(*)::integer from public.calendar_connections), 2, 'connections: a member reads the org''s');
select tests.act_as('viewer_a');
select throws_ok(
  $$select * from private.calendars_for_bot(tests.fx('org_a'), tests.fx('bot_a'))$$,
  '42501', 'you do not have the calendar.read permission in this organization', 'calendars_for_bot: a viewer may not'
);
select is((select count(*)::integer from public.calendar_connections), 0, 'connections: a viewer reads none');

-- ---------------------------------------------------------------------------
-- Closures and open ranges
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$insert into public.business_closures (org_id, during, reason) values (tests.fx('org_a'), pg_temp.local_range(0, '12:00', '14:00'), 'Team lunch')$$,
  'closures: an admin closes the org on Monday 12:00-14:00'
);
select lives_ok(
  $$insert into public.business_closures (org_id, bot_id, during, reason) values
      (tests.fx('org_a'), tests.fx('bot_a'), tstzrange(pg_temp.at(1, '00:00'), pg_temp.at(2, '00:00')), 'Front desk away')$$,
  'closures: ... and the front desk bot all Tuesday'
);
select throws_ok(
  $$insert into public.business_closures (org_id, during) values (tests.fx('org_a'), tstzrange(now(), now()))$$,
  '23514', null, 'closures: an empty range is refused'
);
select throws_ok(
  $$insert into public.business_closures (org_id, during) values (tests.fx('org_a'), tstzrange(now(), null))$$,
  '23514', null, 'closures: an unbounded range is refused'
);
select throws_ok(
  $$insert into public.business_closures (org_id, during, reason) values (tests.fx('org_a'), tstzrange(now(), now() + interval '1 day'), repeat('x', 201))$$,
  '23514', null, 'closures: a reason is at most 200 characters'
);
select tests.act_as('member_a');
select is((select count(*)::integer from public.business_closures), 2, 'closures: a member reads the org''s');
select throws_ok(
  $$insert into public.business_closures (org_id, during) values (tests.fx('org_a'), tstzrange(now(), now() + interval '1 day'))$$,
  '42501', null, 'closures: a member cannot add one'
);
select tests.act_as('viewer_a');
select is((select count(*)::integer from public.business_closures), 0, 'closures: a viewer reads none');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.audit_log where table_name = 'business_closures' and org_id = tests.fx('org_a') and action = 'insert'),
  2, 'closures: audited'
);

select tests.act_as('member_a');
select is(
  private.open_ranges(tests.fx('org_a'), null, pg_temp.local_range(0, '00:00', '23:59')),
  tstzmultirange(pg_temp.local_range(0, '09:00', '12:00'), pg_temp.local_range(0, '14:00', '17:00')),
  'open_ranges: Monday''s hours minus the org''s closure'
);
select is(
  private.open_ranges(tests.fx('org_a'), tests.fx('bot_a'), pg_temp.local_range(1, '00:00', '23:59')),
  '{}'::tstzmultirange,
  'open_ranges: the front desk bot is closed all Tuesday'
);
select is(
  private.open_ranges(tests.fx('org_a'), tests.fx('bot_a2'), pg_temp.local_range(1, '00:00', '23:59')),
  tstzmultirange(pg_temp.local_range(1, '09:00', '17:00')),
  'open_ranges: another bot is open on Tuesday (a bot''s closure is its own)'
);
select is(
  private.open_ranges(tests.fx('org_a'), null, pg_temp.local_range(0, '10:30', '13:00')),
  tstzmultirange(pg_temp.local_range(0, '10:30', '12:00')),
  'open_ranges: cut to the window'
);
select throws_ok(
  $$select private.open_ranges(tests.fx('org_a'), null, tstzrange(now(), null))$$,
  '22023', 'the time range must be bounded and not empty', 'open_ranges: an unbounded window is refused'
);
select throws_ok(
  $$select private.open_ranges(tests.fx('org_a'), null, tstzrange(now(), now() + interval '367 days'))$$,
  '22023', 'the time range is at most 366 days', 'open_ranges: at most 366 days'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select private.open_ranges(tests.fx('org_a'), null, tstzrange(now(), now() + interval '1 day'))$$,
  '42501', 'you do not have the calendar.read permission in this organization', 'open_ranges: a viewer may not ask'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.open_ranges(tests.fx('org_a'), null, tstzrange(now(), now() + interval '1 day'))$$,
  '42501', null, 'open_ranges: another org''s owner may not ask'
);

-- Across the change to summer time (Sunday 29 March 2026, 02:00 -> 03:00 in
-- Berlin): 09:00-17:00 is 08:00-16:00 UTC before, 07:00-15:00 UTC after. A
-- closure on Tuesday 31 March 10:00-11:00 local is 08:00-09:00 UTC.
select tests.act_as('admin_a');
insert into public.business_closures (org_id, during, reason)
values (tests.fx('org_a'), tstzrange('2026-03-31 10:00 Europe/Berlin', '2026-03-31 11:00 Europe/Berlin'), 'Inspection');
select tests.act_as('service_role');
select is(
  private.open_ranges(tests.fx('org_a'), null, tstzrange('2026-03-25 00:00 Europe/Berlin', '2026-04-01 00:00 Europe/Berlin')),
  '{["2026-03-25 08:00:00+00","2026-03-25 16:00:00+00"), ["2026-03-26 08:00:00+00","2026-03-26 16:00:00+00"),
    ["2026-03-27 08:00:00+00","2026-03-27 16:00:00+00"), ["2026-03-30 07:00:00+00","2026-03-30 15:00:00+00"),
    ["2026-03-31 07:00:00+00","2026-03-31 08:00:00+00"), ["2026-03-31 09:00:00+00","2026-03-31 15:00:00+00")}'::tstzmultirange,
  'open_ranges: across the DST change 09:00-17:00 stays local (08-16 UTC before, 07-15 UTC after), the closure in local time'
);
select is(
  private.open_ranges(tests.fx('org_b'), null, tstzrange('2026-03-29 00:00Z', '2026-03-30 00:00Z')),
  '{["2026-03-29 00:00:00+00","2026-03-30 00:00:00+00")}'::tstzmultirange,
  'open_ranges: an org without business hours is open the whole window'
);

-- ---------------------------------------------------------------------------
-- Appointments: booking
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select tests.remember('appt1', (public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:00'), pg_temp.at(0, '10:30'),
      ' Ada Lovelace ', ' Ada@Example.com', '+49 (30) 1234-567', 'First visit', time_zone => 'Europe/London',
      call_id => tests.fx('call_a'))).id)$$,
  'create: a member books Monday 10:00-10:30'
);
select results_eq(
  $$select source, status, resource, attendee_name, attendee_email, attendee_phone, time_zone, connection_id, sync_status, created_by, call_id
    from public.appointments where id = tests.fx('appt1')$$,
  $$values ('staff', 'booked', 'default', 'Ada Lovelace', 'ada@example.com', '+49301234567', 'Europe/London',
            tests.fx('conn_google'), 'pending', tests.fx('member_a'), tests.fx('call_a'))$$,
  'create: staff source, attendee cleaned (name trimmed, e-mail lower-cased, phone in E.164), to be mirrored to the org''s calendar'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:15'), pg_temp.at(0, '10:45'), 'Bob', 'bob@example.com')$$,
  '23P01', 'that time is already booked', 'create: an overlapping booking is refused'
);
select lives_ok(
  $$select tests.remember('appt2', (public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:30'), pg_temp.at(0, '11:00'), 'Bob', 'bob@example.com')).id)$$,
  'create: the adjacent slot (10:30-11:00) is free'
);
select lives_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:00'), pg_temp.at(0, '10:30'), 'Cy', 'cy@example.com', resource => 'room-2')$$,
  'create: another resource at the same time is free'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '08:00'), pg_temp.at(0, '08:30'), 'Dee', 'dee@example.com')$$,
  '22023', 'that time is outside business hours', 'create: before opening is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '11:45'), pg_temp.at(0, '12:15'), 'Dee', 'dee@example.com')$$,
  '22023', 'that time is outside business hours', 'create: into a closure is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(5, '10:00'), pg_temp.at(5, '10:30'), 'Dee', 'dee@example.com')$$,
  '22023', 'that time is outside business hours', 'create: on a Saturday is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(1, '10:00'), pg_temp.at(1, '10:30'), 'Dee', 'dee@example.com', bot_id => tests.fx('bot_a'))$$,
  '22023', 'that time is outside business hours', 'create: for a bot on its own closure day is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), now() - interval '1 hour', now() - interval '30 minutes', 'Dee', 'dee@example.com')$$,
  '22023', 'that time has already passed', 'create: in the past is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '14:00'), 'Dee', 'dee@example.com')$$,
  '22023', 'an appointment must end after it starts', 'create: ending before the start is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '09:00'), pg_temp.at(1, '09:01'), 'Dee', 'dee@example.com')$$,
  '22023', 'an appointment lasts at most 24 hours', 'create: longer than 24 hours is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', null, '12345')$$,
  '22023', 'attendee_phone is not a phone number in international format: 12345', 'create: a phone number not in E.164 is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee at example')$$,
  '22023', 'attendee_email is not an e-mail address: dee at example', 'create: a malformed e-mail is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', ' ', null)$$,
  '22023', 'an appointment needs the attendee''s e-mail address or phone number', 'create: an attendee without contact is refused'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), '  ', 'dee@example.com')$$,
  '22023', 'attendee_name must have 1 to 200 characters', 'create: an attendee needs a name'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com', notes => repeat('x', 2001))$$,
  '22023', 'notes are at most 2000 characters', 'create: notes are at most 2000 characters'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com', time_zone => 'Mars/Base')$$,
  '22023', 'unknown time zone: Mars/Base', 'create: the attendee''s time zone must be a zone'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com', conversation_id => tests.fx('conv_b'))$$,
  'PT404', 'conversation not found', 'create: a conversation of another org is not found'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com', call_id => tests.fx('call_b'))$$,
  'PT404', 'call not found', 'create: a call of another org is not found'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com', bot_id => tests.fx('bot_b'))$$,
  'PT404', 'bot not found', 'create: a bot of another org is not found'
);
select throws_ok(
  $$insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
    values (tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Eve', 'eve@example.com', 'staff')$$,
  '42501', null, 'appointments: a member does not write them directly'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com')$$,
  '42501', 'you do not have the appointments.write permission in this organization', 'create: a viewer cannot book'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'), 'Dee', 'dee@example.com')$$,
  '42501', null, 'create: another org''s owner cannot book in A'
);
-- Whatever the path: the constraint itself refuses an overlap.
select tests.act_as('postgres');
select throws_ok(
  $$insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
    values (tests.fx('org_a'), pg_temp.at(0, '10:20'), pg_temp.at(0, '10:40'), 'Eve', 'eve@example.com', 'staff')$$,
  '23P01', null, 'appointments: the exclusion constraint refuses an overlap written directly'
);

-- ---------------------------------------------------------------------------
-- Appointments: cancel and reschedule
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select results_eq(
  $$select status, cancel_reason, canceled_at = now() from public.cancel_appointment(tests.fx('appt1'), ' Caller asked ')$$,
  $$values ('canceled', 'Caller asked', true)$$,
  'cancel: a member cancels with a reason'
);
select lives_ok(
  $$select tests.remember('appt3', (public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:00'), pg_temp.at(0, '10:30'), 'Fay', null, '+14155550123')).id)$$,
  'cancel: the freed slot can be booked again'
);
select is((public.cancel_appointment(tests.fx('appt1'))).cancel_reason, 'Caller asked', 'cancel: canceling twice changes nothing');
select throws_ok(
  $$select public.reschedule_appointment(tests.fx('appt1'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'))$$,
  '23514', 'only a booked appointment can be rescheduled (this one is canceled)', 'reschedule: a canceled appointment cannot move'
);

select tests.act_as('service_role');
select lives_ok(
  $$select private.set_appointment_sync(tests.fx('appt2'), 'evt-123', 'synced', 'ignored', null)$$,
  'sync: the function records the mirrored event'
);
select is(
  private.set_appointment_sync(tests.fx('appt2'), 'evt-999', 'failed', 'late answer', '2000-01-01'::timestamptz),
  false, 'sync: a result for a version the appointment has moved on from is ignored'
);
select is(
  (select (sync_status, external_event_id)::text from public.appointments where id = tests.fx('appt2')),
  '(synced,evt-123)', 'sync: the ignored result changed nothing'
);
select tests.act_as('member_a');
select throws_ok(
  $$select public.reschedule_appointment(tests.fx('appt2'), pg_temp.at(0, '10:15'), pg_temp.at(0, '10:45'))$$,
  '23P01', 'that time is already booked', 'reschedule: into a booked slot is refused'
);
select throws_ok(
  $$select public.reschedule_appointment(tests.fx('appt2'), pg_temp.at(0, '17:00'), pg_temp.at(0, '17:30'))$$,
  '22023', 'that time is outside business hours', 'reschedule: after closing is refused'
);
select results_eq(
  $$select starts_at, ends_at, reschedule_count, sync_status, external_event_id, sync_error
    from public.reschedule_appointment(tests.fx('appt2'), pg_temp.at(0, '14:00'), pg_temp.at(0, '14:45'))$$,
  $$values (pg_temp.at(0, '14:00'), pg_temp.at(0, '14:45'), 1, 'pending', 'evt-123', null::text)$$,
  'reschedule: moved, counted, the mirror pending again (the external event is kept to move it)'
);
select is(
  (public.reschedule_appointment(tests.fx('appt2'), pg_temp.at(0, '14:00'), pg_temp.at(0, '14:45'))).reschedule_count, 1,
  'reschedule: to the same times changes nothing'
);
select lives_ok(
  $$select public.create_appointment(tests.fx('org_a'), pg_temp.at(0, '10:30'), pg_temp.at(0, '11:00'), 'Gus', 'gus@example.com')$$,
  'reschedule: the old slot is free again'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select public.cancel_appointment(tests.fx('appt3'))$$,
  'PT404', 'appointment not found', 'cancel: a viewer does not even see the appointment'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.cancel_appointment(tests.fx('appt3'))$$,
  'PT404', 'appointment not found', 'cancel: another org''s owner gets not found'
);
select throws_ok(
  $$select public.reschedule_appointment(tests.fx('appt3'), pg_temp.at(0, '15:00'), pg_temp.at(0, '15:30'))$$,
  'PT404', 'appointment not found', 'reschedule: another org''s owner gets not found'
);
select tests.act_as('ops');
select throws_ok(
  $$select public.cancel_appointment(tests.fx('appt3'))$$,
  '42501', 'you do not have the appointments.write permission in this organization', 'cancel: a platform admin reads but cannot cancel'
);

select tests.act_as('service_role');
select lives_ok(
  $$select private.set_appointment_sync(tests.fx('appt3'), null, 'failed', 'Graph answered 503', null)$$,
  'sync: a failure is recorded'
);
select throws_ok(
  $$select private.set_appointment_sync(tests.fx('appt3'), null, 'done', null, null)$$,
  '22023', 'sync_status must be pending, synced, failed or not_mirrored', 'sync: an unknown status is refused'
);
select throws_ok(
  $$select private.set_appointment_sync(gen_random_uuid(), null, 'synced', null, null)$$,
  'P0002', 'appointment not found', 'sync: an unknown appointment is not found'
);
select tests.act_as('postgres');
select results_eq(
  $$select sync_status, sync_error, external_event_id from public.appointments where id in (tests.fx('appt2'), tests.fx('appt3')) order by starts_at$$,
  $$values ('failed', 'Graph answered 503', null::text), ('pending', null, 'evt-123')$$,
  'sync: the error is kept for a failure only'
);

-- ---------------------------------------------------------------------------
-- Bots book for a caller
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$select tests.remember('appt_bot', (private.book_appointment_for_bot(tests.fx('bot_a2'), pg_temp.at(1, '11:00'), pg_temp.at(1, '11:30'),
      'Grace Hopper', null, '+1 415 555 0199', 'Booked by phone', tests.fx('conv_a'), tests.fx('call_a'))).id)$$,
  'bot: the chat core books Tuesday 11:00 for a caller'
);
select results_eq(
  $$select source, bot_id, org_id, conversation_id, call_id, attendee_phone, connection_id, created_by from public.appointments where id = tests.fx('appt_bot')$$,
  $$values ('bot', tests.fx('bot_a2'), tests.fx('org_a'), tests.fx('conv_a'), tests.fx('call_a'), '+14155550199', tests.fx('conn_google'), null::uuid)$$,
  'bot: source bot, the bot''s org, linked to the conversation and call, mirrored to the org''s calendar'
);
select lives_ok(
  $$select tests.remember('appt_bot_own', (private.book_appointment_for_bot(tests.fx('bot_a'), pg_temp.at(2, '09:00'), pg_temp.at(2, '09:30'),
      'Hedy', 'hedy@example.com', null, null, null, null)).id)$$,
  'bot: the front desk bot books Wednesday 09:00'
);
select is((select connection_id from public.appointments where id = tests.fx('appt_bot_own')), tests.fx('conn_ms_bot'),
  'bot: a bot with its own calendar books into it (here broken: mirroring will fail and say so)');
select throws_ok(
  $$select private.book_appointment_for_bot(tests.fx('bot_a'), pg_temp.at(2, '09:15'), pg_temp.at(2, '09:45'), 'Ian', 'ian@example.com', null, null, null, null)$$,
  '23P01', 'that time is already booked', 'bot: a taken slot is refused'
);
select throws_ok(
  $$select private.book_appointment_for_bot(tests.fx('bot_a'), pg_temp.at(1, '11:00'), pg_temp.at(1, '11:30'), 'Ian', 'ian@example.com', null, null, null, null)$$,
  '22023', 'that time is outside business hours', 'bot: only inside the bot''s open hours (its closure day)'
);
select throws_ok(
  $$select private.book_appointment_for_bot(tests.fx('bot_a'), pg_temp.at(2, '11:00'), pg_temp.at(2, '11:30'), 'Ian', 'ian@example.com', null, null, tests.fx('conv_b'), null)$$,
  'PT404', 'conversation not found', 'bot: a conversation of another org is not found'
);
select throws_ok(
  $$select private.book_appointment_for_bot(gen_random_uuid(), pg_temp.at(2, '11:00'), pg_temp.at(2, '11:30'), 'Ian', 'ian@example.com', null, null, null, null)$$,
  'P0002', 'bot not found', 'bot: an unknown bot is not found'
);
select tests.act_as('postgres');
update public.bots set enabled = false where id = tests.fx('bot_a2');
select tests.act_as('service_role');
select throws_ok(
  $$select private.book_appointment_for_bot(tests.fx('bot_a2'), pg_temp.at(2, '11:00'), pg_temp.at(2, '11:30'), 'Ian', 'ian@example.com', null, null, null, null)$$,
  '22023', 'the bot is disabled', 'bot: a disabled bot books nothing'
);
select tests.act_as('postgres');
update public.bots set enabled = true where id = tests.fx('bot_a2');
select tests.act_as('member_a');
select throws_ok(
  $$select private.book_appointment_for_bot(tests.fx('bot_a2'), pg_temp.at(2, '11:00'), pg_temp.at(2, '11:30'), 'Ian', 'ian@example.com', null, null, null, null)$$,
  '42501', 'permission denied for function book_appointment_for_bot', 'bot: service role only'
);

select tests.act_as('member_a');
select is(
  private.busy_from_appointments(tests.fx('org_a'), 'default', pg_temp.local_range(0, '00:00', '23:59')),
  tstzmultirange(pg_temp.local_range(0, '10:00', '11:00'), pg_temp.local_range(0, '14:00', '14:45')),
  'busy: Monday''s booked appointments of the default resource (canceled ones free, adjacent ones merged)'
);
select is(
  private.busy_from_appointments(tests.fx('org_a'), 'room-2', pg_temp.local_range(0, '10:15', '23:59')),
  tstzmultirange(pg_temp.local_range(0, '10:15', '10:30')),
  'busy: per resource, cut to the window'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select private.busy_from_appointments(tests.fx('org_a'), 'default', pg_temp.local_range(0, '00:00', '23:59'))$$,
  '42501', null, 'busy: a viewer may not ask'
);

-- ---------------------------------------------------------------------------
-- Events and audit
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.events where org_id = tests.fx('org_a') and type = 'appointment.created'),
  (select count(*)::integer from public.appointments where org_id = tests.fx('org_a')),
  'events: one appointment.created per appointment booked'
);
select results_eq(
  $$select payload from public.events where type = 'appointment.created' and payload ->> 'appointment_id' = tests.fx('appt_bot')::text$$,
  $$values (jsonb_build_object('appointment_id', tests.fx('appt_bot'), 'starts_at', private.rfc3339(pg_temp.at(1, '11:00')),
                               'ends_at', private.rfc3339(pg_temp.at(1, '11:30')), 'bot_id', tests.fx('bot_a2')))$$,
  'events: appointment.created carries the times (RFC 3339, UTC) and the bot'
);
select results_eq(
  $$select payload from public.events where type = 'appointment.canceled' and org_id = tests.fx('org_a')$$,
  $$values (jsonb_build_object('appointment_id', tests.fx('appt1'), 'reason', 'Caller asked'))$$,
  'events: one appointment.canceled, with the reason (canceling twice emits nothing)'
);
select results_eq(
  $$select payload from public.events where type = 'appointment.rescheduled' and org_id = tests.fx('org_a')$$,
  $$values (jsonb_build_object('appointment_id', tests.fx('appt2'),
      'starts_at', private.rfc3339(pg_temp.at(0, '14:00')), 'ends_at', private.rfc3339(pg_temp.at(0, '14:45')),
      'previous_starts_at', private.rfc3339(pg_temp.at(0, '10:30')), 'previous_ends_at', private.rfc3339(pg_temp.at(0, '11:00')),
      'bot_id', null))$$,
  'events: one appointment.rescheduled with the new and previous times'
);
select results_eq(
  $$select action, actor_user_id from public.audit_log where table_name = 'appointments' and record_id = tests.fx('appt1')::text order by seq$$,
  $$values ('insert', tests.fx('member_a')), ('update', tests.fx('member_a'))$$,
  'audit: booking and canceling are audited with the member as actor'
);

-- ---------------------------------------------------------------------------
-- Disconnecting
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select * from public.disconnect_calendar(tests.fx('conn_google'))$$,
  '42501', 'you do not have the calendar.manage permission in this organization', 'disconnect: a member cannot'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select * from public.disconnect_calendar(tests.fx('conn_google'))$$,
  'PT404', 'calendar connection not found', 'disconnect: another org''s owner gets not found'
);
select tests.act_as('admin_a');
select results_eq(
  $$select * from public.disconnect_calendar(tests.fx('conn_google'))$$,
  $$values (tests.fx('conn_google'), 'google')$$,
  'disconnect: an admin disconnects the Google calendar; the function learns which provider to revoke at'
);
select tests.act_as('service_role');
select results_eq(
  $$select status from public.calendar_connections where id = tests.fx('conn_google')$$,
  $$values ('revoked')$$,
  'disconnect: revoked at once'
);
select is((select count(*)::integer from private.calendars_for_bot(tests.fx('org_a'), tests.fx('bot_a2'))), 0,
  'disconnect: a revoked calendar no longer counts for availability');
select results_eq(
  $$select status, ciphertext from private.calendar_tokens_for(array[tests.fx('conn_google')])$$,
  $$values ('revoked', 'v1.cipher-3')$$,
  'disconnect: the function still reads the token to revoke it at the provider'
);
select throws_ok(
  $$select private.update_calendar_tokens(tests.fx('conn_google'), 'v1.late', null)$$,
  'P0002', 'calendar connection not found (or disconnected)', 'disconnect: a late refresh does not revive it'
);
select is(private.mark_calendar_needs_reauth(tests.fx('conn_google'), 'invalid_grant'), false,
  'disconnect: a late invalid_grant neither revives nor reports it');
select is(private.delete_calendar_connection(tests.fx('conn_ms_bot')), false, 'delete: only a disconnected calendar is deleted');
select is(private.delete_calendar_connection(tests.fx('conn_google')), true, 'delete: the disconnected calendar is deleted');
select is(private.delete_calendar_connection(tests.fx('conn_google')), false, 'delete: deleting again is a no-op');
select tests.act_as('postgres');
select is((select count(*)::integer from private.calendar_tokens where connection_id = tests.fx('conn_google')), 0,
  'delete: its tokens are gone');
select results_eq(
  $$select connection_id, sync_status, attendee_name, status from public.appointments where id = tests.fx('appt3')$$,
  $$values (null::uuid, 'failed', 'Fay', 'booked')$$,
  'delete: appointments keep their data, without the calendar'
);
select results_eq(
  $$select connection_id, sync_status from public.appointments where id = tests.fx('appt_bot')$$,
  $$values (null::uuid, 'not_mirrored')$$,
  'delete: an appointment still waiting to be mirrored there is no longer pending'
);

-- Disconnect, then reconnect before the function deleted the row: a new
-- connection, which the late delete of the old one cannot remove.
select tests.act_as('admin_a');
select * from public.disconnect_calendar(tests.fx('conn_ms_bot'));
select tests.act_as('service_role');
select tests.remember('conn_ms_bot2', private.save_calendar_connection(tests.fx('org_a'), tests.fx('admin_a'), tests.fx('bot_a'), 'microsoft',
  'desk@example.com', null, '{}', 'v1.cipher-ms2', null));
select isnt(tests.fx('conn_ms_bot2'), tests.fx('conn_ms_bot'), 'reconnect during a disconnect: a new connection');
select is(private.delete_calendar_connection(tests.fx('conn_ms_bot')), false, 'reconnect during a disconnect: the late delete finds nothing');
select results_eq(
  $$select status from public.calendar_connections where id = tests.fx('conn_ms_bot2')$$,
  $$values ('connected')$$,
  'reconnect during a disconnect: the new connection stays'
);

-- ---------------------------------------------------------------------------
-- Who sees what
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is((select count(*)::integer from public.calendar_connections), 0, 'isolation: B''s owner sees no connection of A');
select is((select count(*)::integer from public.business_closures), 0, 'isolation: ... no closure of A');
select is((select count(*)::integer from public.appointments), 0, 'isolation: ... no appointment of A');
select throws_ok($$select * from private.calendar_tokens$$, '42501', null, 'isolation: ... and no token');
select throws_ok(
  $$select * from private.calendars_for_bot(tests.fx('org_a'), null)$$,
  '42501', null, 'isolation: ... and may not list A''s calendars'
);
select tests.act_as('viewer_a');
select is((select count(*)::integer from public.appointments), 0, 'viewers: a viewer of A sees no appointment');
select tests.act_as('member_a');
select is((select count(*)::integer from public.appointments), 7, 'members: a member of A sees the org''s appointments');
select tests.act_as('ops');
select is((select count(*)::integer from public.appointments where org_id = tests.fx('org_a')), 7, 'platform admins read appointments');

-- The appointments channel (attendee details) needs calendar.read.
create function pg_temp.join(who text, channel text)
returns void
language sql
as $$
  select tests.act_as(who);
  select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':' || channel, true);
$$;
grant execute on function pg_temp.join(text, text) to public;
create function pg_temp.received()
returns integer
language sql
stable
as $$ select count(*)::integer from realtime.messages where topic = realtime.topic() $$;
grant execute on function pg_temp.received() to public;
select tests.act_as('postgres');
insert into realtime.messages (topic, extension, event, payload, private)
values ('org:' || tests.fx('org_a') || ':uploads', 'broadcast', 'probe', '{}', true);

select pg_temp.join('member_a', 'appointments');
select ok(pg_temp.received() > 0, 'appointments channel: a member of A receives the appointment changes');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  '42501', null, 'appointments channel: a member cannot send on it: only the database does (20261123007200)'
);
select pg_temp.join('viewer_a', 'appointments');
select is(pg_temp.received(), 0, 'appointments channel: a viewer of A receives nothing on it');
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  '42501', null, 'appointments channel: a viewer cannot send on it'
);
select pg_temp.join('viewer_a', 'uploads');
select is(pg_temp.received(), 1, 'appointments channel: the same viewer still receives on org:<A>:uploads');
select pg_temp.join('owner_b', 'appointments');
select is(pg_temp.received(), 0, 'appointments channel: the owner of B receives nothing on A''s');
select tests.act_as('postgres');

select * from finish();
rollback;
