-- Bots, chat, usage metering and limits, plans, and the product catalog.
--
-- * Bots per org (settings, model from an allow-list, channels, escalation
--   action), the collections each answers from, and a Telegram connection per
--   bot whose token and webhook secret no API role can read.
-- * Conversations and messages, written only by the chat functions below
--   (private.chat_prepare before the model is called, private.chat_finish
--   after), which the `chat` edge function calls as the signed-in user or as
--   the service role (bot API key, Telegram webhook). They authorise
--   themselves, refuse (without changing anything) when the bot is disabled,
--   the channel is off, the conversation is closed, the caller is over its rate
--   limit or the org over its plan's monthly chat tokens, and record usage
--   and escalations (event conversation.escalated).
-- * Usage: usage_events gains bot, conversation and user; usage_totals (24 h
--   and 7 days) and usage_daily (days cut in a time zone) summarise it.
-- * Plans and one active subscription per org (every org starts on 'free').
-- * Rate limits in the database (private.take_rate_limit), so they hold
--   across function instances.
-- * The catalog: categories (a tree, at most 8 levels) and products with
--   full-text and trigram search (public.search_products).
--
-- Errors carry SQLSTATEs as elsewhere: 42501 not allowed, P0002 not found,
-- 22023 invalid argument, 23514 a check, 23505 a conflict.

insert into public.role_permissions (permission, min_role, description) values
  ('bots.read',          'member', 'See bots, their settings and the collections they answer from'),
  ('bots.manage',        'admin',  'Create, change and delete bots; connect Telegram; close conversations'),
  ('conversations.read', 'member', 'Read conversations and their messages'),
  ('chat.use',           'member', 'Chat with the organization''s bots from the dashboard'),
  ('catalog.read',       'viewer', 'See the product catalog'),
  ('catalog.write',      'member', 'Create, change and delete categories and products'),
  ('billing.read',       'admin',  'See the organization''s plan and subscription');

-- Composite foreign keys (child.org_id must equal the parent's) need a
-- unique key on (id, org_id) in the parent.
alter table public.collections add constraint collections_id_org_id_key unique (id, org_id);
alter table public.api_keys add constraint api_keys_id_org_id_key unique (id, org_id);

-- ---------------------------------------------------------------------------
-- The model allow-list
-- ---------------------------------------------------------------------------

create table public.chat_models (
  id text primary key constraint chat_models_id_format check (id ~ '^[a-z0-9][a-z0-9.:-]{0,63}$'),
  provider text not null constraint chat_models_provider check (provider in ('offline', 'openai')),
  display_name text not null constraint chat_models_display_name_length check (length(btrim(display_name)) between 1 and 100),
  context_window integer not null constraint chat_models_context_window check (context_window between 1 and 10000000),
  max_output_tokens integer not null constraint chat_models_max_output_tokens check (max_output_tokens between 1 and context_window),
  enabled boolean not null default true
);
comment on table public.chat_models is 'The models a bot may use. Changed only by migrations; a disabled model cannot be newly assigned, bots already on it keep it.';

insert into public.chat_models (id, provider, display_name, context_window, max_output_tokens) values
  ('offline',      'offline', 'Offline (extractive, no API key)', 32768,   4096),
  ('gpt-4o-mini',  'openai',  'GPT-4o mini',                      128000,  16384),
  ('gpt-4o',       'openai',  'GPT-4o',                           128000,  16384),
  ('gpt-4.1-nano', 'openai',  'GPT-4.1 nano',                     1047576, 32768),
  ('gpt-4.1-mini', 'openai',  'GPT-4.1 mini',                     1047576, 32768),
  ('gpt-4.1',      'openai',  'GPT-4.1',                          1047576, 32768);

alter table public.chat_models enable row level security;
revoke all on public.chat_models from anon, authenticated, service_role;
grant select on public.chat_models to authenticated, service_role;
create policy "signed-in users can read the model allow-list"
  on public.chat_models for select to authenticated
  using (true);

-- ---------------------------------------------------------------------------
-- Bots
-- ---------------------------------------------------------------------------

create type public.bot_escalation_action as enum ('notify', 'transfer', 'log');
comment on type public.bot_escalation_action is 'What an escalation does: notify (event conversation.escalated), transfer (the same event; the chat function hands over to manager_contact), log (recorded on the conversation only).';

create table public.bots (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null constraint bots_name_length check (length(name) between 1 and 100 and name = btrim(name)),
  -- The OpenAI-compatible endpoint's `model` names a bot by slug or id, so a
  -- slug may not look like a uuid (it could name another bot).
  slug text not null
    constraint bots_slug_format check (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$')
    constraint bots_slug_not_uuid check (slug !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
  system_prompt text not null default '' constraint bots_system_prompt_length check (length(system_prompt) <= 8000),
  greeting text constraint bots_greeting_length check (length(greeting) between 1 and 1000),
  -- 'auto': answer in the language the user writes in.
  language text not null default 'en'
    constraint bots_language_format check (language = 'auto' or language ~ '^[a-z]{2,3}(-[A-Z]{2})?$'),
  model text not null default 'gpt-4o-mini' references public.chat_models (id),
  temperature numeric(3, 2) not null default 0.3 constraint bots_temperature_range check (temperature between 0 and 2),
  -- Also at most the model's max_output_tokens (trigger below).
  max_tokens integer not null default 512 constraint bots_max_tokens_range check (max_tokens between 1 and 4096),
  manager_contact text constraint bots_manager_contact_length check (length(btrim(manager_contact)) between 1 and 200 and length(manager_contact) <= 200),
  escalation_action public.bot_escalation_action not null default 'notify',
  channels text[] not null default '{web,api}'
    constraint bots_channels_known check (
      cardinality(channels) between 1 and 4
      and channels <@ array['web', 'telegram', 'voice', 'api']::text[]
    ),
  enabled boolean not null default true,
  -- Set by set_bot_telegram, cleared by clear_bot_telegram: the dashboard's
  -- "connected" flag, and the audit trail of both (the token and secret
  -- themselves are in private.bot_telegram, never in the log).
  telegram_connected_at timestamptz,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint bots_slug_unique unique (org_id, slug),
  constraint bots_id_org_id_key unique (id, org_id),
  constraint bots_transfer_needs_contact check (escalation_action <> 'transfer' or manager_contact is not null)
);
comment on table public.bots is 'An org''s assistants. Members read; admins create, change and delete (RLS). At most 50 per org.';
comment on column public.bots.channels is 'Where the bot answers: a set of web, telegram, voice, api (stored sorted, without duplicates).';
create index bots_model_idx on public.bots (model);
create index bots_created_by_idx on public.bots (created_by);

-- Whoever writes (admin through RLS, service role, SQL editor): the model
-- must be on the allow-list and enabled, max_tokens within the model's output
-- limit, and an org holds at most 50 bots.
create function private.validate_bot()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  chosen public.chat_models;
begin
  -- A signed-in user without bots.manage is refused by RLS after this
  -- trigger; leave them to it, so the limit below says nothing about an
  -- org they do not manage.
  if auth.role() = 'authenticated' and not private.has_permission(new.org_id, 'bots.manage') then
    return new;
  end if;

  new.channels := array(select distinct c from unnest(new.channels) c order by c);

  -- (An unknown model is left to the foreign key.)
  select * into chosen from public.chat_models m where m.id = new.model;
  if found then
    -- A model taken off the list stays on the bots that have it until they change model.
    if not chosen.enabled and (tg_op = 'INSERT' or new.model is distinct from old.model) then
      raise exception 'the model % is not available', new.model
        using errcode = 'invalid_parameter_value', hint = 'See public.chat_models for the enabled models.';
    end if;
    if new.max_tokens > chosen.max_output_tokens then
      raise exception 'max_tokens is at most % for the model %', chosen.max_output_tokens, new.model
        using errcode = 'invalid_parameter_value';
    end if;
  end if;

  if tg_op = 'INSERT' then
    -- Serialises bot creation per org, so concurrent inserts cannot pass the limit together.
    perform 1 from public.organizations o where o.id = new.org_id for no key update;
    if (select count(*) from public.bots b where b.org_id = new.org_id) >= 50 then
      raise exception 'an organization has at most 50 bots' using errcode = 'invalid_parameter_value',
        hint = 'Delete bots you no longer use.';
    end if;
  end if;
  return new;
end;
$$;

create trigger bots_validate before insert or update of model, max_tokens, channels on public.bots
  for each row execute function private.validate_bot();
create trigger bots_set_updated_at before update on public.bots
  for each row execute function private.set_updated_at();
create trigger bots_audit after insert or update or delete on public.bots
  for each row execute function private.audit_row_change();

-- The collections a bot answers from; none means every document of the org.
-- Deleting a collection a bot uses is refused (no action) rather than
-- cascaded: a bot left with no collections would answer from every document.
create table public.bot_collections (
  bot_id uuid not null,
  collection_id uuid not null,
  org_id uuid not null references public.organizations (id) on delete cascade,
  created_at timestamptz not null default now(),
  primary key (bot_id, collection_id),
  constraint bot_collections_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade,
  constraint bot_collections_collection_fk foreign key (collection_id, org_id) references public.collections (id, org_id)
);
comment on table public.bot_collections is 'The collections a bot answers from (none: all of the org''s documents). Members read; admins link and unlink.';
create index bot_collections_org_id_idx on public.bot_collections (org_id, bot_id);
create index bot_collections_collection_idx on public.bot_collections (collection_id, org_id);

create trigger bot_collections_audit after insert or update or delete on public.bot_collections
  for each row execute function private.audit_row_change('org_id', 'bot_id', 'collection_id');

alter table public.bots enable row level security;
alter table public.bot_collections enable row level security;
revoke all on public.bots, public.bot_collections from anon, authenticated;
grant select, delete on public.bots, public.bot_collections to authenticated;
grant insert (org_id, name, slug, system_prompt, greeting, language, model, temperature, max_tokens,
              manager_contact, escalation_action, channels, enabled)
  on public.bots to authenticated;
grant update (name, slug, system_prompt, greeting, language, model, temperature, max_tokens,
              manager_contact, escalation_action, channels, enabled)
  on public.bots to authenticated;
grant insert (bot_id, collection_id, org_id) on public.bot_collections to authenticated;

create policy "members and up can read their org's bots"
  on public.bots for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('bots.read'))));
