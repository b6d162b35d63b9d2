-- Chat quota reservations (20261123007800_chat_quota_reservations.sql):
-- chat_prepare reserves what a turn let through may spend and counts the
-- running turns' reservations in its quota check; chat_finish (as the service
-- role, for a user's turn too) replaces the reservation with the metered
-- usage; a reservation stops counting after its lifetime and is purged;
-- reservations are never usage (chat_quota, plan_usage).
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@quota-reservations.test')),
  ('member_a', tests.create_user('member-a@quota-reservations.test'));
select tests.remember('org_a', tests.create_org('quota-reservations-a', tests.fx('owner_a')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');

insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org_a'), 'key', 'ak_0000e247', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_0000e247';
insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'Bot', 'bot', array['api', 'web']);
select tests.remember('bot', id) from public.bots where slug = 'bot' and org_id = tests.fx('org_a');

create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

-- An API key's turn for an end user, as chat/completions runs it.
create function pg_temp.turn(label text, end_user text)
returns jsonb
language sql
as $$
  insert into answers
  select label, private.chat_prepare(tests.fx('bot'), null, 'api', end_user, tests.fx('key'), 'When are you open?')
  returning body;
$$;
grant execute on function pg_temp.turn(text, text) to public;

create function pg_temp.conversation(label text)
returns uuid
language sql
stable
as $$ select (a.body ->> 'conversation_id')::uuid from answers a where a.label = $1 $$;
grant execute on function pg_temp.conversation(text) to public;

-- What chat_prepare reserves for the bot's turn above.
create function pg_temp.reservation()
returns integer
language sql
stable
as $$
  select b.max_tokens + octet_length(b.system_prompt) + octet_length('When are you open?') + 8000
  from public.bots b where b.id = tests.fx('bot')
$$;

create function pg_temp.reserved()
returns table (conversation_id uuid, tokens integer)
language sql
stable
as $$
  select r.conversation_id, r.tokens from private.chat_quota_reservations r
  where r.org_id = tests.fx('org_a') order by r.id
$$;

select isnt((select monthly_chat_tokens from private.chat_quota(tests.fx('org_a'))), null, 'the org''s plan has a chat allowance');

-- ---------------------------------------------------------------------------
-- A turn let through reserves; the reservation is not usage
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.turn('first', 'ann');
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.reserved()$$,
  $$values (pg_temp.conversation('first'), pg_temp.reservation())$$,
  'chat_prepare: a turn let through reserves the answer''s budget and the prompt''s estimate, for its conversation'
);
select is((select used_chat_tokens from private.chat_quota(tests.fx('org_a'))), 0::bigint, 'chat_quota: a reservation is not metered usage');
select is(
  (select used from private.plan_usage(tests.fx('org_a')) where metric = 'chat_tokens'), 0::bigint,
  'plan_usage: a reservation is neither shown nor billed'
);

-- Metered usage that fits the allowance on its own, but not with the running turn's reservation.
insert into public.usage_events (org_id, kind, model, tokens_in, tokens_out)
select tests.fx('org_a'), 'chat', 'gpt-4o-mini', q.monthly_chat_tokens - pg_temp.reservation(), 0
from private.chat_quota(tests.fx('org_a')) q;

select tests.act_as('service_role');
select pg_temp.turn('refused', 'bob');
select is(pg_temp.turn('refused again', 'bob') ->> 'code', 'quota_exceeded', 'chat_prepare: a running turn''s reservation counts against the quota');
select tests.act_as('postgres');
select is((select count(*) from pg_temp.reserved()), 1::bigint, 'chat_prepare: a refused turn reserves nothing');
select is(
  (select count(*) from public.conversations c where c.org_id = tests.fx('org_a') and c.external_user_id = 'bob'), 0::bigint,
  'chat_prepare: a refused turn starts no conversation'
);

-- ---------------------------------------------------------------------------
-- chat_finish replaces the reservation with the usage
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select private.chat_finish(pg_temp.conversation('first'), 'Nine to five.', 100, 20, 50, 'gpt-4o-mini', '[]', null, 'stop', tests.fx('key'));
select tests.act_as('postgres');
select is((select count(*) from pg_temp.reserved()), 0::bigint, 'chat_finish: the turn''s reservation is released');
select is(
  (select used_chat_tokens from private.chat_quota(tests.fx('org_a'))),
  (select monthly_chat_tokens - pg_temp.reservation() + 120 from private.chat_quota(tests.fx('org_a'))),
  'chat_finish: the turn is metered once, with its real tokens'
);

