import {
  cleanText,
  MAX_PAGE_CHARS,
  MAX_PAGES,
  type OpenedDocument,
  tooManyPages,
  tooManyTextPages,
  UnreadableFileError,
} from './document.ts';
import { PSEUDO_PAGE_CHARS } from './pages.ts';
import { documentFromPages, documentFromText } from './plain.ts';
import { readZipEntry, ZipEntryTooLarge } from './zip-entry.ts';

const BODY = 'word/document.xml';
/**
 * The most word/document.xml may expand to. A 25 MB upload can inflate to
 * gigabytes (a body of repeated markup, a zip bomb); the size the archive
 * declares is checked before inflating, and inflating stops once the output
 * passes this, whatever the archive declared (zip-entry.ts). 500 pages of
 * Word text are a few megabytes of XML, far below this; every step reopens
 * the file, and scanning 64 MB of markup took 1.4 s and 300 MB of the hosted
 * 2 s and 256 MB.
 */
export const MAX_DOCX_BODY_BYTES = 16 * 1024 * 1024;
/**
 * The most text a Word file read as pseudo-pages (no page breaks, or a page
 * longer than any page can be) can hold and still be indexed.
 */
const MAX_PSEUDO_PAGED_CHARS = MAX_PAGES * PSEUDO_PAGE_CHARS;
/** Entities are decoded this many characters of a text run at a time, the budget checked before each. */
const DECODE_SLICE_CHARS = 64 * 1024;
/** Office's encrypted files (and old .doc files) are OLE compound files, not zip archives. */
const OLE_MAGIC = [0xd0, 0xcf, 0x11, 0xe0];

/**
 * A Word document: the text of word/document.xml (the w:t runs; tabs, line
 * breaks and paragraph ends kept as whitespace). Page breaks Word recorded
 * when it last laid the document out (or explicit ones) give real page
 * numbers; without any, or when a "page" holds more than any page can
 * (breaks a generator wrote, not a layout), the text is cut into pseudo-pages,
 * which the page limit counts.
 */
export function openDocx(bytes: Uint8Array): OpenedDocument {
  if (OLE_MAGIC.every((byte, index) => bytes[index] === byte)) {
    throw new UnreadableFileError('The Word document is password-protected or in the old .doc format; save it as .docx.');
  }
  let body: Uint8Array | null;
  try {
    body = readZipEntry(bytes, BODY, MAX_DOCX_BODY_BYTES);
  } catch (error) {
    if (error instanceof ZipEntryTooLarge) throw bodyTooLarge(error);
    throw notWord();
  }
  if (!body) throw notWord();
  const xml = new TextDecoder('utf-8').decode(body);
  const { pages, hasPageBreaks } = docxText(xml);
  if (!hasPageBreaks) return documentFromText(cleanText(pages.join('\n\n')));
  if (pages.length > MAX_PAGES) throw tooManyPages(pages.length);
  const cleaned = pages.map(cleanText);
  if (cleaned.some((page) => page.length > MAX_PAGE_CHARS)) return documentFromText(cleaned.join('\n\n'));
  return documentFromPages(cleaned);
}

const notWord = () => new UnreadableFileError('The file is not a valid Word document (.docx).');

const MB = 1024 * 1024;

const bodyTooLarge = (error: ZipEntryTooLarge) =>
  new UnreadableFileError(
    `The Word document's text expands to ${
      error.declared ? `${Math.ceil(error.bytes / MB)} MB` : `more than ${MAX_DOCX_BODY_BYTES / MB} MB`
    } of XML; at most ${MAX_DOCX_BODY_BYTES / MB} MB can be indexed.`,
  );

// Attributes stop at the next "<" (valid XML has none inside a tag): scanning on to a ">" would read to the end
// of the body for every "<" that has none, which makes a body of "<a " repeated quadratic.
const TOKEN = /<(\/?)([A-Za-z][\w.-]*:)?([A-Za-z][\w.-]*)((?:\s[^<>]*?)?)(\/?)>|([^<]+)/g;

/**
 * The text of a WordprocessingML body, split at page breaks. Stops, refusing
 * the file, once the text collected (before cleaning) passes what pseudo-pages
 * can hold and some page already passed MAX_PAGE_CHARS, so the file must be
 * read as pseudo-pages: 60 MB of `&#x41;` took 5.6 s and 1.9 GB when decoded
 * whole, before the page limit refused it.
 */
export function docxText(xml: string): { pages: string[]; hasPageBreaks: boolean } {
  const pages: string[] = [];
  let parts: string[] = [];
  let pageChars = 0;
  let totalChars = 0;
  let pseudoPaged = false;
  let inText = false;
  let hasPageBreaks = false;
  // Word records a hard page break twice: the w:br, then a w:lastRenderedPageBreak where the next page's first
  // run starts (Unstructured-IO #1447). The first rendered break before any text after a hard one is that echo.
  let afterHardBreak = false;
  const add = (text: string) => {
    if (afterHardBreak && /\S/.test(text)) afterHardBreak = false;
    parts.push(text);
    pageChars += text.length;
    totalChars += text.length;
    if (pageChars > MAX_PAGE_CHARS) pseudoPaged = true;
    // The whole text fills more pages than this; counting them would mean reading it all.
    if (pseudoPaged && totalChars > MAX_PSEUDO_PAGED_CHARS) throw tooManyTextPages(MAX_PAGES + 1);
  };
  const pageBreak = () => {
    hasPageBreaks = true;
    pages.push(parts.join(''));
    parts = [];
    pageChars = 0;
  };
  for (const match of xml.matchAll(TOKEN)) {
    const [, closing, prefix, name, attributes, selfClosing, text] = match;
    if (text !== undefined) {
      if (inText) for (let from = 0; from < text.length;) from = addDecoded(text, from, add);
      continue;
    }
    if (prefix !== 'w:') continue;
    if (name === 't') inText = !closing && !selfClosing;
    else if (closing && name === 'p') add('\n');
    else if (name === 'tab' && !closing) add('\t');
    else if ((name === 'br' || name === 'cr') && !closing) {
      if (/\bw:type\s*=\s*["']page["']/.test(attributes)) {
        pageBreak();
        afterHardBreak = true;
      } else add('\n');
    } else if (name === 'lastRenderedPageBreak' && !closing) {
      if (afterHardBreak) afterHardBreak = false;
      else pageBreak();
    }
  }
  pages.push(parts.join(''));
  return { pages, hasPageBreaks };
}

/**
 * Decodes one slice of `text` from `from`, ending before an entity the slice
 * would cut, hands it to `add`, and returns where the next slice starts.
 */
function addDecoded(text: string, from: number, add: (decoded: string) => void): number {
  let to = Math.min(text.length, from + DECODE_SLICE_CHARS);
  if (to < text.length) {
    const ampersand = text.lastIndexOf('&', to - 1);
    if (ampersand > from && !text.slice(ampersand, to).includes(';')) to = ampersand;
  }
  add(decodeEntities(text.slice(from, to)));
  return to;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|lt|gt|amp|quot|apos);/g, (whole, entity: string) => {
    if (entity.startsWith('#x')) return safeCodePoint(parseInt(entity.slice(2), 16), whole);
    if (entity.startsWith('#')) return safeCodePoint(parseInt(entity.slice(1), 10), whole);
    return ENTITIES[entity] ?? whole;
  });
}

/** A character reference to a surrogate (&#xD800;) is not a character: Postgres would refuse the text. */
function safeCodePoint(code: number, fallback: string): string {
  const valid = Number.isInteger(code) && code >= 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff);
  return valid ? String.fromCodePoint(code) : fallback;
}
