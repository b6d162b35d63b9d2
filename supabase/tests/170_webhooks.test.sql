-- Outbound webhooks (20261123000800_webhooks.sql): admins manage endpoints
-- (secrets shown once, kept only in private); each event fans out to one
-- delivery per enabled, subscribed endpoint; the dispatcher (service role)
-- claims due deliveries under a lease and records every attempt, which
-- decides the next step on the Standard Webhooks retry schedule; endpoints
-- are disabled on 410 Gone or after 5 days of failures; new deliveries wake
-- the dispatcher through pg_net (throttled), pg_cron does every 10 seconds;
-- endpoint changes are audited, secrets never.
--
-- now() is fixed for the whole transaction, so the dispatcher's clock is
-- simulated by passing claimed_at / started_at / recorded_at explicitly.
begin;
create extension if not exists pgtap with schema extensions;

select plan(176);

-- ---------------------------------------------------------------------------
-- Fixtures. Org A has one member of each role, org B only its owner (our
-- outsider). Ids (users, orgs, endpoints, events, deliveries) are named
-- fixtures (tests.remember / tests.fx, in 010_test_helpers), which every role
-- may read, so the SQL strings handed to pgTAP can use them whatever the
-- current role. The expected error messages make sure a 42501 comes from the
-- code under test, not from these helpers.
-- ---------------------------------------------------------------------------

create temp table secrets (label text primary key, secret text not null);
grant all on secrets to public;
-- What claim_webhook_deliveries returned, per round.
create temp table claims (
  round text not null,
  delivery_id uuid not null,
  attempt_number integer,
  message_id text,
  endpoint_id uuid,
  url text,
  secrets text[],
  body text
);
grant all on claims to public;
create temp table marks (label text primary key, n bigint not null);
grant all on marks to public;
create temp table snapshots (label text primary key, value jsonb not null);
grant all on snapshots to public;

create function pg_temp.secret(label text)
returns text
language sql
stable
as $$ select s.secret from secrets s where s.label = $1 $$;
grant execute on function pg_temp.secret(text) to public;

-- Creates an endpoint as the current user and keeps its id and secret.
create function pg_temp.create_endpoint(label text, org text, url text, description text, event_types text[])
returns void
language plpgsql
as $$
declare
  created record;
begin
  select * into created from private.create_webhook_endpoint(tests.fx(org), url, description, event_types);
  perform tests.remember(label, created.endpoint_id);
  insert into secrets values (label, created.secret);
end;
$$;
grant execute on function pg_temp.create_endpoint(text, text, text, text, text[]) to public;

-- Emits an event as the current role (the service role in these tests) and keeps its id.
create function pg_temp.emit(label text, org text, type text, payload jsonb)
returns void
language sql
as $$ select tests.remember(label, private.emit_event(tests.fx(org), type, payload)) $$;
grant execute on function pg_temp.emit(text, text, text, jsonb) to public;

-- Names the delivery of an event to an endpoint.
create function pg_temp.name_delivery(label text, event text, endpoint text)
returns void
language sql
as $$
  select tests.remember(label, d.id) from public.webhook_deliveries d
  where d.event_id = tests.fx(event) and d.endpoint_id = tests.fx(endpoint) and d.replay_of is null;
$$;

-- Puts a delivery in the state a claim leaves it in (run as postgres), to
-- test record_webhook_attempt without claiming everything else that is due.
create function pg_temp.in_flight(label text, endpoint text, event text, attempt integer)
returns void
language plpgsql
as $$
declare
  created uuid;
begin
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at, locked_until)
  select e.org_id, e.id, tests.fx(event), 'sending', attempt, now(), now() + interval '60 seconds'
  from public.webhook_endpoints e where e.id = tests.fx(endpoint)
  returning id into created;
  perform tests.remember(label, created);
end;
$$;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@webhooks.test')),
  ('admin_a', tests.create_user('admin-a@webhooks.test')),
  ('member_a', tests.create_user('member-a@webhooks.test')),
  ('viewer_a', tests.create_user('viewer-a@webhooks.test')),
  ('owner_b', tests.create_user('owner-b@webhooks.test'));
