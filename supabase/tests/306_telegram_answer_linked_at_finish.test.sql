-- 20261123013000: chat_finish settles the claim of the Telegram update whose
-- question it answers, in its own transaction, so a redelivery after a lost
-- link (or a dead worker) sends the stored answer instead of asking the model
-- again; a claim settled before (a refusal told) is left alone, and a turn
-- that is not Telegram's links nothing.
begin;
create extension if not exists pgtap with schema extensions;

select plan(10);

select tests.remember('owner', tests.create_user('owner@tg306.test'));
select tests.remember('org', tests.create_org('tg306-org', tests.fx('owner')));
insert into public.bots (org_id, name, slug, channels)
values (tests.fx('org'), 'Telegram 306', 'telegram-306', array['api', 'telegram']);
select tests.remember('bot', id) from public.bots where slug = 'telegram-306' and org_id = tests.fx('org');

create function pg_temp.turn(update_id bigint, chat text) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'telegram', chat, null, 'Are you open on Sunday?', null, update_id)
$$;
create function pg_temp.finish(prepared jsonb, answer text) returns bigint language sql as $$
  select (private.chat_finish((prepared ->> 'conversation_id')::uuid, answer, 10, 5, 100, 'gpt-4o-mini', '[]'::jsonb,
    null, 'stop', null, (prepared ->> 'user_message_id')::bigint) ->> 'message_id')::bigint
$$;
create function pg_temp.claim(update_id bigint) returns text language sql as $$
  select format('%s/%s', c.claimed, coalesce(c.answer, '-')) from private.claim_telegram_update(tests.fx('bot'), update_id) c
$$;
create function pg_temp.update_row(update_id bigint) returns text language sql security definer as $$
  select format('%s/%s', coalesce(u.message_id::text, '-'), coalesce(u.claimed_until::text, '-'))
  from private.telegram_updates u where u.bot_id = tests.fx('bot') and u.update_id = $1
$$;
create function pg_temp.answers() returns integer language sql security definer as $$
  select count(*)::integer from public.messages m join public.conversations c on c.id = m.conversation_id
  where c.bot_id = tests.fx('bot') and m.role = 'assistant'
$$;
create function pg_temp.expire(update_id bigint) returns void language sql security definer as $$
  update private.telegram_updates u set claimed_until = now() - interval '1 second'
  where u.bot_id = tests.fx('bot') and u.update_id = $1 and u.claimed_until is not null
$$;
grant execute on all functions in schema pg_temp to public;

select tests.act_as('service_role');

-- Update 1: claimed, its question stored, answered; the webhook's own link never runs.
select is(pg_temp.claim(3061), 't/-', 'the first delivery claims the update');
create temporary table prepared on commit drop as select pg_temp.turn(3061, 'chat-306-a') as p;
select is((select p ->> 'ok' from prepared), 'true', 'the turn is prepared with its question');
create temporary table finished on commit drop as select pg_temp.finish((select p from prepared), 'Yes, 10 to 4.') as id;
select is(pg_temp.update_row(3061), (select id::text from finished) || '/-',
  'chat_finish links the answer and settles the claim in the same transaction');

-- The send failed for now and the lease would have run out: a redelivery is not claimed and gets the answer.
select pg_temp.expire(3061);
select is(pg_temp.claim(3061), 'f/Yes, 10 to 4.', 'a redelivery sends the stored answer, with no new turn');
select is(pg_temp.answers(), 1, 'one answer stored for the question');

-- Update 2: a refusal told and settled (no answer) before a late chat_finish of the same question: left alone.
select is(pg_temp.claim(3062), 't/-', 'a second update is claimed');
create temporary table prepared2 on commit drop as select pg_temp.turn(3062, 'chat-306-b') as p;
select private.telegram_update_answered(tests.fx('bot'), 3062, null);
select pg_temp.finish((select p from prepared2), 'Late answer.');
select is(pg_temp.update_row(3062), '-/-', 'a claim settled before is not linked by a later answer');

-- Update 3: the model failed; its text is no answer, so the claim keeps its lease for the webhook to settle.
select is(pg_temp.claim(3063), 't/-', 'a third update is claimed');
create temporary table prepared4 on commit drop as select pg_temp.turn(3063, 'chat-306-c') as p;
select private.chat_finish(((select p from prepared4) ->> 'conversation_id')::uuid, 'Delivery takes', 10, 2, 100,
  'gpt-4o-mini', '[]'::jsonb, null, 'error', null, ((select p from prepared4) ->> 'user_message_id')::bigint);
select ok(pg_temp.update_row(3063) like '-/2%', 'a failed turn''s text is not linked and the lease stays');

-- A turn that is not Telegram's (no update) links nothing.
create temporary table prepared3 on commit drop as
  select private.chat_prepare(tests.fx('bot'), null, 'api', 'caller-306', null, 'Hello?') as p;
select pg_temp.finish((select p from prepared3), 'Hello!');
select tests.act_as('postgres');
select is((select count(*)::integer from private.telegram_updates u where u.bot_id = tests.fx('bot') and u.message_id is not null), 1,
  'only update 1 holds an answer');

select * from finish();
rollback;