create policy "admins and up can create bots"
  on public.bots for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));
create policy "admins and up can change bots"
  on public.bots for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('bots.manage'))))
  with check (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));
create policy "admins and up can delete bots"
  on public.bots for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));

create policy "members and up can read which collections their org's bots use"
  on public.bot_collections for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('bots.read'))));
create policy "admins and up can link collections to bots"
  on public.bot_collections for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));
create policy "admins and up can unlink collections from bots"
  on public.bot_collections for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('bots.manage'))));

-- ---------------------------------------------------------------------------
-- Telegram, per bot. The token and the webhook secret are needed in clear
-- (to call Telegram, and to compare the X-Telegram-Bot-Api-Secret-Token
-- header), so they live where no API role can read them.
-- ---------------------------------------------------------------------------

create table private.bot_telegram (
  bot_id uuid primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_token text not null unique
    constraint bot_telegram_token_format check (bot_token ~ '^[0-9]{5,15}:[A-Za-z0-9_-]{30,100}$'),
  secret_token text not null constraint bot_telegram_secret_format check (length(secret_token) between 1 and 256 and secret_token ~ '^[A-Za-z0-9_-]+$'),
  created_at timestamptz not null default now(),
  constraint bot_telegram_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade
);
create index bot_telegram_org_id_idx on private.bot_telegram (org_id);
revoke all on private.bot_telegram from public, anon, authenticated, service_role;

create function private.set_bot_telegram(bot_id uuid, bot_token text)
returns table (secret_token text, webhook_path text)
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.bots;
  fresh_secret text := pg_catalog.encode(extensions.gen_random_bytes(32), 'hex');
begin
  select * into target from public.bots b where b.id = set_bot_telegram.bot_id for update;
  if not found then
    raise exception 'bot not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  if set_bot_telegram.bot_token is null or set_bot_telegram.bot_token !~ '^[0-9]{5,15}:[A-Za-z0-9_-]{30,100}$' then
    raise exception 'not a Telegram bot token' using errcode = 'invalid_parameter_value',
      hint = 'The token @BotFather gives: digits, a colon, then 30 to 100 letters, digits, _ or -.';
  end if;
  if exists (
    select 1 from private.bot_telegram t
    where t.bot_token = set_bot_telegram.bot_token and t.bot_id <> target.id
  ) then
    raise exception 'this Telegram bot is already connected to another bot' using errcode = 'unique_violation';
  end if;

  insert into private.bot_telegram as t (bot_id, org_id, bot_token, secret_token)
  values (target.id, target.org_id, set_bot_telegram.bot_token, fresh_secret)
  on conflict on constraint bot_telegram_pkey do update
    set bot_token = excluded.bot_token, secret_token = excluded.secret_token, created_at = pg_catalog.now();
  -- Connecting Telegram is asking for the channel: switch it on.
  update public.bots b
  set telegram_connected_at = pg_catalog.now(),
      channels = case when 'telegram' = any (b.channels) then b.channels else b.channels || array['telegram'] end
  where b.id = target.id;

  return query select fresh_secret, '/functions/v1/chat/telegram/' || target.id::text;
end;
$$;

create function public.set_bot_telegram(bot_id uuid, bot_token text)
returns table (secret_token text, webhook_path text)
language sql
security invoker
set search_path = ''
as $$
  select * from private.set_bot_telegram(set_bot_telegram.bot_id, set_bot_telegram.bot_token);
$$;
comment on function public.set_bot_telegram(uuid, text) is 'Connects a Telegram bot (token from @BotFather) to a bot and switches its telegram channel on; returns a fresh webhook secret (once) and the webhook path to register with Telegram. Admins.';

create function private.clear_bot_telegram(bot_id uuid)
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
  delete from private.bot_telegram t where t.bot_id = target.id;
  if not found then
    return false;
  end if;
  update public.bots b set telegram_connected_at = null where b.id = target.id;
  return true;
