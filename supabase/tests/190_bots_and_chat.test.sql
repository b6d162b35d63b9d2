-- Bots, chat, usage and limits (20261123001100_bots_and_chat.sql): bots and
-- their validation (model allow-list, limits), the collections they answer
-- from, Telegram secrets no API role reads, conversations and messages under
-- RLS, the chat core (chat_prepare's authorisation and every refusal, which
-- changes nothing; chat_finish's usage and escalation), rate limits at fixed
-- times, usage summaries computed by hand (a DST day included), plans and the
-- one-active-subscription rule.
--
-- Everything runs in one transaction, so now() is one instant: every chat
-- call falls in the same rate-limit window and every default created_at is
-- the same moment.
begin;
create extension if not exists pgtap with schema extensions;

select plan(209);

-- ---------------------------------------------------------------------------
-- Fixtures. Org A has one member of each role, org B only its owner. Ids are
-- named fixtures (tests.remember / tests.fx, in 010_test_helpers), which
-- every role may read.
-- ---------------------------------------------------------------------------

-- What chat_prepare / chat_finish answered, per call.
create temp table answers (label text primary key, body jsonb);
grant all on answers to public;
create temp table marks (label text primary key, value text);
grant all on marks to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

create function pg_temp.mark(label text)
returns text
language sql
stable
as $$ select m.value from marks m where m.label = $1 $$;
grant execute on function pg_temp.mark(text) to public;

-- The service role acting for an API key, as the chat function runs it.
create function pg_temp.act_as_key(key_name text)
returns void
language sql
as $$
  select tests.act_as('service_role');
  select set_config('request.jwt.claims',
    jsonb_build_object('role', 'service_role', 'api_key_id', tests.fx(key_name))::text, true);
$$;
grant execute on function pg_temp.act_as_key(text) to public;

-- chat_prepare as the current role; keeps the answer under label. The
-- conversation, if any, is the one of an earlier answer (its label).
create function pg_temp.prepare(
  label text, bot text, conversation text, channel public.chat_channel, external_user_id text, api_key text, message text
)
returns jsonb
language sql
as $$
  insert into answers
  select label, private.chat_prepare(tests.fx(bot), (pg_temp.answer(conversation) ->> 'conversation_id')::uuid,
    channel, external_user_id, tests.fx(api_key), message)
  returning body;
$$;
grant execute on function pg_temp.prepare(text, text, text, public.chat_channel, text, text, text) to public;

-- chat_finish as the current role, on the conversation of an earlier answer.
create function pg_temp.finish(
  label text, conversation text, content text, tokens_in integer default 10, tokens_out integer default 20,
  reason text default null, citations jsonb default '[]'
)
returns jsonb
language sql
as $$
  insert into answers
  select label, private.chat_finish((pg_temp.answer(conversation) ->> 'conversation_id')::uuid, content, tokens_in, tokens_out,
    150, 'gpt-4o-mini', citations, reason)
  returning body;
$$;
grant execute on function pg_temp.finish(text, text, text, integer, integer, text, jsonb) to public;

-- Everything a chat call could change, in one string (definer: the rate
-- limit table is private), to compare before and after a refusal.
create function pg_temp.chat_state()
returns text
language sql
security definer
as $$
  select format('conversations=%s messages=%s hits=%s usage=%s events=%s',
    (select count(*) from public.conversations), (select count(*) from public.messages),
    (select coalesce(sum(hits), 0) from private.rate_limit_hits), (select count(*) from public.usage_events),
    (select count(*) from public.events))
$$;
grant execute on function pg_temp.chat_state() to public;

create function pg_temp.hits(bucket text)
returns integer
language sql
security definer
as $$ select coalesce((select h.hits from private.rate_limit_hits h where h.bucket = $1), 0) $$;
grant execute on function pg_temp.hits(text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@bots.test')),
  ('admin_a', tests.create_user('admin-a@bots.test')),
  ('member_a', tests.create_user('member-a@bots.test')),
  ('viewer_a', tests.create_user('viewer-a@bots.test')),
  ('owner_b', tests.create_user('owner-b@bots.test')),
  ('ops', tests.create_user('ops@bots.test', '{"platform_admin": true}'));
select tests.remember('org_a', tests.create_org('bots-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('bots-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');

insert into public.collections (org_id, name) values
  (tests.fx('org_a'), 'Handbook'), (tests.fx('org_a'), 'Spare'), (tests.fx('org_b'), 'B docs');
select tests.remember('collection_a', id) from public.collections where name = 'Handbook' and org_id = tests.fx('org_a');
select tests.remember('collection_spare', id) from public.collections where name = 'Spare' and org_id = tests.fx('org_a');
select tests.remember('collection_b', id) from public.collections where org_id = tests.fx('org_b');

insert into public.api_keys (org_id, name, prefix, scopes, rate_limit_per_minute) values
  (tests.fx('org_a'), 'bot key', 'ak_0000a001', array['chat.write'], 3),
  (tests.fx('org_a'), 'calls key', 'ak_0000a002', array['calls.read'], 60),
  (tests.fx('org_a'), 'revoked key', 'ak_0000a003', array['chat.write'], 60),
  (tests.fx('org_b'), 'b key', 'ak_0000b001', array['chat.write'], 60);
select tests.remember('key_a', id) from public.api_keys where prefix = 'ak_0000a001';
select tests.remember('key_a_calls', id) from public.api_keys where prefix = 'ak_0000a002';
select tests.remember('key_a_revoked', id) from public.api_keys where prefix = 'ak_0000a003';
select tests.remember('key_b', id) from public.api_keys where prefix = 'ak_0000b001';
update public.api_keys set revoked_at = now() where id = tests.fx('key_a_revoked');

-- Test-only models: one disabled, one with a small output limit.
insert into public.chat_models (id, provider, display_name, context_window, max_output_tokens, enabled) values
  ('test-disabled', 'openai', 'Disabled', 1000, 500, false),
  ('test-small', 'openai', 'Small', 1000, 256, true);

-- ---------------------------------------------------------------------------
-- Permissions and the model allow-list
-- ---------------------------------------------------------------------------

select results_eq(
  $$select permission, min_role::text from public.role_permissions
    where permission in ('bots.read', 'bots.manage', 'conversations.read', 'chat.use', 'catalog.read', 'catalog.write', 'billing.read')
    order by permission$$,
  $$values ('billing.read', 'admin'), ('bots.manage', 'admin'), ('bots.read', 'member'), ('catalog.read', 'viewer'),
           ('catalog.write', 'member'), ('chat.use', 'member'), ('conversations.read', 'member')$$,
  'permissions: bots, conversations and chat for members, bot management and billing for admins, the catalog for viewers (read) and members (write)'
);

select tests.act_as('viewer_a');
select results_eq(
  $$select id, provider from public.chat_models where id not like 'test-%' order by id$$,
  $$values ('gpt-4.1', 'openai'), ('gpt-4.1-mini', 'openai'), ('gpt-4.1-nano', 'openai'), ('gpt-4o', 'openai'),
           ('gpt-4o-mini', 'openai'), ('offline', 'offline')$$,
  'chat_models: a viewer reads the allow-list'
);
select throws_ok(
  $$insert into public.chat_models (id, provider, display_name, context_window, max_output_tokens) values ('x', 'openai', 'X', 10, 10)$$,
  '42501', null,
  'chat_models: signed-in users cannot add a model'
);
select tests.act_as('anon');
select throws_ok($$select 1 from public.chat_models$$, '42501', null, 'chat_models: anon cannot read the allow-list');

-- ---------------------------------------------------------------------------
-- Bots: validation
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$with b as (insert into public.bots (org_id, name, slug, system_prompt, greeting) values
        (tests.fx('org_a'), 'Support', 'support', 'You answer questions about Acme.', 'Hi! How can I help?')
      returning id) select tests.remember('bot_support', b.id) from b$$,
  'bots: an admin creates a bot'
);
select results_eq(
  $$select language, model, temperature, max_tokens, channels, escalation_action::text, enabled, created_by
    from public.bots where id = tests.fx('bot_support')$$,
  $$values ('en', 'gpt-4o-mini', 0.30::numeric(3,2), 512, array['api', 'web'], 'notify', true, tests.fx('admin_a'))$$,
  'bots: defaults are English, gpt-4o-mini, temperature 0.3, 512 tokens, web and api, notify, enabled; created_by is the admin'
);
select lives_ok(
  $$with b as (insert into public.bots (org_id, name, slug, language, model, channels, escalation_action) values
        (tests.fx('org_a'), 'Logger', 'logger', 'auto', 'offline', array['web', 'web', 'telegram'], 'log')
      returning id) select tests.remember('bot_log', b.id) from b$$,
  'bots: language auto, the offline model and a log escalation'
);
select is(
  (select channels from public.bots where id = tests.fx('bot_log')),
  array['telegram', 'web'],
  'bots: channels are stored as a sorted set'
);
select lives_ok(
  $$with b as (insert into public.bots (org_id, name, slug, language, manager_contact, escalation_action, channels) values
        (tests.fx('org_a'), 'Sales', 'sales', 'pt-BR', '@sales_manager', 'transfer', array['api'])
      returning id) select tests.remember('bot_transfer', b.id) from b$$,
  'bots: a transfer escalation with a manager contact, language pt-BR'
);

select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), '', 'empty')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_name_length"',
  'bots: a name is required'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), repeat('n', 101), 'long')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_name_length"',
  'bots: a name has at most 100 characters'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'X', 'Support!')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_slug_format"',
  'bots: a slug is lower-case letters, digits and dashes'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'X', '-x')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_slug_format"',
  'bots: a slug does not start with a dash'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'X', 'a' || repeat('b', 63))$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_slug_format"',
  'bots: a slug has at most 63 characters'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'X', '3f2a6c1e-0000-4000-8000-00000000abcd')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_slug_not_uuid"',
  'bots: a slug may not look like a bot id'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Support 2', 'support')$$,
  '23505', null,
  'bots: a slug is unique in the org'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, system_prompt) values (tests.fx('org_a'), 'X', 'x', repeat('p', 8001))$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_system_prompt_length"',
  'bots: a system prompt has at most 8000 characters'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, greeting) values (tests.fx('org_a'), 'X', 'x', repeat('g', 1001))$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_greeting_length"',
  'bots: a greeting has at most 1000 characters'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, language) values (tests.fx('org_a'), 'X', 'x', 'english')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_language_format"',
  'bots: a language is a language tag or auto'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, model) values (tests.fx('org_a'), 'X', 'x', 'gpt-5-turbo')$$,
  '23503', null,
  'bots: a model off the allow-list is refused'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, model, max_tokens) values (tests.fx('org_a'), 'X', 'x', 'test-disabled', 100)$$,
  '22023', 'the model test-disabled is not available',
  'bots: a disabled model is refused on insert'
);
select throws_ok(
  $$update public.bots set model = 'test-disabled', max_tokens = 100 where id = tests.fx('bot_support')$$,
  '22023', 'the model test-disabled is not available',
  'bots: a disabled model is refused on update'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, model) values (tests.fx('org_a'), 'X', 'x', 'test-small')$$,
  '22023', 'max_tokens is at most 256 for the model test-small',
  'bots: max_tokens may not exceed the model''s output limit'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'X', 'x', 2.5)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: temperature is at most 2'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, temperature) values (tests.fx('org_a'), 'X', 'x', -0.1)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_temperature_range"',
  'bots: temperature is not negative'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, max_tokens) values (tests.fx('org_a'), 'X', 'x', 0)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_max_tokens_range"',
  'bots: max_tokens is at least 1'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, max_tokens) values (tests.fx('org_a'), 'X', 'x', 4097)$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_max_tokens_range"',
  'bots: max_tokens is at most 4096'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, manager_contact) values (tests.fx('org_a'), 'X', 'x', repeat('m', 201))$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_manager_contact_length"',
  'bots: a manager contact has at most 200 characters'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, escalation_action) values (tests.fx('org_a'), 'X', 'x', 'transfer')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_transfer_needs_contact"',
  'bots: a transfer escalation needs a manager contact'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'X', 'x', '{}')$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_channels_known"',
  'bots: at least one channel'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'X', 'x', array['web', 'sms'])$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_channels_known"',
  'bots: only known channels'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'X', 'x', array['web', null])$$,
  '23514', 'new row for relation "bots" violates check constraint "bots_channels_known"',
  'bots: no null channel'
);
select throws_ok(
  $$update public.bots set created_by = tests.fx('member_a') where id = tests.fx('bot_support')$$,
  '42501', null,
  'bots: created_by is not writable'
);
select throws_ok(
  $$update public.bots set org_id = tests.fx('org_b') where id = tests.fx('bot_support')$$,
  '42501', null,
  'bots: a bot cannot move to another org'
);