select tests.act_as('service_role');
select is((pg_temp.turn('after', 'bob') ->> 'ok')::boolean, true, 'chat_prepare: with the turn finished, a turn under the quota is let through');
select tests.act_as('postgres');

-- ---------------------------------------------------------------------------
-- A turn that never finishes
-- ---------------------------------------------------------------------------

update private.chat_quota_reservations set created_at = pg_catalog.now() - interval '11 minutes'
where conversation_id = pg_temp.conversation('after');
select tests.act_as('service_role');
select is(
  (pg_temp.turn('past a dead turn', 'cem') ->> 'ok')::boolean, true,
  'chat_prepare: a reservation older than its lifetime no longer counts'
);
select tests.act_as('postgres');
select is(private.purge_chat_quota_reservations(), 1, 'purge_chat_quota_reservations: drops the expired reservation');
select is(
  (select command from cron.job where jobname = 'purge-chat-quota-reservations'),
  'select private.purge_chat_quota_reservations()',
  'purge_chat_quota_reservations: run by cron'
);
select results_eq(
  $$select conversation_id from pg_temp.reserved()$$,
  $$values (pg_temp.conversation('past a dead turn'))$$,
  'purge_chat_quota_reservations: keeps the running turn''s'
);

-- ---------------------------------------------------------------------------
-- Two running turns of one conversation: each finish releases one
-- ---------------------------------------------------------------------------

delete from public.usage_events where org_id = tests.fx('org_a');
select tests.act_as('service_role');
select pg_temp.turn('cem again', 'cem');
select private.chat_finish(pg_temp.conversation('cem again'), 'Yes.', 10, 2, 5, 'gpt-4o-mini', '[]', null, 'stop', tests.fx('key'));
select tests.act_as('postgres');
select is((select count(*) from pg_temp.reserved()), 1::bigint, 'chat_finish: releases one reservation of the conversation per turn');

-- ---------------------------------------------------------------------------
-- A user's turn finished by the service, after the user lost chat.use
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
insert into answers
select 'web', private.chat_prepare(tests.fx('bot'), null, 'web', null, null, 'When are you open?');
select tests.act_as('postgres');
update public.memberships set role = 'viewer' where org_id = tests.fx('org_a') and user_id = tests.fx('member_a');
select tests.act_as('service_role');
select lives_ok(
  $$select private.chat_finish(pg_temp.conversation('web'), 'Nine to five.', 30, 7, 20, 'gpt-4o-mini', '[]')$$,
  'chat_finish: the service role finishes a user''s turn the user may no longer start'
);
select tests.act_as('postgres');
select results_eq(
  $$select user_id, api_key_id, tokens_in, tokens_out from public.usage_events
    where conversation_id = pg_temp.conversation('web')$$,
  $$values (tests.fx('member_a'), null::uuid, 30, 7)$$,
  'chat_finish: the user''s turn is metered to the user, to no key'
);
select is(
  (select count(*) from pg_temp.reserved() r where r.conversation_id = pg_temp.conversation('web')), 0::bigint,
  'chat_finish: the user''s reservation is released'
);

-- ---------------------------------------------------------------------------
-- A turn that fails before chat_finish gives its reservation back
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select pg_temp.turn('failing', 'dee');
select tests.act_as('postgres');
select is((select count(*) from pg_temp.reserved() r where r.conversation_id = pg_temp.conversation('failing')), 1::bigint,
  'release_chat_reservation: the failing turn holds a reservation');
select tests.act_as('service_role');
select is(private.release_chat_reservation(pg_temp.conversation('failing')), true, 'release_chat_reservation: gives it back');
select is(private.release_chat_reservation(pg_temp.conversation('failing')), false, 'release_chat_reservation: once');
select tests.act_as('postgres');
select is(has_function_privilege('authenticated', 'private.release_chat_reservation(uuid, bigint)', 'execute'), false,
  'release_chat_reservation: not for signed-in users');

select * from finish();
rollback;
