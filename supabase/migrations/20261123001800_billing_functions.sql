-- The scheduled retry of organization deletions whose Storage files are not
-- all gone yet.
--
-- 20261123001600 records each deleted org in private.deleted_organizations
-- and lists the ones whose files remain (private.org_deletions_pending_storage),
-- but nothing wakes a function to finish them: the `account` edge function
-- removes an org's files right after delete_organization, and when that
-- request runs out of time or Storage fails, the files would stay. This adds
-- the wake-up, as the other schedules do it (pg_cron -> pg_net with the Vault
-- secrets, private.invoke_edge_function): every 10 minutes, only when a
-- deletion is pending, POST /functions/v1/account/storage-cleanup with the
-- service-role key.

create function private.request_org_storage_cleanup()
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A minute's grace: the request that deleted the org is normally still removing them.
  if not exists (
    select 1 from private.deleted_organizations d
    where d.storage_removed_at is null and d.deleted_at < pg_catalog.now() - interval '1 minute'
  ) then
    return false;
  end if;
  return private.invoke_edge_function('account/storage-cleanup', '{}'::jsonb, 30000);
end;
$$;
comment on function private.request_org_storage_cleanup() is 'Wakes the account function''s storage cleanup (pg_net) when a deleted org still has files. pg_cron, every 10 minutes.';

revoke execute on function private.request_org_storage_cleanup() from public;
grant execute on function private.request_org_storage_cleanup() to service_role;

select cron.schedule('org-storage-cleanup', '*/10 * * * *', 'select private.request_org_storage_cleanup()');
