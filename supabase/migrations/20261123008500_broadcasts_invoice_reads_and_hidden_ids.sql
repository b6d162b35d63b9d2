-- Deleted transcript lines are broadcast, the exports channel is the
-- database's only, invoice PDFs are read through the billing function only,
-- and another org's webhook endpoints, deliveries and API keys are 404.
--
-- * The end-of-call transcript (private.write_call_transcript, mode
--   `replace`) deletes the live lines it does not hold, but
--   call_transcript_segments_broadcast fired after insert or update only:
--   dashboards kept showing lines no longer in the transcript. It now fires
--   after delete too (private.broadcast_org_change takes the org from OLD).
--   A deletion whose org is gone (the cascade of delete_organization) is
--   broadcast by no trigger: nobody is left to receive it, and each message
--   would keep the deleted row (a transcript line's words) in
--   realtime.messages past the org's deletion.
-- * org:<org_id>:exports was registered with the default users_send, so an
--   owner could insert a broadcast of their own on it (an export "ready")
--   that the org's other owners could not tell from the database's. No client
--   sends on it; calls and appointments were closed the same way in
--   20261123007200.
-- * Admins and owners (billing.read) could select objects of the invoices
--   bucket, so supabase-js createSignedUrl gave them links of any lifetime
--   that kept working after a demotion, past GET /billing/invoices/:id/pdf and
--   its BILLING_LINK_SECONDS cap (60-300 s). The billing function signs links
--   as the service role, so no user role reads the bucket now.
-- * Managing another org's endpoint, replaying its delivery, revoking or
--   limiting its key answered 42501 (403), which confirmed the id exists. An
--   id whose org the caller does not belong to (org.read; platform admins
--   belong to every org) is now P0002 (404), as for appointments, calls,
--   documents and bots; a member of the org without the manage permission
--   still gets 42501. org.read rather than each module's read permission:
--   api_keys.read is admins only, and a viewer or member of the org already
--   knows it and is told what they lack.

-- ---------------------------------------------------------------------------
-- Transcript deletions are broadcast
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000600_realtime_and_storage_authorization.sql;
-- only skipping a deletion whose org is gone is new.
create or replace function private.broadcast_org_change()
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
  if tg_op = 'DELETE' and not exists (select 1 from public.organizations o where o.id = org_id::uuid) then
    return null;
  end if;
  perform realtime.broadcast_changes(
    'org:' || org_id || ':' || channel, tg_op, tg_op, tg_table_name, tg_table_schema, new, old
  );
  return null;
end;
$$;

drop trigger call_transcript_segments_broadcast on public.call_transcript_segments;
create trigger call_transcript_segments_broadcast after insert or update or delete on public.call_transcript_segments
  for each row execute function private.broadcast_org_change('calls');

-- ---------------------------------------------------------------------------
-- The exports channel is sent on by the database only
-- ---------------------------------------------------------------------------

update private.narrowed_channels set users_send = false where channel = 'exports';

-- ---------------------------------------------------------------------------
-- Invoice PDFs are read by the service role only
-- ---------------------------------------------------------------------------

alter table private.narrowed_buckets add column users_read boolean not null default true;
comment on column private.narrowed_buckets.users_read is 'false: no user reads the bucket''s objects, whatever their permission; only the service role does (and hands out short-lived signed links).';

update private.narrowed_buckets set users_read = false where bucket_id = 'invoices';

-- Latest definition: 20261123001200_calls.sql; only skipping buckets without
-- users_read is new.
create or replace function private.readable_narrowed_objects()
returns table (bucket_id text, org_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select b.bucket_id, o.org_id
  from private.narrowed_buckets b
  cross join lateral (
    select r.org_id from private.readable_org_ids(b.read_permission) r (org_id) where b.platform_admins_read
    union all
    select w.org_id from private.org_ids_with_permission(b.read_permission) w (org_id) where not b.platform_admins_read
  ) o
  where b.users_read;
$$;

-- ---------------------------------------------------------------------------
-- Another org's ids are not found
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000800_webhooks.sql; only the P0002 for an
-- endpoint of an org the caller does not belong to is new. Every admin
-- operation on an endpoint, and replay_webhook_delivery (a delivery's
-- endpoint is of the delivery's org), go through it.
create or replace function private.managed_webhook_endpoint(endpoint_id uuid)
returns public.webhook_endpoints
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints;
begin
  select * into endpoint from public.webhook_endpoints e where e.id = managed_webhook_endpoint.endpoint_id for update;
  if not found or not (endpoint.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'webhook endpoint not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(endpoint.org_id, 'webhooks.manage');
  return endpoint;
end;
$$;

-- Latest definition: 20261123000500_api_keys.sql; only the P0002 for a key of
-- an org the caller does not belong to is new.
create or replace function private.revoke_api_key(api_key_id uuid)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  select * into target from public.api_keys k where k.id = revoke_api_key.api_key_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'API key not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is null then
    update public.api_keys k set revoked_at = pg_catalog.now(), revoked_by = auth.uid()
    where k.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;

-- Latest definition: 20261123004000_api_key_rate_limit.sql; only the P0002
-- for a key of an org the caller does not belong to is new.
create or replace function private.set_api_key_rate_limit(api_key_id uuid, per_minute integer)
returns public.api_keys
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.api_keys;
begin
  if per_minute is null or per_minute not between 1 and 10000 then
    raise exception 'per_minute must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  select * into target from public.api_keys k where k.id = set_api_key_rate_limit.api_key_id for update;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'API key not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'api_keys.manage');
  if target.revoked_at is not null then
    raise exception 'the API key is revoked' using errcode = 'invalid_parameter_value';
  end if;
  update public.api_keys k set rate_limit_per_minute = set_api_key_rate_limit.per_minute
  where k.id = target.id
  returning * into target;
  return target;
end;
$$;

comment on function private.replay_webhook_delivery(uuid) is 'Queues a new delivery of a delivery''s event to the same endpoint (webhooks.manage). P0002 unknown delivery or another org''s; 42501 without webhooks.manage, or with detail owner_only_event (export.*) or admin_only_event (invoice.*) when the caller may not read the event; 22023 when the endpoint is disabled or receives no events of that type.';
comment on function public.revoke_api_key(uuid) is 'Revokes an API key at once. Revoking twice is a no-op. P0002 for an unknown key or another org''s; 42501 without api_keys.manage.';
comment on function public.set_api_key_rate_limit(uuid, integer) is 'Sets how many requests a minute the key may make to the chat endpoints (1 to 10,000; admins and up). P0002 for an unknown key or another org''s.';
