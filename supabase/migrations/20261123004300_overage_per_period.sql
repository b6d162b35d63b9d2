-- Overage is billed per subscription period, as the quotas count it.
--
-- The quotas (private.billing_period, chat_quota, plan_usage, require_quota)
-- measure usage over the subscription's period: whole months from its
-- started_at, a new period (and a new subscription) at each plan change. The
-- invoices measured overage over the calendar month against the one plan in
-- force at the month's end, so a month that holds parts of two periods was
-- charged for usage the quotas allowed (Pro from the 15th: 4.9M chat tokens
-- in each period, both in February, was 4.8M "over"), and usage before a
-- downgrade was measured and priced against the lower plan (40M tokens on
-- Business billed as 35M over Pro).
--
-- The rule now: an invoice still covers one UTC calendar month, with the
-- plan in force at the month's end billed in full (unchanged: nothing is
-- prorated). Its overage lines are those of every subscription period that
-- ENDS in the month (end in (month start, month end]): per period and
-- metric, the usage in the period beyond the allowance of that period's
-- plan, priced at that plan's overage rates. A period ends at its monthly
-- anniversary, or earlier where its subscription was canceled (an upgrade;
-- a downgrade applied at the anniversary). Each period is billed once, whole,
-- once it is over, with the allowance the quota enforced in it; the invoice
-- of the month it ends in is made after it ended. The excess of a period
-- that runs on into the next month appears on that next month's invoice.
-- A subscription whose periods are the calendar months (started on the 1st at
-- 00:00 UTC) bills exactly as before, and the line text is unchanged for it;
-- any other period's lines name the plan and the period. Integer cents,
-- one line per metric over its allowance per period, the total the sum of
-- the lines; idempotent as before (unique (org_id, period_start)).
--
-- Months invoiced before this migration billed their calendar month's usage.
-- A period that began in such a month (the one before the month being
-- invoiced; a period spans at most two calendar months) counts its usage
-- only from the invoiced month's start, so nothing is billed twice; that
-- one period keeps its whole allowance for the remaining part (the customer
-- is never charged more than under either rule). Those invoices are listed
-- in private.calendar_month_overage_invoices.

create table private.calendar_month_overage_invoices (
  invoice_id uuid primary key references public.invoices (id) on delete cascade
);
comment on table private.calendar_month_overage_invoices is 'Invoices made before 20261123004300, whose overage covered their calendar month''s usage; generate_invoices does not bill that usage again.';
revoke all on private.calendar_month_overage_invoices from public, anon, authenticated, service_role;
insert into private.calendar_month_overage_invoices (invoice_id) select i.id from public.invoices i;

-- The subscription periods of an org that end in (from_at, to_at], with
-- their plan: whole months from started_at (private.subscription_period_at,
-- month ends clamped without drift), the last one cut at canceled_at. The
-- same periods billing_period and roll_subscriptions step through. A
-- subscription canceled at or before its start (never in force) has none.
create function private.subscription_periods_ending(org_id uuid, from_at timestamptz, to_at timestamptz)
returns table (subscription_id uuid, plan_id text, period_start timestamptz, period_end timestamptz)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  sub public.subscriptions;
  period record;
  ends_at timestamptz;
begin
  for sub in
    select * from public.subscriptions s
    where s.org_id = subscription_periods_ending.org_id
      and s.started_at < subscription_periods_ending.to_at
      and (s.canceled_at is null or (s.canceled_at > subscription_periods_ending.from_at and s.canceled_at > s.started_at))
    order by s.started_at, s.created_at
  loop
    -- From the period holding the month's start (or the first period), while
    -- periods start before the month's end and before the cancellation. A
    -- month holds at most one anniversary and one cancellation, so this is
    -- at most a few steps.
    select * into period
    from private.subscription_period_at(sub.started_at, greatest(sub.started_at, subscription_periods_ending.from_at));
    while period.period_start < subscription_periods_ending.to_at
      and (sub.canceled_at is null or period.period_start < sub.canceled_at) loop
      ends_at := least(period.period_end, coalesce(sub.canceled_at, 'infinity'::timestamptz));
      if ends_at > subscription_periods_ending.from_at and ends_at <= subscription_periods_ending.to_at then
        subscription_id := sub.id;
        plan_id := sub.plan_id;
        period_start := period.period_start;
        period_end := ends_at;
        return next;
      end if;
      select * into period from private.subscription_period_at(sub.started_at, period.period_end);
    end loop;
  end loop;
end;
$$;
revoke execute on function private.subscription_periods_ending(uuid, timestamptz, timestamptz) from public;

-- Makes the invoices of one calendar month (UTC) that has ended: one per org
-- with a subscription active at any time in it, for the plan in force at the
-- month's end (the latest started), billed in full; plus, for every
-- subscription period that ended in the month, one overage line per metric
-- whose use in that period exceeded the allowance of the period's plan (see
-- the header for why per period). Idempotent: an org that has the month's
-- invoice is skipped (and concurrent runs meet on the unique key), so a
-- second run returns 0. Emits invoice.created per new invoice and wakes the
-- billing function to render the PDFs.
create or replace function private.generate_invoices(period_start date)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  period_end date := (generate_invoices.period_start + interval '1 month')::date;
  from_at timestamptz := generate_invoices.period_start::timestamp at time zone 'UTC';
  to_at timestamptz := (generate_invoices.period_start + interval '1 month')::timestamp at time zone 'UTC';
  billed record;
  invoice public.invoices;
  sub_period record;
  usage_from timestamptz;
  period_note text;
  usage record;
  line_position smallint;
  overage numeric;
  created integer := 0;
