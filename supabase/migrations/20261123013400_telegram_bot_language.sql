-- The Telegram webhook writes its own texts (a refusal, the default
-- greeting, an apology for a failed turn, an empty answer) in the bot's
-- language, as the chat does (functions/_shared/chat/bot-texts.ts): it needs
-- the bot's `language` with the credentials it already reads. A changed
-- result type cannot be replaced in place, so the function is dropped and
-- created again with the same grants.

-- Latest definition: 20261123001100_bots_and_chat.sql; `language` is new.
drop function private.telegram_bot_for_webhook(uuid);
create function private.telegram_bot_for_webhook(bot_id uuid)
returns table (
  org_id uuid,
  bot_token text,
  secret_token text,
  enabled boolean,
  telegram_enabled boolean,
  greeting text,
  language text
)
language sql
stable
security definer
set search_path = ''
as $$
  select t.org_id, t.bot_token, t.secret_token, b.enabled, 'telegram' = any (b.channels), b.greeting, b.language
  from private.bot_telegram t
  join public.bots b on b.id = t.bot_id
  where t.bot_id = telegram_bot_for_webhook.bot_id;
$$;
comment on function private.telegram_bot_for_webhook(uuid) is 'What the Telegram webhook needs to check the secret header and answer in the bot''s language: its token, secret, whether the bot and its Telegram channel are on, greeting and language. No row when the bot has no Telegram connection. Service role.';

revoke execute on function private.telegram_bot_for_webhook(uuid) from public;
grant execute on function private.telegram_bot_for_webhook(uuid) to service_role;
