import { forEachConcurrently, leaseSeconds } from '../_shared/batch.ts';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { DialError, type VoiceDialer } from '../_shared/voice/index.ts';
import { RECHECK_AFTER_MS, recheckClaim, type RecheckOutcome } from './recheck.ts';
import { PassThrottle, type ReleaseOutcome, type Throttle, throttleOf } from './throttle.ts';

/**
 * One pass over due outbound calls: claim them (row-locked and leased, so
 * concurrent passes never share one), hand each to the provider, and report
 * each dial to the database, which decides between ringing, a retry later
 * and failed. A pass makes at most `maxCalls` requests to the provider in
 * all: the lookups below first, then dials with what they leave.
 *
 * At most one call per attempt. Vapi documents no idempotency key for
 * POST /call: sending the same request twice places two calls. So the
 * database stamps each attempt before it is handed out
 * (`calls.dial_started_at`, cleared when its outcome is recorded), and an
 * attempt whose outcome is unknown is never dialled again:
 * - the dispatcher died, timed out or could not record the result after
 *   Vapi took the call (a crash, the function's CPU or wall-clock limit, a
 *   database error): when the lease runs out the call is handed out for a
 *   lookup (`private.claim_dial_lookups`), not for dialling;
 * - the dial failed in a way that may have placed the call (a timeout, a
 *   dropped connection, a gateway 5xx): recorded as unknown
 *   (`private.record_dial_unknown`), looked up {@link MAYBE_PLACED_RETRY_SECONDS} later.
 * A lookup asks Vapi's call list for the attempt (VoiceDialer.findCall):
 * found, the call is recorded as dialled (ringing, with Vapi's id); absent,
 * the attempt placed no call and counts as a retryable failure (the usual
 * backoff, calling hours and campaign cancelation; only then is the number
 * dialled again); no answer, another lookup later. After 5 unanswered
 * lookups the call fails as `dial-failed: outcome unknown: <why>`: a call
 * nobody can account for is given up, never dialled blind.
 *
 * Throttling (see ./throttle.ts): the first 429 or 503, to a dial or a
 * lookup, stops the pass. The requests already in flight finish; nothing
 * else is sent and no further batch is claimed; the claims not used and the
 * throttled ones are given back without counting an attempt or a lookup,
 * due again after the provider's Retry-After. A call throttled for over
 * 24 hours fails (`dial-failed: throttled by the provider ...`).
 *
 * A claimed call that waited in the pass over {@link RECHECK_AFTER_MS}
 * (behind earlier dials) is checked again before it is dialled (./recheck.ts):
 * one whose campaign was canceled meanwhile ends canceled, one whose bot was
 * deleted, disabled or taken off the voice channel is given back (the next
 * claim fails it with the reason), one deleted with its org is left; none is
 * dialled. A check that fails leaves the call undialled and stamped: when
 * the lease runs out it is looked up, never dialled blind.
 */
export interface DialPassOptions {
  sql: Sql;
  dialer: VoiceDialer;
  concurrency?: number;
  batchSize?: number;
  /**
   * The pass's budget of provider requests, lookups and dials together:
   * each attempt claimed for a lookup and each call claimed for dialling
   * takes one, even one that ends before a request is sent (an attempt
   * without its ids, a number that is not E.164). Lookups come first; dials
   * get what they leave. A due call the claim keeps back takes none: one
   * outside the callee's 08:00-21:00 or the business hours waits for its
   * next slot, one that can no longer be dialled fails there.
   */
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
  /** Attempts of unknown outcome looked up at the provider (counted apart from `claimed`; both spend `maxCalls`). */
  lookedUp: number;
  /** Looked up and found placed: now ringing, never dialled again. */
  recovered: number;
  /** The outcome is still unknown (it may have placed the call): looked up later, not dialled. */
  unknown: number;
  retried: number;
  failed: number;
  /** Its campaign was canceled while it was being dialled and the dial failed, or while it waited in the pass (never dialled). */
  canceled: number;
  /**
   * Claims not dialled because the call changed while they waited in the pass: given back (its bot deleted,
   * disabled or off the voice channel; the lease ran out), or its claim moved on, or the call deleted (its org
   * deleted). A canceled campaign's are counted under `canceled`.
   */
  dropped: number;
  /** Reported after the lease ran out and another pass took the call over, or for a call since deleted. */
  stale: number;
  /**
   * Dialled (or looked up) but the report failed, or its check before dialling failed (not dialled): when the
   * lease runs out the attempt is looked up, never dialled again.
   */
  unrecorded: number;
  /**
   * Claims given back because the provider throttled the pass (429/503):
   * not dialled (or answered 429/503), no attempt or lookup counted, due again after its Retry-After.
   */
  throttled: number;
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
 * gateway 5xx): the attempt's outcome is unknown and is looked up at the
 * provider this long after (its events, which carry our call id, may move
 * it out of `queued` first), never simply dialled again.
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
  /** org_settings.interruption_sensitivity; null without settings (the assistant's own then). */
  interruption_sensitivity: number | null;
}

