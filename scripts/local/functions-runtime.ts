/**
 * Serves every edge function from one Deno process, for the local stack where
 * Supabase's edge runtime (Docker) is not available. Each `functions/<name>/index.ts`
 * calls `Deno.serve(handler)` at top level; that call is captured instead of
 * opening a port, and requests for `/<name>/...` go to the captured handler.
 *
 * Unlike the hosted runtime, all functions share one isolate, so module-level
 * state (e.g. a database client) is shared between functions here.
 *
 * Environment: FUNCTIONS_RUNTIME_PORT (0 picks a free port), FUNCTIONS_DIR
 * (default: ../../functions), FUNCTIONS_ENTRYPOINTS (JSON `{ name: absolute path }`
 * for functions whose entrypoint config.toml puts elsewhere),
 * FUNCTIONS_RUNTIME_EXIT_WITH_STDIN=1 (exit when stdin closes).
 */
import { pathToFileURL } from 'node:url';
import { corsHeaders } from '../../functions/_shared/cors.ts';
import { errorResponse, HttpError } from '../../functions/_shared/errors.ts';
import { requestIdFrom } from '../../functions/_shared/handler.ts';

type ErrorHook = (error: unknown) => Response | Promise<Response>;

interface LoadedFunction {
  handler?: Deno.ServeHandler<Deno.NetAddr>;
  onError?: ErrorHook;
  bootError?: string;
}

const realServe = Deno.serve.bind(Deno);
/** The function whose module is being evaluated; `Deno.serve` calls are attributed to it. */
let booting: LoadedFunction | null = null;

const stubServer: Deno.HttpServer<Deno.NetAddr> = {
  finished: new Promise<void>(() => undefined),
  addr: { transport: 'tcp', hostname: '127.0.0.1', port: 0 },
  ref: () => undefined,
  unref: () => undefined,
  shutdown: () => Promise.resolve(),
  [Symbol.asyncDispose]: () => Promise.resolve(),
};

function captureServe(...args: unknown[]): Deno.HttpServer<Deno.NetAddr> {
  if (!booting) {
    throw new Error('Deno.serve must be called while the function module loads (at top level), not later');
  }
  if (booting.handler) throw new Error('Deno.serve was called more than once');
  const [first, second] = args;
  const options = isRecord(first) ? first : {};
  const handler = typeof first === 'function' ? first : typeof second === 'function' ? second : options.handler;
  if (typeof handler !== 'function') throw new TypeError('Deno.serve was called without a handler');
  booting.handler = handler as Deno.ServeHandler<Deno.NetAddr>;
  if (typeof options.onError === 'function') booting.onError = options.onError as ErrorHook;
  return stubServer;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

async function discover(functionsDir: URL, overrides: Record<string, string>): Promise<Map<string, URL>> {
  const found = new Map<string, URL>();
  for await (const entry of Deno.readDir(functionsDir)) {
    if (!entry.isDirectory || entry.name.startsWith('_') || entry.name.startsWith('.')) continue;
    const entrypoint = new URL(`${entry.name}/index.ts`, functionsDir);
    try {
      if ((await Deno.stat(entrypoint)).isFile) found.set(entry.name, entrypoint);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  for (const [name, path] of Object.entries(overrides)) found.set(name, pathToFileURL(path));
  return new Map([...found].sort(([a], [b]) => a.localeCompare(b)));
}

/** Imports each function in turn, so every captured `Deno.serve` call belongs to the module being imported. */
async function boot(entrypoints: Map<string, URL>): Promise<Map<string, LoadedFunction>> {
  const loaded = new Map<string, LoadedFunction>();
  (Deno as { serve: unknown }).serve = captureServe;
  for (const [name, entrypoint] of entrypoints) {
    const fn: LoadedFunction = {};
    booting = fn;
    try {
      await import(entrypoint.href);
    } catch (error) {
      fn.bootError = error instanceof Error ? error.message : String(error);
      console.error(`function "${name}" failed to boot:`, error);
    } finally {
      booting = null;
    }
    if (!fn.handler && !fn.bootError) {
      fn.bootError = 'its module did not call Deno.serve(handler)';
      console.error(`function "${name}" failed to boot: ${fn.bootError}`);
    }
    loaded.set(name, fn);
  }
  return loaded;
}

function withCors(response: Response, req: Request): Response {
  for (const [name, value] of Object.entries(corsHeaders(req.headers.get('origin')))) response.headers.set(name, value);
  return response;
}

function functionName(pathname: string): string {
  const segment = pathname.split('/')[1] ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function dispatcher(functions: Map<string, LoadedFunction>): Deno.ServeHandler<Deno.NetAddr> {
  return async (req, info) => {
    const requestId = requestIdFrom(req.headers.get('x-request-id'));
    const name = functionName(new URL(req.url).pathname);
    const fn = functions.get(name);
    if (!fn) {
      return withCors(
        errorResponse(new HttpError(404, 'function_not_found', `No function named "${name}".`), requestId),
        req,
      );
    }
    if (fn.bootError !== undefined || !fn.handler) {
      const message = `Function "${name}" failed to start: ${fn.bootError}`;
      return withCors(errorResponse(new HttpError(500, 'function_boot_error', message), requestId), req);
    }
    try {
      const response = await fn.handler(req, info);
      if (!(response instanceof Response)) throw new TypeError(`Function "${name}" did not return a Response`);
      return response;
    } catch (error) {
      if (fn.onError) {
        try {
          return await fn.onError(error);
        } catch (hookError) {
          console.error(`function "${name}": its onError hook threw`, hookError);
        }
      }
      return withCors(errorResponse(error, requestId), req);
    }
  };
}

function envPort(): number {
  const raw = Deno.env.get('FUNCTIONS_RUNTIME_PORT') ?? '0';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`FUNCTIONS_RUNTIME_PORT must be a port number, got "${raw}"`);
  }
  return port;
}

/**
 * The Node gateway keeps our stdin open and never writes to it; EOF means the
 * gateway is gone (even if it was killed without calling stop()), so no orphaned
 * runtime keeps serving on a port.
 */
function exitWhenStdinCloses(): void {
  (async () => {
    for await (const _chunk of Deno.stdin.readable) {
      // Nothing is ever sent; only the end of the stream matters.
    }
    Deno.exit(0);
  })();
}

async function main(): Promise<void> {
  const dir = Deno.env.get('FUNCTIONS_DIR');
  const functionsDir = dir
    ? pathToFileURL(dir.endsWith('/') ? dir : `${dir}/`)
    : new URL('../../functions/', import.meta.url);
  const overrides: Record<string, string> = JSON.parse(Deno.env.get('FUNCTIONS_ENTRYPOINTS') ?? '{}');
  // A stray rejection in one function must not take down every other function.
  globalThis.addEventListener('unhandledrejection', (event) => {
    console.error('unhandled rejection in a function:', event.reason);
    event.preventDefault();
  });
  const functions = await boot(await discover(functionsDir, overrides));

  if (Deno.env.get('FUNCTIONS_RUNTIME_EXIT_WITH_STDIN') === '1') exitWhenStdinCloses();

  realServe(
    {
      hostname: '127.0.0.1',
      port: envPort(),
      onListen: ({ hostname, port }) => {
        console.log(
          `functions runtime ready http://${hostname}:${port} (${[...functions.keys()].join(', ') || 'no functions'})`,
        );
      },
    },
    dispatcher(functions),
  );
}

try {
  await main();
} catch (error) {
  // Explicitly fatal: the unhandledrejection guard set up in main() would otherwise swallow it.
  console.error('functions runtime failed to start:', error);
  Deno.exit(1);
}
