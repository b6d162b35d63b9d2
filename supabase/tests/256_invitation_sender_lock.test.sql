-- An invitation's sender keeps their role until it is stored
-- (20261123008400_voice_ids_platform_owned.sql, part 2): invite_member and
-- resend / revoke (pending_invitation) lock the caller's membership row FOR
-- SHARE before reading the role, so a concurrent removal or demotion waits
-- for the invitation and its trigger (revoke_invitations_of_former_inviter)
-- sees it.
--
-- PGlite runs one session, so the race itself cannot run here. What this file
-- shows: the caller's membership row carries this transaction's row lock
-- right after each call (xmax, unset before), no other member's row does;
-- the lock is FOR SHARE (which a role update, FOR NO KEY UPDATE, conflicts
-- with; FOR KEY SHARE would not) and is taken before the role is read (the
-- definitions); and the same transaction can still demote the sender, whose
-- invitation is then revoked.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

-- Whether this transaction holds a row lock on the user's membership of the
-- org (the row's xmax is this transaction's id; 0 when nobody locked it).
create function pg_temp.locked_by_us(org uuid, member uuid)
returns boolean
language sql
as $$
  select m.xmax::text = (pg_catalog.txid_current() % 4294967296)::text
  from public.memberships m where m.org_id = org and m.user_id = member
$$;

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@invite-lock-256.test')),
  ('admin', tests.create_user('admin@invite-lock-256.test')),
  ('admin2', tests.create_user('admin2@invite-lock-256.test')),
  ('outsider', tests.create_user('outsider@invite-lock-256.test'));
select tests.remember('org', tests.create_org('invite-lock-256', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('admin2'), 'admin');

select is(
  (select count(*)::int from public.memberships m where m.org_id = tests.fx('org') and m.xmax <> '0'::xid), 0,
  'before: no membership row of the org is locked'
);

-- invite_member
select tests.act_as('admin');
select tests.remember('inv', i.id) from public.invite_member(tests.fx('org'), 'carol@invite-lock-256.test', 'admin') i;
select tests.act_as('postgres');
select ok(pg_temp.locked_by_us(tests.fx('org'), tests.fx('admin')), 'invite_member: the sender''s membership row is locked');
select ok(not pg_temp.locked_by_us(tests.fx('org'), tests.fx('owner')) and not pg_temp.locked_by_us(tests.fx('org'), tests.fx('admin2')),
  'invite_member: no other member''s row is');

-- resend_invitation (another caller, whose row is not locked yet)
select tests.act_as('owner');
-- Called outright: lives_ok would run it in a subtransaction, whose own id the lock would carry.
select count(*) from public.resend_invitation(tests.fx('inv'));
select tests.act_as('postgres');
select is((select send_count from public.invitations where id = tests.fx('inv')), 2, 'resend_invitation: an owner resent it');
select ok(pg_temp.locked_by_us(tests.fx('org'), tests.fx('owner')), 'resend_invitation: the resender''s membership row is locked');
select ok(not pg_temp.locked_by_us(tests.fx('org'), tests.fx('admin2')), 'resend_invitation: not an onlooker''s');

-- revoke_invitation goes through the same check
select tests.act_as('admin2');
select count(*) from public.revoke_invitation(tests.fx('inv'));
select tests.act_as('postgres');
select ok((select revoked_at is not null from public.invitations where id = tests.fx('inv')), 'revoke_invitation: another admin revoked it');
select ok(pg_temp.locked_by_us(tests.fx('org'), tests.fx('admin2')), 'revoke_invitation: the caller''s membership row is locked');

-- A non-member is still refused as before (no row to lock).
select tests.act_as('outsider');
select throws_ok(
  $$select * from public.invite_member(tests.fx('org'), 'dave@invite-lock-256.test', 'member')$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'invite_member: a non-member is refused (42501)'
);

-- The lock does not get in the way of its own transaction: the sender is
-- demoted after inviting, and the trigger revokes the invitation.
select tests.act_as('admin2');
select tests.remember('inv2', i.id) from public.invite_member(tests.fx('org'), 'erin@invite-lock-256.test', 'admin') i;
select tests.act_as('owner');
select lives_ok(
  $$select public.change_member_role(tests.fx('org'), tests.fx('admin2'), 'member')$$,
  'change_member_role: the sender is demoted in the same transaction'
);
select tests.act_as('postgres');
select ok((select revoked_at is not null from public.invitations where id = tests.fx('inv2')),
  'the demoted sender''s admin invitation is revoked');

-- The lock's strength and order (a second session would be needed to watch one wait).
select matches(
  pg_get_functiondef('private.lock_own_membership(uuid)'::regprocedure),
  'where m\.org_id = lock_own_membership\.org_id and m\.user_id = auth\.uid\(\)\s+for share;',
  'lock_own_membership: FOR SHARE (conflicts with the FOR NO KEY UPDATE of a role change, and with a delete)'
);
select matches(
  pg_get_functiondef('private.invite_member(uuid, text, public.org_role, interval)'::regprocedure),
  'begin\s+perform private\.lock_own_membership\(invite_member\.org_id\);\s+caller_role := private\.require_permission\(',
  'invite_member: the lock comes before the role is read'
);
select matches(
  pg_get_functiondef('private.pending_invitation(uuid)'::regprocedure),
  'perform private\.lock_own_membership\(invitation\.org_id\);\s+select \* into invitation from public\.invitations i where i\.id = pending_invitation\.invitation_id for update;[\s\S]*caller_role := private\.require_permission\(',
  'pending_invitation (resend, revoke): the membership lock, then the invitation''s, then the role'
);

select * from finish();
rollback;
