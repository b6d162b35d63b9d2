-- 20261123010500: a turn with an API key that names its end user takes the
-- end user's bucket (api_key:<id>:user:<end user>, 60 a minute) as well as
-- the key's, and a refusal by either takes from neither; a Telegram update's
-- claim is a lease: claimed again by a redelivery once it ran out with
-- nothing answered, not before (a redelivery meanwhile is told the lease's
-- remaining seconds), never once settled (answered, sent, told), and the
-- resumed turn goes on with the question the dead one stored.
begin;
create extension if not exists pgtap with schema extensions;

select plan(42);

select tests.remember('owner', tests.create_user('owner@limits277.test'));
select tests.remember('org', tests.create_org('limits277-org', tests.fx('owner')));
insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org'), 'voice platform', 'ak_00277001', array['chat.write']),
  (tests.fx('org'), 'other platform', 'ak_00277002', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_00277001';
select tests.remember('key2', id) from public.api_keys where prefix = 'ak_00277002';
insert into public.bots (org_id, name, slug, channels)
values (tests.fx('org'), 'Limits 277', 'limits-277', array['api', 'telegram', 'voice']);
select tests.remember('bot', id) from public.bots where slug = 'limits-277' and org_id = tests.fx('org');

create function pg_temp.hits(bucket text) returns integer language sql security definer as $$
  select coalesce((select h.hits from private.rate_limit_hits h where h.bucket = $1), 0)
$$;
grant execute on function pg_temp.hits(text) to public;

-- Fills a bucket's current window (the transaction's now(): every take in this file falls in it).
create function pg_temp.fill(bucket text, hits integer) returns void language sql security definer as $$
  insert into private.rate_limit_hits (bucket, window_start, hits)
  values ($1, to_timestamp(floor(extract(epoch from now()) / 60) * 60), $2)
  on conflict (bucket, window_start) do update set hits = excluded.hits
$$;
grant execute on function pg_temp.fill(text, integer) to public;

-- A turn of the key as the chat function runs it (the service role), as end user `who` on the api channel.
create function pg_temp.key_turn(key_name text, who text) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'api', who, tests.fx(key_name), 'When do you open?')
$$;
grant execute on function pg_temp.key_turn(text, text) to public;

-- The Telegram webhook's turn for update `update_id` of chat `chat`.
create function pg_temp.telegram_turn(update_id bigint, chat text) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'telegram', chat, null, 'Are you open on Sunday?', null, update_id)
$$;
grant execute on function pg_temp.telegram_turn(bigint, text) to public;

create function pg_temp.claim(update_id bigint) returns text language sql as $$
  select format('%s/%s', case when c.claimed then 'true' else 'false' end, coalesce(c.answer, '-')) from private.claim_telegram_update(tests.fx('bot'), update_id) c
$$;
grant execute on function pg_temp.claim(bigint) to public;

-- What a redelivery is told to wait: the live lease's remaining seconds, null when there is none.
create function pg_temp.retry_after(update_id bigint) returns integer language sql as $$
  select c.retry_after_seconds from private.claim_telegram_update(tests.fx('bot'), update_id) c
$$;
grant execute on function pg_temp.retry_after(bigint) to public;

-- Time passing within a claim's lease: `seconds` of it are left.
create function pg_temp.lease_left(update_id bigint, seconds numeric) returns void language sql security definer as $$
  update private.telegram_updates u set claimed_until = now() + make_interval(secs => $2)
  where u.bot_id = tests.fx('bot') and u.update_id = $1 and u.claimed_until is not null
$$;
grant execute on function pg_temp.lease_left(bigint, numeric) to public;

-- Time passing for a claim's lease: one held runs out; a settled one (null) has none to run out.
create function pg_temp.expire(update_id bigint) returns void language sql security definer as $$
  update private.telegram_updates u set claimed_until = now() - interval '1 second'
  where u.bot_id = tests.fx('bot') and u.update_id = $1 and u.claimed_until is not null
