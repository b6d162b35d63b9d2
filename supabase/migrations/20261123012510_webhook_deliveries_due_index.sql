-- How the claim (20261123012500) reads an endpoint's queue a batch at a time: its claimable deliveries of one status
-- in the claim's order (next_attempt_at, id), so it stops after batch_size of them, and its in flight (status
-- sending) without its pending backlog; and the endpoints with queued work, one index descent each. Built
-- concurrently, alone in its file: a plain build blocks every delivery's writes.
create index concurrently if not exists webhook_deliveries_endpoint_due_idx
  on public.webhook_deliveries (endpoint_id, status, next_attempt_at, id)
  where status in ('pending', 'sending');
