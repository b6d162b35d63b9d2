import { strToU8, zipSync } from 'fflate';
import { PDFDocument, PDFName, PDFString, StandardFonts } from 'pdf-lib';
import { describe, expect, it, vi } from 'vitest';
import {
  cleanText,
  DOCX_MIME_TYPE,
  MAX_FILE_BYTES,
  MAX_WORD_CHARS,
  NO_TEXT_MESSAGE,
  openDocument,
  type OpenedDocument,
  UnreadableFileError,
} from '../../functions/_shared/text/extract.ts';
import { MAX_DOCX_BODY_BYTES } from '../../functions/_shared/text/docx.ts';
import { CMAP_MESSAGE } from '../../functions/_shared/text/pdf.ts';
import { decodeWindows1252, NOT_UTF8_MESSAGE } from '../../functions/_shared/text/plain.ts';
import { PSEUDO_PAGE_CHARS, splitIntoPages } from '../../functions/_shared/text/pages.ts';
import { countTokens } from '../../functions/_shared/text/tokens.ts';
import { blankPdf, corruptPdf, encryptedPdf, imageOnlyPdf, textPdf, truncatedPdf } from '../support/pdfs.ts';

async function allPages(document: OpenedDocument): Promise<string[]> {
  const pages: string[] = [];
  for (let number = 1; number <= document.pageCount; number++) pages.push((await document.readPage(number)).text);
  await document.close();
  return pages;
}

async function failure(bytes: Uint8Array, mimeType: string): Promise<string> {
  try {
    await allPages(await openDocument(bytes, mimeType));
  } catch (error) {
    expect(error).toBeInstanceOf(UnreadableFileError);
    return (error as Error).message;
  }
  throw new Error('expected the file to be refused');
}

const utf8 = (text: string) => new TextEncoder().encode(text);

function docx(bodyXml: string): Uint8Array {
  return zipSync({
    '[Content_Types].xml': strToU8('<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'),
    'word/document.xml': strToU8(
      `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${bodyXml}</w:body></w:document>`,
    ),
  });
}

/** Rewrites the uncompressed size an archive declares for an entry (local header and central directory), as a lying archive would. */
function declareSize(zip: Uint8Array, name: string, bytes: number): void {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const nameAt = (at: number, length: number) => new TextDecoder().decode(zip.subarray(at, at + length));
  for (let at = 0; at + 4 <= zip.length; at++) {
    const signature = view.getUint32(at, true);
    if (signature === 0x04034b50 && nameAt(at + 30, view.getUint16(at + 26, true)) === name) view.setUint32(at + 22, bytes, true);
    if (signature === 0x02014b50 && nameAt(at + 46, view.getUint16(at + 28, true)) === name) view.setUint32(at + 24, bytes, true);
  }
}

const paragraph = (...runs: string[]) => `<w:p><w:pPr><w:jc w:val="left"/></w:pPr>${runs.join('')}</w:p>`;
const run = (text: string) => `<w:r><w:rPr><w:b/></w:rPr><w:t xml:space="preserve">${text}</w:t></w:r>`;

describe('PDF extraction (unpdf)', () => {
  it('reads each page with its number, only the pages asked for', async () => {
    const document = await openDocument(await textPdf(['First page text.', 'Second page text.', 'Third page text.']), 'application/pdf');
    expect(document.pageCount).toBe(3);
    expect(await document.readPage(2)).toEqual({ number: 2, text: 'Second page text.' });
    expect(await allPages(document)).toEqual(['First page text.', 'Second page text.', 'Third page text.']);
  });

  it('finds no text in blank or image-only pages (the ingest run then fails with the OCR hint)', async () => {
    expect(await allPages(await openDocument(await blankPdf(2), 'application/pdf'))).toEqual(['', '']);
    expect(await allPages(await openDocument(await imageOnlyPdf(2), 'application/pdf'))).toEqual(['', '']);
    expect(NO_TEXT_MESSAGE).toBe('The file contains no text to index (a scanned document needs OCR first).');
  });

  it('refuses an encrypted PDF, a corrupt file and a truncated one with reasons for people', async () => {
    expect(await failure(encryptedPdf('Secret prices'), 'application/pdf')).toBe('The PDF is password-protected.');
    expect(await failure(corruptPdf(), 'application/pdf')).toBe('The file is not a valid PDF.');
    expect(await failure(await truncatedPdf(), 'application/pdf')).toBe('The file is not a valid PDF.');
  });

  it('refuses more than 500 pages before reading any', async () => {
    expect(await failure(await blankPdf(501), 'application/pdf')).toBe(
      'The file has 501 pages; at most 500 pages can be indexed.',
    );
  });
});

