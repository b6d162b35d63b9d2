-- Voice ids are the platform's, and an invitation's sender keeps their role
-- until it is stored.
--
-- 1. Every org dials through one shared Vapi account; the bot's
--    voice_assistant_id and the org's outbound_phone_number_id decide what is
--    dialled, and Vapi sends the call's events to the Server URL of that
--    assistant or number (one org's call-events URL). Admins wrote both ids
--    freely and nothing tied an id to one org, so a member of org B could
--    read B's assistant id (bots are readable by members), create org A, set
--    it and B's number on A, and have the dispatcher dial as B, B receiving
--    the events. Both ids are now provisioned by the platform: only the
--    service role (by its claims) or a role that bypasses row-level security
--    sets or changes them (42501 for everyone else, the triggers below
--    whatever the path), set_call_provider_outbound included; and each id
--    belongs to at most one bot / one org (unique indexes). On a database
--    where two orgs already share an id, creating the index fails, naming it:
--    which org holds it legitimately is for a person to decide.
-- 2. invite_member read the caller's role without a lock, so a removal or
--    demotion committing between that check and the insert ran its trigger
--    (revoke_invitations_of_former_inviter, 20261123004200) before the
--    invitation existed, and the invitation survived. The caller's own
--    membership row is now locked FOR SHARE before the role is read, in
--    invite_member and in resend (and revoke) through pending_invitation:
--    a delete and a role update (FOR NO KEY UPDATE, which FOR KEY SHARE would
--    not block) both wait for the invitation to commit, so their trigger
--    sees it; one that committed first is seen by the check.

-- ---------------------------------------------------------------------------
-- 1. Voice ids on the shared account are the platform's.
-- ---------------------------------------------------------------------------

create function private.caller_is_platform()
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select auth.role() is not distinct from 'service_role' or private.caller_bypasses_rls();
$$;
comment on function private.caller_is_platform() is 'Whether the caller is the platform: the service role by its claims, or a role that bypasses row-level security (the service role without claims, migrations, SQL).';

create function private.require_platform_for_voice_id(what text)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if not private.caller_is_platform() then
    raise exception 'only the platform (service role) sets %: it is an id on the shared Vapi account', what
      using errcode = 'insufficient_privilege',
            hint = 'Ask the platform to provision the assistant or phone number for this organization.';
  end if;
end;
$$;

create function private.bots_voice_assistant_id_platform_only()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' and new.voice_assistant_id is not null
    or tg_op = 'UPDATE' and new.voice_assistant_id is distinct from old.voice_assistant_id
  then
    perform private.require_platform_for_voice_id('a bot''s voice assistant (voice_assistant_id)');
  end if;
  return new;
end;
$$;

create trigger bots_voice_assistant_id_platform_only
  before insert or update of voice_assistant_id on public.bots
  for each row execute function private.bots_voice_assistant_id_platform_only();

create function private.call_providers_outbound_phone_number_platform_only()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' and new.outbound_phone_number_id is not null
    or tg_op = 'UPDATE' and new.outbound_phone_number_id is distinct from old.outbound_phone_number_id
  then
    perform private.require_platform_for_voice_id('an organization''s outbound phone number (outbound_phone_number_id)');
  end if;
  return new;
end;
$$;

create trigger call_providers_outbound_phone_number_platform_only
  before insert or update of outbound_phone_number_id on public.call_providers
  for each row execute function private.call_providers_outbound_phone_number_platform_only();

-- An assistant speaks as one bot (its custom-LLM URL names it), so one bot,
-- hence one org. A phone number: one org (one vapi row per org).
create unique index bots_voice_assistant_id_key on public.bots (voice_assistant_id)
  where voice_assistant_id is not null;
create unique index call_providers_outbound_phone_number_id_key on public.call_providers (outbound_phone_number_id)
  where outbound_phone_number_id is not null;

comment on column public.bots.voice_assistant_id is 'The voice provider''s assistant that speaks as this bot on outbound calls (a Vapi assistant id on the shared account). Set by the platform (service role) only; unique; without it the bot places no calls.';
comment on column public.call_providers.outbound_phone_number_id is 'The provider''s phone-number id outbound calls are placed from (vapi only, on the shared account). Set by the platform (service role) only, with set_call_provider_outbound; unique.';

-- Latest definition: 20261123001210_call_operations.sql; only the platform
-- check (instead of the calls.manage permission, which the service role,
-- having no user, cannot hold) is new.
create or replace function private.set_call_provider_outbound(org_id uuid, provider text, phone_number_id text)
returns public.call_providers
language plpgsql
security definer
set search_path = ''
as $$
declare
  cleaned text := nullif(pg_catalog.btrim(phone_number_id), '');
  updated public.call_providers;
begin
  perform private.require_platform_for_voice_id('an organization''s outbound phone number (outbound_phone_number_id)');
  perform private.require_call_provider(set_call_provider_outbound.provider);
  -- Only the Vapi dialer exists; a generic provider only sends us events.
  if set_call_provider_outbound.provider <> 'vapi' then
    raise exception 'outbound calls are placed through vapi only, not %', set_call_provider_outbound.provider
      using errcode = 'invalid_parameter_value';
  end if;
  if phone_number_id is not null and (cleaned is null or length(cleaned) > 200) then
    raise exception 'phone_number_id must have 1 to 200 characters (null clears it)'
      using errcode = 'invalid_parameter_value';
  end if;
  update public.call_providers p set outbound_phone_number_id = cleaned
  where p.org_id = set_call_provider_outbound.org_id and p.provider = set_call_provider_outbound.provider
  returning * into updated;
  if not found then
    raise exception 'this organization has no % provider yet', set_call_provider_outbound.provider
      using errcode = 'no_data_found', hint = 'Create its secret first with create_call_provider_secret.';
  end if;
  return updated;
end;
$$;
comment on function public.set_call_provider_outbound(uuid, text, text) is 'Sets (null clears) the provider phone-number id the org''s outbound calls are placed from; vapi only, and the org must have the provider (create_call_provider_secret). The platform (service role) only: others get 42501. One number belongs to one org.';

revoke execute on function
  private.caller_is_platform(),
  private.require_platform_for_voice_id(text),
  private.bots_voice_assistant_id_platform_only(),
  private.call_providers_outbound_phone_number_platform_only()
from public, anon, authenticated, service_role;
-- Admins keep execute so they hear why (42501, named) rather than a bare
-- permission error.
grant execute on function
  public.set_call_provider_outbound(uuid, text, text),
  private.set_call_provider_outbound(uuid, text, text)
to service_role;

-- ---------------------------------------------------------------------------
-- 2. The caller's membership is locked while their role decides an
--    invitation.
-- ---------------------------------------------------------------------------

-- FOR SHARE, not FOR KEY SHARE: a role update takes FOR NO KEY UPDATE, which
-- only FOR SHARE (and stronger) conflicts with. Not found: not a member,
-- which the permission check that follows refuses.
create function private.lock_own_membership(org_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.memberships m
  where m.org_id = lock_own_membership.org_id and m.user_id = auth.uid()
  for share;
end;
$$;
comment on function private.lock_own_membership(uuid) is 'Locks the caller''s membership of the org FOR SHARE until the transaction ends, so a removal or role change waits (and its triggers see what the caller created meanwhile).';
revoke execute on function private.lock_own_membership(uuid) from public, anon, authenticated, service_role;

-- Latest definition: 20261123000400_team.sql; only the lock on the caller's
-- membership, taken before the role is read (so the role moved from the
-- declarations into the body), is new.
create or replace function private.invite_member(org_id uuid, email text, role public.org_role, valid_for interval)
returns table (id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role;
  clean_email text := lower(btrim(coalesce(invite_member.email, '')));
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
  if valid_for is null or valid_for < interval '1 hour' or valid_for > interval '30 days' then
    raise exception 'an invitation is valid for 1 hour to 30 days' using errcode = 'invalid_parameter_value';
  end if;
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
  values (invite_member.org_id, clean_email, invite_member.role, auth.uid(), pg_catalog.now() + valid_for)
  returning * into created;

  return query select created.id, private.new_invitation_token(created.id), created.expires_at;
end;
$$;

-- Latest definition: 20261123004200_team_invitation_and_owner_fixes.sql;
-- only the lock on the caller's membership is new. It is taken before the
-- invitation's row lock, in the order a removal or demotion takes them
-- (membership, then the inviter's invitations in its trigger), so the two
-- cannot deadlock; the org is read unlocked first to find the membership
-- (an invitation never changes org).
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
  select * into invitation from public.invitations i where i.id = pending_invitation.invitation_id;
  if not found then
    raise exception 'invitation not found' using errcode = 'no_data_found';
  end if;
  perform private.lock_own_membership(invitation.org_id);
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
