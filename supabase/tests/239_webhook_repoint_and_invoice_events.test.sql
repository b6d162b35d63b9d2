-- A repointed endpoint answers for its new URL only; invoice events are the
-- admins' only (20261123006800_webhook_repoint_and_invoice_events.sql).
--
-- Claims run at fixed times in 2004 and 2005, when only this file's
-- deliveries (moved there) are due.
begin;
create extension if not exists pgtap with schema extensions;

select plan(39);

-- What the last claim handed out.
create temp table claims (delivery_id uuid, attempt_number integer, url text);
grant all on claims to public;

-- How a replay is refused: SQLSTATE, detail ('-' for none) and message, or 'replayed'.
create function pg_temp.replay_refusal(delivery_id uuid)
returns text
language plpgsql
as $$
declare
  state text;
  detail text;
  message text;
begin
  perform private.replay_webhook_delivery(delivery_id);
  return 'replayed';
exception when others then
  get stacked diagnostics state = returned_sqlstate, detail = pg_exception_detail, message = message_text;
  return state || ' ' || coalesce(nullif(detail, ''), '-') || ': ' || message;
end;
$$;
grant execute on function pg_temp.replay_refusal(uuid) to public;

create function pg_temp.endpoint(label text, org text, url text, event_types text[])
returns void
language sql
as $$
  select tests.remember(label, c.endpoint_id)
  from private.create_webhook_endpoint(tests.fx(org), url, null, event_types) c
$$;
grant execute on function pg_temp.endpoint(text, text, text, text[]) to public;

create function pg_temp.emit(label text, org text, type text)
returns void
language sql
as $$
  select tests.remember(label, private.emit_event(tests.fx(org), type, case type
    when 'invoice.created' then jsonb_build_object('invoice_id', gen_random_uuid(), 'period_start', '2026-10-01',
                                                   'period_end', '2026-11-01', 'total_cents', 4900, 'currency', 'usd')
    else jsonb_build_object('document_id', gen_random_uuid(), 'name', label || '.pdf') end))
$$;
grant execute on function pg_temp.emit(text, text, text) to public;

create function pg_temp.delivery(event text, endpoint text)
returns uuid
language sql
stable
as $$
  select d.id from public.webhook_deliveries d
  where d.event_id = tests.fx(event) and d.endpoint_id = tests.fx(endpoint) and d.replay_of is null
$$;
grant execute on function pg_temp.delivery(text, text) to public;

create function pg_temp.status(event text, endpoint text)
returns text
language sql
stable
as $$ select d.status from public.webhook_deliveries d where d.id = pg_temp.delivery(event, endpoint) $$;

-- The endpoints (by fixture name) an event was fanned out to.
create function pg_temp.fanned_out_to(event text)
returns text[]
language sql
stable
as $$
  select coalesce(array_agg(f.name order by f.name), '{}')
  from public.webhook_deliveries d join tests.fixtures f on f.id = d.endpoint_id
  where d.event_id = tests.fx(event) and d.replay_of is null
$$;

-- Reports an attempt of a claimed delivery, as the dispatcher does (service role).
create function pg_temp.report(event text, endpoint text, status_code integer, sent_url text)
returns text
language sql
as $$
  select private.record_webhook_attempt(c.delivery_id, c.attempt_number, '2004-01-01 00:00:02+00', 5, status_code,
    null, 'answer', null, '2004-01-01 00:00:03+00', sent_url)
  from claims c where c.delivery_id = pg_temp.delivery(event, endpoint)
$$;
grant execute on function pg_temp.report(text, text, integer, text) to public;

create function pg_temp.claim(at timestamptz)
returns void
language sql
as $$
  delete from claims;
  insert into claims select c.delivery_id, c.attempt_number, c.url
  from private.claim_webhook_deliveries(500, interval '60 seconds', at) c;
$$;
grant execute on function pg_temp.claim(timestamptz) to public;

create function pg_temp.failing_since(endpoint text)
returns timestamptz
language sql
stable
as $$ select e.failing_since from public.webhook_endpoints e where e.id = tests.fx(endpoint) $$;

insert into tests.fixtures (name, id) values
  ('owner_r', tests.create_user('owner-r@webhook-repoint-239.test')),
  ('owner_i', tests.create_user('owner-i@webhook-repoint-239.test')),
  ('admin_i', tests.create_user('admin-i@webhook-repoint-239.test')),
  ('demoted_i', tests.create_user('demoted-i@webhook-repoint-239.test')),
  ('member_i', tests.create_user('member-i@webhook-repoint-239.test')),
  ('ops', tests.create_user('ops@webhook-repoint-239.test', '{"platform_admin": true}'));
