-- Team fixes (supabase/migrations/20261123004200_team_invitation_and_owner_fixes.sql):
-- 1. resend_invitation and revoke_invitation only for a role at or below the
--    caller's own (an admin resending an expired owner invitation got an
--    owner-level token);
-- 2. the last-owner trigger locks the organization row before counting
--    owners. PGlite runs one session, so the race itself (two owners leaving
--    at once) cannot run here: this file checks the rule's results and that
--    the trigger takes the lock;
-- 3. removing, or lowering the role of, a member revokes the pending
--    invitations they sent that they could no longer send.
--
-- Same conventions as 120_team.test.sql: calls as the acting user, state
-- read as postgres, ids and tokens in transaction-local settings.
begin;
create extension if not exists pgtap with schema extensions;

select plan(30);

create function pg_temp.fx(name text) returns uuid language sql stable
as $$ select pg_catalog.current_setting('fx.' || name)::uuid $$;
create function pg_temp.tok(name text) returns text language sql stable
as $$ select pg_catalog.current_setting('fx.' || name) $$;
grant execute on function pg_temp.fx(text), pg_temp.tok(text) to anon, authenticated, service_role;

-- An invitation's state, read as postgres: pending, revoked (by whom) or accepted.
create function pg_temp.inv_state(name text) returns text language sql stable
as $$
  select case
    when i.accepted_at is not null then 'accepted'
    when i.revoked_at is not null then 'revoked by ' || coalesce(
      (select split_part(u.email, '@', 1) from auth.users u where u.id = i.revoked_by), 'nobody')
    else 'pending'
  end
  from public.invitations i where i.id = pg_temp.fx(name)
$$;

-- Invites as the given user; keeps the id and token as fx.<name> and fx.tok_<name>.
create function pg_temp.invite(inviter text, org text, email text, role public.org_role, name text) returns void
language plpgsql as $$
begin
  perform tests.authenticate_as(pg_temp.fx(inviter));
  perform set_config('fx.' || name, i.id::text, true), set_config('fx.tok_' || name, i.token, true)
  from public.invite_member(pg_temp.fx(org), email, role) i;
  perform tests.clear_authentication();
end;
$$;

select set_config('fx.owner', tests.create_user('owner@fix.test')::text, true) is not null as fixture;
select set_config('fx.owner2', tests.create_user('owner2@fix.test')::text, true) is not null as fixture;
select set_config('fx.admin', tests.create_user('admin@fix.test')::text, true) is not null as fixture;
select set_config('fx.admin2', tests.create_user('admin2@fix.test')::text, true) is not null as fixture;
select set_config('fx.admin3', tests.create_user('admin3@fix.test')::text, true) is not null as fixture;
select set_config('fx.carol', tests.create_user('carol@fix.test')::text, true) is not null as fixture;
select set_config('fx.alt', tests.create_user('alt@evil.test')::text, true) is not null as fixture;
select set_config('fx.acme', tests.create_org('fix-acme', pg_temp.fx('owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('owner2'), 'owner');
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('admin'), 'admin');
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('admin2'), 'admin');
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('admin3'), 'admin');

-- ===========================================================================
-- 1. Resend and revoke: up to the caller's own role.
-- ===========================================================================

-- The review's scenario: an owner invites carol as owner; it expires; an
-- admin resends it for 30 days.
select pg_temp.invite('owner', 'acme', 'carol@fix.test', 'owner', 'inv_carol');
update public.invitations set expires_at = now() - interval '1 day' where id = pg_temp.fx('inv_carol');

select tests.authenticate_as(pg_temp.fx('admin'));
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_carol'), interval '30 days')$$,
  '42501', 'this invitation is for a role above your own (admin)',
  'resend_invitation: an admin cannot reissue an owner invitation (42501)'
);
select throws_ok(
  $$select * from public.revoke_invitation(pg_temp.fx('inv_carol'))$$,
  '42501', 'this invitation is for a role above your own (admin)',
  'revoke_invitation: an admin cannot revoke an owner invitation either (42501; the matrix: up to one''s own role)'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_at is null, send_count, expires_at < now(), token_hash = sha256(convert_to(pg_temp.tok('tok_inv_carol'), 'UTF8'))
    from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id where i.id = pg_temp.fx('inv_carol')$$,
  $$values (true, 1, true, true)$$,
  'resend_invitation / revoke_invitation: the refused calls changed nothing (pending, one send, still expired, same token)'
);

