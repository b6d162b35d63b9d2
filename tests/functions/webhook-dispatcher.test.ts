/**
 * The dispatch core against the run's shared database, with a controllable
 * clock and local receivers.
 *
 * The clock runs two months in the past, and each test moves its own new
 * deliveries onto that timeline: a pass claims every due delivery in the
 * database, so a clock at or after real time would also take (and send) other
 * test files' deliveries, while one in the past only ever sees ours.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSql, type Sql } from '../../functions/_shared/db.ts';
import { leaseSeconds } from '../../functions/_shared/batch.ts';
import { createClaimer } from '../../functions/webhook-dispatcher/claims.ts';
import { dispatch, type DispatchOptions } from '../../functions/webhook-dispatcher/dispatch.ts';
import { startTestDatabase } from './support.ts';

const DAY = 86_400_000;
/** private.webhook_retry_delays(): the wait before attempts 2..10, in seconds. */
const RETRY_DELAYS = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400];

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Respond = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A webhook receiver on 127.0.0.1 whose answer each test chooses. */
class Receiver {
  readonly requests: Received[] = [];
  respond: Respond = (_req, res) => res.writeHead(200).end('ok');
  private readonly server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      this.requests.push({ path: req.url ?? '', headers: req.headers, body });
      this.respond(req, res, body);
    });
  });
  url = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const newSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

let sql: Sql;
let receiver: Receiver;
let clock: Date;
const orgs: string[] = [];

beforeAll(async () => {
  sql = createSql((await startTestDatabase()).url, { max: 4 });
});
afterAll(async () => {
  await sql?.end({ timeout: 1 });
});

// Whole seconds, so Retry-After dates (second precision) compare exactly.
const startClock = () => (clock = new Date(Math.floor((Date.now() - 60 * DAY) / 1000) * 1000));
const advance = (ms: number) => (clock = new Date(clock.getTime() + ms));

async function freshReceiver(): Promise<void> {
  receiver = await new Receiver().start();
  startClock();
}

afterEach(async () => {
  await receiver?.stop();
  if (orgs.length > 0) await sql`delete from public.organizations where id in ${sql(orgs.splice(0))}`;
});

async function createEndpoint(
  url: string,
  options: { secrets?: string[]; orgId?: string } = {},
): Promise<{ orgId: string; endpointId: string; secrets: string[] }> {
  const secrets = options.secrets ?? [newSecret()];
  let orgId = options.orgId;
  if (!orgId) {
    orgId = randomUUID();
    orgs.push(orgId);
    await sql`insert into public.organizations (id, name, slug) values (${orgId}, 'Webhook test', ${`wh-${
      orgId.slice(0, 13)
    }`})`;
  }
  const [{ id }] = await sql<{ id: string }[]>`
    insert into public.webhook_endpoints (org_id, url) values (${orgId}, ${url}) returning id`;
  // Oldest first, so the first secret given is the newest (claimed secrets come newest first).
  for (const secret of [...secrets].reverse()) {
    await sql`insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (${id}, ${secret})`;
  }
  return { orgId, endpointId: id, secrets };
}

/** Emits an event and puts the deliveries it fanned out to on the test's timeline, due now. */
async function emit(orgId: string, name = 'a.pdf'): Promise<string> {
  const payload = { document_id: randomUUID(), name, reason: 'x' };
  const [{ id }] = await sql<{ id: string }[]>`
    select private.emit_event(${orgId}, 'document.failed', ${sql.json(payload)}) as id`;
  await sql`update public.webhook_deliveries set next_attempt_at = ${clock} where event_id = ${id} and status = 'pending'`;
  return id;
}

const run = (overrides: Partial<DispatchOptions> = {}) =>
  dispatch({
    sql,
    policy: { allowLoopback: true },
    now: () => clock,
    timeoutMs: 2000,
    log: () => undefined,
    ...overrides,
  });

interface DeliveryRow {
  id: string;
  status: string;
  attempt_count: number;
  next_attempt_at: Date | null;
}
const deliveriesOf = (endpointId: string) =>
  sql<DeliveryRow[]>`
    select id, status, attempt_count, next_attempt_at from public.webhook_deliveries
    where endpoint_id = ${endpointId} order by created_at, id`;

interface AttemptRow {
  attempt_number: number;
  status_code: number | null;
  outcome: string;
  error: string | null;
  response_body: string | null;
  duration_ms: number;
  started_at: Date;
}
const attemptsOf = (endpointId: string) =>
  sql<AttemptRow[]>`
    select attempt_number, status_code, outcome, error, response_body, duration_ms, started_at
    from public.webhook_attempts where endpoint_id = ${endpointId} order by attempt_number, id`;

