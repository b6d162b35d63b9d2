-- Chat turn integrity (20261123011100): an end user's or a voice call's
-- conversation is continued only by a turn naming that end user or call; an
-- answer records its question and the history puts it right after it even
-- when two turns ran at once; chat_finish refuses a question of another
-- conversation; a turn chat_finish refused is metered by
-- chat_meter_unstored_turn (service role only).
begin;
create extension if not exists pgtap with schema extensions;

select plan(19);

select tests.remember('owner', tests.create_user('owner@integrity284.test'));
select tests.remember('org', tests.create_org('integrity284-org', tests.fx('owner')));

select tests.act_as('postgres');
insert into public.api_keys (org_id, name, prefix, scopes)
values (tests.fx('org'), 'voice platform', 'ak_00284001', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_00284001';
insert into public.bots (org_id, name, slug, channels)
values (tests.fx('org'), 'Integrity 284', 'integrity-284', array['api', 'voice']);
select tests.remember('bot', id) from public.bots where slug = 'integrity-284' and org_id = tests.fx('org');

-- A turn of the key as the chat function runs it (the service role): end user `who`, or call `call_id`, in
-- `conversation` if given; on the voice channel with a call or when `voice`.
create function pg_temp.key_turn(who text, conversation uuid default null, call_id text default null,
  question text default 'What did I order last week?', voice boolean default false) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), conversation,
    case when call_id is null and not voice then 'api' else 'voice' end::public.chat_channel,
    who, tests.fx('key'), question, call_id)
$$;
grant execute on function pg_temp.key_turn(text, uuid, text, text, boolean) to public;

create function pg_temp.messages_in(conversation uuid) returns integer language sql security definer as $$
  select count(*)::integer from public.messages m where m.conversation_id = $1
$$;
grant execute on function pg_temp.messages_in(uuid) to public;

create function pg_temp.chat_usage(conversation uuid) returns text language sql security definer as $$
  select coalesce(string_agg(u.tokens_in || '/' || u.tokens_out || '/' || coalesce(u.model, '-'), ',' order by u.id), '')
  from public.usage_events u where u.conversation_id = $1 and u.kind = 'chat'
$$;
grant execute on function pg_temp.chat_usage(uuid) to public;

-- ---------------------------------------------------------------------------
-- 1. An end user's or a call's conversation, named by id
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select tests.remember('alice', (pg_temp.key_turn('alice-284') ->> 'conversation_id')::uuid);
select tests.remember('call', (pg_temp.key_turn(null, null, 'call-284') ->> 'conversation_id')::uuid);

select throws_ok(
  format($$select pg_temp.key_turn(null, %L)$$, tests.fx('alice')),
  '22023', 'the conversation belongs to another end user',
  'end users: a key''s turn naming no end user cannot continue an end user''s conversation by its id'
);
select is(pg_temp.messages_in(tests.fx('alice')), 1, 'end users: nothing is added to her conversation');
select throws_ok(
  format($$select pg_temp.key_turn(null, %L, voice => true)$$, tests.fx('call')),
  '22023', 'the conversation belongs to another end user',
  'calls: a key''s turn naming no call cannot continue a call''s conversation by its id'
);
select throws_ok(
  format($$select pg_temp.key_turn(null, %L, 'call-284-other')$$, tests.fx('call')),
  '22023', 'the conversation belongs to another end user',
  'calls: nor can a turn of another call'
);
select is(pg_temp.messages_in(tests.fx('call')), 1, 'calls: nothing is added to the call''s conversation');
select is(pg_temp.key_turn(null, tests.fx('call'), 'call-284') ->> 'conversation_id', tests.fx('call')::text,
  'calls: a turn of the same call continues it by its id');
select is(pg_temp.key_turn('alice-284', tests.fx('alice')) ->> 'conversation_id', tests.fx('alice')::text,
  'end users: alice continues her own conversation by its id');
select tests.remember('plain', (pg_temp.key_turn(null) ->> 'conversation_id')::uuid);
select is(pg_temp.key_turn(null, tests.fx('plain')) ->> 'conversation_id', tests.fx('plain')::text,
  'a conversation of no end user is still continued by its id');

