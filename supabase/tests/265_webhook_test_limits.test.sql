-- Test sends and replays are limited per org a minute and per endpoint
-- queue, and the claim takes turns per org, then per endpoint
-- (20261123009200_webhook_test_limits.sql). The file runs in one
-- transaction, so now() and with it the rate-limit window stay fixed.
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

-- How a call is refused: SQLSTATE, detail ('-' for none) and message, or 'ok'.
create function pg_temp.refusal(call text)
returns text
language plpgsql
as $$
declare
  state text;
  detail text;
  message text;
begin
  execute call;
  return 'ok';
exception when others then
  get stacked diagnostics state = returned_sqlstate, detail = pg_exception_detail, message = message_text;
  return state || ' ' || coalesce(nullif(detail, ''), '-') || ': ' || message;
end;
$$;
grant execute on function pg_temp.refusal(text) to public;

-- Sends `times` test events to an endpoint and answers how many were queued; stops at the first refusal.
create function pg_temp.send_tests(endpoint text, times integer)
returns integer
language plpgsql
as $$
declare
  sent integer := 0;
begin
  for i in 1..times loop
    perform private.send_test_webhook(tests.fx(endpoint));
    sent := sent + 1;
  end loop;
  return sent;
end;
$$;
grant execute on function pg_temp.send_tests(text, integer) to public;

create function pg_temp.replay_times(delivery text, times integer)
returns integer
language plpgsql
as $$
declare
  sent integer := 0;
begin
  for i in 1..times loop
    perform private.replay_webhook_delivery(tests.fx(delivery));
    sent := sent + 1;
  end loop;
  return sent;
end;
$$;
grant execute on function pg_temp.replay_times(text, integer) to public;

create function pg_temp.queued(endpoint text)
returns bigint
language sql
stable
as $$
  select count(*) from public.webhook_deliveries d
  where d.endpoint_id = tests.fx(endpoint) and d.status in ('pending', 'sending')
$$;

create function pg_temp.test_events(org text)
returns bigint
language sql
stable
as $$ select count(*) from public.events ev where ev.org_id = tests.fx(org) and ev.type = 'webhook.test' $$;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@webhook-test-limits-265.test')),
  ('admin_a', tests.create_user('admin-a@webhook-test-limits-265.test')),
  ('member_a', tests.create_user('member-a@webhook-test-limits-265.test')),
  ('owner_b', tests.create_user('owner-b@webhook-test-limits-265.test'));
