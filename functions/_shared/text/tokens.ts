/**
 * Token counting for text-embedding-3-small, whose tokenizer is cl100k_base.
 * Text that spells a special token ("<|endoftext|>") is counted as plain text,
 * as the embeddings API does, instead of throwing.
 *
 * cl100k's merge step is quadratic in the length of one pre-token, so one
 * long run without spaces is slow: a 150,000-character word blocked the
 * runtime for 9 s, 32,000 characters take half a second. Text from outside
 * (a message, a transcript, a file's page, a model's answer) is counted and
 * cut in slices of at most MAX_SLICE_CHARS (countTokensUpTo, truncateToTokens):
 * time linear in the text. countTokens and encodeTokens take the text whole,
 * for text short by construction (a chunk, a piece of one).
 */
import { decode, encode, setMergeCacheSize } from 'gpt-tokenizer/encoding/cl100k_base';

const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/**
 * The tokenizer keeps the merges of up to 100,000 pre-tokens of any length,
 * in one cache every tenant of an isolate shares: 20,000 distinct 1,000-character
 * slices held 158 MB after GC, of the isolate's 256 MB. Most words are one
 * token and never reach it: 1.4 MB of English encoded word by word as fast
 * with 1,000 entries as with 100,000. 1,000 slices of MAX_SLICE_CHARS Chinese
 * characters hold 26 MB (5,000 held 129 MB).
 */
export const MERGE_CACHE_SIZE = 1000;
setMergeCacheSize(MERGE_CACHE_SIZE);

/**
 * The longest text the sliced functions hand the tokenizer. A slice is cut
 * where no pre-token spans the cut, the last such place in its second half
 * (see preTokenEnds): its tokens are then exactly those of the whole text. A
 * run with no such place (random letters, base64) is cut anyway, which counts
 * one token fewer to two more than the whole per cut.
 */
export const MAX_SLICE_CHARS = 1000;

export function encodeTokens(text: string): number[] {
  return encode(text, PLAIN_TEXT);
}

export function countTokens(text: string): number {
  return text === '' ? 0 : encodeTokens(text).length;
}

// Byte 0xFF, never valid UTF-8.
const LONE_FF_TOKEN = 187;

/**
 * The text of `tokens`; a character they end inside of decodes to U+FFFD.
 * The library decodes bytes with one streaming TextDecoder for the whole
 * isolate, so the first bytes of such a character would stay in it and come
 * out in front of the next decode, whoever's it is; a lone 0xFF after them
 * ends that state and its own U+FFFD is dropped.
 */
export function decodeTokens(tokens: number[]): string {
  return decode([...tokens, LONE_FF_TOKEN]).slice(0, -1);
}

/**
 * The tokens of `text`, counted in slices; once the sum passes `limit`,
 * counting stops and that partial sum (over `limit`) is returned.
 */
export function countTokensUpTo(text: string, limit: number = Number.POSITIVE_INFINITY): number {
  let tokens = 0;
  for (let start = 0; start < text.length && tokens <= limit;) {
    const { end } = sliceEnd(text, start);
    tokens += countTokens(text.slice(start, end));
    start = end;
  }
  return tokens;
}

/**
 * The text cut to at most `limit` tokens, encoded in slices. Cutting between
 * tokens can split a multi-byte character; the replacement character a
 * partial one decodes to is dropped. A slice cut inside a run (see
 * MAX_SLICE_CHARS) keeps a token spare: the two sides of such a cut counted
 * one token fewer than the whole in 20 of 300 cuts of random letters (never
 * two fewer), and the embeddings API refuses an input over its limit.
 */
export function truncateToTokens(text: string, limit: number): { text: string; tokens: number } {
  let tokens = 0;
  let spare = 0;
  for (let start = 0; start < text.length;) {
    const { end, exact } = sliceEnd(text, start);
    const slice = encodeTokens(text.slice(start, end));
    if (tokens + spare + slice.length > limit) {
      const kept = decodeTokens(slice.slice(0, Math.max(0, limit - tokens - spare)));
      const cut = (text.slice(0, start) + kept).replace(/\uFFFD+$/u, '');
      return { text: cut, tokens: countTokensUpTo(cut) };
    }
    tokens += slice.length;
    if (!exact) spare += 1;
    start = end;
  }
  return { text, tokens };
}

/** Where the slice from `start` ends, and whether its tokens are exactly those it has within the whole text. */
function sliceEnd(text: string, start: number): { end: number; exact: boolean } {
  const end = start + MAX_SLICE_CHARS;
  if (end >= text.length) return { end: text.length, exact: true };
  for (let at = end; at > start + MAX_SLICE_CHARS / 2; at -= 1) {
    if (preTokenEnds(text, at)) return { end: at, exact: true };
  }
  // Not between the halves of a surrogate pair: each half alone would count as a replacement character.
  const code = text.charCodeAt(end);
  return { end: code >= 0xdc00 && code <= 0xdfff ? end - 1 : end, exact: false };
}

/**
 * Whether every pre-token of cl100k's pattern ends at `at`, so that the text
 * before and the text after tokenize as they do within the whole: where a run
 * of letters ends (the pre-token holding the last letter is letters, after one
 * other character at most, and takes all of them), which cuts Chinese or
 * Japanese text at its punctuation; and where spaces or tabs follow what is
 * not whitespace (only line breaks join the punctuation before them). A
 * letter outside the BMP is left alone: the run may go on.
 */
function preTokenEnds(text: string, at: number): boolean {
  const before = text[at - 1];
  const after = String.fromCodePoint(text.codePointAt(at) ?? 0);
  if (LETTER.test(before) && !LETTER.test(after)) return true;
  return !SPACE.test(before) && SPACE.test(after) && after !== '\r' && after !== '\n';
}

const LETTER = /^\p{L}$/u;
const SPACE = /^\s$/u;
