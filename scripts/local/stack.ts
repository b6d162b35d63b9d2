import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT_DIR } from './paths.ts';
import type { PGlite } from '@electric-sql/pglite';
import postgres from 'postgres';
import { LOCAL_CALENDAR_TOKEN_KEY, localKeys, type LocalKeys } from './keys.ts';
import { isFreshDatabase, loadPlatform, migrate } from './migrate.ts';
import { applySessionDefaults, openDatabase, SESSION_DEFAULTS_SQL } from './pglite.ts';
import { Scheduler } from './scheduler.ts';
import { WireServer } from './wire-server.ts';
import { startFunctionsServer } from './functions-server.ts';
import { createStorageApi } from './storage-api.ts';

export { ROOT_DIR };

export interface StackOptions {
  /** Where the database lives on disk; omitted means in memory (tests). */
  dataDir?: string;
  host?: string;
  dbPort?: number;
  apiPort?: number;
  /** Serve the edge functions (needs Deno); off for database-only uses. */
  functions?: boolean;
  /** Run pg_cron jobs and drain pg_net's queue in the background. */
  scheduler?: boolean;
  log?: (line: string) => void;
  /** Extra environment for the functions. */
  functionEnv?: Record<string, string>;
}

/** Where Storage keeps object bytes for a data folder: beside it, so db:reset can clear both. */
export function storageDirFor(dataDir: string): string {
  return join(dirname(dataDir), 'storage');
}

export interface Stack {
  db: PGlite;
  wire: WireServer;
  dbUrl: string;
  apiUrl: string | null;
  keys: LocalKeys;
  scheduler: Scheduler | null;
  stop(): Promise<void>;
}

/** Opens the database, bringing it to the latest migration (platform stand-ins and seed on a fresh one). */
export async function prepareDatabase(options: StackOptions): Promise<PGlite> {
  const log = options.log ?? (() => undefined);
  const db = await openDatabase({ dataDir: options.dataDir });
  if (await isFreshDatabase(db)) {
    log('new database: loading the Supabase platform stand-ins');
    await loadPlatform(db, join(ROOT_DIR, 'sql/platform'));
    await applySessionDefaults(db);
  }
  await migrate(db, {
    migrationsDir: join(ROOT_DIR, 'supabase/migrations'),
    seedFile: join(ROOT_DIR, 'supabase/seed.sql'),
    log,
  });
  return db;
}

/**
 * pg_net's worker wakes when a request is queued (net.http_* call net.wake(),
 * whose NOTIFY pg_net_wake arrives at commit): the scheduler drains at once
 * rather than at its next tick. The embedded session listens; the wire server
 * keeps the notifications from its clients. Returns the unlisten.
 */
export function wakeOnNetRequests(db: PGlite, scheduler: Pick<Scheduler, 'wake'>): Promise<() => Promise<void>> {
  return db.listen('pg_net_wake', () => scheduler.wake());
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const host = options.host ?? '127.0.0.1';
  const keys = await localKeys();
  const db = await prepareDatabase(options);
  const wire = new WireServer({ db, host, port: options.dbPort ?? 54322, sessionDefaultsSql: SESSION_DEFAULTS_SQL });
  const stops: Array<() => Promise<void>> = [];
  let scheduler: Scheduler | null = null;
  try {
    // Before any client connects, so the LISTEN cannot land inside a client's transaction on the shared
    // session. Never unlistened: a stopped scheduler ignores wake-ups, and closing the database ends it.
    if (options.scheduler ?? true) await wakeOnNetRequests(db, { wake: () => scheduler?.wake() });
    await wire.start();
    stops.push(async () => {
      await wire.stop();
      await db.close();
    });

    let schedulerSql: postgres.Sql | null = null;
    if (options.scheduler ?? true) {
      const sql = postgres(wire.url, { max: 2, onnotice: () => undefined });
      schedulerSql = sql;
      scheduler = new Scheduler({ sql, log: options.log });
      scheduler.start();
      const running = scheduler;
      stops.push(async () => {
        await running.stop();
        await sql.end({ timeout: 1 });
      });
    }

    let apiUrl: string | null = null;
    if (options.functions ?? true) {
      const apiPort = options.apiPort ?? 54321;
      // Storage shares the API port, as on Supabase; an in-memory stack keeps its bytes in a temporary folder.
      const storageDir = options.dataDir ? storageDirFor(options.dataDir) : await mkdtemp(join(tmpdir(), 'stack-storage-'));
      if (!options.dataDir) stops.push(() => rm(storageDir, { recursive: true, force: true }));
      const storageSql = postgres(wire.url, { max: 4, prepare: false, onnotice: () => undefined });
      stops.push(() => storageSql.end({ timeout: 1 }));
      const storage = createStorageApi({
        sql: storageSql,
        dataDir: storageDir,
        env: (name) => (name === 'SUPABASE_JWT_SECRET' ? keys.jwtSecret : undefined),
      });
      const api = await startFunctionsServer({
        host,
        port: apiPort,
        rootDir: ROOT_DIR,
        services: { '/storage/v1': storage },
        env: {
          SUPABASE_DB_URL: wire.url,
          SUPABASE_ANON_KEY: keys.anonKey,
          SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
          SUPABASE_JWT_SECRET: keys.jwtSecret,
          // Local receivers (http://127.0.0.1:...) are the point of a local stack; never set in a project.
          WEBHOOK_ALLOW_LOOPBACK: 'true',
          // Local-only key (scripts/local/keys.ts) so calendars connect with no setup; a project sets its own.
          CALENDAR_TOKEN_KEY: LOCAL_CALENDAR_TOKEN_KEY,
          // The local dashboard (supabase/config.toml's site_url): a connect's redirect_to path lands there.
          CALENDAR_REDIRECT_ORIGINS: 'http://127.0.0.1:3000',
          ...options.functionEnv,
        },
      });
      apiUrl = api.url;
      stops.push(() => api.stop());
      // With both running, pg_cron and pg_net can wake the webhook dispatcher as on Supabase.
      if (schedulerSql) await storeDispatcherSecrets(schedulerSql, apiUrl, keys.serviceRoleKey);
    }

    return {
      db,
      wire,
      dbUrl: wire.url,
      apiUrl,
      keys,
      scheduler,
      async stop() {
        for (const stop of stops.reverse()) await stop();
      },
    };
  } catch (error) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (stops.length === 0) await db.close();
    throw error;
  }
}

/**
 * The Vault secrets private.request_webhook_dispatch reads (as in Supabase's
 * guide to scheduling edge functions): where the functions are and the key to
 * call them with. Updated on every start, since the API port may change.
 */
async function storeDispatcherSecrets(sql: postgres.Sql, projectUrl: string, serviceRoleKey: string): Promise<void> {
  for (const [name, value] of [['project_url', projectUrl], ['service_role_key', serviceRoleKey]]) {
    const [existing] = await sql<{ id: string }[]>`select id from vault.secrets where name = ${name}`;
    if (existing) await sql`select vault.update_secret(${existing.id}::uuid, ${value})`;
    else await sql`select vault.create_secret(${value}, ${name})`;
  }
}
