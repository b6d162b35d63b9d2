-- A delivery queued by hand names who queued it: a webhook.test send or a
-- replay records auth.uid() in requested_by; deliveries of emitted events name
-- nobody; the user's deletion clears it (20261123015300, 015310).
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@webhook-requester-326.test')),
  ('admin_a', tests.create_user('admin-a@webhook-requester-326.test'));
select tests.remember('org_a', tests.create_org('webhook-requester-326-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
delete from vault.secrets where name in ('project_url', 'service_role_key');

select tests.act_as('admin_a');
select tests.remember('ep_a', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://a.requester-326.example.com/h', null, null) c;
select tests.remember('test_send', private.send_test_webhook(tests.fx('ep_a')));

select tests.act_as('postgres');
select tests.remember('ev_a', private.emit_event(tests.fx('org_a'), 'document.failed',
  '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789e6", "name": "a", "reason": "r"}'));
select tests.remember('emitted', d.id) from public.webhook_deliveries d where d.event_id = tests.fx('ev_a');

select tests.act_as('owner_a');
select tests.remember('replay', private.replay_webhook_delivery(tests.fx('emitted')));

select tests.act_as('postgres');
select is(
  (select requested_by from public.webhook_deliveries where id = tests.fx('test_send')), tests.fx('admin_a'),
  'a test send names the admin who sent it'
);
select is(
  (select requested_by from public.webhook_deliveries where id = tests.fx('replay')), tests.fx('owner_a'),
  'a replay names the owner who asked for it'
);
select is(
  (select replay_of from public.webhook_deliveries where id = tests.fx('replay')), tests.fx('emitted'),
  'the replay still points at its original'
);
select is(
  (select requested_by from public.webhook_deliveries where id = tests.fx('emitted')), null::uuid,
  'a delivery of an emitted event names nobody'
);

select tests.act_as('admin_a');
select is(
  (select requested_by from public.webhook_deliveries where id = tests.fx('test_send')), tests.fx('admin_a'),
  'members who read the delivery read who queued it'
);

select tests.act_as('postgres');
select is(
  (select i.indexdef like '%USING btree (requested_by)'
   from pg_catalog.pg_indexes i where i.indexname = 'webhook_deliveries_requested_by_idx'),
  true,
  'a user''s deletion finds their sends by an index'
);

delete from auth.users where id = tests.fx('admin_a');
select is(
  (select requested_by from public.webhook_deliveries where id = tests.fx('test_send')), null::uuid,
  'the sender''s deletion clears requested_by'
);
select is(
  (select count(*) from public.webhook_deliveries where id = tests.fx('test_send')), 1::bigint,
  'and keeps the delivery'
);

select * from finish();
rollback;
