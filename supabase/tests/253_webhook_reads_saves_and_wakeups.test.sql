-- Webhook reads, saves, wake-ups and rotations
-- (20261123008300_webhook_reads_saves_and_wakeups.sql).
begin;
create extension if not exists pgtap with schema extensions;

select plan(35);

create temp table marks (label text primary key, n bigint);
grant all on marks to public;

create function pg_temp.endpoint(label text, url text, event_types text[])
returns void
language sql
as $$
  select tests.remember(label, c.endpoint_id)
  from private.create_webhook_endpoint(tests.fx('org_w'), url, null, event_types) c
$$;
grant execute on function pg_temp.endpoint(text, text, text[]) to public;

create function pg_temp.emit(label text, type text)
returns void
language sql
as $$
  select tests.remember(label, private.emit_event(tests.fx('org_w'), type, case type
    when 'export.ready' then jsonb_build_object('export_id', gen_random_uuid(), 'storage_prefix', 'x/',
                                                'expires_at', '2030-01-01T00:00:00Z',
                                                'download_url', 'https://files.example.com/253-signed-link')
    when 'invoice.created' then jsonb_build_object('invoice_id', gen_random_uuid(), 'period_start', '2026-10-01',
                                                   'period_end', '2026-11-01', 'total_cents', 4900, 'currency', 'usd')
    else jsonb_build_object('document_id', gen_random_uuid(), 'name', label || '.pdf') end))
$$;
grant execute on function pg_temp.emit(text, text) to public;

-- What the caller reads of an event's deliveries and their attempts (through RLS).
create function pg_temp.readable(event text)
returns text
language sql
stable
as $$
  select (select count(*) from public.webhook_deliveries d where d.event_id = tests.fx(event)) || ' deliveries, '
      || (select count(*) from public.webhook_attempts a
          where a.delivery_id in (select x.id from public.webhook_deliveries x where x.event_id = tests.fx(event))) || ' attempts'
$$;
grant execute on function pg_temp.readable(text) to public;

-- Attempts read directly, without going through deliveries.
create function pg_temp.echoed(event text)
returns bigint
language sql
stable
as $$ select count(*) from public.webhook_attempts a where a.response_body = 'echo of ' || event $$;
grant execute on function pg_temp.echoed(text) to public;

create function pg_temp.configured_by(endpoint text)
returns uuid
language sql
stable
as $$ select e.configured_by from public.webhook_endpoints e where e.id = tests.fx(endpoint) $$;

create function pg_temp.fanned_out_to(event text)
returns text[]
language sql
stable
as $$
  select coalesce(array_agg(f.name order by f.name), '{}')
  from public.webhook_deliveries d join tests.fixtures f on f.id = d.endpoint_id
  where d.event_id = tests.fx(event) and d.replay_of is null
$$;

create function pg_temp.queued_since(label text)
returns integer
language sql
stable
as $$
  select count(*)::integer from net.http_request_queue q
  where q.id > (select m.n from marks m where m.label = queued_since.label)
$$;

insert into tests.fixtures (name, id) values
  ('owner_w', tests.create_user('owner-w@webhook-reads-253.test')),
  ('owner2_w', tests.create_user('owner2-w@webhook-reads-253.test')),
  ('admin_w', tests.create_user('admin-w@webhook-reads-253.test')),
  ('admin2_w', tests.create_user('admin2-w@webhook-reads-253.test')),
  ('member_w', tests.create_user('member-w@webhook-reads-253.test'));
select tests.remember('org_w', tests.create_org('webhook-reads-253', tests.fx('owner_w')));
select tests.add_member(tests.fx('org_w'), tests.fx('owner2_w'), 'owner');
select tests.add_member(tests.fx('org_w'), tests.fx('admin_w'), 'admin');
select tests.add_member(tests.fx('org_w'), tests.fx('admin2_w'), 'admin');
select tests.add_member(tests.fx('org_w'), tests.fx('member_w'), 'member');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- 1. Deliveries and attempts are read as their events are.
-- ---------------------------------------------------------------------------

select tests.act_as('owner_w');
select pg_temp.endpoint('ep_all', 'https://all.reads-253.example.com/h', null);
select tests.act_as('service_role');
select pg_temp.emit('x_export', 'export.ready'), pg_temp.emit('x_invoice', 'invoice.created'),
       pg_temp.emit('x_doc', 'document.ready');
select tests.act_as('postgres');
-- A receiver that echoes what it is sent.
insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms,
                                     status_code, outcome, response_body)
select d.org_id, d.id, d.endpoint_id, 1, 'https://all.reads-253.example.com/h', now(), 5, 200, 'succeeded',
       'echo of ' || f.name
from public.webhook_deliveries d join tests.fixtures f on f.id = d.event_id
where d.endpoint_id = tests.fx('ep_all');
select is(
  (select count(*)::integer from public.webhook_attempts where endpoint_id = tests.fx('ep_all')), 3,
  'setup: each of the three events was delivered once and answered with an echo'
);