-- ---------------------------------------------------------------------------
-- 2. Two turns at once: each answer recorded against its question, and put
-- after it in the history
-- ---------------------------------------------------------------------------

create temp table turns (label text primary key, question bigint, answer bigint);
grant all on turns to public;

insert into turns (label, question)
select 'q1', (pg_temp.key_turn('bob-284', null, null, 'Question one?') ->> 'user_message_id')::bigint;
select tests.remember('bob', (pg_temp.key_turn('bob-284', null, null, 'Question two?') ->> 'conversation_id')::uuid);
insert into turns (label, question)
select 'q2', m.id from public.messages m where m.conversation_id = tests.fx('bob') and m.content = 'Question two?';
-- Both answers come after both questions: Q1, Q2, A1, A2.
update turns set answer = (private.chat_finish(tests.fx('bob'), 'Answer one.', 10, 5, 100, null, '[]', null, 'stop',
  tests.fx('key'), (select question from turns where label = 'q1')) ->> 'message_id')::bigint where label = 'q1';
update turns set answer = (private.chat_finish(tests.fx('bob'), 'Answer two.', 10, 5, 100, null, '[]', null, 'stop',
  tests.fx('key'), (select question from turns where label = 'q2')) ->> 'message_id')::bigint where label = 'q2';

select ok((select bool_and(answer > (select max(question) from turns)) from turns), 'two turns at once: stored Q1, Q2, A1, A2');
select results_eq(
  $$select m.reply_to_message_id from public.messages m join turns t on t.answer = m.id order by t.label$$,
  $$select question from turns order by label$$,
  'two turns at once: each answer records its question'
);
select is(
  pg_temp.key_turn('bob-284', null, null, 'Question three?') -> 'history',
  '[{"role": "user", "content": "Question one?"}, {"role": "assistant", "content": "Answer one."},
    {"role": "user", "content": "Question two?"}, {"role": "assistant", "content": "Answer two."}]'::jsonb,
  'two turns at once: the next turn''s history has each answer right after its question'
);

select throws_ok(
  format($$select private.chat_finish(%L, 'Stray.', 1, 1, 1, null, '[]', null, 'stop', null, %s)$$,
    tests.fx('alice'), (select question from turns where label = 'q1')),
  '22023', 'question_message_id names no question of the conversation',
  'chat_finish: a question of another conversation is refused'
);
select throws_ok(
  format($$select private.chat_finish(%L, 'Stray.', 1, 1, 1, null, '[]', null, 'stop', null, %s)$$,
    tests.fx('bob'), (select answer from turns where label = 'q1')),
  '22023', 'question_message_id names no question of the conversation',
  'chat_finish: an answer is not a question'
);

select tests.act_as('postgres');
select throws_ok(
  format($$insert into public.messages (org_id, conversation_id, role, content, reply_to_message_id) values (%L, %L, 'user', 'x', %s)$$,
    tests.fx('org'), tests.fx('bob'), (select question from turns where label = 'q1')),
  '23514', null,
  'messages: only an answer records a question'
);

-- ---------------------------------------------------------------------------
-- 3. A turn chat_finish refused, metered all the same
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select lives_ok(
  format($$select private.chat_meter_unstored_turn(%L, 'gpt-4o-mini', 1200, 9000, %L)$$, tests.fx('alice'), tests.fx('key')),
  'unstored turn: the service meters it'
);
select is(pg_temp.chat_usage(tests.fx('alice')), '1200/9000/gpt-4o-mini', 'unstored turn: its tokens are metered to its conversation');
select is(
  (select api_key_id from public.usage_events u where u.conversation_id = tests.fx('alice') and u.kind = 'chat'),
  tests.fx('key'), 'unstored turn: and to the calling key'
);
select is(pg_temp.messages_in(tests.fx('alice')), 2, 'unstored turn: no message is stored');

select tests.act_as('owner');
select throws_ok(
  format($$select private.chat_meter_unstored_turn(%L, 'gpt-4o-mini', 1, 1)$$, tests.fx('alice')),
  '42501', null,
  'unstored turn: a signed-in user cannot meter one'
);

select * from finish();
rollback;