select tests.remember('org_a', tests.create_org('webhooks-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('webhooks-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- No dispatcher secrets until the wake-up tests create them (another file
-- or a developer may have stored some), so new deliveries queue nothing
-- before then. Rolled back with the rest.
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Creating endpoints
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$select pg_temp.create_endpoint('ep_all', 'org_a', 'https://hooks.example.com/all', 'Everything', null)$$,
  'create_webhook_endpoint: an admin creates an endpoint for every event type'
);
select matches(pg_temp.secret('ep_all'), '^whsec_[A-Za-z0-9+/]{43}=$',
  'create_webhook_endpoint: the secret is whsec_ and 32 random bytes in base64');
select lives_ok(
  $$select pg_temp.create_endpoint('ep_docs', 'org_a', 'https://hooks.example.com/docs', null,
      array['member.joined', 'document.ready', 'member.joined'])$$,
  'create_webhook_endpoint: an admin creates an endpoint with an event filter'
);
select isnt(pg_temp.secret('ep_docs'), pg_temp.secret('ep_all'), 'create_webhook_endpoint: every endpoint gets its own secret');
-- The endpoints the later sections use, each with its own filter so that
-- the events of one section do not reach the endpoints of another.
select lives_ok(
  $$select pg_temp.create_endpoint('ep_calls', 'org_a', 'https://hooks.example.com/calls', 'Calls', array['call.started']),
           pg_temp.create_endpoint('ep_off', 'org_a', 'http://hooks.example.com:8080/off', 'Paused', null),
           pg_temp.create_endpoint('ep_gone', 'org_a', 'https://gone.example.com/hook', 'Gone', array['appointment.created']),
           pg_temp.create_endpoint('ep_flaky', 'org_a', 'https://flaky.example.com/hook', 'Flaky', array['appointment.canceled']),
           pg_temp.create_endpoint('ep_sched', 'org_a', 'https://hooks.example.com/sched', 'Retries', array['calendar.connection_broken']),
           pg_temp.create_endpoint('ep_long', 'org_a', 'https://example.com/' || repeat('a', 2028), 'Long URL', array['calendar.connection_broken'])$$,
  'create_webhook_endpoint: http and https URLs with a port, a path, and 2048 characters in all are accepted'
);
select tests.act_as('owner_b');
select lives_ok(
  $$select pg_temp.create_endpoint('ep_b', 'org_b', 'https://b.example.com/hook', 'B', null)$$,
  'create_webhook_endpoint: the owner of org B creates an endpoint in org B'
);

-- What is stored (read as postgres, past RLS).
select tests.act_as('postgres');
select results_eq(
  $$select org_id, url, description, event_types, enabled, disabled_reason, disabled_at, failing_since, created_by
    from public.webhook_endpoints where id = tests.fx('ep_docs')$$,
  $$values (tests.fx('org_a'), 'https://hooks.example.com/docs', '', array['document.ready', 'member.joined'], true,
            null::text, null::timestamptz, null::timestamptz, tests.fx('admin_a'))$$,
  'create_webhook_endpoint: the filter is de-duplicated and sorted, a null description is empty, the admin is the creator'
);
select is(
  (select event_types from public.webhook_endpoints where id = tests.fx('ep_all')),
  '{}'::text[],
  'create_webhook_endpoint: no filter is stored as an empty list (every event type)'
);
select results_eq(
  $$select secret, expires_at from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_all')$$,
  $$select pg_temp.secret('ep_all'), null::timestamptz$$,
  'create_webhook_endpoint: the returned secret is stored in private.webhook_endpoint_secrets, without expiry'
);
select is_empty(
  $$select table_name || '.' || column_name from information_schema.columns
    where table_schema = 'public' and table_name like 'webhook%' and column_name like '%secret%'$$,
  'no public webhook table has a column for secrets'
);
select is_empty(
  $$select e.id from public.webhook_endpoints e, secrets s where strpos(to_jsonb(e)::text, s.secret) > 0$$,
  'no endpoint row holds a secret'
);

-- ---------------------------------------------------------------------------
-- What create_webhook_endpoint refuses
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into marks select 'endpoints in A', count(*) from public.webhook_endpoints where org_id = tests.fx('org_a');

select tests.act_as('admin_a');
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/x', '', array['document.ready', 'document.exploded'])$$,
  '22023', 'unknown event type(s): document.exploded',
  'create_webhook_endpoint: an unknown event type in the filter is refused'
);
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/x', '', array['document.ready', null])$$,
  '22023', 'unknown event type(s): null',
  'create_webhook_endpoint: a null in the filter is refused'
);
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'ftp://hooks.example.com/x', '', null)$$,
  '23514', 'new row for relation "webhook_endpoints" violates check constraint "webhook_endpoints_url_format"',
  'create_webhook_endpoint: an ftp:// URL is refused'
);
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https:///no-host', '', null)$$,
  '23514', 'new row for relation "webhook_endpoints" violates check constraint "webhook_endpoints_url_format"',
  'create_webhook_endpoint: a URL without a host is refused'
);
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://user:pass@hooks.example.com/x', '', null)$$,
  '23514', 'new row for relation "webhook_endpoints" violates check constraint "webhook_endpoints_url_format"',
  'create_webhook_endpoint: a URL with credentials is refused'
);
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://example.com/' || repeat('a', 2029), '', null)$$,
  '23514', 'new row for relation "webhook_endpoints" violates check constraint "webhook_endpoints_url_format"',
  'create_webhook_endpoint: a URL of 2049 characters is refused'
);
select tests.act_as('member_a');
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/x', '', null)$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'create_webhook_endpoint: a member cannot create an endpoint'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/x', '', null)$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'create_webhook_endpoint: the owner of another org cannot create an endpoint in org A'
);
select tests.act_as('anon');
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/x', '', null)$$,
  '42501', 'permission denied for function create_webhook_endpoint',
  'create_webhook_endpoint: anon may not even execute it'
);
-- Endpoints are changed only through the functions.
select tests.act_as('admin_a');
select throws_ok(
  $$insert into public.webhook_endpoints (org_id, url) values (tests.fx('org_a'), 'https://hooks.example.com/direct')$$,
  '42501', 'permission denied for table webhook_endpoints',
  'an admin cannot insert endpoint rows directly'
);
select throws_ok(
  $$update public.webhook_endpoints set url = 'https://evil.example.com/' where org_id = tests.fx('org_a')$$,
  '42501', 'permission denied for table webhook_endpoints',
  'an admin cannot update endpoint rows directly'
);
select throws_ok(
  $$select * from private.webhook_endpoint_secrets$$,
  '42501', 'permission denied for table webhook_endpoint_secrets',
  'an admin cannot read private.webhook_endpoint_secrets'
);
select tests.act_as('postgres');
select is(
  (select count(*) from public.webhook_endpoints where org_id = tests.fx('org_a')),
  (select n from marks where label = 'endpoints in A'),
  'create_webhook_endpoint: none of the refused calls left an endpoint behind'
);

-- ---------------------------------------------------------------------------
-- Reading endpoints: members and up of the org, never the secrets
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select set_eq(
  $$select id from public.webhook_endpoints$$,
  $$select id from tests.fixtures where name in ('ep_all', 'ep_docs', 'ep_calls', 'ep_off', 'ep_gone', 'ep_flaky', 'ep_sched', 'ep_long')$$,
  'a member reads exactly org A''s endpoints'
);
select tests.act_as('viewer_a');
select is_empty($$select id from public.webhook_endpoints$$, 'a viewer reads no endpoints (webhooks.read is member and up)');
select tests.act_as('owner_b');
select set_eq($$select id from public.webhook_endpoints$$, $$select tests.fx('ep_b')$$,
  'the owner of org B reads only org B''s endpoint');

-- Pause ep_off before any event: it must receive nothing.
select tests.act_as('admin_a');
select lives_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_off'), null, null, null, false)$$,
  'update_webhook_endpoint: an admin disables an endpoint'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = tests.fx('ep_off')$$,
  $$values (false, 'disabled by an admin', now())$$,
  'update_webhook_endpoint: disabling records the reason and the time'
);

-- ---------------------------------------------------------------------------
-- Fan-out: one pending delivery per enabled endpoint of the org whose filter
-- is empty or includes the type.
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.emit('ev_doc', 'org_a', 'document.ready',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "Handbook.pdf", "pages": 3}');
select pg_temp.emit('ev_call', 'org_a', 'call.started',
  '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ac", "direction": "inbound"}');
select pg_temp.emit('ev_test', 'org_a', 'webhook.test',
  jsonb_build_object('endpoint_id', tests.fx('ep_all'), 'message', 'hello'));
