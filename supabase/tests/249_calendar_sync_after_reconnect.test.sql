-- 20261123008000: the mirroring (and event deletions) of a calendar that is
-- not connected waits, uncounted, and a calendar connected again (a
-- reconnect, a refresh over needs_reauth) re-queues what waited or was given
-- up; a connected calendar keeps its bounded retries, and a disconnected or
-- deleted one leaves nothing due. One transaction: now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(30);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@reconnect249.test')),
  ('admin', tests.create_user('admin@reconnect249.test'));
select tests.remember('org', tests.create_org('reconnect249-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');

create function pg_temp.connect(email text, cipher text) returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google', email, null,
    array['https://www.googleapis.com/auth/calendar.events'], cipher, now() + interval '1 hour', 'sub-' || email) $$;
select tests.remember('conn', pg_temp.connect('desk@reconnect249.test', 'v1.cipher'));
select tests.remember('other', pg_temp.connect('other@reconnect249.test', 'v1.other'));

create function pg_temp.book(name text, conn text, days integer) returns uuid language sql as $$
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx('org'), tests.fx(conn), now() + make_interval(days => days), now() + make_interval(days => days, mins => 30),
          name, 'guest@reconnect249.test', 'staff')
  returning id $$;
select tests.remember('canceled', pg_temp.book('Canceled', 'conn', 10));
select tests.remember('given_up', pg_temp.book('Given Up', 'conn', 11));
select tests.remember('synced', pg_temp.book('Synced', 'conn', 12));
select tests.remember('elsewhere', pg_temp.book('Elsewhere', 'other', 13));

-- (sync_status, attempts, due in, leased)
create function pg_temp.state(name text) returns text language sql as $$
  select (sync_status, sync_attempts, sync_next_attempt_at - now(), sync_claimed_until is not null)::text
  from public.appointments where id = tests.fx(name) $$;
-- (status, attempts, due in); definer: the deletions are the service's through functions only.
create function pg_temp.deletion(name text) returns text language sql security definer as $$
  select (status, attempts, next_attempt_at - now())::text
  from private.calendar_event_deletions where id = tests.fx(name) $$;
create function pg_temp.claimed_due() returns uuid[] language sql as $$
  select coalesce(array_agg(id order by id), '{}') from private.claim_due_appointment_syncs(100, 60)
  where id in (tests.fx('canceled'), tests.fx('given_up'), tests.fx('synced'), tests.fx('elsewhere')) $$;
create function pg_temp.claimed_deletions() returns uuid[] language sql as $$
  select coalesce(array_agg(id order by id), '{}') from private.claim_due_calendar_event_deletions(100, 60)
  where id in (tests.fx('stray'), tests.fx('stray_given_up')) $$;
grant execute on function pg_temp.state(text), pg_temp.deletion(text), pg_temp.claimed_due(), pg_temp.claimed_deletions() to public;

-- Stray events of the calendar, one due, one given up before.
select tests.remember('stray', private.record_calendar_event_deletion(tests.fx('canceled'), 'evt-stray-249'));
select tests.remember('stray_given_up', private.record_calendar_event_deletion(tests.fx('canceled'), 'evt-stray-given-up-249'));
update private.calendar_event_deletions set next_attempt_at = now() - interval '1 second', attempts = 3 where id = tests.fx('stray');
update private.calendar_event_deletions set status = 'given_up', next_attempt_at = null, attempts = 8, last_error = 'Google answered 503'
where id = tests.fx('stray_given_up');

-- The grant is refused while the appointments wait for mirroring.
select is(private.mark_calendar_needs_reauth(tests.fx('conn'), 'invalid_grant'), true, 'the calendar breaks');
select is(private.mark_calendar_needs_reauth(tests.fx('other'), 'invalid_grant'), true, 'the other calendar breaks too');
update public.appointments set status = 'canceled', cancel_reason = 'changed mind' where id = tests.fx('canceled');
update public.appointments set sync_attempts = 3, sync_next_attempt_at = now() - interval '1 second' where id in (tests.fx('canceled'), tests.fx('elsewhere'));
update public.appointments set sync_status = 'failed', sync_error = 'The calendar must be connected again', sync_attempts = 8, sync_next_attempt_at = null
where id = tests.fx('given_up');
update public.appointments set sync_status = 'synced', sync_attempts = 0, sync_next_attempt_at = null, external_event_id = 'evt-synced-249'
where id = tests.fx('synced');

