-- 20261123012600: a mirroring throttled 24 hours after its throttled run began counts as a failed
-- attempt ('the calendar provider throttled every attempt for 24 hours') and follows the retries of
-- any failure up to the final eighth; the run (sync_throttled_since) starts at the first throttle,
-- outlives a change of the appointment, and ends with any recorded result or a reconnect. The retry
-- of stray event deletions takes the orgs in turn (place in the org's due queue plus its running
-- deletions, then oldest due). One transaction: now() is one instant; only this file's deletions are
-- due (the others' are set aside, rolled back).
begin;
create extension if not exists pgtap with schema extensions;

select plan(42);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@throttle301.test')),
  ('owner_b', tests.create_user('owner-b@throttle301.test')),
  ('admin_a', tests.create_user('admin-a@throttle301.test')),
  ('admin_b', tests.create_user('admin-b@throttle301.test'));
select tests.remember('org_a', tests.create_org('throttle301-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('throttle301-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_b'), tests.fx('admin_b'), 'admin');

create function pg_temp.connect(org text, admin text, email text) returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx(org), tests.fx(admin), null, 'google', email, null,
    array['https://www.googleapis.com/auth/calendar.events'], 'v1.cipher-' || email, now() + interval '1 hour', 'sub-' || email) $$;
select tests.remember('conn_a', pg_temp.connect('org_a', 'admin_a', 'desk-a@throttle301.test'));
select tests.remember('conn_a2', pg_temp.connect('org_a', 'admin_a', 'desk-a2@throttle301.test'));
select tests.remember('conn_b', pg_temp.connect('org_b', 'admin_b', 'desk-b@throttle301.test'));

create function pg_temp.book(name text, org text, conn text, days integer) returns uuid language sql as $$
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx(org), tests.fx(conn), now() + make_interval(days => days), now() + make_interval(days => days, mins => 30),
          name, 'guest@throttle301.test', 'staff')
  returning id $$;
select tests.remember('t1', pg_temp.book('Throttled One', 'org_a', 'conn_a', 10));
select tests.remember('t2', pg_temp.book('Throttled Two', 'org_a', 'conn_a', 11));
select tests.remember('t3', pg_temp.book('Throttled Three', 'org_a', 'conn_a', 12));
select tests.remember('b_appt', pg_temp.book('B Appointment', 'org_b', 'conn_b', 10));

-- (sync_status, attempts, due in, leased, error, throttled for)
create function pg_temp.state(name text) returns text language sql as $$
  select (sync_status, sync_attempts, sync_next_attempt_at - now(), sync_claimed_until is not null, sync_error,
          now() - sync_throttled_since)::text
  from public.appointments where id = tests.fx(name) $$;
create function pg_temp.lease(name text) returns timestamptz language sql as $$
  select sync_claimed_until from public.appointments where id = tests.fx(name) $$;
-- A mirroring the provider throttles: claimed (as a request or the retry does), given back.
create function pg_temp.throttle(name text) returns boolean language sql as $$
  select private.release_throttled_appointment_sync(
    (select id from private.claim_appointment_sync(tests.fx(name), 60)), pg_temp.lease(name), 120) $$;
-- Due now, its run begun `hours` ago.
create function pg_temp.throttled_for(name text, hours numeric) returns void language sql as $$
  update public.appointments set sync_next_attempt_at = now() - interval '1 second',
    sync_throttled_since = now() - make_interval(secs => hours * 3600)
  where id = tests.fx(name) $$;
grant execute on function pg_temp.state(text), pg_temp.lease(text), pg_temp.throttle(text) to public;

-- ---------------------------------------------------------------------------
-- 1. The throttled run and its end
-- ---------------------------------------------------------------------------

select has_column('public', 'appointments', 'sync_throttled_since', 'appointments.sync_throttled_since exists');
select is(array(select private.appointment_sync_retry_delay(n) from generate_series(0, 9) n),
  array[interval '1 minute', interval '1 minute', interval '4 minutes', interval '16 minutes', interval '64 minutes',
        interval '256 minutes', interval '6 hours', interval '6 hours', null, null],
  'the retry waits: 1, 4, 16, 64, 256 minutes, then 6 hours; none from the eighth attempt');
select is(has_function_privilege('authenticated', 'private.appointment_sync_retry_delay(integer)', 'execute'), false,
  'the retry wait is not for signed-in users');

update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('t1');
select tests.act_as('service_role');
select is(pg_temp.throttle('t1'), true, 'the first throttle: given back');
select tests.act_as('postgres');
select is(pg_temp.state('t1'), '(pending,0,00:02:00,f,,00:00:00)', 'uncounted, pending, due after Retry-After; the run begins now');

select pg_temp.throttled_for('t1', 23.99);
select is(pg_temp.throttle('t1'), true, 'throttled again within 24 hours');
select is(pg_temp.state('t1'), '(pending,0,00:02:00,f,,23:59:24)', 'still uncounted; the run keeps its start');

select pg_temp.throttled_for('t1', 24);
select tests.act_as('service_role');
select is(pg_temp.throttle('t1'), true, 'throttled 24 hours into the run: given back by its holder');
select tests.act_as('postgres');
select is(pg_temp.state('t1'),
  '(failed,1,00:01:00,f,"the calendar provider throttled every attempt for 24 hours","1 day")',
  'counted: failed with why, one attempt, retried a minute later as any failure; the run goes on');
select is((select count(*)::integer from private.claim_due_appointment_syncs(100, 60) where id = tests.fx('t1')), 0,
  'not claimed again before its retry');

update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('t1');
select is(pg_temp.throttle('t1'), true, 'its retry throttled too');
select is(pg_temp.state('t1'),
  '(failed,2,00:04:00,f,"the calendar provider throttled every attempt for 24 hours","1 day")',
  'each later throttle counts: two attempts, the next in 4 minutes');

update public.appointments set sync_attempts = 7, sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('t1');
select is(pg_temp.throttle('t1'), true, 'the eighth attempt throttled');
select is(pg_temp.state('t1'),
  '(failed,8,,f,"the calendar provider throttled every attempt for 24 hours","1 day")',
  'given up: failed for good, nothing due');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('t1'), 60)), 0, 'a request claims nothing more');
