import { describe, expect, it } from 'vitest';
import { createClaimer } from '../../functions/webhook-dispatcher/claims.ts';

/**
 * How a pass's workers get their deliveries (functions/webhook-dispatcher/claims.ts),
 * with a queue of numbers standing in for the claim's SQL.
 */
function queueOf(items: number[], options: { maxPerClaim?: number; budget?: number; failOn?: number } = {}) {
  const queue = [...items];
  const sizes: number[] = [];
  let claimed = 0;
  const claimer = createClaimer<number>({
    claim: async (size) => {
      sizes.push(size);
      if (sizes.length === options.failOn) throw new Error('claim failed');
      const taken = queue.splice(0, size);
      claimed += taken.length;
      return taken;
    },
    maxPerClaim: options.maxPerClaim ?? 100,
    remaining: () => (options.budget ?? Infinity) - claimed,
    timeUp: () => false,
  });
  return { claimer, sizes, queue };
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
    const queue = [1, 2, 3, 4, 5];
    const sizes: number[] = [];
    const claimer = createClaimer<number>({
      claim: async (size) => {
        sizes.push(size);
        return queue.splice(0, size);
      },
      maxPerClaim: 4,
      remaining: () => Infinity,
      timeUp: () => timeUp,
    });
    expect(await claimer.next()).toBe(1);
    timeUp = true;
    expect([await claimer.next(), await claimer.next(), await claimer.next()]).toEqual([2, 3, 4]);
    expect(sizes).toEqual([4]);
    expect(await claimer.next()).toBeNull();
    expect(claimer.stoppedBy()).toBe('time_budget');
    expect(queue).toEqual([5]);
  });

  it('stops the workers waiting when the queue runs short; a busy worker still asks again', async () => {
    const { claimer, sizes, queue } = queueOf([1]);
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
});
