-- Every chat turn that reached the model ends stored and metered, however it
-- ends:
-- * an answer records why it ended (messages.finish_reason): stop, length,
--   content_filter (as the model said), or interrupted (the client went away
--   mid-answer: what was streamed so far is stored, and the tokens spent are
--   metered, so cancelling does not dodge the quota);
-- * an answer may be empty when the model gave no text (a content filter, a
--   reasoning model spending its whole budget): the prompt tokens were still
--   spent, so the turn is stored and metered with its finish reason;
-- * usage is metered to the API key that made the call, not the one that
--   started the conversation (conversations are found by bot, channel and end
--   user, whichever key calls);
-- * Telegram updates are claimed once per bot and update_id, so a redelivery
--   (after a 500 or a timeout) does not run and meter the turn again.

-- ---------------------------------------------------------------------------
-- Why an answer ended.
-- ---------------------------------------------------------------------------

-- Null for user messages and for answers stored before this migration (their reason was not kept).
alter table public.messages
  add column finish_reason text
    constraint messages_finish_reason check (finish_reason in ('stop', 'length', 'content_filter', 'interrupted')),
  add constraint messages_finish_reason_assistant check (finish_reason is null or role = 'assistant');
comment on column public.messages.finish_reason is 'Why an answer ended: stop, length (the token limit), content_filter, or interrupted (the client went away; the content is what was streamed until then). Null for user messages and answers stored before it was recorded.';

-- The old rule (1 to 32000 characters) relaxed: an answer with a finish reason may be empty.
-- Added not valid and then validated, so the check does not hold an exclusive lock while it reads the table.
alter table public.messages drop constraint messages_content_length;
alter table public.messages
  add constraint messages_content_length check (
    length(content) <= 32000 and (length(content) >= 1 or (role = 'assistant' and finish_reason is not null))
  ) not valid;
alter table public.messages validate constraint messages_content_length;

-- ---------------------------------------------------------------------------
-- chat_finish, restated from 20261123001100_bots_and_chat.sql with the
-- finish reason and the calling API key. Callers passing the first eight
-- arguments keep working (finish reason stop, no key).
-- ---------------------------------------------------------------------------

drop function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text);
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

  if chat_finish.finish_reason is null or chat_finish.finish_reason not in ('stop', 'length', 'content_filter', 'interrupted') then
    raise exception 'finish_reason is stop, length, content_filter or interrupted' using errcode = 'invalid_parameter_value';
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
comment on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid) is 'After the model answered (or the client went away mid-answer): stores the answer with its finish reason (empty when the model gave no text), meters the tokens (kind chat) to the calling API key and, with an escalation reason, escalates the conversation once and runs the bot''s escalation action.';

revoke execute on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid) from public;
grant execute on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Telegram updates, claimed once. Telegram redelivers an update until the
-- webhook answers 2xx, for about a day; a claim is kept three days and then
-- purged.
-- ---------------------------------------------------------------------------

create table private.telegram_updates (
  bot_id uuid not null references public.bots (id) on delete cascade,
  update_id bigint not null,
  received_at timestamptz not null default now(),
  -- The stored answer, once there is one: a redelivery sends it again instead of asking the model again.
  message_id bigint references public.messages (id) on delete set null,
  primary key (bot_id, update_id)
);
comment on table private.telegram_updates is 'Telegram updates a bot has taken on (by update_id), so a redelivery does not run the turn twice; purged after three days.';
create index telegram_updates_received_at_idx on private.telegram_updates (received_at);
create index telegram_updates_message_id_idx on private.telegram_updates (message_id);
revoke all on private.telegram_updates from public, anon, authenticated, service_role;

-- claimed is true for the first delivery; for a redelivery, the stored answer's text if there is one.
create function private.claim_telegram_update(bot_id uuid, update_id bigint)
returns table (claimed boolean, answer text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into private.telegram_updates (bot_id, update_id)
  values (claim_telegram_update.bot_id, claim_telegram_update.update_id)
  on conflict do nothing;
  if found then
    return query select true, null::text;
    return;
  end if;
  return query
    select false, m.content
    from private.telegram_updates u
    left join public.messages m on m.id = u.message_id
    where u.bot_id = claim_telegram_update.bot_id and u.update_id = claim_telegram_update.update_id;
end;
$$;
comment on function private.claim_telegram_update(uuid, bigint) is 'Takes a Telegram update on once: claimed for the first delivery; for a redelivery, not claimed, with the stored answer (if any) to send again.';

create function private.telegram_update_answered(bot_id uuid, update_id bigint, message_id bigint)
returns void
language sql
security definer
set search_path = ''
as $$
  update private.telegram_updates u set message_id = telegram_update_answered.message_id
  where u.bot_id = telegram_update_answered.bot_id and u.update_id = telegram_update_answered.update_id;
$$;
comment on function private.telegram_update_answered(uuid, bigint, bigint) is 'Links a claimed Telegram update to its stored answer.';

-- For a failure before anything was stored: Telegram's redelivery may then run the turn.
create function private.release_telegram_update(bot_id uuid, update_id bigint)
returns void
language sql
security definer
set search_path = ''
as $$
  delete from private.telegram_updates u
  where u.bot_id = release_telegram_update.bot_id and u.update_id = release_telegram_update.update_id
    and u.message_id is null;
$$;
comment on function private.release_telegram_update(uuid, bigint) is 'Gives back the claim of a Telegram update whose turn stored nothing, so its redelivery is handled.';

create function private.purge_telegram_updates()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from private.telegram_updates u where u.received_at < pg_catalog.now() - interval '3 days';
  get diagnostics purged = row_count;
  return purged;
end;
$$;
comment on function private.purge_telegram_updates() is 'Drops Telegram update claims older than three days (Telegram stops redelivering after about one).';

revoke execute on function
  private.claim_telegram_update(uuid, bigint),
  private.telegram_update_answered(uuid, bigint, bigint),
  private.release_telegram_update(uuid, bigint),
  private.purge_telegram_updates()
from public;
grant execute on function
  private.claim_telegram_update(uuid, bigint),
  private.telegram_update_answered(uuid, bigint, bigint),
  private.release_telegram_update(uuid, bigint)
to service_role;

select cron.schedule('purge-telegram-updates', '17 * * * *', 'select private.purge_telegram_updates()');
