-- Call-event batches take their locks before their first item (20261123008700_call_event_batch_head_order.sql).
--
-- The deadlock needs two sessions and PGlite runs one: as in 259, this checks which locks the batch holds at
-- its first audited write (a test trigger on audit_log, which fires before audit_log_chain takes the org's
-- audit chain head). Row locks show in xmax: this transaction key-share locks the heads and calls first, and
-- the batch runs in a savepoint (a subtransaction, its own xid), so a lock the batch takes on them turns
-- xmax into a multixact whose members pg_get_multixact_members lists. The items arrive B's first, then A's,
-- A's id sorting first, then an org created without triggers, which has no head yet. Live transcript lines of
-- calls that exist (a Vapi call's with its conversation) make no audited change: a batch takes no head for an
-- org that has only those. A Vapi call without a conversation yet can take one mid-batch (audited): its lines
-- take the head. The batch's lookups of conversations go by index (pg_stat_xact_user_tables counts the rows
-- it reads).
begin;
create extension if not exists pgtap with schema extensions;

select plan(25);

insert into tests.fixtures (name, id) values ('hob_owner', tests.create_user('owner@call-event-batch-head-order.test'));
create temp table hob_new_orgs (id uuid);
insert into hob_new_orgs values
  (tests.create_org('call-event-batch-head-order-1', tests.fx('hob_owner'))),
  (tests.create_org('call-event-batch-head-order-2', tests.fx('hob_owner')));
select tests.remember('hob_org_a', (select o.id from hob_new_orgs o order by o.id limit 1));
select tests.remember('hob_org_b', (select o.id from hob_new_orgs o order by o.id desc limit 1));
-- Created with triggers off (as a bulk load would): no audit row, hence no chain head.
set local session_replication_role = replica;
insert into public.organizations (name, slug, created_by)
values ('Call event batch head order 3', 'call-event-batch-head-order-3', tests.fx('hob_owner'));
set local session_replication_role = origin;
select tests.remember('hob_org_c', (select o.id from public.organizations o where o.slug = 'call-event-batch-head-order-3'));

create function pg_temp.item(org text, event_id text, provider_call_id text, occurred_at text, status text)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('org_id', tests.fx(org), 'payload', jsonb_build_object('raw', event_id), 'event',
    jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.status',
      'provider_call_id', provider_call_id, 'occurred_at', occurred_at, 'status', status))
$$;

-- A ringing call in A and in B.
select private.apply_call_events(jsonb_build_array(
  pg_temp.item('hob_org_a', 'hob-1', 'hob-call-a', '2026-11-23T10:00:00Z', 'ringing'),
  pg_temp.item('hob_org_b', 'hob-2', 'hob-call-b', '2026-11-23T10:00:00Z', 'ringing')));
select tests.remember('hob_call_a', (select c.id from public.calls c where c.org_id = tests.fx('hob_org_a') and c.provider_call_id = 'hob-call-a'));
select tests.remember('hob_call_b', (select c.id from public.calls c where c.org_id = tests.fx('hob_org_b') and c.provider_call_id = 'hob-call-b'));
-- Their custom-LLM conversations (keyed by the provider call id), which link to the calls.
insert into public.bots (org_id, name, slug)
select o, 'Head order lines bot', 'call-event-batch-head-order-lines' from unnest(array[tests.fx('hob_org_a'), tests.fx('hob_org_b')]) o;
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
select b.org_id, b.id, 'voice', case when b.org_id = tests.fx('hob_org_a') then 'hob-call-a' else 'hob-call-b' end
from public.bots b
where b.slug = 'call-event-batch-head-order-lines' and b.org_id in (tests.fx('hob_org_a'), tests.fx('hob_org_b'));
select is(
  (select count(*)::integer from public.calls c where c.id in (tests.fx('hob_call_a'), tests.fx('hob_call_b')) and c.conversation_id is not null),
  2, 'A''s and B''s calls have their conversations');
-- A Vapi call of A with a provider id and no conversation yet.
select private.apply_call_events(jsonb_build_array(
  pg_temp.item('hob_org_a', 'hob-13', 'hob-call-lonely', '2026-11-23T10:00:00Z', 'ringing')));

insert into public.webhook_endpoints (org_id, url, created_by)
values (tests.fx('hob_org_a'), 'https://hooks.example.com/call-event-batch-head-order', tests.fx('hob_owner'));

