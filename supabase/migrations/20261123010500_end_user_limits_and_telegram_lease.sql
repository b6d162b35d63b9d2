-- Per end user rate limits behind an API key, and a lease on Telegram claims.
--
-- 1. A turn with an API key took only the key's bucket (api_key:<id>), even
-- when it named its end user (chat/completions' `user`): one abusive caller
-- behind a voice platform's shared key spent the key's minute and every
-- other caller got 429. Such a turn now also takes the end user's bucket,
-- api_key:<id>:user:<end user> at 60 a minute: the key names the end user,
-- so the key is the name's namespace (another key's, or a Telegram chat's,
-- user of the same name is someone else). The end user's is taken first, so
-- an end user over its limit is refused without touching the key's; when the
-- key's then refuses, the end user's hit is rolled back with it (a
-- subtransaction): a refusal takes nothing from either bucket. The
-- Retry-After is the refusing bucket's.
--
-- 2. A Telegram update's claim (private.claim_telegram_update) committed
-- before its turn ran, and lasted forever: a worker that died mid-turn
-- (wall-clock or CPU limit, out of memory, a redeploy) never released it, so
-- Telegram's redelivery was answered as a duplicate and the user never got an
-- answer. A claim is now a lease (telegram_updates.claimed_until,
-- private.telegram_claim_lease(): 7 minutes, past the 400 s an edge function
-- may run, so the worker holding an expired lease is gone, not slow). A
-- redelivery after it ran out, with no answer stored, claims the update
-- again. A claim is settled (claimed_until null, never claimed again) once
-- its answer is stored, or the chat was told a refusal or a failure. A
-- redelivery while a claim's lease holds, nothing settled, is told the
-- lease's remaining seconds (claim_telegram_update's retry_after_seconds) and
-- answered 503, not 200: Telegram repeats a delivery that timed out or failed
-- within seconds to minutes, inside the lease, and a 200 then would be its
-- last, so a worker dying after it left the update unanswered for good. The
-- question is stored once: chat_prepare, given the update, links the
-- question it stores to the claim in its own transaction
-- (telegram_updates.question_message_id), and a turn re-claimed with a
-- question linked resumes with it (no second question, no second rate-limit
-- hit; the quota is checked and reserved again, as for any model call).

-- ---------------------------------------------------------------------------
-- Telegram claims as leases
-- ---------------------------------------------------------------------------

-- Claims made before this migration are settled (null): none is run again.
alter table private.telegram_updates
  add column claimed_until timestamptz,
  add column question_message_id bigint references public.messages (id) on delete set null;
comment on column private.telegram_updates.claimed_until is
  'Until when the worker that claimed the update holds it; a redelivery with no answer stored claims it again after that. Null once the turn is settled (answered, refused or failed, the chat told).';
comment on column private.telegram_updates.question_message_id is
  'The question the update''s turn stored (chat_prepare links it in the same transaction), so a turn claimed again resumes with it rather than storing it twice.';
-- What a message's deletion sets null by.
create index telegram_updates_question_message_id_idx on private.telegram_updates (question_message_id);

create function private.telegram_claim_lease()
returns interval
language sql
immutable
security invoker
set search_path = ''
as $$ select interval '7 minutes' $$;
comment on function private.telegram_claim_lease() is
  'How long a Telegram update''s claim holds before a redelivery may claim it again: past the longest an edge function runs (400 s), so only a turn whose worker died is run again.';
revoke execute on function private.telegram_claim_lease() from public;

