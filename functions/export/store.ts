import type { SupabaseClient } from '@supabase/supabase-js';
import { isObjectNotFound } from '../_shared/service-storage.ts';

export const EXPORTS_BUCKET = 'exports';

/** The exports bucket as the service role. Paths are full object names (`<org_id>/exports/<id>/<file>`). */
export interface ExportStore {
  upload(path: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /** The object's bytes, or null when there is none. */
  download(path: string): Promise<Uint8Array | null>;
  /** The names of the objects directly under `prefix` (no trailing slash), without the prefix. */
  list(prefix: string): Promise<string[]>;
  /** Removes the objects (up to any number, 1,000 a request); returns how many were removed. */
  remove(paths: string[]): Promise<number>;
  /** A signed URL per path that exists, valid for `expiresInSeconds`. */
  signedUrls(paths: string[], expiresInSeconds: number): Promise<Map<string, string>>;
}

const LIST_PAGE = 1000;

export function supabaseExportStore(client: () => SupabaseClient): ExportStore {
  const bucket = () => client().storage.from(EXPORTS_BUCKET);
  return {
    async upload(path, bytes, contentType) {
      // upsert: a step retried after a crash writes the same names again.
      const { error } = await bucket().upload(path, new Blob([new Uint8Array(bytes)], { type: contentType }), {
        contentType,
        upsert: true,
      });
      if (error) throw error;
    },
    async download(path) {
      const { data, error } = await bucket().download(path);
      if (error) {
        if (isObjectNotFound(error)) return null;
        throw error;
      }
      return new Uint8Array(await data.arrayBuffer());
    },
    async list(prefix) {
      const names: string[] = [];
      for (let offset = 0;; offset += LIST_PAGE) {
        const { data, error } = await bucket().list(prefix, { limit: LIST_PAGE, offset, sortBy: { column: 'name', order: 'asc' } });
        if (error) throw error;
        // Supabase lists "folders" as entries without an id; an export has none, and they are not objects.
        names.push(...data.filter((entry) => entry.id !== null).map((entry) => entry.name));
        if (data.length < LIST_PAGE) return names;
      }
    },
    async remove(paths) {
      let removed = 0;
      for (let start = 0; start < paths.length; start += LIST_PAGE) {
        const { data, error } = await bucket().remove(paths.slice(start, start + LIST_PAGE));
        if (error) throw error;
        removed += data.length;
      }
      return removed;
    },
    async signedUrls(paths, expiresInSeconds) {
      const signed = new Map<string, string>();
      if (paths.length === 0) return signed;
      const { data, error } = await bucket().createSignedUrls(paths, expiresInSeconds);
      if (error) throw error;
      for (const entry of data) {
        if (entry.path && entry.signedUrl && !entry.error) signed.set(entry.path, entry.signedUrl);
      }
      return signed;
    },
  };
}
