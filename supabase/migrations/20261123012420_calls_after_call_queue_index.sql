-- The after-call queues per org, oldest-ended first (20261123012400): private.calls_needing_analysis and
-- calls_needing_recording find the orgs with due work by skipping from one org to the next in it, and read
-- each org's oldest due calls, at most a batch, instead of ranking every due call of their kind. One index
-- for both kinds (the predicate is either hand-out's): an org's scan for one kind also passes over its calls
-- due for the other only. Built concurrently, alone in its file, as 20261123009700.
create index concurrently if not exists calls_after_call_queue_idx on public.calls (org_id, ended_at, id)
  where (status = 'ended' and (summary is null or sentiment = 'unknown') and has_transcript and analysis_attempts < 5)
    or (recording_url is not null and recording_path is null);
