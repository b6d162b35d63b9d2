-- The paths 20261123008600 left unordered, in the project's lock order:
--
--   the org row (for no key update) -> the org's active subscription (for update) -> a document row ->
--   advisory 8600 -> chunk term rows -> advisory 7700 (shared) -> the org's audit chain head (H), last.
--
-- Each deadlock below was read from the lock sequences of both sides (PGlite runs one session; pgTAP 269
-- checks the order at each path's first audited write, as 259 does).
--
-- 1. Analytics marks against a zone change. An audited write of a call, conversation or appointment took H
--    in its row's audit trigger, then the analytics marker lock (7700, shared) in the statement's mark
--    trigger, which fires after every row trigger; a zone change (an update of organizations.time_zone)
--    takes 7700 exclusive in analytics_org_zone_changed, then H in the org row's audit trigger (`audit`
--    fires after `analytics_org_zone_changed`), as apply_call_events does (7700, then heads: 20261123008700).
--    Every audited row now takes its org's 7700 shared just before H: a before-insert trigger on audit_log
--    that fires before audit_log_chain. Shared locks never conflict; the zone change's own audit asks for
--    the shared lock it holds exclusive, which a transaction's own lock grants. A writer that took H holds
--    7700 from then on, so its marks re-take a lock it holds. What this costs: a zone change waits for every
--    open transaction with an audited write of the org (it waited for their heads already), and new audited
--    writes of the org queue behind a waiting zone change, as marks did.
--
-- 2. A direct delete of an auth.users row (the Auth admin API, SQL). Its before-delete triggers disconnect
--    the user's calendars and revoke their invitations (audited: H), and then the cascade deletes their
--    memberships, whose owner rows lock the org row (memberships_lock_org_for_owner_delete, the last-owner
--    check) after H, against the paths that lock the org row, then H (validate_bot, create_api_key,
--    change_member_role). A before-delete trigger that fires first (on_auth_user_deleted_a_lock_orgs: before
--    triggers fire in name order) now locks the user's org rows (private.lock_orgs_of_user) in org order.
--    The delete's set-null actions lock two more kinds of rows after H. The documents the user created
--    (documents.created_by), which delete_organization locks before the org row (3): a deletion holding the
--    org rows waited for a document delete_organization held while it waited for an org row, 40P01 on a
--    Postgres 15 model. lock_orgs_of_user locks them first (for no key update, the set-null's mode, in id
--    order; both sides take documents in id order, so whoever gets them first goes on). And the orgs the
--    user created (organizations.created_by), which join the org rows it locks, in the same org order.
--
-- 3. delete_organization against a running finish_ingest. The ingest step locks its document (in the
--    ingest function's first statement), writes the chunks (their foreign key key-share locks the org row)
--    and marks the document ready (audited: H). delete_organization locked the org row `for update` (which
--    the key-share lock waits for), then its final invoice took H, and the cascade waited for the
--    document. It now locks the org's documents (`for update`, in id order) before the org row, so a
--    running step commits first and a later step finds its document gone. Documents come before the org
--    row here only: no path locks an org row (nor key-shares it) and then waits for an existing document
--    (upload batches insert new ones; a file uploaded to a document's path locks the document before its
--    org-row key share, see the end of this file; retries, deletions, the sweepers and the ingest start from
--    the document; a user's deletion locks the user's documents before the org rows, 2).
--
-- 4. delete_account and delete_user deleted the user's memberships in one statement, in scan order: an
--    owner's row locked its org row after the heads of the orgs before it, so two deletions over the same
--    two orgs could each hold one org and wait for the other. Both now lock the user's org rows first, in
--    org order (private.lock_orgs_of_user: any two deletions sharing an org run one after the other), and
--    delete the memberships org by org in org order, so the heads come in org order too.
--
-- Not ordered here:
-- * A zone change of several orgs in one UPDATE against a writer with audited writes in two of them: the
--   zone change takes 7700 exclusive per row in the statement's row order, the writer 7700 shared per org
--   in its own order.
-- * private.redact_audit_records of an org (service role) against a zone change of it: the redaction at the
--   commit locks the head, then appends its record, which takes 7700 shared, when its transaction had no
--   audited write of the org.
-- * A direct auth.users delete still writes its orgs' heads in the order its triggers find the rows (the
--   org rows it locks first serialise it against the other deletions and the org-row paths, not against
--   a multi-org writer such as a call-event batch or generate_invoices taking heads in another order).
-- * A user's deletion against the writers that hold a row the user created and then wait for the org's head
--   (a call-event batch holding a call the user queued): the delete's set-null actions on calls, bots,
--   appointments and the other created_by columns lock those rows after the heads of the membership
--   deletes. Likewise a document the user uploads between delete_user's lock and its auth.users delete is
--   locked by the trigger's second pass, after those heads.
-- * delete_organization against the other writers that lock an existing row of the org before their head
--   (a call, a conversation, a calendar connection...): it takes the head (the final invoice's audited
--   cancellation) before its cascade reaches their rows. Ordering every one needs it to lock every such
--   row of the org before its head.

