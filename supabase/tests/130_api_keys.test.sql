-- API keys (20261123000500_api_keys.sql): creation shows the secret once and
-- stores only its sha256; admins and up create, list and revoke; only the
-- service role verifies; revoked and expired keys never verify; usage is
-- recorded at most once a minute and is not audited; creating and revoking are.
begin;
create extension if not exists pgtap with schema extensions;

select plan(66);

-- ---------------------------------------------------------------------------
-- Fixtures. Org A has one member of each role, org B only its owner (our
-- outsider), plus a platform admin. Ids are named fixtures (tests.remember /
-- tests.fx, in 010_test_helpers), which every role may read, so the SQL
-- strings handed to pgTAP can use them whatever the current role. (The
-- expected error messages below make sure a 42501 comes from the code under
-- test, not from these helpers.)
-- ---------------------------------------------------------------------------

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@api-keys.test')),
  ('admin_a', tests.create_user('admin-a@api-keys.test')),
  ('member_a', tests.create_user('member-a@api-keys.test')),
  ('viewer_a', tests.create_user('viewer-a@api-keys.test')),
  ('owner_b', tests.create_user('owner-b@api-keys.test')),
  ('platform_admin', tests.create_user('platform@api-keys.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('api-keys-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('api-keys-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- What create_api_key returned, kept for later checks (the secret is shown
-- only there, so this is the only place the test can get it from).
create temp table keys (
  label text primary key,
  org_id uuid not null,
  id uuid not null,
  key text not null,
  prefix text not null,
  scopes text[] not null,
  expires_at timestamptz
);
grant all on keys to public;

-- Counters taken at one point to compare with later (e.g. audit rows).
create temp table marks (label text primary key, n bigint not null);
grant all on marks to public;

-- ---------------------------------------------------------------------------
-- Creating a key
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$insert into keys
    select 'main', tests.fx('org_a'), k.*
    from public.create_api_key(tests.fx('org_a'), '  CI bot  ', array['knowledge.read', 'chat.write', 'knowledge.read']) k$$,
  'an admin creates an API key'
);
select matches((select key from keys where label = 'main'), '^ak_[0-9a-f]{48}$',
  'the key is ak_ followed by 48 hex characters (192 random bits)');
select is((select prefix from keys where label = 'main'), (select left(key, 11) from keys where label = 'main'),
  'the returned prefix is the first 11 characters of the key');
select is((select scopes from keys where label = 'main'), array['chat.write', 'knowledge.read'],
  'the returned scopes are de-duplicated and sorted');
select is((select expires_at from keys where label = 'main'), null::timestamptz,
  'a key created without expires_at never expires');

-- What is stored (read as postgres, past RLS).
select tests.act_as('postgres');
select results_eq(
  $$select name, prefix, scopes, created_by, org_id, revoked_at, last_used_at
    from public.api_keys where id = (select id from keys where label = 'main')$$,
  $$select 'CI bot'::text, prefix, array['chat.write', 'knowledge.read']::text[], tests.fx('admin_a'), tests.fx('org_a'),
           null::timestamptz, null::timestamptz
    from keys where label = 'main'$$,
  'the stored row has the trimmed name, the prefix, the sorted scopes and the creator, and is live and unused'
);
-- The listed table has no column that could hold the secret or its hash.
select columns_are('public', 'api_keys',
  array['id', 'org_id', 'name', 'prefix', 'scopes', 'created_by', 'created_at', 'expires_at', 'last_used_at', 'revoked_at', 'revoked_by',
        'rate_limit_per_minute'],
  'public.api_keys has no secret column');
select is(
  (select secret_hash from private.api_key_secrets where api_key_id = (select id from keys where label = 'main')),
  (select sha256(convert_to(key, 'UTF8')) from keys where label = 'main'),
  'private.api_key_secrets holds sha256(key)'
);
-- Neither the key nor its random part appears in any row written so far:
-- not in the key row, not as the stored hash, not in the audit log.
select is_empty(
  $$select 'api_keys' from public.api_keys k, keys
      where keys.label = 'main' and (strpos(to_jsonb(k)::text, keys.key) > 0 or strpos(to_jsonb(k)::text, substr(keys.key, 4)) > 0)
    union all
    select 'api_key_secrets' from private.api_key_secrets s, keys
      where keys.label = 'main' and (s.secret_hash = convert_to(keys.key, 'UTF8') or strpos(encode(s.secret_hash, 'hex'), substr(keys.key, 4)) > 0)
    union all
    select 'audit_log' from public.audit_log a, keys
      where keys.label = 'main' and (strpos(coalesce(a.new_values::text, '') || coalesce(a.old_values::text, ''), substr(keys.key, 4)) > 0)$$,
  'the key itself is stored nowhere'
);

-- Two more keys for the listing tests: a second one in A (by the owner) and one in B.
select tests.act_as('owner_a');
select lives_ok(
  $$insert into keys
    select 'second', tests.fx('org_a'), k.*
    from public.create_api_key(tests.fx('org_a'), 'Zapier', array['calls.read'], now() + interval '30 days') k$$,
  'an owner creates an API key, with an expiry date'
);
select tests.act_as('owner_b');
select lives_ok(
  $$insert into keys
    select 'b', tests.fx('org_b'), k.*
    from public.create_api_key(tests.fx('org_b'), 'B bot', array['calendar.read']) k$$,
  'the owner of org B creates a key in org B'
);

-- ---------------------------------------------------------------------------
-- Listing: admins and up of the org and platform admins, never the secret
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select results_eq(
  $$select id from public.api_keys order by id$$,
  $$select id from keys where org_id = tests.fx('org_a') order by id$$,
  'an admin lists exactly the keys of their org'
);
-- Authenticated holds no privilege on the secrets table at all.
select throws_ok(
  $$select * from private.api_key_secrets$$,
  '42501', 'permission denied for table api_key_secrets',
  'an admin cannot read private.api_key_secrets'
);
select tests.act_as('owner_a');
select results_eq(
  $$select id from public.api_keys order by id$$,
  $$select id from keys where org_id = tests.fx('org_a') order by id$$,
  'an owner lists exactly the keys of their org'
);
select tests.act_as('member_a');
select is_empty($$select id from public.api_keys$$, 'a member sees no API keys (api_keys.read is admin and up)');
select tests.act_as('viewer_a');
select is_empty($$select id from public.api_keys$$, 'a viewer sees no API keys');
select tests.act_as('owner_b');
select results_eq(
  $$select id from public.api_keys order by id$$,
  $$select id from keys where org_id = tests.fx('org_b') order by id$$,
  'the owner of org B sees only org B''s key, none of org A''s'
);
select tests.act_as('platform_admin');
-- (Restricted to this test's orgs: the seed may hold other keys.)
select results_eq(
  $$select id from public.api_keys where org_id in (tests.fx('org_a'), tests.fx('org_b')) order by id$$,
  $$select id from keys order by id$$,
  'a platform admin sees the keys of every org'
);

-- ---------------------------------------------------------------------------
-- Who may create, and what is rejected
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'sneaky', array['chat.write'])$$,
  '42501', 'you do not have the api_keys.manage permission in this organization',
  'a member cannot create an API key'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'sneaky', array['chat.write'])$$,
  '42501', 'you do not have the api_keys.manage permission in this organization',
  'a viewer cannot create an API key'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'sneaky', array['chat.write'])$$,
  '42501', 'you do not have the api_keys.manage permission in this organization',
  'the owner of another org cannot create a key in org A'
);
select tests.act_as('anon');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'sneaky', array['chat.write'])$$,
  '42501', 'permission denied for function create_api_key',
  'anon may not even execute create_api_key'
);

