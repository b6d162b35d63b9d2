-- A model that fails (20261123004700_chat_model_failure.sql): chat_finish
-- stores the answer with finish reason error, what was streamed or empty, and
-- meters it like any other (to the calling key, or the signed-in user); the
-- column's check takes error too; blank text and unknown reasons are still
-- refused.
begin;
create extension if not exists pgtap with schema extensions;

select plan(10);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@model-failure.test')),
  ('member_a', tests.create_user('member-a@model-failure.test'));
select tests.remember('org_a', tests.create_org('model-failure-org-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_a'), 'key', 'ak_0000f001', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_0000f001';

insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'Bot', 'bot', array['api', 'web']);
select tests.remember('bot', id) from public.bots where slug = 'bot' and org_id = tests.fx('org_a');
insert into public.conversations (org_id, bot_id, channel, external_user_id, api_key_id) values
  (tests.fx('org_a'), tests.fx('bot'), 'api', 'end-user', tests.fx('key'));
select tests.remember('conv_api', id) from public.conversations where external_user_id = 'end-user';
insert into public.conversations (org_id, bot_id, channel, user_id) values
  (tests.fx('org_a'), tests.fx('bot'), 'web', tests.fx('member_a'));
select tests.remember('conv_web', id) from public.conversations where user_id = tests.fx('member_a');

select tests.act_as('service_role');
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'Delivery takes', 380, 3, 90, 'gpt-4o-mini', '[]', null, 'error', tests.fx('key'))$$,
  'chat_finish: an answer cut by a failing model (what was streamed) is stored as error'
);
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), '', 0, 0, 40, 'gpt-4o-mini', '[]', null, 'error', tests.fx('key'))$$,
  'chat_finish: a model that failed before any text gives an empty answer, stored as error'
);
select tests.act_as('postgres');
select results_eq(
  $$select content, finish_reason, tokens_in, tokens_out from public.messages
    where conversation_id = tests.fx('conv_api') order by id$$,
  $$values ('Delivery takes', 'error', 380, 3), ('', 'error', 0, 0)$$,
  'chat_finish: both are stored with finish reason error and their tokens'
);
select results_eq(
  $$select tokens_in, tokens_out, api_key_id from public.usage_events
    where conversation_id = tests.fx('conv_api') and kind = 'chat' order by id$$,
  $$values (380, 3, tests.fx('key')), (0, 0, tests.fx('key'))$$,
  'chat_finish: each is metered once, to the calling key'
);

select tests.act_as('member_a');
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_web'), 'Two', 50, 1, 10, 'gpt-4o-mini', '[]', null, 'error')$$,
  'chat_finish: a signed-in user finishes their own failed turn'
);
select tests.act_as('postgres');
select results_eq(
  $$select tokens_in, tokens_out, user_id from public.usage_events
    where conversation_id = tests.fx('conv_web') and kind = 'chat'$$,
  $$values (50, 1, tests.fx('member_a'))$$,
  'chat_finish: a signed-in user''s failed turn is metered to the user'
);

select tests.act_as('service_role');
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_api'), '  ', 1, 1, 1, null, '[]', null, 'error')$$,
  '22023', 'an answer has 1 to 32000 characters', 'chat_finish: blank text is still refused with error'
);
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'x', 1, 1, 1, null, '[]', null, 'failed')$$,
  '22023', 'finish_reason is stop, length, content_filter, interrupted or error',
  'chat_finish: an unknown finish reason is still refused, naming error among the reasons'
);

select tests.act_as('postgres');
select lives_ok(
  $$insert into public.messages (org_id, conversation_id, role, content, finish_reason)
    values (tests.fx('org_a'), tests.fx('conv_api'), 'assistant', '', 'error')$$,
  'messages: an empty answer may end with error'
);
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content, finish_reason)
    values (tests.fx('org_a'), tests.fx('conv_api'), 'assistant', 'x', 'tool_calls')$$,
  '23514', null, 'messages: the check still refuses other reasons'
);

select * from finish();
rollback;
