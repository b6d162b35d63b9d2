-- Data export: every table of the org, its Storage files listed, and expired
-- exports removed.
--
-- 1. Completeness. The export wrote the fixed list of 20261123001600
--    (private.export_tables), which left out tables of the org added since or
--    forgotten: invitations, upload_batches, call_providers, call_events,
--    webhook_deliveries and webhook_attempts, and data_exports itself; and
--    the org's files in Storage (knowledge originals, call recordings,
--    invoice PDFs) were not mentioned at all. Now:
--    * every public table with an org_id (partitions aside) is either in
--      private.export_tables or in private.export_excluded_tables with the
--      reason (today only document_chunks: derived from the documents).
--      pgTAP 224 fails when a new org table is in neither list;
--    * a table's `omit_columns` are left out of its rows (data_exports'
--      cursor, the function's bookkeeping). Secrets are not in public tables
--      at all (API key hashes, webhook and voice-provider secrets, Telegram
--      and invitation tokens live in private tables, which are never
--      exported, and the audit log records public rows only); pgTAP 224
--      fails when an exported column looks like a secret;
--    * `storage_objects` (source 'storage'): a manifest of the org's objects
--      in every org bucket but `exports` (bucket_id, name, size_bytes,
--      mime_type, document_id for a knowledge original, times), written as
--      storage_objects.json / .csv like any table. The bytes are not copied:
--      they stay where they are, readable by the org's members.
--    The list is renumbered so related tables sit together, the audit log
--    last. Exports already requested keep the list they were made with.
--
-- 2. Expiry. A ready export expires 7 days after it finished (expires_at),
--    but nothing removed its files. Now an hourly job
--    (private.request_export_expiry, pg_cron 'expire-exports') wakes
--    POST /functions/v1/export/expire (service role) while an export is due:
--    ready and past expires_at, or failed more than 7 days ago (its partial
--    files). The function, as the org storage cleanup does
--    (private.org_storage_objects), lists the objects with
--    private.export_expiry_objects(export_id, 1000), removes them through the
--    Storage API and calls private.finish_export_expiry(export_id), which
--    sets data_exports.expired_at once none is left (otherwise returns how
--    many are). Idempotent, in bounded batches: at most 100 exports per
--    listing, 1,000 objects per call, within the function's time budget;
--    what is left is taken by the next run. The status stays ready or
--    failed (an enum value added in a migration cannot be used in the same
--    transaction); expired_at says the files are gone. The change is
--    broadcast on the exports channel and audited.
--    Signed links: the link in export.ready works for a day and the links of
--    GET /export/:id at most until expires_at, so no link outlives the
--    export; after expires_at GET /export/:id returns the export with no
--    files, and a link signed before then answers 404 once the job has
--    removed the object (up to an hour after expires_at).

-- ---------------------------------------------------------------------------
-- 1. What an export holds
-- ---------------------------------------------------------------------------

alter table private.export_tables
  add column source text not null default 'table' constraint export_tables_source check (source in ('table', 'storage')),
  add column omit_columns text[] not null default '{}';
comment on column private.export_tables.source is 'table: the org''s rows of public.<table_name>; storage: the org''s Storage objects (every org bucket but exports), listed, not copied.';
comment on column private.export_tables.omit_columns is 'Columns left out of every exported row of the table.';

-- Org tables deliberately not exported, each with the reason. pgTAP 224
-- checks that every public table with an org_id is in one list or the other.
create table private.export_excluded_tables (
  table_name text primary key,
  reason text not null constraint export_excluded_tables_reason check (length(pg_catalog.btrim(reason)) >= 10)
);
comment on table private.export_excluded_tables is 'Public tables with an org_id that the data export leaves out on purpose, and why. Every other such table is in private.export_tables.';
revoke all on private.export_excluded_tables from public, anon, authenticated, service_role;

insert into private.export_excluded_tables (table_name, reason) values
  ('document_chunks', 'Derived from the documents: their text split for search, with embeddings. The documents rows and the originals (storage_objects) are exported.');

