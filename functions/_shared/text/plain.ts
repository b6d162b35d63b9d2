import { cleanText, MAX_PAGES, type OpenedDocument, tooManyTextPages, UnreadableFileError } from './document.ts';
import { splitIntoPages } from './pages.ts';

/** A document already split into pages of text. */
export function documentFromPages(pages: string[]): OpenedDocument {
  return {
    pageCount: pages.length,
    readPage(number) {
      return Promise.resolve({ number, text: pages[number - 1] ?? '' });
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Text without pages of its own, in pseudo-pages. The page limit counts them
 * as it counts a PDF's pages, so a long text file is refused before any step
 * embeds it, as a long PDF is (and each of its steps reads a bounded file).
 */
export function documentFromText(text: string): OpenedDocument {
  const pages = splitIntoPages(text);
  if (pages.length > MAX_PAGES) throw tooManyTextPages(pages.length);
  return documentFromPages(pages);
}

/**
 * Bytes of a text file as a string: UTF-8 (a BOM is dropped), UTF-16 when it
 * starts with a UTF-16 BOM, and Windows-1252 for the legacy files many
 * spreadsheets still export; NUL bytes without a BOM mean binary data.
 */
export function decodeText(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  if (bytes.includes(0)) throw new UnreadableFileError('The file is not a text file (it contains binary data).');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return decodeWindows1252(bytes);
  }
}

// Windows-1252's 0x80-0x9F (the rest is Latin-1). Decoded here because Node's TextDecoder treats the
// label as Latin-1, so "€" (0x80) would come out as a control character under vitest but not under Deno.
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ';

function decodeWindows1252(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte >= 0x80 && byte <= 0x9f ? CP1252_HIGH[byte - 0x80] : String.fromCharCode(byte);
  return text;
}

/** TXT, Markdown and CSV: the text as is, in pseudo-pages. */
export function openPlainText(bytes: Uint8Array): OpenedDocument {
  return documentFromText(cleanText(decodeText(bytes)));
}

/** JSON: checked to be JSON (a broken export should fail loudly), then indexed as text. */
export function openJson(bytes: Uint8Array): OpenedDocument {
  const text = decodeText(bytes);
  try {
    JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message.slice(0, 200) : '';
    throw new UnreadableFileError(`The file is not valid JSON${detail ? `: ${detail}` : '.'}`);
  }
  return documentFromText(cleanText(text));
}
