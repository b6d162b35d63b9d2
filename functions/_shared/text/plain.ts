import { cleanText, indexedPage, MAX_PAGES, type OpenedDocument, tooManyTextPages, UnreadableFileError } from './document.ts';
import { splitIntoPages } from './pages.ts';

/** A document already split into pages of text. */
export function documentFromPages(pages: string[]): OpenedDocument {
  return {
    pageCount: pages.length,
    // The executor's throw (an oversized page) becomes the promise's rejection.
    readPage: (number) => new Promise((resolve) => resolve(indexedPage(number, pages[number - 1] ?? ''))),
    close: () => Promise.resolve(),
  };
}

/**
 * Text without pages of its own, in pseudo-pages. The page limit counts them
 * as it counts a PDF's pages, so a long text file is refused before any step
 * embeds it, as a long PDF is (and each of its steps reads a bounded file).
 */
export function documentFromText(text: string): OpenedDocument {
  return documentFromPages(textPages(text));
}

/** The pseudo-pages of `text`; more than the page limit throws. */
function textPages(text: string): string[] {
  const pages = splitIntoPages(text);
  if (pages.length > MAX_PAGES) throw tooManyTextPages(pages.length);
  return pages;
}

/**
 * Bytes of a text file as a string: UTF-8 (a BOM is dropped), UTF-16 when it
 * starts with a UTF-16 BOM (Excel's "Unicode text"), and Windows-1252 for the
 * legacy Western European files many spreadsheets still export; NUL bytes
 * without a BOM mean binary data. Other legacy encodings are refused rather
 * than read as Windows-1252: that would index garbage.
 */
export function decodeText(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return new TextDecoder('utf-16le').decode(bytes);
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return new TextDecoder('utf-16be').decode(bytes);
  if (bytes.includes(0)) throw new UnreadableFileError('The file is not a text file (it contains binary data).');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    if (!looksWestern(bytes) || looksDoubleByte(bytes)) throw new UnreadableFileError(NOT_UTF8_MESSAGE);
    return decodeWindows1252(bytes);
  }
}

export const NOT_UTF8_MESSAGE = "The file is not UTF-8 text; save it as UTF-8 (in Excel: 'CSV UTF-8') and upload it again.";

/**
 * Whether bytes that are not UTF-8 read as Windows-1252 text, judged run by
 * run of bytes >= 0x80 between ASCII ones. Western European words carry one
 * accented letter, two side by side ("süß", "créé", "ações"), rarely three
 * ("Gefäßöffnung"), with punctuation before or after them (« », no-break
 * spaces, "…", "”") but never between them, nor next to three letters in a
 * row, which occur only inside a word, nor on both sides of two, which would
 * be a word of two accented letters. Marks side by side are punctuation
 * ("…”", "«\u00a0"), a symbol beside a no-break space ("n°\u00a05",
 * "20\u00a0°C"), a symbol that ends a number or word before closing
 * punctuation ("15°–25°", "„Grillmeister®“"), or "§§". The double-byte encodings (Shift_JIS, GBK, Big5, EUC-KR) and
 * the single-byte ones for other alphabets (Windows-1251, -1253) put a byte
 * >= 0x80 on every character, most of them Windows-1252 letters or symbols, so
 * their words break these rules (GBK's 商品 is ÉÌÆ·, 北京 ±±¾©; EUC-KR's 김치
 * ±èÄ¡). Shift_JIS katakana pair 0x83 (ƒ) with an ASCII letter or sign
 * (ピザ is ƒsƒU), where a florin stands before a digit or a space.
 * Windows-1254 (Turkish) has letters of its own only at the six bytes below,
 * where Windows-1252 has Icelandic ones (İ where Ý is): Turkish text without
 * them reads right as Windows-1252. Bytes Windows-1252 leaves undefined appear
 * in no Windows-1252 file.
 */
