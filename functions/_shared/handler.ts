import { corsHeaders, preflightResponse } from './cors.ts';
import { type EnvReader, processEnv } from './env.ts';
import { errorResponse } from './errors.ts';
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
 * headers on every response), a request id, and thrown errors turned into
 * `{ error: { code, message } }` responses (Postgres errors no endpoint
 * mapped: see httpErrorFromUnmappedPostgres).
 */
export function createHandler(
  fn: FunctionHandler,
  options: { env?: EnvReader } = {},
): (req: Request) => Promise<Response> {
  const env = options.env ?? processEnv;
  return async (req) => {
    const requestId = requestIdFrom(req.headers.get('x-request-id'));
    const origin = req.headers.get('origin');
    let response: Response;
    if (req.method === 'OPTIONS') {
      response = preflightResponse(origin, env);
    } else {
      try {
        response = await fn(req, { requestId });
        if (!(response instanceof Response)) throw new TypeError('The handler did not return a Response');
      } catch (error) {
        response = errorResponse(httpErrorFromUnmappedPostgres(error), requestId);
      }
    }
    return withHeaders(response, { ...corsHeaders(origin, env), 'x-request-id': requestId });
  };
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
