import { PSEUDO_PAGE_CHARS } from './pages.ts';
import { countTokensUpTo } from './tokens.ts';

/**
 * What extraction hands to chunking: a document opened once, whose pages are
 * read on demand, so a resumable step reads only its own page range.
 */

/** One page of text; `number` is 1-based. */
export interface Page {
  number: number;
  text: string;
}

export interface OpenedDocument {
  pageCount: number;
  /** The text of one page (1-based). */
  readPage(number: number): Promise<Page>;
  /** Frees what the parser holds (pdf.js keeps the parsed document in memory). */
  close(): Promise<void>;
}

/**
 * The file itself is the problem (encrypted, damaged, too long, empty, wrong
 * type): retrying cannot help, so the document fails with this message, which
 * is written for the person who uploaded it.
 */
export class UnreadableFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreadableFileError';
  }
}

/** The limits users were promised (documents.size_bytes and the bucket enforce the same 25 MB). */
export const MAX_FILE_BYTES = 25 * 1024 * 1024;
export const MAX_PAGES = 500;

export const NO_TEXT_MESSAGE = 'The file contains no text to index (a scanned document needs OCR first).';

export const tooManyPages = (pages: number) =>
  new UnreadableFileError(`The file has ${pages} pages; at most ${MAX_PAGES} pages can be indexed.`);

export const tooManyTextPages = (pages: number) =>
  new UnreadableFileError(
    `The file's text fills ${pages} pages of about ${PSEUDO_PAGE_CHARS.toLocaleString('en')} characters; at most ${MAX_PAGES} pages can be indexed.`,
  );

export const tooLarge = (bytes: number) =>
  new UnreadableFileError(
    `The file is ${(bytes / 1024 / 1024).toFixed(1)} MB; files of up to ${MAX_FILE_BYTES / 1024 / 1024} MB can be indexed.`,
  );

/**
 * No page of any format may hold more than this: a step reads whole pages, so
 * this bounds what one step chunks and embeds (about 25,000 tokens of prose).
 * A printed page holds a few thousand characters.
 */
export const MAX_PAGE_CHARS = 100_000;

/**
 * Nor more tokens than this, which bounds a step where characters do not:
 * 98,000 random CJK characters are about 240,000 tokens (598 chunks in one
 * step of a 20,000-token budget), where 100,000 characters of prose are about
 * 25,000.
 */
export const MAX_PAGE_TOKENS = 30_000;

/** cl100k's tokens are at least one UTF-8 byte each, and one UTF-16 code unit is at most three UTF-8 bytes. */
const MAX_TOKENS_PER_CHAR = 3;

export const pageTooLong = (page: number, chars: number) =>
  new UnreadableFileError(
    `Page ${page} of the file holds ${chars.toLocaleString('en')} characters; at most ${MAX_PAGE_CHARS.toLocaleString('en')} per page can be indexed.`,
  );

export const pageTooManyTokens = (page: number) =>
  new UnreadableFileError(
    `Page ${page} of the file holds more than ${MAX_PAGE_TOKENS.toLocaleString('en')} tokens of text; at most ${MAX_PAGE_TOKENS.toLocaleString('en')} per page can be indexed.`,
  );

/**
 * A page as it is indexed. NFKC folds compatibility forms into the characters
 * questions are typed in (full-width "ＳＫＵ－１２３４" is "SKU-1234", "ﬁ" is
 * "fi", "Ⅻ" is "XII"), as questions are folded. Superscripts, subscripts,
 * vulgar fractions and ordinal indicators keep their form, as NFKC would
 * change what they say ("10⁶" would be "106", "Note¹" "Note1", "½" "1⁄2",
 * "Nº 5" "No 5") in the text the model reads and cites. Done page by page,
 * when a step reads the page: one character can expand to 18 under NFKC, and
 * a page bounds that, where a whole 25 MB file would not. A step reads whole pages (the run's
 * cursor counts pages), so an oversized page is refused rather than split.
 */
