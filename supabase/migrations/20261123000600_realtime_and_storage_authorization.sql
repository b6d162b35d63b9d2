-- Who may use the org's private Realtime channels and Storage files.
--
-- Realtime: private channels are named `org:<org_id>:<channel>` (e.g.
-- `org:…:calls`). Members (realtime.receive, viewers and up) and platform
-- admins receive; members and up (realtime.send) send. Other modules
-- broadcast row changes with private.broadcast_org_change().
--
-- Storage: buckets registered in private.org_buckets hold objects named
-- `<org_id>/...`. Viewers and up read (files.read), members and up upload
-- and replace (files.write), admins and up delete (files.delete), per the
-- permissions matrix; platform admins read.

-- ---------------------------------------------------------------------------
-- Realtime
-- ---------------------------------------------------------------------------

create function private.topic_org_id(topic text)
returns uuid
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when topic ~ '^org:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[a-z0-9_.-]{1,64}$'
    then pg_catalog.split_part(topic, ':', 2)::uuid
  end;
$$;
comment on function private.topic_org_id(text) is 'The org of a private topic org:<org_id>:<channel>; null for any other topic.';
grant execute on function private.topic_org_id(text) to authenticated, service_role;

create policy "members and platform admins can receive on their org's private channels"
  on realtime.messages for select to authenticated
  using (
    extension in ('broadcast', 'presence')
    -- The row's own topic must be the one being authorised, or a member of
    -- one org could read (or write) another org's rows under their own topic.
    and topic = (select realtime.topic())
    and (select private.topic_org_id(realtime.topic())) = any (array(select private.readable_org_ids('realtime.receive')))
  );

create policy "members and up can send on their org's private channels"
  on realtime.messages for insert to authenticated
  with check (
    extension in ('broadcast', 'presence')
    and topic = (select realtime.topic())
    and (select private.topic_org_id(realtime.topic())) = any (array(select private.org_ids_with_permission('realtime.send')))
  );

-- Trigger helper: broadcasts a row change to org:<org_id>:<channel>.
--   create trigger broadcast after insert or update or delete on public.<t>
--     for each row execute function private.broadcast_org_change('<channel>'[, '<org column>']);
-- Definer, so a write by any role that may write the row is broadcast even
-- when that role may not send on the channel itself.
create function private.broadcast_org_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  channel text := tg_argv[0];
  org_column text := coalesce(tg_argv[1], 'org_id');
  org_id text := coalesce(to_jsonb(new) ->> org_column, to_jsonb(old) ->> org_column);
begin
  if channel is null or channel !~ '^[a-z0-9_.-]{1,64}$' then
    raise exception 'broadcast_org_change needs a channel name argument' using errcode = 'invalid_parameter_value';
  end if;
  perform realtime.broadcast_changes(
    'org:' || org_id || ':' || channel, tg_op, tg_op, tg_table_name, tg_table_schema, new, old
  );
  return null;
end;
$$;
comment on function private.broadcast_org_change() is 'Trigger: broadcast the row change on the org''s private channel named by the first argument.';

-- For functions and jobs that broadcast something other than a row change.
create function private.broadcast_to_org(org_id uuid, channel text, event text, payload jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  if channel is null or channel !~ '^[a-z0-9_.-]{1,64}$' then
    raise exception 'invalid channel name: %', channel using errcode = 'invalid_parameter_value';
  end if;
  perform realtime.send(payload, event, 'org:' || org_id::text || ':' || channel, true);
end;
$$;
grant execute on function private.broadcast_to_org(uuid, text, text, jsonb) to service_role;

-- ---------------------------------------------------------------------------
-- Storage
-- ---------------------------------------------------------------------------

create table private.org_buckets (
  bucket_id text primary key references storage.buckets (id) on delete cascade
);
comment on table private.org_buckets is 'Buckets whose objects are named <org_id>/... and follow the org''s roles. Modules register their buckets here.';

create function private.org_bucket_ids()
returns setof text
language sql
stable
security definer
set search_path = ''
as $$
  select b.bucket_id from private.org_buckets b;
$$;

create function private.object_org_id(name text)
returns uuid
language sql
immutable
security invoker
set search_path = ''
as $$
  select case
    when name ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.'
    then pg_catalog.split_part(name, '/', 1)::uuid
  end;
$$;
comment on function private.object_org_id(text) is 'The org of an object named <org_id>/...; null for any other name.';

grant execute on function private.org_bucket_ids(), private.object_org_id(text) to authenticated, service_role;

create policy "members and platform admins can read their org's files"
  on storage.objects for select to authenticated
  using (
    bucket_id in (select private.org_bucket_ids())
    and private.object_org_id(name) = any (array(select private.readable_org_ids('files.read')))
  );

create policy "members and up can upload their org's files"
  on storage.objects for insert to authenticated
  with check (
    bucket_id in (select private.org_bucket_ids())
    and private.object_org_id(name) = any (array(select private.org_ids_with_permission('files.write')))
  );

create policy "members and up can replace their org's files"
  on storage.objects for update to authenticated
  using (
    bucket_id in (select private.org_bucket_ids())
    and private.object_org_id(name) = any (array(select private.org_ids_with_permission('files.write')))
  )
  with check (
    bucket_id in (select private.org_bucket_ids())
    and private.object_org_id(name) = any (array(select private.org_ids_with_permission('files.write')))
  );

create policy "admins and up can delete their org's files"
  on storage.objects for delete to authenticated
  using (
    bucket_id in (select private.org_bucket_ids())
    and private.object_org_id(name) = any (array(select private.org_ids_with_permission('files.delete')))
  );
