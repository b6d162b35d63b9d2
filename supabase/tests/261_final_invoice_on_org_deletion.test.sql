-- Deleting an org draws its final invoice and keeps its invoices
-- (20261123008800_final_invoice_on_org_deletion.sql).
-- F: a Pro org over its allowance in the period in progress is deleted by its owner: a final invoice of the
--    month, to the deletion, holds the plan and the overage lines; last month's invoice is kept beside it;
--    only the service role reads them; the invoice job and a second delete draw nothing more.
-- M: an org deleted before the job billed last month: the deletion bills last month too.
-- R: a deletion that fails (rolled back) leaves nothing, and the retry draws one final invoice.
-- D: a downgrade due at a period end that passed before the daily roll applies there on the final invoice.
begin;
create extension if not exists pgtap with schema extensions;

select plan(24);

-- An org on Pro since `since` ago (the free subscription create_org made is dropped), owned by a new user.
create function pg_temp.pro_org(slug text, since interval) returns uuid language plpgsql as $$
declare
  org uuid := tests.create_org(slug, tests.remember(slug || '_owner', tests.create_user(slug || '@final-invoice-261.test')));
  period record;
begin
  delete from public.subscriptions s where s.org_id = org;
  select * into period from private.subscription_period_at(now() - since, now());
  insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
  values (org, 'pro', 'active', now() - since, period.period_start, period.period_end);
  return org;
end;
$$;

create function pg_temp.this_month() returns date language sql as $$
  select date_trunc('month', now() at time zone 'UTC')::date;
$$;
create function pg_temp.last_month() returns date language sql as $$
  select (date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date;
$$;
grant execute on function pg_temp.this_month(), pg_temp.last_month() to anon, authenticated, service_role;

-- F: Pro since 40 days ago, so its period in progress began 9 to 12 days ago. In it, an hour ago,
-- 5,100,000 chat tokens (100k over Pro's 5M at 0.2 = 20 cents) and 1,002 call minutes (2 over at 5 = 10).
select tests.remember('org_f', pg_temp.pro_org('final-invoice-261-f', interval '40 days'));
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at)
values (tests.fx('org_f'), 'chat', 'gpt-4o-mini', 5000000, 100000, now() - interval '1 hour');
insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('org_f'), 'inbound', 'ended', now() - interval '1 hour' - interval '1002 minutes', now() - interval '1 hour', 1002 * 60);

select tests.remember('other_owner', tests.create_user('other-owner@final-invoice-261.test'));
select tests.remember('org_o', tests.create_org('final-invoice-261-other', tests.fx('other_owner')));

-- Last month is billed as the job bills it (for every org; this file is rolled back).
select tests.act_as('service_role');
select cmp_ok(private.generate_invoices(pg_temp.last_month()), '>=', 1, 'last month is invoiced before the deletion');
select tests.act_as('postgres');
select tests.remember('f_last_invoice',
  (select id from public.invoices where org_id = tests.fx('org_f') and period_start = pg_temp.last_month()));
create temporary table f_last_invoice as
  select id, plan_id, total_cents, (select count(*)::int from public.invoice_lines l where l.invoice_id = i.id) as lines
  from public.invoices i where i.id = tests.fx('f_last_invoice');
grant select on f_last_invoice to service_role;

-- M: Pro since 70 days ago, made after the run above, so last month is not billed yet.
select tests.remember('org_m', pg_temp.pro_org('final-invoice-261-m', interval '70 days'));
-- R: for the failed and retried deletion.
select tests.remember('org_r', pg_temp.pro_org('final-invoice-261-r', interval '40 days'));

-- ---------------------------------------------------------------------------
-- F: the owner deletes the org.
-- ---------------------------------------------------------------------------

select tests.act_as('final-invoice-261-f_owner');
select lives_ok($$select public.delete_organization(tests.fx('org_f'), 'Final-Invoice-261-F')$$,
  'F: the owner deletes the org');
select tests.act_as('postgres');
select is((select count(*)::int from public.invoices where org_id = tests.fx('org_f')), 0,
  'F: the org''s rows in public.invoices went with it');

