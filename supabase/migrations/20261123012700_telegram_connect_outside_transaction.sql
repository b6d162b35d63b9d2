-- Connecting Telegram without a transaction open while Telegram answers.
--
-- POST /chat/bots/:id/telegram ran public.set_bot_telegram and then Telegram's setWebhook inside one
-- transaction, so that a token Telegram refuses connects nothing. set_bot_telegram had locked the bot row and,
-- through the audited update of bots, the org's audit chain head: every audited write of the org (a new
-- conversation of any bot, membership changes, API keys) waited for Telegram, up to about 25 s (10 s a request,
-- a short 429 slept off and retried), and the transaction held one of the isolate's three pooled connections.
--
-- Now the function checks first (private.check_bot_telegram: the bot, bots.manage, the token's format, no
-- other bot holding it; nothing written, no lock kept), registers the webhook with a secret it generated, and
-- only when Telegram accepts stores token and secret (private.set_bot_telegram with the secret), which checks
-- again under the bot's lock. public.set_bot_telegram (a fresh secret, for clients that register the webhook
-- themselves) is unchanged.

create function private.check_bot_telegram(bot_id uuid, bot_token text)
returns text
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  select * into target from public.bots b where b.id = check_bot_telegram.bot_id;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
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
  return '/functions/v1/chat/telegram/' || target.id::text;
end;
$$;
comment on function private.check_bot_telegram(uuid, text) is 'What set_bot_telegram checks (the bot, bots.manage, the token''s format, no other bot holding it), writing nothing; returns the webhook path to register.';
revoke execute on function private.check_bot_telegram(uuid, text) from public, anon;
grant execute on function private.check_bot_telegram(uuid, text) to authenticated;

create function private.set_bot_telegram(bot_id uuid, bot_token text, webhook_secret text)
returns table (secret_token text, webhook_path text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
  path text;
begin
  select * into target from public.bots b where b.id = set_bot_telegram.bot_id for update;
  path := private.check_bot_telegram(set_bot_telegram.bot_id, set_bot_telegram.bot_token);

  insert into private.bot_telegram as t (bot_id, org_id, bot_token, secret_token)
  values (target.id, target.org_id, set_bot_telegram.bot_token, set_bot_telegram.webhook_secret)
  on conflict on constraint bot_telegram_pkey do update
    set bot_token = excluded.bot_token, secret_token = excluded.secret_token, created_at = pg_catalog.now();
  -- Connecting Telegram is asking for the channel: switch it on.
  update public.bots b
  set telegram_connected_at = pg_catalog.now(),
      channels = case when 'telegram' = any (b.channels) then b.channels else b.channels || array['telegram'] end
  where b.id = target.id;

  return query select set_bot_telegram.webhook_secret, path;
end;
$$;
comment on function private.set_bot_telegram(uuid, text, text) is 'Connects a Telegram bot with the webhook secret already registered with Telegram (the chat function''s connect); checks as private.check_bot_telegram does, under the bot''s lock.';
revoke execute on function private.set_bot_telegram(uuid, text, text) from public, anon;
grant execute on function private.set_bot_telegram(uuid, text, text) to authenticated;

-- Latest definition: 20261123001100_bots_and_chat.sql; now the three-argument form with a fresh secret.
create or replace function private.set_bot_telegram(bot_id uuid, bot_token text)
returns table (secret_token text, webhook_path text)
language sql
security invoker
set search_path = ''
as $$
  select * from private.set_bot_telegram(
    set_bot_telegram.bot_id, set_bot_telegram.bot_token, pg_catalog.encode(extensions.gen_random_bytes(32), 'hex')
  );
$$;
