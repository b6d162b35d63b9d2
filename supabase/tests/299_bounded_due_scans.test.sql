-- Due work handed out without ranking every due row (20261123012400_bounded_due_scans.sql): claim_due_calls,
-- calls_needing_analysis and calls_needing_recording still serve the orgs in turn, oldest first within an org,
-- but the after-call hand-outs read a bounded number of calls per org: with 3,000 due calls of one org, a
-- hand-out of 2 reads fewer than 200 rows of public.calls (its table and indexes, counted by this
-- transaction's statistics: pg_stat_get_xact_tuples_returned / _fetched).
--
-- One transaction (rolled back), so now() is one instant. Every other call's due work is set aside first.
begin;
create extension if not exists pgtap with schema extensions;

select plan(12);

-- A fixed-offset zone where the local time is <hour>:xx now.
create function pg_temp.zone_at(hour integer) returns text language sql stable as $$
  select case when n = 0 then 'Etc/GMT' when n > 0 then 'Etc/GMT+' || n else 'Etc/GMT-' || abs(n) end
  from (select ((extract(hour from now() at time zone 'UTC')::integer - hour + 36) % 24) - 12 as n) x
$$;

-- An org that may dial now: a voice bot, a phone number, the business plan.
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

-- <count> callable calls of an org named <org>-<n>, due oldest first from `ago` before now, a second apart.
-- Written without their triggers (seconds on PGlite for thousands).
create function pg_temp.queue(org text, count integer, ago interval)
returns void
language plpgsql
as $$
begin
  set local session_replication_role = replica;
  with made as (
    insert into public.calls (org_id, bot_id, direction, to_number, status, next_dial_at, callee_time_zone)
    select tests.fx(org), tests.fx(org || '_bot'), 'outbound', '+1415' || lpad(n::text, 7, '0'), 'queued',
      now() - ago + pg_catalog.make_interval(secs => n), pg_temp.zone_at(12)
    from generate_series(1, count) n
    returning id, to_number
  )
  insert into tests.fixtures (name, id)
  select org || '-' || ltrim(right(m.to_number, 7), '0'), m.id from made m;
  set local session_replication_role = origin;
end;
$$;

-- <count> ended calls of an org awaiting an analysis (kind 'analysis') or a recording copy ('recording'),
-- named <org>-<kind>-<n>, ended oldest first from `ago` before now, a second apart.
create function pg_temp.ended(org text, kind text, count integer, ago interval)
returns void
language plpgsql
as $$
begin
  set local session_replication_role = replica;
  with made as (
    insert into public.calls (org_id, direction, status, started_at, ended_at, from_number, has_transcript, recording_url)
    select tests.fx(org), 'inbound', 'ended', now() - ago - interval '1 minute', now() - ago + pg_catalog.make_interval(secs => n),
      '+1628' || lpad(n::text, 7, '0'), kind = 'analysis',
      case when kind = 'recording' then 'https://recordings.example.com/299/' || n || '.wav' end
    from generate_series(1, count) n
    returning id, from_number
  )
  insert into tests.fixtures (name, id)
  select org || '-' || kind || '-' || ltrim(right(m.from_number, 7), '0'), m.id from made m;
  set local session_replication_role = origin;
end;
$$;

-- Rows of public.calls this transaction has read so far, from the table and its indexes.
create function pg_temp.calls_read()
returns bigint
language sql
volatile
as $$
  select sum(pg_stat_get_xact_tuples_returned(r.oid) + pg_stat_get_xact_tuples_fetched(r.oid))::bigint
  from pg_class r
  where r.oid = 'public.calls'::regclass
     or r.oid in (select i.indexrelid from pg_index i where i.indrelid = 'public.calls'::regclass)
$$;

create temp table reads (label text primary key, rows_read bigint, body text);

-- A hand-out as the dispatcher (service role): the fixture names it gave, sorted, and the rows it read.
create function pg_temp.hand_out(label text, what text, max_calls integer)
returns text
language plpgsql
as $$
declare
  before bigint := pg_temp.calls_read();
  taken text;
begin
  perform tests.act_as('service_role');
  execute format('select string_agg(coalesce(f.name, ''?''), '','' order by f.name) from %s(%s) h left join tests.fixtures f on f.id = h.call_id',
    what, max_calls) into taken;
  perform tests.act_as('postgres');
  insert into reads values (label, pg_temp.calls_read() - before, coalesce(taken, ''));
  return coalesce(taken, '');
end;
$$;
create function pg_temp.answer(label text) returns text language sql stable as $$ select r.body from reads r where r.label = $1 $$;
create function pg_temp.rows_read(label text) returns bigint language sql stable as $$ select r.rows_read from reads r where r.label = $1 $$;

select tests.remember('owner', tests.create_user('owner@bounded-due-scans-299.test'));
select pg_temp.dialling_org('bounded299a');
select pg_temp.dialling_org('bounded299b');
select pg_temp.dialling_org('bounded299c');
delete from vault.secrets where name in ('project_url', 'service_role_key');

-- Only this file's work is due.
update public.calls set next_dial_at = now() + interval '1 year', dial_lease_until = null, dial_started_at = null
where status = 'queued';
update public.calls set analysis_requested_at = now()
where status = 'ended' and (summary is null or sentiment = 'unknown') and ended_at > now() - interval '7 days';
insert into private.call_recording_requests (call_id, requested_at)
select c.id, now() from public.calls c
where c.recording_url is not null and c.recording_path is null and c.ended_at > now() - interval '7 days'
on conflict (call_id) do update set requested_at = excluded.requested_at;

-- A: 3,000 calls due from an hour ago; C: 2 due from 20 minutes ago; B: one due a minute ago.
select pg_temp.queue('bounded299a', 3000, interval '1 hour');
select pg_temp.queue('bounded299c', 2, interval '20 minutes');
select pg_temp.queue('bounded299b', 1, interval '1 minute');
-- A's 3,000 analyses and recordings ended before B's one of each.
select pg_temp.ended('bounded299a', 'analysis', 3000, interval '3 days');
select pg_temp.ended('bounded299b', 'analysis', 1, interval '1 day');
select pg_temp.ended('bounded299a', 'recording', 3000, interval '3 days');
select pg_temp.ended('bounded299b', 'recording', 1, interval '1 day');
-- C's 2,000 recording copies given up long ago (their links expired): never due again, kept for good.
select pg_temp.ended('bounded299c', 'recording', 2000, interval '30 days');
-- Statistics that know the backlog, as a live database's would.
analyze public.calls;

-- ---------------------------------------------------------------------------
-- 1. Dialling: the orgs in turn, as before
-- ---------------------------------------------------------------------------

select pg_temp.hand_out('dial', 'private.claim_due_calls', 5);
select is(pg_temp.answer('dial'), 'bounded299a-1,bounded299a-2,bounded299b-1,bounded299c-1,bounded299c-2',
  'claim_due_calls(5): the first turn of A, C and B, then the second turn of A and C (older first within a turn)');
select pg_temp.hand_out('dial_next', 'private.claim_due_calls', 3);
select is(pg_temp.answer('dial_next'), 'bounded299a-3,bounded299a-4,bounded299a-5',
  '... the next claim: A''s next three, oldest first, the only org left with calls due');
select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('bounded299a') and status = 'queued'
     and next_dial_at <= now() and dial_lease_until is null and dial_started_at is null),
  2995, '... A''s other 2,995 calls are still due, untouched');

