-- Overage per subscription period (20261123004300_overage_per_period.sql):
-- an invoice bills the overage of each subscription period that ends in its
-- month, against that period's plan (allowance and prices), as the quotas
-- enforce it; not the calendar month's usage against the month-end plan.
-- A: two periods each under the allowance, split across a month, are not
--    overage; the second period's excess goes on the month it ends in.
-- B: usage on Business before a downgrade to Pro is measured against
--    Business's allowance and priced at Business's rates.
-- An upgrade ends a period early: that short period is billed too.
-- A plain month (a period that is exactly the calendar month) is unchanged.
-- Months invoiced by the calendar rule before the migration are not billed
-- again.
begin;
create extension if not exists pgtap with schema extensions;

select plan(15);

-- An org whose subscription history is given as (plan, started_at,
-- canceled_at) rows; the free subscription create_org made (started now) is
-- dropped, and the last row stays active.
create function pg_temp.org_with(slug text, history text[][]) returns uuid language plpgsql as $$
declare
  org uuid := tests.create_org(slug, tests.create_user(slug || '@overage.test'));
  step text[];
  started timestamptz;
begin
  delete from public.subscriptions s where s.org_id = org;
  foreach step slice 1 in array history loop
    started := step[2]::timestamptz;
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end, canceled_at)
    values (org, step[1], case when step[3] is null then 'active' else 'canceled' end::public.subscription_status,
      started, started, private.add_months_utc(started, 1), step[3]::timestamptz);
  end loop;
  return org;
end;
$$;

create function pg_temp.chat(org uuid, tokens bigint, at text) returns void language sql as $$
  insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
  values (org, 'chat', 'gpt-4o-mini', tokens, 0, at::timestamptz);
$$;

create function pg_temp.talk(org uuid, minutes integer, ended text) returns void language sql as $$
  insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
  values (org, 'inbound', 'ended', ended::timestamptz - pg_catalog.make_interval(mins => minutes), ended::timestamptz, minutes * 60);
$$;

create function pg_temp.invoice_of(org uuid, month date) returns uuid language sql as $$
  select i.id from public.invoices i where i.org_id = org and i.period_start = month;
$$;

-- A: Pro from Jan 15 (periods Jan 15-Feb 15, Feb 15-Mar 15). 4.9M chat
-- tokens and 900 call minutes in each period, all in February: under Pro's
-- 5M and 1,000 in both periods, so the quotas never refused anything.
-- The calendar rule billed 9.8M (4.8M over: 960 cents) and 1,800 minutes
-- (800 over: 4,000 cents). In March 0.2M more tokens end the second period
-- at 5.1M: 100k over, on the March invoice.
select tests.remember('org_a', pg_temp.org_with('overage-a', array[['pro', '2026-01-15T00:00Z', null]]));
select pg_temp.chat(tests.fx('org_a'), 4900000, '2026-02-05T00:00Z');
select pg_temp.chat(tests.fx('org_a'), 4900000, '2026-02-20T00:00Z');
select pg_temp.chat(tests.fx('org_a'), 200000, '2026-03-10T00:00Z');
select pg_temp.talk(tests.fx('org_a'), 900, '2026-02-06T00:00Z');
select pg_temp.talk(tests.fx('org_a'), 900, '2026-02-21T00:00Z');

-- B: Business from Jan 15, downgraded to Pro at the period's end (Feb 15,
-- as roll_subscriptions applies it). 50.1M tokens and 3,000 minutes on
-- Feb 5-6, on Business: 100k tokens over Business's 50M at 0.15 = 15 cents;
-- the minutes are within Business's 10,000. The calendar rule measured them
-- against Pro: 45.1M over (9,020 cents) and 2,000 minutes over (10,000).
select tests.remember('org_b', pg_temp.org_with('overage-b', array[
  ['business', '2026-01-15T00:00Z', '2026-02-15T00:00Z'],
  ['pro', '2026-02-15T00:00Z', null]]));
select pg_temp.chat(tests.fx('org_b'), 50100000, '2026-02-05T00:00Z');
select pg_temp.talk(tests.fx('org_b'), 3000, '2026-02-06T00:00Z');

