/**
 * One HTTP exchange with a provider: a timeout, the body read as JSON (or
 * text), and the retry policy for throttling, shared by google.ts and
 * microsoft.ts. Mapping an error answer to our errors is the provider
 * module's job (each has its own error shape); this module only decides
 * whether to wait and try again.
 *
 * Throttling policy: availability and booking are interactive (a dashboard,
 * a bot on a phone call), so a throttled request is retried within the same
 * call only when the wait is short: up to `maxRetries` times (default 2),
 * each after the provider's Retry-After (or 1 s, 2 s, ... when it gave none),
 * as long as that wait is at most `maxRetryDelaySeconds` (default 5). A longer
 * wait, or throttling that persists, throws CalendarRateLimitError with the
 * wait, and the caller says "try again in N seconds" instead of holding the
 * request (and an edge function's wall clock) open.
 */
import { retryAfterSeconds } from '../retry-after.ts';
import { CalendarProviderError, CalendarRateLimitError, type CalendarProvider } from './types.ts';

export interface HttpOptions {
  fetch?: typeof fetch;
  /** Per attempt. Default 10 s. */
  timeoutMs?: number;
  /** Retries of a throttled request. Default 2. */
  maxRetries?: number;
  /** The longest wait retried within the call. Default 5 s. */
  maxRetryDelaySeconds?: number;
  /** Injected by tests to record the waits instead of sleeping. */
  sleep?: (ms: number) => Promise<void>;
}

export interface HttpAnswer {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the raw text when the body is not JSON, or undefined when empty. */
  body: unknown;
}

export interface SendRequest {
  /** For messages: 'Google freeBusy', 'Graph calendarView'. */
  what: string;
  url: string;
  init: RequestInit;
  /** Whether this answer is throttling worth waiting out. */
  throttled: (answer: HttpAnswer) => boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Sends with the throttling policy above; any other answer, error or not, is returned for the caller to map. */
export async function send(provider: CalendarProvider, options: HttpOptions, request: SendRequest): Promise<HttpAnswer> {
  const fetchImpl = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRetries = options.maxRetries ?? 2;
  const maxDelay = options.maxRetryDelaySeconds ?? 5;
  const sleep = options.sleep ?? defaultSleep;

  for (let attempt = 0; ; attempt += 1) {
    const answer = await once(provider, fetchImpl, timeoutMs, request);
    if (!request.throttled(answer)) return answer;
    const asked = retryAfterSeconds(answer.headers.get('retry-after'));
    const wait = asked ?? 2 ** attempt;
    if (attempt >= maxRetries || wait > maxDelay) {
      throw new CalendarRateLimitError(
        provider,
        `${request.what} was throttled (${answer.status}); retry after ${wait} s.`,
        wait,
      );
    }
    await sleep(wait * 1000);
  }
}

async function once(
  provider: CalendarProvider,
  fetchImpl: typeof fetch,
  timeoutMs: number,
  request: SendRequest,
): Promise<HttpAnswer> {
  let response: Response;
  let text: string;
  try {
    response = await fetchImpl(request.url, { ...request.init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    text = await response.text();
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
    throw new CalendarProviderError(
      provider,
      `${request.what} failed: ${timedOut ? `no answer within ${timeoutMs} ms` : 'the provider could not be reached'}.`,
      { status: 0, retryable: true, cause: error },
    );
  }
  let body: unknown;
  if (text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  return { status: response.status, headers: response.headers, body };
}

/** `application/x-www-form-urlencoded` as token endpoints take it. */
export function formBody(fields: Record<string, string | undefined>): URLSearchParams {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) form.set(key, value);
  return form;
}

/** A base URL without its trailing slashes, so paths can be appended. */
export function trimBase(url: string): string {
  return url.replace(/\/+$/u, '');
}
