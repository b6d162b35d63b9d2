-- 20261123010300: every path that drops a calendar grant's tokens queues
-- them in private.deleted_org_calendar_grants for the revocation pass (an
-- admin deleting a bot, a connection deleted in SQL, a connection request
-- expired, purged, given up or gone with its bot or org), but
-- delete_calendar_connection (after a revocation), a reconnect replacing a
-- revoked row (the same grant), an org's deletion (queued once, by its own
-- trigger) and the completion that turns a request into a connection. A
-- live connection request holds its account for the pass's "connected
-- elsewhere" check. The pass revoking a deleted bot's grant at Google is in
-- tests/functions/calendar-leavers.test.ts.
begin;
create extension if not exists pgtap with schema extensions;

select plan(23);

select tests.remember('owner', tests.create_user('owner@grants275.test'));
select tests.remember('admin', tests.create_user('admin@grants275.test'));
select tests.remember('leaver', tests.create_user('leaver@grants275.test'));
select tests.remember('stranger', tests.create_user('stranger@grants275.test'));
select tests.remember('org', tests.create_org('grants275-org', tests.fx('owner')));
select tests.remember('doomed_org', tests.create_org('grants275-doomed', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('leaver'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('stranger'), 'admin');
select tests.add_member(tests.fx('doomed_org'), tests.fx('admin'), 'admin');

insert into public.bots (org_id, name, slug) values (tests.fx('org'), 'Grants 275 bot', 'grants275-bot');
select tests.remember('bot', (select id from public.bots where slug = 'grants275-bot' and org_id = tests.fx('org')));

-- A connection made by the given user (for the bot when named), with a token row when sealed is not null.
create function pg_temp.connection(org text, who text, bot text, provider text, email text, sealed text) returns uuid
language plpgsql as $$
declare
  id uuid;
begin
  insert into public.calendar_connections (org_id, bot_id, provider, account_email, account_subject, external_calendar_id, connected_by)
  values (tests.fx(org), tests.fx(bot), provider, email, 'sub-' || email, case when provider = 'google' then 'primary' end, tests.fx(who))
  returning calendar_connections.id into id;
  if sealed is not null then
    insert into private.calendar_tokens (connection_id, ciphertext) values (id, sealed);
  end if;
  return id;
end;
$$;
-- Parks a connection request as the OAuth callback does (service role).
create function pg_temp.park(org text, starter text, bot text, email text) returns uuid language sql as $$
  select id from private.store_calendar_pending_connection(tests.fx(org), tests.fx(starter), tests.fx(bot), 'google', email,
    'sub-' || email, array['https://www.googleapis.com/auth/calendar.events'], 'v1.sealed-' || email, now() + interval '1 hour') $$;
create function pg_temp.queued(name text) returns setof private.deleted_org_calendar_grants language sql as $$
  select * from private.deleted_org_calendar_grants g where g.connection_id = tests.fx(name)
$$;
create function pg_temp.queued_count(name text) returns integer language sql as $$
  select count(*)::integer from private.deleted_org_calendar_grants g where g.connection_id = tests.fx(name)
$$;
grant execute on function pg_temp.park(text, text, text, text) to service_role;

select tests.remember('bot_google', pg_temp.connection('org', 'admin', 'bot', 'google', 'g@grants275.test', 'v1.sealed-g275'));
select tests.remember('bot_ms', pg_temp.connection('org', 'admin', 'bot', 'microsoft', 'm@grants275.test', 'v1.sealed-m275'));
select tests.remember('bot_none', pg_temp.connection('org', 'admin', 'bot', 'google', 'none@grants275.test', null));
select tests.remember('bot_leaver', pg_temp.connection('org', 'leaver', 'bot', 'google', 'l@grants275.test', 'v1.sealed-l275'));
select tests.remember('org_conn', pg_temp.connection('org', 'admin', null, 'google', 'o@grants275.test', 'v1.sealed-o275'));
select tests.act_as('service_role');
select tests.remember('bot_request', pg_temp.park('org', 'admin', 'bot', 'req-bot@grants275.test'));
select tests.act_as('postgres');

-- The leaver's revocation failed twice: the next attempt is 4 minutes away.
delete from public.memberships where org_id = tests.fx('org') and user_id = tests.fx('leaver');
update private.calendar_grant_revocations
set attempts = 2, next_attempt_at = now() + interval '4 minutes', last_error = 'Google revoke failed (503)'
where connection_id = tests.fx('bot_leaver');

-- ---------------------------------------------------------------------------
-- 1. An admin deletes a bot: its connections' and requests' grants are queued.
-- ---------------------------------------------------------------------------

select tests.act_as('admin');
select lives_ok($$delete from public.bots where id = tests.fx('bot')$$, 'the admin deletes the bot (through RLS)');
select tests.act_as('postgres');
select ok(not exists (select 1 from public.bots where id = tests.fx('bot'))
  and not exists (select 1 from public.calendar_connections where bot_id = tests.fx('bot'))
  and not exists (select 1 from private.calendar_pending_connections where id = tests.fx('bot_request')),
  'the bot, its connections and its connection request are gone');
select is(
  (select provider || ' ' || account_subject || ' ' || account_email || ' ' || external_calendar_id || ' ' || ciphertext
     || ' ' || attempts || ' ' || (next_attempt_at <= now())::text || ' ' || org_id::text
   from pg_temp.queued('bot_google')),
  'google sub-g@grants275.test g@grants275.test primary v1.sealed-g275 0 true ' || tests.fx('org')::text,
  'the Google connection is queued: its account, calendar and sealed tokens, due now');
select is((select provider || ' ' || ciphertext || ' ' || (external_calendar_id is null)::text from pg_temp.queued('bot_ms')),
  'microsoft v1.sealed-m275 true', 'the Microsoft connection likewise');
select is(pg_temp.queued_count('bot_none'), 0, 'a connection without tokens has nothing to revoke');
select is((select attempts || ' ' || (next_attempt_at = now() + interval '4 minutes')::text || ' ' || last_error
           from pg_temp.queued('bot_leaver')),
  '2 true Google revoke failed (503)', 'a leaver''s pending revocation goes on with its attempts and schedule');
select is(
  (select provider || ' ' || account_subject || ' ' || account_email || ' ' || external_calendar_id || ' ' || ciphertext
   from pg_temp.queued('bot_request')),
  'google sub-req-bot@grants275.test req-bot@grants275.test primary v1.sealed-req-bot@grants275.test',
  'the bot''s connection request is queued under the calendar its tokens are sealed for');
select is(pg_temp.queued_count('org_conn'), 0, 'the org''s own calendar is untouched');

-- ---------------------------------------------------------------------------
-- 2. Deletions whose grant is taken care of queue nothing; any other does.
-- ---------------------------------------------------------------------------

select tests.remember('disconnected', pg_temp.connection('org', 'admin', null, 'google', 'd@grants275.test', 'v1.sealed-d275'));
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('disconnected');
select is(private.delete_calendar_connection(tests.fx('disconnected')), true, 'a disconnect deletes the revoked connection');
select is(pg_temp.queued_count('disconnected'), 0, 'after its revocation: nothing queued');
select is(coalesce(current_setting('private.calendar_grant_kept', true), ''), '', 'and the setting does not outlive the call');

select tests.remember('replaced', pg_temp.connection('org', 'admin', null, 'google', 'r@grants275.test', 'v1.sealed-r275'));
update public.calendar_connections set status = 'revoked', status_reason = 'disconnected' where id = tests.fx('replaced');
select tests.remember('replacement', private.save_calendar_connection(tests.fx('org'), tests.fx('admin'), null, 'google',
  'r@grants275.test', null, '{}', 'v1.sealed-r275-new', null, 'sub-r@grants275.test'));
select ok(tests.fx('replacement') <> tests.fx('replaced')
  and not exists (select 1 from public.calendar_connections where id = tests.fx('replaced')),
  'a reconnect replaces the revoked row');
select is(pg_temp.queued_count('replaced'), 0, 'its grant is the new row''s: nothing queued');

select tests.remember('sql_deleted', pg_temp.connection('org', 'admin', null, 'google', 'x@grants275.test', 'v1.sealed-x275'));
delete from public.calendar_connections where id = tests.fx('sql_deleted');
select is((select ciphertext from pg_temp.queued('sql_deleted')), 'v1.sealed-x275', 'a connection deleted in SQL is queued');

-- ---------------------------------------------------------------------------
-- 3. Connection requests: expired, given up, purged queue; completed does not.
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('expired_request', pg_temp.park('org', 'admin', null, 'expired@grants275.test'));
select tests.remember('stolen_request', pg_temp.park('org', 'admin', null, 'stolen@grants275.test'));
select tests.remember('stale_request', pg_temp.park('org', 'admin', null, 'stale@grants275.test'));
select tests.remember('own_request', pg_temp.park('org', 'admin', null, 'own@grants275.test'));
select tests.act_as('postgres');
update private.calendar_pending_connections set expires_at = now() - interval '1 second'
where id in (tests.fx('expired_request'), tests.fx('stale_request'));

select is(private.calendar_account_connected_elsewhere('google', 'sub-own@grants275.test', 'own@grants275.test', null), true,
  'a live connection request holds its account for the pass');
select is(private.calendar_account_connected_elsewhere('google', 'sub-expired@grants275.test', 'expired@grants275.test', null), false,
  'an expired one does not');

select tests.act_as('service_role');
select is((select count(*)::int from private.complete_calendar_connection(tests.fx('expired_request'), tests.fx('admin'))), 0,
  'an expired request completes nothing');
select is((select count(*)::int from private.complete_calendar_connection(tests.fx('stolen_request'), tests.fx('stranger'))), 0,
  'another user''s attempt completes nothing');
select is((select count(*)::int from private.complete_calendar_connection(tests.fx('own_request'), tests.fx('admin'))), 1,
  'the starting user completes theirs');
select tests.act_as('postgres');
select cmp_ok(private.purge_calendar_pending_connections(), '>=', 1, 'the purge (pg_cron) deletes the stale request');
select is(
  (select array_agg(account_email || ' ' || ciphertext order by account_email) from private.deleted_org_calendar_grants
   where connection_id in (tests.fx('expired_request'), tests.fx('stolen_request'), tests.fx('stale_request'))),
  array['expired@grants275.test v1.sealed-expired@grants275.test', 'stale@grants275.test v1.sealed-stale@grants275.test',
        'stolen@grants275.test v1.sealed-stolen@grants275.test'],
  'the expired, given-up and purged requests are queued with their sealed tokens');
select is(pg_temp.queued_count('own_request'), 0, 'the completed one is not: its tokens are the connection''s');

-- ---------------------------------------------------------------------------
-- 4. An org's deletion: each connection queued once, its requests too.
-- ---------------------------------------------------------------------------

select tests.remember('doomed_conn', pg_temp.connection('doomed_org', 'admin', null, 'google', 'doomed@grants275.test', 'v1.sealed-z275'));
select tests.act_as('service_role');
select tests.remember('doomed_request', pg_temp.park('doomed_org', 'admin', null, 'doomed-req@grants275.test'));
select tests.act_as('owner');
select public.delete_organization(tests.fx('doomed_org'), (select name from public.organizations where id = tests.fx('doomed_org')));
select tests.act_as('postgres');
select is(pg_temp.queued_count('doomed_conn') || ' ' || pg_temp.queued_count('doomed_request'), '1 1',
  'the org''s connection is queued once (by the org''s trigger), its request by its own');

select * from finish();
rollback;
