import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createOfflineProvider,
  createOpenAiProvider,
  EMBEDDING_DIMENSIONS,
  EmbeddingProviderError,
  INTERACTIVE_EMBEDDING_SETTINGS,
  embeddingModelFromEnv,
  interactiveProviderFromEnv,
  lexicalEmbedding,
  OFFLINE_EMBEDDING_MODEL,
  OPENAI_EMBEDDING_LIMITS,
  OPENAI_EMBEDDING_MODEL,
  planBatches,
  providerFromEnv,
  toPgDirection,
  toPgVector,
} from '../../functions/_shared/embeddings/index.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { type OpenAiStub, startOpenAiStub } from '../support/openai-stub.ts';

const cosine = (a: number[], b: number[]) => a.reduce((sum, value, index) => sum + value * b[index], 0);
const norm = (a: number[]) => Math.sqrt(cosine(a, a));

describe('offline lexical provider', () => {
  const provider = createOfflineProvider();

  it('returns unit vectors of 1536 dimensions, the same for the same text, and counts tokens with cl100k', async () => {
    const texts = ['Our refund policy allows returns within 30 days.', 'Opening hours are 9 to 5.'];
    const { vectors, tokens } = await provider.embed(texts);
    expect(provider.model).toBe(OFFLINE_EMBEDDING_MODEL);
    expect(provider.dimensions).toBe(1536);
    expect(vectors).toHaveLength(2);
    for (const vector of vectors) {
      expect(vector).toHaveLength(EMBEDDING_DIMENSIONS);
      expect(norm(vector)).toBeCloseTo(1, 6);
    }
    expect(tokens).toBe(countTokens(texts[0]) + countTokens(texts[1]));
    expect((await provider.embed([texts[0]])).vectors[0]).toEqual(vectors[0]);
  });

  it('cuts each text to 8,192 tokens as the OpenAI path does, embedding and metering the cut', async () => {
    // 8,000 characters, a legal question: each rare Han character is two tokens, 16,000 in all.
    const rare = '㐀 '.repeat(4000);
    expect(countTokens(rare)).toBe(16_000);
    const [sent] = planBatches([rare]);
    const { vectors, tokens } = await provider.embed([rare]);
    expect(tokens).toBe(sent.tokens);
    expect(tokens).toBeLessThanOrEqual(OPENAI_EMBEDDING_LIMITS.maxTokensPerInput);
    expect(vectors[0]).toEqual(lexicalEmbedding(sent.texts[0]));
  });

  it('leaves a text within the limit untouched, so stored vectors stay comparable', async () => {
    const texts = ['Our refund policy allows returns within 30 days.', 'lorem ipsum '.repeat(3500), '退货政策是什么？'];
    const { vectors, tokens } = await provider.embed(texts);
    expect(vectors).toEqual(texts.map(lexicalEmbedding));
    expect(tokens).toBe(texts.reduce((sum, text) => sum + countTokens(text), 0));
  });

  it('puts texts that share words close together and unrelated texts apart', () => {
    const question = lexicalEmbedding('How many days do I have to return a product for a refund?');
    const answer = lexicalEmbedding('Refund policy: a product can be returned within 30 days of delivery.');
    const unrelated = lexicalEmbedding('The conference room on the fourth floor seats twelve people.');
    expect(cosine(question, answer)).toBeGreaterThan(cosine(question, unrelated) + 0.15);
    // Accents and case fold away; stems meet through character trigrams.
    expect(cosine(lexicalEmbedding('Café'), lexicalEmbedding('cafe'))).toBeCloseTo(1, 6);
    expect(cosine(lexicalEmbedding('delivery'), lexicalEmbedding('deliveries'))).toBeGreaterThan(0.2);
    expect(cosine(lexicalEmbedding('delivery'), lexicalEmbedding('conference'))).toBeLessThan(0.1);
  });

  it('keeps the vowel signs of Indian scripts and the voicing marks of kana, folding only Latin, Greek and Cyrillic accents', () => {
    expect(cosine(lexicalEmbedding('काम'), lexicalEmbedding('कम'))).toBeLessThan(0.5);
    expect(cosine(lexicalEmbedding('किताब'), lexicalEmbedding('कताब'))).toBeLessThan(0.5);
    expect(cosine(lexicalEmbedding('が'), lexicalEmbedding('か'))).toBeLessThan(0.5);
    expect(cosine(lexicalEmbedding('Ελλάδα'), lexicalEmbedding('ελλαδα'))).toBeCloseTo(1, 6);
    expect(cosine(lexicalEmbedding('ёлка'), lexicalEmbedding('елка'))).toBeCloseTo(1, 6);
    // Compatibility forms still fold: half-width katakana is the same word.
    expect(cosine(lexicalEmbedding('ｶﾞｲﾄﾞ'), lexicalEmbedding('ガイド'))).toBeCloseTo(1, 6);
  });

  it('matches a Chinese question, written without spaces, to the Chinese document holding its terms', () => {
    const question = lexicalEmbedding('退货政策是什么？');
    const chinese = lexicalEmbedding('我们的退货政策：收到商品后三十天内可以退货，退款会退回原支付方式。');
    const japanese = lexicalEmbedding('返品ポリシー：商品到着後30日以内であれば返品できます。');
    expect(cosine(question, chinese)).toBeGreaterThan(0.2);
    expect(cosine(question, chinese)).toBeGreaterThan(cosine(question, japanese) + 0.15);
    // Spaces or none, Korean is the same words.
    expect(cosine(lexicalEmbedding('환불정책'), lexicalEmbedding('환불 정책'))).toBeGreaterThan(0.5);
    for (const vector of [question, chinese, japanese]) expect(norm(vector)).toBeCloseTo(1, 6);
    expect(lexicalEmbedding('退货政策是什么？')).toEqual(question);
  });

  it('gives text without words a unit vector rather than zeros (cosine distance needs a direction)', () => {
    expect(norm(lexicalEmbedding(''))).toBe(1);
    expect(norm(lexicalEmbedding('!!! ---'))).toBe(1);
  });

  it('formats vectors as pgvector text', () => {
    expect(toPgVector([0.5, -0.25, 0])).toBe('[0.5,-0.25,0]');
  });

  it('formats a query direction as integers, the largest component at 1e9', () => {
    expect(toPgDirection([0.5, -0.25, 0])).toBe('{1000000000,-500000000,0}');
    expect(toPgDirection([-0.002, 0.001])).toBe('{-1000000000,500000000}');
    expect(toPgDirection([0, 0])).toBe('{0,0}');
  });
});

