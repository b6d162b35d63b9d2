-- How the retention job (20261123012000) finds raw call events past their 90 days, oldest first, across
-- orgs. Built concurrently, alone in its file: a plain build blocks every provider event's write.
create index concurrently if not exists call_events_received_at_idx on public.call_events (received_at);
