-- Policy and index fixes (review of 20261123008300, 20261123000400 and 20261123000200).
--
-- 1. Delivery and attempt reads no longer hash every readable event. The
--    restrictive policies "deliveries are read as their events are, or by
--    webhook managers" and "attempts are read as their events are"
--    (20261123008300) were planned as a hashed subplan: the whole set of
--    events (or deliveries joined to events) the caller may read was built
--    before the first row came back. A member's 50-row page of deliveries
--    over an org of 100,000 events read 98,000 events (122 ms on the
--    embedded stack), the same page of attempts 98,000 deliveries and
--    events (344 ms). `offset 0` keeps each exists a per-row subplan (an
--    index probe by id: 0.6 ms and 0.9 ms), and the managers' test, one
--    initplan, now comes first. The meaning is unchanged: the same
--    conditions, the caller's RLS on events and deliveries applying inside.
--
-- 2. A user's deletion no longer scans invitations, api_keys,
--    webhook_endpoints, projects, collections and upload_batches. Their
--    foreign keys to auth.users (accepted_by on delete cascade, the others
--    on delete set null) had no index, nor had invitations.invited_by but a
--    partial one (pending invitations only, which the set null cannot use);
--    private.request_audit_redaction_of_deleted_user (20261123009400)
--    filters accepted_by too. Deleting a user who holds none of 200,000
--    invitations took 101 ms on the embedded stack, 8.5 ms with these
--    indexes. None of these tables is one of the big ones that need
--    concurrent builds alone in their file (audit_log, calls,
--    webhook_deliveries, messages, document_chunks), and none of those has
--    an unindexed key to auth.users (pgTAP 276 lists every key).
--
-- 3. delete_organization is the one way a user deletes an organization.
--    Owners could delete the org row directly (PostgREST's
--    from('organizations').delete(), policy "owners can delete their
--    organization", 20261123000200), without the confirm_name check and out
--    of the lock order of delete_organization (20261123009600), which locks
--    the org's documents before its row: a direct delete against a running
--    ingest step deadlocked (40P01). The policy and authenticated's DELETE
--    privilege go; delete_organization (security definer) and the service
--    role are unaffected, and the before-delete triggers cover both.

-- ---------------------------------------------------------------------------
-- 1. Delivery and attempt reads probe their event per row.
-- ---------------------------------------------------------------------------

-- Latest definitions: 20261123008300_webhook_reads_saves_and_wakeups.sql; only `offset 0` and the order of
-- the deliveries' two tests are new.
drop policy "deliveries are read as their events are, or by webhook managers" on public.webhook_deliveries;
create policy "deliveries are read as their events are, or by webhook managers"
  on public.webhook_deliveries as restrictive for select to authenticated
  using (
    org_id = any (array(select private.org_ids_with_permission('webhooks.manage')))
    -- offset 0: a per-row probe, never a hash of every readable event.
    or exists (select 1 from public.events ev where ev.id = event_id offset 0)
  );

drop policy "attempts are read as their events are" on public.webhook_attempts;
create policy "attempts are read as their events are"
  on public.webhook_attempts as restrictive for select to authenticated
  using (exists (
    select 1 from public.webhook_deliveries d join public.events ev on ev.id = d.event_id
    where d.id = delivery_id
    -- As above: a probe by the attempt's delivery.
    offset 0
  ));

-- ---------------------------------------------------------------------------
-- 2. Every key to auth.users a user's deletion follows is indexed.
-- ---------------------------------------------------------------------------

create index invitations_accepted_by_idx on public.invitations (accepted_by);
create index invitations_revoked_by_idx on public.invitations (revoked_by);
create index invitations_invited_by_idx on public.invitations (invited_by);
create index api_keys_created_by_idx on public.api_keys (created_by);
create index api_keys_revoked_by_idx on public.api_keys (revoked_by);
create index webhook_endpoints_created_by_idx on public.webhook_endpoints (created_by);
create index projects_created_by_idx on public.projects (created_by);
create index collections_created_by_idx on public.collections (created_by);
create index upload_batches_created_by_idx on public.upload_batches (created_by);

-- ---------------------------------------------------------------------------
-- 3. No direct delete of an organization by a user.
-- ---------------------------------------------------------------------------

drop policy "owners can delete their organization" on public.organizations;
revoke delete on public.organizations from authenticated;