-- A model taken off the list stays on the bots that have it.
select tests.act_as('postgres');
update public.bots set model = 'gpt-4o' where id = tests.fx('bot_transfer');
update public.chat_models set enabled = false where id = 'gpt-4o';
select tests.act_as('admin_a');
select lives_ok(
  $$update public.bots set name = 'Sales desk' where id = tests.fx('bot_transfer')$$,
  'bots: a bot on a model since disabled can still be edited'
);
select tests.act_as('postgres');
update public.chat_models set enabled = true where id = 'gpt-4o';

-- ---------------------------------------------------------------------------
-- Bots: who reads and writes
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select results_eq(
  $$select slug from public.bots order by slug$$,
  $$values ('logger'), ('sales'), ('support')$$,
  'bots: a member reads the org''s bots'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Mine', 'mine')$$,
  '42501', null,
  'bots: a member cannot create a bot'
);
select is_empty(
  $$update public.bots set name = 'Hijacked' where id = tests.fx('bot_support') returning id$$,
  'bots: a member cannot change a bot'
);
select is_empty(
  $$delete from public.bots where id = tests.fx('bot_support') returning id$$,
  'bots: a member cannot delete a bot'
);
select tests.act_as('viewer_a');
select is_empty($$select 1 from public.bots$$, 'bots: a viewer does not read bots');
select tests.act_as('owner_b');
select is_empty($$select 1 from public.bots where org_id = tests.fx('org_a')$$, 'bots: another org''s owner does not read them');
select lives_ok(
  $$with b as (insert into public.bots (org_id, name, slug) values (tests.fx('org_b'), 'Support B', 'support') returning id) select tests.remember('bot_b', b.id) from b$$,
  'bots: another org may use the same slug'
);
select tests.act_as('ops');
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Ops', 'ops')$$,
  '42501', null,
  'bots: a platform admin reads but does not create'
);

-- At most 50 bots per org.
select tests.act_as('postgres');
insert into public.bots (org_id, name, slug) select tests.fx('org_a'), 'Filler ' || i, 'filler-' || i from generate_series(1, 47) i;
select tests.act_as('admin_a');
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'One too many', 'too-many')$$,
  '22023', 'an organization has at most 50 bots',
  'bots: the 51st bot of an org is refused'
);
select tests.act_as('owner_b');
select throws_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Probe', 'probe')$$,
  '42501', null,
  'bots: to an outsider the full org answers 42501, not the limit'
);
select tests.act_as('postgres');
delete from public.bots where slug like 'filler-%';

select results_eq(
  $$select action, actor_user_id, new_values ->> 'slug' from public.audit_log
    where table_name = 'bots' and record_id = tests.fx('bot_support')::text and action = 'insert'$$,
  $$values ('insert', tests.fx('admin_a'), 'support')$$,
  'bots: creation is audited with the admin as the actor'
);

-- ---------------------------------------------------------------------------
-- The collections a bot answers from
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select lives_ok(
  $$insert into public.bot_collections (bot_id, collection_id, org_id) values (tests.fx('bot_support'), tests.fx('collection_a'), tests.fx('org_a'))$$,
  'bot_collections: an admin links a collection to a bot'
);
select throws_ok(
  $$insert into public.bot_collections (bot_id, collection_id, org_id) values (tests.fx('bot_support'), tests.fx('collection_b'), tests.fx('org_a'))$$,
  '23503', null,
  'bot_collections: another org''s collection cannot be linked'
);
select throws_ok(
  $$update public.bot_collections set collection_id = tests.fx('collection_spare')$$,
  '42501', null,
  'bot_collections: links are added and removed, not edited'
);
select tests.act_as('member_a');
select results_eq(
  $$select bot_id, collection_id from public.bot_collections$$,
  $$values (tests.fx('bot_support'), tests.fx('collection_a'))$$,
  'bot_collections: a member reads the links'
);
select throws_ok(
  $$insert into public.bot_collections (bot_id, collection_id, org_id) values (tests.fx('bot_log'), tests.fx('collection_a'), tests.fx('org_a'))$$,
  '42501', null,
  'bot_collections: a member cannot link'
);
select tests.act_as('owner_a');
select throws_ok(
  $$delete from public.collections where id = tests.fx('collection_a')$$,
  '23503', null,
  'bot_collections: a collection a bot answers from cannot be deleted (the bot would answer from everything)'
);
select tests.act_as('postgres');
select is(
  (select record_id from public.audit_log where table_name = 'bot_collections' and action = 'insert'),
  tests.fx('bot_support')::text || ':' || tests.fx('collection_a')::text,
  'bot_collections: links are audited (record id bot:collection)'
);

