-- A voice call and the conversation of its turns find each other.
--
-- A voice platform's custom LLM (Vapi) sends each turn of a phone call to
-- chat/completions with the call's id, which keys the bot's conversation for
-- that call (conversations.external_conversation_id, 20261123005400). The
-- platform's call events carry the same id as the call's provider_call_id.
-- So within one org, a call and a conversation with the same id are the same
-- phone call: the call's conversation_id now points at it, whichever of the
-- two is written first (a call is usually reported ringing before its first
-- turn, but events can be late). Only an empty conversation_id is filled: one
-- set by the call's own metadata, or by hand, stays. When the call names its
-- bot, the conversation must be that bot's (another bot's key in the org
-- could key a conversation with any id). A call and a conversation written
-- at the same moment cannot see each other; the call's next event (every
-- event rewrites provider_call_id) links them. Nor does a conversation's
-- first turn wait on a call a call-events batch holds: that call is skipped,
-- and its next event links it.

create index conversations_external_id_idx on public.conversations (org_id, external_conversation_id)
  where external_conversation_id is not null;

-- The conversation first: the call, when it comes, takes it.
create function private.call_takes_its_conversation()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  select c.id into new.conversation_id
  from public.conversations c
  where c.org_id = new.org_id and c.external_conversation_id = new.provider_call_id
    and (new.bot_id is null or c.bot_id = new.bot_id)
  order by c.created_at desc, c.id
  limit 1;
  return new;
end;
$$;
revoke execute on function private.call_takes_its_conversation() from public;
comment on function private.call_takes_its_conversation() is
  'Trigger on calls: a Vapi call without a conversation takes the org''s conversation keyed by its provider call id (its custom-LLM turns).';

create trigger calls_take_their_conversation before insert or update of provider, provider_call_id on public.calls
  for each row when (new.conversation_id is null and new.provider = 'vapi' and new.provider_call_id is not null)
  execute function private.call_takes_its_conversation();

-- The call first: the conversation, when its first turn comes, is linked to it.
create function private.conversation_links_its_call()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.calls c
  set conversation_id = new.id
  where c.id = (
    select k.id from public.calls k
    where k.org_id = new.org_id and k.provider = 'vapi' and k.provider_call_id = new.external_conversation_id
      and k.conversation_id is null and (k.bot_id is null or k.bot_id = new.bot_id)
    for update skip locked
  );
  return null;
end;
$$;
revoke execute on function private.conversation_links_its_call() from public;
comment on function private.conversation_links_its_call() is
  'Trigger on conversations: a conversation keyed by a Vapi call id is linked to the org''s Vapi call with that provider call id.';

create trigger conversations_link_their_call after insert on public.conversations
  for each row when (new.external_conversation_id is not null)
  execute function private.conversation_links_its_call();