describe('text formats', () => {
  it('reads TXT, Markdown and CSV as UTF-8, dropping a BOM and NUL-free control characters', async () => {
    const text = '\uFEFF# Prices\r\n\r\nTea\t3.50 €\u0007\n';
    expect(await allPages(await openDocument(utf8(text), 'text/markdown'))).toEqual(['# Prices\n\nTea\t3.50 €']);
    expect(await allPages(await openDocument(utf8('name,price\nTea,3.5\n'), 'text/csv'))).toEqual(['name,price\nTea,3.5']);
  });

  it('falls back to Windows-1252 for legacy exports, and refuses binary data', async () => {
    const latin = new Uint8Array([0x43, 0x61, 0x66, 0xe9, 0x20, 0x80]); // "Café €" in Windows-1252
    expect(await allPages(await openDocument(latin, 'text/plain'))).toEqual(['Café €']);
    expect(await failure(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x00, 0x00]), 'text/plain')).toBe(
      'The file is not a text file (it contains binary data).',
    );
  });

  it('cuts long text into pseudo-pages of about 3,000 characters at paragraph breaks, losing nothing', async () => {
    const paragraphs = Array.from({ length: 200 }, (_, index) => `Paragraph ${index} ${'lorem ipsum '.repeat(8)}`.trim());
    const document = await openDocument(utf8(paragraphs.join('\n\n')), 'text/plain');
    const pages = await allPages(document);
    expect(pages.length).toBeGreaterThan(5);
    for (const page of pages) {
      expect(page.length).toBeLessThanOrEqual(PSEUDO_PAGE_CHARS);
      expect(page).toMatch(/^Paragraph \d+/);
    }
    expect(pages.join('\n\n')).toBe(paragraphs.join('\n\n'));
    // Deterministic: every step of a run sees the same pages.
    expect(splitIntoPages(paragraphs.join('\n\n'))).toEqual(splitIntoPages(paragraphs.join('\n\n')));
  });

  it('checks that JSON parses, and indexes it as text', async () => {
    expect(await allPages(await openDocument(utf8('{"faq":[{"q":"Hours?","a":"9 to 5"}]}'), 'application/json')))
      .toEqual(['{"faq":[{"q":"Hours?","a":"9 to 5"}]}']);
    expect(await failure(utf8('{"faq": [1, 2,'), 'application/json')).toMatch(/^The file is not valid JSON/);
  });
});

/** Legacy-encoded bytes, written out here: neither Node nor Deno can encode to these charsets. */
const LEGACY = {
  // 商品名;価格 — a Japanese Excel CSV export.
  shiftJis: [0x8f, 0xa4, 0x95, 0x69, 0x96, 0xbc, 0x3b, 0x89, 0xbf, 0x8a, 0x69],
  // 商品 — a Chinese one.
  gbk: [0xc9, 0xcc, 0xc6, 0xb7],
  // Товар — a Russian one.
  cp1251: [0xd2, 0xee, 0xe2, 0xe0, 0xf0],
  // İade şartları — a Turkish one: no two of its letters are adjacent, only İ ş ı give it away.
  cp1254: [0xdd, 0x61, 0x64, 0x65, 0x20, 0xfe, 0x61, 0x72, 0x74, 0x6c, 0x61, 0x72, 0xfd],
};

/** Windows-1252 bytes of Latin-1 text (each character is its byte), and of € ƒ „ … ‰ ’ “ ” • – — ™ and œ. */
const CP1252_HIGH_BYTES: Record<string, number> = {
  '€': 0x80, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '‰': 0x89, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95, '–': 0x96, '—': 0x97, '™': 0x99, 'œ': 0x9c,
};
const cp1252 = (text: string) => new Uint8Array([...text].map((char) => CP1252_HIGH_BYTES[char] ?? char.charCodeAt(0)));