select tests.act_as('admin_a');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'bad scope', array['chat.write', 'billing.write'])$$,
  '22023', 'unknown API key scope(s): billing.write',
  'a scope missing from public.api_key_scopes is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'null scope', array['chat.write', null])$$,
  '22023', 'unknown API key scope(s): ',
  'a null element in the scopes is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'no scope', array[]::text[])$$,
  '22023', 'an API key needs at least one scope',
  'an empty scope list is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'no scope', null)$$,
  '22023', 'an API key needs at least one scope',
  'a null scope list is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'stale', array['chat.write'], now() - interval '1 day')$$,
  '22023', 'expires_at must be in the future',
  'an expiry in the past is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), '   ', array['chat.write'])$$,
  '22023', 'an API key name has 1 to 100 characters',
  'a blank name is rejected'
);
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), repeat('x', 101), array['chat.write'])$$,
  '22023', 'an API key name has 1 to 100 characters',
  'a name longer than 100 characters is rejected'
);

-- The RPCs are the only way in: no direct writes to the key rows, so an
-- admin cannot, say, bring a revoked key back or forge a key row.
select throws_ok(
  $$insert into public.api_keys (org_id, name, prefix, scopes) values (tests.fx('org_a'), 'forged', 'ak_00000000', array['chat.write'])$$,
  '42501', 'permission denied for table api_keys',
  'an admin cannot insert key rows directly'
);
select throws_ok(
  $$update public.api_keys set revoked_at = null, scopes = array['chat.write', 'calls.write'] where org_id = tests.fx('org_a')$$,
  '42501', 'permission denied for table api_keys',
  'an admin cannot update key rows directly (un-revoke, widen scopes)'
);