-- Nothing to accept: carol's token is still the expired one.
select tests.authenticate_as(pg_temp.fx('carol'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_inv_carol'))$$,
  '22023', 'this invitation has expired',
  'accept_invitation: carol cannot join as owner'
);
select tests.clear_authentication();
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('acme') and user_id = pg_temp.fx('carol')), 0,
  'accept_invitation: carol is not a member'
);

-- An owner resends it (the rule allows an equal role).
select tests.authenticate_as(pg_temp.fx('owner'));
select lives_ok(
  $$select set_config('fx.tok_inv_carol2', r.token, true) from public.resend_invitation(pg_temp.fx('inv_carol'), interval '30 days') r$$,
  'resend_invitation: an owner reissues an owner invitation'
);
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_carol'), 'pending', 'resend_invitation: the owner invitation is pending again');

-- An admin still resends and revokes invitations up to admin.
select pg_temp.invite('owner', 'acme', 'dave@fix.test', 'admin', 'inv_dave');
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_dave'))$$,
  'resend_invitation: an admin resends an admin invitation an owner sent'
);
select lives_ok(
  $$select * from public.revoke_invitation(pg_temp.fx('inv_dave'))$$,
  'revoke_invitation: an admin revokes an admin invitation an owner sent'
);
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_dave'), 'revoked by admin', 'revoke_invitation: revoked by the admin');

-- ===========================================================================
-- 3. A removed or demoted inviter's invitations.
-- ===========================================================================

-- The review's scenario: an admin invites alt@evil.test as admin, then is removed.
select pg_temp.invite('admin', 'acme', 'alt@evil.test', 'admin', 'inv_alt');
select pg_temp.invite('admin', 'acme', 'erin@fix.test', 'viewer', 'inv_erin');
select pg_temp.invite('admin2', 'acme', 'frank@fix.test', 'member', 'inv_frank');
-- An accepted and an already revoked invitation of the same admin stay as they are.
select pg_temp.invite('admin', 'acme', 'gone@fix.test', 'member', 'inv_gone');
select tests.authenticate_as(pg_temp.fx('admin'));
select public.revoke_invitation(pg_temp.fx('inv_gone')) is not null as fixture;
select tests.clear_authentication();
select set_config('fx.audit_before', coalesce(max(seq), 0)::text, true) is not null as fixture
from public.audit_log where org_id = pg_temp.fx('acme');

