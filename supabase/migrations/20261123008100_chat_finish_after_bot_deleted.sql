-- A chat turn whose conversation is gone when it finishes.
--
-- Deleting a bot deletes its conversations, and with them their quota
-- reservations. A turn of that bot still answering then met chat_finish's
-- "conversation not found" (no_data_found): nothing was metered, though the
-- model had answered and the client had the whole answer, so an admin could
-- stream answers unmetered by deleting the bot each time. The chat function
-- now meters such a turn here: the model's tokens to the org, to the calling
-- key and the user as chat_finish would; the bot only if it still exists, no
-- conversation (usage_events would point at nothing). No message is stored:
-- there is no conversation to hold it. The reservation went with the
-- conversation.

create function private.chat_meter_without_conversation(
  conversation_id uuid,
  org_id uuid,
  bot_id uuid,
  model text,
  tokens_in integer,
  tokens_out integer,
  api_key_id uuid default null,
  user_id uuid default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  metered_bot uuid;
  metered_key uuid;
  metered_user uuid;
begin
  if auth.role() is distinct from 'service_role' then
    raise exception 'only the service role meters a turn without its conversation' using errcode = 'insufficient_privilege';
  end if;
  if chat_meter_without_conversation.org_id is null or chat_meter_without_conversation.conversation_id is null then
    raise exception 'conversation_id and org_id are required' using errcode = 'invalid_parameter_value';
  end if;
  -- A turn whose conversation is still there is chat_finish's: metering it here too would count it twice.
  if exists (select 1 from public.conversations c where c.id = chat_meter_without_conversation.conversation_id) then
    raise exception 'the conversation exists; finish the turn with chat_finish' using errcode = 'invalid_parameter_value';
  end if;
  if chat_meter_without_conversation.model is null or length(chat_meter_without_conversation.model) not between 1 and 100 then
    raise exception 'model has 1 to 100 characters' using errcode = 'invalid_parameter_value';
  end if;
  if chat_meter_without_conversation.tokens_in is null or chat_meter_without_conversation.tokens_in < 0
     or chat_meter_without_conversation.tokens_out is null or chat_meter_without_conversation.tokens_out < 0 then
    raise exception 'tokens_in and tokens_out are counts (0 or more)' using errcode = 'invalid_parameter_value';
  end if;

  -- An org deleted meanwhile has no usage to hold it.
  if not exists (select 1 from public.organizations o where o.id = chat_meter_without_conversation.org_id) then
    return;
  end if;
  -- What is gone (or another org's) is metered as none, as chat_finish meters a key deleted mid-turn.
  select b.id into metered_bot from public.bots b
  where b.id = chat_meter_without_conversation.bot_id and b.org_id = chat_meter_without_conversation.org_id;
  select k.id into metered_key from public.api_keys k
  where k.id = chat_meter_without_conversation.api_key_id and k.org_id = chat_meter_without_conversation.org_id;
  select u.id into metered_user from auth.users u where u.id = chat_meter_without_conversation.user_id;

  perform private.record_usage(
    chat_meter_without_conversation.org_id, 'chat', chat_meter_without_conversation.model,
    chat_meter_without_conversation.tokens_in, chat_meter_without_conversation.tokens_out,
    null, metered_key, metered_bot, null, metered_user);
end;
$$;
comment on function private.chat_meter_without_conversation(uuid, uuid, uuid, text, integer, integer, uuid, uuid) is
  'Meters (kind chat) a turn whose conversation was deleted while it answered (its bot deleted): the org, the calling key and user if they remain, the bot if it remains, no conversation; stores no message. Refuses a conversation that exists (chat_finish''s). Service role (the chat function).';
revoke execute on function private.chat_meter_without_conversation(uuid, uuid, uuid, text, integer, integer, uuid, uuid) from public;
grant execute on function private.chat_meter_without_conversation(uuid, uuid, uuid, text, integer, integer, uuid, uuid) to service_role;
