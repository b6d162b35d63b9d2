-- 20261123012700: the chat function's Telegram connect, in three steps with no transaction across Telegram's
-- answer, holds a 60-second lease per bot and per token: a second connect of either is refused (PT409); the
-- store needs its own live lease and ends it; a refused connect ends it by its secret; a reconnect with the
-- same token names the stored secret again.
begin;
create extension if not exists pgtap with schema extensions;

select plan(15);

select tests.remember('owner', tests.create_user('owner@tglease308.test'));
select tests.remember('org', tests.create_org('tglease308-org', tests.fx('owner')));
insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org'), 'Lease 308 a', 'lease-308-a', array['api']),
  (tests.fx('org'), 'Lease 308 b', 'lease-308-b', array['api']);
select tests.remember('bot_a', id) from public.bots where slug = 'lease-308-a' and org_id = tests.fx('org');
select tests.remember('bot_b', id) from public.bots where slug = 'lease-308-b' and org_id = tests.fx('org');

create function pg_temp.lease_secret(bot uuid) returns text language sql security definer as $$
  select c.webhook_secret from private.telegram_connects c where c.bot_id = bot
$$;
create function pg_temp.stored_secret(bot uuid) returns text language sql security definer as $$
  select t.secret_token from private.bot_telegram t where t.bot_id = bot
$$;
create function pg_temp.expire(bot uuid) returns void language sql security definer as $$
  update private.telegram_connects c set expires_at = now() - interval '1 second' where c.bot_id = bot
$$;
grant execute on all functions in schema pg_temp to public;

select tests.act_as('authenticated', tests.fx('owner'));
create temporary table lease1 on commit drop as
  select * from private.begin_bot_telegram_connect(tests.fx('bot_a'), '3081234567:AAH308leaseleaseleaseleaseleasele');
select is((select webhook_path from lease1), '/functions/v1/chat/telegram/' || tests.fx('bot_a'), 'the lease names the webhook path');
select throws_ok(
  format($$select * from private.begin_bot_telegram_connect(%L, '3081234567:AAH308leaseleaseleaseleaseleasele')$$, tests.fx('bot_a')),
  'PT409', null, 'a second connect of the bot during the lease is refused');
select throws_ok(
  format($$select * from private.begin_bot_telegram_connect(%L, '3081234567:AAH308leaseleaseleaseleaseleasele')$$, tests.fx('bot_b')),
  'PT409', null, 'so is a connect of another bot with the same token');
select throws_ok(
  format($$select * from private.finish_bot_telegram_connect(%L, '3081234567:AAH308leaseleaseleaseleaseleasele', 'not-the-secret')$$, tests.fx('bot_a')),
  'PT409', null, 'a store with another secret is refused');
select lives_ok(
  format($$select * from private.finish_bot_telegram_connect(%L, '3081234567:AAH308leaseleaseleaseleaseleasele', %L)$$,
    tests.fx('bot_a'), (select webhook_secret from lease1)),
  'the store with the lease''s secret goes through');
select is(pg_temp.stored_secret(tests.fx('bot_a')), (select webhook_secret from lease1), 'it stored the registered secret');
select is(pg_temp.lease_secret(tests.fx('bot_a')), null, 'and ended the lease');

-- The public RPCs wait for a connect too: their change would be lost (Telegram keeps the connect's secret) or
-- undone by the connect's store.
create temporary table lease_b on commit drop as
  select * from private.begin_bot_telegram_connect(tests.fx('bot_b'), '3087777777:AAH308publicpublicpublicpublicpub');
select throws_ok(
  format($$select * from public.set_bot_telegram(%L, '3087777777:AAH308publicpublicpublicpublicpub')$$, tests.fx('bot_b')),
  'PT409', null, 'public.set_bot_telegram during a connect''s lease is refused');
select throws_ok(format($$select public.clear_bot_telegram(%L)$$, tests.fx('bot_b')), 'PT409', null,
  'so is public.clear_bot_telegram');
select throws_ok(
  format($$select * from public.set_bot_telegram(%L, '3087777777:AAH308publicpublicpublicpublicpub')$$, tests.fx('bot_a')),
  'PT409', null, 'so is public.set_bot_telegram of another bot with the token the connect holds');
select private.end_bot_telegram_connect(tests.fx('bot_b'), (select webhook_secret from lease_b));
select is(public.clear_bot_telegram(tests.fx('bot_b')), false, 'once the lease ended, clear_bot_telegram runs');

-- Reconnecting the same token names the stored secret; the lease running out refuses the store.
create temporary table lease2 on commit drop as
  select * from private.begin_bot_telegram_connect(tests.fx('bot_a'), '3081234567:AAH308leaseleaseleaseleaseleasele');
select is((select webhook_secret from lease2), (select webhook_secret from lease1), 'a reconnect with the same token names the stored secret');
select pg_temp.expire(tests.fx('bot_a'));
select throws_ok(
  format($$select * from private.finish_bot_telegram_connect(%L, '3081234567:AAH308leaseleaseleaseleaseleasele', %L)$$,
    tests.fx('bot_a'), (select webhook_secret from lease2)),
  'PT409', null, 'a store after its lease ran out is refused');

-- A refused connect ends its lease by its secret only.
create temporary table lease3 on commit drop as
  select * from private.begin_bot_telegram_connect(tests.fx('bot_b'), '3089999999:AAH308otherotherotherotherotherot');
select private.end_bot_telegram_connect(tests.fx('bot_b'), 'not-the-secret');
select is(pg_temp.lease_secret(tests.fx('bot_b')), (select webhook_secret from lease3), 'another secret ends nothing');
select private.end_bot_telegram_connect(tests.fx('bot_b'), (select webhook_secret from lease3));
select is(pg_temp.lease_secret(tests.fx('bot_b')), null, 'the lease''s own secret ends it');

select * from finish();
rollback;
