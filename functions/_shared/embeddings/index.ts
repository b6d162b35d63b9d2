import { type EnvReader, processEnv } from '../env.ts';
import { createOfflineProvider, OFFLINE_EMBEDDING_MODEL } from './offline.ts';
import { createOpenAiProvider, OPENAI_EMBEDDING_MODEL } from './openai.ts';
import type { EmbeddingProvider } from './types.ts';

export * from './types.ts';
export { OPENAI_EMBEDDING_LIMITS, planBatches } from './batching.ts';
export { createOfflineProvider, lexicalEmbedding, OFFLINE_EMBEDDING_MODEL } from './offline.ts';
export { createOpenAiProvider, OPENAI_EMBEDDING_MODEL } from './openai.ts';

/**
 * OpenAI's text-embedding-3-small when OPENAI_API_KEY is set (at
 * OPENAI_BASE_URL when that is set too: any OpenAI-compatible server), else
 * the offline lexical provider, so everything runs with no key at all. With
 * ingestion's settings: OPENAI_MAX_RETRIES retries (default 4), 60 s a
 * request, Retry-After waited up to a minute.
 */
export function providerFromEnv(env: EnvReader = processEnv): EmbeddingProvider {
  const apiKey = env('OPENAI_API_KEY')?.trim();
  if (!apiKey) return createOfflineProvider();
  return createOpenAiProvider({
    apiKey,
    baseURL: env('OPENAI_BASE_URL')?.trim() || undefined,
    maxRetries: configuredRetries(env),
  });
}

/**
 * The model providerFromEnv and interactiveProviderFromEnv embed with, without
 * making a provider: what a document's chunks are compared against.
 */
export function embeddingModelFromEnv(env: EnvReader = processEnv): string {
  return env('OPENAI_API_KEY')?.trim() ? OPENAI_EMBEDDING_MODEL : OFFLINE_EMBEDDING_MODEL;
}

/** How a provider for a person waiting gives up. */
export interface InteractiveEmbeddingSettings {
  /** At most this many retries; OPENAI_MAX_RETRIES can only lower it. */
  maxRetries: number;
  /** Per request, retries excluded. */
  timeoutMs: number;
  /** A 429 or 5xx asking for a longer wait fails at once. */
  maxRetryAfterMs: number;
}

/**
 * A chat turn's question or a knowledge search's query is embedded while a
 * person waits, within an Edge Function's 150 s: one retry, 10 s a request, a
 * Retry-After over 10 s refused at once: two tries and a wait, 30 s at most,
 * before the caller's fallback (full text for chat, a 503 for search).
 */
export const INTERACTIVE_EMBEDDING_SETTINGS: InteractiveEmbeddingSettings = {
  maxRetries: 1,
  timeoutMs: 10_000,
  maxRetryAfterMs: 10_000,
};

/** providerFromEnv for a person waiting: the same provider, with INTERACTIVE_EMBEDDING_SETTINGS. */
export function interactiveProviderFromEnv(
  env: EnvReader = processEnv,
  settings: InteractiveEmbeddingSettings = INTERACTIVE_EMBEDDING_SETTINGS,
): EmbeddingProvider {
  const apiKey = env('OPENAI_API_KEY')?.trim();
  if (!apiKey) return createOfflineProvider();
  return createOpenAiProvider({
    apiKey,
    baseURL: env('OPENAI_BASE_URL')?.trim() || undefined,
    maxRetries: Math.min(configuredRetries(env) ?? settings.maxRetries, settings.maxRetries),
    timeoutMs: settings.timeoutMs,
    maxRetryAfterMs: settings.maxRetryAfterMs,
  });
}

function configuredRetries(env: EnvReader): number | undefined {
  const retries = env('OPENAI_MAX_RETRIES')?.trim();
  return retries && /^\d{1,2}$/.test(retries) ? Number(retries) : undefined;
}

/** A vector as pgvector's text input: `[0.1,0.2,...]`. */
export function toPgVector(vector: number[]): string {
  return `[${vector.join(',')}]`;
}

/** The scale of toPgDirection: the largest component becomes ±1e9, within integer's range. */
const DIRECTION_SCALE = 1e9;

/**
 * A query vector's direction as Postgres integers (`{12,-345,...}`), for
 * `$1::integer[]::extensions.vector` in a cosine search: cosine distance
 * ignores the length, and 1e9 steps keep what float4 holds. In PGlite's WASM
 * build pgvector reads 1536 floats from text in about 2.5 ms and these
 * integers in about 0.4 ms, and every search pays that parse. Stored
 * embeddings keep their floats (toPgVector).
 */
export function toPgDirection(vector: number[]): string {
  const largest = vector.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
  const scale = largest === 0 ? 0 : DIRECTION_SCALE / largest;
  return `{${vector.map((value) => Math.round(value * scale)).join(',')}}`;
}
