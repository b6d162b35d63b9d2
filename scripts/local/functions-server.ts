/**
 * The local stand-in for Supabase's functions gateway: a Node HTTP server on the
 * API port that serves `/functions/v1/<name>[/...]`, enforces `verify_jwt` as
 * configured in supabase/config.toml, and proxies (streaming both ways) to one
 * Deno process running scripts/local/functions-runtime.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline, Readable } from 'node:stream';
import { bearerToken, verifyJwt } from '../../functions/_shared/auth.ts';
import { corsHeaders } from '../../functions/_shared/cors.ts';
import type { EnvReader } from '../../functions/_shared/env.ts';
import { errorResponse, HttpError } from '../../functions/_shared/errors.ts';
import { requestIdFrom } from '../../functions/_shared/handler.ts';

export interface FunctionsServerOptions {
  host?: string;
  /** The gateway's port; 0 picks a free one (see `url`). */
  port: number;
  /** The project root: deno.json, node_modules/.bin/deno and scripts/local live here. */
  rootDir: string;
  /** Environment for the functions (SUPABASE_DB_URL, keys, JWT secret, ...); SUPABASE_URL defaults to the gateway's URL. */
  env: Record<string, string>;
  /** Where the functions live; default `<rootDir>/functions`. */
  functionsDir?: string;
  /** Default `<rootDir>/supabase/config.toml`. */
  configPath?: string;
  /** Per-function `verify_jwt` overrides, applied over config.toml. */
  verifyJwt?: Record<string, boolean>;
  /** Receives the runtime's output (function logs) line by line; default stderr. */
  log?: (line: string) => void;
  readyTimeoutMs?: number;
  /**
   * Other services on the same API port, by path prefix (e.g. `/storage/v1` for
   * the Storage stand-in), as Supabase's API gateway routes them. A service answers its own preflight
   * (OPTIONS) and may set access-control-allow-headers; the gateway adds the origin rules.
   */
  services?: Record<string, (request: Request) => Promise<Response>>;
}

export interface FunctionsServer {
  /** The gateway's base URL; functions are at `${url}/functions/v1/<name>`. */
  url: string;
  stop(): Promise<void>;
}

export interface FunctionConfig {
  verifyJwt?: boolean;
  entrypoint?: string;
}

const FUNCTIONS_PREFIX = '/functions/v1';
// The Supabase CLI's rule for function slugs.
const FUNCTION_NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * Reads the `[functions.<name>]` tables of a config.toml, keys `verify_jwt` and
 * `entrypoint` only. Not a TOML parser: other tables, dotted keys and
 * multi-line values are skipped, which is all the CLI's own config needs here.
 */