describe('text encodings', () => {
  it('refuses Shift_JIS, GBK, Windows-1251 and Windows-1254 files rather than index them as Windows-1252', async () => {
    expect(NOT_UTF8_MESSAGE).toBe("The file is not UTF-8 text; save it as UTF-8 (in Excel: 'CSV UTF-8') and upload it again.");
    for (const [name, bytes] of Object.entries(LEGACY)) {
      for (const type of ['text/csv', 'text/plain', 'application/json']) {
        expect(await failure(new Uint8Array(bytes), type), `${name} as ${type}`).toBe(NOT_UTF8_MESSAGE);
      }
    }
    // Within an otherwise ASCII CSV, as exported.
    const csv = new Uint8Array([...utf8('sku;'), ...LEGACY.shiftJis, ...utf8('\nA-1;'), ...LEGACY.cp1251, ...utf8(';100\n')]);
    expect(await failure(csv, 'text/csv')).toBe(NOT_UTF8_MESSAGE);
    // GBK words with no byte Windows-1252 leaves undefined: 商品 is ÉÌÆ· (three letters, then a mark), 价格 ¼Û¸ñ (a mark between letters).
    for (const word of [LEGACY.gbk, [0xbc, 0xdb, 0xb8, 0xf1]]) {
      expect(await failure(new Uint8Array([...utf8('name;'), ...word, ...utf8(';3.50\n')]), 'text/csv')).toBe(NOT_UTF8_MESSAGE);
    }
  });

  it('refuses short Chinese, Japanese and Korean words in CSV exports, whose bytes read as Windows-1252 symbols', async () => {
    const cjk = (...parts: (string | number[])[]) =>
      new Uint8Array(parts.flatMap((part) => (typeof part === 'string' ? [...utf8(part)] : part)));
    // GBK 北京 ±±¾©, 烤鸭 ¿¾Ñ¼, 宫保 ¹¬±£, 鸡丁 ¼¦¶¡; Shift_JIS 名前 –¼‘O, 価格 ‰¿Ši, ピザ ƒsƒU, パスタ ƒpƒXƒ^, サラダ ƒTƒ‰ƒ_,
    // あいうえお ‚\u00a0‚¢‚¤‚¦‚¨, かきくけこ ‚©‚«‚\u00ad‚¯‚±; EUC-KR 가방 °¡¹æ, 김치 ±èÄ¡ (a word of two letters between symbols).
    const beijing = [0xb1, 0xb1, 0xbe, 0xa9];
    const samples = {
      gbkCity: cjk('city,pop\n', beijing, ',2189\n'),
      gbkDishes: cjk('name,price\n', beijing, [0xbf, 0xbe, 0xd1, 0xbc], ',88\n', [0xb9, 0xac, 0xb1, 0xa3, 0xbc, 0xa6, 0xb6, 0xa1], ',38'),
      shiftJisMenu: cjk(
        [0x96, 0xbc, 0x91, 0x4f], ',', [0x89, 0xbf, 0x8a, 0x69], '\n',
        [0x83, 0x73, 0x83, 0x55], ',1200\n', [0x83, 0x70, 0x83, 0x58, 0x83, 0x5e], ',900\n', [0x83, 0x54, 0x83, 0x89, 0x83, 0x5f], ',600',
      ),
      shiftJisKana: cjk(
        [0x82, 0xa0, 0x82, 0xa2, 0x82, 0xa4, 0x82, 0xa6, 0x82, 0xa8], ' ', [0x82, 0xa9, 0x82, 0xab, 0x82, 0xad, 0x82, 0xaf, 0x82, 0xb1],
      ),
      shiftJisKatakana: cjk('name,price\n', [0x83, 0x73, 0x83, 0x55], ',1200\n', [0x83, 0x70, 0x83, 0x58, 0x83, 0x5e], ',900'),
      eucKr: cjk([0xb0, 0xa1, 0xb9, 0xe6], ',100\n', [0xb1, 0xe8, 0xc4, 0xa1], ',50'),
      eucKrWord: cjk('name,price\n', [0xb1, 0xe8, 0xc4, 0xa1], ',50'),
      hiraganaOnly: cjk([0x82, 0xa9, 0x82, 0xab, 0x82, 0xad, 0x82, 0xaf, 0x82, 0xb1]),
    };
    for (const [name, bytes] of Object.entries(samples)) {
      for (const type of ['text/csv', 'text/plain']) expect(await failure(bytes, type), `${name} as ${type}`).toBe(NOT_UTF8_MESSAGE);
    }
  });

  it('reads French and German Windows-1252 text whose punctuation sits next to accented letters', async () => {
    // As indexed: NFKC makes the no-break spaces spaces and "…" "...".
    const samples: Record<string, string> = {
      '«\u00a0À bientôt\u00a0»': '« À bientôt »',
      'Statut\u00a0: «\u00a0terminé\u00a0»': 'Statut : « terminé »',
      'Il a dit «\u00a0c’est réglé…”': 'Il a dit « c’est réglé...”',
      '“Ça marche” — «\u00a0agréé\u00a0», «\u00a0cœur\u00a0»': '“Ça marche” — « agréé », « cœur »',
      'Gefäßöffnung;2,5\u00a0cm²': 'Gefäßöffnung;2,5 cm²',
      'Er sagte: „süß…“': 'Er sagte: „süß...“',
      // A symbol beside a no-break space, and a florin before an amount.
      'Facture n°\u00a012 : 20\u00a0°C, 5\u00a0£, ©\u00a02024, ƒ\u00a012 ou ƒ12': 'Facture n° 12 : 20 °C, 5 £, © 2024, ƒ 12 ou ƒ12',
      '¿Qué?\u00a0¡Sí! «\u00a0à\u00a0», “Öl”, ”Ääni”': '¿Qué? ¡Sí! « à », “Öl”, ”Ääni”',
    };
    for (const [text, indexed] of Object.entries(samples)) {
      expect(await allPages(await openDocument(cp1252(text), 'text/plain')), text).toEqual([indexed]);
    }
  });

  it('reads Windows-1252 symbols that end a number or word followed by closing punctuation, and §§', async () => {
    const samples: Record<string, string> = {
      'gemäß §§ 305 ff. BGB': 'gemäß §§ 305 ff. BGB', // A7 A7
      'bei 15°–25° trocken': 'bei 15°–25° trocken', // B0 96
      '18º–20º': '18º–20º', // BA 96
      '„Waschen bei 40°“': '„Waschen bei 40°“', // B0 93
      'Rohr ½”, Muffe ¾”': 'Rohr ½”, Muffe ¾”', // BD 94, BE 94
      '„Grillmeister®“ und „Profi™“': '„Grillmeister®“ und „ProfiTM“', // AE 93, 99 93; NFKC spells ™ TM
      '20°…25°, 5‰–8‰': '20°...25°, 5‰–8‰', // B0 85, 89 96
    };
    for (const [text, indexed] of Object.entries(samples)) {
      expect(await allPages(await openDocument(cp1252(text), 'text/plain')), text).toEqual([indexed]);
    }
    // Other symbols side by side stay refused: GBK's 北京 is ±±¾© and EUC-KR's 가방 °¡¹æ (° before the opening ¡).
    for (const word of [[0xbe, 0xa9], [0xb0, 0xa1], [0xa9, 0xa7], [0xb0, 0xb0]]) {
      expect(await failure(new Uint8Array([...utf8('name;'), ...word, ...utf8(';3.50\n')]), 'text/csv'), `${word}`).toBe(NOT_UTF8_MESSAGE);
    }
  });

  it('refuses Big5 words whose second bytes are ASCII, and still reads Western symbols before ASCII letters', async () => {
    // Big5 商品名稱 °Ó«~¦WºÙ (¦ before W, « before ~), 台北 ¥x¥_ (¥ before x and _).
    const name = [0xb0, 0xd3, 0xab, 0x7e, 0xa6, 0x57, 0xba, 0xd9];
    const taipei = [0xa5, 0x78, 0xa5, 0x5f];
    for (const word of [name, taipei, [...name, 0x3b, ...taipei]]) {
      expect(await failure(new Uint8Array([...utf8('name;'), ...word, ...utf8(';3.50\n')]), 'text/csv'), `${word}`).toBe(NOT_UTF8_MESSAGE);
    }
    const samples = [
      'cafés, Größe, niño, São, ação',
      'Crème brûlée à l’ancienne;7 €\n„Grillmeister®“;20°C;5µg;1½kg;1ºA;2ªB',
      '•Milch\n•Eier;Revenue (£m);©Acme;Brand®X;Windows™XP;mean±SD;§a;H×B×T',
      'don´t;it´s;col·legi;[…];“@user”',
    ];
    for (const text of samples) expect(await allPages(await openDocument(cp1252(text), 'text/csv')), text).toHaveLength(1);
  });

  it('still reads Western European Windows-1252 text, with accented letters side by side', async () => {
    const text = 'Größe;Preis\nSüße Brötchen;3,50 €\nCrème brûlée créée à l’ancienne;7 €\nInformações;Garçon';
    expect(await allPages(await openDocument(cp1252(text), 'text/csv'))).toEqual([text]);
  });

  it('reads UTF-8 with a BOM and ";" separators', async () => {
    const text = '商品名;価格\nТовар;İade şartları\nGrüße;3,50 €';
    expect(await allPages(await openDocument(utf8(`\uFEFF${text}\r\n`), 'text/csv'))).toEqual([text]);
  });

  it("reads UTF-16 with a BOM, little- and big-endian (Excel's \"Unicode text\" is UTF-16LE)", async () => {
    const text = '商品名\t価格\nТовар\t100';
    const le = new Uint8Array(2 + text.length * 2);
    const be = new Uint8Array(2 + text.length * 2);
    le.set([0xff, 0xfe]);
    be.set([0xfe, 0xff]);
    for (let index = 0; index < text.length; index++) {
      const code = text.charCodeAt(index);
      le.set([code & 0xff, code >> 8], 2 + index * 2);
      be.set([code >> 8, code & 0xff], 2 + index * 2);
    }
    expect(await allPages(await openDocument(le, 'text/plain'))).toEqual([text]);
    expect(await allPages(await openDocument(be, 'text/csv'))).toEqual([text]);
  });
});

