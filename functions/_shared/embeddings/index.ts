import { type EnvReader, processEnv } from '../env.ts';
import { createOfflineProvider } from './offline.ts';
import { createOpenAiProvider } from './openai.ts';
import type { EmbeddingProvider } from './types.ts';

export * from './types.ts';
export { OPENAI_EMBEDDING_LIMITS, planBatches } from './batching.ts';
export { createOfflineProvider, lexicalEmbedding, OFFLINE_EMBEDDING_MODEL } from './offline.ts';
export { createOpenAiProvider, OPENAI_EMBEDDING_MODEL } from './openai.ts';

/**
 * OpenAI's text-embedding-3-small when OPENAI_API_KEY is set (at
 * OPENAI_BASE_URL when that is set too: any OpenAI-compatible server), else
 * the offline lexical provider, so everything runs with no key at all.
 */
export function providerFromEnv(env: EnvReader = processEnv): EmbeddingProvider {
  const apiKey = env('OPENAI_API_KEY')?.trim();
  if (!apiKey) return createOfflineProvider();
  const retries = env('OPENAI_MAX_RETRIES')?.trim();
  return createOpenAiProvider({
    apiKey,
    baseURL: env('OPENAI_BASE_URL')?.trim() || undefined,
    maxRetries: retries && /^\d{1,2}$/.test(retries) ? Number(retries) : undefined,
  });
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
