import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import {
  type AddressInfo,
  connect as netConnect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClaimedDelivery,
  parseRetryAfter,
  sendAttempt,
  type SendOptions,
} from '../../functions/webhook-dispatcher/send.ts';
import { connectionOrder } from '../../functions/_shared/pinned-request.ts';

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

/**
 * A resolver whose first answer is `first` and every later one 10.0.0.7: a name rebound between the SSRF check and
 * the request. Names under .example resolve nowhere else, so a request that resolved again could not connect.
 */
function rebinding(...first: string[]) {
  const asked: string[] = [];
  const resolve = async (hostname: string) => {
    asked.push(hostname);
    return asked.length === 1 ? first : ['10.0.0.7'];
  };
  return { asked, policy: { allowLoopback: true, resolve } };
}

const listen = async (server: Server | TlsServer): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};
const close = (server: Server | TlsServer) => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
};
const options = (overrides: Partial<SendOptions> = {}): SendOptions => ({
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

/**
 * tests/fixtures/test-only-webhook-*.pem: a CA and a certificate it signed for receiver.pinning-test.example (a
 * name no resolver knows), published with the receiver's key for these tests alone.
 */
const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/test-only-webhook-${name}.pem`, import.meta.url), 'utf8');
const ca = fixture('ca.cert');

// Receivers on 127.0.0.1: plain HTTP answering by path, and HTTPS with the test-only certificate.
let server: Server;
let port: number;
let base: string;
let tlsServer: TlsServer;
let tlsPort: number;
const servernames: Array<string | false | null> = [];
const received: Array<{ path: string; headers: IncomingHttpHeaders; body: string }> = [];
beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => received.push({ path: req.url ?? '', headers: req.headers, body }));
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
    } else if (req.url === '/moved') {
      res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' }).end();
    } else if (req.url === '/stall') {
      // Headers and a first chunk, then nothing: the body read runs into the attempt's timeout.
      res.writeHead(200).write('partial');
    } else if (req.url === '/silent') {
      // No answer at all.
    } else {
      res.writeHead(200).end('ok');
    }
  });
  port = await listen(server);
  base = `http://127.0.0.1:${port}`;
  tlsServer = createTlsServer({ cert: fixture('receiver.cert'), key: fixture('receiver.key') }, (req, res) => {
    servernames.push((req.socket as TLSSocket).servername);
    res.writeHead(200).end(`tls ${req.headers.host}`);
  });
  tlsPort = await listen(tlsServer);
  blackhole = await openBlackhole(BLACKHOLE, port);
  rawServer = createNetServer(answerRaw);
  await new Promise<void>((resolve) => rawServer.listen(0, '127.0.0.1', resolve));
  rawBase = `http://127.0.0.1:${(rawServer.address() as AddressInfo).port}`;
});
afterAll(() =>
  Promise.all([
    close(server),
    close(tlsServer),
    blackhole.release(),
    new Promise((resolve) => rawServer.close(resolve)),
  ])
);

/**
 * An address that drops SYNs, like a dead round-robin member or a broken AAAA record: BLACKHOLE (Linux routes all of
 * 127.0.0.0/8 to loopback) on `port`, listened on by a thread that is then blocked so it accepts nothing, with its
 * backlog of 1 filled until a connection goes unanswered. The kernel drops SYNs to a listener whose queue is full.
 */
