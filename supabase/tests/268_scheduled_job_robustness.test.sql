-- Scheduled jobs that one bad row could stop for everyone (20261123009500_scheduled_job_robustness.sql).
-- S: a call started 1970-01-01 no longer stops close_stale_calls: it is closed with no duration, beside
--    another org's stale call; a call whose closing still fails is left with a warning and the others close.
-- E: an export claimed 5 times without its cursor moving fails on the next claim with the reason, and the
--    org can export again; an export whose cursor moves at every step is never failed; resume_exports wakes
--    the least recently touched exports first.
-- C: purge-cron-history deletes runs that ended more than 7 days ago; the invoice job commits per org.
-- I: one org whose invoice cannot be drawn does not stop the others; the next run draws it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(30);

select tests.remember('owner', tests.create_user('owner@job-robustness-268.test'));
select tests.remember('org_a', tests.create_org('job-robustness-268-a', tests.fx('owner')));
select tests.remember('org_b', tests.create_org('job-robustness-268-b', tests.fx('owner')));

-- S: silent since 2016, so these come first among the stale calls of the shared database.
insert into public.calls (id, org_id, direction, status, started_at, last_event_at)
values
  ('26800000-0000-4000-8000-00000000000a', tests.fx('org_a'), 'inbound', 'in_progress', '1970-01-01T00:00:00Z', '2016-01-01T00:00:00Z'),
  ('26800000-0000-4000-8000-00000000000b', tests.fx('org_b'), 'inbound', 'in_progress', '2015-12-31T23:50:00Z', '2016-01-01T00:00:00Z');

select tests.act_as('service_role');
select lives_ok($$select private.close_stale_calls()$$, 'close_stale_calls does not raise on a call started in 1970');
select tests.act_as('postgres');
select results_eq(
  $$select status::text, ended_reason, duration_seconds from public.calls
    where id in ('26800000-0000-4000-8000-00000000000a', '26800000-0000-4000-8000-00000000000b') order by id$$,
  $$values ('ended', 'no-final-event-timeout', null::numeric), ('ended', 'no-final-event-timeout', 600.000)$$,
  'both orgs'' stale calls are closed: the one started in 1970 with no duration, the other with its 10 minutes'
);
select is(
  (select (payload ->> 'duration_seconds') from public.events
   where org_id = tests.fx('org_a') and type = 'call.ended' and payload ->> 'call_id' = '26800000-0000-4000-8000-00000000000a'),
  null, 'its call.ended says no duration'
);

-- Ending a call directly with such a start does not raise either.
insert into public.calls (id, org_id, direction, status, started_at, last_event_at)
values ('26800000-0000-4000-8000-00000000000c', tests.fx('org_a'), 'inbound', 'in_progress', '1970-01-01T00:00:00Z', now());
select lives_ok(
  $$update public.calls set status = 'ended' where id = '26800000-0000-4000-8000-00000000000c'$$,
  'a call started in 1970 can be ended'
);
select is((select duration_seconds from public.calls where id = '26800000-0000-4000-8000-00000000000c'), null,
  'with no duration');

-- A call whose closing fails for another reason (a trigger made to refuse it) is skipped, the others closed.
create function pg_temp.refuse_268() returns trigger language plpgsql as $$
begin
  raise exception 'refused for the test' using errcode = 'check_violation';
end;
$$;
create trigger refuse_268 before update on public.calls
  for each row when (old.id = '26800000-0000-4000-8000-00000000000d') execute function pg_temp.refuse_268();
insert into public.calls (id, org_id, direction, status, started_at, last_event_at)
values
  ('26800000-0000-4000-8000-00000000000d', tests.fx('org_a'), 'inbound', 'in_progress', '2016-01-01T00:00:00Z', '2016-01-01T00:00:00Z'),
  ('26800000-0000-4000-8000-00000000000e', tests.fx('org_b'), 'inbound', 'ringing', null, '2016-01-01T00:00:00Z');
select tests.act_as('service_role');
select lives_ok($$select private.close_stale_calls()$$, 'close_stale_calls does not raise when one call cannot be closed');
select tests.act_as('postgres');
select results_eq(
  $$select status::text from public.calls
    where id in ('26800000-0000-4000-8000-00000000000d', '26800000-0000-4000-8000-00000000000e') order by id$$,
  $$values ('in_progress'), ('no_answer')$$,
  'the refused call stays open (tried again next minute); the other org''s is closed'
);
drop trigger refuse_268 on public.calls;

-- E: an export whose step never moves its cursor.
insert into public.data_exports (id, org_id, tables, cursor, storage_prefix)
values ('26800000-0000-4000-8000-0000000000e1', tests.fx('org_a'), array['bots'], '{"table": "bots", "after": null, "part": 0}',
  tests.fx('org_a')::text || '/exports/26800000-0000-4000-8000-0000000000e1/');
create function pg_temp.claim_after_lease(export_id uuid) returns uuid language plpgsql as $$
declare
  claimed uuid;