select tests.act_as('member_w');
select is(pg_temp.readable('x_export'), '0 deliveries, 0 attempts', 'a member reads no delivery or attempt of an export.ready event');
select is(pg_temp.readable('x_invoice'), '0 deliveries, 0 attempts', 'a member reads no delivery or attempt of an invoice.created event');
select is(pg_temp.echoed('x_export') + pg_temp.echoed('x_invoice'), 0::bigint,
  'a member reads no echoed response of either, even selecting attempts alone');
select is(pg_temp.readable('x_doc'), '1 deliveries, 1 attempts', 'a member still reads the deliveries and attempts of other events');
select is(pg_temp.echoed('x_doc'), 1::bigint, 'a member still reads their responses');

select tests.act_as('admin_w');
select is(pg_temp.readable('x_export'), '1 deliveries, 0 attempts',
  'an admin reads an export.ready delivery (to manage and replay it: no payload, no response) but none of its attempts');
select is(pg_temp.echoed('x_export'), 0::bigint, 'an admin reads no echoed response of an export.ready delivery');
select is(pg_temp.readable('x_invoice'), '1 deliveries, 1 attempts', 'an admin reads those of an invoice.created event');

select tests.act_as('owner_w');
select is(pg_temp.readable('x_export'), '1 deliveries, 1 attempts', 'an owner reads those of an export.ready event');
select is(pg_temp.readable('x_invoice'), '1 deliveries, 1 attempts', 'an owner reads those of an invoice.created event');
select is(pg_temp.echoed('x_export'), 1::bigint, 'an owner reads the echoed response of an export.ready delivery');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- 2. A save that passes the URL or filter unchanged.
-- ---------------------------------------------------------------------------

select tests.act_as('admin_w');
select pg_temp.endpoint('ep_adm_url', 'https://adm-url.reads-253.example.com/h', array['export.ready']);
select pg_temp.endpoint('ep_adm_filter', 'https://adm-filter.reads-253.example.com/h', array['export.ready']);
select pg_temp.endpoint('ep_adm_desc', 'https://adm-desc.reads-253.example.com/h', array['export.ready']);
select pg_temp.endpoint('ep_adm_peer', 'https://adm-peer.reads-253.example.com/h', null);
select tests.act_as('owner2_w');
select pg_temp.endpoint('ep_owner2', 'https://owner2.reads-253.example.com/h', null);
select pg_temp.endpoint('ep_demoted', 'https://demoted.reads-253.example.com/h', null);

select tests.act_as('owner_w');
select from private.update_webhook_endpoint(tests.fx('ep_adm_url'), 'https://adm-url.reads-253.example.com/h', null, null, null);
select from private.update_webhook_endpoint(tests.fx('ep_adm_filter'), null, null, array['export.ready'], null);
select from private.update_webhook_endpoint(tests.fx('ep_adm_desc'), null, 'Looked at by the owner', null, false);
select from private.update_webhook_endpoint(tests.fx('ep_adm_desc'), null, null, null, true);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_adm_url'), tests.fx('owner_w'),
  'an owner saving an admin''s endpoint with the same URL becomes its configurer');
select is(pg_temp.configured_by('ep_adm_filter'), tests.fx('owner_w'),
  'an owner saving an admin''s endpoint with the same filter becomes its configurer');
select is(pg_temp.configured_by('ep_adm_desc'), tests.fx('admin_w'),
  'an owner changing only the description, or disabling and re-enabling, does not');

select tests.act_as('service_role');
select pg_temp.emit('x_export_2', 'export.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('x_export_2'), array['ep_adm_filter', 'ep_adm_url', 'ep_all', 'ep_demoted', 'ep_owner2'],
  'the endpoints an owner re-saved receive export.ready; the one only renamed does not');

select tests.act_as('admin_w');
select from private.update_webhook_endpoint(tests.fx('ep_owner2'), 'https://owner2.reads-253.example.com/h', null, null, null);
select from private.update_webhook_endpoint(tests.fx('ep_owner2'), null, null, '{}', null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_owner2'), tests.fx('owner2_w'),
  'an admin saving an owner''s endpoint with the same URL or filter does not take it over');

