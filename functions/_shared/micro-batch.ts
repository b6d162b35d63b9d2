/**
 * Group commit for requests that each need a short transaction: while one
 * batch runs, the requests that arrive wait for it and then go together, so
 * a busy isolate pays one transaction (its begin, role switch, lookups and
 * commit) for many requests, and an idle one starts at once (a lone request
 * waits for nothing). One batch runs at a time per batcher.
 */

/** What `run` says of one item: its value or its own error, in the items' order. */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

export interface BatchLimits<I> {
  /** Items in one batch at most. */
  maxItems: number;
  /** The size of an item (bytes, say) and the most a batch may hold; a larger item still goes, alone. */
  sizeOf?: (item: I) => number;
  maxSize?: number;
}

export function createMicroBatcher<I, O>(
  run: (items: I[]) => Promise<Settled<O>[]>,
  limits: BatchLimits<I>,
): (item: I) => Promise<O> {
  const queue: Waiting<I, O>[] = [];
  let running = false;

  /** How many of the queue's first items make the next batch: at least one, then within both limits. */
  const nextBatchLength = (): number => {
    const { maxItems, sizeOf, maxSize = Infinity } = limits;
    let size = sizeOf ? sizeOf(queue[0].item) : 0;
    let length = 1;
    while (length < Math.min(maxItems, queue.length)) {
      const next = sizeOf ? sizeOf(queue[length].item) : 0;
      if (size + next > maxSize) break;
      size += next;
      length += 1;
    }
    return length;
  };

  const drain = async (): Promise<void> => {
    running = true;
    while (queue.length > 0) {
      const batch = queue.splice(0, nextBatchLength());
      try {
        const settled = await run(batch.map((waiting) => waiting.item));
        batch.forEach((waiting, index) => {
          const outcome = settled[index];
          if (outcome === undefined) waiting.reject(new Error('the batch gave no outcome for this item'));
          else if (outcome.ok) waiting.resolve(outcome.value);
          else waiting.reject(outcome.error);
        });
      } catch (error) {
        for (const waiting of batch) waiting.reject(error);
      }
    }
    running = false;
  };

  return (item) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!running) void drain();
    });
}
