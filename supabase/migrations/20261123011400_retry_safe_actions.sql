-- Actions that are safe to repeat, and re-ingestion that cannot cost a document its chunks.
--
-- 1. accept_invitation sent again by the user who accepted it (its answer lost, a React effect run twice) raised
--    22023 "this invitation was already used" although they had joined. It now answers with their membership,
--    as the first accept did; anyone else, or the acceptor once they have left, is refused as before.
-- 2. A failed run deleted the document's chunks whatever it was (private.fail_ingest). A retry_document of a
--    ready document whose re-run then failed for a reason that has nothing to do with the file (the period's
--    embedding tokens used up before its first step, the provider down until retry_stuck_ingestion gave up)
--    left it failed with 0 chunks, and bots stopped answering from it. documents.retried_at marks an ingestion
--    queued by retry_document; any upload clears it (the only way a document's file changes), as does the
--    run's end. A run so marked that fails while the document still has chunks drops only what it staged: the
--    document goes back to `ready` on its earlier chunks, which were built from this very file, and the reason
--    is kept in documents.last_failure_reason (failure_reason stays null: documents_failed_has_reason ties it
--    to `failed`). document.failed is still emitted, with `"status": "ready"`, so whoever retried learns the
--    re-run failed and that the document still answers. A run after an upload, or of a document without
--    chunks, fails as before.
-- 3. documents.retried_at also lets a repeat of retry_document (its answer lost) return the document queued or
--    processing instead of 22023, and POST /knowledge/documents/:id/retry answer it 202 instead of 409
--    not_retryable (functions/knowledge/retry.ts).
-- 4. Narrowing an endpoint's event_types left its queued deliveries of the types taken out claimable: they
--    were sent, and retried, for up to 3 days. update_webhook_endpoint now cancels that endpoint's pending
--    and sending deliveries of those types, as disabling an endpoint cancels all of them (status `canceled`;
--    a worker's late report on an in-flight one comes back stale). Replays and test sends are explicit admin
--    actions and go on. An empty filter (every type) cancels nothing.
-- 5. Likewise, an org's notification_preferences turning `webhook` off for a type (or for "*") only kept new
--    deliveries of it from being made (private.skip_muted_webhook_delivery); those already queued were sent.
--    They are now canceled the same way, on every endpoint of the org.

-- ---------------------------------------------------------------------------
-- 1. accept_invitation answers its acceptor again
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123004500_invitation_confirmed_email_and_settings_ranges.sql; only the answer to the
-- acceptor of a used invitation is new.
create or replace function private.accept_invitation(token text)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := private.require_user();
  invitation public.invitations;
  joined public.memberships;
  caller_email text;
  caller_email_confirmed_at timestamptz;
begin
  select i.* into invitation
  from private.invitation_tokens t join public.invitations i on i.id = t.invitation_id
  where t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(coalesce(accept_invitation.token, ''), 'UTF8'))
  for update of i;
  if not found then
    raise exception 'invitation not found' using errcode = 'no_data_found';
  end if;
  if invitation.accepted_at is not null then
    -- The acceptor sending it again (an answer lost, an effect run twice) gets the first answer: the membership.
    if invitation.accepted_by = caller_id then
      select m.* into joined from public.memberships m
      where m.org_id = invitation.org_id and m.user_id = caller_id;
      if found then
        return joined;
      end if;
    end if;
    raise exception 'this invitation was already used' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.revoked_at is not null then
    raise exception 'this invitation was revoked' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.expires_at <= pg_catalog.now() then
    raise exception 'this invitation has expired' using errcode = 'invalid_parameter_value',
      hint = 'Ask for a new one.';
  end if;
  -- The address Supabase Auth holds for the caller, and whether they proved
  -- they own it; the JWT's e-mail claim says neither.
  select u.email, u.email_confirmed_at into caller_email, caller_email_confirmed_at
  from auth.users u where u.id = caller_id;
  if pg_catalog.lower(coalesce(caller_email, '')) <> invitation.email then
    raise exception 'this invitation is for another e-mail address' using errcode = 'insufficient_privilege';
  end if;
  if caller_email_confirmed_at is null then
    raise exception 'confirm your e-mail address before accepting an invitation' using errcode = 'insufficient_privilege',
      hint = 'Open the confirmation link sent to that address, then accept the invitation again.';
  end if;
  if exists (select 1 from public.memberships m where m.org_id = invitation.org_id and m.user_id = caller_id) then
    raise exception 'you are already a member of this organization' using errcode = 'unique_violation';
  end if;

  -- The token's hash stays, so a second use is told "already used" rather than "not found".
  update public.invitations set accepted_at = pg_catalog.now(), accepted_by = caller_id
  where id = invitation.id;
  insert into public.memberships (org_id, user_id, role)
  values (invitation.org_id, caller_id, invitation.role)
  returning * into joined;
  return joined;
end;
$$;

comment on function public.accept_invitation(text) is 'Joins the organization with the invitation''s role. The token is single-use and works only for the invited e-mail address, once the caller has confirmed it; the user who accepted it gets their membership again.';

-- ---------------------------------------------------------------------------
-- 2 and 3. Retried ingestion: marked, and keeping its chunks when it fails
-- ---------------------------------------------------------------------------

alter table public.documents
  add column retried_at timestamptz,
  add column last_failure_reason text constraint documents_last_failure_reason check (length(last_failure_reason) <= 1000);
comment on column public.documents.retried_at is 'When retry_document queued the ingestion now queued or under way; null once it ends, or when an upload queued it.';
comment on column public.documents.last_failure_reason is 'Why the last re-ingestion of the same file failed while the document stayed ready on its earlier chunks; null once it is queued again or a run finishes.';

update public.event_types
set schema = jsonb_set(schema, '{properties,status}', '{"type": "string", "enum": ["failed", "ready"]}'::jsonb)
where type = 'document.failed';

-- Latest definition: 20261123009900_embedding_quota_and_speech_usage.sql; only retried_at and
-- last_failure_reason are new.
create or replace function private.retry_document(document_id uuid)
returns public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.documents;
  service boolean := auth.role() is not distinct from 'service_role';
begin
  select * into target from public.documents d where d.id = retry_document.document_id for update;
  if not found or not (service or target.org_id = any (array(select private.readable_org_ids('knowledge.read')))) then
    raise exception 'document not found' using errcode = 'no_data_found';
  end if;
  -- The service role retries for an API key with knowledge.write, after the
  -- knowledge function has found the document in the key's org; users need
  -- the permission.
  if not service then
    perform private.require_permission(target.org_id, 'knowledge.write');
  else
    perform private.require_acting_key_org(target.org_id);
  end if;
  -- A document being deleted takes no ingestion (20261123004900): queued, it would stay queued.
  if target.deletion_started_at is not null then
    raise exception 'the document is being deleted' using errcode = 'invalid_parameter_value';
  end if;
  -- Sent again after a lost answer: the retry it queued is under way.
  if target.status in ('queued', 'processing') and target.retried_at is not null then
    return target;
  end if;
  if target.status not in ('failed', 'ready') then
    raise exception 'only a failed or ready document can be ingested again (it is %)', target.status
      using errcode = 'invalid_parameter_value';
  end if;
  -- Every retry embeds the whole file again: refused once the period's embedding tokens are used up.
  perform private.require_quota(target.org_id, 'embedding_tokens');
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_attempts = 0,
      retried_at = pg_catalog.now(), last_failure_reason = null
  where d.id = target.id
  returning * into target;
  perform private.request_ingest(target.id);
  return target;
end;
$$;

-- Latest definition: 20261123007000_knowledge_file_moves_and_requeues.sql; only clearing retried_at and
-- last_failure_reason is new: the file may have changed, so a failure of its run fails the document.
create or replace function private.queue_uploaded_document()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  queued uuid;
  object_size numeric;
  new_size bigint;
  refusal text;
begin
  if new.bucket_id <> 'knowledge' then
    return null;
  end if;
  if jsonb_typeof(new.metadata -> 'size') = 'number' then
    object_size := (new.metadata ->> 'size')::numeric;
  end if;
  -- Worded as the ingest function words them (functions/_shared/text).
  refusal := case
    when object_size < 1 then 'The file is empty.'
    when object_size > 26214400 then
      'The file is ' || pg_catalog.to_char(object_size / 1048576.0, 'FM999999999990.0') || ' MB; files of up to 25 MB can be indexed.'
  end;
  -- A refused file keeps its registered size: documents_size allows no other.
  if refusal is null then
    new_size := object_size;
  end if;
  -- A document being deleted takes no ingestion (20261123004900): its file uploaded again leaves it as it is.
  update public.documents d
  set status = 'queued', progress = 0, failure_reason = null, ingest_run = null, ingest_attempts = 0,
      size_bytes = coalesce(new_size, d.size_bytes), retried_at = null, last_failure_reason = null
  where d.storage_path = new.name and d.status in ('uploading', 'queued', 'processing', 'ready', 'failed')
    and d.deletion_started_at is null
  returning d.id into queued;
  if queued is null then
    return null;
  end if;
  -- Through fail_ingest, so a refused upload ends as any failed run does (earlier chunks gone, document.failed).
  if refusal is not null then
    perform private.fail_ingest(queued, null, refusal);
  else
    perform private.request_ingest(queued);
  end if;
  return null;
end;
$$;

-- Latest definition: 20261123008600_lock_order_and_claims.sql; only the retried run that keeps the document's
-- chunks is new.
create or replace function private.fail_ingest(document_id uuid, run_id uuid, reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
  why text := left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000);
begin
  select * into doc from public.documents d
  where d.id = fail_ingest.document_id
    and (fail_ingest.run_id is null or d.ingest_run = fail_ingest.run_id)
    and d.status in ('queued', 'processing')
    and d.deletion_started_at is null
  for update;
  if not found then
    return false;
  end if;
  -- One chunk-writing transaction of the org at a time (see the header).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(doc.org_id::text));
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  -- A retry with no upload since re-reads the file the live chunks were built from: they stay the answer.
  if doc.retried_at is not null and doc.chunk_count > 0 then
    update public.documents d
    set status = 'ready', progress = 100, ingest_run = null, retried_at = null, last_failure_reason = why
    where d.id = doc.id;
    perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
      'document_id', doc.id, 'name', doc.name, 'reason', why, 'status', 'ready'));
    return true;
  end if;
  delete from public.document_chunks c where c.document_id = doc.id;
  update public.documents d
  set status = 'failed', failure_reason = why, progress = 0, chunk_count = 0, ingest_run = null,
      retried_at = null, last_failure_reason = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'reason', why));
  return true;