select tests.act_as('admin2_w');
select from private.update_webhook_endpoint(tests.fx('ep_adm_peer'), 'https://adm-peer.reads-253.example.com/h', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_adm_peer'), tests.fx('admin2_w'), 'an admin re-saving another admin''s endpoint takes it over');

update public.memberships set role = 'member' where org_id = tests.fx('org_w') and user_id = tests.fx('owner2_w');
select tests.act_as('admin_w');
select from private.update_webhook_endpoint(tests.fx('ep_demoted'), 'https://demoted.reads-253.example.com/h', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_demoted'), tests.fx('admin_w'),
  'an admin re-saving an endpoint whose configurer was demoted below admin takes it over');

delete from public.memberships where org_id = tests.fx('org_w') and user_id = tests.fx('owner2_w');
select tests.act_as('admin_w');
select from private.update_webhook_endpoint(tests.fx('ep_owner2'), null, null, '{}', null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_owner2'), tests.fx('admin_w'),
  'an admin re-saving an endpoint whose configurer left the org takes it over');

select tests.act_as('admin_w');
select from private.update_webhook_endpoint(tests.fx('ep_adm_url'), 'https://adm-url.reads-253.example.com/moved', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_adm_url'), tests.fx('admin_w'), 'changing the URL still takes over, whoever changes it');

update public.webhook_endpoints set url = url, configured_by = tests.fx('owner_w') where id = tests.fx('ep_adm_peer');
select is(pg_temp.configured_by('ep_adm_peer'), tests.fx('admin2_w'),
  'outside a user''s session a save names nobody new, and configured_by still cannot be written');

-- ---------------------------------------------------------------------------
-- 3. Wake-ups: the cron does not consult the throttle row.
-- ---------------------------------------------------------------------------

select vault.create_secret('http://127.0.0.1:54321', 'project_url');
select vault.create_secret('test-key', 'service_role_key');
-- New deliveries just woke the dispatcher (or a transaction holds the row: the cron must not care either way).
update private.webhook_dispatch_requests set last_requested_at = clock_timestamp() + interval '1 hour';
insert into marks select 'cron', coalesce(max(id), 0) from net.http_request_queue;

select isnt_empty(
  $$select 1 from public.webhook_deliveries where org_id = tests.fx('org_w') and status = 'pending' and next_attempt_at <= now()$$,
  'setup: deliveries are due'
);
select private.request_webhook_dispatch();
select results_eq(
  $$select url, headers ->> 'Authorization' from net.http_request_queue where id > (select n from marks where label = 'cron')$$,
  $$values ('http://127.0.0.1:54321/functions/v1/webhook-dispatcher', 'Bearer test-key')$$,
  'the cron''s request_webhook_dispatch wakes the dispatcher although the throttle says it was just woken: one request'
);
select ok(
  (select last_requested_at > clock_timestamp() + interval '59 minutes' from private.webhook_dispatch_requests),
  'and it leaves the throttle row alone'
);
select is(
  (select count(*)::integer from pg_catalog.pg_proc p
   where p.oid = 'private.request_webhook_dispatch()'::regprocedure and p.prosrc like '%webhook_dispatch_requests%'),
  0,
  'the cron path does not read or lock the throttle row at all (so a transaction holding it cannot silence it)'
);
select results_eq(
  $$select schedule, command from cron.job where jobname = 'dispatch-webhooks'$$,
  $$values ('5 seconds', 'select private.request_webhook_dispatch()')$$,
  'the cron job is unchanged: one call, so one request, a tick'
);

select tests.act_as('service_role');
select pg_temp.emit('x_doc_throttled', 'document.ready');
select tests.act_as('postgres');
select is(pg_temp.queued_since('cron'), 1, 'new deliveries still wake the dispatcher at most once a second (throttled)');
update private.webhook_dispatch_requests set last_requested_at = '-infinity';
select tests.act_as('service_role');
select pg_temp.emit('x_doc_woken', 'document.ready');
select tests.act_as('postgres');
select is(pg_temp.queued_since('cron'), 2, 'and wake it once the throttle allows');
select ok(
  (select last_requested_at between now() and clock_timestamp() from private.webhook_dispatch_requests),
  'the new-delivery wake-up keeps its request time for the throttle'
);

-- ---------------------------------------------------------------------------
-- 4. A rotation is audited with its actor.
-- ---------------------------------------------------------------------------

select tests.act_as('admin_w');
select from private.rotate_webhook_secret(tests.fx('ep_all'), interval '1 hour');
select tests.act_as('postgres');
select isnt(
  (select rotated_at from public.webhook_endpoints where id = tests.fx('ep_all')), null,
  'rotate_webhook_secret sets rotated_at'
);
select results_eq(
  $$select org_id, actor_user_id, action from public.audit_log
    where table_name = 'webhook_endpoints' and record_id = tests.fx('ep_all')::text and action = 'update' and new_values ? 'rotated_at'$$,
  $$values (tests.fx('org_w'), tests.fx('admin_w'), 'update'::text)$$,
  'the rotation leaves an audit row naming the admin who rotated'
);
select is(
  (select count(*)::integer from public.audit_log
   where table_name = 'webhook_endpoints' and record_id = tests.fx('ep_all')::text and action = 'update' and new_values ? 'rotated_at'
     and strpos(new_values::text || coalesce(old_values::text, ''), 'whsec_') > 0),
  0,
  'the audit row holds no secret'
);
select tests.act_as('admin_w');
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_all'), interval '8 days')$$,
  '22023', 'the overlap is 0 to 7 days',
  'a refused rotation changes nothing'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.audit_log
   where table_name = 'webhook_endpoints' and record_id = tests.fx('ep_all')::text and action = 'update' and new_values ? 'rotated_at'),
  1,
  'and leaves no audit row'
);

select * from finish();
rollback;
