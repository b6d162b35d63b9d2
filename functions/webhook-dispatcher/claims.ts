/**
 * Hands claimed deliveries to a pass's workers as each comes free, so a slow
 * receiver holds up as few workers as it can.
 *
 * A claim brings up to `maxPerClaim` deliveries (twice the pass's workers):
 * each claim reads the whole due queue to rank the turns (per org, then per
 * endpoint; 20261123009200), and claiming for one worker at a time cut
 * throughput by more than half. What the workers waiting at that moment do
 * not take waits at hand for the next free worker, who takes, in order of
 * preference:
 *  1. a delivery that has waited at hand `maxWaitMs` (one attempt's timeout),
 *     oldest first, whatever its endpoint, but not one whose org already has
 *     `maxPerGroup` running: so none waits without bound, and an org's old
 *     backlog does not jump ahead of other orgs' work past its cap;
 *  2. the delivery whose org has the fewest attempts of this pass running,
 *     then whose endpoint has the fewest (the first such), so workers spread
 *     over the orgs and endpoints at hand instead of following the claim's
 *     order, but not one whose org already has `maxPerGroup` running (a
 *     quarter of the workers: an org's many endpoints are still one tenant),
 *     whose endpoint already has `maxPerReceiver` running (half the workers)
 *     or has one running longer than `slowAfterMs` (slow right now);
 *  3. else a new claim's, by rules 1 and 2, while fewer than `maxPerClaim`
 *     wait at hand, or fewer than twice it (which bounds the memory) unless
 *     the last claim brought nothing rules 1 and 2 allow less than a second
 *     ago (the claim ranks orgs and endpoints with deliveries in flight last,
 *     so the next would bring the same): so other orgs' deliveries are still
 *     claimed while a capped org's backlog waits at hand;
 *  4. else the delivery whose endpoint is neither busy nor slow, if any, then
 *     whose org has the least work (running and at hand), then whose endpoint
 *     has the fewest running (the first such): a capped org with a deep
 *     backlog leaves the spare workers to orgs with less.
 * So one slow endpoint holds at most half the workers, and one org at most a
 * quarter, while other orgs have work the workers may take (an org whose
 * endpoints are at their cap or slow has none), and an endpoint or org alone
 * in the queue still gets every worker (rule 4). A delivery of an org
 * at its cap may wait at hand until the pass stops claiming (its time or
 * budget): every worker then comes free within one attempt and takes what is
 * at hand (dispatch.ts's lease covers both).
 * One claim is in flight at a time. A worker that finds nothing at hand and
 * nothing due stops for the rest of the pass: deliveries that come due later
 * go to the workers still running, or to the next pass (queued deliveries
 * wake one at most once a second). Deliveries at hand are sent even after
 * the pass's time or budget is spent, or a claim failed: they are claimed.
 * One that waited at hand more than a second is checked again before it is
 * sent, and dropped if it is no longer the same attempt or its endpoint was
 * disabled or repointed meanwhile (dispatch.ts).
 */
export type StopReason = 'idle' | 'delivery_budget' | 'time_budget';

export interface ClaimerOptions<T> {
  /** Locks and returns up to `size` items; fewer means nothing more is due right now. */
  claim: (size: number) => Promise<T[]>;
  /** At most this many per claim; never more than twice it at hand. */
  maxPerClaim: number;
  /** How many more the pass may claim (its delivery budget). */
  remaining: () => number;
  /** Whether the pass's time is up. */
  timeUp: () => boolean;
  /** The receiver an item goes to (its endpoint). */
  keyOf: (item: T) => string;
  /** A receiver with an attempt running this long is slow: its items wait while others have work. */
  slowAfterMs: number;
  /** A receiver with this many items being worked on gets no more while others have work. */
  maxPerReceiver: number;
  /** The tenant an item belongs to (its org); without it each receiver is its own. */
  groupOf?: (item: T) => string;
  /** A group with this many items being worked on gets no more while other groups have work; unset: no cap. */
  maxPerGroup?: number;
  /** An item waits at hand at most this long before the next free worker takes it regardless. */
  maxWaitMs: number;
  /** Milliseconds, monotonic. */
  now?: () => number;
}

