import { PSEUDO_PAGE_CHARS } from './pages.ts';

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
 * Text as it is stored and embedded: Postgres text cannot hold NUL, other
 * control characters only add noise, and runs of blank lines or spaces carry
 * no meaning for search.
 */
export function cleanText(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    // deno-lint-ignore no-control-regex
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '')
    .replace(/[ \t\u00A0]+\n/g, '\n')
    .replace(/[ \t\u00A0]{2,}/g, ' ')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
