-- Fair dialling between orgs (20261123011200_call_retries_and_voice_channel.sql, item 5): claim_due_calls
-- serves orgs in turn (each org's oldest due call, then each one's second, older first within a turn,
-- oldest first within an org), so one org's campaign no longer holds another org's call back; and one
-- org's calls outside calling hours, up to 1000 a claim, are set aside in the same claim that hands out the
-- callable calls, so a claim no longer returns nothing (the dispatcher's end of the pass) while a callable
-- call is due behind them.
--
-- One transaction, so now() is one instant. Every org's zone is a fixed offset where it is 12:xx now, with
-- no business hours (callable); the calls outside calling hours are for a callee where it is 03:xx.
begin;
create extension if not exists pgtap with schema extensions;

select plan(14);

-- A fixed-offset zone where the local time is <hour>:xx now.
create function pg_temp.zone_at(hour integer) returns text language sql stable as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select ((extract(hour from now() at time zone 'UTC')::integer - hour + 36) % 24) - 12 as n) x
$$;
grant execute on function pg_temp.zone_at(integer) to public;

-- An org that may dial: a voice bot, a phone number, the business plan (minutes for every call here).
create function pg_temp.dialling_org(slug text)
returns uuid
language plpgsql
as $$
declare
  org uuid := tests.create_org(slug, tests.fx('owner'));
begin
  perform tests.remember(slug, org);
  update public.organizations set time_zone = pg_temp.zone_at(12) where id = org;
  insert into public.bots (org_id, name, slug, voice_assistant_id, channels) values (org, 'Voice', 'voice', 'asst_' || slug, '{api,voice,web}');
  perform tests.remember(slug || '_bot', (select b.id from public.bots b where b.org_id = org));
  insert into public.call_providers (org_id, provider, secret_created_at, outbound_phone_number_id)
  values (org, 'vapi', now(), 'pn_' || slug);
  update public.subscriptions set plan_id = 'business' where org_id = org and status = 'active';
  return org;
end;
$$;
grant execute on function pg_temp.dialling_org(text) to public;

-- Callable calls of an org named <org>-<n> for n from first on, due oldest first: the first `ago` before
-- now, each next one a second later. Written without their triggers (audit, broadcast: seconds on PGlite
-- for a thousand).
create function pg_temp.queue(org text, first integer, count integer, ago interval)
returns void
language plpgsql
as $$
begin
  set local session_replication_role = replica;
  with made as (
    insert into public.calls (org_id, bot_id, direction, to_number, status, next_dial_at, callee_time_zone)
    select tests.fx(org), tests.fx(org || '_bot'), 'outbound', '+1415' || lpad(n::text, 7, '0'), 'queued',
      now() - ago + pg_catalog.make_interval(secs => n - first), pg_temp.zone_at(12)
    from generate_series(first, first + count - 1) n
    returning id, to_number
  )
  insert into tests.fixtures (name, id)
  select org || '-' || ltrim(right(m.to_number, 7), '0'), m.id from made m;
  set local session_replication_role = origin;
end;
$$;
grant execute on function pg_temp.queue(text, integer, integer, interval) to public;

create temp table answers (label text primary key, body jsonb);
grant all on answers to public;

-- claim_due_calls as the service role: the fixture names of the calls handed out, sorted.
create function pg_temp.claim(label text, max_calls integer)
returns jsonb
language sql
as $$
  select tests.act_as('service_role');
  insert into answers
  select label, coalesce(jsonb_agg(f.name order by f.name), '[]')
  from private.claim_due_calls(max_calls) c
  left join tests.fixtures f on f.id = c.call_id
  returning body;
$$;
grant execute on function pg_temp.claim(text, integer) to public;
create function pg_temp.answer(label text)
returns jsonb
language sql
stable
as $$ select a.body from answers a where a.label = $1 $$;
grant execute on function pg_temp.answer(text) to public;

-- The fixture names as the claim's answer lists them.
create function pg_temp.names(variadic names text[])
returns jsonb
language sql
immutable
as $$ select jsonb_agg(n order by n) from unnest(names) n $$;

-- Nothing queued is due: the next scenario starts from its own calls only.
create function pg_temp.clear()
returns void
language sql
as $$
  update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null, dial_started_at = null
  where status = 'queued';
$$;

insert into tests.fixtures (name, id) values ('owner', tests.create_user('owner@fair-dialling290.test'));
select pg_temp.dialling_org('fair290a');
select pg_temp.dialling_org('fair290b');
select pg_temp.dialling_org('fair290c');
delete from vault.secrets where name in ('project_url', 'service_role_key');
-- Only this file's calls are due.
select pg_temp.clear();

-- ---------------------------------------------------------------------------
-- 1. A campaign of one org does not hold another org's call back
-- ---------------------------------------------------------------------------

-- A: 300 calls due from 10 minutes ago; B: one call due a minute ago, behind all of them.
select pg_temp.queue('fair290a', 1, 300, interval '10 minutes');
select pg_temp.queue('fair290b', 1, 1, interval '1 minute');
select pg_temp.claim('big', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('big'),
  pg_temp.names('fair290b-1', 'fair290a-1', 'fair290a-2', 'fair290a-3', 'fair290a-4', 'fair290a-5', 'fair290a-6', 'fair290a-7',
    'fair290a-8', 'fair290a-9'),
  'the first claim of 10 hands out B''s one call beside A''s 9 oldest (before: A''s 10 oldest)');
select results_eq(
  $$select count(*)::integer, count(*) filter (where dial_attempts = 1 and dial_started_at = now() and dial_lease_until > now())::integer
    from public.calls where id = tests.fx('fair290b-1')$$,
  $$values (1, 1)$$,
  '... B''s call is leased with its attempt stamped, as any call handed out');
