-- Domain events (20261123000700_events.sql): private.emit_event is the one
-- way in and validates every payload against the catalogue's JSON schema;
-- only the service role and definer code may call it; nobody writes
-- public.events directly; members and up read their org's events; a new
-- membership emits member.joined in the same transaction; the catalogue is
-- well formed and readable by every signed-in user.
begin;
create extension if not exists pgtap with schema extensions;

select plan(68);

-- ---------------------------------------------------------------------------
-- Fixtures. Org A has one member of each role, org B only its owner (our
-- outsider), plus a platform admin. Ids are named fixtures (tests.remember /
-- tests.fx, in 010_test_helpers), which every role may read, so the SQL
-- strings handed to pgTAP can use them whatever the current role. (The
-- expected error messages make sure a 42501 comes from the code under test,
-- not from these helpers.)
-- ---------------------------------------------------------------------------

-- Counters and values taken at one point to compare with later.
create temp table marks (label text primary key, n bigint not null);
grant all on marks to public;
create temp table tokens (label text primary key, token text not null);
grant all on tokens to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@events.test')),
  ('admin_a', tests.create_user('admin-a@events.test')),
  ('member_a', tests.create_user('member-a@events.test')),
  ('viewer_a', tests.create_user('viewer-a@events.test')),
  ('owner_b', tests.create_user('owner-b@events.test')),
  ('joiner', tests.create_user('joiner@events.test')),
  ('rolled_back', tests.create_user('rolled-back@events.test')),
  ('platform_admin', tests.create_user('platform@events.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('events-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('events-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- ---------------------------------------------------------------------------
-- member.joined: every way a membership row appears emits the event, with
-- the user and the role, in the transaction that added the member.
-- ---------------------------------------------------------------------------

select results_eq(
  $$select payload ->> 'user_id', payload ->> 'role' from public.events
    where org_id = tests.fx('org_a') and type = 'member.joined' order by payload ->> 'role'$$,
  $$values (tests.fx('admin_a')::text, 'admin'), (tests.fx('member_a')::text, 'member'),
           (tests.fx('owner_a')::text, 'owner'), (tests.fx('viewer_a')::text, 'viewer')$$,
  'member.joined: each member added to org A (the owner by create_org, the others by add_member) emitted one event with user_id and role'
);
select ok(
  (select bool_and(e.created_at = now()) from public.events e where e.org_id = tests.fx('org_a')),
  'member.joined: the events carry this transaction''s timestamp (written by the trigger, not later)'
);
select is(
  (select count(*)::integer from public.events where org_id = tests.fx('org_b')),
  1,
  'member.joined: org B, with only its owner, has exactly one event'
);

-- The same transaction: when the membership is rolled back, so is its event.
select throws_ok(
  $q$do $$ begin
      perform tests.add_member(tests.fx('org_b'), tests.fx('rolled_back'), 'member');
      raise exception 'abandon the membership';
    end $$$q$,
  'P0001', 'abandon the membership',
  'member.joined: a membership added and then abandoned (the subtransaction fails) ...'
);
select is(
  (select count(*)::integer from public.events where payload ->> 'user_id' = tests.fx('rolled_back')::text),
  0,
  '... leaves no member.joined event behind'
);

-- Through an invitation: an admin invites, the invitee accepts.
select tests.act_as('admin_a');
insert into tokens select 'joiner', i.token from public.invite_member(tests.fx('org_a'), 'joiner@events.test', 'member') i;
select tests.act_as('joiner');
select lives_ok(
  $$select public.accept_invitation((select token from tokens where label = 'joiner'))$$,
  'member.joined: the invitee accepts the invitation'
);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, payload from public.events
    where type = 'member.joined' and payload ->> 'user_id' = tests.fx('joiner')::text$$,
  $$select tests.fx('org_a'), jsonb_build_object('user_id', tests.fx('joiner'), 'role', 'member')$$,
  'member.joined: accepting an invitation emits one event in the org, with the invitee and the invited role'
);

-- ---------------------------------------------------------------------------
-- emit_event: a valid payload becomes one event
-- ---------------------------------------------------------------------------

create temp table emitted (label text primary key, id uuid not null);
grant all on emitted to public;

select tests.act_as('service_role');
select lives_ok(
  $$insert into emitted select 'doc', private.emit_event(tests.fx('org_a'), 'document.ready',
      '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "Handbook.pdf", "collection_id": null, "pages": 12}')$$,
  'emit_event: the service role emits a valid document.ready event'
);
select tests.act_as('postgres');
select results_eq(
  $$select org_id, type, payload from public.events where id = (select id from emitted where label = 'doc')$$,
  $$values (tests.fx('org_a'), 'document.ready',
            '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "Handbook.pdf", "collection_id": null, "pages": 12}'::jsonb)$$,
  'emit_event: the returned id is the one stored event, with the org, the type and the payload as given'
);

-- Optional fields may be absent or null (type lists with null), formats
-- apply only to strings, and date-times take offsets and fractions.
select tests.act_as('service_role');
select lives_ok(
  $$insert into emitted select 'call', private.emit_event(tests.fx('org_a'), 'call.started',
      '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "direction": "inbound", "bot_id": null,
        "from": "+15550100", "started_at": "2026-11-23T10:15:30.123+01:00", "extra": [1, 2]}')$$,
  'emit_event: nullable fields, an RFC 3339 time with an offset and unknown extra fields are accepted'
);
select lives_ok(
  $$insert into emitted select 'ended', private.emit_event(tests.fx('org_a'), 'call.ended',
      '{"call_id": "6F1C1F4E-9B1A-4C55-8D0E-0123456789AB", "status": "completed", "duration_seconds": 12.5,
        "ended_at": "2026-11-23T10:20:00Z"}')$$,
  'emit_event: a number may have a fraction, a uuid may be upper case'
);

-- ---------------------------------------------------------------------------
-- emit_event: what is refused, with the path of the problem in the message
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into marks select 'events in A', count(*) from public.events where org_id = tests.fx('org_a');

select tests.act_as('service_role');
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.exploded', '{}')$$,
  '22023', 'unknown event type: document.exploded',
  'emit_event: an unknown type is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), null, '{}')$$,
  '22023', 'unknown event type: <NULL>',
  'emit_event: a null type is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab"}')$$,
  '22023', 'invalid document.ready payload: $.name is required',
  'emit_event: a missing required field is refused, naming it'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": 42}')$$,
  '22023', 'invalid document.ready payload: $.name must be string, not number',
  'emit_event: a field of the wrong type is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "x", "pages": 1.5}')$$,
  '22023', 'invalid document.ready payload: $.pages must be integer, not number',
  'emit_event: a fraction where an integer is expected is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "not-a-uuid", "name": "x"}')$$,
  '22023', 'invalid document.ready payload: $.document_id must be a uuid',
  'emit_event: a string that is not a uuid where format is uuid is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "x", "collection_id": "nope"}')$$,
  '22023', 'invalid document.ready payload: $.collection_id must be a uuid',
  'emit_event: a nullable uuid field still checks the format of a string'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'call.started', '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "direction": "inbound", "started_at": "2026-11-23 10:15:30"}')$$,
  '22023', 'invalid call.started payload: $.started_at must be an RFC 3339 date-time',
  'emit_event: a date-time without T and offset is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'call.started', '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "direction": "sideways"}')$$,
  '22023', 'invalid call.started payload: $.direction must be one of ["inbound", "outbound", "web"]',
  'emit_event: a value outside the enum is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'call.ended', '{"call_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "status": "done", "duration_seconds": "12"}')$$,
  '22023', 'invalid call.ended payload: $.duration_seconds must be number or null, not string',
  'emit_event: a value outside a type list is refused, listing the allowed types'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', null)$$,
  '22023', 'invalid document.ready payload: $ must be object, not null',
  'emit_event: a null payload is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', 'null'::jsonb)$$,
  '22023', 'invalid document.ready payload: $ must be object, not null',
  'emit_event: a JSON null payload is refused'
);
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '[]')$$,
  '22023', 'invalid document.ready payload: $ must be object, not array',
  'emit_event: an array payload is refused'
);

