-- 20261123013900: a used OAuth state is given back (the callback may be loaded again) only by the callback that
-- used it, identified by its used_at, the now() of the consuming transaction, and only while unexpired; the
-- service role only.
--
-- One transaction: now() is one instant throughout, so "another attempt" is a used_at set by hand.
begin;
create extension if not exists pgtap with schema extensions;

select plan(15);

select tests.remember('owner', tests.create_user('owner@given-back312.test'));
select tests.remember('org', tests.create_org('given-back312', tests.fx('owner')));

create function pg_temp.used_at(state uuid) returns timestamptz language sql stable as $$
  select s.used_at from private.calendar_oauth_states s where s.jti = state
$$;

select tests.act_as('owner');
select tests.remember('state', public.begin_calendar_connection(tests.fx('org'), 'google', repeat('v312-', 9)));
select tests.remember('unused', public.begin_calendar_connection(tests.fx('org'), 'microsoft', repeat('v312-', 9)));
select tests.remember('expiring', public.begin_calendar_connection(tests.fx('org'), 'google', repeat('v312-', 9)));

select throws_ok(
  $$select private.give_back_calendar_oauth_state(tests.fx('state'), now())$$,
  '42501', 'permission denied for function give_back_calendar_oauth_state',
  'an org owner cannot give a state back'
);
select tests.act_as('anon');
select throws_ok(
  $$select private.give_back_calendar_oauth_state(tests.fx('state'), now())$$,
  '42501', 'permission denied for function give_back_calendar_oauth_state',
  'nor can anon'
);

select tests.act_as('service_role');
select lives_ok($$select * from private.consume_calendar_oauth_state(tests.fx('state'))$$, 'the callback uses the state');
select tests.act_as('postgres');
select is(pg_temp.used_at(tests.fx('state')), now(),
  'consume marks it used at its transaction''s now(), which the callback hands back as the attempt');

-- Another attempt's marking is not given back.
select tests.act_as('service_role');
select is(private.give_back_calendar_oauth_state(tests.fx('state'), now() - interval '1 second'), false,
  'a used_at that is not the state''s gives nothing back');
select tests.act_as('postgres');
select is(pg_temp.used_at(tests.fx('state')), now(), '... and the state stays used');

select tests.act_as('service_role');
select is(private.give_back_calendar_oauth_state(tests.fx('state'), now()), true, 'the attempt that used it gives it back');
select tests.act_as('postgres');
select is(pg_temp.used_at(tests.fx('state')), null, '... unused again');
select tests.act_as('service_role');
select results_eq(
  $$select org_id, provider from private.consume_calendar_oauth_state(tests.fx('state'))$$,
  $$values (tests.fx('org'), 'google')$$,
  'the same callback then uses it again'
);
select throws_ok(
  $$select * from private.consume_calendar_oauth_state(tests.fx('state'))$$,
  '22023', 'this sign-in link was already used',
  '... once: a concurrent or later one still hears state_used'
);

select is(private.give_back_calendar_oauth_state(tests.fx('unused'), now()), false, 'an unused state has nothing to give back');
select is(private.give_back_calendar_oauth_state(gen_random_uuid(), now()), false, 'nor has an unknown one');

-- Used, then expired before the provider's failure was heard: stays used.
select lives_ok($$select * from private.consume_calendar_oauth_state(tests.fx('expiring'))$$, 'a third state is used');
select tests.act_as('postgres');
update private.calendar_oauth_states set expires_at = now() - interval '1 second' where jti = tests.fx('expiring');
select tests.act_as('service_role');
select is(private.give_back_calendar_oauth_state(tests.fx('expiring'), now()), false, 'an expired state is not given back');
select tests.act_as('postgres');
select is(pg_temp.used_at(tests.fx('expiring')), now(), '... and stays used');

select * from finish();
rollback;
