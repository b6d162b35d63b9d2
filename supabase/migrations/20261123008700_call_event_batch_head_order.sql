-- Call-event batches take their locks in the project's order (20261123008600) before their first event.
--
-- private.apply_call_events applied its items one by one, and each took its locks as it came: the call row,
-- then, at the call's first audited change, the org's audit chain head (H) in its audit trigger. Two batches
-- over calls of the same two orgs A and B, one applying A's then B's and the other B's then A's (two isolates
-- on hosted Supabase, where Postgres runs them in parallel), each held one H and waited for the other: 40P01,
-- and the call-events function applied their events again one by one. One org was enough too: a batch that
-- held H from one call's change and then locked another call, while another writer of that call (a second
-- batch, close_stale_calls) held the call and waited for H. 20261123008600 left this for a change that locks
-- the batch's calls first: this one.
--
-- A batch now takes, before it applies its first item, every lock its items can take that another path takes
-- before its H, each kind in a fixed order, and H last, in org order:
--
--   the org rows (for key share: the events' and calls' foreign keys; delete_organization locks the row for
--   update, then writes its audited deletes) -> the webhook endpoints, bots and conversations the events may
--   reference (for key share: a delete of one locks it, then its audit takes H) -> the calls (for update, in
--   id order) -> the creation lock of each call not found (the advisory lock apply_call_event takes) -> the
--   orgs' analytics marker lock (7700, shared: a zone change takes it exclusive, then H in the org row's
--   audit) -> H of each org, inserted first where the org has none yet.
--
-- What apply_call_event still locks after H is its own: rows it inserts, the segments of calls it holds, and
-- the analytics_stale_days marks, where an insert waits only for an uncommitted mark of the same org and day.
-- A call created by another transaction between the pre-lock and its event is locked when its event comes,
-- after H, as before. The over-locking is bounded: the org's H is held for the whole batch from its start,
-- which it was from the batch's first audited change before.

