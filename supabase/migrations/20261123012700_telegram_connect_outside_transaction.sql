-- Connecting Telegram without a transaction open while Telegram answers.
--
-- POST /chat/bots/:id/telegram ran public.set_bot_telegram and then Telegram's setWebhook inside one
-- transaction, so that a token Telegram refuses connects nothing. set_bot_telegram had locked the bot row and,
-- through the audited update of bots, the org's audit chain head: every audited write of the org (a new
-- conversation of any bot, membership changes, API keys) waited for Telegram, up to about 25 s (10 s a request,
-- a short 429 slept off and retried), and the transaction held one of the isolate's three pooled connections.
--
-- Now a connect takes a lease first (private.begin_bot_telegram_connect: the bot, bots.manage, the token's
-- format, no other bot holding the token; one lease per bot and per token, 60 s), registers the webhook with
-- the secret the lease names, and only when Telegram accepts stores token and secret
-- (private.finish_bot_telegram_connect: only while its lease holds, then set_bot_telegram with the secret,
-- which checks again under the bot's lock); a refusal ends the lease (private.end_bot_telegram_connect). The
-- lease keeps what the one transaction used to: Telegram keeps the last setWebhook it received and the
-- database the last store, so two connects of one bot (a double click), or of one token to two bots,
-- overlapping between the two steps could leave Telegram with a secret or an address the database does not
-- hold, the bot then refusing every update. A second connect during the lease is refused (PT409, answered 409
-- telegram_connect_in_progress), as is a store after its lease ran out, and public.set_bot_telegram and
-- public.clear_bot_telegram during a lease (PT409; PostgREST answers 409), which would otherwise store a secret
-- Telegram is about to lose, or be undone by the connect's store. The lease names the secret already
-- stored when the bot is connected with the same token, so re-registering it never breaks a working
-- connection even if the store then fails.
--
-- public.set_bot_telegram (a fresh secret, for clients that register the webhook themselves) is unchanged.

create table private.telegram_connects (
  bot_id uuid primary key references public.bots (id) on delete cascade,
  bot_token text not null constraint telegram_connects_token_unique unique,
  webhook_secret text not null,
  expires_at timestamptz not null
);
comment on table private.telegram_connects is 'Connects of a bot to a Telegram token under way (the function between its lease and its store): one per bot and per token, for 60 seconds.';
alter table private.telegram_connects enable row level security;
revoke all on private.telegram_connects from public, anon, authenticated, service_role;

-- What set_bot_telegram checks (the bot, bots.manage, the token's format, no other bot holding it).
create function private.check_bot_telegram(bot_id uuid, bot_token text)
returns public.bots
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
  return target;
end;
$$;
comment on function private.check_bot_telegram(uuid, text) is 'The bot set_bot_telegram would connect, after its checks (the bot, bots.manage, the token''s format, no other bot holding the token); writes nothing.';
revoke execute on function private.check_bot_telegram(uuid, text) from public, anon, authenticated, service_role;

create function private.begin_bot_telegram_connect(bot_id uuid, bot_token text)
returns table (webhook_path text, webhook_secret text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots := private.check_bot_telegram(begin_bot_telegram_connect.bot_id, begin_bot_telegram_connect.bot_token);
  secret text;
begin
  delete from private.telegram_connects c
  where (c.bot_id = target.id or c.bot_token = begin_bot_telegram_connect.bot_token) and c.expires_at <= pg_catalog.now();
  select t.secret_token into secret from private.bot_telegram t
  where t.bot_id = target.id and t.bot_token = begin_bot_telegram_connect.bot_token;
  secret := coalesce(secret, pg_catalog.encode(extensions.gen_random_bytes(32), 'hex'));
  begin
    insert into private.telegram_connects (bot_id, bot_token, webhook_secret, expires_at)
    values (target.id, begin_bot_telegram_connect.bot_token, secret, pg_catalog.now() + interval '60 seconds');
  exception when unique_violation then
    raise exception 'a Telegram connect of this bot or token is under way' using errcode = 'PT409',
      hint = 'Wait for it to finish (at most a minute), then try again.';
  end;
  return query select '/functions/v1/chat/telegram/' || target.id::text, secret;
end;
$$;
comment on function private.begin_bot_telegram_connect(uuid, text) is 'Starts connecting a bot to a Telegram token (the chat function''s connect): checks as set_bot_telegram does and takes a 60-second lease, one per bot and per token (PT409 while another holds it); returns the webhook path and the secret to register (the stored one when the bot is connected with this token).';
revoke execute on function private.begin_bot_telegram_connect(uuid, text) from public, anon;
grant execute on function private.begin_bot_telegram_connect(uuid, text) to authenticated;

create function private.end_bot_telegram_connect(bot_id uuid, webhook_secret text)
returns void
language sql
security definer
set search_path = ''
as $$
  delete from private.telegram_connects c
  where c.bot_id = end_bot_telegram_connect.bot_id and c.webhook_secret = end_bot_telegram_connect.webhook_secret;
$$;
comment on function private.end_bot_telegram_connect(uuid, text) is 'Ends a Telegram connect''s lease that Telegram refused (only the lease holding this secret, which only its connect knows).';
revoke execute on function private.end_bot_telegram_connect(uuid, text) from public, anon;
grant execute on function private.end_bot_telegram_connect(uuid, text) to authenticated;

-- Another change of the bot's Telegram connection, or of the token's, while a connect holds its lease would be
-- lost or undone, or split the token between two bots (Telegram posting to the connect's bot, the database
-- holding the token for another).
create function private.refuse_during_telegram_connect(bot_id uuid, bot_token text default null)
returns void
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  if exists (
    select 1 from private.telegram_connects c
    where (c.bot_id = refuse_during_telegram_connect.bot_id or c.bot_token = refuse_during_telegram_connect.bot_token)
      and c.expires_at > pg_catalog.now()
  ) then
    raise exception 'a Telegram connect of this bot or token is under way' using errcode = 'PT409',
      hint = 'Wait for it to finish (at most a minute), then try again.';
  end if;
end;
$$;
comment on function private.refuse_during_telegram_connect(uuid, text) is 'PT409 while a connect of the bot, or of the token, holds its lease (private.telegram_connects).';
revoke execute on function private.refuse_during_telegram_connect(uuid, text) from public, anon, authenticated, service_role;

-- Latest definition: 20261123001100_bots_and_chat.sql; only the refusal during a connect is new.
create or replace function private.clear_bot_telegram(bot_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  select * into target from public.bots b where b.id = clear_bot_telegram.bot_id;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  perform private.refuse_during_telegram_connect(target.id);
  delete from private.bot_telegram t where t.bot_id = target.id;
  if not found then
    return false;
  end if;
  update public.bots b set telegram_connected_at = null where b.id = target.id;
  return true;
end;
$$;

create function private.set_bot_telegram(bot_id uuid, bot_token text, webhook_secret text)
returns table (secret_token text, webhook_path text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
begin
  -- No key update: two stores of the bot still wait for each other, but a call's speech metered meanwhile still
  -- takes the bot's key share (private.meter_call_speech skips a locked bot and meters the seconds to no bot).
  select * into target from public.bots b where b.id = set_bot_telegram.bot_id for no key update;
  target := private.check_bot_telegram(set_bot_telegram.bot_id, set_bot_telegram.bot_token);
  -- A connect's own store (finish_bot_telegram_connect) ended its lease first.
  perform private.refuse_during_telegram_connect(target.id, set_bot_telegram.bot_token);

  insert into private.bot_telegram as t (bot_id, org_id, bot_token, secret_token)
  values (target.id, target.org_id, set_bot_telegram.bot_token, set_bot_telegram.webhook_secret)
  on conflict on constraint bot_telegram_pkey do update
    set bot_token = excluded.bot_token, secret_token = excluded.secret_token, created_at = pg_catalog.now();
  -- Connecting Telegram is asking for the channel: switch it on.
  update public.bots b
  set telegram_connected_at = pg_catalog.now(),
      channels = case when 'telegram' = any (b.channels) then b.channels else b.channels || array['telegram'] end
  where b.id = target.id;

  return query select set_bot_telegram.webhook_secret, '/functions/v1/chat/telegram/' || target.id::text;
end;
$$;
comment on function private.set_bot_telegram(uuid, text, text) is 'Connects a Telegram bot with this webhook secret, checking as check_bot_telegram does under the bot''s lock (public.set_bot_telegram''s fresh secret, and finish_bot_telegram_connect''s registered one).';
revoke execute on function private.set_bot_telegram(uuid, text, text) from public, anon;
grant execute on function private.set_bot_telegram(uuid, text, text) to authenticated;

-- The connect's store: only while its own lease holds (a store delayed past the 60 s could otherwise follow a
-- later connect's setWebhook and store), which it ends.
create function private.finish_bot_telegram_connect(bot_id uuid, bot_token text, webhook_secret text)
returns table (secret_token text, webhook_path text)
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from private.telegram_connects c
  where c.bot_id = finish_bot_telegram_connect.bot_id and c.bot_token = finish_bot_telegram_connect.bot_token
    and c.webhook_secret = finish_bot_telegram_connect.webhook_secret and c.expires_at > pg_catalog.now();
  if not found then
    raise exception 'this Telegram connect ran out of time' using errcode = 'PT409',
      hint = 'Connect again.';
  end if;
  return query select * from private.set_bot_telegram(
    finish_bot_telegram_connect.bot_id, finish_bot_telegram_connect.bot_token, finish_bot_telegram_connect.webhook_secret);
end;
$$;
comment on function private.finish_bot_telegram_connect(uuid, text, text) is 'Stores a connect Telegram accepted (set_bot_telegram with the registered secret) while its lease (begin_bot_telegram_connect) holds, and ends the lease; PT409 once the lease ran out.';
revoke execute on function private.finish_bot_telegram_connect(uuid, text, text) from public, anon;
grant execute on function private.finish_bot_telegram_connect(uuid, text, text) to authenticated;

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
