import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ApprovedDestination } from './ssrf.ts';

/**
 * One HTTP/1.1 request to a URL the SSRF guard approved, over a connection
 * opened to one of the addresses it approved: the name is never resolved
 * again, so a name whose answer changes after the check (DNS rebinding)
 * cannot steer the request elsewhere. TLS sends the URL's host as SNI and
 * verifies the certificate against it, not against the address. Redirects
 * are not followed; each request has its own connection, closed at the end.
 * The addresses are raced as RFC 8305 (Happy Eyeballs) does, so one that
 * drops SYNs (a broken AAAA record, a dead round-robin member) costs 250 ms,
 * not the attempt. Bare-LF line ends are read as fetch reads them.
 *
 * The connection is raw TCP/TLS rather than fetch or node:http: fetch takes
 * no address, and the Supabase Edge Runtime's node:http is fetch underneath
 * and throws "Not implemented: ClientRequest.options.lookup". Under Deno (the
 * Edge Runtime, the local stack) it is Deno.connect + Deno.startTls; under
 * Node (vitest) node:net + node:tls. The HTTP exchange is the same code.
 */
export interface PinnedRequest {
  destination: ApprovedDestination;
  method: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** Ends the whole exchange: connection, TLS, request, response headers and the body read. */
  signal: AbortSignal;
  /** The most of the response body read; the rest is left unread and the connection closed. */
  maxBodyBytes: number;
  /** A trusted root beyond the usual ones: for tests and private CAs only. */
  ca?: string;
}

export interface PinnedResponse {
  status: number;
  headers: Headers;
  /**
   * At most `maxBodyBytes`, de-chunked. A body cut short by the cap, the
   * signal or a reset keeps what arrived: the status has already answered.
   */
  body: Uint8Array;
}

/** Response headers past this are refused rather than buffered. */
const MAX_HEAD_BYTES = 64 * 1024;

interface Connection {
  /** The next bytes; null at the end of the stream. */
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
  close(): void;
}

interface Target {
  address: string;
  port: number;
  /** For TLS: the name sent as SNI and checked against the certificate. */
  tls?: { hostname: string; ca?: string };
}

/** A TCP connection not used yet: `start` the exchange over it (TLS first when the target asks), or `close` it. */
interface Opened {
  start(): Promise<Connection>;
  close(): void;
}

/** The part of Deno's namespace used here; absent under Node. */
interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}
interface DenoNet {
  /** `signal` gives up on a pending connect; a runtime without it (older Edge Runtimes) ignores it. */
  connect(options: { hostname: string; port: number; transport: 'tcp'; signal: AbortSignal }): Promise<DenoConn>;
  startTls(conn: DenoConn, options: { hostname: string; caCerts?: string[] }): Promise<DenoConn>;
}

/** Deno reports errno-style failures by name; the attempt log keeps Node's codes, which are what people search for. */
const DENO_ERROR_CODES: Record<string, string> = {
  ConnectionRefused: 'ECONNREFUSED',
  ConnectionReset: 'ECONNRESET',
  ConnectionAborted: 'ECONNABORTED',
  TimedOut: 'ETIMEDOUT',
  AddrNotAvailable: 'EADDRNOTAVAIL',
  NetworkUnreachable: 'ENETUNREACH',
  HostUnreachable: 'EHOSTUNREACH',
};

async function denoOpen(deno: DenoNet, target: Target, signal: AbortSignal): Promise<Opened> {
  let conn: DenoConn;
  try {
    conn = await deno.connect({ hostname: target.address, port: target.port, transport: 'tcp', signal });
  } catch (error) {
    const code = error instanceof Error ? DENO_ERROR_CODES[error.name] : undefined;
    throw code ? new Error(`connect ${code} ${target.address}:${target.port}`, { cause: error }) : error;
  }
  const close = (open: DenoConn) => {
    try {
      open.close();
    } catch {
      // Already closed, or handed over to TLS.
    }
  };
  let closed = false;
  let current = conn;
  return {
    async start() {
      if (target.tls) {
        const { hostname, ca } = target.tls;
        try {
          current = await deno.startTls(conn, { hostname, ...(ca ? { caCerts: [ca] } : {}) });
        } catch (error) {
          close(conn);
          throw error;
        }
        // Closed while the handshake ran.
        if (closed) close(current);
      }
      const open = current;
      const buffer = new Uint8Array(16 * 1024);
      return {
        async read() {
          const size = await open.read(buffer);
          return size === null ? null : buffer.slice(0, size);
        },
        async write(bytes) {
          for (let at = 0; at < bytes.length;) at += await open.write(bytes.subarray(at));
        },
        close: () => close(open),
      };
    },
    close() {
      closed = true;
      close(current);
    },
  };
}

function nodeOpen(target: Target, signal: AbortSignal): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.address, port: target.port });
    const onAbort = () => socket.destroy(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    // Failures after the connect surface through the TLS handshake, the reads and the writes.
    socket.on('error', reject);
    socket.once('close', () => signal.removeEventListener('abort', onAbort));
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      let secure: Socket | undefined;
      resolve({
        async start() {
          if (target.tls) secure = await nodeStartTls(socket, target.tls);
          return nodeConnection(secure ?? socket);
        },
        close() {
          secure?.destroy();
          socket.destroy();
        },
      });
    });
  });
}

