-- Voice ids on the shared Vapi account are the platform's
-- (20261123008400_voice_ids_platform_owned.sql, part 1): only the service
-- role (or a role bypassing RLS) sets bots.voice_assistant_id and an org's
-- outbound phone number (42501 for admins and owners, whatever the path), an
-- id belongs to one bot / one org (23505), and the dispatcher's claim for a
-- call of an org that tried to take another org's ids hands out its own ids
-- only.
begin;
create extension if not exists pgtap with schema extensions;

select plan(20);

-- A fixed-offset zone where the local time is 12:xx now (calls go out at once).
create function pg_temp.noon_zone()
returns text
language sql
stable
as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select extract(hour from now() at time zone 'UTC')::integer - 12 as n) x
$$;
grant execute on function pg_temp.noon_zone() to public;

-- What claim_due_calls hands out, kept for reading as postgres.
create temp table claimed (call_id uuid, org_id uuid, bot_id uuid, to_number text, provider text, assistant_id text,
  phone_number_id text, attempt integer);
grant all on claimed to public;

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@voice-ids-255.test')),
  ('admin_a', tests.create_user('admin-a@voice-ids-255.test')),
  ('owner_b', tests.create_user('owner-b@voice-ids-255.test'));
select tests.remember('org_a', tests.create_org('voice-ids-255-a', tests.fx('owner_a')));
select tests.remember('org_b', tests.create_org('voice-ids-255-b', tests.fx('owner_b')));
select tests.add_member(tests.fx('org_a'), tests.fx('admin_a'), 'admin');
update public.organizations set time_zone = pg_temp.noon_zone() where id in (tests.fx('org_a'), tests.fx('org_b'));
insert into public.bots (org_id, name, slug, channels) values (tests.fx('org_a'), 'A voice', 'a-voice', '{api,voice,web}');
select tests.remember('bot_a', id) from public.bots where org_id = tests.fx('org_a');
-- Org B as the platform provisioned it (postgres bypasses RLS).
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (tests.fx('org_b'), 'B voice', 'b-voice', 'asst_255_b', '{api,voice,web}');
select tests.remember('bot_b', id) from public.bots where org_id = tests.fx('org_b');
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id) values
  (tests.fx('org_a'), 'vapi', now(), null), (tests.fx('org_b'), 'vapi', now(), 'pn_255_b');
-- No dispatcher secrets, so inserts wake nothing; only this file's calls are due.
delete from vault.secrets where name in ('project_url', 'service_role_key');
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

-- ---------------------------------------------------------------------------
-- Admins and owners set neither id (B's or any other)
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select throws_ok(
  $$update public.bots set voice_assistant_id = 'asst_255_b' where id = tests.fx('bot_a')$$,
  '42501', 'only the platform (service role) sets a bot''s voice assistant (voice_assistant_id): it is an id on the shared Vapi account',
  'voice_assistant_id: an admin cannot set another org''s assistant on their bot (42501)'
);
select throws_ok(
  $$update public.bots set voice_assistant_id = 'asst_255_fresh' where id = tests.fx('bot_a')$$,
  '42501', null,
  'voice_assistant_id: nor any assistant id'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, voice_assistant_id) values (tests.fx('org_a'), 'Sneaky', 'sneaky', 'asst_255_b')$$,
  '42501', null,
  'voice_assistant_id: nor on a new bot'
);
select lives_ok(
  $$insert into public.bots (org_id, name, slug) values (tests.fx('org_a'), 'Plain', 'plain-255')$$,
  'voice_assistant_id: admins still create bots without one'
);
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', 'pn_255_b')$$,
  '42501', 'only the platform (service role) sets an organization''s outbound phone number (outbound_phone_number_id): it is an id on the shared Vapi account',
  'set_call_provider_outbound: an admin cannot set another org''s number (42501)'
);
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', null)$$,
  '42501', null,
  'set_call_provider_outbound: nor clear their own'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_a'), '+14155550155', null, pg_temp.noon_zone())$$,
  '22023', null,
  'create_outbound_call: the refused hijack left org A with nothing to call with'
);
select tests.act_as('owner_b');
select throws_ok(
  $$update public.bots set voice_assistant_id = null where id = tests.fx('bot_b')$$,
  '42501', null,
  'voice_assistant_id: an owner cannot change their own bot''s either'
);
select lives_ok(
  $$update public.bots set name = 'B voice renamed' where id = tests.fx('bot_b')$$,
  'voice_assistant_id: other columns of a bot with an assistant stay writable'
);
select tests.act_as('postgres');
select results_eq(
  $$select b.slug, b.voice_assistant_id from public.bots b where b.org_id in (tests.fx('org_a'), tests.fx('org_b')) order by b.slug$$,
  $$values ('a-voice', null::text), ('b-voice', 'asst_255_b'), ('plain-255', null)$$,
  'voice_assistant_id: nothing was changed by the refused writes'
);
select results_eq(
  $$select p.org_id, p.outbound_phone_number_id from public.call_providers p
    where p.org_id in (tests.fx('org_a'), tests.fx('org_b')) order by p.outbound_phone_number_id nulls first$$,
  $$values (tests.fx('org_a'), null::text), (tests.fx('org_b'), 'pn_255_b')$$,
  'outbound_phone_number_id: nothing was changed by the refused calls'
);

