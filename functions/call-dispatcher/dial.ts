import { forEachConcurrently, leaseSeconds } from '../_shared/batch.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { DialError, type VoiceDialer } from '../_shared/voice/index.ts';

/**
 * One pass over due outbound calls: claim them (row-locked and leased, so
 * concurrent passes never share one), hand each to the provider, and report
 * each dial to the database, which decides between ringing, a retry later
 * and failed.
 */
export interface DialPassOptions {
  sql: Sql;
  dialer: VoiceDialer;
  concurrency?: number;
  batchSize?: number;
  maxCalls?: number;
  maxDurationMs?: number;
  /** The dialer's own per-request timeout, for the lease. */
  timeoutMs?: number;
  log?: (message: string, error?: unknown) => void;
}

export interface DialSummary {
  claimed: number;
  /** Accepted by the provider: now ringing. */
  placed: number;
  retried: number;
  failed: number;
  /** Its campaign was canceled while it was being dialled, and the dial failed. */
  canceled: number;
  /** Reported after the lease ran out and another pass took the call over, or for a call since deleted. */
  stale: number;
  /** Dialled, but the report failed; the lease runs out and the call's own events move it on. */
  unrecorded: number;
}

export const DIAL_DEFAULTS = {
  concurrency: 5,
  batchSize: 10,
  maxCalls: 100,
  maxDurationMs: 20_000,
  timeoutMs: 15_000,
} as const;

/**
 * A failure after which the call may already be under way (a timeout, a
 * gateway 5xx): its events, which carry our call id, move it out of
 * `queued` within seconds if so, and a queued call is the only kind dialled.
 * Waiting this long before trying again lets them arrive first, so nobody
 * is called twice.
 */
export const MAYBE_PLACED_RETRY_SECONDS = 120;

/** The database fails a call whose bot or org lost its voice setup at the claim, so both ids are set. */
interface ClaimedCall {
  call_id: string;
  org_id: string;
  to_number: string;
  assistant_id: string;
  phone_number_id: string;
  attempt: number;
}

interface DialOutcome {
  providerCallId: string | null;
  error: string | null;
  retryable: boolean;
  retryAfterSeconds: number | null;
}

async function claim(sql: Sql, size: number, lease: number): Promise<ClaimedCall[]> {
  return asServiceRole(sql, (tx) =>
    tx<ClaimedCall[]>`
      select call_id, org_id, to_number, assistant_id, phone_number_id, attempt
      from private.claim_due_calls(${size}::integer, ${lease}::integer)`);
}

async function record(sql: Sql, call: ClaimedCall, outcome: DialOutcome): Promise<string> {
  const [row] = await asServiceRole(sql, (tx) =>
    tx<{ result: { outcome?: string } }[]>`
      select private.record_dial_result(
        ${call.call_id}::uuid, ${call.attempt}::integer, ${outcome.providerCallId}::text, ${outcome.error}::text,
        ${outcome.retryable}::boolean, ${outcome.retryAfterSeconds}::integer
      ) as result`);
  return row.result.outcome ?? 'unknown';
}

async function dialOne(dialer: VoiceDialer, call: ClaimedCall): Promise<DialOutcome> {
  try {
    const placed = await dialer.dial({
      to: call.to_number,
      assistantId: call.assistant_id,
      phoneNumberId: call.phone_number_id,
      metadata: { call_id: call.call_id, org_id: call.org_id },
    });
    return { providerCallId: placed.providerCallId, error: null, retryable: false, retryAfterSeconds: null };
  } catch (error) {
    const failure = error instanceof DialError
      ? error
      : new DialError(`the dialer failed: ${String(error)}`, { retryable: true, maybePlaced: true, cause: error });
    const wait = failure.maybePlaced
      ? Math.max(failure.retryAfterSeconds ?? 0, MAYBE_PLACED_RETRY_SECONDS)
      : failure.retryAfterSeconds ?? null;
    return { providerCallId: null, error: failure.message, retryable: failure.retryable, retryAfterSeconds: wait };
  }
}

export async function dialDueCalls(options: DialPassOptions): Promise<DialSummary> {
  const settings = {
    concurrency: Math.max(1, options.concurrency ?? DIAL_DEFAULTS.concurrency),
    batchSize: Math.min(100, Math.max(1, options.batchSize ?? DIAL_DEFAULTS.batchSize)),
    maxCalls: options.maxCalls ?? DIAL_DEFAULTS.maxCalls,
    maxDurationMs: options.maxDurationMs ?? DIAL_DEFAULTS.maxDurationMs,
  };
  const lease = leaseSeconds(settings.batchSize, settings.concurrency, options.timeoutMs ?? DIAL_DEFAULTS.timeoutMs);
  const log = options.log ?? ((message: string, error?: unknown) => console.error(message, error));
  const summary: DialSummary = { claimed: 0, placed: 0, retried: 0, failed: 0, canceled: 0, stale: 0, unrecorded: 0 };
  const started = performance.now();

  while (summary.claimed < settings.maxCalls && performance.now() - started < settings.maxDurationMs) {
    const batch = await claim(options.sql, Math.min(settings.batchSize, settings.maxCalls - summary.claimed), lease);
    if (batch.length === 0) break;
    summary.claimed += batch.length;
    await forEachConcurrently(batch, settings.concurrency, async (call) => {
      const outcome = await dialOne(options.dialer, call);
      let result: string;
      try {
        result = await record(options.sql, call, outcome);
      } catch (error) {
        log(`recording dial attempt ${call.attempt} of call ${call.call_id} failed`, error);
        summary.unrecorded += 1;
        return;
      }
      if (result === 'dialled') summary.placed += 1;
      else if (result === 'retry') summary.retried += 1;
      else if (result === 'failed') summary.failed += 1;
      else if (result === 'canceled') summary.canceled += 1;
      else summary.stale += 1;
    });
  }
  return summary;
}