/** A claimed attempt of unknown outcome, to look up (what it was dialled with, when it started). */
interface LookupCall {
  call_id: string;
  org_id: string;
  to_number: string;
  assistant_id: string | null;
  phone_number_id: string | null;
  attempt: number;
  dial_started_at: Date;
  lookup: number;
}

interface DialOutcome {
  providerCallId: string | null;
  error: string | null;
  retryable: boolean;
  retryAfterSeconds: number | null;
  /** The provider may have placed the call: recorded as unknown, looked up later. */
  unknown: boolean;
  /** The provider refused the request because it is throttling us: given back, not recorded. */
  throttle: Throttle | null;
}

async function claim(sql: Sql, size: number, lease: number): Promise<ClaimedCall[]> {
  return asServiceRole(sql, (tx) =>
    tx<ClaimedCall[]>`
      select c.call_id, c.org_id, c.to_number, c.assistant_id, c.phone_number_id, c.attempt,
             s.interruption_sensitivity::float8 as interruption_sensitivity
      from private.claim_due_calls(${size}::integer, ${lease}::integer) c
      left join public.org_settings s on s.org_id = c.org_id`);
}

async function claimLookups(sql: Sql, size: number, lease: number): Promise<LookupCall[]> {
  return asServiceRole(sql, (tx) =>
    tx<LookupCall[]>`
      select call_id, org_id, to_number, assistant_id, phone_number_id, attempt, dial_started_at, lookup
      from private.claim_dial_lookups(${size}::integer, ${lease}::integer)`);
}

/**
 * The longest wait record_dial_result and record_dial_unknown take from
 * Retry-After (a day). Capped here too, before it is sent as an integer: a
 * Retry-After of "99999999999" left the attempt unrecorded.
 */
const MAX_RETRY_AFTER_SECONDS = 86_400;

async function record(sql: Sql, call: { call_id: string; attempt: number }, outcome: DialOutcome): Promise<string> {
  const wait = outcome.retryAfterSeconds === null ? null : Math.min(outcome.retryAfterSeconds, MAX_RETRY_AFTER_SECONDS);
  const [row] = await asServiceRole(sql, (tx) =>
    outcome.unknown
      ? tx<{ result: { outcome?: string } }[]>`
        select private.record_dial_unknown(
          ${call.call_id}::uuid, ${call.attempt}::integer, ${outcome.error}::text, ${wait}::integer
        ) as result`
      : tx<{ result: { outcome?: string } }[]>`
        select private.record_dial_result(
          ${call.call_id}::uuid, ${call.attempt}::integer, ${outcome.providerCallId}::text, ${outcome.error}::text,
          ${outcome.retryable}::boolean, ${wait}::integer
        ) as result`);
  return row.result.outcome ?? 'stale';
}

