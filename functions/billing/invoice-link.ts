import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import type { InvoiceStore } from './store.ts';

export interface InvoiceLink {
  url: string;
  expires_at: string;
}

/**
 * A short-lived link to an invoice's PDF. Who may have it is decided by RLS
 * on public.invoices (billing.read: owners, admins, platform admins): the
 * invoice is selected as the caller, and one they cannot see is 404 whether
 * it exists or not, so ids cannot be probed. The link itself is signed with
 * the service key (the right was just checked), and expires within minutes:
 * it is a bearer credential once it leaves the response.
 */
export async function invoicePdfLink(
  deps: { sql: Sql; store: InvoiceStore; now?: () => Date },
  claims: UserClaims,
  invoiceId: string,
  expiresInSeconds: number,
): Promise<InvoiceLink> {
  const [invoice] = await withUserScope(deps.sql, claims, (tx) =>
    tx<{ pdf_path: string | null; period_start: string }[]>`
      select pdf_path, period_start::text as period_start from public.invoices where id = ${invoiceId}`
  );
  if (!invoice) throw new HttpError(404, 'not_found', 'The invoice was not found.');
  if (!invoice.pdf_path) {
    throw new HttpError(409, 'pdf_not_ready', 'The invoice\'s PDF is still being made; try again in a minute.', {
      'retry-after': '60',
    });
  }
  const issuedAt = (deps.now ?? (() => new Date()))();
  const url = await deps.store.signedUrl(invoice.pdf_path, expiresInSeconds, `invoice-${invoice.period_start.slice(0, 7)}.pdf`);
  return { url, expires_at: new Date(issuedAt.getTime() + expiresInSeconds * 1000).toISOString() };
}
