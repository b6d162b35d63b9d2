-- Idempotency-Key for API requests that create something a retry must not
-- create twice: POST /functions/v1/calls places a phone call, and a client
-- whose answer got lost (a timeout, a dropped connection) cannot tell
-- whether it did. With the header (the IETF httpapi idempotency-key draft,
-- as Stripe and Vapi's peers use it), the first request's answer is kept for
-- the API key and that key; a retry with the same key and the same request
-- gets that answer again (the call is not placed twice), the same key with
-- another request is refused.
--
-- The key is claimed in the transaction that does the work, so a concurrent
-- duplicate waits on the claim and then replays the answer; work that fails
-- rolls the claim back with it, so a failed request may be retried with the
-- same key. An API-key upload claims with its registration and keeps its
-- answer once Storage has the file (or gives the claim up if Storage refuses
-- it); a duplicate in between is told to retry (409). Answers are kept 24
-- hours (an hourly purge; a key older than that is claimed afresh) and go
-- with their API key (and so with its org).

create table private.idempotency_keys (
  api_key_id uuid not null references public.api_keys (id) on delete cascade,
  idempotency_key text not null
    constraint idempotency_keys_key_format check (idempotency_key ~ '^[!-~]{1,255}$'),
  request_fingerprint text not null
    constraint idempotency_keys_fingerprint_format check (request_fingerprint ~ '^[0-9a-f]{64}$'),
  response_status integer constraint idempotency_keys_status_range check (response_status between 200 and 299),
  response_body jsonb,
  created_at timestamptz not null default now(),
  primary key (api_key_id, idempotency_key)
);
comment on table private.idempotency_keys is
  'The answer to the first request an API key sent with an Idempotency-Key, replayed to its retries for 24 hours.';
create index idempotency_keys_created_at_idx on private.idempotency_keys (created_at);
alter table private.idempotency_keys enable row level security;
revoke all on private.idempotency_keys from public, anon, authenticated, service_role;

-- Claims the key for this request, or returns what its first request got.
-- claimed: do the work, then record_idempotent_response in the same
-- transaction. Not claimed: replay response_status / response_body when the
-- fingerprint matches, else refuse the request.
create function private.claim_idempotency_key(api_key_id uuid, idempotency_key text, request_fingerprint text)
returns table (claimed boolean, first_fingerprint text, response_status integer, response_body jsonb)
language plpgsql
security definer
set search_path = ''
as $$
declare
  kept private.idempotency_keys;
begin
  insert into private.idempotency_keys as k (api_key_id, idempotency_key, request_fingerprint)
  values (claim_idempotency_key.api_key_id, claim_idempotency_key.idempotency_key, claim_idempotency_key.request_fingerprint)
  on conflict on constraint idempotency_keys_pkey do update
    set request_fingerprint = excluded.request_fingerprint, response_status = null, response_body = null,
        created_at = pg_catalog.now()
    -- Past its 24 hours a key is new again, purged or not; so is a claim left
    -- without an answer for 10 minutes (its request died between the claim
    -- and the answer, as an upload can: no request runs that long).
    where k.created_at < pg_catalog.now() - interval '24 hours'
      or (k.response_status is null and k.created_at < pg_catalog.now() - interval '10 minutes')
  returning * into kept;
  if found then
    return query select true, kept.request_fingerprint, null::integer, null::jsonb;
    return;
  end if;
  return query
  select false, k.request_fingerprint, k.response_status, k.response_body
  from private.idempotency_keys k
  where k.api_key_id = claim_idempotency_key.api_key_id and k.idempotency_key = claim_idempotency_key.idempotency_key;
end;
$$;
revoke execute on function private.claim_idempotency_key(uuid, text, text) from public;
grant execute on function private.claim_idempotency_key(uuid, text, text) to service_role;

-- Keeps the answer for a key this transaction claimed; a key it did not claim
-- is a bug in the caller (its work would commit with nothing kept).
create function private.record_idempotent_response(api_key_id uuid, idempotency_key text, response_status integer, response_body jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update private.idempotency_keys k
  set response_status = record_idempotent_response.response_status, response_body = record_idempotent_response.response_body
  where k.api_key_id = record_idempotent_response.api_key_id and k.idempotency_key = record_idempotent_response.idempotency_key
    and k.response_status is null;
  if not found then
    raise exception 'idempotency key % was not claimed by this request', record_idempotent_response.idempotency_key
      using errcode = 'no_data_found';
  end if;
end;
$$;
revoke execute on function private.record_idempotent_response(uuid, text, integer, jsonb) from public;
grant execute on function private.record_idempotent_response(uuid, text, integer, jsonb) to service_role;

-- Gives up a claim whose work failed after the claim committed (an upload
-- Storage refused), so the request may be sent again with its key. An
-- answered claim stays.
create function private.release_idempotency_key(api_key_id uuid, idempotency_key text)
returns boolean
language sql
security definer
set search_path = ''
as $$
  with released as (
    delete from private.idempotency_keys k
    where k.api_key_id = release_idempotency_key.api_key_id and k.idempotency_key = release_idempotency_key.idempotency_key
      and k.response_status is null
    returning 1
  )
  select exists (select 1 from released);
$$;
revoke execute on function private.release_idempotency_key(uuid, text) from public;
grant execute on function private.release_idempotency_key(uuid, text) to service_role;

create function private.purge_idempotency_keys()
returns integer
language sql
security definer
set search_path = ''
as $$
  with purged as (
    delete from private.idempotency_keys k where k.created_at < pg_catalog.now() - interval '24 hours' returning 1
  )
  select count(*)::integer from purged;
$$;
revoke execute on function private.purge_idempotency_keys() from public;

select cron.schedule('purge-idempotency-keys', '23 * * * *', 'select private.purge_idempotency_keys()');
