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
-- Only the org rows and the calls are locked for every item. The rest is for the orgs with an item that can make
-- an audited change (private.call_events_may_audit): every item but a live transcript line of a call that exists
-- (and, if a Vapi call with a provider id, has its conversation), which writes its segment, its raw event and
-- at most last_event_at, none audited, and took no head before either. A batch of only such lines (the bulk
-- of the traffic) takes no head, so it waits neither for another batch of the org nor for a long transaction
-- holding the head (generate_invoices holds every billed org's until it commits). Such a line's own locks come
-- as before, holding no head: its call (locked above), at most a 7700 mark (the latencies of an ended call).
--
-- What apply_call_event still locks after H is its own: rows it inserts, the segments of calls it holds, and
-- the analytics_stale_days marks, where an insert waits only for an uncommitted mark of the same org and day.
-- A call created by another transaction between the pre-lock and its event is locked when its event comes,
-- after H, as before. The over-locking is bounded: the org's H is held for the whole batch from its start,
-- which it was from the batch's first audited change before.

-- Which of a batch's items can write an audited row when applied (calls_audit, calls_audit_update): every item
-- can but a call.transcript without a status for a call that exists (found as apply_call_event finds it) and
-- that it adds nothing audited to: no number, provider id, bot or conversation the call lacks (nor, for a Vapi
-- call with a provider id, a conversation call_takes_its_conversation could give it), no other start or end
-- time, reason, recording, summary or sentiment, and no cost. Live transcript lines are such items: they write
-- segments, a call_events row and at most last_event_at, none audited. Whatever cannot be read (a malformed
-- value: its item raises; a time outside the pattern below, such as a 29 February) counts as audited. One
-- statement for the batch, each field read once: about 0.5 ms for 32 live lines on PGlite (item-by-item calls
-- took 2.5 ms).
create function private.call_events_may_audit(items jsonb)
returns table (n bigint, org_id uuid, may_audit boolean)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return query
  with
  patterns (id, at) as (
    values (
      '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
      -- Only times that cast to timestamptz without an error.
      '^(19|20)[0-9]{2}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))'
        'T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'
    )
  ),
  item as materialized (
    select e.n,
      case when e.value ->> 'org_id' ~ p.id then (e.value ->> 'org_id')::uuid end as org_id,
      e.value #>> '{event,type}' = 'call.transcript' and nullif(e.value #>> '{event,status}', '') is null
        and pg_catalog.jsonb_typeof(e.value #> '{event,cost}') is distinct from 'object' as candidate,
      case when e.value #>> '{event,metadata,call_id}' ~ p.id then (e.value #>> '{event,metadata,call_id}')::uuid end as meta_call_id,
      e.value #>> '{event,provider}' as provider,
      nullif(e.value #>> '{event,provider_call_id}', '') as provider_call_id,
      e.value #>> '{event,from}' as from_text,
      e.value #>> '{event,to}' as to_text,
      nullif(e.value #>> '{event,metadata,bot_id}', '') as meta_bot_id,
      nullif(e.value #>> '{event,metadata,conversation_id}', '') as meta_conversation_id,
      e.value #>> '{event,started_at}' as started_at_text,
      case when e.value #>> '{event,started_at}' ~ p.at then (e.value #>> '{event,started_at}')::timestamptz end as started_at,
      e.value #>> '{event,ended_at}' as ended_at_text,
      case when e.value #>> '{event,ended_at}' ~ p.at then (e.value #>> '{event,ended_at}')::timestamptz end as ended_at,
      e.value #>> '{event,ended_reason}' as ended_reason,
      e.value #>> '{event,recording_url}' as recording_url,
      e.value #>> '{event,summary}' as summary,
      e.value #>> '{event,sentiment}' as sentiment
    from pg_catalog.jsonb_array_elements(call_events_may_audit.items) with ordinality e (value, n)
    cross join patterns p
    where pg_catalog.jsonb_typeof(e.value) = 'object'
  )
  -- A null anywhere (nothing found, nothing to compare) leaves the item audited.
  select i.n, i.org_id, coalesce(not (
    i.candidate and s.id is not null and s.provider is not null
    and (s.provider_call_id is not null or i.provider_call_id is null)
    and (s.from_number is not null or i.from_text is null or private.normalize_phone_number(i.from_text) is null)
    and (s.to_number is not null or i.to_text is null or private.normalize_phone_number(i.to_text) is null)
    and (s.bot_id is not null or i.meta_bot_id is null)
    -- A Vapi call with a provider id and no conversation takes one (calls_take_their_conversation, audited)
    -- if its first chat turn commits before the item is applied, after this check: counted as audited.
    and (s.conversation_id is not null or (
      i.meta_conversation_id is null and (s.provider is distinct from 'vapi' or s.provider_call_id is null)))
    and (i.started_at_text is null or i.started_at = s.started_at)
    and (i.ended_at_text is null or i.ended_at = s.ended_at)
    and (i.ended_reason is null or i.ended_reason = s.ended_reason)
    and (i.recording_url is null or i.recording_url = s.recording_url)
    and (i.summary is null or i.summary = s.summary)
    and (coalesce(i.sentiment, 'unknown') = 'unknown' or i.sentiment = s.sentiment::text)
  ), true)
  from item i
  left join lateral (
    -- The call of metadata.call_id in the org, else the provider's id's; looked up only for a candidate.
    select f.* from (
      select c.*, 1 as preference from public.calls c where i.candidate and c.id = i.meta_call_id and c.org_id = i.org_id
      union all
      select c.*, 2 from public.calls c
      where i.candidate and c.org_id = i.org_id and c.provider = i.provider and c.provider_call_id = i.provider_call_id
    ) f
    order by f.preference
    limit 1
  ) s on true;
end;
$$;
comment on function private.call_events_may_audit(jsonb) is
  'For each item of a call-event batch (by position), its org and whether applying it can write an audited row: '
  'false only for a call.transcript without a status that adds nothing audited to a call that exists (20261123008700).';
revoke execute on function private.call_events_may_audit(jsonb) from public, anon, authenticated, service_role;

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
  key_audited boolean[];
  batch_orgs uuid[];
  audited_orgs uuid[];
  creation_key bigint;
begin
  -- The items' keys, one row per call and kind (its live transcript lines repeat them); a malformed value gives
  -- a null, never an error: the item's own checks raise, in item order, as before.
  select array_agg(k.org_id), array_agg(k.call_id), array_agg(k.bot_id), array_agg(k.conversation_id),
    array_agg(k.provider), array_agg(k.provider_call_id), array_agg(k.audited)
  into key_orgs, key_calls, key_bots, key_conversations, key_providers, key_provider_call_ids, key_audited
  from (
    select distinct
      a.org_id,
      case when r.call ~ uuid_pattern then r.call::uuid end as call_id,
      case when r.bot ~ uuid_pattern then r.bot::uuid end as bot_id,
      case when r.conversation ~ uuid_pattern then r.conversation::uuid end as conversation_id,
      r.provider,
      r.provider_call_id,
      a.may_audit as audited
    from (
      select e.n, e.value #>> '{event,metadata,call_id}' as call,
        e.value #>> '{event,metadata,bot_id}' as bot, e.value #>> '{event,metadata,conversation_id}' as conversation,
        e.value #>> '{event,provider}' as provider, nullif(e.value #>> '{event,provider_call_id}', '') as provider_call_id
      from pg_catalog.jsonb_array_elements(lock_call_event_batch.items) with ordinality e (value, n)
    ) r
    join private.call_events_may_audit(lock_call_event_batch.items) a on a.n = r.n
  ) k;

  select coalesce(array_agg(o.id order by o.id), '{}') into batch_orgs
  from (select x.id from public.organizations x where x.id = any (key_orgs) order by x.id for key share) o;
  if cardinality(batch_orgs) = 0 then
    return;
  end if;
  -- Only what an audited change can lock, and only for the orgs with an item that can make one: a batch of live
  -- transcript lines for calls under way takes no head, so it waits neither for another batch of the org nor for
  -- a long transaction holding the head (generate_invoices holds every billed org's until it commits).
  select coalesce(array_agg(distinct k.org_id order by k.org_id), '{}') into audited_orgs
  from unnest(key_orgs, key_audited) k (org_id, audited)
  where k.audited and k.org_id = any (batch_orgs);

  perform 1 from public.webhook_endpoints e where e.org_id = any (audited_orgs) order by e.id for key share;
  perform 1 from public.bots b
  where b.id in (select k.bot_id from unnest(key_bots, key_audited) k (bot_id, audited) where k.audited)
  order by b.id
  for key share;
  -- One subquery (the metadata's ids and the conversation a Vapi call takes by its id,
  -- private.call_takes_its_conversation): a semi-join on the primary key, where an `or` of two conditions
  -- scanned every org's conversations.
  perform 1 from public.conversations c
  where c.id in (
    select k.conversation_id from unnest(key_conversations, key_audited) k (conversation_id, audited) where k.audited
    union
    select v.id
    from unnest(key_orgs, key_providers, key_provider_call_ids, key_audited) k (org_id, provider, provider_call_id, audited)
    join public.conversations v on v.org_id = k.org_id and v.external_conversation_id = k.provider_call_id
    where k.audited and k.provider = 'vapi'
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

  -- Read again now that the calls are locked: what another writer of a call committed before this batch got it
  -- (a new conversation, a start time) can make an item audited. Such an org's endpoints, bots and
  -- conversations were not locked above; its item locks them as it comes, as before 20261123008700.
  if not batch_orgs <@ audited_orgs then
    select coalesce(array_agg(distinct x.o order by x.o), '{}') into audited_orgs
    from (
      select unnest(audited_orgs) as o
      union all
      select a.org_id from private.call_events_may_audit(lock_call_event_batch.items) a
      where a.may_audit and a.org_id = any (batch_orgs)
    ) x;
  end if;

  perform pg_catalog.pg_advisory_xact_lock_shared(7700, pg_catalog.hashtext(o::text))
  from unnest(audited_orgs) o;

  -- An org's head is written by its creation's audit; an org created with triggers off has none yet. A head
  -- inserted here is this transaction's until commit (another inserting it waits), as chain_audit_row's is.
  insert into private.audit_chain_heads (org_id, last_seq, last_hash)
  select o, 0, private.audit_genesis_hash(o)
  from unnest(audited_orgs) o
  where not exists (select 1 from private.audit_chain_heads h where h.org_id = o)
  order by o
  on conflict (org_id) do nothing;
  perform 1 from private.audit_chain_heads h where h.org_id = any (audited_orgs) order by h.org_id for update;
end;
$$;
comment on function private.lock_call_event_batch(jsonb) is
  'Takes, in the lock order of 20261123008600, every lock a call-event batch''s items take before their orgs'' '
  'audit chain heads, then the heads in org order, for the orgs with an item that can make an audited change '
  '(private.call_events_may_audit; the org rows and calls for all) (20261123008700).';
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
