/**
 * What the platform's scheduled passes (webhook deliveries, outbound calls)
 * share: bounded concurrency, and leases long enough for a live pass.
 */

/** Runs `fn` over `items` with at most `limit` running at once. */
export async function forEachConcurrently<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * The lease must outlast the slowest way through a batch (every request
 * timing out, `concurrency` at a time) so a live pass never loses an item to
 * another; a dead pass's items come back when it runs out.
 */
export function leaseSeconds(batchSize: number, concurrency: number, timeoutMs: number): number {
  return Math.ceil(batchSize / concurrency) * Math.ceil(timeoutMs / 1000) + 30;
}