/** Follows the retries: sets the clock to the next due attempt and runs a pass, until nothing is pending. */
async function driveUntilSettled(endpointId: string, maxPasses = 50): Promise<void> {
  for (let pass = 0; pass < maxPasses; pass += 1) {
    const [next] = await sql<{ at: Date | null }[]>`
      select min(next_attempt_at) as at from public.webhook_deliveries
      where endpoint_id = ${endpointId} and status = 'pending'`;
    if (!next.at) return;
    // Postgres keeps microseconds, Date milliseconds: 1 ms later is certainly due.
    clock = new Date(Math.max(clock.getTime(), next.at.getTime() + 1));
    await run();
  }
  throw new Error('still pending after the maximum number of passes');
}

/** A delivery of the fake queue below: due at `due`, claimed (in flight) until done. */
interface FakeDelivery {
  id: string;
  org: string;
  endpoint: string;
  due: number;
  claimed: boolean;
  done: boolean;
}

/**
 * private.claim_webhook_deliveries's turns over an in-memory queue (20261123009200): an endpoint's n-th waiting
 * delivery (oldest first) takes endpoint turn n after those it has in flight; an org's n-th in its endpoints' turn
 * order takes org turn n after those it has in flight; a claim takes the first `size` by org turn, endpoint turn, age.
 */
function claimLikeTheSql(queue: FakeDelivery[], size: number): FakeDelivery[] {
  const inFlight = (matches: (d: FakeDelivery) => boolean) => queue.filter((d) => d.claimed && !d.done && matches(d)).length;
  const byAge = queue.filter((d) => !d.claimed).sort((a, b) => a.due - b.due || a.id.localeCompare(b.id));
  const turnsWithin = (ordered: FakeDelivery[], keyOf: (d: FakeDelivery) => string) => {
    const taken = new Map<string, number>();
    return new Map(ordered.map((d) => {
      const key = keyOf(d);
      if (!taken.has(key)) taken.set(key, inFlight((x) => keyOf(x) === key));
      taken.set(key, taken.get(key)! + 1);
      return [d, taken.get(key)!];
    }));
  };
  const endpointTurn = turnsWithin(byAge, (d) => d.endpoint);
  // Sorting is stable: equal turns stay oldest first.
  const orgTurn = turnsWithin([...byAge].sort((a, b) => endpointTurn.get(a)! - endpointTurn.get(b)!), (d) => d.org);
  const claimed = [...byAge]
    .sort((a, b) => orgTurn.get(a)! - orgTurn.get(b)! || endpointTurn.get(a)! - endpointTurn.get(b)!)
    .slice(0, size);
  for (const d of claimed) d.claimed = true;
  return claimed;
}

/**
 * The reviewer's pass: a busy org's 20 endpoints with 2 due deliveries each, all older than the other org's 5
 * (over `otherEndpoints` endpoints), 8 workers, the claim of 20261123009200. The busy org's attempts hang until
 * every one of the other org's has ended (or 3 s have passed); the other's take a moment, and the first one's end
 * puts the clock a whole wait on, so everything at hand is overdue.
 */
