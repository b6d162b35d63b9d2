-- How the call quota and the dialler's claim (20261123009100) count an org's open outbound calls. Built
-- concurrently, alone in its file, as 20261123009700: a plain build blocks every call's writes.
create index concurrently if not exists calls_org_open_outbound_idx on public.calls (org_id, status)
  where direction = 'outbound' and status in ('queued', 'ringing', 'in_progress');