export function parseFunctionsConfig(toml: string): Map<string, FunctionConfig> {
  const functions = new Map<string, FunctionConfig>();
  let current: FunctionConfig | null = null;
  toml.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('[')) {
      const table = /^\[\s*functions\.(?:"([^"]+)"|([A-Za-z0-9_-]+))\s*\]\s*(?:#.*)?$/.exec(line);
      const name = table?.[1] ?? table?.[2];
      if (name === undefined) {
        current = null;
      } else {
        current = functions.get(name) ?? {};
        functions.set(name, current);
      }
      return;
    }
    if (!current) return;
    const entry = /^(verify_jwt|entrypoint)\s*=\s*(.*)$/.exec(line);
    if (!entry) return;
    const [, key, rest] = entry;
    const where = `config.toml line ${index + 1}`;
    if (key === 'verify_jwt') {
      const value = /^(true|false)\s*(?:#.*)?$/.exec(rest);
      if (!value) throw new Error(`${where}: verify_jwt must be true or false`);
      current.verifyJwt = value[1] === 'true';
    } else {
      const value = /^"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$/.exec(rest) ?? /^'([^']*)'\s*(?:#.*)?$/.exec(rest);
      if (!value) throw new Error(`${where}: entrypoint must be a quoted string`);
      current.entrypoint = value[1].replace(/\\(["\\])/g, '$1');
    }
  });
  return functions;
}

function readFunctionsConfig(configPath: string): Map<string, FunctionConfig> {
  return existsSync(configPath) ? parseFunctionsConfig(readFileSync(configPath, 'utf8')) : new Map();
}

/** Lines written to the stream, as they arrive. */
function onLines(stream: NodeJS.ReadableStream, fn: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', fn);
}

function startRuntime(options: {
  rootDir: string;
  env: Record<string, string>;
  log: (line: string) => void;
  timeoutMs: number;
}): { child: ChildProcess; ready: Promise<string> } {
  const deno = join(options.rootDir, 'node_modules/.bin/deno');
  const args = [
    'run',
    '--allow-all',
    '--config',
    join(options.rootDir, 'deno.json'),
    join(options.rootDir, 'scripts/local/functions-runtime.ts'),
  ];
  const child = spawn(deno, args, {
    cwd: options.rootDir,
    env: { ...process.env, ...options.env },
    // Its own process group, so stop() can signal Deno together with anything a function spawned.
    detached: true,
    // stdin stays open and unused: the runtime exits when it closes, i.e. when this process dies.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const recentErrors: string[] = [];
  /** Resolves to the runtime's URL once it listens. */
  const ready = new Promise<string>((resolveReady, rejectReady) => {
    const timer = setTimeout(() => {
      fail(`did not become ready within ${options.timeoutMs / 1000} s`);
    }, options.timeoutMs);
    const fail = (reason: string) => {
      clearTimeout(timer);
      const tail = recentErrors.length > 0 ? `\n${recentErrors.join('\n')}` : '';
      rejectReady(new Error(`The Deno functions runtime ${reason}.${tail}`));
    };
    onLines(child.stdout!, (line) => {
      const match = /^functions runtime ready (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolveReady(match[1]);
      }
      options.log(line);
    });
    onLines(child.stderr!, (line) => {
      recentErrors.push(line);
      if (recentErrors.length > 20) recentErrors.shift();
      options.log(line);
    });
    child.once('error', (error) => fail(`could not be started (${deno}): ${error.message}`));
    child.once('exit', (code, signal) => {
      const how = signal ?? `code ${code}`;
      options.log(`functions runtime exited (${how})`);
      fail(`exited (${how}) before it was ready`);
    });
  });
  return { child, ready };
}

async function stopProcessGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // Already gone.
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolveListen, rejectListen) => {
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE') {
        rejectListen(
          new Error(
            `Cannot start the functions gateway: port ${port} on ${host} is already in use (another local stack?).`,
          ),
        );
      } else {
        rejectListen(new Error(`Cannot start the functions gateway on ${host}:${port}: ${error.message}`));
      }
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

/** Writes a fetch Response (our JSON errors and preflights) to a Node response. */
async function send(res: ServerResponse, response: Response): Promise<void> {
  const body = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(body);
}

function forwardedHeaders(req: IncomingMessage, requestId: string): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  headers['x-request-id'] = requestId;
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-proto'] = 'http';
  if (req.headers.host) headers['x-forwarded-host'] = req.headers.host;
  return headers;
}

export async function startFunctionsServer(options: FunctionsServerOptions): Promise<FunctionsServer> {
  const host = options.host ?? '127.0.0.1';
  const rootDir = resolve(options.rootDir);
  const log = options.log ?? ((line: string) => process.stderr.write(`[functions] ${line}\n`));
  const configPath = options.configPath ?? join(rootDir, 'supabase/config.toml');
  const config = readFunctionsConfig(configPath);
  const env: EnvReader = (name) => options.env[name];

  const entrypoints: Record<string, string> = {};
  for (const [name, fn] of config) {
    // As in the Supabase CLI, config.toml paths are relative to the supabase/ directory.
    if (fn.entrypoint) entrypoints[name] = resolve(dirname(configPath), fn.entrypoint);
  }
  const verifyJwtFor = (name: string) => options.verifyJwt?.[name] ?? config.get(name)?.verifyJwt ?? true;

  // Keep-alive to the runtime saves a TCP handshake per request.
  const agent = new http.Agent({ keepAlive: true });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    runtimeUrl: Promise<string>,
  ): Promise<void> {
    const rawUrl = req.url ?? '/';
    const service = Object.entries(options.services ?? {}).find(([prefix]) => rawUrl.startsWith(`${prefix}/`));
    if (service) {
      // The service answers its preflight too: it knows the request headers it reads (Storage's x-upsert, ...).
      const response = await service[1](toWebRequest(req, `http://${host}${rawUrl}`));
      response.headers.set('x-request-id', requestId);
      await send(res, withCors(response, req.headers.origin, env));
      return;
    }
    const match = /^\/functions\/v1\/([^/?#]*)/.exec(rawUrl);
    if (!match) {
      throw new HttpError(
        404,
        'not_found',
        `Nothing is served at ${rawUrl.split('?')[0]}; functions are at ${FUNCTIONS_PREFIX}/<name>.`,
      );
    }
    const name = match[1];
    if (!FUNCTION_NAME.test(name)) throw new HttpError(404, 'function_not_found', `No function named "${name}".`);

    if (req.method === 'OPTIONS') {
      res.writeHead(204, { ...corsHeaders(req.headers.origin, env), 'x-request-id': requestId });
      res.end();
      return;
    }
    if (verifyJwtFor(name)) await verifyJwt(bearerToken(req.headers.authorization), { env });

    const target = new URL(rawUrl.slice(FUNCTIONS_PREFIX.length), await runtimeUrl);
    await proxy(req, res, target, requestId);
  }

  function proxy(req: IncomingMessage, res: ServerResponse, target: URL, requestId: string): Promise<void> {
    return new Promise((resolveProxy, rejectProxy) => {
      const upstream = http.request(target, { method: req.method, headers: forwardedHeaders(req, requestId), agent });
      let clientGone = false;
      upstream.once('error', (error) => {
        if (clientGone) resolveProxy();
        else if (res.headersSent) res.destroy(error);
        else {rejectProxy(
            new HttpError(502, 'bad_gateway', 'The functions runtime did not answer.', {}, { cause: error }),
          );}
      });
      upstream.once('response', (answer) => {
        const headers: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
        }
        headers['x-request-id'] = requestId;
        res.writeHead(answer.statusCode ?? 502, headers);
        // Send the headers now: an SSE client must see the response start before the first event.
        res.flushHeaders();
        // Each chunk is written as it arrives; if the client goes away, the runtime's stream is cancelled.
        pipeline(answer, res, () => resolveProxy());
      });
      // Not pipeline(): on an upstream error it would destroy the client socket before the 502 is sent.
      req.pipe(upstream);
      req.once('error', (error) => upstream.destroy(error));
      res.once('close', () => {
        if (res.writableFinished) return;
        // The client left first: cancel the function's work (its req.signal aborts).
        clientGone = true;
        upstream.destroy();
      });
    });
  }

  // Listening first finds a taken port before Deno spends seconds booting.
  const server = http.createServer();
  const port = await listen(server, host, options.port);
  const url = `http://${host}:${port}`;
  const started = startRuntime({
    rootDir,
    env: {
      // The gateway's own address unless told otherwise: with port 0 only now is it known.
      SUPABASE_URL: url,
      ...options.env,
      FUNCTIONS_RUNTIME_PORT: '0',
      FUNCTIONS_DIR: resolve(options.functionsDir ?? join(rootDir, 'functions')),
      FUNCTIONS_ENTRYPOINTS: JSON.stringify(entrypoints),
      FUNCTIONS_RUNTIME_EXIT_WITH_STDIN: '1',
    },
    log,
    timeoutMs: options.readyTimeoutMs ?? 60_000,
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const incomingId = req.headers['x-request-id'];
    const requestId = requestIdFrom(typeof incomingId === 'string' ? incomingId : undefined);
    handle(req, res, requestId, started.ready).catch((error: unknown) =>
      send(res, withCors(errorResponse(error, requestId), req.headers.origin, env)).catch((sendError) =>
        res.destroy(sendError)
      )
    );
  });

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      server.closeAllConnections();
      agent.destroy();
      await stopProcessGroup(started.child);
      await closed;
    })();
    return stopping;
  };

  try {
    await started.ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

function toWebRequest(req: IncomingMessage, url: string): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === 'string') headers.set(name, value);
    else if (Array.isArray(value)) for (const item of value) headers.append(name, item);
  }
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  return new Request(url, {
    method: req.method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    // Node's fetch needs this for a streamed request body.
    ...(hasBody ? { duplex: 'half' } : {}),
  } as RequestInit);
}

/** The gateway's CORS headers on a service's answer; an allow list of request headers the service set stands. */
function withCors(response: Response, origin: string | undefined, env: EnvReader): Response {
  for (const [name, value] of Object.entries(corsHeaders(origin, env))) {
    if (name !== 'access-control-allow-headers' || !response.headers.has(name)) response.headers.set(name, value);
  }
  return response;
}