select is((select count(*)::integer from private.claim_due_appointment_syncs(100, 60) where id = tests.fx('t1')), 0,
  'nor does the retry');

-- A failed one throttled for a day: its old error gives way to the throttle's.
update public.appointments set sync_status = 'failed', sync_error = 'Google answered 500', sync_attempts = 3 where id = tests.fx('t2');
select pg_temp.throttled_for('t2', 30);
select is(pg_temp.throttle('t2'), true, 'a failed one''s retry throttled, 30 hours into the run');
select is(pg_temp.state('t2'),
  '(failed,4,01:04:00,f,"the calendar provider throttled every attempt for 24 hours","1 day 06:00:00")',
  'its fourth attempt counted, retried 64 minutes later');

-- Any recorded result ends the run.
update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('t2');
select is((select id from private.claim_appointment_sync(tests.fx('t2'), 60)), tests.fx('t2'), 'claimed again');
select is(private.set_appointment_sync(tests.fx('t2'), null, 'failed', 'Google answered 502',
  (select updated_at from public.appointments where id = tests.fx('t2'))), true, 'the provider answered 502, not a throttle');
select is(pg_temp.state('t2'), '(failed,5,04:16:00,f,"Google answered 502",)', 'a failure as before; the run is over');
select pg_temp.throttled_for('t3', 30);
select is((select id from private.claim_appointment_sync(tests.fx('t3'), 60)), tests.fx('t3'), 'a throttled one claimed');
select is(private.set_appointment_sync(tests.fx('t3'), 'evt-301-t3', 'synced', null,
  (select updated_at from public.appointments where id = tests.fx('t3'))), true, 'and mirrored');
select is(pg_temp.state('t3'), '(synced,0,,f,,)', 'synced: the run is over');

-- A change keeps the run (the provider throttled, not this version); a reconnect ends it.
select pg_temp.throttled_for('t3', 30);
update public.appointments set starts_at = starts_at + interval '1 hour', ends_at = ends_at + interval '1 hour' where id = tests.fx('t3');
select is(pg_temp.state('t3'), '(pending,0,00:01:00,f,,"1 day 06:00:00")', 'moved: pending, a fresh count, the run kept');
select is(private.mark_calendar_needs_reauth(tests.fx('conn_a'), 'invalid_grant'), true, 'the calendar breaks');
select is(pg_temp.connect('org_a', 'admin_a', 'desk-a@throttle301.test'), tests.fx('conn_a'), 'and is connected again');
select is(pg_temp.state('t3'), '(pending,0,00:00:00,f,,)', 'the reconnect: due now, counted from 0, the run over');
select is(pg_temp.throttle('t3'), true, 'throttled after the reconnect');
select is(pg_temp.state('t3'), '(pending,0,00:02:00,f,,00:00:00)', 'a new run: uncounted again');