select tests.act_as('postgres');
select is(
  (select count(*) from public.events where org_id = tests.fx('org_a')),
  (select n from marks where label = 'events in A'),
  'emit_event: none of the refused payloads left an event behind'
);

-- ---------------------------------------------------------------------------
-- json_schema_errors, directly: the subset of JSON Schema the catalogue uses
-- ---------------------------------------------------------------------------

select is(private.json_schema_errors('{"type": "integer"}', '3'), null, 'json_schema_errors: 3 is an integer');
select is(private.json_schema_errors('{"type": "integer"}', '-3'), null, 'json_schema_errors: -3 is an integer');
select is(private.json_schema_errors('{"type": "integer"}', '3.5'), '$ must be integer, not number',
  'json_schema_errors: 3.5 is not an integer');
select is(private.json_schema_errors('{"type": "integer"}', '"3"'), '$ must be integer, not string',
  'json_schema_errors: the string "3" is not an integer');
select is(private.json_schema_errors('{"type": "number"}', '3'), null, 'json_schema_errors: an integer is a number');
select is(private.json_schema_errors('{"type": "number"}', '3.5'), null, 'json_schema_errors: 3.5 is a number');
select is(private.json_schema_errors('{"type": ["integer", "null"]}', 'null'), null,
  'json_schema_errors: null matches a type list with null');
