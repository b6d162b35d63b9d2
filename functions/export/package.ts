/**
 * The last step of an export: `manifest.json` (the tables with their row
 * counts and files, when it was made), files a crashed step left beyond
 * the recorded cursor removed, then, when every file together is small
 * enough (EXPORT_ZIP_MAX_BYTES, default 8 MB), `export.zip` of them all made
 * with fflate, and private.finish_export.
 *
 * Why a folder first and a zip only when small: zipping means holding every
 * file and the archive in memory and compressing them in one request's CPU
 * budget (about 2 s, 256 MB). fflate deflates JSON at tens of MB a second,
 * so 8 MB fits with room; a larger export stays a folder of files, each
 * downloadable through its own signed link, which is what a data export
 * needs (and what a zip would have held).
 */
import { zipSync } from 'fflate';
import { asServiceRole, type Sql } from '../_shared/db.ts';
import { BrokenExportError, type ExportFile } from './cursor.ts';
import { finishExport, type ExportRecord } from './queries.ts';
import type { ExportBudget } from './step.ts';
import type { ExportStore } from './store.ts';

export const MANIFEST = 'manifest.json';
export const ZIP = 'export.zip';
/**
 * How long the export.ready event's link (to the zip, else the manifest)
 * works: a day, so a notification read the next morning still opens; after
 * that, GET /export/:id signs fresh links until the export expires.
 */
export const EVENT_LINK_SECONDS = 24 * 3600;

export interface Manifest {
  export_id: string;
  org_id: string;
  requested_at: string;
  created_at: string;
  formats: { json: string; csv: string; storage_objects: string };
  tables: Array<{ name: string; rows: number; files: string[] }>;
  files: ExportFile[];
  zip: string | null;
}

export function buildManifest(record: ExportRecord, files: ExportFile[], zipped: boolean, now: Date): Manifest {
  return {
    export_id: record.id,
    org_id: record.org_id,
    requested_at: new Date(record.created_at).toISOString(),
    created_at: now.toISOString(),
    formats: {
      json: 'An array of the rows, each as Postgres to_jsonb makes it, one per line.',
      csv: 'RFC 4180 with a header; null is an empty field; objects and arrays are their JSON text; text starting with =, +, -, @, tab or CR has a \' put before it, so spreadsheets do not run it as a formula (the JSON has the value as is). Empty table: empty file.',
      storage_objects: 'The organization\'s files in Storage (bucket_id, name, size_bytes, mime_type, document_id for a knowledge original), listed, not copied: they stay in their buckets.',
    },
    tables: record.tables.map((name) => {
      const own = files.filter((file) => file.table === name);
      return {
        name,
        rows: own.filter((file) => file.name.endsWith('.json')).reduce((sum, file) => sum + file.rows, 0),
        files: own.map((file) => file.name),
      };
    }),
    files,
    zip: zipped ? ZIP : null,
  };
}

export async function packageExport(
  deps: { sql: Sql; store: ExportStore; now?: () => Date },
  record: ExportRecord,
  files: ExportFile[],
  budget: ExportBudget,
): Promise<{ files: number; zipped: boolean }> {
  const prefix = record.storage_prefix;
  const now = (deps.now ?? (() => new Date()))();
  const total = files.reduce((sum, file) => sum + file.bytes, 0);
  const zipped = total <= budget.zipMaxBytes;
  const manifest = new TextEncoder().encode(`${JSON.stringify(buildManifest(record, files, zipped, now), null, 2)}\n`);
  await deps.store.upload(`${prefix}${MANIFEST}`, manifest, 'application/json');

  const keep = new Set([...files.map((file) => file.name), MANIFEST, ZIP]);
  const stray = (await deps.store.list(prefix.replace(/\/$/, ''))).filter((name) => !keep.has(name));
  if (stray.length > 0) await deps.store.remove(stray.map((name) => `${prefix}${name}`));

  if (zipped) {
    const entries: Record<string, Uint8Array> = { [MANIFEST]: manifest };
    for (const file of files) {
      const bytes = await deps.store.download(`${prefix}${file.name}`);
      if (!bytes) throw new BrokenExportError(`${file.name} of export ${record.id} is missing from Storage`);
      entries[file.name] = bytes;
    }
    await deps.store.upload(`${prefix}${ZIP}`, zipSync(entries, { level: 6, mtime: now }), 'application/zip');
  }
  const linked = `${prefix}${zipped ? ZIP : MANIFEST}`;
  const url = (await deps.store.signedUrls([linked], EVENT_LINK_SECONDS)).get(linked);
  const link = url ? { url, expiresAt: new Date(now.getTime() + EVENT_LINK_SECONDS * 1000) } : null;
  await asServiceRole(deps.sql, (tx) => finishExport(tx, record.id, true, null, link));
  return { files: files.length, zipped };
}
