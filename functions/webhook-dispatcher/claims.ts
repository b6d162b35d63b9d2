/**
 * Hands claimed deliveries to a pass's workers as each comes free, so a slow
 * receiver holds up only the worker waiting on it.
 *
 * A worker that finds none at hand asks for a claim of up to `maxPerClaim`
 * (twice the pass's workers): it takes the first, workers waiting at that
 * moment the next ones, and the rest wait at hand for whichever worker comes
 * free first (never for one particular, possibly slow, request). So a claim
 * is made about once per `maxPerClaim` deliveries, not once per delivery:
 * each claim reads the whole due queue to rank the turns (the round robin of
 * 20261123003900), and claiming one at a time cut throughput by more than
 * half. Every worker comes free within one attempt, so a claim's worth at
 * hand is taken within maxPerClaim / workers attempts; the lease covers that
 * and the delivery's own attempt (dispatch.ts). One claim is in flight at a
 * time. A worker that finds nothing due stops for the rest of the pass:
 * deliveries that come due later go to the workers still running, or to the
 * next pass (queued deliveries wake one at most once a second). Deliveries at
 * hand are sent even after the pass's time or budget is spent, or a claim
 * failed: they are claimed.
 */
export type StopReason = 'idle' | 'delivery_budget' | 'time_budget';

export interface ClaimerOptions<T> {
  /** Locks and returns up to `size` items; fewer means nothing more is due right now. */
  claim: (size: number) => Promise<T[]>;
  /** At most this many per claim. */
  maxPerClaim: number;
  /** How many more the pass may claim (its delivery budget). */
  remaining: () => number;
  /** Whether the pass's time is up. */
  timeUp: () => boolean;
}

export interface Claimer<T> {
  /** The next item for a free worker, or null: the worker stops. */
  next: () => Promise<T | null>;
  /** Why claiming ended: a budget, else idle. */
  stoppedBy: () => StopReason;
  /** The first claim that failed: after it nobody is given more, and the pass reports it once its workers finish. */
  failure: () => { error: unknown } | null;
  /** Claims that returned something. */
  claims: () => number;
}

export function createClaimer<T>(options: ClaimerOptions<T>): Claimer<T> {
  const atHand: T[] = [];
  const waiting: Array<(item: T | null) => void> = [];
  let claiming = false;
  let budget: StopReason | null = null;
  let failed: { error: unknown } | null = null;
  let claims = 0;

  const release = () => {
    for (const give of waiting.splice(0)) give(null);
  };

  // Runs while anyone waits with nothing at hand; `claiming` is set by whoever starts it.
  const claimForWaiting = async () => {
    try {
      while (waiting.length > 0) {
        if (options.remaining() <= 0) budget = 'delivery_budget';
        else if (options.timeUp()) budget = 'time_budget';
        if (budget) break;
        const size = Math.min(options.maxPerClaim, options.remaining());
        let items: T[];
        try {
          items = await options.claim(size);
        } catch (error) {
          failed = { error };
          break;
        }
        if (items.length > 0) claims += 1;
        atHand.push(...items);
        while (waiting.length > 0 && atHand.length > 0) waiting.shift()!(atHand.shift()!);
        // Fewer than asked: nothing more is due now, so whoever still waits stops; busy workers ask again when they finish.
        if (items.length < size) release();
      }
    } finally {
      claiming = false;
      if (budget || failed) release();
    }
  };

  return {
    next: () => {
      if (atHand.length > 0) return Promise.resolve(atHand.shift()!);
      if (budget || failed) return Promise.resolve(null);
      return new Promise<T | null>((resolve) => {
        waiting.push(resolve);
        // Started once the current job is done, so workers asking in the same moment share the claim.
        if (!claiming) {
          claiming = true;
          queueMicrotask(() => void claimForWaiting());
        }
      });
    },
    stoppedBy: () => budget ?? 'idle',
    failure: () => failed,
    claims: () => claims,
  };
}