select pg_temp.emit('ev_b', 'org_b', 'document.ready',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ad", "name": "B.pdf"}');

select tests.act_as('postgres');
select set_eq(
  $$select endpoint_id from public.webhook_deliveries where event_id = tests.fx('ev_doc')$$,
  $$select id from tests.fixtures where name in ('ep_all', 'ep_docs')$$,
  'fan-out: document.ready reaches the unfiltered endpoint and the one subscribed to it, not the paused one, not call-only ones, not org B''s'
);
select set_eq(
  $$select endpoint_id from public.webhook_deliveries where event_id = tests.fx('ev_call')$$,
  $$select id from tests.fixtures where name in ('ep_all', 'ep_calls')$$,
  'fan-out: call.started reaches the unfiltered endpoint and the call endpoint only'
);
select is_empty(
  $$select id from public.webhook_deliveries where event_id = tests.fx('ev_test')$$,
  'fan-out: a webhook.test event reaches no endpoint by fan-out, not even unfiltered ones'
);
select set_eq(
  $$select endpoint_id from public.webhook_deliveries where event_id = tests.fx('ev_b')$$,
  $$select tests.fx('ep_b')$$,
  'fan-out: an event of org B reaches org B''s endpoint only'
);
select pg_temp.name_delivery('d_all_doc', 'ev_doc', 'ep_all');
select pg_temp.name_delivery('d_docs_doc', 'ev_doc', 'ep_docs');
select pg_temp.name_delivery('d_all_call', 'ev_call', 'ep_all');
select pg_temp.name_delivery('d_calls_call', 'ev_call', 'ep_calls');
select pg_temp.name_delivery('d_b', 'ev_b', 'ep_b');
select results_eq(
  $$select org_id, status, attempt_count, next_attempt_at, locked_until, last_attempt_at, replay_of
    from public.webhook_deliveries where event_id = tests.fx('ev_doc') order by id$$,
  $$values (tests.fx('org_a'), 'pending', 0, now(), null::timestamptz, null::timestamptz, null::uuid),
           (tests.fx('org_a'), 'pending', 0, now(), null::timestamptz, null::timestamptz, null::uuid)$$,
  'fan-out: each delivery starts pending, in the event''s org, due at once, never tried'
);

-- Reading deliveries: members and up of the org.
select tests.act_as('member_a');
select set_eq(
  $$select id from public.webhook_deliveries$$,
  $$select id from tests.fixtures where name in ('d_all_doc', 'd_docs_doc', 'd_all_call', 'd_calls_call')$$,
  'a member reads exactly org A''s deliveries'
);
select tests.act_as('viewer_a');
select is_empty($$select id from public.webhook_deliveries$$, 'a viewer reads no deliveries');
select tests.act_as('owner_b');
select set_eq($$select id from public.webhook_deliveries$$, $$select tests.fx('d_b')$$,
  'the owner of org B reads only org B''s delivery');

-- ---------------------------------------------------------------------------
-- claim_webhook_deliveries: the service role only
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
-- ep_calls' delivery is due in an hour (as after a failed attempt) ...
update public.webhook_deliveries set next_attempt_at = now() + interval '1 hour' where id = tests.fx('d_calls_call');
-- ... and a pending delivery sits on the paused endpoint (as when a delivery
-- is created while an admin pauses the endpoint).
insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
values (tests.fx('org_a'), tests.fx('ep_off'), tests.fx('ev_doc'));
select pg_temp.name_delivery('d_off', 'ev_doc', 'ep_off');

select tests.act_as('admin_a');
select throws_ok(
  $$select * from private.claim_webhook_deliveries(20, interval '60 seconds', now())$$,
  '42501', 'permission denied for function claim_webhook_deliveries',
  'claim_webhook_deliveries: an admin (authenticated) may not execute it'
);
select tests.act_as('anon');
select throws_ok(
  $$select * from private.claim_webhook_deliveries(20, interval '60 seconds', now())$$,
  '42501', 'permission denied for function claim_webhook_deliveries',
  'claim_webhook_deliveries: anon may not execute it'
);

select tests.act_as('service_role');
select lives_ok(
  $$insert into claims select 'first', c.* from private.claim_webhook_deliveries(500, interval '90 seconds', now()) c$$,
  'claim_webhook_deliveries: the service role claims'
);
select set_eq(
  $$select delivery_id from claims where round = 'first' and delivery_id in (select id from tests.fixtures)$$,
  $$select id from tests.fixtures where name in ('d_all_doc', 'd_docs_doc', 'd_all_call', 'd_b')$$,
  'claim_webhook_deliveries: returns the due deliveries (of every org), not the one due later, not the paused endpoint''s'
);

select tests.act_as('postgres');
select results_eq(
  $$select id, status, attempt_count, locked_until from public.webhook_deliveries
    where id in (select id from tests.fixtures where name in ('d_all_doc', 'd_docs_doc', 'd_all_call', 'd_b')) order by id$$,
  $$select id, 'sending', 1, now() + interval '90 seconds' from tests.fixtures
    where name in ('d_all_doc', 'd_docs_doc', 'd_all_call', 'd_b') order by id$$,
  'claim_webhook_deliveries: claimed deliveries are sending, on attempt 1, leased until claimed_at + lease'
);
select results_eq(
  $$select id, status, attempt_count, locked_until from public.webhook_deliveries
    where id in (tests.fx('d_calls_call'), tests.fx('d_off')) order by id$$,
  $$select id, 'pending', 0, null::timestamptz from tests.fixtures where name in ('d_calls_call', 'd_off') order by id$$,
  'claim_webhook_deliveries: the delivery due later and the paused endpoint''s delivery are left pending'
);
select results_eq(
  $$select attempt_number, message_id, endpoint_id, url, secrets from claims
    where round = 'first' and delivery_id = tests.fx('d_all_doc')$$,
  $$select 1, 'msg_' || replace(tests.fx('ev_doc')::text, '-', ''), tests.fx('ep_all'),
           'https://hooks.example.com/all', array[pg_temp.secret('ep_all')]$$,
  'claim_webhook_deliveries: the attempt number, msg_ + the event id without dashes, the endpoint, its URL and its secret'
);
select is(
  (select message_id from claims where round = 'first' and delivery_id = tests.fx('d_docs_doc')),
  (select message_id from claims where round = 'first' and delivery_id = tests.fx('d_all_doc')),
  'claim_webhook_deliveries: both endpoints get the event under the same message id'
);
select is(
  (select body::jsonb from claims where round = 'first' and delivery_id = tests.fx('d_all_doc')),
  (select jsonb_build_object(
            'type', 'document.ready',
            'timestamp', to_char(e.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'data', e.payload)
   from public.events e where e.id = tests.fx('ev_doc')),
  'claim_webhook_deliveries: the body is {type, timestamp, data} with the event''s payload as data'
);
select matches(
  (select body::jsonb ->> 'timestamp' from claims where round = 'first' and delivery_id = tests.fx('d_all_doc')),
  '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$',
  'claim_webhook_deliveries: the timestamp is UTC RFC 3339 with milliseconds'
);

select tests.act_as('service_role');
select is_empty(
  $$select delivery_id from private.claim_webhook_deliveries(500, interval '90 seconds', now())
    where delivery_id in (select id from tests.fixtures)$$,
  'claim_webhook_deliveries: a second claim at the same time gets none of them (already claimed)'
);
select is_empty(
  $$select delivery_id from private.claim_webhook_deliveries(500, interval '90 seconds', now() + interval '89 seconds')
    where delivery_id in (select id from tests.fixtures)$$,
  'claim_webhook_deliveries: nor a claim just before the lease runs out'
);
select lives_ok(
  $$insert into claims select 'after lease', c.*
    from private.claim_webhook_deliveries(500, interval '90 seconds', now() + interval '91 seconds') c$$,
  'claim_webhook_deliveries: the service role claims again once the lease has run out'
);
select results_eq(
  $$select delivery_id, attempt_number from claims
    where round = 'after lease' and delivery_id in (select id from tests.fixtures) order by delivery_id$$,
  $$select id, 2 from tests.fixtures where name in ('d_all_doc', 'd_docs_doc', 'd_all_call', 'd_b') order by id$$,
  'claim_webhook_deliveries: a delivery whose worker let the lease expire is claimed again, as attempt 2'
);
-- Due exactly at claimed_at (next_attempt_at <= claimed_at).
select results_eq(
  $$select delivery_id, attempt_number from private.claim_webhook_deliveries(500, interval '60 seconds', now() + interval '1 hour')
    where delivery_id in (tests.fx('d_calls_call'), tests.fx('d_off'))$$,
  $$select tests.fx('d_calls_call'), 1$$,
  'claim_webhook_deliveries: a delivery is claimed once its time has come; the paused endpoint''s never'
);
select throws_ok(
  $$select * from private.claim_webhook_deliveries(0, interval '60 seconds', now())$$,
  '22023', 'batch_size must be between 1 and 500',
  'claim_webhook_deliveries: a batch of 0 is refused'
);
select throws_ok(
  $$select * from private.claim_webhook_deliveries(501, interval '60 seconds', now())$$,
  '22023', 'batch_size must be between 1 and 500',
  'claim_webhook_deliveries: a batch of 501 is refused'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, attempt_count from public.webhook_deliveries where id = tests.fx('d_off')$$,
  $$values ('pending', 0)$$,
  'claim_webhook_deliveries: the paused endpoint''s delivery was never claimed'
);

-- ---------------------------------------------------------------------------
-- record_webhook_attempt: the service role only; it decides what comes next
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$select private.record_webhook_attempt(tests.fx('d_all_doc'), 3, now(), 10, 200, null, null)$$,
  '42501', 'permission denied for function record_webhook_attempt',
  'record_webhook_attempt: an admin (authenticated) may not execute it'
);

-- Success (d_all_doc is on attempt 3 after the claims above), clearing the
-- endpoint's run of failures.
select tests.act_as('postgres');
update public.webhook_endpoints set failing_since = now() - interval '1 hour' where id = tests.fx('ep_all');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_all_doc'), 3, now() + interval '1 hour', 120, 204, null, 'ok',
                                 null, now() + interval '1 hour 1 second'),
  'succeeded',
  'record_webhook_attempt: a 2xx answer is a success'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, next_attempt_at, locked_until, last_attempt_at, last_status_code
    from public.webhook_deliveries where id = tests.fx('d_all_doc')$$,
  $$values ('succeeded', null::timestamptz, null::timestamptz, now() + interval '1 hour', 204)$$,
  'record_webhook_attempt: a succeeded delivery is done: no next attempt, no lease, the last attempt noted'
);
select is(
  (select failing_since from public.webhook_endpoints where id = tests.fx('ep_all')),
  null,
  'record_webhook_attempt: a success clears the endpoint''s failing_since'
);
select results_eq(
  $$select attempt_number, url, started_at, duration_ms, status_code, outcome, error, response_body, org_id, endpoint_id
    from public.webhook_attempts where delivery_id = tests.fx('d_all_doc')$$,
  $$values (3, 'https://hooks.example.com/all', now() + interval '1 hour', 120, 204, 'succeeded', null::text, 'ok',
            tests.fx('org_a'), tests.fx('ep_all'))$$,
  'record_webhook_attempt: the attempt is recorded with its number, URL, timing, status and outcome'
);