async function busyAndOtherOrgPass(otherEndpoints: number) {
  const queue: FakeDelivery[] = [
    ...Array.from({ length: 40 }, (_, i) => ({ id: `busy-${i}`, org: 'busy', endpoint: `busy-e${i % 20}`, due: i })),
    ...Array.from({ length: 5 }, (_, i) => ({ id: `other-${i}`, org: 'other', endpoint: `other-e${i % otherEndpoints}`, due: 100 + i })),
  ].map((d) => ({ ...d, claimed: false, done: false }));
  const maxWaitMs = 15_000;
  let clock = 0;
  const claimer = createClaimer<FakeDelivery>({
    claim: async (size) => claimLikeTheSql(queue, size),
    maxPerClaim: 16,
    remaining: () => Infinity,
    timeUp: () => false,
    keyOf: (d) => d.endpoint,
    groupOf: (d) => d.org,
    slowAfterMs: 60_000,
    maxPerReceiver: 4,
    maxPerGroup: 2,
    maxWaitMs,
    now: () => clock,
  });
  let releaseBusy!: (byTimer: boolean) => void;
  const busyReleased = new Promise<boolean>((resolve) => (releaseBusy = resolve));
  const timer = setTimeout(() => releaseBusy(true), 3000);
  const started = new Set<FakeDelivery>();
  const running = new Set<FakeDelivery>();
  /** At each busy start while the other org had deliveries not started: the busy org's in flight, and whether each of those was at an endpoint with 4 running. */
  const busyStartsWhileOtherWaited: Array<{ busyInFlight: number; otherBlocked: boolean }> = [];
  let maxBusyInFlight = 0;
  const inFlightOf = (org: string, endpoint?: string) =>
    [...running].filter((d) => d.org === org && (endpoint === undefined || d.endpoint === endpoint)).length;
  const worker = async () => {
    for (let d = await claimer.next(); d; d = await claimer.next()) {
      expect(started.has(d)).toBe(false);
      started.add(d);
      running.add(d);
      const otherWaiting = queue.filter((x) => x.org === 'other' && !started.has(x));
      if (d.org === 'busy') {
        maxBusyInFlight = Math.max(maxBusyInFlight, inFlightOf('busy'));
        if (otherWaiting.length > 0) {
          busyStartsWhileOtherWaited.push({
            busyInFlight: inFlightOf('busy'),
            otherBlocked: otherWaiting.every((x) => inFlightOf('other', x.endpoint) >= 4),
          });
        }
        await busyReleased;
      } else {
        await new Promise((resolve) => setImmediate(resolve));
        if (clock === 0) clock += maxWaitMs;
      }
      running.delete(d);
      d.done = true;
      claimer.done(d);
      if (queue.every((x) => x.org !== 'other' || x.done)) releaseBusy(false);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  clearTimeout(timer);
  return { queue, started, busyStartsWhileOtherWaited, maxBusyInFlight, releasedByTimer: await busyReleased };
}

describe('webhook dispatch', () => {
  it('sends the event signed per Standard Webhooks, with every live secret', async () => {
    await freshReceiver();
    const secrets = [newSecret(), newSecret()];
    const { orgId, endpointId } = await createEndpoint(`${receiver.url}/in`, { secrets });
    const eventId = await emit(orgId, 'ünïcödé.pdf');

    const summary = await run();
    expect(summary).toMatchObject({ claimed: 1, succeeded: 1, retried: 0, failed: 0, stoppedBy: 'idle' });

    expect(receiver.requests).toHaveLength(1);
    const [{ headers, body, path }] = receiver.requests;
    expect(path).toBe('/in');
    expect(headers['content-type']).toBe('application/json');
    expect(headers['user-agent']).toMatch(/webhooks/);
    expect(headers['webhook-id']).toBe(`msg_${eventId.replaceAll('-', '')}`);
    expect(headers['webhook-timestamp']).toBe(String(clock.getTime() / 1000));
    const parsed = JSON.parse(body);
    expect(parsed).toMatchObject({ type: 'document.failed', data: { name: 'ünïcödé.pdf', reason: 'x' } });
    expect(parsed.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    // Each secret's signature is what the standardwebhooks package computes for these bytes.
    // (Its verify() would also check the timestamp against the real clock, which this test moves.)
    const signatures = String(headers['webhook-signature']).split(' ');
    const sentAt = new Date(Number(headers['webhook-timestamp']) * 1000);
    expect(signatures).toEqual(
      secrets.map((secret) => new Webhook(secret).sign(String(headers['webhook-id']), sentAt, body)),
    );

    expect(await deliveriesOf(endpointId)).toMatchObject([{
      status: 'succeeded',
      attempt_count: 1,
      next_attempt_at: null,
    }]);
    expect(await attemptsOf(endpointId)).toMatchObject([
      {
        attempt_number: 1,
        status_code: 200,
        outcome: 'succeeded',
        error: null,
        response_body: 'ok',
        started_at: clock,
      },
    ]);
  });

  it('retries a failing receiver on the schedule (±10%), never early, and gives up after the 10th attempt', async () => {
    await freshReceiver();
    receiver.respond = (_req, res) => res.writeHead(500).end('down');
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId);

    for (let attempt = 1; attempt <= 10; attempt += 1) {
      const summary = await run();
      expect(summary.claimed, `attempt ${attempt}`).toBe(1);
      expect(receiver.requests).toHaveLength(attempt);
      const [delivery] = await deliveriesOf(endpointId);
      expect(delivery.attempt_count).toBe(attempt);
      if (attempt === 10) {
        expect(summary.failed).toBe(1);
        expect(delivery).toMatchObject({ status: 'failed', next_attempt_at: null });
        break;
      }
      expect(summary.retried).toBe(1);
      expect(delivery.status).toBe('pending');
      const waitSeconds = (delivery.next_attempt_at!.getTime() - clock.getTime()) / 1000;
      const planned = RETRY_DELAYS[attempt - 1];
      expect(waitSeconds, `wait after attempt ${attempt}`).toBeGreaterThanOrEqual(planned * 0.9 - 0.001);
      expect(waitSeconds, `wait after attempt ${attempt}`).toBeLessThanOrEqual(planned * 1.1 + 0.001);

      // Not yet due: a pass a moment before sends nothing.
      clock = new Date(delivery.next_attempt_at!.getTime() - 1);
      expect((await run()).claimed).toBe(0);
      expect(receiver.requests).toHaveLength(attempt);
      clock = new Date(delivery.next_attempt_at!.getTime() + 1);
    }

    const attempts = await attemptsOf(endpointId);
    expect(attempts.map((a) => a.attempt_number)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(attempts.every((a) => a.status_code === 500 && a.outcome === 'failed' && a.response_body === 'down')).toBe(
      true,
    );
    // One webhook-id for every attempt; a fresh timestamp (and so signature) on each.
    expect(new Set(receiver.requests.map((r) => r.headers['webhook-id'])).size).toBe(1);
    expect(new Set(receiver.requests.map((r) => r.headers['webhook-timestamp'])).size).toBe(10);
    // 3.15 days of failures is under the 5-day limit: the endpoint stays enabled.
    const [endpoint] = await sql<
      { enabled: boolean }[]
    >`select enabled from public.webhook_endpoints where id = ${endpointId}`;
    expect(endpoint.enabled).toBe(true);
  });

  it('honours Retry-After on 429 (seconds) and 503 (HTTP date) when it asks for longer than the schedule', async () => {
    await freshReceiver();
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    receiver.respond = (_req, res) => res.writeHead(429, { 'retry-after': '3600' }).end();
    await emit(orgId);
    await run();
    let [delivery] = await deliveriesOf(endpointId);
    expect((delivery.next_attempt_at!.getTime() - clock.getTime()) / 1000).toBe(3600);

    clock = new Date(delivery.next_attempt_at!.getTime() + 1000 - (delivery.next_attempt_at!.getTime() % 1000));
    const until = new Date(clock.getTime() + 7200_000);
    receiver.respond = (_req, res) => res.writeHead(503, { 'retry-after': until.toUTCString() }).end();
    await run();
    [delivery] = await deliveriesOf(endpointId);
    expect(delivery.attempt_count).toBe(2);
    expect((delivery.next_attempt_at!.getTime() - clock.getTime()) / 1000).toBe(7200);

    // A Retry-After on a plain 500 is not honoured: the schedule's 30 minutes (±10%) apply.
    clock = new Date(delivery.next_attempt_at!.getTime() + 1);
    receiver.respond = (_req, res) => res.writeHead(500, { 'retry-after': '86400' }).end();
    await run();
    [delivery] = await deliveriesOf(endpointId);
    expect((delivery.next_attempt_at!.getTime() - clock.getTime()) / 1000).toBeLessThanOrEqual(1800 * 1.1 + 0.001);
  });

  it('disables the endpoint on 410 Gone, cancels what it had queued, and sends it nothing afterwards', async () => {
    await freshReceiver();
    receiver.respond = (_req, res) => res.writeHead(410).end('gone');
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId, 'first.pdf');
    await emit(orgId, 'second.pdf');

    // One delivery only: the other is still queued when the 410 arrives.
    const summary = await run({ batchSize: 1, maxDeliveries: 1 });
    expect(summary).toMatchObject({ claimed: 1, failed: 1, stoppedBy: 'delivery_budget' });
    const [endpoint] = await sql<{ enabled: boolean; disabled_reason: string }[]>`
      select enabled, disabled_reason from public.webhook_endpoints where id = ${endpointId}`;
    expect(endpoint).toEqual({ enabled: false, disabled_reason: 'the endpoint answered 410 Gone' });
    expect((await deliveriesOf(endpointId)).map((d) => d.status).sort()).toEqual(['canceled', 'failed']);

    await emit(orgId, 'third.pdf');
    advance(DAY);
    expect((await run()).claimed).toBe(0);
    expect(receiver.requests).toHaveLength(1);
    expect(await deliveriesOf(endpointId)).toHaveLength(2);
  });

  it('a 410 from the URL an endpoint had before it was repointed fails nothing but that attempt: retried at the new URL', async () => {
    await freshReceiver();
    const moved = await new Receiver().start();
    try {
      moved.respond = (_req, res) => res.writeHead(200).end('ok');
      const { orgId, endpointId } = await createEndpoint(`${receiver.url}/old`);
      await emit(orgId, 'first.pdf');
      // The admin repoints the endpoint (and an event is queued for the new URL) while the old URL is answering.
      receiver.respond = (_req, res) => {
        void (async () => {
          await sql`update public.webhook_endpoints set url = ${`${moved.url}/new`} where id = ${endpointId}`;
          await emit(orgId, 'second.pdf');
          res.writeHead(410).end('gone');
        })();
      };

      expect(await run({ batchSize: 1, maxDeliveries: 1 })).toMatchObject({ claimed: 1, retried: 1 });
      const [endpoint] = await sql<{ enabled: boolean; url: string; failing_since: Date | null }[]>`
        select enabled, url, failing_since from public.webhook_endpoints where id = ${endpointId}`;
      expect(endpoint).toEqual({ enabled: true, url: `${moved.url}/new`, failing_since: null });
      const [attempt] = await sql<{ url: string; status_code: number }[]>`
        select url, status_code from public.webhook_attempts where endpoint_id = ${endpointId}`;
      expect(attempt).toEqual({ url: `${receiver.url}/old`, status_code: 410 });
      expect((await deliveriesOf(endpointId)).map((d) => d.status)).toEqual(['pending', 'pending']);

      await driveUntilSettled(endpointId);
      expect((await deliveriesOf(endpointId)).map((d) => d.status)).toEqual(['succeeded', 'succeeded']);
      expect(receiver.requests).toHaveLength(1);
      expect(moved.requests.map((r) => r.path)).toEqual(['/new', '/new']);
    } finally {
      await moved.stop();
    }
  });

  it('checks a delivery that waited at hand over a second again: one whose endpoint was repointed meanwhile is not sent to the old URL', async () => {
    await freshReceiver();
    const moved = await new Receiver().start();
    try {
      moved.respond = (_req, res) => res.writeHead(200).end('ok');
      const { orgId, endpointId } = await createEndpoint(`${receiver.url}/old`);
      await emit(orgId, 'first.pdf');
      await emit(orgId, 'second.pdf');
      // One worker: the first answer takes 1.2 s, during which the admin repoints the endpoint; the second waits at hand.
      receiver.respond = (_req, res) => {
        void (async () => {
          await sql`update public.webhook_endpoints set url = ${`${moved.url}/new`} where id = ${endpointId}`;
          setTimeout(() => res.writeHead(200).end('ok'), 1200);
        })();
      };

      expect(await run({ concurrency: 1, batchSize: 2 })).toMatchObject({ claimed: 2, succeeded: 1, dropped: 1 });
      expect(receiver.requests).toHaveLength(1);
      expect(moved.requests).toHaveLength(0);
      // Dropped, not sent: no attempt recorded; it stays claimed until its lease runs out.
      expect((await deliveriesOf(endpointId)).map((d) => `${d.status} ${d.attempt_count}`).sort())
        .toEqual(['sending 1', 'succeeded 1']);
      expect(await attemptsOf(endpointId)).toHaveLength(1);

      // Once the lease has run out the next pass sends it, to the new URL.
      advance(10 * 60_000);
      expect(await run()).toMatchObject({ claimed: 1, succeeded: 1, dropped: 0 });
      expect(moved.requests.map((r) => r.path)).toEqual(['/new']);
      expect((await deliveriesOf(endpointId)).map((d) => d.status)).toEqual(['succeeded', 'succeeded']);
    } finally {
      await moved.stop();
    }
  });

  it('sends a delivery that waited at hand over a second when nothing changed meanwhile', async () => {
    await freshReceiver();
    const { orgId, endpointId } = await createEndpoint(`${receiver.url}/in`);
    await emit(orgId, 'first.pdf');
    await emit(orgId, 'second.pdf');
    receiver.respond = (_req, res) => void setTimeout(() => res.writeHead(200).end('ok'), 1200);

    expect(await run({ concurrency: 1, batchSize: 2 })).toMatchObject({ claimed: 2, succeeded: 2, dropped: 0 });
    expect(receiver.requests).toHaveLength(2);
    expect((await deliveriesOf(endpointId)).map((d) => d.status)).toEqual(['succeeded', 'succeeded']);
  });

  it('disables an endpoint that has failed continuously for 5 days', async () => {
    await freshReceiver();
    receiver.respond = (_req, res) => res.writeHead(500).end();
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    const firstFailure = clock;
    await emit(orgId, 'first.pdf');
    await driveUntilSettled(endpointId);
    // The first delivery ran out of attempts after about 3.15 days; the endpoint is still on.
    expect((await deliveriesOf(endpointId)).map((d) => d.status)).toEqual(['failed']);

    advance(12 * 3_600_000);
    await emit(orgId, 'second.pdf');
    await driveUntilSettled(endpointId);

    const [endpoint] = await sql<{ enabled: boolean; disabled_reason: string; disabled_at: Date }[]>`
      select enabled, disabled_reason, disabled_at from public.webhook_endpoints where id = ${endpointId}`;
    expect(endpoint.enabled).toBe(false);
    expect(endpoint.disabled_reason).toBe('failing continuously for 5 days');
    expect(endpoint.disabled_at.getTime() - firstFailure.getTime()).toBeGreaterThanOrEqual(5 * DAY);
    const [, second] = await deliveriesOf(endpointId);
    expect(second.status).toBe('failed');
    // The second delivery stopped short of its 10 attempts: the 5-day rule ended it.
    expect(second.attempt_count).toBeLessThan(10);

    const sent = receiver.requests.length;
    await emit(orgId, 'third.pdf');
    advance(DAY);
    expect((await run()).claimed).toBe(0);
    expect(receiver.requests).toHaveLength(sent);
  });

  it('sends each attempt exactly once when two dispatchers run at once', async () => {
    await freshReceiver();
    // Slow enough that the two passes overlap for the whole run.
    receiver.respond = (_req, res) => setTimeout(() => res.writeHead(200).end(), 10);
    const { orgId, endpointId: first } = await createEndpoint(`${receiver.url}/a`);
    const { endpointId: second } = await createEndpoint(`${receiver.url}/b`, { orgId });
    const events = 20;
    for (let i = 0; i < events; i += 1) await emit(orgId, `doc-${i}.pdf`);

    const other = createSql((await startTestDatabase()).url, { max: 4 });
    try {
      const [a, b] = await Promise.all([run({ batchSize: 4 }), run({ sql: other, batchSize: 4 })]);
      expect(a.claimed + b.claimed).toBe(2 * events);
      expect(a.claimed).toBeGreaterThan(0);
      expect(b.claimed).toBeGreaterThan(0);
    } finally {
      await other.end({ timeout: 1 });
    }

    const perMessage = new Map<string, number>();
    for (const r of receiver.requests) {
      const key = `${r.path} ${String(r.headers['webhook-id'])}`;
      perMessage.set(key, (perMessage.get(key) ?? 0) + 1);
    }
    expect(perMessage.size).toBe(2 * events);
    expect([...perMessage.values()].every((count) => count === 1)).toBe(true);
    const [counts] = await sql<{ attempts: number; distinct_attempts: number; succeeded: number }[]>`
      select count(*)::int as attempts,
             count(distinct (a.delivery_id, a.attempt_number))::int as distinct_attempts,
             count(*) filter (where d.status = 'succeeded')::int as succeeded
      from public.webhook_attempts a join public.webhook_deliveries d on d.id = a.delivery_id
      where a.endpoint_id in (${first}, ${second})`;
    expect(counts).toEqual({ attempts: 2 * events, distinct_attempts: 2 * events, succeeded: 2 * events });
  });

  it('takes over a delivery whose dispatcher died once its lease runs out; the late report is stale', async () => {
    await freshReceiver();
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId);
    // A dispatcher claims the delivery and dies before sending.
    const [claimed] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'service_role', true)`;
      return tx<{ delivery_id: string; attempt_number: number }[]>`
        select delivery_id, attempt_number from private.claim_webhook_deliveries(10, interval '60 seconds', ${clock})`;
    });
    expect(claimed.attempt_number).toBe(1);
    advance(30_000);
    expect((await run()).claimed).toBe(0);
    advance(31_000);
    expect(await run()).toMatchObject({ claimed: 1, succeeded: 1 });
    expect(receiver.requests).toHaveLength(1);

    const [late] = await sql.begin(async (tx) => {
      await tx`select set_config('role', 'service_role', true)`;
      return tx<{ status: string }[]>`
        select private.record_webhook_attempt(${claimed.delivery_id}, 1, ${clock}, 5, 200, null, 'late', null, ${clock}) as status`;
    });
    expect(late.status).toBe('stale');
    expect(await deliveriesOf(endpointId)).toMatchObject([{ status: 'succeeded', attempt_count: 2 }]);
  });

  it('makes no request to an endpoint whose name resolves to a private address at delivery time', async () => {
    await freshReceiver();
    const port = new URL(receiver.url).port;
    const { orgId, endpointId: internal } = await createEndpoint(`http://hooks.customer.test:${port}/in`);
    const { endpointId: metadata } = await createEndpoint('https://metadata-proxy.customer.test/latest', { orgId });
    await emit(orgId);

    const resolve = async (
      hostname: string,
    ) => (hostname === 'hooks.customer.test' ? ['10.0.0.7'] : ['169.254.169.254']);
    const summary = await run({ policy: { allowLoopback: true, resolve } });
    expect(summary).toMatchObject({ claimed: 2, retried: 2 });
    expect(receiver.requests).toHaveLength(0);
    const [internalAttempt] = await attemptsOf(internal);
    expect(internalAttempt).toMatchObject({ status_code: null, outcome: 'failed' });
    expect(internalAttempt.error).toMatch(
      /^unsafe_url: The host hooks\.customer\.test resolves to .*private or reserved/,
    );
    expect((await attemptsOf(metadata))[0]).toMatchObject({
      status_code: null,
      error: expect.stringMatching(/^unsafe_url: /),
    });
  });

  it('refuses loopback receivers unless the policy allows them', async () => {
    await freshReceiver();
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId);
    await run({ policy: { allowLoopback: false } });
    expect(receiver.requests).toHaveLength(0);
    expect((await attemptsOf(endpointId))[0].error).toMatch(/^unsafe_url: /);
  });

  it('does not follow a redirect: a 3xx is a failed attempt', async () => {
    await freshReceiver();
    receiver.respond = (req, res) =>
      req.url === '/moved'
        ? res.writeHead(302, { location: `${receiver.url}/elsewhere` }).end()
        : res.writeHead(200).end();
    const { orgId, endpointId } = await createEndpoint(`${receiver.url}/moved`);
    await emit(orgId);
    expect(await run()).toMatchObject({ claimed: 1, retried: 1 });
    expect(receiver.requests.map((r) => r.path)).toEqual(['/moved']);
    expect((await attemptsOf(endpointId))[0]).toMatchObject({
      status_code: 302,
      outcome: 'failed',
      error: `redirects are not followed (302 to ${receiver.url}/elsewhere)`,
    });
  });

  it('records a receiver slower than the timeout as a failure without a status', async () => {
    await freshReceiver();
    receiver.respond = (_req, res) => setTimeout(() => res.writeHead(200).end(), 1500);
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId);
    const summary = await run({ timeoutMs: 200 });
    expect(summary).toMatchObject({ claimed: 1, retried: 1 });
    expect(summary.durationMs).toBeLessThan(1500);
    const [attempt] = await attemptsOf(endpointId);
    expect(attempt).toMatchObject({ status_code: null, outcome: 'failed', error: 'no response within 200 ms' });
    expect(attempt.duration_ms).toBeGreaterThanOrEqual(190);
  });

  it('keeps the first 4 KB of the response', async () => {
    await freshReceiver();
    receiver.respond = (_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('é'.repeat(8192));
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    await emit(orgId);
    await run();
    const [attempt] = await attemptsOf(endpointId);
    expect(attempt.outcome).toBe('succeeded');
    // 4096 bytes of two-byte characters.
    expect(attempt.response_body).toBe('é'.repeat(2048));
  });

  it('keeps its workers busy: a receiver near the timeout holds up only the worker waiting on it', async () => {
    await freshReceiver();
    const { orgId: slowOrg, endpointId: slow } = await createEndpoint(`${receiver.url}/slow`);
    const { orgId: fastOrg, endpointId: fast } = await createEndpoint(`${receiver.url}/fast`);
    // More than the 8 workers and the 16 a pass used to claim before waiting for all of them.
    const fastDeliveries = 20;
    const timeoutMs = 5000;
    // The slow receiver answers once every fast delivery is recorded, at the latest just before the timeout.
    let fastRecordedWhenSlowAnswered = -1;
    receiver.respond = (req, res) => {
      if (req.url !== '/slow') return res.writeHead(200).end('ok');
      // The first slow answer is the one that counts: later ones come after every fast delivery anyway.
      if (fastRecordedWhenSlowAnswered >= 0) return res.writeHead(200).end('ok');
      void (async () => {
        const latest = Date.now() + timeoutMs - 1000;
        let recorded = 0;
        while (recorded < fastDeliveries && Date.now() < latest) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          [{ recorded }] = await sql<{ recorded: number }[]>`
            select count(*)::int as recorded from public.webhook_attempts where endpoint_id = ${fast}`;
        }
        fastRecordedWhenSlowAnswered = recorded;
        res.writeHead(200).end('ok');
      })();
    };
    // As many slow deliveries as workers: the claims bring them at hand beside the fast ones.
    const slowDeliveries = 8;
    for (let i = 0; i < slowDeliveries; i += 1) await emit(slowOrg, `slow-${i}.pdf`);
    for (let i = 0; i < fastDeliveries; i += 1) await emit(fastOrg, `fast-${i}.pdf`);

    const summary = await run({ timeoutMs });
    const all = fastDeliveries + slowDeliveries;
    expect(summary).toMatchObject({ claimed: all, succeeded: all, stoppedBy: 'idle' });
    expect(fastRecordedWhenSlowAnswered).toBe(fastDeliveries);
    expect((await attemptsOf(slow)).map((a) => a.outcome)).toEqual(Array(slowDeliveries).fill('succeeded'));
  });

  it('shares the workers between orgs: a slow org with 20 endpoints holds back no other org\'s deliveries', async () => {
    await freshReceiver();
    const { orgId: busyOrg } = await createEndpoint(`${receiver.url}/busy/0`);
    // One org, its 20 endpoints all pointing at one receiver that hangs: endpoint by endpoint, none is busy.
    const busyEndpoints = 20;
    for (let i = 1; i < busyEndpoints; i += 1) await createEndpoint(`${receiver.url}/busy/${i}`, { orgId: busyOrg });
    const { orgId: otherOrg, endpointId: other } = await createEndpoint(`${receiver.url}/other`);
    const timeoutMs = 4000;
    let otherRecordedWhenBusyAnswered = -1;
    let release: Promise<void> | null = null;
    const otherDeliveries = 4;
    receiver.respond = (req, res) => {
      if (!req.url?.startsWith('/busy/')) return res.writeHead(200).end('ok');
      // Every busy request hangs until the other org's deliveries are all recorded, at the latest 1 s before the timeout.
      release ??= (async () => {
        const latest = Date.now() + timeoutMs - 1000;
        let recorded = 0;
        while (recorded < otherDeliveries && Date.now() < latest) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          [{ recorded }] = await sql<{ recorded: number }[]>`
            select count(*)::int as recorded from public.webhook_attempts where endpoint_id = ${other}`;
        }
        otherRecordedWhenBusyAnswered = recorded;
      })();
      void release.then(() => res.writeHead(200).end('ok'));
    };
    // The busy org's deliveries are older, so the first claim (16) brings only theirs.
    await emit(busyOrg, 'busy.pdf');
    advance(1000);
    for (let i = 0; i < otherDeliveries; i += 1) await emit(otherOrg, `other-${i}.pdf`);

    const summary = await run({ timeoutMs });
    const all = busyEndpoints + otherDeliveries;
    expect(summary).toMatchObject({ claimed: all, succeeded: all, stoppedBy: 'idle' });
    expect(otherRecordedWhenBusyAnswered).toBe(otherDeliveries);
  });

  it('lets an org have a quarter of the workers while another org has work at hand, and all of them alone', async () => {
    // The claim's SQL stands in as a queue: the busy org's 20 endpoints come first (older), then the other org's.
    const make = (queue: string[]) => {
      const claimer = createClaimer<string>({
        claim: async (size) => queue.splice(0, size),
        maxPerClaim: 16,
        remaining: () => Infinity,
        timeUp: () => false,
        keyOf: (item) => item.split(':').slice(0, 2).join(':'),
        groupOf: (item) => item.split(':')[0],
        slowAfterMs: 1000,
        maxPerReceiver: 4,
        maxPerGroup: 2,
        maxWaitMs: 15_000,
        now: () => 0,
      });
      return claimer;
    };
    const busy = Array.from({ length: 20 }, (_, i) => `busy:e${i}:1`);
    const mixed = make([...busy, 'other:e0:1', 'other:e0:2', 'other:e0:3']);
    const eight = await Promise.all(Array.from({ length: 8 }, () => mixed.next()));
    // Two for the busy org, then a second claim brings the other org's: its two go before the rest of the busy org's,
    // and with both orgs at their cap the spare workers go to the org with less work first.
    expect(eight).toEqual(['busy:e0:1', 'busy:e1:1', 'other:e0:1', 'other:e0:2', 'other:e0:3', 'busy:e2:1', 'busy:e3:1', 'busy:e4:1']);

    // An org alone in the queue gets every worker: none waits idle.
    const alone = make([...busy]);
    expect(await Promise.all(Array.from({ length: 8 }, () => alone.next()))).toEqual(busy.slice(0, 8));
  });

  it('holds a busy org with a deep backlog to 2 workers while another org\'s deliveries wait (20 endpoints × 2, fair2)', async () => {
    const pass = await busyAndOtherOrgPass(2);
    expect(pass.started.size).toBe(pass.queue.length);
    // Every one of the other org's 5 started and ended before any of the busy org's hanging attempts ended.
    expect(pass.releasedByTimer).toBe(false);
    // The busy org never had more than 2 in flight while the other org had a delivery not started.
    expect(pass.busyStartsWhileOtherWaited.length).toBeGreaterThan(0);
    expect(Math.max(...pass.busyStartsWhileOtherWaited.map((s) => s.busyInFlight))).toBe(2);
    // Alone in the queue afterwards, it gets every worker.
    expect(pass.maxBusyInFlight).toBe(8);
  });

  it('lets a busy org past its cap only while the other org\'s one endpoint is at its own (4 of 8 workers, fair2)', async () => {
    const pass = await busyAndOtherOrgPass(1);
    expect(pass.started.size).toBe(pass.queue.length);
    expect(pass.releasedByTimer).toBe(false);
    // No worker idles: with the other org's endpoint at 4 and its org at 2, the spare workers go to the busy org.
    expect(pass.busyStartsWhileOtherWaited.filter((s) => s.busyInFlight > 2 && !s.otherBlocked)).toEqual([]);
    expect(pass.maxBusyInFlight).toBe(8);
  });

  it('stops at its delivery budget and leaves the rest for the next pass', async () => {
    await freshReceiver();
    const { orgId, endpointId } = await createEndpoint(receiver.url);
    for (let i = 0; i < 5; i += 1) await emit(orgId, `doc-${i}.pdf`);
    expect(await run({ maxDeliveries: 3, batchSize: 2 })).toMatchObject({
      claimed: 3,
      batches: 2,
      stoppedBy: 'delivery_budget',
    });
    expect(await run({ maxDeliveries: 3, batchSize: 2 })).toMatchObject({ claimed: 2, stoppedBy: 'idle' });
    expect((await deliveriesOf(endpointId)).every((d) => d.status === 'succeeded')).toBe(true);
  });

  it('leases a batch for longer than its slowest way through', () => {
    // 16 deliveries, 8 at a time, each up to 15 s: 30 s, plus a margin.
    expect(leaseSeconds(16, 8, 15_000)).toBe(60);
    expect(leaseSeconds(1, 8, 200)).toBe(31);
  });
});