-- ---------------------------------------------------------------------------
-- Telegram
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
insert into answers select 'tg1', to_jsonb(t) from public.set_bot_telegram(tests.fx('bot_support'), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ') t;
select ok(
  pg_temp.answer('tg1') ->> 'secret_token' ~ '^[0-9a-f]{64}$',
  'set_bot_telegram: returns a fresh 64-character secret'
);
select is(
  pg_temp.answer('tg1') ->> 'webhook_path',
  '/functions/v1/chat/telegram/' || tests.fx('bot_support'),
  'set_bot_telegram: returns the webhook path of the bot'
);
select results_eq(
  $$select channels, telegram_connected_at is not null from public.bots where id = tests.fx('bot_support')$$,
  $$values (array['api', 'telegram', 'web'], true)$$,
  'set_bot_telegram: switches the telegram channel on and marks the bot connected'
);
insert into answers select 'tg2', to_jsonb(t) from public.set_bot_telegram(tests.fx('bot_support'), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ') t;
select isnt(pg_temp.answer('tg2') ->> 'secret_token', pg_temp.answer('tg1') ->> 'secret_token', 'set_bot_telegram: each call issues a new secret');
select throws_ok(
  $$select * from public.set_bot_telegram(tests.fx('bot_support'), 'not-a-token')$$,
  '22023', 'not a Telegram bot token',
  'set_bot_telegram: a malformed token is refused'
);
select throws_ok(
  $$select * from public.set_bot_telegram(tests.fx('bot_log'), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ')$$,
  '23505', 'this Telegram bot is already connected to another bot',
  'set_bot_telegram: one Telegram bot serves one bot'
);
select throws_ok(
  $$select * from public.set_bot_telegram(gen_random_uuid(), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ')$$,
  'PT404', 'bot not found',
  'set_bot_telegram: unknown bot'
);
select throws_ok(
  $$select 1 from private.bot_telegram$$,
  '42501', 'permission denied for table bot_telegram',
  'bot_telegram: an admin cannot read tokens or secrets'
);
select tests.act_as('member_a');
select throws_ok(
  $$select * from public.set_bot_telegram(tests.fx('bot_support'), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ')$$,
  '42501', null,
  'set_bot_telegram: a member may not connect Telegram'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select public.clear_bot_telegram(tests.fx('bot_support'))$$,
  'PT404', 'bot not found',
  'clear_bot_telegram: another org''s owner may not disconnect it, and is not told it exists'
);
select tests.act_as('service_role');
select throws_ok(
  $$select 1 from private.bot_telegram$$,
  '42501', 'permission denied for table bot_telegram',
  'bot_telegram: not even the service role reads the table'
);
select results_eq(
  $$select org_id, bot_token, secret_token, enabled, telegram_enabled from private.telegram_bot_for_webhook(tests.fx('bot_support'))$$,
  $$values (tests.fx('org_a'), '123456789:AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ', pg_temp.answer('tg2') ->> 'secret_token', true, true)$$,
  'telegram_bot_for_webhook: the service role gets the token and the latest secret'
);
select is_empty(
  $$select 1 from private.telegram_bot_for_webhook(tests.fx('bot_log'))$$,
  'telegram_bot_for_webhook: no row for a bot without Telegram'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select * from private.telegram_bot_for_webhook(tests.fx('bot_support'))$$,
  '42501', 'permission denied for function telegram_bot_for_webhook',
  'telegram_bot_for_webhook: signed-in users may not call it'
);
select tests.act_as('postgres');
select is_empty(
  $$select 1 from public.audit_log a
    where strpos(coalesce(a.new_values::text, '') || coalesce(a.old_values::text, ''), 'AAbbCCddEEffGGhhIIjjKKllMMnnOOppQQ') > 0
       or strpos(coalesce(a.new_values::text, ''), pg_temp.answer('tg2') ->> 'secret_token') > 0$$,
  'Telegram token and secret appear nowhere in the audit log'
);
select results_eq(
  $$select actor_user_id, new_values ? 'telegram_connected_at' from public.audit_log
    where table_name = 'bots' and action = 'update' and record_id = tests.fx('bot_support')::text order by seq limit 1$$,
  $$values (tests.fx('admin_a'), true)$$,
  'set_bot_telegram: the connection is audited on the bot, with the admin as the actor'
);
-- Disconnect and connect again (the chat tests below use the connection's channel only).
select tests.act_as('admin_a');
select results_eq(
  $$select public.clear_bot_telegram(tests.fx('bot_support')), public.clear_bot_telegram(tests.fx('bot_support'))$$,
  $$values (true, false)$$,
  'clear_bot_telegram: forgets the connection (true), then has nothing to forget (false)'
);
select is(
  (select telegram_connected_at from public.bots where id = tests.fx('bot_support')),
  null,
  'clear_bot_telegram: the bot is no longer marked connected'
);
select tests.act_as('service_role');
select is_empty(
  $$select 1 from private.telegram_bot_for_webhook(tests.fx('bot_support'))$$,
  'clear_bot_telegram: the webhook no longer finds the bot'
);
select tests.act_as('admin_a');
select throws_ok($$select public.clear_bot_telegram(gen_random_uuid())$$, 'PT404', 'bot not found', 'clear_bot_telegram: unknown bot');

-- ---------------------------------------------------------------------------
-- chat_prepare: a signed-in member on the web
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select pg_temp.prepare('web1', 'bot_support', null, 'web', null, null, '  Hello, where is my parcel?  ')$$,
  'chat_prepare: a member starts a web conversation'
);
select results_eq(
  $$select (b ->> 'ok')::boolean, (b ->> 'org_id')::uuid, b -> 'bot' ->> 'slug', b -> 'bot' ->> 'model_provider',
      b -> 'bot' ->> 'greeting', (b -> 'bot' ->> 'temperature')::numeric, (b -> 'bot' ->> 'max_tokens')::integer,
      b -> 'bot' ->> 'escalation_action', b -> 'collection_ids', b ->> 'conversation_status', b -> 'history'
    from (select pg_temp.answer('web1') b) a$$,
  $$values (true, tests.fx('org_a'), 'support', 'openai', 'Hi! How can I help?', 0.30, 512, 'notify',
            jsonb_build_array(tests.fx('collection_a')), 'open', '[]'::jsonb)$$,
  'chat_prepare: answers ok with the org, the bot''s settings, its collections, the conversation and an empty history'
);
select results_eq(
  $$select c.channel::text, c.user_id, c.external_user_id, c.api_key_id, c.message_count, m.role::text, m.content
    from public.conversations c join public.messages m on m.conversation_id = c.id
    where c.id = (pg_temp.answer('web1') ->> 'conversation_id')::uuid and m.id = (pg_temp.answer('web1') ->> 'user_message_id')::bigint$$,
  $$values ('web', tests.fx('member_a'), null::text, null::uuid, 1, 'user', 'Hello, where is my parcel?')$$,
  'chat_prepare: the conversation is the member''s, and the trimmed message is stored'
);
select lives_ok(
  $$select pg_temp.finish('web1-done', 'web1', 'It is on its way.', 12, 7)$$,
  'chat_finish: the member stores the answer'
);
select results_eq(
  $$select (b ->> 'message_id')::bigint > 0, b ->> 'conversation_status', (b ->> 'escalated')::boolean from (select pg_temp.answer('web1-done') b) a$$,
  $$values (true, 'open', false)$$,
  'chat_finish: answers the message id, the status and escalated false'
);
select lives_ok(
  $$select pg_temp.prepare('web2', 'bot_support', 'web1', 'web', null, null, 'And when will it arrive?')$$,
  'chat_prepare: the member continues the conversation'
);
select is(
  pg_temp.answer('web2') -> 'history',
  '[{"role": "user", "content": "Hello, where is my parcel?"}, {"role": "assistant", "content": "It is on its way."}]'::jsonb,
  'chat_prepare: the history holds the earlier messages, oldest first, without the new one'
);
select is(pg_temp.answer('web2') ->> 'conversation_id', pg_temp.answer('web1') ->> 'conversation_id', 'chat_prepare: same conversation');
select lives_ok(
  $$select pg_temp.prepare('web3', 'bot_support', null, 'web', null, null, 'A new question')$$,
  'chat_prepare: without a conversation id, a member starts another conversation'
);
select isnt(pg_temp.answer('web3') ->> 'conversation_id', pg_temp.answer('web1') ->> 'conversation_id', 'chat_prepare: a new web conversation');
select is(pg_temp.hits('user:' || tests.fx('member_a')), 3, 'chat_prepare: a member''s requests count in the user:<id> bucket');

-- The history is the last 20 messages.
select tests.act_as('postgres');
insert into public.messages (org_id, conversation_id, role, content)
select tests.fx('org_a'), (pg_temp.answer('web3') ->> 'conversation_id')::uuid, case when i % 2 = 0 then 'assistant' else 'user' end::public.message_role, 'filler ' || i
from generate_series(1, 30) i;
select tests.act_as('member_a');
select pg_temp.prepare('web4', 'bot_support', 'web3', 'web', null, null, 'Last one');
select results_eq(
  $$select jsonb_array_length(b -> 'history'), b -> 'history' -> 0 ->> 'content', b -> 'history' -> 19 ->> 'content'
    from (select pg_temp.answer('web4') b) a$$,
  $$values (20, 'filler 11', 'filler 30')$$,
  'chat_prepare: the history is the last 20 messages before this one'
);
select tests.act_as('postgres');
select is(
  (select message_count from public.conversations where id = (pg_temp.answer('web3') ->> 'conversation_id')::uuid),
  (select count(*)::integer from public.messages where conversation_id = (pg_temp.answer('web3') ->> 'conversation_id')::uuid),
  'messages: the conversation''s message_count follows every insert'
);

-- ---------------------------------------------------------------------------
-- chat_prepare: who may call it
-- ---------------------------------------------------------------------------

select tests.act_as('viewer_a');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, null, 'hi')$$,
  '42501', 'you do not have the chat.use permission in this organization',
  'chat_prepare: a viewer may not chat'
);
select tests.act_as('owner_b');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, null, 'hi')$$,
  'PT404', 'bot not found',
  'chat_prepare: another org''s owner may not chat with the bot, and is not told it exists'
);
select tests.act_as('ops');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, null, 'hi')$$,
  '42501', null,
  'chat_prepare: a platform admin who is not a member may not chat'
);
select tests.act_as('anon');
select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_support'), null, 'web', null, null, 'hi')$$,
  '42501', 'permission denied for function chat_prepare',
  'chat_prepare: anon may not call it'
);
select tests.act_as('member_a');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'telegram', null, null, 'hi')$$,
  '42501', 'signed-in users chat on the web channel only',
  'chat_prepare: a signed-in user chats on the web channel only'
);
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, 'key_a', 'hi')$$,
  '42501', 'a signed-in user cannot chat as an API key',
  'chat_prepare: a signed-in user cannot pass an API key'
);
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', 'someone', null, 'hi')$$,
  '22023', null,
  'chat_prepare: a signed-in user has no external user id'
);
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, null, '   ')$$,
  '22023', 'a message has 1 to 8000 characters',
  'chat_prepare: a blank message is refused'
);
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'web', null, null, repeat('m', 8001))$$,
  '22023', 'a message has 1 to 8000 characters',
  'chat_prepare: a message over 8000 characters is refused'
);
select throws_ok(
  $$select private.chat_prepare(gen_random_uuid(), null, 'web', null, null, 'hi')$$,
  'PT404', 'bot not found',
  'chat_prepare: an unknown bot'
);
select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_support'), gen_random_uuid(), 'web', null, null, 'hi')$$,
  'PT404', 'conversation not found',
  'chat_prepare: an unknown conversation'
);
select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_log'), (pg_temp.answer('web1') ->> 'conversation_id')::uuid, 'web', null, null, 'hi')$$,
  'PT404', 'conversation not found',
  'chat_prepare: another bot''s conversation is not found'
);
select tests.act_as('admin_a');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', 'web1', 'web', null, null, 'hi')$$,
  '42501', 'you can only continue your own conversations',
  'chat_prepare: an admin cannot write into a member''s conversation'
);
select pg_temp.act_as_key('key_b');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'api', null, 'key_b', 'hi')$$,
  '42501', 'this API key may not chat with this bot',
  'chat_prepare: another org''s API key is refused'
);
select pg_temp.act_as_key('key_a_calls');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'api', null, 'key_a_calls', 'hi')$$,
  '42501', 'this API key may not chat with this bot',
  'chat_prepare: a key without the chat.write scope is refused'
);
select pg_temp.act_as_key('key_a_revoked');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', null, 'api', null, 'key_a_revoked', 'hi')$$,
  '42501', 'this API key may not chat with this bot',
  'chat_prepare: a revoked key is refused'
);
select tests.act_as('service_role');
select throws_ok(
  $$select pg_temp.prepare('x', 'bot_support', 'web1', 'api', null, null, 'hi')$$,
  '22023', 'the conversation is on the web channel',
  'chat_prepare: a conversation continues on its own channel'
);

