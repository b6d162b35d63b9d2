/**
 * No path that counts or cuts text from outside hands cl100k more than
 * MAX_SLICE_CHARS at once (its merge is quadratic in a run without spaces: a
 * 2 MB call event froze the call dispatcher for 9.2 s, a page of 100,000
 * letters an ingest step for 8 s), the tokenizer's merge cache, shared by the
 * tenants of an isolate, is set small, and ordinary text counts and cuts as
 * the whole-text tokenizer does. The tokenizer module is wrapped: with the
 * guard on, an input over MAX_SLICE_CHARS throws instead of being encoded.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChatDelta, ChatProvider, ChatRequest } from '../../functions/_shared/chat/index.ts';
import { createOfflineProvider, planBatches } from '../../functions/_shared/embeddings/index.ts';
import { readStepPages } from '../../functions/ingest/step.ts';
import { chunkPages } from '../../functions/_shared/text/chunk.ts';
import type { OpenedDocument, Page } from '../../functions/_shared/text/document.ts';
import {
  countTokens,
  countTokensUpTo,
  decodeTokens,
  encodeTokens,
  MAX_SLICE_CHARS,
  MERGE_CACHE_SIZE,
  truncateToTokens,
} from '../../functions/_shared/text/tokens.ts';
import { analyzeCall } from '../../functions/_shared/voice/analysis.ts';

const tokenizer = vi.hoisted(() => ({ guard: false, limit: Number.POSITIVE_INFINITY, cacheSizes: [] as number[] }));

vi.mock('gpt-tokenizer/encoding/cl100k_base', async (importOriginal) => {
  const real = await importOriginal<typeof import('gpt-tokenizer/encoding/cl100k_base')>();
  return {
    ...real,
    encode: (text: string, options?: Parameters<typeof real.encode>[1]) => {
      if (tokenizer.guard && text.length > tokenizer.limit) {
        throw new Error(`the tokenizer was handed ${text.length} characters at once`);
      }
      return real.encode(text, options);
    },
    setMergeCacheSize: (size: number) => {
      tokenizer.cacheSizes.push(size);
      real.setMergeCacheSize(size);
    },
  };
});

tokenizer.limit = MAX_SLICE_CHARS;

/** Pseudo-random letters without a space: one pre-token, the tokenizer's quadratic case. */
function unbroken(length: number, seed = 7): string {
  let text = '';
  for (let i = 0; i < length; i += 1) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    text += String.fromCharCode(97 + (seed >> 16) % 26);
  }
  return text;
}

const RUN = 200_000;

/** Everything in `fn` goes through the guard. */
async function guarded<T>(fn: () => T | Promise<T>): Promise<T> {
  tokenizer.guard = true;
  try {
    return await fn();
  } finally {
    tokenizer.guard = false;
  }
}

/**
 * Text with places to slice: English, Chinese between its punctuation, numbers, emoji, line breaks; words
 * joined by a space, by nothing or by a line break, so that runs without a space go on for thousands of characters.
 */
function ordinary(words: number): string {
  const pool = [
    'Delivery', 'takes', "don't", 'café', '42,', '😀', 'Ünïcödé.\n\n', 'https://example.com/a?b=c',
    '知识库中的每一个文件都会被切分成小块以便检索。退货政策，配送需要两个工作日！', 'नमस्ते', '1234567', '—', '\t',
  ];
  const joints = [' ', '', ' ', '', '', '\n'];
  let text = '';
  for (let n = 0; n < words; n += 1) text += pool[(n * 7 + (n >> 3)) % pool.length] + joints[n % joints.length];
  return text;
}

beforeEach(() => {
  tokenizer.guard = false;
});

describe('the tokenizer', () => {
  it('has its merge cache set small, once, when the module loads', () => {
    expect(MERGE_CACHE_SIZE).toBeLessThanOrEqual(5_000);
    expect(tokenizer.cacheSizes).toEqual([MERGE_CACHE_SIZE]);
  });

  it('throws under the guard when handed the whole run (the guard itself works)', async () => {
    await expect(guarded(() => countTokens(unbroken(RUN)))).rejects.toThrow(/handed 200000 characters/);
  });
});

