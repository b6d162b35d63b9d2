import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { matchesMinute, parseCronSchedule } from '../../scripts/local/cron-expression.ts';
import { Scheduler } from '../../scripts/local/scheduler.ts';
import { runExclusively } from '../support/exclusive.ts';

const sql = postgres(inject('dbUrl'), { max: 2, onnotice: () => undefined });
const received: Array<{ method: string; url: string; body: string }> = [];
let receiver: Server;
let receiverUrl: string;
let clock = new Date('2026-11-23T10:00:00Z');
const scheduler = new Scheduler({ sql, now: () => clock });
const jobName = `scheduler-test-${process.pid}`;

// Its ticks run every due job, the calendar passes among them (see runExclusively).
runExclusively('calendar-passes');

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', body });
      res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

const procedureName = `scheduler_test_commits_${process.pid}`;
const tableName = `scheduler_test_rows_${process.pid}`;
/** net._http_response ids of this file's rows (pg_net's ids are positive). */
const responseIds = [1, 2, 3].map((n) => -(process.pid * 10 + n));

afterAll(async () => {
  await sql`select cron.unschedule(${jobName})`.catch(() => undefined);
  await sql.unsafe(`drop procedure if exists scheduler_tests.${procedureName}(); drop table if exists scheduler_tests.${tableName}`);
  await sql`delete from net._http_response where id in ${sql(responseIds)}`;
  await new Promise((resolve) => receiver.close(resolve));
  await sql.end();
});

