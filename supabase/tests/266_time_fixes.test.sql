-- Time fixes (20261123009300_time_fixes.sql): the slot grid's origins are fixed by the business hours alone
-- (openings; an overnight row's opening carried across midnight; local midnights without hours or with all-day
-- hours), so a day's slots do not depend on `from`; a scheduled downgrade keeps the billing anniversary, so the
-- quota period is the same before and after roll_subscriptions; usage_daily cuts days in the org's zone.
begin;
create extension if not exists pgtap with schema extensions;

select plan(17);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@266-time-fixes.test')),
  ('viewer_a', tests.create_user('viewer-a@266-time-fixes.test')),
  ('outsider', tests.create_user('outsider@266-time-fixes.test'));
select tests.remember('org_london', tests.create_org('time-fixes-266-london', tests.fx('owner_a')));
select tests.remember('org_berlin', tests.create_org('time-fixes-266-berlin', tests.fx('owner_a')));
select tests.remember('org_howe', tests.create_org('time-fixes-266-lord-howe', tests.fx('owner_a')));
select tests.remember('org_bill', tests.create_org('time-fixes-266-billing', tests.fx('owner_a')));
select tests.remember('org_ny', tests.create_org('time-fixes-266-new-york', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_london'), tests.fx('viewer_a'), 'viewer');
update public.organizations set time_zone = 'Europe/London' where id = tests.fx('org_london');
update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_berlin');
update public.organizations set time_zone = 'Australia/Lord_Howe' where id = tests.fx('org_howe');
update public.organizations set time_zone = 'UTC' where id = tests.fx('org_bill');
update public.organizations set time_zone = 'America/New_York' where id = tests.fx('org_ny');

-- Wall times in a zone, as instants.
create function pg_temp.at(wall text, zone text) returns timestamptz language sql immutable as $$
  select wall::timestamp at time zone zone;
$$;
grant execute on function pg_temp.at(text, text) to public;

-- ---------------------------------------------------------------------------
-- 1. Slot grid origins
-- ---------------------------------------------------------------------------

-- Overnight hours, London: Monday 22:00-24:00 and Tuesday 00:00-02:00 (23-24 Nov 2026), plus Tuesday 09:00-17:00.
insert into public.business_hours (org_id, weekday, opens, closes) values
  (tests.fx('org_london'), 1, '22:00', '24:00'),
  (tests.fx('org_london'), 2, '00:00', '02:00'),
  (tests.fx('org_london'), 2, '09:00', '17:00');
-- All-day hours, Lord Howe, every day (its clocks go from 02:00 to 02:30 on 4 Oct 2026).
insert into public.business_hours (org_id, weekday, opens, closes)
select tests.fx('org_howe'), d, '00:00', '24:00' from generate_series(1, 7) d;

select tests.act_as('owner_a');
select is(
  private.slot_origins(tests.fx('org_london'), null, tstzrange(pg_temp.at('2026-11-24 00:30', 'Europe/London'), pg_temp.at('2026-11-25 00:00', 'Europe/London'))),
  array[pg_temp.at('2026-11-23 22:00', 'Europe/London'), pg_temp.at('2026-11-24 09:00', 'Europe/London')],
  'overnight hours: the Tuesday 00:00 row continues Monday 22:00, whose opening stays the origin (and is found from Tuesday 00:30)'
);
select is(
  (select max(o) from unnest(private.slot_origins(tests.fx('org_london'), null,
    tstzrange(pg_temp.at('2026-11-24 00:30', 'Europe/London'), pg_temp.at('2026-11-25 00:00', 'Europe/London')))) o
   where o <= pg_temp.at('2026-11-24 00:30', 'Europe/London')),
  (select max(o) from unnest(private.slot_origins(tests.fx('org_london'), null,
    tstzrange(pg_temp.at('2026-11-23 21:00', 'Europe/London'), pg_temp.at('2026-11-25 00:00', 'Europe/London')))) o
   where o <= pg_temp.at('2026-11-24 00:30', 'Europe/London')),
  'overnight hours: the origin in force at Tuesday 00:30 is the same asked from Monday 21:00 or from Tuesday 00:30'
);
select is(
  private.open_ranges(tests.fx('org_london'), null, tstzrange(pg_temp.at('2026-11-23 22:00', 'Europe/London'), pg_temp.at('2026-11-24 03:00', 'Europe/London'))),
  tstzmultirange(tstzrange(pg_temp.at('2026-11-23 22:00', 'Europe/London'), pg_temp.at('2026-11-24 02:00', 'Europe/London'))),
  'read from that origin, the overnight range keeps its 22:00 opening'
);
select is(
  private.slot_origins(tests.fx('org_berlin'), null, tstzrange(pg_temp.at('2026-11-24 00:00', 'Europe/Berlin'), pg_temp.at('2026-11-25 00:00', 'Europe/Berlin'))),
  array[pg_temp.at('2026-11-21 00:00', 'Europe/Berlin'), pg_temp.at('2026-11-22 00:00', 'Europe/Berlin'),
        pg_temp.at('2026-11-23 00:00', 'Europe/Berlin'), pg_temp.at('2026-11-24 00:00', 'Europe/Berlin')],
  'no hours: every local midnight of the org''s zone, from three days before the window'
);
select is(
  private.slot_origins(tests.fx('org_howe'), null, tstzrange(pg_temp.at('2026-10-04 00:00', 'Australia/Lord_Howe'), pg_temp.at('2026-10-06 00:00', 'Australia/Lord_Howe'))),
  array[pg_temp.at('2026-10-01 00:00', 'Australia/Lord_Howe'), pg_temp.at('2026-10-02 00:00', 'Australia/Lord_Howe'),
        pg_temp.at('2026-10-03 00:00', 'Australia/Lord_Howe'), pg_temp.at('2026-10-04 00:00', 'Australia/Lord_Howe'),
        pg_temp.at('2026-10-05 00:00', 'Australia/Lord_Howe')],
  'all-day hours: every local midnight, across the half-hour DST change'
);
select is(
  pg_temp.at('2026-10-05 00:00', 'Australia/Lord_Howe') - pg_temp.at('2026-10-04 00:00', 'Australia/Lord_Howe'),
  interval '23 hours 30 minutes',
  'the Lord Howe day of the change is 23.5 hours, so a grid carried on from the day before would be off by 30 minutes'
);
select tests.act_as('viewer_a');
select throws_ok(
  $$select private.slot_origins(tests.fx('org_london'), null, tstzrange(now(), now() + interval '1 day'))$$,
  '42501', null, 'a viewer (no calendar.read) is refused, as by open_ranges'
);
select tests.act_as('outsider');
select throws_ok(
  $$select private.slot_origins(tests.fx('org_london'), null, tstzrange(now(), now() + interval '1 day'))$$,
  '42501', null, 'a non-member is refused'
);

-- ---------------------------------------------------------------------------
-- 2. The billing anniversary survives a scheduled downgrade
-- ---------------------------------------------------------------------------

-- Pro started 2026-01-31 10:00Z, its period ended 2026-02-28 10:00Z (clamped), Free scheduled; the job has not run.
select tests.act_as('postgres');
update public.subscriptions
set plan_id = 'pro', started_at = '2026-01-31 10:00Z', scheduled_plan_id = 'free',
    current_period_start = '2026-01-31 10:00Z', current_period_end = '2026-02-28 10:00Z'
where org_id = tests.fx('org_bill') and status = 'active';
create temp table before_roll as select * from private.billing_period(tests.fx('org_bill'));
select results_eq(
  $$select plan_id, period_start, period_end from before_roll$$,
  $$select 'free'::text, p.period_start, p.period_end from private.subscription_period_at('2026-01-31 10:00Z', now()) p$$,
  'before the roll: billing_period counts the scheduled Free plan''s period from the 31st'
);

select private.roll_subscription(s) from public.subscriptions s where s.org_id = tests.fx('org_bill') and s.status = 'active';
select results_eq(
  $$select plan_id, period_start, period_end from private.billing_period(tests.fx('org_bill'))$$,
  $$select plan_id, period_start, period_end from before_roll$$,
  'after the roll: the same plan and quota period as before it'
);
select results_eq(
  $$select plan_id, status::text, started_at, period_anchor_at, canceled_at from public.subscriptions
    where org_id = tests.fx('org_bill') order by started_at$$,
  $$values ('pro', 'canceled', '2026-01-31 10:00Z'::timestamptz, null::timestamptz, '2026-02-28 10:00Z'::timestamptz),
           ('free', 'active', '2026-02-28 10:00Z'::timestamptz, '2026-01-31 10:00Z'::timestamptz, null::timestamptz)$$,
  'Free starts at Pro''s period end and keeps Pro''s anchor'
);
select results_eq(
  $$select plan_id, period_start, period_end
    from private.subscription_periods_ending(tests.fx('org_bill'), '2026-02-01 00:00Z', '2026-05-01 00:00Z')
    order by period_start$$,
  $$values ('pro', '2026-01-31 10:00Z'::timestamptz, '2026-02-28 10:00Z'::timestamptz),
           ('free', '2026-02-28 10:00Z'::timestamptz, '2026-03-31 10:00Z'::timestamptz),
           ('free', '2026-03-31 10:00Z'::timestamptz, '2026-04-30 10:00Z'::timestamptz)$$,
  'the periods invoicing steps through: Free''s next period ends on 31 March, then the 30th of April'
);
select results_eq(
  $$select current_period_start, current_period_end,
      extract(day from current_period_start at time zone 'UTC') in (28, 29, 30, 31)
    from public.subscriptions where org_id = tests.fx('org_bill') and status = 'active'$$,
  $$select p.period_start, p.period_end, true from private.subscription_period_at('2026-01-31 10:00Z', now()) p$$,
  'the stored period is the whole month holding now on the 31st''s anniversaries (clamped month ends)'
);

-- ---------------------------------------------------------------------------
-- 3. usage_daily in the org's zone
-- ---------------------------------------------------------------------------

insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
values (tests.fx('org_ny'), 'chat', 'time-fixes-266', 100, 10, '2026-11-20 03:00Z');
select tests.act_as('owner_a');
select results_eq(
  $$select day, tokens_in, tokens_out from public.usage_daily(tests.fx('org_ny'), '2026-11-19', '2026-11-20') where kind = 'chat'$$,
  $$values ('2026-11-19'::date, 100::bigint, 10::bigint), ('2026-11-20'::date, 0::bigint, 0::bigint)$$,
  'New York org: usage at 03:00Z on 20 November is on 19 November (22:00 local)'
);
select results_eq(
  $$select day, tokens_in from public.usage_daily(tests.fx('org_ny'), '2026-11-19', '2026-11-20') where kind = 'chat'$$,
  $$select day, chat_tokens_in from public.analytics_usage_daily(tests.fx('org_ny'), '2026-11-19', '2026-11-20')$$,
  'usage_daily and analytics_usage_daily agree on the days'
);
select results_eq(
  $$select day, tokens_in from public.usage_daily(tests.fx('org_ny'), '2026-11-19', '2026-11-20', 'UTC') where kind = 'chat'$$,
  $$values ('2026-11-19'::date, 0::bigint), ('2026-11-20'::date, 100::bigint)$$,
  'a zone the caller names still wins'
);
select tests.act_as('outsider');
select throws_ok(
  $$select * from public.usage_daily(tests.fx('org_ny'), '2026-11-19', '2026-11-20')$$,
  '42501', null, 'a non-member gets 42501, as before'
);

select * from finish();
rollback;
