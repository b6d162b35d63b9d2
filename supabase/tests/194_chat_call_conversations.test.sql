-- One conversation per voice-platform call, and a text-only retrieval
-- (20261123005400_chat_call_conversations_and_text_retrieval.sql):
-- chat_prepare keys the bot's live conversation by external_conversation_id
-- (continued by every turn of the call, per bot, so another org's key with the
-- same id gets its own; a given conversation id wins; one key per new
-- conversation; a closed one is followed by a new one; refusals start
-- nothing); match_document_chunks_by_text is the hybrid search's text half on
-- its own, as the caller.
begin;
create extension if not exists pgtap with schema extensions;

select plan(27);

create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

create function pg_temp.conversation(label text)
returns uuid
language sql
stable
as $$ select (pg_temp.answer(label) ->> 'conversation_id')::uuid $$;
grant execute on function pg_temp.conversation(text) to public;

-- chat_prepare as an API key (the service role, as chat/completions runs it) on a call.
create function pg_temp.call_turn(label text, bot text, key text, call_id text, channel public.chat_channel default 'voice')
returns jsonb
language sql
as $$
  insert into answers
  select label, private.chat_prepare(tests.fx(bot), null, channel, null, tests.fx(key), 'When are you open?', call_id)
  returning body;
$$;
grant execute on function pg_temp.call_turn(text, text, text, text, public.chat_channel) to public;

create function pg_temp.conversations_with(call_id text)
returns bigint
language sql
security definer
as $$ select count(*) from public.conversations c where c.external_conversation_id = call_id $$;
grant execute on function pg_temp.conversations_with(text) to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@call-conversations.test')),
  ('member_a', tests.create_user('member-a@call-conversations.test')),
  ('owner_b', tests.create_user('owner-b@call-conversations.test'));
select tests.remember('org_a', tests.create_org('call-conversations-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('call-conversations-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_a'), 'voice a', 'ak_0000c194', array['chat.write']),
  (tests.fx('org_b'), 'voice b', 'ak_0000c195', array['chat.write']);
select tests.remember('key_a', id) from public.api_keys where prefix = 'ak_0000c194';
select tests.remember('key_b', id) from public.api_keys where prefix = 'ak_0000c195';

insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org_a'), 'Receptionist', 'receptionist', array['api', 'voice', 'web']),
  (tests.fx('org_a'), 'Api only', 'api-only', array['api']),
  (tests.fx('org_b'), 'Receptionist', 'receptionist', array['api', 'voice']);
select tests.remember('bot_a', id) from public.bots where slug = 'receptionist' and org_id = tests.fx('org_a');
select tests.remember('bot_api_only', id) from public.bots where slug = 'api-only';
select tests.remember('bot_b', id) from public.bots where slug = 'receptionist' and org_id = tests.fx('org_b');

-- ---------------------------------------------------------------------------
-- chat_prepare with an external conversation id
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.call_turn('first', 'bot_a', 'key_a', 'call-1');
select pg_temp.call_turn('second', 'bot_a', 'key_a', 'call-1');
select pg_temp.call_turn('other call', 'bot_a', 'key_a', 'call-2');
select pg_temp.call_turn('other org', 'bot_b', 'key_b', 'call-1');

select is(pg_temp.answer('first') ->> 'ok', 'true', 'a call''s first turn is let through');
select is(pg_temp.conversation('second'), pg_temp.conversation('first'), 'the call''s second turn continues its conversation');
select is(
  pg_temp.answer('second') -> 'history',
  '[{"role": "user", "content": "When are you open?"}]'::jsonb,
  'the second turn''s history is the first turn''s question'
);
select isnt(pg_temp.conversation('other call'), pg_temp.conversation('first'), 'another call has its own conversation');
select isnt(pg_temp.conversation('other org'), pg_temp.conversation('first'),
  'the same call id under another org''s key and bot has its own conversation');

select tests.act_as('postgres');
select results_eq(
  $$select org_id, bot_id, channel::text, external_conversation_id, external_user_id, api_key_id, message_count
    from public.conversations where id = pg_temp.conversation('first')$$,
  $$values (tests.fx('org_a'), tests.fx('bot_a'), 'voice', 'call-1', null::text, tests.fx('key_a'), 2)$$,
  'the call''s conversation: the org''s bot, voice, keyed by the call id, both questions in it'
);
select results_eq(
  $$select org_id, message_count from public.conversations where id = pg_temp.conversation('other org')$$,
  $$values (tests.fx('org_b'), 1)$$,
  'the other org''s conversation is its own, with only its own question'
);

select tests.act_as('service_role');
select throws_ok(
  $$select pg_temp.call_turn('cross', 'bot_a', 'key_b', 'call-1')$$,
  '42501', 'this API key may not chat with this bot',
  'another org''s key cannot reach this org''s bot, so never its call''s conversation'
);
select throws_ok(
  $$select pg_temp.call_turn('wrong channel', 'bot_a', 'key_a', 'call-1', 'api')$$,
  '22023', 'the conversation is on the voice channel',
  'a turn of the call on another channel is refused'
);
select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_a'), null, 'voice', 'end-user', tests.fx('key_a'), 'hi', 'call-9')$$,
  '22023', 'a new conversation is keyed by external_user_id or by external_conversation_id, not both',
  'a new conversation has one key'
);
select throws_ok(
  $$select pg_temp.call_turn('long', 'bot_a', 'key_a', repeat('x', 201))$$,
  '22023', 'external_conversation_id has 1 to 200 characters',
  'an external id over 200 characters is refused'
);
select throws_ok(
  $$select pg_temp.call_turn('empty', 'bot_a', 'key_a', '')$$,
  '22023', 'external_conversation_id has 1 to 200 characters',
  'an empty external id is refused'
);

select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_a'), pg_temp.conversation('other call'), 'voice', null, tests.fx('key_a'),
    'Still there?', 'call-3')$$,
  '22023', 'the conversation belongs to another end user',
  'a given conversation id of another call is refused (20261123011100: it was taken over the external id)'
);
select is(pg_temp.conversations_with('call-3'), 0::bigint, 'and no conversation is started for that external id');

