-- Usage metered after what it names was deleted.
--
-- record_usage inserted the bot, API key, conversation, user and document it
-- was given, so one deleted while the model call ran (an admin deleting the bot
-- or the key while a question was embedded) failed the insert with 23503
-- (usage_events_bot_fk, usage_events_api_key_id_fkey) and nothing was metered:
-- the chat only logged it, and a knowledge search answered 500 after a search
-- that worked. The tokens were spent all the same. Now each reference that is
-- gone is metered as none, as chat_meter_without_conversation meters a turn
-- whose bot went; an org that is gone has no usage to hold, so nothing is
-- metered. A reference to another org's row is still refused (23503, as the
-- composite foreign keys refuse a bot or conversation): for the key and the
-- document too, whose foreign keys name the id alone.
--
-- Each row is taken for key share, as the foreign-key checks took it at the
-- insert, in their order (org, document, key, user, bot, conversation): a
-- delete running meanwhile is waited for and then seen as gone, rather than
-- failing the insert after the row was found.

create or replace function private.record_usage(
  org_id uuid, kind text, model text, tokens_in integer, tokens_out integer,
  document_id uuid default null, api_key_id uuid default null,
  bot_id uuid default null, conversation_id uuid default null, user_id uuid default null
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
  document_org uuid;
  key_org uuid;
  metered_user uuid;
  bot_org uuid;
  conversation_org uuid;
begin
  if record_usage.org_id is null then
    raise exception 'org_id is required' using errcode = 'not_null_violation';
  end if;
  perform 1 from public.organizations o where o.id = record_usage.org_id for key share;
  if not found then
    return;
  end if;

  select d.org_id into document_org from public.documents d where d.id = record_usage.document_id for key share;
  select k.org_id into key_org from public.api_keys k where k.id = record_usage.api_key_id for key share;
  select u.id into metered_user from auth.users u where u.id = record_usage.user_id for key share;
  select b.org_id into bot_org from public.bots b where b.id = record_usage.bot_id for key share;
  select c.org_id into conversation_org from public.conversations c
  where c.id = record_usage.conversation_id for key share;
  if record_usage.org_id <> any (pg_catalog.array_remove(array[document_org, key_org, bot_org, conversation_org], null)) then
    raise exception 'usage of org % names a row of another org', record_usage.org_id
      using errcode = 'foreign_key_violation';
  end if;

  insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id, bot_id, conversation_id, user_id)
  values (
    record_usage.org_id, record_usage.kind, record_usage.model, record_usage.tokens_in, record_usage.tokens_out,
    case when document_org is not null then record_usage.document_id end,
    case when key_org is not null then record_usage.api_key_id end,
    case when bot_org is not null then record_usage.bot_id end,
    case when conversation_org is not null then record_usage.conversation_id end,
    metered_user);
end;
$$;
comment on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid, uuid, uuid, uuid) is
  'Meters one model call: org, kind (embedding, chat, speech), model, tokens, and what it was for. A document, key, user, bot or conversation deleted meanwhile is metered as none; nothing is metered for an org deleted meanwhile; another org''s row is refused (23503). Service role.';
