-- 20261123005600: a disconnect leaves the provider's grant alone while
-- another live connection (any org) holds the same account
-- (private.calendar_account_connected_elsewhere, a bare boolean, service
-- role only), and unneeded provider events are deleted durably
-- (private.calendar_event_deletions: recorded, claimed by the retry, retried
-- 1, 4, 16... minutes later, given up after 8 attempts, org-scoped, gone
-- with their calendar). One transaction: now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(39);

insert into tests.fixtures (name, id) values
  ('owner1', tests.create_user('owner1@shared.test')),
  ('admin1', tests.create_user('admin1@shared.test')),
  ('owner2', tests.create_user('owner2@shared.test')),
  ('admin2', tests.create_user('admin2@shared.test'));
select tests.remember('org1', tests.create_org('shared-org-1', tests.fx('owner1')));
select tests.remember('org2', tests.create_org('shared-org-2', tests.fx('owner2')));
select tests.add_member(tests.fx('org1'), tests.fx('admin1'), 'admin');
select tests.add_member(tests.fx('org2'), tests.fx('admin2'), 'admin');

create function pg_temp.connect(org text, admin text, provider text, email text, calendar text) returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx(org), tests.fx(admin), null, provider, email, calendar,
    array['https://www.googleapis.com/auth/calendar.events'], 'v1.cipher', now() + interval '1 hour') $$;
select tests.remember('g1', pg_temp.connect('org1', 'admin1', 'google', 'Same@Shared.test', null));
select tests.remember('g1_team', pg_temp.connect('org1', 'admin1', 'google', 'same@shared.test', 'team@group.calendar.google.com'));
select tests.remember('g2', pg_temp.connect('org2', 'admin2', 'google', 'same@shared.test', null));
select tests.remember('m1', pg_temp.connect('org1', 'admin1', 'microsoft', 'same@shared.test', null));
select tests.remember('other', pg_temp.connect('org2', 'admin2', 'google', 'other@shared.test', null));

create function pg_temp.elsewhere(name text) returns boolean language sql as
  $$ select private.calendar_account_connected_elsewhere(tests.fx(name)) $$;
grant execute on function pg_temp.elsewhere(text) to public;

-- ---------------------------------------------------------------------------
-- 1. The same account elsewhere
-- ---------------------------------------------------------------------------

select has_index('public', 'calendar_connections', 'calendar_connections_provider_account_idx', 'the account lookup is indexed');
select is(
  (select p.prosecdef and pg_catalog.pg_get_function_result(p.oid) = 'boolean'
   from pg_catalog.pg_proc p where p.oid = 'private.calendar_account_connected_elsewhere(uuid)'::regprocedure),
  true, 'elsewhere: a security definer answering a bare boolean'
);
select is(has_function_privilege('authenticated', 'private.calendar_account_connected_elsewhere(uuid)', 'execute'), false,
  'elsewhere: not for signed-in users');
select is(has_function_privilege('anon', 'private.calendar_account_connected_elsewhere(uuid)', 'execute'), false,
  'elsewhere: not for anon');

select tests.act_as('admin1');
select throws_ok($$select pg_temp.elsewhere('g2')$$, '42501', null, 'elsewhere: an admin cannot ask about another org''s connection');
select tests.act_as('service_role');
select is(pg_temp.elsewhere('g1'), true, 'elsewhere: the same Google account in another org and another calendar of this one');
select is(pg_temp.elsewhere('other'), false, 'elsewhere: an account connected once');
select is(pg_temp.elsewhere('m1'), false, 'elsewhere: the same e-mail at another provider is another account');
select is(private.calendar_account_connected_elsewhere(gen_random_uuid()), false, 'elsewhere: unknown is false');

select tests.act_as('postgres');
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('g2');
select tests.act_as('service_role');
select is(pg_temp.elsewhere('g1'), true, 'elsewhere: another calendar of the account in the same org keeps the grant');
select tests.act_as('postgres');
update public.calendar_connections set status = 'needs_reauth', status_reason = 'invalid_grant' where id = tests.fx('g1_team');
select tests.act_as('service_role');
select is(pg_temp.elsewhere('g1'), true, 'elsewhere: a needs_reauth connection counts (its grant may still work)');
select tests.act_as('postgres');
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('g1_team');
select tests.act_as('service_role');
select is(pg_temp.elsewhere('g1'), false, 'elsewhere: connections being disconnected do not count: the last one revokes');
select is(pg_temp.elsewhere('g2'), true, 'elsewhere: asked for a revoked connection, the live one elsewhere counts');

-- ---------------------------------------------------------------------------
-- 2. Unneeded provider events
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
with a as (
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx('org2'), tests.fx('other'), now() + interval '10 days', now() + interval '10 days 30 minutes', 'Ann', 'ann@example.com', 'staff')
  returning id
) select tests.remember('appt', id) from a;
with a as (
  insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx('org2'), now() + interval '11 days', now() + interval '11 days 30 minutes', 'Bo', 'bo@example.com', 'staff')
  returning id
) select tests.remember('unmirrored', id) from a;

create function pg_temp.deletion(event text) returns text language sql as $$
  select (status, attempts, next_attempt_at - now(), last_error)::text
  from private.calendar_event_deletions where external_event_id = event $$;
grant execute on function pg_temp.deletion(text) to public;

