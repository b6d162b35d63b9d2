-- Call minutes held by calls not yet ended, the queued-call cap and the product cap
-- (20261123009100_call_quota_and_product_cap.sql).
--
-- Every outbound call not yet ended holds 1 minute against the call-minutes quota from the moment it is
-- queued, checked under the org's active subscription lock; claim_due_calls fails a call the minutes no
-- longer cover with ended_reason quota_exceeded; an org has at most 10,000 queued calls and 10,000 products.
-- The lock probes are those of 259_lock_order_and_claims: a test trigger on audit_log records the org row's
-- and the active subscription's xmax at each audited write, against their xmax after this transaction
-- key-share locked them (a later lock makes xmax a multixact).
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Probes and helpers
-- ---------------------------------------------------------------------------

create table pg_temp.locks_at_audit (
  seq bigint generated always as identity,
  org_id uuid,
  table_name text,
  org_xmax text,
  subscription_xmax text
);
create function pg_temp.record_locks_at_audit()
returns trigger
language plpgsql
as $$
begin
  insert into pg_temp.locks_at_audit (org_id, table_name, org_xmax, subscription_xmax)
  values (
    new.org_id, new.table_name,
    (select o.xmax::text from public.organizations o where o.id = new.org_id),
    (select s.xmax::text from public.subscriptions s where s.org_id = new.org_id and s.status = 'active')
  );
  return new;
end;
$$;
-- Before triggers fire in name order: this one before audit_log_chain, the one that takes the chain head.
create trigger a_locks_at_audit before insert on public.audit_log
  for each row execute function pg_temp.record_locks_at_audit();

create table pg_temp.before_call (org_id uuid primary key, org_xmax text, subscription_xmax text);
create function pg_temp.mark(org uuid)
returns void
language plpgsql
as $$
begin
  perform 1 from public.organizations o where o.id = org for key share;
  perform 1 from public.subscriptions s where s.org_id = org and s.status = 'active' for key share;
  insert into pg_temp.before_call (org_id, org_xmax, subscription_xmax)
  select org, o.xmax::text, (select s.xmax::text from public.subscriptions s where s.org_id = org and s.status = 'active')
  from public.organizations o where o.id = org
  on conflict (org_id) do update set org_xmax = excluded.org_xmax, subscription_xmax = excluded.subscription_xmax;
  delete from pg_temp.locks_at_audit a where a.org_id = org;
end;
$$;

-- Whether the org row (or its active subscription) was locked anew by the first audited write of tbl.
create function pg_temp.locked_at_audit(org uuid, tbl text, what text)
returns boolean
language sql
as $$
  select case what when 'org' then a.org_xmax <> b.org_xmax else a.subscription_xmax <> b.subscription_xmax end
  from pg_temp.locks_at_audit a join pg_temp.before_call b on b.org_id = a.org_id
  where a.org_id = org and a.table_name = tbl
  order by a.seq
  limit 1;
$$;
grant all on pg_temp.locks_at_audit, pg_temp.before_call to public;
grant execute on function pg_temp.record_locks_at_audit(), pg_temp.mark(uuid), pg_temp.locked_at_audit(uuid, text, text) to public;

-- A fixed-offset zone where the local time is 12:xx now: inside 08:00-21:00.
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select ((extract(hour from now() at time zone 'UTC')::integer - 12 + 36) % 24) - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

-- count numbers from +1415555<first>, as a campaign's list.
create function pg_temp.numbers(first integer, count integer)
returns text[]
language sql
immutable
as $$ select array(select '+1415555' || lpad((first + n)::text, 4, '0') from generate_series(0, count - 1) n) $$;
grant execute on function pg_temp.numbers(integer, integer) to public;

-- An org ready to dial (a bot with an assistant, a Vapi number), on a plan.
create function pg_temp.dialling_org(slug text, plan text)
returns uuid
language plpgsql
as $$
declare
  org uuid := tests.create_org(slug, tests.fx('cq_owner'));
begin
  perform tests.remember(slug, org);
  insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (org, 'Voice', 'voice', 'asst_' || slug, '{api,voice,web}');
  perform tests.remember(slug || '_bot', (select b.id from public.bots b where b.org_id = org));
  insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
  values (org, 'vapi', now(), 'pn_' || slug);
  update public.subscriptions set plan_id = plan where org_id = org and status = 'active';
  return org;
