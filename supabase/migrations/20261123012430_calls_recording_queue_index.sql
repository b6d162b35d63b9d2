-- The recording-copy queue per org, oldest-ended first (20261123012400), for private.calls_needing_recording as
-- 20261123012420 is for the analyses: its predicate is exactly the hand-out's. Built concurrently, alone in its
-- file.
create index concurrently if not exists calls_recording_queue_idx on public.calls (org_id, ended_at, id)
  where recording_url is not null and recording_path is null;
