import { PDFDocument, PDFName, StandardFonts } from 'pdf-lib';
import { describe, expect, it } from 'vitest';
import { openDocument, UnreadableFileError } from '../../functions/_shared/text/extract.ts';
import { MAX_PAGE_CONTENT_BYTES } from '../../functions/_shared/text/pdf-content.ts';

const TOO_COMPLEX = (page: number) =>
  `Page ${page} of the PDF is too complex to read: its drawing instructions take more than 8 MB.`;

interface PageSpec {
  text: string;
  /** Bytes of `q Q` (save and restore, drawing nothing) after the text, deflated into a stream of their own. */
  noOps?: number;
  /** A form XObject holding the text's operators, drawn this often instead of the text. */
  formDrawn?: number;
}

/** A PDF written by pdf-lib (object streams included) whose pages are as cheap or as costly to parse as asked. */
async function pdf(pages: PageSpec[]): Promise<Uint8Array> {
  const document = await PDFDocument.create();
  const font = await document.embedFont(StandardFonts.Helvetica);
  const context = document.context;
  for (const spec of pages) {
    const page = document.addPage([612, 792]);
    if (spec.formDrawn === undefined) {
      page.drawText(spec.text, { x: 50, y: 742, size: 12, font });
    } else {
      const form = context.flateStream(`BT /F1 12 Tf 50 742 Td (${spec.text}) Tj ET\n` + '% padding\n'.repeat(500), {
        Type: 'XObject',
        Subtype: 'Form',
        BBox: [0, 0, 612, 792],
        Resources: { Font: { F1: font.ref } },
      });
      page.node.setXObject(PDFName.of('X0'), context.register(form));
      page.node.addContentStream(context.register(context.flateStream('/X0 Do\n'.repeat(spec.formDrawn))));
    }
    if (spec.noOps) page.node.addContentStream(context.register(context.flateStream('q Q\n'.repeat(spec.noOps / 4))));
  }
  return new Uint8Array(await document.save());
}

async function refusal(read: Promise<unknown>): Promise<string> {
  const error = await read.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(UnreadableFileError);
  return (error as Error).message;
}

describe('PDF pages bounded before pdf.js reads them', () => {
  it('refuses a page whose compressed content stream inflates past 8 MB, naming the page', async () => {
    const bytes = await pdf([{ text: 'Hello', noOps: MAX_PAGE_CONTENT_BYTES + 4096 }]);
    expect(bytes.length).toBeLessThan(200_000);
    const document = await openDocument(bytes, 'application/pdf');
    expect(await refusal(document.readPage(1))).toBe(TOO_COMPLEX(1));
    await document.close();
  });

  it('reads the pages before a heavy one, then refuses that one without reading it', async () => {
    const document = await openDocument(
      await pdf([{ text: 'Intro page of pdf-bounds.' }, { text: 'Never read', noOps: 12 * 1024 * 1024 }]),
      'application/pdf',
    );
    expect(await document.readPage(1)).toEqual({ number: 1, text: 'Intro page of pdf-bounds.' });
    expect(await refusal(document.readPage(2))).toBe(TOO_COMPLEX(2));
    await document.close();
  });

  it('reads a page with megabytes of drawing below the bound, and pages that share nothing heavy', async () => {
    const document = await openDocument(
      await pdf([{ text: 'Map legend', noOps: 2 * 1024 * 1024 }, { text: 'Second page' }]),
      'application/pdf',
    );
    expect(await document.readPage(1)).toEqual({ number: 1, text: 'Map legend' });
    expect(await document.readPage(2)).toEqual({ number: 2, text: 'Second page' });
    await document.close();
  });

  it('counts a form XObject at every place a page draws it', async () => {
    const once = await openDocument(await pdf([{ text: 'Form text', formDrawn: 1 }]), 'application/pdf');
    expect(await once.readPage(1)).toEqual({ number: 1, text: 'Form text' });
    await once.close();

    // A 5 KB form drawn 2,000 times: a small page stream that pdf.js would parse as 10 MB.
    const many = await openDocument(await pdf([{ text: 'Form text', formDrawn: 2000 }]), 'application/pdf');
    expect(await refusal(many.readPage(1))).toBe(TOO_COMPLEX(1));
    await many.close();
  });
});
