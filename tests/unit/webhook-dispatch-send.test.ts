import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClaimedDelivery,
  parseRetryAfter,
  sendAttempt,
  type SendOptions,
} from '../../functions/webhook-dispatcher/send.ts';

const NOW = new Date('2026-11-23T10:00:00Z');
const delivery = (url: string): ClaimedDelivery => ({
  delivery_id: '00000000-0000-4000-8000-000000000001',
  attempt_number: 1,
  message_id: 'msg_0000000000004000800000000000000a',
  endpoint_id: '00000000-0000-4000-8000-000000000002',
  url,
  secrets: [`whsec_${Buffer.alloc(32, 7).toString('base64')}`],
  body: '{"type":"document.failed","timestamp":"2026-11-23T10:00:00.000Z","data":{}}',
});
const options = (overrides: Partial<SendOptions> = {}): SendOptions => ({
  fetch,
  now: () => NOW,
  policy: { allowLoopback: true },
  timeoutMs: 2000,
  userAgent: 'test-agent/1',
  ...overrides,
});

describe('Retry-After', () => {
  it('reads delay-seconds and HTTP dates relative to the clock, caps at a day, ignores garbage', () => {
    expect(parseRetryAfter('120', NOW)).toBe(120);
    expect(parseRetryAfter(' 0 ', NOW)).toBe(0);
    expect(parseRetryAfter(new Date(NOW.getTime() + 90_000).toUTCString(), NOW)).toBe(90);
    expect(parseRetryAfter(new Date(NOW.getTime() - 90_000).toUTCString(), NOW)).toBe(0);
    expect(parseRetryAfter('99999999999', NOW)).toBe(86_400);
    expect(parseRetryAfter('soon', NOW)).toBeNull();
    expect(parseRetryAfter('-5', NOW)).toBeNull();
    expect(parseRetryAfter(null, NOW)).toBeNull();
  });
});

describe('one attempt', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/endless') {
        // Never ends on its own: only a reader that stops and cancels gets past it.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = 'x'.repeat(1024);
        const timer = setInterval(() => res.write(chunk), 1);
        res.on('close', () => clearInterval(timer));
      } else if (req.url === '/nul') {
        res.writeHead(500).end('bad\u0000byte');
      } else if (req.url === '/busy') {
        res.writeHead(429, { 'retry-after': '30' }).end();
      } else {
        res.writeHead(200).end('ok');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends the Standard Webhooks headers, the body as given, and no redirect following', async () => {
    let seen: { url: string; init: RequestInit } | undefined;
    const fakeFetch: typeof fetch = async (input, init) => {
      seen = { url: String(input), init: init ?? {} };
      return new Response('fine', { status: 202 });
    };
    const result = await sendAttempt(
      delivery('https://hooks.example.com/in'),
      options({
        fetch: fakeFetch,
        policy: { allowLoopback: false, resolve: async () => ['93.184.215.14'] },
      }),
    );
    expect(result).toMatchObject({ startedAt: NOW, statusCode: 202, error: null, retryAfterSeconds: null });
    const headers = new Headers(seen!.init.headers);
    expect(seen!.url).toBe('https://hooks.example.com/in');
    expect(seen!.init).toMatchObject({ method: 'POST', redirect: 'manual', body: delivery('').body });
    expect(headers.get('webhook-id')).toBe('msg_0000000000004000800000000000000a');
    expect(headers.get('webhook-timestamp')).toBe(String(NOW.getTime() / 1000));
    expect(headers.get('webhook-signature')).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(headers.get('content-type')).toBe('application/json');
    expect(headers.get('user-agent')).toBe('test-agent/1');
  });

  it('reads 4 KB of an endless body and cancels the rest', async () => {
    const result = await sendAttempt(delivery(`${base}/endless`), options());
    expect(result.statusCode).toBe(200);
    expect(result.responseBody).toHaveLength(4096);
    expect(result.durationMs).toBeLessThan(1000);
  });

  it('drops NUL characters, which Postgres text cannot store', async () => {
    expect((await sendAttempt(delivery(`${base}/nul`), options())).responseBody).toBe('badbyte');
  });

  it('passes Retry-After on 429', async () => {
    expect(await sendAttempt(delivery(`${base}/busy`), options())).toMatchObject({
      statusCode: 429,
      retryAfterSeconds: 30,
    });
  });

  it('reports a refused connection with its cause and no status', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const result = await sendAttempt(delivery(`http://127.0.0.1:${port}/`), options());
    expect(result.statusCode).toBeNull();
    expect(result.error).toMatch(/ECONNREFUSED/);
  });

  it('counts a DNS lookup that hangs against the attempt timeout', async () => {
    const result = await sendAttempt(
      delivery('https://slow-dns.example.com/'),
      options({
        policy: { allowLoopback: false, resolve: () => new Promise<string[]>(() => undefined) },
        timeoutMs: 100,
      }),
    );
    expect(result).toMatchObject({ statusCode: null, error: 'no response within 100 ms' });
  });

  it('records an unsigned attempt as a failure rather than throwing', async () => {
    const result = await sendAttempt({ ...delivery(`${base}/`), secrets: [] }, options());
    expect(result).toMatchObject({ statusCode: null, error: 'No secret to sign the message with.' });
  });
});
