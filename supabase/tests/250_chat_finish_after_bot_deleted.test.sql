-- A turn whose bot is deleted while it answers (20261123008100_chat_finish_after_bot_deleted.sql):
-- chat_finish finds no conversation; private.chat_meter_without_conversation
-- meters the turn once, to the org and the calling key, with no bot or
-- conversation, stores no message, and refuses a conversation that exists.
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@chat-bot-deleted.test'));
select tests.remember('org_a', tests.create_org('chat-bot-deleted-a', tests.fx('owner_a')));
insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_a'), 'key', 'ak_0000e250', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_0000e250';
insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'Bot', 'gone-bot', array['api']);
select tests.remember('bot', id) from public.bots where slug = 'gone-bot' and org_id = tests.fx('org_a');

create temp table turn (body jsonb);
grant all on turn to public;

select tests.act_as('service_role');
insert into turn select private.chat_prepare(tests.fx('bot'), null, 'api', 'ann', tests.fx('key'), 'When are you open?');
select tests.act_as('postgres');
select tests.remember('conversation', (select (body ->> 'conversation_id')::uuid from turn));
select is((select count(*) from private.chat_quota_reservations where org_id = tests.fx('org_a')), 1::bigint,
  'chat_prepare reserved the turn');

-- The bot is deleted while it answers: its conversation and the reservation go with it.
delete from public.bots where id = tests.fx('bot');
select is((select count(*) from private.chat_quota_reservations where org_id = tests.fx('org_a')), 0::bigint,
  'deleting the bot releases the turn''s reservation');

select tests.act_as('service_role');
select throws_ok(
  $$select private.chat_finish(tests.fx('conversation'), 'Nine to five.', 100, 20, 50, 'gpt-4o-mini', '[]', null, 'stop', tests.fx('key'))$$,
  'P0002', 'conversation not found',
  'chat_finish: the conversation is gone'
);
select lives_ok(
  $$select private.chat_meter_without_conversation(tests.fx('conversation'), tests.fx('org_a'), tests.fx('bot'),
      'gpt-4o-mini', 100, 20, tests.fx('key'), null)$$,
  'chat_meter_without_conversation: the service meters the turn'
);
select tests.act_as('postgres');
select results_eq(
  $$select kind, model, tokens_in, tokens_out, api_key_id, bot_id, conversation_id, user_id
    from public.usage_events where org_id = tests.fx('org_a')$$,
  $$values ('chat'::text, 'gpt-4o-mini'::text, 100, 20, tests.fx('key'), null::uuid, null::uuid, null::uuid)$$,
  'metered once, to the org and the key, with no bot or conversation'
);
select is((select used_chat_tokens from private.chat_quota(tests.fx('org_a'))), 120::bigint,
  'the tokens count against the org''s chat quota');
select is((select count(*) from public.messages where org_id = tests.fx('org_a') and role = 'assistant'), 0::bigint,
  'no answer is stored');

-- A live conversation is chat_finish's; an authenticated user cannot call it at all.
insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'Bot 2', 'live-bot', array['api']);
select tests.act_as('service_role');
insert into turn select private.chat_prepare(
  (select id from public.bots where slug = 'live-bot' and org_id = tests.fx('org_a')), null, 'api', 'bea', tests.fx('key'), 'Hi?');
select throws_ok(
  $$select private.chat_meter_without_conversation(
      (select (body ->> 'conversation_id')::uuid from turn where body ->> 'conversation_id' <> tests.fx('conversation')::text),
      tests.fx('org_a'), null, 'gpt-4o-mini', 1, 1, tests.fx('key'), null)$$,
  '22023', 'the conversation exists; finish the turn with chat_finish',
  'chat_meter_without_conversation: refuses a conversation that exists (no double metering)'
);
select tests.act_as('owner_a');
select throws_ok(
  $$select private.chat_meter_without_conversation(gen_random_uuid(), tests.fx('org_a'), null, 'gpt-4o-mini', 1, 1, null, null)$$,
  '42501', null,
  'chat_meter_without_conversation: the service role only'
);

select * from finish();
rollback;