export interface Claimer<T> {
  /** The next item for a free worker, or null: the worker stops. */
  next: () => Promise<T | null>;
  /** The worker is done with the item (its attempt ended, recorded or not). */
  done: (item: T) => void;
  /** Why claiming ended: a budget, else idle. */
  stoppedBy: () => StopReason;
  /** The first claim that failed: after it nobody is given more, and the pass reports it once its workers finish. */
  failure: () => { error: unknown } | null;
  /** Claims that returned something. */
  claims: () => number;
}

/**
 * A claim that brought only deliveries no waiting worker may take (their orgs at their cap, their endpoints busy or
 * slow) is followed by another past `maxPerClaim` at hand no sooner than this: the next would bring the same orgs
 * until new deliveries come due, and queued ones wake a pass at most once a second.
 */
const RECLAIM_AFTER_MS = 1000;

/** Whether rank `a` comes before rank `b`, compared element by element. */
function precedes(a: readonly number[], b: readonly number[]): boolean {
  const first = a.findIndex((value, i) => value !== b[i]);
  return first >= 0 && a[first] < b[first];
}

export function createClaimer<T>(options: ClaimerOptions<T>): Claimer<T> {
  const now = options.now ?? (() => performance.now());
  const atHand: Array<{ item: T; since: number }> = [];
  /** The items being worked on and when each was taken, by receiver. */
  const running = new Map<string, Map<T, number>>();
  /** How many items are being worked on, by group. */
  const runningPerGroup = new Map<string, number>();
  const groupOf = (item: T) => options.groupOf?.(item) ?? options.keyOf(item);
  const maxPerGroup = options.maxPerGroup ?? Infinity;
  const maxAtHand = 2 * options.maxPerClaim;
  const waiting: Array<(item: T | null) => void> = [];
  let claiming = false;
  let budget: StopReason | null = null;
  let failed: { error: unknown } | null = null;
  let claims = 0;
  /** When a claim last brought nothing rules 1 and 2 allow. */
  let fruitlessAt = -Infinity;

  const isSlow = (key: string, at: number) =>
    [...(running.get(key)?.values() ?? [])].some((started) => at - started >= options.slowAfterMs);

  const inGroupOf = (item: T) => runningPerGroup.get(groupOf(item)) ?? 0;
  const runningOf = (key: string) => running.get(key)?.size ?? 0;

  /** Rules 1 and 2: the index of the item to take, or -1 when only capped orgs' or busy or slow receivers' items are at hand. */
  const preferred = (): number => {
    const at = now();
    const overdue = atHand.findIndex((entry) =>
      at - entry.since >= options.maxWaitMs && inGroupOf(entry.item) < maxPerGroup
    );
    if (overdue >= 0) return overdue;
    let best = -1;
    let fewestInGroup = Infinity;
    let fewest = Infinity;
    atHand.forEach((entry, index) => {
      const key = options.keyOf(entry.item);
      const count = runningOf(key);
      const inGroup = inGroupOf(entry.item);
      if (inGroup >= maxPerGroup || count >= options.maxPerReceiver || isSlow(key, at)) return;
      if (inGroup < fewestInGroup || (inGroup === fewestInGroup && count < fewest)) {
        [best, fewestInGroup, fewest] = [index, inGroup, count];
      }
    });
    return best;
  };

  /** Rule 4, once rules 1 to 3 gave nothing: the index of the item to take (at hand is not empty). */
  const fallback = (): number => {
    const at = now();
    const work = new Map(runningPerGroup);
    for (const { item } of atHand) work.set(groupOf(item), (work.get(groupOf(item)) ?? 0) + 1);
    let best = 0;
    let bestRank: [number, number, number] | null = null;
    atHand.forEach(({ item }, index) => {
      const key = options.keyOf(item);
      const count = runningOf(key);
      const busy = count >= options.maxPerReceiver || isSlow(key, at) ? 1 : 0;
      const rank: [number, number, number] = [busy, work.get(groupOf(item)) ?? 0, count];
      if (bestRank === null || precedes(rank, bestRank)) [best, bestRank] = [index, rank];
    });
    return best;
  };

  const take = (index: number): T => {
    const [{ item }] = atHand.splice(index, 1);
    const key = options.keyOf(item);
    running.set(key, (running.get(key) ?? new Map<T, number>()).set(item, now()));
    const group = groupOf(item);
    runningPerGroup.set(group, (runningPerGroup.get(group) ?? 0) + 1);
    return item;
  };

  const stopped = () => budget !== null || failed !== null;

  const canClaim = () => {
    if (stopped()) return false;
    if (options.remaining() <= 0) budget = 'delivery_budget';
    else if (options.timeUp()) budget = 'time_budget';
    if (budget !== null) return false;
    // Rule 3: past `maxPerClaim` at hand, only when the last such claim brought something, or a second ago.
    return atHand.length < options.maxPerClaim ||
      (atHand.length < maxAtHand && now() - fruitlessAt >= RECLAIM_AFTER_MS);
  };

  /** Gives each waiting worker what rules 1, 2 and 4 allow; with `fallBack` false, rule 4 is held back for a claim. */
  const serve = (fallBack: boolean) => {
    while (waiting.length > 0 && atHand.length > 0) {
      let index = preferred();
      if (index < 0 && !fallBack) return;
      if (index < 0) index = fallback();
      waiting.shift()!(take(index));
    }
  };

  // Runs while anyone waits; `claiming` is set by whoever starts it.
  const claimForWaiting = async () => {
    try {
      let claimed = false;
      while (waiting.length > 0) {
        const waited = waiting.length;
        serve(false);
        if (waiting.length === 0) break;
        // Rule 3: a claim that brought nothing rules 1 and 2 allow is not repeated at once.
        if (claimed && waiting.length === waited) {
          fruitlessAt = now();
          break;
        }
        if (!canClaim()) break;
        const size = Math.min(options.maxPerClaim, options.remaining(), maxAtHand - atHand.length);
        let items: T[];
        try {
          items = await options.claim(size);
        } catch (error) {
          failed = { error };
          break;
        }
        claimed = true;
        if (items.length > 0) claims += 1;
        const at = now();
        atHand.push(...items.map((item) => ({ item, since: at })));
        // Fewer than asked: nothing more is due now. Whoever waits takes what is at hand, or stops.
        if (items.length < size) break;
      }
    } finally {
      claiming = false;
      serve(true);
      for (const give of waiting.splice(0)) give(null);
    }
  };

  return {
    next: () => {
      const index = preferred();
      if (index >= 0) return Promise.resolve(take(index));
      if (atHand.length === 0 && stopped()) return Promise.resolve(null);
      return new Promise<T | null>((resolve) => {
        waiting.push(resolve);
        // Started once the current job is done, so workers asking in the same moment share the claim.
        if (!claiming) {
          claiming = true;
          queueMicrotask(() => void claimForWaiting());
        }
      });
    },
    done: (item) => {
      const key = options.keyOf(item);
      const items = running.get(key);
      if (!items?.delete(item)) return;
      if (items.size === 0) running.delete(key);
      const group = groupOf(item);
      const left = (runningPerGroup.get(group) ?? 1) - 1;
      if (left === 0) runningPerGroup.delete(group);
      else runningPerGroup.set(group, left);
    },
    stoppedBy: () => budget ?? 'idle',
    failure: () => failed,
    claims: () => claims,
  };
}
