import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { denoCheck } from './deno-check.ts';
import { ROOT_DIR } from './local/paths.ts';

/**
 * `npm test`: `deno check` of every function, `tsc` (strict) over the tests
 * and scripts (vitest strips their types without checking them), then
 * vitest (unit tests, the pgTAP files, the wire server, the functions over
 * HTTP, the Supabase CLI's type generation and advisors) against one
 * embedded stack, or against DATABASE_URL when it is set.
 */
const checked = denoCheck();
if (checked !== 0) {
  console.error('deno check failed');
  console.log('\n0 passed, 1 failed');
  process.exit(checked);
}
const tsc = spawnSync(join(ROOT_DIR, 'node_modules/.bin/tsc'), ['--noEmit', '-p', 'tsconfig.json'], {
  cwd: ROOT_DIR,
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('tsc failed');
  console.log('\n0 passed, 1 failed');
  process.exit(tsc.status ?? 1);
}
const vitest = spawnSync(join(ROOT_DIR, 'node_modules/.bin/vitest'), ['run', ...process.argv.slice(2)], {
  cwd: ROOT_DIR,
  stdio: 'inherit',
});
process.exit(vitest.status ?? 1);
