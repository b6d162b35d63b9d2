-- Audit chain verification in windows (20261123012300_audit_verify_windows.sql) and the index that lists an
-- org's audit log newest first (20261123012310_audit_log_created_index.sql).
begin;
create extension if not exists pgtap with schema extensions;
select plan(31);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@audit-verify-windows-298.test')),
  ('admin', tests.create_user('admin@audit-verify-windows-298.test')),
  ('member', tests.create_user('member@audit-verify-windows-298.test')),
  ('platform_admin', tests.create_user('ops@audit-verify-windows-298.test', '{"platform_admin": true}'));
select tests.remember('org', tests.create_org('audit-verify-windows-298', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
-- Enough audited writes for several windows of 3 rows.
do $$
begin
  for g in 1..8 loop
    update public.organizations set name = 'Audit verify windows 298 #' || g where id = tests.fx('org');
  end loop;
end;
$$;

create function pg_temp.chain_length() returns bigint language sql stable as $$
  select count(*) from public.audit_log a where a.org_id = tests.fx('org')
$$;
grant execute on function pg_temp.chain_length() to public;

-- Walks the chain window by window as a caller would: windows taken, rows checked, each window's validity.
create function pg_temp.walk(size integer)
returns table (windows integer, rows_checked bigint, all_valid boolean)
language plpgsql as $$
declare
  at bigint := 1;
  answer record;
begin
  windows := 0;
  rows_checked := 0;
  all_valid := true;
  loop
    select * into answer from public.verify_audit_chain(tests.fx('org'), at, size);
    windows := windows + 1;
    rows_checked := rows_checked + answer.rows_checked;
    -- A passing window short of the end answers valid null; only the last one answers true.
    all_valid := all_valid and coalesce(answer.valid, answer.next_seq is not null);
    exit when answer.next_seq is null or answer.valid is not null;
    at := answer.next_seq;
  end loop;
  return next;
end;
$$;
grant execute on function pg_temp.walk(integer) to public;

select cmp_ok(pg_temp.chain_length(), '>=', 10::bigint, 'the org''s chain has at least 10 rows');

-- ---------------------------------------------------------------------------
-- Windows
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select results_eq(
  $$select valid, rows_checked, first_invalid_seq, reason, next_seq from public.verify_audit_chain(tests.fx('org'))$$,
  $$select true, pg_temp.chain_length(), null::bigint, null::text, null::bigint$$,
  'with only org_id, a chain within one window is verified whole, as before'
);
select results_eq(
  $$select valid, rows_checked, first_invalid_seq, reason, next_seq from public.verify_audit_chain(tests.fx('org'), null, 3)$$,
  $$values (null::boolean, 3::bigint, null::bigint, 'the window verifies; the chain goes on from next_seq', 4::bigint)$$,
  'a first window of 3 rows passes, valid null (not the whole chain), and says where the chain goes on'
);
select results_eq(
  $$select valid, rows_checked, next_seq from public.verify_audit_chain(tests.fx('org'), 4, 3)$$,
  $$values (null::boolean, 3::bigint, 7::bigint)$$,
  'the second window starts from the first one''s next_seq'
);
select results_eq(
  $$select valid, rows_checked, reason, next_seq from public.verify_audit_chain(tests.fx('org'), pg_temp.chain_length() - 1, 3)$$,
  $$values (true, 2::bigint, null::text, null::bigint)$$,
  'the window that reaches the end checks the head and gives no next_seq'
);
select results_eq(
  $$select valid, rows_checked, next_seq from public.verify_audit_chain(tests.fx('org'), pg_temp.chain_length() - 2, 3)$$,
  $$values (true, 3::bigint, null::bigint)$$,
  'a window ending exactly on the last row gives no next_seq'
);
select results_eq(
  $$select * from pg_temp.walk(3)$$,
  $$select ((pg_temp.chain_length() + 2) / 3)::integer, pg_temp.chain_length(), true$$,
  'walking the chain in windows of 3 checks every row once'
);
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- Tampering, across window boundaries
-- ---------------------------------------------------------------------------

alter table public.audit_log disable trigger audit_log_append_only;
savepoint tamper;

update public.audit_log set new_values = jsonb_set(new_values, '{name}', '"Forged 298"')
where org_id = tests.fx('org') and seq = 5;
select tests.act_as('service_role');
select results_eq(
  $$select valid, next_seq from public.verify_audit_chain(tests.fx('org'), 1, 3)$$,
  $$values (null::boolean, 4::bigint)$$,
  'a row tampered with in window 2: window 1 passes (valid null: not the end)'
);
select results_eq(
  $$select valid, rows_checked, first_invalid_seq, reason, next_seq from public.verify_audit_chain(tests.fx('org'), 4, 3)$$,
  $$values (false, 1::bigint, 5::bigint, 'the row''s contents do not match its hash', null::bigint)$$,
  'window 2 finds the tampered row'
);
select results_eq(
  $$select valid, first_invalid_seq from public.verify_audit_chain(tests.fx('org'))$$,
  $$values (false, 5::bigint)$$,
  'the call with only org_id finds it too'
);
select results_eq(
  $$select * from pg_temp.walk(3)$$,
  $$values (2, 4::bigint, false)$$,
  'a walk stops at the window that fails'
);
select tests.act_as('postgres');
rollback to savepoint tamper;

-- The last row of window 1 edited and re-hashed: it verifies alone, and window 2's link to it breaks.
update public.audit_log a set
  new_values = jsonb_set(a.new_values, '{name}', '"Forged 298"'),
  values_hash = private.audit_values_hash(a.values_salt, a.old_values, jsonb_set(a.new_values, '{name}', '"Forged 298"')),
  hash = private.audit_row_hash_v2(a.prev_hash, a.org_id, a.seq, a.actor_user_id, a.actor_api_key_id, a.action,
    a.table_name, a.record_id,
    private.audit_values_hash(a.values_salt, a.old_values, jsonb_set(a.new_values, '{name}', '"Forged 298"')),
    a.created_at)
where a.org_id = tests.fx('org') and a.seq = 6;
select tests.act_as('service_role');
select results_eq(
  $$select valid, next_seq from public.verify_audit_chain(tests.fx('org'), 4, 3)$$,
  $$values (null::boolean, 7::bigint)$$,
  'a re-hashed edit of a window''s last row passes in its window (valid null)'
);
select results_eq(
  $$select valid, rows_checked, first_invalid_seq, reason from public.verify_audit_chain(tests.fx('org'), 7, 3)$$,
  $$values (false, 0::bigint, 7::bigint, 'prev_hash does not match the previous row')$$,
  'the next window, starting from the stored hash, finds the broken link'
);
select tests.act_as('postgres');
rollback to savepoint tamper;

delete from public.audit_log where org_id = tests.fx('org') and seq = 3;
select tests.act_as('service_role');
select results_eq(
  $$select valid, rows_checked, first_invalid_seq, reason from public.verify_audit_chain(tests.fx('org'), 4, 3)$$,
  $$values (false, 0::bigint, 3::bigint, 'a row is missing or out of order')$$,
  'a window whose previous row is gone cannot start and says which row is missing'
);
select tests.act_as('postgres');
rollback to savepoint tamper;

delete from public.audit_log where org_id = tests.fx('org') and seq = pg_temp.chain_length();
select tests.act_as('service_role');
select results_eq(
  $$select valid, reason, next_seq from public.verify_audit_chain(tests.fx('org'), pg_temp.chain_length() - 1, 3)$$,
  $$values (false, 'rows are missing at the end of the chain', null::bigint)$$,
  'removing the newest row is found by the last window, against the head'
);
select tests.act_as('postgres');
rollback to savepoint tamper;

-- A row's values erased outside a redaction, in window 1: it still links, and only the whole chain's
-- accounting, in the last window, shows it.
update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now()
where org_id = tests.fx('org') and seq = 2;
select tests.act_as('service_role');
select results_eq(
  $$select valid, next_seq from public.verify_audit_chain(tests.fx('org'), 1, 3)$$,
  $$values (null::boolean, 4::bigint)$$,
  'a redacted row without a redaction record passes its own window (valid null)'
);
select results_eq(
  $$select valid, first_invalid_seq, reason from public.verify_audit_chain(tests.fx('org'), pg_temp.chain_length() - 1, 3)$$,
  $$values (false, 2::bigint, 'redacted rows do not match the redaction records')$$,
  'the last window finds the redacted row no redaction record accounts for'
);
select tests.act_as('postgres');
rollback to savepoint tamper;
alter table public.audit_log enable trigger audit_log_append_only;

-- ---------------------------------------------------------------------------
-- Arguments and permissions
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 1, 0)$$, '22023',
  'max_rows must be between 1 and 50000', 'max_rows 0 is refused');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 1, 50001)$$, '22023',
  'max_rows must be between 1 and 50000', 'max_rows over 50000 is refused');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 1, null)$$, '22023',
  'max_rows must be between 1 and 50000', 'a null max_rows is refused');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 0, 3)$$, '22023',
  'from_seq must be between 1 and the chain''s last seq', 'from_seq 0 is refused');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), pg_temp.chain_length() + 1, 3)$$, '22023',
  'from_seq must be between 1 and the chain''s last seq', 'from_seq past the chain''s end is refused');
