-- The audit log: one row per insert, update and delete on every tenant table,
-- written by a trigger so no code path can skip it, append-only for every
-- role, and hash-chained per organization so that a changed, removed or
-- reordered row is detectable (public.verify_audit_chain).
--
-- Who reads it: owners and admins of the org (permission `audit.read`) and
-- platform admins. Members and viewers do not: the log holds every field
-- value of every write, including invitation e-mails and key names.
--
-- The actor is the signed-in user (auth.uid()) and, when an edge function
-- acts for an API key, the key's id from the `api_key_id` claim of the JWT
-- the function runs the transaction under.

create table public.audit_log (
  id bigint generated always as identity primary key,
  org_id uuid not null,
  seq bigint not null,
  actor_user_id uuid,
  actor_api_key_id uuid,
  action text not null constraint audit_log_action check (action in ('insert', 'update', 'delete')),
  table_name text not null,
  record_id text,
  old_values jsonb,
  new_values jsonb,
  created_at timestamptz not null default clock_timestamp(),
  prev_hash bytea not null,
  hash bytea not null,
  -- No foreign key to organizations: the history outlives a deleted org.
  constraint audit_log_org_seq unique (org_id, seq)
);
comment on table public.audit_log is 'Append-only, hash-chained log of every write to a tenant table. Readable by org owners and admins and by platform admins.';
comment on column public.audit_log.seq is 'Position in the org''s chain, from 1 without gaps.';
comment on column public.audit_log.hash is 'sha256(prev_hash || canonical form of this row); see private.audit_row_hash.';

-- The head of each org's chain. Updating it row-locks the org's chain, so
-- concurrent writers in one org append one after the other.
create table private.audit_chain_heads (
  org_id uuid primary key,
  last_seq bigint not null,
  last_hash bytea not null
);

create function private.audit_genesis_hash(org_id uuid)
returns bytea
language sql
immutable
security invoker
set search_path = ''
as $$
  select pg_catalog.sha256(pg_catalog.convert_to('audit-chain:' || org_id::text, 'UTF8'));
$$;

create function private.audit_row_hash(
  prev_hash bytea,
  org_id uuid,
  seq bigint,
  actor_user_id uuid,
  actor_api_key_id uuid,
  action text,
  table_name text,
  record_id text,
  old_values jsonb,
  new_values jsonb,
  created_at timestamptz
)
returns bytea
language sql
stable
security invoker
set search_path = ''
as $$
  -- jsonb's text form is canonical (keys sorted, no duplicates) and the time
  -- is rendered in UTC, so the hash does not depend on session settings.
  select pg_catalog.sha256(
    prev_hash || pg_catalog.convert_to(
      pg_catalog.jsonb_build_array(
        org_id, seq, actor_user_id, actor_api_key_id, action, table_name, record_id,
        old_values, new_values,
        pg_catalog.to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )::text,
      'UTF8'
    )
  );
$$;

-- Every insert into the log is chained here, whoever inserts it.
create function private.chain_audit_row()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  head_seq bigint;
  head_hash bytea;
begin
  insert into private.audit_chain_heads (org_id, last_seq, last_hash)
  values (new.org_id, 0, private.audit_genesis_hash(new.org_id))
  on conflict (org_id) do nothing;

  select h.last_seq, h.last_hash into head_seq, head_hash
  from private.audit_chain_heads h where h.org_id = new.org_id
  for update;

  new.seq := head_seq + 1;
  new.prev_hash := head_hash;
  new.created_at := pg_catalog.clock_timestamp();
  new.hash := private.audit_row_hash(
    new.prev_hash, new.org_id, new.seq, new.actor_user_id, new.actor_api_key_id, new.action,
    new.table_name, new.record_id, new.old_values, new.new_values, new.created_at
  );

  update private.audit_chain_heads
  set last_seq = new.seq, last_hash = new.hash
  where org_id = new.org_id;
  return new;
end;
$$;

create trigger audit_log_chain before insert on public.audit_log
  for each row execute function private.chain_audit_row();

-- Append-only for everyone, the service role and the table owner included.
create function private.refuse_audit_log_change()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  raise exception 'the audit log is append-only: % is not allowed', lower(tg_op)
    using errcode = 'insufficient_privilege';