describe('countTokensUpTo and truncateToTokens', () => {
  it('count and cut ordinary text exactly as the whole-text tokenizer does', () => {
    for (const words of [3, 400, 4_001, 12_000]) {
      const text = ordinary(words);
      expect(countTokensUpTo(text)).toBe(countTokens(text));
      const tokens = encodeTokens(text);
      for (const limit of [0, 1, 17, 513, 4_000]) {
        const whole = tokens.length <= limit
          ? { text, tokens: tokens.length }
          : (() => {
            const cut = decodeTokens(tokens.slice(0, limit)).replace(/\uFFFD+$/u, '');
            return { text: cut, tokens: countTokens(cut) };
          })();
        expect(truncateToTokens(text, limit)).toEqual(whole);
      }
    }
  });

  it('hand the tokenizer slices of a 200,000-character run; a cut stays within its limit', async () => {
    const run = unbroken(RUN);
    const counted = await guarded(() => countTokensUpTo(run));
    expect(counted).toBeGreaterThan(RUN / 4);
    expect(await guarded(() => countTokensUpTo(run, 100))).toBeLessThan(counted / 100);
    const cut = await guarded(() => truncateToTokens(run, 8_192));
    expect(run.startsWith(cut.text)).toBe(true);
    expect(cut.tokens).toBeLessThanOrEqual(8_192);
    expect(cut.tokens).toBeGreaterThan(8_100);
    // The real count of the cut, whole (about 20,000 characters: quadratic, but short enough to run once).
    expect(countTokens(cut.text)).toBeLessThanOrEqual(8_192);
  });

  it('leave no half character in the shared decoder for the next decode', () => {
    const [first] = encodeTokens('🙂');
    expect(truncateToTokens('🙂', 1)).toEqual({ text: '', tokens: 0 });
    expect(decodeTokens([first])).toBe('\uFFFD');
    expect(decodeTokens(encodeTokens('é🙂'))).toBe('é🙂');
  });
});

describe('the paths that count text from outside', () => {
  it('fits a 2 MB call transcript to the analysis budget, keeping its short first and last turns', async () => {
    const requests: ChatRequest[] = [];
    const provider: ChatProvider = {
      name: 'openai',
      async *stream(request): AsyncGenerator<ChatDelta> {
        requests.push(request);
        yield { type: 'delta', text: '{"summary": "A long call.", "sentiment": "neutral", "score": 0}' };
        yield { type: 'done', usage: { tokensIn: 1, tokensOut: 1 }, finishReason: 'stop' };
      },
    };
    const transcript = [
      { speaker: 'user' as const, text: 'I want to return my kettle.', startMs: 0, endMs: 1 },
      ...Array.from({ length: 200 }, (_, n) => ({
        speaker: n % 2 ? 'assistant' as const : 'user' as const,
        text: unbroken(10_000, n + 1),
        startMs: 0,
        endMs: 1,
      })),
      { speaker: 'assistant' as const, text: 'Your refund is on its way.', startMs: 0, endMs: 1 },
    ];
    const analysis = await guarded(() => analyzeCall({ transcript, language: 'en' }, provider));
    expect(analysis).toMatchObject({ source: 'model', summary: 'A long call.' });
    expect(requests[0].messages[1].content).toBe(
      'User: I want to return my kettle.\n…\nAssistant: Your refund is on its way.',
    );
  });

  it('reads an ingest step of a page of 100,000 letters without a space, and chunks it', async () => {
    const pages: Page[] = [
      { number: 1, text: 'The first page, before the long one.' },
      { number: 2, text: unbroken(100_000) },
    ];
    const document: OpenedDocument = {
      pageCount: pages.length,
      readPage: (number) => Promise.resolve(pages[number - 1]),
      close: () => Promise.resolve(),
    };
    const read = await guarded(() =>
      readStepPages(document, 1, { pages: 25, tokens: 20_000, ms: 60_000 }, () => 0)
    );
    expect(read).toEqual({ pages: [pages[1]], lead: [pages[0]] });
    const chunks = await guarded(() => chunkPages(read.pages, { lead: read.lead }));
    expect(chunks.length).toBeGreaterThan(90);
    for (const chunk of chunks) expect(chunk.tokenCount).toBeLessThanOrEqual(420);
    expect(chunks.at(-1)?.content.endsWith(pages[1].text.slice(-100))).toBe(true);
  });

  it('cuts an embeddings input of a 200,000-character run, and one of 8,000 characters holding 16,000 tokens', async () => {
    const [[run], [dense]] = await guarded(() =>
      [planBatches([unbroken(RUN)])[0].texts, planBatches(['㐀 '.repeat(4_000)])[0].texts]
    );
    expect(countTokens(run)).toBeLessThanOrEqual(8_192);
    expect(countTokens('㐀 '.repeat(4_000))).toBe(16_000);
    expect(dense.length).toBeLessThan(8_000);
    expect(countTokens(dense)).toBeLessThanOrEqual(8_192);
  });

  it('meters an offline embedding of a 200,000-character run as cut to 8,192 tokens, like the OpenAI path', async () => {
    const { tokens } = await guarded(() => createOfflineProvider().embed([unbroken(RUN)]));
    expect(tokens).toBeLessThanOrEqual(8_192);
    expect(tokens).toBeGreaterThan(8_100);
  });

  it('leaves the whole-text counter to tokens.ts and the role names of usage.ts', () => {
    const callers: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts') && /\b(countTokens|encodeTokens)\(/u.test(readFileSync(path, 'utf8'))) {
          callers.push(path);
        }
      }
    };
    walk('functions');
    expect(callers.sort()).toEqual(['functions/_shared/chat/usage.ts', 'functions/_shared/text/tokens.ts']);
  });
});
