/**
 * The local functions gateway and Deno runtime in a process of their own, for
 * benchmarks that want the database's process to do only database work (on
 * Supabase the gateway, the functions and Postgres run on different
 * machines). Reads its environment as JSON from argv[2], prints
 * `READY <url>` when serving, and stops on SIGTERM.
 */
import { startFunctionsServer } from '../local/functions-server.ts';
import { ROOT_DIR } from '../local/paths.ts';

const env = JSON.parse(process.argv[2] ?? '{}') as Record<string, string>;
const server = await startFunctionsServer({ port: 0, rootDir: ROOT_DIR, env, log: () => undefined });
process.stdout.write(`READY ${server.url}\n`);
process.on('SIGTERM', () => {
  void server.stop().then(() => process.exit(0));
});
