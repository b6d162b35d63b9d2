-- 20261123012900_end_user_chat_budget.sql: a turn's reservation counts the
-- system prompt and the question a token a UTF-8 byte; a turn naming an end
-- user (a Telegram chat, an API key's user, a voice platform's call) is
-- refused rate_limited (limit end_user_daily_tokens, retry_after) once that
-- end user's chat tokens of the last 24 hours (metered, stored or not, in any
-- of their conversations, closed ones too) plus their running turns'
-- reservations reach private.end_user_chat_budget; a refusal stores and
-- reserves nothing; other end users, a signed-in member's web chat and an API
-- key's turn naming no end user are not held by it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

select tests.remember('owner', tests.create_user('owner@budget304.test'));
select tests.remember('member', tests.create_user('member@budget304.test'));
select tests.remember('org', tests.create_org('budget304-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('member'), 'member');
-- Pro (5,000,000 a month): every end user below can spend their whole budget
-- without the org reaching its quota.
update public.subscriptions set plan_id = 'pro' where org_id = tests.fx('org') and status = 'active';
insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org'), 'platform 304', 'ak_00304001', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_00304001';
insert into public.bots (org_id, name, slug, channels, system_prompt)
values (tests.fx('org'), 'Budget 304', 'budget-304', array['api', 'telegram', 'voice', 'web'], 'Answer in one sentence. 简洁回答。');
select tests.remember('bot', id) from public.bots where slug = 'budget-304' and org_id = tests.fx('org');

create function pg_temp.budget() returns bigint language sql security definer as $$
  select private.end_user_chat_budget(q.monthly_chat_tokens) from private.chat_quota(tests.fx('org')) q
$$;
grant execute on function pg_temp.budget() to public;

-- The Telegram webhook's turn (the service role) for chat `chat`.
create function pg_temp.tg(chat text, message text default 'Are you open today?') returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'telegram', chat, null, message)
$$;
grant execute on function pg_temp.tg(text, text) to public;

create function pg_temp.key_turn(who text, conversation uuid default null) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), conversation, 'api', who, tests.fx('key'), 'When do you open?')
$$;
grant execute on function pg_temp.key_turn(text, uuid) to public;

create function pg_temp.call_turn(call_id text) returns jsonb language sql as $$
  select private.chat_prepare(tests.fx('bot'), null, 'voice', null, tests.fx('key'), 'Is anyone there?', call_id)
$$;
grant execute on function pg_temp.call_turn(text) to public;

-- Chat usage metered to a conversation `age` ago, as record_usage writes it.
create function pg_temp.spent(conversation uuid, tokens bigint, age interval default '0 seconds') returns void
language sql security definer as $$
  insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out, bot_id, conversation_id, created_at)
  values (tests.fx('org'), 'chat', 'gpt-4o-mini', tokens, 0, tests.fx('bot'), conversation, now() - age)
$$;
grant execute on function pg_temp.spent(uuid, bigint, interval) to public;

create function pg_temp.conversation_of(chat text) returns uuid language sql security definer as $$
  select c.id from public.conversations c
  where c.bot_id = tests.fx('bot') and c.external_user_id = chat and c.status in ('open', 'escalated')
$$;
grant execute on function pg_temp.conversation_of(text) to public;

create function pg_temp.stored(chat text) returns text language sql security definer as $$
  select format('%s messages, %s reservations',
    (select count(*) from public.messages m join public.conversations c on c.id = m.conversation_id
     where c.bot_id = tests.fx('bot') and c.external_user_id = chat),
    (select count(*) from private.chat_quota_reservations r join public.conversations c on c.id = r.conversation_id
     where c.bot_id = tests.fx('bot') and c.external_user_id = chat))
$$;
grant execute on function pg_temp.stored(text) to public;

create function pg_temp.hits(bucket text) returns integer language sql security definer as $$
  select coalesce((select sum(h.hits)::integer from private.rate_limit_hits h where h.bucket = $1), 0)
$$;
grant execute on function pg_temp.hits(text) to public;

create function pg_temp.explain_lines(query text) returns setof text language plpgsql as $$
declare
  line text;
begin
  for line in execute 'explain ' || query loop
    return next line;
  end loop;
end;
$$;

create temp table turns (label text primary key, body jsonb);
grant all on turns to public;

-- ---------------------------------------------------------------------------
-- The budget
-- ---------------------------------------------------------------------------

select is(private.end_user_chat_budget(200000), 25000::bigint, 'budget: a Free org''s end user gets the floor, 25,000 tokens a day');
select is(private.end_user_chat_budget(5000000), 500000::bigint, 'budget: a tenth of the plan''s monthly chat tokens');
select is(pg_temp.budget(), 500000::bigint, 'budget: this org''s (Pro)');

