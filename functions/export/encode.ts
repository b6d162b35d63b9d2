/**
 * The two formats of an exported table (or part of one): JSON, a faithful
 * copy (an array of the rows as Postgres's to_jsonb makes them, one row per
 * line), and CSV for spreadsheets (RFC 4180: a header of the columns, CRLF
 * line ends, a field quoted when it holds a comma, a quote, CR or LF, quotes
 * doubled; null is an empty field, objects and arrays are their JSON text).
 * A text value that starts with =, +, -, @, tab or CR gets a leading `'`
 * (OWASP, CSV injection): spreadsheets would otherwise run it as a formula,
 * and chat messages and names are written by anyone. JSON keeps the value as is.
 */
export type ExportRow = Record<string, unknown>;

export function toJson(rows: ExportRow[]): string {
  return rows.length === 0 ? '[]\n' : `[\n${rows.map((row) => JSON.stringify(row)).join(',\n')}\n]\n`;
}

/** Text a spreadsheet would read as a formula (or as one after trimming a leading tab or CR). */
const FORMULA_START = /^[=+\-@\t\r]/;

export function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  // Only text: a negative number is a number to every spreadsheet, and JSON text starts with { or [.
  const text = typeof value === 'object'
    ? JSON.stringify(value)
    : typeof value === 'string' && FORMULA_START.test(value)
    ? `'${value}`
    : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Columns in the order they first appear (every row of one table has the same ones). */
export function csvColumns(rows: ExportRow[]): string[] {
  const columns = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) columns.add(key);
  return [...columns];
}

/** The rows as CSV with a header; an empty table is an empty file (its columns are not known without a row). */
export function toCsv(rows: ExportRow[]): string {
  if (rows.length === 0) return '';
  const columns = csvColumns(rows);
  const lines = [columns.map(csvField).join(',')];
  for (const row of rows) lines.push(columns.map((column) => csvField(row[column])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
