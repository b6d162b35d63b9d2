-- An invitation lasts 1 hour to 30 days, checked on the expiry it gets
-- (20261123013100_invitation_bounds.sql): an interval that compares as at
-- most 30 days but adds more (months) is refused by invite_member and
-- resend_invitation, and changes nothing; one too large to add to now() is
-- the same 22023, not an overflow.
begin;
create extension if not exists pgtap with schema extensions;

select plan(17);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@invitation-bounds-305.test')),
  ('admin', tests.create_user('admin@invitation-bounds-305.test'));
select tests.remember('org', tests.create_org('invitation-bounds-305', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');

-- Twelve months less 334 days compares as 26 days (a month counts 30) but
-- adds 31 or 32, whatever today is.
select ok(interval '12 mon -334 days' <= interval '30 days', 'the interval used compares as at most 30 days');
select ok(now() + interval '12 mon -334 days' > now() + interval '31 days' - interval '1 second',
  'and adds more than 30 days');

-- invite_member
select tests.act_as('admin');
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'months@invitation-bounds-305.test', 'member', interval '12 mon -334 days')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: months adding more than 30 days are refused (22023)'
);
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'huge@invitation-bounds-305.test', 'member', interval '1000000 years')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: a valid_for too large to add to now() is refused (22023, not 22008)'
);
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'null@invitation-bounds-305.test', 'member', null)$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: a null valid_for is refused (22023)'
);
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'past@invitation-bounds-305.test', 'member', interval '1 mon -40 days')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: a valid_for adding less than an hour is refused (22023)'
);
-- '1 mon' passes exactly when it adds at most 30 days (from a day of a 30-day month, or February).
select is(
  (select count(*)::int from public.invite_member(tests.fx('org'), 'month@invitation-bounds-305.test', 'member', interval '1 mon')),
  1, 'invite_member: ''1 mon'' passes when it adds at most 30 days'
) where now() + interval '1 mon' <= now() + interval '30 days'
union all
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'month@invitation-bounds-305.test', 'member', interval '1 mon')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: ''1 mon'' is refused when it adds 31 days'
) where now() + interval '1 mon' > now() + interval '30 days';
select tests.remember('inv_edge', i.id)
from public.invite_member(tests.fx('org'), 'edge@invitation-bounds-305.test', 'member', interval '30 days') i;
select tests.remember('inv_hour', i.id)
from public.invite_member(tests.fx('org'), 'hour@invitation-bounds-305.test', 'member', interval '1 hour') i;
select tests.act_as('postgres');
select is(
  (select count(*)::int from public.invitations
   where org_id = tests.fx('org') and email in ('months@invitation-bounds-305.test', 'huge@invitation-bounds-305.test',
                                                'null@invitation-bounds-305.test', 'past@invitation-bounds-305.test')),
  0, 'invite_member: the refused calls created no invitation'
);
select is((select expires_at from public.invitations where id = tests.fx('inv_edge')), now() + interval '30 days',
  'invite_member: 30 days is the longest, to the microsecond');
select is((select expires_at from public.invitations where id = tests.fx('inv_hour')), now() + interval '1 hour',
  'invite_member: 1 hour is the shortest');
select ok(
  (select bool_and(expires_at <= now() + interval '30 days') from public.invitations where org_id = tests.fx('org')),
  'no invitation of the org expires more than 30 days from now'
);

-- resend_invitation
select set_config('fx.edge_hash',
  (select encode(token_hash, 'hex') from private.invitation_tokens where invitation_id = tests.fx('inv_edge')), true);
select tests.act_as('owner');
select throws_ok(
  $$select * from public.resend_invitation(tests.fx('inv_edge'), interval '12 mon -334 days')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'resend_invitation: months adding more than 30 days are refused (22023)'
);
select throws_ok(
  $$select * from public.resend_invitation(tests.fx('inv_edge'), interval '1000000 years')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'resend_invitation: a valid_for too large to add to now() is refused (22023)'
);
select tests.act_as('postgres');
select results_eq(
  $$select i.expires_at, i.send_count, encode(t.token_hash, 'hex')
    from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id where i.id = tests.fx('inv_edge')$$,
  $$values (now() + interval '30 days', 1, current_setting('fx.edge_hash'))$$,
  'resend_invitation: the refused resends changed nothing (expiry, count, token)'
);
select tests.act_as('owner');
select is(
  (select r.expires_at from public.resend_invitation(tests.fx('inv_edge'), interval '2 hours') r), now() + interval '2 hours',
  'resend_invitation: a valid_for in range sets the expiry it gives'
);
select tests.act_as('postgres');
select is((select send_count from public.invitations where id = tests.fx('inv_edge')), 2, 'resend_invitation: and counts the send');

-- The helper is the definer functions' own: no client role may run it.
select ok(
  not has_function_privilege('authenticated', 'private.invitation_expiry(interval)', 'execute')
  and not has_function_privilege('anon', 'private.invitation_expiry(interval)', 'execute')
  and not has_function_privilege('service_role', 'private.invitation_expiry(interval)', 'execute'),
  'private.invitation_expiry: no grant to anon, authenticated or service_role'
);

select * from finish();
rollback;