$$;
grant execute on function pg_temp.expire(bigint) to public;

create function pg_temp.question_of(update_id bigint) returns bigint language sql security definer as $$
  select u.question_message_id from private.telegram_updates u where u.bot_id = tests.fx('bot') and u.update_id = $1
$$;
grant execute on function pg_temp.question_of(bigint) to public;

create function pg_temp.user_messages(chat text) returns integer language sql security definer as $$
  select count(*)::integer from public.messages m join public.conversations c on c.id = m.conversation_id
  where c.bot_id = tests.fx('bot') and c.external_user_id = $1 and m.role = 'user'
$$;
grant execute on function pg_temp.user_messages(text) to public;

-- ---------------------------------------------------------------------------
-- 1. The end user's bucket behind a key
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(pg_temp.key_turn('key', 'caller-a') ->> 'ok', 'true', 'a key''s turn naming its end user is served');
select is(pg_temp.hits('api_key:' || tests.fx('key')), 1, 'it takes one hit from the key''s bucket');
select is(pg_temp.hits('api_key:' || tests.fx('key') || ':user:caller-a'), 1, 'and one from the end user''s');
select is(pg_temp.key_turn('key', null) ->> 'ok', 'true', 'a key''s turn naming no end user is served');
select is(pg_temp.hits('api_key:' || tests.fx('key')), 2, 'it takes from the key''s bucket alone');

-- caller-a has spent its minute; the key has room for plenty more.
select pg_temp.fill('api_key:' || tests.fx('key') || ':user:caller-a', 60);
select ok(
  (select r ->> 'code' = 'rate_limited' and (r ->> 'retry_after')::integer between 1 and 60
   from pg_temp.key_turn('key', 'caller-a') r),
  'an end user over 60 a minute is refused (rate_limited, with the seconds to wait)'
);
select is(pg_temp.hits('api_key:' || tests.fx('key')), 2, 'the refusal takes nothing from the key''s bucket');
select is(pg_temp.hits('api_key:' || tests.fx('key') || ':user:caller-a'), 60, 'nor from the end user''s');
select is(pg_temp.key_turn('key', 'caller-b') ->> 'ok', 'true', 'another end user of the same key is served');
select is(pg_temp.hits('api_key:' || tests.fx('key')), 3, 'its turn takes from the key''s bucket');
select is(pg_temp.key_turn('key2', 'caller-a') ->> 'ok', 'true',
  'an end user of the same name behind another key is someone else: served');

-- A voice platform's turns name their call, not a user: the call is the end user.
create function pg_temp.call_turn(call_id text) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'voice', null, tests.fx('key2'), 'Is anyone there?', call_id)
$$;
grant execute on function pg_temp.call_turn(text) to public;
select is(pg_temp.call_turn('call-277-a') ->> 'ok', 'true', 'a voice platform''s turn naming its call is served');
select is(pg_temp.hits('api_key:' || tests.fx('key2') || ':call:call-277-a'), 1, 'and takes one hit from its call''s bucket');
select pg_temp.fill('api_key:' || tests.fx('key2') || ':call:call-277-a', 60);
select is(pg_temp.call_turn('call-277-a') ->> 'code', 'rate_limited',
  'a call over 60 turns a minute is refused, not the other calls behind the key');

-- The key is spent: the end user's hit is rolled back with the key's refusal.
select tests.act_as('postgres');
update public.api_keys set rate_limit_per_minute = 3 where id = tests.fx('key');
select tests.act_as('service_role');
select is(pg_temp.key_turn('key', 'caller-c') ->> 'code', 'rate_limited', 'a key over its limit refuses the end user''s turn');
select is(pg_temp.hits('api_key:' || tests.fx('key') || ':user:caller-c'), 0, 'the end user''s hit taken first is rolled back');
select is(pg_temp.hits('api_key:' || tests.fx('key')), 3, 'and the key''s refused hit is not counted');
select is(
  (select count(*)::integer from public.conversations c where c.bot_id = tests.fx('bot') and c.external_user_id = 'caller-c'),
  0, 'nothing of the refused turn is stored'
);