select is(private.json_schema_errors('{"type": ["integer", "null"]}', '7'), null,
  'json_schema_errors: an integer matches ["integer", "null"]');
select is(private.json_schema_errors('{"type": ["integer", "null"]}', 'true'), '$ must be integer or null, not boolean',
  'json_schema_errors: a boolean does not match ["integer", "null"]');
select is(private.json_schema_errors('{"type": "string"}', 'null'), '$ must be string, not null',
  'json_schema_errors: null does not match a plain string type');
select is(private.json_schema_errors('{"enum": [1, "a", null]}', '1'), null,
  'json_schema_errors: an enum may hold other values than strings');
select is(private.json_schema_errors('{"enum": [1, "a", null]}', '"b"'), '$ must be one of [1, "a", null]',
  'json_schema_errors: a value outside the enum is named by its path');

-- Nested objects: required and types are checked at every level, with the path.
select is(
  private.json_schema_errors(
    '{"type": "object", "properties": {"a": {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer"}}}}}',
    '{"a": {}}'),
  '$.a.b is required',
  'json_schema_errors: a missing nested field is reported with its path'
);
select is(
  private.json_schema_errors(
    '{"type": "object", "properties": {"a": {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer"}}}}}',
    '{"a": {"b": "x"}}'),
  '$.a.b must be integer, not string',
  'json_schema_errors: a nested field of the wrong type is reported with its path'
);
select is(
  private.json_schema_errors(
    '{"type": "object", "properties": {"a": {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer"}}}}}',
    '{"other": 1}'),
  null,
  'json_schema_errors: an optional object that is absent is not checked'
);
-- Arrays: every element is checked against items, the index in the path.
select is(
  private.json_schema_errors('{"type": "array", "items": {"type": "string", "format": "uuid"}}',
    '["6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "6f1c1f4e-9b1a-4c55-8d0e-0123456789ac"]'),
  null,
  'json_schema_errors: an array whose items all match passes'
);
select is(
  private.json_schema_errors('{"type": "array", "items": {"type": "string", "format": "uuid"}}',
    '["6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "x"]'),
  '$[1] must be a uuid',
  'json_schema_errors: the first bad item is reported with its index'
);
select is(
  private.json_schema_errors(
    '{"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}}}}}}',
    '{"tags": [{"k": "a"}, {"k": 2}]}'),
  '$.tags[1].k must be string, not number',
  'json_schema_errors: paths combine properties and indices'
);
select is(private.json_schema_errors('{"type": "array", "items": {"type": "integer"}}', '[]'), null,
  'json_schema_errors: an empty array matches any items schema');
select is(
  private.json_schema_errors('{"type": "string", "format": "date-time"}', '"2026-11-23T10:15:30Z"', '$.at'),
  null,
  'json_schema_errors: a UTC date-time passes'
);
select is(
  private.json_schema_errors('{"type": "string", "format": "date-time"}', '"2026-11-23"', '$.at'),
  '$.at must be an RFC 3339 date-time',
  'json_schema_errors: a date alone is not a date-time, and the given path prefixes the message'
);

-- ---------------------------------------------------------------------------
-- Who may emit: the service role and definer code (the member.joined
-- trigger above also fired for the invitee, a signed-in user, because it is
-- security definer), never a signed-in user or anon directly.
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "forged"}')$$,
  '42501', 'permission denied for function emit_event',
  'emit_event: an admin (authenticated) may not execute it'
);
select tests.act_as('anon');
select throws_ok(
  $$select private.emit_event(tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "forged"}')$$,
  '42501', 'permission denied for function emit_event',
  'emit_event: anon may not execute it'
);

-- ---------------------------------------------------------------------------
-- public.events: no direct writes, not even by the service role
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select throws_ok(
  $$insert into public.events (org_id, type, payload) values (tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "forged"}')$$,
  '42501', 'permission denied for table events',
  'an owner cannot insert events directly (that would skip validation)'
);
select throws_ok(
  $$update public.events set payload = '{}' where org_id = tests.fx('org_a')$$,
  '42501', 'permission denied for table events',
  'an owner cannot rewrite events'
);
select throws_ok(
  $$delete from public.events where org_id = tests.fx('org_a')$$,
  '42501', 'permission denied for table events',
  'an owner cannot delete events'
);
select tests.act_as('service_role');
select throws_ok(
  $$insert into public.events (org_id, type, payload) values (tests.fx('org_a'), 'document.ready', '{"document_id": "6f1c1f4e-9b1a-4c55-8d0e-0123456789ab", "name": "forged"}')$$,
  '42501', 'permission denied for table events',
  'the service role cannot insert events directly either: emit_event is the one way in'
);
select throws_ok(
  $$delete from public.events where org_id = tests.fx('org_a')$$,
  '42501', 'permission denied for table events',
  'the service role cannot delete events'
);