/** What a lookup learnt: placed (ringing), not placed (a retryable failure of the attempt), or still unknown. */
async function lookUpOne(dialer: VoiceDialer, call: LookupCall): Promise<DialOutcome> {
  if (call.assistant_id === null || call.phone_number_id === null) {
    return {
      providerCallId: null,
      error: 'the attempt does not say what it was dialled with',
      retryable: true,
      retryAfterSeconds: null,
      unknown: true,
      throttle: null,
    };
  }
  try {
    const found = await dialer.findCall({
      to: call.to_number,
      assistantId: call.assistant_id,
      phoneNumberId: call.phone_number_id,
      metadata: { call_id: call.call_id, org_id: call.org_id },
      dialStartedAt: new Date(call.dial_started_at),
    });
    if (found) {
      return { providerCallId: found.providerCallId, error: null, retryable: false, retryAfterSeconds: null, unknown: false, throttle: null };
    }
    return {
      providerCallId: null,
      error: `dial attempt ${call.attempt} placed no call (the provider has none for it)`,
      retryable: true,
      retryAfterSeconds: null,
      unknown: false,
      throttle: null,
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const retryAfter = error instanceof DialError ? error.retryAfterSeconds ?? null : null;
    return { providerCallId: null, error: message, retryable: true, retryAfterSeconds: retryAfter, unknown: true, throttle: throttleOf(error) };
  }
}

async function dialOne(dialer: VoiceDialer, call: ClaimedCall): Promise<DialOutcome> {
  try {
    const placed = await dialer.dial({
      to: call.to_number,
      assistantId: call.assistant_id,
      phoneNumberId: call.phone_number_id,
      metadata: { call_id: call.call_id, org_id: call.org_id },
      ...(call.interruption_sensitivity === null ? {} : { voice: { interruptionSensitivity: call.interruption_sensitivity } }),
    });
    return { providerCallId: placed.providerCallId, error: null, retryable: false, retryAfterSeconds: null, unknown: false, throttle: null };
  } catch (error) {
    const failure = error instanceof DialError
      ? error
      : new DialError(`the dialer failed: ${String(error)}`, { retryable: true, maybePlaced: true, cause: error });
    const wait = failure.maybePlaced
      ? Math.max(failure.retryAfterSeconds ?? 0, MAYBE_PLACED_RETRY_SECONDS)
      : failure.retryAfterSeconds ?? null;
    return {
      providerCallId: null,
      error: failure.message,
      retryable: failure.retryable,
      retryAfterSeconds: wait,
      unknown: failure.maybePlaced,
      // Only an answer that created nothing: a call that may be under way is looked up, whatever its status.
      throttle: failure.maybePlaced ? null : throttleOf(failure),
    };
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
  const summary: DialSummary = {
    claimed: 0,
    placed: 0,
    lookedUp: 0,
    recovered: 0,
    unknown: 0,
    retried: 0,
    failed: 0,
    canceled: 0,
    dropped: 0,
    stale: 0,
    unrecorded: 0,
    throttled: 0,
  };
  const started = performance.now();
  const count = (result: string, lookup: boolean) => {
    if (result === 'dialled') summary[lookup ? 'recovered' : 'placed'] += 1;
    else if (result === 'unknown') summary.unknown += 1;
    else if (result === 'retry') summary.retried += 1;
    else if (result === 'failed') summary.failed += 1;
    else if (result === 'canceled') summary.canceled += 1;
    else summary.stale += 1;
  };

  // One budget for the pass: a lookup and a dial each cost the provider a request.
  const budgetLeft = () => settings.maxCalls - summary.lookedUp - summary.claimed;
  const inTime = () => performance.now() - started < settings.maxDurationMs;
  const throttle = new PassThrottle();
  const countReleased = (outcomes: ReleaseOutcome[]) => {
    for (const outcome of outcomes) {
      if (outcome === 'released') summary.throttled += 1;
      else count(outcome, false);
    }
  };
  // Gives back what the throttled batch did not use; true when the pass must stop.
  const stopIfThrottled = async (): Promise<boolean> => {
    if (!throttle.active) return false;
    try {
      countReleased(await throttle.release(options.sql));
    } catch (error) {
      // Still stamped: when the lease runs out each is looked up at the provider, never dialled blind.
      log(`giving back ${throttle.givenBack.length} throttled claims failed`, error);
      summary.unrecorded += throttle.givenBack.length;
    }
    return true;
  };

  // False for a claim that waited and may no longer be dialled (settled by recheckClaim), or whose check failed.
  const stillDialable = async (call: ClaimedCall): Promise<boolean> => {
    let outcome: RecheckOutcome;
    try {
      outcome = await recheckClaim(options.sql, call);
    } catch (error) {
      // Stamped and leased: when the lease runs out the attempt is looked up (absent: a retry), never dialled blind.
      log(`checking dial attempt ${call.attempt} of call ${call.call_id} before dialling it failed; not dialled`, error);
      summary.unrecorded += 1;
      return false;
    }
    if (outcome === 'dial') return true;
    if (outcome === 'canceled' || outcome === 'failed') count(outcome, false);
    else summary.dropped += 1;
    return false;
  };

  // Attempts of unknown outcome first: each is settled with the provider before its number can be dialled again.
  while (budgetLeft() > 0 && inTime()) {
    const batch = await claimLookups(options.sql, Math.min(settings.batchSize, budgetLeft()), lease);
    if (batch.length === 0) break;
    summary.lookedUp += batch.length;
    await forEachConcurrently(batch, settings.concurrency, async (call) => {
      const given = { call_id: call.call_id, attempt: call.attempt, lookup: call.lookup };
      if (throttle.active) return throttle.giveBack(given);
      const outcome = await lookUpOne(options.dialer, call);
      if (outcome.throttle) {
        throttle.note(outcome.throttle);
        return throttle.giveBack(given);
      }
      try {
        count(await record(options.sql, call, outcome), true);
      } catch (error) {
        // The lease runs out and the call is looked up again: never dialled meanwhile.
        log(`recording the lookup of dial attempt ${call.attempt} of call ${call.call_id} failed`, error);
        summary.unrecorded += 1;
      }
    });
    if (await stopIfThrottled()) return summary;
  }

  while (budgetLeft() > 0 && inTime()) {
    const batch = await claim(options.sql, Math.min(settings.batchSize, budgetLeft()), lease);
    if (batch.length === 0) break;
    const claimedAt = performance.now();
    summary.claimed += batch.length;
    await forEachConcurrently(batch, settings.concurrency, async (call) => {
      const given = { call_id: call.call_id, attempt: call.attempt, lookup: 0 };
      const waited = performance.now() - claimedAt > RECHECK_AFTER_MS;
      if (!throttle.active && waited && !(await stillDialable(call))) return;
      // Also a throttle noted while the claim was checked: nothing more is sent into it.
      if (throttle.active) return throttle.giveBack(given);
      const outcome = await dialOne(options.dialer, call);
      if (outcome.throttle) {
        throttle.note(outcome.throttle);
        return throttle.giveBack(given);
      }
      try {
        count(await record(options.sql, call, outcome), false);
      } catch (error) {
        // The attempt stays stamped: when the lease runs out it is looked up at the provider, not dialled again.
        log(`recording dial attempt ${call.attempt} of call ${call.call_id} failed`, error);
        summary.unrecorded += 1;
      }
    });
    if (await stopIfThrottled()) break;
  }
  return summary;
}