-- A new column (retry_after_seconds), so a new result type: the old function
-- goes. Latest definition: 20261123003700_chat_turn_endings.sql; the lease,
-- claiming again once it ran out, and retry_after_seconds are new.
drop function private.claim_telegram_update(uuid, bigint);
create function private.claim_telegram_update(bot_id uuid, update_id bigint)
returns table (claimed boolean, answer text, retry_after_seconds integer)
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.telegram_updates (bot_id, update_id, claimed_until)
  values (claim_telegram_update.bot_id, claim_telegram_update.update_id,
          pg_catalog.now() + private.telegram_claim_lease())
  on conflict do nothing;
  if found then
    return query select true, null::text, null::integer;
    return;
  end if;
  -- One row update: of two redeliveries at once, the second re-reads the
  -- lease the first took and does not claim.
  update private.telegram_updates u
  set claimed_until = pg_catalog.now() + private.telegram_claim_lease()
  where u.bot_id = claim_telegram_update.bot_id and u.update_id = claim_telegram_update.update_id
    and u.claimed_until <= pg_catalog.now() and u.message_id is null;
  if found then
    return query select true, null::text, null::integer;
    return;
  end if;
  -- Not claimed: settled (claimed_until null; the stored answer, if any, to
  -- send again), or held by a live lease, whose turn may still be running or
  -- its worker dead: the redelivery is told to come back once it ran out.
  return query
    select false, m.content,
      case when u.claimed_until > pg_catalog.now() and u.message_id is null then
        greatest(1, pg_catalog.ceil(extract(epoch from u.claimed_until - pg_catalog.now())))::integer
      end
    from private.telegram_updates u
    left join public.messages m on m.id = u.message_id
    where u.bot_id = claim_telegram_update.bot_id and u.update_id = claim_telegram_update.update_id;
end;
$$;
comment on function private.claim_telegram_update(uuid, bigint) is 'Takes a Telegram update on: claimed for the first delivery, and for a redelivery once the claim''s lease ran out with nothing answered (its turn''s worker died); otherwise not claimed, with the stored answer (if any) to send again, or, while the lease holds with nothing settled, its remaining seconds (at least 1; null otherwise) for the webhook to answer 503 so Telegram delivers the update again.';
revoke execute on function private.claim_telegram_update(uuid, bigint) from public;
grant execute on function private.claim_telegram_update(uuid, bigint) to service_role;

-- Latest definition: 20261123003700_chat_turn_endings.sql; settling the claim is new.
create or replace function private.telegram_update_answered(bot_id uuid, update_id bigint, message_id bigint)
returns void
language sql
security definer
set search_path = ''
as $$
  update private.telegram_updates u
  set message_id = telegram_update_answered.message_id, claimed_until = null
  where u.bot_id = telegram_update_answered.bot_id and u.update_id = telegram_update_answered.update_id;
$$;
comment on function private.telegram_update_answered(uuid, bigint, bigint) is
  'Links a claimed Telegram update to its stored answer (null: sent, or the chat was told a refusal or failure) and settles the claim: it is never claimed again.';

-- Latest definition: 20261123003700_chat_turn_endings.sql. The claim is
-- kept, its lease ended, so the question it may link is not stored again.
create or replace function private.release_telegram_update(bot_id uuid, update_id bigint)
returns void
language sql
security definer
set search_path = ''
as $$
  update private.telegram_updates u set claimed_until = pg_catalog.now()
  where u.bot_id = release_telegram_update.bot_id and u.update_id = release_telegram_update.update_id
    and u.message_id is null and u.claimed_until is not null;
$$;
comment on function private.release_telegram_update(uuid, bigint) is 'Ends the lease of a Telegram update''s claim whose turn failed before anything was answered (a settled claim is left alone), so its redelivery is handled.';

-- ---------------------------------------------------------------------------
-- chat_prepare: the end user's bucket behind a key, and the Telegram update
-- (a new last argument, so a new signature: the old one goes).
-- ---------------------------------------------------------------------------

drop function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text);

-- Latest definition: 20261123007800_chat_quota_reservations.sql; only the end
-- user's bucket and telegram_update_id (the question's link, and resuming
-- with it) are new.
create function private.chat_prepare(
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
comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit (an API key''s turn naming its end user, or its call for a voice platform: that bucket too, taken from neither when refused) or an org whose metered chat tokens and running turns'' reservations reach its quota, else continues or opens the conversation (by its id, else the bot''s live one with the external id or the end user), stores the user''s message (with telegram_update_id: links it to the update''s claim, or resumes with the question already linked, neither storing it again nor taking a rate-limit hit), reserves the turn''s tokens and returns the bot, its collections, the last 20 messages and whether the org''s embedding tokens allow embedding the question.';
revoke execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint) from public;
grant execute on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text, bigint)
  to authenticated, service_role;
