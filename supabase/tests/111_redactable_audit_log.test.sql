-- The redactable audit log (20261123005200_redactable_audit_log.sql): rows
-- are hash version 2 (the chain covers values_hash, not the values); deleting
-- an org, whatever the path, erases the values of its audit rows and records
-- the redaction in its chain, which still verifies; only that exact redaction
-- of a deleted org's rows gets past the append-only guard; verification still
-- catches edits, removals, reordering and forged redactions; rows written
-- before the migration (hash version 1) are redacted under a seal only when
-- the chain verifies, and keep their values otherwise.
begin;
create extension if not exists pgtap with schema extensions;
select plan(46);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@redact.test')),
  ('owner_b', tests.create_user('owner-b@redact.test')),
  ('owner_c', tests.create_user('owner-c@redact.test')),
  ('org_v1', gen_random_uuid()),
  ('org_v1_broken', gen_random_uuid()),
  ('org_v1_forged', gen_random_uuid());
select tests.remember('org_a', tests.create_org('redact-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('redact-org-b', tests.fx('owner_b')));
select tests.remember('org_c', tests.create_org('redact-org-c', tests.fx('owner_c')));

-- Customers' personal data, as the calendar keeps it.
insert into public.appointments (org_id, starts_at, ends_at, attendee_name, attendee_email, attendee_phone, notes, source)
values
  (tests.fx('org_a'), now() + interval '3 days', now() + interval '3 days 30 minutes', 'Jane Redactme',
   'jane.redactme@customer.test', '+15550001111', 'allergic to redactmycin', 'staff'),
  (tests.fx('org_b'), now() + interval '3 days', now() + interval '3 days 30 minutes', 'Bob Keepme',
   'bob.keepme@customer.test', '+15550002222', 'prefers mornings', 'staff'),
  (tests.fx('org_c'), now() + interval '3 days', now() + interval '3 days 30 minutes', 'Carl Servicerole',
   'carl.servicerole@customer.test', null, null, 'staff');
update public.appointments set notes = 'allergic to redactmycin and to keepmeicillin' where org_id = tests.fx('org_a');

-- Rows as written before the migration (hash version 1), in chains of orgs
-- that no longer exist: the chain trigger is switched off to write them.
create function pg_temp.append_version_1(org uuid, old_values jsonb, new_values jsonb) returns void
language plpgsql as $$
declare
  head private.audit_chain_heads;
  written_at timestamptz := clock_timestamp();
  row_action text := case when old_values is null then 'insert' when new_values is null then 'delete' else 'update' end;
begin
  insert into private.audit_chain_heads values (org, 0, private.audit_genesis_hash(org)) on conflict do nothing;
  select * into head from private.audit_chain_heads h where h.org_id = org;
  insert into public.audit_log (org_id, seq, action, table_name, record_id, old_values, new_values, created_at,
                                prev_hash, hash, hash_version)
  values (org, head.last_seq + 1, row_action, 'appointments', 'appointment-1', old_values, new_values, written_at,
          head.last_hash,
          private.audit_row_hash(head.last_hash, org, head.last_seq + 1, null, null, row_action, 'appointments',
            'appointment-1', old_values, new_values, written_at),
          1);
  update private.audit_chain_heads h set last_seq = a.seq, last_hash = a.hash
  from public.audit_log a where a.org_id = org and a.seq = head.last_seq + 1 and h.org_id = org;
end;
$$;
-- A version-2 row, written as every row now is.
create function pg_temp.append_version_2(org uuid, new_values jsonb) returns void
language sql as $$
  insert into public.audit_log (org_id, seq, action, table_name, record_id, new_values, prev_hash, hash)
  values (org, 0, 'insert', 'appointments', 'appointment-2', new_values, '\x', '\x');
$$;

alter table public.audit_log disable trigger audit_log_chain;
select pg_temp.append_version_1(o, null, '{"attendee_email": "old.v1@customer.test", "notes": "v1 notes"}')
from unnest(array[tests.fx('org_v1'), tests.fx('org_v1_broken'), tests.fx('org_v1_forged')]) o;
select pg_temp.append_version_1(o, '{"notes": "v1 notes"}', '{"notes": "v1 notes, later"}')
from unnest(array[tests.fx('org_v1'), tests.fx('org_v1_broken'), tests.fx('org_v1_forged')]) o;
select pg_temp.append_version_1(tests.fx('org_v1'), '{"attendee_phone": "+15550003333"}', null);
alter table public.audit_log enable trigger audit_log_chain;
select pg_temp.append_version_2(o, '{"attendee_email": "new.v2@customer.test"}')
from unnest(array[tests.fx('org_v1'), tests.fx('org_v1_broken')]) o;

-- ---------------------------------------------------------------------------
-- Version 2
-- ---------------------------------------------------------------------------

select is_empty(
  $$select seq from public.audit_log where org_id = tests.fx('org_a')
    and (hash_version <> 2 or length(values_salt) <> 16 or redacted_at is not null
         or values_hash is distinct from sha256(values_salt || convert_to(jsonb_build_array(old_values, new_values)::text, 'UTF8')))$$,
  'new audit rows are hash version 2, with values_hash the sha256 of a 16-byte salt and their values'
);
select tests.act_as('owner_a');
select is((select valid from public.verify_audit_chain(tests.fx('org_a'))), true, 'a version-2 chain verifies');
select tests.act_as('service_role');
select results_eq(
  $$select valid, rows_checked from public.verify_audit_chain(tests.fx('org_v1'))$$,
  $$values (true, 4::bigint)$$,
  'a chain of version-1 rows followed by version-2 rows verifies, each row by its own formula'
);

-- ---------------------------------------------------------------------------
-- Who may redact
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select throws_ok($$select private.redact_deleted_org_audit_log(tests.fx('org_a'))$$, '42501', null,
  'an owner cannot call the redaction');
select tests.act_as('service_role');
select throws_ok($$select private.redact_deleted_org_audit_log(tests.fx('org_b'))$$, '22023',
  'only a deleted organization''s audit log is redacted', 'the service role cannot redact a live org''s log');
select throws_ok($$update public.audit_log set old_values = null, new_values = null, redacted_at = now() where org_id = tests.fx('org_v1')$$,
  '42501', null, 'the service role cannot update audit rows, not even to redact them');
select tests.act_as('postgres');
select throws_ok($$update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now() where org_id = tests.fx('org_a')$$,
  '42501', null, 'postgres cannot redact rows directly');
select set_config('private.audit_redaction_org', tests.fx('org_a')::text, true);
select throws_ok($$update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now() where org_id = tests.fx('org_a')$$,
  '42501', null, 'not even with the redaction flag, while the org exists');
select set_config('private.audit_redaction_org', tests.fx('org_v1')::text, true);
select throws_ok($$update public.audit_log set old_values = null, new_values = null, redacted_at = now(),
    actor_user_id = tests.fx('owner_a')
  where org_id = tests.fx('org_v1') and seq = 1$$,
  '42501', null, 'a redaction that also changes the actor is refused, for a deleted org with the flag too');
select throws_ok($$update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now(),
    values_hash = sha256('other') where org_id = tests.fx('org_v1') and seq = 4$$,
  '42501', null, 'a redaction that also changes values_hash is refused');
select throws_ok($$delete from public.audit_log where org_id = tests.fx('org_v1')$$,
  '42501', null, 'deleting a deleted org''s rows is refused, flag or not');
select set_config('private.audit_redaction_org', '', true);

-- ---------------------------------------------------------------------------
-- Deleting an org redacts its log
-- ---------------------------------------------------------------------------

create temp table before_deletion as select org_id, seq, hash from public.audit_log where org_id = tests.fx('org_a');
select tests.act_as('owner_a');
select lives_ok($$select public.delete_organization(tests.fx('org_a'), 'Redact-Org-A')$$, 'the owner deletes the org');
-- The redaction runs at the commit (a deferred trigger); the test's
-- transaction is rolled back, so it asks for it now.
set constraints public.organizations_redact_audit_log immediate;
select tests.act_as('postgres');

select is_empty(
  $$select seq from public.audit_log where org_id = tests.fx('org_a') and table_name <> 'audit_log'
    and (old_values is not null or new_values is not null or redacted_at is null)$$,
  'no audit row of the deleted org holds values any more: every one is redacted'
);
select is(
  (select count(*)::int from public.audit_log a
   where strpos(to_jsonb(a)::text, 'jane.redactme') > 0 or strpos(to_jsonb(a)::text, '+15550001111') > 0
      or strpos(to_jsonb(a)::text, 'redactmycin') > 0 or strpos(to_jsonb(a)::text, 'Redact-Org-A') > 0),
  0,
  'the customer''s e-mail, phone, notes and the org''s name are nowhere in the audit log'
);
select is(
  (select count(*)::int from public.audit_log a join before_deletion b using (org_id, seq) where a.hash = b.hash),
  (select count(*)::int from before_deletion),
  'redacted rows keep their hashes'
);
select results_eq(
  $$select action, actor_user_id, values_hash is not null from public.audit_log
    where org_id = tests.fx('org_a') and table_name = 'organizations' and action = 'delete'$$,
  $$values ('delete', tests.fx('owner_a'), true)$$,
  'the org''s deletion row keeps who and what (values_hash stays)'
);
select results_eq(
  $$select actor_user_id, action, (new_values ->> 'redacted_rows')::bigint, (new_values ->> 'kept_rows')::int,
           new_values -> 'hash_version_1_seal', seq = (select max(seq) from public.audit_log where org_id = tests.fx('org_a'))
    from public.audit_log where org_id = tests.fx('org_a') and table_name = 'audit_log'$$,
  $$select tests.fx('owner_a'), 'update', (select count(*) from public.audit_log where org_id = tests.fx('org_a') and redacted_at is not null),
           0, 'null'::jsonb, true$$,
  'the redaction is the last row of the chain: by the deleting owner, with the number of rows redacted'
);
select tests.act_as('service_role');
select results_eq(
  $$select valid, rows_checked from public.verify_audit_chain(tests.fx('org_a'))$$,
  $$select true, (select count(*) from public.audit_log where org_id = tests.fx('org_a'))$$,
  'the redacted chain verifies'
);
select results_eq(
  $$select * from private.redact_deleted_org_audit_log(tests.fx('org_a'))$$,
  $$values (0::bigint, 0::bigint)$$,
  'redacting again redacts nothing'
);
select is((select count(*)::int from public.audit_log where org_id = tests.fx('org_a') and table_name = 'audit_log'), 1,
  'and records nothing');
select tests.act_as('postgres');
select is(
  (select count(*)::int from public.audit_log where org_id = tests.fx('org_b') and redacted_at is null
     and new_values ->> 'attendee_email' = 'bob.keepme@customer.test'),
  1,
  'another org''s log keeps its values'
);

-- Any path: the service role deleting the row.
set constraints public.organizations_redact_audit_log deferred;
select tests.act_as('service_role');
delete from public.organizations where id = tests.fx('org_c');
select is(
  (select count(*)::int from public.audit_log where org_id = tests.fx('org_c') and redacted_at is not null),
  0,
  'until the commit (here: set constraints ... immediate) nothing is redacted'
);
set constraints public.organizations_redact_audit_log immediate;
select tests.act_as('postgres');
select results_eq(
  $$select count(*) filter (where redacted_at is null and table_name <> 'audit_log')::int,
           count(*) filter (where strpos(coalesce(old_values::text, '') || coalesce(new_values::text, ''), 'carl.servicerole') > 0)::int,
           (select valid from private.check_audit_chain(tests.fx('org_c')))
    from public.audit_log where org_id = tests.fx('org_c')$$,
  $$values (0, 0, true)$$,
  'an org deleted by the service role (not through delete_organization) is redacted too, its chain intact'
);

select throws_ok($$update public.audit_log set redacted_at = now() where org_id = tests.fx('org_a')$$, '42501', null,
  'a redacted row cannot be changed');
select set_config('private.audit_redaction_org', tests.fx('org_a')::text, true);
select throws_ok($$update public.audit_log set actor_user_id = null where org_id = tests.fx('org_a') and table_name = 'organizations'$$,
  '42501', null, 'not even with the redaction flag');
select set_config('private.audit_redaction_org', '', true);

-- ---------------------------------------------------------------------------
-- Hash version 1
-- ---------------------------------------------------------------------------

create temp table v1_before as select org_id, seq, hash from public.audit_log where org_id = tests.fx('org_v1');
select tests.act_as('service_role');
select results_eq(
  $$select * from private.redact_deleted_org_audit_log(tests.fx('org_v1'))$$,
  $$values (4::bigint, 0::bigint)$$,
  'a deleted org''s version-1 and version-2 rows are redacted when its chain verifies'
);
select tests.act_as('postgres');
select results_eq(
  $$select hash_version, count(*)::int,
           bool_and(redacted_at is not null and old_values is null and new_values is null and values_salt is null),
           bool_and(a.hash = b.hash)
    from public.audit_log a join v1_before b using (org_id, seq) group by hash_version order by hash_version$$,
  $$values (1::smallint, 3, true, true), (2::smallint, 1, true, true)$$,
  'version-1 rows stay version 1 with their hashes; values (and salts) gone'
);
select results_eq(
  $$select (new_values ->> 'hash_version_1_rows')::int, new_values ->> 'hash_version_1_seal' ~ '^[0-9a-f]{64}$'
    from public.audit_log where org_id = tests.fx('org_v1') and table_name = 'audit_log'$$,
  $$values (3, true)$$,
  'the redaction record seals the version-1 rows'
);
select tests.act_as('service_role');
select results_eq(
  $$select valid, rows_checked from public.verify_audit_chain(tests.fx('org_v1'))$$,
  $$values (true, 5::bigint)$$,
  'the redacted mixed chain verifies'
);

-- A chain that does not verify: version-1 rows keep their values.
select tests.act_as('postgres');
alter table public.audit_log disable trigger audit_log_append_only;
update public.audit_log set new_values = '{"attendee_email": "forged@customer.test"}'
where org_id = tests.fx('org_v1_broken') and seq = 1;
alter table public.audit_log enable trigger audit_log_append_only;
select tests.act_as('service_role');
select results_eq(
  $$select * from private.redact_deleted_org_audit_log(tests.fx('org_v1_broken'))$$,
  $$values (1::bigint, 2::bigint)$$,
  'when the chain does not verify, only version-2 rows are redacted; version-1 rows are kept'
);
select results_eq(
  $$select seq, redacted_at is null from public.audit_log where org_id = tests.fx('org_v1_broken') and table_name <> 'audit_log' order by seq$$,
  $$values (1::bigint, true), (2::bigint, true), (3::bigint, false)$$,
  'the version-1 rows keep their values'
);
select results_eq(
  $$select valid, first_invalid_seq, reason from public.verify_audit_chain(tests.fx('org_v1_broken'))$$,
  $$values (false, 1::bigint, 'the row''s contents do not match its hash')$$,
  'and the tampering stays visible'
);

-- ---------------------------------------------------------------------------
-- Tampering, with the guard switched off by the table owner
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
alter table public.audit_log disable trigger audit_log_append_only;
savepoint tamper;

update public.audit_log set actor_user_id = tests.fx('owner_b')
where org_id = tests.fx('org_a') and table_name = 'organizations' and action = 'delete';
select results_eq(
  $$select valid, first_invalid_seq = (select seq from public.audit_log where org_id = tests.fx('org_a') and table_name = 'organizations' and action = 'delete'), reason
    from private.check_audit_chain(tests.fx('org_a'))$$,
  $$values (false, true, 'the row''s contents do not match its hash')$$,
  'a redacted version-2 row whose actor changed breaks the chain at that row'
);
rollback to savepoint tamper;

update public.audit_log set values_hash = sha256('{"name": "Someone Else"}')
where org_id = tests.fx('org_a') and seq = 1;
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_a'))$$,
  $$values (false, 1::bigint, 'the row''s contents do not match its hash')$$,
  'a redacted row whose values_hash changed breaks the chain at that row'
);
rollback to savepoint tamper;

delete from public.audit_log where org_id = tests.fx('org_a') and seq = 2;
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_a'))$$,
  $$values (false, 2::bigint, 'a row is missing or out of order')$$,
  'a removed redacted row breaks the chain where it was'
);
rollback to savepoint tamper;

