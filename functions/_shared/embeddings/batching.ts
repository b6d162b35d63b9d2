import { truncateToTokens } from '../text/tokens.ts';

/** OpenAI's limits for one embeddings request. */
export const OPENAI_EMBEDDING_LIMITS = {
  maxInputsPerRequest: 2048,
  maxTokensPerRequest: 300_000,
  maxTokensPerInput: 8192,
} as const;

export interface BatchLimits {
  maxInputsPerRequest: number;
  maxTokensPerRequest: number;
  maxTokensPerInput: number;
}

export interface Batch {
  /** Index of the batch's first text in the whole list. */
  offset: number;
  texts: string[];
  /** Our count of its tokens (cl100k_base); the API's own count is what gets billed. */
  tokens: number;
}

/**
 * Groups texts, in order, into requests within the limits. A text over the
 * per-input limit is cut to it (the API would refuse the whole request); ingest
 * never sends one, since its chunks are about 400 tokens.
 */
export function planBatches(texts: string[], limits: BatchLimits = OPENAI_EMBEDDING_LIMITS): Batch[] {
  const batches: Batch[] = [];
  let current: Batch = { offset: 0, texts: [], tokens: 0 };
  texts.forEach((raw, index) => {
    const { text, tokens } = fitInput(raw, limits.maxTokensPerInput);
    const full = current.texts.length >= limits.maxInputsPerRequest ||
      current.tokens + tokens > limits.maxTokensPerRequest;
    if (current.texts.length > 0 && full) {
      batches.push(current);
      current = { offset: index, texts: [], tokens: 0 };
    }
    current.texts.push(text);
    current.tokens += tokens;
  });
  if (current.texts.length > 0) batches.push(current);
  return batches;
}

/**
 * The API refuses empty strings; a single space embeds as "nothing". Cut whatever its length: a character
 * may be several tokens (8,000 characters of "㐀 " are 16,000), and the cut is linear in the text.
 */
function fitInput(text: string, maxTokens: number): { text: string; tokens: number } {
  return truncateToTokens(text === '' ? ' ' : text, maxTokens);
}
