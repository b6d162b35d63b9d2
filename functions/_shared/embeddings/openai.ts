import OpenAI from 'openai';
import { retryAfterMs } from '../retry-after.ts';
import { type BatchLimits, OPENAI_EMBEDDING_LIMITS, planBatches } from './batching.ts';
import { EMBEDDING_DIMENSIONS, type EmbeddingProvider, EmbeddingProviderError } from './types.ts';

export const OPENAI_EMBEDDING_MODEL = 'text-embedding-3-small';

export interface OpenAiProviderOptions {
  apiKey: string;
  /** Any OpenAI-compatible server, e.g. `http://127.0.0.1:8080/v1`; default OpenAI's. */
  baseURL?: string;
  model?: string;
  /**
   * Retries of one request on 408, 409, 429, 5xx and connection errors. The
   * SDK waits as Retry-After (or retry-after-ms) says when that is under a
   * minute, else backs off exponentially from 0.5 s to 8 s with jitter.
   */
  maxRetries?: number;
  /** Per request, retries excluded. */
  timeoutMs?: number;
  /**
   * The longest Retry-After (or retry-after-ms) waited for; an answer asking
   * for more is not retried and fails at once. Default: the SDK's own rule.
   */
  maxRetryAfterMs?: number;
  limits?: BatchLimits;
  fetch?: typeof fetch;
}

/** text-embedding-3-small through the official SDK, batched within OpenAI's limits. */
export function createOpenAiProvider(options: OpenAiProviderOptions): EmbeddingProvider {
  const model = options.model ?? OPENAI_EMBEDDING_MODEL;
  const limits = options.limits ?? OPENAI_EMBEDDING_LIMITS;
  const { maxRetryAfterMs } = options;
  const baseFetch = maxRetryAfterMs === undefined
    ? options.fetch
    : refusingLongRetryAfter(options.fetch ?? fetch, maxRetryAfterMs);
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    maxRetries: options.maxRetries ?? 4,
    timeout: options.timeoutMs ?? 60_000,
    ...(baseFetch ? { fetch: baseFetch } : {}),
  });

  return {
    model,
    dimensions: EMBEDDING_DIMENSIONS,
    async embed(texts, embedOptions = {}) {
      const { beforeRequest } = embedOptions;
      // The SDK calls fetch once per attempt, so the hook runs before every retry too.
      const send = baseFetch ?? fetch;
      const caller = beforeRequest
        ? client.withOptions({
          fetch: async (input: string | URL | Request, init?: RequestInit) => {
            await beforeRequest();
            return await send(input, init);
          },
        })
        : client;
      const vectors: number[][] = new Array(texts.length);
      let tokens = 0;
      // One request at a time: a step's chunks fit in one or two requests, and
      // parallel requests would only hit the rate limit sooner.
      for (const batch of planBatches(texts, limits)) {
        let response: OpenAI.CreateEmbeddingResponse;
        try {
          // No encoding_format: the SDK asks for base64 (a quarter of the JSON) and decodes it.
          response = await caller.embeddings.create({ model, input: batch.texts, dimensions: EMBEDDING_DIMENSIONS });
        } catch (error) {
          throw providerError(error, tokens);
        }
        // A malformed answer was billed too.
        tokens += response.usage?.prompt_tokens ?? batch.tokens;
        if (response.data.length !== batch.texts.length) {
          throw new EmbeddingProviderError(
            `The embeddings API returned ${response.data.length} vectors for ${batch.texts.length} inputs.`,
            { tokensSpent: tokens },
          );
        }
        const filled = new Set<number>();
        for (const item of response.data) {
          const vector = Array.from(item.embedding);
          if (
            vector.length !== EMBEDDING_DIMENSIONS || !Number.isInteger(item.index) || item.index < 0 ||
            item.index >= batch.texts.length
          ) {
            throw new EmbeddingProviderError(
              `The embeddings API returned a vector of ${vector.length} dimensions at index ${item.index}.`,
              { tokensSpent: tokens },
            );
          }
          // As many vectors as inputs, so a repeated index leaves another input without one.
          if (filled.has(item.index)) {
            throw new EmbeddingProviderError(
              `The embeddings API returned index ${item.index} twice, leaving an input without a vector.`,
              { tokensSpent: tokens },
            );
          }
          filled.add(item.index);
          vectors[batch.offset + item.index] = vector;
        }
      }
      return { vectors, tokens };
    },
  };
}

/**
 * A fetch whose answers asking for a wait over `maxMs` carry `x-should-retry:
 * false`, the header by which a server tells the SDK not to retry: the SDK
 * then fails at once with the answer's status instead of waiting.
 */
function refusingLongRetryAfter(base: typeof fetch, maxMs: number): typeof fetch {
  return async (input, init) => {
    const response = await base(input, init);
    if (response.ok) return response;
    const asked = retryAfterMs(response.headers);
    if (asked === undefined || asked <= maxMs) return response;
    const headers = new Headers(response.headers);
    headers.set('x-should-retry', 'false');
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  };
}

function providerError(error: unknown, tokensSpent: number): EmbeddingProviderError {
  if (error instanceof OpenAI.APIError) {
    const status = typeof error.status === 'number' ? error.status : undefined;
    return new EmbeddingProviderError(
      `The embeddings API failed${status ? ` with ${status}` : ''}: ${error.message}`,
      { status, cause: error, tokensSpent, retryAfterMs: error.headers ? retryAfterMs(error.headers) : undefined },
    );
  }
  return new EmbeddingProviderError('The embeddings API could not be reached.', { cause: error, tokensSpent });
}
