-- Team operations: create an organization, invitations (invite, accept,
-- revoke, resend), role changes, removal, leaving, ownership transfer.
--
-- Each operation is a `security definer` function in `private` (it writes
-- memberships, which no policy lets users write) behind a `security invoker`
-- RPC in `public` that frontends call with supabase-js `rpc()`.
--
-- Rules, all enforced here and tested in supabase/tests:
-- * permissions come from the matrix (public.role_permissions); a viewer
--   holds no write permission, so every write below refuses a viewer
--   (leaving an organization is the one thing any member may do);
-- * nobody grants a role above their own (invitations and role changes);
-- * only owners change an owner's role or remove an owner;
-- * an organization always keeps an owner (also enforced by the
--   memberships_keep_an_owner trigger, whatever the path);
-- * invitation tokens are single-use, expire, are stored only as a sha256
--   hash, and are bound to the invited e-mail address; at most one pending
--   invitation per e-mail and organization.
--
-- Errors: SQLSTATE 42501 (not allowed; PostgREST answers 403), 22023
-- (invalid argument; 400), P0002 (not found), 23505 (conflict; 409), 23514
-- (the last-owner rule; 400), with a message meant for the user.

-- ---------------------------------------------------------------------------
-- Shared checks
-- ---------------------------------------------------------------------------

create function private.require_user()
returns uuid
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  user_id uuid := auth.uid();
begin
  if user_id is null then
    raise exception 'sign in first' using errcode = 'insufficient_privilege';
  end if;
  return user_id;
end;
$$;

create function private.require_permission(org_id uuid, permission text)
returns public.org_role
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role;
begin
  perform private.require_user();
  caller_role := private.member_role(require_permission.org_id, auth.uid());
  if caller_role is null or not private.has_permission(require_permission.org_id, require_permission.permission) then
    raise exception 'you do not have the % permission in this organization', require_permission.permission
      using errcode = 'insufficient_privilege';
  end if;
  return caller_role;
end;
$$;
comment on function private.require_permission(uuid, text) is 'Raises 42501 unless the caller holds the permission in the org; returns the caller''s role.';

-- ---------------------------------------------------------------------------
-- The caller's permissions in an org, from the matrix, for showing and
-- hiding controls. Invoker: it reads memberships under the caller's RLS.
-- ---------------------------------------------------------------------------

create function public.my_permissions(org_id uuid)
returns setof text
language sql
stable
security invoker
set search_path = ''
as $$
  select p.permission
  from public.memberships m
  join public.role_permissions p on m.role >= p.min_role
  where m.org_id = my_permissions.org_id and m.user_id = (select auth.uid())
  order by p.permission;
$$;
comment on function public.my_permissions(uuid) is 'The permissions the caller holds in the org (none when not a member).';

-- ---------------------------------------------------------------------------
-- Organizations
-- ---------------------------------------------------------------------------

create function private.create_organization(name text, slug text)
returns public.organizations
language plpgsql
security definer
set search_path = ''
as $$
declare
  creator uuid := private.require_user();
  clean_name text := btrim(coalesce(create_organization.name, ''));
  clean_slug text := lower(btrim(create_organization.slug));
  created public.organizations;
begin
  if length(clean_name) not between 1 and 100 then
    raise exception 'an organization name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if clean_slug is null then
    -- A readable slug from the name, made unique with a random suffix.
    clean_slug := left(btrim(pg_catalog.regexp_replace(lower(clean_name), '[^a-z0-9]+', '-', 'g'), '-'), 40);
    clean_slug := btrim(clean_slug || '-' || pg_catalog.encode(extensions.gen_random_bytes(3), 'hex'), '-');
  end if;
  if clean_slug !~ '^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$' then
    raise exception 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens'
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from public.organizations o where o.slug = clean_slug) then
    raise exception 'the slug "%" is taken', clean_slug using errcode = 'unique_violation';
  end if;

  insert into public.organizations (name, slug, created_by)
  values (clean_name, clean_slug, creator)
  returning * into created;
  insert into public.memberships (org_id, user_id, role) values (created.id, creator, 'owner');
  return created;
end;
$$;

create function public.create_organization(name text, slug text default null)
returns public.organizations
language sql
security invoker
set search_path = ''
as $$
  select * from private.create_organization(create_organization.name, create_organization.slug);