select tests.remember('org_r', tests.create_org('webhook-repoint-239-r', tests.fx('owner_r')));
select tests.remember('org_i', tests.create_org('webhook-repoint-239-i', tests.fx('owner_i')));
select tests.add_member(tests.fx('org_i'), tests.fx('admin_i'), 'admin');
select tests.add_member(tests.fx('org_i'), tests.fx('demoted_i'), 'admin');
select tests.add_member(tests.fx('org_i'), tests.fx('member_i'), 'member');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- 1. Repointing: an answer from the old URL concerns only its delivery.
-- ---------------------------------------------------------------------------

select tests.act_as('owner_r');
select pg_temp.endpoint('ep_r', 'org_r', 'https://old.repoint-239.example.com/h', null);
select tests.act_as('service_role');
select pg_temp.emit('r_gone', 'org_r', 'document.ready'), pg_temp.emit('r_ok', 'org_r', 'document.ready'),
       pg_temp.emit('r_slow', 'org_r', 'document.ready');
select tests.act_as('postgres');
update public.webhook_deliveries d set next_attempt_at = '2004-01-01 00:00:00+00'
where d.org_id = tests.fx('org_r') and d.status = 'pending';
select tests.act_as('service_role');
select pg_temp.claim('2004-01-01 00:00:01+00');
select tests.act_as('postgres');
select is(
  (select array_agg(distinct c.url) from claims c),
  array['https://old.repoint-239.example.com/h'],
  'the claim hands out the URL the endpoint has when claimed'
);

-- The endpoint had been failing 4.9 days; the owner fixes its URL while the three attempts are in flight.
update public.webhook_endpoints set failing_since = now() - interval '4.9 days' where id = tests.fx('ep_r');
select tests.act_as('owner_r');
select from private.update_webhook_endpoint(tests.fx('ep_r'), null, 'Renamed', null, null);
select tests.act_as('postgres');
select ok(pg_temp.failing_since('ep_r') is not null, 'update_webhook_endpoint: changing the description keeps failing_since');
select tests.act_as('owner_r');
select from private.update_webhook_endpoint(tests.fx('ep_r'), 'https://old.repoint-239.example.com/h', null, null, null);
select tests.act_as('postgres');
select ok(pg_temp.failing_since('ep_r') is not null, 'update_webhook_endpoint: saving the same URL keeps failing_since');
select tests.act_as('owner_r');
select from private.update_webhook_endpoint(tests.fx('ep_r'), 'https://new.repoint-239.example.com/h', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.failing_since('ep_r'), null, 'update_webhook_endpoint: a new URL starts with no run of failures');

select tests.act_as('service_role');
select pg_temp.emit('r_queued', 'org_r', 'document.ready');
select is(pg_temp.report('r_gone', 'ep_r', 410, 'https://old.repoint-239.example.com/h'), 'pending',
  'a 410 from the old URL is retried like any failure');
select tests.act_as('postgres');
select is(
  (select (e.enabled, e.disabled_reason, e.url)::text from public.webhook_endpoints e where e.id = tests.fx('ep_r')),
  '(t,,https://new.repoint-239.example.com/h)',
  'a 410 from the old URL does not disable the repointed endpoint'
);
select is(pg_temp.status('r_queued', 'ep_r'), 'pending', 'a 410 from the old URL cancels nothing queued for the new one');
select is(
  (select d.next_attempt_at from public.webhook_deliveries d where d.id = pg_temp.delivery('r_gone', 'ep_r'))
    between '2004-01-01 00:00:03+00'::timestamptz + interval '4.5 seconds' and '2004-01-01 00:00:03+00'::timestamptz + interval '5.5 seconds',
  true,
  'the retry is scheduled on the schedule (5 s ±10% after a first attempt)'
);
select is(
  (select (a.url, a.status_code)::text from public.webhook_attempts a where a.delivery_id = pg_temp.delivery('r_gone', 'ep_r')),
  '(https://old.repoint-239.example.com/h,410)',
  'the attempt names the URL it was sent to'
);
select is(pg_temp.failing_since('ep_r'), null, 'a failure from the old URL starts no run of failures for the new one');

