-- 20261123008500: the end-of-call transcript broadcasts the live lines it
-- deletes; nobody sends on org:<org_id>:exports; no user role reads the
-- invoices bucket; another org's webhook endpoints are P0002 and its API keys PT404 (20261123014600),
-- while members of the org without the manage permission still get 42501.
begin;
create extension if not exists pgtap with schema extensions;

select plan(29);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@hidden257.test')),
  ('admin_a', tests.create_user('admin-a@hidden257.test')),
  ('member_a', tests.create_user('member-a@hidden257.test')),
  ('viewer_a', tests.create_user('viewer-a@hidden257.test')),
  ('owner_b', tests.create_user('owner-b@hidden257.test')),
  ('ops', tests.create_user('ops@hidden257.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('hidden257-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('hidden257-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

-- ---------------------------------------------------------------------------
-- The final transcript broadcasts the lines it drops
-- ---------------------------------------------------------------------------

create function pg_temp.call_event(event_id text, body jsonb)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('org_id', tests.fx('org_a'), 'payload', '{}'::jsonb, 'event',
    jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'provider_call_id', 'hidden257-call',
      'occurred_at', '2026-11-23T13:00:00Z') || body)
$$;
grant execute on function pg_temp.call_event(text, jsonb) to public;

select tests.act_as('service_role');
select private.apply_call_events(jsonb_build_array(
  pg_temp.call_event('h257-0', '{"type": "call.status", "status": "in_progress"}'),
  pg_temp.call_event('h257-1', '{"type": "call.transcript", "transcript_mode": "append",
    "transcript": [{"speaker": "assistant", "text": "Hello.", "start_ms": 0, "end_ms": 900}]}'),
  pg_temp.call_event('h257-2', '{"type": "call.transcript", "transcript_mode": "append",
    "transcript": [{"speaker": "user", "text": "uh", "start_ms": 1000, "end_ms": 1100}]}'),
  pg_temp.call_event('h257-3', '{"type": "call.transcript", "transcript_mode": "append",
    "transcript": [{"speaker": "user", "text": "hm", "start_ms": 1200, "end_ms": 1300}]}'),
  pg_temp.call_event('h257-4', '{"type": "call.transcript", "transcript_mode": "replace",
    "transcript": [{"speaker": "assistant", "text": "Hello.", "start_ms": 0, "end_ms": 900}]}')));
select tests.act_as('postgres');
select tests.remember('call', (select c.id from public.calls c where c.provider_call_id = 'hidden257-call'));

select results_eq(
  $$select s.seq, s.text from public.call_transcript_segments s where s.call_id = tests.fx('call') order by s.seq$$,
  $$values (0, 'Hello.')$$,
  'replace: the final transcript dropped the two live lines'
);
select results_eq(
  $$select (m.payload -> 'old_record' ->> 'seq')::integer, m.payload -> 'old_record' ->> 'text'
    from realtime.messages m
    where m.topic = 'org:' || tests.fx('org_a') || ':calls' and m.event = 'DELETE'
      and m.payload ->> 'table' = 'call_transcript_segments'
      and m.payload -> 'old_record' ->> 'call_id' = tests.fx('call')::text
    order by 1$$,
  $$values (1, 'uh'), (2, 'hm')$$,
  'replace: each dropped line is broadcast as a DELETE, with the line, on the org''s calls topic'
);
select is(
  (select count(*)::integer from realtime.messages m
   where m.event = 'DELETE' and m.payload ->> 'table' = 'call_transcript_segments'
     and m.payload -> 'old_record' ->> 'call_id' = tests.fx('call')::text
     and m.topic <> 'org:' || tests.fx('org_a') || ':calls'),
  0, 'replace: on no other topic'
);
select is(
  (select count(*)::integer from realtime.messages m
   where m.event = 'DELETE' and m.payload ->> 'table' = 'call_transcript_segments'
     and m.payload -> 'old_record' ->> 'seq' = '0' and m.payload -> 'old_record' ->> 'call_id' = tests.fx('call')::text),
  0, 'replace: the line it keeps is not broadcast as deleted'
);

select tests.act_as('member_a');
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':calls', true);
select is(
  (select count(*)::integer from realtime.messages m where m.topic = realtime.topic() and m.event = 'DELETE'
     and m.payload -> 'old_record' ->> 'call_id' = tests.fx('call')::text),
  2, 'a member receives the deletions on the calls channel'
);
select tests.act_as('owner_b');
select is(
  (select count(*)::integer from realtime.messages m where m.topic = realtime.topic()),
  0, 'another org''s owner receives nothing of them'
);

-- ---------------------------------------------------------------------------
-- Nobody sends on the exports channel
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
select is((select users_send from private.narrowed_channels where channel = 'exports'), false,
  'the exports channel is registered as sent on by the database only');

select tests.act_as('owner_a');
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':exports', true);
select throws_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values (realtime.topic(), 'broadcast', 'export', '{"status": "ready"}', true)$$,
  '42501', null, 'exports channel: the owner cannot send a broadcast of their own'
);
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':lobby257', true);
select lives_ok(
  $$insert into realtime.messages (topic, extension, event, payload, private)
    values (realtime.topic(), 'broadcast', 'hello', '{}', true)$$,
  'the owner still sends on the org''s open channels'
);
select tests.act_as('service_role');
select lives_ok(
  $$select private.broadcast_to_org(tests.fx('org_a'), 'exports', 'export', '{"status": "ready"}')$$,
  'exports channel: the service role still broadcasts'
);
select tests.act_as('owner_a');
select set_config('realtime.topic', 'org:' || tests.fx('org_a') || ':exports', true);
select is(
  (select count(*)::integer from realtime.messages m where m.topic = realtime.topic()),
  1, 'exports channel: the owner receives the service role''s broadcast, and nothing forged'
);

