-- Chat turn integrity, from a review of the chat turn.
--
-- 1. An answer chat_finish refused (over 32,000 characters, or holding a
-- U+0000) was streamed in full and then neither stored nor metered: a free,
-- repeatable quota dodge. The chat function now stops reading the model at
-- 32,000 characters (finish reason length) and drops U+0000; should
-- chat_finish refuse a turn all the same, its tokens are metered without a
-- message (private.chat_meter_unstored_turn, new), as a turn whose
-- conversation was deleted is (private.chat_meter_without_conversation).
--
-- 2. A turn naming by id an end user's conversation (external_user_id) or a
-- voice call's (external_conversation_id) without naming that end user or
-- call was let through: an API key's caller appended to another end user's
-- conversation, could escalate it and skipped the end user's bucket.
-- chat_prepare now refuses it as it refuses another end user's.
--
-- 3. Two turns at once in one conversation are stored Q1, Q2, A1, A2, and
-- the history (the last 20 messages by id) then showed the model A1 as Q2's
-- answer on every later turn. An answer now records its question
-- (messages.reply_to_message_id, set by chat_finish from the prepared
-- turn), and chat_prepare's history puts each answer right after it.

-- ---------------------------------------------------------------------------
-- The question an answer answers
-- ---------------------------------------------------------------------------

