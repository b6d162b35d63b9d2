/** text-embedding-3-small's size, and the width of document_chunks.embedding. */
export const EMBEDDING_DIMENSIONS = 1536;

export interface EmbeddingResult {
  /** One vector per input, in input order. */
  vectors: number[][];
  /** Tokens billed for the whole call (what usage metering records). */
  tokens: number;
}

/**
 * Turns texts into vectors. Every implementation returns 1536 dimensions, so
 * document_chunks can hold any of them; vectors from different models are not
 * comparable, though, so switching providers means ingesting documents again.
 */
export interface EmbeddingProvider {
  /** Recorded with the usage; tells which vector space a chunk lives in. */
  readonly model: string;
  readonly dimensions: typeof EMBEDDING_DIMENSIONS;
  embed(texts: string[], options?: EmbedOptions): Promise<EmbeddingResult>;
}

export interface EmbedOptions {
  /**
   * Awaited before each request the provider sends, retries included (an
   * ingestion step's heartbeat: a run waiting on a slow provider is not idle).
   * A provider that sends none calls it once.
   */
  beforeRequest?: () => Promise<void>;
}

/**
 * The provider failed after its retries (rate limits, 5xx, network, a bad API
 * key). Never the document's fault: ingestion leaves the run for a retry.
 * `tokensSpent` is what the call's earlier requests were billed before this
 * one failed: spent all the same, so it is metered all the same.
 * `retryAfterMs` is how long the failing answer asked to wait (Retry-After or
 * retry-after-ms), if it said.
 */
export class EmbeddingProviderError extends Error {
  readonly status: number | undefined;
  readonly tokensSpent: number;
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    options: { status?: number; cause?: unknown; tokensSpent?: number; retryAfterMs?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'EmbeddingProviderError';
    this.status = options.status;
    this.tokensSpent = options.tokensSpent ?? 0;
    this.retryAfterMs = options.retryAfterMs;
  }
}
