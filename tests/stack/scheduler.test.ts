import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Scheduler } from '../../scripts/local/scheduler.ts';

const sql = postgres(inject('dbUrl'), { max: 2, onnotice: () => undefined });
const received: Array<{ method: string; url: string; body: string }> = [];
let receiver: Server;
let receiverUrl: string;
let clock = new Date('2026-11-23T10:00:00Z');
const scheduler = new Scheduler({ sql, now: () => clock });
const jobName = `scheduler-test-${process.pid}`;

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

afterAll(async () => {
  await sql`select cron.unschedule(${jobName})`.catch(() => undefined);
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
});