-- Readable like the table's other columns (select is granted on the whole
-- table to authenticated; RLS unchanged). No foreign key: chat_finish checks
-- that it names a question of the same conversation, messages are deleted
-- only with their conversation, and a self-referencing key would make every
-- deleted message look up its answers. The check is added `not valid` and
-- left so: every existing row is null, new rows are checked, and validating
-- would scan the table under this statement's ACCESS EXCLUSIVE lock, as would
-- an index (the history reads the conversation's index and sorts 20 rows).
alter table public.messages
  add column reply_to_message_id bigint,
  add constraint messages_reply_to_assistant check (reply_to_message_id is null or role = 'assistant') not valid;
comment on column public.messages.reply_to_message_id is
  'The question (a user message of the same conversation) an answer answers; null for questions and answers stored before it was recorded.';

-- ---------------------------------------------------------------------------
-- chat_prepare: an end user's (or a call's) conversation only for them, and
-- each answer after its question in the history.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123010500_end_user_limits_and_telegram_lease.sql;
-- only the conversation's owner check and the history's order are new.
create or replace function private.chat_prepare(
  bot_id uuid,
  conversation_id uuid,
  channel public.chat_channel,
  external_user_id text,
  api_key_id uuid,
  user_message text,
  external_conversation_id text default null,
  telegram_update_id bigint default null
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
  end_user_bucket text;
  resumed_message_id bigint;
  hit record;
  quota record;
  new_message_id bigint;
  history jsonb;
  collections jsonb;
  reserved bigint;
  reservation integer;
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
  if chat_prepare.telegram_update_id is not null then
    if caller <> 'service_role' or chat_prepare.channel <> 'telegram' or chat_prepare.api_key_id is not null
      or chat_prepare.external_user_id is null or chat_prepare.conversation_id is not null
      or chat_prepare.external_conversation_id is not null then
      raise exception 'telegram_update_id is for the Telegram webhook''s turns (the service role, the telegram channel, the chat as external_user_id)'
        using errcode = 'invalid_parameter_value';
    end if;
    select u.question_message_id into resumed_message_id from private.telegram_updates u
    where u.bot_id = bot.id and u.update_id = chat_prepare.telegram_update_id;
    if not found then
      raise exception 'the Telegram update is not claimed' using errcode = 'no_data_found';
    end if;
  end if;

  -- The org's turns take the quota check and their reservation one at a
  -- time, so a turn counts the reservations of every turn let through before
  -- it. Taken before any conversation row is locked (below, or by a
  -- concurrent turn of the same conversation), so the two never wait on each
  -- other in opposite orders.
  perform pg_catalog.pg_advisory_xact_lock(7800, pg_catalog.hashtext(bot.org_id::text));

  -- A Telegram update claimed again after its worker died mid-turn: the
  -- question it stored, in its conversation (null: the conversation, and the
  -- question with it, were deleted since; the turn starts afresh).
  if resumed_message_id is not null then
    select c.* into conversation from public.messages m join public.conversations c on c.id = m.conversation_id
    where m.id = resumed_message_id
    for update of c;
    if not found then
      resumed_message_id := null;
    end if;
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
    -- An end user's conversation (or a voice call's) is continued only by a
    -- turn naming that end user (that call): one naming none would append to
    -- it, escalate it and skip the end user's bucket.
    if conversation.external_user_id is distinct from chat_prepare.external_user_id
      or (conversation.external_conversation_id is not null
        and conversation.external_conversation_id is distinct from chat_prepare.external_conversation_id) then
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
    -- A voice platform's turns name their call (external_conversation_id), not
    -- a user: the call is the end user there.
    if chat_prepare.external_user_id is not null then
      end_user_bucket := bucket || ':user:' || chat_prepare.external_user_id;
    elsif chat_prepare.external_conversation_id is not null then
      end_user_bucket := bucket || ':call:' || chat_prepare.external_conversation_id;
    end if;
  elsif caller = 'authenticated' then
    bucket := 'user:' || caller_id::text;
    bucket_limit := 60;
  else
    bucket := 'bot:' || bot.id::text || ':' || coalesce(chat_prepare.external_user_id, '-');
    bucket_limit := 60;
  end if;
  -- A resumed question was let through when it was first stored.
  if resumed_message_id is null then
    if end_user_bucket is null then
      select * into hit from private.take_rate_limit(bucket, bucket_limit, 60);
    else
      -- The end user's bucket first: an end user over its limit is refused
      -- without a hit on the key's. A refusal by the key's rolls the end
      -- user's hit back (the block's subtransaction; hit keeps the refusal).
      begin
        select * into hit from private.take_rate_limit(end_user_bucket, 60, 60);
        if hit.allowed then
          select * into hit from private.take_rate_limit(bucket, bucket_limit, 60);
          if not hit.allowed then
            raise exception 'the API key is over its rate limit' using errcode = 'PT429';
          end if;
        end if;
      exception when sqlstate 'PT429' then
        null;
      end;
    end if;
    if not hit.allowed then
      return jsonb_build_object('ok', false, 'code', 'rate_limited', 'retry_after', hit.retry_after_seconds,
        'message', format('Too many requests; try again in %s seconds.', hit.retry_after_seconds));
    end if;
  end if;

  -- Usage and reservations read in one statement (one snapshot): a turn
  -- finishing in between would otherwise be in neither.
  select q.*, (
    select coalesce(sum(r.tokens), 0) from private.chat_quota_reservations r
    where r.org_id = bot.org_id and r.created_at > pg_catalog.now() - private.chat_reservation_lifetime()
  ) as reserved_tokens
  into quota
  from private.chat_quota(bot.org_id) q;
  reserved := quota.reserved_tokens;
  if quota.used_chat_tokens + reserved >= quota.monthly_chat_tokens then
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

  if resumed_message_id is not null then
    new_message_id := resumed_message_id;
  else
    insert into public.messages (org_id, conversation_id, role, content)
    values (bot.org_id, conversation.id, 'user', message)
    returning id into new_message_id;
    if chat_prepare.telegram_update_id is not null then
      update private.telegram_updates u set question_message_id = new_message_id
      where u.bot_id = bot.id and u.update_id = chat_prepare.telegram_update_id;
    end if;
  end if;

  -- What the turn may spend, held against the quota until chat_finish meters
  -- what it spent: the answer's budget, and the prompt's estimate (the system
  -- prompt and the question at two characters a token, which overcounts most
  -- text; 4,500 for the history's 2,000-token budget, five 400-token sources
  -- and the products).
  reservation := bot.max_tokens + (length(bot.system_prompt) + length(message)) / 2 + 4500;
  insert into private.chat_quota_reservations (org_id, conversation_id, tokens)
  values (bot.org_id, conversation.id, reservation);

  -- Each answer right after its question: two turns at once store Q1, Q2,
  -- A1, A2, and in that order the model would take A1 for Q2's answer.
  select coalesce(jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content)
    order by coalesce(h.reply_to_message_id, h.id), h.id), '[]'::jsonb)
  into history
  from (
    select m.id, m.role, m.content, m.reply_to_message_id from public.messages m
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
    'history', history,
    -- Whether the question may be embedded: the plan's embedding tokens are
    -- enforced before every model call (20261123009900), and a turn over them
    -- answers from a full-text search instead of being refused.
    'embeddings_allowed', (
      select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0)
      from public.usage_events u
      where u.org_id = bot.org_id and u.kind = 'embedding'
        and u.created_at >= quota.period_start and u.created_at < quota.period_end
    ) < (select p.monthly_embedding_tokens from public.plans p where p.id = quota.plan_id)
  );
end;
$$;

comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit (an API key''s turn naming its end user, or its call for a voice platform: that bucket too, taken from neither when refused) or an org whose metered chat tokens and running turns'' reservations reach its quota, else continues or opens the conversation (by its id, else the bot''s live one with the external id or the end user; a conversation of an end user or a call only for a turn naming that end user or call), stores the user''s message (with telegram_update_id: links it to the update''s claim, or resumes with the question already linked, neither storing it again nor taking a rate-limit hit), reserves the turn''s tokens and returns the bot, its collections, the last 20 messages (each answer after its question) and whether the org''s embedding tokens allow embedding the question.';

