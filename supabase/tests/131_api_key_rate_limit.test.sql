-- Setting an API key's chat rate limit (20261123004000_api_key_rate_limit.sql):
-- admins and up of the key's org, within 1 to 10,000, not on a revoked key;
-- the change is audited.
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@key-limit.test')),
  ('admin_a', tests.create_user('admin-a@key-limit.test')),
  ('member_a', tests.create_user('member-a@key-limit.test')),
  ('owner_b', tests.create_user('owner-b@key-limit.test'));
select tests.remember('org_a', tests.create_org('key-limit-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('key-limit-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

select tests.act_as('admin_a');
select tests.remember('key', k.id) from public.create_api_key(tests.fx('org_a'), 'voice bot', array['chat.write']) k;
select tests.remember('old_key', k.id) from public.create_api_key(tests.fx('org_a'), 'old bot', array['chat.write']) k;
select public.revoke_api_key(tests.fx('old_key'));

select is(
  (select k.rate_limit_per_minute from public.set_api_key_rate_limit(tests.fx('key'), 300) k),
  300,
  'an admin sets the key''s limit, and gets the key back'
);
select is(
  (select rate_limit_per_minute from public.api_keys where id = tests.fx('key')),
  300,
  'the key holds the new limit'
);
select throws_ok(
  $$select public.set_api_key_rate_limit(tests.fx('key'), 0)$$,
  '22023', 'per_minute must be between 1 and 10000',
  'a limit below 1 is refused'
);
select throws_ok(
  $$select public.set_api_key_rate_limit(tests.fx('key'), 10001)$$,
  '22023', 'per_minute must be between 1 and 10000',
  'so is one over 10,000'
);
select throws_ok(
  $$select public.set_api_key_rate_limit(tests.fx('old_key'), 100)$$,
  '22023', 'the API key is revoked',
  'a revoked key keeps its limit'
);
select throws_ok(
  $$select public.set_api_key_rate_limit(gen_random_uuid(), 100)$$,
  'PT404', 'API key not found',
  'an unknown key is not found'
);

select tests.act_as('member_a');
select throws_ok(
  $$select public.set_api_key_rate_limit(tests.fx('key'), 100)$$,
  '42501', null,
  'a member may not change it'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.set_api_key_rate_limit(tests.fx('key'), 100)$$,
  'PT404', 'API key not found',
  'nor may another org''s owner, who is told no such key exists (20261123008500)'
);

select tests.act_as('postgres');
select ok(
  exists (
    select 1 from public.audit_log a
    where a.table_name = 'api_keys' and a.action = 'update' and a.record_id = tests.fx('key')::text
      and a.actor_user_id = tests.fx('admin_a')
  ),
  'the change is in the audit log, with the admin as actor'
);

select * from finish();
rollback;
