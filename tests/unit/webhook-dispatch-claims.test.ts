import { describe, expect, it } from 'vitest';
import { createClaimer } from '../../functions/webhook-dispatcher/claims.ts';

/**
 * How a pass's workers get their deliveries (functions/webhook-dispatcher/claims.ts),
 * with a queue standing in for the claim's SQL and a clock the test moves.
 * An item's receiver is its first character ('s1' goes to s).
 */
function queueOf<T extends string | number>(
  items: T[],
  options: { maxPerClaim?: number; budget?: number; failOn?: number; timeUp?: () => boolean; maxPerReceiver?: number } = {},
) {
  const queue = [...items];
  const sizes: number[] = [];
  let claimed = 0;
  const clock = { now: 0 };
  const claimer = createClaimer<T>({
    claim: async (size) => {
      sizes.push(size);
      if (sizes.length === options.failOn) throw new Error('claim failed');
      const taken = queue.splice(0, size);
      claimed += taken.length;
      return taken;
    },
    maxPerClaim: options.maxPerClaim ?? 100,
    remaining: () => (options.budget ?? Infinity) - claimed,
    timeUp: options.timeUp ?? (() => false),
    keyOf: (item) => String(item)[0],
    slowAfterMs: 1000,
    maxPerReceiver: options.maxPerReceiver ?? 100,
    maxWaitMs: 15_000,
    now: () => clock.now,
  });
  return { claimer, sizes, queue, clock };
}

describe('webhook dispatch claims', () => {
  it('serves every worker asking at the same moment from one claim, at most maxPerClaim at a time', async () => {
    const { claimer, sizes } = queueOf([1, 2, 3, 4, 5, 6], { maxPerClaim: 4 });
    const got = await Promise.all(Array.from({ length: 6 }, () => claimer.next()));
    expect(got).toEqual([1, 2, 3, 4, 5, 6]);
    expect(sizes).toEqual([4, 4]);
    expect(claimer.claims()).toBe(2);
  });

  it('keeps what a claim brought beyond the workers waiting at hand for the next free one, even once time is up', async () => {
    let timeUp = false;
    const { claimer, sizes, queue } = queueOf([1, 2, 3, 4, 5], { maxPerClaim: 4, timeUp: () => timeUp });
    expect(await claimer.next()).toBe(1);
    timeUp = true;
    expect([await claimer.next(), await claimer.next(), await claimer.next()]).toEqual([2, 3, 4]);
    expect(sizes).toEqual([4]);
    expect(await claimer.next()).toBeNull();
    expect(claimer.stoppedBy()).toBe('time_budget');
    expect(queue).toEqual([5]);
  });

  it('stops the workers waiting when the queue runs short; a busy worker still asks again', async () => {
    const { claimer, sizes, queue } = queueOf<number>([1]);
    expect(await Promise.all([claimer.next(), claimer.next(), claimer.next()])).toEqual([1, null, null]);
    queue.push(7);
    expect(await claimer.next()).toBe(7);
    expect(await claimer.next()).toBeNull();
    expect(sizes).toEqual([100, 100, 100]);
    expect(claimer.stoppedBy()).toBe('idle');
  });

  it('claims no more than the delivery budget', async () => {
    const { claimer, sizes } = queueOf([1, 2, 3, 4, 5], { budget: 3 });
    expect(await Promise.all(Array.from({ length: 5 }, () => claimer.next()))).toEqual([1, 2, 3, null, null]);
    expect(await claimer.next()).toBeNull();
    expect(sizes).toEqual([3]);
    expect(claimer.stoppedBy()).toBe('delivery_budget');
  });

  it('after a failed claim gives nobody more and keeps the error for the pass to report', async () => {
    const { claimer } = queueOf([1, 2, 3], { maxPerClaim: 1, failOn: 2 });
    expect(await Promise.all([claimer.next(), claimer.next(), claimer.next()])).toEqual([1, null, null]);
    expect(await claimer.next()).toBeNull();
    expect((claimer.failure()?.error as Error).message).toBe('claim failed');
  });

  it('spreads workers asking at once over the receivers at hand rather than following the claim\'s order', async () => {
    const { claimer } = queueOf(['s1', 's2', 's3', 'f1', 'f2', 'f3'], { maxPerClaim: 8 });
    expect(await Promise.all(Array.from({ length: 4 }, () => claimer.next()))).toEqual(['s1', 'f1', 's2', 'f2']);
  });

  it('gives a receiver at half the workers no more while a claim brings others, and all of them when it is alone', async () => {
    const { claimer, sizes } = queueOf(['s1', 's2', 's3', 's4', 'f1', 'f2'], { maxPerClaim: 4, maxPerReceiver: 2 });
    // The first claim brings s1-s4: two workers take s1 and s2; the third claims again rather than take s3.
    expect(await Promise.all(Array.from({ length: 3 }, () => claimer.next()))).toEqual(['s1', 's2', 'f1']);
    expect(sizes).toEqual([4, 4]);
    // f2 next; then only s is left and nothing more is due: s3 and s4 go despite the cap.
    expect([await claimer.next(), await claimer.next(), await claimer.next()]).toEqual(['f2', 's3', 's4']);
  });

  it('gives a receiver that is slow right now no more workers while others have work, then what is left', async () => {
    const { claimer, clock } = queueOf(['s1', 'f1', 's2', 'f2', 'f3'], { maxPerClaim: 8 });
    expect(await claimer.next()).toBe('s1');
    // s has not answered s1 for 2 s: its next delivery waits while f's go.
    clock.now = 2000;
    const f1 = await claimer.next();
    expect(f1).toBe('f1');
    claimer.done(f1!);
    expect([await claimer.next(), await claimer.next()]).toEqual(['f2', 'f3']);
    // Nothing else is due: the free worker takes s2 rather than stopping.
    expect(await claimer.next()).toBe('s2');
  });

  it('takes a delivery that has waited at hand a whole timeout first, whatever its receiver', async () => {
    const { claimer, clock } = queueOf(['s1', 's2', 'f1', 'f2'], { maxPerClaim: 8 });
    expect(await claimer.next()).toBe('s1');
    clock.now = 2000;
    expect(await claimer.next()).toBe('f1');
    clock.now = 15_000;
    expect(await claimer.next()).toBe('s2');
    expect(await claimer.next()).toBe('f2');
  });

  it('prefers a receiver again once its slow attempt is done', async () => {
    const { claimer, clock } = queueOf(['s1', 'f1', 's2', 'f2'], { maxPerClaim: 8 });
    const s1 = await claimer.next();
    clock.now = 2000;
    claimer.done(s1!);
    expect(await claimer.next()).toBe('f1');
    expect(await claimer.next()).toBe('s2');
  });
});
