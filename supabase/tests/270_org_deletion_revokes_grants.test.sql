-- 20261123009800: deleting an org queues every connection of it that holds
-- tokens, with its account and sealed tokens, in
-- private.deleted_org_calendar_grants (no key to the org: it outlives it),
-- which the calendar function's pass claims exclusively, retries with
-- backoff (at most 5 attempts) and ends by deleting the row; the job deletes
-- rows past their bound. Whether another org's connection of the same
-- account keeps the grant is the pass's (TypeScript) decision, over HTTP in
-- tests/functions/calendar-leavers.test.ts.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

select tests.remember('owner', tests.create_user('owner@grants270.test'));
select tests.remember('admin', tests.create_user('admin@grants270.test'));
select tests.remember('leaver', tests.create_user('leaver@grants270.test'));
select tests.remember('org', tests.create_org('grants270-org', tests.fx('owner')));
select tests.remember('org2', tests.create_org('grants270-org2', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('leaver'), 'admin');
select tests.add_member(tests.fx('org2'), tests.fx('admin'), 'admin');

-- A connection made by the given user, with a token row when sealed is not null, as a connect leaves it.
create function pg_temp.connection(org text, who text, provider text, email text, sealed text) returns uuid language plpgsql as $$
declare
  id uuid;
begin
  insert into public.calendar_connections (org_id, provider, account_email, account_subject, external_calendar_id, connected_by)
  values (tests.fx(org), provider, email, 'sub-' || email, case when provider = 'google' then 'primary' end, tests.fx(who))
  returning calendar_connections.id into id;
  if sealed is not null then
    insert into private.calendar_tokens (connection_id, ciphertext) values (id, sealed);
  end if;
  return id;
end;
$$;

create function pg_temp.queued(name text) returns private.deleted_org_calendar_grants language sql as $$
  select * from private.deleted_org_calendar_grants g where g.connection_id = tests.fx(name)
$$;

select tests.remember('conn_google', pg_temp.connection('org', 'admin', 'google', 'g@grants270.test', 'v1.sealed-g270'));
select tests.remember('conn_ms', pg_temp.connection('org', 'admin', 'microsoft', 'm@grants270.test', 'v1.sealed-m270'));
select tests.remember('conn_none', pg_temp.connection('org', 'admin', 'google', 'none@grants270.test', null));
select tests.remember('conn_shared', pg_temp.connection('org', 'admin', 'google', 's@grants270.test', 'v1.sealed-s270'));
select tests.remember('conn_other', pg_temp.connection('org2', 'admin', 'google', 's@grants270.test', 'v1.sealed-o270'));
select tests.remember('conn_leaver', pg_temp.connection('org', 'leaver', 'google', 'l@grants270.test', 'v1.sealed-l270'));

-- The leaver's revocation failed twice: the next attempt is 4 minutes away.
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('leaver');
update private.calendar_grant_revocations
set attempts = 2, next_attempt_at = now() + interval '4 minutes', last_error = 'Google revoke failed (503)'
where connection_id = tests.fx('conn_leaver');

-- ---------------------------------------------------------------------------
-- 1. A failed deletion queues nothing; the deletion queues each connection with tokens.
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
select throws_ok($$select public.delete_organization(tests.fx('org'), 'not its name')$$, '22023', null,
  'a deletion with the wrong name is refused');
select tests.act_as('postgres');
select is((select count(*)::int from private.deleted_org_calendar_grants where org_id = tests.fx('org')), 0,
  'and queues nothing');

select tests.act_as('owner');
select lives_ok(
  $$select public.delete_organization(tests.fx('org'), (select name from public.organizations where id = tests.fx('org')))$$,
  'the owner deletes the org');
select tests.act_as('postgres');
select ok(not exists (select 1 from public.organizations where id = tests.fx('org'))
  and not exists (select 1 from public.calendar_connections where org_id = tests.fx('org'))
  and not exists (select 1 from private.calendar_tokens where connection_id in
    (tests.fx('conn_google'), tests.fx('conn_ms'), tests.fx('conn_shared'), tests.fx('conn_leaver')))
  and not exists (select 1 from private.calendar_grant_revocations where connection_id = tests.fx('conn_leaver')),
  'the org, its connections, their tokens and the leaver''s revocation are gone');
select is((select count(*)::int from private.deleted_org_calendar_grants where org_id = tests.fx('org')), 4,
  'one queued revocation per connection that held tokens');
-- The queue's own ids, for the service role's calls below.
create temporary table queued_ids as
  select g.connection_id, g.id from private.deleted_org_calendar_grants g where g.org_id = tests.fx('org');
grant select on queued_ids to service_role;
select is(
  (select provider || ' ' || account_subject || ' ' || account_email || ' ' || external_calendar_id || ' ' || ciphertext
     || ' ' || attempts || ' ' || (next_attempt_at <= now())::text || ' ' || (last_error is null)::text
   from pg_temp.queued('conn_google')),
  'google sub-g@grants270.test g@grants270.test primary v1.sealed-g270 0 true true',
  'the Google connection: its account, calendar and sealed tokens, due now');
select is((select provider || ' ' || ciphertext || ' ' || (external_calendar_id is null)::text from pg_temp.queued('conn_ms')),
  'microsoft v1.sealed-m270 true', 'the Microsoft connection likewise');
select is((select count(*)::int from private.deleted_org_calendar_grants where connection_id = tests.fx('conn_none')), 0,
  'a connection without tokens has nothing to revoke');
select ok((pg_temp.queued('conn_leaver')).attempts = 2
  and (pg_temp.queued('conn_leaver')).next_attempt_at = now() + interval '4 minutes'
  and (pg_temp.queued('conn_leaver')).last_error = 'Google revoke failed (503)',
  'a leaver''s pending revocation goes on with its attempts and schedule');
select is((select status || ' ' || ciphertext from public.calendar_connections c join private.calendar_tokens t on t.connection_id = c.id
           where c.id = tests.fx('conn_other')),
  'connected v1.sealed-o270', 'another org''s connection of the same account is untouched');
select is((select count(*)::int from pg_catalog.pg_constraint
           where conrelid = 'private.deleted_org_calendar_grants'::regclass and contype = 'f'), 0,
  'the queue has no foreign key (it outlives the org and takes no lock on its row)');

-- ---------------------------------------------------------------------------
-- 2. The pass's claim: listed, exclusive, counted.
-- ---------------------------------------------------------------------------

select cmp_ok(private.request_calendar_grant_revocations(), '>=', 3, 'the job finds them due');
select tests.act_as('service_role');
create temporary table claimed as
  select * from private.claim_due_deleted_org_calendar_grants(100, 120);
select tests.act_as('postgres');
select is(
  (select array_agg(connection_id order by connection_id) from claimed where org_id = tests.fx('org')),
  (select array_agg(id order by id) from unnest(array[tests.fx('conn_google'), tests.fx('conn_ms'), tests.fx('conn_shared')]) id),
  'the claim lists the due ones (the leaver''s waits its 4 minutes)');
select is(
  (select provider || ' ' || account_subject || ' ' || account_email || ' ' || external_calendar_id || ' ' || ciphertext || ' ' || attempts
   from claimed where connection_id = tests.fx('conn_google')),
  'google sub-g@grants270.test g@grants270.test primary v1.sealed-g270 1',
  'with the account, the calendar id and the sealed tokens, attempt 1 counted');
select ok((pg_temp.queued('conn_google')).next_attempt_at > now() + interval '100 seconds', 'a claimed one is held for the lease');
select tests.act_as('service_role');
select is((select count(*)::int from private.claim_due_deleted_org_calendar_grants(100, 120) where org_id = tests.fx('org')), 0,
  'a second pass does not take what the first holds');

-- ---------------------------------------------------------------------------
-- 3. Finishing: retried with backoff, deleted when done, deleted anyway at the fifth failure.
-- ---------------------------------------------------------------------------

select is(private.finish_deleted_org_calendar_grant((select id from queued_ids where connection_id = tests.fx('conn_google')), null), 'deleted',
  'a revoked grant: done');
select tests.act_as('postgres');
select ok(pg_temp.queued('conn_google') is null, 'its row, tokens and e-mail with it, is deleted');

select tests.act_as('service_role');
select is(private.finish_deleted_org_calendar_grant((select id from queued_ids where connection_id = tests.fx('conn_shared')), 'Google revoke failed (503)'),
  'pending',
  'a failed attempt is retried');
select tests.act_as('postgres');
select ok((pg_temp.queued('conn_shared')).next_attempt_at = now() + interval '1 minute'
  and (pg_temp.queued('conn_shared')).last_error = 'Google revoke failed (503)'
  and (pg_temp.queued('conn_shared')).ciphertext = 'v1.sealed-s270',
  'the first failure waits a minute and keeps the error and the tokens');

update private.deleted_org_calendar_grants set attempts = 5 where connection_id = tests.fx('conn_shared');
select tests.act_as('service_role');
select is(private.finish_deleted_org_calendar_grant((select id from queued_ids where connection_id = tests.fx('conn_shared')), 'Google revoke failed (503)'), 'given_up',
  'the fifth failure gives up');
select is(private.finish_deleted_org_calendar_grant((select id from queued_ids where connection_id = tests.fx('conn_shared')), null), null, 'and the row is gone');

-- ---------------------------------------------------------------------------
-- 4. The job bounds what stays: a fifth attempt never recorded, a day old.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
update private.deleted_org_calendar_grants set attempts = 5, next_attempt_at = now() - interval '1 second'
where connection_id = tests.fx('conn_leaver');
update private.deleted_org_calendar_grants set created_at = now() - interval '25 hours'
where connection_id = tests.fx('conn_ms');
select private.request_calendar_grant_revocations();
select is((select count(*)::int from private.deleted_org_calendar_grants where org_id = tests.fx('org')), 0,
  'the job deletes a row whose fifth attempt''s lease ran out and one a day old');

-- ---------------------------------------------------------------------------
-- 5. Who may call what.
-- ---------------------------------------------------------------------------

select ok(
  has_function_privilege('service_role', 'private.claim_due_deleted_org_calendar_grants(integer, integer)', 'execute')
  and has_function_privilege('service_role', 'private.finish_deleted_org_calendar_grant(uuid, text)', 'execute')
  and not has_function_privilege('authenticated', 'private.claim_due_deleted_org_calendar_grants(integer, integer)', 'execute')
  and not has_function_privilege('authenticated', 'private.finish_deleted_org_calendar_grant(uuid, text)', 'execute')
  and not has_function_privilege('anon', 'private.finish_deleted_org_calendar_grant(uuid, text)', 'execute')
  and not has_function_privilege('service_role', 'private.queue_deleted_org_calendar_grants()', 'execute'),
  'the pass''s functions are the service role''s');
select ok(
  not has_table_privilege('service_role', 'private.deleted_org_calendar_grants', 'select')
  and not has_table_privilege('authenticated', 'private.deleted_org_calendar_grants', 'select')
  and (select relrowsecurity from pg_catalog.pg_class where oid = 'private.deleted_org_calendar_grants'::regclass),
  'the queue is reached only through those functions (RLS on, no grants)');

select * from finish();
rollback;