describe('planBatches', () => {
  it('splits at 2,048 inputs per request', () => {
    const texts = Array.from({ length: 2100 }, (_, index) => `text ${index}`);
    const batches = planBatches(texts);
    expect(batches.map((batch) => batch.texts.length)).toEqual([2048, 52]);
    expect(batches[1].offset).toBe(2048);
  });

  it('splits at 300,000 tokens per request and cuts an input to 8,192 tokens', () => {
    const big = 'lorem '.repeat(7000); // 7,000 tokens
    const batches = planBatches(Array.from({ length: 90 }, () => big));
    for (const batch of batches) expect(batch.tokens).toBeLessThanOrEqual(OPENAI_EMBEDDING_LIMITS.maxTokensPerRequest);
    expect(batches.map((batch) => batch.texts.length)).toEqual([42, 42, 6]);

    const [huge] = planBatches(['word '.repeat(10_000)]);
    expect(huge.tokens).toBeLessThanOrEqual(8192);
    expect(countTokens(huge.texts[0])).toBeLessThanOrEqual(8192);
  });

  it('replaces an empty input, which the API refuses, with a space', () => {
    expect(planBatches(['', 'a'])[0].texts).toEqual([' ', 'a']);
  });
});

describe('OpenAI provider through the openai SDK against a local stub', () => {
  let stub: OpenAiStub;
  beforeAll(async () => {
    stub = await startOpenAiStub({ apiKey: 'sk-test' });
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const provider = (overrides: Partial<Parameters<typeof createOpenAiProvider>[0]> = {}) =>
    createOpenAiProvider({ apiKey: 'sk-test', baseURL: stub.baseURL, maxRetries: 3, ...overrides });

  it('sends text-embedding-3-small at 1536 dimensions and decodes the base64 answer in input order', async () => {
    const texts = ['refund policy', 'opening hours', 'delivery times'];
    const { vectors, tokens } = await provider().embed(texts);
    expect(stub.requests).toHaveLength(1);
    expect(stub.requests[0]).toMatchObject({
      authorization: 'Bearer sk-test',
      model: OPENAI_EMBEDDING_MODEL,
      dimensions: 1536,
      encodingFormat: 'base64',
      inputs: texts,
    });
    texts.forEach((text, index) => {
      const expected = lexicalEmbedding(text);
      expect(vectors[index]).toHaveLength(1536);
      // float32 on the wire.
      vectors[index].forEach((value, at) => expect(value).toBeCloseTo(expected[at], 6));
    });
    expect(tokens).toBe(texts.reduce((sum, text) => sum + countTokens(text), 0));
  });

  it('splits many inputs into requests within the limits, and keeps the order across them', async () => {
    const texts = Array.from({ length: 2100 }, (_, index) => `item number ${index}`);
    const { vectors } = await provider().embed(texts);
    expect(stub.requests.map((request) => request.inputs.length)).toEqual([2048, 52]);
    expect(vectors).toHaveLength(2100);
    expect(cosine(vectors[2099], lexicalEmbedding('item number 2099'))).toBeCloseTo(1, 5);
  });

  it('waits as Retry-After says on a 429, then succeeds', async () => {
    stub.failNext({ status: 429, headers: { 'retry-after': '1' }, message: 'Rate limit reached' });
    const { vectors } = await provider().embed(['after the rate limit']);
    expect(vectors).toHaveLength(1);
    expect(stub.requests.map((request) => request.status)).toEqual([429, 200]);
    expect(stub.requests[1].at - stub.requests[0].at).toBeGreaterThanOrEqual(950);
  });

  it('backs off and retries on 5xx', async () => {
    stub.failNext({ status: 500 }, { status: 503 });
    await provider().embed(['eventually']);
    expect(stub.requests.map((request) => request.status)).toEqual([500, 503, 200]);
  });

  it('gives up after its retries with an EmbeddingProviderError carrying the status', async () => {
    stub.failNext({ status: 503 }, { status: 503 }, { status: 503 });
    const error = await provider({ maxRetries: 1 }).embed(['never']).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbeddingProviderError);
    expect((error as EmbeddingProviderError).status).toBe(503);
    expect(stub.requests).toHaveLength(2);
  });

  it('does not retry a bad key', async () => {
    const error = await provider({ apiKey: 'sk-wrong' }).embed(['x']).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbeddingProviderError);
    expect((error as EmbeddingProviderError).status).toBe(401);
    expect(stub.requests).toHaveLength(1);
  });

  it('says what the requests before a failing one were billed, so the caller can meter it', async () => {
    const limits = { maxInputsPerRequest: 2, maxTokensPerRequest: 1_000_000, maxTokensPerInput: 1_000_000 };
    // The second request holds an input over the API's 8,192 tokens: the stub, like the API, refuses it (400, not retried).
    const texts = ['refund policy', 'opening hours', 'word '.repeat(9000)];
    const error = await provider({ limits }).embed(texts).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbeddingProviderError);
    expect((error as EmbeddingProviderError).status).toBe(400);
    expect(stub.requests.map((request) => request.status)).toEqual([200, 400]);
    expect((error as EmbeddingProviderError).tokensSpent).toBe(countTokens('refund policy') + countTokens('opening hours'));
  });

  it('refuses an answer that repeats an index (leaving an input without a vector), carrying the tokens billed', async () => {
    const vector = Buffer.from(new Float32Array(EMBEDDING_DIMENSIONS).fill(0.1).buffer).toString('base64');
    const repeating = (async () =>
      new Response(
        JSON.stringify({
          object: 'list',
          data: [0, 0].map((index) => ({ object: 'embedding', index, embedding: vector })),
          model: OPENAI_EMBEDDING_MODEL,
          usage: { prompt_tokens: 7, total_tokens: 7 },
        }),
        { status: 200, headers: { 'content-type': 'application/json' } },
      )) as typeof fetch;
    const error = await createOpenAiProvider({ apiKey: 'sk-test', baseURL: 'http://repeat.invalid/v1', fetch: repeating })
      .embed(['first', 'second'])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(EmbeddingProviderError);
    expect((error as EmbeddingProviderError).message).toContain('index 0 twice');
    expect((error as EmbeddingProviderError).tokensSpent).toBe(7);
  });

  it('reports an unreachable server as an EmbeddingProviderError', async () => {
    const unreachable = createOpenAiProvider({ apiKey: 'sk-test', baseURL: 'http://127.0.0.1:9/v1', maxRetries: 0 });
    await expect(unreachable.embed(['x'])).rejects.toBeInstanceOf(EmbeddingProviderError);
  });
});

