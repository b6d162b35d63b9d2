-- Bot time zones (20261123010000_bot_time_zones.sql): a bot's own business hours are read in bots.time_zone
-- (null: the org's), so a São Paulo bot of a Berlin org, open 09:00-18:00, is open 09:00-18:00 São Paulo time
-- across Berlin's DST change (the last Sunday of March, 01:00Z; São Paulo keeps UTC-3); its slot grid, booking
-- checks and outbound calling hours (the callee's default zone included) follow. The org's default hours stay in
-- the org's zone; an unknown zone is refused (22023); admins write the column, and the audit log records it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(27);

insert into tests.fixtures (name, id) values
  ('owner_a', tests.create_user('owner-a@272-bot-time-zones.test')),
  ('member_a', tests.create_user('member-a@272-bot-time-zones.test'));
select tests.remember('org', tests.create_org('bot-time-zones-272', tests.fx('owner_a')));
select tests.remember('org_free', tests.create_org('bot-time-zones-272-free', tests.fx('owner_a')));
select tests.add_member(tests.fx('org'), tests.fx('member_a'), 'member');
update public.organizations set time_zone = 'Europe/Berlin' where id in (tests.fx('org'), tests.fx('org_free'));

insert into public.bots (org_id, name, slug, channels) values
  (tests.fx('org'), 'São Paulo branch', 'sao-paulo-272', '{api,voice,web}'),
  (tests.fx('org'), 'Berlin desk', 'berlin-272', '{api,voice,web}'),
  (tests.fx('org'), 'São Paulo, org hours', 'sao-paulo-org-hours-272', '{api,voice,web}'),
  (tests.fx('org_free'), 'São Paulo, no hours', 'sao-paulo-free-272', '{api,voice,web}');
select tests.remember('sp', (select id from public.bots where slug = 'sao-paulo-272'));
select tests.remember('plain', (select id from public.bots where slug = 'berlin-272'));
select tests.remember('sp_org_hours', (select id from public.bots where slug = 'sao-paulo-org-hours-272'));
select tests.remember('sp_free', (select id from public.bots where slug = 'sao-paulo-free-272'));
update public.bots set time_zone = 'America/Sao_Paulo' where id in (tests.fx('sp_org_hours'), tests.fx('sp_free'));

-- 09:00-18:00 every day for the São Paulo bot and the Berlin one; the org's default 10:00-12:00.
insert into public.business_hours (org_id, bot_id, weekday, opens, closes)
select tests.fx('org'), b.id, d, '09:00', '18:00'
from (values (tests.fx('sp')), (tests.fx('plain'))) b(id) cross join generate_series(1, 7) d;
insert into public.business_hours (org_id, weekday, opens, closes)
select tests.fx('org'), d, '10:00', '12:00' from generate_series(1, 7) d;

-- Wall times in a zone, as instants; daily wall-clock ranges over a run of local days, as a multirange.
create function pg_temp.at(local_day date, wall time, zone text) returns timestamptz language sql immutable as $$
  select (local_day + wall) at time zone zone;
$$;
create function pg_temp.daily(first_day date, last_day date, opens time, closes time, zone text)
returns tstzmultirange language sql immutable as $$
  select range_agg(tstzrange((g::date + opens) at time zone zone, (g::date + closes) at time zone zone, '[)'))
  from generate_series(first_day, last_day, interval '1 day') g;
$$;

-- The next last Sunday of March at least a week ahead (bookings must be in the future), and the Friday to
-- Tuesday around it (UTC days), Berlin's clocks going forward on the Sunday.
create temp table w as
select s.sunday,
  tstzrange((s.sunday - 2)::timestamp at time zone 'UTC', (s.sunday + 3)::timestamp at time zone 'UTC', '[)') as during
from (
  select min(l.sunday) as sunday
  from generate_series(0, 1) k
  cross join lateral (select make_date(extract(year from now() at time zone 'UTC')::integer + k, 3, 31) as d) e
  cross join lateral (select e.d - extract(dow from e.d)::integer as sunday) l
  where l.sunday >= (now() at time zone 'UTC')::date + 7
) s;
grant select on w to public;
-- A day counted from that Sunday (-2: the Friday, 1: the Monday).
create function pg_temp.day(from_sunday integer) returns date language sql stable as $$
  select sunday + from_sunday from w;
$$;
grant execute on function pg_temp.at(date, time, text), pg_temp.daily(date, date, time, time, text),
  pg_temp.day(integer) to public;

-- ---------------------------------------------------------------------------
-- The column: admins write it, it is audited, unknown zones are refused
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
select lives_ok(
  $$update public.bots set time_zone = 'America/Sao_Paulo' where id = tests.fx('sp')$$,
  'an admin sets the bot''s time zone'
);
select tests.act_as('member_a');
update public.bots set time_zone = 'Asia/Tokyo' where id = tests.fx('sp');
select tests.act_as('postgres');
select is(
  (select time_zone from public.bots where id = tests.fx('sp')), 'America/Sao_Paulo',
  'a member (no bots.manage) changes nothing'
);
select ok(
  exists (select 1 from public.audit_log a
          where a.org_id = tests.fx('org') and a.table_name = 'bots' and a.action = 'update'
            and a.record_id = tests.fx('sp')::text and a.new_values ->> 'time_zone' = 'America/Sao_Paulo'),
  'the change is in the audit log'
);
select tests.act_as('owner_a');
select throws_ok(
  $$update public.bots set time_zone = 'Mars/Olympus' where id = tests.fx('plain')$$,
  '22023', null, 'an unknown zone is refused'
);
select throws_ok(
  $$insert into public.bots (org_id, name, slug, time_zone) values (tests.fx('org'), 'Nowhere', 'nowhere-272', 'Europe/Atlantis')$$,
  '22023', null, 'an unknown zone is refused on insert too'
);
select is(
  (select time_zone from public.bots where id = tests.fx('plain')), null,
  'the refused change left the zone null'
);

-- ---------------------------------------------------------------------------
-- Open ranges and the slot grid
-- ---------------------------------------------------------------------------

select is(
  private.open_ranges(tests.fx('org'), tests.fx('sp'), (select during from w)),
  pg_temp.daily(pg_temp.day(-2), pg_temp.day(2), '09:00', '18:00', 'America/Sao_Paulo'),
  'the São Paulo bot is open 09:00-18:00 São Paulo time (12:00-21:00Z) every day, across Berlin''s DST change'
);
select is(
  private.open_ranges(tests.fx('org'), tests.fx('plain'), (select during from w)),
  pg_temp.daily(pg_temp.day(-2), pg_temp.day(2), '09:00', '18:00', 'Europe/Berlin'),
  'a bot without a zone keeps the org''s: 09:00-18:00 Berlin time (08:00Z, then 07:00Z after the change)'
);
select is(
  private.open_ranges(tests.fx('org'), tests.fx('sp_org_hours'), (select during from w)),
  pg_temp.daily(pg_temp.day(-2), pg_temp.day(2), '10:00', '12:00', 'Europe/Berlin'),
  'a bot with a zone but no hours of its own keeps the org''s hours, in the org''s zone'
);
select is(
  private.slot_origins(tests.fx('org'), tests.fx('sp'), (select during from w)),
  array(select pg_temp.at(g::date, '09:00', 'America/Sao_Paulo')
        from generate_series(pg_temp.day(-6), pg_temp.day(2), interval '1 day') g order by 1),
  'the slot grid starts at 09:00 São Paulo time, from three local days before the window'
);
select is(
  private.slot_origins(tests.fx('org_free'), tests.fx('sp_free'),
    tstzrange(pg_temp.at(pg_temp.day(1), '00:00', 'UTC'), pg_temp.at(pg_temp.day(2), '00:00', 'UTC'))),
  array(select pg_temp.at(g::date, '00:00', 'America/Sao_Paulo')
        from generate_series(pg_temp.day(-3), pg_temp.day(1), interval '1 day') g order by 1),
  'no hours at all: the grid starts at each local midnight of the bot''s zone'
);

-- ---------------------------------------------------------------------------
-- Bookings and calling hours
-- ---------------------------------------------------------------------------

select tests.act_as('member_a');
select lives_ok(
  $$select public.create_appointment(tests.fx('org'), pg_temp.at(pg_temp.day(1), '17:00', 'America/Sao_Paulo'),
    pg_temp.at(pg_temp.day(1), '17:30', 'America/Sao_Paulo'), 'Ana 272', 'ana@272-bot-time-zones.test', bot_id => tests.fx('sp'))$$,
  'a booking at 17:00 São Paulo time (22:00 Berlin) is inside the bot''s hours'
);
select is(
  (select starts_at from public.appointments where bot_id = tests.fx('sp') and attendee_name = 'Ana 272'),
  pg_temp.at(pg_temp.day(1), '17:00', 'America/Sao_Paulo'),
  'and it is booked'
);
select throws_ok(
  $$select public.create_appointment(tests.fx('org'), pg_temp.at(pg_temp.day(1), '08:30', 'America/Sao_Paulo'),
    pg_temp.at(pg_temp.day(1), '09:00', 'America/Sao_Paulo'), 'Bruno 272', 'bruno@272-bot-time-zones.test', bot_id => tests.fx('sp'))$$,
  '22023', 'that time is outside business hours', 'a booking at 08:30 São Paulo time (13:30 Berlin) is refused'
);
select is(
  private.next_call_slot(tests.fx('org'), tests.fx('sp'), null,
    pg_temp.at(pg_temp.day(1), '17:30', 'America/Sao_Paulo')),
  pg_temp.at(pg_temp.day(1), '17:30', 'America/Sao_Paulo'),
  'calling hours: 17:30 São Paulo time is open, for a callee taken to be in the bot''s zone (22:30 Berlin would be too late)'
);
select is(
  private.next_call_slot(tests.fx('org'), tests.fx('sp'), 'America/Sao_Paulo',
    pg_temp.at(pg_temp.day(1), '18:00', 'America/Sao_Paulo')),
  pg_temp.at(pg_temp.day(2), '09:00', 'America/Sao_Paulo'),
  'after 18:00 São Paulo time the next slot is 09:00 São Paulo time the next day'
);
select is(
  private.next_call_slot(tests.fx('org'), tests.fx('plain'), null,
    pg_temp.at(pg_temp.day(1), '18:30', 'Europe/Berlin')),
  pg_temp.at(pg_temp.day(2), '09:00', 'Europe/Berlin'),
  'a bot without a zone: after 18:00 Berlin time the next slot is 09:00 Berlin time'
);

-- New calls and campaigns store the callee's zone: given none, the bot's.
select tests.act_as('postgres');
insert into public.call_providers (org_id, provider, secret_created_at) values (tests.fx('org'), 'vapi', now());
-- No dispatcher wake-ups from the calls queued below.
delete from vault.secrets where name in ('project_url', 'service_role_key');
select tests.act_as('service_role');
update public.bots set voice_assistant_id = 'asst_' || slug where id in (tests.fx('sp'), tests.fx('plain'));
select public.set_call_provider_outbound(tests.fx('org'), 'vapi', 'pn_272');
select tests.act_as('owner_a');
select is(
  (select callee_time_zone from public.create_outbound_call(tests.fx('org'), tests.fx('sp'), '+14155550272')),
  'America/Sao_Paulo',
  'a call queued without a callee zone takes the bot''s'
);
select is(
  (select callee_time_zone from public.create_outbound_call(tests.fx('org'), tests.fx('plain'), '+14155550273')),
  'Europe/Berlin',
  'and the org''s for a bot without one'
);
create temp table campaign as
select campaign_id from public.create_call_campaign(tests.fx('org'), tests.fx('sp'), 'Branch 272', array['+14155550274', '+14155550275']);
select results_eq(
  $$select distinct c.callee_time_zone from public.calls c where c.campaign_id = (select campaign_id from campaign)$$,
  $$values ('America/Sao_Paulo'::text)$$,
  'a campaign queued without a callee zone takes the bot''s'
);

-- A call or campaign is scheduled at most 366 days ahead: one further out would hold a call minute of the
-- plan's quota until canceled.
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('sp'), '+14155550276', '9999-12-31 23:59:59Z')$$,
  '22023', 'scheduled_at may be at most 366 days ahead',
  'a call scheduled in year 9999 is refused'
);
select throws_ok(
  $$select public.create_outbound_call(tests.fx('org'), tests.fx('sp'), '+14155550276', now() + interval '367 days')$$,
  '22023', 'scheduled_at may be at most 366 days ahead',
  'and one 367 days ahead'
);
select throws_ok(
  $$select public.create_call_campaign(tests.fx('org'), tests.fx('sp'), 'Far 272', array['+14155550276'], now() + interval '367 days')$$,
  '22023', 'scheduled_at may be at most 366 days ahead',
  'a campaign 367 days ahead is refused'
);
select ok(
  (select scheduled_at >= now() + interval '365 days'
   from public.create_outbound_call(tests.fx('org'), tests.fx('sp'), '+14155550276', now() + interval '365 days')),
  'a call 365 days ahead is queued'
);
select is(
  (select count(*)::int from public.calls where org_id = tests.fx('org') and to_number = '+14155550276'), 1,
  'the refused ones queued nothing'
);

-- ---------------------------------------------------------------------------
-- Back to null: the org's zone again
-- ---------------------------------------------------------------------------

select tests.act_as('owner_a');
update public.bots set time_zone = null where id = tests.fx('sp');
select tests.act_as('postgres');
select is(
  private.bot_time_zone(tests.fx('org'), tests.fx('sp')), 'Europe/Berlin',
  'a zone set back to null is the org''s again'
);
select is(
  private.open_ranges(tests.fx('org'), tests.fx('sp'), (select during from w)),
  pg_temp.daily(pg_temp.day(-2), pg_temp.day(2), '09:00', '18:00', 'Europe/Berlin'),
  'and the bot''s hours are read in it'
);

select * from finish();
rollback;
