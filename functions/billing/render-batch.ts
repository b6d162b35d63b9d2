/**
 * One pass of invoice PDF rendering, within a budget: invoices are taken one
 * at a time (private.invoices_needing_pdf(1)), so one that is never reached
 * is not held for the 10 minutes a taken invoice waits before it is handed
 * out again. Each is rendered, uploaded to `<org_id>/invoices/<id>.pdf` and
 * recorded. An invoice whose org is deleted meanwhile is dropped quietly:
 * Storage refuses its upload once the org is gone, so no PDF outlives the
 * org's file removal (20261123005700). Any other failure is logged and the
 * pass moves on (the invoice is taken again in 10 minutes, 5 times at most,
 * by the hourly job). When the budget ends the pass with invoices still
 * waiting, the next pass is requested through pg_net
 * (private.request_invoice_pdfs), as ingestion chains steps.
 */
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { renderInvoicePdf } from './pdf.ts';
import { invoiceExists, loadInvoiceDocument, requestAnotherPass, saveInvoicePdf, takeNextInvoice } from './queries.ts';
import type { InvoiceStore } from './store.ts';

export interface RenderBudget {
  /** Most invoices per pass. */
  invoices: number;
  /** No new invoice is started after this many milliseconds (rendering one takes a few). */
  ms: number;
}

export interface RenderSummary {
  rendered: string[];
  failed: Array<{ invoice_id: string; error: string }>;
  /** The budget ended the pass and another was requested. */
  more: boolean;
}

export async function renderPendingInvoices(
  deps: { sql: Sql; store: InvoiceStore; log?: (message: string, error: unknown) => void },
  budget: RenderBudget,
): Promise<RenderSummary> {
  const started = performance.now();
  const summary: RenderSummary = { rendered: [], failed: [], more: false };
  const log = deps.log ?? ((message, error) => console.error(message, error));
  for (;;) {
    if (summary.rendered.length + summary.failed.length >= budget.invoices || performance.now() - started >= budget.ms) {
      summary.more = await asServiceRole(deps.sql, requestAnotherPass);
      return summary;
    }
    const job = await asServiceRole(deps.sql, takeNextInvoice);
    if (!job) return summary;
    try {
      const invoice = await asServiceRole(deps.sql, (tx) => loadInvoiceDocument(tx, job.invoice_id));
      // Deleted since it was taken (its org was deleted): nothing to render.
      if (!invoice) continue;
      await deps.store.upload(job.pdf_path, await renderInvoicePdf(invoice));
      await asServiceRole(deps.sql, (tx) => saveInvoicePdf(tx, job));
      summary.rendered.push(job.invoice_id);
    } catch (error) {
      // Its org was deleted while it rendered: Storage refuses a file under a deleted org's prefix
      // (20261123005700) and the invoice went with the org. Nothing to render; when the check itself
      // fails, the original failure is reported.
      const exists = await asServiceRole(deps.sql, (tx) => invoiceExists(tx, job.invoice_id)).catch(() => true);
      if (!exists) continue;
      log(`rendering the PDF of invoice ${job.invoice_id} failed`, error);
      summary.failed.push({ invoice_id: job.invoice_id, error: error instanceof Error ? error.message : String(error) });
    }
  }
}