describe('providerFromEnv', () => {
  it('is offline without OPENAI_API_KEY and OpenAI with it', () => {
    expect(providerFromEnv(() => undefined).model).toBe(OFFLINE_EMBEDDING_MODEL);
    expect(providerFromEnv((name) => (name === 'OPENAI_API_KEY' ? ' ' : undefined)).model).toBe(OFFLINE_EMBEDDING_MODEL);
    const env: Record<string, string> = { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' };
    expect(providerFromEnv((name) => env[name]).model).toBe(OPENAI_EMBEDDING_MODEL);
  });

  it('names the model of both providers without making one (embeddingModelFromEnv)', () => {
    const envs: Array<Record<string, string>> = [{}, { OPENAI_API_KEY: ' ' }, { OPENAI_API_KEY: 'sk-x', OPENAI_BASE_URL: 'http://127.0.0.1:1/v1' }];
    for (const values of envs) {
      const env = (name: string) => values[name];
      expect(embeddingModelFromEnv(env)).toBe(providerFromEnv(env).model);
      expect(embeddingModelFromEnv(env)).toBe(interactiveProviderFromEnv(env).model);
    }
  });
});

describe('interactiveProviderFromEnv (a chat turn, a knowledge search: a person waiting)', () => {
  let stub: OpenAiStub;
  beforeAll(async () => {
    stub = await startOpenAiStub({ apiKey: 'sk-interactive' });
  });
  afterAll(async () => {
    await stub?.close();
  });
  beforeEach(() => stub.reset());

  const envOf = (extra: Record<string, string> = {}) => {
    const env: Record<string, string> = { OPENAI_API_KEY: 'sk-interactive', OPENAI_BASE_URL: stub.baseURL, ...extra };
    return (name: string) => env[name];
  };
  const failure = async (promise: Promise<unknown>) => {
    const started = Date.now();
    const error = await promise.catch((caught: unknown) => caught);
    return { error: error as EmbeddingProviderError, ms: Date.now() - started };
  };

  it('retries once, waits 10 s a request and 10 s for a Retry-After at most; offline without a key', () => {
    expect(INTERACTIVE_EMBEDDING_SETTINGS).toEqual({ maxRetries: 1, timeoutMs: 10_000, maxRetryAfterMs: 10_000 });
    expect(interactiveProviderFromEnv(() => undefined).model).toBe(OFFLINE_EMBEDDING_MODEL);
    expect(interactiveProviderFromEnv(envOf()).model).toBe(OPENAI_EMBEDDING_MODEL);
  });

  it('fails at once with an EmbeddingProviderError on a 429 asking for 20 s, in one request', async () => {
    stub.failNext(...Array.from({ length: 5 }, () => ({ status: 429, headers: { 'retry-after': '20' } })));
    // OPENAI_MAX_RETRIES is ingestion's; it cannot raise the one retry.
    const { error, ms } = await failure(interactiveProviderFromEnv(envOf({ OPENAI_MAX_RETRIES: '4' })).embed(['q']));
    expect(error).toBeInstanceOf(EmbeddingProviderError);
    expect(error.status).toBe(429);
    expect(ms).toBeLessThan(2_000);
    expect(stub.requests.map((request) => request.status)).toEqual([429]);
  });

  it('reads retry-after-ms and an HTTP date the same way', async () => {
    stub.failNext(
      { status: 429, headers: { 'retry-after-ms': '20000' } },
      { status: 503, headers: { 'retry-after': new Date(Date.now() + 60_000).toUTCString() } },
    );
    const provider = interactiveProviderFromEnv(envOf());
    const first = await failure(provider.embed(['q']));
    const second = await failure(provider.embed(['q']));
    expect([first.error.status, second.error.status]).toEqual([429, 503]);
    expect(first.ms + second.ms).toBeLessThan(2_000);
    expect(stub.requests.map((request) => request.status)).toEqual([429, 503]);
  });

  it('waits out a Retry-After within 10 s, then answers', async () => {
    stub.failNext({ status: 429, headers: { 'retry-after': '1' } });
    const { vectors } = await interactiveProviderFromEnv(envOf()).embed(['after the wait']);
    expect(vectors).toHaveLength(1);
    expect(stub.requests.map((request) => request.status)).toEqual([429, 200]);
    expect(stub.requests[1].at - stub.requests[0].at).toBeGreaterThanOrEqual(950);
  });

  it('gives up after one retry, and after none when OPENAI_MAX_RETRIES says 0', async () => {
    stub.failNext({ status: 500 }, { status: 500 }, { status: 500 });
    const once = await failure(interactiveProviderFromEnv(envOf()).embed(['q']));
    expect(once.error.status).toBe(500);
    expect(stub.requests.map((request) => request.status)).toEqual([500, 500]);
    stub.reset();
    stub.failNext({ status: 500 }, { status: 500 });
    await failure(interactiveProviderFromEnv(envOf({ OPENAI_MAX_RETRIES: '0' })).embed(['q']));
    expect(stub.requests.map((request) => request.status)).toEqual([500]);
  });

  it('cuts a server that never answers at the timeout, each of its two tries', async () => {
    let received = 0;
    const hanging: Server = createServer(() => void (received += 1));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = hanging.address() as AddressInfo;
      const env = (name: string) =>
        ({ OPENAI_API_KEY: 'sk-interactive', OPENAI_BASE_URL: `http://127.0.0.1:${port}/v1` })[name];
      const provider = interactiveProviderFromEnv(env, { ...INTERACTIVE_EMBEDDING_SETTINGS, timeoutMs: 300 });
      const { error, ms } = await failure(provider.embed(['q']));
      expect(error).toBeInstanceOf(EmbeddingProviderError);
      expect(received).toBe(2);
      // Two tries of 300 ms and the SDK's first backoff (at most 0.5 s).
      expect(ms).toBeGreaterThanOrEqual(550);
      expect(ms).toBeLessThan(2_000);
    } finally {
      hanging.closeAllConnections();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });
});

describe('openai provider heartbeat (kb2 fixes)', () => {
  it('awaits beforeRequest before every HTTP attempt, retries included', async () => {
    const events: string[] = [];
    let attempts = 0;
    const vector = Buffer.from(new Float32Array(EMBEDDING_DIMENSIONS).fill(0.1).buffer).toString('base64');
    const fakeFetch = (async () => {
      attempts += 1;
      events.push(`request ${attempts}`);
      if (attempts === 1) {
        return new Response(JSON.stringify({ error: { message: 'busy' } }), {
          status: 500,
          headers: { 'content-type': 'application/json', 'retry-after-ms': '1' },
        });
      }
      return new Response(
        JSON.stringify({
          object: 'list',
          data: [{ object: 'embedding', index: 0, embedding: vector }],
          model: OPENAI_EMBEDDING_MODEL,
          usage: { prompt_tokens: 3, total_tokens: 3 },
        }),
        { status: 200, headers: { 'content-type': 'application/json' } },
      );
    }) as typeof fetch;
    const provider = createOpenAiProvider({ apiKey: 'sk-kb2-heartbeat', baseURL: 'http://kb2.invalid/v1', fetch: fakeFetch, maxRetries: 2 });
    const result = await provider.embed(['heartbeat text'], {
      beforeRequest: async () => {
        events.push('heartbeat');
      },
    });
    expect(result.tokens).toBe(3);
    expect(events).toEqual(['heartbeat', 'request 1', 'heartbeat', 'request 2']);
  });

  it('calls beforeRequest once in the offline provider', async () => {
    let beats = 0;
    await createOfflineProvider().embed(['a', 'b'], { beforeRequest: async () => void (beats += 1) });
    expect(beats).toBe(1);
  });
});
