-- Settings numbers of any size reach their validation
-- (supabase/migrations/20261123004500_invitation_confirmed_email_and_settings_ranges.sql):
-- org_settings.speaking_rate, interruption_sensitivity and temperature and
-- bots.temperature were numeric(3, 2), so 12.5 or 1000 failed the type
-- coercion (22003 numeric field overflow) before the validation trigger and
-- the checks. Now plain numeric: org settings answer the documented 22023
-- naming the field and its range, bots their range check (23514, as for 2.5);
-- values are still rounded to 2 decimals as numeric(3, 2) did.
begin;
create extension if not exists pgtap with schema extensions;

select plan(28);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@ranges.test')),
  ('admin_a', tests.create_user('admin-a@ranges.test'));
select tests.remember('org_a', tests.create_org('ranges-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');

-- The org's settings as text, read as postgres.
create function pg_temp.settings() returns text language sql stable
as $$
  select concat_ws(' ', s.speaking_rate, s.interruption_sensitivity, s.temperature)
  from public.org_settings s where s.org_id = tests.fx('org_a')
$$;

-- ---------------------------------------------------------------------------
-- Org settings: out of range at any size is 22023 with the field's message.
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$update public.org_settings set speaking_rate = 12.5 where org_id = tests.fx('org_a')$$,
  '22023', 'the speaking rate is between 0.5 and 2.0',
  'org settings: speaking rate 12.5 is the range error (22023), not a numeric overflow');
select throws_ok(
  $$update public.org_settings set speaking_rate = 1000 where org_id = tests.fx('org_a')$$,
  '22023', 'the speaking rate is between 0.5 and 2.0',
  'org settings: speaking rate 1000 is the range error (22023)');
select throws_ok(
  $$update public.org_settings set interruption_sensitivity = 12.5 where org_id = tests.fx('org_a')$$,
  '22023', 'the interruption sensitivity is between 0 and 1',
  'org settings: interruption sensitivity 12.5 is the range error (22023)');
select throws_ok(
  $$update public.org_settings set interruption_sensitivity = '-1000' where org_id = tests.fx('org_a')$$,
  '22023', 'the interruption sensitivity is between 0 and 1',
  'org settings: interruption sensitivity -1000 (as PostgREST sends it, text) is the range error (22023)');
select throws_ok(
  $$update public.org_settings set temperature = 1000 where org_id = tests.fx('org_a')$$,
  '22023', 'the temperature is between 0 and 2',
  'org settings: temperature 1000 is the range error (22023)');
select throws_ok(
  $$update public.org_settings set temperature = 1e300 where org_id = tests.fx('org_a')$$,
  '22023', 'the temperature is between 0 and 2',
  'org settings: temperature 1e300 is the range error (22023)');
select throws_ok(
  $$update public.org_settings set temperature = 'Infinity' where org_id = tests.fx('org_a')$$,
  '22023', 'the temperature is between 0 and 2',
  'org settings: temperature Infinity is the range error (22023)');
select throws_ok(
  $$update public.org_settings set speaking_rate = 'NaN' where org_id = tests.fx('org_a')$$,
  '22023', 'the speaking rate is between 0.5 and 2.0',
  'org settings: speaking rate NaN is the range error (22023)');

-- Rounded to 2 decimals (half away from zero) before the range is checked,
-- as numeric(3, 2) did.
select throws_ok(
  $$update public.org_settings set speaking_rate = 2.005 where org_id = tests.fx('org_a')$$,
  '22023', 'the speaking rate is between 0.5 and 2.0',
  'org settings: speaking rate 2.005 rounds to 2.01, out of range');
select lives_ok(
  $$update public.org_settings set speaking_rate = 2.004, interruption_sensitivity = 0.125, temperature = 1.23456
    where org_id = tests.fx('org_a')$$,
  'org settings: values within range after rounding are accepted');
select tests.act_as('postgres');
select is(pg_temp.settings(), '2.00 0.13 1.23', 'org settings: stored rounded to 2 decimals, with 2 decimals');
select is(
  (select new_values - 'updated_at' - 'updated_by' from public.audit_log
   where org_id = tests.fx('org_a') and table_name = 'org_settings' and action = 'update' order by seq desc limit 1),
  '{"speaking_rate": 2.00, "temperature": 1.23, "interruption_sensitivity": 0.13}'::jsonb,
  'org settings: the audit log records the rounded values');
