-- Knowledge base integrity: three holes that only the happy path closed.
--
-- 1. Forged upload statuses. org:<org_id>:uploads carries the database's own
--    document status broadcasts (the documents_broadcast trigger), and every
--    dashboard of the org shows them. Members and up may send on any channel
--    of their org, so a member could broadcast a "failed" status for someone
--    else's upload. The channel is now narrowed with no user sending on it:
--    members keep receiving (realtime.receive, as before); the trigger
--    (private.broadcast_org_change, a definer owned by postgres, which
--    bypasses RLS) and the service role (bypassrls) still send.
--
-- 2. Match input. match_document_chunks checked only match_count: a null
--    query_embedding ranked chunks as if it matched (every distance null),
--    and an all-zero one, whose cosine distance is undefined, returned chunks
--    with scores. Both are now 22023 before any search.
--
-- 3. Same-org links. documents and upload_batches pointed at projects and
--    collections, and document_chunks at collections, by id alone; only
--    create_upload_batch checked the org, so any other write (the service
--    role, a future function, a fix by hand) could link a row to another
--    org's collection. The links are now composite keys (x_id, org_id) to
--    (id, org_id), as bot_collections' already are, and still clear only the
--    link when the target is deleted.

-- ---------------------------------------------------------------------------
-- 1. org:<org_id>:uploads: received as any channel, sent by no user
-- ---------------------------------------------------------------------------

alter table private.narrowed_channels add column users_send boolean not null default true;
comment on column private.narrowed_channels.users_send is 'false: no user sends on the channel, whatever their permission; only the database (definer triggers and functions) and the service role do, so what it carries cannot be forged.';
comment on table private.narrowed_channels is 'Realtime channels (org:<org_id>:<channel>) received only with a permission and sent only with it, or by no user (users_send false) (restrictive policies on realtime.messages). Modules register theirs.';

-- Latest definition: 20261123001200_calls.sql. A channel no user sends on
-- yields no (channel, org) pair to send on, so the restrictive send policy
-- refuses it for everyone it applies to (authenticated).
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
    select r.org_id from private.readable_org_ids(c.permission) r (org_id) where not for_sending
  ) o;
$$;

-- realtime.receive keeps who receives exactly as the permissive policy has it
-- (viewers and up, platform admins).
insert into private.narrowed_channels (channel, permission, users_send) values ('uploads', 'realtime.receive', false);

-- ---------------------------------------------------------------------------
-- 2. A query embedding is required and must have a direction
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123002600_selective_text_search.sql; only the
-- query_embedding checks are new.
create or replace function public.match_document_chunks(
  org_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10,
  collection_ids uuid[] default null
)
returns table (
  chunk_id bigint,
  document_id uuid,
  document_name text,
  collection_id uuid,
  page_start integer,
  page_end integer,
  content text,
  score double precision,
  vector_rank integer,
  text_rank integer
)
language plpgsql
stable
security invoker
set search_path = ''
set plan_cache_mode = 'force_custom_plan'
as $$
declare
  -- At most this many chunks hold the words the text half searches for.
  text_budget constant integer := 1000;
  candidates integer;
  terms text[];
  words tsquery;
begin
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  -- Every distance to a null vector is null, so the walk would return chunks
  -- in no meaningful order, scored as if they matched.
  if query_embedding is null then
    raise exception 'query_embedding is required' using errcode = 'invalid_parameter_value';
  end if;
  -- A zero vector has no direction: its cosine distance to anything is NaN.
  if extensions.vector_norm(query_embedding) = 0 then
    raise exception 'query_embedding must not be all zeros' using errcode = 'invalid_parameter_value';
  end if;
  candidates := match_count * 4;
  -- Any of the selective words, ranked by how densely a chunk covers them: a
  -- question ("how long does delivery take?") rarely has all its words in
  -- one chunk, which websearch_to_tsquery would demand.
  if query_text is not null then
    terms := private.selective_query_terms(match_document_chunks.org_id, query_text, text_budget);
    if terms is not null then
      select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(t), ' | '))
      into words
      from unnest(terms) t;
    end if;
  end if;

  -- Without words, the vector side's best match_count, scored as reciprocal
  -- rank fusion scores a chunk only the vector side found.
  if words is null then
    return query
    select v.id, v.document_id, d.name, v.collection_id, v.page_start, v.page_end, v.content,
      (1.0 / (60 + v.rank))::double precision, v.rank, null::integer
    from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, match_count) v
    join public.documents d on d.id = v.document_id
    order by v.rank;
    return;
  end if;

  return query
  with vector_matches as (
    select v.id, v.document_id, v.collection_id, v.page_start, v.page_end, v.content, v.rank
    from private.vector_matches(match_document_chunks.org_id, query_embedding, collection_ids, candidates) v
  ),
  text_matches as (
    select t.id, t.document_id, t.collection_id, t.page_start, t.page_end, t.content, t.rank
    from private.text_matches(match_document_chunks.org_id, words, collection_ids, candidates) t
  ),
  fused as (
    select coalesce(v.id, t.id) as id, coalesce(v.document_id, t.document_id) as document_id,
      coalesce(v.collection_id, t.collection_id) as collection_id, coalesce(v.page_start, t.page_start) as page_start,
      coalesce(v.page_end, t.page_end) as page_end, coalesce(v.content, t.content) as content,
      v.rank as v_rank, t.rank as t_rank,
      coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) as rrf
    from vector_matches v
    full join text_matches t on t.id = v.id
    order by rrf desc, id
    limit match_count
  )
  select f.id, f.document_id, d.name, f.collection_id, f.page_start, f.page_end, f.content,
    f.rrf::double precision, f.v_rank, f.t_rank
  from fused f
  join public.documents d on d.id = f.document_id
  order by f.rrf desc, f.id;
