-- A Vapi call and the conversation of its custom-LLM turns find each other
-- (20261123006300_calls_link_their_conversations.sql): within one org, the
-- call whose provider_call_id is the conversation's external id takes it as
-- its conversation, whichever is written first; a conversation already set,
-- another org's call or another provider's is left alone.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

select tests.remember('owner', tests.create_user('link-owner@a.test'));
select tests.remember('owner_b', tests.create_user('link-owner@b.test'));
select tests.remember('org', tests.create_org('link-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('link-b', tests.fx('owner_b')));
insert into public.bots (org_id, name, slug) values (tests.fx('org'), 'Voice', 'voice'), (tests.fx('org_b'), 'B', 'b');
select tests.remember('bot', id) from public.bots where org_id = tests.fx('org');
select tests.remember('bot_b', id) from public.bots where org_id = tests.fx('org_b');
-- No dispatcher secrets, so nothing is woken.
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- The conversation first.
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
values (tests.fx('org'), tests.fx('bot'), 'voice', 'call-first-turn');
select tests.remember('early', id) from public.conversations where external_conversation_id = 'call-first-turn';
insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id)
values (tests.fx('org'), 'inbound', '+14155550100', 'ringing', 'vapi', 'call-first-turn');
select is(
  (select conversation_id from public.calls where provider_call_id = 'call-first-turn'),
  tests.fx('early'),
  'a call reported after its first turn takes the turn''s conversation'
);

-- The call first.
insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id) values
  (tests.fx('org'), 'inbound', '+14155550101', 'ringing', 'vapi', 'call-first-event'),
  (tests.fx('org_b'), 'inbound', '+14155550102', 'ringing', 'vapi', 'call-first-event'),
  (tests.fx('org'), 'inbound', '+14155550103', 'ringing', 'generic', 'call-generic');
insert into public.conversations (org_id, bot_id, channel, external_conversation_id) values
  (tests.fx('org'), tests.fx('bot'), 'voice', 'call-first-event'),
  (tests.fx('org'), tests.fx('bot'), 'voice', 'call-generic');
select is(
  (select c.conversation_id from public.calls c where c.org_id = tests.fx('org') and c.provider_call_id = 'call-first-event'),
  (select v.id from public.conversations v where v.external_conversation_id = 'call-first-event'),
  'a conversation started after its call was reported is linked to the call'
);
select is(
  (select conversation_id from public.calls where org_id = tests.fx('org_b') and provider_call_id = 'call-first-event'),
  null,
  'another org''s call with the same id is not'
);
select is(
  (select conversation_id from public.calls where provider_call_id = 'call-generic'),
  null,
  'nor another provider''s call'
);

-- A conversation already set stays.
insert into public.conversations (org_id, bot_id, channel) values (tests.fx('org'), tests.fx('bot'), 'web');
select tests.remember('chosen', id) from public.conversations where org_id = tests.fx('org') and channel = 'web';
insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id, conversation_id)
values (tests.fx('org'), 'inbound', '+14155550104', 'ringing', 'vapi', 'call-chosen', tests.fx('chosen'));
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
values (tests.fx('org'), tests.fx('bot'), 'voice', 'call-chosen');
select is(
  (select conversation_id from public.calls where provider_call_id = 'call-chosen'),
  tests.fx('chosen'),
  'a call whose conversation is set keeps it'
);
-- An outbound call learns its provider call id when it is dialled.
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
values (tests.fx('org'), tests.fx('bot'), 'voice', 'call-dialled');
insert into public.calls (org_id, direction, to_number, status) values (tests.fx('org'), 'outbound', '+14155550105', 'queued');
update public.calls set provider = 'vapi', provider_call_id = 'call-dialled' where to_number = '+14155550105';
select is(
  (select c.conversation_id from public.calls c where c.to_number = '+14155550105'),
  (select v.id from public.conversations v where v.external_conversation_id = 'call-dialled'),
  'a call that gets its provider call id later is linked then'
);

-- Another bot's conversation with the call's id is not the call's.
insert into public.bots (org_id, name, slug) values (tests.fx('org'), 'Other', 'other');
insert into public.conversations (org_id, bot_id, channel, external_conversation_id)
select tests.fx('org'), b.id, 'voice', 'call-other-bot' from public.bots b where b.slug = 'other';
insert into public.calls (org_id, direction, from_number, status, provider, provider_call_id, bot_id)
values (tests.fx('org'), 'inbound', '+14155550106', 'ringing', 'vapi', 'call-other-bot', tests.fx('bot'));
select is(
  (select conversation_id from public.calls where provider_call_id = 'call-other-bot'),
  null,
  'a call of one bot does not take another bot''s conversation'
);

select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('org') and conversation_id is not null),
  4,
  'only the matching calls were linked'
);

select * from finish();
rollback;