-- Out of the way (positions are unique, checked row by row), then the new order.
update private.export_tables t set position = t.position + 1000;

insert into private.export_tables (table_name, position, org_column, key_column, key_type, key_expression, source, omit_columns) values
  ('invitations',        2003, 'org_id', 'id',   'uuid',   null,                             'table',   '{}'),
  ('webhook_deliveries', 2011, 'org_id', 'id',   'uuid',   null,                             'table',   '{}'),
  ('webhook_attempts',   2012, 'org_id', 'id',   'bigint', null,                             'table',   '{}'),
  ('upload_batches',     2015, 'org_id', 'id',   'uuid',   null,                             'table',   '{}'),
  ('storage_objects',    2017, 'org_id', null,   'text',   't.bucket_id || ''/'' || t.name', 'storage', '{}'),
  ('call_providers',     2026, 'org_id', null,   'text',   't.provider',                     'table',   '{}'),
  ('call_events',        2029, 'org_id', 'id',   'bigint', null,                             'table',   '{}'),
  ('data_exports',       2035, 'org_id', 'id',   'uuid',   null,                             'table',   '{cursor}');

update private.export_tables t set position = v.position
from (values
  ('organizations', 1), ('memberships', 2), ('invitations', 3), ('org_settings', 4), ('subscriptions', 5),
  ('invoices', 6), ('invoice_lines', 7), ('api_keys', 8), ('webhook_endpoints', 9), ('events', 10),
  ('webhook_deliveries', 11), ('webhook_attempts', 12), ('projects', 13), ('collections', 14),
  ('upload_batches', 15), ('documents', 16), ('storage_objects', 17), ('bots', 18), ('bot_collections', 19),
  ('conversations', 20), ('messages', 21), ('catalog_categories', 22), ('products', 23), ('business_hours', 24),
  ('business_closures', 25), ('call_providers', 26), ('call_campaigns', 27), ('calls', 28), ('call_events', 29),
  ('call_transcript_segments', 30), ('call_feedback', 31), ('calendar_connections', 32), ('appointments', 33),
  ('usage_events', 34), ('data_exports', 35), ('audit_log', 36)
) as v (table_name, position)
where t.table_name = v.table_name;

