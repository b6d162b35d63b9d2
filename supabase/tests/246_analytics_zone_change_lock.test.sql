-- Markers and the zone change exclude each other (20261123007700): every
-- marking write takes a shared advisory lock (7700, hashtext(org)) before it
-- reads the org's zone, and a zone change takes it exclusive before it
-- deletes and re-marks the org's days, so a write in flight during a zone
-- change has its day marked in the new zone.
--
-- The race needs two sessions, and the local database (PGlite) runs one at a
-- time: these tests check the order the functions lock in (their text), that
-- they run as volatile plpgsql (a fresh snapshot per statement under READ
-- COMMITTED, which is what lets the statements after a lock see what the
-- other side committed), the locks a write and a zone change hold afterwards
-- (pg_locks), and that the marks and the summary are still right.
--
-- Org z: UTC, then Europe/Berlin (UTC+2 in June); org y stays in UTC.
begin;
create extension if not exists pgtap with schema extensions;

select plan(22);

insert into tests.fixtures (name, id) values ('owner_zl', tests.create_user('owner@zone-change-lock.test'));
select tests.remember('org_zl', tests.create_org('zone-change-lock-z', tests.fx('owner_zl')));
select tests.remember('org_yl', tests.create_org('zone-change-lock-y', tests.fx('owner_zl')));
update public.organizations set time_zone = 'UTC' where id in (tests.fx('org_zl'), tests.fx('org_yl'));
insert into public.bots (org_id, name, slug) values (tests.fx('org_zl'), 'Bot', 'bot'), (tests.fx('org_yl'), 'Bot', 'bot');
select tests.remember('bot_zl', id) from public.bots where org_id = tests.fx('org_zl');
select tests.remember('bot_yl', id) from public.bots where org_id = tests.fx('org_yl');

-- The advisory locks this transaction holds on an org, by class: 'ShareLock'
-- (shared) or 'ExclusiveLock', in that order.
create function pg_temp.held(class integer, org text)
returns text[]
language sql
as $$
  select coalesce(array_agg(l.mode order by l.mode desc), '{}')
  from pg_catalog.pg_locks l
  where l.locktype = 'advisory' and l.pid = pg_catalog.pg_backend_pid() and l.granted
    and l.classid = class::oid and l.objid = pg_catalog.hashtext(tests.fx(org)::text)::oid and l.objsubid = 2;
$$;

create function pg_temp.marks(org text)
returns date[]
language sql
as $$
  select coalesce(array_agg(distinct s.day order by s.day), '{}') from private.analytics_stale_days s where s.org_id = tests.fx(org);
$$;

-- ---------------------------------------------------------------------------
-- 1. The functions' text and kind: the lock first, in its own statement.
-- ---------------------------------------------------------------------------

select is(
  (select l.lanname || ' ' || p.provolatile::text || ' ' || p.prosecdef || ' ' || array_to_string(p.proconfig, ',')
   from pg_proc p join pg_language l on l.oid = p.prolang
   where p.oid = 'private.analytics_mark_days(uuid[], timestamptz[])'::regprocedure),
  'plpgsql v false search_path=""',
  'analytics_mark_days is volatile plpgsql (a new snapshot per statement), security invoker, with an empty search_path');
select ok(
  p.prosrc ~ 'order by k\.org_id\s+loop\s+perform pg_catalog\.pg_advisory_xact_lock_shared\(7700, pg_catalog\.hashtext\(org::text\)\);\s+end loop;.*insert into private\.analytics_stale_days',
  'analytics_mark_days takes the shared 7700 lock of each org, in uuid order, before the statement that inserts the marks')
from pg_proc p where p.oid = 'private.analytics_mark_days(uuid[], timestamptz[])'::regprocedure;
select ok(
  p.prosrc ~ 'insert into private\.analytics_stale_days [^;]*join public\.organizations o on o\.id = k\.org_id',
  'the insert after the lock reads the org''s zone itself')
from pg_proc p where p.oid = 'private.analytics_mark_days(uuid[], timestamptz[])'::regprocedure;

select is(
  (select l.lanname || ' ' || p.provolatile::text || ' ' || p.prosecdef
   from pg_proc p join pg_language l on l.oid = p.prolang
   where p.oid = 'private.analytics_org_zone_changed()'::regprocedure),
  'plpgsql v true',
  'analytics_org_zone_changed is volatile plpgsql (its statements after the lock see what committed meanwhile)');
select ok(
  p.prosrc ~ '^\s*begin\s+perform pg_catalog\.pg_advisory_xact_lock\(7700, pg_catalog\.hashtext\(new\.id::text\)\);\s+perform pg_catalog\.pg_advisory_xact_lock\(1700, pg_catalog\.hashtext\(new\.id::text\)\);\s+delete from private\.analytics_days',
  'the zone change takes the exclusive 7700 lock first, then the refresh''s 1700, then deletes and re-marks')
from pg_proc p where p.oid = 'private.analytics_org_zone_changed()'::regprocedure;

