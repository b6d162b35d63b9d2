-- Webhook delivery fixes (20261123003900_webhook_delivery_fixes.sql):
-- one lock order (the endpoint, then its deliveries by id) in every path
-- that locks both; no eleventh attempt after a tenth that was never
-- reported; at most 4 deliveries per endpoint in flight, so one endpoint's
-- backlog does not hold back the others.
--
-- The deadlock itself needs two sessions waiting on each other's row locks.
-- The local database (PGlite) runs one session at a time, so it cannot
-- happen here; these tests check the order the functions lock in (their
-- text) and the states they leave, which a real Postgres would reach
-- without a 40P01.
--
-- The claims run at fixed times in 2001 and 2002, when only this file's
-- deliveries are due (others' are due around now), and every assertion
-- looks at this file's endpoints only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(24);

create function pg_temp.ep(label text, org text)
returns void
language sql
as $$
  with e as (
    insert into public.webhook_endpoints (org_id, url)
    values (tests.fx(org), 'https://' || replace(label, '_', '-') || '.example.com/hook')
    returning id
  )
  select tests.remember(label, e.id) from e;
$$;

-- A delivery of a fresh event to one endpoint, in the given state.
create function pg_temp.delivery(label text, endpoint text, status text, attempt integer, due timestamptz, lease_until timestamptz)
returns void
language plpgsql
as $$
declare
  ev uuid;
  created uuid;
begin
  -- Straight into events (as postgres): fan-out would also queue it for the
  -- org's other endpoints.
  insert into public.events (org_id, type, payload)
  select e.org_id, 'member.joined', jsonb_build_object('user_id', gen_random_uuid(), 'role', 'member')
  from public.webhook_endpoints e where e.id = tests.fx(endpoint)
  returning id into ev;
  delete from public.webhook_deliveries d where d.event_id = ev;
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, status, attempt_count, next_attempt_at, locked_until)
  select e.org_id, e.id, ev, status, attempt, due, lease_until
  from public.webhook_endpoints e where e.id = tests.fx(endpoint)
  returning id into created;
  perform tests.remember(label, created);
end;
$$;

create temp table claims (round text not null, delivery_id uuid not null, attempt_number integer, endpoint_id uuid);
grant all on claims to public;

delete from vault.secrets where name in ('project_url', 'service_role_key');
select tests.remember('owner', tests.create_user('owner@webhook-fixes.test'));
select tests.remember('org', tests.create_org('webhook-fixes', tests.fx('owner')));
select pg_temp.ep('ep_gone', 'org'), pg_temp.ep('ep_other', 'org'), pg_temp.ep('ep_slow', 'org'),
       pg_temp.ep('ep_tired', 'org'), pg_temp.ep('ep_backlog', 'org'), pg_temp.ep('ep_quiet', 'org');

-- ---------------------------------------------------------------------------
-- 1. Lock order: the endpoint first, then its deliveries in id order.
-- ---------------------------------------------------------------------------

select cmp_ok(
  regexp_instr(p.prosrc, 'from public\.webhook_endpoints [^;]* for (no key )?update'),
  '<',
  regexp_instr(p.prosrc, 'from public\.webhook_deliveries [^;]* for (no key )?update'),
  'record_webhook_attempt locks the endpoint before the delivery'
)
from pg_proc p where p.oid = 'private.record_webhook_attempt(uuid, integer, timestamptz, integer, integer, text, text, integer, timestamptz, text)'::regprocedure;
select ok(
  p.prosrc ~ 'from public\.webhook_endpoints [^;]* for no key update;.*from public\.webhook_deliveries [^;]* order by d\.id\s+for no key update;.*update public\.webhook_endpoints.*update public\.webhook_deliveries',
  'disable_webhook_endpoint locks the endpoint (even one already disabled), then its queued deliveries in id order, before changing either'
)
from pg_proc p where p.oid = 'private.disable_webhook_endpoint(uuid, text, timestamptz)'::regprocedure;

-- Two deliveries to one endpoint in flight together, both answered 410; a
-- third queued; another endpoint's delivery beside them.
select pg_temp.delivery('d_gone_1', 'ep_gone', 'sending', 1, '2001-01-01', '2001-01-01 00:01');
select pg_temp.delivery('d_gone_2', 'ep_gone', 'sending', 1, '2001-01-01', '2001-01-01 00:01');
select pg_temp.delivery('d_gone_3', 'ep_gone', 'pending', 0, '2001-01-01', null);
select pg_temp.delivery('d_other', 'ep_other', 'sending', 1, '2001-01-01', '2001-01-01 00:01');