$$;
comment on function public.create_organization(text, text) is 'Creates an organization; the caller becomes its owner. Slug optional (derived from the name).';

-- ---------------------------------------------------------------------------
-- Invitations
-- ---------------------------------------------------------------------------

create table public.invitations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  email text not null
    constraint invitations_email_format check (
      email = lower(btrim(email)) and length(email) <= 254 and email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'
    ),
  role public.org_role not null,
  invited_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  last_sent_at timestamptz not null default now(),
  send_count integer not null default 1 constraint invitations_send_count check (send_count between 1 and 10),
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  revoked_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null,
  constraint invitations_accepted_or_revoked check (accepted_at is null or revoked_at is null),
  constraint invitations_accepted_by check ((accepted_at is null) = (accepted_by is null))
);
comment on table public.invitations is 'Invitations to join an organization. The token is returned once by invite_member/resend_invitation; only its hash is kept (private.invitation_tokens).';

create unique index invitations_one_pending_per_email on public.invitations (org_id, email)
  where accepted_at is null and revoked_at is null;
create index invitations_org_id_idx on public.invitations (org_id, created_at desc);

-- Token hashes live apart from the rows admins read.
create table private.invitation_tokens (
  invitation_id uuid primary key references public.invitations (id) on delete cascade,
  token_hash bytea not null unique
);

create trigger invitations_audit after insert or update or delete on public.invitations
  for each row execute function private.audit_row_change();

alter table public.invitations enable row level security;
revoke all on public.invitations from anon, authenticated;
grant select on public.invitations to authenticated;

create policy "admins and platform admins can read their org's invitations"
  on public.invitations for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('invitations.read'))));

create function private.new_invitation_token(invitation_id uuid)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  token text := 'inv_' || pg_catalog.encode(extensions.gen_random_bytes(24), 'hex');
begin
  insert into private.invitation_tokens (invitation_id, token_hash)
  values (new_invitation_token.invitation_id, pg_catalog.sha256(pg_catalog.convert_to(token, 'UTF8')))
  on conflict on constraint invitation_tokens_pkey
  do update set token_hash = excluded.token_hash;
  return token;
end;
$$;

