import { ROOT_DIR } from './paths.ts';
import { resolve } from 'node:path';

/** The local stack's settings, from the environment, with Supabase CLI's local ports as defaults. */
export interface LocalConfig {
  dataDir: string;
  dbPort: number;
  apiPort: number;
}

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 65535) {
    throw new Error(`${name} must be a port number (1-65535), got "${raw}"`);
  }
  return value;
}

export function localConfig(): LocalConfig {
  return {
    dataDir: resolve(ROOT_DIR, process.env.LOCAL_DATA_DIR ?? '.local/db'),
    dbPort: port('LOCAL_DB_PORT', 54322),
    apiPort: port('LOCAL_API_PORT', 54321),
  };
}