select is(
  (select to_jsonb(s) ->> 'speaking_rate' from public.org_settings s where s.org_id = tests.fx('org_a')),
  '2.00', 'org settings: JSON keeps two decimals, as before (PostgREST, exports)');

select tests.act_as('admin_a');
select lives_ok(
  $$update public.org_settings set speaking_rate = 0.5, interruption_sensitivity = 0, temperature = 2 where org_id = tests.fx('org_a')$$,
  'org settings: the bounds themselves are accepted');
select tests.act_as('postgres');
select is(pg_temp.settings(), '0.50 0.00 2.00', 'org settings: bounds stored with 2 decimals');

-- A new row (any path): defaults as documented, a bad value still 22023.
insert into public.organizations (name, slug, created_by) values ('Ranges B', 'ranges-org-b', tests.fx('owner_a'));
select tests.remember('org_b', (select id from public.organizations where slug = 'ranges-org-b'));
select throws_ok(
  $$insert into public.org_settings (org_id, speaking_rate) values (tests.fx('org_b'), 99)$$,
  '22023', 'the speaking rate is between 0.5 and 2.0',
  'org settings: an insert with speaking rate 99 is the range error (22023)');
insert into public.org_settings (org_id) values (tests.fx('org_b'));
select is(
  (select concat_ws(' ', speaking_rate, interruption_sensitivity, temperature) from public.org_settings where org_id = tests.fx('org_b')),
  '1.00 0.50 0.30', 'org settings: defaults 1.00, 0.50 and 0.30, as before');

-- The columns, and what depends on them.
select is(
  (select string_agg(format('%s.%s %s(%s,%s)', c.table_name, c.column_name, c.data_type, c.numeric_precision, c.numeric_scale),
                     ', ' order by c.table_name, c.column_name)
   from information_schema.columns c
   where c.table_schema = 'public'
     and c.table_name::text || '.' || c.column_name::text in
       ('org_settings.speaking_rate', 'org_settings.interruption_sensitivity', 'org_settings.temperature', 'bots.temperature')),
  'bots.temperature numeric(,), org_settings.interruption_sensitivity numeric(,), '
    || 'org_settings.speaking_rate numeric(,), org_settings.temperature numeric(,)',
  'columns: plain numeric, no precision to overflow');
select is(
  (select string_agg(c.conname::text, ', ' order by c.conname::text) from pg_constraint c
   where c.conname::text in ('org_settings_speaking_rate_range', 'org_settings_interruption_sensitivity_range',
                             'org_settings_temperature_range', 'bots_temperature_range') and c.convalidated),
  'bots_temperature_range, org_settings_interruption_sensitivity_range, org_settings_speaking_rate_range, org_settings_temperature_range',
  'columns: the range check constraints stay as the last guard');
select ok(
  has_column_privilege('authenticated', 'public.org_settings', 'speaking_rate', 'update')
    and has_column_privilege('authenticated', 'public.org_settings', 'temperature', 'update')
    and has_column_privilege('authenticated', 'public.bots', 'temperature', 'insert')
    and has_column_privilege('authenticated', 'public.bots', 'temperature', 'update'),
  'columns: the column grants survived the type change');

-- ---------------------------------------------------------------------------
-- Bots: temperature out of range at any size is the range check (23514).
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'X', 'x', 12.5)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: temperature 12.5 is the range check (23514, as 2.5), not a numeric overflow');
select throws_ok(
  $$insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'X', 'x', -1000)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: temperature -1000 is the range check (23514)');
select throws_ok(
  $$insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'X', 'x', 2.005)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: temperature 2.005 rounds to 2.01, out of range');
select lives_ok(
  $$with b as (insert into public.bots (org_id, name, slug, temperature)
    values (tests.fx('org_a'), 'Ranges', 'ranges', 2.004) returning id)
    select tests.remember('bot', b.id) from b$$,
  'bots: temperature 2.004 rounds to 2.00, accepted');
select is((select temperature::text from public.bots where id = tests.fx('bot')), '2.00', 'bots: stored as 2.00');
select throws_ok(
  $$update public.bots set temperature = 1000 where id = tests.fx('bot')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: an update to temperature 1000 is the range check (23514)');
select lives_ok(
  $$update public.bots set temperature = 0.333 where id = tests.fx('bot')$$,
  'bots: an update within range is accepted');
select is((select temperature::text from public.bots where id = tests.fx('bot')), '0.33', 'bots: an update is rounded to 2 decimals too');

select * from finish();
rollback;