-- Writers never wait on refreshes: no marking path takes 1700, no refresh 7700.
select is_empty(
  $$select p.oid::regprocedure from pg_proc p
    where p.oid in ('private.analytics_mark_days(uuid[], timestamptz[])'::regprocedure,
      'private.analytics_messages_changed()'::regprocedure, 'private.analytics_conversations_changed()'::regprocedure,
      'private.analytics_usage_changed()'::regprocedure, 'private.analytics_calls_changed()'::regprocedure,
      'private.analytics_appointments_changed()'::regprocedure)
      and p.prosrc ~ 'pg_(try_)?advisory_(xact_)?lock\('$$,
  'the marking triggers and analytics_mark_days take no exclusive advisory lock (none of the refresh''s 1700)');
select is_empty(
  $$select p.oid::regprocedure from pg_proc p
    where p.oid in ('private.refresh_analytics_days(uuid, date, date, integer, boolean)'::regprocedure,
      'private.refresh_stale_analytics_days(integer)'::regprocedure, 'private.fill_analytics_weeks(uuid, date, date)'::regprocedure)
      and p.prosrc ~ '7700'$$,
  'no refresh takes the marker lock');

select ok(
  not has_function_privilege('authenticated', 'private.analytics_mark_days(uuid[], timestamptz[])', 'execute')
    and not has_function_privilege('anon', 'private.analytics_mark_days(uuid[], timestamptz[])', 'execute')
    and not has_function_privilege('service_role', 'private.analytics_mark_days(uuid[], timestamptz[])', 'execute'),
  'analytics_mark_days is still not executable by the API roles');

-- ---------------------------------------------------------------------------
-- 2. What a write and a zone change hold, and the days they mark.
-- ---------------------------------------------------------------------------

-- Since 20261123009600 every audited write takes its org's marker lock shared
-- before the audit chain head, so org z's creation and bot already hold it.
select is(pg_temp.held(7700, 'org_zl'), '{ShareLock}', 'org z''s audited writes so far (its creation, its bot) hold its marker lock shared (20261123009600)');

-- 23:20 and 23:30 UTC on 06-10: 06-10 in UTC, 06-11 in Berlin.
insert into public.conversations (org_id, bot_id, channel, external_user_id, created_at)
values (tests.fx('org_zl'), tests.fx('bot_zl'), 'api', 'zl-user', '2026-06-10 23:20Z');
select tests.remember('conv_zl', id) from public.conversations where org_id = tests.fx('org_zl');
insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, created_at)
values (tests.fx('org_zl'), tests.fx('conv_zl'), 'user', 'late', 3, 0, '2026-06-10 23:30Z');

select is(pg_temp.held(7700, 'org_zl'), '{ShareLock}', 'a marking write holds org z''s marker lock shared, to its commit');
select is(pg_temp.held(7700, 'org_yl'), '{ShareLock}', 'org y holds it only from its own audited writes, shared');
select is(pg_temp.held(1700, 'org_zl'), '{}', 'and not the refresh''s lock');
select is(pg_temp.marks('org_zl'), '{2026-06-10}', 'in UTC the write marks 06-10');

update public.organizations set time_zone = 'Europe/Berlin' where id = tests.fx('org_zl');

select is(pg_temp.held(7700, 'org_zl'), '{ShareLock,ExclusiveLock}', 'the zone change took the marker lock exclusive');
select is(pg_temp.held(1700, 'org_zl'), '{ExclusiveLock}', 'and the refresh''s lock');
select is(pg_temp.marks('org_zl'), '{2026-06-11}', 'it re-marked the write''s day in Berlin (06-11) and dropped the UTC mark');

-- A write after the change marks the new zone's day (22:30 UTC on 06-12 is 06-13 in Berlin).
insert into public.messages (org_id, conversation_id, role, content, tokens_in, tokens_out, created_at)
values (tests.fx('org_zl'), tests.fx('conv_zl'), 'user', 'later', 4, 0, '2026-06-12 22:30Z');
select is(pg_temp.marks('org_zl'), '{2026-06-11,2026-06-13}', 'a later write marks its Berlin day');

-- Several orgs in one call: each org's zone, each org's lock.
select private.analytics_mark_days(
  array[tests.fx('org_zl'), tests.fx('org_yl'), tests.fx('org_yl')],
  array['2026-07-01 23:00Z', '2026-07-01 23:00Z', null]::timestamptz[]);
select is(pg_temp.marks('org_yl'), '{2026-07-01}', 'a call over two orgs marks org y''s day in UTC');
select is(pg_temp.marks('org_zl'), '{2026-06-11,2026-06-13,2026-07-02}', 'and org z''s in Berlin');
select is(pg_temp.held(7700, 'org_yl'), '{ShareLock}', 'holding each org''s marker lock shared');

-- ---------------------------------------------------------------------------
-- 3. The summary still counts both writes on their Berlin days.
-- ---------------------------------------------------------------------------

select tests.act_as('service_role');
select is(public.analytics_dashboard_summary(tests.fx('org_zl'), '2026-06-09', '2026-06-14'),
  private.dashboard_summary_raw(tests.fx('org_zl'), '2026-06-09', '2026-06-14'),
  'the summary in Berlin equals its raw twin');
select tests.act_as('postgres');
select is(
  (select array_agg(d.day || ':' || d.user_messages order by d.day) from private.analytics_days d where d.org_id = tests.fx('org_zl')),
  array['2026-06-11:1', '2026-06-13:1'],
  'the day rows hold each message on its Berlin day');

select * from finish();
rollback;
