-- Another org's bot, conversation and invitation ids are not confirmed to exist, and every "not found" of
-- these functions is PT404.
--
-- 20261123008500 made another org's webhook endpoints and API keys answer exactly as unknown ids; these still
-- told them apart: a signed-in user (another org's member or owner, or nobody's) naming another org's bot got
-- 42501 from chat_prepare (POST /functions/v1/chat: 403 "You may not chat with this bot."), from
-- check_bot_telegram (begin_bot_telegram_connect, set_bot_telegram: POST /chat/bots/<id>/telegram, 403 "Only
-- admins can connect Telegram.") and from clear_bot_telegram, and naming another org's conversation or
-- invitation, 42501 from close_conversation and pending_invitation (revoke_invitation, resend_invitation), where
-- an unknown id got P0002: a probe for which ids exist. set_bot_telegram, close_conversation and
-- pending_invitation also locked the other org's row before refusing, so a probe could hold up its writes. Now
-- a row of an org not among private.readable_org_ids('org.read') is answered as a missing one, and is not
-- locked (the locking read names the caller's orgs, or an unlocked read is checked first); a member of the org
-- without the permission still gets 42501. chat_prepare's check is a signed-in user's only: the service role's
-- callers (an API key, whose org the key check compares, and the Telegram webhook) name no user. chat_prepare
-- now locks a conversation only if it is its bot's.
--
-- PostgREST answers P0002 with HTTP 500 (of the P0 class only P0001 is 400; PTxxx is status xxx), so a public
-- RPC's "not found" is PT404, same message: here for the bot, the conversation and the claimed Telegram
-- update in chat_prepare, the bot in check_bot_telegram and clear_bot_telegram, the conversation in
-- close_conversation, the invitation in pending_invitation and accept_invitation. The edge functions map PT404
-- as P0002 (functions/_shared/pg-errors.ts: 404 not_found).

-- Latest definition: 20261123012900_end_user_chat_budget.sql; only the guard on the bot (another org's is
-- not found for a signed-in user), the conversation's lock (its bot's only) and PT404 are new.
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
  -- A signed-in user is not told that another org's bot exists.
  if not found
    or (caller = 'authenticated' and not (bot.org_id = any (array(select private.readable_org_ids('org.read'))))) then
    raise exception 'bot not found' using errcode = 'PT404';
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
      raise exception 'the Telegram update is not claimed' using errcode = 'PT404';
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
    -- Another bot's conversation (maybe another org's) is neither locked nor told apart from a missing one.
    select * into conversation from public.conversations c
    where c.id = chat_prepare.conversation_id and c.bot_id = bot.id
    for update;
    if not found then
      raise exception 'conversation not found' using errcode = 'PT404';
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
revoke execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint) from public;
grant execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint)
  to authenticated, service_role;