end;
$$;

create function public.clear_bot_telegram(bot_id uuid)
returns boolean
language sql
security invoker
set search_path = ''
as $$
  select private.clear_bot_telegram(clear_bot_telegram.bot_id);
$$;
comment on function public.clear_bot_telegram(uuid) is 'Forgets a bot''s Telegram token and secret (true when one was connected). Admins. The channel setting is left as it is.';

-- For the Telegram webhook (service role): what it needs to check the
-- secret header and answer; no row when the bot has no Telegram connection.
create function private.telegram_bot_for_webhook(bot_id uuid)
returns table (org_id uuid, bot_token text, secret_token text, enabled boolean, telegram_enabled boolean, greeting text)
language sql
stable
security definer
set search_path = ''
as $$
  select t.org_id, t.bot_token, t.secret_token, b.enabled, 'telegram' = any (b.channels), b.greeting
  from private.bot_telegram t
  join public.bots b on b.id = t.bot_id
  where t.bot_id = telegram_bot_for_webhook.bot_id;
$$;

-- ---------------------------------------------------------------------------
-- Conversations and messages. No API role writes them directly: the chat
-- functions below do, after authorising the caller.
-- ---------------------------------------------------------------------------

create type public.chat_channel as enum ('web', 'telegram', 'voice', 'api');
create type public.conversation_status as enum ('open', 'escalated', 'closed');
create type public.message_role as enum ('user', 'assistant', 'system');

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  bot_id uuid not null,
  channel public.chat_channel not null,
  -- The end user's id on the channel (e.g. a Telegram chat id).
  external_user_id text constraint conversations_external_user_id_length check (length(external_user_id) between 1 and 200),
  -- The signed-in user chatting from the dashboard.
  user_id uuid references auth.users (id) on delete set null,
  api_key_id uuid,
  status public.conversation_status not null default 'open',
  escalated_at timestamptz,
  escalation_reason text constraint conversations_escalation_reason_length check (length(escalation_reason) between 1 and 500),
  closed_at timestamptz,
  message_count integer not null default 0 constraint conversations_message_count check (message_count >= 0),
  last_message_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint conversations_id_org_id_key unique (id, org_id),
  constraint conversations_bot_fk foreign key (bot_id, org_id) references public.bots (id, org_id) on delete cascade,
  constraint conversations_api_key_fk foreign key (api_key_id, org_id) references public.api_keys (id, org_id)
    on delete set null (api_key_id),
  constraint conversations_closed_at check ((status = 'closed') = (closed_at is not null)),
  constraint conversations_escalation check ((escalated_at is null) = (escalation_reason is null)),
  constraint conversations_escalated_at check (status <> 'escalated' or escalated_at is not null)
);
comment on table public.conversations is 'A chat between a bot and one end user on one channel. Members read; written by private.chat_prepare/chat_finish and closed with close_conversation().';
create index conversations_org_id_idx on public.conversations (org_id, last_message_at desc nulls last);
create index conversations_bot_idx on public.conversations (bot_id, org_id);
create index conversations_user_idx on public.conversations (user_id);
create index conversations_api_key_idx on public.conversations (api_key_id, org_id);
-- Telegram (and any channel with an end-user id) keeps one live conversation per chat.
create unique index conversations_one_live_per_end_user on public.conversations (bot_id, channel, external_user_id)
  where external_user_id is not null and status in ('open', 'escalated');

create table public.messages (
  id bigint generated always as identity primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  conversation_id uuid not null,
  role public.message_role not null,
  content text not null constraint messages_content_length check (length(content) between 1 and 32000),
  tokens_in integer not null default 0 constraint messages_tokens_in check (tokens_in >= 0),
  tokens_out integer not null default 0 constraint messages_tokens_out check (tokens_out >= 0),
  latency_ms integer constraint messages_latency_ms check (latency_ms >= 0),
  model text constraint messages_model_length check (length(model) between 1 and 100),
  -- [{document_id, chunk_id, page_start, ...}] as the chat function cites them.
  citations jsonb not null default '[]'
    constraint messages_citations_list check (
      case when jsonb_typeof(citations) = 'array' then jsonb_array_length(citations) <= 50 else false end
    ),
  created_at timestamptz not null default now(),
  constraint messages_conversation_fk foreign key (conversation_id, org_id)
    references public.conversations (id, org_id) on delete cascade
);
comment on table public.messages is 'The messages of a conversation, with tokens, latency, model and citations. Members read; written by the chat functions. Not audited row by row.';
create index messages_conversation_idx on public.messages (conversation_id, id);
create index messages_org_id_idx on public.messages (org_id, created_at desc);

-- Counters for listings, kept by the database whoever inserts.
create function private.count_conversation_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  update public.conversations c
  set message_count = c.message_count + 1,
      last_message_at = greatest(c.last_message_at, new.created_at)
  where c.id = new.conversation_id;
  return null;
end;
$$;

create trigger messages_count after insert on public.messages
  for each row execute function private.count_conversation_message();
create trigger conversations_set_updated_at before update on public.conversations
  for each row execute function private.set_updated_at();
-- A conversation is audited when it starts, changes state and is deleted;
-- its message counters are not changes anyone made.
create trigger conversations_audit after insert or delete on public.conversations
  for each row execute function private.audit_row_change();
create trigger conversations_audit_update
  after update of org_id, bot_id, channel, external_user_id, user_id, status, escalated_at, escalation_reason, closed_at
  on public.conversations
  for each row execute function private.audit_row_change();

insert into private.audit_exempt_tables (table_name, reason) values
  ('messages', 'chat transcript appended by the chat functions; the conversation''s start, state changes and deletion are audited');

alter table public.conversations enable row level security;
alter table public.messages enable row level security;
revoke all on public.conversations, public.messages from anon, authenticated;
grant select on public.conversations, public.messages to authenticated;

create policy "members and up can read their org's conversations"
  on public.conversations for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('conversations.read'))));
create policy "members and up can read their org's messages"
  on public.messages for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('conversations.read'))));

create function private.close_conversation(conversation_id uuid)
returns public.conversations
language plpgsql
security definer
set search_path = ''
as $$
declare
  target public.conversations;
begin
  select * into target from public.conversations c where c.id = close_conversation.conversation_id for update;
  if not found then
    raise exception 'conversation not found' using errcode = 'no_data_found';
  end if;
  perform private.require_permission(target.org_id, 'bots.manage');
  if target.status <> 'closed' then
    update public.conversations c set status = 'closed', closed_at = pg_catalog.now()
    where c.id = target.id
    returning * into target;
  end if;
  return target;
end;
$$;

create function public.close_conversation(conversation_id uuid)
returns public.conversations
language sql
security invoker
set search_path = ''
as $$
  select * from private.close_conversation(close_conversation.conversation_id);
$$;
comment on function public.close_conversation(uuid) is 'Closes a conversation (admins); the end user''s next message starts a new one. Closing twice is a no-op.';

-- ---------------------------------------------------------------------------
-- Usage metering: per bot, conversation and user too.
-- ---------------------------------------------------------------------------

