import type { TransactionSql } from '../_shared/db.ts';
import type { InvoiceDocument, InvoiceLine } from './pdf.ts';

/** An invoice taken for rendering by private.invoices_needing_pdf, with the path it must be stored at. */
export interface PdfJob {
  invoice_id: string;
  org_id: string;
  pdf_path: string;
}

/** Takes the next invoice that needs a PDF (each again after 10 minutes, 5 times at most), or null. */
export async function takeNextInvoice(tx: TransactionSql): Promise<PdfJob | null> {
  const [job] = await tx<PdfJob[]>`select invoice_id, org_id, pdf_path from private.invoices_needing_pdf(1)`;
  return job ?? null;
}

/** What the PDF shows: the invoice, its org's and plan's names, and its lines (as the service role). */
export async function loadInvoiceDocument(tx: TransactionSql, invoiceId: string): Promise<InvoiceDocument | null> {
  const [invoice] = await tx<Omit<InvoiceDocument, 'lines'>[]>`
    select i.id, o.name as org_name, p.name as plan_name, i.period_start::text as period_start,
           i.period_end::text as period_end, i.currency, i.subtotal_cents::text as subtotal_cents,
           i.total_cents::text as total_cents, i.status, i.created_at
    from public.invoices i
    join public.organizations o on o.id = i.org_id
    join public.plans p on p.id = i.plan_id
    where i.id = ${invoiceId}`;
  if (!invoice) return null;
  const lines = await tx<InvoiceLine[]>`
    select position, description, quantity::text as quantity, unit, unit_price_cents::text as unit_price_cents,
           amount_cents::text as amount_cents
    from public.invoice_lines where invoice_id = ${invoiceId} order by position`;
  return { ...invoice, lines: [...lines] };
}

/** Records the uploaded PDF (the function checks the object exists at the invoice's path). */
export async function saveInvoicePdf(tx: TransactionSql, job: PdfJob): Promise<void> {
  await tx`select private.save_invoice_pdf(${job.invoice_id}::uuid, ${job.pdf_path})`;
}

/** Whether the invoice is still there (it goes with its org). */
export async function invoiceExists(tx: TransactionSql, invoiceId: string): Promise<boolean> {
  const [{ found }] = await tx<{ found: boolean }[]>`
    select exists (select 1 from public.invoices where id = ${invoiceId}) as found`;
  return found;
}

/** Asks pg_net for another pass while invoices still wait (false when none do, or nothing is configured). */
export async function requestAnotherPass(tx: TransactionSql): Promise<boolean> {
  const [{ requested }] = await tx<{ requested: boolean }[]>`select private.request_invoice_pdfs() as requested`;
  return requested;
}
