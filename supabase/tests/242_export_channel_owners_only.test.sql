-- 20261123007100: org:<org_id>:exports is received by the org's owners only;
-- a platform admin who is not a member receives nothing on it, while still
-- receiving the channels open to platform admins (calls).
begin;
create extension if not exists pgtap with schema extensions;

select plan(5);

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@channel242.test')),
  ('ops', tests.create_user('ops@channel242.test', '{"platform_admin": true}'));
select tests.remember('org', tests.create_org('channel242-org', tests.fx('owner')));

select tests.act_as('postgres');
insert into realtime.messages (topic, extension, event, payload, private) values
  ('org:' || tests.fx('org') || ':exports', 'broadcast', 'export', '{"status": "running"}', true),
  ('org:' || tests.fx('org') || ':calls', 'broadcast', 'call', '{"status": "ringing"}', true);

select is((select platform_admins_read from private.narrowed_channels where channel = 'exports'), false,
  'the exports channel is registered without platform admins');

select tests.act_as('ops');
select set_config('realtime.topic', 'org:' || tests.fx('org') || ':exports', true);
select is((select count(*)::int from realtime.messages where topic = realtime.topic()), 0,
  'exports channel: a platform admin receives nothing');
select set_config('realtime.topic', 'org:' || tests.fx('org') || ':calls', true);
select is((select count(*)::int from realtime.messages where topic = realtime.topic()), 1,
  'calls channel: a platform admin still receives');

select tests.act_as('owner');
select set_config('realtime.topic', 'org:' || tests.fx('org') || ':exports', true);
select is((select count(*)::int from realtime.messages where topic = realtime.topic()), 1,
  'exports channel: the owner receives');
select tests.act_as('ops');
select set_config('realtime.topic', 'org:' || tests.fx('org') || ':exports', true);
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  '42501', null, 'exports channel: a platform admin cannot send either'
);

select * from finish();
rollback;