alter table public.usage_events
  add column bot_id uuid,
  add column conversation_id uuid,
  add column user_id uuid references auth.users (id) on delete set null,
  add constraint usage_events_bot_fk foreign key (bot_id, org_id)
    references public.bots (id, org_id) on delete set null (bot_id),
  add constraint usage_events_conversation_fk foreign key (conversation_id, org_id)
    references public.conversations (id, org_id) on delete set null (conversation_id);
create index usage_events_bot_idx on public.usage_events (bot_id);
create index usage_events_conversation_idx on public.usage_events (conversation_id);
create index usage_events_user_idx on public.usage_events (user_id);
-- The quota check sums an org's chat tokens since the period started.
create index usage_events_org_kind_idx on public.usage_events (org_id, kind, created_at);

-- Existing callers pass the first seven arguments by position; they keep working.
drop function private.record_usage(uuid, text, text, integer, integer, uuid, uuid);
create function private.record_usage(
  org_id uuid, kind text, model text, tokens_in integer, tokens_out integer,
  document_id uuid default null, api_key_id uuid default null,
  bot_id uuid default null, conversation_id uuid default null, user_id uuid default null
)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id, bot_id, conversation_id, user_id)
  values (org_id, kind, model, tokens_in, tokens_out, document_id, api_key_id, bot_id, conversation_id, user_id);
$$;
comment on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid, uuid, uuid, uuid) is 'Meters one model call: org, kind (embedding, chat, speech), model, tokens, and what it was for.';
revoke execute on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid, uuid, uuid, uuid) from public;
grant execute on function private.record_usage(uuid, text, text, integer, integer, uuid, uuid, uuid, uuid, uuid) to service_role;

-- Usage summaries run as the caller: RLS on usage_events (usage.read, admins
-- and up) decides; a caller who may not read the org's usage gets 42501
-- rather than zeros that look real.
create function private.require_usage_reader(org_id uuid)
returns void
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  if require_usage_reader.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if auth.role() is distinct from 'service_role'
    and not (require_usage_reader.org_id = any (array(select private.readable_org_ids('usage.read')))) then
    raise exception 'you may not read this organization''s usage' using errcode = 'insufficient_privilege';
  end if;
end;
$$;
grant execute on function private.require_usage_reader(uuid) to authenticated, service_role;

create function public.usage_totals(org_id uuid)
returns table (
  kind text,
  tokens_in_24h bigint,
  tokens_out_24h bigint,
  tokens_in_7d bigint,
  tokens_out_7d bigint
)
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  perform private.require_usage_reader(usage_totals.org_id);
  return query
  select k.kind,
    coalesce(sum(u.tokens_in) filter (where u.created_at > pg_catalog.now() - interval '24 hours'), 0)::bigint,
    coalesce(sum(u.tokens_out) filter (where u.created_at > pg_catalog.now() - interval '24 hours'), 0)::bigint,
    coalesce(sum(u.tokens_in), 0)::bigint,
    coalesce(sum(u.tokens_out), 0)::bigint
  -- The kinds of usage_events_kind: every kind has a row, zeros included.
  from unnest(array['chat', 'embedding', 'speech']) as k(kind)
  left join public.usage_events u
    on u.kind = k.kind
    and u.org_id = usage_totals.org_id
    and u.created_at > pg_catalog.now() - interval '7 days'
  group by k.kind
  order by k.kind;
end;
$$;
comment on function public.usage_totals(uuid) is 'Tokens in and out per kind over the last 24 hours and 7 days (admins and up: usage.read).';

create function public.usage_daily(org_id uuid, from_date date, to_date date, time_zone text default null)
returns table (day date, kind text, tokens_in bigint, tokens_out bigint)
language plpgsql
stable
security invoker
set search_path = ''
as $$
declare
  -- Organizations have no time zone yet: null means UTC.
  zone text := coalesce(usage_daily.time_zone, 'UTC');
  range_start timestamptz;
  range_end timestamptz;
begin
  perform private.require_usage_reader(usage_daily.org_id);
  if from_date is null or to_date is null then
    raise exception 'from_date and to_date are required' using errcode = 'invalid_parameter_value';
  end if;
  if from_date > to_date then
    raise exception 'from_date must not be after to_date' using errcode = 'invalid_parameter_value';
  end if;
  if to_date - from_date + 1 > 366 then
    raise exception 'a usage range spans at most 366 days (asked for %)', to_date - from_date + 1
      using errcode = 'invalid_parameter_value';
  end if;
  if not exists (select 1 from pg_catalog.pg_timezone_names z where z.name = zone) then
    raise exception 'unknown time zone: %', zone
      using errcode = 'invalid_parameter_value', hint = 'Use an IANA name such as Europe/Berlin.';
  end if;
  -- Local midnights, so a day is 23 or 25 hours long across a DST change.
  range_start := from_date::timestamp at time zone zone;
  range_end := (to_date + 1)::timestamp at time zone zone;

  return query
  with days as (
    select d::date as day from pg_catalog.generate_series(from_date::timestamp, to_date::timestamp, interval '1 day') d
  ),
  totals as (
    select (u.created_at at time zone zone)::date as day, u.kind,
      sum(u.tokens_in)::bigint as tokens_in, sum(u.tokens_out)::bigint as tokens_out
    from public.usage_events u
    where u.org_id = usage_daily.org_id and u.created_at >= range_start and u.created_at < range_end
    group by 1, 2
  )
  select days.day, k.kind, coalesce(t.tokens_in, 0)::bigint, coalesce(t.tokens_out, 0)::bigint
  from days
  cross join unnest(array['chat', 'embedding', 'speech']) as k(kind)
  left join totals t on t.day = days.day and t.kind = k.kind
  order by days.day, k.kind;
end;
$$;
comment on function public.usage_daily(uuid, date, date, text) is 'Tokens in and out per day and kind (zeros for empty days), days cut in time_zone (default UTC); at most 366 days. Admins and up (usage.read).';

grant execute on function public.usage_totals(uuid), public.usage_daily(uuid, date, date, text) to authenticated, service_role;

-- ---------------------------------------------------------------------------
-- Plans and subscriptions (the minimum the quotas need; billing extends it).
-- ---------------------------------------------------------------------------

create table public.plans (
  id text primary key constraint plans_id_format check (id ~ '^[a-z][a-z0-9_]{1,31}$'),
  name text not null constraint plans_name_length check (length(btrim(name)) between 1 and 100),
  monthly_chat_tokens bigint not null constraint plans_monthly_chat_tokens check (monthly_chat_tokens >= 0),
  monthly_embedding_tokens bigint not null constraint plans_monthly_embedding_tokens check (monthly_embedding_tokens >= 0),
  monthly_call_minutes integer not null constraint plans_monthly_call_minutes check (monthly_call_minutes >= 0),
  max_documents integer not null constraint plans_max_documents check (max_documents >= 0),
  price_cents integer not null constraint plans_price_cents check (price_cents >= 0),
  currency char(3) not null default 'USD' constraint plans_currency_format check (currency ~ '^[A-Z]{3}$')
);
comment on table public.plans is 'What each plan includes per month. Changed only by migrations. Only monthly_chat_tokens is enforced so far (by private.chat_prepare).';

