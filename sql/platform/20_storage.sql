-- Local stand-in for the `storage` schema that the Supabase Storage API owns.
--
-- Mirrors supabase/storage migrations/tenant as they stand on a current
-- project (0002-storage-schema, 0011/0012 bucket limits, 0014 version,
-- 0025 custom metadata, 0036 optimised functions, 0037 bucket name length,
-- 0038 bucket type, 0050 prevent direct deletes) and the hosted ACLs. Only
-- the buckets/objects tables and the helpers that projects use in policies are
-- here; the local storage layer keeps the bytes on disk and writes these rows.
--
-- RLS is enabled on both tables with no policies: projects add their own.
-- As on Supabase, a plain SQL `delete` from storage.buckets / storage.objects
-- is refused (42501) unless the transaction sets
-- `storage.allow_delete_query = 'true'`, which the Storage API (and the local
-- storage layer) does before it deletes rows.

create schema storage authorization supabase_admin;

grant usage on schema storage to postgres with grant option;
grant usage on schema storage to anon, authenticated, service_role;
grant all on schema storage to supabase_storage_admin with grant option;
grant all on schema storage to dashboard_user;

-- Objects that postgres creates in storage (a project's own helper functions,
-- say) are granted to the API roles, as on a hosted project.
alter default privileges for role postgres in schema storage grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema storage grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema storage grant all on sequences to postgres, anon, authenticated, service_role;

create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
alter type storage.buckettype owner to supabase_storage_admin;

-- ---------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------

create table storage.buckets (
  id text not null,
  name text not null,
  owner uuid,
  created_at timestamp with time zone default now(),
  updated_at timestamp with time zone default now(),
  public boolean default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text,
  type storage.buckettype default 'STANDARD'::storage.buckettype not null,
  constraint buckets_pkey primary key (id)
);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';
create unique index bname on storage.buckets using btree (name);

create table storage.objects (
  id uuid default gen_random_uuid() not null,
  bucket_id text,
  name text,
  owner uuid,
  created_at timestamp with time zone default now(),
  updated_at timestamp with time zone default now(),
  last_accessed_at timestamp with time zone default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/'::text)) stored,
  version text,
  owner_id text,
  user_metadata jsonb,
  constraint objects_pkey primary key (id),
  constraint "objects_bucketId_fkey" foreign key (bucket_id) references storage.buckets (id)
);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';
create unique index bucketid_objname on storage.objects using btree (bucket_id, name);
create index name_prefix_search on storage.objects using btree (name text_pattern_ops);
create index idx_objects_bucket_id_name on storage.objects using btree (bucket_id, name collate "C");

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;

-- Hosted ACLs: every API role has all privileges (RLS decides), postgres and
-- the storage admin with grant option.
grant all on table storage.buckets, storage.objects to anon, authenticated, service_role;
grant all on table storage.buckets, storage.objects to postgres with grant option;
grant all on table storage.buckets, storage.objects to supabase_storage_admin with grant option;

-- ---------------------------------------------------------------------------
-- Path helpers used in policies, e.g.
--   (storage.foldername(name))[1] = (select auth.uid())::text
-- Bodies as in 0036-optimise-existing-functions. extension() returns the part
-- after the last '.' of the file name (the whole name when there is no '.').
-- ---------------------------------------------------------------------------

create function storage.foldername(name text)
returns text[]
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  _parts text[];
begin
  -- Split on "/" to get path segments
  select pg_catalog.string_to_array(name, '/') into _parts;
  -- Return everything except the last segment
  return _parts[1 : pg_catalog.array_length(_parts, 1) - 1];
end
$$;

create function storage.filename(name text)
returns text
language plpgsql
security invoker
set search_path = ''
as $$
declare
  _parts text[];
begin
  select pg_catalog.string_to_array(name, '/') into _parts;
  return _parts[pg_catalog.array_length(_parts, 1)];
end
$$;

create function storage.extension(name text)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  _parts text[];
  _filename text;
begin
  select pg_catalog.string_to_array(name, '/') into _parts;
  select _parts[pg_catalog.array_length(_parts, 1)] into _filename;
  return pg_catalog.reverse(pg_catalog.split_part(pg_catalog.reverse(_filename), '.', 1));
end
$$;

-- ---------------------------------------------------------------------------
-- Triggers the Storage schema carries.
-- ---------------------------------------------------------------------------

create function storage.update_updated_at_column()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  new.updated_at = pg_catalog.now();
  return new;
end;
$$;

create function storage.enforce_bucket_name_length()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  if pg_catalog.length(new.name) > 100 then
    raise exception 'bucket name "%" is too long (% characters). Max is 100.', new.name, pg_catalog.length(new.name);
  end if;
  return new;
end;
$$;

create function storage.protect_delete()
returns trigger
language plpgsql
security invoker
set search_path = ''
as $$
begin
  -- Check if storage.allow_delete_query is set to 'true'
  if coalesce(pg_catalog.current_setting('storage.allow_delete_query', true), 'false') != 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end;
$$;

create trigger update_objects_updated_at
  before update on storage.objects
  for each row execute function storage.update_updated_at_column();

create trigger enforce_bucket_name_length_trigger
  before insert or update of name on storage.buckets
  for each row execute function storage.enforce_bucket_name_length();

create trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement execute function storage.protect_delete();

create trigger protect_objects_delete
  before delete on storage.objects
  for each statement execute function storage.protect_delete();

alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
alter function storage.update_updated_at_column() owner to supabase_storage_admin;
alter function storage.enforce_bucket_name_length() owner to supabase_storage_admin;
alter function storage.protect_delete() owner to supabase_storage_admin;

grant all on all routines in schema storage to dashboard_user;