end;
$$;
grant execute on function pg_temp.dialling_org(text, text) to public;

-- Talk time of an inbound call that ended now, counted as used call minutes (the org's period began now).
create function pg_temp.talk(org uuid, seconds integer)
returns void
language sql
as $$
  insert into public.calls (org_id, direction, status, started_at, ended_at, duration_seconds)
  values (org, 'inbound', 'ended', now() - pg_catalog.make_interval(secs => seconds), now(), seconds);
$$;
grant execute on function pg_temp.talk(uuid, integer) to public;

create function pg_temp.campaign(org text, name text, first integer, count integer)
returns integer
language sql
as $$
  select c.calls_created from public.create_call_campaign(tests.fx(org), tests.fx(org || '_bot'), name,
    pg_temp.numbers(first, count), null, pg_temp.noon_zone()) c;
$$;
grant execute on function pg_temp.campaign(text, text, integer, integer) to public;

create function pg_temp.queued(org text)
returns integer
language sql
as $$ select count(*)::integer from public.calls where org_id = tests.fx(org) and status = 'queued' $$;
grant execute on function pg_temp.queued(text) to public;

insert into tests.fixtures (name, id) values
  ('cq_owner', tests.create_user('owner@call-quota-product-cap.test')),
  ('cq_member', tests.create_user('member@call-quota-product-cap.test'));

-- ---------------------------------------------------------------------------
-- Queueing: each call not yet ended holds a minute
-- ---------------------------------------------------------------------------

select pg_temp.dialling_org('cq-free', 'free');
select tests.act_as('cq_owner');
select throws_ok($$select pg_temp.campaign('cq-free', 'Too many', 1, 31)$$, 'PT402',
  'quota exceeded: the Free plan includes 30 call minutes per month; 0 are used in this period and 31 calls not yet ended (31 of them new) would hold 31 minutes',
  'free plan: a campaign of 31 calls is refused (PT402) although no call has ended yet');
select tests.act_as('postgres');
select is((select count(*)::integer from public.calls where org_id = tests.fx('cq-free')), 0, '... and queues nothing');
select is((select count(*)::integer from public.call_campaigns where org_id = tests.fx('cq-free')), 0, '... nor the campaign');

-- In a savepoint (its own xid): a lock the call takes turns the rows' xmax into a multixact.
select pg_temp.mark(tests.fx('cq-free'));
savepoint campaign;
select tests.act_as('cq_owner');
select is(pg_temp.campaign('cq-free', 'Thirty', 1, 30), 30, 'free plan: a campaign of 30 calls holds the 30 minutes');
select tests.act_as('postgres');
release savepoint campaign;
select ok(pg_temp.locked_at_audit(tests.fx('cq-free'), 'call_campaigns', 'subscription'),
  'create_call_campaign: the active subscription is locked before the campaign''s audit (lock order)');
select tests.act_as('cq_owner');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('cq-free'), tests.fx('cq-free_bot'), '+14155559901', null, pg_temp.noon_zone())$$,
  'PT402', null, 'free plan: one more call is refused while the 30 are queued');
select tests.act_as('service_role');
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number, status) values (tests.fx('cq-free'), 'outbound', '+14155559902', 'queued')$$,
  'PT402', null, '... whatever the path (the service role inserting a queued call)');
select lives_ok(
  $$insert into public.calls (org_id, direction, status, provider, provider_call_id) values (tests.fx('cq-free'), 'inbound', 'ringing', 'vapi', 'cq-inbound-1')$$,
  'an inbound call is still recorded');
select tests.act_as('postgres');
select is(pg_temp.queued('cq-free'), 30, 'free plan: 30 calls queued, no more');

-- Cancelling frees what the calls held.
select tests.act_as('cq_owner');
select is(public.cancel_call_campaign((select id from public.call_campaigns where org_id = tests.fx('cq-free') and name = 'Thirty')), 30,
  'the campaign is cancelled');
select lives_ok(
  $$select public.create_outbound_call(tests.fx('cq-free'), tests.fx('cq-free_bot'), '+14155559903', null, pg_temp.noon_zone())$$,
  'a cancelled call holds nothing: a new call is queued');
select tests.act_as('postgres');

