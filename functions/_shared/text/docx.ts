import {
  cleanText,
  MAX_PAGE_CHARS,
  MAX_PAGES,
  type OpenedDocument,
  tooManyPages,
  UnreadableFileError,
} from './document.ts';
import { documentFromPages, documentFromText } from './plain.ts';
import { readZipEntry, ZipEntryTooLarge } from './zip-entry.ts';

const BODY = 'word/document.xml';
/**
 * The most word/document.xml may expand to. A 25 MB upload can inflate to
 * gigabytes (a body of repeated markup, a zip bomb); the size the archive
 * declares is checked before inflating, and inflating stops once the output
 * passes this, whatever the archive declared (zip-entry.ts). 500 pages of
 * Word text are a few megabytes of XML, far below this.
 */
export const MAX_DOCX_BODY_BYTES = 64 * 1024 * 1024;
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

/** The text of a WordprocessingML body, split at page breaks. */
export function docxText(xml: string): { pages: string[]; hasPageBreaks: boolean } {
  const pages: string[] = [];
  let current = '';
  let inText = false;
  let hasPageBreaks = false;
  const pageBreak = () => {
    hasPageBreaks = true;
    pages.push(current);
    current = '';
  };
  for (const match of xml.matchAll(TOKEN)) {
    const [, closing, prefix, name, attributes, selfClosing, text] = match;
    if (text !== undefined) {
      if (inText) current += decodeEntities(text);
      continue;
    }
    if (prefix !== 'w:') continue;
    if (name === 't') inText = !closing && !selfClosing;
    else if (closing && name === 'p') current += '\n';
    else if (name === 'tab' && !closing) current += '\t';
    else if ((name === 'br' || name === 'cr') && !closing) {
      if (/\bw:type\s*=\s*["']page["']/.test(attributes)) pageBreak();
      else current += '\n';
    } else if (name === 'lastRenderedPageBreak' && !closing) pageBreak();
  }
  pages.push(current);
  return { pages, hasPageBreaks };
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
