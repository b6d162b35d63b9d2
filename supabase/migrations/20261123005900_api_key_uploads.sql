-- Servers push documents with an API key (knowledge.write): POST
-- /functions/v1/knowledge/documents verifies the key, then registers the file
-- through create_upload_batch as the service role acting for the key (the
-- audit log names the key) and uploads it to Storage, whose insert queues the
-- ingestion as a frontend's upload does. The registration required a user
-- (private.require_permission), so the service role could not register.
--
-- Latest definition: 20261123003300_upload_names_and_empty_files.sql; only the
-- permission check changes: the service role passes it (in its key's org).
-- The service role acting for an API key (its id in the JWT claims, as the
-- edge functions set them) works in the key's org only: the functions check
-- that before calling, and this checks it again where the service role skips
-- a user's permission check, so a caller that forgets cannot reach another
-- org. The service role without a key (scheduled jobs) is not limited.
create function private.require_acting_key_org(org_id uuid)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  acting_key uuid := nullif(auth.jwt() ->> 'api_key_id', '')::uuid;
begin
  if acting_key is not null and not exists (
    select 1 from public.api_keys k where k.id = acting_key and k.org_id = require_acting_key_org.org_id
  ) then
    raise exception 'this API key belongs to another organization' using errcode = 'insufficient_privilege';
  end if;
end;
$$;
revoke execute on function private.require_acting_key_org(uuid) from public;
grant execute on function private.require_acting_key_org(uuid) to service_role;

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

grant execute on function
  public.create_upload_batch(uuid, jsonb, uuid, uuid),
  private.create_upload_batch(uuid, jsonb, uuid, uuid)
to service_role;