select tests.act_as('service_role');
select results_eq(
  $$select period_start, period_end, billed_to, plan_id, currency::text, subtotal_cents, total_cents, status
    from private.deleted_org_invoices_of(tests.fx('org_f')) where final$$,
  $$values (pg_temp.this_month(), (pg_temp.this_month() + interval '1 month')::date, now(), 'pro', 'USD', 4930::bigint, 4930::bigint, 'open')$$,
  'F: a final invoice of the month in progress, billed to the deletion: Pro in full plus the overage so far (the service role reads it)'
);
select results_eq(
  $$select (l ->> 'position')::int, l ->> 'kind', l ->> 'metric', (l ->> 'quantity')::numeric, (l ->> 'unit_price_cents')::numeric,
           (l ->> 'amount_cents')::bigint
    from private.deleted_org_invoices_of(tests.fx('org_f')) d, jsonb_array_elements(d.lines) l
    where d.final order by 1$$,
  $$values (1, 'plan', null::text, 1::numeric, 4900::numeric, 4900::bigint),
           (2, 'overage', 'chat_tokens', 100, 0.2, 20::bigint),
           (3, 'overage', 'call_minutes', 2, 5, 10::bigint)$$,
  'F: its lines: the plan, then the chat token and call minute overage of the period cut at the deletion'
);
select ok(
  (select d.lines -> 0 ->> 'description' like 'Pro plan, % (final invoice, to %UTC)'
      and d.lines -> 1 ->> 'description' like 'Chat Tokens beyond the 5,000,000 included: 5,100,000 used (Pro plan, % to %)'
   from private.deleted_org_invoices_of(tests.fx('org_f')) d where d.final),
  'F: the plan line says it is the final invoice; the overage lines name the plan and the cut period'
);
select results_eq(
  $$select invoice_id, final, plan_id, total_cents, jsonb_array_length(lines), billed_to
    from private.deleted_org_invoices_of(tests.fx('org_f')) where not final$$,
  $$select id, false, plan_id, total_cents, lines, pg_temp.this_month()::timestamp at time zone 'UTC' from f_last_invoice$$,
  'F: last month''s invoice is kept, as it was'
);
select is((select count(*)::int from private.deleted_org_invoices_of(tests.fx('org_f'))), 2,
  'F: the two invoices, and no more');
select tests.act_as('postgres');
select is((select (row_counts ->> 'invoices')::int from private.deleted_organizations where org_id = tests.fx('org_f')), 2,
  'F: the deletion record counts both invoices (the final one is drawn before it is recorded)');

-- Nobody else reads them: anon, the former owner, another org's owner.
select tests.act_as('anon');
select throws_ok($$select * from private.deleted_org_invoices$$, '42501', null, 'anon cannot read the kept invoices');
select throws_ok($$select * from private.deleted_org_invoices_of(tests.fx('org_f'))$$, '42501', null,
  'anon cannot call the reader');
select tests.act_as('final-invoice-261-f_owner');
select throws_ok($$select * from private.deleted_org_invoices_of(tests.fx('org_f'))$$, '42501', null,
  'the deleted org''s former owner cannot read them');
select tests.act_as('other_owner');
select throws_ok($$select * from private.deleted_org_invoices where org_id = tests.fx('org_f')$$, '42501', null,
  'another org''s owner cannot read them');
select is_empty($$select id from public.invoices where org_id = tests.fx('org_f')$$,
  'another org''s owner sees no invoice of the deleted org');

-- ---------------------------------------------------------------------------
-- M: deleted before last month was billed.
-- ---------------------------------------------------------------------------

select tests.act_as('final-invoice-261-m_owner');
select lives_ok($$select public.delete_organization(tests.fx('org_m'), 'Final-Invoice-261-M')$$,
  'M: the owner deletes the org');
