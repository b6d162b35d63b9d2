-- 20261123014400: another org's bot, conversation and invitation ids are answered exactly as unknown ones
-- (PT404, the same message) by chat_prepare, the Telegram connect and disconnect, close_conversation and
-- revoke/resend_invitation, to another org's owner and to a user of no org alike, and the row is not locked
-- (its xmax is left as it was); a member of the org without the permission still gets 42501. Every "not
-- found" of these functions, and accept_invitation's, is PT404 (PostgREST: 404; P0002 was a 500).
begin;
create extension if not exists pgtap with schema extensions;

select plan(49);

select tests.remember('owner_a', tests.create_user('owner-a@unconfirmed317.test'));
select tests.remember('member_a', tests.create_user('member-a@unconfirmed317.test'));
select tests.remember('viewer_a', tests.create_user('viewer-a@unconfirmed317.test'));
select tests.remember('owner_b', tests.create_user('owner-b@unconfirmed317.test'));
select tests.remember('loner', tests.create_user('loner@unconfirmed317.test'));
select tests.remember('org_a', tests.create_org('unconfirmed317-org-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('unconfirmed317-org-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('member_a'), 'member');
select tests.add_member(tests.fx('org_a'), tests.fx('viewer_a'), 'viewer');
insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org_a'), 'Unconfirmed 317 a', 'unconfirmed-317-a', array['web']),
  (tests.fx('org_b'), 'Unconfirmed 317 b', 'unconfirmed-317-b', array['web']);
select tests.remember('bot_a', id) from public.bots where slug = 'unconfirmed-317-a';
select tests.remember('bot_b', id) from public.bots where slug = 'unconfirmed-317-b';
insert into public.conversations (org_id, bot_id, channel, user_id)
values (tests.fx('org_a'), tests.fx('bot_a'), 'web', tests.fx('member_a'));
select tests.remember('conv_a', id) from public.conversations where bot_id = tests.fx('bot_a');
select tests.act_as('owner_a');
select tests.remember('inv_a', i.id)
from public.invite_member(tests.fx('org_a'), 'invitee@unconfirmed317.test', 'member') i;
select tests.act_as('postgres');
select tests.remember('random', gen_random_uuid());

-- A row's xmax changes when anything locks it (FOR UPDATE in an aborted subtransaction included), so an
-- unchanged one shows the refusal took no lock.
create function pg_temp.xmax_of(what text) returns text language sql security definer as $$
  select coalesce(
    (select b.xmax::text from public.bots b where b.id = tests.fx(what)),
    (select c.xmax::text from public.conversations c where c.id = tests.fx(what)),
    (select i.xmax::text from public.invitations i where i.id = tests.fx(what)))
$$;
-- The caller's error for a statement as "sqlstate: message" (null when it succeeds).
create function pg_temp.refusal(statement text) returns text language plpgsql as $$
begin
  execute statement;
  return null;
exception when others then
  return sqlstate || ': ' || sqlerrm;
end;
$$;
grant execute on all functions in schema pg_temp to public;
create temporary table locks (what text primary key, seen text) on commit drop;
grant all on locks to public;
insert into locks select w, pg_temp.xmax_of(w) from unnest(array['bot_a', 'conv_a', 'inv_a']) w;

-- ---------------------------------------------------------------------------
-- chat_prepare (POST /chat): the bot, and a conversation given by its id
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, null, 'web', null, null, 'hi')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'chat_prepare: another org''s bot, to that org''s owner, is not found');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, null, 'web', null, null, 'hi')$$, tests.fx('random'))),
  'PT404: bot not found', 'chat_prepare: as an unknown bot is');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, %L, 'web', null, null, 'hi')$$, tests.fx('bot_b'), tests.fx('conv_a'))),
  'PT404: conversation not found', 'chat_prepare: another org''s conversation, on the caller''s own bot, is not found');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, %L, 'web', null, null, 'hi')$$, tests.fx('bot_b'), tests.fx('random'))),
  'PT404: conversation not found', 'chat_prepare: as an unknown conversation is');
select tests.act_as('loner');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, null, 'web', null, null, 'hi')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'chat_prepare: another org''s bot, to a user of no org, is not found');
select tests.act_as('viewer_a');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, null, 'web', null, null, 'hi')$$, tests.fx('bot_a'))),
  '42501: you do not have the chat.use permission in this organization',
  'chat_prepare: a viewer of the org is still refused 42501');
select tests.act_as('service_role');
select is(
  pg_temp.refusal(format($$select private.chat_prepare(%L, null, 'telegram', '317001', null, 'hi', null, 317)$$, tests.fx('bot_a'))),
  'PT404: the Telegram update is not claimed', 'chat_prepare: an unclaimed Telegram update is PT404 too');
