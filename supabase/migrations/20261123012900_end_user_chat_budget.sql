-- What one end user can make an org spend on chat, from a review of the
-- chat quota.
--
-- 1. A turn's reservation took two characters a token for the system prompt
-- and the question. Rare Han characters and emoji cost two to four tokens
-- each: 23 concurrent turns of 8,000 such characters on a fresh Free org
-- (200,000 tokens) were let through and metered 754,101 tokens, 3.8 times
-- the quota, not one turn over it. Byte-level BPE never makes more tokens
-- than the text has UTF-8 bytes, so the reservation now counts bytes
-- (octet_length): the quota is again overshot by one turn at most.
--
-- 2. One end user could spend the org's whole month: their turns were
-- limited only to 60 a minute, and 60 turns of about 3,900 tokens used up a
-- Free org's 200,000, every other customer then refused quota_exceeded
-- until the period renewed. A turn naming an external end user (a Telegram
-- chat, an API key's `user`, a voice platform's call) is now refused, before
-- the model is called, once that end user's chat tokens metered over the
-- last 24 hours plus their running turns' reservations reach a tenth of the
-- plan's monthly chat tokens (at least 25,000: six or seven 3,900-token turns on a
-- Free org). It is refused as the end user's rate limit refuses
-- (rate_limited with retry_after: 429 with Retry-After over HTTP, told in a
-- Telegram chat), retry_after being when enough of the window's usage has
-- aged out. A signed-in member's web chat, and an API key's turn naming no
-- end user, are limited by the quota and their own buckets only.
--
-- The end user's usage is read through their conversations (the end user's
-- or the call's, closed ones too) and the chat usage of each over the last 24
-- hours: two new indexes, each built concurrently in a file of its own
-- (20261123012910, 20261123012920); until they exist the lookup is correct,
-- only slower.

-- ---------------------------------------------------------------------------
-- The end user's budget and spend
-- ---------------------------------------------------------------------------

create function private.end_user_chat_budget(monthly_chat_tokens bigint)
returns bigint
language sql
immutable
security invoker
set search_path = ''
as $$ select greatest(end_user_chat_budget.monthly_chat_tokens / 10, 25000) $$;
comment on function private.end_user_chat_budget(bigint) is
  'The chat tokens one end user (a Telegram chat, an API key''s user, a voice platform''s call) may spend per rolling 24 hours: a tenth of the plan''s monthly chat tokens, at least 25,000 (six or seven turns of about 3,900 tokens, so a Free org''s customer is still served).';
revoke execute on function private.end_user_chat_budget(bigint) from public;

create function private.end_user_conversations(
  org_id uuid,
  bot_id uuid,
  channel public.chat_channel,
  external_user_id text,
  external_conversation_id text
)
returns uuid[]
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  ids uuid[];
begin
  -- The end user when one is named (their conversations are keyed by it),
  -- else the call: a call's conversation is keyed by its id alone. Two
  -- statements, so that each reads its index.
  if end_user_conversations.external_user_id is not null then
    select coalesce(pg_catalog.array_agg(c.id), '{}') into ids
    from public.conversations c
    where c.bot_id = end_user_conversations.bot_id and c.channel = end_user_conversations.channel
      and c.external_user_id = end_user_conversations.external_user_id;
  else
    select coalesce(pg_catalog.array_agg(c.id), '{}') into ids
    from public.conversations c
    where c.org_id = end_user_conversations.org_id
      and c.external_conversation_id = end_user_conversations.external_conversation_id
      and c.bot_id = end_user_conversations.bot_id;
  end if;
  return ids;
end;
$$;
comment on function private.end_user_conversations(uuid, uuid, public.chat_channel, text, text) is
  'Every conversation (live or closed) of a bot''s end user on a channel, or of a call when no end user is named: what their chat spend is read through.';
revoke execute on function private.end_user_conversations(uuid, uuid, public.chat_channel, text, text) from public;

create function private.end_user_chat_spend(org_id uuid, conversation_ids uuid[], budget bigint)
returns table (used bigint, reserved bigint, retry_after_seconds integer)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  -- Usage and reservations read in one statement (one snapshot), as the
  -- org's quota check reads them: a turn finishing in between (its
  -- reservation deleted, its usage inserted) is counted once.
  select (
      select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) from public.usage_events u
      where u.conversation_id = any (end_user_chat_spend.conversation_ids) and u.kind = 'chat'
        and u.created_at > pg_catalog.now() - interval '24 hours'
    ), (
      select coalesce(sum(r.tokens), 0) from private.chat_quota_reservations r
      where r.org_id = end_user_chat_spend.org_id and r.conversation_id = any (end_user_chat_spend.conversation_ids)
        and r.created_at > pg_catalog.now() - private.chat_reservation_lifetime()
    )
  into used, reserved;
  if used + reserved < end_user_chat_spend.budget then
    return next;
    return;
  end if;
  -- Over: the wait until the usage that ages out of the window, oldest
  -- first, brings the spend under the budget; running turns' reservations
  -- give way within minutes, so a spend that is mostly reservations waits
  -- a minute.
  select pg_catalog.ceil(extract(epoch from w.created_at + interval '24 hours' - pg_catalog.now()))::integer
  into retry_after_seconds
  from (
    select u.created_at,
      sum(u.tokens_in::bigint + u.tokens_out::bigint) over (order by u.created_at, u.id) as aged
    from public.usage_events u
    where u.conversation_id = any (end_user_chat_spend.conversation_ids) and u.kind = 'chat'
      and u.created_at > pg_catalog.now() - interval '24 hours'
  ) w
  where w.aged > used + reserved - end_user_chat_spend.budget
  order by w.created_at
  limit 1;
  retry_after_seconds := greatest(coalesce(retry_after_seconds, 60), 1);
  return next;