const BLACKHOLE = '127.0.0.2';
let blackhole: { release(): Promise<void> };
async function openBlackhole(host: string, port: number) {
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const server = require('node:net').createServer();
    server.listen({ host: workerData.host, port: workerData.port, backlog: 1 }, () => {
      parentPort.postMessage('listening');
      Atomics.wait(workerData.gate, 0, 0);
      server.close();
    });
  `,
    { eval: true, workerData: { host, port, gate } },
  );
  await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const fillers: Socket[] = [];
  const connects = (socket: Socket) =>
    new Promise<boolean>((resolve, reject) => {
      socket.once('connect', () => resolve(true));
      socket.once('error', reject);
      setTimeout(() => resolve(false), 200);
    });
  for (let connected = true; connected;) {
    if (fillers.length === 16) throw new Error(`${host}:${port} kept accepting connections`);
    const socket = netConnect({ host, port });
    fillers.push(socket);
    connected = await connects(socket);
    socket.on('error', () => undefined);
  }
  return {
    async release() {
      for (const socket of fillers) socket.destroy();
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      await worker.terminate();
    },
  };
}

/** Answers written byte for byte, by path, once the whole request has arrived. */
const RAW_ANSWERS: Record<string, string> = {
  '/lf': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
  '/lf-chunked': 'HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n2\nok\n3;note=1\n!!!\n0\n\n',
  '/lf-chunks': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\n3\r\n!!!\n0\n\n',
};
let rawServer: NetServer;
let rawBase: string;
function answerRaw(socket: Socket) {
  let request = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    request += chunk;
    const end = request.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: *(\d+)/i.exec(request)?.[1];
    if (end < 0 || request.length < end + 4 + Number(length ?? 0)) return;
    socket.end(RAW_ANSWERS[/^\S+ (\S+)/.exec(request)?.[1] ?? ''] ?? 'HTTP/1.1 404 Not Found\r\n\r\n');
  });
}


describe('one attempt', () => {
  it('connects to the address the check approved, resolving the name once (DNS rebinding)', async () => {
    const { asked, policy } = rebinding('127.0.0.1');
    received.length = 0;
    const result = await sendAttempt(delivery(`http://hooks.rebind-test.example:${port}/in`), options({ policy }));
    expect(result).toMatchObject({ startedAt: NOW, statusCode: 200, error: null, responseBody: 'ok' });
    expect(asked).toEqual(['hooks.rebind-test.example']);
    expect(received).toHaveLength(1);
    // The request names the URL's host, not the address it was pinned to.
    expect(received[0]).toMatchObject({ path: '/in', body: delivery('').body });
    expect(received[0].headers.host).toBe(`hooks.rebind-test.example:${port}`);
  });

  it('sends the Standard Webhooks headers and the body as given', async () => {
    received.length = 0;
    await sendAttempt(delivery(`${base}/in`), options());
    const [{ headers, body }] = received;
    expect(body).toBe(delivery('').body);
    expect(headers['webhook-id']).toBe('msg_0000000000004000800000000000000a');
    expect(headers['webhook-timestamp']).toBe(String(NOW.getTime() / 1000));
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['content-length']).toBe(String(Buffer.byteLength(delivery('').body)));
    expect(headers['user-agent']).toBe('test-agent/1');
  });

  it('records a 3xx without following it', async () => {
    received.length = 0;
    expect(await sendAttempt(delivery(`${base}/moved`), options())).toMatchObject({
      statusCode: 302,
      error: 'redirects are not followed (302 to http://127.0.0.1:1/elsewhere)',
    });
    expect(received.map((r) => r.path)).toEqual(['/moved']);
  });

  it('counts waiting for the answer and reading its body against the attempt timeout', async () => {
    expect(await sendAttempt(delivery(`${base}/silent`), options({ timeoutMs: 150 }))).toMatchObject({
      statusCode: null,
      error: 'no response within 150 ms',
    });
    // Once the status arrived it answers the attempt; the body keeps what arrived.
    const stalled = await sendAttempt(delivery(`${base}/stall`), options({ timeoutMs: 150 }));
    expect(stalled).toMatchObject({ statusCode: 200, error: null, responseBody: 'partial' });
    expect(stalled.durationMs).toBeLessThan(1000);
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

  it('moves on from an address that does not answer after 250 ms and keeps the one that connects', async () => {
    received.length = 0;
    const { policy } = rebinding(BLACKHOLE, '127.0.0.1');
    const result = await sendAttempt(
      delivery(`http://hooks.eyeballs-test.example:${port}/eyeballs`),
      options({ policy, timeoutMs: 5000 }),
    );
    expect(result).toMatchObject({ statusCode: 200, error: null, responseBody: 'ok' });
    expect(result.durationMs).toBeLessThan(2000);
    expect(received.map((r) => r.path)).toEqual(['/eyeballs']);
  });

  it('reads answers whose lines end in a bare LF, in the header block and in chunk-size lines', async () => {
    for (const path of ['/lf', '/lf-chunked', '/lf-chunks']) {
      expect(await sendAttempt(delivery(`${rawBase}${path}`), options()), path).toMatchObject({
        statusCode: 200,
        error: null,
        responseBody: path === '/lf' ? 'ok' : 'ok!!!',
      });
    }
  });

  it('records an unsigned attempt as a failure rather than throwing', async () => {
    const result = await sendAttempt({ ...delivery(`${base}/`), secrets: [] }, options());
    expect(result).toMatchObject({ statusCode: null, error: 'No secret to sign the message with.' });
  });
});

