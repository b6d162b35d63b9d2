/**
 * The stack behind the functions tests: the run's shared database, and a
 * functions gateway + Deno runtime in front of it, configured per test file.
 */
import { inject } from 'vitest';
import { type FunctionsServerOptions, startFunctionsServer } from '../../scripts/local/functions-server.ts';
import { type LocalKeys, localKeys } from '../../scripts/local/keys.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';

export { ROOT_DIR };

export interface TestDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * The run's shared database (see tests/support/global-setup.ts): the embedded
 * stack, or DATABASE_URL when set, so these tests exercise whichever is under test.
 */
export function startTestDatabase(): Promise<TestDatabase> {
  return Promise.resolve({ url: inject('dbUrl'), stop: async () => undefined });
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
  options: Pick<FunctionsServerOptions, 'functionsDir' | 'configPath' | 'verifyJwt'> & {
    /** Extra function environment, over the stack's own. */
    env?: Record<string, string>;
  } = {},
): Promise<TestStack> {
  const { env: extraEnv, ...serverOptions } = options;
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
        ...extraEnv,
      },
      log: (line) => logs.push(line),
      ...serverOptions,
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