describe('NFKC', () => {
  const fullWidth = 'ＳＫＵ－１２３４';

  it('folds full-width and compatibility forms in every format, as questions are folded', async () => {
    const expected = 'Item SKU-1234 fits'; // and "ﬁ" is "fi"
    const raw = `Item ${fullWidth} ﬁts`;
    expect(await allPages(await openDocument(utf8(raw), 'text/plain'))).toEqual([expected]);
    expect(await allPages(await openDocument(utf8(raw), 'text/markdown'))).toEqual([expected]);
    expect(await allPages(await openDocument(utf8(`sku,note\n${fullWidth},ﬁts`), 'text/csv'))).toEqual(['sku,note\nSKU-1234,fits']);
    expect(await allPages(await openDocument(utf8(JSON.stringify({ sku: fullWidth })), 'application/json')))
      .toEqual(['{"sku":"SKU-1234"}']);
    expect(await allPages(await openDocument(docx(paragraph(run(raw))), DOCX_MIME_TYPE))).toEqual([expected]);
    const pageBreak = '<w:r><w:br w:type="page"/></w:r>';
    expect(await allPages(await openDocument(docx(paragraph(run('One')) + paragraph(pageBreak, run(fullWidth))), DOCX_MIME_TYPE)))
      .toEqual(['One', 'SKU-1234']);
  });

  it('keeps superscripts, subscripts and vulgar fractions as written, folding what stands around them', async () => {
    const kept = 'Lifetime: 10⁶ cycles at 2×10⁻³ mol of H₂O per m², ½ or ¾ full, ⅓ left (Note¹)';
    const raw = `${kept} ＳＫＵ－１２３４\u3000ﬁts, chapter Ⅻ`;
    const expected = `${kept} SKU-1234 fits, chapter XII`;
    expect(await allPages(await openDocument(utf8(raw), 'text/plain'))).toEqual([expected]);
    expect(await allPages(await openDocument(utf8(JSON.stringify({ note: raw })), 'application/json')))
      .toEqual([JSON.stringify({ note: expected })]);
    expect(await allPages(await openDocument(docx(paragraph(run(raw))), DOCX_MIME_TYPE))).toEqual([expected]);
    expect(await allPages(await openDocument(await textPdf(['Note¹: 10² cycles, ½ full']), 'application/pdf')))
      .toEqual(['Note¹: 10² cycles, ½ full']);
  });

  it('keeps the ordinal indicators ª º and №, which NFKC would make letters', async () => {
    const kept = 'Nº 5, 1ª classe, 2º andar, № 7';
    const raw = `${kept} ＳＫＵ－１２３４`;
    expect(await allPages(await openDocument(utf8(raw), 'text/plain'))).toEqual([`${kept} SKU-1234`]);
    expect(await allPages(await openDocument(docx(paragraph(run(raw))), DOCX_MIME_TYPE))).toEqual([`${kept} SKU-1234`]);
    // As Windows-1252 too: º before a no-break space is a symbol beside a space.
    expect(await allPages(await openDocument(cp1252('Nº\u00a05;1ª'), 'text/csv'))).toEqual(['Nº 5;1ª']);
  });

  it('cleans what NFKC makes (ideographic and other wide spaces become spaces, then collapse)', async () => {
    expect(await allPages(await openDocument(utf8('価格\u3000\u3000１００円\u2003 '), 'text/plain'))).toEqual(['価格 100円']);
  });

  it('refuses a page that NFKC expands past 100,000 characters, naming the page', async () => {
    // U+FDFA is one character, and 18 under NFKC. Pseudo-pages (3,000 characters) cannot grow that far; a Word page can.
    const pageBreak = '<w:r><w:br w:type="page"/></w:r>';
    const expanding = docx(paragraph(run('A normal first page.')) + paragraph(pageBreak, run('\uFDFA '.repeat(6000))));
    const document = await openDocument(expanding, DOCX_MIME_TYPE);
    expect(document.pageCount).toBe(2);
    expect(await document.readPage(1)).toEqual({ number: 1, text: 'A normal first page.' });
    await expect(document.readPage(2)).rejects.toThrow(
      /^Page 2 of the file holds 113,999 characters; at most 100,000 per page can be indexed\.$/,
    );
  });
});

