-- Team operations (supabase/migrations/20261123000400_team.sql): every rule
-- of the team RPCs, each with its attempted violation, and the state after a
-- refused call to show it changed nothing.
--
-- Calls are made as the acting user (tests.authenticate_as), exactly as
-- supabase-js `rpc()` would; state is inspected as postgres after
-- tests.clear_authentication(). Fixtures are created here, not taken from
-- seed.sql.
--
-- Ids and tokens are kept in transaction-local settings (`fx.<name>`), read
-- back with pg_temp.fx() / pg_temp.tok(), so they work whichever role runs.
begin;
create extension if not exists pgtap with schema extensions;

select plan(145);

create function pg_temp.fx(name text) returns uuid language sql stable
as $$ select pg_catalog.current_setting('fx.' || name)::uuid $$;
create function pg_temp.tok(name text) returns text language sql stable
as $$ select pg_catalog.current_setting('fx.' || name) $$;
grant execute on function pg_temp.fx(text), pg_temp.tok(text) to anon, authenticated, service_role;

-- A member's role, read as postgres (null when not a member).
create function pg_temp.role_of(org text, person text) returns public.org_role language sql stable
as $$ select m.role from public.memberships m where m.org_id = pg_temp.fx(org) and m.user_id = pg_temp.fx(person) $$;

-- ---------------------------------------------------------------------------
-- Fixtures: users. Orgs are created per section so the sections do not lean
-- on each other's leftovers.
-- ---------------------------------------------------------------------------

select set_config('fx.owner', tests.create_user('owner@team.test')::text, true) is not null as fixture;
select set_config('fx.admin', tests.create_user('admin@team.test')::text, true) is not null as fixture;
select set_config('fx.member', tests.create_user('member@team.test')::text, true) is not null as fixture;
select set_config('fx.viewer', tests.create_user('viewer@team.test')::text, true) is not null as fixture;
select set_config('fx.outsider', tests.create_user('outsider@team.test')::text, true) is not null as fixture;
select set_config('fx.other', tests.create_org('team-other', pg_temp.fx('outsider'))::text, true) is not null as fixture;

-- ===========================================================================
-- create_organization: the creator becomes the (only) owner.
-- ===========================================================================

select tests.authenticate_as(pg_temp.fx('owner'));
select lives_ok(
  $$select set_config('fx.acme', (select o.id::text from public.create_organization('Acme Inc', 'team-acme') o), true)$$,
  'create_organization: a signed-in user creates an organization'
);
select tests.clear_authentication();

select is(pg_temp.role_of('acme', 'owner'), 'owner'::public.org_role, 'create_organization: the creator is its owner');
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('acme')), 1,
  'create_organization: the creator is the only member'
);
select results_eq(
  $$select name, slug, created_by from public.organizations where id = pg_temp.fx('acme')$$,
  $$values ('Acme Inc'::text, 'team-acme'::text, pg_temp.fx('owner'))$$,
  'create_organization: name, slug and created_by are stored as given'
);

-- Without a slug, one is derived from the name with a random suffix.
select tests.authenticate_as(pg_temp.fx('owner'));
select matches(
  (select o.slug from public.create_organization('  Beta & Co  ') o),
  '^beta-co-[0-9a-f]{6}$',
  'create_organization: without a slug, a unique slug is derived from the (trimmed) name'
);

-- Invalid names and slugs: 22023, nothing created.
select throws_ok(
  $$select public.create_organization('   ', 'team-blank')$$,
  '22023', 'an organization name has 1 to 100 characters',
  'create_organization: a blank name is refused (22023)'
);
select throws_ok(
  $$select public.create_organization(repeat('x', 101), 'team-long')$$,
  '22023', 'an organization name has 1 to 100 characters',
  'create_organization: a name over 100 characters is refused (22023)'
);
select throws_ok(
  $$select public.create_organization('Bad', 'bad slug!')$$,
  '22023', 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens',
  'create_organization: a slug with invalid characters is refused (22023)'
);
select throws_ok(
  $$select public.create_organization('Short', 'ab')$$,
  '22023', 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens',
  'create_organization: a slug under 3 characters is refused (22023)'
);
select throws_ok(
  $$select public.create_organization('Dash', '-team-dash')$$,
  '22023', 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens',
  'create_organization: a slug starting with a hyphen is refused (22023)'
);

-- A taken slug: 23505, also when it differs only by case and spaces.
select throws_ok(
  $$select public.create_organization('Acme Again', 'team-acme')$$,
  '23505', 'the slug "team-acme" is taken',
  'create_organization: a taken slug is refused (23505)'
);
select throws_ok(
  $$select public.create_organization('Acme Again', '  TEAM-ACME ')$$,
  '23505', 'the slug "team-acme" is taken',
  'create_organization: a taken slug in other case and with spaces is refused (23505)'
);
select tests.clear_authentication();

select is(
  (select count(*)::int from public.organizations where created_by = pg_temp.fx('owner')), 2,
  'create_organization: the refused calls created no organization'
);

-- anon holds no EXECUTE on the RPC at all.
select tests.authenticate_as_anon();
select throws_ok(
  $$select public.create_organization('Anon Org', 'team-anon')$$,
  '42501', 'permission denied for function create_organization',
  'create_organization: anon cannot call it (42501, no EXECUTE)'
);
select tests.clear_authentication();
select is(
  (select count(*)::int from public.organizations where slug = 'team-anon'), 0,
  'create_organization: anon created nothing'
);