select tests.act_as('postgres');
select is(pg_temp.xmax_of('conv_a'), (select seen from locks where what = 'conv_a'),
  'chat_prepare: another org''s conversation was not locked');
select is((select count(*)::integer from public.messages where org_id in (tests.fx('org_a'), tests.fx('org_b'))), 0,
  'chat_prepare: no refused turn stored a message');

-- ---------------------------------------------------------------------------
-- The Telegram connect (check_bot_telegram: begin_bot_telegram_connect, set_bot_telegram) and disconnect
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(
  pg_temp.refusal(format($$select * from private.begin_bot_telegram_connect(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'begin_bot_telegram_connect: another org''s bot, to that org''s owner, is not found');
select is(
  pg_temp.refusal(format($$select * from private.begin_bot_telegram_connect(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('random'))),
  'PT404: bot not found', 'begin_bot_telegram_connect: as an unknown bot is');
select is(
  pg_temp.refusal(format($$select * from public.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'set_bot_telegram: another org''s bot, to that org''s owner, is not found');
select is(
  pg_temp.refusal(format($$select * from public.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('random'))),
  'PT404: bot not found', 'set_bot_telegram: as an unknown bot is');
select is(
  pg_temp.refusal(format($$select * from private.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf', 'secret317')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'set_bot_telegram (with a secret): another org''s bot is not found');
select is(pg_temp.refusal(format($$select public.clear_bot_telegram(%L)$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'clear_bot_telegram: another org''s bot, to that org''s owner, is not found');
select is(pg_temp.refusal(format($$select public.clear_bot_telegram(%L)$$, tests.fx('random'))),
  'PT404: bot not found', 'clear_bot_telegram: as an unknown bot is');
select tests.act_as('loner');
select is(
  pg_temp.refusal(format($$select * from private.begin_bot_telegram_connect(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'begin_bot_telegram_connect: another org''s bot, to a user of no org, is not found');
select is(
  pg_temp.refusal(format($$select * from public.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'set_bot_telegram: likewise');
select is(pg_temp.refusal(format($$select public.clear_bot_telegram(%L)$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'clear_bot_telegram: likewise');
select tests.act_as('member_a');
select is(
  pg_temp.refusal(format($$select * from private.begin_bot_telegram_connect(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  '42501: you do not have the bots.manage permission in this organization',
  'begin_bot_telegram_connect: a member of the org is still refused 42501');
select is(
  pg_temp.refusal(format($$select * from public.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  '42501: you do not have the bots.manage permission in this organization',
  'set_bot_telegram: a member of the org is still refused 42501');
select is(pg_temp.refusal(format($$select public.clear_bot_telegram(%L)$$, tests.fx('bot_a'))),
  '42501: you do not have the bots.manage permission in this organization',
  'clear_bot_telegram: a member of the org is still refused 42501');
select tests.act_as('postgres');
-- The member's set_bot_telegram locked the bot (the lock comes before the permission check): taken again.
update locks set seen = pg_temp.xmax_of('bot_a') where what = 'bot_a';
select tests.act_as('owner_b');
select is(
  pg_temp.refusal(format($$select * from public.set_bot_telegram(%L, '3171234567:AAH317unconfirmedunconfirmedunconf')$$, tests.fx('bot_a'))),
  'PT404: bot not found', 'set_bot_telegram: another org''s bot, once more');
select tests.act_as('postgres');
select is(pg_temp.xmax_of('bot_a'), (select seen from locks where what = 'bot_a'),
  'set_bot_telegram: another org''s bot was not locked');
select results_eq(
  $$select (select count(*)::integer from private.telegram_connects where bot_id = tests.fx('bot_a')),
           (select count(*)::integer from private.bot_telegram where bot_id = tests.fx('bot_a')),
           (select telegram_connected_at is null and channels = array['web'] from public.bots where id = tests.fx('bot_a'))$$,
  $$values (0, 0, true)$$,
  'the refused connects took no lease and connected nothing');

-- ---------------------------------------------------------------------------
-- close_conversation
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(pg_temp.refusal(format($$select * from public.close_conversation(%L)$$, tests.fx('conv_a'))),
  'PT404: conversation not found', 'close_conversation: another org''s conversation, to that org''s owner, is not found');
select is(pg_temp.refusal(format($$select * from public.close_conversation(%L)$$, tests.fx('random'))),
  'PT404: conversation not found', 'close_conversation: as an unknown conversation is');
select tests.act_as('loner');
select is(pg_temp.refusal(format($$select * from public.close_conversation(%L)$$, tests.fx('conv_a'))),
  'PT404: conversation not found', 'close_conversation: another org''s conversation, to a user of no org, is not found');
select tests.act_as('postgres');
select is(pg_temp.xmax_of('conv_a'), (select seen from locks where what = 'conv_a'),
  'close_conversation: another org''s conversation was not locked');
select tests.act_as('member_a');
select is(pg_temp.refusal(format($$select * from public.close_conversation(%L)$$, tests.fx('conv_a'))),
  '42501: you do not have the bots.manage permission in this organization',
  'close_conversation: a member of the org is still refused 42501');
select tests.act_as('postgres');
select is((select status::text from public.conversations where id = tests.fx('conv_a')), 'open',
  'close_conversation: the conversation is still open');

-- ---------------------------------------------------------------------------
-- revoke_invitation and resend_invitation (pending_invitation), accept_invitation
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select is(pg_temp.refusal(format($$select * from public.revoke_invitation(%L)$$, tests.fx('inv_a'))),
  'PT404: invitation not found', 'revoke_invitation: another org''s invitation, to that org''s owner, is not found');
select is(pg_temp.refusal(format($$select * from public.revoke_invitation(%L)$$, tests.fx('random'))),
  'PT404: invitation not found', 'revoke_invitation: as an unknown invitation is');
select is(pg_temp.refusal(format($$select * from public.resend_invitation(%L)$$, tests.fx('inv_a'))),
  'PT404: invitation not found', 'resend_invitation: another org''s invitation, to that org''s owner, is not found');
select is(pg_temp.refusal(format($$select * from public.resend_invitation(%L)$$, tests.fx('random'))),
  'PT404: invitation not found', 'resend_invitation: as an unknown invitation is');
select tests.act_as('loner');
select is(pg_temp.refusal(format($$select * from public.revoke_invitation(%L)$$, tests.fx('inv_a'))),
  'PT404: invitation not found', 'revoke_invitation: another org''s invitation, to a user of no org, is not found');
select is(pg_temp.refusal(format($$select * from public.resend_invitation(%L)$$, tests.fx('inv_a'))),
  'PT404: invitation not found', 'resend_invitation: likewise');
select tests.act_as('postgres');
select is(pg_temp.xmax_of('inv_a'), (select seen from locks where what = 'inv_a'),
  'revoke/resend_invitation: another org''s invitation was not locked');
select tests.act_as('member_a');
select is(pg_temp.refusal(format($$select * from public.revoke_invitation(%L)$$, tests.fx('inv_a'))),
  '42501: you do not have the members.invite permission in this organization',
  'revoke_invitation: a member of the org is still refused 42501');
select is(pg_temp.refusal(format($$select * from public.resend_invitation(%L)$$, tests.fx('inv_a'))),
  '42501: you do not have the members.invite permission in this organization',
  'resend_invitation: a member of the org is still refused 42501');
select tests.act_as('postgres');
-- The probe sees a lock: the member's refusal came after pending_invitation locked the invitation.
select isnt(pg_temp.xmax_of('inv_a'), (select seen from locks where what = 'inv_a'),
  'the xmax probe tells a locked row apart (a member''s refusal locks it first)');
select results_eq(
  $$select revoked_at is null, send_count from public.invitations where id = tests.fx('inv_a')$$,
  $$values (true, 1)$$,
  'revoke/resend_invitation: the invitation is as it was (pending, sent once)');
select tests.act_as('loner');
select is(pg_temp.refusal($$select * from public.accept_invitation('inv_317000000000000000000000000000000000000000000000')$$),
  'PT404: invitation not found', 'accept_invitation: an unknown token is PT404');
select is(pg_temp.refusal($$select * from public.accept_invitation(null)$$),
  'PT404: invitation not found', 'accept_invitation: so is a null one');

-- ---------------------------------------------------------------------------
-- The code itself (PostgREST answers PT404 with 404), and the org's own owner
-- ---------------------------------------------------------------------------

select tests.act_as('owner_b');
select throws_ok(format($$select public.clear_bot_telegram(%L)$$, tests.fx('bot_a')), 'PT404', 'bot not found',
  'clear_bot_telegram raises PT404 itself');
select throws_ok(format($$select * from public.close_conversation(%L)$$, tests.fx('conv_a')), 'PT404', 'conversation not found',
  'close_conversation raises PT404 itself');
select throws_ok(format($$select * from public.revoke_invitation(%L)$$, tests.fx('inv_a')), 'PT404', 'invitation not found',
  'revoke_invitation raises PT404 itself');
select tests.act_as('owner_a');
select is(pg_temp.refusal(format($$select * from public.close_conversation(%L)$$, tests.fx('conv_a'))), null,
  'close_conversation: the org''s owner still closes it');
select is(pg_temp.refusal(format($$select * from public.revoke_invitation(%L)$$, tests.fx('inv_a'))), null,
  'revoke_invitation: the org''s owner still revokes it');

select * from finish();
rollback;
