-- Local stand-in for pg_net 0.19 (the version on Supabase): the request queue,
-- the response table and net.http_get / net.http_post / net.http_delete with
-- pg_net's signatures, defaults, URL building and Content-Type rule.
--
-- A call only queues the request and returns its id; nothing is sent from
-- SQL. The local stack's scheduler (scripts/local/scheduler.ts) drains
-- net.http_request_queue after the calling transaction commits (a rolled-back
-- transaction sends nothing), performs each request, deletes it from the queue
-- and writes the outcome to net._http_response (status_code, content_type,
-- headers, content, timed_out, error_msg), as pg_net's background worker does.
-- net.wake() sends a NOTIFY on channel 'pg_net_wake' (delivered at commit) so
-- the scheduler can drain at once instead of waiting for its next tick.
--
-- Differences: the tables are logged (pg_net's are unlogged), and there is no
-- worker-is-up check. On Supabase the net schema exists only once pg_net is
-- enabled; here it is always present.

create schema net authorization supabase_admin;

create domain net.http_method as text
  check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

-- Pending requests. API: private.
create table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds integer not null
);

-- Responses, by request id. API: private.
create table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamp with time zone default now() not null
);
create index _http_response_created_idx on net._http_response (created);

alter domain net.http_method owner to supabase_admin;
alter table net.http_request_queue owner to supabase_admin;
alter table net._http_response owner to supabase_admin;

-- ---------------------------------------------------------------------------
-- URL helpers (C functions in pg_net, built on libcurl).
-- ---------------------------------------------------------------------------

-- curl_escape: every byte of the UTF-8 string except A-Z a-z 0-9 - . _ ~ as %XX.
create function net._urlencode_string(string character varying)
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  raw bytea := pg_catalog.convert_to(string, 'UTF8');
  encoded text := '';
  b integer;
begin
  if string is null then
    return null;
  end if;
  for i in 0 .. pg_catalog.length(raw) - 1 loop
    b := pg_catalog.get_byte(raw, i);
    if (b between 48 and 57) or (b between 65 and 90) or (b between 97 and 122)
       or b in (45, 46, 95, 126) then
      encoded := encoded || pg_catalog.chr(b);
    else
      encoded := encoded || '%' || pg_catalog.upper(pg_catalog.lpad(pg_catalog.to_hex(b), 2, '0'));
    end if;
  end loop;
  return encoded;
end;
$$;

-- curl_url: parse the URL (error if it is not scheme://host...), append each
-- 'key=value' to the query with '&', and return the URL as curl prints it
-- (lower-case scheme, '/' for an empty path). Null elements are skipped.
create function net._encode_url_with_params_array(url text, params_array text[])
returns text
language plpgsql
immutable
security invoker
set search_path = ''
as $$
declare
  parts text[];
  scheme text;
  authority text;
  path text;
  query text;
  fragment text;
  extra text;
begin
  if url is null then
    return null;
  end if;
  parts := pg_catalog.regexp_match(
    url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#[:space:]]+)([^?#[:space:]]*)(\?[^#[:space:]]*)?(#[^[:space:]]*)?$');
  if parts is null then
    raise exception 'URL using bad/illegal format or missing URL';
  end if;
  scheme := pg_catalog.lower(parts[1]);
  authority := parts[2];
  path := case when parts[3] = '' then '/' else parts[3] end;
  query := coalesce(parts[4], '');
  fragment := coalesce(parts[5], '');

  select pg_catalog.string_agg(p, '&' order by n) into extra
  from pg_catalog.unnest(params_array) with ordinality as a(p, n)
  where p is not null;

  if extra is not null then
    if query = '' or query = '?' then
      query := '?' || extra;
    else
      query := query || '&' || extra;
    end if;
  end if;

  return scheme || '://' || authority || path || query || fragment;
end;
$$;

create function net.wake()
returns void
language plpgsql
security invoker
set search_path = ''
as $$
begin
  perform pg_catalog.pg_notify('pg_net_wake', '');
end;
$$;

-- ---------------------------------------------------------------------------
-- The public API. Security invoker (pg_net >= 0.12): the caller inserts into
-- the queue, which every role may (grants below).
-- ---------------------------------------------------------------------------

create function net.http_get(
  -- url for the request
  url text,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds integer default 5000
)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  request_id bigint;
  params_array text[];
begin
  select coalesce(pg_catalog.array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from pg_catalog.jsonb_each_text(params);

  -- Add to the request queue
  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values (
    'GET',
    net._encode_url_with_params_array(url, params_array),
    headers,
    timeout_milliseconds
  )
  returning id
  into request_id;

  perform net.wake();

  return request_id;
end
$$;

create function net.http_post(
  -- url for the request
  url text,
  -- body of the POST request
  body jsonb default '{}'::jsonb,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds integer default 5000
)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  request_id bigint;
  params_array text[];
  content_type text;
begin
  -- Extract the content_type from headers
  select header_value into content_type
  from pg_catalog.jsonb_each_text(coalesce(headers, '{}'::jsonb)) as r(header_name, header_value)
  where pg_catalog.lower(header_name) = 'content-type'
  limit 1;

  -- If the user provided new headers and omitted the content type
  -- add it back in automatically
  if content_type is null then
    select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
  end if;

  -- Confirm that the content-type is set as "application/json"
  if content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  select coalesce(pg_catalog.array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from pg_catalog.jsonb_each_text(params);

  -- Add to the request queue
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    net._encode_url_with_params_array(url, params_array),
    headers,
    pg_catalog.convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id
  into request_id;

  perform net.wake();

  return request_id;
end
$$;

create function net.http_delete(
  -- url for the request
  url text,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds integer default 5000,
  -- optional body of the request
  body jsonb default null
)
returns bigint
language plpgsql
security invoker
set search_path = ''
as $$
declare
  request_id bigint;
  params_array text[];
begin
  select coalesce(pg_catalog.array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from pg_catalog.jsonb_each_text(params);

  -- Add to the request queue
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'DELETE',
    net._encode_url_with_params_array(url, params_array),
    headers,
    pg_catalog.convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id
  into request_id;

  perform net.wake();

  return request_id;
end
$$;

alter function net._urlencode_string(character varying) owner to supabase_admin;
alter function net._encode_url_with_params_array(text, text[]) owner to supabase_admin;
alter function net.wake() owner to supabase_admin;
alter function net.http_get(text, jsonb, jsonb, integer) owner to supabase_admin;
alter function net.http_post(text, jsonb, jsonb, jsonb, integer) owner to supabase_admin;
alter function net.http_delete(text, jsonb, jsonb, integer, jsonb) owner to supabase_admin;

-- pg_net >= 0.12 grants its schema, tables and sequences to PUBLIC; Supabase's
-- extensions.grant_pg_net_access adds usage for these roles. Functions keep
-- the default PUBLIC execute.
grant usage on schema net to public;
grant all privileges on all sequences in schema net to public;
grant all privileges on all tables in schema net to public;
grant usage on schema net to supabase_functions_admin, postgres, anon, authenticated, service_role;
