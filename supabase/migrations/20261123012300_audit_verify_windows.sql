-- Audit chain verification in windows.
--
-- rpc('verify_audit_chain', { org_id }) checked an org's whole chain in one
-- plpgsql loop, about 57 µs a row on PGlite: past PostgREST's 8 s statement
-- timeout from about 140,000 rows, so a busy org could never verify its chain.
-- Now it checks at most max_rows rows (default and limit 50,000) from
-- from_seq (default 1), starting from the stored hash of row from_seq - 1,
-- which the window before recomputed; next_seq says where the next window
-- starts, null once the chain's end was checked. A call with only org_id
-- checks the first window: the whole chain up to 50,000 rows, as before;
-- beyond, a pass says so in reason and next_seq.
--
-- The checks of a row (sequence, link, hash by version, values against
-- values_hash, no values left in a redacted row) run in its window; the checks
-- of the whole chain (the head, redacted rows against the redaction records'
-- counts, the version-1 seal) run set-based in the window that reaches the end,
-- so a redaction outside a redaction shows in the last window, wherever the
-- row is. private.check_audit_chain, which the redactions run, is one window
-- without a limit: its answers are unchanged.

create function private.check_audit_chain_window(org_id uuid, from_seq bigint, max_rows bigint)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text, next_seq bigint)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  entry public.audit_log;
  expected_seq bigint := check_audit_chain_window.from_seq;
  expected_prev bytea;
  expected_hash bytea;
  head private.audit_chain_heads%rowtype;
  redacted_count bigint;
  first_redacted_seq bigint;
  recorded_count numeric;
  last_record_seq bigint;
  seal bytea;
  recorded_seal text;
  first_sealed_seq bigint;
  last_sealed_seq bigint;
begin
  if check_audit_chain_window.from_seq = 1 then
    expected_prev := private.audit_genesis_hash(check_audit_chain_window.org_id);
  else
    select a.hash into expected_prev from public.audit_log a
    where a.org_id = check_audit_chain_window.org_id and a.seq = check_audit_chain_window.from_seq - 1;
    if expected_prev is null then
      return query select false, 0::bigint, check_audit_chain_window.from_seq - 1,
        'a row is missing or out of order', null::bigint;
      return;
    end if;
  end if;

  -- One row past the window tells whether the chain goes on.
  for entry in
    select * from public.audit_log a
    where a.org_id = check_audit_chain_window.org_id and a.seq >= check_audit_chain_window.from_seq
    order by a.seq
    limit check_audit_chain_window.max_rows + 1
  loop
    if expected_seq - check_audit_chain_window.from_seq = check_audit_chain_window.max_rows then
      return query select true, check_audit_chain_window.max_rows, null::bigint,
        'the window verifies; the chain goes on from next_seq', expected_seq;
      return;
    end if;
    if entry.seq <> expected_seq then
      return query select false, expected_seq - check_audit_chain_window.from_seq, expected_seq,
        'a row is missing or out of order', null::bigint;
      return;
    end if;
    if entry.prev_hash <> expected_prev then
      return query select false, expected_seq - check_audit_chain_window.from_seq, entry.seq,
        'prev_hash does not match the previous row', null::bigint;
      return;
    end if;
    if entry.redacted_at is not null
      and (entry.old_values is not null or entry.new_values is not null or entry.values_salt is not null) then
      return query select false, expected_seq - check_audit_chain_window.from_seq, entry.seq,
        'a redacted row still holds values', null::bigint;
      return;
    end if;

    if entry.hash_version = 2 then
      if entry.redacted_at is null
        and entry.values_hash is distinct from private.audit_values_hash(entry.values_salt, entry.old_values, entry.new_values) then
        return query select false, expected_seq - check_audit_chain_window.from_seq, entry.seq,
          'the row''s contents do not match its hash', null::bigint;
        return;
      end if;
      expected_hash := private.audit_row_hash_v2(
        entry.prev_hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
        entry.table_name, entry.record_id, entry.values_hash, entry.created_at
      );
    elsif entry.hash_version = 1 and entry.redacted_at is null and entry.values_hash is null and entry.values_salt is null then
      expected_hash := private.audit_row_hash(
        entry.prev_hash, entry.org_id, entry.seq, entry.actor_user_id, entry.actor_api_key_id, entry.action,
        entry.table_name, entry.record_id, entry.old_values, entry.new_values, entry.created_at
      );
    elsif entry.hash_version = 1 and entry.redacted_at is not null and entry.values_hash is null then
      -- Hashed over values that are gone: the stored hash is checked by the
      -- links, the rest of the row by the seal of its redaction record.
      expected_hash := entry.hash;
    else
      expected_hash := null;
    end if;
    if expected_hash is null or entry.hash <> expected_hash then
      return query select false, expected_seq - check_audit_chain_window.from_seq, entry.seq,
        'the row''s contents do not match its hash', null::bigint;
      return;
    end if;
    expected_prev := entry.hash;
    expected_seq := expected_seq + 1;
  end loop;

  select * into head from private.audit_chain_heads h where h.org_id = check_audit_chain_window.org_id;
  if coalesce(head.last_seq, 0) <> expected_seq - 1
    or (head.last_seq is not null and head.last_hash <> expected_prev) then
    return query select false, expected_seq - check_audit_chain_window.from_seq, expected_seq,
      'rows are missing at the end of the chain', null::bigint;
    return;
  end if;

  -- Every row now verifies, so the whole chain's redaction records and
  -- redacted rows are read as they are: one scan of the org's rows, and the
  -- seal's loop only up to its last version-1 row (the chain's first rows).
  select count(*), min(a.seq), max(a.seq) filter (where a.hash_version = 1)
  into redacted_count, first_redacted_seq, last_sealed_seq
  from public.audit_log a
  where a.org_id = check_audit_chain_window.org_id and a.redacted_at is not null;

  select coalesce(sum(case when pg_catalog.jsonb_typeof(a.new_values -> 'redacted_rows') = 'number'
           then (a.new_values ->> 'redacted_rows')::numeric else 0 end), 0),
         max(a.seq)
  into recorded_count, last_record_seq
  from public.audit_log a
  where a.org_id = check_audit_chain_window.org_id and a.table_name = 'audit_log'
    and a.hash_version = 2 and a.redacted_at is null;
  select a.new_values ->> 'hash_version_1_seal' into recorded_seal
  from public.audit_log a
  where a.org_id = check_audit_chain_window.org_id and a.seq = last_record_seq;

  for entry in
    select * from public.audit_log a
    where a.org_id = check_audit_chain_window.org_id and a.seq <= last_sealed_seq
      and a.hash_version = 1 and a.redacted_at is not null
    order by a.seq
  loop
    seal := private.audit_seal_step(seal, entry);
    first_sealed_seq := coalesce(first_sealed_seq, entry.seq);
  end loop;

  if redacted_count <> recorded_count then
    return query select false, expected_seq - check_audit_chain_window.from_seq,
      coalesce(first_redacted_seq, last_record_seq), 'redacted rows do not match the redaction records', null::bigint;
    return;
  end if;
  if pg_catalog.encode(seal, 'hex') is distinct from recorded_seal then
    return query select false, expected_seq - check_audit_chain_window.from_seq,
      coalesce(first_sealed_seq, last_record_seq), 'redacted version-1 rows do not match the seal of their redaction',
      null::bigint;
    return;
  end if;

  return query select true, expected_seq - check_audit_chain_window.from_seq, null::bigint, null::text, null::bigint;
