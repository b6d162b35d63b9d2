import type { SupabaseClient } from '@supabase/supabase-js';
import type { EnvReader } from '../_shared/env.ts';
import { lazyServiceClient } from '../_shared/service-storage.ts';

export const KNOWLEDGE_BUCKET = 'knowledge';

/** Where ingestion reads files from; replaced in tests that inject storage faults. */
export interface FileStore {
  /** The object's bytes, or null when there is no such object. Other failures throw (transient). */
  download(path: string): Promise<Uint8Array | null>;
}

/**
 * The `knowledge` bucket through supabase-js with the service-role key (the
 * function reads any org's file; the caller was checked to be the service role).
 */
export function supabaseFileStore(env: EnvReader, options: { client?: SupabaseClient } = {}): FileStore {
  const client = options.client ? () => options.client as SupabaseClient : lazyServiceClient(env);
  const storage = () => client().storage.from(KNOWLEDGE_BUCKET);
  return {
    async download(path) {
      // supabase-js puts the path into the URL as is; a file name with "#" or "?" must not end the path.
      const { data, error } = await storage().download(path.split('/').map(encodeURIComponent).join('/'));
      if (error) {
        // Supabase's Storage answers a missing object with 400 "Object not found" (statusCode 404 in the body).
        if (statusOf(error) === 404 || (statusOf(error) === 400 && /not.?found/i.test(error.message))) return null;
        throw error;
      }
      return new Uint8Array(await data.arrayBuffer());
    },
  };
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = 'status' in error ? Number(error.status) : 'statusCode' in error ? Number(error.statusCode) : NaN;
  return Number.isFinite(status) ? status : undefined;
}
