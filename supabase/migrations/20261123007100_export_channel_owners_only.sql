-- The exports Realtime channel is the owners' only, platform admins included.
--
-- 20261123006700 kept platform admins out of data_exports and export events,
-- as the exports bucket already did (narrowed_buckets.platform_admins_read
-- false): an export is all of an org's data. Its channel, org:<org_id>:exports,
-- still let them receive, as receiving a narrowed channel followed read
-- rights (private.readable_org_ids, which gives platform admins every org):
-- each progress broadcast carries the export row (status, percent, storage
-- prefix). Channels now say, as buckets do, whether platform admins receive.

alter table private.narrowed_channels add column platform_admins_read boolean not null default true;
comment on column private.narrowed_channels.platform_admins_read is 'false: platform admins receive the channel only where they hold its permission as members, as for narrowed_buckets.platform_admins_read.';

update private.narrowed_channels set platform_admins_read = false where channel = 'exports';

-- Latest definition: 20261123003400_knowledge_integrity.sql; receiving a
-- channel without platform_admins_read needs the permission as a member.
create or replace function private.usable_narrowed_channels(for_sending boolean)
returns table (channel text, org_id uuid)
language sql
stable
security definer
set search_path = ''
as $$
  select c.channel, o.org_id
  from private.narrowed_channels c
  cross join lateral (
    select w.org_id from private.org_ids_with_permission(c.permission) w (org_id) where for_sending and c.users_send
    union all
    select r.org_id from private.readable_org_ids(c.permission) r (org_id) where not for_sending and c.platform_admins_read
    union all
    select m.org_id from private.org_ids_with_permission(c.permission) m (org_id) where not for_sending and not c.platform_admins_read
  ) o;
$$;