-- The rest of acme's team.
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('admin'), 'admin');
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('member'), 'member');
select tests.add_member(pg_temp.fx('acme'), pg_temp.fx('viewer'), 'viewer');

-- ===========================================================================
-- invite_member: admins invite with a role up to their own; the token is
-- returned once and stored only as a sha256 hash.
-- ===========================================================================

select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_member', i.id::text, true), set_config('fx.tok_member', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'New.Member@Team.test', 'member') i$$,
  'invite_member: an admin invites a member'
);
select lives_ok(
  $$select set_config('fx.inv_admin', i.id::text, true), set_config('fx.tok_admin', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'new.admin@team.test', 'admin') i$$,
  'invite_member: an admin invites an admin (their own role)'
);
select tests.clear_authentication();

select ok(left(pg_temp.tok('tok_member'), 4) = 'inv_' and left(pg_temp.tok('tok_admin'), 4) = 'inv_',
  'invite_member: tokens start with inv_');
select isnt(pg_temp.tok('tok_member'), pg_temp.tok('tok_admin'), 'invite_member: every invitation gets its own token');
select results_eq(
  $$select org_id, email, role, invited_by, send_count, accepted_at, revoked_at from public.invitations
    where id in (pg_temp.fx('inv_member'), pg_temp.fx('inv_admin')) order by role$$,
  $$values (pg_temp.fx('acme'), 'new.member@team.test'::text, 'member'::public.org_role, pg_temp.fx('admin'), 1, null::timestamptz, null::timestamptz),
           (pg_temp.fx('acme'), 'new.admin@team.test'::text, 'admin'::public.org_role, pg_temp.fx('admin'), 1, null::timestamptz, null::timestamptz)$$,
  'invite_member: pending invitations with the normalized e-mail, the role and the inviter'
);
select is(
  (select expires_at from public.invitations where id = pg_temp.fx('inv_member')), now() + interval '7 days',
  'invite_member: an invitation is valid for 7 days by default'
);

-- The token is not kept in plain text anywhere: not in the invitation, not
-- in the token table (only sha256(token)), not in the audit log.
select is(
  (select count(*)::int from public.invitations i
   where strpos(to_jsonb(i)::text, pg_temp.tok('tok_member')) > 0 or strpos(to_jsonb(i)::text, pg_temp.tok('tok_admin')) > 0),
  0, 'invite_member: no column of public.invitations holds the token'
);
select is(
  (select count(*)::int from private.invitation_tokens t
   where strpos(to_jsonb(t)::text, pg_temp.tok('tok_member')) > 0 or strpos(to_jsonb(t)::text, pg_temp.tok('tok_admin')) > 0
      or strpos(encode(t.token_hash, 'escape'), pg_temp.tok('tok_member')) > 0),
  0, 'invite_member: no column of private.invitation_tokens holds the token'
);
select is(
  (select token_hash from private.invitation_tokens where invitation_id = pg_temp.fx('inv_member')),
  sha256(convert_to(pg_temp.tok('tok_member'), 'UTF8')),
  'invite_member: private.invitation_tokens keeps sha256(token)'
);
select is(
  (select count(*)::int from public.audit_log a where strpos(to_jsonb(a)::text, pg_temp.tok('tok_member')) > 0), 0,
  'invite_member: the audit log does not hold the token either'
);

-- Nobody grants a role above their own: an admin cannot invite an owner.
select tests.authenticate_as(pg_temp.fx('admin'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'would.be.owner@team.test', 'owner')$$,
  '42501', 'you cannot grant a role above your own (admin)',
  'invite_member: an admin cannot invite an owner (42501)'
);

-- Members and viewers hold no members.invite; outsiders hold nothing here,
-- even though they own another organization.
select tests.authenticate_as(pg_temp.fx('member'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'by.member@team.test', 'viewer')$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'invite_member: a member cannot invite (42501)'
);
select tests.authenticate_as(pg_temp.fx('viewer'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'by.viewer@team.test', 'viewer')$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'invite_member: a viewer cannot invite (42501)'
);
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'by.outsider@team.test', 'member')$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'invite_member: the owner of another organization cannot invite (42501)'
);

-- At most one pending invitation per e-mail and organization (whatever the case).
select tests.authenticate_as(pg_temp.fx('admin'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), ' NEW.member@team.test ', 'viewer')$$,
  '23505', 'an invitation for new.member@team.test is already pending',
  'invite_member: a second pending invitation for the same e-mail is refused (23505)'
);
-- An existing member's e-mail.
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'Member@team.test', 'member')$$,
  '23505', 'member@team.test is already a member',
  'invite_member: inviting an existing member is refused (23505)'
);
-- A malformed e-mail address.
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'not-an-email', 'member')$$,
  '22023', 'not an e-mail address: not-an-email',
  'invite_member: a malformed e-mail address is refused (22023)'
);
-- valid_for out of 1 hour .. 30 days.
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'short@team.test', 'member', interval '59 minutes')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: valid_for under 1 hour is refused (22023)'
);
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'long@team.test', 'member', interval '31 days')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'invite_member: valid_for over 30 days is refused (22023)'
);
select tests.clear_authentication();

