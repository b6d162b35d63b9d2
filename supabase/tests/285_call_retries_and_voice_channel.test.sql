-- Calls fixes (20261123011200_call_retries_and_voice_channel.sql): a bot that does not answer on the voice
-- channel places no calls, and a queued call whose bot lost the channel fails at the dial; a member's
-- create_outbound_call / create_call_campaign with an idempotency_key answers a retry with the first result
-- (other arguments refused, keys per user); a second provider secret rotation within the overlap keeps the
-- first secret until its own time (at most 4 earlier secrets).
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(32);

-- A fixed-offset zone where the local time is 12:xx now (calling hours never move a call).
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select extract(hour from now() at time zone 'UTC')::integer - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

-- Secrets handed out, by label.
create temp table secrets (label text primary key, secret text);
grant all on secrets to public;
create function pg_temp.secret(label text)
returns text
language sql
stable
as $$ select s.secret from secrets s where s.label = $1 $$;
grant execute on function pg_temp.secret(text) to public;

-- Calls of the org to a number, whatever their state (postgres reads them).
create function pg_temp.calls_to(number text)
returns integer
language sql
security definer
as $$ select count(*)::integer from public.calls c where c.org_id = tests.fx('org') and c.to_number = $1 $$;
grant execute on function pg_temp.calls_to(text) to public;

insert into tests.fixtures (name, id) values
  ('owner', tests.create_user('owner@calls-retries285.test')),
  ('admin', tests.create_user('admin@calls-retries285.test'));
select tests.remember('org', tests.create_org('calls-retries285-org', tests.fx('owner')));
select tests.add_member(tests.fx('org'), tests.fx('admin'), 'admin');
update public.organizations set time_zone = pg_temp.noon_zone() where id = tests.fx('org');
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org'), 'Voice 285', 'voice-285', 'asst_285_voice', array['api', 'voice']),
  (tests.fx('org'), 'Web only 285', 'web-285', 'asst_285_web', array['web', 'api']);
select tests.remember('voice_bot', id) from public.bots where org_id = tests.fx('org') and slug = 'voice-285';
select tests.remember('web_bot', id) from public.bots where org_id = tests.fx('org') and slug = 'web-285';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
values (tests.fx('org'), 'vapi', now(), 'pn_285');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

-- ---------------------------------------------------------------------------
-- 1. The voice channel
-- ---------------------------------------------------------------------------

select tests.act_as('admin');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('web_bot'), '+14155552850')$$,
  '22023', 'the bot Web only 285 does not answer on the voice channel',
  'voice channel: a call from a bot without the voice channel is refused'
);
select throws_ok(
  $$select * from public.create_call_campaign(tests.fx('org'), tests.fx('web_bot'), 'No voice', array['+14155552851', '+14155552852'])$$,
  '22023', 'the bot Web only 285 does not answer on the voice channel',
  'voice channel: so is a campaign'
);
select tests.act_as('postgres');
select is((select count(*)::integer from public.calls where bot_id = tests.fx('web_bot')), 0, 'voice channel: nothing was queued for it');

select tests.act_as('admin');
select tests.remember('lost_voice', (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552853')).id);
-- The admin removes the channel while the call is queued.
update public.bots set channels = array['api'] where id = tests.fx('voice_bot');
select tests.act_as('service_role');
select is((select count(*)::integer from private.claim_due_calls(10)), 0, 'voice channel: the dispatcher hands out no call of a bot that lost it');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, last_dial_error, dial_attempts from public.calls where id = tests.fx('lost_voice')$$,
  $$values ('failed', 'dial-failed: the bot does not answer on the voice channel', 'the bot does not answer on the voice channel', 0)$$,
  '... it fails the call with the reason, without an attempt'
);
update public.bots set channels = array['api', 'voice'] where id = tests.fx('voice_bot');

-- ---------------------------------------------------------------------------
-- 2. Idempotency keys for members
-- ---------------------------------------------------------------------------

select tests.act_as('admin');
select tests.remember('once', (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552860',
  idempotency_key => 'calls285-once')).id);
