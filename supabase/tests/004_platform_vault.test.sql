-- Platform contract: Supabase Vault as migrations use it for secrets that SQL
-- needs (e.g. the service key a cron job sends to an edge function).
-- Holds on a Supabase project and on the local stack.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

create temporary table platform_test_secrets (label text primary key, id uuid);

insert into platform_test_secrets
select 'first', vault.create_secret('s3cr3t-value', 'platform_test_secret', 'created by a pgTAP test');

select isnt((select id from platform_test_secrets where label = 'first'), null, 'vault.create_secret returns an id');
select is(
  (select decrypted_secret from vault.decrypted_secrets where name = 'platform_test_secret'),
  's3cr3t-value',
  'vault.decrypted_secrets shows the secret'
);
select isnt(
  (select secret from vault.secrets where name = 'platform_test_secret'),
  's3cr3t-value',
  'vault.secrets stores it encrypted'
);
select is(
  (select description from vault.secrets where name = 'platform_test_secret'),
  'created by a pgTAP test',
  'the description is kept'
);

select vault.update_secret((select id from platform_test_secrets where label = 'first'), 'n3w-value');
select is(
  (select decrypted_secret from vault.decrypted_secrets where name = 'platform_test_secret'),
  'n3w-value',
  'vault.update_secret replaces the secret'
);

select throws_ok(
  $$select vault.create_secret('x', 'platform_test_secret')$$,
  '23505',
  null,
  'secret names are unique'
);

-- Only postgres and service_role may use the vault.
set local role authenticated;
select throws_ok(
  'select decrypted_secret from vault.decrypted_secrets',
  '42501',
  null,
  'authenticated cannot read vault secrets'
);
reset role;
set local role anon;
select throws_ok(
  $$select vault.create_secret('x')$$,
  '42501',
  null,
  'anon cannot create vault secrets'
);
reset role;

select * from finish();
rollback;