select tests.authenticate_as(pg_temp.fx('owner'));
select lives_ok(
  $$select public.remove_member(pg_temp.fx('acme'), pg_temp.fx('admin'))$$,
  'remove_member: the owner removes the admin'
);
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_alt'), 'revoked by owner', 'remove_member: the removed admin''s admin invitation is revoked, by the remover');
select is(pg_temp.inv_state('inv_erin'), 'revoked by owner', 'remove_member: removal revokes every pending invitation of the member, a viewer one too');
select is(pg_temp.inv_state('inv_frank'), 'pending', 'remove_member: another admin''s invitation stays pending');
select is(
  (select revoked_by from public.invitations where id = pg_temp.fx('inv_gone')), pg_temp.fx('admin'),
  'remove_member: an invitation revoked before keeps its revocation'
);
select results_eq(
  $$select a.actor_user_id, a.record_id, a.new_values ? 'revoked_at' from public.audit_log a
    where a.org_id = pg_temp.fx('acme') and a.table_name = 'invitations' and a.seq > current_setting('fx.audit_before')::bigint
    order by a.record_id$$,
  $$select pg_temp.fx('owner'), r, true from unnest(array[pg_temp.fx('inv_alt')::text, pg_temp.fx('inv_erin')::text]) r order by r$$,
  'remove_member: the revocations are audited (rows kept, an update each, by the owner)'
);
select tests.authenticate_as(pg_temp.fx('alt'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_inv_alt'))$$,
  '22023', 'this invitation was revoked',
  'accept_invitation: alt@evil.test cannot join through the removed admin''s invitation'
);
select tests.clear_authentication();

-- Leaving does the same; revoked by the member who left.
select pg_temp.invite('admin3', 'acme', 'gina@fix.test', 'member', 'inv_gina');
select tests.authenticate_as(pg_temp.fx('admin3'));
select public.leave_organization(pg_temp.fx('acme')) is not null as fixture;
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_gina'), 'revoked by admin3', 'leave_organization: the leaver''s pending invitation is revoked');

-- Demoted below the invitation's role: an owner made admin loses their owner
-- invitations, keeps those up to admin.
select pg_temp.invite('owner2', 'acme', 'hugo@fix.test', 'owner', 'inv_hugo');
select pg_temp.invite('owner2', 'acme', 'ivan@fix.test', 'admin', 'inv_ivan');
select tests.authenticate_as(pg_temp.fx('owner'));
select public.change_member_role(pg_temp.fx('acme'), pg_temp.fx('owner2'), 'admin') is not null as fixture;
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_hugo'), 'revoked by owner', 'change_member_role: an owner made admin loses their owner invitation');
select is(pg_temp.inv_state('inv_ivan'), 'pending', 'change_member_role: and keeps their admin invitation');

-- Demoted to a role without members.invite: every pending invitation goes.
select tests.authenticate_as(pg_temp.fx('owner'));
select public.change_member_role(pg_temp.fx('acme'), pg_temp.fx('admin2'), 'member') is not null as fixture;
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_frank'), 'revoked by owner', 'change_member_role: an admin made member (no members.invite) loses even a member invitation');

-- A promotion revokes nothing.
select tests.authenticate_as(pg_temp.fx('owner'));
select public.change_member_role(pg_temp.fx('acme'), pg_temp.fx('owner2'), 'owner') is not null as fixture;
select tests.clear_authentication();
select is(pg_temp.inv_state('inv_ivan'), 'pending', 'change_member_role: a promotion revokes nothing');

-- Whatever the path: deleting the inviter's user account.
select set_config('fx.admin4', tests.create_user('admin4@fix.test')::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('admin4'), 'admin');
select pg_temp.invite('admin4', 'acme', 'jane@fix.test', 'member', 'inv_jane');
delete from auth.users where id = pg_temp.fx('admin4');
select is(pg_temp.inv_state('inv_jane'), 'revoked by nobody', 'user deletion: the deleted inviter''s pending invitation is revoked');

-- Deleting the organization still works (its invitations go with it).
select set_config('fx.beta', tests.create_org('fix-beta', pg_temp.fx('owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('beta'), pg_temp.fx('admin3'), 'admin');
select pg_temp.invite('admin3', 'beta', 'kim@fix.test', 'member', 'inv_kim');
select lives_ok(
  $$delete from public.organizations where id = pg_temp.fx('beta')$$,
  'organization deletion: an org with a member''s pending invitation is deleted'
);
select is(
  (select count(*)::int from public.invitations where org_id = pg_temp.fx('beta')), 0,
  'organization deletion: its invitations are gone'
);

-- ===========================================================================
-- 2. The last owner, with the organization row locked.
-- ===========================================================================

select set_config('fx.gamma', tests.create_org('fix-gamma', pg_temp.fx('owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('gamma'), pg_temp.fx('owner2'), 'owner');

-- What the second of two owners leaving at once now sees, after the first commits.
select tests.authenticate_as(pg_temp.fx('owner2'));
select lives_ok(
  $$select public.leave_organization(pg_temp.fx('gamma'))$$,
  'last owner: one of two owners leaves'
);
select tests.authenticate_as(pg_temp.fx('owner'));
select throws_ok(
  $$select public.leave_organization(pg_temp.fx('gamma'))$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: the other cannot leave (23514)'
);
select tests.clear_authentication();

-- Both owners gone in one statement (each row's check sees the other gone).
select tests.add_member(pg_temp.fx('gamma'), pg_temp.fx('owner2'), 'owner');
select throws_ok(
  $$delete from public.memberships where org_id = pg_temp.fx('gamma')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: removing both owners at once is refused (23514)'
);
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('gamma') and role = 'owner'), 2,
  'last owner: both owners are still there'
);

-- The lock that serialises concurrent owner changes (not observable in one
-- session): the trigger locks the org row before counting the owners.
select matches(
  pg_get_functiondef('private.ensure_org_keeps_an_owner()'::regprocedure),
  'perform 1 from public\.organizations o where o\.id = old\.org_id for no key update;\s+if found\s+and not exists \(select 1 from public\.memberships m where m\.org_id = old\.org_id and m\.role = ''owner''\)',
  'last owner: the trigger locks the organization row, then counts the owners'
);

select * from finish();
rollback;