end;
$$;
comment on function private.end_user_chat_spend(uuid, uuid[], bigint) is
  'What an end user''s conversations spent on chat over the last 24 hours (metered prompt and completion tokens, also of turns metered without a stored answer) and hold in running turns'' reservations; once that reaches the budget, in how many seconds enough of it has aged out of the window.';
revoke execute on function private.end_user_chat_spend(uuid, uuid[], bigint) from public;

-- ---------------------------------------------------------------------------
-- A reservation names its question
-- ---------------------------------------------------------------------------

-- Turns of one conversation no longer reserve alike (the question's bytes
-- count), so chat_finish and release_chat_reservation give back the
-- reservation of the question they end, not the conversation's oldest: a
-- short turn finishing first gave back a long running turn's reservation, and
-- the quota and the end user's budget undercounted while it ran. Null on
-- reservations made before (they expire within 10 minutes) and the fallback
-- (the oldest) for callers naming no question.
alter table private.chat_quota_reservations add column question_message_id bigint;
comment on column private.chat_quota_reservations.question_message_id is
  'The user message whose turn holds the reservation (chat_prepare); chat_finish and release_chat_reservation give back that one.';

drop function private.release_chat_reservation(uuid);
create function private.release_chat_reservation(conversation_id uuid, question_message_id bigint default null)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from private.chat_quota_reservations r
  where r.id = (
    select o.id from private.chat_quota_reservations o
    where o.conversation_id = release_chat_reservation.conversation_id
    order by o.question_message_id is not distinct from release_chat_reservation.question_message_id desc, o.id
    limit 1
  );
  return found;
end;
$$;
comment on function private.release_chat_reservation(uuid, bigint) is
  'Gives back the quota reservation of a turn that failed before chat_finish: the one its question (question_message_id) holds, else the conversation''s oldest; whether there was one. Service role (the chat function).';
revoke execute on function private.release_chat_reservation(uuid, bigint) from public;
grant execute on function private.release_chat_reservation(uuid, bigint) to service_role;

-- ---------------------------------------------------------------------------
-- chat_prepare: reservations by bytes, and the end user's budget
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123011100_chat_turn_integrity.sql; only the
-- reservation's prompt estimate and the end user's budget are new.
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
  end_user_budget bigint;
  spend record;
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

  -- An end user's share of the month, per rolling 24 hours: one end user
  -- cannot spend everyone's quota. Refused as their rate limit refuses.
  -- Checked after the limiter (its hit kept, as a quota refusal keeps it):
  -- the limiter bounds how often the lookup runs.
  if chat_prepare.external_user_id is not null or chat_prepare.external_conversation_id is not null then
    end_user_budget := private.end_user_chat_budget(quota.monthly_chat_tokens);
    select s.* into spend
    from private.end_user_chat_spend(
      bot.org_id,
      private.end_user_conversations(bot.org_id, bot.id, chat_prepare.channel, chat_prepare.external_user_id,
        chat_prepare.external_conversation_id),
      end_user_budget) s;
    if spend.retry_after_seconds is not null then
      return jsonb_build_object('ok', false, 'code', 'rate_limited', 'retry_after', spend.retry_after_seconds,
        'limit', 'end_user_daily_tokens',
        'message', format('This end user has used the %s chat tokens they may use in 24 hours; try again in %s seconds.',
          end_user_budget, spend.retry_after_seconds));
    end if;
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
  -- what it spent: the answer's budget, and the prompt's bound (the system
  -- prompt and the question at a token a UTF-8 byte, which byte-level BPE
  -- never exceeds; at two characters a token, rare Han characters and emoji
  -- let concurrent turns overshoot the quota 3.8 times). 8,000 for the rest
  -- of the prompt (functions/_shared/chat/prompt.ts; 4,500 let turns with
  -- three long product descriptions spend 35,000): the history's 2,000; five
  -- chunk sources of at most 450 and three products of at most 300 (each cut
  -- there), 3,150; the bot's name twice (100 characters) and its manager
  -- contact (200) at 4 tokens a character, the most one takes, 1,600; the
  -- rules (for 'auto', every no-answer sentence: about 650) and the messages'
  -- framing, 1,250 (tests/unit/chat-prompt-bound.test.ts builds the worst case).
  reservation := bot.max_tokens + octet_length(bot.system_prompt) + octet_length(message) + 8000;
  insert into private.chat_quota_reservations (org_id, conversation_id, tokens, question_message_id)
  values (bot.org_id, conversation.id, reservation, new_message_id);

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

comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit (an API key''s turn naming its end user, or its call for a voice platform: that bucket too, taken from neither when refused), an org whose metered chat tokens and running turns'' reservations reach its quota, or an end user (a turn naming an external user or a call) whose chat tokens of the last 24 hours and running reservations reach private.end_user_chat_budget (rate_limited, limit end_user_daily_tokens, with retry_after), else continues or opens the conversation (by its id, else the bot''s live one with the external id or the end user; a conversation of an end user or a call only for a turn naming that end user or call), stores the user''s message (with telegram_update_id: links it to the update''s claim, or resumes with the question already linked, neither storing it again nor taking a rate-limit hit), reserves the turn''s tokens (the answer''s budget, a token a byte of system prompt and question, 4,500 for history and sources) and returns the bot, its collections, the last 20 messages (each answer after its question) and whether the org''s embedding tokens allow embedding the question.';