end;
$$;
comment on function private.check_audit_chain_window(uuid, bigint, bigint) is 'The checks of verify_audit_chain, without its caller check or argument checks, for at most max_rows rows (null: to the end) from from_seq, linked to the stored hash of from_seq - 1; the whole chain''s checks (head, redaction records, seal) when it reaches the end. next_seq: where the next window starts, null at the end or on a failure.';

-- Latest definition: 20261123005200_redactable_audit_log.sql; now the window
-- from seq 1 to the end.
create or replace function private.check_audit_chain(org_id uuid)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text)
language sql
stable
security invoker
set search_path = ''
as $$
  select w.valid, w.rows_checked, w.first_invalid_seq, w.reason
  from private.check_audit_chain_window(check_audit_chain.org_id, 1, null) w;
$$;

-- The one-argument forms go: with a three-argument form beside them, PostgREST
-- could not choose for rpc('verify_audit_chain', { org_id }).
drop function public.verify_audit_chain(uuid);
drop function private.verify_audit_chain(uuid);

create function private.verify_audit_chain(org_id uuid, from_seq bigint, max_rows integer)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text, next_seq bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  last_seq bigint;
begin
  if not (
    auth.role() = 'service_role'
    or private.is_platform_admin()
    or private.has_permission(verify_audit_chain.org_id, 'audit.read')
  ) then
    raise exception 'you may not read this organization''s audit log'
      using errcode = 'insufficient_privilege';
  end if;

  if verify_audit_chain.max_rows is null or verify_audit_chain.max_rows not between 1 and 50000 then
    raise exception 'max_rows must be between 1 and 50000' using errcode = 'invalid_parameter_value';
  end if;
  select h.last_seq into last_seq from private.audit_chain_heads h where h.org_id = verify_audit_chain.org_id;
  if coalesce(verify_audit_chain.from_seq, 1) not between 1 and greatest(coalesce(last_seq, 0), 1) then
    raise exception 'from_seq must be between 1 and the chain''s last seq' using errcode = 'invalid_parameter_value';
  end if;

  -- A window that passes but does not reach the chain's end proves nothing about the chain (the head and
  -- the redaction checks run only in the last window): valid is null then, never true, so a caller reading
  -- only `valid` is not told a longer chain verifies.
  return query select case when w.valid and w.next_seq is not null then null else w.valid end,
    w.rows_checked, w.first_invalid_seq, w.reason, w.next_seq
  from private.check_audit_chain_window(
    verify_audit_chain.org_id, coalesce(verify_audit_chain.from_seq, 1), verify_audit_chain.max_rows) w;
end;
$$;
grant execute on function private.verify_audit_chain(uuid, bigint, integer) to authenticated, service_role;

create function public.verify_audit_chain(org_id uuid, from_seq bigint default null, max_rows integer default 50000)
returns table (valid boolean, rows_checked bigint, first_invalid_seq bigint, reason text, next_seq bigint)
language sql
stable
security invoker
set search_path = ''
as $$
  select * from private.verify_audit_chain(
    verify_audit_chain.org_id, verify_audit_chain.from_seq, verify_audit_chain.max_rows);
$$;
comment on function public.verify_audit_chain(uuid, bigint, integer) is 'Checks the org''s audit hash chain, at most max_rows (1-50000) rows from from_seq (default 1); next_seq: where to go on, null once the end is checked; valid is null for a passing window that does not reach the end. Owners, admins and platform admins only.';
grant execute on function public.verify_audit_chain(uuid, bigint, integer) to authenticated, service_role;

revoke execute on function private.check_audit_chain_window(uuid, bigint, bigint) from public;
