/**
 * One error shape for every function: `{ "error": { "code", "message" } }`,
 * so clients branch on a stable `code` instead of parsing messages.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
    options: { cause?: unknown } = {},
  ) {
    super(message, options);
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export interface ErrorBody {
  error: { code: string; message: string; request_id?: string };
}

/**
 * Turns anything thrown into a JSON response. Only HttpError messages reach the
 * client: anything else may carry SQL, stack traces or secrets, so it is logged
 * here and replaced by a generic 500. An HttpError is a deliberate answer and is
 * logged only when it wraps an underlying failure (`cause`).
 */
export function errorResponse(error: unknown, requestId?: string): Response {
  const known = error instanceof HttpError;
  const status = known ? error.status : 500;
  if (!known || error.cause !== undefined) {
    console.error(`[${requestId ?? 'no-request-id'}]`, error);
  }
  const body: ErrorBody = {
    error: known
      ? { code: error.code, message: error.message }
      : { code: 'internal_error', message: 'The server failed to process the request.' },
  };
  const headers = new Headers(known ? error.headers : {});
  headers.set('content-type', 'application/json');
  if (requestId) {
    body.error.request_id = requestId;
    headers.set('x-request-id', requestId);
  }
  return new Response(JSON.stringify(body), { status, headers });
}

/** A failure's message as a work item stores it (its last error): at most 1,000 characters, never empty. */
export function failureText(error: unknown): string {
  return ((error instanceof Error ? error.message : String(error)) || 'unknown error').slice(0, 1000);
}
