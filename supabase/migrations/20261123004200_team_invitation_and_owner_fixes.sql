-- Team: invitations never outrank whoever stands behind their token, and two
-- owners acting at once cannot leave an organization without an owner.
--
-- 1. Resending and revoking an invitation follow the invite_member rule: only
--    for a role at or below the caller's own. resend_invitation issues a new
--    token for the invitation's role, so an admin resending an owner's
--    invitation (say an expired one) handed out an owner-level token. The
--    permissions matrix already states the rule for all three ("Invite,
--    resend and revoke invitations (up to the inviter's own role)"), and only
--    owners change or remove an owner, so revoking follows it too.
-- 2. The last-owner trigger locks the organization row before it counts the
--    owners. Team RPCs lock only the target membership, so two owners
--    leaving, or removing or demoting each other, at once under READ
--    COMMITTED each saw the other still an owner and both committed. Now the
--    second waits for the first to commit and counts again (each statement
--    of the trigger takes a new snapshot), so it fails with 23514.
-- 3. An invitation stays valid only while its inviter could still issue it:
--    a member who is removed, leaves, or is demoted loses the pending
--    invitations they sent in that org that their new role could not send
--    (all of them on removal, or when the new role no longer holds
--    members.invite; those above the new role otherwise). They are revoked,
--    not deleted, so the audit trail stays. A trigger on memberships does it,
--    whatever the path (RPCs, account deletion, SQL), and one on auth.users
--    when the inviter's user is deleted.
--
-- Existing invitations are brought under the new rules below (backfill).

-- ---------------------------------------------------------------------------
-- 1. Resend and revoke: up to the caller's own role. Restated whole from
--    20261123000400_team.sql; only the role check is new.
-- ---------------------------------------------------------------------------

create or replace function private.pending_invitation(invitation_id uuid)
returns public.invitations
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations;
  caller_role public.org_role;
begin
  select * into invitation from public.invitations i where i.id = pending_invitation.invitation_id for update;
  if not found then
    raise exception 'invitation not found' using errcode = 'no_data_found';
  end if;
  caller_role := private.require_permission(invitation.org_id, 'members.invite');
  -- The invite_member rule: resending issues a token for the invitation's
  -- role, so it must be a role the caller could grant.
  if invitation.role > caller_role then
    raise exception 'this invitation is for a role above your own (%)', caller_role
      using errcode = 'insufficient_privilege';
  end if;
  if invitation.accepted_at is not null then
    raise exception 'the invitation was already accepted' using errcode = 'invalid_parameter_value';
  end if;
  return invitation;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. The last-owner rule, serialised per organization. Restated whole from
--    20261123000200_organizations.sql.
-- ---------------------------------------------------------------------------

create or replace function private.ensure_org_keeps_an_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if old.role <> 'owner' then
    return null;
  end if;
  -- Serialises owner changes per org: without the lock, two owners leaving
  -- or removing each other at once each see the other as owner. Waiting
  -- here, the later one counts again after the first commits. No key
  -- update: enough to serialise, and it does not block inserts elsewhere
  -- that reference the org (their key-share locks).
  -- Not found: the org itself is being deleted, the one way its last owner goes.
  perform 1 from public.organizations o where o.id = old.org_id for no key update;
  if found
    and not exists (select 1 from public.memberships m where m.org_id = old.org_id and m.role = 'owner')
  then
    raise exception 'an organization must keep at least one owner'
      using errcode = 'check_violation',
            hint = 'Transfer ownership or make another member an owner first.';
  end if;
  return null;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. A lost or lowered membership revokes the invitations it could no longer
--    send.
-- ---------------------------------------------------------------------------

-- Whether a member with inviter_role may issue an invitation for
-- invited_role: the members.invite permission (from the matrix) and a role
-- at or above the invited one. Null inviter_role: not a member.
create function private.role_may_invite(inviter_role public.org_role, invited_role public.org_role)
returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  select role_may_invite.inviter_role is not null
    and role_may_invite.inviter_role >= role_may_invite.invited_role
    and exists (
      select 1 from public.role_permissions p
      where p.permission = 'members.invite' and role_may_invite.inviter_role >= p.min_role
    );
$$;
comment on function private.role_may_invite(public.org_role, public.org_role) is 'Whether a member with the first role may issue (or keep pending) an invitation for the second.';

create function private.revoke_invitations_of_former_inviter()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  -- Null when the membership is gone.
  remaining_role public.org_role;
begin
  if tg_op = 'UPDATE' then
    if new.role >= old.role then
      return null;
    end if;
    remaining_role := new.role;
  end if;
  -- The org itself is being deleted: its invitations go with it.
  if not exists (select 1 from public.organizations o where o.id = old.org_id) then
    return null;
  end if;
  -- Revoked by whoever removed or demoted the member (null for the service
  -- role or SQL), as revoke_invitation records it; the audit trigger logs it.
  update public.invitations i
  set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
  where i.org_id = old.org_id
    and i.invited_by = old.user_id
    and i.accepted_at is null
    and i.revoked_at is null
    and not private.role_may_invite(remaining_role, i.role);
  return null;
end;
$$;

create trigger memberships_revoke_invitations_of_former_inviter
  after update of role or delete on public.memberships
  for each row execute function private.revoke_invitations_of_former_inviter();

-- Deleting a user (the Auth admin API, SQL) removes their memberships by
-- cascade, but Postgres runs the cascaded rows' triggers only after every
-- foreign-key action of the delete, by when invitations.invited_by is
-- already null and the trigger above finds nothing. So the invitations are
-- revoked here first, in every org. (delete_account removes the memberships
-- itself first; the trigger above covers that.)
create function private.revoke_invitations_of_deleted_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.invitations i
  set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
  where i.invited_by = old.id
    and i.accepted_at is null
    and i.revoked_at is null;
  return old;
end;
$$;

-- The two triggers look pending invitations up by inviter.
create index invitations_pending_invited_by_idx on public.invitations (invited_by, org_id)
  where accepted_at is null and revoked_at is null;

create trigger on_auth_user_deleted_revoke_invitations
  before delete on auth.users
  for each row execute function private.revoke_invitations_of_deleted_user();

-- ---------------------------------------------------------------------------
-- Backfill: revoke the pending (or expired, still resendable) invitations
-- that the new rules would not have let stand: the inviter is gone or can no
-- longer issue the role (3), or the last token was issued by a resend from
-- someone who cannot (1; the resender is the actor of the last audited
-- change of send_count). revoked_by stays null: the migration did it.
-- A null invited_by (the inviter's user was deleted before this migration)
-- cannot be told from a row written by SQL; those stay as they are.
-- ---------------------------------------------------------------------------

update public.invitations i
set revoked_at = pg_catalog.now(), revoked_by = null
where i.accepted_at is null
  and i.revoked_at is null
  and (
    (i.invited_by is not null
      and not private.role_may_invite(private.member_role(i.org_id, i.invited_by), i.role))
    or exists (
      select 1
      from (
        select a.actor_user_id
        from public.audit_log a
        where a.org_id = i.org_id
          and a.table_name = 'invitations'
          and a.record_id = i.id::text
          and a.action = 'update'
          and a.new_values ? 'send_count'
        order by a.seq desc
        limit 1
      ) last_resend
      where last_resend.actor_user_id is not null
        and not private.role_may_invite(private.member_role(i.org_id, last_resend.actor_user_id), i.role)
    )
  );
