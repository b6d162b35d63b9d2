import type { Page } from './document.ts';
import { countTokensUpTo } from './tokens.ts';

/**
 * Splits text into chunks of about 400 tokens (cl100k_base, the tokenizer of
 * text-embedding-3-small) where consecutive chunks share about 40 tokens, so
 * a sentence cut at a chunk's end is whole in the next one. Each chunk knows
 * the pages it spans, for citations.
 *
 * Text is handled as pieces (a word and the whitespace after it, long runs
 * without spaces cut smaller) each counted once, rather than as raw tokens:
 * cutting between pieces never splits a word or a multi-byte character. Near
 * the 400 mark a chunk ends at the best boundary within the last 80 tokens:
 * a paragraph or page end, else a line end, else a sentence end, else as full
 * as it gets.
 */
export interface TextChunk {
  content: string;
  pageStart: number;
  pageEnd: number;
  /** Count of the content: exact, but for a run of over 500 characters with no place to slice (see MAX_SLICE_CHARS). */
  tokenCount: number;
}

export interface ChunkOptions {
  targetTokens?: number;
  overlapTokens?: number;
  /** How far back from the target a better boundary is looked for. */
  boundaryWindowTokens?: number;
}

export const CHUNK_DEFAULTS = { targetTokens: 400, overlapTokens: 40, boundaryWindowTokens: 80 } as const;

/** No piece may exceed this, so an overlap of 40 always holds at least one piece. */
const MAX_PIECE_TOKENS = 20;

interface Piece {
  text: string;
  page: number;
  tokens: number;
  /** 3 paragraph or page end, 2 line end, 1 sentence end, 0 none: how good a place to end a chunk after it. */
  boundary: number;
}

/**
 * The chunks of `pages`. A resumable step passes the pages before its own as
 * `lead`: their last ~40 tokens open the step's first chunk, so the overlap
 * carries across steps; chunks made only of lead text are never produced.
 */
export function chunkPages(pages: Page[], options: ChunkOptions & { lead?: Page[] } = {}): TextChunk[] {
  const target = options.targetTokens ?? CHUNK_DEFAULTS.targetTokens;
  const overlap = options.overlapTokens ?? CHUNK_DEFAULTS.overlapTokens;
  const window = options.boundaryWindowTokens ?? CHUNK_DEFAULTS.boundaryWindowTokens;
  const counter = cachedCounter();

  const lead = trailingPieces(piecesOf(options.lead ?? [], counter), overlap);
  const pieces = [...lead, ...piecesOf(pages, counter)];
  const chunks: TextChunk[] = [];
  let start = 0;
  // Everything before this index is already in an emitted chunk (or is lead text).
  let fresh = lead.length;
  while (fresh < pieces.length) {
    let end = start;
    let sum = 0;
    while (end < pieces.length && (end === start || sum + pieces[end].tokens <= target)) sum += pieces[end++].tokens;
    if (end < pieces.length) end = betterEnd(pieces, start, end, sum, window, fresh);
    chunks.push(toChunk(pieces.slice(start, end)));
    fresh = end;
    if (end >= pieces.length) break;
    // The next chunk starts up to `overlap` tokens before this one's end, and always after its start.
    let next = end;
    let shared = 0;
    while (next - 1 > start && shared + pieces[next - 1].tokens <= overlap) shared += pieces[--next].tokens;
    start = next;
  }
  return chunks;
}

/** The best end in the last `window` tokens of pieces[start, end), past `fresh` so the chunk holds new text. */
function betterEnd(pieces: Piece[], start: number, end: number, sum: number, window: number, fresh: number): number {
  let best = end;
  let bestBoundary = 0;
  let tokensBefore = sum;
  for (let candidate = end; candidate > start + 1 && candidate > fresh; candidate--) {
    if (sum - tokensBefore > window) break;
    const boundary = pieces[candidate - 1].boundary;
    if (boundary > bestBoundary) {
      best = candidate;
      bestBoundary = boundary;
      if (boundary === 3) break;
    }
    tokensBefore -= pieces[candidate - 1].tokens;
  }
  return best;
}

function toChunk(pieces: Piece[]): TextChunk {
  const content = pieces.map((piece) => piece.text).join('').trim();
  return {
    content,
    pageStart: pieces[0].page,
    pageEnd: pieces[pieces.length - 1].page,
    tokenCount: countTokensUpTo(content),
  };
}

/** The last pieces whose tokens add up to at most `limit`. */
function trailingPieces(pieces: Piece[], limit: number): Piece[] {
  let from = pieces.length;
  let sum = 0;
  while (from > 0 && sum + pieces[from - 1].tokens <= limit) sum += pieces[--from].tokens;
  return pieces.slice(from);
}

const SENTENCE_END = /[.!?…。！？]["'’”)\]]*$/u;

function piecesOf(pages: Page[], count: (text: string) => number): Piece[] {
  const pieces: Piece[] = [];
  for (const page of pages) {
    const words = page.text.match(/\S+\s*/gu) ?? [];
    words.forEach((word, index) => {
      // A page end is a paragraph end, and pages are joined by a blank line.
      const text = index === words.length - 1 ? `${word.trimEnd()}\n\n` : word;
      for (const part of splitLong(text, count)) pieces.push({ ...part, page: page.number, boundary: boundaryAfter(part.text) });
    });
  }
  return pieces;
}

function boundaryAfter(text: string): number {
  const space = text.slice(text.trimEnd().length);
  if (space.includes('\n\n')) return 3;
  if (space.includes('\n')) return 2;
  if (space !== '' && SENTENCE_END.test(text.trimEnd())) return 1;
  return 0;
}

/** A word longer than MAX_PIECE_TOKENS (a URL, base64, Chinese or Japanese text without spaces) cut by characters. */
function splitLong(text: string, count: (text: string) => number): Array<{ text: string; tokens: number }> {
  const tokens = count(text);
  if (tokens <= MAX_PIECE_TOKENS) return [{ text, tokens }];
  const chars = Array.from(text);
  let size = Math.max(1, Math.floor((chars.length * (MAX_PIECE_TOKENS * 0.8)) / tokens));
  const parts: Array<{ text: string; tokens: number }> = [];
  let at = 0;
  while (at < chars.length) {
    const part = chars.slice(at, at + size).join('');
    const partTokens = count(part);
    if (partTokens > MAX_PIECE_TOKENS && size > 1) {
      size = Math.max(1, Math.floor(size / 2));
      continue;
    }
    parts.push({ text: part, tokens: partTokens });
    at += size;
  }
  return parts;
}

/**
 * Token counts per piece, memoised (words repeat a lot). A word is counted
 * with a leading space, the way it is tokenized inside running text, and in
 * slices (countTokensUpTo): a page of 100,000 letters without a space took 4 s
 * counted whole, and Chinese text between its punctuation counts exactly.
 */
function cachedCounter(): (text: string) => number {
  const cache = new Map<string, number>();
  return (text) => {
    const key = text.trim();
    if (key === '') return text === '' ? 0 : 1;
    let tokens = cache.get(key);
    if (tokens === undefined) {
      tokens = countTokensUpTo(` ${key}`);
      if (cache.size < 50_000) cache.set(key, tokens);
    }
    return tokens;
  };
}
