-- A redactable audit log: deleting an organization (GDPR erasure) now erases
-- the field values its audit rows hold (customers' e-mails and phone numbers,
-- transcripts, notes, names...) while its hash chain still verifies and still
-- exposes tampering.
--
-- Hash versions (public.audit_log.hash_version):
--   1  rows written before this migration: hash = sha256(prev_hash || the row
--      with its values), private.audit_row_hash, unchanged.
--   2  rows written from this migration on: values_hash = sha256(values_salt
--      || canonical form of (old_values, new_values)) (private.audit_values_hash;
--      values_salt: 16 random bytes of the row), and hash = sha256(prev_hash ||
--      the row with values_hash in place of the values)
--      (private.audit_row_hash_v2). A version-2 row verifies while its values
--      match values_hash, and once redacted (values and salt null, redacted_at
--      set) through values_hash alone. The salt makes values_hash a hiding
--      commitment: once the salt is gone, a short value (a phone number, a
--      one-word note) cannot be found again by hashing guesses.
--
-- Redaction (private.redact_deleted_org_audit_log, run at the commit of any
-- transaction that deleted an organization, by a deferred trigger, and
-- callable by the service role for a deleted org): only for an org that no longer exists; nulls old_values,
-- new_values and values_salt of every row of its chain and sets redacted_at;
-- nothing else of the row changes (org, seq, actor, action, table, record id,
-- time and the hashes stay). It then appends a redaction record to the chain
-- (table_name 'audit_log', action 'update', by the deleting user), with the
-- number of rows redacted; verification checks that every redacted row is
-- accounted for by those records, so nulling the values of a row outside a
-- redaction is detected.
--
-- Version-1 rows cannot be checked against their hash once their values are
-- gone. They are redacted only when the whole chain verifies at that moment,
-- and the redaction record holds a seal: a sha256 fold, in chain order, of
-- every redacted version-1 row's other fields and stored hash
-- (private.audit_seal_step). The seal sits in a version-2 row of the chain,
-- so a later change to such a row (its actor, its hash...) breaks the seal,
-- and a changed seal breaks that row's hash. What stays of them: their hash
-- was taken over the values without a salt, so a short value of an update row
-- could still be found by hashing guesses against it (insert and delete rows
-- hold whole rows, random ids included). When the chain does not verify,
-- version-1 rows keep their values (counted as kept in the redaction record,
-- with a warning), so the evidence of the tampering is not erased; version-2
-- rows whose values do not match their values_hash are kept as well, for the
-- same reason.
--
-- Orgs deleted before this migration are redacted at the end of it.
--
-- Still append-only: delete and truncate are refused for everyone; the only
-- update allowed is exactly a redaction, by the redaction function (it flags
-- the org in a transaction-local setting), of a deleted org's row. The API
-- roles have no update privilege on the table at all.

alter table public.audit_log
  add column hash_version smallint not null default 1
    constraint audit_log_hash_version check (hash_version in (1, 2)),
  add column values_salt bytea,
  add column values_hash bytea,
  add column redacted_at timestamptz,
  add constraint audit_log_values_hash check ((values_hash is not null) = (hash_version = 2)),
  add constraint audit_log_values_salt check ((values_salt is not null) = (hash_version = 2 and redacted_at is null)),
  add constraint audit_log_redaction check (redacted_at is null or (old_values is null and new_values is null));
-- Existing rows are version 1; the chain trigger writes version 2.
alter table public.audit_log alter column hash_version set default 2;

