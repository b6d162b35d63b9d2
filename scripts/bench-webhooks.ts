import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSql, type Sql } from '../functions/_shared/db.ts';
import { dispatch, type DispatchSummary } from '../functions/webhook-dispatcher/dispatch.ts';
import { startStack } from './local/stack.ts';

/**
 * `npm run bench:webhooks`, two figures:
 * 1. throughput: deliveries per second through the dispatch core (in-process,
 *    against the wire server), 5 endpoints on a local receiver, passes with
 *    the function's default budgets run back to back until nothing is due;
 * 2. latency: with the local scheduler running (pg_cron every 10 s and the
 *    deliveries trigger → pg_net → the webhook-dispatcher function in Deno),
 *    the delay from an event's creation to the first attempt of each of its
 *    deliveries, for events emitted one at a time at a steady rate.
 */
const ENDPOINTS = 5;
const THROUGHPUT_EVENTS = 400; // × 5 endpoints = 2,000 deliveries
const LATENCY_EVENTS = 100;
const LATENCY_INTERVAL_MS = 200;
const TARGET_PER_SECOND = 100;

function startReceiver(): Promise<{ server: Server; url: string; count: () => number }> {
  let count = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      count += 1;
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(
      0,
      '127.0.0.1',
      () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => count }),
    )
  );
}

async function createOrgWithEndpoints(sql: Sql, receiverUrl: string): Promise<string> {
  const orgId = randomUUID();
  await sql`insert into public.organizations (id, name, slug) values (${orgId}, 'Bench', ${`bench-${
    orgId.slice(0, 8)
  }`})`;
  for (let i = 1; i <= ENDPOINTS; i += 1) {
    const [{ id }] = await sql<{ id: string }[]>`
      insert into public.webhook_endpoints (org_id, url) values (${orgId}, ${`${receiverUrl}/e${i}`}) returning id`;
    await sql`insert into private.webhook_endpoint_secrets (endpoint_id, secret)
              values (${id}, ${`whsec_${randomBytes(32).toString('base64')}`})`;
  }
  return orgId;
}

const emitOne = (sql: Sql, orgId: string) =>
  sql`select private.emit_event(${orgId}, 'document.failed',
        jsonb_build_object('document_id', gen_random_uuid(), 'name', 'bench.pdf', 'reason', 'benchmark'))`;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function throughput(): Promise<void> {
  const stack = await startStack({ dbPort: 0, functions: false, scheduler: false });
  const sql = createSql(stack.dbUrl, { max: 4 });
  const receiver = await startReceiver();
  try {
    const orgId = await createOrgWithEndpoints(sql, receiver.url);
    await sql`select private.emit_event(${orgId}, 'document.failed',
                jsonb_build_object('document_id', gen_random_uuid(), 'name', 'bench-' || n || '.pdf', 'reason', 'benchmark'))
              from generate_series(1, ${THROUGHPUT_EVENTS}) n`;
    const [{ due }] = await sql<{ due: number }[]>`
      select count(*)::int as due from public.webhook_deliveries where org_id = ${orgId} and status = 'pending'`;

    const started = performance.now();
    const passes: DispatchSummary[] = [];
    for (;;) {
      const summary = await dispatch({ sql, policy: { allowLoopback: true }, log: (m, e) => console.error(m, e) });
      passes.push(summary);
      if (summary.stoppedBy === 'idle') break;
    }
    const seconds = (performance.now() - started) / 1000;
    const succeeded = passes.reduce((sum, p) => sum + p.succeeded, 0);
    const rate = succeeded / seconds;
    console.log(
      `dispatch core, in-process over the wire server: ${succeeded} of ${due} deliveries to ${ENDPOINTS} endpoints in ` +
        `${seconds.toFixed(2)} s = ${rate.toFixed(0)} deliveries/s (${passes.length} passes of at most 200, ` +
        `8 in flight; receiver got ${receiver.count()}) ${rate >= TARGET_PER_SECOND ? 'meets' : 'MISSES'} the ` +
        `${TARGET_PER_SECOND}/s target`,
    );
  } finally {
    await sql.end({ timeout: 1 });
    receiver.server.close();
    await stack.stop();
  }
}

async function latency(): Promise<void> {
  const stack = await startStack({ dbPort: 0, apiPort: 0, functions: true, scheduler: true, log: () => undefined });
  const sql = createSql(stack.dbUrl, { max: 2 });
  const receiver = await startReceiver();
  try {
    const orgId = await createOrgWithEndpoints(sql, receiver.url);
    for (let i = 0; i < LATENCY_EVENTS; i += 1) {
      await emitOne(sql, orgId);
      await new Promise((resolve) => setTimeout(resolve, LATENCY_INTERVAL_MS));
    }
    const expected = LATENCY_EVENTS * ENDPOINTS;
    const deadline = Date.now() + 60_000;
    let attempted = 0;
    while (Date.now() < deadline) {
      [{ attempted }] = await sql<{ attempted: number }[]>`
        select count(*)::int as attempted from public.webhook_attempts where org_id = ${orgId} and attempt_number = 1`;
      if (attempted >= expected) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const delays = (
      await sql<{ ms: number }[]>`
        select extract(epoch from (a.started_at - e.created_at)) * 1000 as ms
        from public.webhook_attempts a
        join public.webhook_deliveries d on d.id = a.delivery_id
        join public.events e on e.id = d.event_id
        where a.org_id = ${orgId} and a.attempt_number = 1`
    ).map((row) => Number(row.ms)).sort((a, b) => a - b);
    const [{ wakeups }] = await sql<{ wakeups: number }[]>`select count(*)::int as wakeups from net._http_response`;
    console.log(
      `event to first attempt, scheduler on (cron + trigger → pg_net → Deno dispatcher), ${LATENCY_EVENTS} events ` +
        `one every ${LATENCY_INTERVAL_MS} ms × ${ENDPOINTS} endpoints: ${attempted} of ${expected} attempted; ` +
        `p50 ${percentile(delays, 50).toFixed(0)} ms, p95 ${percentile(delays, 95).toFixed(0)} ms, ` +
        `max ${delays[delays.length - 1].toFixed(0)} ms (${wakeups} dispatcher wake-ups)`,
    );
  } finally {
    await sql.end({ timeout: 1 });
    receiver.server.close();
    await stack.stop();
  }
}

await throughput();
await latency();