select is(
  (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552860', idempotency_key => 'calls285-once')).id,
  tests.fx('once'),
  'idempotency: a retry with the same key and arguments returns the call first queued'
);
select is(pg_temp.calls_to('+14155552860'), 1, '... and queues no second call');
select results_eq(
  $$select c.status::text, c.to_number, c.bot_id
    from public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552860', idempotency_key => 'calls285-once') c$$,
  $$values ('queued', '+14155552860', tests.fx('voice_bot'))$$,
  '... the replayed row is the call as queued'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552861', idempotency_key => 'calls285-once')$$,
  '22023', 'this idempotency_key was first sent with other arguments',
  'idempotency: the same key with another number is refused'
);
select is(pg_temp.calls_to('+14155552861'), 0, '... and queues nothing');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552862', idempotency_key => '')$$,
  '22023', 'idempotency_key must be 1 to 255 visible ASCII characters (a UUID will do)',
  'idempotency: a malformed key is refused'
);

-- The same instant read in another session time zone is the same request.
select tests.remember('later', (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552865',
  now() + interval '1 day', idempotency_key => 'calls285-zone')).id);
set local timezone = 'Asia/Tokyo';
select is(
  (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552865', now() + interval '1 day',
    idempotency_key => 'calls285-zone')).id,
  tests.fx('later'),
  'idempotency: a retry from a session in another time zone is the same request'
);
set local timezone to default;

-- Keys are per user: the owner's same key is a new request.
select tests.act_as('owner');
select isnt(
  (public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552860', idempotency_key => 'calls285-once')).id,
  tests.fx('once'),
  'idempotency: another member''s same key places their own call'
);
select is(pg_temp.calls_to('+14155552860'), 2, '... one call each');

-- Without a key nothing changes: two requests, two calls.
select tests.act_as('admin');
select public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552863');
select public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552863');
select is(pg_temp.calls_to('+14155552863'), 2, 'idempotency: without a key every request queues a call');

-- Campaigns.
create temp table campaigns (label text primary key, campaign_id uuid, calls_created integer, duplicates_removed integer,
  invalid_numbers text[]);
grant all on campaigns to public;
insert into campaigns select 'first', c.* from public.create_call_campaign(tests.fx('org'), tests.fx('voice_bot'), 'Retry 285',
  array['+14155552870', '+14155552871', '+14155552871', 'nope'], idempotency_key => 'calls285-campaign') c;
insert into campaigns select 'retry', c.* from public.create_call_campaign(tests.fx('org'), tests.fx('voice_bot'), 'Retry 285',
  array['+14155552870', '+14155552871', '+14155552871', 'nope'], idempotency_key => 'calls285-campaign') c;
select is(
  (select to_jsonb(k) - 'label' from campaigns k where k.label = 'retry'),
  (select jsonb_build_object('campaign_id', k.campaign_id, 'calls_created', 2, 'duplicates_removed', 1, 'invalid_numbers', array['nope'])
   from campaigns k where k.label = 'first'),
  'idempotency: a campaign retried with the same key returns the first campaign and its counts'
);
select tests.act_as('postgres');
select results_eq(
  $$select (select count(*)::integer from public.call_campaigns where org_id = tests.fx('org') and name = 'Retry 285'),
      pg_temp.calls_to('+14155552870') + pg_temp.calls_to('+14155552871')$$,
  $$values (1, 2)$$,
  '... one campaign, each number queued once'
);
select tests.act_as('admin');
select throws_ok(
  $$select * from public.create_call_campaign(tests.fx('org'), tests.fx('voice_bot'), 'Retry 285',
      array['+14155552870', '+14155552872'], idempotency_key => 'calls285-campaign')$$,
  '22023', 'this idempotency_key was first sent with other arguments',
  'idempotency: the same key with other numbers is refused'
);
select is(pg_temp.calls_to('+14155552872'), 0, '... and queues nothing');
select throws_ok(
  $$select * from public.create_call_campaign(tests.fx('org'), tests.fx('voice_bot'), 'Retry 285',
      array['+14155552870', '+14155552871', '+14155552871', 'nope'], idempotency_key => 'calls285-once')$$,
  '22023', 'this idempotency_key was first sent with other arguments',
  'idempotency: a call''s key is not a campaign''s'
);

select tests.act_as('service_role');
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('voice_bot'), '+14155552864', idempotency_key => 'calls285-svc')$$,
  '22023', 'idempotency_key is for signed-in users; an API key sends an Idempotency-Key header to the calls function',
  'idempotency: the service role (API keys) keeps its keys in the calls function'
);

