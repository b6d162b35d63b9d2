-- The quota checks read the usage rollup, not a period of usage events.
--
-- Under its per-org advisory lock (class 7800) chat_prepare summed the billing period's chat usage_events of
-- the org (chat_quota) and its embedding ones (embeddings_allowed) on every turn; require_quota (the knowledge
-- search, every ingestion's first step, retry_document, every document insert, outbound calls) summed both
-- again through plan_usage (chat tokens twice). Sums that grow all month: at 600,000 chat and embedding events
-- in the period, on PGlite, chat_prepare took 129 ms (600,000 events read) and require_quota 242 ms (900,000),
-- and the org's turns queued behind the lock; now 6.8 ms and 2.4 ms (77 events read). private.analytics_usage_hours already holds
-- those sums per UTC quarter hour, kind, bot and key, kept in the writing transaction by the statement
-- trigger on usage_events (20261123002500): private.org_usage_tokens adds its buckets lying wholly inside the
-- window to the raw events of the partial quarter hours at either edge (a period starts at any instant: the
-- stored one rolls forward), at most 30 minutes of events. Invoices (private.metered_usage) still read the raw
-- events; a rollup that differs from them (a bulk load with triggers off or a TRUNCATE of usage_events, both
-- followed by private.rebuild_analytics_rollups) shows in the quotas until the rebuild.
--
-- The rollup row is written by the metering turn's own transaction, the one that deletes its reservation, so
-- chat_prepare's single statement over usage and reservations still counts a turn finishing meanwhile once.

create function private.org_usage_tokens(org_id uuid, kind text, from_at timestamptz, to_at timestamptz)
returns bigint
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  -- The rollup's buckets are aligned on this origin (analytics_usage_changed).
  full_start timestamptz := pg_catalog.date_bin('15 minutes', org_usage_tokens.from_at, timestamptz '2000-01-01 00:00+00');
  full_end timestamptz := pg_catalog.date_bin('15 minutes', org_usage_tokens.to_at, timestamptz '2000-01-01 00:00+00');
  used bigint;
begin
  if full_start < org_usage_tokens.from_at then
    full_start := full_start + interval '15 minutes';
  end if;
  if full_start >= full_end then
    -- No whole bucket inside (a window under 30 minutes): its events alone.
    select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) into used
    from public.usage_events u
    where u.org_id = org_usage_tokens.org_id and u.kind = org_usage_tokens.kind
      and u.created_at >= org_usage_tokens.from_at and u.created_at < org_usage_tokens.to_at;
    return used;
  end if;
  select (
      select coalesce(sum(h.tokens_in + h.tokens_out), 0) from private.analytics_usage_hours h
      where h.org_id = org_usage_tokens.org_id and h.kind = org_usage_tokens.kind
        and h.hour >= full_start and h.hour < full_end
    ) + (
      select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) from public.usage_events u
      where u.org_id = org_usage_tokens.org_id and u.kind = org_usage_tokens.kind
        and u.created_at >= org_usage_tokens.from_at and u.created_at < full_start
    ) + (
      select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) from public.usage_events u
      where u.org_id = org_usage_tokens.org_id and u.kind = org_usage_tokens.kind
        and u.created_at >= full_end and u.created_at < org_usage_tokens.to_at
    )
  into used;
  return used;
end;
$$;
comment on function private.org_usage_tokens(uuid, text, timestamptz, timestamptz) is 'Tokens in + out of the org''s usage events of the kind created in [from_at, to_at): the quarter-hour rollup (private.analytics_usage_hours) for the buckets wholly inside, the raw events of the partial buckets at the edges. What the quotas read (20261123015100).';
revoke execute on function private.org_usage_tokens(uuid, text, timestamptz, timestamptz) from public;

-- Latest definition: 20261123003000_billing_period.sql; only the sum of the period's chat tokens is new.
create or replace function private.chat_quota(org_id uuid)
returns table (plan_id text, monthly_chat_tokens bigint, period_start timestamptz, period_end timestamptz, used_chat_tokens bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  select b.plan_id, b.period_start, b.period_end into chat_quota.plan_id, chat_quota.period_start, chat_quota.period_end
  from private.billing_period(chat_quota.org_id) b;
  select p.monthly_chat_tokens into chat_quota.monthly_chat_tokens from public.plans p where p.id = chat_quota.plan_id;
  chat_quota.used_chat_tokens := private.org_usage_tokens(chat_quota.org_id, 'chat', chat_quota.period_start, chat_quota.period_end);
  return next;
end;
$$;

-- Latest definition: 20261123001600_settings_billing_deletion.sql; only the token sums are new: chat tokens as
-- chat_quota has them, embedding tokens from the rollup. Call minutes and documents are counted as
-- private.metered_usage counts them, which invoices still call with its raw token sums.
create or replace function private.plan_usage(org_id uuid)
returns table (metric text, used bigint, included bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select m.metric, m.used, private.plan_included(q.plan_id, m.metric)
  from private.chat_quota(plan_usage.org_id) q
  cross join lateral (
    select 'chat_tokens' as metric, q.used_chat_tokens as used
    union all
    select 'embedding_tokens', private.org_usage_tokens(plan_usage.org_id, 'embedding', q.period_start, q.period_end)
    union all
    select 'call_minutes', ceil(coalesce(sum(c.duration_seconds), 0) / 60)::bigint
    from public.calls c
    where c.org_id = plan_usage.org_id and c.ended_at >= q.period_start and c.ended_at < q.period_end
      and c.duration_seconds is not null
    union all
    select 'documents', count(*)::bigint
    from public.documents d
    where d.org_id = plan_usage.org_id and d.created_at < q.period_end
  ) m
  order by pg_catalog.array_position(private.plan_metrics(), m.metric);
$$;

-- Latest definition: 20261123014400_other_orgs_ids_unconfirmed.sql; only embeddings_allowed's sum is new.
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
    'embeddings_allowed',
      private.org_usage_tokens(bot.org_id, 'embedding', quota.period_start, quota.period_end)
        < (select p.monthly_embedding_tokens from public.plans p where p.id = quota.plan_id)
  );
end;
$$;
