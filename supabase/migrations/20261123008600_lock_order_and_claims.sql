-- Lock order across sessions: deadlocks and double claims seen on a multi-session Postgres 15 (a reviewer's
-- scratch server; PGlite runs one session, so none of them shows in the local stack).
--
-- Every audited write locks its org's audit chain head (private.chain_audit_row, `for update` of
-- private.audit_chain_heads) until commit: call it H. Two paths that take the same locks in different orders
-- deadlock (40P01: a 500 from PostgREST, a 503 from the functions). The order now is:
--
--   the org row (for no key update) -> the org's active subscription (for update) -> a document row ->
--   the org's chunk lock (advisory 8600) -> chunk term rows -> H, last.
--
-- H is last because it is taken inside triggers, after whatever a statement locked already; everything else
-- an audited path needs is taken before its first audited write.
--
-- 1. create_api_key and create_webhook_endpoint held the org row `for update` to serialise their limit
--    counts, then wrote an audited row (H); accept_invitation marks the invitation (H), then inserts the
--    membership, whose foreign key check takes a key-share lock on the org row, which `for update` blocks.
--    They now take it `for no key update`: it still serialises the two counts (the lock conflicts with
--    itself) and no longer conflicts with key-share locks. No other `for update` of an org row precedes an
--    audited write to serialise a count (delete_organization's deletes the row, so it needs `for update`).
--
-- 2. The last-owner rule (memberships_keep_an_owner, an after trigger) locks the org row `for no key update`
--    after the membership's audit trigger took H, while validate_bot and the two functions above lock the org
--    row, then take H. A before trigger on memberships now takes that lock first, on every path that changes
--    an owner's row (change_member_role, remove_member, leave_organization, delete_account, delete_user),
--    and on a promotion to owner: transfer_ownership promotes (audited) before it demotes the caller.
--
-- 3. create_upload_batch inserted the batch (audited: H) and then the documents, whose quota trigger locks
--    the org's active subscription `for update`; change_plan and roll_subscriptions lock the subscription,
--    then write audited rows. create_upload_batch (the one writer of documents; API-key uploads use it too)
--    now locks the subscription before the batch.
--
-- 4. Chunk writes lock the org's term counts (private.chunk_term_counts) in key order within one statement
--    only: finish_ingest deletes the old chunks and inserts the new in two statements, so two documents of
--    one org finishing at once deadlocked, and the step ran, and was metered, again. finish_ingest,
--    fail_ingest and begin_document_deletion, the functions that write document_chunks, now take a
--    transaction advisory lock (class 8600, hashtext(org_id)) after locking their document and before any
--    chunk write, so one transaction of the org writes chunks at a time. After the document row, not before:
--    the ingest step's transaction has locked the document before it calls finish_ingest, and the sweepers
--    that fail many documents pick them with skip locked, so none waits on a document while holding the lock.
--    A document's own delete finds no chunks left (begin_document_deletion removed them).
--
-- 5. invoices_needing_pdf and calls_needing_recording lock the invoice or call with skip locked, but a pass
--    whose snapshot predates another pass's commit still saw no request (or an old one) and its upsert, on
--    conflict, just counted one more attempt: both passes rendered the PDF or copied the recording. The
--    upsert is now the claim: on conflict it updates only a request older than 10 minutes with fewer than 5
--    attempts (the rule the read applies, now to the latest committed request), and only the rows it
--    inserted or updated are returned.
--
-- Not changed: apply_call_events takes H for each event's org when the event's audited write comes, in call
-- order. Taking every H of the batch first, in org order, would invert the order every other writer of a
-- call row keeps (the row, then H in its audit trigger), so it is left for a change that also locks the
-- batch's calls first.

-- ---------------------------------------------------------------------------
-- 1. The org row for no key update where it serialises a count.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000500_api_keys.sql; only the org row's lock mode (no key update) is new.
create or replace function private.create_api_key(org_id uuid, name text, scopes text[], expires_at timestamptz)
returns public.new_api_key
language plpgsql
security definer
set search_path = ''
as $$
declare
  secret text := 'ak_' || pg_catalog.encode(extensions.gen_random_bytes(24), 'hex');
  created public.api_keys;
begin
  perform private.require_permission(create_api_key.org_id, 'api_keys.manage');
  -- Serialises key creation per org, so concurrent calls cannot pass the limit together. No key update: the
  -- key-share locks of inserts that reference the org (a membership joining) do not wait on it.
  perform 1 from public.organizations o where o.id = create_api_key.org_id for no key update;
  if length(btrim(coalesce(create_api_key.name, ''))) not between 1 and 100 then
    raise exception 'an API key name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if create_api_key.scopes is null or cardinality(create_api_key.scopes) = 0 then
    raise exception 'an API key needs at least one scope' using errcode = 'invalid_parameter_value';
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= pg_catalog.now() then
    raise exception 'expires_at must be in the future' using errcode = 'invalid_parameter_value';
  end if;
  if (
    select count(*) from public.api_keys k
    where k.org_id = create_api_key.org_id and k.revoked_at is null
      and (k.expires_at is null or k.expires_at > pg_catalog.now())
  ) >= 100 then
    raise exception 'an organization has at most 100 active API keys' using errcode = 'invalid_parameter_value',
      hint = 'Revoke keys you no longer use.';
  end if;

  insert into public.api_keys (org_id, name, prefix, scopes, created_by, expires_at)
  values (
    create_api_key.org_id, btrim(create_api_key.name), left(secret, 11),
    (select array_agg(distinct s order by s) from unnest(create_api_key.scopes) s),
    auth.uid(), create_api_key.expires_at
  )
  returning * into created;
  insert into private.api_key_secrets (api_key_id, secret_hash)
  values (created.id, pg_catalog.sha256(pg_catalog.convert_to(secret, 'UTF8')));

  return (created.id, secret, created.prefix, created.scopes, created.expires_at)::public.new_api_key;
end;
$$;

-- Latest definition: 20261123000800_webhooks.sql; only the org row's lock mode (no key update) is new.
create or replace function private.create_webhook_endpoint(org_id uuid, url text, description text, event_types text[])
returns table (endpoint_id uuid, secret text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  created public.webhook_endpoints;
  new_secret text := private.new_webhook_secret();
begin
  perform private.require_permission(create_webhook_endpoint.org_id, 'webhooks.manage');
  -- Serialises endpoint creation per org (the limit of 20); no key update, as in create_api_key.
  perform 1 from public.organizations o where o.id = create_webhook_endpoint.org_id for no key update;
  if (select count(*) from public.webhook_endpoints e where e.org_id = create_webhook_endpoint.org_id) >= 20 then
    raise exception 'an organization has at most 20 webhook endpoints' using errcode = 'invalid_parameter_value';
  end if;
  insert into public.webhook_endpoints (org_id, url, description, event_types, created_by)
  values (
    create_webhook_endpoint.org_id, create_webhook_endpoint.url, coalesce(create_webhook_endpoint.description, ''),
    coalesce((select array_agg(distinct t order by t) from unnest(create_webhook_endpoint.event_types) t), '{}'),
    auth.uid()
  )
  returning * into created;
  insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (created.id, new_secret);
  return query select created.id, new_secret;
end;
$$;

-- ---------------------------------------------------------------------------
-- 2. Owner changes lock the org row before their audit.
-- ---------------------------------------------------------------------------

-- The lock private.ensure_org_keeps_an_owner takes (20261123004200), taken before the row's audit trigger
-- takes H. Not found (the org itself being deleted): nothing to lock.
create function private.lock_org_for_owner_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform 1 from public.organizations o where o.id = old.org_id for no key update;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end;
$$;
comment on function private.lock_org_for_owner_change() is
  'Before an owner''s membership changes (or a member becomes owner), locks the org row for no key update, so the '
  'last-owner check''s lock comes before the audit chain head (20261123008600).';
revoke execute on function private.lock_org_for_owner_change() from public, anon, authenticated, service_role;

create trigger memberships_lock_org_for_owner_delete
  before delete on public.memberships
  for each row when (old.role = 'owner')
  execute function private.lock_org_for_owner_change();

create trigger memberships_lock_org_for_owner_role_change
  before update of role on public.memberships
  for each row when (old.role = 'owner' or new.role = 'owner')
  execute function private.lock_org_for_owner_change();

-- ---------------------------------------------------------------------------
-- 3. Uploads lock the subscription before their audited batch.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123005900_api_key_uploads.sql; only the lock of the active subscription before the
-- batch is inserted is new.
create or replace function private.create_upload_batch(org_id uuid, files jsonb, project_id uuid, collection_id uuid)
returns setof public.documents
language plpgsql
security definer
set search_path = ''
as $$
declare
  new_batch_id uuid;
  file jsonb;
  document_id uuid;
  file_name text;
  shown_name text;
  control_char text;
begin
  -- The service role registers for an API key with knowledge.write, whose
  -- org the knowledge function has checked; users need the permission.
  if auth.role() is distinct from 'service_role' then
    perform private.require_permission(create_upload_batch.org_id, 'knowledge.write');
  else
    perform private.require_acting_key_org(create_upload_batch.org_id);
  end if;
  if jsonb_typeof(files) is distinct from 'array' or jsonb_array_length(files) not between 1 and 100 then
    raise exception 'files must be a list of 1 to 100 files' using errcode = 'invalid_parameter_value';
  end if;
  if project_id is not null and not exists (
    select 1 from public.projects p where p.id = create_upload_batch.project_id and p.org_id = create_upload_batch.org_id
  ) then
    raise exception 'project not found in this organization' using errcode = 'invalid_parameter_value';
  end if;
  if collection_id is not null and not exists (
    select 1 from public.collections c where c.id = create_upload_batch.collection_id and c.org_id = create_upload_batch.org_id
  ) then
    raise exception 'collection not found in this organization' using errcode = 'invalid_parameter_value';
  end if;

  -- The lock the documents' quota trigger takes (private.require_document_quota), taken before the audited
  -- insert of the batch takes the org's audit chain head, as change_plan and roll_subscriptions take them.
  perform 1 from public.subscriptions s
  where s.org_id = create_upload_batch.org_id and s.status = 'active'
  for update;

  insert into public.upload_batches (org_id, project_id, collection_id, created_by)
  values (create_upload_batch.org_id, create_upload_batch.project_id, create_upload_batch.collection_id, auth.uid())
  returning id into new_batch_id;

  for file in select value from jsonb_array_elements(files) loop
    file_name := btrim(file ->> 'name');
    -- Shown escaped (JSON, plus \u escapes for the ones JSON leaves raw): the
    -- characters themselves would garble the message and the logs.
    if file_name ~ '[\u0001-\u001f\u007f-\u009f\u2028\u2029]' then
      shown_name := to_json(file ->> 'name')::text;
      for control_char in
        select distinct m[1] from regexp_matches(shown_name, '([\u007f-\u009f\u2028\u2029])', 'g') m
      loop
        shown_name := replace(shown_name, control_char, '\u' || lpad(to_hex(ascii(control_char)), 4, '0'));
      end loop;
      raise exception 'invalid file name: % (control characters are not allowed)', shown_name
        using errcode = 'invalid_parameter_value',
              hint = '1 to 255 characters, not only spaces, no slashes or control characters, not "." or "..".';
    end if;
    -- Blank also counts the spaces btrim leaves (no-break, ideographic and the like).
    if jsonb_typeof(file -> 'name') is distinct from 'string'
      or length(file_name) not between 1 and 255
      or file_name ~ '[/\\]'
      or file_name in ('.', '..')
      or file_name ~ '^[[:space:]\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]*$' then
      raise exception 'invalid file name: %', coalesce(file ->> 'name', 'null')
        using errcode = 'invalid_parameter_value',
              hint = '1 to 255 characters, not only spaces, no slashes or control characters, not "." or "..".';
    end if;
    if coalesce((file ->> 'mime_type') = any (private.knowledge_mime_types()), false) is false then
      raise exception '%: unsupported type %', file_name, coalesce(file ->> 'mime_type', 'null')
        using errcode = 'invalid_parameter_value', hint = 'PDF, TXT, Markdown, CSV, JSON or DOCX.';
    end if;
    if jsonb_typeof(file -> 'size_bytes') is distinct from 'number'
      or (file ->> 'size_bytes')::numeric not between 1 and 26214400
      or (file ->> 'size_bytes')::numeric % 1 <> 0 then
      raise exception '%: a file has 1 byte to 25 MB', file_name using errcode = 'invalid_parameter_value';
    end if;
    if file ? 'checksum_sha256' and (file ->> 'checksum_sha256') !~ '^[0-9a-f]{64}$' then
      raise exception '%: checksum_sha256 must be 64 lower-case hex characters', file_name using errcode = 'invalid_parameter_value';
    end if;
    document_id := gen_random_uuid();
    insert into public.documents (
      id, org_id, batch_id, project_id, collection_id, name, mime_type, size_bytes, checksum_sha256, storage_path, created_by
    ) values (
      document_id, create_upload_batch.org_id, new_batch_id, create_upload_batch.project_id, create_upload_batch.collection_id,
      file_name, file ->> 'mime_type', (file ->> 'size_bytes')::bigint, file ->> 'checksum_sha256',
      create_upload_batch.org_id::text || '/' || document_id::text || '/' || private.knowledge_object_name(file_name),
      auth.uid()
    );
  end loop;

  return query select * from public.documents d where d.batch_id = new_batch_id order by d.created_at, d.name;
end;
$$;

-- ---------------------------------------------------------------------------
-- 4. One chunk-writing transaction per org at a time (advisory lock 8600).
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123004900_document_deletion_marker.sql; only the 8600 lock before the chunk writes
-- is new.
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
  set status = 'ready', progress = 100, chunk_count = chunk_total, ingest_run = null, ingested_at = now()
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.ready', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'collection_id', doc.collection_id,
    'pages', coalesce(doc.page_count, 1), 'chunks', chunk_total));
  return chunk_total;