-- ---------------------------------------------------------------------------
-- chat_finish records the question it answers (a new last argument, so a new
-- signature: the old one goes).
-- ---------------------------------------------------------------------------

drop function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid);

-- Latest definition: 20261123007800_chat_quota_reservations.sql; only
-- question_message_id is new.
create function private.chat_finish(
  conversation_id uuid,
  content text,
  tokens_in integer,
  tokens_out integer,
  latency_ms integer,
  model text,
  citations jsonb,
  escalation_reason text default null,
  finish_reason text default 'stop',
  api_key_id uuid default null,
  question_message_id bigint default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller text := auth.role();
  conversation public.conversations;
  bot public.bots;
  reason text := nullif(btrim(chat_finish.escalation_reason), '');
  cited jsonb := coalesce(chat_finish.citations, '[]'::jsonb);
  metered_key uuid;
  new_message_id bigint;
  escalating boolean := false;
begin
  if caller is distinct from 'authenticated' and caller is distinct from 'service_role' then
    raise exception 'sign in, or call with the service role' using errcode = 'insufficient_privilege';
  end if;
  select * into conversation from public.conversations c where c.id = chat_finish.conversation_id for update;
  if not found then
    raise exception 'conversation not found' using errcode = 'no_data_found';
  end if;
  if caller = 'authenticated' then
    perform private.require_permission(conversation.org_id, 'chat.use');
    if conversation.user_id is distinct from auth.uid() then
      raise exception 'you can only answer in your own conversations' using errcode = 'insufficient_privilege';
    end if;
    -- A user's turn is metered to the user; only the service (the chat function) names the key that called.
    if chat_finish.api_key_id is not null then
      raise exception 'a signed-in user cannot answer as an API key' using errcode = 'insufficient_privilege';
    end if;
  end if;

  if chat_finish.finish_reason is null
     or chat_finish.finish_reason not in ('stop', 'length', 'content_filter', 'interrupted', 'error') then
    raise exception 'finish_reason is stop, length, content_filter, interrupted or error' using errcode = 'invalid_parameter_value';
  end if;
  -- Empty is what the model gave (or all the client waited for) and is stored as such; blank text is a
  -- caller's slip. The message is the one callers have matched on since 20261123001100.
  if chat_finish.content is null or length(chat_finish.content) > 32000
     or (length(chat_finish.content) > 0 and length(btrim(chat_finish.content)) = 0) then
    raise exception 'an answer has 1 to 32000 characters' using errcode = 'invalid_parameter_value',
      hint = 'An answer the model left empty is passed as the empty string, with its finish reason.';
  end if;
  if chat_finish.tokens_in is null or chat_finish.tokens_in < 0 or chat_finish.tokens_out is null or chat_finish.tokens_out < 0 then
    raise exception 'tokens_in and tokens_out are counts (0 or more)' using errcode = 'invalid_parameter_value';
  end if;
  if chat_finish.latency_ms < 0 then
    raise exception 'latency_ms must not be negative' using errcode = 'invalid_parameter_value';
  end if;
  if chat_finish.model is not null and length(chat_finish.model) not between 1 and 100 then
    raise exception 'model has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if jsonb_typeof(cited) <> 'array' or jsonb_array_length(cited) > 50 then
    raise exception 'citations must be a list of at most 50 entries' using errcode = 'invalid_parameter_value';
  end if;
  if chat_finish.escalation_reason is not null and (reason is null or length(reason) > 500) then
    raise exception 'an escalation reason has 1 to 500 characters' using errcode = 'invalid_parameter_value';
  end if;

  if chat_finish.question_message_id is not null and not exists (
    select 1 from public.messages m
    where m.id = chat_finish.question_message_id and m.conversation_id = conversation.id and m.role = 'user'
  ) then
    raise exception 'question_message_id names no question of the conversation' using errcode = 'invalid_parameter_value';
  end if;

  -- The calling key, if it is (still) one of the conversation's org: a key deleted mid-turn meters to no key
  -- rather than failing the turn, and a key of another org is never charged. Callers that name no key (the
  -- eight-argument form, from before the key was passed) meter to the conversation's key, as they did.
  if chat_finish.api_key_id is not null then
    select k.id into metered_key from public.api_keys k
    where k.id = chat_finish.api_key_id and k.org_id = conversation.org_id;
  else
    metered_key := conversation.api_key_id;
  end if;

  select * into bot from public.bots b where b.id = conversation.bot_id;

  -- Stored even if an admin closed the conversation meanwhile: the tokens were spent.
  insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, model, citations,
                               finish_reason, reply_to_message_id)
  values (conversation.org_id, conversation.id, 'assistant', chat_finish.content, chat_finish.tokens_in,
          chat_finish.tokens_out, chat_finish.latency_ms, chat_finish.model, cited, chat_finish.finish_reason,
          chat_finish.question_message_id)
  returning id into new_message_id;

  perform private.record_usage(
    conversation.org_id, 'chat', coalesce(chat_finish.model, bot.model), chat_finish.tokens_in, chat_finish.tokens_out,
    null, metered_key, conversation.bot_id, conversation.id, conversation.user_id);

  -- The turn's reservation gives way to the usage just metered, in the same
  -- transaction, so the quota check never counts the turn twice (nor not at
  -- all). Turns of one conversation reserve alike, so the oldest one goes.
  delete from private.chat_quota_reservations r
  where r.id = (
    select o.id from private.chat_quota_reservations o
    where o.conversation_id = conversation.id
    order by o.id
    limit 1
  );

  -- Escalated once: an escalated (or closed) conversation is not escalated again.
  if reason is not null and conversation.status = 'open' then
    escalating := true;
    update public.conversations c
    set status = 'escalated', escalated_at = pg_catalog.now(), escalation_reason = reason
    where c.id = conversation.id
    returning * into conversation;
    if bot.escalation_action in ('notify', 'transfer') then
      perform private.emit_event(conversation.org_id, 'conversation.escalated', jsonb_build_object(
        'conversation_id', conversation.id, 'bot_id', conversation.bot_id, 'channel', conversation.channel,
        'reason', reason, 'action', bot.escalation_action));
    end if;
  end if;

  return jsonb_build_object('message_id', new_message_id, 'conversation_status', conversation.status, 'escalated', escalating);