/**
 * A page of Japanese text set in a Type0 font with the predefined CMap
 * UniJIS-UCS2-H and KozMinPr6N not embedded, as Acrobat and InDesign write
 * it, next to a Helvetica line. Reading it needs Adobe's CMap files.
 */
async function cjkCMapPdf(pages: 'cjk-first' | 'cjk-second'): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const helvetica = await pdf.embedFont(StandardFonts.Helvetica);
  const context = pdf.context;
  const descriptor = context.register(context.obj({
    Type: 'FontDescriptor',
    FontName: 'KozMinPr6N-Regular',
    Flags: 6,
    FontBBox: [-437, -340, 1147, 1317],
    ItalicAngle: 0,
    Ascent: 1317,
    Descent: -349,
    CapHeight: 742,
    StemV: 80,
  }));
  const cidFont = context.register(context.obj({
    Type: 'Font',
    Subtype: 'CIDFontType0',
    BaseFont: 'KozMinPr6N-Regular',
    CIDSystemInfo: { Registry: PDFString.of('Adobe'), Ordering: PDFString.of('Japan1'), Supplement: 6 },
    FontDescriptor: descriptor,
    DW: 1000,
  }));
  const type0 = context.register(context.obj({
    Type: 'Font',
    Subtype: 'Type0',
    BaseFont: 'KozMinPr6N-Regular-UniJIS-UCS2-H',
    Encoding: 'UniJIS-UCS2-H',
    DescendantFonts: [cidFont],
  }));
  const latinPage = () => pdf.addPage([612, 792]).drawText('Price list', { x: 50, y: 742, size: 12, font: helvetica });
  if (pages === 'cjk-second') latinPage();
  const page = pdf.addPage([612, 792]);
  page.drawText('Price list', { x: 50, y: 742, size: 12, font: helvetica });
  page.node.setFontDictionary(PDFName.of('FJ'), type0);
  // 商品名 in UCS-2, which UniJIS-UCS2-H maps to Adobe-Japan1 CIDs.
  page.node.addContentStream(context.register(context.stream('BT /FJ 12 Tf 50 700 Td <554654C1540D> Tj ET')));
  return new Uint8Array(await pdf.save());
}

describe('PDF fonts that need predefined CMaps', () => {
  it('fails the document instead of indexing the page without its Japanese text', async () => {
    expect(await failure(await cjkCMapPdf('cjk-first'), 'application/pdf')).toBe(CMAP_MESSAGE);
    expect(CMAP_MESSAGE).toMatch(/^This PDF uses fonts whose characters cannot be read here \(CJK character maps\)/);
  });

  it('reads the pages before the font is used, and fails on the page that uses it', async () => {
    const document = await openDocument(await cjkCMapPdf('cjk-second'), 'application/pdf');
    expect(await document.readPage(1)).toEqual({ number: 1, text: 'Price list' });
    await expect(document.readPage(2)).rejects.toThrow(CMAP_MESSAGE);
    await document.close();
  });
});