-- ---------------------------------------------------------------------------
-- chat_prepare: Telegram and API keys (the service role)
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.prepare('tg-a', 'bot_support', null, 'telegram', '555001', null, 'Hallo');
select pg_temp.prepare('tg-b', 'bot_support', null, 'telegram', '555001', null, 'Noch da?');
select is(pg_temp.answer('tg-b') ->> 'conversation_id', pg_temp.answer('tg-a') ->> 'conversation_id',
  'chat_prepare: a Telegram chat keeps one live conversation');
select is(pg_temp.answer('tg-b') -> 'history', '[{"role": "user", "content": "Hallo"}]'::jsonb,
  'chat_prepare: the Telegram conversation carries its history');
select is(pg_temp.hits('bot:' || tests.fx('bot_support') || ':555001'), 2,
  'chat_prepare: Telegram requests count in the bot:<id>:<chat> bucket');
select results_eq(
  $$select channel::text, external_user_id, user_id, api_key_id from public.conversations where id = (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid$$,
  $$values ('telegram', '555001', null::uuid, null::uuid)$$,
  'chat_prepare: the Telegram conversation names the chat, no user and no key'
);

select pg_temp.act_as_key('key_a');
select pg_temp.prepare('api-1', 'bot_support', null, 'api', 'visitor-1', 'key_a', 'one');
select pg_temp.prepare('api-2', 'bot_support', null, 'api', 'visitor-1', 'key_a', 'two');
select pg_temp.prepare('api-3', 'bot_support', null, 'api', 'visitor-1', 'key_a', 'three');
select results_eq(
  $$select count(distinct b ->> 'conversation_id')::integer, bool_and((b ->> 'ok')::boolean) from answers a, lateral (select a.body b) x where a.label like 'api-%'$$,
  $$values (1, true)$$,
  'chat_prepare: an API key''s three requests for one visitor share a conversation'
);
select is(
  (select api_key_id from public.conversations where id = (pg_temp.answer('api-1') ->> 'conversation_id')::uuid),
  tests.fx('key_a'),
  'chat_prepare: the conversation records the key'
);
select is(
  (select actor_api_key_id from public.audit_log where table_name = 'conversations' and action = 'insert'
     and record_id = pg_temp.answer('api-1') ->> 'conversation_id'),
  tests.fx('key_a'),
  'conversations: the start is audited with the key as the actor'
);

-- ---------------------------------------------------------------------------
-- chat_prepare: every refusal, in order, changes nothing
-- ---------------------------------------------------------------------------

-- Rate limit: key_a allows 3 a minute and has used them (all calls of this
-- test share one instant, so one window). Sliding window: the next slot frees
-- when this window's 3 hits, carried into the next window, weigh 2 or less:
-- (60 - elapsed) + 20 seconds.
select tests.act_as('postgres');
insert into marks values ('before rate limit', pg_temp.chat_state());
select pg_temp.act_as_key('key_a');
select pg_temp.prepare('api-4', 'bot_support', null, 'api', 'visitor-1', 'key_a', 'four');
select results_eq(
  $$select (b ->> 'ok')::boolean, b ->> 'code', (b ->> 'retry_after')::integer from (select pg_temp.answer('api-4') b) a$$,
  $$select false, 'rate_limited', ceil(80 - (extract(epoch from now()) % 60))::integer$$,
  'chat_prepare: the 4th request of a 3-a-minute key is rate limited, with the seconds until a slot frees'
);
select is(pg_temp.chat_state(), pg_temp.mark('before rate limit'), 'chat_prepare: a rate-limited request changes nothing (the refused hit is not counted)');
select is(pg_temp.hits('api_key:' || tests.fx('key_a')), 3, 'chat_prepare: the key''s bucket holds its 3 hits');

-- The bot is off.
select tests.act_as('postgres');
update public.bots set enabled = false where id = tests.fx('bot_log');
insert into marks values ('before refusals', pg_temp.chat_state());
select tests.act_as('member_a');
select results_eq(
  $$select b ->> 'ok', b ->> 'code' from (select pg_temp.prepare('off', 'bot_log', null, 'web', null, null, 'hi') b) a$$,
  $$values ('false', 'bot_disabled')$$,
  'chat_prepare: a disabled bot refuses with bot_disabled'
);
select tests.act_as('postgres');
update public.bots set enabled = true where id = tests.fx('bot_log');

-- The channel is off (bot_log answers on web and telegram only).
select tests.act_as('service_role');
select results_eq(
  $$select b ->> 'ok', b ->> 'code' from (select pg_temp.prepare('novoice', 'bot_log', null, 'voice', 'caller-1', null, 'hi') b) a$$,
  $$values ('false', 'channel_not_enabled')$$,
  'chat_prepare: a channel the bot does not answer on refuses with channel_not_enabled'
);

-- The conversation is closed.
select tests.act_as('postgres');
update public.conversations set status = 'closed', closed_at = now() where id = (pg_temp.answer('web3') ->> 'conversation_id')::uuid;
select tests.act_as('member_a');
select results_eq(
  $$select b ->> 'ok', b ->> 'code' from (select pg_temp.prepare('closed', 'bot_support', 'web3', 'web', null, null, 'hi') b) a$$,
  $$values ('false', 'conversation_closed')$$,
  'chat_prepare: a closed conversation refuses with conversation_closed'
);
select is(pg_temp.chat_state(), pg_temp.mark('before refusals'),
  'chat_prepare: refused for a disabled bot, a channel or a closed conversation, nothing changed (no message, conversation or hit)');

-- The order: a disabled bot answers bot_disabled even over the rate limit.
select tests.act_as('postgres');
update public.bots set enabled = false where id = tests.fx('bot_support');
select pg_temp.act_as_key('key_a');
select is(
  pg_temp.prepare('order', 'bot_support', null, 'api', 'visitor-1', 'key_a', 'five') ->> 'code',
  'bot_disabled',
  'chat_prepare: bot_disabled comes before rate_limited'
);
select tests.act_as('postgres');
update public.bots set enabled = true where id = tests.fx('bot_support');

-- The quota, in an org of its own: the free plan's 200,000 chat tokens are used up.
select tests.act_as('postgres');
select tests.remember('owner_q', tests.create_user('owner-q@bots.test'));
select tests.remember('org_q', tests.create_org('bots-org-q', tests.fx('owner_q')));
with b as (insert into public.bots (org_id, name, slug) values (tests.fx('org_q'), 'Q', 'q') returning id) select tests.remember('bot_q', b.id) from b;
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out) values
  (tests.fx('org_q'), 'chat', 'gpt-4o-mini', 150000, 49999),
  (tests.fx('org_q'), 'embedding', 'text-embedding-3-small', 900000, 0),
  (tests.fx('org_q'), 'chat', 'gpt-4o-mini', 900000, 900000);
