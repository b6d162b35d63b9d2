import {
  cleanText,
  MAX_PAGE_CHARS,
  MAX_PAGES,
  type OpenedDocument,
  pageTooLong,
  tooManyPages,
  UnreadableFileError,
} from './document.ts';

/**
 * A PDF through unpdf (pdf.js built for serverless runtimes). Loaded lazily:
 * pdf.js is large, and every function in the local runtime shares one isolate.
 */
export async function openPdf(bytes: Uint8Array): Promise<OpenedDocument> {
  const { getDocumentProxy } = await import('unpdf');
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    // verbosity 0: pdf.js would log a warning for every recoverable oddity in the file.
    pdf = await getDocumentProxy(bytes, { verbosity: 0 });
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
  return {
    pageCount: pdf.numPages,
    async readPage(number) {
      let text: string;
      try {
        const page = await pdf.getPage(number);
        const content = await page.getTextContent();
        page.cleanup();
        // Items are runs of text in reading order; hasEOL marks where pdf.js saw a line end.
        const raw = content.items
          .map((item) => ('str' in item ? item.str + (item.hasEOL ? '\n' : '') : ''))
          .join('');
        // NFKC turns the ligatures and compatibility forms PDFs are full of ("ﬁ") into plain letters.
        text = cleanText(raw.normalize('NFKC'));
      } catch {
        throw new UnreadableFileError(`The PDF is damaged: page ${number} could not be read.`);
      }
      // A step reads whole pages (the run's cursor counts pages), so an oversized page is refused rather than split.
      if (text.length > MAX_PAGE_CHARS) throw pageTooLong(number, text.length);
      return { number, text };
    },
    async close() {
      await pdf.loadingTask.destroy();
    },
  };
}

function errorName(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : undefined;
}
