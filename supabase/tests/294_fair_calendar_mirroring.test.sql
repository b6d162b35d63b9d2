-- 20261123011900: claim_due_appointment_syncs takes the orgs in turn (place in the org's due queue plus
-- its running mirrorings, then oldest due), so one org's backlog does not hold back another's; a
-- mirroring the provider throttled is given back by release_throttled_appointment_sync: no attempt
-- counted, status and error kept, the lease released, due after Retry-After bounded to 1 minute - 1 hour
-- (5 minutes when none), only by the lease's holder. One transaction: now() is one instant. This org's
-- rows alone are due (others' are set aside, rolled back).
begin;
create extension if not exists pgtap with schema extensions;

select plan(29);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@fair294.test')),
  ('owner_b', tests.create_user('owner-b@fair294.test')),
  ('admin_a', tests.create_user('admin-a@fair294.test')),
  ('admin_b', tests.create_user('admin-b@fair294.test'));
select tests.remember('org_a', tests.create_org('fair294-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('fair294-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_b'), tests.fx('admin_b'), 'admin');

create function pg_temp.connect(org text, admin text, email text) returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx(org), tests.fx(admin), null, 'google', email, null,
    array['https://www.googleapis.com/auth/calendar.events'], 'v1.cipher-' || email, now() + interval '1 hour', 'sub-' || email) $$;
select tests.remember('conn_a', pg_temp.connect('org_a', 'admin_a', 'desk-a@fair294.test'));
select tests.remember('conn_b', pg_temp.connect('org_b', 'admin_b', 'desk-b@fair294.test'));

-- Pending, due 30 days and `minutes` minutes ago, counting `attempts`.
create function pg_temp.book(name text, org text, conn text, days integer, minutes integer, attempts integer) returns uuid language plpgsql as $$
declare
  booked uuid;
begin
  insert into public.appointments (org_id, connection_id, starts_at, ends_at, attendee_name, attendee_email, source)
  values (tests.fx(org), tests.fx(conn), now() + make_interval(days => days), now() + make_interval(days => days, mins => 30),
          name, 'guest@fair294.test', 'staff')
  returning id into booked;
  update public.appointments set sync_next_attempt_at = now() - interval '30 days' - make_interval(mins => minutes), sync_attempts = attempts
  where id = booked;
  return booked;
end $$;
-- org A's backlog, due before org B's one appointment.
select tests.remember('a1', pg_temp.book('A One', 'org_a', 'conn_a', 10, 50, 0));
select tests.remember('a2', pg_temp.book('A Two', 'org_a', 'conn_a', 11, 40, 0));
select tests.remember('a3', pg_temp.book('A Three', 'org_a', 'conn_a', 12, 30, 0));
select tests.remember('b1', pg_temp.book('B One', 'org_b', 'conn_b', 10, 10, 0));
-- Other files' due mirrorings (the database is shared) would take turns too: not due here (rolled back).
update public.appointments set sync_next_attempt_at = null
where sync_status in ('pending', 'failed') and sync_next_attempt_at <= now() and org_id not in (tests.fx('org_a'), tests.fx('org_b'));

-- (sync_status, attempts, due in, leased, error)
create function pg_temp.state(name text) returns text language sql as $$
  select (sync_status, sync_attempts, sync_next_attempt_at - now(), sync_claimed_until is not null, sync_error)::text
  from public.appointments where id = tests.fx(name) $$;
create function pg_temp.claim_one() returns uuid language sql as $$
  select id from private.claim_due_appointment_syncs(1, 60) $$;
create function pg_temp.lease(name text) returns timestamptz language sql as $$
  select sync_claimed_until from public.appointments where id = tests.fx(name) $$;
create function pg_temp.release(name text, wait numeric) returns boolean language sql as $$
  select private.release_throttled_appointment_sync(tests.fx(name), pg_temp.lease(name), wait) $$;
grant execute on function pg_temp.state(text), pg_temp.claim_one(), pg_temp.lease(text), pg_temp.release(text, numeric) to public;

-- ---------------------------------------------------------------------------
-- 1. Who may give a mirroring back
-- ---------------------------------------------------------------------------

select is(has_function_privilege('service_role', 'private.release_throttled_appointment_sync(uuid, timestamptz, numeric)', 'execute'),
  true, 'release_throttled_appointment_sync: the service role may');
select is(has_function_privilege('authenticated', 'private.release_throttled_appointment_sync(uuid, timestamptz, numeric)', 'execute'),
  false, 'release_throttled_appointment_sync: signed-in users may not');
select is(has_function_privilege('anon', 'private.release_throttled_appointment_sync(uuid, timestamptz, numeric)', 'execute'),
  false, 'release_throttled_appointment_sync: anon may not');

-- ---------------------------------------------------------------------------
-- 2. The orgs in turn
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(pg_temp.claim_one(), tests.fx('a1'), 'one by one, as a pass claims: first the oldest due');
select is(pg_temp.claim_one(), tests.fx('b1'), 'then the other org''s, though org A has older ones due (A runs one already)');
select is(pg_temp.claim_one(), tests.fx('a2'), 'then org A''s next');
select tests.act_as('postgres');
update public.appointments set sync_claimed_until = null where id in (tests.fx('a1'), tests.fx('a2'), tests.fx('b1'));
update public.appointments set sync_attempts = 0 where id in (tests.fx('a1'), tests.fx('a2'), tests.fx('b1'));

select tests.act_as('service_role');
select is((select array_agg(id order by id) from private.claim_due_appointment_syncs(2, 60)),
  (select array_agg(id order by id) from unnest(array[tests.fx('a1'), tests.fx('b1')]) id),
  'two at once: each org''s oldest, not org A''s two oldest');
select tests.act_as('postgres');
update public.appointments set sync_claimed_until = null, sync_attempts = 0 where id in (tests.fx('a1'), tests.fx('b1'));

-- A mirroring of org B running (a booking's own): org A's second goes before org B's first.
update public.appointments set sync_claimed_until = clock_timestamp() + interval '1 minute' where id = tests.fx('b1');
select tests.remember('b2', pg_temp.book('B Two', 'org_b', 'conn_b', 11, 20, 0));
select is(pg_temp.claim_one(), tests.fx('a1'), 'org B running one: org A''s oldest first (turn 1; org B''s is turn 2)');
select is(pg_temp.claim_one(), tests.fx('a2'), 'then turn 2 of both, by due time: org A''s second');
select is(pg_temp.claim_one(), tests.fx('b2'), 'then org B''s (turn 2), before org A''s older third (turn 3)');
select is(pg_temp.state('a3'), '(pending,0,"-30 days -00:30:00",f,)', 'what was not claimed is untouched');

-- ---------------------------------------------------------------------------
-- 3. A throttled mirroring is given back
-- ---------------------------------------------------------------------------

select is(pg_temp.state('a1'), '(pending,1,"-30 days -00:50:00",t,)', 'claimed: an attempt counted, leased');
select tests.act_as('service_role');
select is(pg_temp.release('a1', 120), true, 'given back by its holder');
select tests.act_as('postgres');
select is(pg_temp.state('a1'), '(pending,0,00:02:00,f,)', 'no attempt counted, still pending, due after Retry-After, lease released');
select is((select count(*)::integer from private.claim_due_appointment_syncs(100, 60) where id = tests.fx('a1')), 0,
  'not claimed again before its wait');

select is(pg_temp.release('a2', 86400), true, 'a day asked');
select is(pg_temp.state('a2'), '(pending,0,01:00:00,f,)', 'waits at most an hour');
select is(pg_temp.release('b2', 4), true, 'seconds asked (the client waited those out in the call)');
select is(pg_temp.state('b2'), '(pending,0,00:01:00,f,)', 'waits at least a minute: the next pass');

-- A failed one (its retry throttled): still failed, its error kept, no attempt spent. (The claim of
-- everything due above took it: released here.)
update public.appointments set sync_status = 'failed', sync_error = 'Google answered 500', sync_attempts = 5,
  sync_next_attempt_at = now() - interval '30 days', sync_claimed_until = null where id = tests.fx('a3');
select is((select id from private.claim_appointment_sync(tests.fx('a3'), 60)), tests.fx('a3'), 'the failed one claimed for its retry');
select is(pg_temp.release('a3', null), true, 'no Retry-After known');
select is(pg_temp.state('a3'), '(failed,5,00:05:00,f,"Google answered 500")', 'still failed with its error, 5 attempts, due in 5 minutes');

-- Throttled on its last attempts, again and again: never given up for it.
update public.appointments set sync_attempts = 7, sync_next_attempt_at = now() - interval '1 second' where id = tests.fx('a3');
create function pg_temp.throttle_often(times integer) returns void language plpgsql as $$
begin
  for i in 1 .. times loop
    perform private.claim_appointment_sync(tests.fx('a3'), 60);
    perform pg_temp.release('a3', 60);
  end loop;
end $$;
select pg_temp.throttle_often(12);
select is(pg_temp.state('a3'), '(failed,7,00:01:00,f,"Google answered 500")', 'twelve throttles later: still 7 attempts, still retried');

-- Only the lease held.
select is((select id from private.claim_appointment_sync(tests.fx('b1'), 60, pg_temp.lease('b1'))), tests.fx('b1'), 'org B''s first renewed');
select is(private.release_throttled_appointment_sync(tests.fx('b1'), pg_temp.lease('b1') - interval '1 second', 30), false,
  'a lease no longer held: nothing given back');
select is((select (sync_attempts, sync_claimed_until is not null)::text from public.appointments where id = tests.fx('b1')), '(0,t)',
  'the holder keeps it, attempts as they were');
select throws_ok($$select private.release_throttled_appointment_sync(gen_random_uuid(), now(), 30)$$, 'P0002', null, 'unknown: P0002');
select throws_ok($$select private.release_throttled_appointment_sync(tests.fx('b1'), null, 30)$$, '22023', null, 'no lease: 22023');
select throws_ok($$select private.release_throttled_appointment_sync(tests.fx('b1'), pg_temp.lease('b1'), -1)$$, '22023', null,
  'a negative wait: 22023');

select * from finish();
rollback;
