-- The claim reads a bounded part of each endpoint's queue
-- (20261123012500_bounded_webhook_claim.sql, index 20261123012510): with
-- one endpoint 3,000 deep, then 6,000, a claim of 20 reads about as many
-- index entries either way, and its batch and order are the turns of the
-- whole queue: in flight first, orgs then endpoints in turn, a lease run
-- out merged in age order with the pending, the tenth attempt ended failed,
-- an owner-only event deep in a queue canceled, a disabled endpoint
-- skipped. Due in 1985, so nothing else in the database is due with them.
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@bounded-webhook-claim-300.test')),
  ('owner_b', tests.create_user('owner-b@bounded-webhook-claim-300.test')),
  ('owner_c', tests.create_user('owner-c@bounded-webhook-claim-300.test')),
  ('admin_c', tests.create_user('admin-c@bounded-webhook-claim-300.test'));
select tests.remember('org_a', tests.create_org('bounded-webhook-claim-300-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('bounded-webhook-claim-300-b', tests.fx('owner_b')));
select tests.remember('org_c', tests.create_org('bounded-webhook-claim-300-c', tests.fx('owner_c')));
select tests.add_member(tests.fx('org_c'), tests.fx('admin_c'), 'admin');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- The events first, before any endpoint they could fan out to: the queues
-- below hold only the deliveries inserted for them (no dead index entries).
-- ep_a: 3,000 due, one a second from 1985-01-01, every tenth an invoice
-- event (its owner-made endpoint receives them), and 3,000 more events
-- queued to it later. ep_a2 and ep_b: one each, newer. ep_c: 50 from
-- 1985-09-01. ep_off: one, older than all, disabled.
create temp table queue (endpoint text, n integer, event_id uuid not null, delivery_id uuid, primary key (endpoint, n));
create function pg_temp.events(endpoint text, org text, count integer)
returns void
language sql
as $$
  with events as (
    insert into public.events (org_id, type, payload)
    select tests.fx(org), case when endpoint = 'ep_a' and i % 10 = 0 then 'invoice.created' else 'document.ready' end,
      jsonb_build_object('n', i, 'endpoint', endpoint)
    from generate_series(1, count) i
    returning id, (payload ->> 'n')::integer as n
  )
  insert into queue (endpoint, n, event_id) select endpoint, ev.n, ev.id from events ev
$$;
select pg_temp.events('ep_a', 'org_a', 6000), pg_temp.events('ep_a2', 'org_a', 1), pg_temp.events('ep_b', 'org_b', 1),
  pg_temp.events('ep_c', 'org_c', 50), pg_temp.events('ep_off', 'org_b', 1);

select tests.act_as('owner_a');
select tests.remember('ep_a', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a.bounded-claim-300.example.com/h', null, null) c;
select tests.remember('ep_a2', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a2.bounded-claim-300.example.com/h', null, null) c;
select tests.act_as('owner_b');
select tests.remember('ep_b', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_b'), 'https://b.bounded-claim-300.example.com/h', null, null) c;
select tests.remember('ep_off', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_b'), 'https://off.bounded-claim-300.example.com/h', null, null) c;
-- Set up by an admin: export.* (owners only) is not for it.
select tests.act_as('admin_c');
select tests.remember('ep_c', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_c'), 'https://c.bounded-claim-300.example.com/h', null, null) c;

select tests.act_as('postgres');
with deliveries as (
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
  select e.org_id, e.id, q.event_id,
    case q.endpoint
      when 'ep_a' then '1985-01-01'::timestamptz when 'ep_a2' then '1985-06-01' when 'ep_b' then '1985-07-01'
      when 'ep_c' then '1985-09-01' else '1984-01-01'
    end + make_interval(secs => q.n)
  from queue q
  join public.webhook_endpoints e on e.id = tests.fx(q.endpoint)
  where q.endpoint <> 'ep_a' or q.n <= 3000
  returning id, event_id
)
update queue q set delivery_id = d.id from deliveries d where d.event_id = q.event_id;
update public.webhook_endpoints e set enabled = false, disabled_at = '1985-01-01', disabled_reason = 'test'
where e.id = tests.fx('ep_off');
-- Statistics that know of these 1985 queues (the database's own are of
-- deliveries due now), so the plans are those of a claim at now().
analyze public.webhook_deliveries;

-- ep_a's 1st is in flight; its 2nd was claimed and its lease ran out (so it
-- is claimable, ahead of the pending); its 5th was the tenth attempt, never
-- reported. ep_c's last is an export event, which it may not be sent.
update public.webhook_deliveries d set status = 'sending', attempt_count = 1, locked_until = '1986-01-01 00:01'
where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_a' and q.n = 1);
update public.webhook_deliveries d set status = 'sending', attempt_count = 1, locked_until = '1985-12-31'
where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_a' and q.n = 2);
update public.webhook_deliveries d set status = 'sending', attempt_count = 10, locked_until = '1985-12-31'
where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_a' and q.n = 5);
update public.events ev set type = 'export.ready'
from queue q join public.webhook_deliveries d on d.id = q.delivery_id
where q.endpoint = 'ep_c' and q.n = 50 and ev.id = d.event_id;

-- Index entries and table rows the claim reads from webhook_deliveries, by
-- this transaction's own counters.
create function pg_temp.reads()
returns bigint
language sql
as $$
  select pg_stat_get_xact_tuples_returned('public.webhook_deliveries'::regclass)
    + coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)
  from pg_catalog.pg_index i
  where i.indrelid = 'public.webhook_deliveries'::regclass
$$;
create temp table claims (round text, n bigint, delivery_id uuid, attempt_number integer);
create temp table cost (round text, reads bigint, ms numeric);
grant all on claims, cost to public;
grant execute on function pg_temp.reads() to public;
create function pg_temp.claim(round text, batch integer)
returns void
language plpgsql
as $$
declare
  started timestamptz := clock_timestamp();
  reads_before bigint := pg_temp.reads();
begin
  insert into claims
  select claim.round, c.n, c.delivery_id, c.attempt_number
  from private.claim_webhook_deliveries(batch, interval '60 seconds', '1986-01-01') with ordinality c(
    delivery_id, attempt_number, message_id, endpoint_id, url, secrets, body, n);
  insert into cost values (
    claim.round,
    pg_temp.reads() - reads_before,
    round(extract(epoch from clock_timestamp() - started)::numeric * 1000, 1)
  );
end;
$$;
grant execute on function pg_temp.claim(text, integer) to public;

select is(
  pg_get_indexdef('public.webhook_deliveries_endpoint_due_idx'::regclass),
  'CREATE INDEX webhook_deliveries_endpoint_due_idx ON public.webhook_deliveries USING btree (endpoint_id, status, next_attempt_at, id) WHERE (status = ANY (ARRAY[''pending''::text, ''sending''::text]))',
  'the queued deliveries are indexed by endpoint, status and the claim''s order'
);

-- With a few thousand deliveries in the database the planner may read a
-- 50-deep queue by scanning the table; with a real backlog it takes the
-- indexes unprompted (100,000 queued: no table scan). So the claims below
-- are held to the indexes, and what is measured is how much of a queue
-- their plans read.
set local enable_seqscan = off;
-- A claim undone first: entries other files' rolled-back deliveries left in
-- the indexes are walked once and marked dead, not counted against the
-- first claim measured below (and so hiding what the next one adds).
savepoint warm_up;
select tests.act_as('service_role');
select pg_temp.claim('warm-up', 20);
select tests.act_as('postgres');
rollback to savepoint warm_up;
select tests.act_as('service_role');
select pg_temp.claim('first', 20);
select tests.act_as('postgres');

-- Turns: org_a has one in flight, so org_b's and org_c's first go first,
-- then org_a's other endpoint's (endpoint turn 1), then org_a and org_c
-- alternate; ep_a's run out lease (its 2nd) before its pending 3rd, 4th,
-- 6th (the 5th ended failed).
select is(
  (select array_agg(c.delivery_id order by c.n) from claims c where c.round = 'first'),
  (select array_agg(q.delivery_id order by o.position)
   from (values
     ('ep_b', 1, 1), ('ep_c', 1, 2), ('ep_a2', 1, 3), ('ep_c', 2, 4),
     ('ep_a', 2, 5), ('ep_c', 3, 6), ('ep_a', 3, 7), ('ep_c', 4, 8), ('ep_a', 4, 9), ('ep_c', 5, 10),
     ('ep_a', 6, 11), ('ep_c', 6, 12), ('ep_a', 7, 13), ('ep_c', 7, 14), ('ep_a', 8, 15), ('ep_c', 8, 16),
     ('ep_a', 9, 17), ('ep_c', 9, 18), ('ep_a', 10, 19), ('ep_c', 10, 20)
   ) o(endpoint, n, position)
   join queue q on q.endpoint = o.endpoint and q.n = o.n),
  'the batch is the whole queue''s first 20 turns, in turn order'
);
select is(
  (select c.attempt_number from claims c
   where c.round = 'first' and c.delivery_id = (select q.delivery_id from queue q where q.endpoint = 'ep_a' and q.n = 2)),
  2,
  'the delivery whose lease ran out is sent as its second attempt'
);
select is(
  (select d.status from public.webhook_deliveries d
   where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_a' and q.n = 5)),
  'failed',
  'the tenth attempt never reported ends failed'
);
select is(
  (select d.status from public.webhook_deliveries d
   where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_c' and q.n = 50)),
  'canceled',
  'an owner-only event 50 deep in an admin''s endpoint''s queue is canceled'
);
select is(
  (select d.status from public.webhook_deliveries d
   where d.id = (select q.delivery_id from queue q where q.endpoint = 'ep_off')),
  'pending',
  'the disabled endpoint''s delivery, older than all, is not claimed'
);
select is(
  (select count(*) from public.webhook_deliveries d
   where d.endpoint_id = tests.fx('ep_a') and d.status = 'pending'),
  2990::bigint,
  'the rest of ep_a''s backlog is still pending'
);

-- ep_a 3,000 deeper: the next claim reads what the first did, give or
-- take its 20 more in flight, not the 3,000 more. Index entries, not time:
-- the time depends on the machine. Reading ep_a whole, for its count in
-- flight and again for its oldest (20261123011700), read 6,000 more.
with deliveries as (
  insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
  select tests.fx('org_a'), tests.fx('ep_a'), q.event_id, '1985-01-01'::timestamptz + make_interval(secs => q.n)
  from queue q
  where q.endpoint = 'ep_a' and q.n > 3000
  returning id, event_id
)
update queue q set delivery_id = d.id from deliveries d where d.event_id = q.event_id;
select tests.act_as('service_role');
select pg_temp.claim('deeper', 20);
select tests.act_as('postgres');

select is(
  (select array_agg(c.delivery_id order by c.n) from claims c where c.round = 'deeper'),
  (select array_agg(q.delivery_id order by q.n, q.endpoint)
   from queue q
   where (q.endpoint = 'ep_c' and q.n between 11 and 20) or (q.endpoint = 'ep_a' and q.n between 11 and 20)),
  'the next claim takes org_a''s and org_c''s next 10 each, in turns'
);
select cmp_ok(
  (select d.reads - f.reads from cost d, cost f where d.round = 'deeper' and f.round = 'first'),
  '<', 300::bigint,
  'a queue 3,000 deeper costs the claim under 300 more index entries read'
);

select diag(format('claim of 20: %s index entries read with ep_a 3,000 deep (%s ms), %s with it 6,000 deep (%s ms)',
  (select c.reads from cost c where c.round = 'first'), (select c.ms from cost c where c.round = 'first'),
  (select c.reads from cost c where c.round = 'deeper'), (select c.ms from cost c where c.round = 'deeper')));

select * from finish();
rollback;
