import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { TestProject } from 'vitest/node';
import { LOCAL_JWT_SECRET, localKeys } from '../../scripts/local/keys.ts';
import { ROOT_DIR } from '../../scripts/local/paths.ts';
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

interface StackInfo {
  dbUrl: string;
  apiUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  jwtSecret: string;
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
  const { child, info } = await startStackProcess();
  project.provide('dbUrl', info.dbUrl);
  project.provide('apiUrl', info.apiUrl);
  project.provide('anonKey', info.anonKey);
  project.provide('serviceRoleKey', info.serviceRoleKey);
  project.provide('jwtSecret', info.jwtSecret);
  project.provide('embedded', true);
  return async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin?.end();
    await exited;
  };
}

/**
 * Starts tests/support/stack-process.ts, out of vitest's main process (why: see
 * there), and waits for its ready line; its other output passes through.
 */
async function startStackProcess(): Promise<{ child: ChildProcess; info: StackInfo }> {
  const child = spawn(join(ROOT_DIR, 'node_modules/.bin/tsx'), [join(ROOT_DIR, 'tests/support/stack-process.ts')], {
    cwd: ROOT_DIR,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  const info = await new Promise<StackInfo>((resolve, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`the test stack exited before it was ready (${code ?? signal})`)));
    lines.on('line', (line) => {
      if (line.startsWith('STACK_READY ')) resolve(JSON.parse(line.slice('STACK_READY '.length)) as StackInfo);
      else console.log(line);
    });
  });
  return { child, info };
}