function nodeStartTls(socket: Socket, { hostname, ca }: NonNullable<Target['tls']>): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ socket, servername: hostname, ca });
    // Failures after the handshake surface through the reads and the writes.
    secure.on('error', reject);
    secure.once('secureConnect', () => resolve(secure));
  });
}

function nodeConnection(socket: Socket): Connection {
  const chunks = socket[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  return {
    async read() {
      const next = await chunks.next();
      return next.done ? null : next.value;
    },
    write: (bytes) => new Promise((done, fail) => socket.write(bytes, (error) => (error ? fail(error) : done()))),
    close: () => socket.destroy(),
  };
}

/** How long an address has to connect before the next one starts too (RFC 8305 §5 recommends 250 ms). */
const ATTEMPT_DELAY_MS = 250;

/** IPv6 and IPv4 alternately, IPv6 first (RFC 8305 §4), each family in the resolver's order. */
export function connectionOrder(addresses: string[]): string[] {
  const v6 = addresses.filter((address) => isIP(address) === 6);
  const v4 = addresses.filter((address) => isIP(address) !== 6);
  return Array.from({ length: Math.max(v6.length, v4.length) }, (_, i) => [v6[i], v4[i]])
    .flat()
    .filter((address) => address !== undefined);
}

/**
 * TCP to the first target that connects: each starts when the one before has
 * failed or has not connected within ATTEMPT_DELAY_MS, the rest are given up
 * (and closed should they connect later). Rejects with the last failure when
 * every target failed, and with the signal's reason when it aborts first.
 */
function connectFirst(targets: Target[], signal: AbortSignal): Promise<Opened> {
  const deno = (globalThis as { Deno?: DenoNet }).Deno;
  return new Promise((resolve, reject) => {
    const pending = new Set<AbortController>();
    let next = 0;
    let settled = false;
    let failure: unknown;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      for (const attempt of pending) attempt.abort();
    };
    const onAbort = () => {
      settle();
      reject(signal.reason);
    };
    const startNext = () => {
      clearTimeout(timer);
      if (settled) return;
      if (next === targets.length) {
        if (pending.size === 0) {
          settle();
          reject(failure);
        }
        return;
      }
      const target = targets[next++];
      const attempt = new AbortController();
      pending.add(attempt);
      (deno ? denoOpen(deno, target, attempt.signal) : nodeOpen(target, attempt.signal)).then(
        (opened) => {
          pending.delete(attempt);
          if (settled) return opened.close();
          settle();
          resolve(opened);
        },
        (error) => {
          pending.delete(attempt);
          failure = error;
          startNext();
        },
      );
      if (next < targets.length) timer = setTimeout(startNext, ATTEMPT_DELAY_MS);
    };
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    startNext();
  });
}

/** `work`, or the signal's reason once it aborts; a value that arrives too late is handed to `discard`. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal, discard?: (late: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      reject(signal.reason);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => (aborted ? discard?.(value) : resolve(value)),
      (error) => reject(error),
    ).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Buffered reads from a connection. */
class Incoming {
  private buffered = new Uint8Array(0);
  private ended = false;

  constructor(private readonly connection: Connection) {}

  /** Reads more into the buffer; false at the end of the stream. */
  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const chunk = await this.connection.read();
    if (chunk === null || chunk.length === 0) {
      this.ended = chunk === null;
      return !this.ended;
    }
    const joined = new Uint8Array(this.buffered.length + chunk.length);
    joined.set(this.buffered);
    joined.set(chunk, this.buffered.length);
    this.buffered = joined;
    return true;
  }

  /** The bytes before `delimiter`, consumed with it. Throws when the stream ends first or `limit` passes. */
  async until(delimiter: string, limit: number): Promise<Uint8Array> {
    const pattern = new TextEncoder().encode(delimiter);
    for (let from = 0;;) {
      const at = indexOf(this.buffered, pattern, from);
      if (at >= 0) {
        const before = this.buffered.slice(0, at);
        this.buffered = this.buffered.slice(at + pattern.length);
        return before;
      }
      if (this.buffered.length > limit) throw new Error(`the response's header exceeds ${limit} bytes`);
      from = Math.max(0, this.buffered.length - pattern.length + 1);
      if (!(await this.more())) throw new Error('the connection closed before a complete response header');
    }
  }

  /** A line ended by LF, without it or a CR before it (RFC 9112 §2.2 lets a recipient take a bare LF as the end). */
  async line(limit: number): Promise<Uint8Array> {
    const line = await this.until('\n', limit);
    return line.at(-1) === 0x0d ? line.subarray(0, -1) : line;
  }

  /** Up to `size` bytes, fewer only at the end of the stream (then empty). */
  async take(size: number): Promise<Uint8Array> {
    while (this.buffered.length === 0 && (await this.more()));
    const taken = this.buffered.slice(0, size);
    this.buffered = this.buffered.slice(taken.length);
    return taken;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

interface Head {
  status: number;
  headers: Headers;
}

/** The lines up to the empty one that ends a header block, MAX_HEAD_BYTES at most. */
async function readHeadLines(incoming: Incoming): Promise<string[]> {
  const decoder = new TextDecoder('latin1');
  const lines: string[] = [];
  for (let left = MAX_HEAD_BYTES;;) {
    const line = await incoming.line(left);
    if (line.length === 0) return lines;
    left -= line.length + 1;
    if (left < 0) throw new Error(`the response's header exceeds ${MAX_HEAD_BYTES} bytes`);
    lines.push(decoder.decode(line));
  }
}

/** Status line and header fields; 1xx interim answers (103 Early Hints) are skipped. */
async function readHead(incoming: Incoming): Promise<Head> {
  for (;;) {
    const [statusLine = '', ...lines] = await readHeadLines(incoming);
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match) throw new Error('the response is not HTTP/1.1');
    const status = Number(match[1]);
    if (status >= 100 && status < 200) continue;
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      try {
        headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      } catch {
        // A field Headers cannot hold (an invalid name or value) is left out rather than failing the answer.
      }
    }
    return { status, headers };
  }
}