insert into public.plans (id, name, monthly_chat_tokens, monthly_embedding_tokens, monthly_call_minutes, max_documents, price_cents, currency) values
  ('free',     'Free',     200000,     1000000,   30,   50,    0,     'USD'),
  ('pro',      'Pro',      5000000,    50000000,  1000, 2000,  4900,  'USD'),
  ('business', 'Business', 50000000,   500000000, 10000, 20000, 29900, 'USD');

create type public.subscription_status as enum ('active', 'canceled');

create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  plan_id text not null references public.plans (id),
  status public.subscription_status not null default 'active',
  current_period_start timestamptz not null,
  current_period_end timestamptz not null,
  created_at timestamptz not null default now(),
  canceled_at timestamptz,
  constraint subscriptions_period check (current_period_end > current_period_start),
  constraint subscriptions_canceled_at check ((status = 'canceled') = (canceled_at is not null))
);
comment on table public.subscriptions is 'An org''s plan over time; exactly one active per org. Admins read (billing.read); written by the platform only.';
create index subscriptions_org_id_idx on public.subscriptions (org_id, created_at desc);
create index subscriptions_plan_idx on public.subscriptions (plan_id);
create unique index subscriptions_one_active_per_org on public.subscriptions (org_id) where status = 'active';

create trigger subscriptions_audit after insert or update or delete on public.subscriptions
  for each row execute function private.audit_row_change();

alter table public.plans enable row level security;
alter table public.subscriptions enable row level security;
revoke all on public.plans from anon, authenticated, service_role;
grant select on public.plans to authenticated, service_role;
revoke all on public.subscriptions from anon, authenticated;
grant select on public.subscriptions to authenticated;

create policy "signed-in users can read the plans"
  on public.plans for select to authenticated
  using (true);
create policy "admins and up can read their org's subscriptions"
  on public.subscriptions for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('billing.read'))));

-- A month in UTC, so the period does not depend on the session's time zone.
create function private.add_months_utc(start_at timestamptz, months integer)
returns timestamptz
language sql
immutable
security invoker
set search_path = ''
as $$
  select ((start_at at time zone 'UTC') + pg_catalog.make_interval(months => months)) at time zone 'UTC';
$$;

create function private.start_free_subscription()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end)
  values (new.id, 'free', 'active', pg_catalog.now(), private.add_months_utc(pg_catalog.now(), 1));
  return null;
end;
$$;

create trigger organizations_start_free_subscription after insert on public.organizations
  for each row execute function private.start_free_subscription();

insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end)
select o.id, 'free', 'active', now(), private.add_months_utc(now(), 1)
from public.organizations o
where not exists (select 1 from public.subscriptions s where s.org_id = o.id and s.status = 'active');