comment on table public.audit_log is 'Append-only, hash-chained log of every write to a tenant table; a deleted org''s values are redacted, its chain still verifies. Readable by org owners and admins and by platform admins.';
comment on column public.audit_log.hash is 'sha256(prev_hash || canonical form of this row): with its values for hash_version 1 (private.audit_row_hash), with values_hash in their place for hash_version 2 (private.audit_row_hash_v2).';
comment on column public.audit_log.hash_version is '1: written before 20261123005200, hashed over the values; 2: hashed over values_hash, so the values can be redacted.';
comment on column public.audit_log.values_salt is 'Version 2: 16 random bytes hashed with the values, so that values_hash does not give them away once they are redacted (the salt is erased with them).';
comment on column public.audit_log.values_hash is 'Version 2: sha256(values_salt || canonical form of (old_values, new_values)) (private.audit_values_hash). Null for version 1.';
comment on column public.audit_log.redacted_at is 'When the values of this row were erased (its org was deleted). old_values, new_values and values_salt are null from then on.';

create function private.audit_values_hash(values_salt bytea, old_values jsonb, new_values jsonb)
returns bytea
language sql
stable
security invoker
set search_path = ''
as $$
  -- The same canonical form as private.audit_row_hash: jsonb's text.
  select pg_catalog.sha256(
    values_salt || pg_catalog.convert_to(pg_catalog.jsonb_build_array(old_values, new_values)::text, 'UTF8')
  );
$$;
comment on function private.audit_values_hash(bytea, jsonb, jsonb) is 'sha256(salt || canonical form of an audit row''s (old_values, new_values)); null without a salt.';

create function private.audit_row_hash_v2(
  prev_hash bytea,
  org_id uuid,
  seq bigint,
  actor_user_id uuid,
  actor_api_key_id uuid,
  action text,
  table_name text,
  record_id text,
  values_hash bytea,
  created_at timestamptz
)
returns bytea
language sql
stable
security invoker
set search_path = ''
as $$
  -- As private.audit_row_hash, with the version first and values_hash in
  -- place of the values.
  select pg_catalog.sha256(
    prev_hash || pg_catalog.convert_to(
      pg_catalog.jsonb_build_array(
        2, org_id, seq, actor_user_id, actor_api_key_id, action, table_name, record_id,
        pg_catalog.encode(values_hash, 'hex'),
        pg_catalog.to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
      )::text,
      'UTF8'
    )
  );
$$;
comment on function private.audit_row_hash_v2(bytea, uuid, bigint, uuid, uuid, text, text, text, bytea, timestamptz) is 'Hash of a version-2 audit row: sha256(prev_hash || the row with values_hash in place of its values).';

-- One step of the seal over redacted version-1 rows (null: none yet).
create function private.audit_seal_step(seal bytea, entry public.audit_log)
returns bytea
language sql
stable
security invoker
set search_path = ''
as $$
  select pg_catalog.sha256(
    coalesce(seal, '\x'::bytea) || private.audit_row_hash_v2(
      entry.hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
      entry.table_name, entry.record_id, entry.values_hash, entry.created_at
    )
  );
$$;
comment on function private.audit_seal_step(bytea, public.audit_log) is 'Folds a redacted version-1 audit row (its fields but the values, and its stored hash) into the seal its redaction record holds.';

-- Latest definition: 20261123000300_audit.sql; only hash_version, values_salt,
-- values_hash, redacted_at and the version-2 hash are new.
create or replace function private.chain_audit_row()
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
  new.hash_version := 2;
  new.redacted_at := null;
  new.values_salt := extensions.gen_random_bytes(16);
  new.values_hash := private.audit_values_hash(new.values_salt, new.old_values, new.new_values);
  new.hash := private.audit_row_hash_v2(
    new.prev_hash, new.org_id, new.seq, new.actor_user_id, new.actor_api_key_id, new.action,
    new.table_name, new.record_id, new.values_hash, new.created_at
  );

  update private.audit_chain_heads
  set last_seq = new.seq, last_hash = new.hash
  where org_id = new.org_id;
  return new;
end;
$$;

-- ---------------------------------------------------------------------------
-- Verification. The checks of private.verify_audit_chain move to
-- private.check_audit_chain (no caller check: the redaction runs it for an
-- org whose members are gone); verify_audit_chain keeps the caller check.
-- ---------------------------------------------------------------------------