-- ---------------------------------------------------------------------------
-- 2. After-call work: the orgs in turn, reading a bounded number of rows
-- ---------------------------------------------------------------------------

select pg_temp.hand_out('analysis', 'private.calls_needing_analysis', 2);
select is(pg_temp.answer('analysis'), 'bounded299a-analysis-1,bounded299b-analysis-1',
  'calls_needing_analysis(2): A''s oldest and B''s one (the orgs in turn)');
select cmp_ok(pg_temp.rows_read('analysis'), '<', 200::bigint,
  '... reading fewer than 200 rows of public.calls beside A''s 3,000 due analyses and C''s 2,000 given-up copies');
select pg_temp.hand_out('analysis_next', 'private.calls_needing_analysis', 1);
select is(pg_temp.answer('analysis_next'), 'bounded299a-analysis-2', '... the next hand-out of one: A''s next oldest');

select pg_temp.hand_out('recording', 'private.calls_needing_recording', 2);
select is(pg_temp.answer('recording'), 'bounded299a-recording-1,bounded299b-recording-1',
  'calls_needing_recording(2): A''s oldest and B''s one (the orgs in turn)');
select cmp_ok(pg_temp.rows_read('recording'), '<', 200::bigint,
  '... reading fewer than 200 rows of public.calls beside A''s 3,000 due recording copies and C''s 2,000 given up');
select pg_temp.hand_out('recording_next', 'private.calls_needing_recording', 1);
select is(pg_temp.answer('recording_next'), 'bounded299a-recording-2', '... the next hand-out of one: A''s next oldest');

-- The counter sees a full read (so the bounds above are not vacuous): every due analysis of A, ranked.
create temp table before_full as select pg_temp.calls_read() as n;
select count(*) from (
  select row_number() over (partition by c.org_id order by c.ended_at, c.id)
  from public.calls c
  where c.status = 'ended' and (c.summary is null or c.sentiment = 'unknown') and c.has_transcript and c.analysis_attempts < 5
    and c.ended_at > now() - interval '7 days'
) r;
select cmp_ok(pg_temp.calls_read() - (select n from before_full), '>=', 2998::bigint,
  'ranking every due analysis, as the hand-out did before, reads them all (the counter sees reads)');

-- Both hand-outs leave the rest due and record the orgs' turns as before.
select is(
  (select count(*)::integer from public.calls where org_id = tests.fx('bounded299a') and has_transcript
     and analysis_requested_at is null and analysis_attempts = 0),
  2998, 'A''s other 2,998 analyses are still due, untouched');
select is(
  (select count(*)::integer from private.after_call_turns where org_id in (tests.fx('bounded299a'), tests.fx('bounded299b'))),
  4, '... and each org''s turn is recorded for both kinds');

select * from finish();
rollback;