select has_table('private', 'calendar_event_deletions', 'the deletions table is private');
select is(has_table_privilege('service_role', 'private.calendar_event_deletions', 'select'), false, 'deletions: no API role reads the table');
select is(has_table_privilege('authenticated', 'private.calendar_event_deletions', 'select'), false, 'deletions: signed-in users neither');
select is(has_function_privilege('authenticated', 'private.record_calendar_event_deletion(uuid, text)', 'execute')
  or has_function_privilege('authenticated', 'private.claim_due_calendar_event_deletions(integer, integer)', 'execute')
  or has_function_privilege('authenticated', 'private.finish_calendar_event_deletion(uuid, text)', 'execute'),
  false, 'deletions: the functions are not for signed-in users');

select tests.act_as('service_role');
select tests.remember('del', private.record_calendar_event_deletion(tests.fx('appt'), 'evt-stray'));
select tests.act_as('postgres');
select is(pg_temp.deletion('evt-stray'), '(pending,1,00:02:00,)', 'record: pending, the caller''s try is attempt 1, the retry''s turn 2 minutes later');
select is(
  (select (org_id, connection_id, appointment_id)::text from private.calendar_event_deletions where id = tests.fx('del')),
  (select (tests.fx('org2'), tests.fx('other'), tests.fx('appt'))::text),
  'record: in the appointment''s org and calendar'
);
select tests.act_as('service_role');
select is(private.record_calendar_event_deletion(tests.fx('appt'), 'evt-stray'), tests.fx('del'), 'record: the same event once');
select is(private.record_calendar_event_deletion(tests.fx('unmirrored'), 'evt-x'), null, 'record: nothing without a calendar');
select throws_ok($$select private.record_calendar_event_deletion(gen_random_uuid(), 'evt-x')$$, 'P0002', 'appointment not found', 'record: unknown appointment');
select throws_ok($$select private.record_calendar_event_deletion(tests.fx('appt'), '')$$, '22023', null, 'record: an event id is required');

select is((select count(*)::integer from private.claim_due_calendar_event_deletions(10, 60)), 0, 'claim: not due while the recording request tries');
select tests.act_as('postgres');
update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second' where id = tests.fx('del');
select tests.act_as('service_role');
select is((select (id, attempts)::text from private.claim_due_calendar_event_deletions(10, 60)), (select (tests.fx('del'), 2)::text), 'claim: due, counted as attempt 2');
select is((select count(*)::integer from private.claim_due_calendar_event_deletions(10, 60)), 0, 'claim: a claimed deletion is held for its lease');
select throws_ok($$select private.claim_due_calendar_event_deletions(0, 60)$$, '22023', null, 'claim: 1 to 100 rows');

select is(private.finish_calendar_event_deletion(tests.fx('del'), 'Google events.delete failed with 503'), 'pending', 'finish: a failure is retried');
select tests.act_as('postgres');
select is(pg_temp.deletion('evt-stray'), '(pending,2,00:04:00,"Google events.delete failed with 503")', 'finish: the second attempt waits 4 minutes');
update private.calendar_event_deletions set attempts = 8 where id = tests.fx('del');
select tests.act_as('service_role');
select is(private.finish_calendar_event_deletion(tests.fx('del'), 'again 503'), 'given_up', 'finish: the eighth failure gives up');
select tests.act_as('postgres');
select is(pg_temp.deletion('evt-stray'), '(given_up,8,,"again 503")', 'finish: given up stays visible, with its error, never due');
select tests.act_as('service_role');
select is(private.record_calendar_event_deletion(tests.fx('appt'), 'evt-stray'), tests.fx('del'),
  'record: a given-up event left behind again is the same deletion');
select tests.act_as('postgres');
select is(pg_temp.deletion('evt-stray'), '(pending,1,00:02:00,)', 'record: ... with a fresh round of attempts');
update private.calendar_event_deletions set status = 'pending', attempts = 3, next_attempt_at = now() where id = tests.fx('del');
select tests.act_as('service_role');
select is(private.finish_calendar_event_deletion(tests.fx('del'), null), 'deleted', 'finish: deleted at the provider, the row goes');
select is(private.finish_calendar_event_deletion(tests.fx('del'), null), null, 'finish: a row gone (with its calendar) is null');

-- The cron path: a due deletion calls the function; one whose eighth attempt never finished is given up.
select tests.remember('del_stuck', private.record_calendar_event_deletion(tests.fx('appt'), 'evt-stuck'));
select tests.remember('del_due', private.record_calendar_event_deletion(tests.fx('appt'), 'evt-due'));
select tests.act_as('postgres');
update private.calendar_event_deletions set attempts = 8, next_attempt_at = now() - interval '1 second' where id = tests.fx('del_stuck');
-- Counted against what is due without it (other test files' appointments share the database).
create temporary table due_before on commit drop as select private.retry_appointment_mirroring() as due;
update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second' where id = tests.fx('del_due');
select is(private.retry_appointment_mirroring(), (select due + 1 from due_before), 'retry: a due deletion is work for the function');
select is(pg_temp.deletion('evt-stuck'), '(given_up,8,,"deleting did not finish in 8 attempts")', 'retry: an unfinished eighth attempt is given up');

-- Org-scoped, and gone with the calendar.
select throws_ok(
  format($$insert into private.calendar_event_deletions (org_id, connection_id, external_event_id, next_attempt_at)
           values (%L, %L, 'evt-cross', now())$$, tests.fx('org1'), tests.fx('other')),
  '23503', null, 'a deletion is in its calendar''s org'
);
delete from public.calendar_connections where id = tests.fx('other');
select is((select count(*)::integer from private.calendar_event_deletions where connection_id = tests.fx('other')), 0,
  'deletions go with their calendar (its tokens are gone)');

select * from finish();
rollback;