-- ---------------------------------------------------------------------------
-- The reservation counts bytes
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
-- 100 characters of CJK Extension B: 4 UTF-8 bytes each, several tokens each.
insert into turns select 'rare', pg_temp.tg('tg-304-rare', repeat(U&'\+020000', 100));
select tests.act_as('postgres');
select is((select body ->> 'ok' from turns where label = 'rare'), 'true', 'a turn of rare Han characters is let through');
select is(
  (select r.tokens from private.chat_quota_reservations r where r.conversation_id = pg_temp.conversation_of('tg-304-rare')),
  (select b.max_tokens + octet_length(b.system_prompt) + 400 + 8000 from public.bots b where b.id = tests.fx('bot')),
  'reservation: the answer''s budget, a token a UTF-8 byte of system prompt and question, and 8,000'
);

-- ---------------------------------------------------------------------------
-- An end user at their budget is refused, and nothing is stored
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
insert into turns select 'a1', pg_temp.tg('tg-304-a');
-- Metered as the chat function meters the turn: to the budget exactly.
select private.chat_finish((select (body ->> 'conversation_id')::uuid from turns where label = 'a1'), 'We open at nine.',
  (pg_temp.budget() - 4000)::integer, 4000, 10, 'gpt-4o-mini', '[]', null, 'stop', null,
  (select (body ->> 'user_message_id')::bigint from turns where label = 'a1'));
insert into turns select 'a2', pg_temp.tg('tg-304-a');
select tests.act_as('postgres');
select is((select body ->> 'ok' from turns where label = 'a1'), 'true', 'an end user under their budget is served');
select is((select body ->> 'code' from turns where label = 'a2'), 'rate_limited',
  'an end user whose metered tokens of the last 24 hours reach the budget is refused rate_limited');
select is((select body ->> 'limit' from turns where label = 'a2'), 'end_user_daily_tokens', 'naming the end user''s daily tokens');
select is((select (body ->> 'retry_after')::integer from turns where label = 'a2'), 86400,
  'retry_after: when the usage that brings them under the budget leaves the 24 hours (all of it metered just now)');
select is(pg_temp.stored('tg-304-a'), '2 messages, 0 reservations', 'the refused turn stores no question and reserves nothing');
select is(pg_temp.hits('bot:' || tests.fx('bot') || ':tg-304-a'), 2, 'the refused turn keeps its rate-limit hit, as a quota refusal does');

select tests.act_as('service_role');
select is(pg_temp.tg('tg-304-b') ->> 'ok', 'true', 'another end user of the same bot is served');
select tests.act_as('owner');
select public.close_conversation(pg_temp.conversation_of('tg-304-a'));
select tests.act_as('service_role');
insert into turns select 'a3', pg_temp.tg('tg-304-a');
select tests.act_as('postgres');
select is((select body ->> 'code' from turns where label = 'a3'), 'rate_limited',
  'a closed conversation''s usage still counts: a new conversation does not reset the budget');
select is((select count(*)::integer from public.conversations where bot_id = tests.fx('bot') and external_user_id = 'tg-304-a'), 1,
  'and the refusal starts no conversation');

update public.usage_events set created_at = now() - interval '24 hours 1 second'
where conversation_id in (select id from public.conversations where bot_id = tests.fx('bot') and external_user_id = 'tg-304-a');
select tests.act_as('service_role');
select is(pg_temp.tg('tg-304-a') ->> 'ok', 'true', 'usage older than 24 hours no longer counts');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- retry_after: when enough of the window's usage has aged out
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.tg('tg-304-r');
select private.release_chat_reservation(pg_temp.conversation_of('tg-304-r'));
select tests.act_as('postgres');
select pg_temp.spent(pg_temp.conversation_of('tg-304-r'), 200000, '23 hours');
select pg_temp.spent(pg_temp.conversation_of('tg-304-r'), 200000, '22 hours');
select pg_temp.spent(pg_temp.conversation_of('tg-304-r'), 120000, '1 hour');
select tests.act_as('service_role');
insert into turns select 'r', pg_temp.tg('tg-304-r');
select tests.act_as('postgres');
select is((select (body ->> 'retry_after')::integer from turns where label = 'r'), 3600,
  'retry_after: 20,000 over, the oldest 200,000 age out in an hour');
select matches((select body ->> 'message' from turns where label = 'r'), 'try again in 3600 seconds', 'the message says when');

-- ---------------------------------------------------------------------------
-- Running turns' reservations count
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.tg('tg-304-c');
select tests.act_as('postgres');
select pg_temp.spent(pg_temp.conversation_of('tg-304-c'), pg_temp.budget() - 4000);
select tests.act_as('service_role');
select is(pg_temp.tg('tg-304-c') ->> 'code', 'rate_limited',
  'a running turn''s reservation counts: 4,000 under the budget with a turn running is refused');
select private.release_chat_reservation(pg_temp.conversation_of('tg-304-c'));
select is(pg_temp.tg('tg-304-c') ->> 'ok', 'true', 'with the turn finished (its reservation given back), 4,000 under is served');