select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_gone_1'), 1, '2001-01-01 00:00:01', 5, 410, null, 'gone', null, '2001-01-01 00:00:02'),
  'failed',
  'the first 410 ends its delivery failed'
);
select is(
  private.record_webhook_attempt(tests.fx('d_gone_2'), 1, '2001-01-01 00:00:01', 5, 410, null, 'gone', null, '2001-01-01 00:00:03'),
  'stale',
  'the second 410, recorded after the endpoint was disabled, is stale'
);
select tests.act_as('postgres');
select results_eq(
  $$select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = tests.fx('ep_gone')$$,
  $$values (false, 'the endpoint answered 410 Gone', '2001-01-01 00:00:02'::timestamptz)$$,
  'the endpoint is disabled once, by the first 410'
);
select results_eq(
  $$select status, next_attempt_at, locked_until from public.webhook_deliveries
    where id in (tests.fx('d_gone_1'), tests.fx('d_gone_2'), tests.fx('d_gone_3'))
    order by array_position(array[tests.fx('d_gone_1'), tests.fx('d_gone_2'), tests.fx('d_gone_3')], id)$$,
  $$values ('failed', null::timestamptz, null::timestamptz), ('canceled', null, null), ('canceled', null, null)$$,
  'the first delivery failed; the one in flight beside it and the queued one are canceled'
);
select results_eq(
  $$select delivery_id, status_code from public.webhook_attempts where endpoint_id = tests.fx('ep_gone')
    order by array_position(array[tests.fx('d_gone_1'), tests.fx('d_gone_2')], delivery_id)$$,
  $$values (tests.fx('d_gone_1'), 410), (tests.fx('d_gone_2'), 410)$$,
  'both attempts are recorded: none is lost'
);
select results_eq(
  $$select status from public.webhook_deliveries where id = tests.fx('d_other')$$,
  $$values ('sending')$$,
  'another endpoint''s delivery is untouched'
);

-- The 5-day rule takes the same path.
update public.webhook_endpoints set failing_since = '2000-12-25' where id = tests.fx('ep_slow');
select pg_temp.delivery('d_slow_1', 'ep_slow', 'sending', 3, '2001-01-01', '2001-01-01 00:01');
select pg_temp.delivery('d_slow_2', 'ep_slow', 'sending', 2, '2001-01-01', '2001-01-01 00:01');
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_slow_1'), 3, '2001-01-01 00:00:01', 5, 500, null, null, null, '2001-01-01 00:00:02'),
  'failed',
  'a failure after 5 days of failures ends the delivery failed'
);
select tests.act_as('postgres');
select results_eq(
  $$select e.enabled, e.disabled_reason, d.status from public.webhook_endpoints e
    join public.webhook_deliveries d on d.endpoint_id = e.id and d.id = tests.fx('d_slow_2')
    where e.id = tests.fx('ep_slow')$$,
  $$values (false, 'failing continuously for 5 days', 'canceled')$$,
  'the 5-day rule disables the endpoint and cancels its other delivery in flight'
);

select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(gen_random_uuid(), 1, '2001-01-01', 5, 200, null, null, null, '2001-01-01'),
  'gone',
  'an attempt of a delivery that no longer exists is gone'
);

-- ---------------------------------------------------------------------------
-- 2. No eleventh attempt.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
-- Attempts 10 and 9 claimed at 2001-01-01 01:00 and never reported (their
-- workers died); the leases ran out at 01:01.
select pg_temp.delivery('d_tenth', 'ep_tired', 'sending', 10, '2001-01-01 01:00', '2001-01-01 01:01');
select pg_temp.delivery('d_ninth', 'ep_tired', 'sending', 9, '2001-01-01 01:00', '2001-01-01 01:01');
select tests.act_as('service_role');
insert into claims
select 'tired', c.delivery_id, c.attempt_number, c.endpoint_id
from private.claim_webhook_deliveries(500, interval '60 seconds', '2001-01-01 01:02') c;
select results_eq(
  $$select delivery_id, attempt_number from claims where round = 'tired' and endpoint_id = tests.fx('ep_tired')$$,
  $$values (tests.fx('d_ninth'), 10)$$,
  'a delivery whose tenth attempt was never reported is not claimed again; one on its ninth gets its tenth'
);
select tests.act_as('postgres');
select results_eq(
  $$select status, attempt_count, next_attempt_at, locked_until from public.webhook_deliveries where id = tests.fx('d_tenth')$$,
  $$values ('failed', 10, null::timestamptz, null::timestamptz)$$,
  'it ends failed after its ten attempts'
);
select tests.act_as('service_role');
select is(
  private.record_webhook_attempt(tests.fx('d_tenth'), 10, '2001-01-01 01:00', 5, 200, null, 'late', null, '2001-01-01 01:03'),
  'stale',
  'a late report of that tenth attempt is stale'
);
select tests.act_as('postgres');
select is(
  (select status from public.webhook_deliveries where id = tests.fx('d_tenth')),
  'failed',
  'and leaves it failed'
);

-- ---------------------------------------------------------------------------
-- 3. Endpoints take turns.
-- ---------------------------------------------------------------------------