-- (the last row is from before the period)
update public.usage_events set created_at = now() - interval '1 minute'
where org_id = tests.fx('org_q') and tokens_in = 900000 and kind = 'chat';
update public.subscriptions set current_period_start = now() - interval '30 seconds', current_period_end = now() + interval '1 month'
where org_id = tests.fx('org_q');
select tests.act_as('owner_q');
select is(pg_temp.prepare('q-ok', 'bot_q', null, 'web', null, null, 'hi') ->> 'ok', 'true',
  'chat_prepare: 199,999 chat tokens of 200,000 used: still answers (embeddings and earlier periods do not count)');
select tests.act_as('postgres');
select private.record_usage(tests.fx('org_q'), 'chat', 'gpt-4o-mini', 1, 0);
insert into marks values ('before quota', pg_temp.chat_state());
select tests.act_as('owner_q');
select results_eq(
  $$select b ->> 'ok', b ->> 'code', (b ->> 'resets_at')::timestamptz
    from (select pg_temp.prepare('q-over', 'bot_q', null, 'web', null, null, 'hi') b) a$$,
  $$select 'false', 'quota_exceeded', (select current_period_end from public.subscriptions where org_id = tests.fx('org_q'))$$,
  'chat_prepare: at 200,000 chat tokens the org is refused with quota_exceeded and when it resets'
);
select is(
  pg_temp.chat_state(),
  regexp_replace(pg_temp.mark('before quota'), 'hits=(\d+)', 'hits=' || (substring(pg_temp.mark('before quota') from 'hits=(\d+)')::integer + 1)),
  'chat_prepare: a request refused for quota stores nothing; its rate-limit hit stays counted'
);
select tests.act_as('postgres');
update public.subscriptions set plan_id = 'pro' where org_id = tests.fx('org_q');
select tests.act_as('owner_q');
select is(pg_temp.prepare('q-pro', 'bot_q', null, 'web', null, null, 'hi') ->> 'ok', 'true',
  'chat_prepare: on the pro plan the same usage is within the quota');

