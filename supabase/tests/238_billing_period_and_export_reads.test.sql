-- Billing periods between a renewal and the daily job, and who reads exports
-- (20261123006700_billing_period_and_export_reads.sql):
-- a downgrade chosen after the stored period ended (before roll_subscriptions
-- ran) is due at the end of the period the org is in, not backdated to the
-- passed end; one scheduled before the end still applies at that end; the
-- quota period of a subscription started on the 31st is counted from
-- started_at, the same before and after the job; platform admins read no
-- other org's data exports or export.* events, owners read theirs, admins
-- nothing.
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@238-billing.test')),
  ('admin_a', tests.create_user('admin-a@238-billing.test')),
  ('owner_b', tests.create_user('owner-b@238-billing.test')),
  ('owner_c', tests.create_user('owner-c@238-billing.test')),
  ('ops', tests.create_user('ops@238-billing.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('billing-238-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('billing-238-org-b', tests.fx('owner_b')));
select tests.remember('org_c', tests.create_org('billing-238-org-c', tests.fx('owner_c')));
select tests.remember('org_ops', tests.create_org('billing-238-org-ops', tests.fx('ops')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');

-- The org's active subscription put on a plan since started_at, with the
-- stored period the one that ends at started_at + months (as the job left it).
create function pg_temp.subscribe(org uuid, plan text, started timestamptz, months integer) returns void language sql as $$
  update public.subscriptions
  set plan_id = plan, started_at = started, scheduled_plan_id = null,
      current_period_start = private.add_months_utc(started, months - 1), current_period_end = private.add_months_utc(started, months)
  where org_id = org and status = 'active';
$$;

-- The anniversaries of a subscription started a month and 3 hours ago; a
-- definer, so expectations checked as a signed-in user can use it.
create function pg_temp.anniversary(months integer) returns timestamptz language sql stable security definer as $$
  select private.add_months_utc(now() - interval '1 month 3 hours', months);
$$;
grant execute on function pg_temp.anniversary(integer) to public;

-- ---------------------------------------------------------------------------
-- A downgrade chosen after the renewal, before the job ran
-- ---------------------------------------------------------------------------

-- Pro for a month and 3 hours: the stored period ended about 3 hours ago.
select pg_temp.subscribe(tests.fx('org_a'), 'pro', now() - interval '1 month 3 hours', 1);
select tests.act_as('owner_a');
select results_eq(
  $$select plan_id, scheduled_plan_id, current_period_start, current_period_end from public.change_plan(tests.fx('org_a'), 'free')$$,
  $$values ('pro', 'free', pg_temp.anniversary(1), pg_temp.anniversary(2))$$,
  'change_plan after the stored period ended: the downgrade is due at the end of the period holding now, not the passed one'
);
select tests.act_as('postgres');
select results_eq(
  $$select plan_id, status::text, scheduled_plan_id, canceled_at, current_period_start, current_period_end
    from public.subscriptions where org_id = tests.fx('org_a')$$,
  $$values ('pro', 'active', 'free', null::timestamptz,
    pg_temp.anniversary(1), pg_temp.anniversary(2))$$,
  'change_plan: the stored period moved forward on the same subscription, still Pro, nothing canceled'
);
select tests.act_as('owner_a');
select results_eq(
  $$select metric, included from public.plan_usage(tests.fx('org_a'))$$,
  $$select m.metric, m.included from public.plans p, lateral (values
      ('chat_tokens', p.monthly_chat_tokens), ('embedding_tokens', p.monthly_embedding_tokens),
      ('call_minutes', p.monthly_call_minutes::bigint), ('documents', p.max_documents::bigint)) m (metric, included)
    where p.id = 'pro'$$,
  'plan_usage: the new period keeps Pro''s allowances after the downgrade is chosen'
);
select tests.act_as('service_role');
select private.roll_subscriptions();
select tests.act_as('postgres');
select results_eq(
  $$select plan_id, status::text, scheduled_plan_id, canceled_at, current_period_start, current_period_end
    from public.subscriptions where org_id = tests.fx('org_a')$$,
  $$values ('pro', 'active', 'free', null::timestamptz,
    pg_temp.anniversary(1), pg_temp.anniversary(2))$$,
  'roll_subscriptions now changes nothing: Pro is not canceled, Free does not start'
);

-- ---------------------------------------------------------------------------
-- A downgrade scheduled before the period ended: unchanged
-- ---------------------------------------------------------------------------

select pg_temp.subscribe(tests.fx('org_b'), 'pro', now() - interval '3 hours', 1);
select tests.act_as('owner_b');
select is((public.change_plan(tests.fx('org_b'), 'free')).scheduled_plan_id, 'free', 'change_plan during the period: the downgrade is scheduled');
-- The period then ends, the job not yet run.
select tests.act_as('postgres');
update public.subscriptions
set started_at = now() - interval '1 month 3 hours', current_period_start = now() - interval '1 month 3 hours',
    current_period_end = pg_temp.anniversary(1)
where org_id = tests.fx('org_b') and status = 'active';
select results_eq(
  $$select plan_id from private.billing_period(tests.fx('org_b'))$$,
  $$values ('free')$$,
  'billing_period after the end, the job not yet run: a downgrade due at that end already counts'
);
select tests.act_as('owner_b');
select results_eq(
  $$select scheduled_plan_id, current_period_end from public.change_plan(tests.fx('org_b'), 'free')$$,
  $$values ('free', pg_temp.anniversary(1))$$,
  'change_plan after the end with a downgrade already scheduled: the stored period stays, the change is due at its end'
);
select tests.act_as('service_role');
select private.roll_subscriptions();
select tests.act_as('postgres');
select results_eq(
  $$select plan_id, status::text, started_at, canceled_at from public.subscriptions where org_id = tests.fx('org_b') order by started_at$$,
  $$values ('pro', 'canceled', now() - interval '1 month 3 hours', pg_temp.anniversary(1)),
    ('free', 'active', pg_temp.anniversary(1), null::timestamptz)$$,
  'roll_subscriptions: a downgrade scheduled before the end applies at that end, as before'
);

-- ---------------------------------------------------------------------------
-- The quota period of a subscription started on the 31st
-- ---------------------------------------------------------------------------

select results_eq(
  $$select period_start, period_end from private.subscription_period_at('2026-01-31T10:00Z', '2026-03-31T18:00Z')$$,
  $$values ('2026-03-31T10:00Z'::timestamptz, '2026-04-30T10:00Z'::timestamptz)$$,
  'subscription_period_at: started Jan 31 10:00, on Mar 31 18:00 the period is [Mar 31, Apr 30), not [Mar 28, Apr 28)'
);
-- Started 2025-01-31 10:00; the stored period [2025-02-28 10:00, 2025-03-31
-- 10:00) starts on a clamped month end, and the job has not run since.
select pg_temp.subscribe(tests.fx('org_c'), 'pro', '2025-01-31T10:00Z', 2);
select results_eq(
  $$select period_start, period_end from private.billing_period(tests.fx('org_c'))$$,
  $$select period_start, period_end from private.subscription_period_at('2025-01-31T10:00Z', now())$$,
  'billing_period past the stored end: whole months from started_at, not from the clamped stored start'
);
create temp table quota_period_before_roll as
select period_start, period_end from private.chat_quota(tests.fx('org_c'));
select tests.act_as('service_role');
select private.roll_subscriptions();
select tests.act_as('postgres');
select results_eq(
  $$select current_period_start, current_period_end from public.subscriptions where org_id = tests.fx('org_c') and status = 'active'$$,
  $$select period_start, period_end from quota_period_before_roll$$,
  'roll_subscriptions stores the very period the quotas counted before it ran'
);
select results_eq(
  $$select period_start, period_end from private.chat_quota(tests.fx('org_c'))$$,
  $$select period_start, period_end from quota_period_before_roll$$,
  'chat_quota: the quota period is the same before and after the job'
);

-- ---------------------------------------------------------------------------
-- Exports: owners only, platform admins included
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select tests.remember('export_a', (public.request_data_export(tests.fx('org_a'))).id);
select tests.act_as('ops');
select tests.remember('export_ops', (public.request_data_export(tests.fx('org_ops'))).id);
select tests.act_as('service_role');
select private.finish_export(tests.fx('export_a'), true, null, 'https://signed.example/238/a.zip?token=a', now() + interval '1 day');
select private.finish_export(tests.fx('export_ops'), true, null, 'https://signed.example/238/ops.zip?token=ops', now() + interval '1 day');
select tests.act_as('postgres');
select private.emit_event(tests.fx('org_a'), 'document.failed',
  jsonb_build_object('document_id', gen_random_uuid(), 'name', 'a.pdf', 'reason', '238 probe'));

select tests.act_as('ops');
select results_eq(
  $$select id from public.data_exports$$,
  $$values (tests.fx('export_ops'))$$,
  'data_exports: a platform admin reads only the exports of an org they own'
);
select is(
  (select count(*)::int from public.events where type like 'export.%' and org_id <> tests.fx('org_ops')),
  0, 'events: a platform admin reads no other org''s export events (no download_url)'
);
select results_eq(
  $$select payload ->> 'download_url' from public.events where org_id = tests.fx('org_ops') and type = 'export.ready'$$,
  $$values ('https://signed.example/238/ops.zip?token=ops')$$,
  'events: a platform admin who owns an org reads its export.ready'
);
select is(
  (select count(*)::int from public.events where org_id = tests.fx('org_a') and type = 'document.failed'),
  1, 'events: a platform admin still reads other orgs'' other events'
);

select tests.act_as('owner_a');
select results_eq(
  $$select id from public.data_exports$$,
  $$values (tests.fx('export_a'))$$,
  'data_exports: the owner reads the org''s export'
);
select results_eq(
  $$select payload ->> 'download_url' from public.events where type = 'export.ready'$$,
  $$values ('https://signed.example/238/a.zip?token=a')$$,
  'events: the owner reads the org''s export.ready with its link'
);

select tests.act_as('admin_a');
select is((select count(*)::int from public.data_exports), 0, 'data_exports: an admin reads none');
select is((select count(*)::int from public.events where type like 'export.%'), 0, 'events: an admin reads no export events');

select * from finish();
rollback;