-- ---------------------------------------------------------------------------
-- 1. Every audited row takes its org's analytics marker lock before the head.
-- ---------------------------------------------------------------------------

create function private.lock_analytics_marks_for_audit()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock_shared(7700, pg_catalog.hashtext(new.org_id::text));
  return new;
end;
$$;
comment on function private.lock_analytics_marks_for_audit() is
  'Before an audit row takes its org''s chain head: the org''s analytics marker lock (7700, shared), which a zone change takes exclusive before the head (20261123009600).';
revoke execute on function private.lock_analytics_marks_for_audit() from public, anon, authenticated, service_role;

-- Before triggers fire in name order: before audit_log_chain, which locks the head.
create trigger audit_log_analytics_marker_lock before insert on public.audit_log
  for each row execute function private.lock_analytics_marks_for_audit();

-- ---------------------------------------------------------------------------
-- 2 and 4. A user's org rows, locked first.
-- ---------------------------------------------------------------------------

-- The rows a user's deletion writes to: the documents they created (created_by set null), then the orgs of
-- their memberships, of the calendars they connected, of the invitations they sent (pending ones are
-- revoked) or accepted (deleted with them), and the orgs they created (created_by set null).
create function private.lock_orgs_of_user(user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.documents d where d.created_by = lock_orgs_of_user.user_id order by d.id for no key update;
  perform 1 from public.organizations o
  where o.id in (
    select m.org_id from public.memberships m where m.user_id = lock_orgs_of_user.user_id
    union
    select x.id from public.organizations x where x.created_by = lock_orgs_of_user.user_id
    union
    select c.org_id from public.calendar_connections c where c.connected_by = lock_orgs_of_user.user_id
    union
    select i.org_id from public.invitations i
    where i.invited_by = lock_orgs_of_user.user_id and i.accepted_at is null and i.revoked_at is null
    union
    select i.org_id from public.invitations i where i.accepted_by = lock_orgs_of_user.user_id
  )
  order by o.id
  for no key update;
end;
$$;
comment on function private.lock_orgs_of_user(uuid) is
  'Locks the documents a user created (for no key update, in id order), then the org rows (for no key update, in org order) of every org a user''s deletion writes to, before its first audited write (20261123009600). Internal.';
revoke execute on function private.lock_orgs_of_user(uuid) from public, anon, authenticated, service_role;

create function private.lock_orgs_of_deleted_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform private.lock_orgs_of_user(old.id);
  return old;
end;
$$;
comment on function private.lock_orgs_of_deleted_user() is
  'Before an auth.users row is deleted, ahead of the triggers that write to its orgs: locks the user''s documents in id order, then those orgs'' rows in org order (20261123009600).';
revoke execute on function private.lock_orgs_of_deleted_user() from public, anon, authenticated, service_role;

-- Named to fire before on_auth_user_deleted_disconnect_calendars, _redact_audit and _revoke_invitations.
create trigger on_auth_user_deleted_a_lock_orgs
  before delete on auth.users
  for each row execute function private.lock_orgs_of_deleted_user();

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the org rows locked first and the
-- memberships deleted org by org in org order are new.
create or replace function private.delete_account()
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := private.require_user();
  member_org uuid;
begin
  perform private.lock_orgs_of_user(caller);
  perform private.require_not_sole_owner(caller);
  for member_org in
    select m.org_id from public.memberships m where m.user_id = caller order by m.org_id
  loop
    delete from public.memberships m where m.user_id = caller and m.org_id = member_org;
  end loop;
  insert into private.account_deletions (user_id) values (caller)
  on conflict on constraint account_deletions_pkey do update set requested_at = excluded.requested_at, completed_at = null;
end;
$$;

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the org rows locked first and the
-- memberships deleted org by org in org order are new.
create or replace function private.delete_user(user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  member_org uuid;
begin
  if user_id is null then
    raise exception 'user_id is required' using errcode = 'invalid_parameter_value';
  end if;
  perform private.lock_orgs_of_user(delete_user.user_id);
  -- Ownership may have changed since delete_account: checked again.
  perform private.require_not_sole_owner(delete_user.user_id);
  for member_org in
    select m.org_id from public.memberships m where m.user_id = delete_user.user_id order by m.org_id
  loop
    delete from public.memberships m where m.user_id = delete_user.user_id and m.org_id = member_org;
  end loop;
  delete from auth.users u where u.id = delete_user.user_id;
  if not found then
    return false;
  end if;
  insert into private.account_deletions as d (user_id, completed_at) values (delete_user.user_id, pg_catalog.now())
  on conflict on constraint account_deletions_pkey do update set completed_at = excluded.completed_at;
  return true;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. delete_organization locks the org's documents before the org row.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the documents locked before the org row
-- is new (the name is checked first, so a wrong name locks nothing).
create or replace function private.delete_organization(org_id uuid, confirm_name text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.organizations;
begin
  perform private.require_permission(delete_organization.org_id, 'org.delete');
  select * into target from public.organizations o where o.id = delete_organization.org_id;
  if not found then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  -- A running ingest step holds its document and then needs the org row's key share and the head: it
  -- commits before the org row is locked (see the header).
  perform 1 from public.documents d where d.org_id = target.id order by d.id for update;
  select * into target from public.organizations o where o.id = delete_organization.org_id for update;
  if not found then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  delete from public.organizations o where o.id = target.id;
end;
$$;

-- ---------------------------------------------------------------------------
-- A file uploaded to a document's path locks the document before the org row
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123005700_no_files_for_deleted_orgs.sql. An upload to a registered document's path
-- key-shared the org row here, then its after-insert trigger (queue_uploaded_document) updated the document;
-- delete_organization locks the org's documents, then the org row: 40P01 (found by review, reproduced on a
-- Postgres 15 model). The document at the path is now locked first, as the update will lock it, so an upload
-- takes document → org row, the order delete_organization takes.
create or replace function private.refuse_deleted_org_objects()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org uuid := private.object_org_id(new.name);
begin
  if org is null or not exists (select 1 from private.org_buckets b where b.bucket_id = new.bucket_id) then
    return new;
  end if;
  if new.bucket_id = 'knowledge' then
    perform 1 from public.documents d where d.storage_path = new.name for no key update;
  end if;
  -- Held until the upload commits: a deletion of the org waits for it, so its removal lists this object.
  perform 1 from public.organizations o where o.id = org for key share;
  if not found and exists (select 1 from private.deleted_organizations d where d.org_id = org) then
    raise exception 'organization % was deleted; nothing can be stored under its prefix', org
      using errcode = 'foreign_key_violation';
  end if;
  return new;
end;
$$;
