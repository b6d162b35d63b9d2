import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { DOCX_MIME_TYPE, openDocument, type OpenedDocument, UnreadableFileError } from '../../functions/_shared/text/extract.ts';
import { MAX_DOCX_BODY_BYTES } from '../../functions/_shared/text/docx.ts';

/**
 * Word files whose markup is cheap to send and costly to read. No timed
 * assertions: the refusal's message shows where the scan stopped (the page
 * count of the whole text without the bound, 501 with it).
 */

function docx(bodyXml: string): Uint8Array {
  return zipSync({
    'word/document.xml': strToU8(
      `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${bodyXml}</w:body></w:document>`,
    ),
  });
}

const paragraph = (text: string) => `<w:p><w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;
const pageBreak = '<w:p><w:r><w:br w:type="page"/></w:r></w:p>';
/** Prose of `chars` characters in words of 9 (no run without a space passes MAX_WORD_CHARS). */
const prose = (chars: number) => 'docx-cap '.repeat(Math.ceil(chars / 9)).slice(0, chars);

async function allPages(document: OpenedDocument): Promise<string[]> {
  const pages: string[] = [];
  for (let number = 1; number <= document.pageCount; number++) pages.push((await document.readPage(number)).text);
  await document.close();
  return pages;
}

async function failure(bytes: Uint8Array): Promise<string> {
  try {
    await allPages(await openDocument(bytes, DOCX_MIME_TYPE));
  } catch (error) {
    expect(error).toBeInstanceOf(UnreadableFileError);
    return (error as Error).message;
  }
  throw new Error('expected the Word file to be refused');
}

/** Without the bound, the message counts every page of the text (1,250 and 652 below). */
const STOPPED_AT_501 = "The file's text fills 501 pages of about 3,000 characters; at most 500 pages can be indexed.";

describe('Word extraction stays bounded', () => {
  it('caps word/document.xml at 16 MB: a 20 MB body is refused before it is inflated', async () => {
    expect(MAX_DOCX_BODY_BYTES).toBe(16 * 1024 * 1024);
    const bomb = zipSync({ 'word/document.xml': new Uint8Array(20 * 1024 * 1024).fill(0x20) });
    expect(bomb.byteLength).toBeLessThan(100_000);
    expect(await failure(bomb)).toBe("The Word document's text expands to 20 MB of XML; at most 16 MB can be indexed.");
  });

  it('stops decoding 2.5 million character references once their text passes 500 pseudo-pages', async () => {
    // 15 MB of XML in a file of a few KB, 2.5 million characters (834 pseudo-pages) when decoded whole.
    const bytes = docx(paragraph('&#x41;'.repeat(2_500_000)));
    expect(bytes.byteLength).toBeLessThan(200_000);
    expect(await failure(bytes)).toBe(STOPPED_AT_501);
  });

  it('stops at the limit once a page too long for a page makes the file pseudo-pages', async () => {
    // 20 real pages of 90,000 characters (1.8 million), then one of 150,000: read as 650 pseudo-pages.
    const pages = Array.from({ length: 20 }, () => paragraph(prose(90_000)) + pageBreak).join('');
    const bytes = docx(pages + paragraph(prose(150_000)));
    expect(await failure(bytes)).toBe(STOPPED_AT_501);
  });

  it('still reads more text than 500 pseudo-pages hold when real page breaks keep every page within 100,000 characters', async () => {
    const bytes = docx(Array.from({ length: 20 }, () => paragraph(prose(90_000))).join(pageBreak));
    const document = await openDocument(bytes, DOCX_MIME_TYPE);
    expect(document.pageCount).toBe(20);
    const pages = await allPages(document);
    expect(pages.every((page) => page === prose(90_000).trim())).toBe(true);
  });

  it('decodes a character reference that straddles a decoding slice', async () => {
    // The run's 65,536th character falls inside "&amp;".
    const text = `${'a '.repeat(32_766)}&amp;&lt;`;
    const pages = await allPages(await openDocument(docx(paragraph(text)), DOCX_MIME_TYPE));
    expect(pages.join(' ')).toBe(`${'a '.repeat(32_766)}&<`);
  });
});
