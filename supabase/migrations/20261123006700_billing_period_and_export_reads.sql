-- Billing periods between a renewal and the daily job, and who reads exports.
--
-- 1. A downgrade chosen just after a renewal no longer takes effect at once,
--    backdated. The stored period of a subscription moves forward only when
--    private.roll_subscriptions runs (pg_cron, 00:05 UTC), while the quotas
--    (billing_period, chat_quota, plan_usage) already count the new period.
--    change_plan stored scheduled_plan_id on the stale row and the job then
--    applied it at the stored, already passed end: Pro renewing at 07:10 and
--    downgraded at 10:10 was canceled as of 07:10 that night, on Free since
--    07:10, losing the month it had just entered. Now change_plan first moves
--    a stale stored period forward to the one holding now (whole months from
--    started_at, as the job does), so the downgrade is scheduled for the end
--    of the period the org is in, and the job finds nothing due. A downgrade
--    scheduled before the period ended is left as it was: it applies at that
--    end, as chosen.
--
-- 2. Platform admins no longer read data exports or export.* events. Both read
--    policies used private.readable_org_ids('data.export'), which returns
--    every org to a platform admin, so one read another org's export.ready
--    payload (download_url, a signed link to all of the org's data) and GET
--    /functions/v1/export/:id (which reads data_exports as the caller) signed
--    fresh links for them. Exports are the owners' only, as the exports bucket
--    already holds (platform_admins_read = false): the policies now use
--    private.org_ids_with_permission('data.export'), membership only.
--
-- 3. The quota period of a subscription started on the 29th-31st is no longer
--    off by days between its anniversary and the job. billing_period stepped
--    months from the stored current_period_start, which may be a clamped month
--    end (started Jan 31, stored [Feb 28, Mar 31)): on Mar 31 18:00 it
--    answered [Mar 28, Apr 28) where the job and the invoices count
--    [Mar 31, Apr 30). It now takes the period holding now from started_at
--    (private.subscription_period_at), the rule of roll_subscriptions and
--    subscription_periods_ending, so the quota period is the same before and
--    after the job runs. In that window a downgrade scheduled for the passed
--    end already counts too: the quotas read the scheduled plan, as the job
--    will start it at that end, instead of allowing the old plan's usage in
--    a period billed on the lower one.

-- ---------------------------------------------------------------------------
-- 1. change_plan. Latest definition: 20261123001600_settings_billing_deletion.sql;
-- new is the forward move of a stale stored period.
-- ---------------------------------------------------------------------------

create or replace function private.change_plan(org_id uuid, plan_id text)
returns public.subscriptions
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.plans;
  active public.subscriptions;
  current_plan public.plans;
  created public.subscriptions;
  current_period record;
begin
  perform private.require_permission(change_plan.org_id, 'billing.manage');
  select * into target from public.plans p where p.id = change_plan.plan_id;
  if not found then
    raise exception 'unknown plan: %', coalesce(change_plan.plan_id, 'null')
      using errcode = 'invalid_parameter_value', hint = 'See public.plans.';
  end if;
  select * into active from public.subscriptions s
  where s.org_id = change_plan.org_id and s.status = 'active'
  for update;
  if not found then
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;

  -- The stored period ended but roll_subscriptions has not run yet: the org
  -- is already in the next period (the quotas count it), so a downgrade
  -- chosen now is due at that period's end, not at the passed one. A
  -- downgrade scheduled before the end stays due at that end.
  if active.current_period_end <= pg_catalog.now() and active.scheduled_plan_id is null then
    current_period := private.subscription_period_at(active.started_at, pg_catalog.now());
    update public.subscriptions s
    set current_period_start = current_period.period_start, current_period_end = current_period.period_end
    where s.id = active.id
    returning * into active;
  end if;
  select * into current_plan from public.plans p where p.id = active.plan_id;

  if target.id = active.plan_id then
    -- Staying: a scheduled downgrade is called off.
    update public.subscriptions s set scheduled_plan_id = null where s.id = active.id returning * into active;
    return active;
  end if;

  if target.price_cents > current_plan.price_cents then
    update public.subscriptions s set status = 'canceled', canceled_at = pg_catalog.now(), scheduled_plan_id = null
    where s.id = active.id;
    insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
    values (change_plan.org_id, target.id, 'active', pg_catalog.now(), pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1))
    returning * into created;
    return created;
  end if;

  update public.subscriptions s set scheduled_plan_id = target.id where s.id = active.id returning * into active;
  return active;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. Export reads: owners only. Latest definitions of both policies:
-- 20261123001600_settings_billing_deletion.sql.
-- ---------------------------------------------------------------------------

drop policy "owners can read their org's data exports" on public.data_exports;
create policy "owners can read their org's data exports"
  on public.data_exports for select to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('data.export'))));

drop policy "only owners read export events" on public.events;
create policy "only owners read export events"
  on public.events as restrictive for select to authenticated
  using (type not like 'export.%' or org_id = any (array(select private.org_ids_with_permission('data.export'))));

-- ---------------------------------------------------------------------------
-- 3. billing_period. Latest definition: 20261123003000_billing_period.sql;
-- a passed period is now found from started_at, on the scheduled plan.
-- ---------------------------------------------------------------------------

create or replace function private.billing_period(org_id uuid)
returns table (plan_id text, period_start timestamptz, period_end timestamptz)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  active public.subscriptions;
  current_period record;
begin
  select * into active from public.subscriptions s
  where s.org_id = billing_period.org_id and s.status = 'active';
  if not found then
    plan_id := 'free';
    period_start := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC';
    period_end := private.add_months_utc(period_start, 1);
  else
    plan_id := active.plan_id;
    period_start := active.current_period_start;
    period_end := active.current_period_end;
    if pg_catalog.now() >= period_end then
      -- From started_at, not the stored start, which may be a clamped month
      -- end: the period roll_subscriptions will store, on the plan it will
      -- leave active.
      plan_id := coalesce(active.scheduled_plan_id, active.plan_id);
      current_period := private.subscription_period_at(active.started_at, pg_catalog.now());
      period_start := current_period.period_start;
      period_end := current_period.period_end;
    end if;
  end if;
  return next;
end;
$$;