-- The retry schedule: ten deliveries in flight on attempts 1 to 10, each
-- answered 500 at the same time.
select tests.act_as('postgres');
create temp table sched (n integer primary key);
grant all on sched to public;
insert into sched select generate_series(1, 10);
select pg_temp.in_flight('sched_' || n, 'ep_sched', 'ev_doc', n) from sched order by n;
create temp table sched_out (n integer primary key, result text);
grant all on sched_out to public;

select tests.act_as('service_role');
insert into sched_out
select n, private.record_webhook_attempt(
  tests.fx('sched_' || n), n, now(), case when n = 10 then -5 else 250 end, 500,
  repeat('e', 1500), repeat('r', 5000), null, now() + interval '1 minute')
from sched order by n;

select tests.act_as('postgres');
-- next_attempt_at - recorded_at must be the delay of attempt n + 1, ±10% jitter.
select ok(
  o.result = 'pending' and d.status = 'pending'
  and extract(epoch from d.next_attempt_at - (now() + interval '1 minute'))
      between 0.9 * (array[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400])[o.n + 1]
          and 1.1 * (array[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400])[o.n + 1],
  format('record_webhook_attempt: a 500 on attempt %s is retried %s s later (±10%%)',
         o.n, (array[0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400])[o.n + 1])
)
from (select * from sched_out where n <= 9 order by n) o
join public.webhook_deliveries d on d.id = tests.fx('sched_' || o.n)
order by o.n;
select ok(
  (select bool_and(d.locked_until is null and d.last_status_code = 500 and d.last_attempt_at = now())
   from sched s join public.webhook_deliveries d on d.id = tests.fx('sched_' || s.n)),
  'record_webhook_attempt: every recorded delivery drops its lease and notes the last attempt'
);
select results_eq(
  $$select o.result, d.status, d.next_attempt_at from sched_out o join public.webhook_deliveries d on d.id = tests.fx('sched_10')
    where o.n = 10$$,
  $$values ('failed', 'failed', null::timestamptz)$$,
  'record_webhook_attempt: the 10th failed attempt is the last: the delivery failed'
);
select is(
  (select failing_since from public.webhook_endpoints where id = tests.fx('ep_sched')),
  now(),
  'record_webhook_attempt: a failure starts the endpoint''s failing_since at the attempt''s start'
);
select results_eq(
  $$select a.attempt_number, a.outcome, a.status_code, length(a.error), length(a.response_body), a.duration_ms, a.url, a.started_at
    from sched s join public.webhook_attempts a on a.delivery_id = tests.fx('sched_' || s.n) order by s.n$$,
  $$select n, 'failed', 500, 1000, 4096, case when n = 10 then 0 else 250 end, 'https://hooks.example.com/sched', now()
    from sched order by n$$,
  'record_webhook_attempt: one attempt row per call, with the error capped at 1000 and the body at 4096 characters (and no negative duration)'
);

-- Retry-After on 429 and 503, capped at a day; ignored on other codes.
select tests.act_as('postgres');
select pg_temp.in_flight('d_429', 'ep_sched', 'ev_doc', 1);
select pg_temp.in_flight('d_503', 'ep_sched', 'ev_doc', 1);
select pg_temp.in_flight('d_500_retry_after', 'ep_sched', 'ev_doc', 1);
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_429'), 1, now(), 10, 429, null, 'slow down', 3600, now()),
  'pending',
  'record_webhook_attempt: a 429 is retried'
);
select is(
  private.record_webhook_attempt(tests.fx('d_503'), 1, now(), 10, 503, null, null, 1000000, now()),
  'pending',
  'record_webhook_attempt: a 503 is retried'
);
select is(
  private.record_webhook_attempt(tests.fx('d_500_retry_after'), 1, now(), 10, 500, null, null, 3600, now()),
  'pending',
  'record_webhook_attempt: a 500 is retried'
);
select tests.act_as('postgres');
select cmp_ok(
  (select next_attempt_at from public.webhook_deliveries where id = tests.fx('d_429')),
  '>=', now() + interval '3600 seconds',
  'record_webhook_attempt: a 429 with Retry-After 3600 after attempt 1 waits at least 3600 s (not 5 s)'
);
select is(
  (select next_attempt_at from public.webhook_deliveries where id = tests.fx('d_503')),
  now() + interval '86400 seconds',
  'record_webhook_attempt: Retry-After is capped at a day'
);
select cmp_ok(
  (select next_attempt_at from public.webhook_deliveries where id = tests.fx('d_500_retry_after')),
  '<', now() + interval '10 seconds',
  'record_webhook_attempt: Retry-After is ignored on a 500'
);

-- A stale report: the worker's lease ran out and the delivery moved on to
-- attempt 2; the late report of attempt 1 is kept as an attempt row but
-- changes nothing.
select pg_temp.in_flight('d_stale', 'ep_sched', 'ev_doc', 2);
insert into snapshots select 'd_stale', to_jsonb(d) from public.webhook_deliveries d where d.id = tests.fx('d_stale');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_stale'), 1, now(), 10, 500, 'timeout', null, null, now()),
  'stale',
  'record_webhook_attempt: a report for an attempt the delivery has moved past is stale'
);
select is(
  private.record_webhook_attempt(tests.fx('d_all_doc'), 4, now() + interval '2 hours', 10, 500, null, null, null,
                                 now() + interval '2 hours'),
  'stale',
  'record_webhook_attempt: a report for a delivery that is no longer sending is stale'
);
select tests.act_as('postgres');
select is(
  (select to_jsonb(d) from public.webhook_deliveries d where d.id = tests.fx('d_stale')),
  (select value from snapshots where label = 'd_stale'),
  'record_webhook_attempt: a stale report leaves the delivery exactly as it was'
);
select is(
  (select status from public.webhook_deliveries where id = tests.fx('d_all_doc')),
  'succeeded',
  'record_webhook_attempt: a late failure does not undo a success'
);
select results_eq(
  $$select attempt_number, outcome, error from public.webhook_attempts where delivery_id = tests.fx('d_stale')$$,
  $$values (1, 'failed', 'timeout')$$,
  'record_webhook_attempt: the stale attempt itself is still recorded'
);
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(gen_random_uuid(), 1, now(), 10, 200, null, null),
  'gone',
  'record_webhook_attempt: a report for an unknown (e.g. deleted) delivery is gone'
);