select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('fair290a') and status = 'queued' and dial_attempts = 0
     and next_dial_at <= now() and dial_lease_until is null),
  291, '... A''s other 291 calls are still due, untouched');
select pg_temp.claim('big_next', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('big_next'),
  pg_temp.names('fair290a-10', 'fair290a-11', 'fair290a-12', 'fair290a-13', 'fair290a-14', 'fair290a-15', 'fair290a-16',
    'fair290a-17', 'fair290a-18', 'fair290a-19'),
  '... with B served, the next claim hands out A''s next 10, oldest first');

-- ---------------------------------------------------------------------------
-- 2. Round-robin among three orgs, oldest first within each
-- ---------------------------------------------------------------------------

select pg_temp.clear();
-- A's five calls are all older than B's, B's than C's; in each org the call named 1 is the oldest.
update public.calls c set next_dial_at = now() - interval '30 minutes' + pg_catalog.make_interval(secs => split_part(f.name, '-', 2)::integer)
from tests.fixtures f
where f.id = c.id and f.name ~ '^fair290a-[1-5]$';
update public.calls set next_dial_at = now() - interval '20 minutes 1 second' where id = tests.fx('fair290b-1');
select pg_temp.queue('fair290b', 2, 4, interval '20 minutes');
select pg_temp.queue('fair290c', 1, 5, interval '10 minutes');
select pg_temp.claim('turns', 7);
select tests.act_as('postgres');
select is(pg_temp.answer('turns'),
  pg_temp.names('fair290a-1', 'fair290b-1', 'fair290c-1', 'fair290a-2', 'fair290b-2', 'fair290c-2', 'fair290a-3'),
  'claim_due_calls(7): two turns of A, B and C, then the oldest of the third turn (A''s)');
select pg_temp.claim('turns_next', 4);
select tests.act_as('postgres');
select is(pg_temp.answer('turns_next'), pg_temp.names('fair290a-4', 'fair290b-3', 'fair290c-3', 'fair290a-5'),
  '... the next claim goes on in turn: each org''s oldest left, then the oldest of the next turn (A''s last)');
select is(
  (select jsonb_agg(f.name order by f.name) from public.calls c join tests.fixtures f on f.id = c.id
   where f.name ~ '^fair290[abc]-[1-5]$' and c.status = 'queued' and c.next_dial_at <= now() and c.dial_lease_until is null),
  pg_temp.names('fair290b-4', 'fair290b-5', 'fair290c-4', 'fair290c-5'),
  '... leaving B''s and C''s newest calls due');

-- ---------------------------------------------------------------------------
-- 3. Calls outside calling hours do not keep a callable call from the same claim
-- ---------------------------------------------------------------------------

select pg_temp.clear();
-- A: 1,001 calls for callees where it is 03:xx, due from an hour ago (more than one claim sets aside),
-- and one callable call behind them; B: one callable call behind them too.
set local session_replication_role = replica;
insert into public.calls (org_id, bot_id, direction, to_number, status, next_dial_at, callee_time_zone)
select tests.fx('fair290a'), tests.fx('fair290a_bot'), 'outbound', '+1646' || lpad(n::text, 7, '0'), 'queued',
  now() - interval '1 hour' + pg_catalog.make_interval(secs => n), pg_temp.zone_at(3)
from generate_series(1, 1001) n;
set local session_replication_role = origin;
update public.calls set next_dial_at = now() - interval '1 minute', dial_lease_until = null
where id in (tests.fx('fair290a-300'), tests.fx('fair290b-5'));
select pg_temp.claim('night', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('night'), pg_temp.names('fair290a-300', 'fair290b-5'),
  'one claim hands out A''s and B''s callable calls behind A''s 1,001 calls outside calling hours (before: none, the claim set 1000 aside and returned nothing)');
select results_eq(
  $$select count(*)::integer, count(*) filter (where next_dial_at > now())::integer,
      count(*) filter (where status = 'queued' and dial_attempts = 0 and dial_started_at is null and dial_lease_until is null)::integer,
      count(*) filter (where next_dial_at > now() and (next_dial_at at time zone pg_temp.zone_at(3))::time >= '08:00')::integer
    from public.calls where org_id = tests.fx('fair290a') and to_number like '+1646%'$$,
  $$values (1001, 1000, 1001, 1000)$$,
  '... and sets aside the 1000 oldest of them, at most, to 08:00 of the callee''s day, without an attempt');
select is(
  (select to_number from public.calls where org_id = tests.fx('fair290a') and to_number like '+1646%' and next_dial_at <= now()),
  '+16460001001', '... the newest stays due for the next claim');
select pg_temp.claim('night_next', 10);
select tests.act_as('postgres');
select is(pg_temp.answer('night_next'), '[]'::jsonb, 'the next claim has no callable call to hand out');
select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('fair290a') and to_number like '+1646%' and next_dial_at > now()),
  1001, '... and sets the last one aside');

-- A callable call of the same org as the calls outside calling hours, behind the first 1000 of them.
select pg_temp.clear();
update public.calls set next_dial_at = now() - interval '2 hours', dial_lease_until = null
where org_id = tests.fx('fair290a') and to_number like '+1646%';
update public.calls set next_dial_at = now() - interval '1 minute', dial_lease_until = null where id = tests.fx('fair290a-299');
select pg_temp.claim('night_same_org', 1);
select tests.act_as('postgres');
select is(pg_temp.answer('night_same_org'), pg_temp.names('fair290a-299'),
  'claim_due_calls(1): A''s callable call is handed out in the claim that sets aside A''s calls outside calling hours');
select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('fair290a') and to_number like '+1646%' and next_dial_at > now()),
  1000, '... which sets aside 1000 of them, not max_calls a round');

select * from finish();
rollback;
