/** One page of objects the database lists for removal. */
export interface ListedObject {
  bucket_id: string;
  name: string;
}

/**
 * Removes what `list` returns, page after page, through `remove` (the Storage
 * API, per bucket) until nothing is listed, a round removes nothing (already
 * going, or refused: stop rather than spin, the next pass retries), or the
 * deadline passes. Each round's count goes to `progress`, so a caller that
 * catches an error still knows what was removed before it.
 */
export async function removeListedObjects(
  list: () => Promise<ListedObject[]>,
  remove: (bucket: string, names: string[]) => Promise<number>,
  deadline: number,
  progress: (removed: number) => void,
): Promise<void> {
  while (performance.now() < deadline) {
    const objects = await list();
    if (objects.length === 0) return;
    const byBucket = new Map<string, string[]>();
    for (const object of objects) byBucket.set(object.bucket_id, [...(byBucket.get(object.bucket_id) ?? []), object.name]);
    let round = 0;
    for (const [bucket, names] of byBucket) round += await remove(bucket, names);
    progress(round);
    if (round === 0) return;
  }
}
