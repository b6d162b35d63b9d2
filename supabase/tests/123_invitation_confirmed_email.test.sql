-- Invitations need a confirmed e-mail address
-- (supabase/migrations/20261123004500_invitation_confirmed_email_and_settings_ranges.sql):
-- accept_invitation compares the invitation's e-mail with the caller's
-- auth.users row, not with the JWT's e-mail claim, and refuses (42501) while
-- that address is unconfirmed, so signing up with someone else's address is
-- not enough to join their organization. A refused call changes nothing; the
-- token still works once the address is confirmed.
--
-- Unconfirmed users are made by clearing email_confirmed_at (tests.create_user
-- confirms, as Supabase Auth does with confirmations off). Calls as the
-- acting user, state read as postgres, tokens in transaction-local settings.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

create function pg_temp.tok(name text) returns text language sql stable
as $$ select pg_catalog.current_setting('fx.' || name) $$;
grant execute on function pg_temp.tok(text) to anon, authenticated, service_role;

-- Invites as the owner; keeps the id as a fixture and the token as fx.<name>.
create function pg_temp.invite(email text, role public.org_role, name text) returns void
language plpgsql as $$
begin
  perform tests.act_as('owner');
  perform tests.remember(name, i.id), set_config('fx.' || name, i.token, true)
  from public.invite_member(tests.fx('org'), email, role) i;
  perform tests.clear_authentication();
end;
$$;

-- An invitation, its token and the org's members, read as postgres: what a refused call must leave as it was.
create function pg_temp.state(name text, user_name text) returns text language sql stable
as $$
  select concat_ws(' / ',
    case when i.accepted_at is not null then 'accepted' when i.revoked_at is not null then 'revoked' else 'pending' end,
    'accepted_by ' || coalesce(i.accepted_by::text, 'nobody'),
    'token ' || case when t.token_hash = sha256(convert_to(pg_temp.tok(name), 'UTF8')) then 'same' else 'changed' end,
    'member ' || coalesce((select m.role::text from public.memberships m
                           where m.org_id = i.org_id and m.user_id = tests.fx(user_name)), 'no'))
  from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id
  where i.id = tests.fx(name)
$$;

select tests.remember('owner', tests.create_user('owner@confirm.test'));
select tests.remember('org', tests.create_org('confirm-org', tests.fx('owner')));
-- The attacker signed up with the victim's address and never confirmed it.
select tests.remember('squatter', tests.create_user('victim@confirm.test'));
update auth.users set email_confirmed_at = null where id = tests.fx('squatter');
select tests.remember('mallory', tests.create_user('mallory@confirm.test'));
select tests.remember('mixed', tests.create_user('mixed.case@confirm.test'));

select isnt(
  (select email_confirmed_at from auth.users where id = tests.fx('owner')), null,
  'tests.create_user: users are created with a confirmed e-mail address, as Supabase Auth does with confirmations off'
);

-- ===========================================================================
-- An unconfirmed address cannot accept.
-- ===========================================================================

select pg_temp.invite('victim@confirm.test', 'admin', 'inv_victim');

select tests.act_as('squatter');
select is(auth.email(), 'victim@confirm.test', 'the squatter''s JWT carries the invited address');
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('inv_victim'))$$,
  '42501', 'confirm your e-mail address before accepting an invitation',
  'accept_invitation: an unconfirmed e-mail address equal to the invitation''s is refused (42501)'
);
select throws_ok(
  $$select private.accept_invitation(pg_temp.tok('inv_victim'))$$,
  '42501', 'confirm your e-mail address before accepting an invitation',
  'accept_invitation: the private function refuses it too'
);
select tests.act_as('postgres');
select is(
  pg_temp.state('inv_victim', 'squatter'), 'pending / accepted_by nobody / token same / member no',
  'accept_invitation: the refused calls changed nothing (pending, same token, no membership)'
);
select is(
  (select count(*)::int from public.audit_log a
   where a.org_id = tests.fx('org') and a.table_name in ('invitations', 'memberships') and a.action <> 'insert'),
  0,
  'accept_invitation: and audited nothing'
);

-- Once the address is confirmed, the same token works.
select tests.act_as('postgres');
update auth.users set email_confirmed_at = now() where id = tests.fx('squatter');
select tests.act_as('squatter');
select lives_ok(
  $$select public.accept_invitation(pg_temp.tok('inv_victim'))$$,
  'accept_invitation: after confirming the address, the invitee accepts with the same token'
);
select tests.act_as('postgres');
select is(
  pg_temp.state('inv_victim', 'squatter'), 'accepted / accepted_by ' || tests.fx('squatter') || ' / token same / member admin',
  'accept_invitation: the confirmed invitee joined with the invited role'
);

-- ===========================================================================
-- The auth.users row decides, not the JWT's e-mail claim.
-- ===========================================================================

select pg_temp.invite('boss@confirm.test', 'admin', 'inv_boss');

-- A token whose e-mail claim is the invited address (minted before an e-mail
-- change, or by anything that sets claims) for a user whose address is another.
select tests.act_as('mallory');
select set_config('request.jwt.claims',
  (current_setting('request.jwt.claims')::jsonb || '{"email": "boss@confirm.test"}')::text, true) is not null as claims;
select is(auth.email(), 'boss@confirm.test', 'mallory''s claims carry the invited address');
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('inv_boss'))$$,
  '42501', 'this invitation is for another e-mail address',
  'accept_invitation: an e-mail claim that is not the user''s address is refused (42501)'
);
select tests.act_as('postgres');
select is(
  pg_temp.state('inv_boss', 'mallory'), 'pending / accepted_by nobody / token same / member no',
  'accept_invitation: mallory''s refused call changed nothing'
);

-- An e-mail address Supabase Auth holds in another case still matches (as before).
select pg_temp.invite('mixed.case@confirm.test', 'member', 'inv_mixed');
select tests.act_as('postgres');
update auth.users set email = 'Mixed.Case@Confirm.TEST' where id = tests.fx('mixed');
select tests.act_as('mixed');
select lives_ok(
  $$select public.accept_invitation(pg_temp.tok('inv_mixed'))$$,
  'accept_invitation: the comparison with the user''s address ignores case'
);
select tests.act_as('postgres');
select is(
  pg_temp.state('inv_mixed', 'mixed'), 'accepted / accepted_by ' || tests.fx('mixed') || ' / token same / member member',
  'accept_invitation: the mixed-case user joined'
);

-- Unconfirmed and for another address: the address is what is reported.
select pg_temp.invite('other@confirm.test', 'member', 'inv_other');
update auth.users set email_confirmed_at = null where id = tests.fx('mallory');
select tests.act_as('mallory');
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('inv_other'))$$,
  '42501', 'this invitation is for another e-mail address',
  'accept_invitation: an unconfirmed user with another address is told it is for another address'
);

select * from finish();
rollback;
