-- Embedding quota before re-ingestion, and speech metered once per call.
--
-- 1. retry_document re-queued a failed or ready document whatever the org had used: looping it re-embedded
--    whole files, and a free org (embedding overage priced 0) ran far past its monthly_embedding_tokens.
--    It now refuses with private.require_quota's PT402 (402 quota_exceeded over HTTP) once the period's
--    embedding tokens are used up. The knowledge search and the first step of every ingestion run check the
--    same quota in the functions (functions/knowledge/search.ts, functions/ingest/step.ts).
-- 2. usage_events kind 'speech' was listed everywhere and written nowhere. A call's talk time is now metered
--    once, when the call is first in a terminal status with a duration, in seconds (tokens_in).

-- ---------------------------------------------------------------------------
-- 1. retry_document checks the embedding quota
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123006400_api_key_document_reads.sql; only the quota check before the re-queue is
-- new. require_quota only reads (usage_events, the subscription), so the lock order is unchanged.
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
  if target.status not in ('failed', 'ready') then
    raise exception 'only a failed or ready document can be ingested again (it is %)', target.status
      using errcode = 'invalid_parameter_value';
  end if;
  -- Every retry embeds the whole file again: refused once the period's embedding tokens are used up.
  perform private.require_quota(target.org_id, 'embedding_tokens');
  update public.documents d set status = 'queued', progress = 0, failure_reason = null, ingest_attempts = 0
  where d.id = target.id
  returning * into target;
  perform private.request_ingest(target.id);
  return target;
end;
$$;

comment on function public.retry_document(uuid) is 'Queues a failed (or ready) document for ingestion again; PT402 once the org''s embedding tokens of the period are used up. Users with knowledge.write, or the service role for an API key with knowledge.write (POST /functions/v1/knowledge/documents/:id/retry, failed documents only).';

-- ---------------------------------------------------------------------------
-- 2. Speech metered once per call
-- ---------------------------------------------------------------------------

comment on column public.usage_events.tokens_in is 'Tokens sent to the model; for kind speech, the call''s talk time in whole seconds (duration_seconds rounded up; model: the voice provider).';
comment on column public.usage_events.tokens_out is 'Tokens the model produced; 0 for kind speech.';

-- One row per call whose speech was metered: the call's update triggers decide when, this key makes it once,
-- whatever writes the call again (a re-delivered end event, a duration the provider corrects, a direct write).
create table private.metered_call_speech (
  call_id uuid primary key references public.calls (id) on delete cascade,
  seconds integer not null constraint metered_call_speech_seconds check (seconds > 0),
  metered_at timestamptz not null default pg_catalog.now()
);
comment on table private.metered_call_speech is
  'Calls whose talk time is in usage_events (kind speech), each once; the seconds metered (20261123009900).';
alter table private.metered_call_speech enable row level security;
revoke all on private.metered_call_speech from public, anon, authenticated, service_role;

-- Runs after the call's own audit trigger (triggers fire in name order: calls_audit, calls_audit_update and
-- calls_broadcast* come first), so when the call's end is audited (its status, its times) the org's analytics
-- marker lock (7700) and audit chain head are held before the usage rollup row (private.analytics_usage_hours)
-- is locked. A duration alone (not audited) meters without the head: in a call-event batch, a call.transcript
-- item without a status (the generic provider takes a duration on any event), whose batch takes no head for
-- it and none later, so a head holder may wait for that rollup row but never the other way round. The bot is key-share locked with
-- skip locked: a bot being deleted holds its row and then waits for this call (its delete sets calls.bot_id
-- to null), so waiting for it would deadlock; its speech is metered without the bot, which its deletion would
-- have cleared anyway. No conversation or user: their deletes also set the call's columns to null after
-- locking their rows. Not ordered: that bot's deletion moving its speech of the same quarter hour to the
-- null-bot rollup row, which this meter then waits for (40P01; the call-events function applies the batch's
-- events again one by one).
create function private.meter_call_speech()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  seconds integer := pg_catalog.ceil(new.duration_seconds)::integer;
  bot uuid;
begin
  insert into private.metered_call_speech (call_id, seconds) values (new.id, seconds)
  on conflict (call_id) do nothing;
  if not found then
    return null;
  end if;
  select b.id into bot from public.bots b
  where b.id = new.bot_id and b.org_id = new.org_id
  for key share skip locked;
  -- The day's mark before the rollup row, as every call writer takes them (analytics_calls_updated marks the
  -- day, a later metering takes the row): a duration alone, metered without a head, would otherwise hold the
  -- row while waiting for another batch's uncommitted mark that batch holds before wanting the row (40P01).
  perform private.analytics_mark_days(array[new.org_id], array[pg_catalog.now()]);
  perform private.record_usage(new.org_id, 'speech', coalesce(new.provider, 'unknown'), seconds, 0,
    null, null, bot, null, null);
  return null;
end;
$$;
comment on function private.meter_call_speech() is
  'Meters a call''s talk time (usage_events kind speech, seconds in tokens_in, the provider as model, the bot unless being deleted) the first time the call is in a terminal status with a positive duration; once per call (private.metered_call_speech).';
revoke execute on function private.meter_call_speech() from public, anon, authenticated, service_role;

create trigger calls_meter_speech after insert on public.calls
  for each row
  when (new.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy') and new.duration_seconds > 0)
  execute function private.meter_call_speech();

-- A duration can come after the end (a provider's end-of-call report, a late start time): both columns.
create trigger calls_meter_speech_update after update of status, duration_seconds on public.calls
  for each row
  when (
    new.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy') and new.duration_seconds > 0
    and not (old.status in ('ended', 'failed', 'canceled', 'no_answer', 'busy') and coalesce(old.duration_seconds, 0) > 0)
  )
  execute function private.meter_call_speech();