-- ---------------------------------------------------------------------------
-- 2. Telegram claims as leases
-- ---------------------------------------------------------------------------

select is(pg_temp.claim(9001), 'true/-', 'the first delivery claims the update');
select is((pg_temp.telegram_turn(9001, '5550001') ->> 'ok'), 'true', 'its turn stores the question');
select is(
  pg_temp.question_of(9001),
  (select max(m.id) from public.messages m join public.conversations c on c.id = m.conversation_id
   where c.external_user_id = '5550001'),
  'the question is linked to the claim in the same transaction'
);
select is(pg_temp.claim(9001), 'false/-', 'a redelivery while the lease holds is not claimed');
select is(pg_temp.retry_after(9001), 420, 'it is told the lease''s remaining seconds (the whole 7 minutes, just claimed)');
select pg_temp.lease_left(9001, 12.3);
select is(pg_temp.retry_after(9001), 13, 'rounded up, as the lease runs down');
select pg_temp.lease_left(9001, 0.2);
select is(pg_temp.retry_after(9001), 1, 'and at least 1 second');

-- The worker died mid-turn: nothing was answered, and the lease ran out.
select pg_temp.expire(9001);
select is(pg_temp.claim(9001), 'true/-', 'a redelivery after the lease ran out, nothing answered, claims it again');
select is(pg_temp.claim(9001), 'false/-', 'once: the next redelivery finds the new lease');
select pg_temp.fill('bot:' || tests.fx('bot') || ':5550001', 60);
select is(
  (pg_temp.telegram_turn(9001, '5550001') ->> 'user_message_id')::bigint, pg_temp.question_of(9001),
  'the resumed turn goes on with the stored question (no new rate-limit hit: the chat''s bucket is full)'
);
select is(pg_temp.user_messages('5550001'), 1, 'the question is stored once');

-- Answered and sent: settled for good.
select private.telegram_update_answered(tests.fx('bot'), 9001, pg_temp.question_of(9001));
select is(pg_temp.retry_after(9001), null, 'an answer stored, not yet sent: nothing to wait for (it is sent again)');
select private.telegram_update_answered(tests.fx('bot'), 9001, null);
select pg_temp.expire(9001);
select is(pg_temp.claim(9001), 'false/-', 'an answered update is never claimed again, lease or not');
select is(pg_temp.retry_after(9001), null, 'a settled claim has no lease to wait for');

-- A refusal told in the chat settles the claim too.
select is(pg_temp.claim(9002), 'true/-', 'update 9002 is claimed');
select is(pg_temp.telegram_turn(9002, '5550001') ->> 'code', 'rate_limited', 'a refused turn (the chat''s bucket full)');
select private.telegram_update_answered(tests.fx('bot'), 9002, null);
select pg_temp.expire(9002);
select is(pg_temp.claim(9002), 'false/-', 'a claim settled after a refusal is not claimed again');
select is(pg_temp.retry_after(9002), null, 'nor told to wait: nothing is in progress');

-- A failure before the answer gives the lease back and keeps the question.
select is(pg_temp.claim(9003), 'true/-', 'update 9003 is claimed');
select is(pg_temp.telegram_turn(9003, '5550003') ->> 'ok', 'true', 'its turn stores the question');
select private.release_telegram_update(tests.fx('bot'), 9003);
select is(pg_temp.claim(9003), 'true/-', 'a released claim is claimed by the next redelivery');
select isnt(pg_temp.question_of(9003), null, 'with its question still linked');

select throws_ok(
  $$select private.chat_prepare(tests.fx('bot'), null, 'api', 'caller-a', tests.fx('key2'), 'hi', null, 9003)$$,
  '22023', null, 'telegram_update_id is for Telegram turns only'
);
select throws_ok($$select pg_temp.telegram_turn(9999, '5550001')$$, 'PT404', 'the Telegram update is not claimed',
  'a turn names a claimed update');

select * from finish();
rollback;
