/**
 * The owners' side of exports: asking for one, and reading it back with
 * links to its files. Rights are decided in SQL as the caller:
 * request_data_export checks data.export (owners), and public.data_exports
 * is readable by owners only (RLS), so anyone else gets 403 or 404.
 */
import { z } from 'zod';
import type { UserClaims } from '../_shared/auth.ts';
import { type Sql, withUserScope } from '../_shared/db.ts';
import { HttpError } from '../_shared/errors.ts';
import { httpErrorFromPostgres, isPostgresError } from '../_shared/pg-errors.ts';
import { MANIFEST } from './package.ts';
import { type ExportRecord, requestExport, visibleExport } from './queries.ts';
import type { ExportStore } from './store.ts';

export async function requestDataExport(sql: Sql, claims: UserClaims, orgId: string): Promise<ExportRecord> {
  try {
    return await withUserScope(sql, claims, (tx) => requestExport(tx, orgId));
  } catch (error) {
    if (isPostgresError(error) && error.code === '23505') {
      throw new HttpError(409, 'export_in_progress', error.message);
    }
    throw httpErrorFromPostgres(error, { forbidden: 'Only the organization\'s owners may export its data.' });
  }
}

const manifestSchema = z.object({
  files: z.array(z.object({ name: z.string(), table: z.string(), rows: z.number(), bytes: z.number() })),
  zip: z.string().nullable(),
});

export interface ExportFileLink {
  name: string;
  table: string | null;
  rows: number | null;
  bytes: number | null;
  url: string;
}

export interface ExportView {
  export: ExportRecord;
  files: ExportFileLink[];
  /** When the links stop working (null without files). */
  links_expire_at: string | null;
}

/**
 * The export, and once it is ready and not expired, a signed link per file
 * (the manifest, the zip if one was made, every table file), valid for
 * `linkSeconds`. Signed with the service key after RLS let the caller see
 * the export; members never reach this far.
 */
export async function exportWithLinks(
  deps: { sql: Sql; store: ExportStore; now?: () => Date },
  claims: UserClaims,
  exportId: string,
  linkSeconds: number,
): Promise<ExportView> {
  const record = await withUserScope(deps.sql, claims, (tx) => visibleExport(tx, exportId));
  if (!record) throw new HttpError(404, 'not_found', 'The export was not found.');
  const now = (deps.now ?? (() => new Date()))();
  if (record.status !== 'ready' || !record.expires_at || new Date(record.expires_at) <= now) {
    return { export: record, files: [], links_expire_at: null };
  }
  const unavailable = (cause?: unknown) =>
    new HttpError(503, 'export_unavailable', 'The export\'s files could not be read; try again.', { 'retry-after': '5' }, {
      cause,
    });
  const raw = await deps.store.download(`${record.storage_prefix}${MANIFEST}`).catch((error) => {
    throw unavailable(error);
  });
  if (!raw) throw unavailable(new Error(`${record.storage_prefix}${MANIFEST} is missing`));
  const manifest = manifestSchema.parse(JSON.parse(new TextDecoder().decode(raw)));
  const listed: Array<Omit<ExportFileLink, 'url'>> = [
    { name: MANIFEST, table: null, rows: null, bytes: raw.byteLength },
    ...(manifest.zip ? [{ name: manifest.zip, table: null, rows: null, bytes: null }] : []),
    ...manifest.files,
  ];
  // Links never outlive the export itself.
  const seconds = Math.max(1, Math.min(linkSeconds, Math.floor((new Date(record.expires_at).getTime() - now.getTime()) / 1000)));
  const urls = await deps.store.signedUrls(listed.map((file) => `${record.storage_prefix}${file.name}`), seconds)
    .catch((error) => {
      throw unavailable(error);
    });
  const files = listed.flatMap((file) => {
    const url = urls.get(`${record.storage_prefix}${file.name}`);
    return url ? [{ ...file, url }] : [];
  });
  return { export: record, files, links_expire_at: new Date(now.getTime() + seconds * 1000).toISOString() };
}
