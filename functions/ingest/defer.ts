/**
 * Which failures of a step are the embeddings provider throttling (the run is
 * deferred, private.defer_ingest) rather than a stall the sweeper counts.
 */
import { EmbeddingProviderError } from '../_shared/embeddings/index.ts';

/** A throttled run's wait when the provider did not say: the sweeper runs every minute. */
const DEFAULT_DEFER_SECONDS = 60;

/**
 * private.defer_ingest's range. Clamped here too, before it is sent as an
 * integer: a Retry-After of "99999999999" (or a date in 2100) overflowed the
 * cast, the run was never deferred and later failed as stalled.
 */
export const MIN_DEFER_SECONDS = 30;
export const MAX_DEFER_SECONDS = 900;

/**
 * Seconds to defer the run after a 429, a 5xx, or any answer asking to wait
 * (its Retry-After, else 60; within 30 to 900, as SQL keeps it); null for other
 * failures (a bad key, the network, Storage, the database).
 */
export function throttleDeferSeconds(error: unknown): number | null {
  if (!(error instanceof EmbeddingProviderError)) return null;
  const { status, retryAfterMs } = error;
  const throttled = status === 429 || (status !== undefined && status >= 500) || retryAfterMs !== undefined;
  if (!throttled) return null;
  const asked = retryAfterMs === undefined ? DEFAULT_DEFER_SECONDS : Math.ceil(retryAfterMs / 1000);
  return Math.min(Math.max(asked, MIN_DEFER_SECONDS), MAX_DEFER_SECONDS);
}