end;
$$;

-- Latest definition: 20261123008600_lock_order_and_claims.sql; only clearing retried_at and
-- last_failure_reason is new.
create or replace function private.finish_ingest(document_id uuid, run_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
  chunk_total integer;
begin
  select * into doc from public.documents d
  where d.id = finish_ingest.document_id and d.ingest_run = finish_ingest.run_id and d.status = 'processing'
    and d.deletion_started_at is null
  for update;
  if not found then
    return null;
  end if;
  -- One chunk-writing transaction of the org at a time (see the header).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(doc.org_id::text));
  select count(*) into chunk_total from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id;
  if chunk_total = 0 then
    perform private.fail_ingest(doc.id, finish_ingest.run_id, 'The file contains no text to index (a scanned document needs OCR first).');
    return 0;
  end if;
  delete from public.document_chunks c where c.document_id = doc.id;
  insert into public.document_chunks (org_id, document_id, collection_id, chunk_index, page_start, page_end, content, token_count, embedding)
  select doc.org_id, doc.id, doc.collection_id, s.chunk_index, s.page_start, s.page_end, s.content, s.token_count, s.embedding
  from private.document_chunk_staging s
  where s.document_id = doc.id and s.run_id = finish_ingest.run_id
  order by s.chunk_index;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  update public.documents d
  set status = 'ready', progress = 100, chunk_count = chunk_total, ingest_run = null, ingested_at = now(),
      retried_at = null, last_failure_reason = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.ready', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'collection_id', doc.collection_id,
    'pages', coalesce(doc.page_count, 1), 'chunks', chunk_total));
  return chunk_total;