-- Two campaigns one after the other, with 10 minutes used: the second counts the first's calls.
select pg_temp.dialling_org('cq-two', 'free');
select pg_temp.talk(tests.fx('cq-two'), 600);
select pg_temp.mark(tests.fx('cq-two'));
select tests.act_as('cq_owner');
select is(pg_temp.campaign('cq-two', 'First', 1, 15), 15, 'two campaigns: the first (15 calls, 10 minutes used) is queued');
select throws_ok($$select pg_temp.campaign('cq-two', 'Second', 101, 10)$$, 'PT402',
  'quota exceeded: the Free plan includes 30 call minutes per month; 10 are used in this period and 25 calls not yet ended (10 of them new) would hold 25 minutes',
  'two campaigns: the second (10 more) is refused, as 10 + 15 + 10 > 30');
select tests.act_as('postgres');
select is(pg_temp.queued('cq-two'), 15, 'two campaigns: only the first''s calls are queued');

-- A call of an org whose subscription this transaction has not locked yet (the probe needs a first lock).
select pg_temp.dialling_org('cq-one', 'free');
select pg_temp.mark(tests.fx('cq-one'));
savepoint single_call;
select tests.act_as('cq_owner');
select lives_ok(
  $$select public.create_outbound_call(tests.fx('cq-one'), tests.fx('cq-one_bot'), '+14155559904', null, pg_temp.noon_zone())$$,
  'a single call is queued');
select tests.act_as('postgres');
select ok(pg_temp.locked_at_audit(tests.fx('cq-one'), 'calls', 'subscription'),
  'create_outbound_call: the active subscription is locked before the call''s audit (lock order)');
release savepoint single_call;

-- ---------------------------------------------------------------------------
-- Dialling: the minutes again, as talk time may outrun what a call held
-- ---------------------------------------------------------------------------

select pg_temp.dialling_org('cq-dial', 'free');
select pg_temp.dialling_org('cq-pro', 'pro');
select tests.act_as('cq_owner');
select is(pg_temp.campaign('cq-dial', 'Three', 201, 3), 3, 'dialling: three calls queued on free');
select is(pg_temp.campaign('cq-pro', 'Two', 301, 2), 2, 'dialling: two calls queued on pro');
select tests.act_as('postgres');
-- Since they were queued, other calls talked: 28 min 30 s (29 used of 30) and 999 of pro's 1000.
select pg_temp.talk(tests.fx('cq-dial'), 1710);
select pg_temp.talk(tests.fx('cq-pro'), 59940);
-- Only these two orgs' calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null
where status = 'queued' and org_id not in (tests.fx('cq-dial'), tests.fx('cq-pro'));

select tests.act_as('service_role');
create temp table claimed as select * from private.claim_due_calls(10);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, count(*)::integer from claimed group by org_id order by org_id$$,
  $$select id, 1 from public.organizations where id in (tests.fx('cq-dial'), tests.fx('cq-pro')) order by id$$,
  'claim_due_calls: one call per org is handed out, the one minute each has left'
);
select results_eq(
  $$select org_id, status::text, ended_reason, dial_attempts, count(*)::integer from public.calls
    where org_id in (tests.fx('cq-dial'), tests.fx('cq-pro')) and direction = 'outbound' and id not in (select call_id from claimed)
    group by 1, 2, 3, 4 order by 1$$,
  $$select id, 'failed', 'quota_exceeded', 0, case when id = tests.fx('cq-dial') then 2 else 1 end
    from public.organizations where id in (tests.fx('cq-dial'), tests.fx('cq-pro')) order by id$$,
  'claim_due_calls: the calls the minutes no longer cover fail with quota_exceeded, never dialled (free and pro alike: require_quota is hard on every plan)'
);
select is(
  (select last_dial_error from public.calls where org_id = tests.fx('cq-dial') and status = 'failed' limit 1),
  'the call minutes are used up: the Free plan includes 30 per month, 29 are used in this period and 0 held by calls being dialled',
  '... with the reason in last_dial_error'
);
select is(
  (select count(*)::integer from public.events
   where type = 'call.ended' and payload ->> 'status' = 'failed' and payload ->> 'ended_reason' = 'quota_exceeded'
     and (payload ->> 'call_id')::uuid in (select id from public.calls where org_id in (tests.fx('cq-dial'), tests.fx('cq-pro')))),
  3, 'each failure emits call.ended with ended_reason quota_exceeded');
