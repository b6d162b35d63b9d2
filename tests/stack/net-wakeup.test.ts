import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scheduler } from '../../scripts/local/scheduler.ts';
import { type Stack, startStack, wakeOnNetRequests } from '../../scripts/local/stack.ts';

/**
 * pg_net 0.19's worker wakes when a request is queued. The scheduler here is
 * never started, so no tick ever drains the queue: whatever arrives was sent
 * because net.wake()'s notification reached it.
 */
let stack: Stack;
let sql: postgres.Sql;
let scheduler: Scheduler;
let unlisten: () => Promise<void>;
let receiver: Server;
let receiverUrl: string;
const received: string[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/wake`;
  stack = await startStack({ dbPort: 0, functions: false, scheduler: false, log: () => undefined });
  sql = postgres(stack.dbUrl, { max: 2, onnotice: () => undefined });
  scheduler = new Scheduler({ sql, httpBatchSize: 10 });
  unlisten = await wakeOnNetRequests(stack.db, scheduler);
});

afterAll(async () => {
  await unlisten();
  await scheduler.stop();
  await sql.end();
  await stack.stop();
  await new Promise((resolve) => receiver.close(resolve));
});

async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const bodies = (tag: string) => received.filter((body) => JSON.parse(body).tag === tag);

describe('pg_net wake-ups on the local stack', () => {
  it('sends a request once its transaction commits, with no tick, and stores the response', async () => {
    const [{ id }] = await sql<{ id: string }[]>`
      select net.http_post(url := ${receiverUrl}, body := '{"tag":"single"}'::jsonb)::text as id`;
    await waitFor(() => bodies('single').length === 1, 'the request');
    await scheduler.settle();
    const [response] = await sql<{ status_code: number; content: string }[]>`
      select status_code, content from net._http_response where id = ${id}`;
    expect(response).toEqual({ status_code: 200, content: '{"ok":true}' });
    expect(await sql`select 1 from net.http_request_queue`).toHaveLength(0);
  });

  it('sends nothing for a rolled-back transaction', async () => {
    await sql
      .begin(async (tx) => {
        await tx`select net.http_post(url := ${receiverUrl}, body := '{"tag":"rolled-back"}'::jsonb)`;
        throw new Error('roll back');
      })
      .catch(() => undefined);
    await sql`select net.http_post(url := ${receiverUrl}, body := '{"tag":"after"}'::jsonb)`;
    await waitFor(() => bodies('after').length === 1, 'the committed request');
    await scheduler.settle();
    expect(bodies('rolled-back')).toHaveLength(0);
  });

  it('drains more than one batch from a single wake-up', async () => {
    await sql.begin(async (tx) => {
      for (let n = 0; n < 25; n++) await tx`select net.http_post(url := ${receiverUrl}, body := '{"tag":"many"}'::jsonb)`;
    });
    await waitFor(() => bodies('many').length === 25, 'all 25 requests (batches of 10)');
    await scheduler.settle();
    expect(await sql`select 1 from net.http_request_queue`).toHaveLength(0);
  });
});