begin
  if generate_invoices.period_start is null
    or generate_invoices.period_start <> date_trunc('month', generate_invoices.period_start)::date then
    raise exception 'an invoice period starts on the first of a month, not %', coalesce(generate_invoices.period_start::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if to_at > pg_catalog.now() then
    raise exception 'the month of % has not ended yet', generate_invoices.period_start
      using errcode = 'invalid_parameter_value', hint = 'Invoices are made for months that have ended.';
  end if;

  for billed in
    select distinct on (s.org_id) s.org_id, s.id as subscription_id, p.*
    from public.subscriptions s
    join public.plans p on p.id = s.plan_id
    where s.started_at < to_at
      and (s.canceled_at is null or s.canceled_at > from_at)
      and not exists (select 1 from public.invoices i where i.org_id = s.org_id and i.period_start = generate_invoices.period_start)
    order by s.org_id, s.started_at desc, s.created_at desc
  loop
    insert into public.invoices (org_id, period_start, period_end, subscription_id, plan_id, currency, subtotal_cents, total_cents)
    values (billed.org_id, generate_invoices.period_start, period_end, billed.subscription_id, billed.id, billed.currency, 0, 0)
    on conflict on constraint invoices_one_per_month do nothing
    returning * into invoice;
    continue when invoice.id is null;

    insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents)
    values (invoice.id, invoice.org_id, 1, 'plan', null,
      pg_catalog.format('%s plan, %s', billed.name, pg_catalog.to_char(generate_invoices.period_start, 'FMMonth YYYY')),
      1, 'month', billed.price_cents, billed.price_cents);
    line_position := 1;

    for sub_period in
      select e.plan_id, e.period_start, e.period_end, p.name as plan_name
      from private.subscription_periods_ending(billed.org_id, from_at, to_at) e
      join public.plans p on p.id = e.plan_id
      order by e.period_end, e.period_start
    loop
      usage_from := sub_period.period_start;
      -- The part in the month before, when that month was invoiced by the
      -- calendar rule (before 20261123004300), was billed there.
      if usage_from < from_at and exists (
        select 1 from public.invoices i
        join private.calendar_month_overage_invoices c on c.invoice_id = i.id
        where i.org_id = billed.org_id and i.period_start = (generate_invoices.period_start - interval '1 month')::date
      ) then
        usage_from := from_at;
      end if;
      -- A period that is the calendar month keeps the plain text.
      period_note := case when usage_from = from_at and sub_period.period_end = to_at then ''
        else pg_catalog.format(' (%s plan, %s to %s)', sub_period.plan_name,
          pg_catalog.to_char(usage_from at time zone 'UTC', 'FMDD Mon YYYY'),
          pg_catalog.to_char(sub_period.period_end at time zone 'UTC', 'FMDD Mon YYYY'))
        end;

      for usage in
        select m.metric, m.used, private.plan_included(sub_period.plan_id, m.metric) as included, o.unit, o.price_cents_per_unit
        from private.metered_usage(billed.org_id, usage_from, sub_period.period_end) m
        join public.plan_overage_prices o on o.plan_id = sub_period.plan_id and o.metric = m.metric
        order by pg_catalog.array_position(private.plan_metrics(), m.metric)
      loop
        continue when usage.used <= usage.included;
        overage := case when usage.unit = '1k tokens' then (usage.used - usage.included) / 1000.0 else usage.used - usage.included end;
        line_position := line_position + 1;
        insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents)
        values (invoice.id, invoice.org_id, line_position, 'overage', usage.metric,
          pg_catalog.format('%s beyond the %s included: %s used%s',
            pg_catalog.initcap(pg_catalog.replace(usage.metric, '_', ' ')),
            pg_catalog.to_char(usage.included, 'FM999,999,999,999'), pg_catalog.to_char(usage.used, 'FM999,999,999,999'),
            period_note),
          overage, usage.unit, usage.price_cents_per_unit,
          -- numeric round() rounds half away from zero: half up for these positive amounts.
          pg_catalog.round(overage * usage.price_cents_per_unit)::bigint);
      end loop;
    end loop;

    update public.invoices i
    set subtotal_cents = t.total, total_cents = t.total
    from (select coalesce(sum(l.amount_cents), 0)::bigint as total from public.invoice_lines l where l.invoice_id = invoice.id) t
    where i.id = invoice.id
    returning i.* into invoice;

    perform private.emit_event(invoice.org_id, 'invoice.created', pg_catalog.jsonb_build_object(
      'invoice_id', invoice.id, 'period_start', invoice.period_start::text, 'period_end', invoice.period_end::text,
      'total_cents', invoice.total_cents, 'currency', invoice.currency));
    created := created + 1;
  end loop;

  if created > 0 then
    perform private.invoke_edge_function('billing', '{"action": "render_pdfs"}'::jsonb, 5000);
  end if;
  return created;
end;
$$;
comment on function private.generate_invoices(date) is 'Invoices one ended calendar month (UTC; period_start = its first day) for every org with a subscription in it: the month-end plan in full, plus the overage of each subscription period that ended in the month against that period''s plan; idempotent (a second run returns 0); emits invoice.created. Service role and pg_cron.';

comment on table public.invoice_lines is 'The lines of an invoice: the plan, then one overage line per metric used beyond the allowance in each subscription period that ended in the month. Owners and admins read (billing.read).';
