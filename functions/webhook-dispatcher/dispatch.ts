import { leaseSeconds } from '../_shared/batch.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import type { DestinationPolicy } from '../_shared/ssrf.ts';
import { createClaimer, type StopReason } from './claims.ts';
import { type AttemptResult, type ClaimedDelivery, sendAttempt } from './send.ts';

/**
 * One dispatch pass: `concurrency` workers take claimed deliveries (row-
 * locked, so concurrent passes never share one) as they come free, send
 * them, record each attempt (the database decides what happens next), and go
 * on until nothing is due or the pass's budget is spent. A slow receiver
 * holds at most half the workers, and one org at most a quarter, while other
 * orgs have work the workers may take (claims.ts).
 * Everything from outside (database, clock, DNS policy, limits) is injected
 * so tests control it; the sending itself is the production path (send.ts).
 */
export interface DispatchOptions {
  sql: Sql;
  policy: DestinationPolicy;
  /** Timestamps written to the database and sent as `webhook-timestamp`. */
  now?: () => Date;
  /** Requests in flight at once: the pass's workers. */
  concurrency?: number;
  /** At most this many deliveries per claim (default twice the workers); the rest of a claim waits at hand for free workers. */
  batchSize?: number;
  /** Stop claiming after this many deliveries; the next wake-up continues. */
  maxDeliveries?: number;
  /** Stop claiming after this much wall-clock time; attempts under way finish. */
  maxDurationMs?: number;
  /** Per attempt. */
  timeoutMs?: number;
  userAgent?: string;
  log?: (message: string, error?: unknown) => void;
}

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
  /**
   * Not sent: after waiting at hand, the delivery was no longer this pass's attempt (canceled, or taken over after
   * its lease) or its endpoint was disabled or repointed. A repointed one goes to the new URL once its lease runs out.
   */
  dropped: number;
  /** Claims that returned deliveries. */
  batches: number;
  durationMs: number;
  stoppedBy: StopReason;
}

/** What private.record_webhook_attempt answers. */
type RecordedStatus = 'succeeded' | 'pending' | 'failed' | 'stale' | 'gone';

/** A receiver that has not answered an attempt of this pass within this long gets no more workers while others have work. */
const SLOW_RECEIVER_MS = 1000;

/**
 * A claimed delivery with its endpoint's org, the tenant the pass shares its workers between. Null only for an
 * endpoint created after the claim's statement began (its snapshot does not see it): the delivery then counts as
 * its own tenant.
 */
type Claimed = ClaimedDelivery & { org_id: string | null };

/** A delivery that waited at hand longer than this is checked again before it is sent (claims.ts). */
const RECHECK_AFTER_MS = 1000;

export const DISPATCH_DEFAULTS = {
  concurrency: 8,
  // Edge functions get about 2 s of CPU and minutes of wall clock per request;
  // 200 signed sends fit the CPU easily, and 20 s leaves room for the last attempts to finish.
  maxDeliveries: 200,
  maxDurationMs: 20_000,
  timeoutMs: 15_000,
  userAgent: 'assistant-backend-webhooks/1.0',
} as const;

async function claim(sql: Sql, size: number, lease: number, at: Date): Promise<Claimed[]> {
  return asServiceRole(sql, (tx) =>
    tx<Claimed[]>`
      select c.delivery_id, c.attempt_number, c.message_id, c.endpoint_id, c.url, c.secrets, c.body, e.org_id
      from private.claim_webhook_deliveries(${size}, make_interval(secs => ${lease}), ${at}) with ordinality c
      left join public.webhook_endpoints e on e.id = c.endpoint_id
      -- The claim's turn order, which a join need not keep.
      order by c.ordinality`);
}

/**
 * Whether a claimed delivery is still what was claimed: still sending, as the same attempt, to an endpoint still
 * enabled at the same URL. One query, asked only of deliveries that waited at hand (an admin may have disabled or
 * repointed the endpoint meanwhile, and the claim's URL and secrets would then be stale).
 */
async function stillCurrent(sql: Sql, delivery: ClaimedDelivery): Promise<boolean> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ current: boolean }[]>`
      select exists (
        select 1
        from public.webhook_deliveries d
        join public.webhook_endpoints e on e.id = d.endpoint_id
        where d.id = ${delivery.delivery_id}::uuid
          and d.status = 'sending'
          and d.attempt_count = ${delivery.attempt_number}::integer
          and e.enabled
          and e.url = ${delivery.url}::text
      ) as current`);
  return row.current;
}

/**
 * The URL the attempt went to is the claim's: the endpoint may have been repointed since, and an answer from the
 * old URL then concerns only its delivery, not the endpoint (20261123006800).
 */