-- Latest definition: 20261123012700_telegram_connect_outside_transaction.sql; only the guard (another
-- org's bot is not found) and PT404 are new. begin_bot_telegram_connect and set_bot_telegram check through it.
create or replace function private.check_bot_telegram(bot_id uuid, bot_token text)
returns public.bots
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  select * into target from public.bots b where b.id = check_bot_telegram.bot_id;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  if check_bot_telegram.bot_token is null or check_bot_telegram.bot_token !~ '^[0-9]{5,15}:[A-Za-z0-9_-]{30,100}$' then
    raise exception 'not a Telegram bot token' using errcode = 'invalid_parameter_value',
      hint = 'The token @BotFather gives: digits, a colon, then 30 to 100 letters, digits, _ or -.';
  end if;
  if exists (
    select 1 from private.bot_telegram t
    where t.bot_token = check_bot_telegram.bot_token and t.bot_id <> target.id
  ) then
    raise exception 'this Telegram bot is already connected to another bot' using errcode = 'unique_violation';
  end if;
  return target;
end;
$$;
comment on function private.check_bot_telegram(uuid, text) is 'The bot set_bot_telegram would connect, after its checks (the bot, bots.manage, the token''s format, no other bot holding the token); writes nothing.';
revoke execute on function private.check_bot_telegram(uuid, text) from public, anon, authenticated, service_role;

-- Latest definition: 20261123012700_telegram_connect_outside_transaction.sql; only the guard and PT404 are
-- new. Grants as in 20261123001100.
create or replace function private.clear_bot_telegram(bot_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  select * into target from public.bots b where b.id = clear_bot_telegram.bot_id;
  if not found or not (target.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'bot not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  perform private.refuse_during_telegram_connect(target.id);
  delete from private.bot_telegram t where t.bot_id = target.id;
  if not found then
    return false;
  end if;
  update public.bots b set telegram_connected_at = null where b.id = target.id;
  return true;
end;
$$;
revoke execute on function private.clear_bot_telegram(uuid) from public;
grant execute on function private.clear_bot_telegram(uuid) to authenticated;

-- Latest definition: 20261123012700_telegram_connect_outside_transaction.sql; only the lock, now taken on a
-- bot of an org the caller reads only, is new.
create or replace function private.set_bot_telegram(bot_id uuid, bot_token text, webhook_secret text)
returns table (secret_token text, webhook_path text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  -- No key update: two stores of the bot still wait for each other, but a call's speech metered meanwhile still
  -- takes the bot's key share (private.meter_call_speech skips a locked bot and meters the seconds to no bot).
  -- Only a bot of an org the caller reads: another org's is not locked (check_bot_telegram then answers
  -- it as a missing one).
  select * into target from public.bots b
  where b.id = set_bot_telegram.bot_id and b.org_id = any (array(select private.readable_org_ids('org.read')))
  for no key update;
  target := private.check_bot_telegram(set_bot_telegram.bot_id, set_bot_telegram.bot_token);
  -- A connect's own store (finish_bot_telegram_connect) ended its lease first.
  perform private.refuse_during_telegram_connect(target.id, set_bot_telegram.bot_token);

  insert into private.bot_telegram as t (bot_id, org_id, bot_token, secret_token)
  values (target.id, target.org_id, set_bot_telegram.bot_token, set_bot_telegram.webhook_secret)
  on conflict on constraint bot_telegram_pkey do update
    set bot_token = excluded.bot_token, secret_token = excluded.secret_token, created_at = pg_catalog.now();
  -- Connecting Telegram is asking for the channel: switch it on.
  update public.bots b
  set telegram_connected_at = pg_catalog.now(),
      channels = case when 'telegram' = any (b.channels) then b.channels else b.channels || array['telegram'] end
  where b.id = target.id;

  return query select set_bot_telegram.webhook_secret, '/functions/v1/chat/telegram/' || target.id::text;
end;
$$;
comment on function private.set_bot_telegram(uuid, text, text) is 'Connects a Telegram bot with this webhook secret, checking as check_bot_telegram does under the bot''s lock (public.set_bot_telegram''s fresh secret, and finish_bot_telegram_connect''s registered one).';
revoke execute on function private.set_bot_telegram(uuid, text, text) from public, anon;
grant execute on function private.set_bot_telegram(uuid, text, text) to authenticated;

-- Latest definition: 20261123001100_bots_and_chat.sql; only the guard in the lock and PT404 are new.
create or replace function private.close_conversation(conversation_id uuid)
returns public.conversations
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.conversations;
begin
  -- Another org's conversation is neither locked nor told apart from a missing one.
  select * into target from public.conversations c
  where c.id = close_conversation.conversation_id and c.org_id = any (array(select private.readable_org_ids('org.read')))
  for update;
  if not found then
    raise exception 'conversation not found' using errcode = 'PT404';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  if target.status <> 'closed' then
    update public.conversations c set status = 'closed', closed_at = pg_catalog.now()
    where c.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;
revoke execute on function private.close_conversation(uuid) from public;
grant execute on function private.close_conversation(uuid) to authenticated;

-- Latest definition: 20261123008400_voice_ids_platform_owned.sql; only the guard on the unlocked read (before
-- any lock, the caller's membership's included) and PT404 are new. revoke_invitation and resend_invitation
-- read through it.
create or replace function private.pending_invitation(invitation_id uuid)
returns public.invitations
language plpgsql
security definer
set search_path = ''
as $$
declare
  invitation public.invitations;
  caller_role public.org_role;
begin
  -- Another org's invitation is neither locked nor told apart from a missing one.
  select * into invitation from public.invitations i where i.id = pending_invitation.invitation_id;
  if not found or not (invitation.org_id = any (array(select private.readable_org_ids('org.read')))) then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  perform private.lock_own_membership(invitation.org_id);
  select * into invitation from public.invitations i where i.id = pending_invitation.invitation_id for update;
  if not found then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  caller_role := private.require_permission(invitation.org_id, 'members.invite');
  -- The invite_member rule: resending issues a token for the invitation's
  -- role, so it must be a role the caller could grant.
  if invitation.role > caller_role then
    raise exception 'this invitation is for a role above your own (%)', caller_role
      using errcode = 'insufficient_privilege';
  end if;
  if invitation.accepted_at is not null then
    raise exception 'the invitation was already accepted' using errcode = 'invalid_parameter_value';
  end if;
  return invitation;
end;
$$;

-- Latest definition: 20261123011400_retry_safe_actions.sql; only PT404 is new. Grants as in
-- 20261123000400.
create or replace function private.accept_invitation(token text)
returns public.memberships
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller_id uuid := private.require_user();
  invitation public.invitations;
  joined public.memberships;
  caller_email text;
  caller_email_confirmed_at timestamptz;
begin
  select i.* into invitation
  from private.invitation_tokens t join public.invitations i on i.id = t.invitation_id
  where t.token_hash = pg_catalog.sha256(pg_catalog.convert_to(coalesce(accept_invitation.token, ''), 'UTF8'))
  for update of i;
  if not found then
    raise exception 'invitation not found' using errcode = 'PT404';
  end if;
  if invitation.accepted_at is not null then
    -- The acceptor sending it again (an answer lost, an effect run twice) gets the first answer: the membership.
    if invitation.accepted_by = caller_id then
      select m.* into joined from public.memberships m
      where m.org_id = invitation.org_id and m.user_id = caller_id;
      if found then
        return joined;
      end if;
    end if;
    raise exception 'this invitation was already used' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.revoked_at is not null then
    raise exception 'this invitation was revoked' using errcode = 'invalid_parameter_value';
  end if;
  if invitation.expires_at <= pg_catalog.now() then
    raise exception 'this invitation has expired' using errcode = 'invalid_parameter_value',
      hint = 'Ask for a new one.';
  end if;
  -- The address Supabase Auth holds for the caller, and whether they proved
  -- they own it; the JWT's e-mail claim says neither.
  select u.email, u.email_confirmed_at into caller_email, caller_email_confirmed_at
  from auth.users u where u.id = caller_id;
  if pg_catalog.lower(coalesce(caller_email, '')) <> invitation.email then
    raise exception 'this invitation is for another e-mail address' using errcode = 'insufficient_privilege';
  end if;
  if caller_email_confirmed_at is null then
    raise exception 'confirm your e-mail address before accepting an invitation' using errcode = 'insufficient_privilege',
      hint = 'Open the confirmation link sent to that address, then accept the invitation again.';
  end if;
  if exists (select 1 from public.memberships m where m.org_id = invitation.org_id and m.user_id = caller_id) then
    raise exception 'you are already a member of this organization' using errcode = 'unique_violation';
  end if;

  -- The token's hash stays, so a second use is told "already used" rather than "not found".
  update public.invitations set accepted_at = pg_catalog.now(), accepted_by = caller_id
  where id = invitation.id;
  insert into public.memberships (org_id, user_id, role)
  values (invitation.org_id, caller_id, invitation.role)
  returning * into joined;
  return joined;
end;
$$;
grant execute on function private.accept_invitation(text) to authenticated;
