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

/** The part of Deno's namespace used here; absent under Node. */
interface DenoConn {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}
interface DenoNet {
  connect(options: { hostname: string; port: number; transport: 'tcp' }): Promise<DenoConn>;
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

async function denoConnect(deno: DenoNet, target: Target): Promise<Connection> {
  let conn: DenoConn;
  try {
    conn = await deno.connect({ hostname: target.address, port: target.port, transport: 'tcp' });
  } catch (error) {
    const code = error instanceof Error ? DENO_ERROR_CODES[error.name] : undefined;
    throw code ? new Error(`connect ${code} ${target.address}:${target.port}`, { cause: error }) : error;
  }
  if (target.tls) {
    const { hostname, ca } = target.tls;
    try {
      conn = await deno.startTls(conn, { hostname, ...(ca ? { caCerts: [ca] } : {}) });
    } catch (error) {
      conn.close();
      throw error;
    }
  }
  const open = conn;
  const buffer = new Uint8Array(16 * 1024);
  return {
    async read() {
      const size = await open.read(buffer);
      return size === null ? null : buffer.slice(0, size);
    },
    async write(bytes) {
      for (let at = 0; at < bytes.length;) at += await open.write(bytes.subarray(at));
    },
    close() {
      try {
        open.close();
      } catch {
        // Already closed.
      }
    },
  };
}

function nodeConnect(target: Target): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket: Socket = target.tls
      ? tlsConnect({ host: target.address, port: target.port, servername: target.tls.hostname, ca: target.tls.ca })
      : netConnect({ host: target.address, port: target.port });
    socket.once('error', reject);
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      socket.off('error', reject);
      // Later failures surface through the reads and writes below.
      socket.on('error', () => undefined);
      const chunks = socket[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
      resolve({
        async read() {
          const next = await chunks.next();
          return next.done ? null : next.value;
        },
        write: (bytes) => new Promise((done, fail) => socket.write(bytes, (error) => (error ? fail(error) : done()))),
        close: () => socket.destroy(),
      });
    });
  });
}

/** The approved addresses in turn until one connects; the last failure if none does. */
async function connectPinned(targets: Target[]): Promise<Connection> {
  const deno = (globalThis as { Deno?: DenoNet }).Deno;
  let failure: unknown;
  for (const target of targets) {
    try {
      return deno ? await denoConnect(deno, target) : await nodeConnect(target);
    } catch (error) {
      failure = error;
    }
  }
  throw failure;
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

/** Status line and header fields; 1xx interim answers (103 Early Hints) are skipped. */
async function readHead(incoming: Incoming): Promise<Head> {
  for (;;) {
    const text = new TextDecoder('latin1').decode(await incoming.until('\r\n\r\n', MAX_HEAD_BYTES));
    const [statusLine, ...lines] = text.split('\r\n');
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
        const line = new TextDecoder().decode(await incoming.until('\r\n', 1024));
        const length = parseInt(line.split(';')[0].trim(), 16);
        if (!Number.isFinite(length) || length <= 0) break;
        if (!(await copy(length))) break;
        if (size < limit) await incoming.until('\r\n', 2);
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

  const targets = addresses.map((address) => ({
    address,
    port,
    ...(tls ? { tls: { hostname, ca: options.ca } } : {}),
  }));
  const connection = await untilAborted(connectPinned(targets), signal, (late) => late.close());
  // From here an abort closes the connection, which ends any read or write under way.
  const onAbort = () => connection.close();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const incoming = new Incoming(connection);
    const head = await untilAborted(
      connection.write(request).then(() => readHead(incoming)),
      signal,
    );
    return { ...head, body: await readBody(incoming, head, options.maxBodyBytes) };
  } finally {
    signal.removeEventListener('abort', onAbort);
    connection.close();
  }
}