end;
$$;
comment on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid, bigint) is 'After the model answered (or the client went away mid-answer, or the model failed): stores the answer with its finish reason (empty when the model gave no text) and the question it answers, meters the tokens (kind chat) to the calling API key, releases the turn''s quota reservation and, with an escalation reason, escalates the conversation once and runs the bot''s escalation action.';
revoke execute on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid, bigint) from public;
grant execute on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid, bigint)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- A turn chat_finish refused is metered all the same
-- ---------------------------------------------------------------------------

-- The model answered and the client read it: a turn that cannot be stored
-- must not be free. Called by the chat function only once chat_finish failed
-- (its transaction rolled back, so nothing was metered); the chat function
-- then gives the reservation back.
create function private.chat_meter_unstored_turn(
  conversation_id uuid,
  model text,
  tokens_in integer,
  tokens_out integer,
  api_key_id uuid default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  conversation public.conversations;
  bot public.bots;
  metered_key uuid;
begin
  if auth.role() is distinct from 'service_role' then
    raise exception 'only the service role meters a turn it could not store' using errcode = 'insufficient_privilege';
  end if;
  if chat_meter_unstored_turn.tokens_in is null or chat_meter_unstored_turn.tokens_in < 0
     or chat_meter_unstored_turn.tokens_out is null or chat_meter_unstored_turn.tokens_out < 0 then
    raise exception 'tokens_in and tokens_out are counts (0 or more)' using errcode = 'invalid_parameter_value';
  end if;
  select * into conversation from public.conversations c where c.id = chat_meter_unstored_turn.conversation_id;
  if not found then
    raise exception 'conversation not found' using errcode = 'no_data_found';
  end if;
  select * into bot from public.bots b where b.id = conversation.bot_id;
  -- As chat_finish meters: the calling key if it is (still) the org's, else the conversation's when none is named.
  if chat_meter_unstored_turn.api_key_id is not null then
    select k.id into metered_key from public.api_keys k
    where k.id = chat_meter_unstored_turn.api_key_id and k.org_id = conversation.org_id;
  else
    metered_key := conversation.api_key_id;
  end if;
  perform private.record_usage(
    conversation.org_id, 'chat',
    -- A model name chat_finish refused is not one to keep: the bot's is.
    case when length(chat_meter_unstored_turn.model) between 1 and 100 then chat_meter_unstored_turn.model else bot.model end,
    chat_meter_unstored_turn.tokens_in, chat_meter_unstored_turn.tokens_out,
    null, metered_key, conversation.bot_id, conversation.id, conversation.user_id);
end;
$$;
comment on function private.chat_meter_unstored_turn(uuid, text, integer, integer, uuid) is
  'Meters (kind chat) a turn whose answer chat_finish refused to store: to the conversation''s org, bot and user and the calling key (if the org''s), as chat_finish would; stores no message and leaves the reservation to the caller. Service role (the chat function), only after chat_finish failed.';
revoke execute on function private.chat_meter_unstored_turn(uuid, text, integer, integer, uuid) from public;
grant execute on function private.chat_meter_unstored_turn(uuid, text, integer, integer, uuid) to service_role;
