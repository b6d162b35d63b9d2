import { forEachConcurrently, leaseSeconds } from '../_shared/batch.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import type { DestinationPolicy } from '../_shared/ssrf.ts';
import { type AttemptResult, type ClaimedDelivery, sendAttempt } from './send.ts';

/**
 * One dispatch pass: claim due deliveries (row-locked, so concurrent passes
 * never share one), send them with bounded concurrency, record every attempt
 * (the database decides what happens next), and repeat until nothing is due or
 * the pass's budget is spent. Everything from outside (database, fetch, clock,
 * DNS policy, limits) is injected so tests control it.
 */
export interface DispatchOptions {
  sql: Sql;
  policy: DestinationPolicy;
  fetch?: typeof fetch;
  /** Timestamps written to the database and sent as `webhook-timestamp`. */
  now?: () => Date;
  /** Requests in flight at once. */
  concurrency?: number;
  /** Deliveries claimed per round trip. */
  batchSize?: number;
  /** Stop claiming after this many deliveries; the next wake-up continues. */
  maxDeliveries?: number;
  /** Stop claiming after this much wall-clock time. */
  maxDurationMs?: number;
  /** Per attempt. */
  timeoutMs?: number;
  userAgent?: string;
  log?: (message: string, error?: unknown) => void;
}

export type StopReason = 'idle' | 'delivery_budget' | 'time_budget';

export interface DispatchSummary {
  claimed: number;
  succeeded: number;
  /** Failed and scheduled again. */
  retried: number;
  /** Failed for good: out of attempts, 410 Gone, or the endpoint was disabled. */
  failed: number;
  /** Recorded after the lease ran out and another pass took the delivery over. */
  stale: number;
  /** Sent, but recording failed; the lease runs out and the next pass retries. */
  unrecorded: number;
  batches: number;
  durationMs: number;
  stoppedBy: StopReason;
}

/** What private.record_webhook_attempt answers. */
type RecordedStatus = 'succeeded' | 'pending' | 'failed' | 'stale' | 'gone';

export const DISPATCH_DEFAULTS = {
  concurrency: 8,
  batchSize: 16,
  // Edge functions get about 2 s of CPU and minutes of wall clock per request;
  // 200 signed sends fit the CPU easily, and 20 s leaves room for a last slow batch.
  maxDeliveries: 200,
  maxDurationMs: 20_000,
  timeoutMs: 15_000,
  userAgent: 'assistant-backend-webhooks/1.0',
} as const;

async function claim(sql: Sql, size: number, lease: number, at: Date): Promise<ClaimedDelivery[]> {
  return asServiceRole(sql, (tx) =>
    tx<ClaimedDelivery[]>`
      select delivery_id, attempt_number, message_id, endpoint_id, url, secrets, body
      from private.claim_webhook_deliveries(${size}, make_interval(secs => ${lease}), ${at})`);
}

async function record(sql: Sql, delivery: ClaimedDelivery, attempt: AttemptResult, at: Date): Promise<RecordedStatus> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ status: RecordedStatus }[]>`
      select private.record_webhook_attempt(
        ${delivery.delivery_id}::uuid, ${delivery.attempt_number}::integer, ${attempt.startedAt}::timestamptz,
        ${attempt.durationMs}::integer, ${attempt.statusCode}::integer, ${attempt.error}::text,
        ${attempt.responseBody}::text, ${attempt.retryAfterSeconds}::integer, ${at}::timestamptz
      ) as status`);
  return row.status;
}

export async function dispatch(options: DispatchOptions): Promise<DispatchSummary> {
  const settings = {
    // At least 1: a pass with no worker would claim deliveries and never send them.
    concurrency: Math.max(1, options.concurrency ?? DISPATCH_DEFAULTS.concurrency),
    batchSize: Math.min(500, Math.max(1, options.batchSize ?? DISPATCH_DEFAULTS.batchSize)),
    maxDeliveries: options.maxDeliveries ?? DISPATCH_DEFAULTS.maxDeliveries,
    maxDurationMs: options.maxDurationMs ?? DISPATCH_DEFAULTS.maxDurationMs,
    timeoutMs: options.timeoutMs ?? DISPATCH_DEFAULTS.timeoutMs,
  };
  const now = options.now ?? (() => new Date());
  const send = {
    fetch: options.fetch ?? fetch,
    now,
    policy: options.policy,
    timeoutMs: settings.timeoutMs,
    userAgent: options.userAgent ?? DISPATCH_DEFAULTS.userAgent,
  };
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error));
  const lease = leaseSeconds(settings.batchSize, settings.concurrency, settings.timeoutMs);
  const started = performance.now();
  const summary: DispatchSummary = {
    claimed: 0,
    succeeded: 0,
    retried: 0,
    failed: 0,
    stale: 0,
    unrecorded: 0,
    batches: 0,
    durationMs: 0,
    stoppedBy: 'idle',
  };

  for (;;) {
    if (summary.claimed >= settings.maxDeliveries) {
      summary.stoppedBy = 'delivery_budget';
      break;
    }
    if (performance.now() - started >= settings.maxDurationMs) {
      summary.stoppedBy = 'time_budget';
      break;
    }
    const size = Math.min(settings.batchSize, settings.maxDeliveries - summary.claimed);
    const batch = await claim(options.sql, size, lease, now());
    if (batch.length === 0) break;
    summary.claimed += batch.length;
    summary.batches += 1;
    await forEachConcurrently(batch, settings.concurrency, async (delivery) => {
      const attempt = await sendAttempt(delivery, send);
      let status: RecordedStatus;
      try {
        status = await record(options.sql, delivery, attempt, now());
      } catch (error) {
        // Not fatal for the pass: the lease expires and the delivery is tried again.
        log(`recording attempt ${delivery.attempt_number} of delivery ${delivery.delivery_id} failed`, error);
        summary.unrecorded += 1;
        return;
      }
      if (status === 'succeeded') summary.succeeded += 1;
      else if (status === 'pending') summary.retried += 1;
      else if (status === 'failed') summary.failed += 1;
      else summary.stale += 1;
    });
  }
  summary.durationMs = Math.round(performance.now() - started);
  return summary;
}