-- An upgrade: Pro from Jan 15, Business from Feb 20 12:00. Pro's second
-- period ends early, in February: 5.5M tokens in it (Feb 17) are 500k over
-- Pro's allowance = 100 cents; Business (in force at the month's end) is
-- the plan line. The calendar rule measured 5.5M against Business: nothing.
select tests.remember('org_u', pg_temp.org_with('overage-u', array[
  ['pro', '2026-01-15T00:00Z', '2026-02-20T12:00Z'],
  ['business', '2026-02-20T12:00Z', null]]));
select pg_temp.chat(tests.fx('org_u'), 5500000, '2026-02-17T00:00Z');

-- A plain month: Pro from Jan 1 00:00 UTC, so February is one period.
-- 5,012,500 tokens: 12.5k over = 2.5 -> 3 cents; 1,002 minutes: 2 over = 10.
select tests.remember('org_p', pg_temp.org_with('overage-plain', array[['pro', '2026-01-01T00:00Z', null]]));
select pg_temp.chat(tests.fx('org_p'), 5000000, '2026-02-03T00:00Z');
select pg_temp.chat(tests.fx('org_p'), 12500, '2026-02-27T00:00Z');
select pg_temp.talk(tests.fx('org_p'), 1002, '2026-02-10T00:00Z');
select pg_temp.chat(tests.fx('org_p'), 9000000, '2026-03-02T00:00Z');

select tests.act_as('service_role');
select cmp_ok(private.generate_invoices('2026-02-01'), '>=', 4, 'generate_invoices: February is invoiced');
select is(private.generate_invoices('2026-02-01'), 0, 'generate_invoices: a second run creates nothing');
select tests.act_as('postgres');

select results_eq(
  $$select i.plan_id, i.total_cents, (select count(*)::int from public.invoice_lines l where l.invoice_id = i.id)
    from public.invoices i where i.id = pg_temp.invoice_of(tests.fx('org_a'), '2026-02-01')$$,
  $$values ('pro', 4900::bigint, 1)$$,
  'A: no overage in February when each period stayed within its allowance'
);
select tests.act_as('service_role');
select cmp_ok(private.generate_invoices('2026-03-01'), '>=', 4, 'generate_invoices: March is invoiced');
select tests.act_as('postgres');
select results_eq(
  $$select l.position::int, l.kind, l.metric, l.quantity, l.unit_price_cents, l.amount_cents, l.description
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_a'), '2026-03-01') order by l.position$$,
  $$values (1, 'plan', null::text, 1.000::numeric, 4900::numeric, 4900::bigint, 'Pro plan, March 2026'),
           (2, 'overage', 'chat_tokens', 100.000, 0.2, 20::bigint,
            'Chat Tokens beyond the 5,000,000 included: 5,100,000 used (Pro plan, 15 Feb 2026 to 15 Mar 2026)')$$,
  'A: the period ending in March is billed on the March invoice, with its period named'
);

select results_eq(
  $$select i.plan_id, i.total_cents from public.invoices i where i.id = pg_temp.invoice_of(tests.fx('org_b'), '2026-02-01')$$,
  $$values ('pro', 4915::bigint)$$,
  'B: February bills Pro (in force at the month''s end) plus Business''s overage only'
);
select results_eq(
  $$select l.position::int, l.kind, l.metric, l.quantity, l.unit, l.unit_price_cents, l.amount_cents, l.description
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_b'), '2026-02-01') order by l.position$$,
  $$values (1, 'plan', null::text, 1.000::numeric, 'month', 4900::numeric, 4900::bigint, 'Pro plan, February 2026'),
           (2, 'overage', 'chat_tokens', 100.000, '1k tokens', 0.15, 15::bigint,
            'Chat Tokens beyond the 50,000,000 included: 50,100,000 used (Business plan, 15 Jan 2026 to 15 Feb 2026)')$$,
  'B: usage on Business is measured against Business''s allowance and priced at its rates'
);
select is(
  (select i.total_cents from public.invoices i where i.id = pg_temp.invoice_of(tests.fx('org_b'), '2026-03-01')),
  4900::bigint,
  'B: the Pro period ending in March has no overage (nothing was used in it)'
);