select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.api_keys where org_id = tests.fx('org_a')),
  2,
  'none of the refused calls left a key behind'
);

-- ---------------------------------------------------------------------------
-- Verification: service role only
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$select * from private.verify_api_key((select key from keys where label = 'main'))$$,
  '42501', 'permission denied for function verify_api_key',
  'authenticated may not execute verify_api_key (it would be a key oracle)'
);
select tests.act_as('anon');
select throws_ok(
  $$select * from private.verify_api_key((select key from keys where label = 'main'))$$,
  '42501', 'permission denied for function verify_api_key',
  'anon may not execute verify_api_key'
);

select tests.act_as('postgres');
insert into marks select 'audit before verify', count(*) from public.audit_log where table_name = 'api_keys';

select tests.act_as('service_role');
select results_eq(
  $$select api_key_id, org_id, scopes from private.verify_api_key((select key from keys where label = 'main'))$$,
  $$select id, org_id, scopes from keys where label = 'main'$$,
  'the service role verifies a live key: its id, org and scopes'
);

select tests.act_as('postgres');
select is(
  (select last_used_at from public.api_keys where id = (select id from keys where label = 'main')),
  now(),
  'verifying records last_used_at'
);
select is(
  (select count(*) from public.audit_log where table_name = 'api_keys'),
  (select n from marks where label = 'audit before verify'),
  'recording last_used_at writes no audit row (it is telemetry, not a change)'
);

-- At most once a minute: now() is fixed within the transaction, so move the
-- last use back instead of waiting. 30 seconds ago: left alone.
update public.api_keys set last_used_at = now() - interval '30 seconds'
where id = (select id from keys where label = 'main');
select tests.act_as('service_role');
select isnt_empty(
  $$select * from private.verify_api_key((select key from keys where label = 'main'))$$,
  'the key verifies again'
);
select tests.act_as('postgres');
select is(
  (select last_used_at from public.api_keys where id = (select id from keys where label = 'main')),
  now() - interval '30 seconds',
  'a use within a minute of the last one leaves last_used_at unchanged'
);
-- Two minutes ago: recorded again.
update public.api_keys set last_used_at = now() - interval '2 minutes'
where id = (select id from keys where label = 'main');
select tests.act_as('service_role');
select isnt_empty(
  $$select * from private.verify_api_key((select key from keys where label = 'main'))$$,
  'the key verifies a third time'
);
select tests.act_as('postgres');
select is(
  (select last_used_at from public.api_keys where id = (select id from keys where label = 'main')),
  now(),
  'a use more than a minute after the last one updates last_used_at'
);

select tests.act_as('service_role');
select is_empty(
  $$select * from private.verify_api_key((select left(key, 50) || case when right(key, 1) = '0' then '1' else '0' end from keys where label = 'main'))$$,
  'a well-formed key that differs in one character does not verify'
);
select is_empty(
  $$select * from private.verify_api_key((select upper(key) from keys where label = 'main'))$$,
  'a malformed key (upper case) does not verify'
);
select is_empty(
  $$select * from private.verify_api_key('not-a-key')$$,
  'an arbitrary string does not verify'
);
select is_empty(
  $$select * from private.verify_api_key(null)$$,
  'null does not verify'
);

-- ---------------------------------------------------------------------------
-- Revoking
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select public.revoke_api_key((select id from keys where label = 'main'))$$,
  '42501', 'you do not have the api_keys.manage permission in this organization',
  'a member cannot revoke a key'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.revoke_api_key((select id from keys where label = 'main'))$$,
  'PT404', 'API key not found',
  'the owner of another org cannot revoke org A''s key, nor learn it exists (20261123008500)'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select public.revoke_api_key(gen_random_uuid())$$,
  'PT404', 'API key not found',
  'revoking an unknown key is PT404'
);
select tests.act_as('postgres');
select is(
  (select revoked_at from public.api_keys where id = (select id from keys where label = 'main')),
  null::timestamptz,
  'the refused revocations left the key live'
);

