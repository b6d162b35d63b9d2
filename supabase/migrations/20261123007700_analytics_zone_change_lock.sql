-- A zone change no longer loses a concurrent write's day.
--
-- The race (hosted Postgres, READ COMMITTED): a writer's trigger marks the
-- local day of its write in the org's zone as it reads it, and commits later;
-- an admin's zone change in between (nothing made it wait: the writer holds
-- only FOR KEY SHARE on the org row, and the 1700 advisory lock orders
-- refreshes only) deleted the org's days and marks and re-marked every day it
-- could see, which left out the writer's uncommitted rollup rows. The writer
-- then committed a mark for its day in the old zone only: the new zone's day
-- got no row, or one computed without the write, and nothing marked it again.
--
-- Now markers and the zone change exclude each other on a per-org advisory
-- lock, class 7700 (hashtext of the org id), apart from the refresh's 1700 so
-- that a writer never waits on a refresh:
-- - private.analytics_mark_days takes it shared (writers never wait on each
--   other), then inserts the marks in a later statement, whose snapshot sees
--   any zone change that committed while it waited;
-- - the zone change takes it exclusive before it deletes and re-marks, so it
--   waits for every writer that marked in the old zone to commit, and its
--   statements after the lock (each a fresh snapshot in a volatile plpgsql
--   function under READ COMMITTED) see those writers' rollup rows and re-mark
--   their days in the new zone.
-- The zone change takes 7700 before the refresh's 1700, so while it waits for
-- writers readers keep refreshing. New writers of the org queue behind a
-- waiting zone change until it commits (a rare admin act; a writer's
-- transaction is one request).
--
-- Deadlocks: shared locks never conflict, and mark_days locks its orgs in
-- uuid order. Two writers that each hold one org's lock and, in a later
-- statement, ask for the other's, each queued behind a zone change waiting
-- for the other writer, form a cycle through the wait queues only, which
-- Postgres's deadlock detector resolves by reordering a queue, not by
-- aborting. A real
-- deadlock (40P01, one transaction aborted) needs a transaction that holds a
-- lock the zone change wants while waiting for it: one UPDATE changing the
-- zone of several orgs while a writer marks two of them, a writer that locks
-- its org row (bots, catalog, invitations, exports) after a marking write in
-- the same transaction, or one that refreshes the org's days (1700) and then
-- writes. None of the app's paths does.

-- As before (20261123001700), under the shared marker lock of each org.
create or replace function private.analytics_mark_days(org_ids uuid[], ats timestamptz[])
returns void
language plpgsql
security invoker
set search_path = ''
as $$
declare
  org uuid;
begin
  for org in
    select distinct k.org_id from unnest(org_ids, ats) k (org_id, at)
    where k.org_id is not null and k.at is not null
    order by k.org_id
  loop
    perform pg_catalog.pg_advisory_xact_lock_shared(7700, pg_catalog.hashtext(org::text));
  end loop;
  -- A later statement, hence a later snapshot: the zone as it stands once
  -- no zone change of these orgs is in progress.
  insert into private.analytics_stale_days (org_id, day)
  select distinct k.org_id, (k.at at time zone o.time_zone)::date
  from unnest(org_ids, ats) k (org_id, at)
  join public.organizations o on o.id = k.org_id
  where k.at is not null
  on conflict do nothing;
end;
$$;
comment on function private.analytics_mark_days(uuid[], timestamptz[]) is 'Marks stale the local days (in each org''s zone) of these instants, under a shared advisory lock (7700, hashtext(org)) per org that a zone change takes exclusive (see 20261123007700).';

-- As before (20261123003100), after waiting for every writer that marked
-- days in the old zone (the exclusive marker lock), then the refresh's lock.
create or replace function private.analytics_org_zone_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform pg_catalog.pg_advisory_xact_lock(7700, pg_catalog.hashtext(new.id::text));
  perform pg_catalog.pg_advisory_xact_lock(1700, pg_catalog.hashtext(new.id::text));
  delete from private.analytics_days d where d.org_id = new.id;
  -- Empty weeks have rows but no day rows to drop them.
  delete from private.analytics_weeks w where w.org_id = new.id;
  delete from private.analytics_stale_days s where s.org_id = new.id;
  insert into private.analytics_stale_days (org_id, day)
  select k.org_id, k.day from private.analytics_org_days(array[new.id]) k
  on conflict do nothing;
  return null;
end;
$$;
