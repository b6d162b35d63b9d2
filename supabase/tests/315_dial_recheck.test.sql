-- Claimed calls checked again before they are dialled (20261123014200_dial_recheck.sql): dial_claim_verdict
-- says `dial` for a claim still queued as its attempt, leased, of a live campaign and a bot on the voice channel;
-- `give_back` with the reason once the campaign is canceled (cancel_call_campaign leaves the leased call), the
-- bot is taken off the voice channel, disabled or deleted, or the lease ran out; `stale` once the claim moved on;
-- `gone` once the call is deleted with its org. Given back with give_back_dial_claim, a canceled campaign's call
-- ends canceled and any other is due again without an attempt. Service role only.
--
-- One transaction, so now() is one instant.
begin;
create extension if not exists pgtap with schema extensions;

select plan(18);

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

-- dial_claim_verdict as the service role, for the named call and attempt: 'verdict: reason'.
create function pg_temp.verdict(name text, attempt integer default 1)
returns text
language sql
as $$
  select tests.act_as('service_role');
  select v.verdict || coalesce(': ' || v.reason, '') from private.dial_claim_verdict(tests.fx(name), attempt) v;
$$;
grant execute on function pg_temp.verdict(text, integer) to public;

-- give_back_dial_claim as the service role, for the named call's dial claim (attempt 1), as the dispatcher gives one back.
create function pg_temp.give_back(name text, reason text)
returns text
language sql
as $$
  select tests.act_as('service_role');
  select private.give_back_dial_claim(tests.fx(name), 1, reason);
$$;
grant execute on function pg_temp.give_back(text, text) to public;

create function pg_temp.claim()
returns integer
language sql
as $$
  select tests.act_as('service_role');
  select count(*)::integer from private.claim_due_calls(20);
$$;
grant execute on function pg_temp.claim() to public;

insert into tests.fixtures (name, id) values
  ('owner_r', tests.create_user('owner-r@dial-recheck.test')),
  ('admin_r', tests.create_user('admin-r@dial-recheck.test')),
  ('owner_g', tests.create_user('owner-g@dial-recheck.test'));
select tests.remember('org_r', tests.create_org('dial-recheck-org-r', tests.fx('owner_r')));
select tests.add_member(tests.fx('org_r'), tests.fx('admin_r'), 'admin');
select tests.remember('org_g', tests.create_org('dial-recheck-org-g', tests.fx('owner_g')));
update public.organizations set time_zone = pg_temp.noon_zone() where id in (tests.fx('org_r'), tests.fx('org_g'));
insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values
  (tests.fx('org_r'), 'Voice', 'voice', 'asst_recheck_voice', '{api,voice,web}'),
  (tests.fx('org_r'), 'Other', 'other', 'asst_recheck_other', '{api,voice,web}'),
  (tests.fx('org_r'), 'Doomed', 'doomed', 'asst_recheck_doomed', '{api,voice,web}'),
  (tests.fx('org_g'), 'Voice', 'voice', 'asst_recheck_gone', '{api,voice,web}');
select tests.remember('bot_r', id) from public.bots where org_id = tests.fx('org_r') and slug = 'voice';
select tests.remember('bot_other', id) from public.bots where org_id = tests.fx('org_r') and slug = 'other';
select tests.remember('bot_doomed', id) from public.bots where org_id = tests.fx('org_r') and slug = 'doomed';
select tests.remember('bot_g', id) from public.bots where org_id = tests.fx('org_g') and slug = 'voice';
insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id) values
  (tests.fx('org_r'), 'vapi', now(), 'pn_recheck_r'),
  (tests.fx('org_g'), 'vapi', now(), 'pn_recheck_g');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null where status = 'queued';

select tests.act_as('admin_r');
select tests.remember('campaign', c.campaign_id)
from public.create_call_campaign(tests.fx('org_r'), tests.fx('bot_r'), 'Recheck', array['+14155550901', '+14155550902'], null, null) c;
select tests.act_as('postgres');
select tests.remember('in_campaign', id) from public.calls where campaign_id = tests.fx('campaign') and to_number = '+14155550901';
select tests.remember('in_campaign_2', id) from public.calls where campaign_id = tests.fx('campaign') and to_number = '+14155550902';
select tests.act_as('admin_r');
select tests.remember('off_voice', (public.create_outbound_call(tests.fx('org_r'), tests.fx('bot_other'), '+14155550903')).id);
select tests.remember('bot_deleted', (public.create_outbound_call(tests.fx('org_r'), tests.fx('bot_doomed'), '+14155550904')).id);
select tests.remember('lease_out', (public.create_outbound_call(tests.fx('org_r'), tests.fx('bot_r'), '+14155550905')).id);
select tests.act_as('owner_g');
select tests.remember('org_deleted', (public.create_outbound_call(tests.fx('org_g'), tests.fx('bot_g'), '+14155550906')).id);