insert into marks select 'audit before revoke', count(*) from public.audit_log where table_name = 'api_keys';
select tests.act_as('admin_a');
select lives_ok(
  $$select public.revoke_api_key((select id from keys where label = 'second'))$$,
  'an admin revokes a key'
);
select tests.act_as('postgres');
select results_eq(
  $$select revoked_at, revoked_by from public.api_keys where id = (select id from keys where label = 'second')$$,
  $$select now(), tests.fx('admin_a')$$,
  'revoking sets revoked_at and revoked_by'
);
-- A second revocation, by someone else, changes nothing.
select tests.act_as('owner_a');
select is(
  (select revoked_by from public.revoke_api_key((select id from keys where label = 'second'))),
  tests.fx('admin_a'),
  'revoking again is a no-op: the key still shows the first revoker'
);
select tests.act_as('postgres');
select is(
  (select count(*) from public.audit_log where table_name = 'api_keys'),
  (select n + 1 from marks where label = 'audit before revoke'),
  'the two revocations wrote a single audit row'
);
select tests.act_as('service_role');
select is_empty(
  $$select * from private.verify_api_key((select key from keys where label = 'second'))$$,
  'a revoked key never verifies'
);

-- ---------------------------------------------------------------------------
-- Expiry
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$insert into keys
    select 'expiring', tests.fx('org_a'), k.*
    from public.create_api_key(tests.fx('org_a'), 'Short-lived', array['chat.write'], now() + interval '1 hour') k$$,
  'an admin creates a key that expires in an hour'
);
select tests.act_as('service_role');
select isnt_empty(
  $$select * from private.verify_api_key((select key from keys where label = 'expiring'))$$,
  'before its expiry the key verifies'
);
-- Let it expire: move both dates back (expires_at must stay after created_at).
select tests.act_as('postgres');
update public.api_keys set created_at = now() - interval '2 days', expires_at = now() - interval '1 day'
where id = (select id from keys where label = 'expiring');
select tests.act_as('service_role');
select is_empty(
  $$select * from private.verify_api_key((select key from keys where label = 'expiring'))$$,
  'an expired key never verifies'
);

-- ---------------------------------------------------------------------------
-- Audit: creating and revoking are recorded with the acting admin
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select results_eq(
  $$select org_id, actor_user_id, actor_api_key_id from public.audit_log
    where table_name = 'api_keys' and action = 'insert' and record_id = (select id::text from keys where label = 'main')$$,
  $$select tests.fx('org_a'), tests.fx('admin_a'), null::uuid$$,
  'creating a key writes one audit row in org A with the admin as actor'
);
select results_eq(
  $$select org_id, actor_user_id, new_values ->> 'revoked_by' from public.audit_log
    where table_name = 'api_keys' and action = 'update' and record_id = (select id::text from keys where label = 'second')$$,
  $$select tests.fx('org_a'), tests.fx('admin_a'), tests.fx('admin_a')::text$$,
  'revoking a key writes one audit row in org A with the admin as actor'
);
select ok(
  (select bool_and(new_values ? 'revoked_at' and not new_values ? 'name') from public.audit_log
   where table_name = 'api_keys' and action = 'update' and record_id = (select id::text from keys where label = 'second')),
  'the revocation''s audit row holds only the changed fields'
);

-- ---------------------------------------------------------------------------
-- At most 100 active keys per org. Revoked and expired keys do not count:
-- org A has 'main' live, 'second' revoked and 'expiring' expired, so 99 more
-- live keys (inserted directly, each with a secret row) make 100.
-- ---------------------------------------------------------------------------

insert into public.api_keys (org_id, name, prefix, scopes, created_by)
select tests.fx('org_a'), 'bulk ' || g, 'ak_' || lpad(to_hex(g), 8, '0'), array['calls.read'], tests.fx('admin_a')
from generate_series(1, 99) g;
insert into private.api_key_secrets (api_key_id, secret_hash)
select k.id, sha256(convert_to('bulk-' || k.id::text, 'UTF8'))
from public.api_keys k
where k.org_id = tests.fx('org_a') and k.name like 'bulk %';

select is(
  (select count(*)::integer from public.api_keys
   where org_id = tests.fx('org_a') and revoked_at is null and (expires_at is null or expires_at > now())),
  100,
  'org A now has 100 active keys (and one revoked, one expired)'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'one too many', array['chat.write'])$$,
  '22023', 'an organization has at most 100 active API keys',
  'the 101st active key is refused'
);
select tests.act_as('owner_b');
select lives_ok(
  $$select public.create_api_key(tests.fx('org_b'), 'B bot 2', array['chat.write'])$$,
  'the limit is per org: org B still creates keys'
);
select tests.act_as('admin_a');
select lives_ok(
  $$select public.revoke_api_key((select id from public.api_keys where name = 'bulk 1'))$$,
  'revoking one active key ...'
);
select lives_ok(
  $$select public.create_api_key(tests.fx('org_a'), 'replacement', array['chat.write'])$$,
  '... makes room for a new one'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.api_keys where org_id = tests.fx('org_a')),
  103,
  'org A ends with 103 key rows: 100 active, two revoked, one expired'
);

select * from finish();
rollback;