select tests.act_as('postgres');
select is(
  (select count(*) from public.events where org_id = tests.fx('org_a')),
  (select n from marks where label = 'events in A'),
  'the refused writes left org A''s events as they were'
);

-- ---------------------------------------------------------------------------
-- Reading: members and up of the org (webhooks.read), platform admins
-- ---------------------------------------------------------------------------

-- What each org holds, read as postgres past RLS.
create temp table all_events as
  select id, org_id from public.events where org_id in (tests.fx('org_a'), tests.fx('org_b'));
grant select on all_events to public;

select tests.act_as('owner_a');
select set_eq(
  $$select id from public.events$$,
  $$select id from all_events where org_id = tests.fx('org_a')$$,
  'an owner reads exactly org A''s events'
);
select tests.act_as('admin_a');
select set_eq(
  $$select id from public.events$$,
  $$select id from all_events where org_id = tests.fx('org_a')$$,
  'an admin reads exactly org A''s events'
);
select tests.act_as('member_a');
select set_eq(
  $$select id from public.events$$,
  $$select id from all_events where org_id = tests.fx('org_a')$$,
  'a member reads exactly org A''s events (webhooks.read is member and up)'
);
select tests.act_as('viewer_a');
select is_empty($$select id from public.events$$, 'a viewer reads no events');
select tests.act_as('owner_b');
select set_eq(
  $$select id from public.events$$,
  $$select id from all_events where org_id = tests.fx('org_b')$$,
  'the owner of org B reads only org B''s events, none of org A''s'
);
select tests.act_as('platform_admin');
-- (Restricted to this test's orgs: the seed holds events too.)
select set_eq(
  $$select id from public.events where org_id in (tests.fx('org_a'), tests.fx('org_b'))$$,
  $$select id from all_events$$,
  'a platform admin reads the events of every org'
);
select tests.act_as('anon');
select throws_ok(
  $$select id from public.events$$,
  '42501', 'permission denied for table events',
  'anon cannot read events at all'
);

-- ---------------------------------------------------------------------------
-- The catalogue: well formed, and readable by every signed-in user
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select is_empty(
  $$select type from public.event_types
    where schema ->> 'type' is distinct from 'object'
       or jsonb_typeof(coalesce(schema -> 'properties', '{}')) <> 'object'
       or jsonb_typeof(coalesce(schema -> 'required', '[]')) <> 'array'
       or not (select coalesce(jsonb_agg(k), '[]'::jsonb) from jsonb_object_keys(coalesce(schema -> 'properties', '{}')) k)
              @> coalesce(schema -> 'required', '[]')$$,
  'catalogue: every schema is an object whose required fields are all among its properties'
);
-- Every property uses only what json_schema_errors understands; anything
-- else (say "minLength" or "format": "email") would be silently ignored.
select is_empty(
  $$select t.type || '.' || p.key from public.event_types t, jsonb_each(t.schema -> 'properties') p
    where exists (select 1 from jsonb_object_keys(p.value) k where k not in ('type', 'format', 'enum', 'items', 'properties', 'required'))
       or coalesce(p.value ->> 'format', 'uuid') not in ('uuid', 'date-time')
       or not p.value ? 'type'$$,
  'catalogue: every property has a type and uses only the keywords and formats the validator checks'
);
-- The types that definer code emits itself must be in the catalogue.
select is(
  (select array_agg(type order by type) from public.event_types where type in ('member.joined', 'webhook.test')),
  array['member.joined', 'webhook.test'],
  'catalogue: the types emitted by the member trigger and by send_test_webhook are catalogued'
);
insert into marks select 'event types', count(*) from public.event_types;
select tests.act_as('viewer_a');
select is(
  (select count(*) from public.event_types),
  (select n from marks where label = 'event types'),
  'catalogue: a viewer (any signed-in user) reads the whole catalogue'
);
select ok(
  (select schema -> 'required' = '["user_id", "role"]'::jsonb from public.event_types where type = 'member.joined'),
  'catalogue: the schemas themselves are readable'
);
select throws_ok(
  $$insert into public.event_types (type, description, schema) values ('custom.thing', 'x', '{"type": "object"}')$$,
  '42501', 'permission denied for table event_types',
  'catalogue: a signed-in user cannot add event types (only migrations do)'
);
select tests.act_as('anon');
select throws_ok(
  $$select type from public.event_types$$,
  '42501', 'permission denied for table event_types',
  'catalogue: anon cannot read it'
);

select * from finish();
rollback;
