-- Account deletion and leavers.
--
-- 1. Anyone who joined through an invitation could not delete their account:
--    invitations.accepted_by was `on delete set null`, which the check
--    invitations_accepted_by ((accepted_at is null) = (accepted_by is null))
--    refuses, so private.delete_user and the Auth admin API's deleteUser
--    failed with 23514. An accepted invitation has done its job (the
--    membership it made is gone with the user) and holds the person's
--    e-mail: it is now deleted with the user (on delete cascade), token hash
--    included. Clearing accepted_by instead would have kept the e-mail and
--    needed the check loosened.
-- 2. A calendar stayed connected after the member who connected it left:
--    the org's bots kept reading their busy times and writing into their
--    calendar, and after account deletion the org kept their sealed OAuth
--    tokens (connected_by was merely set null). Now, whenever a user stops
--    being a member of an org (removed, left, membership deleted, user
--    deleted: the trigger points of revoke_invitations_of_former_inviter in
--    20261123004200), their connections in that org go the way of a
--    disconnect: marked revoked (nothing uses them from then on), then
--    deleted with their tokens by private.delete_calendar_connection.
--    Revoking the grant at the provider needs the token key, which only the
--    calendar function holds; the person can still remove the app's access
--    at Google or Microsoft.
-- 3. The generate-invoices job ran only at 02:00 UTC on the 1st, so a missed
--    or failed run left the month unbilled. It now runs daily: roll_subscriptions
--    only rolls periods that ended and generate_invoices makes one invoice
--    per org and ended month (a second run returns 0), so the days after the
--    1st make nothing new once the month is billed.

-- ---------------------------------------------------------------------------
-- 1. Accepted invitations go with the user who accepted them.
-- ---------------------------------------------------------------------------

alter table public.invitations
  drop constraint invitations_accepted_by_fkey,
  add constraint invitations_accepted_by_fkey
    foreign key (accepted_by) references auth.users (id) on delete cascade;

-- ---------------------------------------------------------------------------
-- 2. A leaver's calendar connections are disconnected.
-- ---------------------------------------------------------------------------

-- The disconnect of 20261123001400 (private.disconnect_calendar, then
-- private.delete_calendar_connection), for every connection a user made in
-- one org (all orgs when org_id is null), without the caller's permission
-- check: the membership that allowed it is what ended.
create function private.disconnect_calendars_of_leaver(org_id uuid, user_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  connection_id uuid;
  disconnected integer := 0;
begin
  for connection_id in
    update public.calendar_connections c
    set status = 'revoked', status_reason = 'the member who connected it left the organization'
    where c.connected_by = disconnect_calendars_of_leaver.user_id
      and (disconnect_calendars_of_leaver.org_id is null or c.org_id = disconnect_calendars_of_leaver.org_id)
    returning c.id
  loop
    perform private.delete_calendar_connection(connection_id);
    disconnected := disconnected + 1;
  end loop;
  return disconnected;
end;
$$;
comment on function private.disconnect_calendars_of_leaver(uuid, uuid) is 'Disconnects (revoked, then deleted with its tokens) every calendar connection the user connected in the org (every org when org_id is null); the count. Called by the triggers on memberships and auth.users.';

create function private.disconnect_calendars_of_former_member()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- The org itself is being deleted: its connections go with it.
  if not exists (select 1 from public.organizations o where o.id = old.org_id) then
    return null;
  end if;
  perform private.disconnect_calendars_of_leaver(old.org_id, old.user_id);
  return null;
end;
$$;

create trigger memberships_disconnect_calendars_of_former_member
  after delete on public.memberships
  for each row execute function private.disconnect_calendars_of_former_member();

-- As for invitations (20261123004200): a user deleted without delete_user
-- (the Auth admin API, SQL) loses their memberships by cascade, whose
-- triggers run only after connected_by was set null; so before the delete.
create function private.disconnect_calendars_of_deleted_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.disconnect_calendars_of_leaver(null, old.id);
  return old;
end;
$$;

create trigger on_auth_user_deleted_disconnect_calendars
  before delete on auth.users
  for each row execute function private.disconnect_calendars_of_deleted_user();

-- Backfill: connections whose connector is no longer a member of the org.
-- A null connected_by (the user was deleted before this migration) cannot be
-- told from a row written by SQL; those stay.
select private.disconnect_calendars_of_leaver(c.org_id, c.connected_by)
from (
  select distinct c.org_id, c.connected_by
  from public.calendar_connections c
  where c.connected_by is not null
    and not exists (
      select 1 from public.memberships m where m.org_id = c.org_id and m.user_id = c.connected_by
    )
) c;

comment on function private.delete_user(uuid) is 'Deletes a user''s account (memberships, then the auth.users row; profile, settings and the invitations they accepted cascade; the calendars they connected are disconnected); 23514 while they are the only owner of an org. False when there is no such user. Service role.';

revoke execute on function
  private.disconnect_calendars_of_leaver(uuid, uuid),
  private.disconnect_calendars_of_former_member(),
  private.disconnect_calendars_of_deleted_user()
from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- 3. Invoices: daily, so a missed run is made up. Latest definition:
--    20261123001600_settings_billing_deletion.sql; only the schedule is new
--    ('0 2 * * *', was '0 2 1 * *'); the command is the same.
-- ---------------------------------------------------------------------------

select cron.schedule('generate-invoices', '0 2 * * *',
  $$select private.roll_subscriptions(), private.generate_invoices((date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date)$$);
