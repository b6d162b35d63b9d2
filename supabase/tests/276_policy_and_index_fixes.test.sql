-- Policy and index fixes (20261123010400_policy_and_index_fixes.sql).
begin;
create extension if not exists pgtap with schema extensions;

select plan(21);

-- The plan of a 50-row page as the caller, one text (the policies' subplans included).
create function pg_temp.page_plan(relation text)
returns text
language plpgsql
as $$
declare
  line text;
  plan text := '';
begin
  for line in execute format(
    'explain (costs off) select * from %s x where x.org_id = %L order by %s desc limit 50',
    relation, tests.fx('org_p'), case relation when 'public.webhook_attempts' then 'x.started_at' else 'x.created_at' end)
  loop
    plan := plan || line || E'\n';
  end loop;
  return plan;
end;
$$;
grant execute on function pg_temp.page_plan(text) to public;

-- What the caller reads of an event's deliveries and attempts (through RLS).
create function pg_temp.readable(event text)
returns text
language sql
stable
as $$
  select (select count(*) from public.webhook_deliveries d where d.event_id = tests.fx(event)) || ' deliveries, '
      || (select count(*) from public.webhook_attempts a where a.response_body = 'echo 276 of ' || event) || ' attempts'
$$;
grant execute on function pg_temp.readable(text) to public;

create function pg_temp.org_exists(org text)
returns boolean
language sql
stable
as $$ select exists (select 1 from public.organizations o where o.id = tests.fx(org)) $$;

insert into tests.fixtures (name, id) values
  ('owner_p', tests.create_user('owner-p@policy-index-fixes-276.test')),
  ('admin_p', tests.create_user('admin-p@policy-index-fixes-276.test')),
  ('member_p', tests.create_user('member-p@policy-index-fixes-276.test'));
select tests.remember('org_p', tests.create_org('policy-index-fixes-276', tests.fx('owner_p')));
select tests.add_member(tests.fx('org_p'), tests.fx('admin_p'), 'admin');
select tests.add_member(tests.fx('org_p'), tests.fx('member_p'), 'member');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- 1. Deliveries and attempts: same meaning, no hash of every readable event.
-- ---------------------------------------------------------------------------

select tests.act_as('owner_p');
select tests.remember('ep_p', (select c.endpoint_id
  from private.create_webhook_endpoint(tests.fx('org_p'), 'https://all.policy-fixes-276.example.com/h', null, null) c));
select tests.act_as('service_role');
select tests.remember('x_doc', private.emit_event(tests.fx('org_p'), 'document.ready',
  jsonb_build_object('document_id', gen_random_uuid(), 'name', 'x_doc.pdf')));
select tests.remember('x_invoice', private.emit_event(tests.fx('org_p'), 'invoice.created',
  jsonb_build_object('invoice_id', gen_random_uuid(), 'period_start', '2026-10-01', 'period_end', '2026-11-01',
                     'total_cents', 4900, 'currency', 'usd')));
select tests.remember('x_export', private.emit_event(tests.fx('org_p'), 'export.ready',
  jsonb_build_object('export_id', gen_random_uuid(), 'storage_prefix', 'x/', 'expires_at', '2030-01-01T00:00:00Z',
                     'download_url', 'https://files.example.com/276-signed-link')));
select tests.act_as('postgres');
insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms,
                                     status_code, outcome, response_body)
select d.org_id, d.id, d.endpoint_id, 1, 'https://all.policy-fixes-276.example.com/h', now(), 5, 200, 'succeeded',
       'echo 276 of ' || f.name
from public.webhook_deliveries d join tests.fixtures f on f.id = d.event_id
where d.endpoint_id = tests.fx('ep_p');
select is(
  (select count(*)::integer from public.webhook_attempts where endpoint_id = tests.fx('ep_p')), 3,
  'setup: each of the three events was delivered once and answered'
);

select tests.act_as('member_p');
select is(pg_temp.readable('x_doc'), '1 deliveries, 1 attempts', 'a member reads the delivery and attempt of an event they may read');
select is(pg_temp.readable('x_invoice'), '0 deliveries, 0 attempts', 'a member reads none of an invoice.created event');
select is(pg_temp.readable('x_export'), '0 deliveries, 0 attempts', 'nor of an export.ready event');
select tests.act_as('admin_p');
select is(pg_temp.readable('x_invoice'), '1 deliveries, 1 attempts', 'an admin (webhooks.manage, billing.read) reads those of invoice.created');
select is(pg_temp.readable('x_export'), '1 deliveries, 0 attempts',
  'an admin reads an export.ready delivery as a webhook manager, still not its attempt');
select tests.act_as('owner_p');
select is(
  pg_temp.readable('x_doc') || '; ' || pg_temp.readable('x_invoice') || '; ' || pg_temp.readable('x_export'),
  '1 deliveries, 1 attempts; 1 deliveries, 1 attempts; 1 deliveries, 1 attempts',
  'an owner reads all of them'
);

-- Enough events, delivered (the fan-out, to ep_p) and attempted, for a hash of all of them to be worth planning.
select tests.act_as('postgres');
insert into public.events (org_id, type, payload, created_at)
select tests.fx('org_p'), case when g % 50 = 0 then 'invoice.created' else 'document.ready' end, '{}',
       now() - g * interval '1 second'