end;
$$;

-- Latest definition: 20261123004900_document_deletion_marker.sql; only the 8600 lock before the chunk writes
-- is new.
create or replace function private.fail_ingest(document_id uuid, run_id uuid, reason text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
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
  delete from public.document_chunks c where c.document_id = doc.id;
  update public.documents d
  set status = 'failed', failure_reason = left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000),
      progress = 0, chunk_count = 0, ingest_run = null
  where d.id = doc.id;
  perform private.emit_event(doc.org_id, 'document.failed', jsonb_build_object(
    'document_id', doc.id, 'name', doc.name, 'reason', left(coalesce(nullif(btrim(reason), ''), 'Ingestion failed.'), 1000)));
  return true;
end;
$$;

-- Latest definition: 20261123007900_knowledge_deletion_and_paths.sql; only the 8600 lock before the chunk
-- writes is new.
create or replace function private.begin_document_deletion(document_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  doc public.documents;
begin
  select * into doc from public.documents d where d.id = begin_document_deletion.document_id for update;
  if not found then
    return;
  end if;
  -- One chunk-writing transaction of the org at a time (see the header).
  perform pg_catalog.pg_advisory_xact_lock(8600, pg_catalog.hashtext(doc.org_id::text));
  update public.documents d
  set deletion_started_at = coalesce(d.deletion_started_at, now()), chunk_count = 0
  where d.id = doc.id;
  delete from private.document_chunk_staging s where s.document_id = doc.id;
  delete from public.document_chunks c where c.org_id = doc.org_id and c.document_id = doc.id;
end;
$$;

-- ---------------------------------------------------------------------------
-- 5. The request upsert is the claim.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123001600_settings_billing_deletion.sql; only the where of the upsert's update is
-- new: a request another pass committed after this pass's snapshot is not claimed again.
create or replace function private.invoices_needing_pdf(max_invoices integer)
returns table (invoice_id uuid, org_id uuid, pdf_path text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_invoices is null or max_invoices not between 1 and 100 then
    raise exception 'max_invoices must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with picked as (
    select i.id, i.org_id
    from public.invoices i
    left join private.invoice_pdf_requests r on r.invoice_id = i.id
    where i.pdf_path is null
      and (r.invoice_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
    order by i.created_at
    limit max_invoices
    for update of i skip locked
  ),
  marked as (
    insert into private.invoice_pdf_requests as r (invoice_id, requested_at)
    select picked.id, pg_catalog.now() from picked
    on conflict on constraint invoice_pdf_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
      where r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5
    returning r.invoice_id
  )
  select p.id, p.org_id, p.org_id::text || '/invoices/' || p.id::text || '.pdf'
  from picked p join marked m on m.invoice_id = p.id
  order by p.id;
end;
$$;

-- Latest definition: 20261123001210_call_operations.sql; only the where of the upsert's update is new, as in
-- invoices_needing_pdf.
create or replace function private.calls_needing_recording(max_calls integer)
returns table (call_id uuid, org_id uuid, recording_url text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_calls is null or max_calls not between 1 and 100 then
    raise exception 'max_calls must be between 1 and 100' using errcode = 'invalid_parameter_value';
  end if;
  return query
  with picked as (
    select c.id, c.org_id, c.recording_url
    from public.calls c
    left join private.call_recording_requests r on r.call_id = c.id
    where c.recording_url is not null and c.recording_path is null
      and c.ended_at > pg_catalog.now() - interval '7 days'
      -- Once every 10 minutes, 5 times at most: the provider's link expires.
      and (r.call_id is null or (r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5))
    order by c.ended_at
    limit max_calls
    for update of c skip locked
  ),
  marked as (
    insert into private.call_recording_requests as r (call_id, requested_at)
    select picked.id, pg_catalog.now() from picked
    on conflict on constraint call_recording_requests_pkey
      do update set requested_at = excluded.requested_at, attempts = r.attempts + 1
      where r.requested_at < pg_catalog.now() - interval '10 minutes' and r.attempts < 5
    returning r.call_id
  )
  select p.id, p.org_id, p.recording_url from picked p join marked m on m.call_id = p.id
  order by p.id;
end;
$$;