-- The org's chat allowance now: its active plan (free without one), the
-- current monthly period (rolled forward month by month from the stored one
-- until billing renews periods itself), and the chat tokens used in it.
create function private.chat_quota(org_id uuid)
returns table (plan_id text, monthly_chat_tokens bigint, period_start timestamptz, period_end timestamptz, used_chat_tokens bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  active public.subscriptions;
  allowance bigint;
  months_elapsed integer;
  span interval;
begin
  select * into active from public.subscriptions s
  where s.org_id = chat_quota.org_id and s.status = 'active';
  if not found then
    plan_id := 'free';
    period_start := pg_catalog.date_trunc('month', pg_catalog.now() at time zone 'UTC') at time zone 'UTC';
    period_end := private.add_months_utc(period_start, 1);
  else
    plan_id := active.plan_id;
    period_start := active.current_period_start;
    period_end := active.current_period_end;
    if pg_catalog.now() >= period_end then
      span := pg_catalog.age(pg_catalog.now() at time zone 'UTC', active.current_period_start at time zone 'UTC');
      months_elapsed := (extract(year from span) * 12 + extract(month from span))::integer;
      -- Month ends clamp (Jan 31 + 1 month = Feb 28): step until the period holds now.
      while private.add_months_utc(active.current_period_start, months_elapsed + 1) <= pg_catalog.now() loop
        months_elapsed := months_elapsed + 1;
      end loop;
      period_start := private.add_months_utc(active.current_period_start, months_elapsed);
      period_end := private.add_months_utc(active.current_period_start, months_elapsed + 1);
    end if;
  end if;
  select p.monthly_chat_tokens into allowance from public.plans p where p.id = chat_quota.plan_id;
  monthly_chat_tokens := allowance;
  select coalesce(sum(u.tokens_in::bigint + u.tokens_out::bigint), 0) into used_chat_tokens
  from public.usage_events u
  where u.org_id = chat_quota.org_id and u.kind = 'chat'
    and u.created_at >= chat_quota.period_start and u.created_at < chat_quota.period_end;
  return next;
end;
$$;
revoke execute on function private.chat_quota(uuid) from public;
grant execute on function private.chat_quota(uuid) to service_role;

-- ---------------------------------------------------------------------------
-- Rate limits, kept in the database so they hold across function instances.
--
-- Sliding window, approximated as Cloudflare does: the hits of the current
-- fixed window plus those of the previous one weighted by the share of it
-- still inside the sliding window. Taking a hit is one conditional upsert,
-- so concurrent callers cannot both take the last slot; a refused hit is not
-- counted. Windows are at most 30 minutes, so a purge of windows older than
-- an hour never drops a previous window still in use.
-- ---------------------------------------------------------------------------

create table private.rate_limit_hits (
  bucket text not null constraint rate_limit_hits_bucket_length check (length(bucket) between 1 and 300),
  window_start timestamptz not null,
  hits integer not null constraint rate_limit_hits_count check (hits >= 0),
  primary key (bucket, window_start)
);
create index rate_limit_hits_window_idx on private.rate_limit_hits (window_start);
revoke all on private.rate_limit_hits from public, anon, authenticated, service_role;

-- The clock is an argument so the window arithmetic can be tested at fixed times.
create function private.take_rate_limit_at(bucket text, max_hits integer, window_seconds integer, at timestamptz)
returns table (allowed boolean, remaining integer, retry_after_seconds integer)
language plpgsql
security definer
set search_path = ''
as $$
declare
  at_epoch numeric := extract(epoch from take_rate_limit_at.at);
  current_start timestamptz;
  elapsed numeric;
  -- The previous window's hits times the share of it still inside the
  -- sliding window, times window_seconds: kept scaled so every comparison is
  -- exact (no rounding lets a hit through or keeps one out).
  carried numeric;
  previous_hits integer;
  current_hits integer;
  counted integer;
  wait numeric;
begin
  if take_rate_limit_at.bucket is null or length(take_rate_limit_at.bucket) not between 1 and 300 then
    raise exception 'a rate limit bucket has 1 to 300 characters' using errcode = 'invalid_parameter_value';
  end if;
  if max_hits is null or max_hits not between 1 and 1000000 then
    raise exception 'max_hits must be between 1 and 1000000' using errcode = 'invalid_parameter_value';
  end if;
  if window_seconds is null or window_seconds not between 1 and 1800 then
    raise exception 'window_seconds must be between 1 and 1800' using errcode = 'invalid_parameter_value';
  end if;
  if take_rate_limit_at.at is null then
    raise exception 'at is required' using errcode = 'invalid_parameter_value';
  end if;

  current_start := pg_catalog.to_timestamp((floor(at_epoch / window_seconds) * window_seconds)::double precision);
  elapsed := at_epoch - extract(epoch from current_start);
  select h.hits into previous_hits from private.rate_limit_hits h
  where h.bucket = take_rate_limit_at.bucket
    and h.window_start = current_start - pg_catalog.make_interval(secs => window_seconds);
  previous_hits := coalesce(previous_hits, 0);
  carried := previous_hits * (window_seconds - elapsed);

  -- Allowed when carried / window + hits + 1 <= max_hits.
  insert into private.rate_limit_hits as h (bucket, window_start, hits)
  select take_rate_limit_at.bucket, current_start, 1
  where carried + window_seconds <= max_hits::numeric * window_seconds
  on conflict on constraint rate_limit_hits_pkey do update
    set hits = h.hits + 1
    where carried + (h.hits + 1)::numeric * window_seconds <= max_hits::numeric * window_seconds
  returning h.hits into counted;

  if counted is not null then
    allowed := true;
    remaining := floor((max_hits::numeric * window_seconds - carried - counted::numeric * window_seconds) / window_seconds)::integer;
    retry_after_seconds := 0;
    return next;
    return;
  end if;

  select h.hits into current_hits from private.rate_limit_hits h
  where h.bucket = take_rate_limit_at.bucket and h.window_start = current_start;
  current_hits := coalesce(current_hits, 0);
  if current_hits + 1 <= max_hits and previous_hits > 0 then
    -- Room in this window: wait until the previous window's weight has decayed enough.
    wait := window_seconds - elapsed - (max_hits - current_hits - 1)::numeric * window_seconds / previous_hits;
  else
    -- This window is full: wait for the next one, and there for this
    -- window's hits (its "previous") to weigh max_hits - 1 or less.
    wait := (window_seconds - elapsed)
      + greatest((current_hits - max_hits + 1)::numeric * window_seconds / current_hits, 0);
  end if;
  allowed := false;
  remaining := 0;
  retry_after_seconds := greatest(ceil(wait), 1)::integer;
  return next;
end;
$$;

create function private.take_rate_limit(bucket text, max_hits integer, window_seconds integer)
returns table (allowed boolean, remaining integer, retry_after_seconds integer)
language sql
security definer
set search_path = ''
as $$
  select * from private.take_rate_limit_at(take_rate_limit.bucket, take_rate_limit.max_hits, take_rate_limit.window_seconds, pg_catalog.now());
$$;
comment on function private.take_rate_limit(text, integer, integer) is 'Takes one hit from a bucket (sliding-window approximation): allowed, hits remaining, and when refused the seconds to wait (at least 1). A refused hit is not counted.';

create function private.purge_rate_limit_hits()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  purged integer;
begin
  delete from private.rate_limit_hits h where h.window_start < pg_catalog.now() - interval '1 hour';
  get diagnostics purged = row_count;
  return purged;
end;
$$;

revoke execute on function
  private.take_rate_limit_at(text, integer, integer, timestamptz),
  private.take_rate_limit(text, integer, integer),
  private.purge_rate_limit_hits()
from public;
grant execute on function private.take_rate_limit(text, integer, integer) to service_role;

select cron.schedule('purge-rate-limit-hits', '*/10 * * * *', 'select private.purge_rate_limit_hits()');

-- A key's requests per minute (chat and chat/completions).
alter table public.api_keys
  add column rate_limit_per_minute integer not null default 60
    constraint api_keys_rate_limit_per_minute check (rate_limit_per_minute between 1 and 10000);
comment on column public.api_keys.rate_limit_per_minute is 'Requests a minute the key may make to the chat endpoints (sliding window).';
-- The audited columns of api_keys now include the limit.
drop trigger api_keys_audit_update on public.api_keys;
create trigger api_keys_audit_update
  after update of org_id, name, prefix, scopes, created_by, created_at, expires_at, revoked_at, revoked_by, rate_limit_per_minute
  on public.api_keys
  for each row execute function private.audit_row_change();

-- ---------------------------------------------------------------------------
-- The chat core, for the chat edge function. Called as the signed-in user
-- (role authenticated, the user's claims) or as the service role (a bot API
-- key or the Telegram webhook; claims {role, api_key_id?}). Definer, so they
-- write what no API role may write, and they authorise the caller themselves.
-- ---------------------------------------------------------------------------

-- The bot the OpenAI-compatible endpoint's `model` names, by slug or id.
create function private.bot_for_api_key(model text, org_id uuid)
returns uuid
language sql
stable
security definer
set search_path = ''
as $$
  select b.id from public.bots b
  where b.org_id = bot_for_api_key.org_id
    and (b.slug = lower(btrim(bot_for_api_key.model)) or b.id::text = lower(btrim(bot_for_api_key.model)))
  limit 1;
$$;

create function private.chat_prepare(
  bot_id uuid,
  conversation_id uuid,
  channel public.chat_channel,
  external_user_id text,
  api_key_id uuid,
  user_message text
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
-- Arguments are always written chat_prepare.<name>; a bare name is a column
-- (the conflict target below names the partial index's columns).
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

  select * into quota from private.chat_quota(bot.org_id);
  if quota.used_chat_tokens >= quota.monthly_chat_tokens then
    return jsonb_build_object('ok', false, 'code', 'quota_exceeded',
      'message', format('The organization has used its %s chat tokens of this period.', quota.monthly_chat_tokens),
      'resets_at', quota.period_end);
  end if;

  if conversation.id is null and chat_prepare.external_user_id is not null then
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
comment on function private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text) is 'Before the model is called: authorises the caller, refuses ({ok: false, code}) a disabled bot, a channel that is off, a closed conversation, a caller over its rate limit or an org over its chat quota, else continues or opens the conversation, stores the user''s message and returns the bot, its collections and the last 20 messages.';

create function private.chat_finish(
  conversation_id uuid,
  content text,
  tokens_in integer,
  tokens_out integer,
  latency_ms integer,
  model text,
  citations jsonb,
  escalation_reason text default null
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
  end if;

  if chat_finish.content is null or length(btrim(chat_finish.content)) = 0 or length(chat_finish.content) > 32000 then
    raise exception 'an answer has 1 to 32000 characters' using errcode = 'invalid_parameter_value';
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

  select * into bot from public.bots b where b.id = conversation.bot_id;

  -- Stored even if an admin closed the conversation meanwhile: the tokens were spent.
  insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, latency_ms, model, citations)
  values (conversation.org_id, conversation.id, 'assistant', chat_finish.content, chat_finish.tokens_in,
          chat_finish.tokens_out, chat_finish.latency_ms, chat_finish.model, cited)
  returning id into new_message_id;

  perform private.record_usage(
    conversation.org_id, 'chat', coalesce(chat_finish.model, bot.model), chat_finish.tokens_in, chat_finish.tokens_out,
    null, conversation.api_key_id, conversation.bot_id, conversation.id, conversation.user_id);

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
comment on function private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text) is 'After the model answered: stores the answer, meters the tokens (kind chat) and, with an escalation reason, escalates the conversation once and runs the bot''s escalation action.';

revoke execute on function
  private.set_bot_telegram(uuid, text),
  private.clear_bot_telegram(uuid),
  private.telegram_bot_for_webhook(uuid),
  private.close_conversation(uuid),
  private.bot_for_api_key(text, uuid),
  private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text),
  private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text)
