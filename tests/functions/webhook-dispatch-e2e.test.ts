/**
 * The webhook-dispatcher function over HTTP (gateway + real Deno), and the
 * whole chain on the embedded stack with its scheduler on: event → delivery →
 * pg_cron / the deliveries trigger → pg_net → dispatcher → receiver.
 *
 * Its own stack rather than the run's shared database: the scheduler and the
 * Vault secrets that let pg_net wake the dispatcher would otherwise send
 * other test files' deliveries and fill pg_net's queue under their feet.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUserToken } from '../../scripts/local/keys.ts';
import { type Stack, startStack } from '../../scripts/local/stack.ts';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

let stack: Stack;
let sql: postgres.Sql;
let receiver: Server;
let receiverUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body, at: Date.now() });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  stack = await startStack({ dbPort: 0, apiPort: 0, functions: true, scheduler: true });
  sql = postgres(stack.dbUrl, { max: 2, onnotice: () => undefined });
});

afterAll(async () => {
  await sql?.end({ timeout: 1 });
  await stack?.stop();
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
});

const dispatcher = (init: RequestInit = {}) =>
  fetch(`${stack.apiUrl}/functions/v1/webhook-dispatcher`, { method: 'POST', ...init });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('webhook-dispatcher over the gateway and Deno', () => {
  it('refuses a request without a token (401), with a user token or the anon key (403), and other methods (405)', async () => {
    const anonymous = await dispatcher();
    expect(anonymous.status).toBe(401);
    expect((await anonymous.json()).error.code).toBe('missing_authorization');

    const user = await signUserToken({ id: randomUUID(), email: 'someone@example.com' });
    for (const token of [user, stack.keys.anonKey]) {
      const response = await dispatcher({ headers: bearer(token) });
      expect(response.status).toBe(403);
      expect(response.headers.get('content-type')).toBe('application/json');
      expect((await response.json()).error).toMatchObject({ code: 'service_role_required' });
    }

    const get = await dispatcher({ method: 'GET', headers: bearer(stack.keys.serviceRoleKey) });
    expect(get.status).toBe(405);
  });

  it('runs a pass for the service role and reports it', async () => {
    const response = await dispatcher({ headers: bearer(stack.keys.serviceRoleKey), body: '{}' });
    expect(response.status).toBe(200);
    const summary = await response.json();
    expect(summary).toMatchObject({
      claimed: expect.any(Number),
      succeeded: expect.any(Number),
      retried: 0,
      failed: 0,
    });
    expect(['idle', 'delivery_budget', 'time_budget']).toContain(summary.stoppedBy);
  });

  it('delivers an emitted event with nobody calling the dispatcher (pg_cron / trigger → pg_net → function)', async () => {
    const orgId = randomUUID();
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    await sql`insert into public.organizations (id, name, slug) values (${orgId}, 'E2E', ${`e2e-${
      orgId.slice(0, 8)
    }`})`;
    const [{ id: endpointId }] = await sql<{ id: string }[]>`
      insert into public.webhook_endpoints (org_id, url) values (${orgId}, ${receiverUrl}) returning id`;
    await sql`insert into private.webhook_endpoint_secrets (endpoint_id, secret) values (${endpointId}, ${secret})`;

    const emittedAt = Date.now();
    const [{ id: eventId }] = await sql<{ id: string }[]>`
      select private.emit_event(${orgId}, 'document.failed',
        ${sql.json({ document_id: randomUUID(), name: 'a.pdf', reason: 'x' })}) as id`;

    const messageId = `msg_${eventId.replaceAll('-', '')}`;
    const deadline = Date.now() + 25_000;
    while (!received.some((r) => r.headers['webhook-id'] === messageId) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const delivered = received.filter((r) => r.headers['webhook-id'] === messageId);
    expect(delivered).toHaveLength(1);
    const [{ headers, body, at }] = delivered;
    // The real clock throughout, so the package's own timestamp tolerance applies too.
    expect(
      new Webhook(secret).verify(body, {
        'webhook-id': String(headers['webhook-id']),
        'webhook-timestamp': String(headers['webhook-timestamp']),
        'webhook-signature': String(headers['webhook-signature']),
      }),
    ).toMatchObject({ type: 'document.failed', data: { name: 'a.pdf' } });
    // Woken by the trigger right away, not left for the 10-second cron.
    expect(at - emittedAt).toBeLessThan(8000);

    // The attempt is recorded once the function has written it.
    const recordDeadline = Date.now() + 5000;
    let attempts: Array<{ attempt_number: number; status_code: number; outcome: string }> = [];
    while (Date.now() < recordDeadline) {
      attempts = await sql`
        select attempt_number, status_code, outcome from public.webhook_attempts where endpoint_id = ${endpointId}`;
      if (attempts.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(attempts).toEqual([{ attempt_number: 1, status_code: 204, outcome: 'succeeded' }]);
    const [delivery] = await sql<{ status: string }[]>`
      select status from public.webhook_deliveries where endpoint_id = ${endpointId}`;
    expect(delivery.status).toBe('succeeded');
    // pg_net's request reached the function with the Vault's service-role key. Its response row is written
    // when the function has answered, which can be a moment after the attempt above was recorded.
    const responseDeadline = Date.now() + 5000;
    let responses: Array<{ status_code: number }> = [];
    while (Date.now() < responseDeadline) {
      responses = await sql<{ status_code: number }[]>`select status_code from net._http_response`;
      if (responses.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(responses.length).toBeGreaterThan(0);
  });
});
