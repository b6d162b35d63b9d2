/**
 * PDFs for ingestion tests, made in the test rather than checked in: pages of
 * known text (pdf-lib), pages with only an image (a "scanned" document),
 * broken files, and a genuinely encrypted PDF (pdf-lib cannot encrypt, so
 * that one is written by hand with the standard security handler, RC4 40-bit,
 * and opens with its password).
 */
import { createHash } from 'node:crypto';
import { deflateSync } from 'node:zlib';
import { PDFDocument, StandardFonts } from 'pdf-lib';

/** Bytes backed by a plain ArrayBuffer, which is what Blob (for supabase-js uploads) accepts. */
export type PdfBytes = Uint8Array<ArrayBuffer>;

/** One page per string; long text wraps at the page width. Standard fonts take Latin-1 text only. */
export async function textPdf(pages: string[]): Promise<PdfBytes> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (const text of pages) {
    const page = pdf.addPage([612, 792]);
    if (text === '') continue;
    page.drawText(text, { x: 50, y: 742, size: 10, font, maxWidth: 512, lineHeight: 13 });
  }
  return new Uint8Array(await pdf.save());
}

/** `count` pages with nothing on them. */
export async function blankPdf(count: number): Promise<PdfBytes> {
  const pdf = await PDFDocument.create();
  for (let index = 0; index < count; index++) pdf.addPage([612, 792]);
  return new Uint8Array(await pdf.save());
}

/** Pages that hold only a picture, as a scanner makes them: nothing for text extraction to find. */
export async function imageOnlyPdf(pages = 2): Promise<PdfBytes> {
  const pdf = await PDFDocument.create();
  const image = await pdf.embedPng(grayPng(64, 64));
  for (let index = 0; index < pages; index++) {
    pdf.addPage([612, 792]).drawImage(image, { x: 50, y: 400, width: 500, height: 300 });
  }
  return new Uint8Array(await pdf.save());
}

/** Random bytes: no PDF structure at all. */
export function corruptPdf(size = 4096): PdfBytes {
  const bytes = new Uint8Array(size);
  let seed = 42;
  for (let index = 0; index < size; index++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    bytes[index] = seed & 0xff;
  }
  return bytes;
}

/** A real PDF cut off after its first bytes: the header is there, the rest is not. */
export async function truncatedPdf(): Promise<PdfBytes> {
  const whole = await textPdf(['This file will be cut short.']);
  return whole.slice(0, 120);
}

// ---------------------------------------------------------------------------
// An encrypted PDF (PDF 1.7 §7.6.3, standard security handler, revision 2)
// ---------------------------------------------------------------------------

const PADDING = Buffer.from(
  '28bf4e5e4e758a4164004e56fffa01082e2e00b6d0683e802f0ca9fe6453697a',
  'hex',
);

const md5 = (...parts: Buffer[]) => createHash('md5').update(Buffer.concat(parts)).digest();

function rc4(key: Buffer, data: Buffer): Buffer {
  const s = Array.from({ length: 256 }, (_, index) => index);
  let j = 0;
  for (let i = 0; i < 256; i++) {
    j = (j + s[i] + key[i % key.length]) & 0xff;
    [s[i], s[j]] = [s[j], s[i]];
  }
  const out = Buffer.alloc(data.length);
  let i = 0;
  j = 0;
  for (let index = 0; index < data.length; index++) {
    i = (i + 1) & 0xff;
    j = (j + s[i]) & 0xff;
    [s[i], s[j]] = [s[j], s[i]];
    out[index] = data[index] ^ s[(s[i] + s[j]) & 0xff];
  }
  return out;
}

const padded = (password: string) => Buffer.concat([Buffer.from(password, 'latin1'), PADDING]).subarray(0, 32);

/**
 * A one-page PDF whose text is `text`, encrypted so that it opens only with
 * `userPassword` (pdf.js answers PasswordException without it).
 */
export function encryptedPdf(text: string, userPassword = 'secret', ownerPassword = 'owner'): PdfBytes {
  const permissions = -4;
  const fileId = createHash('md5').update(`encrypted-fixture:${text}`).digest();
  // Algorithm 3: the O entry, from the owner password.
  const ownerKey = md5(padded(ownerPassword)).subarray(0, 5);
  const o = rc4(ownerKey, padded(userPassword));
  // Algorithm 2: the file key, from the user password.
  const p = Buffer.alloc(4);
  p.writeInt32LE(permissions);
  const fileKey = md5(padded(userPassword), o, p, fileId).subarray(0, 5);
  // Algorithm 4: the U entry.
  const u = rc4(fileKey, PADDING);
  // Algorithm 1: each object's strings and streams with a key of its own.
  const objectKey = (number: number) => {
    const suffix = Buffer.from([number & 0xff, (number >> 8) & 0xff, (number >> 16) & 0xff, 0, 0]);
    return md5(fileKey, suffix).subarray(0, 10);
  };
  const escaped = text.replace(/[\\()]/g, '\\$&');
  const content = rc4(objectKey(4), Buffer.from(`BT /F1 12 Tf 50 740 Td (${escaped}) Tj ET`, 'latin1'));

  const objects: Buffer[] = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
    Buffer.from(
      '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    ),
    Buffer.concat([Buffer.from(`<< /Length ${content.length} >>\nstream\n`), content, Buffer.from('\nendstream')]),
    Buffer.from('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'),
    Buffer.from(
      `<< /Filter /Standard /V 1 /R 2 /Length 40 /O <${o.toString('hex')}> /U <${u.toString('hex')}> /P ${permissions} >>`,
    ),
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  const offsets: number[] = [];
  let length = parts[0].length;
  objects.forEach((body, index) => {
    offsets.push(length);
    const object = Buffer.concat([Buffer.from(`${index + 1} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    parts.push(object);
    length += object.length;
  });
  const xref = [
    'xref',
    `0 ${objects.length + 1}`,
    '0000000000 65535 f ',
    ...offsets.map((offset) => `${String(offset).padStart(10, '0')} 00000 n `),
    'trailer',
    `<< /Size ${objects.length + 1} /Root 1 0 R /Encrypt 6 0 R /ID [<${fileId.toString('hex')}> <${
      fileId.toString('hex')
    }>] >>`,
    'startxref',
    String(length),
    '%%EOF',
    '',
  ].join('\n');
  parts.push(Buffer.from(xref));
  return new Uint8Array(Buffer.concat(parts));
}

// ---------------------------------------------------------------------------
// A minimal PNG (8-bit grayscale, a gradient), for the "scanned" pages
// ---------------------------------------------------------------------------

function grayPng(width: number, height: number): Uint8Array {
  const raw = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter: none
    for (let x = 0; x < width; x++) raw[y * (width + 1) + 1 + x] = (x * 4 + y * 2) & 0xff;
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8); // 8-bit, grayscale, deflate, adaptive filtering, no interlace
  return new Uint8Array(Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]));
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A sentence of distinct made-up words for page `page`, so every page's text can be told apart. */
export function pageMarker(page: number): string {
  return `Marker ${page}: the ${ordinalWord(page)} page records the zq${page}x${page * 7} tariff.`;
}

function ordinalWord(page: number): string {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  return `${words[page % 10]}${words[Math.floor(page / 10) % 10]}`;
}
