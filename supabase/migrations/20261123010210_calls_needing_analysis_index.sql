-- What the dispatcher's wake-up and private.calls_needing_analysis (20261123010200) read: ended calls with a
-- transcript awaiting an analysis, with tries left. Built concurrently, alone in its file, as 20261123009700:
-- a plain build blocks every call's writes. calls_needing_analysis_idx (20261123001200) is left in place: the
-- local runner applies no `drop index concurrently` file.
create index concurrently if not exists calls_awaiting_analysis_idx on public.calls (ended_at)
  where status = 'ended' and (summary is null or sentiment = 'unknown') and has_transcript and analysis_attempts < 5;