-- ---------------------------------------------------------------------------
-- The service role provisions them, one org per id
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select throws_ok(
  $$update public.bots set voice_assistant_id = 'asst_255_b' where id = tests.fx('bot_a')$$,
  '23505', null,
  'voice_assistant_id: a second org cannot hold the same assistant id, even from the service role'
);
select throws_ok(
  $$select public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', 'pn_255_b')$$,
  '23505', null,
  'outbound_phone_number_id: a second org cannot hold the same phone number id, even from the service role'
);
select lives_ok(
  $$update public.bots set voice_assistant_id = 'asst_255_a' where id = tests.fx('bot_a')$$,
  'voice_assistant_id: the service role sets one'
);
select is(
  (select outbound_phone_number_id from public.set_call_provider_outbound(tests.fx('org_a'), 'vapi', ' pn_255_a ')),
  'pn_255_a',
  'set_call_provider_outbound: the service role sets the number (trimmed)'
);
-- The service role without claims (asServiceRole in the functions) too: it bypasses RLS.
select set_config('request.jwt.claims', '', true);
select lives_ok(
  $$update public.bots set voice_assistant_id = 'asst_255_plain' where slug = 'plain-255' and org_id = tests.fx('org_a')$$,
  'voice_assistant_id: a role that bypasses RLS sets one without service-role claims'
);
select tests.act_as('postgres');
select throws_ok(
  $$insert into public.bots (org_id, name, slug, voice_assistant_id) values (tests.fx('org_b'), 'B two', 'b-two', 'asst_255_a')$$,
  '23505', null,
  'voice_assistant_id: unique across bots'
);

-- ---------------------------------------------------------------------------
-- What the dispatcher dials for org A: its own ids, never B's
-- ---------------------------------------------------------------------------

select tests.act_as('admin_a');
select tests.remember('call_a', (public.create_outbound_call(tests.fx('org_a'), tests.fx('bot_a'), '+14155550155', null, pg_temp.noon_zone())).id);
select tests.act_as('service_role');
insert into claimed select * from private.claim_due_calls(10);
select tests.act_as('postgres');
select results_eq(
  $$select c.call_id, c.org_id, c.assistant_id, c.phone_number_id from claimed c$$,
  $$values (tests.fx('call_a'), tests.fx('org_a'), 'asst_255_a', 'pn_255_a')$$,
  'claim_due_calls: org A''s call is dialled with org A''s assistant and number'
);
select is_empty(
  $$select 1 from public.calls c
    where c.org_id = tests.fx('org_a')
      and (c.dial_target ->> 'assistant_id' = 'asst_255_b' or c.dial_target ->> 'phone_number_id' = 'pn_255_b')$$,
  'claim_due_calls: no call of org A carries org B''s ids'
);
select matches(
  pg_get_functiondef('private.caller_is_platform()'::regprocedure),
  'auth\.role\(\) is not distinct from ''service_role'' or private\.caller_bypasses_rls\(\)',
  'the platform is the service role by its claims or a role that bypasses RLS'
);

select * from finish();
rollback;
