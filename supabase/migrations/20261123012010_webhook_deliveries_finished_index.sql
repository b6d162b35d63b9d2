-- How the retention job (20261123012000) finds terminal deliveries past their 30 days, oldest first, without
-- reading the queue or every org's history. Built concurrently, alone in its file: a plain build blocks
-- every delivery's writes.
create index concurrently if not exists webhook_deliveries_finished_created_idx on public.webhook_deliveries (created_at)
  where status in ('succeeded', 'failed', 'canceled');