export function indexedPage(number: number, raw: string): Page {
  const text = cleanText(raw.replace(FOLDED, (part) => part.normalize('NFKC')));
  if (text.length > MAX_PAGE_CHARS) throw pageTooLong(number, text.length);
  // Counted only where the page could pass the bound: pseudo-pages and printed pages never can.
  if (text.length * MAX_TOKENS_PER_CHAR > MAX_PAGE_TOKENS && countTokensUpTo(text, MAX_PAGE_TOKENS) > MAX_PAGE_TOKENS) {
    throw pageTooManyTokens(number);
  }
  return { number, text };
}

/**
 * All but ² ³ ¹ ¼-¾, U+2070-U+209F (superscripts and subscripts), U+2150-U+215F and ↉ (vulgar fractions),
 * and the ordinal indicators ª º and №, which NFKC makes letters ("Nº 5" and "№ 5" would be "No 5", "1ª" "1a").
 */
const FOLDED = /[^\u00AA\u00B2\u00B3\u00B9\u00BA\u00BC-\u00BE\u2070-\u209F\u2116\u2150-\u215F\u2189]+/gu;

/**
 * Runs of non-space characters longer than this are cut with spaces: such a
 * run is not language (base64, a filler line), and the tokenizer's time grows
 * with the square of a word's length.
 */
export const MAX_WORD_CHARS = 1000;

/**
 * Text as it is stored and embedded: Postgres text cannot hold NUL or a lone
 * UTF-16 surrogate (jsonb rejects it), other control characters only add
 * noise, and runs of blank lines or spaces carry no meaning for search.
 * Spaces are collapsed before trailing ones are stripped: stripping first
 * backtracks over every long run of spaces that ends without a newline.
 */
export function cleanText(text: string): string {
  return breakLongWords(
    text
      .replace(/\r\n?/g, '\n')
      // deno-lint-ignore no-control-regex
      .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '')
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
      .replace(/[ \t\u00A0]{2,}/g, ' ')
      .replace(/[ \t\u00A0]\n/g, '\n')
      .replace(/\n{3,}/g, '\n\n')
      .trim(),
  );
}

/**
 * A space within every MAX_WORD_CHARS characters of a run without whitespace
 * (a linear scan: this sees whole files), after the run's last punctuation
 * mark in its final stretch where there is one (minified JSON, a long CJK
 * sentence: `"Stainless",` stays whole), else at the limit.
 */
function breakLongWords(text: string): string {
  let out = '';
  let from = 0;
  let run = 0;
  // Just after the current run's last punctuation mark, or -1.
  let soft = -1;
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (isWhitespace(code)) {
      run = 0;
      soft = -1;
      continue;
    }
    if (run >= MAX_WORD_CHARS) {
      // Never cut between the two halves of a surrogate pair: cut before the pair instead.
      const hard = code >= 0xdc00 && code <= 0xdfff ? at - 1 : at;
      const cut = soft > at - SOFT_BREAK_WINDOW ? soft : hard;
      out += `${text.slice(from, cut)} `;
      from = cut;
      run = at - cut;
      soft = -1;
    }
    run++;
    if (isBreakAfter(code)) soft = at + 1;
  }
  return from === 0 ? text : out + text.slice(from);
}

/** How far back from the limit a punctuation mark may be and still take the break. */
const SOFT_BREAK_WINDOW = 200;

/** Marks a break may follow without cutting a word: , ; : ) ] } > | / and the CJK 、。，！？ */
function isBreakAfter(code: number): boolean {
  return code === 0x2c || code === 0x3b || code === 0x3a || code === 0x29 || code === 0x5d || code === 0x7d ||
    code === 0x3e || code === 0x7c || code === 0x2f || code === 0x3001 || code === 0x3002 || code === 0xff0c ||
    code === 0xff01 || code === 0xff1f;
}

/** What `\s` matches. */
function isWhitespace(code: number): boolean {
  return (code >= 0x09 && code <= 0x0d) || code === 0x20 || code === 0xa0 || code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) || code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f ||
    code === 0x3000 || code === 0xfeff;
}
