-- Platform contract: Realtime Broadcast from the database (realtime.send,
-- realtime.broadcast_changes from a row trigger, realtime.topic) and the
-- objects channel authorization and Postgres Changes rely on.
-- Holds on a Supabase project and on the local stack.
begin;
create extension if not exists pgtap with schema extensions;

select plan(15);

select ok(
  (select relrowsecurity from pg_catalog.pg_class where oid = 'realtime.messages'::regclass),
  'RLS is enabled on realtime.messages'
);
select ok(
  pg_catalog.has_table_privilege('authenticated', 'realtime.messages', 'select, insert'),
  'authenticated may select and insert realtime.messages (subject to RLS)'
);
select ok(
  exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime'),
  'the supabase_realtime publication exists'
);

-- realtime.send
select realtime.send('{"text": "hello", "n": 1}'::jsonb, 'note_created', 'platform-test:room-1', false);

select is(
  (select count(*)::integer from realtime.messages where topic = 'platform-test:room-1'),
  1,
  'realtime.send writes one message'
);
select is(
  (select event from realtime.messages where topic = 'platform-test:room-1'),
  'note_created',
  'the message has the event'
);
select is(
  (select payload ->> 'text' from realtime.messages where topic = 'platform-test:room-1'),
  'hello',
  'the message has the payload'
);
select is(
  (select private from realtime.messages where topic = 'platform-test:room-1'),
  false,
  'the message has the private flag'
);
select is(
  (select extension from realtime.messages where topic = 'platform-test:room-1'),
  'broadcast',
  'the message is a broadcast'
);
select is(realtime.topic(), 'platform-test:room-1', 'realtime.send sets realtime.topic for the transaction');

-- realtime.broadcast_changes from a row trigger, as Supabase documents it.
create table public.platform_test_notes (id integer primary key, body text);
create function public.platform_test_notes_broadcast()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform realtime.broadcast_changes(
    'platform-test:notes:' || coalesce(new.id, old.id)::text,
    tg_op, tg_op, tg_table_name, tg_table_schema, new, old
  );
  return null;
end;
$$;
create trigger platform_test_notes_broadcast
  after insert or update on public.platform_test_notes
  for each row execute function public.platform_test_notes_broadcast();

insert into public.platform_test_notes (id, body) values (7, 'first');
update public.platform_test_notes set body = 'second' where id = 7;

select is(
  (select payload -> 'record' from realtime.messages
   where topic = 'platform-test:notes:7' and event = 'INSERT'),
  '{"id": 7, "body": "first"}'::jsonb,
  'broadcast_changes sends the new row as record'
);
select is(
  (select payload -> 'old_record' from realtime.messages
   where topic = 'platform-test:notes:7' and event = 'INSERT'),
  'null'::jsonb,
  'an INSERT has a null old_record'
);
select is(
  (select pg_catalog.jsonb_build_array(payload ->> 'operation', payload ->> 'table', payload ->> 'schema')
   from realtime.messages where topic = 'platform-test:notes:7' and event = 'INSERT'),
  '["INSERT", "platform_test_notes", "public"]'::jsonb,
  'the payload names the operation, table and schema'
);
select is(
  (select payload -> 'old_record' ->> 'body' from realtime.messages
   where topic = 'platform-test:notes:7' and event = 'UPDATE'),
  'first',
  'an UPDATE carries the old row'
);
select is(
  (select payload -> 'record' ->> 'body' from realtime.messages
   where topic = 'platform-test:notes:7' and event = 'UPDATE'),
  'second',
  'an UPDATE carries the new row'
);
select is(
  (select private from realtime.messages where topic = 'platform-test:notes:7' and event = 'UPDATE'),
  true,
  'broadcast_changes sends private messages'
);

select * from finish();
rollback;
