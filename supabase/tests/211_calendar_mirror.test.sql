-- Calendar mirroring converges and is retried (20261123003810): one
-- mirroring per appointment (the lease of private.claim_appointment_sync,
-- renewed by its holder), an outdated result keeping the event it made for
-- the holder's next round, a current result releasing the lease, the retry
-- schedule (1, 4, 16, 64, 256 minutes, 6 hours; the eighth attempt is
-- final), a change starting the count again, the due claim of the retry
-- route and the pg_cron job. One transaction: now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(27);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@mirror.test')),
  ('admin', tests.create_user('admin@mirror.test')),
  ('member', tests.create_user('member@mirror.test'));
select tests.remember('org', tests.create_org('mirror-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
select tests.remember('conn', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'desk@mirror.test', null, array['https://www.googleapis.com/auth/calendar.events'], 'v1.cipher', now() + interval '1 hour'));
with a as (
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx('org'), tests.fx('conn'), now() + interval '10 days', now() + interval '10 days 30 minutes', 'Ann', 'ann@example.com', 'staff')
  returning id
) select tests.remember('appt', id) from a;
with a as (
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx('org'), tests.fx('conn'), now() + interval '11 days', now() + interval '11 days 30 minutes', 'Bo', 'bo@example.com', 'staff')
  returning id
) select tests.remember('appt2', id) from a;

create function pg_temp.lease() returns timestamptz language sql as
  $$ select sync_claimed_until from public.appointments where id = tests.fx('appt') $$;
create function pg_temp.state(id uuid) returns text language sql as $$
  select (sync_status, external_event_id, sync_attempts, sync_next_attempt_at - now(), sync_claimed_until is not null)::text
  from public.appointments where appointments.id = state.id $$;
grant execute on function pg_temp.lease(), pg_temp.state(uuid) to public;

select has_column('public', 'appointments', 'sync_claimed_until', 'the lease column exists');
select has_index('public', 'appointments', 'appointments_sync_due_idx', 'the due index exists');
select hasnt_index('public', 'appointments', 'appointments_sync_pending_idx', 'the pending-only index is gone');
select is(
  (select schedule || ' | ' || command from cron.job where jobname = 'retry-appointment-mirroring'),
  '* * * * * | select private.retry_appointment_mirroring()', 'the retry job runs every minute'
);
select is(pg_temp.state(tests.fx('appt')), '(pending,,0,00:01:00,f)', 'a new appointment is due a minute later, for its own request first');

-- The lease.
select tests.act_as('member');
select throws_ok(
  $$select private.claim_appointment_sync(tests.fx('appt'), 60)$$, '42501', null, 'claim: not for signed-in users'
);
select tests.act_as('service_role');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('appt'), 60)), 1, 'claim: the first mirroring holds it');
select is(pg_temp.state(tests.fx('appt')), '(pending,,1,00:01:00,t)', 'claim: counted as an attempt');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('appt'), 60)), 0, 'claim: a second mirroring finds it held');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('appt'), 60, '2000-01-01')), 0, 'claim: a lease it does not hold renews nothing');
select is((select sync_attempts from private.claim_appointment_sync(tests.fx('appt'), 60, pg_temp.lease())), 1::smallint, 'claim: the holder renews, not counted again');
select throws_ok($$select private.claim_appointment_sync(tests.fx('appt'), 0)$$, '22023', 'lease_seconds must be between 1 and 900', 'claim: a lease of 1 to 900 s');
select throws_ok($$select private.claim_appointment_sync(gen_random_uuid(), 60)$$, 'P0002', 'appointment not found', 'claim: unknown');

-- An outdated result (the appointment changed while the provider answered).
select is(private.set_appointment_sync(tests.fx('appt'), 'evt-late', 'synced', null, '2000-01-01'), false, 'outdated: ignored');
select is(pg_temp.state(tests.fx('appt')), '(pending,evt-late,1,00:01:00,t)', 'outdated: the event made is kept for the next round, the lease stays with its holder');
select is(private.set_appointment_sync(tests.fx('appt'), 'evt-other', 'synced', null, '2000-01-01'), false, 'outdated: another event');
select is((select external_event_id from public.appointments where id = tests.fx('appt')), 'evt-late', 'outdated: an event the row does not want is not kept (the caller deletes it)');

-- Current results: the lease is released, failures are scheduled.
select is(
  private.set_appointment_sync(tests.fx('appt'), null, 'failed', 'Google answered 503', (select updated_at from public.appointments where id = tests.fx('appt'))),
  true, 'failed: recorded'
);
select is(pg_temp.state(tests.fx('appt')), '(failed,evt-late,1,00:01:00,f)', 'failed: released, retried a minute later');
update public.appointments set sync_attempts = 3 where id = tests.fx('appt');
select private.set_appointment_sync(tests.fx('appt'), null, 'failed', 'again', null);
select is(pg_temp.state(tests.fx('appt')), '(failed,evt-late,3,00:16:00,f)', 'failed: the third attempt waits 16 minutes');
update public.appointments set sync_attempts = 7 where id = tests.fx('appt');
select private.set_appointment_sync(tests.fx('appt'), null, 'failed', 'again', null);
select is(pg_temp.state(tests.fx('appt')), '(failed,evt-late,7,06:00:00,f)', 'failed: at most 6 hours apart');
update public.appointments set sync_attempts = 8 where id = tests.fx('appt');
select private.set_appointment_sync(tests.fx('appt'), null, 'failed', 'again', null);
select is(pg_temp.state(tests.fx('appt')), '(failed,evt-late,8,,f)', 'failed: the eighth attempt is final');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('appt'), 60)), 0, 'failed: given up, nothing to claim');

-- A change starts again.
update public.appointments set starts_at = starts_at + interval '1 hour', ends_at = ends_at + interval '1 hour' where id = tests.fx('appt');
select is(pg_temp.state(tests.fx('appt')), '(pending,evt-late,0,00:01:00,f)', 'a move is pending again, counted from 0');

-- The retry: due rows claimed once; pending ones that never finished given up.
update public.appointments set sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('appt');
select is((select array_agg(id) from private.claim_due_appointment_syncs(10, 60)), array[tests.fx('appt')], 'due: claimed for the retry route');
select is((select count(*)::integer from private.claim_due_appointment_syncs(10, 60)), 0, 'due: a concurrent call finds it held');
select private.set_appointment_sync(tests.fx('appt'), 'evt-late', 'synced', null, null);
update public.appointments set sync_attempts = 8, sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('appt2');
select tests.act_as('postgres');
select private.retry_appointment_mirroring();
select results_eq(
  $$select sync_status, sync_error, sync_attempts, sync_next_attempt_at from public.appointments where id in (tests.fx('appt'), tests.fx('appt2')) order by starts_at$$,
  $$values ('synced', null::text, 0::smallint, null::timestamptz), ('failed', 'mirroring did not finish in 8 attempts', 8::smallint, null::timestamptz)$$,
  'retry: synced resets the count; a pending one that never finished in 8 attempts fails'
);

select * from finish();
rollback;
