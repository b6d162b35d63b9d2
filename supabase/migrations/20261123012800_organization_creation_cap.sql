-- A cap on the organizations a user creates.
--
-- Every new org starts a free subscription (200k chat tokens, 1M embedding tokens, 50 documents a month,
-- gpt-4o, its own webhook, API key and bot limits) paid by the platform, and create_organization had no limit:
-- one account created 200 orgs in 1.8 s (40M chat tokens a month), and deleting an org and creating it again
-- reset its quotas. Now a user creates at most 10 organizations in any 30 days; the 11th call raises PT429
-- (PostgREST answers 429; detail: the seconds until the oldest counted creation leaves the window) and creates
-- nothing. Creations are counted in private.organization_creations, which keeps no foreign key to the org, so a
-- deleted org still counts until 30 days after its creation. Platform admins are not capped.
--
-- Two calls of one user are serialised by a transaction-scoped advisory lock (12800, the user) taken before the
-- count, so two concurrent calls at 9 cannot both pass. The lock is per user: other users' creations never wait.
--
-- No backfill: orgs created before this migration are not counted, so each user starts with 10 creations
-- available; the worst case is 10 more orgs per user in the first 30 days, against no limit before.
--
-- Rows past the 30 days count for nothing and go daily (cron job purge-organization-creations).

create table private.organization_creations (
  org_id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz not null default now()
);
comment on table private.organization_creations is 'One row per organization created with create_organization, kept after the org is deleted, for 30 days: the count behind the cap of 10 creations per user in 30 days (20261123012800).';
create index organization_creations_user_created_idx on private.organization_creations (user_id, created_at);
alter table private.organization_creations enable row level security;
revoke all on private.organization_creations from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------
-- The cap
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123000400_team.sql; the cap, the ledger row and the creations taken one at a time are
-- new. The cap is checked after the input's, so a bad name or slug still answers 22023 or 23505.
--
-- One at a time: the org's insert attaches its chunk partition (organizations_create_chunk_partition), which
-- takes SHARE UPDATE EXCLUSIVE on public.document_chunks and SHARE ROW EXCLUSIVE on organizations, documents and
-- collections (the partition's foreign keys). Two creations at once could deadlock (each insert holds ROW
-- EXCLUSIVE on organizations, which the other's attach waits for; 40P01 on a Postgres 15 model), and a creation
-- waiting behind an open transaction that writes documents held every org's document writes behind it. The
-- creation now takes the partition lock first (creations queue there, before any insert), and waits at most 2 s
-- for its locks (lock_timeout), answering PT503 (PostgREST: 503, to retry) instead of holding writers longer.
create or replace function private.create_organization(name text, slug text)
returns public.organizations
language plpgsql
security definer
set search_path = ''
set lock_timeout = '2s'
as $$
declare
  creator uuid := private.require_user();
  clean_name text := btrim(coalesce(create_organization.name, ''));
  clean_slug text := lower(btrim(create_organization.slug));
  created public.organizations;
  recent_creations integer;
  oldest_creation timestamptz;
begin
  if length(clean_name) not between 1 and 100 then
    raise exception 'an organization name has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if clean_slug is null then
    -- A readable slug from the name, made unique with a random suffix.
    clean_slug := left(btrim(pg_catalog.regexp_replace(lower(clean_name), '[^a-z0-9]+', '-', 'g'), '-'), 40);
    clean_slug := btrim(clean_slug || '-' || pg_catalog.encode(extensions.gen_random_bytes(3), 'hex'), '-');
  end if;
  if clean_slug !~ '^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$' then
    raise exception 'a slug has 3 to 50 characters: lower-case letters, digits and inner hyphens'
      using errcode = 'invalid_parameter_value';
  end if;
  if exists (select 1 from public.organizations o where o.slug = clean_slug) then
    raise exception 'the slug "%" is taken', clean_slug using errcode = 'unique_violation';
  end if;

  if not private.is_platform_admin() then
    -- Within lock_timeout too (a double submit waits here while the first creation waits on its own locks):
    -- PT503 like the other waits, not 55P03, which PostgREST answers 500.
    begin
      perform pg_catalog.pg_advisory_xact_lock(12800, pg_catalog.hashtext(creator::text));
    exception when lock_not_available then
      raise exception 'organizations are being created or their documents written right now; try again'
        using errcode = 'PT503', hint = 'Retry in a few seconds.';
    end;
    select count(*)::integer, min(c.created_at) into recent_creations, oldest_creation
    from private.organization_creations c
    where c.user_id = creator and c.created_at > pg_catalog.now() - interval '30 days';
    if recent_creations >= 10 then
      raise exception 'a user creates at most 10 organizations in 30 days'
        using errcode = 'PT429',
          detail = ceil(extract(epoch from oldest_creation + interval '30 days' - pg_catalog.now()))::text,
          hint = 'Use one of your organizations, or try again after the seconds in detail; deleted organizations count until 30 days after their creation.';
    end if;
  end if;

  begin
    -- Only the parent: a plain LOCK TABLE also locks every org's partition.
    lock table only public.document_chunks in share update exclusive mode;
    insert into public.organizations (name, slug, created_by)
    values (clean_name, clean_slug, creator)
    returning * into created;
  exception when lock_not_available then
    raise exception 'organizations are being created or their documents written right now; try again'
      using errcode = 'PT503', hint = 'Retry in a few seconds.';
  end;
  insert into public.memberships (org_id, user_id, role) values (created.id, creator, 'owner');
  -- Admins' creations are kept too: the ledger records creations, only the check above is skipped.
  insert into private.organization_creations (org_id, user_id) values (created.id, creator);
  return created;
end;
$$;

comment on function public.create_organization(text, text) is 'Creates an organization; the caller becomes its owner. Slug optional (derived from the name). PT429 (detail: seconds to wait) past 10 creations by the caller in 30 days, deleted orgs included; platform admins are not capped.';

-- ---------------------------------------------------------------------------
-- The purge
-- ---------------------------------------------------------------------------

-- Unordered: any old row may go first, so the scan stops at the bound and needs no index on created_at alone.
create function private.purge_organization_creations(max_rows integer default 5000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from private.organization_creations c
  where c.org_id in (
    select t.org_id from private.organization_creations t
    where t.created_at <= pg_catalog.now() - interval '30 days'
    limit greatest(purge_organization_creations.max_rows, 0)
    for update skip locked
  );
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_organization_creations(integer) is 'Deletes up to max_rows organization creations made 30 days ago or more (they no longer count towards the cap); returns how many.';
revoke execute on function private.purge_organization_creations(integer) from public, anon, authenticated, service_role;

-- Daily, committing after each bounded statement (as purge-expired-history), at most 20 statements and 100 s a
-- run; what is left goes the next day, and counts for nothing meanwhile.
select cron.schedule('purge-organization-creations', '29 4 * * *', $job$do $$
declare
  purged integer;
  statements integer := 0;
begin
  loop
    exit when statements = 20 or pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp() > interval '100 seconds';
    purged := private.purge_organization_creations(5000);
    commit;
    statements := statements + 1;
    exit when purged < 5000;
  end loop;
end
$$$job$);