describe('the order addresses are tried in', () => {
  it("alternates IPv6 and IPv4, IPv6 first, each family in the resolver's order", () => {
    expect(connectionOrder(['192.0.2.1', '192.0.2.2', '2001:db8::1', '192.0.2.3', '2001:db8::2'])).toEqual([
      '2001:db8::1',
      '192.0.2.1',
      '2001:db8::2',
      '192.0.2.2',
      '192.0.2.3',
    ]);
    expect(connectionOrder(['192.0.2.2', '192.0.2.1'])).toEqual(['192.0.2.2', '192.0.2.1']);
  });
});

describe('an attempt over TLS to the pinned address', () => {
  it('reaches the receiver by its hostname, verifying its certificate against that name', async () => {
    servernames.length = 0;
    const { asked, policy } = rebinding('127.0.0.1');
    const result = await sendAttempt(
      delivery(`https://receiver.pinning-test.example:${tlsPort}/in`),
      options({ policy, ca }),
    );
    expect(result).toMatchObject({
      statusCode: 200,
      error: null,
      responseBody: `tls receiver.pinning-test.example:${tlsPort}`,
    });
    expect(asked).toHaveLength(1);
    expect(servernames).toEqual(['receiver.pinning-test.example']);
  });

  it('refuses a certificate for another name, and one no trusted root signed', async () => {
    servernames.length = 0;
    const wrongName = await sendAttempt(
      delivery(`https://other.pinning-test.example:${tlsPort}/in`),
      options({ policy: rebinding('127.0.0.1').policy, ca }),
    );
    expect(wrongName.statusCode).toBeNull();
    expect(wrongName.error).toMatch(/does not match certificate's altnames/);
    const untrusted = await sendAttempt(
      delivery(`https://receiver.pinning-test.example:${tlsPort}/in`),
      options({ policy: rebinding('127.0.0.1').policy }),
    );
    expect(untrusted.statusCode).toBeNull();
    expect(untrusted.error).toMatch(/unable to verify the first certificate|self-signed|issuer/);
    expect(servernames, 'no request reached the handler').toEqual([]);
  });
});

/**
 * The same attempts from Deno, the dispatcher's runtime, where the connection is Deno.connect + Deno.startTls
 * (pinned-request.ts): a child process runs sendAttempt against the receivers above.
 */
describe('under Deno', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const sendModule = new URL('../../functions/webhook-dispatcher/send.ts', import.meta.url).href;
  const script = (input: unknown) => `
    import { sendAttempt } from ${JSON.stringify(sendModule)};
    const input = ${JSON.stringify(input)};
    const results = [];
    for (const attempt of input.attempts) {
      const asked = [];
      const first = attempt.addresses ?? ['127.0.0.1'];
      const resolve = async (hostname) => (asked.push(hostname), asked.length === 1 ? first : ['10.0.0.7']);
      const result = await sendAttempt(attempt.delivery, {
        now: () => new Date(input.now),
        policy: { allowLoopback: true, resolve },
        timeoutMs: attempt.timeoutMs ?? 2000,
        userAgent: 'test-agent/1',
        ca: attempt.ca,
      });
      const { statusCode, error, responseBody, durationMs } = result;
      results.push({ asked, statusCode, error, responseBody, durationMs });
    }
    console.log(JSON.stringify(results));
  `;
  type Outcome = {
    asked: string[];
    statusCode: number | null;
    error: string | null;
    responseBody: string | null;
    durationMs: number;
  };
  type Attempt = { delivery: ClaimedDelivery; ca?: string; timeoutMs?: number; addresses?: string[] };
  const runInDeno = (attempts: Attempt[]) =>
    new Promise<Outcome[]>((resolve, reject) =>
      execFile(
        `${root}node_modules/.bin/deno`,
        ['eval', '--config', `${root}deno.json`, script({ now: NOW.toISOString(), attempts })],
        { cwd: root, timeout: 30_000 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout))),
      )
    );

  it('pins plain HTTP and TLS to the approved address, verifies the name, and keeps the error texts', async () => {
    received.length = 0;
    servernames.length = 0;
    const [plain, tls, wrongName, untrusted, refused, silent, stalled] = await runInDeno([
      { delivery: delivery(`http://hooks.rebind-test.example:${port}/in`) },
      { delivery: delivery(`https://receiver.pinning-test.example:${tlsPort}/in`), ca },
      { delivery: delivery(`https://other.pinning-test.example:${tlsPort}/in`), ca },
      { delivery: delivery(`https://receiver.pinning-test.example:${tlsPort}/in`) },
      { delivery: delivery('http://127.0.0.1:1/') },
      { delivery: delivery(`${base}/silent`), timeoutMs: 150 },
      { delivery: delivery(`${base}/stall`), timeoutMs: 150 },
    ]);
    expect(plain).toMatchObject({
      asked: ['hooks.rebind-test.example'],
      statusCode: 200,
      error: null,
      responseBody: 'ok',
    });
    expect(received.find((r) => r.path === '/in')?.headers.host).toBe(`hooks.rebind-test.example:${port}`);
    expect(tls).toMatchObject({ asked: ['receiver.pinning-test.example'], statusCode: 200, error: null });
    expect(servernames).toEqual(['receiver.pinning-test.example']);
    expect(wrongName).toMatchObject({ statusCode: null, error: expect.stringMatching(/not valid for name/) });
    expect(untrusted).toMatchObject({ statusCode: null, error: expect.stringMatching(/UnknownIssuer/) });
    expect(refused).toMatchObject({
      statusCode: null,
      error: expect.stringMatching(/^connect ECONNREFUSED 127\.0\.0\.1:1/),
    });
    expect(silent).toMatchObject({ statusCode: null, error: 'no response within 150 ms' });
    expect(stalled).toMatchObject({ statusCode: 200, error: null, responseBody: 'partial' });
  });

  it('moves on from an address that does not answer, and reads bare-LF answers', async () => {
    received.length = 0;
    const [eyeballs, lf, lfChunked, lfChunks] = await runInDeno([
      {
        delivery: delivery(`http://hooks.eyeballs-test.example:${port}/eyeballs-deno`),
        addresses: [BLACKHOLE, '127.0.0.1'],
        timeoutMs: 5000,
      },
      { delivery: delivery(`${rawBase}/lf`) },
      { delivery: delivery(`${rawBase}/lf-chunked`) },
      { delivery: delivery(`${rawBase}/lf-chunks`) },
    ]);
    expect(eyeballs).toMatchObject({ statusCode: 200, error: null, responseBody: 'ok' });
    expect(eyeballs.durationMs).toBeLessThan(2000);
    expect(received.map((r) => r.path)).toEqual(['/eyeballs-deno']);
    expect(lf).toMatchObject({ statusCode: 200, error: null, responseBody: 'ok' });
    expect(lfChunked).toMatchObject({ statusCode: 200, error: null, responseBody: 'ok!!!' });
    expect(lfChunks).toMatchObject({ statusCode: 200, error: null, responseBody: 'ok!!!' });
  });
});