-- 410 Gone: the delivery fails, the endpoint is disabled and what it still
-- had queued is canceled.
select pg_temp.emit('ev_appt1', 'org_a', 'appointment.created',
  '{"appointment_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789b1", "starts_at": "2026-12-01T09:00:00Z", "ends_at": "2026-12-01T09:30:00Z"}');
select pg_temp.emit('ev_appt2', 'org_a', 'appointment.created',
  '{"appointment_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789b2", "starts_at": "2026-12-02T09:00:00Z", "ends_at": "2026-12-02T09:30:00Z"}');
select tests.act_as('postgres');
select pg_temp.name_delivery('d_gone1', 'ev_appt1', 'ep_gone');
select pg_temp.name_delivery('d_gone2', 'ev_appt2', 'ep_gone');
-- (as a claim would leave it)
update public.webhook_deliveries set status = 'sending', attempt_count = 1, locked_until = now() + interval '60 seconds'
where id = tests.fx('d_gone1');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_gone1'), 1, now(), 10, 410, null, null, null, now() + interval '5 seconds'),
  'failed',
  'record_webhook_attempt: a 410 Gone fails the delivery at once'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = tests.fx('ep_gone')$$,
  $$values (false, 'the endpoint answered 410 Gone', now() + interval '5 seconds')$$,
  'record_webhook_attempt: a 410 disables the endpoint, with the reason and the time'
);
select results_eq(
  $$select id, status, next_attempt_at from public.webhook_deliveries
    where id in (tests.fx('d_gone1'), tests.fx('d_gone2')) order by status$$,
  $$values (tests.fx('d_gone2'), 'canceled', null::timestamptz), (tests.fx('d_gone1'), 'failed', null::timestamptz)$$,
  'record_webhook_attempt: the endpoint''s other pending delivery is canceled'
);
select is(
  (select status from public.webhook_deliveries
   where event_id = tests.fx('ev_appt2') and endpoint_id = tests.fx('ep_all')),
  'pending',
  'record_webhook_attempt: the same event''s delivery to another endpoint is untouched'
);

-- Five days of failures disable the endpoint; four do not.
select pg_temp.emit('ev_cancel', 'org_a', 'appointment.canceled', '{"appointment_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789b3"}');
select tests.act_as('postgres');
select pg_temp.name_delivery('d_flaky', 'ev_cancel', 'ep_flaky');
update public.webhook_deliveries set status = 'sending', attempt_count = 3, locked_until = now() + interval '60 seconds'
where id = tests.fx('d_flaky');
update public.webhook_endpoints set failing_since = now() - interval '4 days' where id = tests.fx('ep_flaky');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_flaky'), 3, now(), 10, 500, null, null, null, now()),
  'pending',
  'record_webhook_attempt: an endpoint failing for 4 days is still retried'
);
select tests.act_as('postgres');
select is(
  (select failing_since from public.webhook_endpoints where id = tests.fx('ep_flaky')),
  now() - interval '4 days',
  'record_webhook_attempt: a further failure keeps the start of the run'
);
update public.webhook_deliveries set status = 'sending', attempt_count = 4, locked_until = now() + interval '60 seconds'
where id = tests.fx('d_flaky');
update public.webhook_endpoints set failing_since = now() - interval '5 days 1 minute' where id = tests.fx('ep_flaky');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_flaky'), 4, now(), 10, 500, null, null, null, now()),
  'failed',
  'record_webhook_attempt: a failure after 5 days of failing fails the delivery'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = tests.fx('ep_flaky')$$,
  $$values (false, 'failing continuously for 5 days', now())$$,
  'record_webhook_attempt: an endpoint failing continuously for 5 days is disabled'
);

-- ---------------------------------------------------------------------------
-- update_webhook_endpoint
-- ---------------------------------------------------------------------------

-- A second call to ep_calls, still pending, for the disabling test.
select tests.act_as('service_role');
select pg_temp.emit('ev_call2', 'org_a', 'call.started', '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ae", "direction": "outbound"}');
select tests.act_as('postgres');
select pg_temp.name_delivery('d_calls_call2', 'ev_call2', 'ep_calls');
insert into snapshots select 'ep_calls', to_jsonb(e) from public.webhook_endpoints e where e.id = tests.fx('ep_calls');

select tests.act_as('member_a');
select throws_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), 'https://evil.example.com/', null, null, null)$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'update_webhook_endpoint: a member cannot change an endpoint'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), 'https://evil.example.com/', null, null, null)$$,
  'P0002', 'webhook endpoint not found',
  'update_webhook_endpoint: the owner of another org cannot change org A''s endpoint, nor learn it exists (20261123008500)'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.update_webhook_endpoint(gen_random_uuid(), null, null, null, null)$$,
  'P0002', 'webhook endpoint not found',
  'update_webhook_endpoint: an unknown endpoint is P0002'
);
select throws_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), 'ftp://hooks.example.com/calls', null, null, null)$$,
  '23514', 'new row for relation "webhook_endpoints" violates check constraint "webhook_endpoints_url_format"',
  'update_webhook_endpoint: a bad URL is refused'
);
select throws_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), null, null, array['call.exploded'], null)$$,
  '22023', 'unknown event type(s): call.exploded',
  'update_webhook_endpoint: an unknown event type is refused'
);
select lives_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), null, null, null, null)$$,
  'update_webhook_endpoint: an admin calls it with nothing to change'
);
select tests.act_as('postgres');
select is(
  (select to_jsonb(e) from public.webhook_endpoints e where e.id = tests.fx('ep_calls')),
  (select value from snapshots where label = 'ep_calls'),
  'update_webhook_endpoint: null arguments keep every field (and the refused calls changed nothing)'
);
select tests.act_as('admin_a');
select results_eq(
  $$select url, description, event_types, enabled
    from private.update_webhook_endpoint(tests.fx('ep_calls'), null, 'Call events', array['call.started', 'call.ended', 'call.started'], null)$$,
  $$values ('https://hooks.example.com/calls', 'Call events', array['call.ended', 'call.started'], true)$$,
  'update_webhook_endpoint: changes the given fields only, de-duplicating and sorting the filter, and returns the row'
);
select is(
  (select event_types from private.update_webhook_endpoint(tests.fx('ep_calls'), null, null, '{}', null)),
  '{}'::text[],
  'update_webhook_endpoint: an empty filter subscribes to every event type'
);

