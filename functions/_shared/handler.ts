import { corsHeaders, preflightResponse } from './cors.ts';
import { type EnvReader, processEnv } from './env.ts';
import { errorResponse } from './errors.ts';
import { assertUtf8Query } from './http.ts';
import { httpErrorFromUnmappedPostgres } from './pg-errors.ts';

export interface HandlerContext {
  /** Echoed in the `x-request-id` response header; quote it in logs. */
  requestId: string;
}

export type FunctionHandler = (req: Request, ctx: HandlerContext) => Response | Promise<Response>;

// Incoming ids end up in logs and response headers, so only plain tokens are reused.
const REUSABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's `x-request-id` when it is a plain token, otherwise a fresh one. */
export function requestIdFrom(incoming: string | null | undefined): string {
  return incoming && REUSABLE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
}

/**
 * Wraps a function's logic with what every endpoint needs: CORS (preflight and
 * headers on every response), a request id, thrown errors turned into
 * `{ error: { code, message } }` responses (Postgres errors no endpoint
 * mapped: see httpErrorFromUnmappedPostgres), a query that is not UTF-8
 * refused (assertUtf8Query), HEAD answered as GET without the body, and
 * `Cache-Control: no-store` on every answer that sets no Cache-Control of
 * its own (most carry an org's data).
 */
export function createHandler(
  fn: FunctionHandler,
  options: {
    env?: EnvReader;
    /**
     * Paths whose GET acts (the OAuth callback redeems its code): HEAD there is
     * not served as GET, so a link scanner's HEAD changes nothing (405).
     */
    headNotServed?: (pathname: string) => boolean;
  } = {},
): (req: Request) => Promise<Response> {
  const env = options.env ?? processEnv;
  const headServed = (req: Request) => !options.headNotServed?.(new URL(req.url).pathname);
  return async (req) => {
    const requestId = requestIdFrom(req.headers.get('x-request-id'));
    const origin = req.headers.get('origin');
    let response: Response;
    if (req.method === 'OPTIONS') {
      response = preflightResponse(origin, env);
    } else {
      try {
        assertUtf8Query(new URL(req.url));
        response = await fn(req.method === 'HEAD' && headServed(req) ? asGet(req) : req, { requestId });
        if (!(response instanceof Response)) throw new TypeError('The handler did not return a Response');
      } catch (error) {
        response = errorResponse(httpErrorFromUnmappedPostgres(error), requestId);
      }
      response = await withHttpSemantics(response, req.method === 'HEAD', headServed(req));
    }
    return withHeaders(response, { ...corsHeaders(origin, env), 'x-request-id': requestId });
  };
}

/** A HEAD request as the GET it asks about (HEAD carries no body). */
function asGet(req: Request): Request {
  return new Request(req.url, { method: 'GET', headers: req.headers, signal: req.signal });
}

/**
 * The answer with `no-store` unless it set its own Cache-Control, and HEAD in
 * a 405's Allow wherever GET is (HEAD is served as GET); for a HEAD request,
 * without its body (headAnswer).
 */
async function withHttpSemantics(response: Response, head: boolean, headServed: boolean): Promise<Response> {
  const headers = new Headers(response.headers);
  if (!headers.has('cache-control')) headers.set('cache-control', 'no-store');
  const allow = headers.get('allow')?.split(',').map((method) => method.trim());
  if (headServed && allow?.includes('GET') && !allow.includes('HEAD')) {
    headers.set('allow', allow.flatMap((method) => (method === 'GET' ? ['GET', 'HEAD'] : [method])).join(', '));
  }
  if (head && headServed) return await headAnswer(response, headers);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * A GET's answer as HEAD's: no body, but the Content-Length the GET would have
 * sent (the runtime would say 0). A GET answer is a JSON page, read here to
 * count it; an event stream has no length and is canceled unread.
 */
async function headAnswer(response: Response, headers: Headers): Promise<Response> {
  if (response.body && !headers.has('content-length')) {
    if (headers.get('content-type')?.startsWith('text/event-stream')) {
      await response.body.cancel().catch(() => undefined);
    } else {
      headers.set('content-length', String((await response.arrayBuffer()).byteLength));
    }
  }
  return new Response(null, { status: response.status, statusText: response.statusText, headers });
}

/** A copy of `response` with `extra` headers added; the body stream is passed through, not read. */
function withHeaders(response: Response, extra: Record<string, string>): Response {
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(extra)) {
    if (name === 'vary') headers.append(name, value);
    else if (name === 'x-request-id' || !headers.has(name)) headers.set(name, value);
  }
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
