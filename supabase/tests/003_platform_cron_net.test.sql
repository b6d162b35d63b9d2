-- Platform contract: pg_cron's and pg_net's SQL API as the project's
-- migrations use them (named jobs upserted by name, schedule validation,
-- unscheduling; queued HTTP requests). Nothing is run or sent: the
-- transaction is rolled back.
-- Holds on a Supabase project with pg_cron and pg_net enabled and on the local stack.
begin;
create extension if not exists pgtap with schema extensions;

select plan(19);

-- pg_cron ---------------------------------------------------------------------

create temporary table platform_test_jobs (label text primary key, id bigint);

insert into platform_test_jobs
select 'first', cron.schedule('platform-test-job', '*/5 * * * *', 'select 1');

select ok((select id from platform_test_jobs where label = 'first') > 0, 'cron.schedule returns a job id');
select is(
  (select schedule || ' | ' || command || ' | ' || active::text from cron.job where jobname = 'platform-test-job'),
  '*/5 * * * * | select 1 | true',
  'the job is stored with its schedule and command, active'
);
select is(
  (select username from cron.job where jobname = 'platform-test-job'),
  current_user::text,
  'the job belongs to the role that scheduled it'
);

insert into platform_test_jobs
select 'again', cron.schedule('platform-test-job', '0 3 * * *', 'select 2');

select is(
  (select id from platform_test_jobs where label = 'again'),
  (select id from platform_test_jobs where label = 'first'),
  'scheduling the same name again returns the same job id'
);
select is(
  (select count(*)::integer from cron.job where jobname = 'platform-test-job'),
  1,
  'scheduling the same name again does not add a job'
);
select is(
  (select schedule || ' | ' || command from cron.job where jobname = 'platform-test-job'),
  '0 3 * * * | select 2',
  'scheduling the same name again updates schedule and command'
);

select lives_ok(
  $$select cron.schedule('platform-test-seconds', '30 seconds', 'select 1')$$,
  'an interval in seconds is a valid schedule'
);
select lives_ok(
  $$select cron.schedule('platform-test-macro', '@daily', 'select 1')$$,
  'an @ macro is a valid schedule'
);
select lives_ok(
  $$select cron.schedule('platform-test-fields', '0,30 8-18/2 * jan-jun mon-fri', 'select 1')$$,
  'lists, ranges, steps and names are valid'
);
select throws_ok(
  $$select cron.schedule('platform-test-bad', 'every day', 'select 1')$$,
  '22023',
  'invalid schedule: every day',
  'an invalid schedule is refused'
);
select throws_ok(
  $$select cron.schedule('platform-test-bad', '61 * * * *', 'select 1')$$,
  '22023',
  'invalid schedule: 61 * * * *',
  'an out-of-range minute is refused'
);
select throws_ok(
  $$select cron.schedule('platform-test-bad', '90 seconds', 'select 1')$$,
  '22023',
  'invalid schedule: 90 seconds',
  'an interval of 60 seconds or more is refused'
);

select is(cron.unschedule('platform-test-job'), true, 'cron.unschedule(name) returns true');
select is(
  (select count(*)::integer from cron.job where jobname = 'platform-test-job'),
  0,
  'the unscheduled job is gone'
);
select is(
  cron.unschedule((select jobid from cron.job where jobname = 'platform-test-macro')),
  true,
  'cron.unschedule(id) returns true'
);

-- pg_net ----------------------------------------------------------------------

create temporary table platform_test_requests (label text primary key, id bigint);

insert into platform_test_requests
select 'post', net.http_post(
  url := 'https://example.com/hooks/platform-test',
  body := '{"event": "ping", "n": 1}'::jsonb,
  headers := '{"Authorization": "Bearer platform-test"}'::jsonb
);

select ok((select id from platform_test_requests where label = 'post') is not null, 'net.http_post returns a request id');
select is(
  (select method || ' ' || url from net.http_request_queue
   where id = (select id from platform_test_requests where label = 'post')),
  'POST https://example.com/hooks/platform-test',
  'the request is queued as a POST to the URL'
);
select is(
  (select pg_catalog.convert_from(body, 'UTF8')::jsonb from net.http_request_queue
   where id = (select id from platform_test_requests where label = 'post')),
  '{"event": "ping", "n": 1}'::jsonb,
  'the queued body is the JSON body'
);
select is(
  (select headers from net.http_request_queue
   where id = (select id from platform_test_requests where label = 'post')),
  '{"Authorization": "Bearer platform-test", "Content-Type": "application/json"}'::jsonb,
  'the queued headers get Content-Type application/json'
);

select * from finish();
rollback;