select tests.remember('org_a', tests.create_org('webhook-test-limits-265-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('webhook-test-limits-265-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
delete from vault.secrets where name in ('project_url', 'service_role_key');

select tests.act_as('admin_a');
select tests.remember('ep_a', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a.test-limits-265.example.com/h', null, null) c;
select tests.remember('ep_a2', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a2.test-limits-265.example.com/h', null, null) c;
select tests.act_as('owner_b');
select tests.remember('ep_b', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_b'), 'https://b.test-limits-265.example.com/h', null, null) c;
select tests.remember('ep_q', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_b'), 'https://q.test-limits-265.example.com/h', null, null) c;

select tests.act_as('postgres');
select ok(
  not has_function_privilege('authenticated', 'private.allow_manual_webhook_send(public.webhook_endpoints, text)', 'execute'),
  'the limit is taken only inside send_test_webhook and replay_webhook_delivery'
);

-- ---------------------------------------------------------------------------
-- 1. Test sends: 10 a minute per org, over all its endpoints.
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select is(pg_temp.send_tests('ep_a', 6) + pg_temp.send_tests('ep_a2', 4), 10, 'an admin sends 10 test events a minute');
select matches(
  pg_temp.refusal(format('select private.send_test_webhook(%L)', tests.fx('ep_a2'))),
  '^PT429 [0-9]+: at most 10 webhook test sends a minute per organization; try again in [0-9]+ seconds$',
  'the 11th, to any endpoint of the org, is PT429 with the seconds to wait as its detail'
);
select ok(
  (select rtrim(split_part(pg_temp.refusal(format('select private.send_test_webhook(%L)', tests.fx('ep_a'))), ' ', 2), ':')::integer
   between 1 and 66),
  'the wait is at most the rest of the minute and the 6 s of the next it takes 10 hits to weigh 9'
);
select tests.act_as('postgres');
select is(pg_temp.test_events('org_a'), 10::bigint, 'a refused test send emits no event');
select is(pg_temp.queued('ep_a') + pg_temp.queued('ep_a2'), 10::bigint, 'a refused test send queues no delivery');
select is(
  (select sum(h.hits)::integer from private.rate_limit_hits h where h.bucket = 'webhook_test:' || tests.fx('org_a')),
  10,
  'refused sends take nothing from the bucket'
);

select tests.act_as('member_a');
select matches(
  pg_temp.refusal(format('select private.send_test_webhook(%L)', tests.fx('ep_a'))),
  '^42501 ',
  'a member is refused for lacking webhooks.manage, not for the limit'
);

select tests.act_as('owner_b');
select is(pg_temp.send_tests('ep_b', 1), 1, 'another org''s test sends are not limited by org_a''s');

-- ---------------------------------------------------------------------------
-- 2. Replays: 60 a minute per org, a bucket apart from test sends.
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select tests.remember('d_a', (select d.id from public.webhook_deliveries d where d.endpoint_id = tests.fx('ep_a2') limit 1));
select tests.act_as('admin_a');
select is(pg_temp.replay_times('d_a', 60), 60, 'an admin replays 60 deliveries a minute, test sends spent or not');
select matches(
  pg_temp.refusal(format('select private.replay_webhook_delivery(%L)', tests.fx('d_a'))),
  '^PT429 [0-9]+: at most 60 webhook replay sends a minute per organization; try again in [0-9]+ seconds$',
  'the 61st replay is PT429 with the seconds to wait'
);
select tests.act_as('postgres');
select is(pg_temp.queued('ep_a2'), 64::bigint, 'a refused replay queues nothing');
select is(
  (select count(*) from public.webhook_deliveries d where d.replay_of = tests.fx('d_a')),
  60::bigint,
  'each allowed replay is one delivery pointing back at the original'
);

-- ---------------------------------------------------------------------------
-- 3. An endpoint with 100 or more deliveries queued takes no test or replay.
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(pg_temp.send_tests('ep_q', 1), 1, 'a test send to an endpoint with nothing queued is accepted');
select tests.act_as('postgres');
select tests.remember('d_q', (select d.id from public.webhook_deliveries d where d.endpoint_id = tests.fx('ep_q')));
-- 102 more of the same event: 4 of them sending (in flight counts as queued), 3 already delivered.
insert into public.webhook_deliveries (org_id, endpoint_id, event_id)
select d.org_id, d.endpoint_id, d.event_id from public.webhook_deliveries d, generate_series(1, 102)
where d.id = tests.fx('d_q');
update public.webhook_deliveries d set status = 'sending', locked_until = now() + interval '1 minute'
where d.id in (select x.id from public.webhook_deliveries x
               where x.endpoint_id = tests.fx('ep_q') and x.id <> tests.fx('d_q') order by x.id limit 4);
update public.webhook_deliveries d set status = 'succeeded', next_attempt_at = null
where d.id in (select x.id from public.webhook_deliveries x
               where x.endpoint_id = tests.fx('ep_q') and x.status = 'pending' and x.id <> tests.fx('d_q')
               order by x.id limit 3);
select is(pg_temp.queued('ep_q'), 100::bigint, 'the endpoint has 100 deliveries queued, 4 of them sending');

select tests.act_as('owner_b');
select is(
  pg_temp.refusal(format('select private.send_test_webhook(%L)', tests.fx('ep_q'))),
  'PT409 -: the endpoint already has 100 or more deliveries queued; send again once they are delivered',
  'a test send to it is PT409'
);
select is(
  pg_temp.refusal(format('select private.replay_webhook_delivery(%L)', tests.fx('d_q'))),
  'PT409 -: the endpoint already has 100 or more deliveries queued; send again once they are delivered',
  'a replay to it is PT409'
);
select tests.act_as('postgres');
select is(pg_temp.queued('ep_q'), 100::bigint, 'the refusals queued nothing');
select is(pg_temp.test_events('org_b'), 2::bigint, 'the refused test send emitted no event');
select is(
  (select sum(h.hits)::integer from private.rate_limit_hits h where h.bucket = 'webhook_test:' || tests.fx('org_b')),
  2,
  'a send refused for the queue takes nothing from the org''s bucket'
);

update public.webhook_deliveries d set status = 'failed', next_attempt_at = null, locked_until = null
where d.id = (select x.id from public.webhook_deliveries x
              where x.endpoint_id = tests.fx('ep_q') and x.status = 'sending' order by x.id limit 1);
select tests.act_as('owner_b');
select is(pg_temp.send_tests('ep_q', 1), 1, 'with 99 queued, a test send is accepted again');
select tests.act_as('postgres');
select is(pg_temp.queued('ep_q'), 100::bigint, 'it is queued');

-- ---------------------------------------------------------------------------
-- 4. The claim takes turns per org, then per endpoint within the org.
-- ---------------------------------------------------------------------------

-- org_a: 5 endpoints with 2 due deliveries each, all older than org_b's one
-- delivery. Due in 1987, so nothing else in the database is due with them
-- (sections 1 to 3 queued theirs now).
select tests.act_as('postgres');
with added as (
  insert into public.webhook_endpoints (org_id, url)
  select tests.fx('org_a'), format('https://a%s.test-limits-265.example.com/h', i) from generate_series(3, 5) i
  returning id, url
)
select tests.remember('ep_a' || substring(url from 'https://a(\d)\.'), id) from added;
insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
select tests.fx('org_a'), tests.fx(a.ep), d.event_id, '1987-01-01'::timestamptz + make_interval(secs => 10 * round + a.n)
from public.webhook_deliveries d
cross join unnest(array['ep_a', 'ep_a2', 'ep_a3', 'ep_a4', 'ep_a5']) with ordinality a(ep, n)
cross join generate_series(0, 1) round
where d.id = tests.fx('d_a');
insert into public.webhook_deliveries (org_id, endpoint_id, event_id, next_attempt_at)
select d.org_id, d.endpoint_id, d.event_id, '1987-01-01 00:01'
from public.webhook_deliveries d where d.endpoint_id = tests.fx('ep_b') limit 1;

create temp table claims (round text, n bigint, endpoint_id uuid);
grant all on claims to public;
create function pg_temp.claim(round text, batch integer)
returns void
language sql
as $$
  insert into claims
  select claim.round, c.n, c.endpoint_id
  from private.claim_webhook_deliveries(claim.batch, interval '60 seconds', '1987-01-01 01:00') with ordinality c(
    delivery_id, attempt_number, message_id, endpoint_id, url, secrets, body, n)
$$;
grant execute on function pg_temp.claim(text, integer) to public;

select tests.act_as('service_role');
select pg_temp.claim('first', 2);
select is(
  (select array_agg(c.endpoint_id order by c.n) from claims c where c.round = 'first'),
  array[tests.fx('ep_a'), tests.fx('ep_b')],
  'a claim of 2 takes org_a''s oldest, then org_b''s one, though each of org_a''s 5 endpoints has older ones'
);
select pg_temp.claim('second', 4);
select set_eq(
  $$select endpoint_id from claims where round = 'second'$$,
  $$select tests.fx(ep) from unnest(array['ep_a2', 'ep_a3', 'ep_a4', 'ep_a5']) ep$$,
  'within the org, endpoints still take turns: the next 4 go to its other 4 endpoints, not to ep_a''s second'
);
select pg_temp.claim('rest', 16);
select is(
  (select count(*) from claims c where c.round = 'rest'),
  5::bigint,
  'an org alone with due deliveries fills the batch'
);

select * from finish();
rollback;
