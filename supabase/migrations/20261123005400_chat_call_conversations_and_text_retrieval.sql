-- Two chat fixes.
--
-- 1. One conversation per voice-platform call. Vapi (and platforms like it)
-- call chat/completions once per turn of a phone call, resending the whole
-- history, with the call's own id in the body (`call.id`). Without
-- x-conversation-id or `user` every turn opened a conversation of its own.
-- conversations.external_conversation_id now holds such a client's id for the
-- conversation, and chat_prepare takes it: the bot's live conversation with
-- that id is continued, or started. A unique index keeps one live
-- conversation per bot and id, so two first turns arriving at once find the
-- same one (as an end user's Telegram chat does). The id is the bot's, so an
-- id another org uses (through its own key, hence its own bots) never reaches
-- this org's conversation.
--
-- 2. A chat turn whose question could not be embedded (the embedding provider
-- down, its retries spent) still retrieves: public.match_document_chunks_by_text
-- is the full-text half of match_document_chunks on its own, ranked and
-- scored as the hybrid search ranks and scores a chunk only the text half
-- found. match_document_chunks itself is unchanged (its vector path is what
-- `npm run bench:rag` measures).

-- ---------------------------------------------------------------------------
-- conversations.external_conversation_id
-- ---------------------------------------------------------------------------

-- Adding the checked column and building the index below each read the
-- table once, under locks the migration's transaction holds to its commit
-- (so writes to conversations wait): seconds on millions of conversations.
alter table public.conversations
  add column external_conversation_id text
    constraint conversations_external_conversation_id_length check (length(external_conversation_id) between 1 and 200);
comment on column public.conversations.external_conversation_id is
  'The client''s own id for the conversation (a voice platform''s call id), unique among the bot''s live conversations; null for others.';
-- What chat_prepare's conflict target names.
create unique index conversations_one_live_per_external_id on public.conversations (bot_id, external_conversation_id)
  where external_conversation_id is not null and status in ('open', 'escalated');

-- ---------------------------------------------------------------------------
-- chat_prepare takes the external id (a new last argument, so a new
-- signature: the old one goes).
-- ---------------------------------------------------------------------------

drop function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text);

