/**
 * How the scheduled passes (mirroring.ts, revocations.ts) work through due
 * items: a few at a time, each claimed only when a worker is free to work on
 * it, so its lease starts when the work does (claimed all at once, the last
 * of a batch could wait behind slow providers until its lease ran out and
 * the next call took it too).
 */

/** At once: enough to hide the providers' latency, few enough not to trip their rate limits. */
const CONCURRENCY = 4;

/** Runs `work` on up to `limit` items, CONCURRENCY at a time, each claimed when a worker is free. */
export async function drain<T>(limit: number, claimNext: () => Promise<T | undefined>, work: (item: T) => Promise<void>): Promise<void> {
  let remaining = limit;
  const worker = async () => {
    while (remaining > 0) {
      remaining -= 1;
      const item = await claimNext();
      if (item === undefined) return;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, limit) }, worker));
}
