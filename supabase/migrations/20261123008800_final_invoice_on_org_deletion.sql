-- Deleting an organization draws its final invoice, and its invoices outlive it.
--
-- Every org table cascades from public.organizations, invoices included: the month in progress was never
-- billed (its plan and the overage of its subscription periods so far), and the org's past invoices went
-- with it, while a platform needs its billing records after a customer leaves.
--
-- Now, whatever the path that deletes the org row (delete_organization, an owner through RLS, the service
-- role), two before-delete triggers run:
--
-- 1. organizations_draw_final_invoice (before organizations_record_deletion, so the deletion record counts
--    the invoices it draws): the org's subscriptions are locked; an active one whose period has ended is
--    rolled as roll_subscriptions would roll it (the job runs at 00:05 UTC: a downgrade due at that end
--    applies there, as the quotas already count it; private.roll_subscription, which roll_subscriptions
--    now calls per subscription); then the active subscription is canceled at the deletion, as an upgrade
--    cancels one: its period in progress ends there. The invoice of the month in progress is then drawn
--    as the monthly run draws one (private.draw_invoice, which generate_invoices now calls per org), with
--    the month cut at the deletion: the plan in force, billed in full (nothing is prorated, as for the
--    monthly invoice and for an upgrade), plus the overage of every subscription period that ended in the
--    month, the one cut at the deletion included, against its plan's allowance and prices. Its plan line says it is final. The month before is drawn first if it
--    has ended but is not invoiced yet (a deletion before the 02:00 job on the 1st, or after a failed
--    run), so no ended period goes unbilled either. No invoice.created is emitted and no PDF rendered:
--    the org's events, endpoints and files go with it.
-- 2. organizations_record_deletion_keep_invoices (after organizations_record_deletion, whose row it
--    references): a copy of each of the org's invoices, the final one included, with its lines, goes to
--    private.deleted_org_invoices, keyed by the invoice's id and the deleted org's id.
--
-- Why a copy rather than invoices without an org (a foreign key set to null): public.invoices is read
-- through RLS by org, audited into the org's chain (which is redacted at the deletion), unique per
-- (org_id, period_start) and exported per org; rows with no org would need every one of those rules
-- reworked, and would sit in an exposed table. The copy is read by the service role only
-- (private.deleted_org_invoices_of), like private.deleted_organizations.
--
-- What is kept: amounts, currency, plan, periods and line texts (usage quantities and plan names) are
-- business records and hold no personal data (an invoice names no user); the org's name stays where it
-- already was, in private.deleted_organizations. The audit rows of these invoices are redacted with the
-- rest of the org's chain. The PDFs are not kept: they are the org's files (<org_id>/invoices/<id>.pdf)
-- and are removed with them (private.org_storage_objects); the copy holds everything needed to render one
-- again.
--
-- Idempotent: a deletion draws in its own transaction, so a failed or retried one leaves nothing or draws
-- once (the month's invoice is unique per org and period; the copy's key is the invoice id). A second
-- delete finds no org row, so no trigger runs. The invoice job draws nothing for a deleted org: its
-- subscriptions are gone.
--
-- Lock order (20261123008600): the org row (the delete's own row lock, for delete_organization its
-- `for update`) -> the org's subscriptions (`for update`, before the first audited write) -> the audit
-- chain head, taken by the cancellation's audit and kept to the commit.

-- ---------------------------------------------------------------------------
-- One org's invoice of one month, shared by the monthly run and the final invoice.
-- ---------------------------------------------------------------------------