select tests.act_as('service_role');
select results_eq(
  $$select period_start, final, total_cents, lines -> 0 ->> 'description' like '%final invoice%'
    from private.deleted_org_invoices_of(tests.fx('org_m')) order by period_start$$,
  $$values (pg_temp.last_month(), false, 4900::bigint, false), (pg_temp.this_month(), true, 4900::bigint, true)$$,
  'M: the deletion bills last month, which the job had not billed yet, and the month in progress'
);

-- ---------------------------------------------------------------------------
-- D: Business, its period ended a day ago with a downgrade to Pro scheduled; roll_subscriptions has not
-- run since. The quotas already count Pro from that end; so does the final invoice.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select tests.remember('org_d', tests.create_org('final-invoice-261-d',
  tests.remember('final-invoice-261-d_owner', tests.create_user('final-invoice-261-d@final-invoice-261.test'))));
delete from public.subscriptions where org_id = tests.fx('org_d');
insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end, scheduled_plan_id)
select tests.fx('org_d'), 'business', 'active', started, started, private.add_months_utc(started, 1), 'pro'
from (select now() - interval '1 day' - interval '1 month' as started) s;
select tests.act_as('final-invoice-261-d_owner');
select lives_ok($$select public.delete_organization(tests.fx('org_d'), 'Final-Invoice-261-D')$$,
  'D: the owner deletes the org');
select tests.act_as('service_role');
select results_eq(
  $$select plan_id, total_cents from private.deleted_org_invoices_of(tests.fx('org_d')) where final$$,
  $$values ('pro', 4900::bigint)$$,
  'D: the final invoice bills the plan the scheduled downgrade made current, as the daily roll would have'
);

-- ---------------------------------------------------------------------------
-- Nothing is drawn twice.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
create function pg_temp.kept_state() returns text language sql as $$
  select coalesce(string_agg(d.invoice_id::text || d.total_cents::text, ',' order by d.invoice_id), '')
    || ' / ' || (select count(*) from public.invoices i where i.org_id in (tests.fx('org_f'), tests.fx('org_m')))::text
  from private.deleted_org_invoices d where d.org_id in (tests.fx('org_f'), tests.fx('org_m'));
$$;
create temporary table kept_before as select pg_temp.kept_state() as state;

-- The daily job's steps (its command commits after each org, which this test's transaction cannot).
select private.roll_subscriptions(), private.generate_invoices(pg_temp.last_month());
select is(pg_temp.kept_state(), (select state from kept_before), 'the invoice job draws nothing for a deleted org');

select tests.act_as('final-invoice-261-f_owner');
select throws_ok($$select public.delete_organization(tests.fx('org_f'), 'Final-Invoice-261-F')$$, '42501', null,
  'a second delete_organization is refused');
select tests.act_as('service_role');
delete from public.organizations where id = tests.fx('org_f');
select tests.act_as('postgres');
select is(pg_temp.kept_state(), (select state from kept_before), 'a second delete, by any path, draws nothing more');

-- R: a deletion rolled back leaves no invoice and the subscription active; the retry draws one final invoice.
savepoint failed_deletion;
select tests.act_as('final-invoice-261-r_owner');
select public.delete_organization(tests.fx('org_r'), 'Final-Invoice-261-R');
rollback to savepoint failed_deletion;
select tests.act_as('postgres');
select results_eq(
  $$select (select count(*)::int from private.deleted_org_invoices where org_id = tests.fx('org_r')),
           (select count(*)::int from public.invoices where org_id = tests.fx('org_r') and period_start = pg_temp.this_month()),
           (select count(*)::int from public.subscriptions where org_id = tests.fx('org_r') and status = 'active')$$,
  $$values (0, 0, 1)$$,
  'R: a failed deletion leaves no invoice and the subscription active'
);
select tests.act_as('final-invoice-261-r_owner');
select lives_ok($$select public.delete_organization(tests.fx('org_r'), 'Final-Invoice-261-R')$$, 'R: the retry deletes the org');
select tests.act_as('postgres');
select is((select count(*)::int from private.deleted_org_invoices where org_id = tests.fx('org_r') and final), 1,
  'R: the retry draws one final invoice');

select * from finish();
rollback;