-- ---------------------------------------------------------------------------
-- 2. Stray event deletions, the orgs in turn
-- ---------------------------------------------------------------------------

-- (status, attempts, leased)
create function pg_temp.deletion(name text) returns text language sql security definer as $$
  select (status, attempts, claimed_until is not null)::text
  from private.calendar_event_deletions where id = tests.fx(name) $$;
create function pg_temp.claim_one() returns uuid language sql as $$
  select id from private.claim_due_calendar_event_deletions(1, 60) $$;
grant execute on function pg_temp.deletion(text), pg_temp.claim_one() to public;

-- Due 30 days and `minutes` minutes ago.
create function pg_temp.stray(name text, appointment text, minutes integer) returns uuid language plpgsql as $$
declare
  recorded uuid;
begin
  recorded := private.record_calendar_event_deletion(tests.fx(appointment), 'evt-301-' || name);
  update private.calendar_event_deletions set next_attempt_at = now() - interval '30 days' - make_interval(mins => minutes)
  where id = recorded;
  return recorded;
end $$;
select tests.remember('t_a2', pg_temp.book('Other Calendar', 'org_a', 'conn_a2', 13));
-- Org A's backlog (one on its second calendar), due before org B's one deletion.
select tests.remember('d_a1', pg_temp.stray('a1', 't1', 50));
select tests.remember('d_a2', pg_temp.stray('a2', 't1', 40));
select tests.remember('d_a3', pg_temp.stray('a3', 't_a2', 30));
select tests.remember('d_a4', pg_temp.stray('a4', 't2', 20));
select tests.remember('d_b1', pg_temp.stray('b1', 'b_appt', 10));
update private.calendar_event_deletions set next_attempt_at = now() + interval '1 day'
where status = 'pending' and next_attempt_at <= now() and org_id not in (tests.fx('org_a'), tests.fx('org_b'));

select tests.act_as('service_role');
select is(pg_temp.claim_one(), tests.fx('d_a1'), 'one by one, as a pass claims: first the oldest due');
select is(pg_temp.claim_one(), tests.fx('d_b1'), 'then the other org''s, though org A has older ones due (A runs one already)');
select is(pg_temp.claim_one(), tests.fx('d_a2'), 'then org A''s next');
select is(pg_temp.claim_one(), tests.fx('d_a3'), 'then org A''s next, from its other calendar (org B has none left)');
select tests.act_as('postgres');
select is(pg_temp.deletion('d_a1'), '(pending,2,t)', 'claimed: attempt counted, leased');

select tests.act_as('service_role');
select is(private.finish_calendar_event_deletion(tests.fx('d_a1'), 'Google answered 503'), 'pending', 'its delete failed');
select tests.act_as('postgres');
select is(pg_temp.deletion('d_a1'), '(pending,2,f)', 'recorded: no longer running');

select tests.act_as('service_role');
select is(private.finish_calendar_event_deletion(tests.fx('d_b1'), null), 'deleted', 'org B''s delete done');
select tests.act_as('postgres');
-- Org A runs two, org B none: org B's new one goes before org A's older fourth.
select tests.remember('d_b2', pg_temp.stray('b2', 'b_appt', 5));
select is(pg_temp.claim_one(), tests.fx('d_b2'), 'org A running two: org B''s newer one first (turn 1; org A''s fourth is turn 3)');
select is(pg_temp.claim_one(), tests.fx('d_a4'), 'then org A''s fourth');

-- A calendar that is not connected: its deletions wait, unclaimed.
update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second', claimed_until = null
where id in (tests.fx('d_a2'), tests.fx('d_a3'));
select is(private.mark_calendar_needs_reauth(tests.fx('conn_a2'), 'invalid_grant'), true, 'org A''s second calendar breaks');
select is((select array_agg(id) from private.claim_due_calendar_event_deletions(100, 60)), array[tests.fx('d_a2')],
  'only the connected calendar''s due deletion is claimed');

select * from finish();
rollback;
