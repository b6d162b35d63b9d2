-- An invitation lasts 1 hour to 30 days, counted on the expiry it gets.
--
-- invite_member and resend_invitation compared valid_for with
-- interval '30 days', but intervals compare as if a month were 30 days:
-- '1 mon' passed, and now() + '1 mon' is 31 days on March 15 (to April 15),
-- so an invitation could last 31 days. The bounds are now checked on
-- now() + valid_for: '1 mon' passes only when it adds at most 30 days, and an
-- expiry is never more than 30 days away. A valid_for too large to add to
-- now() is refused the same way (22023), not as an overflow (22008).

create function private.invitation_expiry(valid_for interval)
returns timestamptz
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  expiry timestamptz;
begin
  begin
    expiry := pg_catalog.now() + invitation_expiry.valid_for;
  exception when datetime_field_overflow then
    expiry := null;
  end;
  if expiry is null or expiry < pg_catalog.now() + interval '1 hour'
     or expiry > pg_catalog.now() + interval '30 days' then
    raise exception 'an invitation is valid for 1 hour to 30 days' using errcode = 'invalid_parameter_value';
  end if;
  return expiry;
end;
$$;
comment on function private.invitation_expiry(interval) is
  'invite_member and resend_invitation: now() + valid_for, refused (22023) unless it is 1 hour to 30 days from now; checked on the expiry because ''1 mon'' compares as 30 days but can add 31.';
revoke execute on function private.invitation_expiry(interval) from public, anon, authenticated, service_role;

-- Latest definition: 20261123008400_voice_ids_platform_owned.sql; only the
-- check of valid_for, now on the expiry it gives, is new.
create or replace function private.invite_member(org_id uuid, email text, role public.org_role, valid_for interval)
returns table (id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role;
  clean_email text := lower(btrim(coalesce(invite_member.email, '')));
  expiry timestamptz;
  pending public.invitations;
  created public.invitations;
begin
  perform private.lock_own_membership(invite_member.org_id);
  caller_role := private.require_permission(invite_member.org_id, 'members.invite');
  if clean_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' or length(clean_email) > 254 then
    raise exception 'not an e-mail address: %', invite_member.email using errcode = 'invalid_parameter_value';
  end if;
  if invite_member.role is null or invite_member.role > caller_role then
    raise exception 'you cannot grant a role above your own (%)', caller_role using errcode = 'insufficient_privilege';
  end if;
  expiry := private.invitation_expiry(invite_member.valid_for);
  if exists (
    select 1 from public.memberships m join auth.users u on u.id = m.user_id
    where m.org_id = invite_member.org_id and lower(u.email) = clean_email
  ) then
    raise exception '% is already a member', clean_email using errcode = 'unique_violation';
  end if;

  select * into pending from public.invitations i
  where i.org_id = invite_member.org_id and i.email = clean_email and i.accepted_at is null and i.revoked_at is null
  for update;
  if found then
    if pending.expires_at > pg_catalog.now() then
      raise exception 'an invitation for % is already pending', clean_email
        using errcode = 'unique_violation', hint = 'Resend or revoke it.';
    end if;
    -- An expired invitation no longer counts as pending.
    update public.invitations i set revoked_at = pg_catalog.now(), revoked_by = auth.uid() where i.id = pending.id;
  end if;

  insert into public.invitations (org_id, email, role, invited_by, expires_at)
  values (invite_member.org_id, clean_email, invite_member.role, auth.uid(), expiry)
  returning * into created;

  return query select created.id, private.new_invitation_token(created.id), created.expires_at;
end;
$$;

-- Latest definition: 20261123000400_team.sql; only the check of valid_for,
-- now on the expiry it gives, is new.
create or replace function private.resend_invitation(invitation_id uuid, valid_for interval)
returns table (id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations := private.pending_invitation(resend_invitation.invitation_id);
  expiry timestamptz;
begin
  if invitation.revoked_at is not null then
    raise exception 'the invitation was revoked' using errcode = 'invalid_parameter_value';
  end if;
  expiry := private.invitation_expiry(resend_invitation.valid_for);
  if invitation.send_count >= 10 then
    raise exception 'this invitation was sent 10 times already' using errcode = 'invalid_parameter_value',
      hint = 'Revoke it and invite again.';
  end if;
  update public.invitations i
  set expires_at = expiry, last_sent_at = pg_catalog.now(), send_count = i.send_count + 1
  where i.id = invitation.id
  returning * into invitation;
  -- A new token: the one sent before stops working.
  return query select invitation.id, private.new_invitation_token(invitation.id), invitation.expires_at;
end;
$$;