-- (a) Nothing of a calendar that is not connected is claimed or counted.
select tests.act_as('service_role');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('canceled'), 60)), 0, 'broken: a request''s mirroring claims nothing');
select is(pg_temp.state('canceled'), '(pending,3,-00:00:01,f)', 'broken: no attempt counted, still due, not leased');
select is(pg_temp.claimed_due(), '{}'::uuid[], 'broken: the retry route claims none of its appointments');
select is(pg_temp.state('canceled'), '(pending,3,-00:00:01,f)', 'broken: the retry route counts no attempt');
select is(pg_temp.claimed_deletions(), '{}'::uuid[], 'broken: the retry route claims none of its event deletions');
select is(pg_temp.deletion('stray'), '(pending,3,-00:00:01)', 'broken: the deletion counts no attempt and stays due');
select tests.act_as('postgres');
update public.appointments set sync_attempts = 8 where id = tests.fx('elsewhere');
create temporary table due_broken on commit drop as select private.retry_appointment_mirroring() as due;
select is(pg_temp.state('elsewhere'), '(pending,8,-00:00:01,f)', 'broken: the job does not give up what waits for the reconnect');

-- (b) A reconnect of the same account re-queues what waited and what gave up.
select is(pg_temp.connect('desk@reconnect249.test', 'v2.cipher'), tests.fx('conn'), 'reconnect: the same connection');
select is((select status from public.calendar_connections where id = tests.fx('conn')), 'connected', 'reconnect: connected');
select is(pg_temp.state('canceled'), '(pending,0,00:00:00,f)', 'reconnect: a waiting change starts a fresh count, due now');
select is(pg_temp.state('given_up'), '(failed,0,00:00:00,f)', 'reconnect: a given-up mirroring is due again, counted from 0');
select is(pg_temp.state('synced'), '(synced,0,,f)', 'reconnect: a synced appointment stays done');
select is(pg_temp.state('elsewhere'), '(pending,8,-00:00:01,f)', 'reconnect: another calendar''s appointments are left alone');
select is(pg_temp.deletion('stray'), '(pending,0,00:00:00)', 'reconnect: a pending deletion starts a fresh count, due now');
select is(pg_temp.deletion('stray_given_up'), '(pending,0,00:00:00)', 'reconnect: a given-up deletion is pending again, due now');
select is(private.retry_appointment_mirroring(), (select due + 4 from due_broken),
  'reconnect: the job sees its two appointments and two deletions due');
select tests.act_as('service_role');
select is(pg_temp.claimed_due(), (select array_agg(x order by x) from unnest(array[tests.fx('canceled'), tests.fx('given_up')]) x),
  'reconnect: the retry route claims them');
select is(pg_temp.state('canceled'), '(pending,1,00:00:00,t)', 'reconnect: the claim counts attempt 1');
select is(pg_temp.claimed_deletions(), (select array_agg(x order by x) from unnest(array[tests.fx('stray'), tests.fx('stray_given_up')]) x),
  'reconnect: and the event deletions');

-- A connected calendar's failures keep their bounded retries: a refresh that finds it connected re-queues nothing.
select private.set_appointment_sync(tests.fx('given_up'), null, 'failed', 'Google answered 503', null);
update public.appointments set sync_attempts = 8 where id = tests.fx('given_up');
select private.set_appointment_sync(tests.fx('given_up'), null, 'failed', 'Google answered 503', null);
select is(pg_temp.state('given_up'), '(failed,8,,f)', 'connected: the eighth provider failure is final');
select is(private.update_calendar_tokens(tests.fx('conn'), 'v3.cipher', now() + interval '1 hour', 'v2.cipher'), true, 'connected: a refresh');
select is(pg_temp.state('given_up'), '(failed,8,,f)', 'connected: a refresh of a connected calendar re-queues nothing');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('given_up'), 60)), 0, 'connected: given up stays given up');

-- A refresh that heals needs_reauth (update_calendar_tokens) re-queues too.
select private.mark_calendar_needs_reauth(tests.fx('conn'), 'invalid_grant');
select is(private.update_calendar_tokens(tests.fx('conn'), 'v4.cipher', now() + interval '1 hour', 'v3.cipher'), true, 'healed: a refresh stores new tokens');
select is(pg_temp.state('given_up'), '(failed,0,00:00:00,f)', 'healed: the given-up mirroring is due again');

-- A disconnected (revoked) calendar's appointments are not claimed; once the connection is deleted nothing is due.
select tests.act_as('postgres');
update public.calendar_connections set status = 'revoked' where id = tests.fx('other');
select tests.act_as('service_role');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('elsewhere'), 60)), 0, 'revoked: nothing claimed');
select tests.act_as('postgres');
delete from public.calendar_connections where id = tests.fx('other');
select is(
  (select (connection_id, sync_status)::text from public.appointments where id = tests.fx('elsewhere')),
  '(,not_mirrored)', 'deleted: the appointment has no calendar, nothing to mirror'
);
select tests.act_as('service_role');
select is((select count(*)::integer from private.claim_appointment_sync(tests.fx('elsewhere'), 60)), 0, 'deleted: nothing claimed, ever');

select * from finish();
rollback;
