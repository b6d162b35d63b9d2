/**
 * Which failures of a step are the embeddings provider throttling (the run is
 * deferred, private.defer_ingest) rather than a stall the sweeper counts.
 */
import { EmbeddingProviderError } from '../_shared/embeddings/index.ts';

/** A throttled run's wait when the provider did not say: the sweeper runs every minute. */
const DEFAULT_DEFER_SECONDS = 60;

/**
 * Seconds to defer the run after a 429, a 5xx, or any answer asking to wait
 * (its Retry-After, else 60; SQL keeps it within 30 to 900); null for other
 * failures (a bad key, the network, Storage, the database).
 */
export function throttleDeferSeconds(error: unknown): number | null {
  if (!(error instanceof EmbeddingProviderError)) return null;
  const { status, retryAfterMs } = error;
  const throttled = status === 429 || (status !== undefined && status >= 500) || retryAfterMs !== undefined;
  if (!throttled) return null;
  return retryAfterMs === undefined ? DEFAULT_DEFER_SECONDS : Math.ceil(retryAfterMs / 1000);
}