begin
  update public.data_exports set lease_until = now() - interval '1 second' where id = export_id;
  select c.id into claimed from private.claim_export_step(export_id) c;
  return claimed;
end;
$$;
select is(
  (select count(*)::int from generate_series(1, 5) g where pg_temp.claim_after_lease('26800000-0000-4000-8000-0000000000e1') is not null),
  5, 'five steps are claimed, each after the last one''s lease ran out'
);
select results_eq(
  $$select status::text, attempts_at_cursor::int, steps from public.data_exports where id = '26800000-0000-4000-8000-0000000000e1'$$,
  $$values ('running', 5, 5)$$,
  'still running after five attempts at the same cursor'
);
select is(pg_temp.claim_after_lease('26800000-0000-4000-8000-0000000000e1'), null, 'the sixth claim takes no step');
select results_eq(
  $$select status::text, error, lease_until is null, finished_at is not null from public.data_exports
    where id = '26800000-0000-4000-8000-0000000000e1'$$,
  $$values ('failed', 'the export made no progress in 5 steps in a row (at table bots); request a new export', true, true)$$,
  'it failed the export with the reason'
);
select is(
  (select count(*)::int from realtime.messages m
   where m.topic = 'org:' || tests.fx('org_a') || ':exports' and m.payload #>> '{record,id}' = '26800000-0000-4000-8000-0000000000e1'
     and m.payload #>> '{record,status}' = 'failed'),
  1, 'the failure is broadcast on the org''s exports channel'
);
select tests.act_as('owner');
select lives_ok($$select public.request_data_export(tests.fx('org_a'))$$, 'the owner can export again');
select tests.act_as('postgres');
select is(
  (select count(*)::int from public.data_exports where org_id = tests.fx('org_a') and status in ('queued', 'running')),
  1, 'with one export in progress'
);

-- An export whose every step moves the cursor is never failed, however many steps it takes.
insert into public.data_exports (id, org_id, tables, cursor, storage_prefix)
values ('26800000-0000-4000-8000-0000000000e3', tests.fx('org_b'), array['bots'], '{"table": "bots", "after": null, "part": 0}',
  tests.fx('org_b')::text || '/exports/26800000-0000-4000-8000-0000000000e3/');
select tests.act_as('service_role');
select is(
  (select count(*)::int from generate_series(1, 8) g
   where (select c.id from private.claim_export_step('26800000-0000-4000-8000-0000000000e3') c) is not null
     and (select r.id from private.record_export_progress('26800000-0000-4000-8000-0000000000e3',
            pg_catalog.jsonb_build_object('table', 'bots', 'after', 'k' || g, 'part', g), g) r) is not null),
  8, 'eight steps, each moving the cursor, are all claimed'
);
select tests.act_as('postgres');
select results_eq(
  $$select status::text, attempts_at_cursor::int from public.data_exports where id = '26800000-0000-4000-8000-0000000000e3'$$,
  $$values ('running', 0)$$,
  'it is still running, with its attempts given back at every move'
);

-- resume_exports wakes the least recently touched first, whatever their age: the org_b export, touched on
-- Jan 2 (dates far back, so these two come first in the shared database), before the older org_a one,
-- touched on Jan 3. The wake-up is recorded rather than sent (this file is rolled back).
create table pg_temp.woken (n serial, export_id uuid);
create or replace function private.request_export_step(export_id uuid) returns boolean
language sql security definer set search_path = '' as $$
  insert into pg_temp.woken (export_id) values (request_export_step.export_id) returning true;
$$;
set local session_replication_role = replica;
update public.data_exports set created_at = '2001-01-01', updated_at = '2001-01-03'
where org_id = tests.fx('org_a') and status = 'queued';
update public.data_exports set created_at = '2001-01-02', updated_at = '2001-01-02'
where id = '26800000-0000-4000-8000-0000000000e3';
set local session_replication_role = origin;
select tests.act_as('service_role');
select cmp_ok(private.resume_exports(), '>=', 2, 'resume_exports wakes the waiting exports');
select tests.act_as('postgres');
select results_eq(
  $$select e.org_id from pg_temp.woken w join public.data_exports e on e.id = w.export_id
    where e.org_id in (tests.fx('org_a'), tests.fx('org_b')) order by w.n$$,
  $$values (tests.fx('org_b')), (tests.fx('org_a'))$$,
  'least recently touched first, not oldest first'
);

-- C: the run history purge.
select results_eq(
  $$select schedule, command from cron.job where jobname = 'purge-cron-history'$$,
  $$values ('47 3 * * *', 'delete from cron.job_run_details where end_time < now() - interval ''7 days''')$$,
  'purge-cron-history runs daily'
);
insert into cron.job_run_details (jobid, command, status, return_message, start_time, end_time)
values
  (-268, 'select 268', 'succeeded', 'old', now() - interval '8 days', now() - interval '8 days'),
  (-268, 'select 268', 'succeeded', 'recent', now() - interval '6 days', now() - interval '6 days');
do $$ begin execute (select command from cron.job where jobname = 'purge-cron-history'); end $$;
select results_eq(
  $$select return_message from cron.job_run_details where jobid = -268$$,
  $$values ('recent')$$,
  'its command deletes runs that ended more than 7 days ago and keeps the rest'
);
select results_eq(
  $$select schedule, command ~ '^do \$\$' and command ~ 'private\.invoice_org_for_month\(billed_org, month_start\)' and command ~ 'commit;\s+end loop'
    from cron.job where jobname = 'generate-invoices'$$,
  $$values ('*/10 2-6 * * *', true)$$,
  'the invoice job runs every 10 minutes from 02:00 to 06:50 UTC, a DO block that commits after each org (tests/stack/scheduler.test.ts runs it)'
);
select ok(
  (select command ~ 'exit when pg_catalog\.clock_timestamp\(\) - pg_catalog\.statement_timestamp\(\) > interval ''100 seconds'';\s+if private\.invoice_org_for_month'
    from cron.job where jobname = 'generate-invoices'),
  'each run stops drawing after 100 s of its statement, inside hosted Supabase''s 2-minute statement_timeout'
);

-- I: two orgs on Pro in March 2001, one of which cannot be invoiced (a trigger made to refuse it).
delete from public.subscriptions where org_id in (tests.fx('org_a'), tests.fx('org_b'));
insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
values
  (tests.fx('org_a'), 'pro', 'active', '2001-03-01T00:00:00Z', '2001-03-01T00:00:00Z', '2001-04-01T00:00:00Z'),
  (tests.fx('org_b'), 'pro', 'active', '2001-03-01T00:00:00Z', '2001-03-01T00:00:00Z', '2001-04-01T00:00:00Z');
create function pg_temp.refuse_invoice_268() returns trigger language plpgsql as $$
begin
  raise exception 'refused for the test' using errcode = 'check_violation';
end;
$$;
-- Only org_a's lines are refused (its id is written into the trigger's when clause).
do $$ begin
  execute format('create trigger refuse_invoice_268 before insert on public.invoice_lines for each row when (new.org_id = %L) '
    'execute function pg_temp.refuse_invoice_268()', tests.fx('org_a'));
