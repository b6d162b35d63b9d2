-- 20261123012900/013000: a turn's quota reservation is the one its question
-- holds. Turns reserve by their question's bytes, so two turns of one
-- conversation reserve differently; chat_finish and release_chat_reservation
-- give back the finishing (or failing) turn's own reservation, not the
-- conversation's oldest, which left a long running turn uncounted.
begin;
create extension if not exists pgtap with schema extensions;

select plan(6);

select tests.remember('owner', tests.create_user('owner@resv307.test'));
select tests.remember('org', tests.create_org('resv307-org', tests.fx('owner')));
insert into public.bots (org_id, name, slug, channels)
values (tests.fx('org'), 'Reservations 307', 'reservations-307', array['api']);
select tests.remember('bot', id) from public.bots where slug = 'reservations-307' and org_id = tests.fx('org');

create function pg_temp.turn(question text, conversation uuid) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), conversation, 'api', 'caller-307', null, question)
$$;
create function pg_temp.held(conversation uuid) returns text language sql security definer as $$
  select string_agg(r.question_message_id::text, ',' order by r.id) from private.chat_quota_reservations r
  where r.conversation_id = conversation
$$;
create function pg_temp.tokens_of(question bigint) returns integer language sql security definer as $$
  select r.tokens from private.chat_quota_reservations r where r.question_message_id = question
$$;
grant execute on all functions in schema pg_temp to public;

select tests.act_as('service_role');
create temporary table long_turn on commit drop as select pg_temp.turn(repeat('語', 3000), null) as p;
create temporary table short_turn on commit drop as
  select pg_temp.turn('hi', ((select p from long_turn) ->> 'conversation_id')::uuid) as p;
select tests.remember('conversation', ((select p from long_turn) ->> 'conversation_id')::uuid);
create temporary table q on commit drop as
  select (select (p ->> 'user_message_id')::bigint from long_turn) as long_q,
         (select (p ->> 'user_message_id')::bigint from short_turn) as short_q;

select is((select p ->> 'conversation_id' from short_turn), tests.fx('conversation')::text, 'both turns are in one conversation');
select ok(
  pg_temp.tokens_of((select long_q from q)) > pg_temp.tokens_of((select short_q from q)) + 8000,
  'the long question reserves its 9,000 bytes more than the short one'
);

-- The short turn finishes first: its own reservation goes, the long turn's stays counted.
select private.chat_finish(tests.fx('conversation'), 'Hello!', 10, 2, 50, 'gpt-4o-mini', '[]'::jsonb, null, 'stop', null,
  (select short_q from q));
select is(
  pg_temp.held(tests.fx('conversation')),
  (select long_q::text from q),
  'chat_finish gives back the reservation of the question it answers, not the oldest'
);

-- A third turn fails before chat_finish: release_chat_reservation names its question.
create temporary table failing_turn on commit drop as select pg_temp.turn('and then?', tests.fx('conversation')) as p;
select is(
  private.release_chat_reservation(tests.fx('conversation'), (select (p ->> 'user_message_id')::bigint from failing_turn)),
  true, 'release_chat_reservation gives back the failing turn''s reservation');
select is(
  pg_temp.held(tests.fx('conversation')),
  (select long_q::text from q),
  'the long turn''s reservation is still held'
);
-- Naming no question, the oldest goes (callers from before).
select private.release_chat_reservation(tests.fx('conversation'));
select is(
  pg_temp.held(tests.fx('conversation')), null,
  'with no question named, the conversation''s oldest is given back');

select * from finish();
rollback;