-- Draws the org's invoice of the calendar month starting period_start, measured to ends_at: the month's end
-- for the monthly run, the deletion for a final invoice (ends_at before the month's end). The plan in force
-- at ends_at (the latest started subscription active in the month) billed in full, then, for every
-- subscription period that ended in (month start, ends_at], one overage line per metric used beyond that
-- period's plan's allowance, at its prices (see 20261123004300). Null when the org had no subscription in
-- the month or already has the month's invoice. Emits nothing: callers decide.
create function private.draw_invoice(org_id uuid, period_start date, ends_at timestamptz)
returns public.invoices
language plpgsql
security definer
set search_path = ''
as $$
declare
  period_end date := (draw_invoice.period_start + interval '1 month')::date;
  from_at timestamptz := draw_invoice.period_start::timestamp at time zone 'UTC';
  month_end_at timestamptz := (draw_invoice.period_start + interval '1 month')::timestamp at time zone 'UTC';
  billed record;
  invoice public.invoices;
  sub_period record;
  usage_from timestamptz;
  period_note text;
  usage record;
  line_position smallint;
  overage numeric;
begin
  if draw_invoice.period_start is null
    or draw_invoice.period_start <> date_trunc('month', draw_invoice.period_start)::date then
    raise exception 'an invoice period starts on the first of a month, not %', coalesce(draw_invoice.period_start::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if draw_invoice.ends_at is null or draw_invoice.ends_at <= from_at or draw_invoice.ends_at > month_end_at then
    raise exception 'an invoice of % is measured to an instant in that month, not %',
      draw_invoice.period_start, coalesce(draw_invoice.ends_at::text, 'null')
      using errcode = 'invalid_parameter_value';
  end if;

  select s.id as subscription_id, p.* into billed
  from public.subscriptions s
  join public.plans p on p.id = s.plan_id
  where s.org_id = draw_invoice.org_id
    and s.started_at < draw_invoice.ends_at
    and (s.canceled_at is null or s.canceled_at > from_at)
  order by s.started_at desc, s.created_at desc
  limit 1;
  if not found then
    return null;
  end if;

  insert into public.invoices (org_id, period_start, period_end, subscription_id, plan_id, currency, subtotal_cents, total_cents)
  values (draw_invoice.org_id, draw_invoice.period_start, period_end, billed.subscription_id, billed.id, billed.currency, 0, 0)
  on conflict on constraint invoices_one_per_month do nothing
  returning * into invoice;
  if invoice.id is null then
    return null;
  end if;

  insert into public.invoice_lines (invoice_id, org_id, position, kind, metric, description, quantity, unit, unit_price_cents, amount_cents)
  values (invoice.id, invoice.org_id, 1, 'plan', null,
    pg_catalog.format('%s plan, %s', billed.name, pg_catalog.to_char(draw_invoice.period_start, 'FMMonth YYYY'))
      || case when draw_invoice.ends_at < month_end_at
           then pg_catalog.format(' (final invoice, to %s UTC)', pg_catalog.to_char(draw_invoice.ends_at at time zone 'UTC', 'FMDD Mon YYYY HH24:MI'))
           else '' end,
    1, 'month', billed.price_cents, billed.price_cents);
  line_position := 1;

  for sub_period in
    select e.plan_id, e.period_start, e.period_end, p.name as plan_name
    from private.subscription_periods_ending(draw_invoice.org_id, from_at, draw_invoice.ends_at) e
    join public.plans p on p.id = e.plan_id
    order by e.period_end, e.period_start
  loop
    usage_from := sub_period.period_start;
    -- The part in the month before, when that month was invoiced by the calendar rule (before
    -- 20261123004300), was billed there.
    if usage_from < from_at and exists (
      select 1 from public.invoices i
      join private.calendar_month_overage_invoices c on c.invoice_id = i.id
      where i.org_id = draw_invoice.org_id and i.period_start = (draw_invoice.period_start - interval '1 month')::date
    ) then
      usage_from := from_at;
    end if;
    -- A period that is the calendar month keeps the plain text.
    period_note := case when usage_from = from_at and sub_period.period_end = month_end_at then ''
      else pg_catalog.format(' (%s plan, %s to %s)', sub_period.plan_name,
        pg_catalog.to_char(usage_from at time zone 'UTC', 'FMDD Mon YYYY'),
        pg_catalog.to_char(sub_period.period_end at time zone 'UTC', 'FMDD Mon YYYY'))
      end;

    for usage in
      select m.metric, m.used, private.plan_included(sub_period.plan_id, m.metric) as included, o.unit, o.price_cents_per_unit
      from private.metered_usage(draw_invoice.org_id, usage_from, sub_period.period_end) m
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
  return invoice;
end;
$$;
comment on function private.draw_invoice(uuid, date, timestamptz) is 'One org''s invoice of the month starting period_start, measured to ends_at (the month''s end, or an org''s deletion for its final invoice): the plan in force billed in full, plus the overage of each subscription period that ended by then. Null when there is nothing to bill or the month is invoiced. Internal.';

-- Latest definition: 20261123004300_overage_per_period.sql; the drawing of each org's invoice moved to
-- private.draw_invoice, unchanged.
create or replace function private.generate_invoices(period_start date)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  from_at timestamptz := generate_invoices.period_start::timestamp at time zone 'UTC';
  to_at timestamptz := (generate_invoices.period_start + interval '1 month')::timestamp at time zone 'UTC';
  billed_org uuid;
  invoice public.invoices;
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

  for billed_org in
    select distinct s.org_id
    from public.subscriptions s
    where s.started_at < to_at
      and (s.canceled_at is null or s.canceled_at > from_at)
      and not exists (select 1 from public.invoices i where i.org_id = s.org_id and i.period_start = generate_invoices.period_start)
    order by s.org_id
  loop
    invoice := private.draw_invoice(billed_org, generate_invoices.period_start, to_at);
    continue when invoice.id is null;
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

-- ---------------------------------------------------------------------------
-- Renewing one subscription, shared by the daily job and an org's deletion.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001600_settings_billing_deletion.sql; the renewal of one subscription moved to
-- private.roll_subscription, unchanged, so a deletion rolls its org's subscription as the job would.
create function private.roll_subscription(due public.subscriptions)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  next_period record;
begin
  if due.scheduled_plan_id is not null then
    update public.subscriptions s set status = 'canceled', canceled_at = due.current_period_end, scheduled_plan_id = null
    where s.id = due.id;
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (due.org_id, due.scheduled_plan_id, 'active', due.current_period_end, due.current_period_end,
      private.add_months_utc(due.current_period_end, 1))
    returning * into due;
  end if;
  -- Whole months from the start until the period holds now (a job that
  -- missed several months catches up in one step).
  next_period := private.subscription_period_at(due.started_at, pg_catalog.now());
  update public.subscriptions s
  set current_period_start = next_period.period_start, current_period_end = next_period.period_end
  where s.id = due.id and s.current_period_end <= pg_catalog.now();
end;
$$;
comment on function private.roll_subscription(public.subscriptions) is 'Starts the next monthly period of one active subscription whose period ended (locked by the caller), applying a scheduled downgrade. Internal: roll_subscriptions and an org''s deletion.';

create or replace function private.roll_subscriptions()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  due public.subscriptions;
  renewed integer := 0;
begin
  for due in
    select * from public.subscriptions s
    where s.status = 'active' and s.current_period_end <= pg_catalog.now()
    order by s.current_period_end
    for update skip locked
  loop
    perform private.roll_subscription(due);
    renewed := renewed + 1;
  end loop;
  return renewed;
end;
$$;

-- ---------------------------------------------------------------------------
-- The invoices of deleted orgs
-- ---------------------------------------------------------------------------

create table private.deleted_org_invoices (
  invoice_id uuid primary key,
  org_id uuid not null references private.deleted_organizations (org_id),
  period_start date not null,
  period_end date not null,
  -- Usage was measured to here: period_end's midnight (UTC), or the deletion for the final invoice.
  billed_to timestamptz not null,
  final boolean not null,
  plan_id text not null,
  currency char(3) not null,
  subtotal_cents bigint not null,
  total_cents bigint not null,
  status text not null,
  created_at timestamptz not null,
  -- The lines in position order, as public.invoice_lines held them (without ids).
  lines jsonb not null
);
comment on table private.deleted_org_invoices is 'A copy of every invoice of a deleted org, its final invoice included, with the lines, kept when the org''s rows go (20261123008800). Business records: amounts, plan, periods and line texts; no personal data. The PDFs went with the org''s files. Service role through private.deleted_org_invoices_of.';
create index deleted_org_invoices_org_idx on private.deleted_org_invoices (org_id, period_start);
revoke all on private.deleted_org_invoices from public, anon, authenticated, service_role;

create function private.draw_final_invoice()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  this_month date := date_trunc('month', pg_catalog.now() at time zone 'UTC')::date;
  last_month date := (date_trunc('month', pg_catalog.now() at time zone 'UTC') - interval '1 month')::date;
begin
  -- Before the first audited write, in the lock order.
  perform 1 from public.subscriptions s where s.org_id = old.id order by s.id for update;
  perform private.roll_subscription(s)
  from public.subscriptions s
  where s.org_id = old.id and s.status = 'active' and s.current_period_end <= pg_catalog.now();
  update public.subscriptions s set status = 'canceled', canceled_at = pg_catalog.now(), scheduled_plan_id = null
  where s.org_id = old.id and s.status = 'active';
  perform private.draw_invoice(old.id, last_month, this_month::timestamp at time zone 'UTC');
  if this_month::timestamp at time zone 'UTC' < pg_catalog.now() then
    perform private.draw_invoice(old.id, this_month, pg_catalog.now());
  end if;
  return old;
end;
$$;

create trigger organizations_draw_final_invoice before delete on public.organizations
  for each row execute function private.draw_final_invoice();

create function private.keep_deleted_org_invoices()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.deleted_org_invoices (invoice_id, org_id, period_start, period_end, billed_to, final, plan_id, currency,
    subtotal_cents, total_cents, status, created_at, lines)
  select i.id, i.org_id, i.period_start, i.period_end,
    least(i.period_end::timestamp at time zone 'UTC', pg_catalog.now()),
    i.period_end::timestamp at time zone 'UTC' > pg_catalog.now(),
    i.plan_id, i.currency, i.subtotal_cents, i.total_cents, i.status, i.created_at,
    coalesce((select pg_catalog.jsonb_agg(pg_catalog.to_jsonb(l) - 'id' - 'invoice_id' - 'org_id' order by l.position)
              from public.invoice_lines l where l.invoice_id = i.id and l.org_id = i.org_id), '[]'::jsonb)
  from public.invoices i
  where i.org_id = old.id
  on conflict on constraint deleted_org_invoices_pkey do nothing;
  return old;
end;
$$;

-- Named to fire after organizations_record_deletion (before triggers fire in name order), whose row it
-- references.
create trigger organizations_record_deletion_keep_invoices before delete on public.organizations
  for each row execute function private.keep_deleted_org_invoices();

create function private.deleted_org_invoices_of(org_id uuid)
returns setof private.deleted_org_invoices
language sql
stable
security definer
set search_path = ''
as $$
  select * from private.deleted_org_invoices d
  where d.org_id = deleted_org_invoices_of.org_id
  order by d.period_start, d.created_at;
$$;
comment on function private.deleted_org_invoices_of(uuid) is 'The invoices of a deleted org (its final invoice has final = true), with their lines, oldest first. Service role.';

revoke execute on function
  private.draw_invoice(uuid, date, timestamptz),
  private.roll_subscription(public.subscriptions),
  private.draw_final_invoice(),
  private.keep_deleted_org_invoices(),
  private.deleted_org_invoices_of(uuid)
from public, anon, authenticated, service_role;
grant execute on function private.deleted_org_invoices_of(uuid) to service_role;

comment on function public.delete_organization(uuid, text) is 'Owners (org.delete): deletes the org and every row of it once confirm_name equals its name exactly (22023 otherwise), first drawing its final invoice (the month in progress, to the deletion) and keeping a copy of all its invoices in private.deleted_org_invoices. Its Storage files are then removed by the service role (private.org_storage_objects).';
