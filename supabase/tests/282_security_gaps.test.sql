-- Security checks a mutation review found no test catching: the previous
-- provider secret is accepted only until its overlap ends (else a secret
-- rotated out because it leaked would sign forged call events for good), and
-- an API key's turn naming a conversation id is refused when the
-- conversation is another end user's (else one end user of a voice or chat
-- platform could read and write into another's conversation by its id).
begin;
create extension if not exists pgtap with schema extensions;

select plan(9);

select tests.remember('owner', tests.create_user('owner@gaps282.test'));
select tests.remember('org', tests.create_org('gaps282-org', tests.fx('owner')));

-- Secrets handed out, by label.
create temp table secrets (label text primary key, secret text);
grant all on secrets to public;

-- ---------------------------------------------------------------------------
-- 1. The previous provider secret, after its overlap
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
insert into secrets select 'first', public.create_call_provider_secret(tests.fx('org'), 'vapi');
insert into secrets select 'second', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'vapi', 24) r;

select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'vapi'),
  array[(select secret from secrets where label = 'second'), (select secret from secrets where label = 'first')],
  'secrets: during the overlap the new and the previous secret are accepted'
);

-- The overlap runs out.
select tests.act_as('postgres');
update private.call_provider_secrets s set previous_valid_until = now() - interval '1 second'
where s.org_id = tests.fx('org') and s.provider = 'vapi';

select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'vapi'),
  array[(select secret from secrets where label = 'second')],
  'secrets: once the overlap has ended only the new secret is accepted'
);
select ok(
  not ((select secret from secrets where label = 'first') = any (private.call_provider_secrets_for(tests.fx('org'), 'vapi'))),
  'secrets: the rotated-out secret signs nothing any more'
);

-- ---------------------------------------------------------------------------
-- 2. An API key's turn naming another end user's conversation
-- ---------------------------------------------------------------------------

select tests.act_as('postgres');
insert into public.api_keys (org_id, name, prefix, scopes)
values (tests.fx('org'), 'chat platform', 'ak_00282001', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_00282001';
insert into public.bots (org_id, name, slug, channels)
values (tests.fx('org'), 'Gaps 282', 'gaps-282', array['api']);
select tests.remember('bot', id) from public.bots where slug = 'gaps-282' and org_id = tests.fx('org');

-- A turn of the key as the chat function runs it (the service role), as end user `who`, in `conversation` if given.
create function pg_temp.key_turn(who text, conversation uuid default null) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), conversation, 'api', who, tests.fx('key'), 'What did I order last week?')
$$;
grant execute on function pg_temp.key_turn(text, uuid) to public;

create function pg_temp.messages_in(conversation uuid) returns integer language sql security definer as $$
  select count(*)::integer from public.messages m where m.conversation_id = $1
$$;
grant execute on function pg_temp.messages_in(uuid) to public;

select tests.act_as('service_role');
select tests.remember('alice_conversation', (pg_temp.key_turn('alice-282') ->> 'conversation_id')::uuid);
select is(pg_temp.messages_in(tests.fx('alice_conversation')), 1, 'end users: alice''s turn opens her conversation with her question');

select throws_ok(
  format($$select pg_temp.key_turn('mallory-282', %L)$$, tests.fx('alice_conversation')),
  '22023', 'the conversation belongs to another end user',
  'end users: a turn of the same key naming another end user''s conversation id is refused'
);
select is(pg_temp.messages_in(tests.fx('alice_conversation')), 1, 'end users: nothing is added to her conversation');
select is(
  (select count(*)::integer from public.conversations c where c.bot_id = tests.fx('bot') and c.external_user_id = 'mallory-282'),
  0, 'end users: and no conversation is opened for the refused turn'
);

select is(pg_temp.key_turn('alice-282', tests.fx('alice_conversation')) ->> 'conversation_id',
  tests.fx('alice_conversation')::text, 'end users: alice continues her own conversation by its id');
select is(pg_temp.messages_in(tests.fx('alice_conversation')), 2, 'end users: her question is added to it');

select * from finish();
rollback;