-- Latest definition: 20261123001100_bots_and_chat.sql; only external_conversation_id
-- (its checks and the live conversation it keys) is new.
create function private.chat_prepare(
  bot_id uuid,
  conversation_id uuid,
  channel public.chat_channel,
  external_user_id text,
  api_key_id uuid,
  user_message text,
  external_conversation_id text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
-- Arguments are always written chat_prepare.<name>; a bare name is a column
-- (the conflict targets below name the partial indexes' columns).
#variable_conflict use_column
declare
  caller text := auth.role();
  caller_id uuid := auth.uid();
  bot public.bots;
  provider text;
  caller_key public.api_keys;
  conversation public.conversations;
  message text := btrim(chat_prepare.user_message);
  bucket text;
  bucket_limit integer;
  hit record;
  quota record;
  new_message_id bigint;
  history jsonb;
  collections jsonb;
begin
  if caller is distinct from 'authenticated' and caller is distinct from 'service_role' then
    raise exception 'sign in, or call with the service role' using errcode = 'insufficient_privilege';
  end if;
  if chat_prepare.bot_id is null or chat_prepare.channel is null then
    raise exception 'bot_id and channel are required' using errcode = 'invalid_parameter_value';
  end if;
  select * into bot from public.bots b where b.id = chat_prepare.bot_id;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;

  if caller = 'authenticated' then
    perform private.require_permission(bot.org_id, 'chat.use');
    if chat_prepare.channel <> 'web' then
      raise exception 'signed-in users chat on the web channel only' using errcode = 'insufficient_privilege';
    end if;
    if chat_prepare.api_key_id is not null then
      raise exception 'a signed-in user cannot chat as an API key' using errcode = 'insufficient_privilege';
    end if;
    if chat_prepare.external_user_id is not null then
      raise exception 'external_user_id is for end users of a channel; a signed-in user is known by the session'
        using errcode = 'invalid_parameter_value';
    end if;
    if chat_prepare.external_conversation_id is not null then
      raise exception 'external_conversation_id is for API clients; a signed-in user continues a conversation by its id'
        using errcode = 'invalid_parameter_value';
    end if;
  elsif chat_prepare.api_key_id is not null then
    select * into caller_key from public.api_keys k where k.id = chat_prepare.api_key_id;
    if not found or caller_key.org_id <> bot.org_id or caller_key.revoked_at is not null
      or (caller_key.expires_at is not null and caller_key.expires_at <= pg_catalog.now())
      or not ('chat.write' = any (caller_key.scopes)) then
      raise exception 'this API key may not chat with this bot' using errcode = 'insufficient_privilege';
    end if;
  end if;

  if message is null or length(message) not between 1 and 8000 then
    raise exception 'a message has 1 to 8000 characters' using errcode = 'invalid_parameter_value';
  end if;
  if chat_prepare.external_user_id is not null and length(chat_prepare.external_user_id) not between 1 and 200 then
    raise exception 'external_user_id has 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  if chat_prepare.external_conversation_id is not null
    and length(chat_prepare.external_conversation_id) not between 1 and 200 then
    raise exception 'external_conversation_id has 1 to 200 characters' using errcode = 'invalid_parameter_value';
  end if;
  -- Each keys a live conversation of its own (one per end user, one per
  -- external id): a conversation cannot be both.
  if chat_prepare.conversation_id is null and chat_prepare.external_user_id is not null
    and chat_prepare.external_conversation_id is not null then
    raise exception 'a new conversation is keyed by external_user_id or by external_conversation_id, not both'
      using errcode = 'invalid_parameter_value';
  end if;

  -- A given conversation id wins over an external id.
  if chat_prepare.conversation_id is not null then
    select * into conversation from public.conversations c where c.id = chat_prepare.conversation_id for update;
    if not found or conversation.bot_id <> bot.id then
      raise exception 'conversation not found' using errcode = 'no_data_found';
    end if;
    if caller = 'authenticated' and conversation.user_id is distinct from caller_id then
      raise exception 'you can only continue your own conversations' using errcode = 'insufficient_privilege';
    end if;
    if conversation.channel <> chat_prepare.channel then
      raise exception 'the conversation is on the % channel', conversation.channel using errcode = 'invalid_parameter_value';
    end if;
    if chat_prepare.external_user_id is not null and conversation.external_user_id is distinct from chat_prepare.external_user_id then
      raise exception 'the conversation belongs to another end user' using errcode = 'invalid_parameter_value';
    end if;
  elsif chat_prepare.external_conversation_id is not null then
    -- Read (not yet taken) so that a turn on another channel is refused before anything is written.
    select * into conversation from public.conversations c
    where c.bot_id = bot.id and c.external_conversation_id = chat_prepare.external_conversation_id
      and c.status in ('open', 'escalated');
    if found and conversation.channel <> chat_prepare.channel then
      raise exception 'the conversation is on the % channel', conversation.channel using errcode = 'invalid_parameter_value';
    end if;
    conversation := null;
  end if;

  -- Refusals, in this order; none of them writes anything (beyond the rate
  -- limit hit of a request refused for quota: it was let through the limiter).
  if not bot.enabled then
    return jsonb_build_object('ok', false, 'code', 'bot_disabled', 'message', 'This bot is disabled.');
  end if;
  if not (chat_prepare.channel::text = any (bot.channels)) then
    return jsonb_build_object('ok', false, 'code', 'channel_not_enabled',
      'message', format('This bot does not answer on the %s channel.', chat_prepare.channel));
  end if;
  if conversation.id is not null and conversation.status = 'closed' then
    return jsonb_build_object('ok', false, 'code', 'conversation_closed',
      'message', 'This conversation is closed; start a new one.');
  end if;

  if chat_prepare.api_key_id is not null then
    bucket := 'api_key:' || caller_key.id::text;
    bucket_limit := caller_key.rate_limit_per_minute;
  elsif caller = 'authenticated' then
    bucket := 'user:' || caller_id::text;
    bucket_limit := 60;
  else
    bucket := 'bot:' || bot.id::text || ':' || coalesce(chat_prepare.external_user_id, '-');
    bucket_limit := 60;
  end if;
  select * into hit from private.take_rate_limit(bucket, bucket_limit, 60);
  if not hit.allowed then
    return jsonb_build_object('ok', false, 'code', 'rate_limited', 'retry_after', hit.retry_after_seconds,
      'message', format('Too many requests; try again in %s seconds.', hit.retry_after_seconds));
  end if;

  select * into quota from private.chat_quota(bot.org_id);
  if quota.used_chat_tokens >= quota.monthly_chat_tokens then
    return jsonb_build_object('ok', false, 'code', 'quota_exceeded',
      'message', format('The organization has used its %s chat tokens of this period.', quota.monthly_chat_tokens),
      'resets_at', quota.period_end);
  end if;

  if conversation.id is null and chat_prepare.external_conversation_id is not null then
    -- One live conversation per external id (a voice platform's call): take
    -- it, or start it (a concurrent first turn of the same call finds the one
    -- the other started).
    insert into public.conversations (org_id, bot_id, channel, external_conversation_id, api_key_id)
    values (bot.org_id, bot.id, chat_prepare.channel, chat_prepare.external_conversation_id, chat_prepare.api_key_id)
    on conflict (bot_id, external_conversation_id)
      where external_conversation_id is not null and status in ('open', 'escalated')
      do nothing;
    select * into conversation from public.conversations c
    where c.bot_id = bot.id and c.external_conversation_id = chat_prepare.external_conversation_id
      and c.status in ('open', 'escalated')
    for update;
    -- Started on another channel between the check above and now.
    if conversation.channel <> chat_prepare.channel then
      raise exception 'the conversation is on the % channel', conversation.channel using errcode = 'invalid_parameter_value';
    end if;
  elsif conversation.id is null and chat_prepare.external_user_id is not null then
    -- One live conversation per end user: take it, or start it (a concurrent
    -- first message of the same user finds the one the other started).
    insert into public.conversations (org_id, bot_id, channel, external_user_id, api_key_id)
    values (bot.org_id, bot.id, chat_prepare.channel, chat_prepare.external_user_id, chat_prepare.api_key_id)
    on conflict (bot_id, channel, external_user_id)
      where external_user_id is not null and status in ('open', 'escalated')
      do nothing;
    select * into conversation from public.conversations c
    where c.bot_id = bot.id and c.channel = chat_prepare.channel
      and c.external_user_id = chat_prepare.external_user_id and c.status in ('open', 'escalated')
    for update;
  elsif conversation.id is null then
    insert into public.conversations (org_id, bot_id, channel, user_id, api_key_id)
    values (bot.org_id, bot.id, chat_prepare.channel, case when caller = 'authenticated' then caller_id end, chat_prepare.api_key_id)
    returning * into conversation;
  end if;

  insert into public.messages (org_id, conversation_id, role, content)
  values (bot.org_id, conversation.id, 'user', message)
  returning id into new_message_id;

  select coalesce(jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content) order by h.id), '[]'::jsonb)
  into history
  from (
    select m.id, m.role, m.content from public.messages m
    where m.conversation_id = conversation.id and m.id < new_message_id
    order by m.id desc
    limit 20
  ) h;
  select jsonb_agg(bc.collection_id order by bc.collection_id) into collections
  from public.bot_collections bc where bc.bot_id = bot.id;
  select m.provider into provider from public.chat_models m where m.id = bot.model;

  return jsonb_build_object(
    'ok', true,
    'org_id', bot.org_id,
    'bot', jsonb_build_object(
      'id', bot.id, 'name', bot.name, 'slug', bot.slug, 'system_prompt', bot.system_prompt,
      'greeting', bot.greeting, 'language', bot.language, 'model', bot.model, 'model_provider', provider,
      'temperature', bot.temperature, 'max_tokens', bot.max_tokens, 'manager_contact', bot.manager_contact,
      'escalation_action', bot.escalation_action),
    'collection_ids', collections,
    'conversation_id', conversation.id,
    'conversation_status', conversation.status,
    'user_message_id', new_message_id,
    'history', history
  );
end;
$$;
comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit or an org over its chat quota, else continues or opens the conversation (by its id, else the bot''s live one with the external id or the end user), stores the user''s message and returns the bot, its collections and the last 20 messages.';
revoke execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text) from public;
grant execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- public.match_document_chunks_by_text
-- ---------------------------------------------------------------------------