end;
$$;

create trigger audit_log_append_only before update or delete on public.audit_log
  for each row execute function private.refuse_audit_log_change();
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function private.refuse_audit_log_change();

alter table public.audit_log enable row level security;
revoke all on public.audit_log from anon, authenticated, service_role;
grant select on public.audit_log to authenticated, service_role;

create policy "owners, admins and platform admins can read their org's audit log"
  on public.audit_log for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('audit.read'))));

-- ---------------------------------------------------------------------------
-- The generic audit trigger. Attach to every tenant table:
--   create trigger audit after insert or update or delete on public.<t>
--     for each row execute function private.audit_row_change([org column[, key columns...]]);
-- Arguments: the column holding the org id (default org_id), then the
-- columns forming the record id (default id), joined with ':'.
-- ---------------------------------------------------------------------------

create function private.audit_row_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  org_column text := coalesce(tg_argv[0], 'org_id');
  key_columns text[] := case when tg_nargs > 1 then tg_argv[1:] else array['id'] end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  current_row jsonb := coalesce(new_row, old_row);
  changed_old jsonb;
  changed_new jsonb;
  claimed_key_id text := auth.jwt() ->> 'api_key_id';
begin
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
comment on function private.audit_row_change() is 'Generic audit trigger for tenant tables: args (org column, key columns...).';

create trigger audit after insert or update or delete on public.organizations
  for each row execute function private.audit_row_change('id', 'id');
create trigger audit after insert or update or delete on public.memberships
  for each row execute function private.audit_row_change('org_id', 'org_id', 'user_id');

-- ---------------------------------------------------------------------------
-- Chain verification. Recomputes every hash of the org's chain and checks the
-- links, the sequence and the head, so an edited, deleted, inserted or
-- truncated-at-the-end row is reported with the first sequence number where
-- the chain breaks.
-- ---------------------------------------------------------------------------

create function private.verify_audit_chain(org_id uuid)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  entry record;
  expected_seq bigint := 1;
  expected_prev bytea := private.audit_genesis_hash(verify_audit_chain.org_id);
  head private.audit_chain_heads%rowtype;
begin
  if not (
    auth.role() = 'service_role'
    or private.is_platform_admin()
    or private.has_permission(verify_audit_chain.org_id, 'audit.read')
  ) then
    raise exception 'you may not read this organization''s audit log'
      using errcode = 'insufficient_privilege';
  end if;

  for entry in
    select * from public.audit_log a where a.org_id = verify_audit_chain.org_id order by a.seq
  loop
    if entry.seq <> expected_seq then
      return query select false, expected_seq - 1, expected_seq, 'a row is missing or out of order';
      return;
    end if;
    if entry.prev_hash <> expected_prev then
      return query select false, expected_seq - 1, entry.seq, 'prev_hash does not match the previous row';
      return;
    end if;
    if entry.hash <> private.audit_row_hash(
      entry.prev_hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
      entry.table_name, entry.record_id, entry.old_values, entry.new_values, entry.created_at
    ) then
      return query select false, expected_seq - 1, entry.seq, 'the row''s contents do not match its hash';
      return;
    end if;
    expected_prev := entry.hash;
    expected_seq := expected_seq + 1;
  end loop;

  select * into head from private.audit_chain_heads h where h.org_id = verify_audit_chain.org_id;
  if coalesce(head.last_seq, 0) <> expected_seq - 1
    or (head.last_seq is not null and head.last_hash <> expected_prev) then
    return query select false, expected_seq - 1, expected_seq, 'rows are missing at the end of the chain';
    return;
  end if;

  return query select true, expected_seq - 1, null::bigint, null::text;
end;
$$;
grant execute on function private.verify_audit_chain(uuid) to authenticated, service_role;

create function public.verify_audit_chain(org_id uuid)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text)
language sql
stable
security invoker
set search_path = ''
as $$
  select * from private.verify_audit_chain(verify_audit_chain.org_id);
$$;
comment on function public.verify_audit_chain(uuid) is 'Checks the org''s audit hash chain. Owners, admins and platform admins only.';
grant execute on function public.verify_audit_chain(uuid) to authenticated, service_role;