create function private.check_audit_chain(org_id uuid)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  entry public.audit_log;
  expected_seq bigint := 1;
  expected_prev bytea := private.audit_genesis_hash(check_audit_chain.org_id);
  expected_hash bytea;
  head private.audit_chain_heads%rowtype;
  redacted_count bigint := 0;
  first_redacted_seq bigint;
  recorded_count numeric := 0;
  last_record_seq bigint;
  seal bytea;
  recorded_seal text;
  first_sealed_seq bigint;
begin
  for entry in
    select * from public.audit_log a where a.org_id = check_audit_chain.org_id order by a.seq
  loop
    if entry.seq <> expected_seq then
      return query select false, expected_seq - 1, expected_seq, 'a row is missing or out of order';
      return;
    end if;
    if entry.prev_hash <> expected_prev then
      return query select false, expected_seq - 1, entry.seq, 'prev_hash does not match the previous row';
      return;
    end if;
    if entry.redacted_at is not null then
      if entry.old_values is not null or entry.new_values is not null or entry.values_salt is not null then
        return query select false, expected_seq - 1, entry.seq, 'a redacted row still holds values';
        return;
      end if;
      redacted_count := redacted_count + 1;
      first_redacted_seq := coalesce(first_redacted_seq, entry.seq);
    end if;

    if entry.hash_version = 2 then
      if entry.redacted_at is null
        and entry.values_hash is distinct from private.audit_values_hash(entry.values_salt, entry.old_values, entry.new_values) then
        return query select false, expected_seq - 1, entry.seq, 'the row''s contents do not match its hash';
        return;
      end if;
      expected_hash := private.audit_row_hash_v2(
        entry.prev_hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
        entry.table_name, entry.record_id, entry.values_hash, entry.created_at
      );
      -- A redaction record (appended by private.redact_deleted_org_audit_log).
      if entry.table_name = 'audit_log' and entry.redacted_at is null then
        recorded_count := recorded_count + case
          when pg_catalog.jsonb_typeof(entry.new_values -> 'redacted_rows') = 'number'
          then (entry.new_values ->> 'redacted_rows')::numeric else 0 end;
        recorded_seal := entry.new_values ->> 'hash_version_1_seal';
        last_record_seq := entry.seq;
      end if;
    elsif entry.hash_version = 1 and entry.redacted_at is null and entry.values_hash is null and entry.values_salt is null then
      expected_hash := private.audit_row_hash(
        entry.prev_hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
        entry.table_name, entry.record_id, entry.old_values, entry.new_values, entry.created_at
      );
    elsif entry.hash_version = 1 and entry.redacted_at is not null and entry.values_hash is null then
      -- Hashed over values that are gone: the stored hash is checked by the
      -- links, the rest of the row by the seal of its redaction record.
      expected_hash := entry.hash;
      seal := private.audit_seal_step(seal, entry);
      first_sealed_seq := coalesce(first_sealed_seq, entry.seq);
    else
      expected_hash := null;
    end if;
    if expected_hash is null or entry.hash <> expected_hash then
      return query select false, expected_seq - 1, entry.seq, 'the row''s contents do not match its hash';
      return;
    end if;
    expected_prev := entry.hash;
    expected_seq := expected_seq + 1;
  end loop;

  select * into head from private.audit_chain_heads h where h.org_id = check_audit_chain.org_id;
  if coalesce(head.last_seq, 0) <> expected_seq - 1
    or (head.last_seq is not null and head.last_hash <> expected_prev) then
    return query select false, expected_seq - 1, expected_seq, 'rows are missing at the end of the chain';
    return;
  end if;

  if redacted_count <> recorded_count then
    return query select false, expected_seq - 1, coalesce(first_redacted_seq, last_record_seq),
      'redacted rows do not match the redaction records';
    return;
  end if;
  if pg_catalog.encode(seal, 'hex') is distinct from recorded_seal then
    return query select false, expected_seq - 1, coalesce(first_sealed_seq, last_record_seq),
      'redacted version-1 rows do not match the seal of their redaction';
    return;
  end if;

  return query select true, expected_seq - 1, null::bigint, null::text;