select is(
  (select count(*)::integer from realtime.messages
   where topic in ('org:' || tests.fx('cq-dial') || ':calls', 'org:' || tests.fx('cq-pro') || ':calls') and event = 'UPDATE'
     and payload -> 'record' ->> 'ended_reason' = 'quota_exceeded'),
  3, 'each failure is broadcast on the org''s calls channel');

-- The call being dialled holds its minute: nothing more for that org.
select tests.act_as('cq_owner');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('cq-dial'), tests.fx('cq-dial_bot'), '+14155559905', null, pg_temp.noon_zone())$$,
  'PT402', null, 'the minute held by the call being dialled refuses another call (29 + 1 + 1 > 30)');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- At most 10,000 queued calls per org
-- ---------------------------------------------------------------------------

select pg_temp.dialling_org('cq-cap', 'business');
-- 9,999 queued calls written without their triggers (audit, broadcast: seconds on PGlite), as filler.
set local session_replication_role = replica;
insert into public.calls (org_id, direction, to_number, status, next_dial_at)
select tests.fx('cq-cap'), 'outbound', '+1415' || lpad(n::text, 7, '0'), 'queued', now() + interval '1 year'
from generate_series(1, 9999) n;
set local session_replication_role = origin;
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number, status, next_dial_at)
    values (tests.fx('cq-cap'), 'outbound', '+14155559906', 'queued', now() + interval '1 year'),
           (tests.fx('cq-cap'), 'outbound', '+14155559907', 'queued', now() + interval '1 year')$$,
  '22023', 'an organization has at most 10000 queued calls (10001 would be queued)',
  'business plan: 2 more calls on 9,999 queued are refused (22023, HTTP 422), the cap checked before the minutes');
select lives_ok(
  $$insert into public.calls (org_id, direction, to_number, status, next_dial_at)
    values (tests.fx('cq-cap'), 'outbound', '+14155559906', 'queued', now() + interval '1 year')$$,
  'business plan: the 10,000th queued call is accepted (its 10,000 minutes)');
select throws_ok(
  $$insert into public.calls (org_id, direction, to_number, status) values (tests.fx('cq-cap'), 'outbound', '+14155559908', 'queued')$$,
  '22023', 'an organization has at most 10000 queued calls (10001 would be queued)',
  'the 10,001st queued call is refused');

-- ---------------------------------------------------------------------------
-- At most 10,000 products per org
-- ---------------------------------------------------------------------------

select tests.remember('cq-shop', tests.create_org('cq-shop', tests.fx('cq_owner')));
select tests.add_member(tests.fx('cq-shop'), tests.fx('cq_member'), 'member');
-- 9,999 products written without their triggers, as filler.
set local session_replication_role = replica;
insert into public.products (org_id, name, price) select tests.fx('cq-shop'), 'Product ' || n, n from generate_series(1, 9999) n;
set local session_replication_role = origin;
select tests.act_as('cq_member');
select throws_ok(
  $$insert into public.products (org_id, name, price) values (tests.fx('cq-shop'), 'Two', 2), (tests.fx('cq-shop'), 'Too many', 3)$$,
  '22023', 'an organization has at most 10000 products (this would make 10001)',
  'products: a member''s statement that would make 10,001 is refused (22023, as the 1,000 categories cap)');
select tests.act_as('postgres');
select pg_temp.mark(tests.fx('cq-shop'));
savepoint products;
select tests.act_as('cq_member');
select lives_ok(
  $$insert into public.products (org_id, name, price) values (tests.fx('cq-shop'), 'The 10,000th', 1)$$,
  'products: the 10,000th is accepted');
select tests.act_as('postgres');
release savepoint products;
select ok(pg_temp.locked_at_audit(tests.fx('cq-shop'), 'products', 'org'),
  'products: the org row is locked before the product''s audit (lock order)');
select tests.act_as('cq_member');
select throws_ok(
  $$insert into public.products (org_id, name, price) values (tests.fx('cq-shop'), 'One too many', 1)$$,
  '22023', 'an organization has at most 10000 products (this would make 10001)',
  'products: the 10,001st is refused');
select tests.act_as('postgres');
select is((select count(*)::integer from public.products where org_id = tests.fx('cq-shop')), 10000, 'the org keeps 10,000 products');

select * from finish();
rollback;