update public.audit_log set seq = -2 where org_id = tests.fx('org_a') and seq = 2;
update public.audit_log set seq = 2 where org_id = tests.fx('org_a') and seq = 3;
update public.audit_log set seq = 3 where org_id = tests.fx('org_a') and seq = -2;
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_a'))$$,
  $$values (false, 2::bigint, 'prev_hash does not match the previous row')$$,
  'swapped redacted rows break the chain'
);
rollback to savepoint tamper;

update public.audit_log set new_values = jsonb_set(new_values, '{redacted_rows}', '1')
where org_id = tests.fx('org_a') and table_name = 'audit_log';
select results_eq(
  $$select valid, first_invalid_seq = (select max(seq) from public.audit_log where org_id = tests.fx('org_a')), reason
    from private.check_audit_chain(tests.fx('org_a'))$$,
  $$values (false, true, 'the row''s contents do not match its hash')$$,
  'an edited redaction record breaks the chain at that row'
);
rollback to savepoint tamper;

-- Forged redactions in a live org.
update public.audit_log set old_values = null, new_values = null, values_salt = null, redacted_at = now()
where org_id = tests.fx('org_b') and table_name = 'appointments';
select results_eq(
  $$select valid, first_invalid_seq = (select min(seq) from public.audit_log where org_id = tests.fx('org_b') and table_name = 'appointments'), reason
    from private.check_audit_chain(tests.fx('org_b'))$$,
  $$values (false, true, 'redacted rows do not match the redaction records')$$,
  'a redaction done outside the redaction function (values and salt nulled, redacted_at set, nothing else changed) is detected'
);
rollback to savepoint tamper;