create function private.lock_call_event_batch(items jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  uuid_pattern constant text := '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';
  key_orgs uuid[];
  key_calls uuid[];
  key_bots uuid[];
  key_conversations uuid[];
  key_providers text[];
  key_provider_call_ids text[];
  batch_orgs uuid[];
  creation_key bigint;
begin
  -- The items' keys, one row per call (its live transcript lines repeat them); a malformed value gives a
  -- null, never an error: the item's own checks raise, in item order, as before.
  select array_agg(k.org_id), array_agg(k.call_id), array_agg(k.bot_id), array_agg(k.conversation_id),
    array_agg(k.provider), array_agg(k.provider_call_id)
  into key_orgs, key_calls, key_bots, key_conversations, key_providers, key_provider_call_ids
  from (
    select distinct
      case when r.org ~ uuid_pattern then r.org::uuid end as org_id,
      case when r.call ~ uuid_pattern then r.call::uuid end as call_id,
      case when r.bot ~ uuid_pattern then r.bot::uuid end as bot_id,
      case when r.conversation ~ uuid_pattern then r.conversation::uuid end as conversation_id,
      r.provider,
      r.provider_call_id
    from (
      select e.value ->> 'org_id' as org, e.value #>> '{event,metadata,call_id}' as call,
        e.value #>> '{event,metadata,bot_id}' as bot, e.value #>> '{event,metadata,conversation_id}' as conversation,
        e.value #>> '{event,provider}' as provider, nullif(e.value #>> '{event,provider_call_id}', '') as provider_call_id
      from pg_catalog.jsonb_array_elements(lock_call_event_batch.items) e
      where pg_catalog.jsonb_typeof(e.value) = 'object'
    ) r
  ) k;

  select coalesce(array_agg(o.id order by o.id), '{}') into batch_orgs
  from (select x.id from public.organizations x where x.id = any (key_orgs) order by x.id for key share) o;
  if cardinality(batch_orgs) = 0 then
    return;
  end if;

  perform 1 from public.webhook_endpoints e where e.org_id = any (batch_orgs) order by e.id for key share;
  perform 1 from public.bots b where b.id = any (key_bots) order by b.id for key share;
  perform 1 from public.conversations c
  where c.id = any (key_conversations)
    -- The conversation a Vapi call takes by its id (private.call_takes_its_conversation).
    or c.id in (
      select v.id
      from unnest(key_orgs, key_providers, key_provider_call_ids) k (org_id, provider, provider_call_id)
      join public.conversations v on v.org_id = k.org_id and v.external_conversation_id = k.provider_call_id
      where k.provider = 'vapi'
    )
  order by c.id
  for key share;

  -- The calls as apply_call_event finds them: by metadata.call_id in the org, or by the provider's id.
  perform 1 from public.calls c
  where c.id in (
    select m.id
    from unnest(key_orgs, key_calls) k (org_id, call_id)
    join public.calls m on m.id = k.call_id and m.org_id = k.org_id
    union all
    select p.id
    from unnest(key_orgs, key_providers, key_provider_call_ids) k (org_id, provider, provider_call_id)
    join public.calls p on p.org_id = k.org_id and p.provider = k.provider and p.provider_call_id = k.provider_call_id
    where k.provider_call_id is not null and p.provider_call_id is not null
  )
  order by c.id
  for update;

  for creation_key in
    select distinct pg_catalog.hashtextextended('call:' || k.org_id::text || ':' || k.provider || ':' || k.provider_call_id, 0)
    from unnest(key_orgs, key_calls, key_providers, key_provider_call_ids) k (org_id, call_id, provider, provider_call_id)
    where k.org_id = any (batch_orgs) and k.provider is not null and k.provider_call_id is not null
      and not exists (select 1 from public.calls m where m.id = k.call_id and m.org_id = k.org_id)
      and not exists (
        select 1 from public.calls p
        where p.org_id = k.org_id and p.provider = k.provider and p.provider_call_id = k.provider_call_id
      )
    order by 1
  loop
    perform pg_catalog.pg_advisory_xact_lock(creation_key);
  end loop;

  perform pg_catalog.pg_advisory_xact_lock_shared(7700, pg_catalog.hashtext(o::text))
  from unnest(batch_orgs) o;

  -- An org's head is written by its creation's audit; an org created with triggers off has none yet. A head
  -- inserted here is this transaction's until commit (another inserting it waits), as chain_audit_row's is.
  insert into private.audit_chain_heads (org_id, last_seq, last_hash)
  select o, 0, private.audit_genesis_hash(o)
  from unnest(batch_orgs) o
  where not exists (select 1 from private.audit_chain_heads h where h.org_id = o)
  order by o
  on conflict (org_id) do nothing;
  perform 1 from private.audit_chain_heads h where h.org_id = any (batch_orgs) order by h.org_id for update;
end;
$$;
comment on function private.lock_call_event_batch(jsonb) is
  'Takes, in the lock order of 20261123008600, every lock a call-event batch''s items take before their orgs'' '
  'audit chain heads, then the heads in org order (20261123008700).';
revoke execute on function private.lock_call_event_batch(jsonb) from public, anon, authenticated, service_role;

-- Latest definition: 20261123001900_call_event_batches.sql; only the pre-lock before the first item is new.
create or replace function private.apply_call_events(items jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  item jsonb;
  results jsonb := '[]'::jsonb;
begin
  if jsonb_typeof(apply_call_events.items) is distinct from 'array' then
    raise exception 'items must be an array of {org_id, event, payload}' using errcode = 'invalid_parameter_value';
  end if;
  perform private.lock_call_event_batch(apply_call_events.items);
  for item in select e.value from jsonb_array_elements(apply_call_events.items) with ordinality as e (value, n) order by e.n loop
    results := results || jsonb_build_array(
      private.apply_call_event((item ->> 'org_id')::uuid, item -> 'event', item -> 'payload'));
  end loop;
  return results;
end;
$$;
