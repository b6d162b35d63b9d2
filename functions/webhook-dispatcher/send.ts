import { HttpError } from '../_shared/errors.ts';
import { pinnedRequest, type PinnedResponse } from '../_shared/pinned-request.ts';
import { type ApprovedDestination, type DestinationPolicy, resolvePublicDestination } from '../_shared/ssrf.ts';
import { signatureHeader } from '../_shared/standard-webhooks.ts';

/** One row of private.claim_webhook_deliveries: what to send, where, signed with which secrets. */
export interface ClaimedDelivery {
  delivery_id: string;
  attempt_number: number;
  /** `webhook-id`: the same for every attempt and replay of an event. */
  message_id: string;
  endpoint_id: string;
  url: string;
  /** Newest first; during a rotation more than one signs. */
  secrets: string[];
  /** The exact JSON text to send and sign; never re-serialised. */
  body: string;
}

/** What happened on one attempt, in the shape private.record_webhook_attempt takes. */
export interface AttemptResult {
  startedAt: Date;
  durationMs: number;
  /** Null when no response arrived (refused URL, network error, timeout). */
  statusCode: number | null;
  error: string | null;
  responseBody: string | null;
  retryAfterSeconds: number | null;
}

export interface SendOptions {
  now: () => Date;
  policy: DestinationPolicy;
  /** For the whole attempt: DNS check, connection, response headers and the body we read. */
  timeoutMs: number;
  userAgent: string;
  /** A trusted root beyond the usual ones: for tests (a receiver with a self-signed certificate) only. */
  ca?: string;
}

/** The attempts table keeps the first 4 KB of a response; reading more only costs time and memory. */
export const MAX_RESPONSE_BYTES = 4096;
/** The longest wait a Retry-After can ask for; the database caps it the same way. */
const MAX_RETRY_AFTER_SECONDS = 86_400;

/**
 * Sends one attempt. Never throws: every failure becomes an AttemptResult,
 * because each attempt must be recorded for the retry schedule to advance.
 */
export async function sendAttempt(delivery: ClaimedDelivery, options: SendOptions): Promise<AttemptResult> {
  const startedAt = options.now();
  const started = performance.now();
  const signal = AbortSignal.timeout(options.timeoutMs);
  const result = (fields: Partial<AttemptResult>): AttemptResult => ({
    startedAt,
    durationMs: Math.max(0, Math.round(performance.now() - started)),
    statusCode: null,
    error: null,
    responseBody: null,
    retryAfterSeconds: null,
    ...fields,
  });

  // Checked before every send, not only when the URL was saved: a name can
  // start resolving to a private address at any time. The request then goes
  // to the addresses checked here and resolves nothing again (DNS rebinding).
  let destination: ApprovedDestination;
  try {
    destination = await untilAborted(resolvePublicDestination(delivery.url, options.policy), signal);
  } catch (error) {
    return result({ error: describeError(error, options.timeoutMs) });
  }

  let response: PinnedResponse;
  try {
    const timestamp = Math.floor(startedAt.getTime() / 1000);
    // Never follows a redirect, which would send the payload to a destination nobody checked.
    response = await pinnedRequest({
      destination,
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': options.userAgent,
        'webhook-id': delivery.message_id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': await signatureHeader(delivery.secrets, delivery.message_id, timestamp, delivery.body),
      },
      body: delivery.body,
      signal,
      // A receiver streaming a huge (or endless) answer costs nothing past this.
      maxBodyBytes: MAX_RESPONSE_BYTES,
      ca: options.ca,
    });
  } catch (error) {
    return result({ error: describeError(error, options.timeoutMs) });
  }

  const status = response.status;
  const responseBody = cleanText(new TextDecoder().decode(response.body));
  let error: string | null = null;
  if (status >= 300 && status < 400) {
    const location = response.headers.get('location');
    error = `redirects are not followed (${status}${location ? ` to ${location}` : ''})`;
  }
  return result({
    statusCode: status,
    error,
    responseBody,
    retryAfterSeconds: status === 429 || status === 503
      ? parseRetryAfter(response.headers.get('retry-after'), options.now())
      : null,
  });
}

/**
 * Retry-After as whole seconds from `now`: either delay-seconds or an HTTP
 * date (RFC 9110 §10.2.3). Null when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, now: Date): number | null {
  if (value === null) return null;
  const text = value.trim();
  let seconds: number;
  if (/^\d+$/.test(text)) {
    seconds = Number(text);
  } else {
    // Every HTTP-date format names its month; Date.parse alone would take "-5" as a year.
    if (!/[A-Za-z]{3}/.test(text)) return null;
    const at = Date.parse(text);
    if (Number.isNaN(at)) return null;
    seconds = Math.ceil((at - now.getTime()) / 1000);
  }
  return Math.min(Math.max(seconds, 0), MAX_RETRY_AFTER_SECONDS);
}

/** Postgres text cannot hold NUL, so a response containing one would fail the whole record. */
function cleanText(text: string): string {
  return text.includes('\u0000') ? text.replaceAll('\u0000', '') : text;
}

function describeError(error: unknown, timeoutMs: number): string {
  if (error instanceof HttpError) return `${error.code}: ${error.message}`;
  if (error instanceof DOMException && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no response within ${timeoutMs} ms`;
  }
  if (error instanceof Error) {
    // A wrapped error's reason (ECONNREFUSED, a TLS error) may be in its cause.
    const cause = error.cause instanceof Error ? error.cause.message : undefined;
    return cleanText(cause && !error.message.includes(cause) ? `${error.message}: ${cause}` : error.message);
  }
  return cleanText(String(error));
}

/** `work`, or the signal's reason once it aborts (DNS lookups take no signal of their own). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