select lives_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), null, null, null, false)$$,
  'update_webhook_endpoint: an admin disables an endpoint with pending deliveries'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = tests.fx('ep_calls')$$,
  $$values (false, 'disabled by an admin', now())$$,
  'update_webhook_endpoint: disabling sets disabled_reason and disabled_at'
);
select results_eq(
  $$select status, next_attempt_at from public.webhook_deliveries where id = tests.fx('d_calls_call2')$$,
  $$values ('canceled', null::timestamptz)$$,
  'update_webhook_endpoint: disabling cancels the endpoint''s pending deliveries'
);
update public.webhook_endpoints set failing_since = now() - interval '1 day' where id = tests.fx('ep_calls');
select tests.act_as('admin_a');
select lives_ok(
  $$select private.update_webhook_endpoint(tests.fx('ep_calls'), null, null, null, true)$$,
  'update_webhook_endpoint: an admin re-enables the endpoint'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at, failing_since from public.webhook_endpoints where id = tests.fx('ep_calls')$$,
  $$values (true, null::text, null::timestamptz, null::timestamptz)$$,
  'update_webhook_endpoint: re-enabling clears the reason, the time and the run of failures'
);
select is(
  (select status from public.webhook_deliveries where id = tests.fx('d_calls_call2')),
  'canceled',
  'update_webhook_endpoint: canceled deliveries stay canceled (replay them to resend)'
);

-- ---------------------------------------------------------------------------
-- rotate_webhook_secret: the old secret keeps signing during the overlap
-- ---------------------------------------------------------------------------

-- A fresh due delivery on ep_docs to claim during and after the overlap.
with d as (
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
  values (tests.fx('org_a'), tests.fx('ep_docs'), tests.fx('ev_doc'))
  returning id
)
select tests.remember('d_rot', id) from d;

select tests.act_as('member_a');
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_docs'), interval '1 day')$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'rotate_webhook_secret: a member cannot rotate'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_docs'), interval '1 day')$$,
  'P0002', 'webhook endpoint not found',
  'rotate_webhook_secret: the owner of another org cannot rotate org A''s secret, nor learn it exists (20261123008500)'
);
select tests.act_as('admin_a');
select lives_ok(
  $$insert into secrets select 'ep_docs_new', r.secret from private.rotate_webhook_secret(tests.fx('ep_docs'), interval '1 day') r$$,
  'rotate_webhook_secret: an admin rotates with a day of overlap'
);
select matches(pg_temp.secret('ep_docs_new'), '^whsec_[A-Za-z0-9+/]{43}=$', 'rotate_webhook_secret: the new secret has the same form');
select isnt(pg_temp.secret('ep_docs_new'), pg_temp.secret('ep_docs'), 'rotate_webhook_secret: the new secret differs from the old one');
select tests.act_as('postgres');
select ok(
  (select expires_at between now() + interval '1 day' and clock_timestamp() + interval '1 day'
   from private.webhook_endpoint_secrets where secret = pg_temp.secret('ep_docs')),
  'rotate_webhook_secret: the old secret expires after the overlap (now() + 1 day)'
);
select results_eq(
  $$select secret, expires_at from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_docs') order by id$$,
  $$select pg_temp.secret('ep_docs'), expires_at from private.webhook_endpoint_secrets where secret = pg_temp.secret('ep_docs')
    union all select pg_temp.secret('ep_docs_new'), null::timestamptz$$,
  'rotate_webhook_secret: the new secret is added, without expiry'
);
select tests.act_as('service_role');
select is(
  (select secrets from private.claim_webhook_deliveries(500, interval '60 seconds', now() + interval '12 hours')
   where delivery_id = tests.fx('d_rot')),
  array[pg_temp.secret('ep_docs_new'), pg_temp.secret('ep_docs')],
  'rotate_webhook_secret: during the overlap a claim signs with both secrets, newest first'
);
select is(
  (select secrets from private.claim_webhook_deliveries(500, interval '60 seconds', now() + interval '2 days')
   where delivery_id = tests.fx('d_rot')),
  array[pg_temp.secret('ep_docs_new')],
  'rotate_webhook_secret: after the overlap only the new secret signs'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_docs'), interval '-1 second')$$,
  '22023', 'the overlap is 0 to 7 days',
  'rotate_webhook_secret: a negative overlap is refused'
);
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_docs'), interval '7 days 1 second')$$,
  '22023', 'the overlap is 0 to 7 days',
  'rotate_webhook_secret: an overlap over 7 days is refused'
);
select throws_ok(
  $$select private.rotate_webhook_secret(tests.fx('ep_docs'), null)$$,
  '22023', 'the overlap is 0 to 7 days',
  'rotate_webhook_secret: a null overlap is refused'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_docs')),
  2,
  'rotate_webhook_secret: the refused rotations left the two secrets as they were'
);
-- Overlap 0, e.g. after a leak: the old secrets stop at once.
select tests.act_as('admin_a');
select lives_ok(
  $$insert into secrets select 'ep_docs_newest', r.secret from private.rotate_webhook_secret(tests.fx('ep_docs'), interval '0') r$$,
  'rotate_webhook_secret: an admin rotates without overlap'
);
select tests.act_as('postgres');
select results_eq(
  $$select secret from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_docs')$$,
  $$select pg_temp.secret('ep_docs_newest')$$,
  'rotate_webhook_secret: without overlap only the newest secret remains'
);

-- ---------------------------------------------------------------------------
-- replay_webhook_delivery and send_test_webhook
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select private.replay_webhook_delivery(tests.fx('d_all_doc'))$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'replay_webhook_delivery: a member cannot replay'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.replay_webhook_delivery(tests.fx('d_all_doc'))$$,
  'P0002', 'webhook endpoint not found',
  'replay_webhook_delivery: the owner of another org cannot replay org A''s delivery, nor learn it exists (20261123008500)'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.replay_webhook_delivery(gen_random_uuid())$$,
  'P0002', 'webhook delivery not found',
  'replay_webhook_delivery: an unknown delivery is P0002'
);
select throws_ok(
  $$select private.replay_webhook_delivery(tests.fx('d_gone1'))$$,
  '22023', 'the endpoint is disabled (the endpoint answered 410 Gone); enable it first',
  'replay_webhook_delivery: a delivery to a disabled endpoint cannot be replayed'
);
select lives_ok(
  $$select tests.remember('d_replay', private.replay_webhook_delivery(tests.fx('d_all_doc')))$$,
  'replay_webhook_delivery: an admin replays a delivery that succeeded'
);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at, replay_of
    from public.webhook_deliveries where id = tests.fx('d_replay')$$,
  $$values (tests.fx('org_a'), tests.fx('ep_all'), tests.fx('ev_doc'), 'pending', 0, now(), tests.fx('d_all_doc'))$$,
  'replay_webhook_delivery: a new pending delivery of the same event to the same endpoint, pointing at the original'
);
select is(
  (select status from public.webhook_deliveries where id = tests.fx('d_all_doc')),
  'succeeded',
  'replay_webhook_delivery: the original is left as it was'
);
select tests.act_as('service_role');
select is(
  (select message_id from private.claim_webhook_deliveries(500, interval '60 seconds', now() + interval '3 days')
   where delivery_id = tests.fx('d_replay')),
  'msg_' || replace(tests.fx('ev_doc')::text, '-', ''),
  'replay_webhook_delivery: the replay carries the original message id, so receivers can de-duplicate'
);

