-- Chat quota reservations.
--
-- chat_prepare checked the org's metered chat tokens against its plan, but
-- usage is metered only by chat_finish, once the model has answered: turns
-- arriving together all passed the same check (20 turns at 199,990 of
-- 200,000 tokens ended at 339,990). Now each turn let through reserves what
-- it may spend (private.chat_quota_reservations), and the quota check counts
-- the metered usage plus the reservations of turns still running, one turn of
-- the org at a time (a transaction advisory lock on the org). chat_finish
-- replaces the turn's reservation with its metered usage in one transaction.
-- So the org goes over its allowance by at most the last turn let through,
-- as a lone turn always could.
--
-- Reservations are not usage: private.chat_quota (and so plan_usage,
-- require_quota, billing and analytics) reads usage_events alone, unchanged.
-- A turn that never finishes (its function killed mid-answer) leaves its
-- reservation behind: it stops counting after chat_reservation_lifetime, well
-- past an edge function's longest run, and a cron job purges it.
--
-- chat_prepare stays one statement: the chat path gains no round trip.

create table private.chat_quota_reservations (
  id bigint generated always as identity primary key,
  org_id uuid not null,
  conversation_id uuid not null,
  tokens integer not null constraint chat_quota_reservations_tokens check (tokens > 0),
  created_at timestamptz not null default pg_catalog.now(),
  foreign key (conversation_id, org_id) references public.conversations (id, org_id) on delete cascade
);
comment on table private.chat_quota_reservations is
  'Chat tokens a running turn may spend, counted against the org''s quota by chat_prepare until chat_finish meters the turn (or the reservation outlives chat_reservation_lifetime). Never billed nor shown as usage.';
-- What chat_prepare sums, and the purge reads.
create index chat_quota_reservations_org_idx on private.chat_quota_reservations (org_id, created_at);
-- What chat_finish releases by.
create index chat_quota_reservations_conversation_idx on private.chat_quota_reservations (conversation_id, id);
alter table private.chat_quota_reservations enable row level security;
revoke all on private.chat_quota_reservations from public, anon, authenticated, service_role;

create function private.chat_reservation_lifetime()
returns interval
language sql
immutable
security invoker
set search_path = ''
as $$ select interval '10 minutes' $$;
comment on function private.chat_reservation_lifetime() is
  'How long an unfinished turn''s reservation counts against the chat quota: past the longest an edge function runs (400 s), so only a turn that died is dropped.';

create function private.purge_chat_quota_reservations()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from private.chat_quota_reservations r
  where r.created_at <= pg_catalog.now() - private.chat_reservation_lifetime();
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_chat_quota_reservations() is
  'Deletes the reservations of turns that never finished, once they no longer count; returns how many.';

revoke execute on function
  private.chat_reservation_lifetime(),
  private.purge_chat_quota_reservations()
from public;

select cron.schedule('purge-chat-quota-reservations', '*/10 * * * *', 'select private.purge_chat_quota_reservations()');

-- ---------------------------------------------------------------------------
-- chat_prepare: the org's lock, reservations in the quota check, and the
-- turn's reservation.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123005400_chat_call_conversations_and_text_retrieval.sql;
-- only the advisory lock, the reservations summed in the quota check and the
-- reservation inserted are new.
create or replace function private.chat_prepare(
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

  -- The org's turns take the quota check and their reservation one at a
  -- time, so a turn counts the reservations of every turn let through before
  -- it. Taken before any conversation row is locked (below, or by a
  -- concurrent turn of the same conversation), so the two never wait on each
  -- other in opposite orders.
  perform pg_catalog.pg_advisory_xact_lock(7800, pg_catalog.hashtext(bot.org_id::text));

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

  insert into public.messages (org_id, conversation_id, role, content)
  values (bot.org_id, conversation.id, 'user', message)
  returning id into new_message_id;

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
    'history', history
  );
end;
$$;
comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text, text) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit or an org whose metered chat tokens and running turns'' reservations reach its quota, else continues or opens the conversation (by its id, else the bot''s live one with the external id or the end user), stores the user''s message, reserves the turn''s tokens and returns the bot, its collections and the last 20 messages.';

-- ---------------------------------------------------------------------------
-- chat_finish releases the turn's reservation.
-- ---------------------------------------------------------------------------

-- Latest definition: 20261123004700_chat_model_failure.sql; only the
-- reservation's release is new. The chat function now calls it as the
-- service role for every turn (chat_prepare authorised the turn, and a user
-- losing chat.use mid-answer must not lose the answer or its metering); the
-- user's turn is still credited to conversation.user_id.
create or replace function private.chat_finish(
  conversation_id uuid,
  content text,
  tokens_in integer,
  tokens_out integer,
  latency_ms integer,
  model text,
  citations jsonb,
  escalation_reason text default null,
  finish_reason text default 'stop',
  api_key_id uuid default null
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
                               finish_reason)
  values (conversation.org_id, conversation.id, 'assistant', chat_finish.content, chat_finish.tokens_in,
          chat_finish.tokens_out, chat_finish.latency_ms, chat_finish.model, cited, chat_finish.finish_reason)
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
comment on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid) is 'After the model answered (or the client went away mid-answer, or the model failed): stores the answer with its finish reason (empty when the model gave no text), meters the tokens (kind chat) to the calling API key, releases the turn''s quota reservation and, with an escalation reason, escalates the conversation once and runs the bot''s escalation action.';

-- A turn that fails after chat_prepare let it through (a retrieval or booking
-- error, a refused chat_finish) never reaches chat_finish: its reservation is
-- given back at once, or the org's quota would count tokens nothing spent for
-- 10 minutes (a few such failures could refuse every chat of a small plan).
create function private.release_chat_reservation(conversation_id uuid)
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
    order by o.id
    limit 1
  );
  return found;
end;
$$;
comment on function private.release_chat_reservation(uuid) is
  'Gives back the oldest quota reservation of a conversation whose turn failed before chat_finish; whether there was one. Service role (the chat function).';
revoke execute on function private.release_chat_reservation(uuid) from public;
grant execute on function private.release_chat_reservation(uuid) to service_role;
