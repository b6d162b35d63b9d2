-- Deleting a busy organization within the time limits.
--
-- private.delete_organization's one delete cascades to every row of the org, and row triggers ran on each:
-- an audit row per row, each taking and updating the org's single chain head (quadratic within the one
-- transaction), then the commit-time redaction rewrote all of them. 5k calls, 1k conversations and 5k messages
-- took 7-9 s on PGlite and 4x the rows 8.8x as long: past PostgREST's 8 s statement_timeout for `authenticated`
-- and the edge function's 150 s, so the deletion rolled back and a busy org's personal data could never be removed.
--
-- While delete_organization deletes an org, the rows its cascade removes or changes (set null) are no longer
-- audited one by one: the org's own deletion stays audited (with the actor), the final invoice's writes come
-- before the org row goes and stay audited, and private.deleted_organizations keeps the rows per table. The
-- per-row entries were redacted at the commit anyway, leaving only table, record id and time.
--
-- The marker (private.deleting_org, transaction-local) is set only by delete_organization. set_config is open
-- to every role, through PostgREST too, so the marker alone is not trusted. A row is skipped only once its org
-- row is gone in this transaction, and users cannot delete that row but through delete_organization (no DELETE
-- privilege since 20261123010400). The org row's delete must also run as a role that is none of the API's,
-- else the marker is cleared: checked by an invoker before-delete trigger on organizations, where current_user
-- is still the deleting statement's role (inside the definer audit trigger, and in the cascade, which runs as
-- the tables' owner, it says nothing). So a marker a user sets for their live org skips nothing, and the
-- service role's direct delete stays audited row by row.
--
-- Broadcasts need nothing new: broadcast_org_change has skipped a deletion whose org is gone since
-- 20261123008500, and the cascade's set-null actions found their rows already deleted (measured: no update
-- was audited or broadcast). The other row triggers on the cascaded tables stay: they do the deletion's work
-- (calendar grants queued for revocation, memberships' owner and invitation checks, call_events' append-only
-- guard, which already lets a gone org's rows go) or fire only on updates (set_updated_at, validations).

-- ---------------------------------------------------------------------------
-- The marker
-- ---------------------------------------------------------------------------

create function private.org_cascade_unaudited(org_id uuid)
returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  select pg_catalog.current_setting('private.deleting_org', true) = org_cascade_unaudited.org_id::text
    and not exists (select 1 from public.organizations o where o.id = org_cascade_unaudited.org_id);
$$;
comment on function private.org_cascade_unaudited(uuid) is 'True while private.delete_organization''s cascade removes the org''s rows: the transaction''s marker names the org and its row is gone.';
revoke all on function private.org_cascade_unaudited(uuid) from public, anon, authenticated, service_role;

-- Invoker, so current_user is the role the org row's delete runs as.
create function private.check_org_deletion_marker()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if pg_catalog.current_setting('private.deleting_org', true) = old.id::text
    and current_user::text in ('anon', 'authenticated', 'service_role')
  then
    perform pg_catalog.set_config('private.deleting_org', '', true);
  end if;
  return old;
end;
$$;
comment on function private.check_org_deletion_marker() is 'Clears the private.deleting_org marker when an API role deletes the org row itself, so only private.delete_organization''s cascade goes unaudited row by row.';

create trigger organizations_check_deletion_marker before delete on public.organizations
  for each row execute function private.check_org_deletion_marker();

-- ---------------------------------------------------------------------------
-- The audit trigger
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000300_audit.sql; only the skip of the deleting org's cascaded rows is new (an
-- insert is always audited, and so is the organizations row itself). The values are read after it, so a
-- skipped row costs one lookup of the org row.
create or replace function private.audit_row_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org_column text := coalesce(tg_argv[0], 'org_id');
  key_columns text[] := case when tg_nargs > 1 then tg_argv[1:] else array['id'] end;
  new_row jsonb;
  old_row jsonb;
  current_row jsonb;
  changed_old jsonb;
  changed_new jsonb;
  claimed_key_id text;
begin
  if tg_op <> 'INSERT' then
    old_row := to_jsonb(old);
    if tg_relid <> 'public.organizations'::regclass
      and pg_catalog.current_setting('private.deleting_org', true) <> ''
      and private.org_cascade_unaudited((old_row ->> org_column)::uuid)
    then
      return null;
    end if;
  end if;
  if tg_op <> 'DELETE' then
    new_row := to_jsonb(new);
  end if;
  current_row := coalesce(new_row, old_row);
  claimed_key_id := auth.jwt() ->> 'api_key_id';

  if tg_op = 'UPDATE' then
    select pg_catalog.jsonb_object_agg(n.key, o.value), pg_catalog.jsonb_object_agg(n.key, n.value)
    into changed_old, changed_new
    from pg_catalog.jsonb_each(new_row) n
    join pg_catalog.jsonb_each(old_row) o using (key)
    where n.value is distinct from o.value;
    if changed_new is null then
      return null;
    end if;
  end if;

  insert into public.audit_log (
    org_id, seq, actor_user_id, actor_api_key_id, action, table_name, record_id,
    old_values, new_values, prev_hash, hash
  ) values (
    (current_row ->> org_column)::uuid,
    0,
    auth.uid(),
    case when claimed_key_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then claimed_key_id::uuid end,
    lower(tg_op),
    tg_table_name,
    (select pg_catalog.string_agg(current_row ->> k.name, ':' order by k.position) from unnest(key_columns) with ordinality as k(name, position)),
    case tg_op when 'UPDATE' then changed_old when 'DELETE' then old_row end,
    case tg_op when 'UPDATE' then changed_new when 'INSERT' then new_row end,
    '\x'::bytea,
    '\x'::bytea
  );
  return null;
end;
$$;
comment on function private.audit_row_change() is 'Generic audit trigger for tenant tables: args (org column, key columns...). Rows removed or changed by private.delete_organization''s cascade are not audited one by one (private.org_cascade_unaudited).';

-- ---------------------------------------------------------------------------
-- delete_organization sets the marker
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123009600_lock_order_remaining.sql; only the marker around the delete is new.
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
  -- commits before the org row is locked (see 20261123009600's header).
  perform 1 from public.documents d where d.org_id = target.id order by d.id for update;
  select * into target from public.organizations o where o.id = delete_organization.org_id for update;
  if not found then
    raise exception 'organization not found' using errcode = 'no_data_found';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.set_config('private.deleting_org', target.id::text, true);
  delete from public.organizations o where o.id = target.id;
  perform pg_catalog.set_config('private.deleting_org', '', true);
end;
$$;
