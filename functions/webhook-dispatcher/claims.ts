/**
 * Hands claimed deliveries to a pass's workers as each comes free, so a slow
 * receiver holds up only the worker waiting on it.
 *
 * A delivery is claimed only for a worker already waiting for one: nothing
 * claimed sits unsent behind someone else's slow request, so a lease covers
 * one attempt, and every claim sees the endpoints' in-flight deliveries as
 * turns taken (the claim's round robin, 20261123003900). One claim is in
 * flight at a time, for every worker waiting when it starts: workers that
 * come free together share a round trip, because each claim reads the whole
 * due queue to rank the turns. A worker that finds nothing due stops for the
 * rest of the pass: deliveries that come due later go to the workers still
 * running, or to the next pass (queued deliveries wake one at most once a
 * second), rather than to idle workers polling the queue.
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
  const waiting: Array<(item: T | null) => void> = [];
  let claiming = false;
  let budget: StopReason | null = null;
  let failed: { error: unknown } | null = null;
  let claims = 0;

  const release = () => {
    for (const give of waiting.splice(0)) give(null);
  };

  // Runs while anyone waits; `claiming` is set by whoever starts it.
  const claimForWaiting = async () => {
    try {
      while (waiting.length > 0) {
        if (options.remaining() <= 0) budget = 'delivery_budget';
        else if (options.timeUp()) budget = 'time_budget';
        if (budget) break;
        const takers = waiting.splice(0, Math.min(waiting.length, options.maxPerClaim, options.remaining()));
        let items: T[];
        try {
          items = await options.claim(takers.length);
        } catch (error) {
          failed = { error };
          for (const give of takers) give(null);
          break;
        }
        if (items.length > 0) claims += 1;
        takers.forEach((give, i) => give(items[i] ?? null));
        // Nothing more is due now: whoever waits stops; busy workers ask again when they finish.
        if (items.length < takers.length) release();
      }
    } finally {
      claiming = false;
      if (budget || failed) release();
    }
  };

  return {
    next: () => {
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
