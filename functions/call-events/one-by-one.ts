/**
 * Applies items one request at a time after their batch was refused: items
 * with the same key (one call's events) go one after another in the order
 * given, so a later event of a call never overtakes an earlier one; items
 * without a key, and different keys, go at the same time. Results come back
 * in the items' order.
 */
export async function applyOneByOne<T, R>(
  items: readonly T[],
  keyOf: (item: T) => string | null,
  apply: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  const queues = new Map<string, number[]>();
  const alone: number[][] = [];
  items.forEach((item, index) => {
    const key = keyOf(item);
    if (key === null) {
      alone.push([index]);
      return;
    }
    const queue = queues.get(key);
    if (queue) queue.push(index);
    else queues.set(key, [index]);
  });
  await Promise.all([...queues.values(), ...alone].map(async (queue) => {
    for (const index of queue) results[index] = await apply(items[index]);
  }));
  return results;
}
