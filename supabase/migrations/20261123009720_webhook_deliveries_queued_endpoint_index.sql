-- How the manual-send limit (20261123009200) counts an endpoint's queue without reading its whole history.
-- Built concurrently, alone in its file, as 20261123009700: a plain build blocks every delivery's writes.
create index concurrently if not exists webhook_deliveries_queued_endpoint_idx on public.webhook_deliveries (endpoint_id)
  where status in ('pending', 'sending');