select is((select count(*)::integer from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_c')), 0,
  'the org created without triggers has no audit chain head yet');

-- ---------------------------------------------------------------------------
-- Probes
-- ---------------------------------------------------------------------------

-- xmax of the heads and calls after this transaction key-share locked them, and of A's webhook endpoint (not
-- locked before: the batch's key-share lock is all that can change it).
create temp table hob_before (what text primary key, xmax_text text);
create function pg_temp.mark()
returns void
language plpgsql
as $$
begin
  delete from hob_before;
  delete from hob_at_audit;
  perform 1 from private.audit_chain_heads h where h.org_id in (tests.fx('hob_org_a'), tests.fx('hob_org_b')) for key share;
  perform 1 from public.calls c where c.id in (tests.fx('hob_call_a'), tests.fx('hob_call_b')) for key share;
  insert into hob_before (what, xmax_text)
  select 'head_' || f.name, h.xmax::text from private.audit_chain_heads h join tests.fixtures f on f.id = h.org_id
  where f.name in ('hob_org_a', 'hob_org_b')
  union all
  select 'call_' || f.name, c.xmax::text from public.calls c join tests.fixtures f on f.id = c.id
  where f.name in ('hob_call_a', 'hob_call_b')
  union all
  select 'endpoint_hob_org_a', e.xmax::text from public.webhook_endpoints e where e.org_id = tests.fx('hob_org_a');
end;
$$;

-- The lock modes a subtransaction added to a row since pg_temp.mark (null: none).
create function pg_temp.modes_since_mark(what text, now_xmax xid)
returns text[]
language sql
as $$
  select case when now_xmax::text is distinct from b.xmax_text then
    (select array_agg(m.mode order by m.mode) from pg_catalog.pg_get_multixact_members(now_xmax) m)
  end
  from hob_before b where b.what = modes_since_mark.what;
$$;

-- At each audited write: the org it is for, and what the batch held by then.
create temp table hob_at_audit (
  seq bigint generated always as identity,
  audited_org uuid,
  head_a text[],
  head_b text[],
  head_c_locked boolean,
  call_a text[],
  endpoint_a_locked boolean,
  markers_held uuid[]
);
create function pg_temp.record_at_audit()
returns trigger
language plpgsql
as $$
begin
  insert into hob_at_audit (audited_org, head_a, head_b, head_c_locked, call_a, endpoint_a_locked, markers_held)
  values (
    new.org_id,
    (select pg_temp.modes_since_mark('head_hob_org_a', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_a')),
    (select pg_temp.modes_since_mark('head_hob_org_b', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_b')),
    -- A head this transaction inserted and locked: its xmax is its own inserter's.
    (select h.xmax::text = h.xmin::text from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_c')),
    (select pg_temp.modes_since_mark('call_hob_call_a', c.xmax) from public.calls c where c.id = tests.fx('hob_call_a')),
    (select e.xmax::text <> b.xmax_text from public.webhook_endpoints e, hob_before b
     where e.org_id = tests.fx('hob_org_a') and b.what = 'endpoint_hob_org_a'),
    (select array_agg(f.id order by f.id) from tests.fixtures f
     where f.name in ('hob_org_a', 'hob_org_b', 'hob_org_c')
       and exists (
         select 1 from pg_catalog.pg_locks l
         where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted and l.mode = 'ShareLock'
           and l.classid = 7700::oid and l.objid = pg_catalog.hashtext(f.id::text)::oid and l.objsubid = 2))
  );
  return new;
end;
$$;
-- Before triggers fire in name order: this one before audit_log_chain, the one that takes the head.
create trigger a_call_event_batch_head_order before insert on public.audit_log
  for each row execute function pg_temp.record_at_audit();

create function pg_temp.first_audit()
returns hob_at_audit
language sql
as $$
  select * from hob_at_audit order by seq limit 1;
$$;

-- ---------------------------------------------------------------------------
-- Live transcript lines of calls that exist take no head.
-- ---------------------------------------------------------------------------

create function pg_temp.line(org text, event_id text, provider_call_id text, occurred_at text, spoken text)
returns jsonb
language sql
stable
as $$
  select jsonb_build_object('org_id', tests.fx(org), 'payload', jsonb_build_object('raw', event_id), 'event',
    jsonb_build_object('event_id', event_id, 'provider', 'vapi', 'type', 'call.transcript',
      'provider_call_id', provider_call_id, 'occurred_at', occurred_at, 'transcript_mode', 'append',
      'transcript', jsonb_build_array(jsonb_build_object('speaker', 'user', 'text', spoken, 'start_ms', 1000, 'end_ms', 1000))))
$$;

-- Each batch here is rolled back: a row lock this transaction holds (from a released savepoint) would hide a
-- later one from the probes.
select pg_temp.mark();
savepoint transcripts;
select private.apply_call_events(jsonb_build_array(
  pg_temp.line('hob_org_a', 'hob-6', 'hob-call-a', '2026-11-23T09:59:58Z', 'Hello from A'),
  pg_temp.line('hob_org_b', 'hob-7', 'hob-call-b', '2026-11-23T09:59:58Z', 'Hello from B')));
select is(
  (select pg_temp.modes_since_mark('head_hob_org_a', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_a')),
  null, 'a batch of live transcript lines of calls that exist takes no audit chain head: not A''s');
select is(
  (select pg_temp.modes_since_mark('head_hob_org_b', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_b')),
  null, '... nor B''s');
select results_eq(
  $$select c.provider_call_id, s.text from public.call_transcript_segments s join public.calls c on c.id = s.call_id
    where c.org_id in (tests.fx('hob_org_a'), tests.fx('hob_org_b')) order by c.provider_call_id$$,
  $$values ('hob-call-a', 'Hello from A'), ('hob-call-b', 'Hello from B')$$,
  '... and writes their lines'
);
select ok(array['forupd'] <@
    (select pg_temp.modes_since_mark('call_hob_call_a', c.xmax) from public.calls c where c.id = tests.fx('hob_call_a')),
  '... having locked A''s call (the probe sees the batch''s row locks)');
select is((select count(*)::integer from hob_at_audit), 0, '... and written nothing audited');
rollback to savepoint transcripts;

-- Its first chat turn can commit after the batch's check and before the line is applied: the line's update of
-- the call (provider_call_id in its SET list) would then link the conversation, an audited change, and take
-- the head mid-batch, out of the pre-lock order.
select pg_temp.mark();
savepoint lonely;
select private.apply_call_events(jsonb_build_array(
  pg_temp.line('hob_org_a', 'hob-14', 'hob-call-lonely', '2026-11-23T10:00:01Z', 'Hello, anyone?')));
select ok(array['forupd'] <@
    (select pg_temp.modes_since_mark('head_hob_org_a', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_a')),
  'a live line of a Vapi call with a provider id and no conversation yet takes its org''s head before it is applied');
select is(
  (select s.text from public.call_transcript_segments s join public.calls c on c.id = s.call_id
   where c.org_id = tests.fx('hob_org_a') and c.provider_call_id = 'hob-call-lonely'),
  'Hello, anyone?', '... and writes its line');
rollback to savepoint lonely;

-- A batch that begins with live lines of A and B and answers B's call: B's head before the first write, A's never.
select pg_temp.mark();
savepoint mixed;
select private.apply_call_events(jsonb_build_array(
  pg_temp.line('hob_org_a', 'hob-8', 'hob-call-a', '2026-11-23T09:59:59Z', 'Still A'),
  pg_temp.line('hob_org_b', 'hob-9', 'hob-call-b', '2026-11-23T09:59:59Z', 'Bye from B'),
  pg_temp.item('hob_org_b', 'hob-10', 'hob-call-b', '2026-11-23T09:59:59Z', 'in_progress')));
select is((pg_temp.first_audit()).audited_org, tests.fx('hob_org_b'),
  'in a batch mixing lines with an answer, the first audited write is the answer''s (B)');
select ok('forupd' = any ((pg_temp.first_audit()).head_b),
  '... by when the batch holds B''s head, taken before its first item, a line');
select is(
  (select pg_temp.modes_since_mark('head_hob_org_a', h.xmax) from private.audit_chain_heads h where h.org_id = tests.fx('hob_org_a')),
  null, '... and never takes A''s, whose only item is a live line');
rollback to savepoint mixed;

-- ---------------------------------------------------------------------------
-- The batch: B's call answered, then A's, then a new call of C.
-- ---------------------------------------------------------------------------

select pg_temp.mark();
savepoint batch;
create temp table hob_answers as
select private.apply_call_events(jsonb_build_array(
  pg_temp.item('hob_org_b', 'hob-3', 'hob-call-b', '2026-11-23T10:00:05Z', 'in_progress'),
  pg_temp.item('hob_org_a', 'hob-4', 'hob-call-a', '2026-11-23T10:00:05Z', 'in_progress'),
  pg_temp.item('hob_org_c', 'hob-5', 'hob-call-c', '2026-11-23T10:00:05Z', 'ringing'))) as body;

select is((pg_temp.first_audit()).audited_org, tests.fx('hob_org_b'), 'the batch''s first audited write is B''s');
select ok('forupd' = any ((pg_temp.first_audit()).head_a),
  'by then the batch holds A''s audit chain head for update, though A''s item comes later');
select ok('forupd' = any ((pg_temp.first_audit()).head_b), '... and B''s');
select ok((pg_temp.first_audit()).head_c_locked,
  '... and the head of the org that had none, inserted and locked before the first audited write');
select ok('forupd' = any ((pg_temp.first_audit()).call_a), '... after locking A''s call, whose event comes later');
select ok((pg_temp.first_audit()).endpoint_a_locked,
  '... and A''s webhook endpoint (key share: its delete locks it, then takes the head)');
select is((pg_temp.first_audit()).markers_held,
  (select array_agg(f.id order by f.id) from tests.fixtures f where f.name in ('hob_org_a', 'hob_org_b', 'hob_org_c')),
  '... and every org''s analytics marker lock (7700, shared), which a zone change takes before its head');

-- Applied as before: one answer per item, in order.
select is((select jsonb_agg(a.value ->> 'status' order by a.n) from hob_answers, jsonb_array_elements(body) with ordinality a (value, n)),
  '["in_progress", "in_progress", "ringing"]'::jsonb, 'each item is applied and answered in order');
select results_eq(
  $$select c.provider_call_id, c.status::text from public.calls c
    where c.org_id in (tests.fx('hob_org_a'), tests.fx('hob_org_b'), tests.fx('hob_org_c'))
    order by c.provider_call_id$$,
  $$values ('hob-call-a', 'in_progress'), ('hob-call-b', 'in_progress'), ('hob-call-c', 'ringing'), ('hob-call-lonely', 'ringing')$$,
  'each call is in the state its event gave it'
);
select is((select count(*)::integer from public.call_events e where e.event_id in ('hob-3', 'hob-4', 'hob-5')), 3,
  'each raw event is stored once');
select is((select c.valid from private.check_audit_chain(tests.fx('hob_org_c')) c), true,
  'the chain begun at the head the batch inserted verifies');
release savepoint batch;

select is(
  (select count(*)::integer from hob_answers, jsonb_array_elements(body) a where (a.value ->> 'duplicate')::boolean),
  0, 'no item of the batch was taken for a duplicate');

-- ---------------------------------------------------------------------------
-- Conversations by index: the lock of the batch's conversations reads a few rows, not the table.
-- ---------------------------------------------------------------------------

insert into public.bots (org_id, name, slug) values (tests.fx('hob_org_a'), 'Head order bot', 'call-event-batch-head-order');
set local session_replication_role = replica;
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
select tests.fx('hob_org_a'), b.id, 'voice', 'hob-conversation-' || g
from public.bots b, generate_series(1, 5000) g
where b.slug = 'call-event-batch-head-order' and b.org_id = tests.fx('hob_org_a');
set local session_replication_role = origin;
analyze public.conversations;

create temp table hob_conversation_reads as
select s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) as n from pg_catalog.pg_stat_xact_user_tables s
where s.relid = 'public.conversations'::regclass;
savepoint scan;
select private.apply_call_events(jsonb_build_array(
  pg_temp.item('hob_org_a', 'hob-11', 'hob-conversation-17', '2026-11-23T10:00:09Z', 'ringing'),
  pg_temp.item('hob_org_b', 'hob-12', 'hob-call-scan', '2026-11-23T10:00:09Z', 'ringing')));
select cmp_ok(
  (select s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) - r.n from pg_catalog.pg_stat_xact_user_tables s, hob_conversation_reads r
   where s.relid = 'public.conversations'::regclass),
  '<', 50::bigint,
  'a batch reads a few of the org''s 5,000 conversations (by index), not every org''s'
);
rollback to savepoint scan;

select * from finish();
rollback;