select tests.act_as('member_a');
select throws_ok(
  $$select private.send_test_webhook(tests.fx('ep_all'))$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'send_test_webhook: a member cannot send a test event'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.send_test_webhook(tests.fx('ep_all'))$$,
  'P0002', 'webhook endpoint not found',
  'send_test_webhook: the owner of another org cannot send to org A''s endpoint, nor learn it exists (20261123008500)'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.send_test_webhook(tests.fx('ep_gone'))$$,
  '22023', 'the endpoint is disabled (the endpoint answered 410 Gone); enable it first',
  'send_test_webhook: not to a disabled endpoint'
);
select lives_ok(
  $$select tests.remember('d_test', private.send_test_webhook(tests.fx('ep_calls')))$$,
  'send_test_webhook: an admin sends a test event to one endpoint'
);
select tests.act_as('postgres');
select results_eq(
  $$select e.org_id, e.type, e.payload ->> 'endpoint_id', d.endpoint_id, d.status
    from public.webhook_deliveries d join public.events e on e.id = d.event_id where d.id = tests.fx('d_test')$$,
  $$values (tests.fx('org_a'), 'webhook.test', tests.fx('ep_calls')::text, tests.fx('ep_calls'), 'pending')$$,
  'send_test_webhook: a webhook.test event of the org, naming the endpoint, with a pending delivery to it'
);
select is(
  (select count(*)::integer from public.webhook_deliveries
   where event_id = (select event_id from public.webhook_deliveries where id = tests.fx('d_test'))),
  1,
  'send_test_webhook: exactly one delivery, although other endpoints take every event type'
);

-- ---------------------------------------------------------------------------
-- delete_webhook_endpoint: the endpoint, its secrets, deliveries and attempts
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select throws_ok(
  $$select private.delete_webhook_endpoint(tests.fx('ep_sched'))$$,
  '42501', 'you do not have the webhooks.manage permission in this organization',
  'delete_webhook_endpoint: a member cannot delete an endpoint'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select private.delete_webhook_endpoint(tests.fx('ep_sched'))$$,
  'P0002', 'webhook endpoint not found',
  'delete_webhook_endpoint: the owner of another org cannot delete org A''s endpoint, nor learn it exists (20261123008500)'
);
select tests.act_as('postgres');
select ok(
  exists (select 1 from public.webhook_endpoints where id = tests.fx('ep_sched'))
  and exists (select 1 from public.webhook_attempts where endpoint_id = tests.fx('ep_sched')),
  'delete_webhook_endpoint: after the refusals the endpoint and its attempts are still there'
);
select tests.act_as('admin_a');
select lives_ok(
  $$select private.delete_webhook_endpoint(tests.fx('ep_sched'))$$,
  'delete_webhook_endpoint: an admin deletes an endpoint'
);
select tests.act_as('postgres');
select is_empty(
  $$select 'endpoint' from public.webhook_endpoints where id = tests.fx('ep_sched')
    union all select 'secret' from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_sched')
    union all select 'delivery' from public.webhook_deliveries where endpoint_id = tests.fx('ep_sched')
    union all select 'attempt' from public.webhook_attempts where endpoint_id = tests.fx('ep_sched')$$,
  'delete_webhook_endpoint: the endpoint, its secrets, its deliveries and its attempts are gone'
);
select isnt_empty(
  $$select 1 from public.events where id = tests.fx('ev_doc')$$,
  'delete_webhook_endpoint: the events stay'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.delete_webhook_endpoint(tests.fx('ep_sched'))$$,
  'P0002', 'webhook endpoint not found',
  'delete_webhook_endpoint: deleting it again is P0002'
);

-- ---------------------------------------------------------------------------
-- Attempts are readable by members and up of the org
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select isnt_empty(
  $$select id from public.webhook_attempts where delivery_id = tests.fx('d_all_doc')$$,
  'a member reads org A''s attempts'
);
select tests.act_as('viewer_a');
select is_empty($$select id from public.webhook_attempts$$, 'a viewer reads no attempts');
select tests.act_as('owner_b');
select is_empty($$select id from public.webhook_attempts$$, 'the owner of org B reads none of org A''s attempts');

-- ---------------------------------------------------------------------------
-- At most 20 endpoints per org (disabled ones count)
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into public.webhook_endpoints (org_id, url, created_by)
select tests.fx('org_a'), 'https://bulk.example.com/' || g, tests.fx('admin_a')
from generate_series(1, 20 - (select count(*)::integer from public.webhook_endpoints where org_id = tests.fx('org_a'))) g;
select is(
  (select count(*)::integer from public.webhook_endpoints where org_id = tests.fx('org_a')),
  20,
  'org A now has 20 endpoints'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/21', '', null)$$,
  '22023', 'an organization has at most 20 webhook endpoints',
  'create_webhook_endpoint: the 21st endpoint is refused'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from public.webhook_endpoints where org_id = tests.fx('org_a')),
  20,
  'create_webhook_endpoint: the refused call added nothing'
);
select tests.act_as('owner_b');
select lives_ok(
  $$select private.create_webhook_endpoint(tests.fx('org_b'), 'https://b.example.com/second', '', null)$$,
  'create_webhook_endpoint: the limit is per org: org B still creates endpoints'
);