-- Latest definition: 20261123001600_settings_billing_deletion.sql; only the
-- storage source (the org's Storage objects, listed) and omit_columns are new.
create or replace function private.export_rows(export_id uuid, table_name text, after_key text, max_rows integer)
returns table (row_key text, row_data jsonb)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
  spec private.export_tables;
  key_sql text;
begin
  select * into target from public.data_exports e where e.id = export_rows.export_id;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.status <> 'running' then
    raise exception 'the export is %, not running', target.status
      using errcode = 'invalid_parameter_value', hint = 'Claim a step first (private.claim_export_step).';
  end if;
  select * into spec from private.export_tables t where t.table_name = export_rows.table_name;
  if not found or not (export_rows.table_name = any (target.tables)) then
    raise exception 'not a table of this export: %', coalesce(export_rows.table_name, 'null')
      using errcode = 'invalid_parameter_value';
  end if;
  if max_rows is null or max_rows not between 1 and 5000 then
    raise exception 'max_rows must be between 1 and 5000' using errcode = 'invalid_parameter_value';
  end if;
  if spec.key_type = 'uuid' and after_key is not null
    and after_key !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    raise exception 'after_key must be a row_key of %', spec.table_name using errcode = 'invalid_parameter_value';
  end if;
  if spec.key_type = 'bigint' and after_key is not null and after_key !~ '^[0-9]{1,19}$' then
    raise exception 'after_key must be a row_key of %', spec.table_name using errcode = 'invalid_parameter_value';
  end if;

  if spec.source = 'storage' then
    -- The org's objects in every org bucket but exports (an export's own
    -- files and earlier exports are copies of the rows), keyed
    -- <bucket_id>/<name> in (bucket, name) order; described, not copied.
    if after_key is not null and pg_catalog.strpos(after_key, '/') = 0 then
      raise exception 'after_key must be a row_key of %', spec.table_name using errcode = 'invalid_parameter_value';
    end if;
    return query
    select (o.bucket_id || '/' || o.name)::text,
      pg_catalog.jsonb_build_object(
        'org_id', target.org_id,
        'bucket_id', o.bucket_id,
        'name', o.name,
        'size_bytes', case when o.metadata ->> 'size' ~ '^[0-9]{1,18}$' then (o.metadata ->> 'size')::bigint end,
        'mime_type', o.metadata ->> 'mimetype',
        'document_id', d.id,
        'created_at', o.created_at,
        'updated_at', o.updated_at)
    from storage.objects o
    left join public.documents d on o.bucket_id = 'knowledge' and d.storage_path = o.name and d.org_id = target.org_id
    where o.bucket_id in (select b.bucket_id from private.org_buckets b where b.bucket_id <> 'exports')
      and starts_with(o.name, target.org_id::text || '/')
      and (after_key is null
        or (o.bucket_id collate "C", o.name collate "C")
           > (pg_catalog.split_part(after_key, '/', 1) collate "C",
              pg_catalog.substr(after_key, pg_catalog.strpos(after_key, '/') + 1) collate "C"))
    order by o.bucket_id collate "C", o.name collate "C"
    limit max_rows;
  elsif spec.key_type = 'text' then
    key_sql := '(' || spec.key_expression || ') collate "C"';
    return query execute pg_catalog.format(
      'select %1$s::text, pg_catalog.to_jsonb(t) - $4 from public.%2$I t where t.%3$I = $1 and ($2 is null or %1$s > $2) order by 1 limit $3',
      key_sql, spec.table_name, spec.org_column)
    using target.org_id, after_key, max_rows, spec.omit_columns;
  else
    return query execute pg_catalog.format(
      'select t.%1$I::text, pg_catalog.to_jsonb(t) - $4 from public.%2$I t where t.%3$I = $1 and ($2 is null or t.%1$I > $2::%4$s) order by t.%1$I limit $3',
      spec.key_column, spec.table_name, spec.org_column, spec.key_type)
    using target.org_id, after_key, max_rows, spec.omit_columns;
  end if;
end;
$$;
comment on function private.export_rows(uuid, text, text, integer) is 'Up to max_rows (1-5000) of the export''s org''s rows of one table of its list (storage_objects: its Storage objects, described), with keys after after_key (null: from the start), in key order, as (row_key, row_data), without the table''s omit_columns. Service role.';

-- ---------------------------------------------------------------------------
-- 2. Expired exports: files removed, export marked
-- ---------------------------------------------------------------------------

alter table public.data_exports
  add column expired_at timestamptz,
  add constraint data_exports_expired_finished check (expired_at is null or finished_at is not null);
comment on column public.data_exports.expired_at is 'When the export''s files were removed from Storage after it expired (ready: past expires_at; failed: 7 days after it finished). Null while they are kept.';

create index data_exports_expiry_idx on public.data_exports (finished_at)
  where expired_at is null and status in ('ready', 'failed');

-- The expiry is broadcast and audited like a status change.
-- Latest definition of both triggers: 20261123001600_settings_billing_deletion.sql;
-- only expired_at is new in their column lists.
drop trigger data_exports_audit_update on public.data_exports;
create trigger data_exports_audit_update after update of status, expired_at on public.data_exports
  for each row execute function private.audit_row_change();
drop trigger data_exports_broadcast on public.data_exports;
create trigger data_exports_broadcast
  after insert or update of status, progress_percent, error, expired_at or delete on public.data_exports
  for each row execute function private.broadcast_org_change('exports');

-- Whether an export's files are due for removal.
create function private.export_is_due_for_expiry(candidate public.data_exports)
returns boolean
language sql
stable
security invoker
set search_path = ''
as $$
  select candidate.expired_at is null and (
    (candidate.status = 'ready' and candidate.expires_at <= pg_catalog.now())
    or (candidate.status = 'failed' and candidate.finished_at <= pg_catalog.now() - interval '7 days'));
