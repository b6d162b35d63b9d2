-- Invitations only for a confirmed e-mail address, and settings numbers that
-- reach their validation whatever their size.
--
-- 1. accept_invitation matched the invitation's e-mail against the caller's
--    JWT e-mail only. Supabase Auth can give a session to a user whose
--    address is not confirmed (email_confirmed_at null: an OAuth identity
--    whose provider reports the address unverified, a user the admin API
--    created without email_confirm, a project letting unverified users sign
--    in), so anyone could sign up with the invitee's address and join the
--    organization. Acceptance now reads the caller's auth.users row: its
--    e-mail must equal the invitation's (case-insensitively, as before) and
--    email_confirmed_at must be set; otherwise 42501 and nothing changes. The
--    row, not the token, is the source: a JWT minted before an e-mail change
--    still carries the old address. (With confirmations off, Supabase Auth
--    confirms every address at sign-up, as the seed and tests.create_user do.)
-- 2. org_settings.speaking_rate, interruption_sensitivity and temperature, and
--    bots.temperature, were numeric(3, 2): a value of 10 or more (12.5, 1000)
--    failed the type coercion with 22003 "numeric field overflow" before any
--    trigger or check ran, so the client never saw the documented error. They
--    are now plain numeric; the value is rounded to 2 decimals in a before
--    trigger (what numeric(3, 2) did on the way in, half away from zero, so
--    stored values, their JSON and the audit log look as before) and then
--    checked: org settings keep their 22023 messages naming the field and its
--    range (private.validate_org_settings), bots keep their range check
--    constraint (23514 bots_temperature_range, as for 2.5 before). The range
--    check constraints stay as the last guard. No view, rule or index uses
--    these columns, so the type changes in place (no rewrite: only the
--    typmod goes); column grants and comments are kept.

-- ---------------------------------------------------------------------------
-- 1. Invitations: the caller's confirmed e-mail address.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000400_team.sql; only the e-mail check (the
-- caller's auth.users row, confirmed) is new.
create or replace function private.accept_invitation(token text)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := private.require_user();
  invitation public.invitations;
  joined public.memberships;
  caller_email text;
  caller_email_confirmed_at timestamptz;
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
  -- The address Supabase Auth holds for the caller, and whether they proved
  -- they own it; the JWT's e-mail claim says neither.
  select u.email, u.email_confirmed_at into caller_email, caller_email_confirmed_at
  from auth.users u where u.id = caller_id;
  if pg_catalog.lower(coalesce(caller_email, '')) <> invitation.email then
    raise exception 'this invitation is for another e-mail address' using errcode = 'insufficient_privilege';
  end if;
  if caller_email_confirmed_at is null then
    raise exception 'confirm your e-mail address before accepting an invitation' using errcode = 'insufficient_privilege',
      hint = 'Open the confirmation link sent to that address, then accept the invitation again.';
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

comment on function public.accept_invitation(text) is 'Joins the organization with the invitation''s role. The token is single-use and works only for the invited e-mail address, once the caller has confirmed it.';

-- ---------------------------------------------------------------------------
-- 2. Settings numbers: plain numeric, rounded and checked by triggers.
-- ---------------------------------------------------------------------------

alter table public.org_settings
  alter column speaking_rate type numeric,
  alter column speaking_rate set default 1.00,
  alter column interruption_sensitivity type numeric,
  alter column interruption_sensitivity set default 0.50,
  alter column temperature type numeric,
  alter column temperature set default 0.30;

alter table public.bots
  alter column temperature type numeric,
  alter column temperature set default 0.30;

-- Latest definition: 20261123001600_settings_billing_deletion.sql; only the
-- rounding of speaking_rate, interruption_sensitivity and temperature to 2
-- decimals (what numeric(3, 2) did) is new.
create or replace function private.validate_org_settings()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  problem text := private.notification_preferences_problem(new.notification_preferences, 'org');
  model public.chat_models;
begin
  if problem is not null then
    raise exception '%', problem using errcode = 'invalid_parameter_value',
      hint = 'Keys are event types of public.event_types or "*"; values {"in_app": [roles], "webhook": true|false}.';
  end if;
  if new.voice is null or new.voice !~ '^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,99}$' then
    raise exception 'a voice is 1 to 100 letters, digits, spaces, dots, colons, underscores or hyphens'
      using errcode = 'invalid_parameter_value';
  end if;
  if new.voice_language is null or new.voice_language !~ '^[a-z]{2,3}(-[A-Z]{2})?$' then
    raise exception 'the voice language is a language tag such as en or pt-BR, not %', coalesce(new.voice_language, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  -- Two decimals, as the columns' former numeric(3, 2) stored them; the
  -- ranges are checked on the rounded value (2.004 is 2.00, 2.005 is 2.01).
  new.speaking_rate := pg_catalog.round(new.speaking_rate, 2);
  new.interruption_sensitivity := pg_catalog.round(new.interruption_sensitivity, 2);
  new.temperature := pg_catalog.round(new.temperature, 2);
  if new.speaking_rate is null or new.speaking_rate not between 0.5 and 2.0 then
    raise exception 'the speaking rate is between 0.5 and 2.0' using errcode = 'invalid_parameter_value';
  end if;
  if new.interruption_sensitivity is null or new.interruption_sensitivity not between 0 and 1 then
    raise exception 'the interruption sensitivity is between 0 and 1' using errcode = 'invalid_parameter_value';
  end if;
  if new.temperature is null or new.temperature not between 0 and 2 then
    raise exception 'the temperature is between 0 and 2' using errcode = 'invalid_parameter_value';
  end if;
  select * into model from public.chat_models m where m.id = new.default_chat_model;
  if not found then
    raise exception 'unknown model: %', coalesce(new.default_chat_model, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.chat_models.';
  end if;
  if not model.enabled and (tg_op = 'INSERT' or new.default_chat_model is distinct from old.default_chat_model) then
    raise exception 'the model % is disabled and cannot be chosen', model.id using errcode = 'invalid_parameter_value';
  end if;
  if new.max_tokens is null or new.max_tokens not between 1 and least(8192, model.max_output_tokens) then
    raise exception 'max_tokens is between 1 and % for %', least(8192, model.max_output_tokens), model.id
      using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;

-- bots.temperature: rounded on every write that sets it, whoever writes
-- (private.validate_bot runs only for some columns and leaves non-managers to
-- RLS); the range stays with bots_temperature_range.
create function private.round_bot_temperature()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.temperature := pg_catalog.round(new.temperature, 2);
  return new;
end;
$$;
comment on function private.round_bot_temperature() is 'Rounds bots.temperature to 2 decimals, as its former numeric(3, 2) type did.';

create trigger bots_round_temperature before insert or update of temperature on public.bots
  for each row execute function private.round_bot_temperature();
