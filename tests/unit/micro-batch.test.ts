import { describe, expect, it } from 'vitest';
import { createMicroBatcher, type Settled } from '../../functions/_shared/micro-batch.ts';

/** A run that records its batches and answers each item with its double, or refuses odd ones when asked. */
function recorder(options: { refuseOdd?: boolean; failFirst?: boolean } = {}) {
  const batches: number[][] = [];
  const run = async (items: number[]): Promise<Settled<number>[]> => {
    batches.push(items);
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (options.failFirst && batches.length === 1) throw new Error('the transaction failed');
    return items.map((item) =>
      options.refuseOdd && item % 2 === 1 ? { ok: false, error: new Error(`odd ${item}`) } : { ok: true, value: item * 2 }
    );
  };
  return { batches, run };
}

describe('createMicroBatcher', () => {
  it('starts a lone item at once, and sends what arrives meanwhile together, in order, up to the cap', async () => {
    const { batches, run } = recorder();
    const submit = createMicroBatcher(run, { maxItems: 3 });
    const results = await Promise.all([1, 2, 3, 4, 5, 6].map((item) => submit(item)));
    expect(results).toEqual([2, 4, 6, 8, 10, 12]);
    expect(batches).toEqual([[1], [2, 3, 4], [5, 6]]);
    expect(await submit(7)).toBe(14);
    expect(batches.at(-1)).toEqual([7]);
  });

  it('gives each item its own outcome, and the items of a run that throws its error, the next run going on', async () => {
    const refusing = recorder({ refuseOdd: true });
    const submit = createMicroBatcher(refusing.run, { maxItems: 10 });
    const outcomes = await Promise.allSettled([1, 2, 3].map((item) => submit(item)));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'rejected']);
    expect((outcomes[1] as PromiseFulfilledResult<number>).value).toBe(4);

    const failing = recorder({ failFirst: true });
    const submitFailing = createMicroBatcher(failing.run, { maxItems: 10 });
    const failed = await Promise.allSettled([1, 2, 3].map((item) => submitFailing(item)));
    // The first run ([1]) throws; the next ([2, 3]) is unaffected.
    expect(failed.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(failing.batches).toEqual([[1], [2, 3]]);
  });

  it('keeps a batch within its size, sending a larger item alone', async () => {
    const { batches, run } = recorder();
    const submit = createMicroBatcher(run, { maxItems: 10, maxSize: 10, sizeOf: (item: number) => item });
    await Promise.all([1, 4, 5, 3, 20, 2].map((item) => submit(item)));
    expect(batches).toEqual([[1], [4, 5], [3], [20], [2]]);
  });
});