function looksWestern(bytes: Uint8Array): boolean {
  let letters = 0;
  let marks = 0;
  // The byte before this one within the run, 0 at its start.
  let previous = 0;
  // A mark came before the run's letters.
  let opened = false;
  // A mark has followed the run's letters: a further letter would be a second word without a space.
  let wordEnded = false;
  for (const byte of bytes) {
    if (byte < 0x80) {
      if (previous === FLORIN && byte >= 0x40 && byte <= 0x7e) return false;
      letters = 0;
      marks = 0;
      previous = 0;
      opened = false;
      wordEnded = false;
      continue;
    }
    if (CP1252_UNDEFINED.has(byte) || CP1254_LETTERS.has(byte)) return false;
    if (isCp1252Letter(byte)) {
      if (wordEnded) return false;
      if (letters === 0) opened = marks > 0;
      letters++;
    } else {
      if (previous !== 0 && !isCp1252Letter(previous) && !marksPair(previous, byte)) return false;
      if (letters > 1 && opened) return false;
      marks++;
      wordEnded = letters > 0;
    }
    if (letters > (marks > 0 ? 2 : 3)) return false;
    previous = byte;
  }
  return true;
}

/**
 * Whether the bytes read as Big5 (or Shift_JIS) characters whose second byte
 * is ASCII (0x40-0x7E), which the run rules above cannot see: Big5's 台北 is
 * ¥x¥_, 商品名稱 °Ó«~¦WºÙ. Counted are the symbols below before such a byte,
 * which Western text does not write before a letter (those it does, quotes,
 * dashes, …, •, °, µ, º, ª, £, ©, ®, ™, §, ½, ±, ´, ·, ×, are left out), and
 * any mark before \ ^ _ ` { | } ~. At least two such pairs, making up a sixth
 * of the bytes >= 0x80, refuse the file.
 */
function looksDoubleByte(bytes: Uint8Array): boolean {
  let high = 0;
  let pairs = 0;
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index];
    if (byte < 0x80) continue;
    high++;
    const next = bytes[index + 1] ?? 0;
    if (DOUBLE_BYTE_LEADS.has(byte) && next >= 0x40 && next <= 0x7e) pairs++;
    else if (!isCp1252Letter(byte) && byte !== NO_BREAK_SPACE && ASCII_SIGNS.has(next)) pairs++;
  }
  return pairs >= 2 && pairs * 6 >= high;
}

/** † ‡ ˆ ‰ ˜ ¤ ¥ ¦ ¨ ¬ ¯ ¶ ¸. */
const DOUBLE_BYTE_LEADS = new Set([0x86, 0x87, 0x88, 0x89, 0x98, 0xa4, 0xa5, 0xa6, 0xa8, 0xac, 0xaf, 0xb6, 0xb8]);
/** \ ^ _ ` { | } ~ */
const ASCII_SIGNS = new Set([0x5c, 0x5e, 0x5f, 0x60, 0x7b, 0x7c, 0x7d, 0x7e]);

/** Two marks that stand side by side in Western text. */
function marksPair(first: number, second: number): boolean {
  if (first === NO_BREAK_SPACE || second === NO_BREAK_SPACE) return true;
  if (first === SECTION && second === SECTION) return true;
  if (CLOSING_SYMBOLS.has(first)) return CLOSING_PUNCTUATION.has(second);
  return CP1252_PUNCTUATION.has(first) && CP1252_PUNCTUATION.has(second);
}