-- A backlog of 20 on one endpoint, all older than the one delivery of
-- another. (ep_other's delivery from section 1, its lease long run out, is
-- due too, and older than both.)
select pg_temp.delivery('d_backlog_' || i, 'ep_backlog', 'pending', 0, '2002-01-01'::timestamptz - make_interval(mins => 60 - i), null)
from generate_series(1, 20) i;
select pg_temp.delivery('d_quiet', 'ep_quiet', 'pending', 0, '2002-01-01', null);

select tests.act_as('service_role');
insert into claims
select 'fair', c.delivery_id, c.attempt_number, c.endpoint_id
from private.claim_webhook_deliveries(4, interval '60 seconds', '2002-01-01') c;
select set_eq(
  $$select delivery_id from claims where round = 'fair'$$,
  $$select tests.fx(n) from unnest(array['d_other', 'd_backlog_1', 'd_quiet', 'd_backlog_2']) n$$,
  'a batch of 4 takes each endpoint''s oldest due delivery first, then the backlog''s next, not just the 4 oldest'
);

-- Later, with 2 of the backlog in flight and 1 of ep_quiet, ep_quiet's
-- next delivery comes before the (older) rest of the backlog.
select tests.act_as('postgres');
select pg_temp.delivery('d_quiet_2', 'ep_quiet', 'pending', 0, '2002-01-01 00:00:10', null);
select tests.act_as('service_role');
insert into claims
select 'in flight', c.delivery_id, c.attempt_number, c.endpoint_id
from private.claim_webhook_deliveries(1, interval '60 seconds', '2002-01-01 00:00:30') c;
select results_eq(
  $$select delivery_id from claims where round = 'in flight'$$,
  $$values (tests.fx('d_quiet_2'))$$,
  'deliveries in flight count as turns taken: the endpoint with fewer in flight goes first'
);

-- With nobody else waiting, the backlog has the whole batch.
insert into claims
select 'alone', c.delivery_id, c.attempt_number, c.endpoint_id
from private.claim_webhook_deliveries(16, interval '60 seconds', '2002-01-01 00:00:40') c;
select set_eq(
  $$select delivery_id from claims where round = 'alone'$$,
  $$select tests.fx('d_backlog_' || i) from generate_series(3, 18) i$$,
  'an endpoint alone with due deliveries fills the batch: there is no fixed cap'
);
select is(
  (select array_agg(c.delivery_id order by x.n)
   from unnest(array['d_other', 'd_backlog_1', 'd_quiet', 'd_backlog_2']) with ordinality x(name, n)
   join claims c on c.round = 'fair' and c.delivery_id = tests.fx(x.name)),
  (select array_agg(delivery_id) from (select delivery_id from claims where round = 'fair' order by ctid) o),
  'a batch comes back in turn order, so its first requests go to as many endpoints as it has'
);

-- ---------------------------------------------------------------------------
-- 4. Limits
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select throws_ok(
  format($$select private.emit_event(tests.fx('org'), 'document.failed', %L::jsonb)$$,
    jsonb_build_object('document_id', gen_random_uuid(), 'name', repeat('x', 262144), 'reason', 'r')),
  '22023', null,
  'emit_event refuses a payload over 256 KB'
);
select throws_like(
  format($$select private.emit_event(tests.fx('org'), 'document.failed', %L::jsonb)$$,
    jsonb_build_object('document_id', gen_random_uuid(), 'name', repeat('x', 5000000), 'reason', 'r')),
  'the document.failed payload is 5000% bytes; at most 262144 (256 KB) are accepted',
  'and says how large it was and what the limit is'
);
select lives_ok(
  format($$select private.emit_event(tests.fx('org'), 'document.failed', %L::jsonb)$$,
    jsonb_build_object('document_id', gen_random_uuid(), 'name', repeat('x', 262000), 'reason', 'r')),
  'a payload just under 256 KB is accepted'
);

select tests.act_as('owner');
select tests.remember('ep_rotated', (select endpoint_id from private.create_webhook_endpoint(
  tests.fx('org'), 'https://rotated.example.com/hook', null, null)));
create temp table rotations (n integer primary key, secret text not null);
grant all on rotations to public;
do $$
begin
  for i in 1..31 loop
    insert into rotations select i, r.secret from private.rotate_webhook_secret(tests.fx('ep_rotated'), interval '24 hours') r;
  end loop;
end;
$$;
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.webhook_endpoint_secrets s
   where s.endpoint_id = tests.fx('ep_rotated') and (s.expires_at is null or s.expires_at > clock_timestamp())),
  5,
  'after 31 rotations within the overlap an endpoint has 5 live secrets, not 32'
);
select set_eq(
  $$select secret from private.webhook_endpoint_secrets where endpoint_id = tests.fx('ep_rotated')$$,
  $$select secret from rotations where n > 26$$,
  'they are the 5 newest: the new secret and the 4 before it, still in their overlap'
);

select * from finish();
rollback;
