-- Deleting a user who configured a webhook endpoint.
--
-- webhook_endpoints.configured_by (20261123004100) references auth.users on
-- delete set null, but the trigger that keeps configured_by from being set by
-- hand put the old value back on the foreign key's own "set null" update (it
-- changes neither the URL nor the filter), so the row then referenced a
-- deleted user and the delete failed (23503): private.delete_user could not
-- remove any owner or admin who had ever created or repointed an endpoint.
-- Clearing it is now let through: a null configurer receives no owner-only
-- events, so nobody gains anything by it.

create or replace function private.record_webhook_endpoint_configurer()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- Nobody sets configured_by by hand (not even the service role): it is
  -- always the caller who set the URL or the filter, else left as it was,
  -- or cleared (the user's deletion).
  if tg_op = 'INSERT'
    or new.url is distinct from old.url
    or new.event_types is distinct from old.event_types then
    new.configured_by := auth.uid();
  elsif new.configured_by is not null then
    new.configured_by := old.configured_by;
  end if;
  return new;
end;
$$;
