import OpenAI from 'openai';
import { retryAfterMs } from '../retry-after.ts';
import { countTokensUpTo } from '../text/tokens.ts';
import { type ChatDelta, type ChatProvider, ChatProviderError, type ChatRequest, type ChatUsage } from './types.ts';
import { countPromptTokens } from './usage.ts';

export interface OpenAiChatProviderOptions {
  apiKey: string;
  /** Any OpenAI-compatible server, e.g. `http://127.0.0.1:8080/v1`; default OpenAI's. */
  baseURL?: string;
  /**
   * Further tries on 429, 5xx and network errors, only while no text has
   * arrived. Fewer than for embeddings: a person is waiting.
   */
  maxRetries?: number;
  /** The longest Retry-After we wait for; a 429 asking for more fails at once, carrying it. */
  maxRetryAfterMs?: number;
  /**
   * The longest silence from the server, before the answer starts and
   * between its chunks; then the try fails as a lost connection. Time the
   * caller takes to pass a delta on does not count.
   */
  idleTimeoutMs?: number;
  fetch?: typeof fetch;
}

export const DEFAULT_CHAT_RETRIES = 2;
const DEFAULT_MAX_RETRY_AFTER_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 45_000;
// The SDK's own backoff: 0.5 s doubling to at most 8 s, up to a quarter less at random.
const INITIAL_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 8_000;

/**
 * Chat completions through the official SDK, streamed. The SDK's retries are
 * off and the loop here retries instead, because the rule is about the
 * stream, not the request: a failure before the first token (an error status,
 * a refused connection, a stream cut before any text) is retried with backoff,
 * as Retry-After says when the server says; a failure after it is not, since
 * the user has already read part of the answer, and ends the stream with a
 * ChatProviderError whose `afterFirstToken` is true.
 */
export function createOpenAiChatProvider(options: OpenAiChatProviderOptions): ChatProvider {
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL: options.baseURL,
    maxRetries: 0,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const maxRetries = options.maxRetries ?? DEFAULT_CHAT_RETRIES;
  const maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULT_MAX_RETRY_AFTER_MS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;

  return {
    name: 'openai',
    async *stream(request) {
      for (let attempt = 0;; attempt += 1) {
        const progress = { text: '' };
        try {
          yield* streamOnce(client, request, progress, idleTimeoutMs);
          return;
        } catch (error) {
          request.signal?.throwIfAborted();
          const failure = providerError(error, progress.text !== '');
          if (failure.afterFirstToken || !failure.retryable || attempt >= maxRetries) throw failure;
          const wait = retryDelayMs(error, attempt);
          if (wait > maxRetryAfterMs) throw failure;
          await sleep(wait, request.signal);
        }
      }
    },
  };
}

/** One request, streamed; `progress.text` is what has been yielded, so the caller knows whether a retry is allowed. */
async function* streamOnce(
  client: OpenAI,
  request: ChatRequest,
  progress: { text: string },
  idleTimeoutMs: number,
): AsyncGenerator<ChatDelta> {
  const stalled = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stalled.abort(), idleTimeoutMs);
  };
  let finishReason: string | null = null;
  let usage: ChatUsage | null = null;
  watch();
  try {
    const stream = await client.chat.completions.create(
      {
        model: request.model,
        messages: request.messages.map((message) => ({ role: message.role, content: message.content })),
        temperature: request.temperature,
        // max_tokens is deprecated and refused by reasoning models; compatible servers accept this one too.
        max_completion_tokens: request.maxTokens,
        stream: true,
        stream_options: { include_usage: true },
      },
      { signal: request.signal ? AbortSignal.any([request.signal, stalled.signal]) : stalled.signal },
    );
    // Resolved on a 2xx: the server took the prompt, whatever becomes of the stream.
    request.onAccepted?.();
    for await (const chunk of stream) {
      // With include_usage the last chunk has no choices and the usage of the whole request.
      if (chunk.usage) usage = { tokensIn: chunk.usage.prompt_tokens, tokensOut: chunk.usage.completion_tokens };
      const choice = chunk.choices[0];
      const text = choice?.delta?.content;
      if (text) {
        progress.text += text;
        // The caller may take its time (a slow client); that is not the server stalling.
        clearTimeout(timer);
        yield { type: 'delta', text };
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      watch();
    }
  } catch (error) {
    if (request.signal?.aborted) throw error;
    // Cut between the finish reason and the usage chunk: the answer is whole, only the count is ours.
    if (finishReason === null) throw stalled.signal.aborted ? new StreamBroken(STALLED) : error;
  } finally {
    clearTimeout(timer);
  }
  // The SDK ends an aborted stream quietly; the caller must not mistake that for a complete answer.
  request.signal?.throwIfAborted();
  if (finishReason === null) {
    throw new StreamBroken(stalled.signal.aborted ? STALLED : 'the answer stream ended before the model finished.');
  }
  yield {
    type: 'done',
    usage: usage ?? { tokensIn: countPromptTokens(request.messages), tokensOut: countTokensUpTo(progress.text) },
    // The tool reasons end the answer like 'stop'; 'length' and 'content_filter' say it was cut (or
    // never began: the text may be empty), which the caller stores and the client is told.
    finishReason: finishReason === 'length' || finishReason === 'content_filter' ? finishReason : 'stop',
  };
}

const STALLED = 'the model server stopped sending.';

/** The stream stalled, or ended without a finish reason: the server or a proxy dropped it. A network failure. */
class StreamBroken extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StreamBroken';
  }
}

function providerError(error: unknown, afterFirstToken: boolean): ChatProviderError {
  const retryAfterMs = retryAfterOf(error);
  const base = {
    afterFirstToken,
    cause: error,
    retryAfterSeconds: retryAfterMs === undefined ? undefined : Math.ceil(retryAfterMs / 1000),
  };
  const prefix = afterFirstToken ? 'The answer broke off' : 'The chat model failed';
  if (error instanceof StreamBroken) {
    return new ChatProviderError(`${prefix}: ${error.message}`, { ...base, retryable: true });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return new ChatProviderError(`${prefix}: the model server could not be reached.`, { ...base, retryable: true });
  }
  if (error instanceof OpenAI.APIError) {
    const status = typeof error.status === 'number' ? error.status : undefined;
    // No status: an error event inside the stream, which OpenAI sends for server-side failures.
    const retryable = status === undefined || status === 429 || status >= 500;
    return new ChatProviderError(`${prefix}${status ? ` with ${status}` : ''}: ${error.message}`, {
      ...base,
      status,
      retryable,
    });
  }
  if (error instanceof SyntaxError) {
    return new ChatProviderError(`${prefix}: the model server sent a malformed stream.`, { ...base, retryable: false });
  }
  // Anything else thrown while reading the body is the connection failing (undici's "terminated", Deno's read errors).
  return new ChatProviderError(`${prefix}: the connection to the model server was lost.`, { ...base, retryable: true });
}

/** How long to wait before try `attempt + 1`: as the server asks, else exponential backoff with jitter. */
function retryDelayMs(error: unknown, attempt: number): number {
  const asked = retryAfterOf(error);
  if (asked !== undefined) return asked;
  const backoff = Math.min(INITIAL_BACKOFF_MS * 2 ** attempt, MAX_BACKOFF_MS);
  return backoff * (1 - Math.random() * 0.25);
}

/** What an API error asks to wait, in milliseconds. */
function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof OpenAI.APIError) || !error.headers) return undefined;
  return retryAfterMs(error.headers);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