update public.audit_log set old_values = null, new_values = null
where org_id = tests.fx('org_b') and table_name = 'appointments';
select results_eq(
  $$select valid, first_invalid_seq = (select min(seq) from public.audit_log where org_id = tests.fx('org_b') and table_name = 'appointments'), reason
    from private.check_audit_chain(tests.fx('org_b'))$$,
  $$values (false, true, 'the row''s contents do not match its hash')$$,
  'values nulled without redacted_at do not match values_hash'
);
rollback to savepoint tamper;

update public.audit_log set values_hash = private.audit_values_hash(values_salt, old_values, jsonb_build_object('forged', true))
where org_id = tests.fx('org_b') and seq = 1;
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_b'))$$,
  $$values (false, 1::bigint, 'the row''s contents do not match its hash')$$,
  'an unredacted row whose values_hash changed breaks the chain at that row'
);
rollback to savepoint tamper;

-- Redacted version-1 rows: their hash cannot be recomputed, the seal tells.
update public.audit_log set actor_user_id = tests.fx('owner_b') where org_id = tests.fx('org_v1') and seq = 2;
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_v1'))$$,
  $$values (false, 1::bigint, 'redacted version-1 rows do not match the seal of their redaction')$$,
  'a redacted version-1 row whose actor changed breaks the seal'
);
rollback to savepoint tamper;

