import { truncateToTokens } from '../text/tokens.ts';
import { OPENAI_EMBEDDING_LIMITS } from './batching.ts';
import { EMBEDDING_DIMENSIONS, type EmbeddingProvider } from './types.ts';

export const OFFLINE_EMBEDDING_MODEL = 'offline-lexical-v2';

/**
 * Deterministic lexical embeddings, for running and testing with no API key:
 * word unigrams, word bigrams and character trigrams of each word, hashed
 * (FNV-1a) into 1536 signed buckets, weighted by 1 + ln(count), L2-normalised.
 * Texts that share words (or word stems, through the trigrams) point the same
 * way, so cosine similarity behaves like keyword overlap. No semantics: a
 * synonym matches only by its letters. Chinese, Japanese and Korean, written
 * without spaces between words, count each pair of neighbouring characters as
 * a word. Each text is cut to 8,192 tokens first, as OpenAI's inputs are.
 */
export function createOfflineProvider(): EmbeddingProvider {
  return {
    model: OFFLINE_EMBEDDING_MODEL,
    dimensions: EMBEDDING_DIMENSIONS,
    async embed(texts, options = {}) {
      await options.beforeRequest?.();
      let tokens = 0;
      // Cut as the OpenAI path cuts each input (planBatches), and metered as cut: the same text meters the
      // same with or without a key. A text within the limit is untouched, so its vector is as before.
      const vectors = texts.map((raw) => {
        const cut = truncateToTokens(raw, OPENAI_EMBEDDING_LIMITS.maxTokensPerInput);
        tokens += cut.tokens;
        return lexicalEmbedding(cut.text);
      });
      return { vectors, tokens };
    },
  };
}

const WEIGHTS = { word: 1, bigram: 0.7, trigram: 0.25 } as const;

// Words that occur in nearly every English text; left in, they would make every pair of texts look alike.
const STOPWORDS = new Set(
  ('a an and are as at be been but by can did do does for from had has have he her his how i if in into is it its ' +
    'me my no not of on or our she so than that the their them then there these they this to too us was we were ' +
    'what when where which who why will with you your').split(' '),
);

export function lexicalEmbedding(text: string): number[] {
  const counts = new Map<string, { weight: number; count: number }>();
  const add = (feature: string, weight: number) => {
    const entry = counts.get(feature);
    if (entry) entry.count += 1;
    else counts.set(feature, { weight, count: 1 });
  };
  const words = (foldCase(text).match(/[\p{L}\p{M}\p{N}]+/gu) ?? []).flatMap(splitCjk)
    .filter((word) => !STOPWORDS.has(word));
  words.forEach((word, index) => {
    add(`w:${word}`, WEIGHTS.word);
    if (index > 0) add(`b:${words[index - 1]} ${word}`, WEIGHTS.bigram);
    const padded = `#${word}#`;
    for (let at = 0; at + 3 <= padded.length; at++) add(`c:${padded.slice(at, at + 3)}`, WEIGHTS.trigram);
  });

  const vector = new Array<number>(EMBEDDING_DIMENSIONS).fill(0);
  for (const [feature, { weight, count }] of counts) {
    const hash = fnv1a(feature);
    const sign = Math.floor(hash / EMBEDDING_DIMENSIONS) % 2 === 0 ? 1 : -1;
    vector[hash % EMBEDDING_DIMENSIONS] += sign * weight * (1 + Math.log(count));
  }
  const norm = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
  // A text with no words still needs a unit vector: cosine distance to a zero vector is undefined.
  if (norm === 0) {
    vector[0] = 1;
    return vector;
  }
  return vector.map((value) => value / norm);
}

// A letter of the scripts whose accents fold away, and the nonspacing marks after it.
const ACCENTED = /([\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}])\p{Mn}+/gu;

/**
 * Lower case without accents, so "Café" and "cafe" are one word. Only the
 * accents of Latin, Greek and Cyrillic: elsewhere a mark is part of the
 * spelling (Hindi काम and कम differ by the vowel sign ा alone). NFC after
 * NFKD puts together again what lost nothing (Hangul syllables, Japanese
 * voiced kana: が stays が), so compatibility forms fold and nothing else.
 */
function foldCase(text: string): string {
  return text.normalize('NFKD').replace(ACCENTED, '$1').normalize('NFC').toLowerCase();
}

// Runs of the scripts written without spaces between words (Script_Extensions, for marks such as ー and 々).
const CJK_RUN = /[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Hangul}]+/gu;

/**
 * A word as words: each run of Chinese, Japanese or Korean characters as its
 * overlapping character bigrams (a lone character as itself), the rest as it
 * is. 退货政策 is 退货, 货政, 政策, so a question written without spaces
 * shares words with the documents that hold its terms.
 */
function splitCjk(word: string): string[] {
  const parts: string[] = [];
  let at = 0;
  for (const match of word.matchAll(CJK_RUN)) {
    if (match.index > at) parts.push(word.slice(at, match.index));
    const characters = Array.from(match[0]);
    if (characters.length === 1) parts.push(match[0]);
    for (let index = 0; index + 2 <= characters.length; index++) parts.push(characters[index] + characters[index + 1]);
    at = match.index + match[0].length;
  }
  if (at < word.length) parts.push(word.slice(at));
  return parts;
}

/** 32-bit FNV-1a over UTF-16 code units: fast, well spread, the same in every runtime. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
