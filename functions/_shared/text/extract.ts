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

type Signature = 'pdf' | 'zip';

/** What a file's first bytes say it is, for the formats another registered type could be mistaken for. */
function signatureOf(bytes: Uint8Array): Signature | null {
  const starts = (signature: number[]) => signature.every((byte, index) => bytes[index] === byte);
  if (starts([0x25, 0x50, 0x44, 0x46, 0x2d])) return 'pdf';
  if (starts([0x50, 0x4b, 0x03, 0x04])) return 'zip';
  return null;
}

const SIGNATURE_NAMES: Record<Signature, string> = { pdf: 'a PDF', zip: 'a zip archive (a Word document?)' };

/** A signature that contradicts the registered type: a PDF registered as text would be indexed as garbage. */
function contradicts(type: string, signature: Signature | null): signature is Signature {
  if (signature === null) return false;
  if (type === 'application/pdf') return signature !== 'pdf';
  if (type === DOCX_MIME_TYPE) return signature !== 'zip';
  return true;
}

/**
 * Opens a file by its registered MIME type. Problems with the file itself are
 * UnreadableFileErrors with a message for the uploader.
 */
export async function openDocument(bytes: Uint8Array, mimeType: string): Promise<OpenedDocument> {
  if (bytes.byteLength > MAX_FILE_BYTES) throw tooLarge(bytes.byteLength);
  if (bytes.byteLength === 0) throw new UnreadableFileError('The file is empty.');
  const type = mimeType.split(';')[0].trim().toLowerCase();
  const signature = signatureOf(bytes);
  if ((SUPPORTED_MIME_TYPES as readonly string[]).includes(type) && contradicts(type, signature)) {
    throw new UnreadableFileError(
      `The file is ${SIGNATURE_NAMES[signature]}, but it was registered as ${type}; register it again with its own type and upload it.`,
    );
  }
  switch (type) {
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
