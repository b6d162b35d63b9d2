-- 20261123006600: a token refresh (update_calendar_tokens) and a refused grant
-- (mark_calendar_needs_reauth) act only on the token set they read: after a
-- reconnect stored newer tokens, a late refresh stores nothing and a late
-- refusal breaks nothing. Without the set read, both act as before.
begin;
create extension if not exists pgtap with schema extensions;

select plan(16);

insert into tests.fixtures (name, id) values ('owner', tests.create_user('owner@tokens237.test'));
select tests.remember('org', tests.create_org('tokens237-org', tests.fx('owner')));

create function pg_temp.save(ciphertext text) returns uuid language sql as $$
  select private.save_calendar_connection(tests.fx('org'), tests.fx('owner'), null, 'google', 'ann@tokens237.test', null,
    array['https://www.googleapis.com/auth/calendar.events'], ciphertext, now() + interval '1 hour', 'sub-237') $$;
create function pg_temp.stored() returns text language sql as
  $$ select ciphertext from private.calendar_tokens where connection_id = tests.fx('conn') $$;
create function pg_temp.status() returns text language sql as
  $$ select status from public.calendar_connections where id = tests.fx('conn') $$;
create function pg_temp.broken_events() returns bigint language sql as
  $$ select count(*) from public.events where org_id = tests.fx('org') and type = 'calendar.connection_broken' $$;
grant execute on function pg_temp.save(text), pg_temp.stored(), pg_temp.status(), pg_temp.broken_events() to public;

select is(has_function_privilege('service_role', 'private.update_calendar_tokens(uuid, text, timestamptz, text)', 'execute'),
  true, 'refresh: the service role may');
select is(has_function_privilege('authenticated', 'private.update_calendar_tokens(uuid, text, timestamptz, text)', 'execute'),
  false, 'refresh: signed-in users may not');
select is(has_function_privilege('authenticated', 'private.mark_calendar_needs_reauth(uuid, text, text)', 'execute'),
  false, 'reauth: signed-in users may not');

select tests.act_as('service_role');
select tests.remember('conn', pg_temp.save('v1.first'));

-- A refresh from the stored set stores its tokens.
select is(private.update_calendar_tokens(tests.fx('conn'), 'v1.refreshed', now() + interval '2 hours', 'v1.first'), true,
  'refresh: from the stored set, stored');
select tests.act_as('postgres');
select is(pg_temp.stored(), 'v1.refreshed', 'refresh: the new set is the stored one');

-- A reconnect lands while another refresh, started from v1.refreshed, is under way.
select tests.act_as('service_role');
select is(pg_temp.save('v1.reconnected'), tests.fx('conn'), 'reconnect: the same connection');
select is(private.update_calendar_tokens(tests.fx('conn'), 'v1.late', now() + interval '3 hours', 'v1.refreshed'), false,
  'refresh: started from a set replaced meanwhile, not stored');
select tests.act_as('postgres');
select is(pg_temp.stored(), 'v1.reconnected', 'refresh: the reconnect''s tokens stay');
select is((select token_expires_at from public.calendar_connections where id = tests.fx('conn')), now() + interval '1 hour',
  'refresh: nor its expiry');

-- The old grant's refusal arrives after the reconnect.
select tests.act_as('service_role');
select is(private.mark_calendar_needs_reauth(tests.fx('conn'), 'invalid_grant', 'v1.refreshed'), false,
  'reauth: the refusal of a replaced set breaks nothing');
select tests.act_as('postgres');
select is(pg_temp.status(), 'connected', 'reauth: the reconnected calendar stays connected');
select is(pg_temp.broken_events(), 0::bigint, 'reauth: and the org is not told it broke');

-- The stored set's own refusal breaks it, once.
select tests.act_as('service_role');
select is(private.mark_calendar_needs_reauth(tests.fx('conn'), 'invalid_grant', 'v1.reconnected'), true,
  'reauth: the stored set refused, the calendar breaks');
select tests.act_as('postgres');
select is(pg_temp.broken_events(), 1::bigint, 'reauth: the org is told once');

-- Without the set read, as before: stored whatever is there.
select tests.act_as('service_role');
select is(private.update_calendar_tokens(tests.fx('conn'), 'v1.healed', now() + interval '1 hour'), true,
  'refresh: without replaces, stored');
select tests.act_as('postgres');
select is(pg_temp.status(), 'connected', 'refresh: and it heals needs_reauth');

select * from finish();
rollback;
