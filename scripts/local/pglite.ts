import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT_DIR } from './paths.ts';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { pgcrypto } from '@electric-sql/pglite/contrib/pgcrypto';
import { uuid_ossp } from '@electric-sql/pglite/contrib/uuid_ossp';
import { btree_gist } from '@electric-sql/pglite/contrib/btree_gist';
import { intarray } from '@electric-sql/pglite/contrib/intarray';
import { pgtap } from '@electric-sql/pglite-pgtap';
import { vector } from '@electric-sql/pglite-pgvector';

/** Every extension a migration or test may `create extension` for; PGlite must be told up front. */
const extensions = { vector, pgtap, pg_trgm, pgcrypto, uuid_ossp, btree_gist, intarray };

export const PGLITE_MAJOR_VERSION = '18';

export class DataFolderError extends Error {}

/**
 * Refuses folders PGlite would misread: a non-empty folder without PG_VERSION
 * (someone's files) or a data directory of another major version (a real
 * Postgres install, or an older PGlite). Catching this here beats a WASM abort.
 */
function checkDataFolder(dataDir: string): void {
  if (!existsSync(dataDir)) return;
  const entries = readdirSync(dataDir);
  if (entries.length === 0) return;
  const versionFile = join(dataDir, 'PG_VERSION');
  if (!existsSync(versionFile)) {
    throw new DataFolderError(
      `The data folder ${dataDir} is not empty and is not a Postgres data directory (no PG_VERSION). ` +
        'Point LOCAL_DATA_DIR at an empty folder, or run `npm run db:reset` to recreate it.',
    );
  }
  const version = readFileSync(versionFile, 'utf8').trim();
  if (version !== PGLITE_MAJOR_VERSION) {
    throw new DataFolderError(
      `The data folder ${dataDir} holds a PostgreSQL ${version} database; this stack runs PostgreSQL ${PGLITE_MAJOR_VERSION}. ` +
        'Run `npm run db:reset` to recreate it (this deletes the local data).',
    );
  }
}

export interface OpenOptions {
  /** A folder on disk; omitted means an in-memory database. */
  dataDir?: string;
}

export async function openDatabase(options: OpenOptions = {}): Promise<PGlite> {
  if (options.dataDir) {
    checkDataFolder(options.dataDir);
    mkdirSync(options.dataDir, { recursive: true });
  }
  let db: PGlite;
  try {
    db = await PGlite.create({
      dataDir: options.dataDir,
      extensions,
      // The superuser every Supabase migration runs as.
      username: 'postgres',
      database: 'postgres',
    });
  } catch (error) {
    const where = options.dataDir ?? 'memory';
    throw new DataFolderError(
      `Could not open the database in ${where}: ${(error as Error).message}. ` +
        'If the folder is damaged, run `npm run db:reset` to recreate it (this deletes the local data).',
    );
  }
  installStandInExtensions(db);
  await applySessionDefaults(db);
  return db;
}

/**
 * Extensions whose objects the platform stand-ins in sql/platform provide.
 * Their control files let a migration's `create extension pg_cron` (as written
 * for Supabase) succeed here too; PGlite's extension folder is in memory, so
 * they are written on every open.
 */
const STAND_IN_EXTENSIONS = [
  { name: 'pg_cron', version: '1.6', schema: null },
  { name: 'pg_net', version: '0.19.5', schema: null },
  { name: 'supabase_vault', version: '0.3.1', schema: 'vault' },
];

interface EmscriptenFs {
  writeFile(path: string, data: string): void;
}

function installStandInExtensions(db: PGlite): void {
  // PGlite exposes its Emscripten module, but not in its public types.
  const fs = (db as unknown as { Module: { FS: EmscriptenFs } }).Module.FS;
  const dir = '/pglite/share/postgresql/extension';
  for (const { name, version, schema } of STAND_IN_EXTENSIONS) {
    const control = [`comment = 'local stand-in: objects come from sql/platform'`, `default_version = '${version}'`, 'relocatable = false'];
    if (schema) control.push(`schema = ${schema}`);
    fs.writeFile(`${dir}/${name}.control`, `${control.join('\n')}\n`);
    fs.writeFile(`${dir}/${name}--${version}.sql`, '-- objects come from sql/platform\n');
  }
}

/**
 * A Postgres server applies `alter database/role ... set` settings when a
 * session starts; PGlite does not, so this SQL does it. The wire server runs it
 * again whenever it resets the session between connections.
 */
export const SESSION_DEFAULTS_SQL = readFileSync(join(ROOT_DIR, 'sql/session/apply_db_role_settings.sql'), 'utf8');

export async function applySessionDefaults(db: PGlite): Promise<void> {
  await db.exec(SESSION_DEFAULTS_SQL);
}