const FLORIN = 0x83;
const NO_BREAK_SPACE = 0xa0;
const SECTION = 0xa7;
/** ‰ ™ ¢ £ ¥ § © ª ® ° ² ³ µ ¹ º ¼ ½ ¾: they end a number or word, so closing punctuation may follow ("15°–25°", "®“", "½”"). */
const CLOSING_SYMBOLS = new Set([
  0x89, 0x99, 0xa2, 0xa3, 0xa5, SECTION, 0xa9, 0xaa, 0xae, 0xb0, 0xb2, 0xb3, 0xb5, 0xb9, 0xba, 0xbc, 0xbd, 0xbe,
]);
/** … ‘ ’ “ ” – — › »: punctuation that may follow a word (not € ‚ „ ‹ ¡ « ¿, which open one). */
const CLOSING_PUNCTUATION = new Set([0x85, 0x91, 0x92, 0x93, 0x94, 0x96, 0x97, 0x9b, 0xbb]);
/** € ‚ „ … ‹ ‘ ’ “ ” – — › ¡ « » ¿ and the no-break space. */
const CP1252_PUNCTUATION = new Set([
  0x80, 0x82, 0x84, 0x85, 0x8b, 0x91, 0x92, 0x93, 0x94, 0x96, 0x97, 0x9b, NO_BREAK_SPACE, 0xa1, 0xab, 0xbb, 0xbf,
]);

/** Š Œ Ž š œ ž Ÿ and À-ÿ but × and ÷; the rest of 0x80-0xBF is punctuation and symbols (ƒ ª µ º serve as symbols). */
function isCp1252Letter(byte: number): boolean {
  return CP1252_HIGH_LETTERS.has(byte) || (byte >= 0xc0 && byte !== 0xd7 && byte !== 0xf7);
}

const CP1252_HIGH_LETTERS = new Set([0x8a, 0x8c, 0x8e, 0x9a, 0x9c, 0x9e, 0x9f]);
const CP1252_UNDEFINED = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);
/** Ğ İ Ş ğ ı ş in Windows-1254; Ð Ý Þ ð ý þ in Windows-1252. */
const CP1254_LETTERS = new Set([0xd0, 0xdd, 0xde, 0xf0, 0xfd, 0xfe]);

// Windows-1252's 0x80-0x9F (the rest is Latin-1); its undefined bytes stay the C1 controls Latin-1 has there.
// Decoded here because Node's TextDecoder treats the label as Latin-1, so "€" (0x80) would come out as a control
// character under vitest but not under Deno.
const CP1252_HIGH = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ';

/** The UTF-16 code unit of each Windows-1252 byte. */
const CP1252_UNITS = Uint16Array.from(
  { length: 256 },
  (_, byte) => byte >= 0x80 && byte <= 0x9f ? CP1252_HIGH.charCodeAt(byte - 0x80) : byte,
);

/**
 * Windows-1252 bytes as text, through UTF-16LE bytes decoded at once: a
 * string built a character at a time took 3 s and 1 GB for a 25 MB file,
 * past the hosted isolate's limits, before the page limit could refuse it.
 * Exported for its unit test.
 */
export function decodeWindows1252(bytes: Uint8Array): string {
  const utf16 = new Uint8Array(bytes.length * 2);
  for (let index = 0; index < bytes.length; index++) {
    const unit = CP1252_UNITS[bytes[index]];
    utf16[index * 2] = unit & 0xff;
    utf16[index * 2 + 1] = unit >> 8;
  }
  return new TextDecoder('utf-16le').decode(utf16);
}

/** TXT, Markdown and CSV: the text as is, in pseudo-pages. */
export function openPlainText(bytes: Uint8Array): OpenedDocument {
  return documentFromText(cleanText(decodeText(bytes)));
}

/**
 * JSON: checked to be JSON (a broken export should fail loudly), then indexed
 * as text. The page limit is checked first: parsing 25 MB of nested brackets
 * took 3 s and 1.4 GB, so only text within the limit is parsed.
 */
export function openJson(bytes: Uint8Array): OpenedDocument {
  const text = decodeText(bytes);
  const pages = textPages(cleanText(text));
  try {
    JSON.parse(text);
  } catch (error) {
    const detail = error instanceof Error ? error.message.slice(0, 200) : '';
    throw new UnreadableFileError(`The file is not valid JSON${detail ? `: ${detail}` : '.'}`);
  }
  return documentFromPages(pages);
}
