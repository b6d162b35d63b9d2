import { startStack } from '../../scripts/local/stack.ts';

/**
 * The test run's embedded stack, in a process of its own: PGlite runs each
 * query synchronously on its thread, so in vitest's main process a long
 * pgTAP file (184 takes 11 s) would also stall the module loading and
 * reporting of every worker. Prints one `STACK_READY <json>` line, then runs
 * until its parent closes stdin (or dies), and stops the stack.
 */
const READY_PREFIX = 'STACK_READY ';

const starting = startStack({ dbPort: 0, apiPort: 0, scheduler: false });
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  const stack = await starting.catch(() => null);
  await stack?.stop();
  process.exit(0);
};
// Listening before the stack is up: a parent killed while it starts (a CI timeout) still gets it stopped.
process.stdin.on('end', () => void stop());
process.stdin.on('close', () => void stop());
process.stdin.resume();
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
// The ready line written to a parent already gone fails (EPIPE): stop instead of crashing with the stack up.
process.stdout.on('error', () => void stop());

const stack = await starting;
if (!stopping) {
  process.stdout.write(
    `${READY_PREFIX}${JSON.stringify({
      dbUrl: stack.dbUrl,
      apiUrl: stack.apiUrl ?? '',
      anonKey: stack.keys.anonKey,
      serviceRoleKey: stack.keys.serviceRoleKey,
      jwtSecret: stack.keys.jwtSecret,
    })}\n`,
  );
}
