-- For a user's deletion, which sets requested_by null on the deliveries the
-- user queued by hand (20261123015300): without it every tenant's
-- deliveries are read per deleted user. Full, as every key to auth.users
-- has (pgTAP 276). Built concurrently, as the other indexes of busy tables
-- are, so the dispatcher's writes go on during the build.
create index concurrently if not exists webhook_deliveries_requested_by_idx
  on public.webhook_deliveries (requested_by);
