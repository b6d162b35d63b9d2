-- An org's deletion locks its collections before its documents.
--
-- The last ingestion step key-shares its document's collection before it locks the document (20261123015700).
-- delete_organization locked the org's documents, then the org row, and its delete then cascaded to the
-- collections, whose deletion conflicts with that key share: a step waiting for its document held the collection
-- the deletion needed, and one of them died with 40P01 (the owner's deletion, at some timings; modelled on
-- Postgres 15). The collections now come first, in the README's lock order (collection -> document), so a step
-- that has not yet key-shared its collection waits for the deletion and then finds its document gone, and one
-- that has is waited for.

-- Latest definition: 20261123014600_rpc_not_found_404.sql; only the collections' lock is new.
create or replace function private.delete_organization(org_id uuid, confirm_name text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.organizations;
begin
  perform private.require_permission(delete_organization.org_id, 'org.delete');
  select * into target from public.organizations o where o.id = delete_organization.org_id;
  if not found then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  -- A running ingest step holds its collection (key share), then its document, and then needs the org row's key
  -- share and the head: it commits before the org row is locked (see 20261123009600's header).
  perform 1 from public.collections c where c.org_id = target.id order by c.id for update;
  perform 1 from public.documents d where d.org_id = target.id order by d.id for update;
  select * into target from public.organizations o where o.id = delete_organization.org_id for update;
  if not found then
    raise exception 'organization not found' using errcode = 'PT404';
  end if;
  if confirm_name is distinct from target.name then
    raise exception 'type the organization''s name exactly to confirm: %', target.name
      using errcode = 'invalid_parameter_value';
  end if;
  perform pg_catalog.set_config('private.deleting_org', target.id::text, true);
  delete from public.organizations o where o.id = target.id;
  perform pg_catalog.set_config('private.deleting_org', '', true);
end;
$$;