from public;
grant execute on function
  public.set_bot_telegram(uuid, text),
  public.clear_bot_telegram(uuid),
  public.close_conversation(uuid),
  private.set_bot_telegram(uuid, text),
  private.clear_bot_telegram(uuid),
  private.close_conversation(uuid)
to authenticated;
grant execute on function
  private.chat_prepare(uuid, uuid, public.chat_channel, text, uuid, text),
  private.chat_finish(uuid, text, integer, integer, integer, text, jsonb, text)
to authenticated, service_role;
grant execute on function
  private.telegram_bot_for_webhook(uuid),
  private.bot_for_api_key(text, uuid)
to service_role;

-- ---------------------------------------------------------------------------
-- The catalog
-- ---------------------------------------------------------------------------

create table public.catalog_categories (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  parent_id uuid,
  name text not null constraint catalog_categories_name_length check (length(name) between 1 and 100 and name = btrim(name)),
  position integer not null default 0 constraint catalog_categories_position_range check (position between -1000000 and 1000000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint catalog_categories_id_org_id_key unique (id, org_id),
  constraint catalog_categories_name_unique unique nulls not distinct (org_id, parent_id, name),
  -- No action: deleting a category that still has subcategories is refused
  -- (move or delete them first), so a click cannot wipe a subtree.
  constraint catalog_categories_parent_fk foreign key (parent_id, org_id) references public.catalog_categories (id, org_id)
);
comment on table public.catalog_categories is 'The product category tree of an org (at most 8 levels, 1000 categories). Viewers read; members write.';
create index catalog_categories_parent_idx on public.catalog_categories (parent_id, org_id);

-- Whoever writes: no cycles, at most 8 levels, at most 1000 per org.
create function private.validate_catalog_category()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  levels_above integer := 0;
  subtree_height integer := 1;
  makes_cycle boolean := false;
begin
  -- Refused by RLS after this trigger; tell nothing about another org's tree.
  if auth.role() = 'authenticated' and not private.has_permission(new.org_id, 'catalog.write') then
    return new;
  end if;
  -- Serialises tree changes per org, so two concurrent moves cannot make a cycle together.
  perform 1 from public.organizations o where o.id = new.org_id for no key update;

  if tg_op = 'INSERT' and (select count(*) from public.catalog_categories c where c.org_id = new.org_id) >= 1000 then
    raise exception 'an organization has at most 1000 catalog categories' using errcode = 'invalid_parameter_value';
  end if;

  if new.parent_id is not null then
    -- The new parent and its ancestors; the row itself among them is a cycle.
    with recursive ancestors (id, parent_id, depth) as (
      select c.id, c.parent_id, 1 from public.catalog_categories c
      where c.id = new.parent_id and c.org_id = new.org_id
      union all
      select c.id, c.parent_id, a.depth + 1 from public.catalog_categories c
      join ancestors a on c.id = a.parent_id
      where a.depth < 20
    )
    select coalesce(max(a.depth), 0), coalesce(bool_or(a.id = new.id), false) into levels_above, makes_cycle
    from ancestors a;
    if makes_cycle then
      raise exception 'a category cannot be moved under itself or one of its subcategories'
        using errcode = 'invalid_parameter_value';
    end if;
  end if;

  if tg_op = 'UPDATE' then
    -- A moved category takes its subtree along.
    with recursive descendants (id, depth) as (
      select new.id, 1
      union all
      select c.id, d.depth + 1 from public.catalog_categories c
      join descendants d on c.parent_id = d.id
      where d.depth < 20
    )
    select max(d.depth) into subtree_height from descendants d;
  end if;
  if levels_above + subtree_height > 8 then
    raise exception 'categories nest at most 8 levels deep' using errcode = 'invalid_parameter_value';
  end if;
  return new;
end;
$$;

create trigger catalog_categories_validate before insert or update of parent_id, org_id on public.catalog_categories
  for each row execute function private.validate_catalog_category();
create trigger catalog_categories_set_updated_at before update on public.catalog_categories
  for each row execute function private.set_updated_at();
create trigger catalog_categories_audit after insert or update or delete on public.catalog_categories
  for each row execute function private.audit_row_change();

create table public.products (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  category_id uuid,
  name text not null constraint products_name_length check (length(name) between 1 and 200 and name = btrim(name)),
  description text not null default '' constraint products_description_length check (length(description) <= 5000),
  price numeric(12, 2) not null constraint products_price_range check (price >= 0),
  currency char(3) not null default 'USD' constraint products_currency_format check (currency ~ '^[A-Z]{3}$'),
  -- null: stock is not tracked.
  stock integer constraint products_stock_range check (stock >= 0),
  sku text constraint products_sku_format check (length(sku) between 1 and 64 and sku = btrim(sku)),
  url text constraint products_url_format check (length(url) <= 2000 and url ~ '^https?://[^\s]+$'),
  active boolean not null default true,
  search tsvector generated always as (
    setweight(to_tsvector('simple', name), 'A')
    || setweight(to_tsvector('simple', coalesce(sku, '')), 'A')
    || setweight(to_tsvector('simple', description), 'B')
  ) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint products_sku_unique unique (org_id, sku),
  -- A deleted category leaves its products uncategorised.
  constraint products_category_fk foreign key (category_id, org_id)
    references public.catalog_categories (id, org_id) on delete set null (category_id)
);
comment on table public.products is 'An org''s products. Viewers read; members write. Search with search_products().';
create index products_org_category_idx on public.products (org_id, category_id);
create index products_org_price_idx on public.products (org_id, price);
create index products_search_idx on public.products using gin (search);
create index products_name_trgm_idx on public.products using gin (name extensions.gin_trgm_ops);

create trigger products_set_updated_at before update on public.products
  for each row execute function private.set_updated_at();
create trigger products_audit after insert or update or delete on public.products
  for each row execute function private.audit_row_change();

alter table public.catalog_categories enable row level security;
alter table public.products enable row level security;
revoke all on public.catalog_categories, public.products from anon, authenticated;
grant select, delete on public.catalog_categories, public.products to authenticated;
grant insert (org_id, parent_id, name, position), update (parent_id, name, position)
  on public.catalog_categories to authenticated;
grant insert (org_id, category_id, name, description, price, currency, stock, sku, url, active),
      update (category_id, name, description, price, currency, stock, sku, url, active)
  on public.products to authenticated;

create policy "viewers and up can read their org's catalog categories"
  on public.catalog_categories for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('catalog.read'))));
create policy "members and up can create catalog categories"
  on public.catalog_categories for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));
create policy "members and up can change catalog categories"
  on public.catalog_categories for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('catalog.write'))))
  with check (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));