describe('DOCX extraction', () => {
  it('takes the w:t text, paragraphs as lines, tabs and breaks as whitespace, entities decoded', async () => {
    const bytes = docx(
      paragraph(run('Opening hours'), run(' &amp; prices')) +
        paragraph(run('Mon'), '<w:r><w:tab/></w:r>', run('9&#8211;17'), '<w:r><w:br/></w:r>', run('Sat closed')) +
        paragraph('<w:r><w:instrText>PAGE</w:instrText></w:r>', '<w:r><w:delText>deleted</w:delText></w:r>', run('&lt;end&gt;')),
    );
    expect(await allPages(await openDocument(bytes, DOCX_MIME_TYPE))).toEqual([
      'Opening hours & prices\nMon\t9–17\nSat closed\n<end>',
    ]);
  });

  it('uses the page breaks Word recorded as page numbers', async () => {
    const bytes = docx(
      paragraph(run('Page one text.')) +
        paragraph('<w:r><w:br w:type="page"/></w:r>', run('Page two text.')) +
        paragraph('<w:r><w:lastRenderedPageBreak/></w:r>', run('Page three text.')),
    );
    expect(await allPages(await openDocument(bytes, DOCX_MIME_TYPE))).toEqual([
      'Page one text.',
      'Page two text.',
      'Page three text.',
    ]);
  });

  it('counts a manual page break once: the rendered break Word writes after it on the next page is the same break', async () => {
    // As Word saves it: the w:br where the author put it, then w:lastRenderedPageBreak in the first run that holds
    // text on the new page (after any empty paragraphs); mid-paragraph markers where Word's layout broke the page.
    const hardBreak = '<w:r><w:br w:type="page"/></w:r>';
    const rendered = (text: string) => `<w:r><w:lastRenderedPageBreak/><w:t xml:space="preserve">${text}</w:t></w:r>`;
    const bytes = docx(
      paragraph(run('Chapter one.'), hardBreak) +
        '<w:p/>' +
        paragraph(rendered('Chapter two.')) +
        paragraph(run('Chapter two runs on'), rendered(' onto its second page.')) +
        paragraph(hardBreak) +
        paragraph('<w:r><w:lastRenderedPageBreak/><w:br w:type="page"/></w:r>') +
        paragraph(rendered('Chapter three, after a blank page.')),
    );
    const document = await openDocument(bytes, DOCX_MIME_TYPE);
    expect(document.pageCount).toBe(5);
    expect(await allPages(document)).toEqual([
      'Chapter one.',
      'Chapter two.\nChapter two runs on',
      'onto its second page.',
      '',
      'Chapter three, after a blank page.',
    ]);
  });

  it('refuses a file that is not a .docx, and says so for an encrypted (OLE) one', async () => {
    expect(await failure(utf8('not a zip at all'), DOCX_MIME_TYPE)).toBe('The file is not a valid Word document (.docx).');
    expect(await failure(zipSync({ 'other.xml': strToU8('<x/>') }), DOCX_MIME_TYPE)).toBe(
      'The file is not a valid Word document (.docx).',
    );
    const ole = new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]);
    expect(await failure(ole, DOCX_MIME_TYPE)).toMatch(/password-protected or in the old \.doc format/);
  });
});

describe('limits and types', () => {
  it('counts pseudo-pages against the 500-page limit, for text and for a Word file without page breaks', async () => {
    const paragraphs = (count: number) =>
      Array.from({ length: count }, (_, index) => `Paragraph ${index} ${'lorem ipsum '.repeat(230)}`.trim()).join('\n\n');
    const within = await openDocument(utf8(paragraphs(450)), 'text/plain');
    expect(within.pageCount).toBeGreaterThan(400);
    expect(within.pageCount).toBeLessThanOrEqual(500);
    const tooLong = /^The file's text fills 5\d\d pages of about 3,000 characters; at most 500 pages can be indexed\.$/;
    expect(await failure(utf8(paragraphs(520)), 'text/markdown')).toMatch(tooLong);
    expect(await failure(utf8(JSON.stringify({ text: paragraphs(520).split('\n\n') }, null, 1)), 'application/json'))
      .toMatch(tooLong);
    const longDocx = docx(paragraphs(520).split('\n\n').map((text) => paragraph(run(text))).join(''));
    expect(await failure(longDocx, DOCX_MIME_TYPE)).toMatch(tooLong);
  });

  it('refuses a Word document whose text would expand past 16 MB, before inflating it', async () => {
    const bomb = zipSync({ 'word/document.xml': new Uint8Array(MAX_DOCX_BODY_BYTES + 1).fill(0x20) });
    expect(bomb.byteLength).toBeLessThan(1024 * 1024);
    expect(await failure(bomb, DOCX_MIME_TYPE)).toBe(
      "The Word document's text expands to 17 MB of XML; at most 16 MB can be indexed.",
    );
  });

  it('stops inflating a Word body that expands past 16 MB while its archive declares it small', async () => {
    const bomb = zipSync({ 'word/document.xml': new Uint8Array(MAX_DOCX_BODY_BYTES + 1).fill(0x20) });
    declareSize(bomb, 'word/document.xml', 1000);
    expect(await failure(bomb, DOCX_MIME_TYPE)).toBe(
      "The Word document's text expands to more than 16 MB of XML; at most 16 MB can be indexed.",
    );
  });

  it('reads a Word body whose archive understates its size, when it stays within the bound', async () => {
    const word = docx(paragraph(run('Opening hours: nine to five')));
    declareSize(word, 'word/document.xml', 10);
    expect(await allPages(await openDocument(word, DOCX_MIME_TYPE))).toEqual(['Opening hours: nine to five']);
  });

  it('reads a stored (uncompressed) Word body, and refuses a truncated archive', async () => {
    const stored = zipSync({ 'word/document.xml': [strToU8(`<w:document><w:body>${paragraph(run('Stored text'))}</w:body></w:document>`), { level: 0 }] });
    expect(await allPages(await openDocument(stored, DOCX_MIME_TYPE))).toEqual(['Stored text']);
    const word = docx(paragraph(run('Opening hours')));
    expect(await failure(word.subarray(0, word.length - 30), DOCX_MIME_TYPE)).toBe('The file is not a valid Word document (.docx).');
  });

  it('refuses a file whose first bytes contradict its registered type, naming what it is', async () => {
    const pdf = await textPdf(['A price list']);
    const word = docx(paragraph(run('Opening hours')));
    expect(await failure(pdf, 'text/plain')).toBe(
      'The file is a PDF, but it was registered as text/plain; register it again with its own type and upload it.',
    );
    expect(await failure(word, 'text/csv')).toMatch(/^The file is a zip archive \(a Word document\?\), but it was registered as text\/csv;/);
    expect(await failure(pdf, DOCX_MIME_TYPE)).toMatch(/^The file is a PDF, but it was registered as application\/vnd/);
    expect(await failure(word, 'application/pdf')).toMatch(/^The file is a zip archive \(a Word document\?\), but it was registered as application\/pdf;/);
    expect(await allPages(await openDocument(pdf, 'application/pdf; charset=binary'))).toEqual(['A price list']);
  });

  it('refuses a file over 25 MB, an empty one, and an unsupported type', async () => {
    expect(await failure(new Uint8Array(MAX_FILE_BYTES + 1), 'text/plain')).toBe(
      'The file is 25.0 MB; files of up to 25 MB can be indexed.',
    );
    expect(await failure(new Uint8Array(0), 'text/plain')).toBe('The file is empty.');
    expect(await failure(utf8('<html></html>'), 'text/html')).toMatch(/^Files of type text\/html cannot be indexed/);
  });
});

