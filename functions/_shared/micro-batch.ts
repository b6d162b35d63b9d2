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

export function createMicroBatcher<I, O>(
  run: (items: I[]) => Promise<Settled<O>[]>,
  maxItems: number,
): (item: I) => Promise<O> {
  const queue: Waiting<I, O>[] = [];
  let running = false;

  const drain = async (): Promise<void> => {
    running = true;
    while (queue.length > 0) {
      const batch = queue.splice(0, maxItems);
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