-- ---------------------------------------------------------------------------
-- Invoice PDFs are read by the service role only
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into storage.objects (bucket_id, name, metadata)
values ('invoices', tests.fx('org_a') || '/invoices/hidden257.pdf', '{"mimetype": "application/pdf", "size": 1000}');

select tests.act_as('owner_a');
select is((select count(*)::integer from storage.objects where bucket_id = 'invoices'), 0,
  'invoices bucket: the owner reads no object directly');
select tests.act_as('admin_a');
select is((select count(*)::integer from storage.objects where bucket_id = 'invoices'), 0,
  'invoices bucket: nor does an admin');
select tests.act_as('ops');
select is((select count(*)::integer from storage.objects where bucket_id = 'invoices'), 0,
  'invoices bucket: nor does a platform admin');
select tests.act_as('service_role');
select is(
  (select count(*)::integer from storage.objects where bucket_id = 'invoices' and name = tests.fx('org_a') || '/invoices/hidden257.pdf'),
  1, 'invoices bucket: the service role reads it (and signs the short-lived links)'
);

-- ---------------------------------------------------------------------------
-- Another org's API keys and webhook endpoints are not found
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select tests.remember('key', k.id) from public.create_api_key(tests.fx('org_a'), 'hidden257 bot', array['chat.write']) k;
select tests.remember('endpoint', c.endpoint_id)
from private.create_webhook_endpoint(tests.fx('org_a'), 'https://hooks.example.com/hidden257', null, null) c;

select tests.act_as('owner_b');
select throws_ok($$select public.revoke_api_key(tests.fx('key'))$$, 'PT404', 'API key not found',
  'revoke_api_key: another org''s key is not found');
select throws_ok($$select public.revoke_api_key(gen_random_uuid())$$, 'PT404', 'API key not found',
  '... exactly as a key that does not exist');
select throws_ok($$select public.set_api_key_rate_limit(tests.fx('key'), 5)$$, 'PT404', 'API key not found',
  'set_api_key_rate_limit: another org''s key is not found');
select throws_ok($$select private.update_webhook_endpoint(tests.fx('endpoint'), null, 'x', null, null)$$,
  'P0002', 'webhook endpoint not found', 'update_webhook_endpoint: another org''s endpoint is not found');

select tests.act_as('member_a');
select throws_ok($$select public.revoke_api_key(tests.fx('key'))$$, '42501', null,
  'revoke_api_key: a member of the org is refused for the permission');
select throws_ok($$select public.set_api_key_rate_limit(tests.fx('key'), 5)$$, '42501', null,
  'set_api_key_rate_limit: a member of the org is refused for the permission');
select throws_ok($$select private.update_webhook_endpoint(tests.fx('endpoint'), null, 'x', null, null)$$,
  '42501', null, 'update_webhook_endpoint: a member of the org is refused for the permission');

select tests.act_as('viewer_a');
select throws_ok($$select public.revoke_api_key(tests.fx('key'))$$, '42501', null,
  'revoke_api_key: a viewer of the org is refused for the permission');
select throws_ok($$select public.set_api_key_rate_limit(tests.fx('key'), 5)$$, '42501', null,
  'set_api_key_rate_limit: a viewer of the org is refused for the permission');
select throws_ok($$select private.send_test_webhook(tests.fx('endpoint'))$$, '42501', null,
  'send_test_webhook: a viewer of the org is refused for the permission');

select tests.act_as('ops');
select throws_ok($$select public.revoke_api_key(tests.fx('key'))$$, '42501', null,
  'revoke_api_key: a platform admin, who reads every org, is refused for the permission');

select tests.act_as('postgres');
select results_eq(
  $$select k.revoked_at is null, k.rate_limit_per_minute <> 5 from public.api_keys k where k.id = tests.fx('key')$$,
  $$values (true, true)$$,
  'the key is neither revoked nor limited by any refused call'
);

-- ---------------------------------------------------------------------------
-- A deleted org's rows are broadcast to nobody (no transcript words kept in realtime.messages)
-- ---------------------------------------------------------------------------

create temp table broadcasts_before as
  select count(*) as n from realtime.messages m where m.topic like 'org:' || tests.fx('org_a') || ':%';
select tests.act_as('owner_a');
select lives_ok($$select public.delete_organization(tests.fx('org_a'), (select o.name from public.organizations o where o.id = tests.fx('org_a')))$$,
  'the owner deletes the org with its call and transcript');
select tests.act_as('postgres');
select is(
  (select count(*) from realtime.messages m where m.topic like 'org:' || tests.fx('org_a') || ':%'),
  (select n from broadcasts_before),
  'its deletion broadcasts nothing on the org''s topics: no row of a deleted org is copied into realtime.messages'
);

select * from finish();
rollback;