/**
 * Input built to make a parser slow or a step huge. No timed assertions: each
 * input is large enough that the quadratic code these tests replace ran far
 * past vitest's 5 s default timeout (500,000 spaces: about 90 s; 160,000
 * unclosed tags: about 14 s), while the linear code takes milliseconds.
 */
/** String.prototype.isWellFormed is ES2024, past this project's lib; encodeURIComponent throws on a lone surrogate. */
function wellFormed(text: string): boolean {
  try {
    encodeURIComponent(text);
    return true;
  } catch {
    return false;
  }
}

describe('pathological input', () => {
  it('collapses spaces before stripping them at line ends, with the same result as before for ordinary text', () => {
    expect(cleanText(`a${' '.repeat(500_000)}b`)).toBe('a b');
    expect(cleanText('Tea \t\u00A0\n  Coffee\t\t3.50  \nCake\t\n\n\n\nEnd  ')).toBe('Tea\n Coffee 3.50\nCake\n\nEnd');
    expect(cleanText('Mon\t9–17 \r\nSat')).toBe('Mon\t9–17\nSat');
  });

  it('opens a Word body of 160,000 unclosed tags, keeping the text around them', async () => {
    const bytes = docx(paragraph(run('Opening hours')) + '<a '.repeat(160_000));
    expect(bytes.byteLength).toBeLessThan(10_000);
    expect(await allPages(await openDocument(bytes, DOCX_MIME_TYPE))).toEqual(['Opening hours']);
  });

  it('replaces lone surrogates, which Postgres refuses, and keeps surrogate pairs', async () => {
    expect(cleanText('x\uD800y \uDC00 \uD83D\uDE00')).toBe('x\uFFFDy \uFFFD \uD83D\uDE00');
    const bytes = docx(paragraph(run('Price &#xD800;list &#55296;&#xDFFF; &#x1F600;')));
    const [page] = await allPages(await openDocument(bytes, DOCX_MIME_TYPE));
    expect(page).toBe('Price &#xD800;list &#55296;&#xDFFF; \u{1F600}');
    expect(wellFormed(page)).toBe(true);
  });

  it('cuts runs without whitespace every 1,000 characters, never inside a surrogate pair', () => {
    const word = cleanText('ab'.repeat(40_000));
    expect(word.split(' ').map((part) => part.length)).toEqual(Array(80).fill(MAX_WORD_CHARS));
    expect(countTokens(word)).toBeGreaterThan(0);
    const emoji = cleanText(`a${'\u{1F600}'.repeat(600)}`);
    expect(wellFormed(emoji)).toBe(true);
    expect(emoji.replaceAll(' ', '')).toBe(`a${'\u{1F600}'.repeat(600)}`);
    expect(Math.max(...emoji.split(' ').map((part) => part.length))).toBeLessThanOrEqual(MAX_WORD_CHARS);
  });

  it('breaks minified JSON after punctuation, keeping words whole', () => {
    const items = Array.from({ length: 60 }, (_, index) => ({ sku: `SKU-${index}`, name: `Stainless-Widget-${index}`, description: 'Brushed-steel-component' }));
    const minified = JSON.stringify(items);
    const cleaned = cleanText(minified);
    expect(cleaned).not.toBe(minified);
    expect(cleaned.replaceAll(' ', '')).toBe(minified.replaceAll(' ', ''));
    for (const part of cleaned.split(' ')) expect(part.length).toBeLessThanOrEqual(MAX_WORD_CHARS);
    // Every break follows a punctuation mark: no word of the catalog is cut.
    for (let index = 0; index < 60; index++) expect(cleaned).toContain(`Stainless-Widget-${index}"`);
    expect(cleaned).not.toMatch(/[A-Za-z0-9] [A-Za-z0-9]/u);
  });

  it('reads a Word "page" longer than any printed page as pseudo-pages, under the 500-page limit', async () => {
    const words = (count: number) => Array.from({ length: count }, (_, index) => `word${index % 1000}`).join(' ');
    const pageBreak = '<w:r><w:br w:type="page"/></w:r>';
    const long = docx(paragraph(run(words(40_000))) + paragraph(pageBreak, run('The end.')));
    const document = await openDocument(long, DOCX_MIME_TYPE);
    expect(document.pageCount).toBeGreaterThan(100);
    const pages = await allPages(document);
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(PSEUDO_PAGE_CHARS);
    expect(pages.join(' ').replace(/\s+/g, ' ')).toBe(`${words(40_000)} The end.`);
    // 15.8 million characters behind one page break, from a file of about 120 KB.
    const huge = docx(paragraph(run(words(2_000_000))) + paragraph(pageBreak, run('The end.')));
    expect(huge.byteLength).toBeLessThan(200_000);
    expect(await failure(huge, DOCX_MIME_TYPE)).toBe(
      "The file's text fills 501 pages of about 3,000 characters; at most 500 pages can be indexed.",
    );
  });

  it('refuses a PDF page holding more than 100,000 characters, naming the page', async () => {
    // textPdf wraps long text down past the page's end, where pdf.js does not find it: tiny print keeps it on the page.
    const pdf = await PDFDocument.create();
    const font = await pdf.embedFont(StandardFonts.Helvetica);
    pdf.addPage([612, 792]).drawText('A normal first page.', { x: 50, y: 742, size: 10, font });
    const dense = pdf.addPage([612, 792]);
    for (let line = 0; line < 220; line++) dense.drawText('lorem ipsum '.repeat(50), { x: 10, y: 780 - line * 3.5, size: 1.5, font });
    const bytes = new Uint8Array(await pdf.save());
    // pdf.js takes over the buffer it is given, so each open gets its own copy.
    expect((await (await openDocument(bytes.slice(), 'application/pdf')).readPage(1)).text).toBe('A normal first page.');
    expect(await failure(bytes, 'application/pdf')).toMatch(
      /^Page 2 of the file holds 131,999 characters; at most 100,000 per page can be indexed\.$/,
    );
  });
});