-- ---------------------------------------------------------------------------
-- chat_finish: usage, escalation
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$select pg_temp.finish('tg-done', 'tg-a', 'Ihr Paket ist unterwegs.', 100, 50, null,
      '[{"document_id": "6a1f0c7e-0000-4000-8000-000000000001", "page_start": 2}]')$$,
  'chat_finish: the service role stores a Telegram answer'
);
select results_eq(
  $$select role::text, tokens_in, tokens_out, latency_ms, model, citations -> 0 ->> 'page_start'
    from public.messages where id = (pg_temp.answer('tg-done') ->> 'message_id')::bigint$$,
  $$values ('assistant', 100, 50, 150, 'gpt-4o-mini', '2')$$,
  'chat_finish: the answer is stored with tokens, latency, model and citations'
);
select results_eq(
  $$select kind, model, tokens_in, tokens_out, bot_id, conversation_id, api_key_id, user_id from public.usage_events
    where conversation_id = (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid$$,
  $$values ('chat', 'gpt-4o-mini', 100, 50, tests.fx('bot_support'), (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid, null::uuid, null::uuid)$$,
  'chat_finish: usage is metered as chat, per bot and conversation'
);
select results_eq(
  $$select api_key_id, user_id from public.usage_events where conversation_id = (pg_temp.answer('web1') ->> 'conversation_id')::uuid$$,
  $$values (null::uuid, tests.fx('member_a'))$$,
  'chat_finish: a signed-in user''s usage names the user'
);
select pg_temp.finish('api-done', 'api-1', 'Answer for the key', 5, 5);
select is(
  (select api_key_id from public.usage_events where conversation_id = (pg_temp.answer('api-1') ->> 'conversation_id')::uuid),
  tests.fx('key_a'),
  'chat_finish: an API key conversation''s usage names the key'
);

-- Escalation with notify: once, with the event.
select pg_temp.finish('esc-1', 'tg-a', 'Ich verbinde Sie mit einem Menschen.', 10, 10, '  The user asked for a human.  ');
select results_eq(
  $$select b ->> 'conversation_status', (b ->> 'escalated')::boolean from (select pg_temp.answer('esc-1') b) a$$,
  $$values ('escalated', true)$$,
  'chat_finish: an escalation reason escalates the conversation'
);
select results_eq(
  $$select status::text, escalation_reason, escalated_at is not null from public.conversations where id = (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid$$,
  $$values ('escalated', 'The user asked for a human.', true)$$,
  'chat_finish: the conversation records the time and the (trimmed) reason'
);
select results_eq(
  $$select org_id, payload from public.events where type = 'conversation.escalated' and org_id = tests.fx('org_a')$$,
  $$values (tests.fx('org_a'), jsonb_build_object('conversation_id', (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid,
      'bot_id', tests.fx('bot_support'), 'channel', 'telegram', 'reason', 'The user asked for a human.', 'action', 'notify'))$$,
  'chat_finish: a notify bot emits conversation.escalated with conversation, bot, channel, reason and action'
);
select pg_temp.finish('esc-2', 'tg-a', 'Noch einmal.', 10, 10, 'Again');
select results_eq(
  $$select b ->> 'conversation_status', (b ->> 'escalated')::boolean,
      (select count(*)::integer from public.events where type = 'conversation.escalated'
         and org_id = (select b.org_id from public.bots b where b.id = tests.fx('bot_support'))),
      (select escalation_reason from public.conversations where id = (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid)
    from (select pg_temp.answer('esc-2') b) a$$,
  $$values ('escalated', false, 1, 'The user asked for a human.')$$,
  'chat_finish: an escalated conversation is not escalated twice (one event, first reason kept)'
);
select is(pg_temp.prepare('tg-c', 'bot_support', null, 'telegram', '555001', null, 'Hallo?') ->> 'conversation_status', 'escalated',
  'chat_prepare: the escalated conversation continues (still the live one of the chat)');

-- Escalation with log: no event, but the status change is audited.
select pg_temp.prepare('log-1', 'bot_log', null, 'telegram', '777', null, 'I want a human');
select pg_temp.finish('log-esc', 'log-1', 'Noted.', 1, 1, 'asked for a human');
select results_eq(
  $$select b ->> 'conversation_status', (b ->> 'escalated')::boolean,
      (select count(*)::integer from public.events where type = 'conversation.escalated'
         and org_id = (select b.org_id from public.bots b where b.id = tests.fx('bot_support')))
    from (select pg_temp.answer('log-esc') b) a$$,
  $$values ('escalated', true, 1)$$,
  'chat_finish: a log bot escalates without an event'
);
select tests.act_as('postgres');
select results_eq(
  $$select new_values ->> 'status', new_values ->> 'escalation_reason' from public.audit_log
    where table_name = 'conversations' and action = 'update' and record_id = pg_temp.answer('log-1') ->> 'conversation_id'$$,
  $$values ('escalated', 'asked for a human')$$,
  'chat_finish: the escalation is in the audit log'
);

-- Escalation with transfer: the event says so.
select tests.act_as('postgres');
update public.bots set channels = array['api', 'voice'] where id = tests.fx('bot_transfer');
select tests.act_as('service_role');
select pg_temp.prepare('tr-1', 'bot_transfer', null, 'voice', '+4930123456', null, 'Put me through');
select pg_temp.finish('tr-esc', 'tr-1', 'Transferring you.', 1, 1, 'caller asked for sales');
select is(
  (select payload ->> 'action' from public.events where type = 'conversation.escalated' and payload ->> 'conversation_id' = pg_temp.answer('tr-1') ->> 'conversation_id'),
  'transfer',
  'chat_finish: a transfer bot emits the event with action transfer'
);

-- chat_finish: arguments and callers.
select throws_ok($$select pg_temp.finish('x', 'tg-a', '  ')$$, '22023', 'an answer has 1 to 32000 characters', 'chat_finish: a blank answer is refused');
select throws_ok($$select pg_temp.finish('x', 'tg-a', 'ok', -1, 0)$$, '22023', null, 'chat_finish: negative tokens are refused');
select throws_ok($$select pg_temp.finish('x', 'tg-a', 'ok', 1, 1, null, '{"a": 1}')$$, '22023', 'citations must be a list of at most 50 entries', 'chat_finish: citations must be a list');
select throws_ok(
  $$select pg_temp.finish('x', 'tg-a', 'ok', 1, 1, null, (select jsonb_agg(i) from generate_series(1, 51) i))$$,
  '22023', 'citations must be a list of at most 50 entries', 'chat_finish: at most 50 citations'
);
select throws_ok($$select pg_temp.finish('x', 'tg-a', 'ok', 1, 1, repeat('r', 501))$$, '22023', 'an escalation reason has 1 to 500 characters', 'chat_finish: a reason has at most 500 characters');
select throws_ok(
  $$select private.chat_finish(gen_random_uuid(), 'ok', 1, 1, 1, null, '[]')$$,
  'P0002', 'conversation not found', 'chat_finish: an unknown conversation'
);
select tests.act_as('admin_a');
select throws_ok($$select pg_temp.finish('x', 'web1', 'ok')$$, '42501', 'you can only answer in your own conversations',
  'chat_finish: a signed-in user answers only in their own conversations');
select tests.act_as('viewer_a');
select throws_ok($$select pg_temp.finish('x', 'web1', 'ok')$$, '42501', null, 'chat_finish: a viewer may not');

-- ---------------------------------------------------------------------------
-- Conversations and messages: who reads, nobody writes directly
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select isnt_empty($$select 1 from public.conversations where channel = 'telegram'$$, 'conversations: a member reads the org''s conversations, Telegram ones too');
select isnt_empty($$select 1 from public.messages where conversation_id = (pg_temp.answer('tg-a') ->> 'conversation_id')::uuid$$, 'messages: a member reads them');
select throws_ok(
  $$insert into public.conversations (org_id, bot_id, channel) values (tests.fx('org_a'), tests.fx('bot_support'), 'web')$$,
  '42501', null, 'conversations: no direct inserts'
);
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content) values (tests.fx('org_a'), (pg_temp.answer('web1') ->> 'conversation_id')::uuid, 'assistant', 'forged')$$,
  '42501', null, 'messages: no direct inserts'
);
select throws_ok(
  $$update public.conversations set status = 'closed', closed_at = now()$$,
  '42501', null, 'conversations: no direct updates'
);
select tests.act_as('viewer_a');
select is_empty($$select 1 from public.conversations$$, 'conversations: a viewer reads none');
select is_empty($$select 1 from public.messages$$, 'messages: a viewer reads none');
select tests.act_as('owner_b');
select is_empty($$select 1 from public.messages where org_id = tests.fx('org_a')$$, 'messages: another org reads none');
select tests.act_as('postgres');
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content, citations) values (tests.fx('org_a'), (pg_temp.answer('web1') ->> 'conversation_id')::uuid, 'user', 'x', '"not a list"')$$,
  '23514', 'new row for relation "messages" violates check constraint "messages_citations_list"',
  'messages: citations are a list, whoever writes'
);
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content) values (tests.fx('org_b'), (pg_temp.answer('web1') ->> 'conversation_id')::uuid, 'user', 'x')$$,
  '23503', null,
  'messages: a message belongs to a conversation of its own org'
);
select throws_ok(
  $$insert into public.conversations (org_id, bot_id, channel, external_user_id) values (tests.fx('org_a'), tests.fx('bot_support'), 'telegram', '555001')$$,
  '23505', null,
  'conversations: one live conversation per bot, channel and end user'
);

-- close_conversation
select tests.act_as('member_a');
select throws_ok(
  $$select public.close_conversation((pg_temp.answer('tg-a') ->> 'conversation_id')::uuid)$$,
  '42501', 'you do not have the bots.manage permission in this organization',
  'close_conversation: a member may not close'
);
select tests.act_as('admin_a');
select results_eq(
  $$select status::text, closed_at is not null, escalated_at is not null from public.close_conversation((pg_temp.answer('tg-a') ->> 'conversation_id')::uuid)$$,
  $$values ('closed', true, true)$$,
  'close_conversation: an admin closes an escalated conversation'
);
select results_eq(
  $$select status::text from public.close_conversation((pg_temp.answer('tg-a') ->> 'conversation_id')::uuid)$$,
  $$values ('closed')$$,
  'close_conversation: closing twice is a no-op'
);
select throws_ok($$select public.close_conversation(gen_random_uuid())$$, 'PT404', 'conversation not found', 'close_conversation: unknown');
select tests.act_as('service_role');
select pg_temp.prepare('tg-new', 'bot_support', null, 'telegram', '555001', null, 'Hallo again');
select isnt(pg_temp.answer('tg-new') ->> 'conversation_id', pg_temp.answer('tg-a') ->> 'conversation_id',
  'chat_prepare: after the close, the chat''s next message starts a new conversation');
