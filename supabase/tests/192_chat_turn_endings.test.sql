-- How chat turns end (20261123003700_chat_turn_endings.sql): chat_finish
-- stores the finish reason, an empty answer with one (the model gave no
-- text) and an interrupted one, still refuses blank text; usage is metered to
-- the calling API key (one of the conversation's org), never chosen by a
-- signed-in user; Telegram updates are claimed once, give back the stored
-- answer on redelivery, are released only when nothing was answered, and
-- are purged after three days.
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@endings.test')),
  ('member_a', tests.create_user('member-a@endings.test')),
  ('owner_b', tests.create_user('owner-b@endings.test'));
select tests.remember('org_a', tests.create_org('endings-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('endings-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_a'), 'first key', 'ak_0000e001', array['chat.write']),
  (tests.fx('org_a'), 'second key', 'ak_0000e002', array['chat.write']),
  (tests.fx('org_b'), 'b key', 'ak_0000e003', array['chat.write']);
select tests.remember('key_1', id) from public.api_keys where prefix = 'ak_0000e001';
select tests.remember('key_2', id) from public.api_keys where prefix = 'ak_0000e002';
select tests.remember('key_b', id) from public.api_keys where prefix = 'ak_0000e003';

insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'Bot', 'bot', array['api', 'telegram', 'web']);
select tests.remember('bot', id) from public.bots where slug = 'bot' and org_id = tests.fx('org_a');
-- An API conversation started by the first key, and the member's web conversation.
insert into public.conversations (org_id, bot_id, channel, external_user_id, api_key_id) values
  (tests.fx('org_a'), tests.fx('bot'), 'api', 'end-user', tests.fx('key_1'));
select tests.remember('conv_api', id) from public.conversations where external_user_id = 'end-user';
insert into public.conversations (org_id, bot_id, channel, user_id) values
  (tests.fx('org_a'), tests.fx('bot'), 'web', tests.fx('member_a'));
select tests.remember('conv_web', id) from public.conversations where user_id = tests.fx('member_a');

select has_column('public', 'messages', 'finish_reason', 'messages: an answer records why it ended');

-- ---------------------------------------------------------------------------
-- chat_finish: finish reasons and empty answers
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), '', 400, 0, 120, 'gpt-4o-mini', '[]', null, 'content_filter', tests.fx('key_2'))$$,
  'chat_finish: an empty answer with its finish reason is stored'
);
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'Delivery takes', 380, 3, 90, 'gpt-4o-mini', '[]', null, 'interrupted', tests.fx('key_1'))$$,
  'chat_finish: an interrupted answer (what was streamed) is stored'
);
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'Two days.', 10, 3, 50, 'gpt-4o-mini', '[]')$$,
  'chat_finish: the eight arguments of earlier callers still work'
);
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'Three days.', 10, 3, 50, 'gpt-4o-mini', '[]', null, 'length', tests.fx('key_b'))$$,
  'chat_finish: a key of another org is accepted but not charged'
);
select tests.act_as('postgres');
select results_eq(
  $$select content, finish_reason, tokens_in from public.messages where conversation_id = tests.fx('conv_api') order by id$$,
  $$values ('', 'content_filter', 400), ('Delivery takes', 'interrupted', 380), ('Two days.', 'stop', 10), ('Three days.', 'length', 10)$$,
  'chat_finish: each answer is stored with its finish reason (stop by default)'
);
select results_eq(
  $$select tokens_in, api_key_id from public.usage_events where conversation_id = tests.fx('conv_api') and kind = 'chat' order by id$$,
  $$values (400, tests.fx('key_2')), (380, tests.fx('key_1')), (10, tests.fx('key_1')), (10, null::uuid)$$,
  'chat_finish: usage goes to the calling key, not the conversation''s first key (its key only when none is named); another org''s key: none'
);

select tests.act_as('service_role');
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_api'), '  ', 1, 1, 1, null, '[]', null, 'stop')$$,
  '22023', 'an answer has 1 to 32000 characters', 'chat_finish: blank text is still refused'
);
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'x', 1, 1, 1, null, '[]', null, 'tool_calls')$$,
  '22023', 'finish_reason is stop, length, content_filter, interrupted or error', 'chat_finish: an unknown finish reason is refused'
);
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_api'), 'x', 1, 1, 1, null, '[]', null, null)$$,
  '22023', null, 'chat_finish: the finish reason is required'
);

select tests.act_as('member_a');
select lives_ok(
  $$select private.chat_finish(tests.fx('conv_web'), '', 10, 0, 1, 'gpt-4o-mini', '[]', null, 'content_filter')$$,
  'chat_finish: a signed-in user finishes their own turn with an empty answer'
);
select throws_ok(
  $$select private.chat_finish(tests.fx('conv_web'), 'x', 10, 0, 1, 'gpt-4o-mini', '[]', null, 'stop', tests.fx('key_1'))$$,
  '42501', 'a signed-in user cannot answer as an API key', 'chat_finish: a signed-in user cannot charge an API key'
);

select tests.act_as('postgres');
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content) values (tests.fx('org_a'), tests.fx('conv_api'), 'user', '')$$,
  '23514', null, 'messages: only an answer with a finish reason may be empty'
);
select throws_ok(
  $$insert into public.messages (org_id, conversation_id, role, content, finish_reason)
    values (tests.fx('org_a'), tests.fx('conv_api'), 'user', 'hi', 'stop')$$,
  '23514', null, 'messages: a user message has no finish reason'
);

-- ---------------------------------------------------------------------------
-- Telegram updates, claimed once
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select results_eq(
  $$select claimed, answer from private.claim_telegram_update(tests.fx('bot'), 7001)$$,
  $$values (true, null::text)$$,
  'claim_telegram_update: the first delivery is claimed'
);
select results_eq(
  $$select claimed, answer from private.claim_telegram_update(tests.fx('bot'), 7001)$$,
  $$values (false, null::text)$$,
  'claim_telegram_update: a redelivery before the answer is stored is not claimed, with nothing to send'
);
select private.telegram_update_answered(tests.fx('bot'), 7001,
  (select max(id) from public.messages where conversation_id = tests.fx('conv_api')));
select private.release_telegram_update(tests.fx('bot'), 7001);
select results_eq(
  $$select claimed, answer from private.claim_telegram_update(tests.fx('bot'), 7001)$$,
  $$values (false, 'Three days.')$$,
  'claim_telegram_update: a redelivery of an answered update gets the stored answer; release keeps an answered claim'
);
select private.claim_telegram_update(tests.fx('bot'), 7002);
select private.release_telegram_update(tests.fx('bot'), 7002);
select results_eq(
  $$select claimed from private.claim_telegram_update(tests.fx('bot'), 7002)$$,
  $$values (true)$$,
  'release_telegram_update: an update whose turn stored nothing is claimed again by its redelivery'
);
select throws_ok($$select * from private.telegram_updates$$, '42501', null, 'telegram_updates: not even the service role reads it directly');

select tests.act_as('owner_a');
select throws_ok(
  $$select * from private.claim_telegram_update(tests.fx('bot'), 7003)$$,
  '42501', null, 'claim_telegram_update: for the service role only'
);

select tests.act_as('postgres');
update private.telegram_updates set received_at = now() - interval '4 days' where update_id = 7001;
select is(private.purge_telegram_updates(), 1, 'purge_telegram_updates: drops claims older than three days');
select is(
  (select array_agg(update_id order by update_id) from private.telegram_updates where bot_id = tests.fx('bot')),
  array[7002::bigint],
  'purge_telegram_updates: keeps the recent ones'
);

select * from finish();
rollback;