end;
$$;

-- Latest definition: 20261123002800_match_bot_chunks.sql. match_document_chunks
-- checks the embedding too; checked here first so that bad input is a 22023
-- whatever the bot, not a P0002 for one the caller cannot see.
create or replace function public.match_bot_chunks(
  bot_id uuid,
  query_embedding extensions.vector(1536),
  query_text text default null,
  match_count integer default 10
)
returns table (
  chunk_id bigint,
  document_id uuid,
  document_name text,
  collection_id uuid,
  page_start integer,
  page_end integer,
  content text,
  score double precision,
  vector_rank integer,
  text_rank integer
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  bot_org_id uuid;
  collection_ids uuid[];
begin
  if query_embedding is null then
    raise exception 'query_embedding is required' using errcode = 'invalid_parameter_value';
  end if;
  if extensions.vector_norm(query_embedding) = 0 then
    raise exception 'query_embedding must not be all zeros' using errcode = 'invalid_parameter_value';
  end if;
  select b.org_id into bot_org_id from public.bots b where b.id = match_bot_chunks.bot_id;
  if bot_org_id is null then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  -- No linked collection: the bot answers from every document of its org.
  select array_agg(bc.collection_id order by bc.collection_id) into collection_ids
  from public.bot_collections bc where bc.bot_id = match_bot_chunks.bot_id;
  return query
  select m.* from public.match_document_chunks(bot_org_id, query_embedding, query_text, match_count, collection_ids) m;
end;
$$;

-- ---------------------------------------------------------------------------
-- 3. Projects and collections are linked within their org only
-- ---------------------------------------------------------------------------

-- The target of the composite keys (collections has had one since
-- 20261123001100 for bot_collections).
alter table public.projects add constraint projects_id_org_id_key unique (id, org_id);

-- Only a write around create_upload_batch can have made a cross-org link; no
-- reader of either org could use it (bots, searches and the dashboard all
-- filter by the row's org), so it is dropped rather than kept in the way of
-- the constraints.
update public.upload_batches b set project_id = null
where b.project_id is not null
  and not exists (select 1 from public.projects p where p.id = b.project_id and p.org_id = b.org_id);
update public.upload_batches b set collection_id = null
where b.collection_id is not null
  and not exists (select 1 from public.collections c where c.id = b.collection_id and c.org_id = b.org_id);
update public.documents d set project_id = null
where d.project_id is not null
  and not exists (select 1 from public.projects p where p.id = d.project_id and p.org_id = d.org_id);
update public.documents d set collection_id = null
where d.collection_id is not null
  and not exists (select 1 from public.collections c where c.id = d.collection_id and c.org_id = d.org_id);
update public.document_chunks k set collection_id = null
where k.collection_id is not null
  and not exists (select 1 from public.collections c where c.id = k.collection_id and c.org_id = k.org_id);

-- Deleting a project or collection clears the link only: a plain "set null"
-- would null org_id too.
--
-- The new keys are added before the old ones are dropped. Adding a key takes
-- SHARE ROW EXCLUSIVE on both tables while it checks the existing rows
-- (reads go on, writes wait); dropping one takes ACCESS EXCLUSIVE on both,
-- which would block reads too, so the drops come last, just before commit.
-- document_chunks is partitioned by org: its key is checked partition by
-- partition, collection_id not null only (about 140 ms for 30,000 chunks in
-- 300 partitions here), and a partition attached later, empty, gets the key
-- when it is attached. Holding org_id, the key also lets deleting a
-- collection clear its chunks' link in its org's partition only, not in
-- every org's (4-12 ms instead of 26-54 ms with 300 orgs here).
alter table public.upload_batches
  add constraint upload_batches_project_fk foreign key (project_id, org_id)
    references public.projects (id, org_id) on delete set null (project_id),
  add constraint upload_batches_collection_fk foreign key (collection_id, org_id)
    references public.collections (id, org_id) on delete set null (collection_id);
alter table public.documents
  add constraint documents_project_fk foreign key (project_id, org_id)
    references public.projects (id, org_id) on delete set null (project_id),
  add constraint documents_collection_fk foreign key (collection_id, org_id)
    references public.collections (id, org_id) on delete set null (collection_id);
alter table public.document_chunks
  add constraint document_chunks_collection_fk foreign key (collection_id, org_id)
    references public.collections (id, org_id) on delete set null (collection_id);

alter table public.upload_batches
  drop constraint upload_batches_project_id_fkey,
  drop constraint upload_batches_collection_id_fkey;
alter table public.documents
  drop constraint documents_project_id_fkey,
  drop constraint documents_collection_id_fkey;
-- Its name ends in 1: the unpartitioned table of 20261123001000 still held
-- document_chunks_collection_id_fkey when the partitioned one was created.
alter table public.document_chunks drop constraint document_chunks_collection_id_fkey1;
