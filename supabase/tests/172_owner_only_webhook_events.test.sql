-- Owner-only webhook events (20261123004100_owner_only_webhook_events.sql):
-- export.ready (readable only by owners in the app) is fanned out, replayed
-- and sent only to endpoints whose URL and filter were last set by someone
-- who is an owner at that moment; every other type goes as before.
--
-- Claims run at a fixed time in 2003, when only this file's deliveries
-- (moved there) are due.
begin;
create extension if not exists pgtap with schema extensions;

select plan(31);

create function pg_temp.create_endpoint(label text, url text, event_types text[])
returns void
language sql
as $$
  select tests.remember(label, c.endpoint_id)
  from private.create_webhook_endpoint(tests.fx('org_a'), url, null, event_types) c
$$;
grant execute on function pg_temp.create_endpoint(text, text, text[]) to public;

create function pg_temp.emit(label text, type text)
returns void
language sql
as $$
  select tests.remember(label, private.emit_event(tests.fx('org_a'), type, case type
    when 'export.ready' then jsonb_build_object('export_id', gen_random_uuid(), 'storage_prefix', 'x/',
                                                'expires_at', '2030-01-01T00:00:00Z')
    else jsonb_build_object('document_id', gen_random_uuid(), 'name', 'a.pdf') end))
$$;
grant execute on function pg_temp.emit(text, text) to public;

-- The endpoints (by fixture name) an event was fanned out to.
create function pg_temp.fanned_out_to(event text)
returns text[]
language sql
as $$
  select coalesce(array_agg(f.name order by f.name), '{}')
  from public.webhook_deliveries d join tests.fixtures f on f.id = d.endpoint_id
  where d.event_id = tests.fx(event) and d.replay_of is null
$$;

create function pg_temp.delivery(event text, endpoint text)
returns uuid
language sql
stable
as $$
  select d.id from public.webhook_deliveries d
  where d.event_id = tests.fx(event) and d.endpoint_id = tests.fx(endpoint) and d.replay_of is null
$$;
grant execute on function pg_temp.delivery(text, text) to public;

create function pg_temp.configured_by(endpoint text)
returns uuid
language sql
stable
as $$ select e.configured_by from public.webhook_endpoints e where e.id = tests.fx(endpoint) $$;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@owner-only.test')),
  ('owner2_a', tests.create_user('owner2-a@owner-only.test')),
  ('admin_a', tests.create_user('admin-a@owner-only.test'));
select tests.remember('org_a', tests.create_org('owner-only-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('owner2_a'), 'owner');
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- ---------------------------------------------------------------------------
-- Who set the URL and filter
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select pg_temp.create_endpoint('ep_owner', 'https://owner.example.com/all', null);
select pg_temp.create_endpoint('ep_owner_docs', 'https://owner.example.com/docs', array['document.ready']);
select pg_temp.create_endpoint('ep_owner_repointed', 'https://owner.example.com/exports', array['export.ready']);
select tests.act_as('owner2_a');
select pg_temp.create_endpoint('ep_owner2', 'https://owner2.example.com/exports', array['export.ready']);
select tests.act_as('admin_a');
select pg_temp.create_endpoint('ep_admin', 'https://admin.example.com/all', null);
select pg_temp.create_endpoint('ep_admin_exports', 'https://admin.example.com/exports', array['export.ready']);
select tests.act_as('postgres');
with e as (insert into public.webhook_endpoints (org_id, url) values (tests.fx('org_a'), 'https://direct.example.com/all') returning id)
select tests.remember('ep_direct', e.id) from e;

select is(pg_temp.configured_by('ep_owner'), tests.fx('owner_a'), 'configured_by: the creator set the URL and filter');
select is(pg_temp.configured_by('ep_admin'), tests.fx('admin_a'), 'configured_by: an admin''s endpoint names the admin');
select is(pg_temp.configured_by('ep_direct'), null, 'configured_by: a row written outside any user''s session names nobody');

select tests.act_as('admin_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner'), null, 'Renamed by the admin', null, false);
select from private.update_webhook_endpoint(tests.fx('ep_owner'), null, null, null, true);
select from private.update_webhook_endpoint(tests.fx('ep_owner'), 'https://owner.example.com/all', null, null, null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_owner'), tests.fx('owner_a'),
  'configured_by: an admin changing the description, disabling and re-enabling, or saving the same URL keeps the owner');

select tests.act_as('admin_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner_repointed'), 'https://admin.example.com/stolen', null, null, null);
select from private.update_webhook_endpoint(tests.fx('ep_owner_docs'), null, null, array['document.ready', 'export.ready'], null);
select tests.act_as('postgres');
select is(pg_temp.configured_by('ep_owner_repointed'), tests.fx('admin_a'), 'configured_by: an admin changing the URL takes it over');
select is(pg_temp.configured_by('ep_owner_docs'), tests.fx('admin_a'), 'configured_by: an admin changing the filter takes it over');

