-- A Telegram answer linked to its update in the transaction that stores it.
--
-- The Telegram webhook linked a stored answer to its update (private.telegram_update_answered) in a separate,
-- best-effort transaction after chat_finish. When that link failed (a database error, logged) and sending the
-- answer then failed for now (a Telegram 5xx or timeout, answered 503), the claim kept its lease with nothing
-- linked; once the 7-minute lease ran out the redelivery claimed the update again, chat_prepare resumed the
-- stored question and the model was asked again: a second answer stored and metered for one question. The same
-- happened when the worker died between chat_finish and the link.
--
-- chat_finish now settles the claim of the Telegram update whose question it answers (telegram_updates.
-- question_message_id, indexed), with the answer, in its own transaction: a redelivery then sends the stored
-- answer with no model call. Only a claim still open is linked (message_id null), so a refusal already told
-- (settled with null) is left alone, and only an answer (not a failed turn's text, finish reason error, which a
-- redelivery would otherwise send as if it were one).

-- chat_finish also gives back the reservation its question holds
-- (chat_quota_reservations.question_message_id, 20261123012900), not the
-- conversation's oldest: turns now reserve by their question's bytes, and a
-- short turn finishing first gave back a long running turn's reservation.

-- Latest definition: 20261123011100_chat_turn_integrity.sql; the Telegram link and the reservation given back
-- are new.
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

  -- A Telegram turn: its update's claim is settled with the answer now, so a redelivery sends it and never
  -- asks the model again (a refusal told and settled with no answer is left alone). A failed turn's text (what
  -- the model wrote before it failed) is no answer to send: its claim is left to the webhook, which settles it
  -- once the chat is told, and whose lease, if its worker dies first, lets the redelivery answer the question.
  if chat_finish.question_message_id is not null and chat_finish.finish_reason <> 'error' then
    update private.telegram_updates u
    set message_id = new_message_id, claimed_until = null
    where u.question_message_id = chat_finish.question_message_id and u.message_id is null
      and u.claimed_until is not null;
  end if;

  perform private.record_usage(
    conversation.org_id, 'chat', coalesce(chat_finish.model, bot.model), chat_finish.tokens_in, chat_finish.tokens_out,
    null, metered_key, conversation.bot_id, conversation.id, conversation.user_id);

  -- The turn's reservation gives way to the usage just metered, in the same
  -- transaction, so the quota check never counts the turn twice (nor not at
  -- all): the one its question holds (turns reserve by their question's
  -- bytes, 20261123012900), else the conversation's oldest.
  delete from private.chat_quota_reservations r
  where r.id = (
    select o.id from private.chat_quota_reservations o
    where o.conversation_id = conversation.id
    order by o.question_message_id is not distinct from chat_finish.question_message_id desc, o.id
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
comment on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text, text, uuid, bigint) is 'After the model answered (or the client went away mid-answer, or the model failed): stores the answer with its finish reason (empty when the model gave no text) and the question it answers, meters the tokens (kind chat) to the calling API key, releases the turn''s quota reservation and, with an escalation reason, escalates the conversation once and runs the bot''s escalation action; the claim of the Telegram update whose question it answers is settled with the answer (a redelivery sends it again, with no model call).';