from generate_series(1, 2000) g;
insert into public.webhook_attempts (org_id, delivery_id, endpoint_id, attempt_number, url, started_at, duration_ms,
                                     status_code, outcome)
select d.org_id, d.id, d.endpoint_id, 1, 'https://all.policy-fixes-276.example.com/h', d.created_at, 5, 200, 'succeeded'
from public.webhook_deliveries d
where d.endpoint_id = tests.fx('ep_p') and not exists (select 1 from public.webhook_attempts a where a.delivery_id = d.id);
select is(
  (select count(*)::integer from public.webhook_attempts where endpoint_id = tests.fx('ep_p')), 2003,
  'setup: 2,000 more events, each delivered and attempted'
);
analyze public.events, public.webhook_deliveries, public.webhook_attempts;

-- Index probes priced out, as a hash over every readable row is planned at 100,000 events: the
-- policies must still not hash (before 20261123010400 both did here).
select tests.act_as('member_p');
set local enable_indexscan = off;
set local enable_bitmapscan = off;
select unalike(pg_temp.page_plan('public.webhook_deliveries'), '%hashed SubPlan%',
  'a member''s 50-row page of deliveries probes each row''s event: no hashed subplan over every readable event');
select unalike(pg_temp.page_plan('public.webhook_attempts'), '%hashed SubPlan%',
  'nor a page of attempts over every readable delivery');
reset enable_indexscan;
reset enable_bitmapscan;
select alike(pg_temp.page_plan('public.webhook_deliveries'), '%Index Cond: (id = x.event_id)%',
  'the delivery page looks each event up by its id');
select tests.act_as('postgres');

select is(
  (select array_agg(p.policyname::text || ': ' || p.permissive || ' ' || p.cmd || ' ' || p.roles::text order by p.policyname)
   from pg_catalog.pg_policies p
   where p.schemaname = 'public' and p.tablename in ('webhook_deliveries', 'webhook_attempts')
     and p.policyname in ('deliveries are read as their events are, or by webhook managers',
                          'attempts are read as their events are')),
  array['attempts are read as their events are: RESTRICTIVE SELECT {authenticated}',
        'deliveries are read as their events are, or by webhook managers: RESTRICTIVE SELECT {authenticated}'],
  'both policies keep their names, kinds and role'
);

-- ---------------------------------------------------------------------------
-- 2. Every key to auth.users has a full index led by it.
-- ---------------------------------------------------------------------------

select is_empty(
  $$select c.conrelid::regclass::text || '.' || a.attname
    from pg_catalog.pg_constraint c
    join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.confrelid = 'auth.users'::regclass
      and not exists (
        select 1 from pg_catalog.pg_index i
        where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1] and i.indpred is null
      )$$,
  'every foreign key to auth.users (a user''s deletion follows each) has a full index led by its column'
);
select ok(
  (select bool_and(to_regclass(n) is not null) from unnest(array[
    'public.invitations_accepted_by_idx', 'public.invitations_revoked_by_idx', 'public.invitations_invited_by_idx',
    'public.api_keys_created_by_idx', 'public.api_keys_revoked_by_idx', 'public.webhook_endpoints_created_by_idx',
    'public.projects_created_by_idx', 'public.collections_created_by_idx', 'public.upload_batches_created_by_idx']) n),
  'the nine indexes exist'
);

-- ---------------------------------------------------------------------------
-- 3. delete_organization is the one way a user deletes an organization.
-- ---------------------------------------------------------------------------

select tests.remember('org_direct', tests.create_org('policy-index-fixes-276-direct', tests.fx('owner_p')));
select tests.remember('org_rpc', tests.create_org('policy-index-fixes-276-rpc', tests.fx('owner_p')));
select tests.remember('org_svc', tests.create_org('policy-index-fixes-276-svc', tests.fx('owner_p')));

select tests.act_as('owner_p');
select throws_ok(
  format($$delete from public.organizations where id = %L$$, tests.fx('org_direct')),
  '42501', 'permission denied for table organizations',
  'an owner''s direct delete of their organization is refused (42501)'
);
select tests.act_as('admin_p');
select throws_ok(
  format($$delete from public.organizations where id = %L$$, tests.fx('org_p')),
  '42501', 'permission denied for table organizations',
  'so is an admin''s'
);
select tests.act_as('postgres');
select ok(pg_temp.org_exists('org_direct') and pg_temp.org_exists('org_p'), 'both organizations are still there');
select is(
  (select count(*)::integer from pg_catalog.pg_policies
   where schemaname = 'public' and tablename = 'organizations' and cmd in ('DELETE', 'ALL')),
  0,
  'no policy lets a user delete an organization'
);

select tests.act_as('owner_p');
select lives_ok(
  format($$select public.delete_organization(%L, %L)$$, tests.fx('org_rpc'),
    (select o.name from public.organizations o where o.id = tests.fx('org_rpc'))),
  'rpc delete_organization still deletes it for its owner'
);
select tests.act_as('service_role');
select lives_ok(
  format($$delete from public.organizations where id = %L$$, tests.fx('org_svc')),
  'the service role still deletes an organization directly'
);
select tests.act_as('postgres');
select ok(not pg_temp.org_exists('org_rpc') and not pg_temp.org_exists('org_svc'), 'both are gone');

select * from finish();
rollback;
