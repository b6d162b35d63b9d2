import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import type { EnvReader } from './env.ts';
import { serviceKey } from './service-keys.ts';

/**
 * A supabase-js client with the service key (service-keys.ts), for the
 * Storage work of service code (reading knowledge files, copying recordings,
 * writing invoices and exports, removing a deleted org's files, signing links
 * after the caller's right was checked in SQL). Created on
 * first use, so a function that never touches Storage needs no key.
 */
export function lazyServiceClient(env: EnvReader): () => SupabaseClient {
  let client: SupabaseClient | null = null;
  return () => {
    if (!client) {
      const url = env('SUPABASE_URL');
      const key = serviceKey(env);
      if (!url || !key) throw new Error('SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS must be set to reach Storage');
      client = createClient(url, key, { auth: { persistSession: false, autoRefreshToken: false } });
    }
    return client;
  };
}

/** The HTTP status a Storage error carries (`status`, or `statusCode` in the body), if any. */
export function storageErrorStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = 'status' in error ? Number(error.status) : 'statusCode' in error ? Number(error.statusCode) : NaN;
  return Number.isFinite(status) ? status : undefined;
}

/** Supabase's Storage answers a missing object with 404, or 400 "Object not found". */
export function isObjectNotFound(error: unknown): boolean {
  const status = storageErrorStatus(error);
  const message = error instanceof Error ? error.message : '';
  return status === 404 || (status === 400 && /not.?found/i.test(message));
}
