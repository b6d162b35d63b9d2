-- The owner-only replay refusal's marker (20261123005500_owner_only_replay_marker.sql):
-- replay_webhook_delivery refuses an export.ready replay by an admin with
-- 42501 and detail 'owner_only_event', which the webhooks function tests
-- instead of the message; a caller without webhooks.manage gets 42501
-- without it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(5);

-- How a replay is refused: SQLSTATE and detail ('-' for none), or 'replayed'.
create function pg_temp.replay_refusal(delivery_id uuid)
returns text
language plpgsql
as $$
declare
  state text;
  detail text;
begin
  perform private.replay_webhook_delivery(delivery_id);
  return 'replayed';
exception when others then
  get stacked diagnostics state = returned_sqlstate, detail = pg_exception_detail;
  return state || ' ' || coalesce(nullif(detail, ''), '-');
end;
$$;
grant execute on function pg_temp.replay_refusal(uuid) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@replay-marker.test')),
  ('admin_a', tests.create_user('admin-a@replay-marker.test')),
  ('member_a', tests.create_user('member-a@replay-marker.test'));
select tests.remember('org_a', tests.create_org('replay-marker-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
delete from vault.secrets where name in ('project_url', 'service_role_key');

select tests.act_as('owner_a');
select tests.remember('ep_owner', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://owner.example.com/all', null, null) c;
select tests.act_as('service_role');
select tests.remember('export_1', private.emit_event(tests.fx('org_a'), 'export.ready', jsonb_build_object(
  'export_id', gen_random_uuid(), 'storage_prefix', 'x/', 'expires_at', '2030-01-01T00:00:00Z')));
select tests.remember('doc_1', private.emit_event(tests.fx('org_a'), 'document.ready', jsonb_build_object(
  'document_id', gen_random_uuid(), 'name', 'a.pdf')));
select tests.act_as('postgres');
select tests.remember('export_delivery', d.id)
from public.webhook_deliveries d where d.event_id = tests.fx('export_1') and d.endpoint_id = tests.fx('ep_owner');
select tests.remember('doc_delivery', d.id)
from public.webhook_deliveries d where d.event_id = tests.fx('doc_1') and d.endpoint_id = tests.fx('ep_owner');

select tests.act_as('admin_a');
select throws_ok(
  format('select private.replay_webhook_delivery(%L)', tests.fx('export_delivery')),
  '42501', null,
  'an admin replaying an export.ready delivery is refused with 42501'
);
select is(
  pg_temp.replay_refusal(tests.fx('export_delivery')), '42501 owner_only_event',
  'and the refusal carries the detail owner_only_event'
);
select is(
  pg_temp.replay_refusal(tests.fx('doc_delivery')), 'replayed',
  'an admin still replays other types'
);

select tests.act_as('member_a');
select is(
  pg_temp.replay_refusal(tests.fx('export_delivery')), '42501 -',
  'a member without webhooks.manage gets 42501 without the marker'
);

select tests.act_as('owner_a');
select is(
  pg_temp.replay_refusal(tests.fx('export_delivery')), 'replayed',
  'an owner replays the export.ready delivery'
);

select * from finish();
rollback;