end;
$$;
comment on function private.check_audit_chain(uuid) is 'The checks of verify_audit_chain, without its caller check: links, sequence, each row''s hash by its hash_version, values against values_hash, redactions against the redaction records and the seal, the chain head.';

-- Latest definition: 20261123000300_audit.sql; only the checks moved to
-- private.check_audit_chain are new (the caller check is unchanged).
create or replace function private.verify_audit_chain(org_id uuid)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if not (
    auth.role() = 'service_role'
    or private.is_platform_admin()
    or private.has_permission(verify_audit_chain.org_id, 'audit.read')
  ) then
    raise exception 'you may not read this organization''s audit log'
      using errcode = 'insufficient_privilege';
  end if;

  return query select * from private.check_audit_chain(verify_audit_chain.org_id);
end;
$$;

-- ---------------------------------------------------------------------------
-- Append-only, but for the redaction of a deleted org's rows.
-- ---------------------------------------------------------------------------

create function private.guard_audit_log_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  redactable text[] := array['old_values', 'new_values', 'values_salt', 'redacted_at'];
begin
  if tg_op = 'UPDATE'
    and pg_catalog.current_setting('private.audit_redaction_org', true) = old.org_id::text
    and old.redacted_at is null
    and new.redacted_at is not null
    and new.old_values is null
    and new.new_values is null
    and new.values_salt is null
    and (old.hash_version = 1
      or old.values_hash = private.audit_values_hash(old.values_salt, old.old_values, old.new_values))
    and pg_catalog.to_jsonb(new) - redactable = pg_catalog.to_jsonb(old) - redactable
    and not exists (select 1 from public.organizations o where o.id = old.org_id)
  then
    return new;
  end if;
  raise exception 'the audit log is append-only: % is not allowed', pg_catalog.lower(tg_op)
    using errcode = 'insufficient_privilege';
end;
$$;
comment on function private.guard_audit_log_change() is 'Refuses every update and delete of public.audit_log but a redaction (values and salt nulled, redacted_at set, nothing else changed; a version-2 row''s values matching its values_hash) of a deleted org''s row by private.redact_deleted_org_audit_log.';

create or replace trigger audit_log_append_only before update or delete on public.audit_log
  for each row execute function private.guard_audit_log_change();

-- ---------------------------------------------------------------------------
-- Redaction
-- ---------------------------------------------------------------------------

create function private.redact_deleted_org_audit_log(org_id uuid)
returns table (redacted_rows bigint, kept_rows bigint)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target uuid := redact_deleted_org_audit_log.org_id;
  version_1_redacted bigint := 0;
  version_2_redacted bigint := 0;
  kept bigint;
  seal bytea;
  entry public.audit_log;
