import type { SupabaseClient } from '@supabase/supabase-js';
import { HttpError } from '../_shared/errors.ts';

export const INVOICES_BUCKET = 'invoices';

/** The invoices bucket, as the service role: writing PDFs and signing links to them. */
export interface InvoiceStore {
  upload(path: string, pdf: Uint8Array): Promise<void>;
  /** A URL anyone holding it can download the object from until it expires. */
  signedUrl(path: string, expiresInSeconds: number, downloadName: string): Promise<string>;
}

export function supabaseInvoiceStore(client: () => SupabaseClient): InvoiceStore {
  const bucket = () => client().storage.from(INVOICES_BUCKET);
  return {
    async upload(path, pdf) {
      // upsert: a render retried after a crash between upload and save_invoice_pdf writes the same object again.
      const { error } = await bucket().upload(path, new Blob([new Uint8Array(pdf)], { type: 'application/pdf' }), {
        contentType: 'application/pdf',
        upsert: true,
      });
      if (error) throw error;
    },
    async signedUrl(path, expiresInSeconds, downloadName) {
      const { data, error } = await bucket().createSignedUrl(path, expiresInSeconds, { download: downloadName });
      if (error || !data) {
        throw new HttpError(503, 'storage_unavailable', 'The invoice link could not be made; try again.', { 'retry-after': '5' }, {
          cause: error,
        });
      }
      return data.signedUrl;
    },
  };
}
