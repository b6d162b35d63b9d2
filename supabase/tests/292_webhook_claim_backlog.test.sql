-- One org's backlog does not change what the claim picks, and the claim
-- ranks at most batch_size deliveries per endpoint
-- (20261123011700_webhook_claim_per_endpoint.sql). Due in 1985, so nothing
-- else in the database is due with them. The claim's time is reported by
-- diag, not asserted: it depends on the machine.
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@webhook-claim-backlog-292.test')),
  ('owner_b', tests.create_user('owner-b@webhook-claim-backlog-292.test'));
select tests.remember('org_a', tests.create_org('webhook-claim-backlog-292-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('webhook-claim-backlog-292-b', tests.fx('owner_b')));
delete from vault.secrets where name in ('project_url', 'service_role_key');

select tests.act_as('owner_a');
select tests.remember('ep_a', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a.claim-backlog-292.example.com/h', null, null) c;
select tests.remember('ep_a2', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a2.claim-backlog-292.example.com/h', null, null) c;
select tests.act_as('owner_b');
select tests.remember('ep_b', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_b'), 'https://b.claim-backlog-292.example.com/h', null, null) c;

-- ep_a: 3,000 due deliveries (enough to show the claim reads a few per endpoint; 20,000 took 33 s to set up), one a second from 1985-01-01, one event each
-- (every tenth an invoice event, which its owner-made endpoint receives);
-- the oldest is in flight. ep_a2: one, newer than all of them. ep_b: one,
-- newer still.
select tests.act_as('postgres');
create temp table backlog (n integer primary key, delivery_id uuid not null);
with events as (
  insert into public.events (org_id, type, payload)
  select tests.fx('org_a'), case when i % 10 = 0 then 'invoice.created' else 'document.ready' end, jsonb_build_object('n', i)
  from generate_series(1, 3000) i
  returning id, (payload ->> 'n')::integer as n
),
deliveries as (
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
  select tests.fx('org_a'), tests.fx('ep_a'), ev.id, '1985-01-01'::timestamptz + make_interval(secs => ev.n)
  from events ev
  returning id, next_attempt_at
)
insert into backlog
select extract(epoch from d.next_attempt_at - '1985-01-01'::timestamptz)::integer, d.id from deliveries d;
update public.webhook_deliveries d set status = 'sending', attempt_count = 1, locked_until = '1986-01-01 00:01'
where d.id = (select b.delivery_id from backlog b where b.n = 1);

create function pg_temp.deliver(label text, org text, endpoint text, due timestamptz)
returns uuid
language sql
as $$
  with ev as (
    insert into public.events (org_id, type, payload) values (tests.fx(org), 'document.ready', '{}') returning id
  ),
  d as (
    insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
    select tests.fx(org), tests.fx(endpoint), ev.id, due from ev
    returning id
  )
  select tests.remember(label, d.id) from d
$$;
select pg_temp.deliver('d_a2', 'org_a', 'ep_a2', '1985-06-01');
select pg_temp.deliver('d_b', 'org_b', 'ep_b', '1985-07-01');
-- Each event also fanned out to its org's endpoints, due now: not part of the backlog.
delete from public.webhook_deliveries d
where d.org_id in (tests.fx('org_a'), tests.fx('org_b')) and d.next_attempt_at >= '1986-01-01';

create temp table claims (round text, n bigint, delivery_id uuid, endpoint_id uuid);
create temp table timings (round text, ms numeric);
grant all on claims, timings to public;
create function pg_temp.claim(round text, batch integer)
returns void
language plpgsql
as $$
declare
  started timestamptz := clock_timestamp();
begin
  insert into claims
  select claim.round, c.n, c.delivery_id, c.endpoint_id
  from private.claim_webhook_deliveries(claim.batch, interval '60 seconds', '1986-01-01') with ordinality c(
    delivery_id, attempt_number, message_id, endpoint_id, url, secrets, body, n);
  insert into timings values (claim.round, round(extract(epoch from clock_timestamp() - started)::numeric * 1000, 1));
end;
$$;
grant execute on function pg_temp.claim(text, integer) to public;

select tests.act_as('service_role');
select pg_temp.claim('first', 20);
select tests.act_as('postgres');

select is(
  (select array_agg(c.delivery_id order by c.n) from claims c where c.round = 'first' and c.n <= 2),
  array[tests.fx('d_b'), tests.fx('d_a2')],
  'org_b''s one delivery comes first (org_a has one in flight), then org_a''s other endpoint''s, though ep_a''s 19,999 are older'
);
select is(
  (select array_agg(c.delivery_id order by c.n) from claims c where c.round = 'first' and c.n > 2),
  (select array_agg(b.delivery_id order by b.n) from backlog b where b.n between 2 and 19),
  'the other 18 are ep_a''s oldest claimable, oldest first'
);
select is(
  (select count(*) from public.webhook_deliveries d
   where d.endpoint_id in (tests.fx('ep_a'), tests.fx('ep_a2'), tests.fx('ep_b'))
     and d.status = 'sending' and d.attempt_count = 1 and d.locked_until = '1986-01-01 00:01'),
  21::bigint,
  'the 20 claimed are sending under a lease to 00:01, with the one in flight before'
);
select is(
  (select count(*) from public.webhook_deliveries d where d.endpoint_id = tests.fx('ep_a') and d.status = 'pending'),
  2981::bigint,
  'the rest of ep_a''s backlog is still pending'
);

select tests.act_as('service_role');
select pg_temp.claim('second', 20);
select tests.act_as('postgres');
select is(
  (select array_agg(c.delivery_id order by c.n) from claims c where c.round = 'second'),
  (select array_agg(b.delivery_id order by b.n) from backlog b where b.n between 20 and 39),
  'the next claim takes ep_a''s next 20 in age order: nothing else is due'
);

-- A lease that has run out makes the delivery claimable again, ahead of the backlog it is older than.
update public.webhook_deliveries d set locked_until = '1985-12-31'
where d.id = (select b.delivery_id from backlog b where b.n = 1);
select tests.act_as('service_role');
select pg_temp.claim('expired', 1);
select tests.act_as('postgres');
select is(
  (select array_agg(c.delivery_id) from claims c where c.round = 'expired'),
  (select array_agg(b.delivery_id) from backlog b where b.n = 1),
  'a delivery whose lease ran out is claimed again before the backlog behind it'
);
select is(
  (select d.attempt_count from public.webhook_deliveries d where d.id = (select b.delivery_id from backlog b where b.n = 1)),
  2,
  'as its second attempt'
);

-- A disabled endpoint's backlog is not claimed, however old.
update public.webhook_endpoints e set enabled = false, disabled_at = '1985-01-01', disabled_reason = 'test'
where e.id = tests.fx('ep_a');
select pg_temp.deliver('d_b2', 'org_b', 'ep_b', '1985-08-01');
delete from public.webhook_deliveries d where d.org_id = tests.fx('org_b') and d.next_attempt_at >= '1986-01-01';
update public.webhook_deliveries d set status = 'succeeded', next_attempt_at = null, locked_until = null
where d.id = tests.fx('d_b');
select tests.act_as('service_role');
select pg_temp.claim('disabled', 20);
select tests.act_as('postgres');
select is(
  (select array_agg(c.delivery_id) from claims c where c.round = 'disabled'),
  array[tests.fx('d_b2')],
  'with ep_a disabled, only org_b''s new delivery is claimed'
);
select is(
  (select count(*) from public.webhook_deliveries d where d.endpoint_id = tests.fx('ep_a') and d.status = 'pending'),
  2961::bigint,
  'and ep_a''s backlog waits'
);

select diag(format('claim of 20 with 3,002 due: %s ms (first), %s ms (second)',
  (select t.ms from timings t where t.round = 'first'), (select t.ms from timings t where t.round = 'second')));

select * from finish();
rollback;
