-- Realtime authorization (20261123000600_realtime_and_storage_authorization.sql):
-- private channels org:<org_id>:<channel>; viewers and up and platform
-- admins receive, members and up send; roles are read at query time; the
-- broadcast helpers write to the org's channel.
--
-- The Realtime server checks a join by setting `realtime.topic` (and the
-- user's role and claims) locally, then:
--   receive: selects its own probe rows of realtime.messages on that topic;
--   send:    inserts a broadcast row on that topic (42501 means refused).
-- The tests below do the same against fixture messages, so rows are read and
-- written on the topic that was set (the policies look at realtime.topic(),
-- not at each row's topic column).
begin;
create extension if not exists pgtap with schema extensions;

select plan(44);

-- ---------------------------------------------------------------------------
-- Fixtures: org A with one member of each role, org B with its owner, and a
-- platform admin. Ids are named fixtures (tests.remember / tests.fx, in
-- 010_test_helpers), readable by every role.
-- ---------------------------------------------------------------------------

-- The private topic of a fixture org. (Not the calls channel: that one is
-- narrowed further to calls.read, see 200_calls; nor uploads, which no user
-- sends on, see 189_knowledge_integrity.)
create function pg_temp.topic(org text, channel text default 'team')
returns text
language sql
stable
as $$ select 'org:' || tests.fx(org)::text || ':' || channel $$;
grant execute on function pg_temp.topic(text, text) to public;

-- Become a fixture user ('anon', 'service_role', 'postgres' are roles) and
-- set the topic as the Realtime server does for a join.
create function pg_temp.join_as(who text, topic text default null)
returns void
language sql
as $$
  select tests.act_as(who);
  select set_config('realtime.topic', coalesce(topic, ''), true);
$$;
grant execute on function pg_temp.join_as(text, text) to public;

-- Saved JWT claims, to come back as the very same token after a membership change.
create temp table saved_claims (who text primary key, claims text not null);
grant all on saved_claims to public;

create function pg_temp.rejoin_with_saved_claims(who text, topic text)
returns void
language sql
as $$
  select set_config('role', 'authenticated', true),
         set_config('request.jwt.claims', (select claims from saved_claims where saved_claims.who = rejoin_with_saved_claims.who), true),
         set_config('realtime.topic', topic, true);
$$;
grant execute on function pg_temp.rejoin_with_saved_claims(text, text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@realtime.test')),
  ('admin_a', tests.create_user('admin-a@realtime.test')),
  ('member_a', tests.create_user('member-a@realtime.test')),
  ('viewer_a', tests.create_user('viewer-a@realtime.test')),
  ('owner_b', tests.create_user('owner-b@realtime.test')),
  ('platform_admin', tests.create_user('platform@realtime.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('realtime-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('realtime-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- Broadcast messages already on both orgs' channels (written as postgres, as
-- the Realtime server's own connection would).
insert into realtime.messages (topic, extension, event, payload, private) values
  (pg_temp.topic('org_a'), 'broadcast', 'fixture', '{"n": "a1"}', true),
  (pg_temp.topic('org_a'), 'broadcast', 'fixture', '{"n": "a2"}', true),
  (pg_temp.topic('org_b'), 'broadcast', 'fixture', '{"n": "b1"}', true);

-- ---------------------------------------------------------------------------
-- private.topic_org_id
-- ---------------------------------------------------------------------------

select is(private.topic_org_id(pg_temp.topic('org_a')), tests.fx('org_a'), 'topic_org_id reads the org of org:<uuid>:team');
select is(private.topic_org_id('org:not-a-uuid:calls'), null::uuid, 'topic_org_id: a non-uuid org part gives null');
select is(private.topic_org_id('calls'), null::uuid, 'topic_org_id: a public topic gives null');
select is(private.topic_org_id('org:' || tests.fx('org_a')::text), null::uuid, 'topic_org_id: a topic without a channel gives null');
select is(private.topic_org_id(pg_temp.topic('org_a') || ':extra'), null::uuid, 'topic_org_id: extra segments give null');
select is(private.topic_org_id('org:' || upper(tests.fx('org_a')::text) || ':calls'), null::uuid,
  'topic_org_id: only the canonical lower-case uuid is accepted');
select is(private.topic_org_id(null), null::uuid, 'topic_org_id: null gives null');

-- ---------------------------------------------------------------------------
-- Receive (select on realtime.messages with the topic set)
-- ---------------------------------------------------------------------------

select pg_temp.join_as('owner_a', pg_temp.topic('org_a'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'the owner of A receives on A''s channel'
);
select pg_temp.join_as('admin_a', pg_temp.topic('org_a'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'an admin of A receives on A''s channel'
);
select pg_temp.join_as('member_a', pg_temp.topic('org_a'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'a member of A receives on A''s channel'
);
select pg_temp.join_as('viewer_a', pg_temp.topic('org_a'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'a viewer of A receives on A''s channel'
);
select pg_temp.join_as('platform_admin', pg_temp.topic('org_a'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'a platform admin receives on A''s channel'
);
-- Refusals are checked on the whole table: not a single row may show.
select pg_temp.join_as('owner_b', pg_temp.topic('org_a'));
select is_empty($$select 1 from realtime.messages$$, 'the owner of B cannot receive on A''s channel (sees no message at all)');
select pg_temp.join_as('anon', pg_temp.topic('org_a'));
select is_empty($$select 1 from realtime.messages$$, 'anon cannot receive on a private org channel (no policy for anon)');
select pg_temp.join_as('owner_a', 'org:not-a-uuid:calls');
select is_empty($$select 1 from realtime.messages$$, 'a topic with a malformed org id authorises nothing');
select pg_temp.join_as('owner_a', 'calls');
select is_empty($$select 1 from realtime.messages$$, 'a topic outside org:<id>:<channel> authorises nothing');
select pg_temp.join_as('owner_a', 'org:' || tests.fx('org_a')::text);
select is_empty($$select 1 from realtime.messages$$, 'a topic without a channel name authorises nothing');
select pg_temp.join_as('platform_admin', 'org:not-a-uuid:calls');
select is_empty($$select 1 from realtime.messages$$, 'a platform admin is not authorised on a malformed topic either');
select pg_temp.join_as('owner_a', null);
select is_empty($$select 1 from realtime.messages$$, 'without a topic nothing is received');
-- Authorised on one's own topic, the rows of another topic stay out of reach.
select pg_temp.join_as('owner_b', pg_temp.topic('org_b'));
select results_eq(
  $$select payload ->> 'n' from realtime.messages where event = 'fixture' order by 1$$,
  $$values ('b1')$$,
  'on B''s own topic, the owner of B sees only B''s rows, none of A''s'
);
select throws_ok(
  format($$insert into realtime.messages (topic, extension, event, payload, private) values (%L, 'broadcast', 'x', '{}', true)$$, pg_temp.topic('org_a')),
  '42501', null,
  'on B''s own topic, the owner of B cannot write a row to A''s topic'
);

-- ---------------------------------------------------------------------------
-- Send (insert into realtime.messages on the topic)
-- ---------------------------------------------------------------------------

select pg_temp.join_as('member_a', pg_temp.topic('org_a'));
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  'a member of A sends on A''s channel'
);
select pg_temp.join_as('admin_a', pg_temp.topic('org_a'));
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  'an admin of A sends on A''s channel'
);
select pg_temp.join_as('owner_a', pg_temp.topic('org_a'));
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  'the owner of A sends on A''s channel'
);
select pg_temp.join_as('viewer_a', pg_temp.topic('org_a'));
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a viewer of A cannot send (realtime.send is member and up)'
);
select pg_temp.join_as('owner_b', pg_temp.topic('org_a'));
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'the owner of B cannot send on A''s channel'
);
select pg_temp.join_as('platform_admin', pg_temp.topic('org_a'));
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'a platform admin cannot send (read-only)'
);
select pg_temp.join_as('anon', pg_temp.topic('org_a'));
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'x', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'anon cannot send on a private org channel'
);
select pg_temp.join_as('postgres');
select is(
  (select count(*)::integer from realtime.messages where topic = pg_temp.topic('org_a') and event = 'x'),
  3,
  'exactly the three allowed sends reached A''s channel'
);

-- ---------------------------------------------------------------------------
-- Roles are read at query time: same token, new role, new answer.
-- ---------------------------------------------------------------------------

select pg_temp.join_as('member_a', pg_temp.topic('org_a'));
insert into saved_claims values ('member_a', current_setting('request.jwt.claims'));
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'before', '{}', true)$$,
  'before the demotion the member sends'
);

select pg_temp.join_as('postgres');
update public.memberships set role = 'viewer'
where org_id = tests.fx('org_a') and user_id = tests.fx('member_a');

select pg_temp.rejoin_with_saved_claims('member_a', pg_temp.topic('org_a'));
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private) values (realtime.topic(), 'broadcast', 'after', '{}', true)$$,
  '42501', 'new row violates row-level security policy for table "messages"',
  'demoted to viewer, the same token can no longer send'
);
select results_eq(
  $$select payload ->> 'n' from realtime.messages where topic = realtime.topic() and event = 'fixture' order by 1$$,
  $$values ('a1'), ('a2')$$,
  'as a viewer the same token still receives'
);

select pg_temp.join_as('postgres');
delete from public.memberships
where org_id = tests.fx('org_a') and user_id = tests.fx('member_a');

select pg_temp.rejoin_with_saved_claims('member_a', pg_temp.topic('org_a'));
select is_empty($$select 1 from realtime.messages$$, 'removed from the org, the same token receives nothing');

-- ---------------------------------------------------------------------------
-- private.broadcast_org_change(): a row trigger that broadcasts to
-- org:<org_id>:<channel>. A probe table stands in for a tenant table.
-- ---------------------------------------------------------------------------

select pg_temp.join_as('postgres');
create table public.tmp_probe (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null,
  note text
);
create trigger broadcast after insert or update or delete on public.tmp_probe
  for each row execute function private.broadcast_org_change('probe');

with inserted as (
  insert into public.tmp_probe (org_id, note) values (tests.fx('org_a'), 'hello') returning id
)
select tests.remember('probe_row', id) from inserted;

select results_eq(
  $$select event, private, extension, payload -> 'record', payload -> 'old_record', payload ->> 'table', payload ->> 'schema'
    from realtime.messages where topic = pg_temp.topic('org_a', 'probe')$$,
  $$select 'INSERT'::text, true, 'broadcast'::text,
           jsonb_build_object('id', tests.fx('probe_row'), 'org_id', tests.fx('org_a'), 'note', 'hello'),
           'null'::jsonb, 'tmp_probe'::text, 'public'::text$$,
  'an insert is broadcast as INSERT, privately, on org:<org_id>:probe with the new record'
);

update public.tmp_probe set note = 'changed' where id = tests.fx('probe_row');
select results_eq(
  $$select payload -> 'old_record' ->> 'note', payload -> 'record' ->> 'note', private
    from realtime.messages where topic = pg_temp.topic('org_a', 'probe') and event = 'UPDATE'$$,
  $$values ('hello', 'changed', true)$$,
  'an update is broadcast as UPDATE with the old and the new record'
);

delete from public.tmp_probe where id = tests.fx('probe_row');
select results_eq(
  $$select payload -> 'old_record' ->> 'note', payload -> 'record'
    from realtime.messages where topic = pg_temp.topic('org_a', 'probe') and event = 'DELETE'$$,
  $$select 'changed'::text, 'null'::jsonb$$,
  'a delete is broadcast as DELETE with the old record'
);

-- The trigger function is a definer: a write by someone who may not send on
-- the channel (here a viewer with table privileges) is still broadcast.
grant insert on public.tmp_probe to authenticated;
select pg_temp.join_as('viewer_a');
select lives_ok(
  $$insert into public.tmp_probe (org_id, note) values (tests.fx('org_a'), 'from a viewer')$$,
  'a viewer writes a probe row'
);
select pg_temp.join_as('postgres');
select is(
  (select count(*)::integer from realtime.messages
   where topic = pg_temp.topic('org_a', 'probe') and event = 'INSERT' and payload -> 'record' ->> 'note' = 'from a viewer'),
  1,
  'the viewer''s write is broadcast though the viewer may not send on the channel'
);
select is(
  (select count(*)::integer from realtime.messages where topic like 'org:%:probe' and topic <> pg_temp.topic('org_a', 'probe')),
  0,
  'nothing was broadcast on another org''s probe channel'
);

-- ---------------------------------------------------------------------------
-- private.broadcast_to_org(): service role only
-- ---------------------------------------------------------------------------

select pg_temp.join_as('service_role');
select lives_ok(
  $$select private.broadcast_to_org(tests.fx('org_a'), 'uploads', 'custom', '{"a": 1}')$$,
  'the service role broadcasts to an org channel'
);
select pg_temp.join_as('postgres');
select results_eq(
  $$select topic, extension, private, payload -> 'a' from realtime.messages where event = 'custom'$$,
  $$select pg_temp.topic('org_a', 'uploads'), 'broadcast'::text, true, '1'::jsonb$$,
  'broadcast_to_org wrote one private broadcast on org:<org_id>:uploads with the payload'
);
select pg_temp.join_as('service_role');
select throws_ok(
  $$select private.broadcast_to_org(tests.fx('org_a'), 'Bad Channel', 'custom', '{}')$$,
  '22023', 'invalid channel name: Bad Channel',
  'broadcast_to_org rejects a malformed channel name'
);
select pg_temp.join_as('owner_a');
select throws_ok(
  $$select private.broadcast_to_org(tests.fx('org_a'), 'uploads', 'custom', '{}')$$,
  '42501', 'permission denied for function broadcast_to_org',
  'authenticated may not execute broadcast_to_org, owners included'
);
select pg_temp.join_as('postgres');
select is(
  (select count(*)::integer from realtime.messages where event = 'custom'),
  1,
  'the refused calls broadcast nothing'
);

select * from finish();
rollback;