begin
  if target is null or exists (select 1 from public.organizations o where o.id = target) then
    raise exception 'only a deleted organization''s audit log is redacted'
      using errcode = 'invalid_parameter_value';
  end if;

  -- The chain head's lock: nothing is appended to the chain meanwhile, and
  -- concurrent redactions of one org run one after the other.
  perform 1 from private.audit_chain_heads h where h.org_id = target for update;
  if not found then
    return query select 0::bigint, 0::bigint;
    return;
  end if;

  perform pg_catalog.set_config('private.audit_redaction_org', target::text, true);

  -- Version 1: only from a chain that verifies now (see the seal above).
  if exists (
    select 1 from public.audit_log a where a.org_id = target and a.hash_version = 1 and a.redacted_at is null
  ) then
    if (select c.valid from private.check_audit_chain(target) c) then
      update public.audit_log a
      set old_values = null,
          new_values = null,
          redacted_at = pg_catalog.now()
      where a.org_id = target and a.hash_version = 1 and a.redacted_at is null;
      get diagnostics version_1_redacted = row_count;
    end if;
  end if;

  -- Version 2: rows whose values still match their values_hash. Redaction
  -- records hold no personal data and carry the seal: they stay.
  update public.audit_log a
  set old_values = null,
      new_values = null,
      values_salt = null,
      redacted_at = pg_catalog.now()
  where a.org_id = target
    and a.hash_version = 2
    and a.redacted_at is null
    and a.table_name <> 'audit_log'
    and (a.old_values is not null or a.new_values is not null)
    and a.values_hash = private.audit_values_hash(a.values_salt, a.old_values, a.new_values);
  get diagnostics version_2_redacted = row_count;

  perform pg_catalog.set_config('private.audit_redaction_org', '', true);

  select count(*) into kept
  from public.audit_log a
  where a.org_id = target and a.redacted_at is null and a.table_name <> 'audit_log'
    and (a.old_values is not null or a.new_values is not null);
  if kept > 0 then
    raise warning 'the audit log of deleted organization % keeps the values of % rows: its chain does not verify', target, kept;
  end if;

  if version_1_redacted + version_2_redacted > 0 then
    for entry in
      select * from public.audit_log a
      where a.org_id = target and a.hash_version = 1 and a.redacted_at is not null
      order by a.seq
    loop
      seal := private.audit_seal_step(seal, entry);
    end loop;

    insert into public.audit_log (
      org_id, seq, actor_user_id, action, table_name, record_id, old_values, new_values, prev_hash, hash
    ) values (
      target, 0, auth.uid(), 'update', 'audit_log', null, null,
      pg_catalog.jsonb_build_object(
        'redacted_rows', version_1_redacted + version_2_redacted,
        'hash_version_1_rows', version_1_redacted,
        'kept_rows', kept,
        'hash_version_1_seal', pg_catalog.encode(seal, 'hex')
      ),
      '\x'::bytea, '\x'::bytea
    );
  end if;

  return query select version_1_redacted + version_2_redacted, kept;
end;
$$;
comment on function private.redact_deleted_org_audit_log(uuid) is 'Erases the values of a deleted org''s audit rows (redacted_at set; the chain still verifies) and records the redaction in its chain; returns the rows redacted and the rows that keep their values because the chain does not verify. Run after every org deletion; service role (idempotent).';

create function private.redact_audit_of_deleted_org()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- (An org re-created with the same id in the same transaction is left alone.)
  if not exists (select 1 from public.organizations o where o.id = old.id) then
    perform private.redact_deleted_org_audit_log(old.id);
  end if;
  return null;
end;
$$;
comment on function private.redact_audit_of_deleted_org() is 'At the commit of a transaction that deleted an org, whatever the path: redacts its audit log.';

-- Deferred to the commit: the rows the deletion cascades to are deleted by the
-- foreign keys' triggers, whose audit rows are written after any trigger of
-- the delete statement itself; at the commit they are all in the chain. (A
-- transaction that sets this constraint immediate before the deletion gets the
-- redaction too early, leaving the cascaded rows' values: the service role's
-- private.redact_deleted_org_audit_log(org_id) then redacts the rest.)
create constraint trigger organizations_redact_audit_log after delete on public.organizations
  deferrable initially deferred
  for each row execute function private.redact_audit_of_deleted_org();

revoke execute on function
  private.audit_values_hash(bytea, jsonb, jsonb),
  private.audit_row_hash_v2(bytea, uuid, bigint, uuid, uuid, text, text, text, bytea, timestamptz),
  private.audit_seal_step(bytea, public.audit_log),
  private.check_audit_chain(uuid),
  private.guard_audit_log_change(),
  private.redact_deleted_org_audit_log(uuid),
  private.redact_audit_of_deleted_org()
from public;

grant execute on function private.redact_deleted_org_audit_log(uuid) to service_role;

-- Orgs deleted before this migration.
select r.redacted_rows, r.kept_rows
from private.audit_chain_heads h
cross join lateral private.redact_deleted_org_audit_log(h.org_id) r
where not exists (select 1 from public.organizations o where o.id = h.org_id);
