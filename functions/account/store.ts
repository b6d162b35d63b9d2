import type { SupabaseClient } from '@supabase/supabase-js';

/** Removes objects through the Storage API as the service role (so their bytes go, not only their rows). */
export interface FileStore {
  /** Removes up to 1,000 names of one bucket; returns how many were removed. */
  remove(bucket: string, names: string[]): Promise<number>;
}

export function supabaseFileStore(client: () => SupabaseClient): FileStore {
  return {
    async remove(bucket, names) {
      const { data, error } = await client().storage.from(bucket).remove(names);
      if (error) throw error;
      return data.length;
    },
  };
}
