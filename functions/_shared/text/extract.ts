import { type OpenedDocument, tooLarge, MAX_FILE_BYTES, UnreadableFileError } from './document.ts';
import { openDocx } from './docx.ts';
import { openPdf } from './pdf.ts';
import { openJson, openPlainText } from './plain.ts';

export * from './document.ts';

export const DOCX_MIME_TYPE = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

/** The types the `knowledge` bucket accepts (private.knowledge_mime_types()). */
export const SUPPORTED_MIME_TYPES = [
  'application/pdf',
  'text/plain',
  'text/markdown',
  'text/csv',
  'application/json',
  DOCX_MIME_TYPE,
] as const;

/**
 * Opens a file by its registered MIME type. Problems with the file itself are
 * UnreadableFileErrors with a message for the uploader.
 */
export async function openDocument(bytes: Uint8Array, mimeType: string): Promise<OpenedDocument> {
  if (bytes.byteLength > MAX_FILE_BYTES) throw tooLarge(bytes.byteLength);
  if (bytes.byteLength === 0) throw new UnreadableFileError('The file is empty.');
  switch (mimeType.split(';')[0].trim().toLowerCase()) {
    case 'application/pdf':
      return await openPdf(bytes);
    case 'text/plain':
    case 'text/markdown':
    case 'text/csv':
      return openPlainText(bytes);
    case 'application/json':
      return openJson(bytes);
    case DOCX_MIME_TYPE:
      return openDocx(bytes);
    default:
      throw new UnreadableFileError(
        `Files of type ${mimeType} cannot be indexed; use PDF, TXT, Markdown, CSV, JSON or DOCX.`,
      );
  }
}
