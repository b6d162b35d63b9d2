-- How the retention job (20261123012000) finds events past their 30 days, oldest first, across orgs.
-- Built concurrently, alone in its file: a plain build blocks every event's emission.
create index concurrently if not exists events_created_at_idx on public.events (created_at);
