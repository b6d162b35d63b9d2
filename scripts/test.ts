import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { denoCheck } from './deno-check.ts';
import { ROOT_DIR } from './local/paths.ts';

/**
 * `npm test`: `deno check` of every function, then vitest (unit tests, the
 * pgTAP files, the wire server, the functions over HTTP, the Supabase CLI's
 * type generation and advisors) against one embedded stack, or against
 * DATABASE_URL when it is set.
 */
const checked = denoCheck();
if (checked !== 0) {
  console.error('deno check failed');
  console.log('\n0 passed, 1 failed');
  process.exit(checked);
}
const vitest = spawnSync(join(ROOT_DIR, 'node_modules/.bin/vitest'), ['run', ...process.argv.slice(2)], {
  cwd: ROOT_DIR,
  stdio: 'inherit',
});
process.exit(vitest.status ?? 1);