select is(
  (select count(*)::int from public.invitations where org_id = pg_temp.fx('acme')), 2,
  'invite_member: the refused calls created no invitation'
);
select is(
  (select role from public.invitations where id = pg_temp.fx('inv_member')), 'member'::public.org_role,
  'invite_member: the refused duplicate left the pending invitation as it was'
);

-- Once the pending invitation has expired, it no longer blocks a new one:
-- the new invitation is created and the expired one is marked revoked.
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_late', i.id::text, true), set_config('fx.tok_late', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'late@team.test', 'member') i$$,
  'invite_member: an admin invites late@'
);
select tests.clear_authentication();
update public.invitations set expires_at = now() - interval '1 second' where id = pg_temp.fx('inv_late');
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_late2', i.id::text, true), set_config('fx.tok_late2', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'late@team.test', 'viewer') i$$,
  'invite_member: after the pending invitation expired, inviting the same e-mail again works'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_at is not null, revoked_by from public.invitations where id = pg_temp.fx('inv_late')$$,
  $$values (true, pg_temp.fx('admin'))$$,
  'invite_member: the expired invitation is marked revoked'
);
select results_eq(
  $$select role, revoked_at is null, accepted_at is null from public.invitations where id = pg_temp.fx('inv_late2')$$,
  $$values ('viewer'::public.org_role, true, true)$$,
  'invite_member: the new invitation is the pending one'
);

-- ===========================================================================
-- accept_invitation: single-use, expires, bound to the invited e-mail.
-- ===========================================================================

select set_config('fx.new_member', tests.create_user('new.member@team.test')::text, true) is not null as fixture;
select set_config('fx.new_admin', tests.create_user('new.admin@team.test')::text, true) is not null as fixture;
select set_config('fx.late', tests.create_user('late@team.test')::text, true) is not null as fixture;

-- The invited user joins with the invited role.
select tests.authenticate_as(pg_temp.fx('new_member'));
select lives_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_member'))$$,
  'accept_invitation: the invited user accepts'
);
select tests.clear_authentication();
select is(pg_temp.role_of('acme', 'new_member'), 'member'::public.org_role, 'accept_invitation: the invitee joined with the invited role');
select results_eq(
  $$select accepted_at is not null, accepted_by from public.invitations where id = pg_temp.fx('inv_member')$$,
  $$values (true, pg_temp.fx('new_member'))$$,
  'accept_invitation: the invitation is marked accepted by the invitee'
);

-- Single use: the same token again is refused to anyone but its acceptor (who gets their membership back; 287).
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_member'))$$,
  '22023', 'this invitation was already used',
  'accept_invitation: a used token is refused (this invitation was already used)'
);
select tests.clear_authentication();
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('acme') and user_id = pg_temp.fx('new_member')), 1,
  'accept_invitation: reusing the token changed no membership'
);

-- A token for another e-mail address: refused, and the invitation stays
-- pending for the right person.
select tests.authenticate_as(pg_temp.fx('new_member'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_admin'))$$,
  '42501', 'this invitation is for another e-mail address',
  'accept_invitation: a token for another e-mail address is refused (42501)'
);
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_admin'))$$,
  '42501', 'this invitation is for another e-mail address',
  'accept_invitation: an outsider cannot use a token sent to someone else (42501)'
);
select tests.clear_authentication();
select results_eq(
  $$select accepted_at is null, pg_temp.role_of('acme', 'outsider') is null, pg_temp.role_of('acme', 'new_member')
    from public.invitations where id = pg_temp.fx('inv_admin')$$,
  $$values (true, true, 'member'::public.org_role)$$,
  'accept_invitation: the refused calls left the invitation pending and granted nothing'
);
select tests.authenticate_as(pg_temp.fx('new_admin'));
select lives_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_admin'))$$,
  'accept_invitation: the right person can still accept it'
);
select tests.clear_authentication();
select is(pg_temp.role_of('acme', 'new_admin'), 'admin'::public.org_role, 'accept_invitation: the invitee joined as admin');

