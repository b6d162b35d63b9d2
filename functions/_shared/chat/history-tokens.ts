import { countTokens } from '../text/tokens.ts';

/**
 * Token counts in time linear in the text. cl100k's merge step is quadratic
 * in the length of one pre-token, so one long run without spaces is slow: a
 * 150,000-character word blocked the runtime for 9 s, 32,000 characters take
 * half a second. The text is counted in slices of at most SLICE_CHARS, cut
 * just before a space that starts a word where there is one (no pre-token
 * spans such a cut, so the sum is exact); a run with no such place is cut
 * anyway, which may count a token or so more per cut.
 */
const SLICE_CHARS = 1000;

/**
 * The tokens of `text`; once the sum passes `limit`, counting stops and that
 * partial sum (over `limit`) is returned.
 */
export function countTokensUpTo(text: string, limit: number = Number.POSITIVE_INFINITY): number {
  let tokens = 0;
  for (let start = 0; start < text.length && tokens <= limit;) {
    const end = sliceEnd(text, start);
    tokens += countTokens(text.slice(start, end));
    start = end;
  }
  return tokens;
}

function sliceEnd(text: string, start: number): number {
  const end = start + SLICE_CHARS;
  if (end >= text.length) return text.length;
  for (let at = end; at > start + SLICE_CHARS / 2; at -= 1) {
    if (text[at] === ' ' && !isSpace(text[at - 1]) && !isSpace(text[at + 1])) return at;
  }
  // Not between the halves of a surrogate pair: each half alone would count as a replacement character.
  const code = text.charCodeAt(end);
  return code >= 0xdc00 && code <= 0xdfff ? end - 1 : end;
}

function isSpace(char: string | undefined): boolean {
  return char === undefined || /\s/u.test(char);
}