create policy "members and up can delete catalog categories"
  on public.catalog_categories for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));

create policy "viewers and up can read their org's products"
  on public.products for select to authenticated
  using (org_id = any (array(select private.readable_org_ids('catalog.read'))));
create policy "members and up can create products"
  on public.products for insert to authenticated
  with check (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));
create policy "members and up can change products"
  on public.products for update to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('catalog.write'))))
  with check (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));
create policy "members and up can delete products"
  on public.products for delete to authenticated
  using (org_id = any (array(select private.org_ids_with_permission('catalog.write'))));

-- What search_products returns (a type, since the result's org_id and
-- category_id share their names with the function's arguments).
create type public.product_search_result as (
  id uuid,
  org_id uuid,
  category_id uuid,
  name text,
  description text,
  price numeric(12, 2),
  currency text,
  stock integer,
  sku text,
  url text,
  active boolean,
  created_at timestamptz,
  updated_at timestamptz,
  category_name text,
  score double precision
);
comment on type public.product_search_result is 'A product found by search_products, with its category''s name and its score.';

-- Search as the caller (RLS applies). A product matches the text by full
-- text (name, SKU, description) or by trigram word similarity of the name,
-- so a typo still finds it; ranked by both. Without text: by name.
create function public.search_products(
  org_id uuid,
  query text default null,
  category_id uuid default null,
  include_subcategories boolean default true,
  min_price numeric default null,
  max_price numeric default null,
  active_only boolean default true,
  match_count integer default 10,
  offset_count integer default 0
)
returns setof public.product_search_result
language plpgsql
stable
security invoker
set search_path = ''
-- word_similarity >= 0.4 (the default, 0.6, misses one-letter typos in short words).
set pg_trgm.word_similarity_threshold = 0.4
as $$
declare
  text_query text := nullif(btrim(search_products.query), '');
  ts_query tsquery;
  category_ids uuid[];
begin
  if search_products.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if match_count is null or match_count not between 1 and 50 then
    raise exception 'match_count must be between 1 and 50' using errcode = 'invalid_parameter_value';
  end if;
  if offset_count is null or offset_count not between 0 and 10000 then
    raise exception 'offset_count must be between 0 and 10000' using errcode = 'invalid_parameter_value';
  end if;
  if min_price < 0 or max_price < 0 then
    raise exception 'prices are not negative' using errcode = 'invalid_parameter_value';
  end if;
  if min_price > max_price then
    raise exception 'min_price must not exceed max_price' using errcode = 'invalid_parameter_value';
  end if;
  if length(text_query) > 200 then
    raise exception 'a search text has at most 200 characters' using errcode = 'invalid_parameter_value';
  end if;

  if search_products.category_id is not null then
    if not exists (
      select 1 from public.catalog_categories c
      where c.id = search_products.category_id and c.org_id = search_products.org_id
    ) then
      raise exception 'category not found' using errcode = 'no_data_found';
    end if;
    with recursive tree (id, depth) as (
      select search_products.category_id, 1
      union all
      select c.id, t.depth + 1 from public.catalog_categories c
      join tree t on c.parent_id = t.id
      where coalesce(include_subcategories, true) and t.depth < 20
    )
    select array_agg(t.id) into category_ids from tree t;
  end if;
  if text_query is not null then
    ts_query := websearch_to_tsquery('simple', text_query);
  end if;

  return query
  select p.id, p.org_id, p.category_id, p.name, p.description, p.price, p.currency::text, p.stock, p.sku, p.url,
    p.active, p.created_at, p.updated_at, c.name,
    case when text_query is null then 0::double precision
      else (ts_rank_cd(p.search, ts_query) + extensions.word_similarity(text_query, p.name))::double precision
    end as score
  from public.products p
  left join public.catalog_categories c on c.id = p.category_id
  where p.org_id = search_products.org_id
    and (category_ids is null or p.category_id = any (category_ids))
    and (search_products.min_price is null or p.price >= search_products.min_price)
    and (search_products.max_price is null or p.price <= search_products.max_price)
    and (not coalesce(active_only, true) or p.active)
    and (text_query is null or p.search @@ ts_query or text_query operator(extensions.<%) p.name)
  order by score desc, p.name, p.id
  limit match_count
  offset offset_count;
end;
$$;
comment on function public.search_products(uuid, text, uuid, boolean, numeric, numeric, boolean, integer, integer) is 'Searches the org''s catalog the caller may read: text (full text, or trigram similarity of the name so typos match), category (with its subcategories), price range, active only; ranked, paged (match_count 1 to 50).';
grant execute on function public.search_products(uuid, text, uuid, boolean, numeric, numeric, boolean, integer, integer) to authenticated, service_role;

-- Products a chat question names, for the bots' answers. search_products
-- wants a search text (every word must match); a question names a product
-- among other words ("do you still have the wireless headphones?"), so here a
-- product matches when a word of 4+ letters of the question is a word of its
-- name, when its name as a whole appears in the question with typos or
-- plurals (trigram word similarity of the name within the question), or when
-- its SKU is quoted. Active products only, as the caller (RLS applies).
create function public.match_products(org_id uuid, question text, match_count integer default 3)
returns setof public.product_search_result
language plpgsql
stable
security invoker
set search_path = ''
set pg_trgm.word_similarity_threshold = 0.5
as $$
declare
  asked text := left(btrim(coalesce(match_products.question, '')), 1000);
  name_words tsquery;
begin
  if match_products.org_id is null then
    raise exception 'org_id is required' using errcode = 'invalid_parameter_value';
  end if;
  if match_count is null or match_count not between 1 and 20 then
    raise exception 'match_count must be between 1 and 20' using errcode = 'invalid_parameter_value';
  end if;
  if asked = '' then
    return;
  end if;
  -- Restricted to weight A: the words of the name, not of the description.
  select pg_catalog.to_tsquery('simple', string_agg(pg_catalog.quote_literal(w) || ':A', ' | '))
  into name_words
  from unnest(pg_catalog.tsvector_to_array(pg_catalog.to_tsvector('simple', asked))) w
  where length(w) >= 4;

  return query
  select p.id, p.org_id, p.category_id, p.name, p.description, p.price, p.currency::text, p.stock, p.sku, p.url,
    p.active, p.created_at, p.updated_at, c.name,
    (coalesce(ts_rank_cd(p.search, name_words), 0) + extensions.word_similarity(p.name, asked)
      + case when p.sku is not null and strpos(lower(asked), lower(p.sku)) > 0 then 1 else 0 end)::double precision
  from public.products p
  left join public.catalog_categories c on c.id = p.category_id
  where p.org_id = match_products.org_id
    and p.active
    and ((name_words is not null and p.search @@ name_words)
      or p.name operator(extensions.<%) asked
      or (p.sku is not null and strpos(lower(asked), lower(p.sku)) > 0))
  order by 15 desc, p.name, p.id
  limit match_count;
end;
$$;
comment on function public.match_products(uuid, text, integer) is 'Active products a chat question names (a word of the name, the name with typos, or the SKU), ranked, as the caller: a retrieval source for bots beside the documents.';
grant execute on function public.match_products(uuid, text, integer) to authenticated, service_role;