select lives_ok(
  $$select pg_temp.finish('late', 'tg-a', 'A late answer', 3, 4)$$,
  'chat_finish: an answer that arrives after the close is still stored and metered'
);

-- bot_for_api_key
select results_eq(
  $$select private.bot_for_api_key('support', tests.fx('org_a')), private.bot_for_api_key(tests.fx('bot_log')::text, tests.fx('org_a')),
      private.bot_for_api_key('support', tests.fx('org_b')), private.bot_for_api_key('logger', tests.fx('org_b')),
      private.bot_for_api_key('nobody', tests.fx('org_a'))$$,
  $$values (tests.fx('bot_support'), tests.fx('bot_log'), tests.fx('bot_b'), null::uuid, null::uuid)$$,
  'bot_for_api_key: by slug or id, only in the given org'
);
select tests.act_as('admin_a');
select throws_ok($$select private.bot_for_api_key('support', tests.fx('org_a'))$$, '42501', 'permission denied for function bot_for_api_key',
  'bot_for_api_key: the service role only');

-- ---------------------------------------------------------------------------
-- Rate limits at fixed times (sliding window of 60 s, 3 hits)
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
create temp table taken (n serial primary key, allowed boolean, remaining integer, retry_after_seconds integer);
insert into taken (allowed, remaining, retry_after_seconds) select * from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:00:30+00');
insert into taken (allowed, remaining, retry_after_seconds) select * from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:00:30+00');
insert into taken (allowed, remaining, retry_after_seconds) select * from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:00:30+00');
insert into taken (allowed, remaining, retry_after_seconds) select * from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:00:30+00');
select results_eq(
  $$select allowed, remaining, retry_after_seconds from taken order by n$$,
  $$values (true, 2, 0), (true, 1, 0), (true, 0, 0), (false, 0, 50)$$,
  'take_rate_limit: 3 hits pass, the 4th waits 50 s (30 s to the next window, then 20 s for the 3 carried hits to weigh 2)'
);
select is(
  (select hits from private.rate_limit_hits where bucket = 'test:fixed'),
  3,
  'take_rate_limit: the refused hit is not counted'
);
select results_eq(
  $$select allowed, retry_after_seconds from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:01:19+00')$$,
  $$values (false, 1)$$,
  'take_rate_limit: 49 s later the previous window still weighs 3 x 41/60 + 1 > 3: wait 1 s'
);
select results_eq(
  $$select allowed, remaining from private.take_rate_limit_at('test:fixed', 3, 60, '2026-01-01 00:01:20+00')$$,
  $$values (true, 0)$$,
  'take_rate_limit: 50 s later a hit passes, as retry_after said'
);
select throws_ok($$select * from private.take_rate_limit('test', 3, 0)$$, '22023', 'window_seconds must be between 1 and 1800', 'take_rate_limit: window of at least 1 s');
select throws_ok($$select * from private.take_rate_limit('test', 0, 60)$$, '22023', 'max_hits must be between 1 and 1000000', 'take_rate_limit: at least 1 hit');
select throws_ok($$select * from private.take_rate_limit('', 3, 60)$$, '22023', 'a rate limit bucket has 1 to 300 characters', 'take_rate_limit: a bucket name');
select tests.act_as('service_role');
select results_eq($$select allowed from private.take_rate_limit('test:service', 1, 60)$$, $$values (true)$$, 'take_rate_limit: the service role may take hits');
select tests.act_as('member_a');
select throws_ok($$select * from private.take_rate_limit('test:member', 1, 60)$$, '42501', 'permission denied for function take_rate_limit',
  'take_rate_limit: signed-in users may not');
select tests.act_as('postgres');
insert into private.rate_limit_hits (bucket, window_start, hits) values ('test:old', now() - interval '61 minutes', 5);
select is(private.purge_rate_limit_hits(), 3, 'purge_rate_limit_hits: removes the windows older than an hour (the 2026-01-01 ones and the old one)');
select results_eq(
  $$select bucket from private.rate_limit_hits where bucket like 'test:%'$$,
  $$values ('test:service')$$,
  'purge_rate_limit_hits: the current windows stay'
);
select results_eq(
  $$select schedule, command from cron.job where jobname = 'purge-rate-limit-hits'$$,
  $$values ('*/10 * * * *', 'select private.purge_rate_limit_hits()')$$,
  'purge_rate_limit_hits: pg_cron runs it every 10 minutes'
);

-- api_keys.rate_limit_per_minute
select is((select rate_limit_per_minute from public.api_keys where id = tests.fx('key_b')), 60, 'api_keys: 60 requests a minute by default');
select throws_ok($$update public.api_keys set rate_limit_per_minute = 0 where id = tests.fx('key_b')$$, '23514', null, 'api_keys: at least 1 a minute');
select throws_ok($$update public.api_keys set rate_limit_per_minute = 10001 where id = tests.fx('key_b')$$, '23514', null, 'api_keys: at most 10000 a minute');
update public.api_keys set rate_limit_per_minute = 120 where id = tests.fx('key_b');
select is(
  (select new_values ->> 'rate_limit_per_minute' from public.audit_log where table_name = 'api_keys' and action = 'update' and record_id = tests.fx('key_b')::text),
  '120',
  'api_keys: a change of the limit is audited'
);

-- ---------------------------------------------------------------------------
-- Usage metering and summaries (org U, computed by hand)
-- ---------------------------------------------------------------------------

insert into tests.fixtures (name, id) values ('owner_u', tests.create_user('owner-u@bots.test')), ('member_u', tests.create_user('member-u@bots.test'));
select tests.remember('org_u', tests.create_org('bots-org-u', tests.fx('owner_u')));
select tests.add_member(tests.fx('org_u'), tests.fx('member_u'), 'member');

select tests.act_as('service_role');
select lives_ok(
  $$select private.record_usage(tests.fx('org_u'), 'embedding', 'text-embedding-3-small', 1, 0, null, null)$$,
  'record_usage: the seven-argument form of the ingest function still works'
);
select tests.act_as('postgres');
delete from public.usage_events where org_id = tests.fx('org_u');
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at) values
  (tests.fx('org_u'), 'chat', 'm', 10, 20, now() - interval '1 hour'),
  (tests.fx('org_u'), 'chat', 'm', 1, 2, now() - interval '23 hours'),
  (tests.fx('org_u'), 'chat', 'm', 100, 200, now() - interval '25 hours'),
  (tests.fx('org_u'), 'embedding', 'e', 1000, 0, now() - interval '6 days 23 hours'),
  (tests.fx('org_u'), 'chat', 'm', 5000, 5000, now() - interval '8 days'),
  (tests.fx('org_b'), 'chat', 'm', 7, 7, now() - interval '1 hour');
select tests.act_as('owner_u');
select results_eq(
  $$select kind, tokens_in_24h, tokens_out_24h, tokens_in_7d, tokens_out_7d from public.usage_totals(tests.fx('org_u'))$$,
  $$values ('chat', 11::bigint, 22::bigint, 111::bigint, 222::bigint), ('embedding', 0::bigint, 0::bigint, 1000::bigint, 0::bigint),
           ('speech', 0::bigint, 0::bigint, 0::bigint, 0::bigint)$$,
  'usage_totals: per kind, the last 24 hours and 7 days (older and other orgs'' usage left out, every kind listed)'
);
select tests.act_as('member_u');
select throws_ok($$select * from public.usage_totals(tests.fx('org_u'))$$, '42501', 'you may not read this organization''s usage',
  'usage_totals: a member may not read usage');
select tests.act_as('owner_b');
select throws_ok($$select * from public.usage_totals(tests.fx('org_u'))$$, '42501', null, 'usage_totals: nor another org''s owner');
select tests.act_as('ops');
select results_eq($$select sum(tokens_in_7d)::bigint from public.usage_totals(tests.fx('org_u'))$$, $$values (1111::bigint)$$,
  'usage_totals: a platform admin reads it');
select tests.act_as('service_role');
select results_eq($$select sum(tokens_in_7d)::bigint from public.usage_totals(tests.fx('org_u'))$$, $$values (1111::bigint)$$,
  'usage_totals: the service role reads it');