update public.webhook_endpoints set configured_by = tests.fx('owner_a') where id = tests.fx('ep_admin');
update public.webhook_endpoints set configured_by = tests.fx('owner_a'), description = 'x' where id = tests.fx('ep_direct');
select is(pg_temp.configured_by('ep_admin'), tests.fx('admin_a'), 'configured_by cannot be written directly (even as the table owner)');
select is(pg_temp.configured_by('ep_direct'), null, 'configured_by cannot be written alongside other columns either');

-- ---------------------------------------------------------------------------
-- Fan-out
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.emit('export_1', 'export.ready');
select pg_temp.emit('doc_1', 'document.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('export_1'), array['ep_owner', 'ep_owner2'],
  'fan-out: export.ready reaches only the subscribed endpoints whose URL and filter an owner set');
select is(pg_temp.fanned_out_to('doc_1'), array['ep_admin', 'ep_direct', 'ep_owner', 'ep_owner_docs'],
  'fan-out: every other type reaches every subscribed endpoint, whoever set it up');

-- Membership is checked when the event is emitted: a demoted owner's endpoint stops receiving.
update public.memberships set role = 'admin' where org_id = tests.fx('org_a') and user_id = tests.fx('owner2_a');
select tests.act_as('service_role');
select pg_temp.emit('export_2', 'export.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('export_2'), array['ep_owner'],
  'fan-out: an endpoint set up by an owner since demoted to admin receives no export.ready');
update public.memberships set role = 'owner' where org_id = tests.fx('org_a') and user_id = tests.fx('owner2_a');
select tests.act_as('service_role');
select pg_temp.emit('export_3', 'export.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('export_3'), array['ep_owner', 'ep_owner2'], 'fan-out: and receives again once an owner again');

-- An owner saving the URL takes the endpoint back.
select tests.act_as('owner_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner_repointed'), 'https://owner.example.com/exports', null, null, null);
select tests.act_as('service_role');
select pg_temp.emit('export_4', 'export.ready');
select tests.act_as('postgres');
select is(pg_temp.fanned_out_to('export_4'), array['ep_owner', 'ep_owner2', 'ep_owner_repointed'],
  'fan-out: an endpoint an owner saved again receives export.ready again');

-- ---------------------------------------------------------------------------
-- Replay
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  format('select private.replay_webhook_delivery(%L)', pg_temp.delivery('export_1', 'ep_owner')),
  '42501', 'only owners may replay a delivery of an export.ready event',
  'replay: an admin may not replay an export.ready delivery'
);
select lives_ok(
  format('select private.replay_webhook_delivery(%L)', pg_temp.delivery('doc_1', 'ep_admin')),
  'replay: an admin still replays other types'
);
select tests.act_as('owner_a');
select lives_ok(
  format('select private.replay_webhook_delivery(%L)', pg_temp.delivery('export_1', 'ep_owner')),
  'replay: an owner replays an export.ready delivery to an endpoint an owner set up'
);
-- The admin repoints ep_owner2 after export_1 was queued for it.
select tests.act_as('admin_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner2'), 'https://admin.example.com/stolen-too', null, null, null);
select tests.act_as('owner_a');
select throws_ok(
  format('select private.replay_webhook_delivery(%L)', pg_temp.delivery('export_1', 'ep_owner2')),
  '22023', 'this endpoint''s URL or event filter was last set by someone who is not an owner, so it receives no export.ready events; an owner must save it first',
  'replay: not even an owner replays export.ready to an endpoint an admin repointed'
);
select tests.act_as('postgres');
select is(
  (select count(*)::int from public.webhook_deliveries d
   where d.replay_of in (pg_temp.delivery('export_1', 'ep_owner'), pg_temp.delivery('export_1', 'ep_owner2'))),
  1, 'replay: only the owner''s replay to the owner''s endpoint was queued'
);

-- ---------------------------------------------------------------------------
-- The claim checks again before every attempt
-- ---------------------------------------------------------------------------