-- A revoked invitation's token: the one revoked for expiring above.
select tests.authenticate_as(pg_temp.fx('late'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_late'))$$,
  '22023', 'this invitation was revoked',
  'accept_invitation: a revoked invitation''s token is refused'
);
select tests.clear_authentication();
select is(pg_temp.role_of('acme', 'late'), null::public.org_role, 'accept_invitation: the revoked token granted nothing');

-- An expired token.
update public.invitations set expires_at = now() - interval '1 second' where id = pg_temp.fx('inv_late2');
select tests.authenticate_as(pg_temp.fx('late'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_late2'))$$,
  '22023', 'this invitation has expired',
  'accept_invitation: an expired token is refused'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('acme', 'late') is null, accepted_at is null from public.invitations where id = pg_temp.fx('inv_late2')$$,
  $$values (true, true)$$,
  'accept_invitation: the expired token granted nothing'
);

-- An unknown token.
select tests.authenticate_as(pg_temp.fx('late'));
select throws_ok(
  $$select public.accept_invitation('inv_000000000000000000000000000000000000000000000000')$$,
  'PT404', 'invitation not found',
  'accept_invitation: an unknown token is refused (PT404)'
);
select throws_ok(
  $$select public.accept_invitation(null)$$,
  'PT404', 'invitation not found',
  'accept_invitation: a null token is refused (PT404)'
);
select tests.clear_authentication();

-- After resend_invitation, the previous token stops working and the new one works.
select set_config('fx.resent', tests.create_user('resent@team.test')::text, true) is not null as fixture;
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_resent', i.id::text, true), set_config('fx.tok_resent1', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'resent@team.test', 'member') i$$,
  'accept_invitation: an admin invites resent@'
);
select lives_ok(
  $$select set_config('fx.tok_resent2', r.token, true) from public.resend_invitation(pg_temp.fx('inv_resent')) r$$,
  'resend_invitation: an admin resends the invitation'
);
select tests.clear_authentication();
select isnt(pg_temp.tok('tok_resent2'), pg_temp.tok('tok_resent1'), 'resend_invitation: a new token is issued');
select results_eq(
  $$select send_count, token_hash = sha256(convert_to(pg_temp.tok('tok_resent2'), 'UTF8'))
    from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id where i.id = pg_temp.fx('inv_resent')$$,
  $$values (2, true)$$,
  'resend_invitation: send_count goes up and only the new token''s hash is kept'
);
select tests.authenticate_as(pg_temp.fx('resent'));
select throws_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_resent1'))$$,
  'PT404', 'invitation not found',
  'accept_invitation: the token sent before the resend no longer works (PT404)'
);
select lives_ok(
  $$select public.accept_invitation(pg_temp.tok('tok_resent2'))$$,
  'accept_invitation: the resent token works'
);
select tests.clear_authentication();
select is(pg_temp.role_of('acme', 'resent'), 'member'::public.org_role, 'accept_invitation: joined through the resent token');

-- ===========================================================================
-- revoke_invitation / resend_invitation: admins only; revoking twice is a
-- no-op; a revoked invitation is not resent; at most 10 sends.
-- ===========================================================================

select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_pending', i.id::text, true), set_config('fx.tok_pending', i.token, true)
    from public.invite_member(pg_temp.fx('acme'), 'pending@team.test', 'member') i$$,
  'revoke_invitation: an admin invites pending@'
);

-- A member can neither revoke nor resend.
select tests.authenticate_as(pg_temp.fx('member'));
select throws_ok(
  $$select public.revoke_invitation(pg_temp.fx('inv_pending'))$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'revoke_invitation: a member cannot revoke (42501)'
);
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_pending'))$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'resend_invitation: a member cannot resend (42501)'
);
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select public.revoke_invitation(pg_temp.fx('inv_pending'))$$,
  'PT404', 'invitation not found',
  'revoke_invitation: an outsider (another org''s owner) cannot revoke, and is not told the invitation exists (PT404)'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_at is null, send_count, token_hash = sha256(convert_to(pg_temp.tok('tok_pending'), 'UTF8'))
    from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id where i.id = pg_temp.fx('inv_pending')$$,
  $$values (true, 1, true)$$,
  'revoke_invitation / resend_invitation: the refused calls changed nothing (still pending, one send, same token)'
);

-- An admin revokes; revoking again (here by the owner) changes nothing.
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select public.revoke_invitation(pg_temp.fx('inv_pending'))$$,
  'revoke_invitation: an admin revokes a pending invitation'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_at is not null, revoked_by from public.invitations where id = pg_temp.fx('inv_pending')$$,
  $$values (true, pg_temp.fx('admin'))$$,
  'revoke_invitation: the invitation is revoked, by the admin'
);
select set_config('fx.audit_rows_before', (select count(*)::text from public.audit_log where table_name = 'invitations' and record_id = pg_temp.tok('inv_pending')), true) is not null as fixture;
select tests.authenticate_as(pg_temp.fx('owner'));
select is(
  (select r.revoked_by from public.revoke_invitation(pg_temp.fx('inv_pending')) r), pg_temp.fx('admin'),
  'revoke_invitation: revoking twice succeeds and returns the invitation as first revoked'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_by, (select count(*)::text from public.audit_log where table_name = 'invitations' and record_id = pg_temp.tok('inv_pending'))
    from public.invitations where id = pg_temp.fx('inv_pending')$$,
  $$values (pg_temp.fx('admin'), pg_temp.tok('audit_rows_before'))$$,
  'revoke_invitation: the second revoke wrote nothing (revoked_by kept, no audit row)'
);

-- A revoked invitation is not resent.
select tests.authenticate_as(pg_temp.fx('admin'));
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_pending'))$$,
  '22023', 'the invitation was revoked',
  'resend_invitation: a revoked invitation cannot be resent (22023)'
);
-- An accepted one is neither revoked nor resent.
select throws_ok(
  $$select public.revoke_invitation(pg_temp.fx('inv_member'))$$,
  '22023', 'the invitation was already accepted',
  'revoke_invitation: an accepted invitation cannot be revoked (22023)'
);
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_member'))$$,
  '22023', 'the invitation was already accepted',
  'resend_invitation: an accepted invitation cannot be resent (22023)'
);
select throws_ok(
  $$select * from public.resend_invitation(gen_random_uuid())$$,
  'PT404', 'invitation not found',
  'resend_invitation: an unknown invitation is refused (PT404)'
);
select tests.clear_authentication();
select results_eq(
  $$select revoked_at is not null, send_count from public.invitations where id = pg_temp.fx('inv_pending')$$,
  $$values (true, 1)$$,
  'resend_invitation: the refused resend left the revoked invitation as it was'
);