end;
$$;

-- ---------------------------------------------------------------------------
-- 4. A narrower event filter cancels what it no longer covers
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123008300_webhook_reads_saves_and_wakeups.sql; only canceling the deliveries of
-- types the new filter leaves out is new. Locks: the endpoint (managed_webhook_endpoint), then its deliveries
-- in id order, the one order of every webhook path (20261123003900).
create or replace function private.update_webhook_endpoint(
  endpoint_id uuid, url text, description text, event_types text[], enabled boolean
)
returns public.webhook_endpoints
language plpgsql
security definer
set search_path = ''
as $$
declare
  endpoint public.webhook_endpoints := private.managed_webhook_endpoint(update_webhook_endpoint.endpoint_id);
  previous_types text[] := endpoint.event_types;
begin
  if update_webhook_endpoint.url is not null or update_webhook_endpoint.event_types is not null then
    update public.webhook_endpoints e set
      url = coalesce(update_webhook_endpoint.url, e.url),
      description = coalesce(update_webhook_endpoint.description, e.description),
      event_types = coalesce((select array_agg(distinct t order by t) from unnest(update_webhook_endpoint.event_types) t),
                             case when update_webhook_endpoint.event_types is not null then '{}'::text[] end, e.event_types),
      -- A run of failures belongs to the URL that failed; a new URL starts
      -- with none, so the 5-day rule counts from its own first failure.
      failing_since = case when coalesce(update_webhook_endpoint.url, e.url) <> e.url then null else e.failing_since end
    where e.id = endpoint.id;
  elsif update_webhook_endpoint.description is not null then
    update public.webhook_endpoints e set description = update_webhook_endpoint.description
    where e.id = endpoint.id;
  end if;
  if update_webhook_endpoint.enabled is true and not endpoint.enabled then
    -- Re-enabled: a fresh start, failures before the pause do not count.
    update public.webhook_endpoints e
    set enabled = true, disabled_reason = null, disabled_at = null, failing_since = null
    where e.id = endpoint.id;
  elsif update_webhook_endpoint.enabled is false and endpoint.enabled then
    perform private.disable_webhook_endpoint(endpoint.id, 'disabled by an admin', now());
  end if;
  select * into endpoint from public.webhook_endpoints e where e.id = endpoint.id;
  -- Claims check only `enabled`: a queued delivery of a type the filter no longer holds would still be sent.
  if cardinality(endpoint.event_types) > 0 and endpoint.event_types is distinct from previous_types then
    perform 1 from public.webhook_deliveries d
    join public.events ev on ev.id = d.event_id
    where d.endpoint_id = endpoint.id and d.status in ('pending', 'sending') and d.replay_of is null
      and ev.type <> 'webhook.test' and not (ev.type = any (endpoint.event_types))
    order by d.id
    for no key update of d;
    update public.webhook_deliveries d
    set status = 'canceled', next_attempt_at = null, locked_until = null
    from public.events ev
    where ev.id = d.event_id and d.endpoint_id = endpoint.id and d.status in ('pending', 'sending')
      and d.replay_of is null and ev.type <> 'webhook.test' and not (ev.type = any (endpoint.event_types));
  end if;
  return endpoint;