// The scheduler stands in for pg_cron's and pg_net's workers; a real server has those instead.
describe.runIf(inject('embedded'))('local scheduler (pg_cron and pg_net stand-in)', () => {
  it('runs a due cron job once per matching minute and records the run', async () => {
    const [{ jobid }] = await sql<{ jobid: string }[]>`
      select cron.schedule(${jobName}, '* * * * *',
        ${`select net.http_post(url := '${receiverUrl}', body := '{"from":"cron"}'::jsonb)`})::text as jobid`;
    expect(await scheduler.startDueJobs()).toContain(jobid);
    await scheduler.settle();
    expect(await scheduler.startDueJobs()).not.toContain(jobid);
    clock = new Date('2026-11-23T10:01:00Z');
    expect(await scheduler.startDueJobs()).toContain(jobid);
    await scheduler.settle();
    const runs = await sql<{ status: string; return_message: string }[]>`
      select status, return_message from cron.job_run_details where jobid = ${jobid} order by runid`;
    expect(runs).toEqual([
      { status: 'succeeded', return_message: 'SELECT 1' },
      { status: 'succeeded', return_message: 'SELECT 1' },
    ]);
  });

  it('sends the queued pg_net requests and stores each response', async () => {
    const queued = await sql<{ id: string }[]>`select id::text from net.http_request_queue order by id`;
    expect(queued.length).toBeGreaterThanOrEqual(2);
    await scheduler.drainHttpQueue();
    expect(received.filter((r) => JSON.parse(r.body).from === 'cron')).toHaveLength(2);
    expect(received[0].method).toBe('POST');
    const responses = await sql<{ status_code: number; content: string }[]>`
      select status_code, content from net._http_response where id in ${sql(queued.map((q) => q.id))}`;
    expect(responses).toHaveLength(queued.length);
    expect(responses.every((r) => r.status_code === 201 && r.content === '{"ok":true}')).toBe(true);
    expect(await sql`select 1 from net.http_request_queue where id in ${sql(queued.map((q) => q.id))}`).toHaveLength(0);
  });

  it('records a failed job with its error', async () => {
    await sql`select cron.schedule(${jobName}, '* * * * *', 'select 1/0')`;
    clock = new Date('2026-11-23T10:02:00Z');
    await scheduler.startDueJobs();
    await scheduler.settle();
    const [run] = await sql<{ status: string; return_message: string }[]>`
      select d.status, d.return_message from cron.job_run_details d join cron.job j using (jobid)
      where j.jobname = ${jobName} order by d.runid desc limit 1`;
    expect(run).toEqual({ status: 'failed', return_message: 'division by zero' });
  });

  it('runs a job outside a transaction block, so a procedure it calls can commit as it goes', async () => {
    // Outside the exposed schemas: pgTAP's catalog checks (100, 101) run meanwhile and would see them there.
    await sql.unsafe(`
      create schema if not exists scheduler_tests;
      create table scheduler_tests.${tableName} (step int);
      create procedure scheduler_tests.${procedureName}() language plpgsql as $$
      begin
        insert into scheduler_tests.${tableName} values (1);
        commit;
        insert into scheduler_tests.${tableName} values (2);
        commit;
      end;
      $$`);
    await sql`select cron.schedule(${jobName}, '* * * * *', ${`call scheduler_tests.${procedureName}()`})`;
    clock = new Date('2026-11-23T10:03:00Z');
    await scheduler.startDueJobs();
    await scheduler.settle();
    const [run] = await sql<{ status: string; return_message: string }[]>`
      select d.status, d.return_message from cron.job_run_details d join cron.job j using (jobid)
      where j.jobname = ${jobName} order by d.runid desc limit 1`;
    expect(run).toEqual({ status: 'succeeded', return_message: 'CALL' });
    expect(await sql.unsafe(`select step from scheduler_tests.${tableName} order by step`)).toEqual([{ step: 1 }, { step: 2 }]);
  });

  it('deletes pg_net answers older than 6 hours (pg_net.ttl), at most once a minute', async () => {
    clock = new Date('2026-11-23T18:00:00Z');
    const hoursAgo = (hours: number) => new Date(clock.getTime() - hours * 3_600_000);
    await sql`
      insert into net._http_response (id, status_code, created)
      values (${responseIds[0]}, 200, ${hoursAgo(7)}), (${responseIds[1]}, 200, ${hoursAgo(5)})`;
    const left = async () =>
      (await sql<{ id: string }[]>`select id::text from net._http_response where id in ${sql(responseIds)}`)
        .map((row) => Number(row.id)).sort((a, b) => b - a);
    expect(await scheduler.purgeExpiredResponses()).toBeGreaterThanOrEqual(1);
    expect(await left()).toEqual([responseIds[1]]);

    await sql`insert into net._http_response (id, status_code, created) values (${responseIds[2]}, 200, ${hoursAgo(8)})`;
    clock = new Date('2026-11-23T18:00:59Z');
    expect(await scheduler.purgeExpiredResponses()).toBeNull();
    expect(await left()).toEqual([responseIds[1], responseIds[2]]);

    clock = new Date('2026-11-23T18:01:00Z');
    await scheduler.tick();
    await scheduler.settle();
    expect(await left()).toEqual([responseIds[1]]);
  });

  it('runs the invoice job, which draws each org in its own transaction and goes on past one that fails', async () => {
    // Two orgs on Pro in May 2001 (no other org has a subscription that old); the second one's lines are refused.
    const orgs = await sql<{ id: string }[]>`
      insert into public.organizations (name, slug)
      values ('Scheduler A', ${`scheduler-test-a-${process.pid}`}), ('Scheduler B', ${`scheduler-test-b-${process.pid}`})
      returning id::text`;
    const [good, refused] = orgs.map((org) => org.id);
    await sql`delete from public.subscriptions where org_id in ${sql([good, refused])}`;
    await sql`
      insert into public.subscriptions (org_id, plan_id, status, started_at, current_period_start, current_period_end)
      select o, 'pro', 'active', '2001-05-01T00:00:00Z', '2001-05-01T00:00:00Z', '2001-06-01T00:00:00Z'
      from unnest(${[good, refused]}::uuid[]) o`;
    const trigger = `scheduler_test_refuse_${process.pid}`;
    await sql.unsafe(`
      create schema if not exists scheduler_tests;
      create function scheduler_tests.${trigger}() returns trigger language plpgsql as $$
      begin
        raise exception 'refused for the test';
      end;
      $$;
      create trigger ${trigger} before insert on public.invoice_lines
        for each row when (new.org_id = '${refused}') execute function scheduler_tests.${trigger}()`);
    try {
      // The job's own command, for May 2001 rather than last month (so only these two orgs are drawn).
      const [{ command }] = await sql<{ command: string }[]>`select command from cron.job where jobname = 'generate-invoices'`;
      const lastMonth = "(date_trunc('month', now() at time zone 'UTC') - interval '1 month')::date";
      const timeLimit = "interval '100 seconds'";
      expect(command).toContain(lastMonth);
      expect(command).toContain(timeLimit);
      const mayCommand = command.replace(lastMonth, "'2001-05-01'::date");
      // Past its time limit (here from the start) the run stops drawing, and succeeds.
      await sql`select cron.schedule(${jobName}, '* * * * *', ${mayCommand.replace(timeLimit, "interval '0 seconds'")})`;
      clock = new Date('2026-11-23T18:02:00Z');
      await scheduler.startDueJobs();
      await scheduler.settle();
      const [stopped] = await sql<{ status: string; drawn: number }[]>`
        select d.status, (select count(*)::int from public.invoices i where i.org_id in ${sql([good, refused])}) as drawn
        from cron.job_run_details d join cron.job j using (jobid)
        where j.jobname = ${jobName} order by d.runid desc limit 1`;
      expect(stopped).toEqual({ status: 'succeeded', drawn: 0 });
      // The next run goes on with the orgs not invoiced yet.
      await sql`select cron.schedule(${jobName}, '* * * * *', ${mayCommand})`;
      clock = new Date('2026-11-23T18:03:00Z');
      await scheduler.startDueJobs();
      await scheduler.settle();
    } finally {
      await sql.unsafe(`drop trigger ${trigger} on public.invoice_lines; drop function scheduler_tests.${trigger}()`);
    }
    const [run] = await sql<{ status: string; return_message: string }[]>`
      select d.status, d.return_message from cron.job_run_details d join cron.job j using (jobid)
      where j.jobname = ${jobName} order by d.runid desc limit 1`;
    expect(run).toEqual({ status: 'succeeded', return_message: 'DO' });
    const invoiced = await sql<{ org_id: string; lines: number; events: number }[]>`
      select i.org_id::text,
        (select count(*)::int from public.invoice_lines l where l.invoice_id = i.id) as lines,
        (select count(*)::int from public.events e where e.org_id = i.org_id and e.type = 'invoice.created') as events
      from public.invoices i where i.org_id in ${sql([good, refused])} and i.period_start = '2001-05-01'`;
    expect(invoiced).toEqual([{ org_id: good, lines: 1, events: 1 }]);
  });

  it('fires the invoice job every 10 minutes from 02:00 to 06:50 UTC, and at no other time', async () => {
    const [{ schedule }] = await sql<{ schedule: string }[]>`select schedule from cron.job where jobname = 'generate-invoices'`;
    const parsed = parseCronSchedule(schedule);
    if (parsed.kind !== 'fields') throw new Error(`unexpected schedule ${schedule}`);
    const day = Date.UTC(2026, 11, 1);
    const firing: string[] = [];
    for (let minute = 0; minute < 24 * 60; minute += 1) {
      const at = new Date(day + minute * 60_000);
      if (matchesMinute(parsed, at)) firing.push(at.toISOString().slice(11, 16));
    }
    expect(firing).toHaveLength(30);
    expect(firing.slice(0, 3)).toEqual(['02:00', '02:10', '02:20']);
    expect(firing[firing.length - 1]).toBe('06:50');
  });
});