create function private.invite_member(org_id uuid, email text, role public.org_role, valid_for interval)
returns table (id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role := private.require_permission(invite_member.org_id, 'members.invite');
  clean_email text := lower(btrim(coalesce(invite_member.email, '')));
  pending public.invitations;
  created public.invitations;
begin
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

create function public.invite_member(
  org_id uuid,
  email text,
  role public.org_role default 'member',
  valid_for interval default interval '7 days'
)
returns table (id uuid, token text, expires_at timestamptz)
language sql
security invoker
set search_path = ''
as $$
  select * from private.invite_member(invite_member.org_id, invite_member.email, invite_member.role, invite_member.valid_for);
$$;
comment on function public.invite_member(uuid, text, public.org_role, interval) is 'Invites an e-mail address with a role up to the caller''s own. Returns the token once: send it to the invitee; only its hash is stored.';

create function private.pending_invitation(invitation_id uuid)
returns public.invitations
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations;
begin
  select * into invitation from public.invitations i where i.id = pending_invitation.invitation_id for update;
  if not found then
    raise exception 'invitation not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(invitation.org_id, 'members.invite');
  if invitation.accepted_at is not null then
    raise exception 'the invitation was already accepted' using errcode = 'invalid_parameter_value';
  end if;
  return invitation;
end;
$$;

create function private.revoke_invitation(invitation_id uuid)
returns public.invitations
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations := private.pending_invitation(revoke_invitation.invitation_id);
begin
  if invitation.revoked_at is null then
    update public.invitations set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
    where id = invitation.id
    returning * into invitation;
  end if;
  return invitation;
end;
$$;

create function public.revoke_invitation(invitation_id uuid)
returns public.invitations
language sql
security invoker
set search_path = ''
as $$
  select * from private.revoke_invitation(revoke_invitation.invitation_id);
$$;
comment on function public.revoke_invitation(uuid) is 'Revokes a pending invitation; its token stops working. Revoking twice is a no-op.';

create function private.resend_invitation(invitation_id uuid, valid_for interval)
returns table (id uuid, token text, expires_at timestamptz)
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations := private.pending_invitation(resend_invitation.invitation_id);
begin
  if invitation.revoked_at is not null then
    raise exception 'the invitation was revoked' using errcode = 'invalid_parameter_value';
  end if;
  if valid_for is null or valid_for < interval '1 hour' or valid_for > interval '30 days' then
    raise exception 'an invitation is valid for 1 hour to 30 days' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.send_count >= 10 then
    raise exception 'this invitation was sent 10 times already' using errcode = 'invalid_parameter_value',
      hint = 'Revoke it and invite again.';
  end if;
  update public.invitations i
  set expires_at = pg_catalog.now() + valid_for, last_sent_at = pg_catalog.now(), send_count = i.send_count + 1
  where i.id = invitation.id
  returning * into invitation;
  -- A new token: the one sent before stops working.
  return query select invitation.id, private.new_invitation_token(invitation.id), invitation.expires_at;
end;
$$;

create function public.resend_invitation(invitation_id uuid, valid_for interval default interval '7 days')
returns table (id uuid, token text, expires_at timestamptz)
language sql
security invoker
set search_path = ''
as $$
  select * from private.resend_invitation(resend_invitation.invitation_id, resend_invitation.valid_for);
$$;
comment on function public.resend_invitation(uuid, interval) is 'Issues a new token for a pending (or expired) invitation and extends it; the previous token stops working.';

create function private.accept_invitation(token text)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := private.require_user();
  invitation public.invitations;
  joined public.memberships;
begin
  select i.* into invitation
  from private.invitation_tokens t join public.invitations i on i.id = t.invitation_id
  where t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(coalesce(accept_invitation.token, ''), 'UTF8'))
  for update of i;
  if not found then
    raise exception 'invitation not found' using errcode = 'no_data_found';
  end if;
  if invitation.accepted_at is not null then
    raise exception 'this invitation was already used' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.revoked_at is not null then
    raise exception 'this invitation was revoked' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.expires_at <= pg_catalog.now() then
    raise exception 'this invitation has expired' using errcode = 'invalid_parameter_value',
      hint = 'Ask for a new one.';
  end if;
  if lower(coalesce(auth.email(), '')) <> invitation.email then
    raise exception 'this invitation is for another e-mail address' using errcode = 'insufficient_privilege';
  end if;
  if exists (select 1 from public.memberships m where m.org_id = invitation.org_id and m.user_id = caller_id) then
    raise exception 'you are already a member of this organization' using errcode = 'unique_violation';
  end if;

  -- The token's hash stays, so a second use is told "already used" rather than "not found".
  update public.invitations set accepted_at = pg_catalog.now(), accepted_by = caller_id
  where id = invitation.id;
  insert into public.memberships (org_id, user_id, role)
  values (invitation.org_id, caller_id, invitation.role)
  returning * into joined;
  return joined;
end;
$$;

create function public.accept_invitation(token text)
returns public.memberships
language sql
security invoker
set search_path = ''
as $$
  select * from private.accept_invitation(accept_invitation.token);
$$;
comment on function public.accept_invitation(text) is 'Joins the organization with the invitation''s role. The token is single-use and works only for the invited e-mail address.';

-- ---------------------------------------------------------------------------
-- Members
-- ---------------------------------------------------------------------------

create function private.target_membership(org_id uuid, user_id uuid)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.memberships;
begin
  select * into target from public.memberships m
  where m.org_id = target_membership.org_id and m.user_id = target_membership.user_id
  for update;
  if not found then
    raise exception 'no such member in this organization' using errcode = 'no_data_found';
  end if;
  return target;
end;
$$;

create function private.change_member_role(org_id uuid, user_id uuid, role public.org_role)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role := private.require_permission(change_member_role.org_id, 'members.change_role');
  target public.memberships := private.target_membership(change_member_role.org_id, change_member_role.user_id);
begin
  if change_member_role.role is null then
    raise exception 'a role is required' using errcode = 'invalid_parameter_value';
  end if;
  if change_member_role.role > caller_role then
    raise exception 'you cannot grant a role above your own (%)', caller_role using errcode = 'insufficient_privilege';
  end if;
  if target.role > caller_role then
    raise exception 'only owners can change an owner''s role' using errcode = 'insufficient_privilege';
  end if;
  update public.memberships m set role = change_member_role.role
  where m.org_id = target.org_id and m.user_id = target.user_id
  returning * into target;
  return target;