-- The resend limit: 1 send + 9 resends = 10; the 11th send is refused.
select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_often', i.id::text, true)
    from public.invite_member(pg_temp.fx('acme'), 'often@team.test', 'member') i$$,
  'resend_invitation: an admin invites often@'
);
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_often'), interval '31 days')$$,
  '22023', 'an invitation is valid for 1 hour to 30 days',
  'resend_invitation: valid_for out of range is refused (22023)'
);
select lives_ok(
  $sql$do $$ begin for i in 1..9 loop perform public.resend_invitation(pg_temp.fx('inv_often')); end loop; end $$$sql$,
  'resend_invitation: nine resends are allowed'
);
select tests.clear_authentication();
select is((select send_count from public.invitations where id = pg_temp.fx('inv_often')), 10, 'resend_invitation: send_count reached 10');
select set_config('fx.often_hash', (select encode(token_hash, 'hex') from private.invitation_tokens where invitation_id = pg_temp.fx('inv_often')), true) is not null as fixture;
select tests.authenticate_as(pg_temp.fx('admin'));
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_often'))$$,
  '22023', 'this invitation was sent 10 times already',
  'resend_invitation: the 11th send is refused (22023)'
);
select tests.clear_authentication();
select results_eq(
  $$select send_count, encode(token_hash, 'hex') = pg_temp.tok('often_hash')
    from public.invitations i join private.invitation_tokens t on t.invitation_id = i.id where i.id = pg_temp.fx('inv_often')$$,
  $$values (10, true)$$,
  'resend_invitation: the refused resend kept the count and the token'
);

-- ===========================================================================
-- change_member_role: admins change roles up to their own; an owner's role
-- only by an owner; the last owner stays.
-- ===========================================================================

select set_config('fx.r_owner', tests.create_user('r.owner@team.test')::text, true) is not null as fixture;
select set_config('fx.r_admin', tests.create_user('r.admin@team.test')::text, true) is not null as fixture;
select set_config('fx.r_member', tests.create_user('r.member@team.test')::text, true) is not null as fixture;
select set_config('fx.r_member2', tests.create_user('r.member2@team.test')::text, true) is not null as fixture;
select set_config('fx.r_viewer', tests.create_user('r.viewer@team.test')::text, true) is not null as fixture;
select set_config('fx.roles', tests.create_org('team-roles', pg_temp.fx('r_owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('roles'), pg_temp.fx('r_admin'), 'admin');
select tests.add_member(pg_temp.fx('roles'), pg_temp.fx('r_member'), 'member');
select tests.add_member(pg_temp.fx('roles'), pg_temp.fx('r_member2'), 'member');
select tests.add_member(pg_temp.fx('roles'), pg_temp.fx('r_viewer'), 'viewer');

-- An admin promotes a member to admin.
select tests.authenticate_as(pg_temp.fx('r_admin'));
select lives_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_member'), 'admin')$$,
  'change_member_role: an admin promotes a member to admin'
);
select tests.clear_authentication();
select is(pg_temp.role_of('roles', 'r_member'), 'admin'::public.org_role, 'change_member_role: the member is now an admin');

-- An admin cannot grant owner.
select tests.authenticate_as(pg_temp.fx('r_admin'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_member2'), 'owner')$$,
  '42501', 'you cannot grant a role above your own (admin)',
  'change_member_role: an admin cannot grant owner (42501)'
);
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_admin'), 'owner')$$,
  '42501', 'you cannot grant a role above your own (admin)',
  'change_member_role: an admin cannot make themself owner (42501)'
);
-- An admin cannot demote an owner.
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_owner'), 'viewer')$$,
  '42501', 'only owners can change an owner''s role',
  'change_member_role: an admin cannot demote an owner (42501)'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('roles', 'r_member2'), pg_temp.role_of('roles', 'r_admin'), pg_temp.role_of('roles', 'r_owner')$$,
  $$values ('member'::public.org_role, 'admin'::public.org_role, 'owner'::public.org_role)$$,
  'change_member_role: the refused calls changed no role'
);

-- Members and viewers cannot change roles.
select tests.authenticate_as(pg_temp.fx('r_member2'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_viewer'), 'member')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'change_member_role: a member cannot change a role (42501)'
);
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_member2'), 'admin')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'change_member_role: a member cannot promote themself (42501)'
);
select tests.authenticate_as(pg_temp.fx('r_viewer'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_member2'), 'viewer')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'change_member_role: a viewer cannot change a role (42501)'
);
-- An outsider (owner elsewhere) cannot either.
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_member2'), 'admin')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'change_member_role: an outsider cannot change a role (42501)'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('roles', 'r_member2'), pg_temp.role_of('roles', 'r_viewer')$$,
  $$values ('member'::public.org_role, 'viewer'::public.org_role)$$,
  'change_member_role: the refused calls by members, viewers and outsiders changed no role'
);

-- The target must be a member.
select tests.authenticate_as(pg_temp.fx('r_admin'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('outsider'), 'viewer')$$,
  'PT404', 'no such member in this organization',
  'change_member_role: a non-member target is refused (PT404)'
);
select tests.clear_authentication();
select is(pg_temp.role_of('roles', 'outsider'), null::public.org_role, 'change_member_role: the non-member did not become a member');

-- The last owner cannot demote themself.
select tests.authenticate_as(pg_temp.fx('r_owner'));
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_owner'), 'admin')$$,
  '23514', 'an organization must keep at least one owner',
  'change_member_role: the last owner cannot step down (23514)'
);
select tests.clear_authentication();
select is(pg_temp.role_of('roles', 'r_owner'), 'owner'::public.org_role, 'change_member_role: the last owner is still owner');