-- The new URL has been failing for 12 days by the time the old URL's answers come in.
update public.webhook_endpoints set failing_since = '2003-12-20 00:00:00+00' where id = tests.fx('ep_r');
select tests.act_as('service_role');
select is(pg_temp.report('r_slow', 'ep_r', 500, 'https://old.repoint-239.example.com/h'), 'pending',
  'a 500 from the old URL is retried, though the endpoint has been failing over 5 days');
select is(pg_temp.report('r_ok', 'ep_r', 200, 'https://old.repoint-239.example.com/h'), 'succeeded',
  'a success from the old URL ends its delivery succeeded (it was delivered)');
select tests.act_as('postgres');
select is(
  (select (e.enabled, e.failing_since = '2003-12-20 00:00:00+00')::text from public.webhook_endpoints e where e.id = tests.fx('ep_r')),
  '(t,t)',
  'the old URL''s 500 does not trip the 5-day rule, and its success does not clear the new URL''s failures'
);

-- The new URL's own 410 still disables the endpoint.
update public.webhook_endpoints set failing_since = null where id = tests.fx('ep_r');
update public.webhook_deliveries d set next_attempt_at = '2004-01-01 00:00:00+00'
where d.id = pg_temp.delivery('r_queued', 'ep_r') and d.status = 'pending';
select tests.act_as('service_role');
select pg_temp.claim('2004-01-01 00:00:01+00');
select tests.act_as('postgres');
select is(
  (select array_agg(c.url) from claims c),
  array['https://new.repoint-239.example.com/h'],
  'a delivery claimed after the repoint goes to the new URL'
);
select tests.act_as('service_role');
select is(pg_temp.report('r_queued', 'ep_r', 410, 'https://new.repoint-239.example.com/h'), 'failed',
  'a 410 from the endpoint''s current URL fails the delivery');
select tests.act_as('postgres');
select is(
  (select (e.enabled, e.disabled_reason)::text from public.webhook_endpoints e where e.id = tests.fx('ep_r')),
  '(f,"the endpoint answered 410 Gone")',
  'and disables the endpoint, as before'
);
select is(pg_temp.status('r_gone', 'ep_r'), 'canceled', 'and cancels what it had queued, the old URL''s retry included');

-- Without sent_url the endpoint's URL is taken, as before.
select tests.act_as('owner_r');
select from private.update_webhook_endpoint(tests.fx('ep_r'), null, null, null, true);
select tests.act_as('service_role');
select pg_temp.emit('r_legacy', 'org_r', 'document.ready');
select tests.act_as('postgres');
update public.webhook_deliveries d set next_attempt_at = '2004-01-01 00:00:00+00'
where d.id = pg_temp.delivery('r_legacy', 'ep_r');
select tests.act_as('service_role');
select pg_temp.claim('2004-01-01 00:00:01+00');
select is(
  (select private.record_webhook_attempt(c.delivery_id, c.attempt_number, '2004-01-01 00:00:02+00', 5, 500, null, null,
     null, '2004-01-01 00:00:03+00')
   from claims c),
  'pending',
  'record_webhook_attempt: still callable without sent_url'
);
select tests.act_as('postgres');
select is(
  (select a.url from public.webhook_attempts a where a.delivery_id = pg_temp.delivery('r_legacy', 'ep_r')),
  'https://new.repoint-239.example.com/h',
  'and then logs the endpoint''s URL'
);
select is(pg_temp.failing_since('ep_r'), '2004-01-01 00:00:02+00'::timestamptz,
  'and a failure starts the endpoint''s run of failures');
select is(
  (select count(*)::int from pg_proc p where p.proname = 'record_webhook_attempt' and p.pronamespace = 'private'::regnamespace),
  1,
  'record_webhook_attempt has one signature (no ambiguous overload)'
);
select ok(
  not has_function_privilege('authenticated',
    'private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text)', 'execute')
  and has_function_privilege('service_role',
    'private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text)', 'execute'),
  'record_webhook_attempt: the service role only'
);

-- ---------------------------------------------------------------------------
-- 2. Invoice events: billing.read (admins and up, platform admins).
-- ---------------------------------------------------------------------------

select is(private.event_type_read_permission('invoice.created'), 'billing.read', 'invoice.* needs billing.read');
select is(private.event_type_read_permission('export.ready'), 'data.export', 'export.* still needs data.export');
select is(private.event_type_read_permission('document.ready'), null, 'other types need nothing beyond webhooks.read');

