-- 20261123008900: a leaver's calendar connections are revoked (unusable at
-- once) and kept with their sealed tokens under a pending revocation, which
-- the calendar function's pass claims exclusively, retries with backoff (at
-- most 5 attempts) and ends by deleting the connection, audited; leaving and
-- rejoining does not bring a connection back.
begin;
create extension if not exists pgtap with schema extensions;

select plan(37);

select tests.remember('owner', tests.create_user('owner@grants262.test'));
select tests.remember('admin_a', tests.create_user('admin-a@grants262.test'));
select tests.remember('admin_b', tests.create_user('admin-b@grants262.test'));
select tests.remember('admin_c', tests.create_user('admin-c@grants262.test'));
select tests.remember('admin_d', tests.create_user('admin-d@grants262.test'));
select tests.remember('org', tests.create_org('grants262-org', tests.fx('owner')));
select tests.remember('org2', tests.create_org('grants262-org2', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_b'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_c'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_d'), 'admin');
select tests.add_member(tests.fx('org2'), tests.fx('admin_d'), 'admin');

-- A connected Google calendar made by the given user, with a token row, as a connect leaves it.
create function pg_temp.connection(org text, who text, email text) returns uuid language plpgsql as $$
declare
  id uuid;
begin
  insert into public.calendar_connections (org_id, provider, account_email, account_subject, external_calendar_id, connected_by)
  values (tests.fx(org), 'google', email, 'sub-' || email, 'primary', tests.fx(who))
  returning calendar_connections.id into id;
  insert into private.calendar_tokens (connection_id, ciphertext) values (id, 'v1.sealed-' || email);
  return id;
end;
$$;

-- 'gone', or the status, whether its tokens are there and whether a revocation is pending.
create function pg_temp.state(name text) returns text language sql as $$
  select coalesce(
    (select c.status
       || case when exists (select 1 from private.calendar_tokens t where t.connection_id = c.id) then '+token' else '' end
       || case when exists (select 1 from private.calendar_grant_revocations r where r.connection_id = c.id) then '+pending' else '' end
     from public.calendar_connections c where c.id = tests.fx(name)),
    'gone')
$$;

create function pg_temp.revocation(name text) returns private.calendar_grant_revocations language sql as $$
  select * from private.calendar_grant_revocations r where r.connection_id = tests.fx(name)
$$;

select tests.remember('conn_a', pg_temp.connection('org', 'admin_a', 'a@grants262.test'));
select tests.remember('conn_b', pg_temp.connection('org', 'admin_b', 'b@grants262.test'));
select tests.remember('conn_c', pg_temp.connection('org', 'admin_c', 'c@grants262.test'));
select tests.remember('conn_d', pg_temp.connection('org', 'admin_d', 'd@grants262.test'));
select tests.remember('conn_d2', pg_temp.connection('org2', 'admin_d', 'd@grants262.test'));
select tests.remember('conn_owner', pg_temp.connection('org', 'owner', 'owner@grants262.test'));

-- ---------------------------------------------------------------------------
-- 1. Leaving leaves a pending revocation, not a usable connection.
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
select lives_ok($$select public.remove_member(tests.fx('org'), tests.fx('admin_a'))$$, 'remove_member works');
select tests.act_as('postgres');
select is(pg_temp.state('conn_a'), 'revoked+token+pending',
  'removed: the connection is revoked, keeps its sealed tokens and waits for its revocation');
select is((select status_reason from public.calendar_connections where id = tests.fx('conn_a')),
  'the member who connected it left the organization', 'removed: status_reason says why');
select ok((pg_temp.revocation('conn_a')).attempts = 0 and (pg_temp.revocation('conn_a')).next_attempt_at <= now(),
  'removed: the revocation is due now, no attempt yet');
select is(pg_temp.state('conn_b'), 'connected+token', 'removed: another admin''s connection is untouched');
select ok(exists (
  select 1 from public.audit_log a
  where a.org_id = tests.fx('org') and a.table_name = 'calendar_connections' and a.record_id = tests.fx('conn_a')::text
    and a.action = 'update' and a.new_values ->> 'status' = 'revoked'
), 'removed: the revocation of the connection is audited');

-- Unusable from the moment of leaving.
select ok(tests.fx('conn_a') <> all (array(select connection_id from private.calendars_for_bot(tests.fx('org'), null))),
  'its busy times no longer count');
select ok(private.booking_calendar(tests.fx('org'), null) is distinct from tests.fx('conn_a'), 'nothing is booked into it');
select tests.act_as('service_role');
select throws_ok(
  format($$select private.update_calendar_tokens(%L, 'v1.fresh', now() + interval '1 hour')$$, tests.fx('conn_a')),
  'P0002', null, 'a token refresh cannot bring it back');
select is(private.mark_calendar_needs_reauth(tests.fx('conn_a'), 'refused'), false, 'nor can a needs_reauth mark');
select tests.act_as('postgres');
select is(pg_temp.state('conn_a'), 'revoked+token+pending', 'and it stays revoked');

-- Left of their own accord; a membership deleted in SQL.
select tests.act_as('admin_c');
select lives_ok($$select public.leave_organization(tests.fx('org'))$$, 'leave_organization works');
select tests.act_as('postgres');
select is(pg_temp.state('conn_c'), 'revoked+token+pending', 'left: revoked with a pending revocation');
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('admin_b');
select is(pg_temp.state('conn_b'), 'revoked+token+pending', 'membership deleted in SQL: likewise');

-- Deleted through the Auth admin API: in every org, queued once each
-- (the user's trigger, then their memberships' cascade).
delete from auth.users where id = tests.fx('admin_d');
select is(pg_temp.state('conn_d') || ' ' || pg_temp.state('conn_d2'), 'revoked+token+pending revoked+token+pending',
  'user deleted: their connections in both orgs wait for their revocation');
select is((select count(*)::int from private.calendar_grant_revocations where connection_id in (tests.fx('conn_d'), tests.fx('conn_d2'))), 2,
  'user deleted: one revocation per connection');
select is(pg_temp.state('conn_owner'), 'connected+token', 'the owner''s own connection is untouched throughout');

-- ---------------------------------------------------------------------------
-- 2. The pass's claim: listed, exclusive, counted.
-- ---------------------------------------------------------------------------

select is(
  (select schedule || ' | ' || command from cron.job where jobname = 'revoke-calendar-grants'),
  '* * * * * | select private.request_calendar_grant_revocations()', 'the job looks every minute');
select ok(private.request_calendar_grant_revocations() >= 5, 'the job finds the revocations due');

select tests.act_as('service_role');
create temporary table claimed as
  select * from private.claim_due_calendar_grant_revocations(100, 120);
select tests.act_as('postgres');
select is(
  (select provider || ' ' || account_subject || ' ' || account_email || ' ' || attempts from claimed where connection_id = tests.fx('conn_a')),
  'google sub-a@grants262.test a@grants262.test 1', 'the claim lists a revocation with its account, attempt 1 counted');
select ok(
  (select count(*) from claimed where connection_id in (tests.fx('conn_a'), tests.fx('conn_b'), tests.fx('conn_c'), tests.fx('conn_d'), tests.fx('conn_d2'))) = 5
  and not exists (select 1 from claimed where connection_id = tests.fx('conn_owner')),
  'every leaver''s connection is listed, no live one');
select ok((pg_temp.revocation('conn_a')).next_attempt_at > now() + interval '100 seconds', 'a claimed revocation is held for the lease');
select tests.act_as('service_role');
select is(
  (select count(*)::int from private.claim_due_calendar_grant_revocations(100, 120)
   where connection_id in (tests.fx('conn_a'), tests.fx('conn_b'), tests.fx('conn_c'), tests.fx('conn_d'), tests.fx('conn_d2'))),
  0, 'a second pass does not take what the first holds');

-- ---------------------------------------------------------------------------
-- 3. Finishing: retried with backoff, deleted when done, deleted anyway at the fifth failure.
-- ---------------------------------------------------------------------------

select is(private.finish_calendar_grant_revocation(tests.fx('conn_a'), 'Google revoke failed (503)'), 'pending',
  'a failed attempt is retried');
select tests.act_as('postgres');
select ok((pg_temp.revocation('conn_a')).next_attempt_at = now() + interval '1 minute'
  and (pg_temp.revocation('conn_a')).last_error = 'Google revoke failed (503)',
  'the first failure waits a minute and keeps the error');
select is(pg_temp.state('conn_a'), 'revoked+token+pending', 'the connection and its tokens stay for the retry');

select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_c'), null), 'deleted', 'a revoked grant: done');
select tests.act_as('postgres');
select is(pg_temp.state('conn_c'), 'gone', 'the connection is deleted with its tokens');
select ok(exists (
  select 1 from public.audit_log a
  where a.table_name = 'calendar_connections' and a.record_id = tests.fx('conn_c')::text and a.action = 'delete'
), 'the deletion is audited');

update private.calendar_grant_revocations set attempts = 5 where connection_id = tests.fx('conn_b');
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_b'), 'Google revoke failed (503)'), 'given_up',
  'the fifth failure gives up');
select tests.act_as('postgres');
select is(pg_temp.state('conn_b'), 'gone', 'and deletes the connection anyway');
select ok(exists (
  select 1 from public.audit_log a
  where a.table_name = 'calendar_connections' and a.record_id = tests.fx('conn_b')::text and a.action = 'update'
    and a.new_values ->> 'status_reason' like 'the member who connected it left the organization; the grant could not be revoked at the provider (5 attempts, last: Google revoke failed (503))%'
), 'the reason is recorded (audited)');
select tests.act_as('service_role');
select is(private.finish_calendar_grant_revocation(tests.fx('conn_b'), null), null, 'a revocation already finished is gone');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 4. Rejoining does not resurrect; connecting again makes a new connection.
-- ---------------------------------------------------------------------------

select tests.add_member(tests.fx('org'), tests.fx('admin_a'), 'admin');
select is(pg_temp.state('conn_a'), 'revoked+token+pending', 'rejoined: the old connection stays revoked');
select tests.act_as('service_role');
select tests.remember('conn_a_new', private.save_calendar_connection(tests.fx('org'), tests.fx('admin_a'), null, 'google',
  'a@grants262.test', 'primary', '{}', 'v1.sealed-again', now() + interval '1 hour', 'sub-a@grants262.test'));
select tests.act_as('postgres');
select ok(tests.fx('conn_a_new') <> tests.fx('conn_a') and pg_temp.state('conn_a') = 'gone' and pg_temp.state('conn_a_new') = 'connected+token',
  'connected again: a new connection; the revoked one and its revocation are gone (the grant is the new one''s)');

-- ---------------------------------------------------------------------------
-- 5. Who may call what.
-- ---------------------------------------------------------------------------

select ok(
  has_function_privilege('service_role', 'private.claim_due_calendar_grant_revocations(integer, integer)', 'execute')
  and has_function_privilege('service_role', 'private.finish_calendar_grant_revocation(uuid, text)', 'execute')
  and not has_function_privilege('authenticated', 'private.claim_due_calendar_grant_revocations(integer, integer)', 'execute')
  and not has_function_privilege('authenticated', 'private.finish_calendar_grant_revocation(uuid, text)', 'execute')
  and not has_function_privilege('anon', 'private.finish_calendar_grant_revocation(uuid, text)', 'execute'),
  'the pass''s functions are the service role''s');
select ok(
  not has_table_privilege('service_role', 'private.calendar_grant_revocations', 'select')
  and not has_table_privilege('authenticated', 'private.calendar_grant_revocations', 'select')
  and not has_function_privilege('service_role', 'private.request_calendar_grant_revocations()', 'execute'),
  'the pending revocations are reached only through those functions');

select * from finish();
rollback;