end $$;

select tests.act_as('service_role');
select is(private.generate_invoices('2001-03-01'), 1, 'the run draws the org it can and goes on past the other');
select tests.act_as('postgres');
select is((select count(*)::int from public.invoices where org_id = tests.fx('org_a') and period_start = '2001-03-01'), 0,
  'the refused org has no invoice (nothing of its drawing stays)');
select results_eq(
  $$select total_cents, (select count(*)::int from public.invoice_lines l where l.invoice_id = i.id)
    from public.invoices i where org_id = tests.fx('org_b') and period_start = '2001-03-01'$$,
  $$select price_cents::bigint, 1 from public.plans where id = 'pro'$$,
  'the other org has its invoice, with its plan line'
);
select is(
  (select count(*)::int from public.events where type = 'invoice.created' and org_id in (tests.fx('org_a'), tests.fx('org_b'))),
  1, 'one invoice.created, for the invoice drawn'
);
drop trigger refuse_invoice_268 on public.invoice_lines;
select tests.act_as('service_role');
select is(private.generate_invoices('2001-03-01'), 1, 'the next run draws the org that failed');
select tests.act_as('postgres');
select is((select count(*)::int from public.invoices where org_id in (tests.fx('org_a'), tests.fx('org_b')) and period_start = '2001-03-01'), 2,
  'both orgs have the month''s invoice');
select throws_ok(
  $$select private.generate_invoices('2001-03-02')$$,
  '22023', 'an invoice period starts on the first of a month, not 2001-03-02',
  'generate_invoices still refuses a date that is not a month''s first day'
);

-- S: the stale calls of a run are closed in org order (their audit rows, so the orgs' chain heads, come in
-- org order), whatever their silence: the later org's call has been silent longer.
select tests.remember('org_lo', least(tests.fx('org_a'), tests.fx('org_b')));
select tests.remember('org_hi', greatest(tests.fx('org_a'), tests.fx('org_b')));
insert into public.calls (id, org_id, direction, status, started_at, last_event_at)
values
  ('26800000-0000-4000-8000-0000000000f1', tests.fx('org_hi'), 'inbound', 'in_progress', '2015-06-01T00:00:00Z', '2015-06-01T00:05:00Z'),
  ('26800000-0000-4000-8000-0000000000f2', tests.fx('org_lo'), 'inbound', 'in_progress', '2015-07-01T00:00:00Z', '2015-07-01T00:05:00Z');
select tests.act_as('service_role');
select private.close_stale_calls();
select tests.act_as('postgres');
select results_eq(
  $$select a.org_id from public.audit_log a
    where a.table_name = 'calls' and a.action = 'update'
      and a.record_id in ('26800000-0000-4000-8000-0000000000f1', '26800000-0000-4000-8000-0000000000f2')
    order by a.id$$,
  $$values (tests.fx('org_lo')), (tests.fx('org_hi'))$$,
  'close_stale_calls closes in org order, not in silence order'
);

select * from finish();
rollback;
