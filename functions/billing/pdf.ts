/**
 * An invoice as a one-page A4 PDF (pdf-lib): the org, the invoice id and
 * date, the period, one row per line (description, quantity, unit price,
 * amount) and the subtotal and total in the invoice's currency.
 *
 * pdf-lib's standard fonts need no font file (nothing to bundle or fetch in
 * an edge function) but encode only WinAnsi (Latin-1 and a few more), so text
 * outside it (an org named in Japanese, say) is printed with "?" in place of
 * those characters rather than failing the render; the invoice id, amounts
 * and period are always ASCII.
 */
import { PDFDocument, type PDFFont, type PDFPage, rgb, StandardFonts } from 'pdf-lib';
import { formatMoney, formatQuantity, formatUnitPrice } from './money.ts';

export interface InvoiceLine {
  position: number;
  description: string;
  /** numeric(20, 3) as text. */
  quantity: string;
  unit: string;
  /** numeric(12, 4) minor units as text. */
  unit_price_cents: string;
  /** bigint minor units as text. */
  amount_cents: string;
}

export interface InvoiceDocument {
  id: string;
  org_name: string;
  plan_name: string;
  /** YYYY-MM-DD, the first day of the month. */
  period_start: string;
  /** YYYY-MM-DD, the first day of the next month (exclusive). */
  period_end: string;
  currency: string;
  subtotal_cents: string;
  total_cents: string;
  status: string;
  created_at: Date;
  lines: InvoiceLine[];
}

const PAGE: [number, number] = [595.28, 841.89];
const MARGIN = 50;
const GREY = rgb(0.4, 0.4, 0.4);

/** Column right edges (amount columns are right-aligned) and the description's width. */
const COLUMNS = { description: MARGIN, descriptionWidth: 230, quantity: 360, unitPrice: 460, amount: PAGE[0] - MARGIN };

function isoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** The last day of the period (period_end is exclusive). */
function lastDay(periodEnd: string): string {
  const end = new Date(`${periodEnd}T00:00:00Z`);
  end.setUTCDate(end.getUTCDate() - 1);
  return isoDate(end);
}

/** `text` with every character the font cannot encode replaced by "?", and line breaks as spaces. */
function encodable(font: PDFFont, text: string): string {
  const supported = new Set(font.getCharacterSet());
  return [...text.replace(/[\r\n\t]+/g, ' ')].map((char) => (supported.has(char.codePointAt(0) ?? -1) ? char : '?')).join('');
}

/** Words of `text` wrapped to `width`; a word longer than a line is cut. */
function wrap(font: PDFFont, size: number, text: string, width: number): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(' ')) {
    const candidate = current ? `${current} ${word}` : word;
    if (font.widthOfTextAtSize(candidate, size) <= width) {
      current = candidate;
      continue;
    }
    if (current) lines.push(current);
    current = word;
    while (font.widthOfTextAtSize(current, size) > width && current.length > 1) {
      let cut = current.length - 1;
      while (cut > 1 && font.widthOfTextAtSize(current.slice(0, cut), size) > width) cut--;
      lines.push(current.slice(0, cut));
      current = current.slice(cut);
    }
  }
  if (current) lines.push(current);
  return lines.length > 0 ? lines : [''];
}

export async function renderInvoicePdf(invoice: InvoiceDocument): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.setTitle(`Invoice ${invoice.id}`);
  pdf.setCreator('assistant-backend billing');
  pdf.setCreationDate(invoice.created_at);
  const regular = await pdf.embedFont(StandardFonts.Helvetica);
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold);

  let page: PDFPage = pdf.addPage(PAGE);
  let y = PAGE[1] - MARGIN;
  const text = (value: string, x: number, options: { size?: number; font?: PDFFont; right?: boolean; color?: ReturnType<typeof rgb> } = {}) => {
    const font = options.font ?? regular;
    const size = options.size ?? 10;
    const safe = encodable(font, value);
    const left = options.right ? x - font.widthOfTextAtSize(safe, size) : x;
    page.drawText(safe, { x: left, y, size, font, color: options.color });
  };
  const newLine = (height: number) => {
    y -= height;
    if (y < MARGIN + 40) {
      page = pdf.addPage(PAGE);
      y = PAGE[1] - MARGIN;
    }
  };
  const rule = () => {
    page.drawLine({ start: { x: MARGIN, y: y + 4 }, end: { x: PAGE[0] - MARGIN, y: y + 4 }, thickness: 0.5, color: GREY });
  };

  text('Invoice', MARGIN, { size: 22, font: bold });
  newLine(30);
  text(invoice.org_name, MARGIN, { size: 13, font: bold });
  newLine(22);
  const facts: Array<[string, string]> = [
    ['Invoice', invoice.id],
    ['Date', isoDate(invoice.created_at)],
    ['Period', `${invoice.period_start} to ${lastDay(invoice.period_end)}`],
    ['Plan', invoice.plan_name],
    ['Currency', invoice.currency],
    ['Status', invoice.status],
  ];
  for (const [label, value] of facts) {
    text(label, MARGIN, { color: GREY });
    text(value, MARGIN + 70);
    newLine(15);
  }
  newLine(15);

  text('Description', COLUMNS.description, { font: bold });
  text('Quantity', COLUMNS.quantity, { font: bold, right: true });
  text('Unit price', COLUMNS.unitPrice, { font: bold, right: true });
  text('Amount', COLUMNS.amount, { font: bold, right: true });
  newLine(6);
  rule();
  newLine(12);
  for (const line of [...invoice.lines].sort((a, b) => a.position - b.position)) {
    const description = wrap(regular, 10, encodable(regular, line.description), COLUMNS.descriptionWidth);
    text(description[0], COLUMNS.description);
    text(`${formatQuantity(line.quantity)} ${line.unit}`, COLUMNS.quantity, { right: true });
    text(formatUnitPrice(line.unit_price_cents, invoice.currency), COLUMNS.unitPrice, { right: true });
    text(formatMoney(line.amount_cents, invoice.currency), COLUMNS.amount, { right: true });
    for (const more of description.slice(1)) {
      newLine(13);
      text(more, COLUMNS.description);
    }
    newLine(16);
  }
  rule();
  newLine(12);
  text('Subtotal', COLUMNS.unitPrice, { right: true });
  text(formatMoney(invoice.subtotal_cents, invoice.currency), COLUMNS.amount, { right: true });
  newLine(16);
  text('Total', COLUMNS.unitPrice, { font: bold, right: true });
  text(formatMoney(invoice.total_cents, invoice.currency), COLUMNS.amount, { font: bold, right: true });
  newLine(30);
  text('Amounts in the currency\'s major unit; each line is quantity x unit price rounded to the minor unit. No tax.', MARGIN, {
    size: 8,
    color: GREY,
  });
  return await pdf.save();
}