update public.audit_log set record_id = 'appointment-9' where org_id = tests.fx('org_v1') and seq = 1;
select results_eq(
  $$select valid, reason from private.check_audit_chain(tests.fx('org_v1'))$$,
  $$values (false, 'redacted version-1 rows do not match the seal of their redaction')$$,
  'a redacted version-1 row whose record id changed breaks the seal'
);
rollback to savepoint tamper;

-- A changed hash, relinked from the next row, still breaks the seal.
update public.audit_log set hash = sha256('forged') where org_id = tests.fx('org_v1') and seq = 2;
update public.audit_log set prev_hash = sha256('forged') where org_id = tests.fx('org_v1') and seq = 3;
select results_eq(
  $$select valid, reason from private.check_audit_chain(tests.fx('org_v1'))$$,
  $$values (false, 'redacted version-1 rows do not match the seal of their redaction')$$,
  'a relinked version-1 hash breaks the seal'
);
rollback to savepoint tamper;

update public.audit_log set new_values = jsonb_set(new_values, '{hash_version_1_seal}', to_jsonb(encode(sha256('forged'), 'hex')))
where org_id = tests.fx('org_v1') and table_name = 'audit_log';
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_v1'))$$,
  $$values (false, 5::bigint, 'the row''s contents do not match its hash')$$,
  'a changed seal breaks the redaction record''s own row'
);
rollback to savepoint tamper;

update public.audit_log set old_values = null, new_values = null, redacted_at = now()
where org_id = tests.fx('org_v1_forged');
select results_eq(
  $$select valid, first_invalid_seq, reason from private.check_audit_chain(tests.fx('org_v1_forged'))$$,
  $$values (false, 1::bigint, 'redacted rows do not match the redaction records')$$,
  'version-1 rows redacted outside a redaction are detected'
);
rollback to savepoint tamper;

alter table public.audit_log enable trigger audit_log_append_only;
select results_eq(
  $$select o, (select valid from private.check_audit_chain(o)) from unnest(array[tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_v1'), tests.fx('org_v1_forged')]) o$$,
  $$select o, true from unnest(array[tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_v1'), tests.fx('org_v1_forged')]) o$$,
  'after the rollbacks every chain verifies again'
);

select * from finish();
rollback;
