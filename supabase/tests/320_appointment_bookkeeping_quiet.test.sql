-- An appointment's mirroring bookkeeping (sync_claimed_until, sync_attempts, sync_next_attempt_at,
-- sync_throttled_since, updated_at) is neither broadcast on org:<org_id>:appointments nor audited
-- (20261123014700); a change to the appointment or to its mirroring's outcome still is both.
begin;
create extension if not exists pgtap with schema extensions;

select plan(6);

select tests.remember('owner_q', tests.create_user('owner@appointment-quiet-320.test'));
select tests.remember('org_q', tests.create_org('appointment-quiet-320', tests.fx('owner_q')));
insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, source)
values (tests.fx('org_q'), now() + interval '40 days', now() + interval '40 days 30 minutes', 'Quiet Attendee',
  'quiet@example.com', 'staff');
select tests.remember('appointment_q', (select id from public.appointments where org_id = tests.fx('org_q')));

create function pg_temp.broadcasts() returns integer language sql as $$
  select count(*)::integer from realtime.messages
  where topic = 'org:' || tests.fx('org_q') || ':appointments' and event = 'UPDATE'
    and payload -> 'record' ->> 'id' = tests.fx('appointment_q')::text
$$;
create function pg_temp.audited() returns integer language sql as $$
  select count(*)::integer from public.audit_log
  where org_id = tests.fx('org_q') and table_name = 'appointments' and action = 'update'
$$;

-- A lease taken, then released with a retry scheduled: bookkeeping only.
update public.appointments set sync_claimed_until = now() + interval '1 minute', sync_attempts = sync_attempts + 1
where id = tests.fx('appointment_q');
update public.appointments set sync_claimed_until = null, sync_next_attempt_at = now() + interval '2 minutes',
  sync_throttled_since = now()
where id = tests.fx('appointment_q');
select is(pg_temp.broadcasts(), 0, 'a mirroring lease taken and released is not broadcast');
select is(pg_temp.audited(), 0, '... nor audited');

-- Its mirroring's outcome is.
update public.appointments set sync_error = 'the calendar is throttling' where id = tests.fx('appointment_q');
select is(pg_temp.broadcasts(), 1, 'a mirroring''s outcome (sync_error) is broadcast');
select is(pg_temp.audited(), 1, '... and audited');

-- And a change to the appointment itself.
update public.appointments set notes = 'Bring the forms' where id = tests.fx('appointment_q');
select is(pg_temp.broadcasts(), 2, 'a change to the appointment is broadcast');
select is(pg_temp.audited(), 2, '... and audited');

select * from finish();
rollback;