$$;

-- Exports whose files are due for removal, oldest first, at most max_exports.
create function private.exports_due_for_expiry(max_exports integer default 100)
returns table (export_id uuid, org_id uuid, storage_prefix text)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if max_exports is null or max_exports not between 1 and 1000 then
    raise exception 'max_exports must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select e.id, e.org_id, e.storage_prefix
  from public.data_exports e
  where e.expired_at is null and e.status in ('ready', 'failed')
    and e.finished_at <= pg_catalog.now()
    and private.export_is_due_for_expiry(e)
  order by e.finished_at, e.id
  limit max_exports;
end;
$$;
comment on function private.exports_due_for_expiry(integer) is 'Exports whose files are due for removal (ready and past expires_at, or failed 7 days ago; not yet expired), oldest first, at most max_exports (1-1000). Service role.';

-- The objects of a due export (exports bucket, under its prefix).
create function private.export_expiry_objects(export_id uuid, max_objects integer default 1000)
returns table (bucket_id text, name text)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
begin
  if max_objects is null or max_objects not between 1 and 10000 then
    raise exception 'max_objects must be between 1 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  select * into target from public.data_exports e where e.id = export_expiry_objects.export_id;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.expired_at is null and not private.export_is_due_for_expiry(target) then
    raise exception 'the export has not expired' using errcode = 'invalid_parameter_value';
  end if;
  return query
  select o.bucket_id, o.name
  from storage.objects o
  where o.bucket_id = 'exports' and starts_with(o.name, target.storage_prefix)
  order by o.name collate "C"
  limit max_objects;
end;
$$;
comment on function private.export_expiry_objects(uuid, integer) is 'Storage objects (bucket, name) of an expired export, at most max_objects, for removal through the Storage API. 22023 while the export has not expired, P0002 for an unknown one. Service role.';

-- After its files were removed through the Storage API: marks the export
-- expired (0), or returns how many objects are left. Idempotent.
create function private.finish_export_expiry(export_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.data_exports;
  remaining integer;
begin
  select * into target from public.data_exports e where e.id = finish_export_expiry.export_id for update;
  if not found then
    raise exception 'export not found' using errcode = 'no_data_found';
  end if;
  if target.expired_at is null and not private.export_is_due_for_expiry(target) then
    raise exception 'the export has not expired' using errcode = 'invalid_parameter_value';
  end if;
  select count(*) into remaining from storage.objects o
  where o.bucket_id = 'exports' and starts_with(o.name, target.storage_prefix);
  if remaining = 0 and target.expired_at is null then
    update public.data_exports e set expired_at = pg_catalog.now() where e.id = target.id;
  end if;
  return remaining;
end;
$$;
comment on function private.finish_export_expiry(uuid) is 'After an expired export''s files were removed through the Storage API: sets expired_at (0) or returns how many objects are left. 22023 while the export has not expired. Service role.';

-- pg_cron, hourly: wakes the export function's expiry pass when an export is due.
create function private.request_export_expiry()
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from private.exports_due_for_expiry(1)) then
    return false;
  end if;
  return private.invoke_edge_function('export/expire', '{}'::jsonb, 30000);
end;
$$;
comment on function private.request_export_expiry() is 'Wakes POST /functions/v1/export/expire (pg_net) when an export''s files are due for removal. pg_cron, hourly.';

select cron.schedule('expire-exports', '41 * * * *', 'select private.request_export_expiry()');

revoke execute on function
  private.export_rows(uuid, text, text, integer),
  private.export_is_due_for_expiry(public.data_exports),
  private.exports_due_for_expiry(integer),
  private.export_expiry_objects(uuid, integer),
  private.finish_export_expiry(uuid),
  private.request_export_expiry()
from public;

-- export_is_due_for_expiry is only called inside the definer functions.
grant execute on function
  private.export_rows(uuid, text, text, integer),
  private.exports_due_for_expiry(integer),
  private.export_expiry_objects(uuid, integer),
  private.finish_export_expiry(uuid),
  private.request_export_expiry()
to service_role;