select tests.act_as('admin_i');
select pg_temp.endpoint('ep_admin', 'org_i', 'https://admin.repoint-239.example.com/all', null);
select tests.act_as('demoted_i');
select pg_temp.endpoint('ep_demoted', 'org_i', 'https://demoted.repoint-239.example.com/invoices', array['invoice.created', 'document.ready']);
select tests.act_as('service_role');
select pg_temp.emit('inv_1', 'org_i', 'invoice.created'), pg_temp.emit('doc_1', 'org_i', 'document.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('inv_1'), array['ep_admin', 'ep_demoted'], 'fan-out: invoice.created reaches endpoints admins set up');

update public.memberships set role = 'member' where org_id = tests.fx('org_i') and user_id = tests.fx('demoted_i');
select tests.act_as('service_role');
select pg_temp.emit('inv_2', 'org_i', 'invoice.created'), pg_temp.emit('doc_2', 'org_i', 'document.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('inv_2'), array['ep_admin'],
  'fan-out: an endpoint set up by an admin since demoted to member receives no invoice.created');
select is(pg_temp.fanned_out_to('doc_2'), array['ep_admin', 'ep_demoted'], 'fan-out: and still every other type');

-- Reading in the app.
select tests.act_as('member_i');
select is(
  (select count(*)::int from public.events e where e.org_id = tests.fx('org_i') and e.type = 'invoice.created'),
  0, 'a member reads no invoice events'
);
select is(
  (select count(*)::int from public.events e where e.org_id = tests.fx('org_i') and e.type = 'document.ready'),
  2, 'a member still reads the other events'
);
select tests.act_as('admin_i');
select is(
  (select count(*)::int from public.events e where e.org_id = tests.fx('org_i') and e.type = 'invoice.created'),
  2, 'an admin reads invoice events'
);
select tests.act_as('owner_i');
select is(
  (select count(*)::int from public.events e where e.org_id = tests.fx('org_i') and e.type = 'invoice.created'),
  2, 'an owner reads invoice events'
);
select tests.act_as('ops');
select is(
  (select count(*)::int from public.events e where e.org_id = tests.fx('org_i') and e.type = 'invoice.created'),
  2, 'a platform admin reads invoice events, as invoices'
);

-- Replay.
select tests.act_as('admin_i');
select is(pg_temp.replay_refusal(pg_temp.delivery('inv_1', 'ep_admin')), 'replayed',
  'replay: an admin replays invoice.created to an endpoint an admin set up');
select tests.act_as('owner_i');
select is(
  pg_temp.replay_refusal(pg_temp.delivery('inv_1', 'ep_demoted')),
  '22023 -: this endpoint''s URL or event filter was last set by someone who is not an admin or owner, so it receives no invoice.created events; an admin or owner must save it first',
  'replay: not even an owner replays invoice.created to an endpoint set up by a member'
);
-- A role matrix in which a member manages webhooks but may not read invoices.
select tests.act_as('postgres');
update public.role_permissions set min_role = 'member' where permission = 'webhooks.manage';
select tests.act_as('member_i');
select is(
  pg_temp.replay_refusal(pg_temp.delivery('inv_1', 'ep_admin')),
  '42501 admin_only_event: only admins and owners may replay a delivery of an invoice.created event',
  'replay: one who may not read invoice events is refused with 42501 and the marker admin_only_event'
);
select tests.act_as('postgres');
update public.role_permissions set min_role = 'admin' where permission = 'webhooks.manage';

-- The claim checks again: inv_1 was queued for ep_demoted before its configurer was demoted.
update public.webhook_deliveries d set next_attempt_at = '2005-01-01 00:00:00+00'
where d.org_id = tests.fx('org_i') and d.status = 'pending';
select tests.act_as('service_role');
select pg_temp.claim('2005-01-01 00:00:01+00');
select tests.act_as('postgres');
select is(pg_temp.status('inv_1', 'ep_demoted'), 'canceled',
  'claim: invoice.created queued for an endpoint whose configurer was since demoted is canceled, not sent');
select is(
  (select array_agg(f.name order by f.name) from claims c
   join public.webhook_deliveries d on d.id = c.delivery_id
   join public.events ev on ev.id = d.event_id and ev.type = 'invoice.created'
   join tests.fixtures f on f.id = d.endpoint_id),
  array['ep_admin', 'ep_admin', 'ep_admin'],
  'claim: invoice.created is sent to the admin''s endpoint (both events and the replay)'
);
select is(pg_temp.status('doc_1', 'ep_demoted'), 'sending', 'claim: other types still go to the demoted member''s endpoint');

select * from finish();
rollback;
