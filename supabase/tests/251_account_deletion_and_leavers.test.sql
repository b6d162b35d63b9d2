-- 20261123008200: deleting a user who joined by invitation works (their
-- accepted invitations go with them), a member who stops being one (removed,
-- left, deleted) loses the calendar connections they made in that org
-- (revoked at once; since 20261123008900 the row and its sealed tokens wait
-- for the calendar function to revoke the grant, see 262), and the
-- invoice job runs daily without making anything twice.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

-- ---------------------------------------------------------------------------
-- 1. Invited, accepted, deleted.
-- ---------------------------------------------------------------------------

select tests.remember('owner', tests.create_user('owner@leavers251.test'));
select tests.remember('joiner', tests.create_user('joiner@leavers251.test'));
select tests.remember('joiner2', tests.create_user('joiner2@leavers251.test'));
select tests.remember('org', tests.create_org('leavers251-org', tests.fx('owner')));

-- Invites as the owner and accepts as the invitee.
create function pg_temp.join(email text, joiner text) returns void language plpgsql as $$
declare
  token text;
begin
  perform tests.act_as('owner');
  select i.token into strict token from public.invite_member(tests.fx('org'), email, 'member') i;
  perform tests.act_as(joiner);
  perform public.accept_invitation(token);
  perform tests.act_as('postgres');
end;
$$;

create function pg_temp.remember_invitation(email text, name text) returns void language sql as $$
  select tests.remember(name, (select i.id from public.invitations i where i.email = remember_invitation.email))
$$;

grant execute on function pg_temp.join(text, text) to public;
select pg_temp.join('joiner@leavers251.test', 'joiner');
select pg_temp.remember_invitation('joiner@leavers251.test', 'inv_joiner');
select pg_temp.join('joiner2@leavers251.test', 'joiner2');
select pg_temp.remember_invitation('joiner2@leavers251.test', 'inv_joiner2');

select is(
  (select count(*)::int from public.invitations where id in (tests.fx('inv_joiner'), tests.fx('inv_joiner2')) and accepted_by is not null),
  2, 'fixture: both invitations accepted');

select tests.act_as('service_role');
select lives_ok($$select private.delete_user(tests.fx('joiner'))$$,
  'delete_user: a user who joined by invitation can be deleted');
select tests.act_as('postgres');
select is((select count(*)::int from auth.users where id = tests.fx('joiner')), 0, 'delete_user: the auth user is gone');
select is((select count(*)::int from public.invitations where id = tests.fx('inv_joiner')), 0,
  'delete_user: their accepted invitation (and e-mail) went with them');
select is((select count(*)::int from private.invitation_tokens where invitation_id = tests.fx('inv_joiner')), 0,
  'delete_user: and its token hash');

-- The Auth admin API deletes the auth.users row directly.
select lives_ok($$delete from auth.users where id = tests.fx('joiner2')$$,
  'auth.users delete (Auth admin API): a user who joined by invitation can be deleted');
select is((select count(*)::int from public.invitations where id = tests.fx('inv_joiner2')), 0,
  'auth.users delete: their accepted invitation went with them');
select is((select count(*)::int from public.memberships where org_id = tests.fx('org')), 1,
  'only the owner is left in the org');

-- ---------------------------------------------------------------------------
-- 2. Leavers' calendars.
-- ---------------------------------------------------------------------------