-- Queue this file's deliveries in 2003 (and only them), as the dispatcher's clock sees them.
update public.webhook_deliveries d set next_attempt_at = '2003-01-01 00:00:00+00'
where d.org_id = tests.fx('org_a') and d.status = 'pending';
-- ep_owner: demote nobody, it stays an owner's. ep_owner_repointed (export_4): the admin repoints it again.
select tests.act_as('admin_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner_repointed'), 'https://admin.example.com/stolen-again', null, null, null);
select tests.act_as('service_role');
create temp table claims as
select * from private.claim_webhook_deliveries(500, interval '60 seconds', '2003-01-01 00:00:01+00');
select tests.act_as('postgres');

select is(
  (select array_agg(distinct f.name order by f.name) from claims c
   join public.webhook_deliveries d on d.id = c.delivery_id
   join public.events ev on ev.id = d.event_id and ev.type = 'export.ready'
   join tests.fixtures f on f.id = c.endpoint_id),
  array['ep_owner'],
  'claim: export.ready is sent only to endpoints an owner still controls'
);
select is(
  (select status from public.webhook_deliveries where id = pg_temp.delivery('export_1', 'ep_owner2')),
  'canceled', 'claim: an export.ready queued before an admin repointed the endpoint is canceled, not sent'
);
select is(
  (select status from public.webhook_deliveries where id = pg_temp.delivery('export_4', 'ep_owner_repointed')),
  'canceled', 'claim: the same after the admin repointed an endpoint an owner had taken back'
);
select is(
  (select status from public.webhook_deliveries where id = pg_temp.delivery('export_1', 'ep_owner')),
  'sending', 'claim: an export.ready to an owner''s endpoint is claimed'
);
select is(
  (select array_agg(distinct f.name order by f.name) from claims c
   join public.webhook_deliveries d on d.id = c.delivery_id and d.event_id = tests.fx('doc_1')
   join tests.fixtures f on f.id = c.endpoint_id),
  array['ep_admin', 'ep_direct', 'ep_owner', 'ep_owner_docs'],
  'claim: other types are claimed for every endpoint, whoever set it up'
);

-- A delivery queued for an owner's endpoint whose owner is demoted before the retry.
update public.webhook_deliveries d set status = 'pending', next_attempt_at = '2003-01-02 00:00:00+00', locked_until = null
where d.id = pg_temp.delivery('export_3', 'ep_owner2');
select is(
  (select status from public.webhook_deliveries where id = pg_temp.delivery('export_3', 'ep_owner2')),
  'pending', 'claim: (an export.ready queued for owner 2''s endpoint)'
);
-- The admin repointed ep_owner2 above; an owner saves it again, then is demoted.
select tests.act_as('owner2_a');
select from private.update_webhook_endpoint(tests.fx('ep_owner2'), 'https://owner2.example.com/exports', null, null, null);
select tests.act_as('postgres');
update public.memberships set role = 'admin' where org_id = tests.fx('org_a') and user_id = tests.fx('owner2_a');
select tests.act_as('service_role');
insert into claims select * from private.claim_webhook_deliveries(500, interval '60 seconds', '2003-01-02 00:00:01+00');
select tests.act_as('postgres');
select is(
  (select status from public.webhook_deliveries where id = pg_temp.delivery('export_3', 'ep_owner2')),
  'canceled', 'claim: an export.ready whose endpoint''s owner was demoted before the attempt is canceled'
);
select is(
  (select count(*)::int from claims where delivery_id = pg_temp.delivery('export_3', 'ep_owner2')),
  0, 'claim: and never handed to a dispatcher'
);

-- ---------------------------------------------------------------------------
-- Definitions
-- ---------------------------------------------------------------------------

select is(private.event_type_read_permission('export.ready'), 'data.export', 'export.ready needs data.export');
select is(private.event_type_read_permission('document.ready'), null, 'other types need nothing beyond webhooks.read');
select is(
  (select min_role::text from public.role_permissions where permission = 'data.export'), 'owner',
  'data.export is the owners'''
);

-- Deleting a user who configured an endpoint (20261123004400): the key's
-- "set null" goes through, and the endpoint receives no owner-only events.
select tests.act_as('postgres');
delete from auth.users where id = tests.fx('owner2_a');
select is(
  (select configured_by from public.webhook_endpoints where id = tests.fx('ep_owner2')), null::uuid,
  'a configurer''s deletion clears configured_by (the user could not be deleted before)'
);
select is(
  private.webhook_endpoint_receives(tests.fx('org_a'), null, 'export.ready'), false,
  'and an endpoint without a configurer receives no owner-only events'
);

select * from finish();
rollback;
