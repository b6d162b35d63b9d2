/**
 * Formats without pages (text, CSV, JSON, a Word file without page breaks) are
 * cut into pseudo-pages of about this many characters, so that a long file is
 * ingested in resumable steps like a PDF and citations still point somewhere.
 */
export const PSEUDO_PAGE_CHARS = 3000;

/**
 * Cuts text into pieces of at most `size` characters, each ending at the best
 * break in its second half: a blank line, else a line end, else a sentence
 * end, else a space. Deterministic, so every step of a run sees the same pages.
 */
export function splitIntoPages(text: string, size = PSEUDO_PAGE_CHARS): string[] {
  const pages: string[] = [];
  let start = 0;
  while (text.length - start > size) {
    const window = text.slice(start, start + size);
    let cut = bestBreak(window, Math.floor(size / 2));
    // Never split a surrogate pair (an emoji, a rare CJK character).
    if (cut === -1) cut = isHighSurrogate(window.charCodeAt(size - 1)) ? size - 1 : size;
    const page = text.slice(start, start + cut).trim();
    if (page !== '') pages.push(page);
    start += cut;
  }
  const rest = text.slice(start).trim();
  if (rest !== '' || pages.length === 0) pages.push(rest);
  return pages;
}

/** The end (exclusive) of the best break at or after `min` in `window`, or -1. */
function bestBreak(window: string, min: number): number {
  const paragraph = window.lastIndexOf('\n\n');
  if (paragraph >= min) return paragraph + 2;
  const line = window.lastIndexOf('\n');
  if (line >= min) return line + 1;
  const sentence = lastMatchEnd(window, /[.!?…。！？]["'’”)\]]*\s/gu);
  if (sentence >= min) return sentence;
  const space = window.lastIndexOf(' ');
  if (space >= min) return space + 1;
  return -1;
}

function lastMatchEnd(text: string, pattern: RegExp): number {
  let end = -1;
  for (const match of text.matchAll(pattern)) end = match.index + match[0].length;
  return end;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