/** At most `limit` bytes of the body; a read that fails or is cut off keeps what arrived. */
async function readBody(incoming: Incoming, head: Head, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const keep = (bytes: Uint8Array) => {
    const part = bytes.subarray(0, limit - size);
    parts.push(part);
    size += part.length;
  };
  /** Appends up to `length` bytes of the body; false when the stream ended first. */
  const copy = async (length: number): Promise<boolean> => {
    for (let left = length; left > 0 && size < limit;) {
      const bytes = await incoming.take(Math.min(left, limit - size));
      if (bytes.length === 0) return false;
      keep(bytes);
      left -= bytes.length;
    }
    return true;
  };
  try {
    if (head.status === 204 || head.status === 304) {
      // No body, whatever the header says.
    } else if (/(^|,)\s*chunked\s*$/i.test(head.headers.get('transfer-encoding') ?? '')) {
      while (size < limit) {
        const line = new TextDecoder().decode(await incoming.line(1024));
        const length = parseInt(line.split(';')[0].trim(), 16);
        if (!Number.isFinite(length) || length <= 0) break;
        if (!(await copy(length))) break;
        if (size < limit) await incoming.line(2);
      }
    } else {
      const declared = head.headers.get('content-length');
      await copy(declared !== null && /^\d+$/.test(declared.trim()) ? Number(declared) : Infinity);
    }
  } catch {
    // Keep what arrived.
  }
  const body = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    body.set(part, at);
    at += part.length;
  }
  return body;
}

function requestBytes(options: PinnedRequest, body: Uint8Array | undefined): Uint8Array {
  const { url } = options.destination;
  // Framing fields are this module's to write.
  const framing = /^(host|content-length|connection|transfer-encoding)$/i;
  const fields: Array<[string, string]> = [
    ['host', url.host],
    ...Object.entries(options.headers).filter(([name]) => !framing.test(name)),
    ...(body ? [['content-length', String(body.byteLength)] as [string, string]] : []),
    ['connection', 'close'],
  ];
  for (const [name, value] of fields) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value)) {
      throw new TypeError(`The header ${name} cannot be sent.`);
    }
  }
  const head = `${options.method} ${url.pathname || '/'}${url.search} HTTP/1.1\r\n` +
    fields.map(([name, value]) => `${name}: ${value}\r\n`).join('') + '\r\n';
  const headBytes = new TextEncoder().encode(head);
  if (!body) return headBytes;
  const bytes = new Uint8Array(headBytes.length + body.length);
  bytes.set(headBytes);
  bytes.set(body, headBytes.length);
  return bytes;
}

/** Rejects with the signal's reason, or the connection's error, until the response header has arrived. */
export async function pinnedRequest(options: PinnedRequest): Promise<PinnedResponse> {
  const { url, addresses } = options.destination;
  const { signal } = options;
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`Unsupported protocol ${url.protocol}`);
  }
  if (addresses.length === 0 || addresses.some((address) => isIP(address) === 0)) {
    throw new TypeError('A pinned request needs the approved IP addresses.');
  }
  const tls = url.protocol === 'https:';
  const port = url.port ? Number(url.port) : tls ? 443 : 80;
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const body = typeof options.body === 'string' ? new TextEncoder().encode(options.body) : options.body;
  const request = requestBytes(options, body);

  const targets = connectionOrder(addresses).map((address) => ({
    address,
    port,
    ...(tls ? { tls: { hostname, ca: options.ca } } : {}),
  }));
  const opened = await connectFirst(targets, signal);
  // From here an abort closes the connection, which ends the handshake or any read or write under way.
  const onAbort = () => opened.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const connection = await untilAborted(opened.start(), signal, (late) => late.close());
    const incoming = new Incoming(connection);
    const head = await untilAborted(
      connection.write(request).then(() => readHead(incoming)),
      signal,
    );
    return { ...head, body: await readBody(incoming, head, options.maxBodyBytes) };
  } finally {
    signal.removeEventListener('abort', onAbort);
    opened.close();
  }
}
