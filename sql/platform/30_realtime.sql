-- Local stand-in for the parts of the `realtime` schema that projects use:
-- Broadcast from the database (realtime.send, realtime.broadcast_changes),
-- channel authorization (RLS on realtime.messages, realtime.topic()), and the
-- supabase_realtime publication for Postgres Changes.
--
-- Mirrors supabase/realtime lib/realtime/tenants/repo/migrations (squashed
-- 20260420000000 and later) and the hosted ACLs. The local realtime server
-- reads new rows of realtime.messages and delivers them; on Supabase the
-- Realtime server does the same from its own connection.
--
-- Differences: realtime.messages is one plain table here; on Supabase it is
-- partitioned by inserted_at (daily partitions created and dropped by the
-- Realtime server, plus a default partition). Columns, key, index, RLS and
-- grants are the same.

create schema realtime authorization supabase_admin;

grant usage on schema realtime to postgres, anon, authenticated, service_role;
grant all on schema realtime to supabase_realtime_admin;

-- ---------------------------------------------------------------------------
-- realtime.messages
-- ---------------------------------------------------------------------------

create table realtime.messages (
  topic text not null,
  extension text not null,
  payload jsonb,
  event text,
  private boolean default false,
  updated_at timestamp without time zone default now() not null,
  inserted_at timestamp without time zone default now() not null,
  id uuid default gen_random_uuid() not null,
  constraint messages_pkey primary key (id, inserted_at)
);

create index messages_inserted_at_topic_index on realtime.messages
  using btree (inserted_at desc, topic)
  where ((extension = 'broadcast'::text) and (private is true));

-- No policies: a project's migrations add the ones that authorise its
-- channels, e.g. `for select to authenticated using (realtime.topic() = ...)`.
alter table realtime.messages enable row level security;
alter table realtime.messages owner to supabase_realtime_admin;

grant all on table realtime.messages to postgres, dashboard_user;
grant select, insert, update on table realtime.messages to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- realtime.topic(): the topic of the channel being authorised. The Realtime
-- server sets `realtime.topic` locally before it checks a join against the
-- policies of realtime.messages; realtime.send sets it for its insert.
-- ---------------------------------------------------------------------------

create function realtime.topic()
returns text
language sql
stable
security invoker
set search_path = ''
as $$
  select nullif(pg_catalog.current_setting('realtime.topic', true), '')::text;
$$;

-- ---------------------------------------------------------------------------
-- realtime.send(): broadcast a message from SQL. Runs as the caller, so the
-- caller needs INSERT on realtime.messages and, for anon/authenticated, an
-- INSERT policy. Errors are turned into a WARNING (the transaction goes on),
-- as on Supabase. An `id` is added to the payload when it has none.
-- ---------------------------------------------------------------------------

create function realtime.send(payload jsonb, event text, topic text, private boolean default true)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  generated_id uuid;
  final_payload jsonb;
begin
  begin
    -- Generate a new UUID for the id
    generated_id := pg_catalog.gen_random_uuid();

    -- Check if payload has an 'id' key, if not, add the generated UUID
    if payload ? 'id' then
      final_payload := payload;
    else
      final_payload := pg_catalog.jsonb_set(payload, '{id}', pg_catalog.to_jsonb(generated_id));
    end if;

    -- Set the topic configuration
    execute pg_catalog.format('SET LOCAL realtime.topic TO %L', topic);

    -- Attempt to insert the message
    insert into realtime.messages (id, payload, event, topic, private, extension)
    values (generated_id, final_payload, event, topic, private, 'broadcast');
  exception
    when others then
      -- Capture and notify the error
      raise warning 'ErrorSendingBroadcastMessage: %', sqlerrm;
  end;
end;
$$;

-- ---------------------------------------------------------------------------
-- realtime.broadcast_changes(): for row triggers, e.g.
--   perform realtime.broadcast_changes('room:' || new.room_id, tg_op, tg_op,
--     tg_table_name, tg_table_schema, new, old);
-- Payload: {"old_record", "record", "operation", "table", "schema"} (+ "id").
-- ---------------------------------------------------------------------------

create function realtime.broadcast_changes(
  topic_name text,
  event_name text,
  operation text,
  table_name text,
  table_schema text,
  new record,
  old record,
  level text default 'ROW'::text
)
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  -- Declare a variable to hold the JSONB representation of the row
  row_data jsonb := '{}'::jsonb;
begin
  if level = 'STATEMENT' then
    raise exception 'function can only be triggered for each row, not for each statement';
  end if;
  -- Check the operation type and handle accordingly
  if operation = 'INSERT' or operation = 'UPDATE' or operation = 'DELETE' then
    row_data := pg_catalog.jsonb_build_object(
      'old_record', old, 'record', new, 'operation', operation, 'table', table_name, 'schema', table_schema
    );
    perform realtime.send(row_data, event_name, topic_name);
  else
    raise exception 'Unexpected operation type: %', operation;
  end if;
exception
  when others then
    raise exception 'Failed to process the row: %', sqlerrm;
end;
$$;

alter function realtime.topic() owner to supabase_realtime_admin;
alter function realtime.send(jsonb, text, text, boolean) owner to supabase_realtime_admin;
alter function realtime.broadcast_changes(text, text, text, text, text, record, record, text) owner to supabase_realtime_admin;

-- Hosted ACLs; EXECUTE also stays granted to PUBLIC (not revoked on Supabase),
-- so policies may call realtime.topic() and triggers realtime.send().
grant all on function realtime.topic() to postgres, dashboard_user;
grant all on function realtime.send(jsonb, text, text, boolean) to postgres, dashboard_user;
grant all on function realtime.broadcast_changes(text, text, text, text, text, record, record, text) to postgres, dashboard_user;
grant all on all functions in schema realtime to supabase_realtime_admin;

-- ---------------------------------------------------------------------------
-- The publication Postgres Changes listens to; empty until a migration runs
-- `alter publication supabase_realtime add table ...`. PGlite accepts the
-- publication and its tables, but runs with wal_level 'replica' and no
-- replication connections, so nothing is decoded from it locally: a local
-- Postgres Changes feed has to read the publication's table list
-- (pg_publication_tables) and capture changes another way.
-- ---------------------------------------------------------------------------

create publication supabase_realtime;
