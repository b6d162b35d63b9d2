-- 20261123014100_usage_survives_deleted_refs.sql: record_usage meters the
-- tokens of a call whose bot, API key, conversation, user or document was
-- deleted meanwhile, with that reference null (before: 23503, nothing
-- metered); an org deleted meanwhile meters nothing and raises nothing; a
-- reference to another org's row is still refused (23503).
begin;
create extension if not exists pgtap with schema extensions;

select plan(16);

select tests.remember('owner', tests.create_user('owner@usage314.test'));
select tests.remember('asker', tests.create_user('asker@usage314.test'));
select tests.remember('org', tests.create_org('usage314-org', tests.fx('owner')));
select tests.remember('other', tests.create_org('usage314-other', tests.fx('owner')));
select tests.remember('gone', tests.create_org('usage314-gone', tests.fx('owner')));
insert into public.api_keys (org_id, name, prefix, scopes) values
  (tests.fx('org'), 'key 314', 'ak_00314001', array['chat.write']),
  (tests.fx('other'), 'other key 314', 'ak_00314002', array['chat.write']);
select tests.remember('key', id) from public.api_keys where prefix = 'ak_00314001';
select tests.remember('other_key', id) from public.api_keys where prefix = 'ak_00314002';
insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org'), 'Usage 314', 'usage-314', array['api']),
  (tests.fx('other'), 'Other 314', 'usage-314', array['api']);
select tests.remember('bot', id) from public.bots where slug = 'usage-314' and org_id = tests.fx('org');
select tests.remember('other_bot', id) from public.bots where slug = 'usage-314' and org_id = tests.fx('other');
insert into public.conversations (org_id, bot_id, channel) values
  (tests.fx('org'), tests.fx('bot'), 'api'),
  (tests.fx('other'), tests.fx('other_bot'), 'api');
select tests.remember('conv', id) from public.conversations where bot_id = tests.fx('bot');
select tests.remember('other_conv', id) from public.conversations where bot_id = tests.fx('other_bot');
insert into public.documents (org_id, name, mime_type, size_bytes, storage_path, status, progress) values
  (tests.fx('org'), 'usage314.md', 'text/markdown', 10, 'usage314/usage314.md', 'ready', 100),
  (tests.fx('other'), 'usage314-other.md', 'text/markdown', 10, 'usage314/other.md', 'ready', 100);
select tests.remember('doc', id) from public.documents where storage_path = 'usage314/usage314.md';
select tests.remember('other_doc', id) from public.documents where storage_path = 'usage314/other.md';

-- What record_usage wrote for `tokens` (each case meters its own count).
create function pg_temp.metered(tokens integer) returns table (
  kind text, tokens_in integer, document_id uuid, api_key_id uuid, bot_id uuid, conversation_id uuid, user_id uuid
) language sql security definer as $$
  select u.kind, u.tokens_in, u.document_id, u.api_key_id, u.bot_id, u.conversation_id, u.user_id
  from public.usage_events u where u.org_id = tests.fx('org') and u.tokens_in = tokens
$$;

-- Every reference present: kept.
select tests.act_as('service_role');
select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31401, 0,
  tests.fx('doc'), tests.fx('key'), tests.fx('bot'), tests.fx('conv'), tests.fx('asker'));
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31401)$$,
  $$values ('embedding', 31401, tests.fx('doc'), tests.fx('key'), tests.fx('bot'), tests.fx('conv'), tests.fx('asker'))$$,
  'references that exist are metered as given');

-- The API key deleted while the question was embedded.
delete from public.api_keys where id = tests.fx('key');
select tests.act_as('service_role');
select lives_ok(
  $$select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31402, 0,
    null, tests.fx('key'), tests.fx('bot'), tests.fx('conv'), tests.fx('asker'))$$,
  'a deleted API key is no error');
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31402)$$,
  $$values ('embedding', 31402, null::uuid, null::uuid, tests.fx('bot'), tests.fx('conv'), tests.fx('asker'))$$,
  '... the tokens are metered without the key');

-- The user deleted.
delete from auth.users where id = tests.fx('asker');
select tests.act_as('service_role');
select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31403, 0,
  null, null, tests.fx('bot'), tests.fx('conv'), tests.fx('asker'));
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31403)$$,
  $$values ('embedding', 31403, null::uuid, null::uuid, tests.fx('bot'), tests.fx('conv'), null::uuid)$$,
  'a deleted user: metered without the user');

-- The document deleted mid-step.
delete from public.documents where id = tests.fx('doc');
select tests.act_as('service_role');
select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31404, 0, tests.fx('doc'), null);
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31404)$$,
  $$values ('embedding', 31404, null::uuid, null::uuid, null::uuid, null::uuid, null::uuid)$$,
  'a deleted document: metered without the document');

-- The conversation deleted (its bot stays).
delete from public.conversations where id = tests.fx('conv');
select tests.act_as('service_role');
select private.record_usage(tests.fx('org'), 'chat', 'gpt-4o-mini', 31405, 7, null, null, tests.fx('bot'), tests.fx('conv'), null);
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31405)$$,
  $$values ('chat', 31405, null::uuid, null::uuid, tests.fx('bot'), null::uuid, null::uuid)$$,
  'a deleted conversation: metered to the bot without the conversation');

-- The bot deleted while it answered (its conversations go with it).
delete from public.bots where id = tests.fx('bot');
select tests.act_as('service_role');
select lives_ok(
  $$select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31406, 0,
    null, null, tests.fx('bot'), tests.fx('conv'), null)$$,
  'a deleted bot is no error');
select tests.act_as('postgres');
select results_eq(
  $$select * from pg_temp.metered(31406)$$,
  $$values ('embedding', 31406, null::uuid, null::uuid, null::uuid, null::uuid, null::uuid)$$,
  '... the tokens are metered to the org, without bot or conversation');

-- Another org's rows are refused, not metered as none.
select tests.act_as('service_role');
select throws_ok(
  $$select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31407, 0,
    null, null, tests.fx('other_bot'), null, null)$$,
  '23503', null, 'another org''s bot is refused');
select throws_ok(
  $$select private.record_usage(tests.fx('org'), 'chat', 'gpt-4o-mini', 31407, 0,
    null, null, null, tests.fx('other_conv'), null)$$,
  '23503', null, 'another org''s conversation is refused');
select throws_ok(
  $$select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31407, 0,
    null, tests.fx('other_key'))$$,
  '23503', null, 'another org''s API key is refused');
select throws_ok(
  $$select private.record_usage(tests.fx('org'), 'embedding', 'text-embedding-3-small', 31407, 0, tests.fx('other_doc'))$$,
  '23503', null, 'another org''s document is refused');
select tests.act_as('postgres');
select is((select count(*)::int from public.usage_events where tokens_in = 31407), 0, '... and nothing of those is metered');

-- The org deleted meanwhile: nothing to meter, and no error.
delete from public.organizations where id = tests.fx('gone');
select tests.act_as('service_role');
select lives_ok(
  $$select private.record_usage(tests.fx('gone'), 'embedding', 'text-embedding-3-small', 31408, 0)$$,
  'an org deleted meanwhile is no error');
select tests.act_as('postgres');
select is((select count(*)::int from public.usage_events where tokens_in = 31408), 0, '... and nothing is metered');

select tests.act_as('service_role');
select throws_ok(
  $$select private.record_usage(null, 'embedding', 'text-embedding-3-small', 31409, 0)$$,
  '23502', null, 'an org is still required');

select * from finish();
rollback;