-- ---------------------------------------------------------------------------
-- A turn metered without a stored answer counts
-- ---------------------------------------------------------------------------

select pg_temp.tg('tg-304-u');
select private.chat_meter_unstored_turn(pg_temp.conversation_of('tg-304-u'), 'gpt-4o-mini', (pg_temp.budget() - 100)::integer, 100);
select private.release_chat_reservation(pg_temp.conversation_of('tg-304-u'));
select is(pg_temp.tg('tg-304-u') ->> 'code', 'rate_limited', 'a turn metered without its answer (chat_meter_unstored_turn) counts');

-- ---------------------------------------------------------------------------
-- An API key's end user, a voice call; not a key's turn naming nobody
-- ---------------------------------------------------------------------------

insert into turns select 'k1', pg_temp.key_turn('api-304-x');
select tests.act_as('postgres');
select pg_temp.spent((select (body ->> 'conversation_id')::uuid from turns where label = 'k1'), pg_temp.budget());
select tests.act_as('service_role');
select is(pg_temp.key_turn('api-304-x') ->> 'code', 'rate_limited', 'an API key''s end user (user) at the budget is refused');
select is(pg_temp.key_turn('api-304-y') ->> 'ok', 'true', 'another end user of the key is served');

insert into turns select 'v1', pg_temp.call_turn('call-304-a');
select tests.act_as('postgres');
select pg_temp.spent((select (body ->> 'conversation_id')::uuid from turns where label = 'v1'), pg_temp.budget());
select tests.act_as('service_role');
select is(pg_temp.call_turn('call-304-a') ->> 'code', 'rate_limited', 'a voice call at the budget is refused');
select is(pg_temp.call_turn('call-304-b') ->> 'ok', 'true', 'another call is served');

insert into turns select 'n1', pg_temp.key_turn(null);
select tests.act_as('postgres');
select pg_temp.spent((select (body ->> 'conversation_id')::uuid from turns where label = 'n1'), pg_temp.budget() + 1);
select tests.act_as('service_role');
select is(pg_temp.key_turn(null, (select (body ->> 'conversation_id')::uuid from turns where label = 'n1')) ->> 'ok', 'true',
  'an API key''s turn naming no end user is not held by the budget');

-- ---------------------------------------------------------------------------
-- A signed-in member's web chat is not held by it
-- ---------------------------------------------------------------------------

select tests.act_as('member');
insert into turns select 'w1', private.chat_prepare(tests.fx('bot'), null, 'web', null, null, 'Hello');
select tests.act_as('postgres');
select pg_temp.spent((select (body ->> 'conversation_id')::uuid from turns where label = 'w1'), pg_temp.budget() + 1);
select tests.act_as('member');
select is(private.chat_prepare(tests.fx('bot'), (select (body ->> 'conversation_id')::uuid from turns where label = 'w1'), 'web', null, null, 'Again') ->> 'ok',
  'true', 'a signed-in member''s web turn is not held by the end-user budget');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- The org's quota comes first; the helpers are not the API's
-- ---------------------------------------------------------------------------

update public.subscriptions set plan_id = 'free' where org_id = tests.fx('org') and status = 'active';
select tests.act_as('service_role');
select is(pg_temp.tg('tg-304-a') ->> 'code', 'quota_exceeded', 'an org over its quota answers quota_exceeded, not the end user''s limit');
select tests.act_as('postgres');

select ok(not has_function_privilege('service_role', 'private.end_user_chat_spend(uuid, uuid[], bigint)', 'execute'),
  'end_user_chat_spend: not callable by the service role');
select ok(not has_function_privilege('authenticated', 'private.end_user_conversations(uuid, uuid, public.chat_channel, text, text)', 'execute'),
  'end_user_conversations: not callable by signed-in users');
select ok(not has_function_privilege('anon', 'private.end_user_chat_budget(bigint)', 'execute'),
  'end_user_chat_budget: not callable by anon');

-- The lookup reads the new indexes.
select tests.act_as('postgres');
set local enable_seqscan = off;
select matches(
  (select string_agg(p, E'\n') from (
     select * from pg_temp.explain_lines($q$
       select sum(u.tokens_in::bigint + u.tokens_out::bigint) from public.usage_events u
       where u.conversation_id = any (array[gen_random_uuid()]) and u.kind = 'chat' and u.created_at > now() - interval '24 hours'
     $q$)) e(p)),
  'usage_events_chat_conversation_idx', 'the end user''s usage is read by its index');
select matches(
  (select string_agg(p, E'\n') from (
     select * from pg_temp.explain_lines($q$
       select c.id from public.conversations c
       where c.bot_id = gen_random_uuid() and c.channel = 'telegram' and c.external_user_id = 'x'
     $q$)) e(p)),
  'conversations_end_user_idx', 'the end user''s conversations, closed ones too, by theirs');
reset enable_seqscan;

select * from finish();
rollback;