select results_eq(
  $$select l.position::int, l.kind, l.metric, l.quantity, l.unit_price_cents, l.amount_cents, l.description
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_u'), '2026-02-01') order by l.position$$,
  $$values (1, 'plan', null::text, 1.000::numeric, 29900::numeric, 29900::bigint, 'Business plan, February 2026'),
           (2, 'overage', 'chat_tokens', 500.000, 0.2, 100::bigint,
            'Chat Tokens beyond the 5,000,000 included: 5,500,000 used (Pro plan, 15 Feb 2026 to 20 Feb 2026)')$$,
  'upgrade: the Pro period the upgrade ended is billed against Pro''s allowance'
);

select results_eq(
  $$select l.position::int, l.kind, l.metric, l.quantity, l.unit, l.unit_price_cents, l.amount_cents, l.description
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_p'), '2026-02-01') order by l.position$$,
  $$values (1, 'plan', null::text, 1.000::numeric, 'month', 4900::numeric, 4900::bigint, 'Pro plan, February 2026'),
           (2, 'overage', 'chat_tokens', 12.500, '1k tokens', 0.2, 3::bigint,
            'Chat Tokens beyond the 5,000,000 included: 5,012,500 used'),
           (3, 'overage', 'call_minutes', 2.000, 'minute', 5, 10::bigint,
            'Call Minutes beyond the 1,000 included: 1,002 used')$$,
  'plain month: one period that is the calendar month bills as before'
);
select results_eq(
  $$select i.total_cents, e.payload ->> 'total_cents' from public.invoices i
    join public.events e on e.org_id = i.org_id and e.type = 'invoice.created' and e.payload ->> 'invoice_id' = i.id::text
    where i.id = pg_temp.invoice_of(tests.fx('org_p'), '2026-02-01')$$,
  $$values (4913::bigint, '4913')$$,
  'plain month: the total and invoice.created are unchanged'
);
select is(
  (select i.total_cents from public.invoices i where i.id = pg_temp.invoice_of(tests.fx('org_p'), '2026-03-01')),
  4900::bigint + 800,
  'plain month: March''s period has its own allowance (9M: 4M over = 800 cents)'
);

-- Months invoiced by the calendar rule before 20261123004300 already billed
-- their own usage: a period that began in such a month counts its usage only
-- from the next month's start. Pro from Jan 15; 5.5M tokens on Jan 20 were
-- on January's (calendar-rule) invoice; 0.1M on Feb 3 are February's.
select tests.remember('org_t', pg_temp.org_with('overage-transition', array[['pro', '2026-01-15T00:00Z', null]]));
select pg_temp.chat(tests.fx('org_t'), 5500000, '2026-01-20T00:00Z');
select pg_temp.chat(tests.fx('org_t'), 100000, '2026-02-03T00:00Z');
insert into public.invoices (org_id, period_start, period_end, plan_id, currency, subtotal_cents, total_cents)
values (tests.fx('org_t'), '2026-01-01', '2026-02-01', 'pro', 'USD', 5000, 5000);
insert into private.calendar_month_overage_invoices (invoice_id) values (pg_temp.invoice_of(tests.fx('org_t'), '2026-01-01'));
select tests.remember('org_t2', pg_temp.org_with('overage-transition-2', array[['pro', '2026-01-15T00:00Z', null]]));
select pg_temp.chat(tests.fx('org_t2'), 5500000, '2026-01-20T00:00Z');
select pg_temp.chat(tests.fx('org_t2'), 100000, '2026-02-03T00:00Z');

select tests.act_as('service_role');
select is(private.generate_invoices('2026-02-01'), 2, 'transition: the two new orgs are invoiced for February');
select tests.act_as('postgres');
select results_eq(
  $$select l.kind, l.metric, l.quantity, l.amount_cents, l.description
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_t'), '2026-02-01') order by l.position$$,
  $$values ('plan', null::text, 1.000::numeric, 4900::bigint, 'Pro plan, February 2026')$$,
  'transition: usage already on a calendar-rule invoice is not billed again'
);
select results_eq(
  $$select l.kind, l.metric, l.quantity, l.amount_cents
    from public.invoice_lines l where l.invoice_id = pg_temp.invoice_of(tests.fx('org_t2'), '2026-02-01') order by l.position$$,
  $$values ('plan', null::text, 1.000::numeric, 4900::bigint), ('overage', 'chat_tokens', 600.000, 120::bigint)$$,
  'transition: without such an invoice the whole period counts (5.6M: 600k over)'
);

select * from finish();
rollback;