select tests.act_as('postgres');
select ok(
  to_regprocedure('public.create_outbound_call(uuid, uuid, text, timestamptz, text)') is null
    and to_regprocedure('public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text)') is null,
  'signatures: the ones without idempotency_key are gone (no ambiguous calls)'
);
select is(
  (select jsonb_object_agg(r.rolname, array[
      has_function_privilege(r.rolname, 'public.create_outbound_call(uuid, uuid, text, timestamptz, text, text)', 'execute'),
      has_function_privilege(r.rolname, 'public.create_call_campaign(uuid, uuid, text, text[], timestamptz, text, text)', 'execute')])
   from pg_roles r where r.rolname in ('anon', 'authenticated', 'service_role')),
  '{"anon": [false, false], "authenticated": [true, true], "service_role": [true, true]}'::jsonb,
  'signatures: the grants are those of the signatures they replace'
);

-- ---------------------------------------------------------------------------
-- 3. Earlier provider secrets
-- ---------------------------------------------------------------------------

select tests.act_as('owner');
insert into secrets select 'a', public.create_call_provider_secret(tests.fx('org'), 'generic');
insert into secrets select 'b', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
-- A double click: the second rotation comes within the first one's overlap.
insert into secrets select 'c', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 48) r;
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'generic'),
  array[pg_temp.secret('c'), pg_temp.secret('b'), pg_temp.secret('a')],
  'secrets: after two rotations within the overlap the first secret is still accepted, newest first'
);
select tests.act_as('postgres');
select results_eq(
  $$select secret, valid_until from private.call_provider_older_secrets where org_id = tests.fx('org') and provider = 'generic'$$,
  $$values (pg_temp.secret('a'), now() + interval '24 hours')$$,
  '... until its own time (its rotation''s 24 hours), the second one for the new 48'
);
select is(
  (select previous_secret_valid_until from public.call_providers where org_id = tests.fx('org') and provider = 'generic'),
  now() + interval '48 hours',
  '... and admins see when the last earlier one ends'
);

-- The first secret's time runs out.
update private.call_provider_older_secrets set valid_until = now() - interval '1 second'
where org_id = tests.fx('org') and provider = 'generic';
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'generic'),
  array[pg_temp.secret('c'), pg_temp.secret('b')],
  'secrets: once its time has passed the first secret is no longer accepted'
);

-- Many rotations within the overlap: the current and the 4 newest earlier ones.
select tests.act_as('owner');
insert into secrets select 'r1', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
insert into secrets select 'r2', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
insert into secrets select 'r3', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
insert into secrets select 'r4', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
insert into secrets select 'r5', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 24) r;
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'generic'),
  array[pg_temp.secret('r5'), pg_temp.secret('r4'), pg_temp.secret('r3'), pg_temp.secret('r2'), pg_temp.secret('r1')],
  'secrets: at most 4 earlier secrets are accepted, the newest'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.call_provider_older_secrets where org_id = tests.fx('org') and provider = 'generic'),
  3, '... no more are kept'
);

-- A leaked secret: a rotation without overlap ends every earlier one.
select tests.act_as('owner');
insert into secrets select 'clean', r.secret from public.rotate_call_provider_secret(tests.fx('org'), 'generic', 0) r;
select tests.act_as('service_role');
select is(
  private.call_provider_secrets_for(tests.fx('org'), 'generic'),
  array[pg_temp.secret('clean')],
  'secrets: rotating without overlap ends every earlier secret at once'
);
select tests.act_as('postgres');
select is(
  (select count(*)::integer from private.call_provider_older_secrets where org_id = tests.fx('org') and provider = 'generic'),
  0, '... none is kept'
);
select tests.act_as('admin');
select throws_ok($$select * from private.call_provider_older_secrets$$, '42501', null, 'secrets: the earlier secrets are out of reach of admins');

select * from finish();
rollback;
