-- The dial queue per org, in claim order (20261123012400): private.claim_due_calls finds the orgs with queued
-- calls by skipping from one org to the next in it, and reads each org's oldest due calls, at most a batch,
-- instead of ranking every due call. dial_started_at is part of the predicate: a call whose attempt has an
-- unknown outcome is never handed out. Built concurrently, alone in its file, as 20261123009700: a plain build
-- blocks every call's writes.
create index concurrently if not exists calls_dial_queue_idx on public.calls (org_id, next_dial_at, created_at, id)
  where status = 'queued' and direction = 'outbound' and dial_started_at is null;