create function public.match_document_chunks_by_text(
  org_id uuid,
  query_text text,
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
  -- At most this many chunks hold the words searched for (as match_document_chunks).
  text_budget constant integer := 1000;
  terms text[];
  words tsquery;
begin
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  -- The definer helpers apply the chunks' read policy: nothing for a caller
  -- who may not read the org's knowledge.
  terms := private.selective_query_terms(match_document_chunks_by_text.org_id, query_text, text_budget);
  if terms is null then
    return;
  end if;
  select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(t), ' | '))
  into words
  from unnest(terms) t;

  return query
  select t.id, t.document_id, d.name, t.collection_id, t.page_start, t.page_end, t.content,
    (1.0 / (60 + t.rank))::double precision, null::integer, t.rank
  from private.text_matches(match_document_chunks_by_text.org_id, words, collection_ids, match_count) t
  join public.documents d on d.id = t.document_id
  order by t.rank;
end;
$$;
comment on function public.match_document_chunks_by_text(uuid, text, integer, uuid[]) is 'The full-text half of match_document_chunks on its own, for when the query has no embedding (the embedding provider failed): the chunks holding the query''s selective words, ranked by ts_rank_cd and scored as RRF scores a text-only match (vector_rank null). As the caller: only chunks the caller may read.';
revoke execute on function public.match_document_chunks_by_text(uuid, text, integer, uuid[]) from public, anon;
grant execute on function public.match_document_chunks_by_text(uuid, text, integer, uuid[]) to authenticated, service_role;
