import { asServiceRole, type Sql } from '../_shared/db.ts';
import { DialError } from '../_shared/voice/index.ts';

/**
 * The provider's throttling, for a dial pass. Vapi answers 429 when we are
 * over its rate or concurrency limit and 503 when it takes no more work:
 * either way it created nothing (the dialer marks neither `maybePlaced`).
 * The first such answer stops the pass: every claim not yet used, and the
 * throttled ones, are given back (private.release_dial_claims) without
 * counting an attempt or a lookup, due again after the provider's
 * Retry-After (the database defaults it; both cap it at
 * {@link MAX_THROTTLE_WAIT_SECONDS}). A connection refused
 * cannot be told from a request lost after it was sent (both are "could not
 * be reached" to fetch), so it stays an unknown outcome, looked up later.
 */
export const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/**
 * private.dial_throttle_max_wait_seconds(): the longest a throttled claim
 * waits. Retry-After is capped here as well, before it is sent as an
 * integer: "99999999999", or an HTTP date past 2100, is out of its range.
 */
export const MAX_THROTTLE_WAIT_SECONDS = 3600;

export interface Throttle {
  reason: string;
  retryAfterSeconds: number | null;
}

/** A claim given back: a dial claim is lookup 0, a lookup claim its lookup number. */
export interface GivenBack {
  call_id: string;
  attempt: number;
  lookup: number;
}

/** What release_dial_claims did with each claim: released, failed, canceled, stale or gone. */
export type ReleaseOutcome = 'released' | 'failed' | 'canceled' | 'stale' | 'gone';

/** The throttle a provider's refusal says (429 or 503), or null for any other failure. */
export function throttleOf(error: unknown): Throttle | null {
  if (!(error instanceof DialError) || error.status === undefined || !THROTTLE_STATUSES.has(error.status)) return null;
  return { reason: error.message, retryAfterSeconds: error.retryAfterSeconds ?? null };
}

/** The pass's throttle: the first refusal's reason, the longest wait any asked, and the claims to give back. */
export class PassThrottle {
  #throttle: Throttle | null = null;
  readonly givenBack: GivenBack[] = [];

  get active(): boolean {
    return this.#throttle !== null;
  }

  note(throttle: Throttle): void {
    const first = this.#throttle ?? throttle;
    const waits = [first.retryAfterSeconds, throttle.retryAfterSeconds].filter((wait): wait is number => wait !== null);
    this.#throttle = { reason: first.reason, retryAfterSeconds: waits.length === 0 ? null : Math.max(...waits) };
  }

  giveBack(claim: GivenBack): void {
    this.givenBack.push(claim);
  }

  /** Gives the claims back in one statement; the outcome of each. */
  async release(sql: Sql): Promise<ReleaseOutcome[]> {
    if (this.givenBack.length === 0 || this.#throttle === null) return [];
    const { reason, retryAfterSeconds } = this.#throttle;
    const wait = retryAfterSeconds === null ? null : Math.min(retryAfterSeconds, MAX_THROTTLE_WAIT_SECONDS);
    const rows = await asServiceRole(sql, (tx) =>
      tx<{ outcome: ReleaseOutcome }[]>`
        select outcome from private.release_dial_claims(
          ${this.givenBack.map((claim) => claim.call_id)}::uuid[],
          ${this.givenBack.map((claim) => claim.attempt)}::integer[],
          ${this.givenBack.map((claim) => claim.lookup)}::integer[],
          ${reason}::text, ${wait}::integer
        )`);
    return rows.map((row) => row.outcome);
  }
}