select is(pg_temp.claim(), 6, 'claim_due_calls: the six calls are claimed as attempt 1');
select tests.act_as('postgres');

select is(pg_temp.verdict('in_campaign'), 'dial', 'dial_claim_verdict: a claim nothing changed is dialled');
select tests.act_as('admin_r');
select throws_ok($$select * from private.dial_claim_verdict(tests.fx('in_campaign'), 1)$$, '42501', null,
  'dial_claim_verdict: signed-in users may not run it (service role only)');

-- The campaign is canceled while its calls are claimed: cancel_call_campaign leaves them to the dispatcher.
select is(public.cancel_call_campaign(tests.fx('campaign')), 0, 'cancel_call_campaign: the claimed calls are left to the dispatcher');
select is(pg_temp.verdict('in_campaign'), 'give_back: the campaign was canceled',
  'dial_claim_verdict: a claim of a campaign canceled since is not dialled');
select is(pg_temp.give_back('in_campaign', 'not dialled: the campaign was canceled'), 'canceled',
  'give_back_dial_claim: ... given back, it is canceled');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, dial_attempts, dial_started_at, dial_lease_until from public.calls where id = tests.fx('in_campaign')$$,
  $$values ('canceled', 'canceled-by-user', 0, null::timestamptz, null::timestamptz)$$,
  '... canceled-by-user, never dialled (no attempt counted)'
);
select is(pg_temp.verdict('in_campaign'), 'stale', 'dial_claim_verdict: a claim settled since is stale');
select is(pg_temp.verdict('in_campaign_2', 2), 'stale', 'dial_claim_verdict: another attempt''s claim is stale');

-- The bot is taken off the voice channel, then disabled: given back, the next claim fails it with the reason.
select tests.act_as('postgres');
update public.bots set channels = '{api,web}' where id = tests.fx('bot_other');
select is(pg_temp.verdict('off_voice'), 'give_back: the bot does not answer on the voice channel',
  'dial_claim_verdict: a claim whose bot left the voice channel is not dialled');
select tests.act_as('postgres');
update public.bots set channels = '{api,voice,web}', enabled = false where id = tests.fx('bot_other');
select is(pg_temp.verdict('off_voice'), 'give_back: the bot is disabled', 'dial_claim_verdict: nor one whose bot was disabled');
select is(pg_temp.give_back('off_voice', 'not dialled: the bot is disabled'), 'released',
  'give_back_dial_claim: ... given back, it is queued again');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, dial_attempts, dial_started_at, dial_lease_until, next_dial_at - now(), last_dial_error
    from public.calls where id = tests.fx('off_voice')$$,
  $$values ('queued', 0, null::timestamptz, null::timestamptz, interval '1 second', 'not dialled: the bot is disabled')$$,
  '... without an attempt, due again in a second, the reason noted'
);
select is(
  (select dial_throttled_since from public.calls where id = tests.fx('off_voice')),
  null,
  '... and its throttle clock not started: the provider did not hold it back'
);

delete from public.bots where id = tests.fx('bot_doomed');
select is(pg_temp.verdict('bot_deleted'), 'give_back: the bot was deleted', 'dial_claim_verdict: a claim whose bot was deleted is not dialled');
select tests.act_as('postgres');

update public.calls set dial_lease_until = now() - interval '1 second' where id = tests.fx('lease_out');
select is(pg_temp.verdict('lease_out'), 'give_back: the dial claim''s lease ran out before it was dialled',
  'dial_claim_verdict: a claim whose lease ran out is not dialled (a lookup may take it over)');
select tests.act_as('postgres');

delete from public.organizations where id = tests.fx('org_g');
select is(pg_temp.verdict('org_deleted'), 'gone', 'dial_claim_verdict: a call deleted with its org is gone');
select tests.act_as('postgres');
select is(pg_temp.verdict('lease_out', 1), 'give_back: the dial claim''s lease ran out before it was dialled',
  'dial_claim_verdict: the check changes nothing (asked again, the same answer)');

select * from finish();
rollback;