-- ---------------------------------------------------------------------------
-- Waking the dispatcher: pg_net right after new deliveries (at most once a
-- second, only when Vault holds the dispatcher's URL and key), pg_cron every
-- 10 seconds.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
-- Other files (or a running stack) may have requested a dispatch recently.
update private.webhook_dispatch_requests set last_requested_at = '-infinity';
insert into marks select 'queue', coalesce(max(id), 0) from net.http_request_queue;

-- Without the Vault secrets: nothing is queued, the throttle is untouched.
select tests.act_as('service_role');
select pg_temp.emit('ev_wake0', 'org_a', 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789c0", "name": "w0"}');
select tests.act_as('postgres');
select isnt_empty(
  $$select 1 from public.webhook_deliveries where event_id = tests.fx('ev_wake0')$$,
  'dispatch: the event created deliveries ...'
);
select is_empty(
  $$select id from net.http_request_queue where id > (select n from marks where label = 'queue')$$,
  'dispatch: ... but without the project_url and service_role_key secrets nothing is queued'
);
select is(
  (select last_requested_at from private.webhook_dispatch_requests),
  '-infinity'::timestamptz,
  'dispatch: and the throttle is not consumed'
);

select vault.create_secret('http://127.0.0.1:54321', 'project_url');
select vault.create_secret('test-key', 'service_role_key');

select tests.act_as('service_role');
select pg_temp.emit('ev_wake1', 'org_a', 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789c1", "name": "w1"}');
select tests.act_as('postgres');
select results_eq(
  $$select method::text, url, headers ->> 'Authorization', headers ->> 'Content-Type', convert_from(body, 'UTF8')::jsonb
    from net.http_request_queue where id > (select n from marks where label = 'queue')$$,
  $$values ('POST', 'http://127.0.0.1:54321/functions/v1/webhook-dispatcher', 'Bearer test-key', 'application/json', '{}'::jsonb)$$,
  'dispatch: the new deliveries (one per endpoint, from one event) queue exactly one POST to the dispatcher, with the service key'
);
select ok(
  (select last_requested_at between now() and clock_timestamp() from private.webhook_dispatch_requests),
  'dispatch: the request time is kept for the throttle'
);
select tests.act_as('service_role');
select pg_temp.emit('ev_wake2', 'org_a', 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789c2", "name": "w2"}');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select n from marks where label = 'queue')),
  1,
  'dispatch: more deliveries within the same second queue no second request'
);
-- A second later, the next deliveries wake it again.
update private.webhook_dispatch_requests set last_requested_at = clock_timestamp() - interval '2 seconds';
select tests.act_as('service_role');
select pg_temp.emit('ev_wake3', 'org_a', 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789c3", "name": "w3"}');
select tests.act_as('postgres');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select n from marks where label = 'queue')),
  2,
  'dispatch: deliveries more than a second after the last request queue another one'
);
select results_eq(
  $$select schedule, command, active from cron.job where jobname = 'dispatch-webhooks'$$,
  $$values ('5 seconds', 'select private.request_webhook_dispatch()', true)$$,
  'dispatch: the cron job dispatch-webhooks checks every 5 seconds'
);

-- ---------------------------------------------------------------------------
-- Audit: endpoint changes are logged with the acting admin, secrets never
-- ---------------------------------------------------------------------------

select results_eq(
  $$select org_id, actor_user_id, new_values ->> 'url' from public.audit_log
    where table_name = 'webhook_endpoints' and action = 'insert' and record_id = tests.fx('ep_all')::text$$,
  $$values (tests.fx('org_a'), tests.fx('admin_a'), 'https://hooks.example.com/all')$$,
  'audit: creating an endpoint writes an insert row in the org, by the admin'
);
select isnt_empty(
  $$select 1 from public.audit_log
    where table_name = 'webhook_endpoints' and action = 'update' and record_id = tests.fx('ep_calls')::text
      and actor_user_id = tests.fx('admin_a') and new_values ->> 'description' = 'Call events'$$,
  'audit: changing an endpoint writes an update row with the change, by the admin'
);
select isnt_empty(
  $$select 1 from public.audit_log
    where table_name = 'webhook_endpoints' and action = 'update' and record_id = tests.fx('ep_gone')::text
      and new_values ->> 'disabled_reason' = 'the endpoint answered 410 Gone'$$,
  'audit: the dispatcher disabling an endpoint is logged too'
);
select isnt_empty(
  $$select 1 from public.audit_log
    where table_name = 'webhook_endpoints' and action = 'delete' and record_id = tests.fx('ep_sched')::text
      and actor_user_id = tests.fx('admin_a')$$,
  'audit: deleting an endpoint is logged'
);
select is_empty(
  $$select id from public.audit_log
    where org_id in (tests.fx('org_a'), tests.fx('org_b'))
      and (strpos(coalesce(old_values::text, '') || coalesce(new_values::text, ''), 'whsec_') > 0
           or exists (select 1 from secrets s
                      where strpos(coalesce(old_values::text, '') || coalesce(new_values::text, ''), substr(s.secret, 7)) > 0))$$,
  'audit: no audit row holds a secret (nor its random part)'
);

-- ---------------------------------------------------------------------------
-- Hardening: edge cases of the dispatch functions
-- ---------------------------------------------------------------------------

select tests.clear_authentication();
select tests.remember('owner_h', tests.create_user('owner-h@webhooks.test'));
select tests.remember('org_h', tests.create_org('webhooks-hardening', tests.fx('owner_h')));
select tests.remember('org_quiet', tests.create_org('webhooks-quiet', tests.fx('owner_h')));
with created as (
  insert into public.webhook_endpoints (org_id, url) values (tests.fx('org_h'), 'https://hooks.example.com/h') returning id
)
select tests.remember('ep_h', id) from created;
insert into private.webhook_endpoint_secrets (endpoint_id, secret)
values (tests.fx('ep_h'), 'whsec_' || encode(extensions.gen_random_bytes(32), 'base64'));

select tests.authenticate_as_service_role();
select throws_ok(
  $$select * from private.claim_webhook_deliveries(null)$$,
  '22023', 'batch_size must be between 1 and 500',
  'hardening: a null batch size is refused, not read as "no limit"'
);
select tests.clear_authentication();

-- An event no endpoint wants queues no wake-up request.
update private.webhook_dispatch_requests set last_requested_at = '-infinity';
insert into marks select 'quiet', coalesce(max(id), 0) from net.http_request_queue;
select private.emit_event(tests.fx('org_quiet'), 'document.failed',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789d1", "name": "q", "reason": "r"}');
select is(
  (select count(*)::integer from net.http_request_queue where id > (select n from marks where label = 'quiet')),
  0,
  'hardening: an event that queues no delivery does not wake the dispatcher'
);

-- The same attempt reported twice: the second report is stale, not an error.
select tests.remember('ev_h1', private.emit_event(tests.fx('org_h'), 'document.failed',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789d2", "name": "h1", "reason": "r"}'));
select tests.remember('dl_h1', d.id) from public.webhook_deliveries d where d.event_id = tests.fx('ev_h1');
update public.webhook_deliveries set status = 'sending', attempt_count = 1, locked_until = now() + interval '1 minute'
where id = tests.fx('dl_h1');
select tests.authenticate_as_service_role();
select is(
  private.record_webhook_attempt(tests.fx('dl_h1'), 1, now(), 10, 500, null, 'oops', null, now()),
  'pending',
  'hardening: the first report of attempt 1 schedules a retry'
);
select is(
  private.record_webhook_attempt(tests.fx('dl_h1'), 1, now(), 10, 500, null, 'oops', null, now()),
  'stale',
  'hardening: a second report of the same attempt is stale'
);
select tests.clear_authentication();
select is(
  (select count(*)::integer from public.webhook_attempts where delivery_id = tests.fx('dl_h1')),
  1,
  'hardening: and records no second attempt row'
);

-- Disabling an endpoint cancels deliveries in flight too; the late report is stale.
select tests.remember('ev_h2', private.emit_event(tests.fx('org_h'), 'document.failed',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789d3", "name": "h2", "reason": "r"}'));
select tests.remember('dl_h2', d.id) from public.webhook_deliveries d where d.event_id = tests.fx('ev_h2');
update public.webhook_deliveries set status = 'sending', attempt_count = 1, locked_until = now() + interval '1 minute'
where id = tests.fx('dl_h2');
select private.disable_webhook_endpoint(tests.fx('ep_h'), 'probe', now());
select is(
  (select status from public.webhook_deliveries where id = tests.fx('dl_h2')),
  'canceled',
  'hardening: disabling cancels a delivery that is being sent'
);
select tests.authenticate_as_service_role();
select is(
  private.record_webhook_attempt(tests.fx('dl_h2'), 1, now(), 10, 500, null, null, null, now()),
  'stale',
  'hardening: the in-flight attempt''s late report is stale and does not revive it'
);
select tests.clear_authentication();
select is(
  (select status from public.webhook_deliveries where id = tests.fx('dl_h2')),
  'canceled',
  'hardening: the delivery stays canceled'
);

-- A type that leaves the catalogue does not lock its subscribers.
insert into public.event_types (type, description, schema) values ('probe.gone', 'probe', '{"type": "object"}');
update public.webhook_endpoints set event_types = array['probe.gone'] where id = tests.fx('ep_h');
delete from public.event_types where type = 'probe.gone';
select lives_ok(
  $$update public.webhook_endpoints set description = 'still editable' where id = tests.fx('ep_h')$$,
  'hardening: an endpoint subscribed to a type since removed can still be edited'
);
select throws_ok(
  $$update public.webhook_endpoints set event_types = array['probe.gone', 'probe.other'] where id = tests.fx('ep_h')$$,
  '22023', 'unknown event type(s): probe.other',
  'hardening: but a newly added unknown type is refused'
);

-- JSON schema corner cases.
select is(private.json_schema_errors('{"type": "integer"}', '3.0'), null, 'hardening: 3.0 is an integer, as JSON Schema says');
select is(
  private.json_schema_errors('{"type": "string", "format": "date-time"}', '"2026-13-45T25:61:61Z"'),
  '$ must be an RFC 3339 date-time',
  'hardening: a date-time of the right shape but no real moment is refused'
);

select * from finish();
rollback;