-- Days around the start of summer time in Berlin (2026-03-29, a 23-hour day:
-- 2026-03-28 23:00Z to 2026-03-29 22:00Z).
select tests.act_as('postgres');
delete from public.usage_events where org_id = tests.fx('org_u');
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, created_at) values
  (tests.fx('org_u'), 'chat', 'm', 1, 1, '2026-03-28 23:30+00'),       -- Berlin 29th 00:30 CET
  (tests.fx('org_u'), 'chat', 'm', 2, 2, '2026-03-29 21:30+00'),       -- Berlin 29th 23:30 CEST
  (tests.fx('org_u'), 'chat', 'm', 4, 4, '2026-03-29 22:30+00'),       -- Berlin 30th 00:30 CEST
  (tests.fx('org_u'), 'embedding', 'e', 8, 0, '2026-03-31 10:00+00'),
  (tests.fx('org_u'), 'chat', 'm', 99, 99, '2026-04-01 00:30+00');     -- after the range in both zones
select tests.act_as('owner_u');
select results_eq(
  $$select day, kind, tokens_in, tokens_out from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31', 'Europe/Berlin')$$,
  $$values ('2026-03-28'::date, 'chat', 0::bigint, 0::bigint), ('2026-03-28', 'embedding', 0, 0), ('2026-03-28', 'speech', 0, 0),
           ('2026-03-29', 'chat', 3, 3), ('2026-03-29', 'embedding', 0, 0), ('2026-03-29', 'speech', 0, 0),
           ('2026-03-30', 'chat', 4, 4), ('2026-03-30', 'embedding', 0, 0), ('2026-03-30', 'speech', 0, 0),
           ('2026-03-31', 'chat', 0, 0), ('2026-03-31', 'embedding', 8, 0), ('2026-03-31', 'speech', 0, 0)$$,
  'usage_daily: Berlin days across the DST change, every day and kind with zeros for empty ones'
);
select results_eq(
  $$select day, kind, tokens_in from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31', 'UTC') where tokens_in > 0$$,
  $$values ('2026-03-28'::date, 'chat', 1::bigint), ('2026-03-29', 'chat', 6), ('2026-03-31', 'embedding', 8)$$,
  'usage_daily: the same usage cut in UTC days'
);
select results_eq(
  $$select * from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31')$$,
  $$select * from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31', 'UTC')$$,
  'usage_daily: without a time zone, UTC'
);
select is(
  (select count(*)::integer from public.usage_daily(tests.fx('org_u'), '2026-01-01', '2027-01-01', 'America/New_York')),
  366 * 3,
  'usage_daily: 366 days is the longest range'
);
select throws_ok(
  $$select * from public.usage_daily(tests.fx('org_u'), '2026-01-01', '2027-01-02')$$,
  '22023', 'a usage range spans at most 366 days (asked for 367)',
  'usage_daily: 367 days is refused'
);
select throws_ok(
  $$select * from public.usage_daily(tests.fx('org_u'), '2026-03-31', '2026-03-28')$$,
  '22023', 'from_date must not be after to_date',
  'usage_daily: a backwards range is refused'
);
select throws_ok(
  $$select * from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31', 'Mars/Olympus_Mons')$$,
  '22023', 'unknown time zone: Mars/Olympus_Mons',
  'usage_daily: an unknown time zone is refused'
);
select tests.act_as('member_u');
select throws_ok($$select * from public.usage_daily(tests.fx('org_u'), '2026-03-28', '2026-03-31')$$, '42501', null,
  'usage_daily: a member may not read usage');

-- ---------------------------------------------------------------------------
-- Plans and subscriptions
-- ---------------------------------------------------------------------------

select tests.act_as('viewer_a');
select results_eq(
  $$select id, monthly_chat_tokens, price_cents from public.plans order by price_cents$$,
  $$values ('free', 200000::bigint, 0), ('pro', 5000000::bigint, 4900), ('business', 50000000::bigint, 29900)$$,
  'plans: signed-in users read the plans'
);
select tests.act_as('anon');
select throws_ok($$select 1 from public.plans$$, '42501', null, 'plans: anon does not');

select tests.act_as('admin_a');
select results_eq(
  $$select plan_id, status::text, current_period_end = ((current_period_start at time zone 'UTC') + interval '1 month') at time zone 'UTC' from public.subscriptions where org_id = tests.fx('org_a')$$,
  $$values ('free', 'active', true)$$,
  'subscriptions: a new org is on the free plan for a month, and an admin reads it'
);
select throws_ok(
  $$insert into public.subscriptions (org_id, plan_id, current_period_start, current_period_end) values (tests.fx('org_a'), 'pro', now(), now() + interval '1 month')$$,
  '42501', null,
  'subscriptions: signed-in users cannot subscribe directly'
);
select tests.act_as('member_a');
select is_empty($$select 1 from public.subscriptions$$, 'subscriptions: a member does not read them (billing.read is admin and up)');
select tests.act_as('owner_b');
select is_empty($$select 1 from public.subscriptions where org_id = tests.fx('org_a')$$, 'subscriptions: another org''s owner does not');

select tests.act_as('owner_a');
select tests.remember('org_new', (public.create_organization('Fresh Co', 'bots-fresh-co')).id);
select tests.act_as('postgres');
select results_eq(
  $$select plan_id, status::text from public.subscriptions where org_id = tests.fx('org_new')$$,
  $$values ('free', 'active')$$,
  'subscriptions: create_organization starts the free plan'
);
select results_eq(
  $$select actor_user_id, new_values ->> 'plan_id' from public.audit_log where org_id = tests.fx('org_new') and table_name = 'subscriptions'$$,
  $$values (tests.fx('owner_a'), 'free')$$,
  'subscriptions: the start is audited'
);
select throws_ok(
  $$insert into public.subscriptions (org_id, plan_id, current_period_start, current_period_end) values (tests.fx('org_new'), 'pro', now(), now() + interval '1 month')$$,
  '23505', null,
  'subscriptions: at most one active subscription per org'
);
select lives_ok(
  $$insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end, canceled_at)
    values (tests.fx('org_new'), 'pro', 'canceled', now() - interval '2 months', now() - interval '1 month', now() - interval '1 month')$$,
  'subscriptions: canceled ones may sit beside the active one'
);
select throws_ok(
  $$insert into public.subscriptions (org_id, plan_id, status, current_period_start, current_period_end) values (tests.fx('org_new'), 'pro', 'canceled', now(), now() + interval '1 month')$$,
  '23514', null,
  'subscriptions: a canceled subscription has its cancel time'
);
select is_empty(
  $$select o.id from public.organizations o
    where not exists (select 1 from public.subscriptions s where s.org_id = o.id and s.status = 'active')$$,
  'subscriptions: every organization has an active subscription'
);
-- A period that ended is rolled forward month by month for the quota, from the subscription's start
-- (20261123006700: not from the stored start, which may be a clamped month end).
update public.subscriptions
set started_at = '2026-01-31 12:00+00', current_period_start = '2026-01-31 12:00+00', current_period_end = '2026-02-28 12:00+00'
where org_id = tests.fx('org_new') and status = 'active';
select results_eq(
  $$select plan_id, period_start, period_end from private.chat_quota(tests.fx('org_new'))$$,
  $$select 'free', p.period_start, p.period_end from private.subscription_period_at('2026-01-31 12:00+00', now()) p$$,
  'chat_quota: an ended period rolls forward by whole months from its start'
);
select ok(
  (select period_start <= now() and now() < period_end from private.chat_quota(tests.fx('org_new'))),
  'chat_quota: the rolled period contains now'
);

-- ---------------------------------------------------------------------------
-- Odds and ends: the audit exemption, deleting a bot
-- ---------------------------------------------------------------------------

select is(
  (select reason is not null from private.audit_exempt_tables where table_name = 'messages'),
  true,
  'messages are exempt from row auditing, with a reason'
);
select tests.act_as('admin_a');
select lives_ok($$delete from public.bots where id = tests.fx('bot_log')$$, 'bots: an admin deletes a bot');
select tests.act_as('postgres');
select results_eq(
  $$select (select count(*)::integer from public.conversations where bot_id = tests.fx('bot_log')),
           (select count(*)::integer from public.usage_events where conversation_id = (pg_temp.answer('log-1') ->> 'conversation_id')::uuid),
           (select count(*)::integer from public.usage_events where org_id = tests.fx('org_a') and kind = 'chat' and bot_id is null and tokens_in = 1 and tokens_out = 1)$$,
  $$values (0, 0, 1)$$,
  'bots: deleting a bot deletes its conversations; its usage stays, without bot and conversation'
);

select * from finish();
rollback;
