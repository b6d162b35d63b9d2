/**
 * The throwaway stack behind the functions tests: an in-memory PGlite served
 * over the wire protocol, and the functions gateway + Deno runtime in front of
 * it. Kept in this one file so the suite can move to a shared stack later.
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { fileURLToPath } from 'node:url';
import { type FunctionsServerOptions, startFunctionsServer } from '../../scripts/local/functions-server.ts';
import { type LocalKeys, localKeys } from '../../scripts/local/keys.ts';

export const ROOT_DIR = fileURLToPath(new URL('../..', import.meta.url));

export interface TestDatabase {
  url: string;
  stop(): Promise<void>;
}

/** An empty database with Supabase's request roles, so `withUserScope` can switch to them. */
export async function startTestDatabase(): Promise<TestDatabase> {
  const db = await PGlite.create();
  await db.exec(`
    create role anon nologin;
    create role authenticated nologin;
    create role service_role nologin bypassrls;
  `);
  const server = new PGLiteSocketServer({ db, port: 0, maxConnections: 4 });
  await server.start();
  return {
    url: `postgres://postgres:postgres@${server.getServerConn()}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}

export interface TestStack {
  /** `<gateway>/functions/v1` */
  functionsUrl: string;
  dbUrl: string;
  keys: LocalKeys;
  /** Everything the Deno runtime printed. */
  logs: string[];
  stop(): Promise<void>;
}

export async function startTestStack(
  options: Pick<FunctionsServerOptions, 'functionsDir' | 'configPath' | 'verifyJwt'> = {},
): Promise<TestStack> {
  const keys = await localKeys();
  const database = await startTestDatabase();
  const logs: string[] = [];
  try {
    const functions = await startFunctionsServer({
      port: 0,
      rootDir: ROOT_DIR,
      env: {
        SUPABASE_URL: 'http://127.0.0.1:54321',
        SUPABASE_DB_URL: database.url,
        SUPABASE_ANON_KEY: keys.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: keys.serviceRoleKey,
        SUPABASE_JWT_SECRET: keys.jwtSecret,
      },
      log: (line) => logs.push(line),
      ...options,
    });
    return {
      functionsUrl: `${functions.url}/functions/v1`,
      dbUrl: database.url,
      keys,
      logs,
      async stop() {
        await functions.stop();
        await database.stop();
      },
    };
  } catch (error) {
    await database.stop();
    throw error;
  }
}
