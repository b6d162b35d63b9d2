-- Idempotency-Key for POST /functions/v1/webhooks/endpoints: an admin whose
-- answer got lost and who sends the request again would otherwise create a
-- second endpoint, which then receives every event twice, each signed with
-- its own secret. Svix's create-endpoint takes the same header.
--
-- Those routes are called with a user's token, not an API key, so a key is
-- kept per user and org there (a user's keys in one org do not collide with
-- theirs in another, nor with anyone else's). A row is scoped either by its
-- API key or by its membership, never both; a user's answers go with the
-- membership (leaving the org, or the account or org being deleted, drops
-- them). The table stays definer-only: the answers keep a signing secret
-- (shown once, at creation), as safe here as in
-- private.webhook_endpoint_secrets, and replayed only to the user who sent
-- the request, for 24 hours, the hourly purge unchanged.

alter table private.idempotency_keys
  drop constraint idempotency_keys_pkey,
  alter column api_key_id drop not null,
  add column org_id uuid,
  add column user_id uuid,
  add constraint idempotency_keys_membership_fkey foreign key (org_id, user_id)
    references public.memberships (org_id, user_id) on delete cascade,
  add constraint idempotency_keys_one_scope check (
    (api_key_id is not null and org_id is null and user_id is null)
    or (api_key_id is null and org_id is not null and user_id is not null)
  ),
  -- Nulls are distinct, so each scope's rows collide only among themselves.
  add constraint idempotency_keys_api_key_scope unique (api_key_id, idempotency_key),
  add constraint idempotency_keys_user_scope unique (org_id, user_id, idempotency_key);
comment on table private.idempotency_keys is
  'The answer to the first request an API key, or a user in an org, sent with an Idempotency-Key, replayed to its retries for 24 hours.';

-- The same as 20261123006100's, on the API-key scope's constraint now that
-- the primary key is gone.
create or replace function private.claim_idempotency_key(api_key_id uuid, idempotency_key text, request_fingerprint text)
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
  on conflict on constraint idempotency_keys_api_key_scope do update
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

-- The signed-in user's claim in an org, as claim_idempotency_key's for an API
-- key. The user is auth.uid(), never an argument, so nobody claims (or reads
-- the answers of) another user's keys; only members claim, the rest is the
-- caller's own permission check. The org row is locked first, `for no key
-- update` as create_webhook_endpoint (the claim's caller) then takes it: the
-- claim's foreign key check key-share locks the user's membership, and with
-- the org row taken only after it, a delete_organization holding the org row
-- and waiting to delete that membership deadlocked with it (40P01).
create function private.claim_user_idempotency_key(org_id uuid, idempotency_key text, request_fingerprint text)
returns table (claimed boolean, first_fingerprint text, response_status integer, response_body jsonb)
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := private.require_user();
  kept private.idempotency_keys;
begin
  if private.member_role(claim_user_idempotency_key.org_id, caller) is null then
    raise exception 'you are not a member of this organization' using errcode = 'insufficient_privilege';
  end if;
  perform 1 from public.organizations o where o.id = claim_user_idempotency_key.org_id for no key update;
  -- Again once the row is ours: a delete_organization it waited for has taken the membership with it.
  if private.member_role(claim_user_idempotency_key.org_id, caller) is null then
    raise exception 'you are not a member of this organization' using errcode = 'insufficient_privilege';
  end if;
  insert into private.idempotency_keys as k (org_id, user_id, idempotency_key, request_fingerprint)
  values (claim_user_idempotency_key.org_id, caller, claim_user_idempotency_key.idempotency_key,
          claim_user_idempotency_key.request_fingerprint)
  on conflict on constraint idempotency_keys_user_scope do update
    set request_fingerprint = excluded.request_fingerprint, response_status = null, response_body = null,
        created_at = pg_catalog.now()
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
  where k.org_id = claim_user_idempotency_key.org_id and k.user_id = caller
    and k.idempotency_key = claim_user_idempotency_key.idempotency_key;
end;
$$;
revoke execute on function private.claim_user_idempotency_key(uuid, text, text) from public;
grant execute on function private.claim_user_idempotency_key(uuid, text, text) to authenticated;

-- Keeps the answer for a key this transaction claimed for the signed-in user.
create function private.record_user_idempotent_response(org_id uuid, idempotency_key text, response_status integer, response_body jsonb)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update private.idempotency_keys k
  set response_status = record_user_idempotent_response.response_status,
      response_body = record_user_idempotent_response.response_body
  where k.org_id = record_user_idempotent_response.org_id and k.user_id = private.require_user()
    and k.idempotency_key = record_user_idempotent_response.idempotency_key
    and k.response_status is null;
  if not found then
    raise exception 'idempotency key % was not claimed by this request', record_user_idempotent_response.idempotency_key
      using errcode = 'no_data_found';
  end if;
end;
$$;
revoke execute on function private.record_user_idempotent_response(uuid, text, integer, jsonb) from public;
grant execute on function private.record_user_idempotent_response(uuid, text, integer, jsonb) to authenticated;
