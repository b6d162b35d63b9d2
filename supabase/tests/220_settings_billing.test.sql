-- Settings, plans, quotas and invoices (20261123001600_settings_billing_deletion.sql):
-- permissions and event types; org settings (defaults, validation, who reads
-- and writes, audit); user settings (own row only); notification routing and
-- muted webhooks; change_plan (upgrade now, downgrade scheduled, rolled at
-- the period's end, one active); document and call-minute quotas; invoices
-- for a month with hand-computed totals, idempotent, one invoice.created;
-- who reads invoices and their PDFs.
begin;
create extension if not exists pgtap with schema extensions;

select plan(71);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@billing.test')),
  ('admin_a', tests.create_user('admin-a@billing.test')),
  ('member_a', tests.create_user('member-a@billing.test')),
  ('viewer_a', tests.create_user('viewer-a@billing.test')),
  ('owner_b', tests.create_user('owner-b@billing.test')),
  ('owner_c', tests.create_user('owner-c@billing.test')),
  ('admin_c', tests.create_user('admin-c@billing.test')),
  ('member_c', tests.create_user('member-c@billing.test'));
select tests.remember('org_a', tests.create_org('billing-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('billing-org-b', tests.fx('owner_b')));
select tests.remember('org_c', tests.create_org('billing-org-c', tests.fx('owner_c')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
select tests.add_member(tests.fx('org_c'), tests.fx('admin_c'), 'admin');
select tests.add_member(tests.fx('org_c'), tests.fx('member_c'), 'member');

-- Rows a statement changed, as whoever runs it.
create function pg_temp.affected(statement text) returns integer language plpgsql as $$
declare n integer;
begin
  execute statement;
  get diagnostics n = row_count;
  return n;
end;
$$;
grant execute on function pg_temp.affected(text) to public;

-- ---------------------------------------------------------------------------
-- Catalogue
-- ---------------------------------------------------------------------------

select results_eq(
  $$select permission, min_role::text from public.role_permissions
    where permission in ('settings.read', 'settings.manage', 'billing.manage', 'data.export', 'billing.read') order by permission$$,
  $$values ('billing.manage', 'owner'), ('billing.read', 'admin'), ('data.export', 'owner'), ('settings.manage', 'admin'), ('settings.read', 'member')$$,
  'permissions: members read settings, admins change them and read billing, owners change the plan and export'
);
select is(
  (select array_agg(type order by type) from public.event_types where type in ('invoice.created', 'export.ready')),
  array['export.ready', 'invoice.created'],
  'events: invoice.created and export.ready are catalogued'
);
select is(
  (select count(*)::int from public.plan_overage_prices),
  12,
  'overage prices: every metric of every plan is listed (free at 0)'
);

-- ---------------------------------------------------------------------------
-- Org settings
-- ---------------------------------------------------------------------------

select results_eq(
  $$select voice, voice_language, speaking_rate, interruption_sensitivity, default_chat_model, temperature, max_tokens, notification_preferences
    from public.org_settings where org_id = tests.fx('org_a')$$,
  $$values ('default', 'en', 1.00::numeric(3,2), 0.50::numeric(3,2), 'gpt-4o-mini', 0.30::numeric(3,2), 512,
    '{"*": {"in_app": ["owner", "admin"], "webhook": true}, "conversation.escalated": {"in_app": ["owner", "admin", "member"]}}'::jsonb)$$,
  'org settings: every new org has its row, with the documented defaults'
);
select is(
  (select count(*)::int from public.organizations o where not exists (select 1 from public.org_settings s where s.org_id = o.id)
     and exists (select 1 from public.memberships m where m.org_id = o.id)),
  0,
  'org settings: every org with members has a row (created with the first membership, and backfilled)'
);

select tests.act_as('member_a');
select is((select count(*)::int from public.org_settings where org_id = tests.fx('org_a')), 1, 'org settings: a member reads them');
select is(
  pg_temp.affected($$update public.org_settings set speaking_rate = 1.5 where org_id = tests.fx('org_a')$$),
  0, 'org settings: a member cannot change them (RLS)');
select tests.act_as('viewer_a');
select is((select count(*)::int from public.org_settings where org_id = tests.fx('org_a')), 0, 'org settings: a viewer does not read them');
select tests.act_as('owner_b');
select is((select count(*)::int from public.org_settings where org_id = tests.fx('org_a')), 0, 'org settings: another org''s owner does not read them');

select tests.act_as('admin_a');
select is(
  pg_temp.affected($$update public.org_settings set speaking_rate = 1.5, voice = 'alloy', default_chat_model = 'gpt-4.1-mini', max_tokens = 2048
     where org_id = tests.fx('org_a')$$),
  1, 'org settings: an admin changes them');
select throws_ok(
  $$update public.org_settings set default_chat_model = 'no-such-model' where org_id = tests.fx('org_a')$$,
  '22023', 'unknown model: no-such-model', 'org settings: a model outside the allow-list is refused (22023)');
select throws_ok(
  $$update public.org_settings set default_chat_model = 'offline', max_tokens = 5000 where org_id = tests.fx('org_a')$$,
  '22023', 'max_tokens is between 1 and 4096 for offline', 'org settings: max_tokens within the model''s limit');
select throws_ok(
  $$update public.org_settings set speaking_rate = 2.5 where org_id = tests.fx('org_a')$$,
  '22023', 'the speaking rate is between 0.5 and 2.0', 'org settings: speaking rate 0.5-2.0');
select throws_ok(
  $$update public.org_settings set interruption_sensitivity = 1.2 where org_id = tests.fx('org_a')$$,
  '22023', 'the interruption sensitivity is between 0 and 1', 'org settings: interruption sensitivity 0-1');
select throws_ok(
  $$update public.org_settings set temperature = 3 where org_id = tests.fx('org_a')$$,
  '22023', 'the temperature is between 0 and 2', 'org settings: temperature 0-2');
select throws_ok(
  $$update public.org_settings set notification_preferences = '{"call.exploded": {"webhook": true}}' where org_id = tests.fx('org_a')$$,
  '22023', 'unknown event type in notification preferences: call.exploded', 'notification preferences: unknown event types are refused');
select throws_ok(
  $$update public.org_settings set notification_preferences = '{"*": {"in_app": ["owner", "boss"]}}' where org_id = tests.fx('org_a')$$,
  '22023', '$["*"].in_app must be a list of roles (viewer, member, admin, owner)', 'notification preferences: only role names');
select throws_ok(
  $$update public.org_settings set notification_preferences = '{"call.ended": {"sms": true}}' where org_id = tests.fx('org_a')$$,
  '22023', '$["call.ended"].sms is not a notification channel (in_app, webhook)', 'notification preferences: only known channels');
select throws_ok(
  $$update public.org_settings set notification_preferences = '["owner"]' where org_id = tests.fx('org_a')$$,
  '22023', 'notification preferences must be a JSON object', 'notification preferences: an object');
select lives_ok(
  $$update public.org_settings set notification_preferences = '{"*": {"in_app": ["owner"], "webhook": true}, "call.ended": {"in_app": ["member"], "webhook": false}}'
    where org_id = tests.fx('org_a')$$,
  'notification preferences: a valid document is stored');
select tests.act_as('postgres');
select is(
  (select new_values -> 'speaking_rate' from public.audit_log
   where org_id = tests.fx('org_a') and table_name = 'org_settings' and action = 'update' and actor_user_id = tests.fx('admin_a') order by seq limit 1),
  '1.50'::jsonb,
  'org settings: changes are audited, with the admin as the actor');

-- Routing, and the webhook flag honoured at fan-out.
select results_eq(
  $$select in_app_roles::text[], webhook from private.notification_route(tests.fx('org_a'), 'call.ended')
    union all select in_app_roles::text[], webhook from private.notification_route(tests.fx('org_a'), 'call.started')$$,
  $$values (array['member'], false), (array['owner'], true)$$,
  'notification routing: a type''s own entry wins over *'
);
insert into public.webhook_endpoints (org_id, url) values (tests.fx('org_a'), 'https://hooks.example.com/billing-a');
select private.emit_event(tests.fx('org_a'), 'call.ended', jsonb_build_object('call_id', gen_random_uuid(), 'status', 'ended'));
select private.emit_event(tests.fx('org_a'), 'call.started', jsonb_build_object('call_id', gen_random_uuid(), 'direction', 'inbound'));
select results_eq(
  $$select e.type from public.webhook_deliveries d join public.events e on e.id = d.event_id where d.org_id = tests.fx('org_a')$$,
  $$values ('call.started')$$,
  'notification routing: a type switched off for webhooks makes no delivery; others still go'
);

-- ---------------------------------------------------------------------------
-- User settings
-- ---------------------------------------------------------------------------

select is(
  (select row(email_notifications, notification_overrides)::text from public.user_settings where user_id = tests.fx('member_a')),
  row(true, '{}'::jsonb)::text,
  'user settings: every user has a row with the defaults'
);
select tests.act_as('member_a');
select is((select count(*)::int from public.user_settings), 1, 'user settings: a user reads only their own row');
select is(
  pg_temp.affected($$update public.user_settings set email_notifications = false, notification_overrides = '{"call.ended": {"email": true}}'$$),
  1,
  'user settings: a user changes their own (and only their own)'
);
select is(
  pg_temp.affected($$update public.user_settings set email_notifications = false where user_id = tests.fx('admin_a')$$),
  0, 'user settings: nobody changes another user''s');
select throws_ok(
  $$update public.user_settings set notification_overrides = '{"call.ended": {"webhook": true}}'$$,
  '22023', '$["call.ended"].webhook is not a notification channel (in_app, email)', 'user settings: overrides are validated');
select throws_ok(
  $$update public.profiles set time_zone = 'Mars/Olympus_Mons' where user_id = auth.uid()$$,
  '22023', 'unknown time zone: Mars/Olympus_Mons', 'user settings: the time zone (in profiles) must be an IANA zone');
select tests.act_as('admin_a');
select throws_ok(
  $$update public.organizations set time_zone = 'Nowhere/City' where id = tests.fx('org_a')$$,
  '22023', 'unknown time zone: Nowhere/City', 'org settings: the org''s time zone must be an IANA zone');

-- ---------------------------------------------------------------------------
-- Plans
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok($$select public.change_plan(tests.fx('org_a'), 'pro')$$, '42501',
  'you do not have the billing.manage permission in this organization', 'change_plan: an admin cannot');
select tests.act_as('owner_a');
select throws_ok($$select public.change_plan(tests.fx('org_a'), 'gold')$$, '22023', 'unknown plan: gold', 'change_plan: unknown plan');
select tests.remember('free_sub_a', (select id from public.subscriptions where org_id = tests.fx('org_a') and status = 'active'));
select tests.remember('pro_sub_a', (public.change_plan(tests.fx('org_a'), 'pro')).id);
select tests.act_as('postgres');
select results_eq(
  $$select id, plan_id, status::text from public.subscriptions where org_id = tests.fx('org_a') order by plan_id$$,
  $$values (tests.fx('free_sub_a'), 'free', 'canceled'), (tests.fx('pro_sub_a'), 'pro', 'active')$$,
  'change_plan: an upgrade cancels the old subscription and starts the new plan at once'
);
select ok(
  (select current_period_start = now() and current_period_end = private.add_months_utc(now(), 1) from public.subscriptions where id = tests.fx('pro_sub_a')),
  'change_plan: the upgraded plan starts a fresh monthly period now'
);
select tests.act_as('owner_a');
select results_eq(
  $$select id, plan_id, scheduled_plan_id from public.change_plan(tests.fx('org_a'), 'free')$$,
  $$values (tests.fx('pro_sub_a'), 'pro', 'free')$$,
  'change_plan: a downgrade is scheduled for the end of the period; the plan stays'
);
select is((public.change_plan(tests.fx('org_a'), 'pro')).scheduled_plan_id, null, 'change_plan: choosing the current plan calls a scheduled downgrade off');
select is((public.change_plan(tests.fx('org_a'), 'free')).scheduled_plan_id, 'free', 'change_plan: scheduled again');
select tests.act_as('postgres');
-- The period ends (moved into the past).
update public.subscriptions
set started_at = now() - interval '1 month', current_period_start = now() - interval '1 month', current_period_end = now() - interval '1 second'
where id = tests.fx('pro_sub_a');
select tests.act_as('service_role');
select cmp_ok(private.roll_subscriptions(), '>=', 1, 'roll_subscriptions renews the ended period');
select tests.act_as('postgres');
select results_eq(
  $$select plan_id, status::text, started_at = now() - interval '1 second', current_period_end = private.add_months_utc(now() - interval '1 second', 1)
    from public.subscriptions where org_id = tests.fx('org_a') and status = 'active'$$,
  $$values ('free', 'active', true, true)$$,
  'roll_subscriptions: the scheduled plan starts where the old period ended'
);
select results_eq(
  $$select status::text, canceled_at = now() - interval '1 second', scheduled_plan_id from public.subscriptions where id = tests.fx('pro_sub_a')$$,
  $$values ('canceled', true, null::text)$$,
  'roll_subscriptions: the old subscription is canceled at its period''s end'
);
select is(
  (select count(*)::int from public.subscriptions where org_id = tests.fx('org_a') and status = 'active'),
  1, 'exactly one active subscription throughout');
select throws_ok(
  $$insert into public.subscriptions (org_id, plan_id, current_period_start, current_period_end) values (tests.fx('org_a'), 'pro', now(), now() + interval '1 month')$$,
  '23505', null, 'a second active subscription is refused by the database, whatever the path');
-- A period rolls on without a scheduled plan.
update public.subscriptions set started_at = now() - interval '3 months 2 days', current_period_start = now() - interval '3 months 2 days',
  current_period_end = now() - interval '2 months 2 days'
where org_id = tests.fx('org_b') and status = 'active';
select tests.act_as('service_role');
select private.roll_subscriptions();
select tests.act_as('postgres');
select ok(
  (select current_period_start <= now() and current_period_end > now() and plan_id = 'free'
     and current_period_end = private.add_months_utc(started_at, 4) from public.subscriptions where org_id = tests.fx('org_b') and status = 'active'),
  'roll_subscriptions: a period late by months catches up to the one holding now, counted from the start');

-- ---------------------------------------------------------------------------
-- Quotas
-- ---------------------------------------------------------------------------

insert into public.documents (org_id, name, mime_type, size_bytes, storage_path)
select tests.fx('org_b'), 'doc-' || i || '.txt', 'text/plain', 10, tests.fx('org_b') || '/quota/doc-' || i || '.txt'
from generate_series(1, 50) i;
select is((select count(*)::int from public.documents where org_id = tests.fx('org_b')), 50, 'documents: the free plan holds 50');
select throws_ok(
  $$insert into public.documents (org_id, name, mime_type, size_bytes, storage_path) values (tests.fx('org_b'), 'doc-51.txt', 'text/plain', 10, tests.fx('org_b') || '/quota/doc-51.txt')$$,
  'PT402', 'quota exceeded: the Free plan includes 50 documents and this organization has 50',
  'documents: the 51st document on free is refused (PT402, HTTP 402)');
select tests.act_as('owner_b');
select throws_ok(
  $$select * from public.create_upload_batch(tests.fx('org_b'), '[{"name": "more.txt", "mime_type": "text/plain", "size_bytes": 10}]')$$,
  'PT402', null, 'documents: the upload RPC is refused too');
select results_eq(
  $$select metric, used, included from public.plan_usage(tests.fx('org_b'))$$,
  $$values ('chat_tokens', 0::bigint, 200000::bigint), ('embedding_tokens', 0::bigint, 1000000::bigint),
           ('call_minutes', 0::bigint, 30::bigint), ('documents', 50::bigint, 50::bigint)$$,
  'plan_usage: every metric, used against the plan''s allowance'
);
select tests.act_as('member_a');
select throws_ok($$select * from public.plan_usage(tests.fx('org_a'))$$, '42501', null, 'plan_usage: members may not read billing');
select tests.act_as('postgres');
-- Call minutes: 29 min 30 s of talk rounds up to 30, the whole free allowance.
insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('org_b'), 'inbound', 'ended', now() - interval '1 hour', now() - interval '30 minutes', 1770);
select is((select used from private.plan_usage(tests.fx('org_b')) where metric = 'call_minutes'), 30::bigint, 'call minutes: summed talk time, rounded up to the minute');
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number, status) values (tests.fx('org_b'), 'outbound', '+14155550123', 'queued')$$,
  'PT402', 'quota exceeded: the Free plan includes 30 call minutes per month and 30 are used in this period',
  'call minutes: a new outbound call is refused once the minutes are used up');
select lives_ok(
  $$insert into public.calls (org_id, direction, status) values (tests.fx('org_b'), 'inbound', 'ringing')$$,
  'call minutes: inbound calls are still recorded');

-- ---------------------------------------------------------------------------
-- Invoices: org C on pro for the whole month two months ago (UTC).
-- Hand-computed: plan 4,900; chat 5,012,500 tokens = 12,500 over = 12.5 x
-- 0.2 = 2.5 -> 3 (half up); embedding 50,000,000 = exactly the allowance, no
-- line; call talk 60,061 s = 1,001.02 -> 1,002 minutes = 2 over x 5 = 10.
-- Total 4,913. Usage of the next month does not count. The subscription
-- started on day -10, so the period billed ends on day 18 to 21 (the month
-- before's length): all this usage is in it (20261123004300 bills overage
-- per subscription period).
-- ---------------------------------------------------------------------------

create function pg_temp.month_start() returns date language sql stable as
$$ select (date_trunc('month', now() at time zone 'UTC') - interval '2 months')::date $$;
create function pg_temp.at(days integer) returns timestamptz language sql stable as
$$ select (pg_temp.month_start() + days)::timestamp at time zone 'UTC' $$;
grant execute on function pg_temp.month_start(), pg_temp.at(integer) to public;

update public.subscriptions set plan_id = 'pro', started_at = pg_temp.at(-10), current_period_start = pg_temp.at(-10),
  current_period_end = private.add_months_utc(pg_temp.at(-10), 1)
where org_id = tests.fx('org_c') and status = 'active';
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at) values
  (tests.fx('org_c'), 'chat', 'gpt-4o-mini', 5000000, 12000, pg_temp.at(3)),
  (tests.fx('org_c'), 'chat', 'gpt-4o-mini', 0, 500, pg_temp.at(15)),
  (tests.fx('org_c'), 'embedding', 'text-embedding-3-small', 50000000, 0, pg_temp.at(4)),
  (tests.fx('org_c'), 'chat', 'gpt-4o-mini', 1000000, 0, pg_temp.at(40));
insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
values (tests.fx('org_c'), 'inbound', 'ended', pg_temp.at(5), pg_temp.at(5) + interval '60061 seconds', 60061);

select tests.act_as('service_role');
select throws_ok($$select private.generate_invoices((date_trunc('month', now()))::date)$$, '22023', null,
  'generate_invoices: a month that has not ended is refused');
select throws_ok($$select private.generate_invoices(pg_temp.month_start() + 1)$$, '22023', null,
  'generate_invoices: a period starts on the first of a month');
-- The run draws every org of the shared test database subscribed that month
-- (function tests running alongside commit some), so this file's are counted by org.
select ok(private.generate_invoices(pg_temp.month_start()) >= 2, 'generate_invoices: the run draws the month''s invoices');
select results_eq(
  $$select i.org_id from public.invoices i
    where i.org_id in (tests.fx('org_a'), tests.fx('org_b'), tests.fx('org_c')) and i.period_start = pg_temp.month_start()
    order by i.org_id$$,
  $$select o from unnest(array[tests.fx('org_b'), tests.fx('org_c')]) o order by o$$,
  'generate_invoices: one invoice per org subscribed in that month (B on free, C on pro; A started after it)');
select is(private.generate_invoices(pg_temp.month_start()), 0, 'generate_invoices: a second run for the month creates nothing');
select tests.act_as('postgres');
select tests.remember('invoice_c', (select id from public.invoices where org_id = tests.fx('org_c')));
select results_eq(
  $$select plan_id, currency::text, subtotal_cents, total_cents, status, period_end - period_start between 28 and 31
    from public.invoices where id = tests.fx('invoice_c')$$,
  $$values ('pro', 'USD', 4913::bigint, 4913::bigint, 'open', true)$$,
  'invoice: totals match the hand-computed usage'
);
select results_eq(
  $$select position::int, kind, metric, quantity, unit, unit_price_cents, amount_cents from public.invoice_lines
    where invoice_id = tests.fx('invoice_c') order by position$$,
  $$values (1, 'plan', null::text, 1.000::numeric, 'month', 4900::numeric, 4900::bigint),
           (2, 'overage', 'chat_tokens', 12.500, '1k tokens', 0.2, 3::bigint),
           (3, 'overage', 'call_minutes', 2.000, 'minute', 5, 10::bigint)$$,
  'invoice lines: the plan, then an overage line per metric over its allowance (rounded half up per line)'
);
select results_eq(
  $$select plan_id, total_cents, (select count(*)::int from public.invoice_lines l where l.invoice_id = i.id) from public.invoices i where org_id = tests.fx('org_b')$$,
  $$values ('free', 0::bigint, 1)$$,
  'invoice: an org on free without overage gets a zero invoice with its plan line'
);
select results_eq(
  $$select count(*)::int, min(payload ->> 'total_cents') from public.events where org_id = tests.fx('org_c') and type = 'invoice.created'$$,
  $$values (1, '4913')$$,
  'invoice.created: emitted once, with the total'
);

-- Who reads invoices.
select tests.act_as('member_c');
select is((select count(*)::int from public.invoices where org_id = tests.fx('org_c')), 0, 'invoices: members do not read them');
select is((select count(*)::int from public.invoice_lines where org_id = tests.fx('org_c')), 0, 'invoice lines: members do not read them');
select tests.act_as('admin_c');
select is((select count(*)::int from public.invoice_lines where org_id = tests.fx('org_c')), 3, 'invoice lines: admins read them (billing.read)');

-- PDFs.
select tests.act_as('service_role');
select results_eq(
  $$select invoice_id, pdf_path from private.invoices_needing_pdf(10) where org_id = tests.fx('org_c')$$,
  $$select tests.fx('invoice_c'), tests.fx('org_c') || '/invoices/' || tests.fx('invoice_c') || '.pdf'$$,
  'PDFs: an invoice without one is handed out with its path'
);
select is((select count(*)::int from private.invoices_needing_pdf(10) where org_id = tests.fx('org_c')), 0, 'PDFs: not twice within 10 minutes');
select throws_ok($$select private.save_invoice_pdf(tests.fx('invoice_c'), tests.fx('org_c') || '/invoices/' || tests.fx('invoice_c') || '.pdf')$$,
  'P0002', null, 'PDFs: recorded only once uploaded');
insert into storage.objects (bucket_id, name, metadata)
values ('invoices', tests.fx('org_c') || '/invoices/' || tests.fx('invoice_c') || '.pdf', '{"mimetype": "application/pdf", "size": 1000}');
select is((private.save_invoice_pdf(tests.fx('invoice_c'), tests.fx('org_c') || '/invoices/' || tests.fx('invoice_c') || '.pdf')).pdf_path,
  tests.fx('org_c') || '/invoices/' || tests.fx('invoice_c') || '.pdf', 'PDFs: the uploaded PDF is recorded');
select tests.act_as('member_c');
select is((select count(*)::int from storage.objects where bucket_id = 'invoices'), 0, 'invoice PDFs: a member cannot read them');
select throws_ok(
  $$insert into storage.objects (bucket_id, name) values ('invoices', tests.fx('org_c') || '/invoices/forged.pdf')$$,
  '42501', null, 'invoice PDFs: members cannot upload one');
select tests.act_as('admin_c');
select is((select count(*)::int from storage.objects where bucket_id = 'invoices'), 0,
  'invoice PDFs: an admin does not read them directly either (service role only since 20261123008500)');
select tests.act_as('owner_b');
select is((select count(*)::int from storage.objects where bucket_id = 'invoices'), 0, 'invoice PDFs: another org''s owner does not');

select * from finish();
rollback;