end;
$$;

create function public.change_member_role(org_id uuid, user_id uuid, role public.org_role)
returns public.memberships
language sql
security invoker
set search_path = ''
as $$
  select * from private.change_member_role(change_member_role.org_id, change_member_role.user_id, change_member_role.role);
$$;
comment on function public.change_member_role(uuid, uuid, public.org_role) is 'Sets a member''s role: never above the caller''s own; an owner''s role only by an owner; the last owner stays.';

create function private.remove_member(org_id uuid, user_id uuid)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_role public.org_role := private.require_permission(remove_member.org_id, 'members.remove');
  target public.memberships := private.target_membership(remove_member.org_id, remove_member.user_id);
begin
  if target.role > caller_role then
    raise exception 'only owners can remove an owner' using errcode = 'insufficient_privilege';
  end if;
  delete from public.memberships m where m.org_id = target.org_id and m.user_id = target.user_id;
  return target;
end;
$$;

create function public.remove_member(org_id uuid, user_id uuid)
returns public.memberships
language sql
security invoker
set search_path = ''
as $$
  select * from private.remove_member(remove_member.org_id, remove_member.user_id);
$$;
comment on function public.remove_member(uuid, uuid) is 'Removes a member (owners only by owners; never the last owner). Returns the removed membership.';

create function private.leave_organization(org_id uuid)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.memberships := private.target_membership(leave_organization.org_id, private.require_user());
begin
  delete from public.memberships m where m.org_id = target.org_id and m.user_id = target.user_id;
  return target;
end;
$$;

create function public.leave_organization(org_id uuid)
returns public.memberships
language sql
security invoker
set search_path = ''
as $$
  select * from private.leave_organization(leave_organization.org_id);
$$;
comment on function public.leave_organization(uuid) is 'Leaves the organization (any role). The last owner must transfer ownership first.';

create function private.transfer_ownership(org_id uuid, new_owner_id uuid)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := private.require_user();
  target public.memberships;
begin
  perform private.require_permission(transfer_ownership.org_id, 'ownership.transfer');
  target := private.target_membership(transfer_ownership.org_id, transfer_ownership.new_owner_id);
  if target.user_id = caller then
    raise exception 'you already own this organization' using errcode = 'invalid_parameter_value';
  end if;
  update public.memberships m set role = 'owner'
  where m.org_id = target.org_id and m.user_id = target.user_id
  returning * into target;
  update public.memberships m set role = 'admin'
  where m.org_id = transfer_ownership.org_id and m.user_id = caller;
  return target;
end;
$$;

create function public.transfer_ownership(org_id uuid, new_owner_id uuid)
returns public.memberships
language sql
security invoker
set search_path = ''
as $$
  select * from private.transfer_ownership(transfer_ownership.org_id, transfer_ownership.new_owner_id);
$$;
comment on function public.transfer_ownership(uuid, uuid) is 'Makes another member the owner; the caller becomes an admin.';

-- ---------------------------------------------------------------------------
-- Execution grants: the RPCs to signed-in users, and the definer entry point
-- behind each (private is not exposed, so only these RPCs reach it). The
-- helpers those entry points call run as the definer and need no grant.
-- ---------------------------------------------------------------------------

grant execute on function
  public.my_permissions(uuid),
  public.create_organization(text, text),
  public.invite_member(uuid, text, public.org_role, interval),
  public.revoke_invitation(uuid),
  public.resend_invitation(uuid, interval),
  public.accept_invitation(text),
  public.change_member_role(uuid, uuid, public.org_role),
  public.remove_member(uuid, uuid),
  public.leave_organization(uuid),
  public.transfer_ownership(uuid, uuid),
  private.create_organization(text, text),
  private.invite_member(uuid, text, public.org_role, interval),
  private.revoke_invitation(uuid),
  private.resend_invitation(uuid, interval),
  private.accept_invitation(text),
  private.change_member_role(uuid, uuid, public.org_role),
  private.remove_member(uuid, uuid),
  private.leave_organization(uuid),
  private.transfer_ownership(uuid, uuid)
to authenticated;