select is((select rows_checked from public.verify_audit_chain(tests.fx('org'), 2, 3)), 3::bigint, 'the owner verifies a window');
select tests.act_as('admin');
select is((select rows_checked from public.verify_audit_chain(tests.fx('org'), 2, 3)), 3::bigint, 'an admin verifies a window');
select tests.act_as('platform_admin');
select is((select valid from public.verify_audit_chain(tests.fx('org'))), true, 'a platform admin verifies');
select tests.act_as('member');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 1, 3)$$, '42501', null,
  'a member may not verify a window');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'), 1, 0)$$, '42501', null,
  'a member learns nothing from bad arguments either');
select tests.act_as('anon');
select throws_ok($$select * from public.verify_audit_chain(tests.fx('org'))$$, '42501', null,
  'anon may not verify');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- Listing newest first
-- ---------------------------------------------------------------------------

select has_index('public', 'audit_log', 'audit_log_org_created_idx', array['org_id', 'created_at'],
  'audit_log has an (org_id, created_at desc) index');

create function pg_temp.page_plan() returns text language plpgsql as $$
declare
  line text;
  plan text := '';
begin
  for line in execute format(
    'explain (costs off) select * from public.audit_log a where a.org_id = %L order by a.created_at desc limit 50',
    tests.fx('org'))
  loop
    plan := plan || line || E'\n';
  end loop;
  return plan;
end;
$$;
grant execute on function pg_temp.page_plan() to public;

-- An org this small is read and sorted whatever its indexes (at 123,000 rows the index answers in 0.3 ms, a
-- scan and sort in 250 ms): with scans and sorts off, a plan without a sort exists only through the index.
set local enable_seqscan = off;
set local enable_bitmapscan = off;
set local enable_sort = off;
select tests.act_as('admin');
select matches(pg_temp.page_plan(), 'audit_log_org_created_idx', 'a newest-first page of an org''s audit log reads the index');
select tests.act_as('postgres');
select doesnt_match(pg_temp.page_plan(), 'Sort', 'and needs no sort');
reset enable_seqscan;
reset enable_bitmapscan;
reset enable_sort;

select * from finish();
rollback;
