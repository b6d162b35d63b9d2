import { resolve } from 'node:path';
import { signUserToken } from './local/keys.ts';
import { startStack } from './local/stack.ts';
import { ROOT_DIR } from './local/paths.ts';
import { localConfig } from './local/config.ts';

/** `npm start`: the whole backend on this machine, data kept in LOCAL_DATA_DIR between runs. */
const config = localConfig();
const started = Date.now();
console.log(`Starting the local stack (data in ${config.dataDir}) ...`);

let stack;
try {
  stack = await startStack({
    dataDir: config.dataDir,
    dbPort: config.dbPort,
    apiPort: config.apiPort,
    log: (line) => console.log(`  ${line}`),
  });
} catch (error) {
  console.error(`\nCould not start: ${(error as Error).message}`);
  process.exit(1);
}

const users = await stack.db.query<{ id: string; email: string; raw_app_meta_data: Record<string, unknown> }>(
  'select id, email, raw_app_meta_data from auth.users order by email',
);
const tokens = await Promise.all(
  users.rows.map(async (user) => ({
    email: user.email,
    token: await signUserToken(
      { id: user.id, email: user.email, appMetadata: user.raw_app_meta_data },
      { expiresInSeconds: 24 * 3600 },
    ),
  })),
);

console.log(`
Local stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s

  API URL:           ${stack.apiUrl}
  Functions:         ${stack.apiUrl}/functions/v1/<name>
  Database URL:      ${stack.dbUrl}
  JWT secret:        ${stack.keys.jwtSecret}
  anon key:          ${stack.keys.anonKey}
  service_role key:  ${stack.keys.serviceRoleKey}

Demo users (access tokens valid 24 h; \`npm run token -- <email>\` prints a fresh one):
${tokens.map(({ email, token }) => `  ${email}\n    ${token}`).join('\n')}

These keys are local-only values. Press Ctrl-C to stop; data is kept in ${resolve(ROOT_DIR, config.dataDir)}.`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping ...`);
  await stack!.stop();
  console.log('Stopped.');
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
