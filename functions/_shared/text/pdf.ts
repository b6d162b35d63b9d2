import { pageContentMeter } from './pdf-content.ts';
import { indexedPage, MAX_PAGES, type OpenedDocument, tooManyPages, UnreadableFileError } from './document.ts';

export const CMAP_MESSAGE =
  'This PDF uses fonts whose characters cannot be read here (CJK character maps); upload its text as a UTF-8 text file or a Word document instead.';

/**
 * A PDF through unpdf (pdf.js built for serverless runtimes). Loaded lazily:
 * pdf.js is large, and every function in the local runtime shares one isolate.
 */
export async function openPdf(bytes: Uint8Array): Promise<OpenedDocument> {
  const { getDocumentProxy } = await import('unpdf');
  const missing = missingDataRecorder();
  // pdf.js takes the buffer over (it is detached here), and the meter reads the file as well.
  const meterBytes = bytes.slice();
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    // verbosity 0: pdf.js would log a warning for every recoverable oddity in the file.
    pdf = await getDocumentProxy(bytes, { verbosity: 0, BinaryDataFactory: missing.factory });
  } catch (error) {
    if (errorName(error) === 'PasswordException') {
      throw new UnreadableFileError('The PDF is password-protected.');
    }
    throw new UnreadableFileError('The file is not a valid PDF.');
  }
  if (pdf.numPages > MAX_PAGES) {
    await pdf.loadingTask.destroy();
    throw tooManyPages(pdf.numPages);
  }
  const meter = await pageContentMeter(meterBytes);
  return {
    pageCount: pdf.numPages,
    async readPage(number) {
      let raw: string;
      let page: Awaited<ReturnType<typeof pdf.getPage>>;
      try {
        page = await pdf.getPage(number);
      } catch {
        throw new UnreadableFileError(`The PDF is damaged: page ${number} could not be read.`);
      }
      // Before pdf.js reads the page: it cannot be stopped once it has begun.
      meter?.check(number, page.ref);
      try {
        const content = await page.getTextContent();
        page.cleanup();
        // Items are runs of text in reading order; hasEOL marks where pdf.js saw a line end.
        raw = content.items.map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : '')).join('');
      } catch {
        throw new UnreadableFileError(`The PDF is damaged: page ${number} could not be read.`);
      }
      // pdf.js drops the text of a font it could not load and carries on: the page would be indexed with gaps.
      if (missing.cMaps.length > 0) throw new UnreadableFileError(CMAP_MESSAGE);
      return indexedPage(number, raw);
    },
    async close() {
      await pdf.loadingTask.destroy();
    },
  };
}

/**
 * pdf.js asks this factory for data files it does not carry: the predefined
 * Adobe CMaps (UniJIS-UCS2-H, Adobe-Japan1-UCS2, ...) that map the codes of
 * CJK fonts without a ToUnicode map to characters, standard font programs, and
 * wasm decoders. None is shipped with the functions, so every request fails
 * as it would without the factory; the CMaps asked for are recorded, as the
 * text of the fonts that needed them is lost. pdf.js makes one factory per
 * document, from the class given; the class is made per document too, so a
 * document's record is its own.
 */
function missingDataRecorder() {
  const cMaps: string[] = [];
  class RecordingBinaryDataFactory {
    fetch({ kind, filename }: { kind: string; filename: string }): Promise<Uint8Array> {
      if (kind === 'cMapUrl') cMaps.push(filename);
      return Promise.reject(new Error(`${kind} data is not available: ${filename}`));
    }
  }
  return { factory: RecordingBinaryDataFactory, cMaps };
}

function errorName(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : undefined;
}