async function record(sql: Sql, delivery: ClaimedDelivery, attempt: AttemptResult, at: Date): Promise<RecordedStatus> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ status: RecordedStatus }[]>`
      select private.record_webhook_attempt(
        ${delivery.delivery_id}::uuid, ${delivery.attempt_number}::integer, ${attempt.startedAt}::timestamptz,
        ${attempt.durationMs}::integer, ${attempt.statusCode}::integer, ${attempt.error}::text,
        ${attempt.responseBody}::text, ${attempt.retryAfterSeconds}::integer, ${at}::timestamptz,
        ${delivery.url}::text
      ) as status`);
  return row.status;
}

export async function dispatch(options: DispatchOptions): Promise<DispatchSummary> {
  // At least 1: a pass with no worker would claim deliveries and never send them.
  const concurrency = Math.max(1, options.concurrency ?? DISPATCH_DEFAULTS.concurrency);
  const settings = {
    concurrency,
    // Two per worker by default: a claim ranks the whole due queue, so fewer claims carry more (claims.ts).
    batchSize: Math.min(500, Math.max(1, options.batchSize ?? 2 * concurrency)),
    maxDeliveries: options.maxDeliveries ?? DISPATCH_DEFAULTS.maxDeliveries,
    maxDurationMs: options.maxDurationMs ?? DISPATCH_DEFAULTS.maxDurationMs,
    timeoutMs: options.timeoutMs ?? DISPATCH_DEFAULTS.timeoutMs,
  };
  const now = options.now ?? (() => new Date());
  const send = {
    now,
    policy: options.policy,
    timeoutMs: settings.timeoutMs,
    userAgent: options.userAgent ?? DISPATCH_DEFAULTS.userAgent,
  };
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error));
  // A claimed delivery waits at hand at most one timeout, or, when its org is at its cap, until the pass stops
  // claiming (its time); then at most two claims' worth wait at hand, every worker comes free within one attempt
  // and takes one of them, and the delivery takes its own attempt (claims.ts).
  const lease = leaseSeconds(2 * settings.batchSize + settings.concurrency, settings.concurrency, settings.timeoutMs) +
    Math.ceil(Math.max(settings.timeoutMs, settings.maxDurationMs) / 1000);
  const started = performance.now();
  const summary: DispatchSummary = {
    claimed: 0,
    succeeded: 0,
    retried: 0,
    failed: 0,
    stale: 0,
    unrecorded: 0,
    dropped: 0,
    batches: 0,
    durationMs: 0,
    stoppedBy: 'idle',
  };
  /** When each delivery came to hand (claims.ts's clock). */
  const claimedAt = new WeakMap<Claimed, number>();
  const claimer = createClaimer({
    claim: async (size) => {
      const claimed = await claim(options.sql, size, lease, now());
      summary.claimed += claimed.length;
      const at = performance.now();
      for (const delivery of claimed) claimedAt.set(delivery, at);
      return claimed;
    },
    maxPerClaim: settings.batchSize,
    remaining: () => settings.maxDeliveries - summary.claimed,
    timeUp: () => performance.now() - started >= settings.maxDurationMs,
    keyOf: (delivery) => delivery.endpoint_id,
    groupOf: (delivery) => delivery.org_id ?? delivery.endpoint_id,
    slowAfterMs: SLOW_RECEIVER_MS,
    maxPerReceiver: Math.ceil(settings.concurrency / 2),
    maxPerGroup: Math.ceil(settings.concurrency / 4),
    maxWaitMs: settings.timeoutMs,
  });

  /** False for a delivery that waited at hand and is no longer what was claimed; a failed check sends, as before it. */
  const sendable = async (delivery: Claimed): Promise<boolean> => {
    const since = claimedAt.get(delivery);
    if (since === undefined || performance.now() - since <= RECHECK_AFTER_MS) return true;
    try {
      return await stillCurrent(options.sql, delivery);
    } catch (error) {
      log(`checking delivery ${delivery.delivery_id} before sending it failed; sending it as claimed`, error);
      return true;
    }
  };

  const attempt = async (delivery: Claimed) => {
    if (!(await sendable(delivery))) {
      summary.dropped += 1;
      return;
    }
    const result = await sendAttempt(delivery, send);
    let status: RecordedStatus;
    try {
      status = await record(options.sql, delivery, result, now());
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
  };
  const worker = async () => {
    for (let delivery = await claimer.next(); delivery; delivery = await claimer.next()) {
      try {
        await attempt(delivery);
      } finally {
        claimer.done(delivery);
      }
    }
  };
  await Promise.all(Array.from({ length: settings.concurrency }, worker));

  // A failed claim ends the pass as it did before, once every attempt under way is recorded.
  const failure = claimer.failure();
  if (failure) throw failure.error;
  summary.batches = claimer.claims();
  summary.stoppedBy = claimer.stoppedBy();
  summary.durationMs = Math.round(performance.now() - started);
  return summary;
}
