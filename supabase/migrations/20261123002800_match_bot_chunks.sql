-- Retrieval by bot in SQL.
--
-- match_document_chunks filters by org and collections; what a bot answers
-- from (its bot_collections, or every document when it has none) was resolved
-- only inside the chat function, so a dashboard previewing what a bot would
-- retrieve, or any other caller, had to repeat that rule. match_bot_chunks
-- applies it: the bot as the caller sees it (bots.read, or the service role
-- for bot endpoints), then match_document_chunks as the caller, so the same
-- policies decide which chunks come back.

create function public.match_bot_chunks(
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
comment on function public.match_bot_chunks(uuid, extensions.vector, text, integer) is 'match_document_chunks over what a bot answers from: its collections, or every document of its org when it has none. As the caller: the bot must be visible (bots.read) and the chunks readable (knowledge.read); P0002 for a bot the caller cannot see.';
revoke execute on function public.match_bot_chunks(uuid, extensions.vector, text, integer) from public, anon;
grant execute on function public.match_bot_chunks(uuid, extensions.vector, text, integer) to authenticated, service_role;
