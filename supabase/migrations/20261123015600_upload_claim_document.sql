-- An API-key upload retried after a lost answer answers its first document
-- instead of registering the file twice.
--
-- An upload claims its Idempotency-Key with its registration and records its
-- answer only once Storage has the file, in a later transaction. A request
-- that died in between (or whose last transaction failed) left the claim
-- unanswered: a retry was a 409 for 10 minutes and then, the claim taken over
-- as stale, registered and ingested a second copy (a second document against
-- the plan, its embeddings paid twice). The registration now names its
-- document on the claim; a retry of the same request that takes the stale
-- claim over is told that document, and the upload answers it (stored) or
-- takes it back and registers anew (its file never arrived).
--
-- No foreign key: a document deleted since is simply not found, and the
-- retry registers anew, as `on delete set null` would have it; the key would
-- only make every document's deletion (an org's, thousands at once) probe
-- and lock the claims for a pointer that lives 24 hours.

-- Deploying: a busy table fails the push after 5 s instead of queueing the app behind its exclusive lock
-- (set_config: `supabase db push` runs a file as one implicit transaction, where SET LOCAL does nothing).
select pg_catalog.set_config('lock_timeout', '5s', true);

alter table private.idempotency_keys add column document_id uuid;
comment on column private.idempotency_keys.document_id is
  'The document an API-key upload registered under this claim, told to a retry that takes the claim over unanswered.';

-- claim_idempotency_key for POST /knowledge/documents, plus document_id: the
-- document the claim taken over named, when it was this same request's and
-- left unanswered (its request died after registering), else null. A claim
-- taken starts without a document (record_idempotent_document names it).
create function private.claim_upload_idempotency_key(api_key_id uuid, idempotency_key text, request_fingerprint text)
returns table (claimed boolean, first_fingerprint text, response_status integer, response_body jsonb, document_id uuid)
language plpgsql
security definer
set search_path = ''
as $$
declare
  prior private.idempotency_keys;
  claim record;
begin
  -- Locked, so the claim taken over below is the one read here.
  select * into prior from private.idempotency_keys k
  where k.api_key_id = claim_upload_idempotency_key.api_key_id
    and k.idempotency_key = claim_upload_idempotency_key.idempotency_key
  for update;
  select * into claim
  from private.claim_idempotency_key(claim_upload_idempotency_key.api_key_id, claim_upload_idempotency_key.idempotency_key,
                                     claim_upload_idempotency_key.request_fingerprint);
  if not claim.claimed then
    return query select false, claim.first_fingerprint, claim.response_status, claim.response_body, null::uuid;
    return;
  end if;
  if prior.document_id is not null then
    update private.idempotency_keys k set document_id = null
    where k.api_key_id = claim_upload_idempotency_key.api_key_id
      and k.idempotency_key = claim_upload_idempotency_key.idempotency_key;
  end if;
  -- Past its 24 hours the key is new: its first request's document is no answer to this one.
  return query select true, claim.first_fingerprint, null::integer, null::jsonb,
    case
      when prior.response_status is null and prior.request_fingerprint = claim_upload_idempotency_key.request_fingerprint
        and prior.created_at >= pg_catalog.now() - interval '24 hours'
      then prior.document_id
    end;
end;
$$;
revoke execute on function private.claim_upload_idempotency_key(uuid, text, text) from public;
grant execute on function private.claim_upload_idempotency_key(uuid, text, text) to service_role;

-- Names the document the request that claimed the key registered, in the
-- registration's transaction; as record_idempotent_response, a key this
-- request did not claim (or already answered) is a bug in the caller.
create function private.record_idempotent_document(api_key_id uuid, idempotency_key text, document_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  update private.idempotency_keys k
  set document_id = record_idempotent_document.document_id
  where k.api_key_id = record_idempotent_document.api_key_id and k.idempotency_key = record_idempotent_document.idempotency_key
    and k.response_status is null;
  if not found then
    raise exception 'idempotency key % was not claimed by this request', record_idempotent_document.idempotency_key
      using errcode = 'no_data_found';
  end if;
end;
$$;
revoke execute on function private.record_idempotent_document(uuid, text, uuid) from public;
grant execute on function private.record_idempotent_document(uuid, text, uuid) to service_role;