select tests.remember('admin_a', tests.create_user('admin-a@leavers251.test'));
select tests.remember('admin_b', tests.create_user('admin-b@leavers251.test'));
select tests.remember('admin_c', tests.create_user('admin-c@leavers251.test'));
select tests.remember('admin_d', tests.create_user('admin-d@leavers251.test'));
select tests.add_member(tests.fx('org'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_b'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_c'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin_d'), 'admin');
select tests.remember('org2', tests.create_org('leavers251-org2', tests.fx('owner')));
select tests.add_member(tests.fx('org2'), tests.fx('admin_d'), 'admin');

-- A connected calendar made by the given user, with a token row, as a connect leaves it.
create function pg_temp.connection(org text, who text, email text) returns uuid language plpgsql as $$
declare
  id uuid;
begin
  insert into public.calendar_connections (org_id, provider, account_email, external_calendar_id, connected_by)
  values (tests.fx(org), 'google', email, 'primary', tests.fx(who))
  returning calendar_connections.id into id;
  insert into private.calendar_tokens (connection_id, ciphertext) values (id, 'v1.sealed-' || email);
  return id;
end;
$$;

-- 'connected+token', 'gone', or the status and whether the tokens are still there.
create function pg_temp.state(name text) returns text language sql as $$
  select coalesce(
    (select c.status || case when exists (select 1 from private.calendar_tokens t where t.connection_id = c.id) then '+token' else '' end
     from public.calendar_connections c where c.id = tests.fx(name)),
    'gone')
$$;

select tests.remember('conn_a', pg_temp.connection('org', 'admin_a', 'a@leavers251.test'));
select tests.remember('conn_b', pg_temp.connection('org', 'admin_b', 'b@leavers251.test'));
select tests.remember('conn_c', pg_temp.connection('org', 'admin_c', 'c@leavers251.test'));
select tests.remember('conn_d', pg_temp.connection('org', 'admin_d', 'd@leavers251.test'));
select tests.remember('conn_d2', pg_temp.connection('org2', 'admin_d', 'd@leavers251.test'));
select tests.remember('conn_owner', pg_temp.connection('org', 'owner', 'owner@leavers251.test'));

select is(pg_temp.state('conn_a'), 'connected+token', 'fixture: a connected calendar with its tokens');

-- Removed by the owner.
select tests.act_as('owner');
select lives_ok($$select public.remove_member(tests.fx('org'), tests.fx('admin_a'))$$, 'remove_member works');
select tests.act_as('postgres');
select is(pg_temp.state('conn_a'), 'revoked+token', 'removed: their connection is revoked, its tokens kept for the revocation at the provider');
select is(pg_temp.state('conn_b'), 'connected+token', 'removed: another admin''s connection is untouched');
select ok(exists (
    select 1 from public.audit_log a
    where a.org_id = tests.fx('org') and a.table_name = 'calendar_connections' and a.record_id = tests.fx('conn_a')::text
      and a.action = 'update' and a.new_values ->> 'status' = 'revoked'
  ), 'removed: the revocation is audited');

-- Left of their own accord.
select tests.act_as('admin_c');
select lives_ok($$select public.leave_organization(tests.fx('org'))$$, 'leave_organization works');
select tests.act_as('postgres');
select is(pg_temp.state('conn_c'), 'revoked+token', 'left: their connection is revoked');

-- A demotion changes nothing (still a member); a membership deleted in SQL does.
update public.memberships set role = 'member' where org_id = tests.fx('org') and user_id = tests.fx('admin_b');
select is(pg_temp.state('conn_b'), 'connected+token', 'demoted: still a member, the connection stays');
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('admin_b');
select is(pg_temp.state('conn_b'), 'revoked+token', 'membership deleted in SQL: the connection is revoked');

-- Deleted through the Auth admin API: in every org, before connected_by is nulled.
delete from auth.users where id = tests.fx('admin_d');
select is(pg_temp.state('conn_d'), 'revoked+token', 'user deleted: their connection in one org is revoked');
select is(pg_temp.state('conn_d2'), 'revoked+token', 'user deleted: and in their other org');
select is(pg_temp.state('conn_owner'), 'connected+token', 'the owner''s own connection is untouched throughout');

-- Deleted through delete_user (memberships first).
select tests.remember('admin_e', tests.create_user('admin-e@leavers251.test'));
select tests.add_member(tests.fx('org'), tests.fx('admin_e'), 'admin');
select tests.remember('conn_e', pg_temp.connection('org', 'admin_e', 'e@leavers251.test'));
select tests.act_as('service_role');
select is(private.delete_user(tests.fx('admin_e')), true, 'delete_user: an admin with a calendar is deleted');
select tests.act_as('postgres');
select is(pg_temp.state('conn_e'), 'revoked+token', 'delete_user: their connection is revoked');

select is(has_function_privilege('service_role', 'private.disconnect_calendars_of_leaver(uuid, uuid)', 'execute'), false,
  'the disconnect of a leaver is for the triggers only');

-- ---------------------------------------------------------------------------
-- 4. The invoice job: daily, and a second run (any day) makes nothing new.
-- ---------------------------------------------------------------------------

-- Every 10 minutes from 02:00 to 06:50 since 20261123009500 (a run stops at
-- 100 s of hosted Supabase's 2-minute statement timeout; the next goes on).
select is((select schedule from cron.job where jobname = 'generate-invoices'), '*/10 2-6 * * *',
  'generate-invoices runs daily, every 10 minutes from 02:00 to 06:50');

-- An org on its plan since well before last month, not yet invoiced for it.
update public.subscriptions
set started_at = now() - interval '70 days', current_period_start = now() - interval '70 days',
    current_period_end = private.add_months_utc(now() - interval '70 days', 1)
where org_id = tests.fx('org') and status = 'active';

-- The job's command (a DO block) commits after each org, which this test's transaction cannot
-- (tests/stack/scheduler.test.ts runs it at the top level); these are its steps, in one transaction.
create function pg_temp.run_job() returns void language plpgsql as $$
begin
  perform private.roll_subscriptions();
  perform private.generate_invoices((date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date);
end;
$$;
create function pg_temp.billing_state() returns text language sql as $$
  select (select count(*) from public.invoices)::text || ' invoices, '
    || (select count(*) from public.invoice_lines)::text || ' lines, subscriptions '
    || (select coalesce(string_agg(s.id::text || s.status::text || s.current_period_start::text || s.current_period_end::text, ',' order by s.id), '')
        from public.subscriptions s)
$$;

-- As the job's user (postgres).
select pg_temp.run_job();
select is(
  (select count(*)::int from public.invoices
   where org_id = tests.fx('org') and period_start = (date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date),
  1, 'the job bills last month on any day of this one');
select tests.remember('org_sub', (select id from public.subscriptions where org_id = tests.fx('org') and status = 'active'));
select ok((select current_period_end > now() from public.subscriptions where id = tests.fx('org_sub')),
  'the job rolled the ended period first');

create temporary table billing_before as select pg_temp.billing_state() as state;
select pg_temp.run_job();
select is(pg_temp.billing_state(), (select state from billing_before),
  'a second run the same day makes no invoice, line or roll');
select is((select count(*)::int from public.invoices where period_start = date_trunc('month', now() at time zone 'UTC')::date), 0,
  'nothing is invoiced for the current, unfinished month');

select * from finish();
rollback;