select pg_temp.call_turn('api only', 'bot_api_only', 'key_a', 'call-4');
select is(pg_temp.answer('api only') ->> 'code', 'channel_not_enabled', 'a bot that does not answer on voice refuses the call');
select is(pg_temp.conversations_with('call-4'), 0::bigint, 'and the refusal starts no conversation');

select tests.act_as('member_a');
select throws_ok(
  $$select private.chat_prepare(tests.fx('bot_a'), null, 'web', null, null, 'hi', 'call-5')$$,
  '22023', 'external_conversation_id is for API clients; a signed-in user continues a conversation by its id',
  'a signed-in user has no external conversation id'
);

select tests.act_as('postgres');
update public.conversations set status = 'closed', closed_at = now() where id = pg_temp.conversation('first');
select tests.act_as('service_role');
select pg_temp.call_turn('after close', 'bot_a', 'key_a', 'call-1');
select isnt(pg_temp.conversation('after close'), pg_temp.conversation('first'),
  'after the call''s conversation was closed, its next turn starts a new one');

select tests.act_as('postgres');
select throws_ok(
  $$insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
    values (tests.fx('org_a'), tests.fx('bot_a'), 'voice', 'call-1')$$,
  '23505', null,
  'one live conversation per bot and external id, in the database'
);
select lives_ok(
  $$insert into public.conversations (org_id, bot_id, channel, external_conversation_id, status, closed_at)
    values (tests.fx('org_a'), tests.fx('bot_a'), 'voice', 'call-1', 'closed', now())$$,
  'closed ones do not count'
);

-- ---------------------------------------------------------------------------
-- match_document_chunks_by_text
-- ---------------------------------------------------------------------------

insert into public.collections (id, org_id, name) values (gen_random_uuid(), tests.fx('org_a'), 'elsewhere');
select tests.remember('elsewhere', id) from public.collections where org_id = tests.fx('org_a') and name = 'elsewhere';
insert into public.documents (id, org_id, name, mime_type, size_bytes, storage_path, status) values
  (gen_random_uuid(), tests.fx('org_a'), 'shop.txt', 'text/plain', 10, tests.fx('org_a') || '/shop.txt', 'ready'),
  (gen_random_uuid(), tests.fx('org_b'), 'depot.txt', 'text/plain', 10, tests.fx('org_b') || '/depot.txt', 'ready');
select tests.remember('doc_shop', id) from public.documents where name = 'shop.txt';
select tests.remember('doc_depot', id) from public.documents where name = 'depot.txt';
insert into public.document_chunks (org_id, document_id, chunk_index, page_start, page_end, content, token_count, embedding)
values
  (tests.fx('org_a'), tests.fx('doc_shop'), 0, 1, 1, 'Delivery takes two working days.', 5,
    array_fill(1::real, array[1536])::extensions.vector),
  (tests.fx('org_a'), tests.fx('doc_shop'), 1, 2, 2, 'Delivery abroad takes a week; delivery is free.', 8,
    (array[2::real] || array_fill(1::real, array[1535]))::extensions.vector),
  (tests.fx('org_a'), tests.fx('doc_shop'), 2, 3, 3, 'We are open from nine to five.', 7,
    (array[3::real] || array_fill(1::real, array[1535]))::extensions.vector),
  (tests.fx('org_b'), tests.fx('doc_depot'), 0, 1, 1, 'Delivery from the hidden depot, code 7391.', 7,
    array_fill(1::real, array[1536])::extensions.vector);

select tests.act_as('member_a');
select results_eq(
  $$select document_name, page_start, text_rank, vector_rank, score
    from public.match_document_chunks_by_text(tests.fx('org_a'), 'How long does delivery take?', 5)$$,
  $$values ('shop.txt', 2, 1, null::integer, (1.0 / 61)::double precision), ('shop.txt', 1, 2, null::integer, (1.0 / 62)::double precision)$$,
  'a member finds the org''s chunks holding the words, densest first, scored as RRF scores a text-only match'
);
select is_empty(
  $$select * from public.match_document_chunks_by_text(tests.fx('org_a'), 'How long does delivery take?', 5,
    array[tests.fx('elsewhere')])$$,
  'limited to a collection without those chunks: nothing'
);
select is_empty(
  $$select * from public.match_document_chunks_by_text(tests.fx('org_a'), 'zzzz qqqq', 5)$$,
  'no word the org''s chunks hold: nothing'
);
select throws_ok(
  $$select * from public.match_document_chunks_by_text(tests.fx('org_a'), 'delivery', 0)$$,
  '22023', 'match_count must be between 1 and 50',
  'match_count is checked as match_document_chunks checks it'
);

select tests.act_as('owner_b');
select is_empty(
  $$select * from public.match_document_chunks_by_text(tests.fx('org_a'), 'How long does delivery take?', 5)$$,
  'another org''s owner finds nothing of this org'
);

select tests.act_as('service_role');
select results_eq(
  $$select document_name from public.match_document_chunks_by_text(tests.fx('org_b'), 'delivery', 5)$$,
  $$values ('depot.txt')$$,
  'the service role (bot endpoints) searches the org it names, only that org'
);

select tests.act_as('anon');
select throws_ok(
  $$select * from public.match_document_chunks_by_text(tests.fx('org_a'), 'delivery', 5)$$,
  '42501', null,
  'anon may not call it'
);

select * from finish();
rollback;
