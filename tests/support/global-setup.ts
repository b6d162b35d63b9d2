import type { TestProject } from 'vitest/node';
import { LOCAL_JWT_SECRET, localKeys } from '../../scripts/local/keys.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
import { startStack } from '../../scripts/local/stack.ts';
import { startFunctionsServer } from '../../scripts/local/functions-server.ts';

/**
 * One stack for the whole run: the embedded database on free ports (so a
 * running `npm start` is left alone), or, with DATABASE_URL set, that server
 * (a Supabase project's database, or `supabase start`) with the functions
 * served locally against it.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    dbUrl: string;
    apiUrl: string;
    anonKey: string;
    serviceRoleKey: string;
    jwtSecret: string;
    embedded: boolean;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  if (external) {
    const jwtSecret = process.env.SUPABASE_JWT_SECRET ?? LOCAL_JWT_SECRET;
    const keys = await localKeys(jwtSecret);
    const api = await startFunctionsServer({
      port: 0,
      rootDir: ROOT_DIR,
      env: {
        SUPABASE_URL: process.env.SUPABASE_URL ?? 'http://127.0.0.1:54321',
        SUPABASE_DB_URL: external,
        SUPABASE_ANON_KEY: process.env.SUPABASE_ANON_KEY ?? keys.anonKey,
        SUPABASE_SERVICE_ROLE_KEY: process.env.SUPABASE_SERVICE_ROLE_KEY ?? keys.serviceRoleKey,
        SUPABASE_JWT_SECRET: jwtSecret,
      },
    });
    project.provide('dbUrl', external);
    project.provide('apiUrl', api.url);
    project.provide('anonKey', keys.anonKey);
    project.provide('serviceRoleKey', keys.serviceRoleKey);
    project.provide('jwtSecret', jwtSecret);
    project.provide('embedded', false);
    return () => api.stop();
  }
  const stack = await startStack({ dbPort: 0, apiPort: 0, scheduler: false });
  project.provide('dbUrl', stack.dbUrl);
  project.provide('apiUrl', stack.apiUrl ?? '');
  project.provide('anonKey', stack.keys.anonKey);
  project.provide('serviceRoleKey', stack.keys.serviceRoleKey);
  project.provide('jwtSecret', stack.keys.jwtSecret);
  project.provide('embedded', true);
  return () => stack.stop();
}
