-- The analysis queue per org, oldest-ended first (20261123012400): private.calls_needing_analysis finds the orgs
-- with due analyses by skipping from one org to the next in it, and reads each org's oldest due calls, at most a
-- batch, instead of ranking every due call. Its predicate is exactly the hand-out's, so every entry a probe meets
-- is due work: one index for both kinds made an analysis probe read, row by row, every recording copy ever given
-- up (100,000 such rows of one org: 100,005 rows read a hand-out). Built concurrently, alone in its file, as
-- 20261123009700; the recording queue is 20261123012430.
create index concurrently if not exists calls_analysis_queue_idx on public.calls (org_id, ended_at, id)
  where status = 'ended' and (summary is null or sentiment = 'unknown') and has_transcript and analysis_attempts < 5;