end;
$$;

-- ---------------------------------------------------------------------------
-- 5. Webhooks turned off for a type cancel what is queued of it
-- ---------------------------------------------------------------------------

-- Locks: the org's endpoints, then the deliveries, in id order, as disable_webhook_endpoint takes one
-- endpoint's. The types are weighed once each, not once per delivery.
create function private.cancel_muted_webhook_deliveries()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  muted text[];
begin
  select array_agg(t.type) into muted from (
    select distinct ev.type from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
    where d.org_id = new.org_id and d.status in ('pending', 'sending') and d.replay_of is null and ev.type <> 'webhook.test'
  ) t
  where not (select r.webhook from private.notification_route(new.org_id, t.type) r);
  if muted is null then
    return null;
  end if;
  perform 1 from public.webhook_endpoints e where e.org_id = new.org_id order by e.id for no key update;
  perform 1 from public.webhook_deliveries d
  join public.events ev on ev.id = d.event_id
  where d.org_id = new.org_id and d.status in ('pending', 'sending') and d.replay_of is null and ev.type = any (muted)
  order by d.id
  for no key update of d;
  update public.webhook_deliveries d
  set status = 'canceled', next_attempt_at = null, locked_until = null
  from public.events ev
  where ev.id = d.event_id and d.org_id = new.org_id and d.status in ('pending', 'sending') and d.replay_of is null
    and ev.type = any (muted);
  return null;
end;
$$;
revoke execute on function private.cancel_muted_webhook_deliveries() from public;
comment on function private.cancel_muted_webhook_deliveries() is 'Trigger on org_settings: cancels the org''s queued webhook deliveries (not replays or test sends) of the types its notification_preferences no longer send to webhooks.';

create trigger org_settings_cancel_muted_webhook_deliveries after update of notification_preferences on public.org_settings
  for each row when (old.notification_preferences is distinct from new.notification_preferences)
  execute function private.cancel_muted_webhook_deliveries();