-- With two owners, one may step down.
select tests.authenticate_as(pg_temp.fx('r_owner'));
select lives_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_admin'), 'owner')$$,
  'change_member_role: an owner makes an admin owner'
);
select lives_ok(
  $$select public.change_member_role(pg_temp.fx('roles'), pg_temp.fx('r_owner'), 'admin')$$,
  'change_member_role: with two owners, one may step down'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('roles', 'r_owner'), pg_temp.role_of('roles', 'r_admin')$$,
  $$values ('admin'::public.org_role, 'owner'::public.org_role)$$,
  'change_member_role: the roles were swapped'
);

-- ===========================================================================
-- remove_member: admins remove members; owners only by owners; never the
-- last owner.
-- ===========================================================================

select set_config('fx.x_owner', tests.create_user('x.owner@team.test')::text, true) is not null as fixture;
select set_config('fx.x_admin', tests.create_user('x.admin@team.test')::text, true) is not null as fixture;
select set_config('fx.x_member', tests.create_user('x.member@team.test')::text, true) is not null as fixture;
select set_config('fx.x_member2', tests.create_user('x.member2@team.test')::text, true) is not null as fixture;
select set_config('fx.removal', tests.create_org('team-removal', pg_temp.fx('x_owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('removal'), pg_temp.fx('x_admin'), 'admin');
select tests.add_member(pg_temp.fx('removal'), pg_temp.fx('x_member'), 'member');
select tests.add_member(pg_temp.fx('removal'), pg_temp.fx('x_member2'), 'member');

select tests.authenticate_as(pg_temp.fx('x_admin'));
select is(
  (select r.user_id from public.remove_member(pg_temp.fx('removal'), pg_temp.fx('x_member')) r), pg_temp.fx('x_member'),
  'remove_member: an admin removes a member (and gets the removed membership back)'
);
select tests.clear_authentication();
select is(pg_temp.role_of('removal', 'x_member'), null::public.org_role, 'remove_member: the member is gone');

select tests.authenticate_as(pg_temp.fx('x_admin'));
select throws_ok(
  $$select public.remove_member(pg_temp.fx('removal'), pg_temp.fx('x_owner'))$$,
  '42501', 'only owners can remove an owner',
  'remove_member: an admin cannot remove an owner (42501)'
);
select tests.authenticate_as(pg_temp.fx('x_member2'));
select throws_ok(
  $$select public.remove_member(pg_temp.fx('removal'), pg_temp.fx('x_admin'))$$,
  '42501', 'you do not have the members.remove permission in this organization',
  'remove_member: a member cannot remove anyone (42501)'
);
select tests.authenticate_as(pg_temp.fx('x_owner'));
select throws_ok(
  $$select public.remove_member(pg_temp.fx('removal'), pg_temp.fx('x_owner'))$$,
  '23514', 'an organization must keep at least one owner',
  'remove_member: the last owner cannot be removed (23514)'
);
select tests.authenticate_as(pg_temp.fx('x_admin'));
select throws_ok(
  $$select public.remove_member(pg_temp.fx('removal'), pg_temp.fx('x_member'))$$,
  'PT404', 'no such member in this organization',
  'remove_member: removing a non-member is refused (PT404)'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('removal', 'x_owner'), pg_temp.role_of('removal', 'x_admin'), pg_temp.role_of('removal', 'x_member2')$$,
  $$values ('owner'::public.org_role, 'admin'::public.org_role, 'member'::public.org_role)$$,
  'remove_member: the refused calls removed nobody'
);

-- ===========================================================================
-- leave_organization: any member may leave (even a viewer: the one write
-- every member may do), except the last owner.
-- ===========================================================================

select set_config('fx.l_owner', tests.create_user('l.owner@team.test')::text, true) is not null as fixture;
select set_config('fx.l_viewer', tests.create_user('l.viewer@team.test')::text, true) is not null as fixture;
select set_config('fx.leaving', tests.create_org('team-leaving', pg_temp.fx('l_owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('leaving'), pg_temp.fx('l_viewer'), 'viewer');

select tests.authenticate_as(pg_temp.fx('l_viewer'));
select lives_ok(
  $$select public.leave_organization(pg_temp.fx('leaving'))$$,
  'leave_organization: a viewer may leave'
);
select tests.clear_authentication();
select is(pg_temp.role_of('leaving', 'l_viewer'), null::public.org_role, 'leave_organization: the viewer is gone');

select tests.authenticate_as(pg_temp.fx('l_owner'));
select throws_ok(
  $$select public.leave_organization(pg_temp.fx('leaving'))$$,
  '23514', 'an organization must keep at least one owner',
  'leave_organization: the last owner cannot leave (23514)'
);
select tests.authenticate_as(pg_temp.fx('outsider'));
select throws_ok(
  $$select public.leave_organization(pg_temp.fx('leaving'))$$,
  'PT404', 'no such member in this organization',
  'leave_organization: a non-member cannot leave (PT404)'
);
select tests.clear_authentication();
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('leaving') and user_id = pg_temp.fx('l_owner') and role = 'owner'), 1,
  'leave_organization: the last owner is still there'
);

-- ===========================================================================
-- transfer_ownership: an owner hands ownership to a member and becomes admin.
-- ===========================================================================

select set_config('fx.t_owner', tests.create_user('t.owner@team.test')::text, true) is not null as fixture;
select set_config('fx.t_admin', tests.create_user('t.admin@team.test')::text, true) is not null as fixture;
select set_config('fx.t_member', tests.create_user('t.member@team.test')::text, true) is not null as fixture;
select set_config('fx.transfer', tests.create_org('team-transfer', pg_temp.fx('t_owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('transfer'), pg_temp.fx('t_admin'), 'admin');
select tests.add_member(pg_temp.fx('transfer'), pg_temp.fx('t_member'), 'member');

select tests.authenticate_as(pg_temp.fx('t_admin'));
select throws_ok(
  $$select public.transfer_ownership(pg_temp.fx('transfer'), pg_temp.fx('t_admin'))$$,
  '42501', 'you do not have the ownership.transfer permission in this organization',
  'transfer_ownership: an admin cannot transfer ownership, not even to themself (42501)'
);
select tests.authenticate_as(pg_temp.fx('t_owner'));
select throws_ok(
  $$select public.transfer_ownership(pg_temp.fx('transfer'), pg_temp.fx('outsider'))$$,
  'PT404', 'no such member in this organization',
  'transfer_ownership: to a non-member is refused (PT404)'
);
select throws_ok(
  $$select public.transfer_ownership(pg_temp.fx('transfer'), pg_temp.fx('t_owner'))$$,
  '22023', 'you already own this organization',
  'transfer_ownership: to oneself is refused (22023)'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('transfer', 't_owner'), pg_temp.role_of('transfer', 't_admin'), pg_temp.role_of('transfer', 'outsider')$$,
  $$values ('owner'::public.org_role, 'admin'::public.org_role, null::public.org_role)$$,
  'transfer_ownership: the refused calls changed no role'
);

select tests.authenticate_as(pg_temp.fx('t_owner'));
select lives_ok(
  $$select public.transfer_ownership(pg_temp.fx('transfer'), pg_temp.fx('t_member'))$$,
  'transfer_ownership: the owner transfers to a member'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('transfer', 't_member'), pg_temp.role_of('transfer', 't_owner'),
           (select count(*)::int from public.memberships where org_id = pg_temp.fx('transfer') and role = 'owner')$$,
  $$values ('owner'::public.org_role, 'admin'::public.org_role, 1)$$,
  'transfer_ownership: the target is the owner, the former owner an admin, and there is one owner'
);

-- ===========================================================================
-- A viewer cannot write anything: every write RPC refuses, and direct
-- writes to the tables change nothing (acme: viewer@ is a viewer there).
-- ===========================================================================

select tests.authenticate_as(pg_temp.fx('admin'));
select lives_ok(
  $$select set_config('fx.inv_v', i.id::text, true)
    from public.invite_member(pg_temp.fx('acme'), 'for.viewer.test@team.test', 'member') i$$,
  'viewer: (fixture) an admin invites someone'
);
select tests.clear_authentication();
-- A snapshot of acme's memberships, to compare with after the viewer's attempts.
select set_config('fx.acme_state', (
  select string_agg(user_id::text || ':' || role::text, ',' order by user_id) from public.memberships where org_id = pg_temp.fx('acme')
), true) is not null as fixture;

select tests.authenticate_as(pg_temp.fx('viewer'));
select throws_ok(
  $$select * from public.invite_member(pg_temp.fx('acme'), 'viewer.invites@team.test', 'viewer')$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'viewer: invite_member refuses, even for the viewer role (42501)'
);
select throws_ok(
  $$select public.revoke_invitation(pg_temp.fx('inv_v'))$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'viewer: revoke_invitation refuses (42501)'
);
select throws_ok(
  $$select * from public.resend_invitation(pg_temp.fx('inv_v'))$$,
  '42501', 'you do not have the members.invite permission in this organization',
  'viewer: resend_invitation refuses (42501)'
);
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('acme'), pg_temp.fx('viewer'), 'member')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'viewer: change_member_role on themself refuses (42501)'
);
select throws_ok(
  $$select public.change_member_role(pg_temp.fx('acme'), pg_temp.fx('member'), 'viewer')$$,
  '42501', 'you do not have the members.change_role permission in this organization',
  'viewer: change_member_role on someone else refuses (42501)'
);
select throws_ok(
  $$select public.remove_member(pg_temp.fx('acme'), pg_temp.fx('member'))$$,
  '42501', 'you do not have the members.remove permission in this organization',
  'viewer: remove_member refuses (42501)'
);
select throws_ok(
  $$select public.transfer_ownership(pg_temp.fx('acme'), pg_temp.fx('viewer'))$$,
  '42501', 'you do not have the ownership.transfer permission in this organization',
  'viewer: transfer_ownership refuses (42501)'
);

-- Direct writes. Renaming: authenticated holds UPDATE (name) for admins'
-- sake, so RLS filters the row out: no error, 0 rows affected.
select results_eq(
  $$with renamed as (update public.organizations set name = 'Hijacked' where id = pg_temp.fx('acme') returning 1)
    select count(*)::int from renamed$$,
  $$values (0)$$,
  'viewer: update public.organizations set name affects 0 rows'
);
-- Deleting: no DELETE privilege at all (delete_organization is the one way, 20261123010400).
select throws_ok(
  $$delete from public.organizations where id = pg_temp.fx('acme')$$,
  '42501', 'permission denied for table organizations',
  'viewer: delete from public.organizations is refused (42501)'
);
-- Memberships: no INSERT/UPDATE/DELETE privilege at all.
select throws_ok(
  $$insert into public.memberships (org_id, user_id, role) values (pg_temp.fx('acme'), pg_temp.fx('outsider'), 'owner')$$,
  '42501', 'permission denied for table memberships',
  'viewer: insert into public.memberships is refused (42501)'
);
select throws_ok(
  $$update public.memberships set role = 'owner' where user_id = pg_temp.fx('viewer')$$,
  '42501', 'permission denied for table memberships',
  'viewer: update public.memberships is refused (42501)'
);
select throws_ok(
  $$insert into public.invitations (org_id, email, role, expires_at) values (pg_temp.fx('acme'), 'direct@team.test', 'owner', now() + interval '1 day')$$,
  '42501', 'permission denied for table invitations',
  'viewer: insert into public.invitations is refused (42501)'
);
select tests.clear_authentication();

select results_eq(
  $$select name, (select string_agg(user_id::text || ':' || role::text, ',' order by user_id) from public.memberships where org_id = pg_temp.fx('acme'))
    from public.organizations where id = pg_temp.fx('acme')$$,
  $$values ('Acme Inc'::text, pg_temp.tok('acme_state'))$$,
  'viewer: the organization and its memberships are unchanged'
);
select results_eq(
  $$select revoked_at is null, send_count from public.invitations where id = pg_temp.fx('inv_v')$$,
  $$values (true, 1)$$,
  'viewer: the invitation is unchanged'
);
select is(
  (select count(*)::int from public.invitations where org_id = pg_temp.fx('acme') and email in ('viewer.invites@team.test', 'direct@team.test')), 0,
  'viewer: no invitation was created'
);

-- ===========================================================================
-- The last-owner invariant holds on every path: as postgres and as the
-- service role (which bypasses RLS), deleting or demoting the only owner's
-- membership raises 23514; deleting the organization itself (cascading to
-- its memberships) is the one way its last owner goes.
-- ===========================================================================

select set_config('fx.s_owner', tests.create_user('s.owner@team.test')::text, true) is not null as fixture;
select set_config('fx.s_member', tests.create_user('s.member@team.test')::text, true) is not null as fixture;
select set_config('fx.solo', tests.create_org('team-solo', pg_temp.fx('s_owner'))::text, true) is not null as fixture;
select set_config('fx.solo2', tests.create_org('team-solo-two', pg_temp.fx('s_owner'))::text, true) is not null as fixture;
select tests.add_member(pg_temp.fx('solo'), pg_temp.fx('s_member'), 'member');

-- As postgres.
select throws_ok(
  $$delete from public.memberships where org_id = pg_temp.fx('solo') and user_id = pg_temp.fx('s_owner')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: postgres cannot delete the only owner''s membership (23514)'
);
select throws_ok(
  $$update public.memberships set role = 'admin' where org_id = pg_temp.fx('solo') and user_id = pg_temp.fx('s_owner')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: postgres cannot demote the only owner (23514)'
);
select throws_ok(
  $$delete from auth.users where id = pg_temp.fx('s_owner')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: deleting the only owner''s user account is refused too (23514)'
);

-- As the service role.
select tests.authenticate_as_service_role();
select throws_ok(
  $$delete from public.memberships where org_id = pg_temp.fx('solo') and user_id = pg_temp.fx('s_owner')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: the service role cannot delete the only owner''s membership (23514)'
);
select throws_ok(
  $$update public.memberships set role = 'member' where org_id = pg_temp.fx('solo') and user_id = pg_temp.fx('s_owner')$$,
  '23514', 'an organization must keep at least one owner',
  'last owner: the service role cannot demote the only owner (23514)'
);
select tests.clear_authentication();
select results_eq(
  $$select pg_temp.role_of('solo', 's_owner'), pg_temp.role_of('solo', 's_member')$$,
  $$values ('owner'::public.org_role, 'member'::public.org_role)$$,
  'last owner: the refused statements changed nothing'
);

-- Deleting the organization cascades to its memberships, last owner included.
select tests.authenticate_as_service_role();
select lives_ok(
  $$delete from public.organizations where id = pg_temp.fx('solo')$$,
  'last owner: the service role can delete the organization itself'
);
select tests.clear_authentication();
select is(
  (select count(*)::int from public.memberships where org_id = pg_temp.fx('solo')), 0,
  'last owner: deleting the organization removed all its memberships'
);
select lives_ok(
  $$delete from public.organizations where id = pg_temp.fx('solo2')$$,
  'last owner: postgres can delete an organization with its only owner'
);
select is(
  (select count(*)::int from public.organizations where id in (pg_temp.fx('solo'), pg_temp.fx('solo2'))), 0,
  'last owner: both organizations are gone'
);

select * from finish();
rollback;