/** The decoder Windows-1252 files were read with before, a character at a time: the reference output. */
function referenceWindows1252(bytes: Uint8Array): string {
  const high = '€\u0081‚ƒ„…†‡ˆ‰Š‹Œ\u008DŽ\u008F\u0090‘’“”•–—˜™š›œ\u009DžŸ';
  let text = '';
  for (const byte of bytes) text += byte >= 0x80 && byte <= 0x9f ? high[byte - 0x80] : String.fromCharCode(byte);
  return text;
}

/** Deterministic pseudo-random integers below `bound` (a linear congruential generator). */
function seeded(seed: number): (bound: number) => number {
  let state = seed;
  return (bound) => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state % bound;
  };
}

describe('hostile text', () => {
  it('decodes every Windows-1252 byte as the character-at-a-time decoder did, undefined bytes included', async () => {
    const all = Uint8Array.from({ length: 256 }, (_, byte) => byte);
    expect(decodeWindows1252(all)).toBe(referenceWindows1252(all));
    expect([...decodeWindows1252(new Uint8Array([0x80, 0x81, 0x8d, 0x8f, 0x90, 0x9d, 0x9f, 0xff]))]).toEqual(
      ['€', '\u0081', '\u008D', '\u008F', '\u0090', '\u009D', 'Ÿ', 'ÿ'],
    );
    const random = seeded(1252);
    const mixed = Uint8Array.from({ length: 200_000 }, () => random(256));
    expect(decodeWindows1252(mixed)).toBe(referenceWindows1252(mixed));
    // And through the whole path: a legacy CSV export falls back to it.
    const csv = cp1252('Produkt;Preis\nKäse „Gouda“;4,50 €\nCrème brûlée – 6 Stück;12,00 €\n'.repeat(2000));
    expect((await allPages(await openDocument(csv, 'text/csv'))).join('\n')).toBe(
      (await allPages(await openDocument(utf8(referenceWindows1252(csv)), 'text/csv'))).join('\n'),
    );
  });

  it('refuses JSON over the page limit without parsing it, valid or not', async () => {
    const parse = vi.spyOn(JSON, 'parse');
    try {
      const nested = utf8(`${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`);
      const pageLimit = /^The file's text fills \d+ pages of about 3,000 characters; at most 500 pages can be indexed\.$/;
      expect(await failure(nested, 'application/json')).toMatch(pageLimit);
      // Invalid as well: parsed first, it was refused as "not valid JSON".
      expect(await failure(nested.subarray(1), 'application/json')).toMatch(pageLimit);
      expect(parse).not.toHaveBeenCalled();
      // Within the limit it is still parsed, and refused when broken.
      expect(await failure(utf8(`${'['.repeat(1000)}${']'.repeat(999)}`), 'application/json')).toMatch(
        /^The file is not valid JSON/,
      );
      expect(parse).toHaveBeenCalledTimes(1);
    } finally {
      parse.mockRestore();
    }
  });

  it('refuses a page of dense text over 30,000 tokens, naming the page, and keeps a page of prose as long', async () => {
    const random = seeded(29);
    const cjk = Array.from({ length: 98_000 }, () => String.fromCharCode(0x4e00 + random(0x5000))).join('');
    const pageBreak = '<w:r><w:br w:type="page"/></w:r>';
    const dense = await openDocument(docx(paragraph(run('A normal first page.')) + paragraph(pageBreak, run(cjk))), DOCX_MIME_TYPE);
    expect(dense.pageCount).toBe(2);
    expect(await dense.readPage(1)).toEqual({ number: 1, text: 'A normal first page.' });
    await expect(dense.readPage(2)).rejects.toThrow(
      /^Page 2 of the file holds more than 30,000 tokens of text; at most 30,000 per page can be indexed\.$/,
    );
    await dense.close();
    const prose = 'The quick brown fox jumps over the lazy dog near the river bank. '.repeat(1500).trim();
    expect(prose.length).toBeGreaterThan(95_000);
    const long = await openDocument(docx(paragraph(run('A normal first page.')) + paragraph(pageBreak, run(prose))), DOCX_MIME_TYPE);
    expect(await allPages(long)).toEqual(['A normal first page.', prose]);
  });
});
